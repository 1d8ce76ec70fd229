"""Inpainting: which candidate patch fills the masked region of the image?

## Description

A square region of an image is masked (a flat grey square, or one fixed noise pattern) and
``candidates`` patches of the region's size are offered, exactly one of which is the
region's true content (SSL-R1's region inpainting, Spatial-SSRL). The wrong candidates
(``distractors``) are of four kinds:

* ``other``: another region of the shown picture, clear of the masked one (SSL-R1). It is
  blacked out in the picture, so the picture's statistics hold no pixel of any candidate
  (were it left visible, the candidate whose content is missing from the picture would be
  the true one); the solver must see which region's surroundings the patch continues.
* ``shifted``: a crop moved by ``shift`` times its side, in a random direction, off the
  region or off another shifted crop (it overlaps the mask or its surroundings: a near
  miss).
* ``rotated`` (90, 180 or 270 degrees) and ``flipped`` (mirrored left-right or upside
  down): transformed copies of a crop.

The candidates come in groups of one size: a crop (the true one, an other or a shifted
one) with its rotated or flipped copies. The crops besides the true one share one kind
per instance, and all crop boxes are drawn as one set inside the shown picture (``other``
ones scattered without overlap, ``shifted`` ones a chain placed where it fits), the true
one a uniform member of it. The picture is shown in one of the eight turns and flips of
the square, so a turned copy of a patch, alone, looks unturned. So neither a candidate
alone, nor its statistics, nor where its box lies single out the true patch: it is only
the one that fits the hole.

## Observation

The picture may be turned or mirrored (upright, upside down, sideways). ``layout="images"``:
the masked ``size x size`` picture (with black squares over the regions of ``other``
candidates, when there are any), then the ``candidates`` patches
(``side x side``, candidate A first). ``layout="composite"``: one picture with the masked
image on top and the patches below it, each labelled with its letter in large print. All
patches are cut at native resolution (no resampling) and only rotated or flipped, so the
true patch and the distractors share size, colour statistics and pixel pipeline. Draws
with a near-uniform patch or two near-identical candidates (a flip of a symmetric patch, a
shift in a flat area) are rejected, so the answer is unique.

## Answer format

The letter of the candidate, e.g. ``<answer>B</answer>``; ``(B)``, ``Option B``,
``Candidate B.`` and a lone ``b`` read the same (see :func:`ssl_gym.core.parse_letter`).
Text naming two letters does not parse.

## Reward

1 for the right letter, else 0.

## Difficulty

The number of candidates (2 to 8), the region's side and the kinds of distractors
(regions from elsewhere are easy to rule out; rotated, flipped and shifted copies of
nearby content are near misses). Hints (``-Hint`` ids): level 0 shows the true patch's
outermost pixels along the inside edge of the hole (only a player comparing the
candidates' edges with them gains); each later level crosses out one more wrong
candidate (never the last). The texts are the same for every instance.

## Registered Configurations

* ``SSL/Inpainting-K2-v1``: 2 candidates, the wrong one from elsewhere (easy).
* ``SSL/Inpainting-K4-v1``: 4 candidates from elsewhere in the scene (medium).
* ``SSL/Inpainting-K4-Mixed-v1``: 4 candidates, all kinds of distractors (medium).
* ``SSL/Inpainting-K4-Hard-v1``: 4 candidates, rotated, flipped and shifted (hard).
* ``SSL/Inpainting-K6-Hard-v1``: 6 candidates, rotated, flipped and shifted (hard).

## Version History

* v0: initial release.
* v1: the picture is shown in a random dihedral orientation; all crop boxes (true,
  other, shifted chain) are drawn as one set inside it, the true one a uniform member; the
  crops besides the true one share one kind; ``other`` regions are blacked out. In v0 a
  turned copy of an upright patch looked turned by itself and shifted crops avoided the
  border (part alone 0.28-0.34 on K4-Hard, chance 0.25); ``other`` regions came from a
  hidden band outside the picture, whose margin content told them apart on photographs
  (part alone 0.92 on K2, chance 0.5); left visible, they are in the picture's colour
  statistics and the true patch is not (statistics learner 0.36 on K4); hints drawn on the
  images (the true edge ring, then cross-outs) instead of the distractor kinds and
  eliminations in text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ssl_gym.core import (
    ChoicePuzzle,
    Hint,
    Instance,
    Parts,
    Preset,
    PuzzleConfig,
    Rejected,
    check_choice,
    check_float,
    check_int,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._hints import Region, cross_out
from ssl_gym.render import (
    DIHEDRAL,
    cut_slots,
    grid,
    grid_slots,
    is_flat,
    near_duplicates,
    orient,
)

QUESTIONS = {
    "ssl4rl": (
        "{shown} Exactly one candidate is the original content of the missing region. "
        "Which candidate is it? Answer with its letter, one of: {options}."
    ),
    "ssl_r1": (
        "{shown} Which candidate patch ({options}) fills the missing region correctly? "
        "Answer with the letter."
    ),
    "plain": "{shown} Which candidate ({options}) fills the missing region?",
}
SHOWN = {
    "images": (
        "Image 1 has a missing region ({fill}). Images 2 to {last_image} are {k} candidate "
        "patches of the region's size, labelled {first} to {last} in order (Image 2 is "
        "candidate {first})."
    ),
    "composite": (
        "The image shows a picture with a missing region ({fill}) at the top and, below it, "
        "{k} candidate patches of the region's size labelled {first} to {last}."
    ),
}
BLACKED = (
    " Black squares, where there are any, cover other regions of the picture, of the same size."
)
FILL_WORDS = {"gray": "a grey square", "noise": "a square of random noise"}
LAYOUTS = ("images", "composite")
FILLS = tuple(FILL_WORDS)
KINDS = ("other", "shifted", "rotated", "flipped")
"""Distractor kinds, in the order they are made (copies need their crops first)."""
ALIASES = {"near": "shifted,rotated,flipped", "all": ",".join(KINDS)}
"""Names of common mixes accepted by ``distractors``."""
TRANSFORMS = {"rotated": ("rot90", "rot180", "rot270"), "flipped": ("hflip", "vflip")}
TRANSFORM_KIND = {op: kind for kind, ops in TRANSFORMS.items() for op in ops}
OTHER_FILL = 0
"""What covers the regions that ``other`` candidates are cut from (black)."""
GAP = 4
"""Pixels between the parts of the composite layout."""
RING = 1 / 8
"""Width of the ring of true pixels the first hint shows, as a fraction of the side."""
HINTS = (
    "The outermost pixels of the true patch are now shown along the inside edge of the "
    "masked region.",
    "The candidates crossed out on the images are not the true patch.",
)
"""The texts of the hints; what they say about the instance is drawn on the images."""


@dataclass(frozen=True, kw_only=True)
class InpaintingConfig(PuzzleConfig):
    """Settings of the Inpainting family."""

    candidates: int = 4
    """Number of candidate patches K, 2 to 8 (one true, ``K - 1`` distractors)."""
    region: float = 0.25
    """Side of the masked square: a fraction of ``size`` (float, 0.05 to 0.45) or pixels (int)."""
    distractors: str = "other"
    """Comma-separated distractor kinds among ``other``, ``shifted``, ``rotated`` and
    ``flipped``, or the aliases ``near`` (the last three) and ``all``. One kind is drawn
    per instance for the crops besides the true one (among ``other`` and ``shifted``),
    each copy's transform among the allowed ones."""
    shift: tuple[float, float] = (0.25, 0.5)
    """Range of a shifted crop's offset as a fraction of the region's side."""
    layout: str = "images"
    """``images``: the masked picture, then one image per candidate; ``composite``: one."""
    fill: str = "gray"
    """What covers the region: ``gray`` (flat 128) or ``noise`` (one fixed pattern)."""
    min_std: float = 8.0
    """Reject draws with a candidate whose pixel standard deviation is below this."""
    min_patch_diff: float = 8.0
    """Reject draws with two candidates closer than this (mean absolute difference)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("candidates", self.candidates, 2, 8)
        if isinstance(self.region, int) and not isinstance(self.region, bool):
            check_int("region", self.region, 8, int(self.size * 0.45))
        else:
            check_float("region", self.region, 0.05, 0.45)
        if not self.kinds:
            raise ValueError(f"distractors={self.distractors!r} names no kind; use {KINDS}")
        for kind in self.kinds:
            check_choice("distractors", kind, (*KINDS, *ALIASES))
        self._check_capacity()
        if not isinstance(self.shift, tuple | list) or len(self.shift) != 2:
            raise ValueError(f"shift must be a (low, high) pair of fractions, got {self.shift!r}")
        check_float("shift[0]", self.shift[0], 0.05, 1.0)
        check_float("shift[1]", self.shift[1], self.shift[0], 1.0)
        object.__setattr__(self, "shift", (float(self.shift[0]), float(self.shift[1])))
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("fill", self.fill, FILLS)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_patch_diff", self.min_patch_diff, 0.0, 255.0)

    def _check_capacity(self) -> None:
        """Without other crops, copies of the true patch alone must fill the candidates."""
        if not self.group_sizes:
            raise ValueError(
                f"distractors={self.distractors!r} gives at most {len(self.copy_transforms)} "
                f"distinct wrong candidates, fewer than candidates - 1 = {self.candidates - 1}; "
                "add 'other' or 'shifted'"
            )

    @property
    def copy_transforms(self) -> tuple[str, ...]:
        """The transforms of the rotated and flipped distractors the mix allows."""
        return tuple(op for kind in self.kinds if kind in TRANSFORMS for op in TRANSFORMS[kind])

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Possible numbers of candidates per crop (the crop and its transformed copies).

        Divisors ``g`` of ``candidates`` with ``g - 1`` transforms available; ``g`` below
        ``candidates`` needs other or shifted crops.
        """
        k, copies = self.candidates, len(self.copy_transforms)
        crops = bool(set(self.kinds) - set(TRANSFORMS))
        return tuple(
            g for g in range(1, k + 1) if k % g == 0 and g - 1 <= copies and (crops or g == k)
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        """The distractor kinds, aliases expanded, in :data:`KINDS` order."""
        names = (n.strip() for n in str(self.distractors).split(","))
        named = {k for n in names if n for k in ALIASES.get(n, n).split(",")}
        unknown = sorted(named - set(KINDS))
        return (*[k for k in KINDS if k in named], *unknown)

    @property
    def side(self) -> int:
        """Side of the masked region and of every candidate patch, in pixels."""
        if isinstance(self.region, int) and not isinstance(self.region, bool):
            return self.region
        return max(8, round(self.region * self.size))


class Inpainting(ChoicePuzzle[InpaintingConfig]):
    """Pick the patch that fills the masked region of an image."""

    family = "Inpainting"
    version = 1
    config_cls = InpaintingConfig

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """The masked picture and the patches, or the one composite."""
        if self.config.layout == "composite":
            h, w, _ = self._canvas[0].shape
            return ((h, w, 3),)
        side, size = self.config.side, self.config.size
        return ((size, size, 3), *[(side, side, 3)] * self.config.candidates)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        shown, orientation = self._scene(rng, source)
        boxes, specs, kinds = self._specs(rng)
        crops = [_cut(shown, box, cfg.side) for box in boxes]
        if any(is_flat(c, cfg.min_std) for c in crops):  # copies share their crop's std
            raise Rejected("flat_patch")
        patches = [_transform(crops[b], op) for b, op in specs]
        if near_duplicates(patches, cfg.min_patch_diff):
            raise Rejected("near_duplicate_candidates")
        order = rng.permutation(cfg.candidates)
        answer = self.options[int(np.flatnonzero(order == 0)[0])]
        return self.make_instance(
            self._observation(self._masked(shown, boxes, kinds), [patches[i] for i in order]),
            self._question(),
            answer,
            answer,
            choices=self.options,
            kinds=[kinds[i] for i in order],
            transforms=[specs[i][1] for i in order],
            boxes=[list(boxes[specs[i][0]]) for i in order],
            region=[*boxes[0], cfg.side],
            group_size=cfg.candidates // len(boxes),
            orientation=orientation,
        )

    def _scene(self, rng: np.random.Generator, source: ImageSource) -> tuple[np.ndarray, str]:
        """The shown picture, turned or flipped by a random element of the dihedral group.

        Every part (the masked picture, each candidate) is cut from the oriented picture
        (:data:`ssl_gym.render.DIHEDRAL`), so a rotated or mirrored copy of a patch, alone,
        is distributed like an unturned patch (no candidate alone looks upside down).
        """
        scene = source.sample(rng, (self.config.size, self.config.size))
        orientation = DIHEDRAL[int(rng.integers(len(DIHEDRAL)))]
        return np.ascontiguousarray(orient(scene, orientation)), orientation

    def parts(self, instance: Instance) -> Parts:
        """The candidate patches in option order, the right one labelled ``1``; the picture."""
        cfg = self.config
        if cfg.layout == "images":
            masked, *patches = instance.images
        else:
            (y, x), *slots = self._canvas[1]
            masked = instance.images[0][y : y + cfg.size, x : x + cfg.size]
            patches = cut_slots(instance.images[0], slots, cfg.side)
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        return Parts("choice", tuple(patches), labels, reference=masked)

    def _specs(
        self, rng: np.random.Generator
    ) -> tuple[list[tuple[int, int]], list[tuple[int, str]], list[str]]:
        """Crop boxes ``(top, left)`` in the picture, ``(box, transform)`` and kind per candidate.

        Candidate 0 is the true patch. Every crop gets as many copies (so statistics that
        copies share with their crop single none out); the crops besides the true one are
        of one kind, all boxes are drawn as one set and the true box is a uniform member.
        """
        cfg = self.config
        size = cfg.group_sizes[int(rng.integers(len(cfg.group_sizes)))]
        n = cfg.candidates // size - 1  # crops besides the true one
        crop_kinds = [k for k in cfg.kinds if k not in TRANSFORMS]
        kind = crop_kinds[int(rng.integers(len(crop_kinds)))] if n else "true"
        boxes = self._shift_chain(rng, n) if kind == "shifted" else self._scatter(rng, n + 1)
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

    def _scatter(self, rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
        """``n`` boxes drawn one by one, uniformly in the picture, none overlapping another."""
        room, side = self.config.size - self.config.side + 1, self.config.side
        boxes: list[tuple[int, int]] = []
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

    def _shift_chain(self, rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
        """``n + 1`` boxes forming a chain, each box a shift of its neighbour.

        A walk of ``n`` steps whose boxes stay :meth:`_apart`, placed uniformly where all
        of it fits; the true box is a uniform link (not the hub the others spread from).
        """
        cfg, walk = self.config, [(0, 0)]
        for _ in range(n):
            walk.append(self._step(rng, walk))
        ys, xs = (np.array(v) for v in zip(*walk, strict=True))
        room = cfg.size - cfg.side - np.array([np.ptp(ys), np.ptp(xs)])
        if (room < 0).any():
            raise Rejected("shift_out_of_bounds")
        top = int(rng.integers(room[0] + 1)) - int(ys.min())
        left = int(rng.integers(room[1] + 1)) - int(xs.min())
        return [(top + int(y), left + int(x)) for y, x in walk]

    def _step(self, rng: np.random.Generator, walk: list[tuple[int, int]]) -> tuple[int, int]:
        """The walk's last box moved by a random shift, clear of the walk's other boxes."""
        cfg = self.config
        for _ in range(8):
            angle = rng.uniform(0.0, 2.0 * math.pi)
            dist = rng.uniform(*cfg.shift) * cfg.side
            dy, dx = round(dist * math.sin(angle)), round(dist * math.cos(angle))
            box = (walk[-1][0] + dy, walk[-1][1] + (dx if dy or dx else 1))
            if self._apart(box, walk[:-1]):
                return box
        raise Rejected("shift_folds_back")

    def _apart(self, box: tuple[int, int], others: list[tuple[int, int]]) -> bool:
        """Whether ``box`` is at least the smallest shift away from each of ``others``."""
        least = self.config.shift[0] * self.config.side - 1.0
        return all(math.hypot(box[0] - y, box[1] - x) >= least for y, x in others)

    def _masked(
        self, shown: np.ndarray, boxes: list[tuple[int, int]], kinds: list[str]
    ) -> np.ndarray:
        """The shown picture with the true region covered, and the other regions blacked out.

        Covering every crop that is not a near miss keeps the masked picture's statistics
        exchangeable between the candidates (none of their pixels is left in it).
        """
        side, masked = self.config.side, shown.copy()
        covered = boxes if "other" in kinds else boxes[:1]
        for i, (top, left) in enumerate(covered):
            masked[top : top + side, left : left + side] = self._fill if i == 0 else OTHER_FILL
        return masked

    @cached_property
    def _fill(self) -> np.ndarray:
        """What covers the region; the same for every instance."""
        side = self.config.side
        if self.config.fill == "noise":
            return np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        return np.full((side, side, 3), 128, dtype=np.uint8)

    def _question(self) -> str:
        cfg, options = self.config, self.options
        shown = SHOWN[cfg.layout].format(
            fill=FILL_WORDS[cfg.fill],
            k=cfg.candidates,
            first=options[0],
            last=options[-1],
            last_image=cfg.candidates + 1,
        )
        shown += BLACKED if "other" in cfg.kinds else ""
        return self.style(QUESTIONS, shown=shown, options=", ".join(options))

    def _observation(self, masked: np.ndarray, patches: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Separate images, or everything pasted into the composite."""
        if self.config.layout == "images":
            return (masked, *patches)
        canvas, positions = self._canvas
        canvas = canvas.copy()
        for (y, x), im in zip(positions, (masked, *patches), strict=True):
            canvas[y : y + im.shape[0], x : x + im.shape[1]] = im
        return (canvas,)

    @cached_property
    def _canvas(self) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The blank composite (labels drawn) and the top-left corner of each part."""
        size, side, k = self.config.size, self.config.side, self.config.candidates
        cols = k if k <= 4 else -(-k // 2)
        label_h = max(16, side // 3)
        blank = [np.zeros((side, side, 3), np.uint8)] * k
        block = grid(blank, cols, self.options, GAP, label_h)
        width = max(size + 2 * GAP, block.shape[1])
        canvas = np.full((GAP + size + block.shape[0], width, 3), 255, dtype=np.uint8)
        bx = (width - block.shape[1]) // 2
        canvas[GAP + size :, bx : bx + block.shape[1]] = block
        slots = grid_slots(k, cols, side, side, GAP, label_h)
        positions = [(GAP, (width - size) // 2), *((GAP + size + y, bx + x) for y, x in slots)]
        return canvas, positions

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Level 0 shows the true patch's outermost pixels in the hole; then cross-outs.

        Level 0 paints a ring (:data:`RING` of the side) of the true content just inside
        the masked region's edge: it helps only a player that compares each candidate's
        edge with it. Later levels cross out one more wrong candidate each (never the
        last). Texts are the same for every instance.
        """
        if level < 0:
            return None
        parts = self._part_boxes()
        true = self.parts(instance).parts[self.options.index(instance.answer)]
        index, (x0, y0, _, _) = parts[0]
        top, left, side = (int(v) for v in instance.metadata["region"])
        ring = max(2, round(RING * side))
        y, x = int(y0) + top, int(x0) + left
        images = [im.copy() for im in instance.images]
        hole = images[index][y : y + side, x : x + side]
        inner = hole[ring:-ring, ring:-ring].copy()
        hole[:] = true
        hole[ring:-ring, ring:-ring] = inner
        if level == 0:
            return Hint(HINTS[0], tuple(images))
        return cross_out(instance, level - 1, parts[1:], HINTS[1], images)

    def _part_boxes(self) -> list[tuple[int, Region]]:
        """Where the masked picture and each candidate are drawn: image and box."""
        size, side = self.config.size, self.config.side
        boxes: list[tuple[int, Region]]
        if self.config.layout == "images":
            patch = (0.0, 0.0, side - 1.0, side - 1.0)
            boxes = [(0, (0.0, 0.0, size - 1.0, size - 1.0))]
            return boxes + [(j + 1, patch) for j in range(self.config.candidates)]
        (y, x), *slots = self._canvas[1]
        boxes = [(0, (float(x), float(y), x + size - 1.0, y + size - 1.0))]
        return boxes + [(0, (sx, sy, sx + side - 1.0, sy + side - 1.0)) for sy, sx in slots]


def _cut(scene: np.ndarray, box: tuple[int, int], side: int) -> np.ndarray:
    return scene[box[0] : box[0] + side, box[1] : box[1] + side]


def _transform(patch: np.ndarray, op: str) -> np.ndarray:
    """``patch`` rotated counter-clockwise (``rot90`` ...), mirrored or unchanged."""
    if op.startswith("rot"):
        patch = np.rot90(patch, int(op[3:]) // 90)
    elif op == "hflip":
        patch = patch[:, ::-1]
    elif op == "vflip":
        patch = patch[::-1]
    return np.ascontiguousarray(patch)


PRESETS: dict[str, Preset] = {
    "K2": preset("easy", "2 candidates, the wrong one from elsewhere", candidates=2),
    "K4": preset("medium", "4 candidates from elsewhere in the scene", candidates=4),
    "K4-Mixed": preset(
        "medium", "4 candidates, all kinds of distractors", candidates=4, distractors="all"
    ),
    "K4-Hard": preset(
        "hard", "4 candidates: rotated, flipped and shifted", candidates=4, distractors="near"
    ),
    "K6-Hard": preset(
        "hard", "6 candidates: rotated, flipped and shifted", candidates=6, distractors="near"
    ),
}
Inpainting.presets = PRESETS
