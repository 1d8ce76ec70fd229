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

* -Hint v3 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
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

from ssl_gym.augment import STRENGTHS, gray_alike
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
from ssl_gym.puzzles._similarity_views import Window, check_sources, draw_sources, draw_views
from ssl_gym.puzzles._similarity_views import overlap as overlap  # re-exported
from ssl_gym.render import Composite, mark_box, orient_box, recorded_turn

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
    hint_version = 3  # retries priced for the 200-episode blind check
    config_cls = SimilarityConfig
    compares_sources = True

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``K + 1`` square views, or the one composite."""
        if self.config.layout == "composite":
            return (self._composite.shape,)
        side = self.config.view_size
        return ((side, side, 3),) * (self.config.candidates + 1)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        sources, keys = draw_sources(rng, source, cfg)
        check_sources(sources, cfg)
        sources = gray_alike(sources)
        index = int(rng.integers(cfg.candidates))
        views, boxes, ops = draw_views(rng, sources, index, cfg)
        return self._instance(views, index, ops, boxes, [keys[index], *keys])

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
            views = tuple(self._composite.cut(instance.images[0]))
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

    def _observation(self, views: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The views as separate images, or pasted into the composite."""
        if self.config.layout == "images":
            return tuple(views)
        return (self._composite.paste(views),)

    @property
    def _label_height(self) -> int:
        return max(14, self.config.view_size // 5)

    @property
    def _cols(self) -> int:
        k = self.config.candidates
        return k if k <= 3 else math.ceil(k / 2)

    @cached_property
    def _composite(self) -> Composite:
        """The reference, a grey line, then the candidates, each labelled above it."""
        panel, lh = (self.config.view_size,) * 2, self._label_height
        left = Composite.grid(1, 1, panel, ["Reference"], GAP, lh)
        right = Composite.grid(self.config.candidates, self._cols, panel, self.options, GAP, lh)
        (left_h, left_w, _), (right_h, right_w, _) = left.shape, right.shape
        height, x0 = max(left_h, right_h), left_w + SEPARATOR
        placed = Composite.place([(left, (0, 0)), (right, (0, x0))], (height, x0 + right_w))
        blank, middle = placed.blank.copy(), left_w + SEPARATOR // 2
        blank[GAP : height - GAP, middle - 1 : middle + 1] = 128
        return Composite(blank, placed.boxes)

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
        return [(0, (x, y, x + w - 1, y + h - 1)) for y, x, h, w in self._composite.boxes]

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
