"""How Similarity draws its source pictures and its augmented views.

The ``K`` source pictures (independent draws or a group of similar colours) and the check
that rejects a near-uniform or look-alike set; then the reference view, the right
candidate's view and the wrong candidates' views, each a crop window overlapping the
reference's (:func:`overlap`) through one augmentation pipeline, a wrong one picked among
``distractor_pool`` views by its colour statistics. Every random draw happens here, in
the order :meth:`ssl_gym.puzzles.similarity.Similarity._draft` relies on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ssl_gym.augment import (
    REFERENCE_SIZE,
    STRENGTHS,
    STRONG_TEXTURE,
    crop_resize,
    hflip,
    photometric,
    random_levels,
    sample_crop_box,
    texture,
)
from ssl_gym.core import Rejected
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._matching import (
    draw_distinct,
    matched_index,
    similar_group,
    view_statistics,
)
from ssl_gym.render import is_flat, near_duplicates, random_orientation

if TYPE_CHECKING:
    from ssl_gym.puzzles.similarity import SimilarityConfig

Window = tuple[int, int, int, int]
"""A crop window ``(top, left, height, width)`` in integer pixels of the source picture."""
View = tuple[np.ndarray, Window, list[str]]
"""A view, its crop window and the augmentations applied to it, in order."""


def draw_sources(
    rng: np.random.Generator, source: ImageSource, cfg: SimilarityConfig
) -> tuple[list[np.ndarray], list[str]]:
    """The candidates' ``K`` source images and keys, in an order that tells nothing.

    Pictures with pairwise different source keys: independent draws, or a group of
    similar colours (:func:`ssl_gym.puzzles._matching.similar_group`). The reference's
    source is then picked uniformly among them, so that the true candidate's source is
    distributed exactly like the others' and no other candidate shares its picture.
    """
    shape = (cfg.size, cfg.size)
    if not cfg.hard_negatives:
        return draw_distinct(rng, source, shape, cfg.candidates)
    return similar_group(rng, source, cfg.candidates, cfg.pool, shape)


def check_sources(sources: list[np.ndarray], cfg: SimilarityConfig) -> None:
    """Reject a near-uniform source image, or two different pictures that look the same."""
    step = max(1, cfg.size // 64)
    small = [image[::step, ::step] for image in sources]
    if any(is_flat(image, cfg.min_std) for image in small):
        raise Rejected("flat_image")
    if near_duplicates(small, cfg.min_pair_diff):
        raise Rejected("near_duplicate_sources")


def draw_views(
    rng: np.random.Generator, sources: list[np.ndarray], index: int, cfg: SimilarityConfig
) -> tuple[list[np.ndarray], list[Window], list[list[str]]]:
    """The reference view (of ``sources[index]``), then one view per candidate.

    The right candidate's view is drawn just after the reference; each wrong one is
    picked by :func:`draw_distractor` against the pair's colour statistics (measured
    only when there is a choice, ``distractor_pool`` above 1: they draw no numbers).

    Returns:
        The views, their crop windows and their augmentations, the reference first.
    """
    ref_view, ref_box, ref_ops = draw_view(rng, sources[index], None, cfg)
    true = draw_view(rng, sources[index], ref_box, cfg)
    targets = (
        (view_statistics(ref_view), view_statistics(true[0])) if cfg.distractor_pool > 1 else None
    )
    views, boxes, ops = [ref_view], [ref_box], [ref_ops]
    for slot in range(cfg.candidates):
        view, box, applied = (
            true if slot == index else draw_distractor(rng, sources[slot], ref_box, targets, cfg)
        )
        views.append(view)
        boxes.append(box)
        ops.append(applied)
    return views, boxes, ops


def draw_distractor(
    rng: np.random.Generator,
    image: np.ndarray,
    ref_box: Window,
    targets: tuple[np.ndarray, np.ndarray] | None,
    cfg: SimilarityConfig,
) -> View:
    """A view of ``image`` whose colour statistics tell it from the right candidate's.

    Of ``distractor_pool`` views, the one whose statistical gap to the reference
    (``targets[0]``) is nearest the right candidate's (``targets[1]``); the one view
    drawn when the pool is 1 (``targets`` may then be ``None``).
    """
    pool = [draw_view(rng, image, ref_box, cfg) for _ in range(cfg.distractor_pool)]
    if len(pool) == 1:
        return pool[0]
    if targets is None:
        raise ValueError(
            "a distractor pool above 1 needs the reference's and the match's statistics"
        )
    pick = matched_index(*targets, [view_statistics(view) for view, _, _ in pool])
    return pool[pick]


def draw_view(
    rng: np.random.Generator, image: np.ndarray, ref_box: Window | None, cfg: SimilarityConfig
) -> View:
    """An augmented view (crop near ``ref_box`` when given) that is not near-uniform.

    The pipeline of :func:`ssl_gym.augment.augment` (crop, flip, photometric), with the
    crop window drawn until it overlaps ``ref_box`` enough.
    """
    params = STRENGTHS[cfg.strength]
    for _ in range(cfg.view_retries):
        box = crop_window(rng, ref_box, cfg)
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


def crop_window(
    rng: np.random.Generator, ref_box: Window | None, cfg: SimilarityConfig, tries: int = 50
) -> Window:
    """A crop window as ``augment`` draws it, overlapping ``ref_box`` enough."""
    params, side = STRENGTHS[cfg.strength], cfg.size
    for _ in range(tries):
        box = sample_crop_box(rng, side, side, params.scale, params.ratio)
        if ref_box is None or overlap(box, ref_box) >= cfg.min_overlap:
            return box
    raise Rejected("no_overlapping_crop")


def overlap(a: Window, b: Window) -> float:
    """Intersection of two ``(top, left, height, width)`` windows over the smaller's area."""
    dy = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dx = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if dy <= 0 or dx <= 0:
        return 0.0
    return dy * dx / min(a[2] * a[3], b[2] * b[3])
