"""Inpainting's draw: the shown picture, the distractor kinds, the crops, the patches.

:func:`draw_scene` draws the shown picture in a random dihedral orientation. The true
crop and the other crops (``other`` ones scattered without overlap, ``shifted`` ones a
chain of shifts) are drawn as one set of boxes in the shown picture, the true box a
uniform member; every crop then gets as many rotated or flipped copies. Draws with a
near-uniform crop or two near-identical candidates are rejected, and the masked picture
covers the true region and blacks out the ``other`` ones. The family, its configuration
and its documentation are in :mod:`ssl_gym.puzzles.inpainting`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ssl_gym.core import Rejected
from ssl_gym.render import DIHEDRAL, is_flat, near_duplicates, orient

if TYPE_CHECKING:
    from ssl_gym.images.base import ImageSource
    from ssl_gym.puzzles.inpainting import InpaintingConfig

KINDS = ("other", "shifted", "rotated", "flipped")
"""Distractor kinds, in the order they are made (copies need their crops first)."""
ALIASES = {"near": "shifted,rotated,flipped", "all": ",".join(KINDS)}
"""Names of common mixes accepted by ``distractors``."""
OTHER_FILL = 0
"""What covers the regions that ``other`` candidates are cut from (black)."""
TRANSFORMS = {"rotated": ("rot90", "rot180", "rot270"), "flipped": ("hflip", "vflip")}
TRANSFORM_KIND = {op: kind for kind, ops in TRANSFORMS.items() for op in ops}

Box = tuple[int, int]
"""A crop's top-left corner ``(top, left)`` in the shown picture."""


def draw_scene(
    cfg: InpaintingConfig, rng: np.random.Generator, source: ImageSource
) -> tuple[np.ndarray, str, str]:
    """The shown picture, turned or flipped by a random element of the dihedral group.

    Every part (the masked picture, each candidate) is cut from the oriented picture
    (:data:`ssl_gym.render.DIHEDRAL`), so a rotated or mirrored copy of a patch, alone,
    is distributed like an unturned patch (no candidate alone looks upside down).

    Returns:
        The picture, its orientation's name and its source key (``ImageSource.draw``).
    """
    scene, key = source.draw(rng, (cfg.size, cfg.size))
    orientation = DIHEDRAL[int(rng.integers(len(DIHEDRAL)))]
    return np.ascontiguousarray(orient(scene, orientation)), orientation, key


def draw_specs(
    cfg: InpaintingConfig, rng: np.random.Generator
) -> tuple[list[Box], list[tuple[int, str]], list[str]]:
    """Crop boxes ``(top, left)`` in the picture, ``(box, transform)`` and kind per candidate.

    Candidate 0 is the true patch. Every crop gets as many copies (so statistics that
    copies share with their crop single none out); the crops besides the true one are
    of one kind, all boxes are drawn as one set and the true box is a uniform member.
    """
    size = cfg.group_sizes[int(rng.integers(len(cfg.group_sizes)))]
    n = cfg.candidates // size - 1  # crops besides the true one
    crop_kinds = [k for k in cfg.kinds if k not in TRANSFORMS]
    kind = crop_kinds[int(rng.integers(len(crop_kinds)))] if n else "true"
    boxes = shift_chain(cfg, rng, n) if kind == "shifted" else scatter(cfg, rng, n + 1)
    truth = int(rng.integers(n + 1))
    boxes = [boxes[truth], *boxes[:truth], *boxes[truth + 1 :]]
    kinds = ["true", *[kind] * n]
    specs = [(b, "identity") for b in range(len(boxes))]
    ops = cfg.copy_transforms
    for b in range(len(boxes)):
        for i in rng.choice(len(ops), size - 1, replace=False) if size > 1 else ():
            specs.append((b, ops[i]))
            kinds.append(TRANSFORM_KIND[ops[i]])
    return boxes, specs, kinds


def scatter(cfg: InpaintingConfig, rng: np.random.Generator, n: int) -> list[Box]:
    """``n`` boxes drawn one by one, uniformly in the picture, none overlapping another."""
    room, side = cfg.size - cfg.side + 1, cfg.side
    boxes: list[Box] = []
    for _ in range(n):
        tops, lefts = rng.integers(0, room, size=(2, 32))
        clear = np.ones(32, dtype=bool)
        for y, x in boxes:
            clear &= (np.abs(tops - y) >= side) | (np.abs(lefts - x) >= side)
        if not clear.any():
            raise Rejected("no_room_for_other_region")
        i = int(np.argmax(clear))
        boxes.append((int(tops[i]), int(lefts[i])))
    return boxes


def shift_chain(cfg: InpaintingConfig, rng: np.random.Generator, n: int) -> list[Box]:
    """``n + 1`` boxes forming a chain, each box a shift of its neighbour.

    A walk of ``n`` steps whose boxes stay :func:`_apart`, placed uniformly where all
    of it fits; the true box is a uniform link (not the hub the others spread from).
    """
    walk = [(0, 0)]
    for _ in range(n):
        walk.append(_step(cfg, rng, walk))
    ys, xs = (np.array(v) for v in zip(*walk, strict=True))
    room = cfg.size - cfg.side - np.array([np.ptp(ys), np.ptp(xs)])
    if (room < 0).any():
        raise Rejected("shift_out_of_bounds")
    top = int(rng.integers(room[0] + 1)) - int(ys.min())
    left = int(rng.integers(room[1] + 1)) - int(xs.min())
    return [(top + int(y), left + int(x)) for y, x in walk]


def _step(cfg: InpaintingConfig, rng: np.random.Generator, walk: list[Box]) -> Box:
    """The walk's last box moved by a random shift, clear of the walk's other boxes."""
    for _ in range(8):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        dist = rng.uniform(*cfg.shift) * cfg.side
        dy, dx = round(dist * math.sin(angle)), round(dist * math.cos(angle))
        box = (walk[-1][0] + dy, walk[-1][1] + (dx if dy or dx else 1))
        if _apart(cfg, box, walk[:-1]):
            return box
    raise Rejected("shift_folds_back")


def _apart(cfg: InpaintingConfig, box: Box, others: list[Box]) -> bool:
    """Whether ``box`` is at least the smallest shift away from each of ``others``."""
    least = cfg.shift[0] * cfg.side - 1.0
    return all(math.hypot(box[0] - y, box[1] - x) >= least for y, x in others)


def candidate_patches(
    cfg: InpaintingConfig, shown: np.ndarray, boxes: list[Box], specs: list[tuple[int, str]]
) -> list[np.ndarray]:
    """The candidates' patches, cut from ``shown`` at native resolution, in ``specs`` order.

    Raises:
        Rejected: a crop is near-uniform, or two candidates are near-identical.
    """
    crops = [shown[y : y + cfg.side, x : x + cfg.side] for y, x in boxes]
    if any(is_flat(c, cfg.min_std) for c in crops):  # copies share their crop's std
        raise Rejected("flat_patch")
    patches = [transform(crops[b], op) for b, op in specs]
    if near_duplicates(patches, cfg.min_patch_diff):
        raise Rejected("near_duplicate_candidates")
    return patches


def transform(patch: np.ndarray, op: str) -> np.ndarray:
    """``patch`` rotated counter-clockwise (``rot90`` ...), mirrored or unchanged."""
    if op.startswith("rot"):
        patch = np.rot90(patch, int(op[3:]) // 90)
    elif op == "hflip":
        patch = patch[:, ::-1]
    elif op == "vflip":
        patch = patch[::-1]
    return np.ascontiguousarray(patch)


def masked_picture(
    shown: np.ndarray, boxes: list[Box], kinds: list[str], fill: np.ndarray
) -> np.ndarray:
    """The shown picture with the true region covered, and the other regions blacked out.

    Covering every crop that is not a near miss keeps the masked picture's statistics
    exchangeable between the candidates (none of their pixels is left in it).
    """
    side, masked = fill.shape[0], shown.copy()
    covered = boxes if "other" in kinds else boxes[:1]
    for i, (top, left) in enumerate(covered):
        masked[top : top + side, left : left + side] = fill if i == 0 else OTHER_FILL
    return masked
