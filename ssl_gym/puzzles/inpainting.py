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

* -Hint v2 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
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
    check_choice,
    check_float,
    check_int,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._hints import Region, cross_out
from ssl_gym.puzzles._inpainting_candidates import (
    ALIASES,
    KINDS,
    TRANSFORMS,
    candidate_patches,
    draw_scene,
    draw_specs,
    masked_picture,
)
from ssl_gym.render import Composite

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
    hint_version = 2  # retries priced for the 200-episode blind check
    config_cls = InpaintingConfig

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """The masked picture and the patches, or the one composite."""
        if self.config.layout == "composite":
            return (self._composite.shape,)
        side, size = self.config.side, self.config.size
        return ((size, size, 3), *[(side, side, 3)] * self.config.candidates)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        shown, orientation, key = draw_scene(cfg, rng, source)
        boxes, specs, kinds = draw_specs(cfg, rng)
        patches = candidate_patches(cfg, shown, boxes, specs)
        order = rng.permutation(cfg.candidates)
        answer = self.options[int(np.flatnonzero(order == 0)[0])]
        return self.make_instance(
            self._observation(
                masked_picture(shown, boxes, kinds, self._fill), [patches[i] for i in order]
            ),
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
            source_keys=[key],
        )

    def parts(self, instance: Instance) -> Parts:
        """The candidate patches in option order, the right one labelled ``1``; the picture."""
        if self.config.layout == "images":
            masked, *patches = instance.images
        else:
            masked, *patches = self._composite.cut(instance.images[0])
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        return Parts("choice", tuple(patches), labels, reference=masked)

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
        return (self._composite.paste([masked, *patches]),)

    @cached_property
    def _composite(self) -> Composite:
        """The masked picture on top and the labelled candidates below it, both centred."""
        size, side, k = self.config.size, self.config.side, self.config.candidates
        cols = k if k <= 4 else -(-k // 2)
        block = Composite.grid(k, cols, (side, side), self.options, GAP, max(16, side // 3))
        picture = Composite.grid(1, 1, (size, size), gap=0)
        height, width = GAP + size + block.shape[0], max(size + 2 * GAP, block.shape[1])
        return Composite.place(
            [
                (picture, (GAP, (width - size) // 2)),
                (block, (GAP + size, (width - block.shape[1]) // 2)),
            ],
            (height, width),
        )

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
        return [
            (0, (float(x), float(y), x + w - 1.0, y + h - 1.0))
            for y, x, h, w in self._composite.boxes
        ]


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
