"""Correspondence: which labelled point in the second view is the marked point of the first?

## Description

Two views of one source image related by a known geometric transform (SSL-R1's
"geometric correspondence"). View A (Image 1) is an upright crop of the source with a red
ring marking one point; view B (Image 2) is another crop of the same source, zoomed in or
out, shifted and, depending on ``transform``, rotated, mirrored left to right or warped in
perspective. ``candidates`` yellow rings in view B carry large letters; exactly one of
them is the image of the marked point under the transform.

Both views are rendered from the source through the same bilinear resampling (view A
through an affine map with its own random scale), and the transforms are kept as 3 x 3
homogeneous matrices (view pixel -> source pixel), so the true point is mapped exactly.
The marked point is a uniform textured pixel of view A. Each candidate is that point sent
through its own view B, ``candidates`` of them drawn independently from one distribution
and kept in turn when the point lands inside view B and ``min_distance`` pixels from the
points kept so far; only then is one of them picked uniformly to render view B. So the
candidates' coordinates, and their offsets from the marked point, say nothing about the
answer: only the true one lands on the marked content. Draws where some candidate's
window in view B is flat or near-identical to another's, where too few views fit, or
where labels cannot be placed without overlapping, are rejected and redrawn.

The metadata holds the transform (``zoom``, ``rotation`` counter-clockwise in degrees,
``flip``, ``perspective``), the 3 x 3 maps ``a_to_b``, ``a_to_source`` and
``b_to_source``, the marked point ``point_a``, the true point ``point_b``, every candidate
in letter order and the letters' boxes, all in pixel coordinates (x to the right, y down,
pixel centres at integers).

## Observation

``layout="images"``: two ``size x size`` images, view A then view B. ``layout="composite"``:
one image with both views side by side on white, labelled "Image 1" and "Image 2" above.

## Answer format

The letter of the candidate, e.g. ``<answer>C</answer>``. ``C``, ``(C)``, ``Point C`` and a
lone ``c`` read as C; text naming two different letters does not parse.

## Reward

1 for the right letter, else 0.

## Difficulty

The number of candidates, the transform (``crop``: shift and zoom; ``affine``: also
rotation and mirroring; ``perspective``: also a projective warp), the largest rotation,
the zoom range, the largest shift and the spacing of the candidates. The candidates
spread as far as the transforms vary: with a mild crop they crowd around where the
marked point would land, with any rotation they ring the middle of view B. Hints
(``-Hint`` ids): each level crosses out one more wrong candidate point in view B (never
the last); the text is the same for every instance.

## Registered Configurations

* ``SSL/Correspondence-Crop-K4-v1``: shift and mild zoom, 4 candidates (easy).
* ``SSL/Correspondence-Affine-K4-v1``: rotation up to 45 degrees, zoom, mirroring, 4
  candidates (medium).
* ``SSL/Correspondence-Affine-K4-Composite-v1``: as Affine-K4, both views in one image
  (medium).
* ``SSL/Correspondence-Affine-K6-v1``: any rotation, zoom, mirroring, 6 candidates (hard).
* ``SSL/Correspondence-Perspective-K6-v1``: rotation up to 45 degrees, zoom, mirroring
  and a perspective warp, 6 candidates (hard).

## Version History

* -Hint v2 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
* v0: initial release.
* v1: candidates are the marked point mapped through independently drawn views B, one of
  which renders view B. In v0 the distractors were uniform points of view B while the true
  one sat near the marked point's own position (a small shift and zoom away), so the
  candidate nearest the marked point's coordinates won about 80% of Crop-K4 and 52% of
  Affine-K4 without looking. Distractors may now show content outside view A; hints cross
  out points on view B instead of describing the transform and naming points in text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

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
    check_layout,
    preset,
)
from ssl_gym.geometry import Box, view_metadata, warp
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._correspondence_layout import draw_layout, draw_source, font_size
from ssl_gym.puzzles._hints import cross_out
from ssl_gym.render import (
    LAYOUTS,
    Colour,
    Composite,
    letter_sprite,
    paste_centred,
    ring_sprite,
    window,
)

QUESTIONS = {
    "ssl4rl": (
        "{lead}Image 1 and Image 2 are two views of the same image: Image 2 may have been "
        "{ops} relative to Image 1. A red circle marks a point in Image 1. Image 2 has {k} "
        "yellow circles labelled {options}. Which labelled circle in Image 2 marks the same "
        "point of the scene as the red circle in Image 1? Answer with its letter."
    ),
    "ssl_r1": (
        "{lead}Image 1 and Image 2 show the same scene from different viewpoints ({ops}). "
        "Which labelled point in Image 2 ({options}) corresponds to the red marked point in "
        "Image 1? Answer with the letter."
    ),
    "plain": "{lead}Which labelled point in Image 2 ({options}) is the red point of Image 1?",
}
LEADS = {
    "images": "",
    "composite": "The picture shows Image 1 (left) and Image 2 (right) side by side. ",
}
OPERATIONS = {
    "crop": ("cropped", "scaled"),
    "affine": ("cropped", "scaled", "rotated"),
    "perspective": ("cropped", "scaled", "rotated", "seen at an angle"),
}
TRANSFORMS = ("crop", "affine", "perspective")
MARK: tuple[Colour, Colour] = ((230, 20, 20), (255, 255, 255))
"""Ring and outline colours of the marked point in view A."""
CANDIDATE: tuple[Colour, Colour] = ((255, 215, 0), (0, 0, 0))
"""Ring and outline colours of the candidates in view B (and of their letters)."""
GAP = 4
"""Pixels between and around the views in the composite layout."""
HINT = "The candidate points crossed out in view B are not the answer."
"""The text of every hint; which points are crossed out is drawn on view B."""


@dataclass(frozen=True, kw_only=True)
class CorrespondenceConfig(PuzzleConfig):
    """Settings of the Correspondence family; ``size`` is the side of each view."""

    candidates: int = 4
    """Number of labelled points in view B (2 to 8); exactly one is the answer."""
    transform: str = "affine"
    """``crop`` (shift and zoom), ``affine`` (also rotation, mirroring) or ``perspective``."""
    max_rotation: float = 45.0
    """Largest rotation of view B in degrees, either way (``affine``, ``perspective``)."""
    flip: bool = True
    """Mirror view B left to right half of the time (``affine``, ``perspective``)."""
    scale_range: tuple[float, float] = (0.8, 1.25)
    """Range of view B's zoom relative to view A (above 1: zoomed in), log-uniform."""
    perspective: float = 0.12
    """Largest shift of each corner of view B, as a fraction of its side (``perspective``)."""
    max_shift: float = 0.25
    """Largest offset of view B's centre from view A's, per axis, as a fraction of view A."""
    min_distance: int | None = None
    """Least distance in pixels between two candidates; ``None`` for ``size // 7``."""
    marker_radius: int | None = None
    """Radius in pixels of the rings; ``None`` for ``size / 24`` (at least 4)."""
    min_std: float = 10.0
    """Least standard deviation of the luma (averaged over 2 x 2 blocks) in the window of
    about ``size / 10`` pixels around a point, in both views; flatter points are never
    candidates (nor marked)."""
    min_patch_diff: float = 8.0
    """Reject draws where two candidates' windows in view B differ by less (mean abs.)."""
    layout: str = "images"
    """``images``: view A then view B; ``composite``: both side by side in one image."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("size", self.size, 64, 1024)
        check_int("candidates", self.candidates, 2, 8)
        check_choice("transform", self.transform, TRANSFORMS)
        check_float("max_rotation", self.max_rotation, 0.0, 180.0)
        check_choice("flip", self.flip, (True, False))
        self._check_scale_range()
        check_float("perspective", self.perspective, 0.0, 0.2)
        check_float("max_shift", self.max_shift, 0.0, 0.5)
        check_int("marker_radius", self.ring_radius, 3, self.size // 8)
        check_int("min_distance", self.spacing, 2 * self.ring_radius + 4, self.size // 2)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_patch_diff", self.min_patch_diff, 0.0, 255.0)
        check_layout(self, LAYOUTS)

    def _check_scale_range(self) -> None:
        pair = self.scale_range
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"scale_range must be a pair (low, high), got {pair!r}")
        for value in pair:
            check_float("scale_range", value, 0.5, 2.0)
        if pair[0] > pair[1]:
            raise ValueError(f"scale_range must satisfy low <= high, got {pair!r}")
        object.__setattr__(self, "scale_range", (float(pair[0]), float(pair[1])))

    @property
    def ring_radius(self) -> int:
        """Radius of the rings in pixels."""
        return self.marker_radius if self.marker_radius is not None else max(4, self.size // 24)

    @property
    def spacing(self) -> int:
        """Least distance between two candidates in pixels."""
        return self.min_distance if self.min_distance is not None else self.size // 7

    @property
    def window(self) -> int:
        """Half-side in pixels of the window around a point whose texture is measured."""
        return max(4, self.size // 20)


class Correspondence(ChoicePuzzle[CorrespondenceConfig]):
    """Find the point in a transformed view that corresponds to a marked point."""

    family = "Correspondence"
    version = 1
    hint_version = 2  # retries priced for the 200-episode blind check
    config_cls = CorrespondenceConfig

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Two square views, or the one composite."""
        side = self.config.size
        if self.config.layout == "composite":
            return (self._composite.shape,)
        return ((side, side, 3),) * 2

    @cached_property
    def _composite(self) -> Composite:
        """The two views side by side, labelled "Image 1" and "Image 2" above."""
        n = self.config.size
        return Composite.grid(2, 2, (n, n), ("Image 1", "Image 2"), GAP, self._label_height)

    @property
    def _label_height(self) -> int:
        return max(14, self.config.size // 10)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        image, a_map, key = draw_source(rng, cfg, source)
        view_a = warp(image, a_map, cfg.size)
        lay = draw_layout(rng, cfg, self.options, image, a_map, view_a)
        view_a = self._draw_mark(view_a, lay.marked)
        view_b = self._draw_candidates(lay.view_b, lay.points, lay.boxes)
        answer = self.options[lay.truth]
        return self.make_instance(
            self._observation(view_a, view_b),
            self._question(),
            answer,
            answer,
            choices=self.options,
            **view_metadata(lay.geometry, lay.marked, lay.points, lay.truth, image.shape[0]),
            label_boxes=np.round(np.array(lay.boxes) - 0.5, 2).tolist(),
            source_keys=[key],
        )

    def parts(self, instance: Instance) -> Parts:
        """A window of view B around each candidate, the right one labelled ``1``.

        ``points`` are the candidates' pixel coordinates and ``anchor`` the marked point's.
        No reference: the window around the marked point is what the puzzle asks to
        match, so a probe given it would be doing the task, not taking a shortcut.
        """
        n, meta = self.config.size, instance.metadata
        if self.config.layout == "images":
            view_b = instance.images[1]
        else:
            view_b = self._composite.cut(instance.images[0])[1]
        points = tuple(tuple(float(v) for v in p) for p in meta["candidates"])
        windows = tuple(window(view_b, p, max(16, n // 6)) for p in points)
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        anchor = tuple(float(v) for v in meta["point_a"])
        return Parts("choice", windows, labels, points=points, anchor=anchor)

    # -- drawing --

    def _draw_candidates(
        self, view: np.ndarray, points: np.ndarray, boxes: list[Box]
    ) -> np.ndarray:
        """View B with every candidate's ring and letter."""
        pil = Image.fromarray(view)
        ring = ring_sprite(self.config.ring_radius, CANDIDATE)
        for point in points:
            paste_centred(pil, ring, point)
        for (x, y, _, _), letter in zip(boxes, self.options, strict=True):
            sprite = letter_sprite(letter, font_size(self.config), CANDIDATE)
            pil.paste(sprite, (int(x), int(y)), sprite)
        return np.asarray(pil)

    def _draw_mark(self, view: np.ndarray, point: np.ndarray) -> np.ndarray:
        """View A with the red ring on the marked point."""
        pil = Image.fromarray(view)
        paste_centred(pil, ring_sprite(self.config.ring_radius, MARK), point)
        return np.asarray(pil)

    def _observation(self, view_a: np.ndarray, view_b: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.config.layout == "images":
            return view_a, view_b
        return (self._composite.paste([view_a, view_b]),)

    # -- text, parsing, scoring, hints --

    def _question(self) -> str:
        cfg = self.config
        ops = OPERATIONS[cfg.transform]
        if cfg.flip and cfg.transform != "crop":
            ops = (*ops[:3], "mirrored", *ops[3:])
        return self.style(
            QUESTIONS,
            lead=LEADS[cfg.layout],
            ops=_either(ops),
            k=cfg.candidates,
            options=_either(self.options),
        )

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Each level crosses out one more wrong candidate point in view B (never the last).

        The text is the same for every instance; which points are crossed out is drawn.
        """
        r = max(6.0, self.config.size / 16)
        images = self.config.layout == "images"
        index, (dy, dx) = (1, (0, 0)) if images else (0, self._composite.corners[1])
        boxes = [
            (index, (x + dx - r, y + dy - r, x + dx + r, y + dy + r))
            for x, y in (tuple(float(v) for v in p) for p in instance.metadata["candidates"])
        ]
        return cross_out(instance, level, boxes, HINT)


# --- text ------------------------------------------------------------------


def _either(words: tuple[str, ...]) -> str:
    """``a, b, c or d``."""
    return ", ".join(words[:-1]) + f" or {words[-1]}"


PRESETS: dict[str, Preset] = {
    "Crop-K4": preset(
        "easy",
        "shift and mild zoom, 4 candidates",
        transform="crop",
        candidates=4,
        scale_range=(0.8, 1.25),
    ),
    "Affine-K4": preset(
        "medium",
        "rotation up to 45 degrees, zoom, mirroring, 4 candidates",
        transform="affine",
        candidates=4,
        max_rotation=45.0,
        flip=True,
    ),
    "Affine-K4-Composite": preset(
        "medium",
        "as Affine-K4, both views in one image",
        transform="affine",
        candidates=4,
        max_rotation=45.0,
        flip=True,
        layout="composite",
    ),
    "Affine-K6": preset(
        "hard",
        "any rotation, zoom, mirroring, 6 candidates",
        transform="affine",
        candidates=6,
        max_rotation=180.0,
        flip=True,
        scale_range=(0.75, 1.33),
    ),
    "Perspective-K6": preset(
        "hard",
        "rotation up to 45 degrees, zoom, mirroring, perspective warp, 6 candidates",
        transform="perspective",
        candidates=6,
        max_rotation=45.0,
        flip=True,
        perspective=0.12,
    ),
}
Correspondence.presets = PRESETS
