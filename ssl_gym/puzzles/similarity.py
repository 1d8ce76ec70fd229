"""Similarity: which candidate view shows the same scene as the reference view?

## Description

A reference (anchor) view of a source image and ``K`` candidate views, exactly one of which
comes from the same source image; the others are views of other images (SSL-R1's "visual
similarity" task). Every view, the reference included, goes through the same augmentation
pipeline (:mod:`ssl_gym.augment`: random resized crop, flip and photometric changes,
``weak`` or ``strong``). The ``K`` source images are drawn first and the reference's is
picked among them at random, so the true candidate's source is distributed exactly like
the others'. The ``K`` sources have pairwise different source-picture keys
(``ImageSource.draw``), so exactly one candidate shares the reference's picture. If any
of the ``K`` pictures is grayscale, all are turned gray (:func:`ssl_gym.augment.gray_alike`),
so a colour candidate beside a gray reference tells nothing. After the augmentation every
view gets its own random tone curve per channel (:func:`ssl_gym.augment.random_levels`:
means, spreads and histogram shapes drawn afresh) and random sharpness, grain and tone
(:func:`ssl_gym.augment.texture`), so that a view's statistics do not name its picture;
only what it shows does. Every view is then turned or flipped by one of the eight
symmetries of the square (``turns``): among nine photographs the balance of horizontal and
vertical edges alone named a view's picture. With ``distractor_pool`` above 1 each wrong
candidate is the one of that many views whose colour-statistics gap to the reference is
nearest the right candidate's (off by default: with the random levels the selection
itself became a cue).
With ``hard_negatives`` the
``K`` sources look alike: ``pool`` images are drawn (as small thumbnails), and one of them,
picked at random, and its ``K - 1`` nearest in coarse colour histogram are used, so that
the colour palette alone does not tell the match (and the true source is no more and no
less typical than the wrong ones).

## Observation

``layout="images"``: ``K + 1`` square images of ``view_size`` pixels, the reference first,
then candidates A, B, ... in order. ``layout="composite"``: one image with the reference
on the left (labelled ``Reference``) and the candidates in a grid on the right, each with
its letter in large print above it. All candidates share one size and one pipeline; every
crop window (the wrong candidates' too) overlaps the reference's crop window by at least
``min_overlap`` of the smaller window, so the true view always shares content with the
reference while the windows' placement tells nothing. Draws with a near-uniform source
image or two near-identical source images are rejected before the answer is drawn; a
near-uniform view is augmented again.

## Answer format

The candidate's letter, e.g. ``<answer>B</answer>``; ``(B)``, ``Option B`` and a lone
``b`` read the same. Text naming two different letters does not parse.

## Reward

1 for the right letter, else 0.

## Difficulty

``candidates`` (2 to 8), ``strength`` (a name in ``ssl_gym.augment.STRENGTHS``: every
preset uses ``simclr``, SimCLR's crops and full colour distortion; mild crops,
``weak_crop``, let a view's sharpness name its photograph on K2), ``distractor_pool``
and ``hard_negatives`` (candidates of similar colours). Hints (``-Hint`` ids): level 0
outlines on the reference the part the matching candidate shows too (every candidate's
window overlaps the reference's alike, so where it lies names no candidate); each later
level crosses out one more wrong candidate (never the last). The texts are the same for
every instance.

## Registered Configurations

* ``SSL/Similarity-K2-v2``: 2 candidates, SimCLR's augmentation (easy).
* ``SSL/Similarity-K4-v2``: 4 candidates, SimCLR's augmentation (medium).
* ``SSL/Similarity-K4-Composite-v2``: the same in one labelled picture (medium).
* ``SSL/Similarity-K4-Hard-v2``: 4 candidates of similar colours, SimCLR's augmentation (hard).
* ``SSL/Similarity-K8-Hard-v2``: 8 candidates of similar colours, SimCLR's augmentation (hard).

## Version History

* v0: initial release.
* v1: one source picture per key (``ImageSource.draw``), so exactly one candidate is
  right (v0 could cut two candidates from one photograph); SimCLR's full colour distortion
  (jitter 0.8/0.8/0.8/0.2) on every view; wrong candidates matched to the right one in
  colour-statistics gap to the reference (``distractor_pool``; v0's histogram distance
  alone scored 0.48 on K4); the aligned pixel-difference test of "same picture" is gone
  (``min_pair_diff`` now only rejects look-alike pictures); ``compares_sources``;
  grayscale pictures alike (4 of the 9 ``photos`` are gray, so a colour candidate beside a
  gray reference was always wrong); per-view random levels and texture (``texture``),
  ``distractor_pool`` 1 (on ``photos``, statistics and their gaps to the reference scored
  0.56 on K4, chance 0.25; 0.23 after); hints drawn on the images (the shared region, then
  cross-outs) instead of the mirroring and eliminations in text.
* v2: every view turned or flipped by one of the eight symmetries of the square
  (``turns``): among the nine ``photos`` the balance of horizontal and vertical edges
  named a view's photograph, and statistics with their gaps to the reference scored 0.59
  on K2 (chance 0.5; 0.47 with the turns, n=2000); K2 takes SimCLR's crops (20-100 % of
  the area) instead of mild ones, since with mild crops each view's sharpness told the
  match among the nine photos (frame probe 0.563 with the turns, 0.517 with both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ssl_gym.augment import (
    REFERENCE_SIZE,
    STRENGTHS,
    STRONG_TEXTURE,
    crop_resize,
    gray_alike,
    hflip,
    photometric,
    random_levels,
    sample_crop_box,
    texture,
)
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
from ssl_gym.puzzles._matching import (
    draw_distinct,
    matched_index,
    similar_group,
    view_statistics,
)
from ssl_gym.render import (
    cut_slots,
    grid,
    grid_slots,
    is_flat,
    mark_box,
    near_duplicates,
    orient_box,
    random_orientation,
    recorded_turn,
)

QUESTIONS = {
    "ssl4rl": (
        "{shown} The candidates are views produced by random augmentations (cropping, "
        "flipping, colour changes, blurring). Exactly one candidate comes from the same "
        "original image as the reference; the others come from different images. Which "
        "candidate comes from the same image as the reference? Answer with its letter "
        "({options})."
    ),
    "ssl_r1": (
        "{shown} Which of the candidate images ({options}) shows the same scene as the "
        "reference, possibly cropped, recoloured or flipped? Answer with the letter."
    ),
    "plain": "{shown} Which candidate ({options}) is a view of the same image as the reference?",
}
SHOWN = {
    "images": "The first image is the reference. The next {k} images are candidates {span}, "
    "in that order.",
    "composite": "The image shows the reference on the left and {k} candidates on the right, "
    "labelled {span}.",
}
LAYOUTS = ("images", "composite")
GAP = 4
"""Pixels between views in the composite layout."""
SEPARATOR = 12
"""Pixels between the reference and the candidates in the composite layout."""

Window = tuple[int, int, int, int]
"""A crop window ``(top, left, height, width)`` in integer pixels of the source picture."""
HINTS = (
    "The box drawn on the reference outlines what the matching candidate shows too.",
    "The candidates crossed out on the images do not match the reference.",
)
"""The texts of the hints; what they say about the instance is drawn on the images."""


@dataclass(frozen=True, kw_only=True)
class SimilarityConfig(PuzzleConfig):
    """Settings of the Similarity family (``size`` is the side of the source images)."""

    candidates: int = 4
    """Number of candidate views ``K``, 2 to 8; exactly one matches the reference."""
    strength: str = "simclr"
    """Augmentation of every view, a name in :data:`ssl_gym.augment.STRENGTHS`."""
    hard_negatives: bool = False
    """Take the ``K`` source images from a group of similar colours (of ``pool`` drawn)."""
    pool: int = 16
    """Images drawn to pick the similar-coloured group from (at least ``candidates``)."""
    layout: str = "images"
    """``images``: reference then candidates as separate images; ``composite``: one picture."""
    view_size: int = 112
    """Side in pixels of every view."""
    min_overlap: float = 0.25
    """Every crop window overlaps the reference's by this fraction of the smaller window."""
    min_std: float = 10.0
    """Reject near-uniform source images and views (pixel standard deviation below this)."""
    distractor_pool: int = 1
    """Views each wrong candidate is picked from, matched to the right one in colour
    statistics (:func:`ssl_gym.puzzles._matching.matched_index`); 1: no matching."""
    min_pair_diff: float = 20.0
    """Reject draws with two source images this close (mean absolute pixel difference):
    different pictures that look the same would make the answer ambiguous."""
    view_retries: int = 3
    """Augmentations tried per view before a near-uniform view rejects the draw."""
    texture: bool = True
    """Give every view its own random tone curves, sharpness and grain
    (:func:`ssl_gym.augment.random_levels`, :func:`ssl_gym.augment.texture`), so levels
    and texture statistics do not name its picture."""
    turns: bool = True
    """Turn or flip every view by one of the eight symmetries of the square, so that the
    balance of horizontal and vertical edges (a photograph's build) does not name its
    picture."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("candidates", self.candidates, 2, 8)
        check_choice("strength", self.strength, tuple(STRENGTHS))
        check_choice("hard_negatives", self.hard_negatives, (True, False))
        check_int("pool", self.pool, self.candidates, 256)
        check_choice("layout", self.layout, LAYOUTS)
        check_int("view_size", self.view_size, 16, 1024)
        check_float("min_overlap", self.min_overlap, 0.0, 0.9)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_int("distractor_pool", self.distractor_pool, 1, 32)
        check_float("min_pair_diff", self.min_pair_diff, 0.0, 255.0)
        check_int("view_retries", self.view_retries, 1, 100)
        check_choice("texture", self.texture, (True, False))


class Similarity(ChoicePuzzle[SimilarityConfig]):
    """Find the candidate view that shares the reference view's source image."""

    family = "Similarity"
    version = 2
    config_cls = SimilarityConfig
    compares_sources = True

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``K + 1`` square views, or the one composite."""
        if self.config.layout == "composite":
            h, w, _ = self._blank_composite.shape
            return ((h, w, 3),)
        side = self.config.view_size
        return ((side, side, 3),) * (self.config.candidates + 1)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        sources, keys = self._sources(rng, source)
        _check_sources(sources, cfg)
        sources = gray_alike(sources)
        index = int(rng.integers(cfg.candidates))
        ref_view, ref_box, ref_ops = self._view(rng, sources[index], None)
        true = self._view(rng, sources[index], ref_box)
        targets = (view_statistics(ref_view), view_statistics(true[0]))
        views, boxes, ops = [ref_view], [ref_box], [ref_ops]
        for slot in range(cfg.candidates):
            view, box, applied = (
                true if slot == index else self._distractor(rng, sources[slot], ref_box, targets)
            )
            views.append(view)
            boxes.append(box)
            ops.append(applied)
        return self._instance(views, index, ops, boxes, [keys[index], *keys])

    def _distractor(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        ref_box: Window,
        targets: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, Window, list[str]]:
        """A view of ``image`` whose colour statistics tell it from the right candidate's.

        Of ``distractor_pool`` views, the one whose statistical gap to the reference
        (``targets[0]``) is nearest the right candidate's (``targets[1]``).
        """
        pool = [self._view(rng, image, ref_box) for _ in range(self.config.distractor_pool)]
        pick = matched_index(*targets, [view_statistics(view) for view, _, _ in pool])
        return pool[pick]

    def _instance(
        self,
        views: list[np.ndarray],
        index: int,
        ops: list[list[str]],
        boxes: list[Window],
        keys: list[str],
    ) -> Instance:
        options = self.options
        span = f"{options[0]} to {options[-1]}" if len(options) > 2 else " and ".join(options)
        shown = SHOWN[self.config.layout].format(k=self.config.candidates, span=span)
        question = self.style(QUESTIONS, shown=shown, options=", ".join(options))
        mirrored = ("hflip" in ops[0]) != ("hflip" in ops[index + 1])
        return self.make_instance(
            self._observation(views),
            question,
            options[index],
            options[index],
            choices=options,
            augmentations=ops,
            crop_boxes=[list(b) for b in boxes],
            mirrored=mirrored,
            hard_negatives=self.config.hard_negatives,
            source_keys=keys,
        )

    def parts(self, instance: Instance) -> Parts:
        """The candidates in option order, the right one labelled ``1``; the reference."""
        if self.config.layout == "images":
            views = instance.images
        else:
            views = tuple(cut_slots(instance.images[0], self._slots, self.config.view_size))
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        keys = tuple(instance.metadata["source_keys"])
        return Parts(
            "choice",
            tuple(views[1:]),
            labels,
            reference=views[0],
            sources=keys[1:],
            reference_source=keys[0],
        )

    def _sources(
        self, rng: np.random.Generator, source: ImageSource
    ) -> tuple[list[np.ndarray], list[str]]:
        """The candidates' ``K`` source images and keys, in an order that tells nothing.

        Pictures with pairwise different source keys: independent draws, or a group of
        similar colours (:func:`ssl_gym.puzzles._matching.similar_group`). The reference's
        source is then picked uniformly among them, so that the true candidate's source is
        distributed exactly like the others' and no other candidate shares its picture.
        """
        cfg = self.config
        shape = (cfg.size, cfg.size)
        if not cfg.hard_negatives:
            return draw_distinct(rng, source, shape, cfg.candidates)
        return similar_group(rng, source, cfg.candidates, cfg.pool, shape)

    def _view(
        self, rng: np.random.Generator, image: np.ndarray, ref_box: Window | None
    ) -> tuple[np.ndarray, Window, list[str]]:
        """An augmented view (crop near ``ref_box`` when given) that is not near-uniform.

        The pipeline of :func:`ssl_gym.augment.augment` (crop, flip, photometric), with the
        crop window drawn until it overlaps ``ref_box`` enough.
        """
        cfg = self.config
        params = STRENGTHS[cfg.strength]
        for _ in range(cfg.view_retries):
            box = self._box(rng, ref_box)
            view, applied = crop_resize(image, box, cfg.view_size), ["crop"]
            if rng.random() < params.flip_p:
                view, applied = hflip(view), [*applied, "hflip"]
            view, more = photometric(view, rng, params, cfg.view_size / REFERENCE_SIZE)
            if cfg.texture:
                view = texture(random_levels(view, rng), rng, STRONG_TEXTURE)
            if cfg.turns:
                view, turn = random_orientation(view, rng, quarter_turns=True)
                more = [*more, turn]
            if not is_flat(view, cfg.min_std):
                return view, box, applied + more
        raise Rejected("flat_view")

    def _box(self, rng: np.random.Generator, ref_box: Window | None, tries: int = 50) -> Window:
        """A crop window as ``augment`` draws it, overlapping ``ref_box`` enough."""
        params, side = STRENGTHS[self.config.strength], self.config.size
        for _ in range(tries):
            box = sample_crop_box(rng, side, side, params.scale, params.ratio)
            if ref_box is None or overlap(box, ref_box) >= self.config.min_overlap:
                return box
        raise Rejected("no_overlapping_crop")

    def _observation(self, views: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The views as separate images, or pasted into the composite."""
        if self.config.layout == "images":
            return tuple(views)
        canvas = self._blank_composite.copy()
        side = self.config.view_size
        for (y, x), view in zip(self._slots, views, strict=True):
            canvas[y : y + side, x : x + side] = view
        return (canvas,)

    @property
    def _label_height(self) -> int:
        return max(14, self.config.view_size // 5)

    @property
    def _cols(self) -> int:
        k = self.config.candidates
        return k if k <= 3 else math.ceil(k / 2)

    @cached_property
    def _blank_composite(self) -> np.ndarray:
        """The composite with labels and empty slots; views are pasted into a copy."""
        side, lh = self.config.view_size, self._label_height
        blank = np.zeros((side, side, 3), np.uint8)
        left = grid([blank], 1, ["Reference"], GAP, lh)
        right = grid([blank] * self.config.candidates, self._cols, self.options, GAP, lh)
        height = max(left.shape[0], right.shape[0])
        canvas = np.full((height, left.shape[1] + SEPARATOR + right.shape[1], 3), 255, np.uint8)
        canvas[: left.shape[0], : left.shape[1]] = left
        canvas[: right.shape[0], left.shape[1] + SEPARATOR :] = right
        middle = left.shape[1] + SEPARATOR // 2
        canvas[GAP : height - GAP, middle - 1 : middle + 1] = 128
        return canvas

    @cached_property
    def _slots(self) -> list[tuple[int, int]]:
        """Top-left corners of the reference's and the candidates' views in the composite."""
        side, lh = self.config.view_size, self._label_height
        x0 = GAP + side + GAP + SEPARATOR
        candidates = grid_slots(self.config.candidates, self._cols, side, side, GAP, lh)
        return [(GAP + lh, GAP), *((y, x0 + x) for y, x in candidates)]

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Level 0 outlines on the reference what the match shows too; then cross-outs.

        The outline is where the reference's crop window and the right candidate's
        overlap; every candidate's window overlaps the reference's alike, so where it
        lies does not say which candidate it is. Later levels cross out one more wrong
        candidate each (never the last). Texts are the same for every instance.
        """
        if level == 0:
            images = list(instance.images)
            index, box = self._view_boxes()[0]
            images[index] = mark_box(images[index], self._shared_region(instance, box))
            return Hint(HINTS[0], tuple(images))
        outlined = self.hint(instance, 0)
        drawn = outlined.images if outlined else None
        return cross_out(instance, level - 1, self._view_boxes()[1:], HINTS[1], drawn)

    def _view_boxes(self) -> list[tuple[int, Region]]:
        """Where each view (the reference first) is drawn: its image, or its slot."""
        side = self.config.view_size
        if self.config.layout == "images":
            return [(j, (0, 0, side - 1, side - 1)) for j in range(self.config.candidates + 1)]
        return [(0, (x, y, x + side - 1, y + side - 1)) for y, x in self._slots]

    def _shared_region(self, instance: Instance, frame: Region) -> Region:
        """The reference's and the match's crop windows' overlap, in the reference's frame."""
        meta = instance.metadata
        index = self.options.index(instance.answer)
        rt, rl, rh, rw = meta["crop_boxes"][0]
        tt, tl, th, tw = meta["crop_boxes"][index + 1]
        left, right = max(rl, tl), min(rl + rw, tl + tw)
        top, bottom = max(rt, tt), min(rt + rh, tt + th)
        fx0, fy0, fx1, fy1 = frame
        sx, sy = (fx1 - fx0 + 1) / rw, (fy1 - fy0 + 1) / rh
        x0, x1 = (left - rl) * sx, (right - rl) * sx
        if "hflip" in meta["augmentations"][0]:
            x0, x1 = (fx1 - fx0 + 1) - x1, (fx1 - fx0 + 1) - x0
        y0, y1 = (top - rt) * sy, (bottom - rt) * sy
        turn = recorded_turn(meta["augmentations"][0])
        x0, y0, x1, y1 = orient_box((x0, y0, x1, y1), fx1 - fx0 + 1, turn)
        return (fx0 + x0, fy0 + y0, min(fx1, fx0 + x1), min(fy1, fy0 + y1))


def overlap(a: Window, b: Window) -> float:
    """Intersection of two ``(top, left, height, width)`` windows over the smaller's area."""
    dy = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dx = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if dy <= 0 or dx <= 0:
        return 0.0
    return dy * dx / min(a[2] * a[3], b[2] * b[3])


def _check_sources(sources: list[np.ndarray], cfg: SimilarityConfig) -> None:
    """Reject a near-uniform source image, or two different pictures that look the same."""
    step = max(1, cfg.size // 64)
    small = [image[::step, ::step] for image in sources]
    if any(is_flat(image, cfg.min_std) for image in small):
        raise Rejected("flat_image")
    if near_duplicates(small, cfg.min_pair_diff):
        raise Rejected("near_duplicate_sources")


PRESETS: dict[str, Preset] = {
    "K2": preset("easy", "2 candidates, SimCLR's augmentation", candidates=2, strength="simclr"),
    "K4": preset("medium", "4 candidates, SimCLR's augmentation", candidates=4, strength="simclr"),
    "K4-Composite": preset(
        "medium",
        "4 candidates in one labelled picture, strong augmentation",
        candidates=4,
        strength="simclr",
        layout="composite",
    ),
    "K4-Hard": preset(
        "hard",
        "4 candidates of similar colours, strong augmentation",
        candidates=4,
        strength="simclr",
        hard_negatives=True,
        pool=16,
    ),
    "K8-Hard": preset(
        "hard",
        "8 candidates of similar colours, strong augmentation",
        candidates=8,
        strength="simclr",
        hard_negatives=True,
        pool=24,
    ),
}
Similarity.presets = PRESETS
