"""Similarity: which candidate view shows the same scene as the reference view?

## Description

A reference (anchor) view of a source image and ``K`` candidate views, exactly one of which
comes from the same source image; the others are views of other images (SSL-R1's "visual
similarity" task). Every view, the reference included, goes through the same augmentation
pipeline (:mod:`ssl_gym.augment`: random resized crop, flip and photometric changes,
``weak`` or ``strong``). The ``K`` source images are drawn first and the reference's is
picked among them at random, so the true candidate's source is distributed exactly like
the others'. With ``hard_negatives`` the ``K`` sources look alike: ``pool`` images are
drawn (as small thumbnails), and one of them, picked at random, and its ``K - 1`` nearest
in coarse colour histogram are used, so that the colour palette alone does not tell the
match (and the true source is no more and no less typical than the wrong ones).

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

``candidates`` (2 to 8), ``strength`` (``weak`` or ``strong`` augmentation) and
``hard_negatives`` (candidates of similar colours). Weak augmentation is kept to the
2-candidate preset: with more candidates, the colour correlation between the reference and
its weakly augmented match lets even a linear probe on per-image colour statistics beat
chance by a few points.

## Registered Configurations

* ``SSL/Similarity-K2-v0``: 2 candidates, weak augmentation (easy).
* ``SSL/Similarity-K4-v0``: 4 candidates, strong augmentation (medium).
* ``SSL/Similarity-K4-Composite-v0``: the same in one labelled picture (medium).
* ``SSL/Similarity-K4-Hard-v0``: 4 candidates of similar colours, strong augmentation (hard).
* ``SSL/Similarity-K8-Hard-v0``: 8 candidates of similar colours, strong augmentation (hard).

## Version History

* v0: initial release.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from ssl_gym.augment import (
    LUMA,
    REFERENCE_SIZE,
    STRENGTHS,
    hflip,
    photometric,
    sample_crop_box,
)
from ssl_gym.core import (
    ChoicePuzzle,
    Instance,
    Parts,
    Preset,
    PuzzleConfig,
    Rejected,
    check_choice,
    check_float,
    check_int,
    elimination_hint,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.render import cut_slots, grid, grid_slots, is_flat

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
THUMB = 32
"""Side of the thumbnails whose colour histograms rank a pool of images."""
ALIGN = 64
"""Side of the copies that :func:`aligned_differences` compares."""
PEAKS = 3
"""Candidate translations (correlation peaks) that :func:`aligned_differences` tries."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True, kw_only=True)
class SimilarityConfig(PuzzleConfig):
    """Settings of the Similarity family (``size`` is the side of the source images)."""

    candidates: int = 4
    """Number of candidate views ``K``, 2 to 8; exactly one matches the reference."""
    strength: str = "strong"
    """Augmentation of every view: ``weak`` or ``strong`` (SimCLR's)."""
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
    min_pair_diff: float = 20.0
    """Reject draws with two source images this close (mean absolute pixel difference).

    Compared at their best alignment (:func:`aligned_differences`), so that two crops of
    one picture count as the same source.
    """
    view_retries: int = 3
    """Augmentations tried per view before a near-uniform view rejects the draw."""

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
        check_float("min_pair_diff", self.min_pair_diff, 0.0, 255.0)
        check_int("view_retries", self.view_retries, 1, 100)


class Similarity(ChoicePuzzle[SimilarityConfig]):
    """Find the candidate view that shares the reference view's source image."""

    family = "Similarity"
    version = 0
    config_cls = SimilarityConfig

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
        sources = self._sources(rng, source)
        _check_sources(sources, cfg)
        index = int(rng.integers(cfg.candidates))
        ref_view, ref_box, ref_ops = self._view(rng, sources[index], None)
        views, boxes, ops = [ref_view], [ref_box], [ref_ops]
        for image in sources:
            view, box, applied = self._view(rng, image, ref_box)
            views.append(view)
            boxes.append(box)
            ops.append(applied)
        return self._instance(views, index, ops, boxes)

    def _instance(
        self, views: list[np.ndarray], index: int, ops: list[list[str]], boxes: list[Box]
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
        )

    def parts(self, instance: Instance) -> Parts:
        """The candidates in option order, the right one labelled ``1``; the reference."""
        if self.config.layout == "images":
            views = instance.images
        else:
            views = tuple(cut_slots(instance.images[0], self._slots, self.config.view_size))
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        return Parts("choice", tuple(views[1:]), labels, reference=views[0])

    def _sources(self, rng: np.random.Generator, source: ImageSource) -> list[np.ndarray]:
        """The candidates' ``K`` source images, in an order that tells nothing.

        Independent draws, or a group of similar colours (:func:`similar_group`). The
        reference's source is then picked uniformly among them, so that the true
        candidate's source is distributed exactly like the others'.
        """
        cfg = self.config
        shape = (cfg.size, cfg.size)
        if not cfg.hard_negatives:
            return [source.sample(rng, shape) for _ in range(cfg.candidates)]
        return similar_group(rng, source, cfg.candidates, cfg.pool, shape, cfg.min_pair_diff)

    def _view(
        self, rng: np.random.Generator, image: np.ndarray, ref_box: Box | None
    ) -> tuple[np.ndarray, Box, list[str]]:
        """An augmented view (crop near ``ref_box`` when given) that is not near-uniform.

        The pipeline of :func:`ssl_gym.augment.augment` (crop, flip, photometric), with the
        crop window drawn until it overlaps ``ref_box`` enough.
        """
        cfg = self.config
        params = STRENGTHS[cfg.strength]
        for _ in range(cfg.view_retries):
            box = self._box(rng, ref_box)
            top, left, h, w = box
            pil = Image.fromarray(image).resize(
                (cfg.view_size,) * 2, Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
            )
            view, applied = np.asarray(pil), ["crop"]
            if rng.random() < params.flip_p:
                view, applied = hflip(view), [*applied, "hflip"]
            view, more = photometric(view, rng, params, cfg.view_size / REFERENCE_SIZE)
            if not is_flat(view, cfg.min_std):
                return view, box, applied + more
        raise Rejected("flat_view")

    def _box(self, rng: np.random.Generator, ref_box: Box | None, tries: int = 50) -> Box:
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

    def hint(self, instance: Instance, level: int) -> str | None:
        """Level 0 tells whether the match is mirrored; later levels rule out candidates."""
        if level == 0:
            if instance.metadata["mirrored"]:
                return "The matching candidate is mirrored left to right relative to the reference."
            return "The matching candidate has the same left-right orientation as the reference."
        return elimination_hint(instance, level - 1, noun="Candidate")


def overlap(a: Box, b: Box) -> float:
    """Intersection of two ``(top, left, height, width)`` windows over the smaller's area."""
    dy = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dx = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if dy <= 0 or dx <= 0:
        return 0.0
    return dy * dx / min(a[2] * a[3], b[2] * b[3])


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """Normalised 4x4x4 RGB histograms of a stack of uint8 images, shape ``(n, 64)``."""
    n = len(images)
    q = images.reshape(n, -1, 3) >> 6
    bins = (q[..., 0].astype(np.int64) * 16 + q[..., 1] * 4 + q[..., 2]) + 64 * np.arange(n)[
        :, None
    ]
    counts = np.bincount(bins.ravel(), minlength=64 * n).reshape(n, 64)
    return counts / counts.sum(axis=1, keepdims=True)


def similar_group(
    rng: np.random.Generator,
    source: ImageSource,
    count: int,
    pool: int,
    shape: tuple[int, int],
    min_diff: float = 0.0,
) -> list[np.ndarray]:
    """``count`` images of similar colours, in random order.

    ``pool`` images are drawn as thumbnails, each from its own generator seeded from
    ``rng``; one of them, picked at random, and its nearest in 4x4x4 colour histogram (L1)
    form the group, skipping any thumbnail within ``min_diff`` of a member once aligned
    (:func:`aligned_differences`: the same picture drawn twice). The group is drawn again
    from the same seeds at ``shape``, in shuffled order, so every member is distributed
    alike: a puzzle that then picks one member at random (the true one) does not make it
    any more or less typical than the others. Sources draw their image before their crop,
    so the full-size image is the thumbnail's (procedural scenes render the same geometry
    at every size; other sources may crop a little differently).

    Raises:
        Rejected: If the pool holds fewer than ``count`` distinct images.
    """
    seeds = rng.integers(0, 2**63, size=pool)
    thumbs = np.stack([source.sample(np.random.default_rng(s), (THUMB, THUMB)) for s in seeds])
    hists = colour_histograms(thumbs)
    centre = int(rng.integers(pool))
    distance = np.abs(hists - hists[centre]).sum(axis=1)
    distance[centre] = -1.0
    group: list[int] = []
    for i in np.argsort(distance, kind="stable"):
        if not group or aligned_differences(thumbs[[i, *group]], THUMB)[0, 1:].min() >= min_diff:
            group.append(int(i))
        if len(group) == count:
            order = rng.permutation(group)
            return [source.sample(np.random.default_rng(seeds[i]), shape) for i in order]
    raise Rejected("too_few_distinct_images")


def aligned_differences(images: Sequence[np.ndarray] | np.ndarray, side: int = ALIGN) -> np.ndarray:
    """Mean absolute difference of every pair of images at their best translation, ``(n, n)``.

    Two crops of one picture at different offsets (what a small image source yields when it
    draws the same picture twice) differ little once aligned, unlike two pictures. Images
    are box-filtered to ``side`` pixels square; the translation is the peak of the phase
    correlation of their (Hann-windowed) luma, the best of its ``PEAKS`` highest peaks, and
    the difference is taken over the overlap there. Pairs overlapping by less than a
    quarter, and the diagonal, read 255 (unrelated).
    """
    n = len(images)
    out = np.full((n, n), 255.0)
    if n < 2:
        return out
    small = np.stack(
        [
            np.asarray(Image.fromarray(im).resize((side, side), Image.Resampling.BOX))
            for im in images
        ]
    ).astype(np.float32)
    luma = small @ np.asarray(LUMA, dtype=np.float32)
    window = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    spectra = np.fft.rfft2((luma - luma.mean(axis=(1, 2), keepdims=True)) * window)
    first, second = np.triu_indices(n, 1)
    cross = spectra[first] * np.conj(spectra[second])
    corr = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(side, side)).reshape(len(first), -1)
    peaks = np.argpartition(-corr, PEAKS, axis=1)[:, :PEAKS]
    for a, b, tops in zip(first, second, peaks, strict=True):
        out[a, b] = out[b, a] = min(
            _shifted_difference(small[a], small[b], *divmod(int(t), side)) for t in tops
        )
    return out


def _shifted_difference(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> float:
    """Mean absolute difference of ``a[y, x]`` and ``b[y - dy, x - dx]`` where both exist."""
    side = a.shape[0]
    dy, dx = (dy - side if dy > side // 2 else dy), (dx - side if dx > side // 2 else dx)
    if (side - abs(dy)) * (side - abs(dx)) < side * side / 4:
        return 255.0
    ya, yb = slice(max(dy, 0), side + min(dy, 0)), slice(max(-dy, 0), side + min(-dy, 0))
    xa, xb = slice(max(dx, 0), side + min(dx, 0)), slice(max(-dx, 0), side + min(-dx, 0))
    return float(np.abs(a[ya, xa] - b[yb, xb]).mean())


def _check_sources(sources: list[np.ndarray], cfg: SimilarityConfig) -> None:
    """Reject a near-uniform source image, or two that are near-identical once aligned."""
    step = max(1, cfg.size // 64)
    if any(is_flat(image[::step, ::step], cfg.min_std) for image in sources):
        raise Rejected("flat_image")
    if (aligned_differences(sources) < cfg.min_pair_diff).any():
        raise Rejected("near_duplicate_sources")


PRESETS: dict[str, Preset] = {
    "K2": preset("easy", "2 candidates, weak augmentation", candidates=2, strength="weak"),
    "K4": preset("medium", "4 candidates, strong augmentation", candidates=4, strength="strong"),
    "K4-Composite": preset(
        "medium",
        "4 candidates in one labelled picture, strong augmentation",
        candidates=4,
        strength="strong",
        layout="composite",
    ),
    "K4-Hard": preset(
        "hard",
        "4 candidates of similar colours, strong augmentation",
        candidates=4,
        strength="strong",
        hard_negatives=True,
        pool=16,
    ),
    "K8-Hard": preset(
        "hard",
        "8 candidates of similar colours, strong augmentation",
        candidates=8,
        strength="strong",
        hard_negatives=True,
        pool=24,
    ),
}
Similarity.presets = PRESETS
