"""Correspondence's draw: the two views, the marked point, the candidates and their letters.

:func:`draw_source` draws the source picture and places view A in it (:func:`view_a_map`),
with room left for any view B; :func:`views_b` draws a batch of independent views B
around it. :func:`draw_layout` marks a textured point of view A, keeps ``candidates`` of
those views B that send it to well-spaced points inside view B, places each candidate's
letter (:func:`label_boxes`), only then picks the true view uniformly and renders view B
through it. :func:`flaw` names why the candidates of a rendered view B are unfit (a flat
window, two alike); a layout that cannot be drawn raises :class:`~ssl_gym.core.Rejected`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ssl_gym.core import Rejected
from ssl_gym.geometry import (
    SQUARE,
    Box,
    Geometry,
    ViewsB,
    affine,
    affines,
    apply,
    apply_each,
    homographies,
    inside,
    place_labels,
    warp,
)
from ssl_gym.render import letter_size, near_duplicates

if TYPE_CHECKING:
    from ssl_gym.images.base import ImageSource
    from ssl_gym.puzzles.correspondence import CorrespondenceConfig

SOURCE_FACTOR = 1.5
"""The source is sampled at ``SOURCE_FACTOR * size`` pixels square; both views fit in it."""
VIEW_FRACTION = (0.5, 0.6)
"""Range of view A's side as a fraction of the source side (shrunk when view B needs room)."""
BATCH = 64
"""Random points tried for the mark, and random views B tried for the candidates."""
LAYOUT_TRIES = 6
"""Marked points (each with a batch of views B) tried on view A before a redraw."""


@dataclass(frozen=True)
class Layout:
    """What one draw places: the mark, the candidates, their letters and the true view."""

    marked: np.ndarray
    """The marked point in view A."""
    points: np.ndarray
    """The candidates in view B, in letter order."""
    boxes: list[Box]
    """Each candidate's letter box."""
    truth: int
    """Index of the true candidate."""
    geometry: Geometry
    """View A with the true view B."""
    view_b: np.ndarray
    """View B rendered through the true view, before drawing."""


# -- geometry --


def draw_source(
    rng: np.random.Generator, cfg: CorrespondenceConfig, source: ImageSource
) -> tuple[np.ndarray, np.ndarray, str]:
    """The source picture (:data:`SOURCE_FACTOR` times the view), view A's map, the key.

    Returns:
        The square picture, view A's map into it (:func:`view_a_map`, placed first) and
        the picture's source key (``ImageSource.draw``).
    """
    side = math.ceil(SOURCE_FACTOR * cfg.size)
    a_map = view_a_map(rng, cfg, side)
    image, key = source.draw(rng, (side, side))
    return image, a_map, key


def view_a_map(rng: np.random.Generator, cfg: CorrespondenceConfig, side: int) -> np.ndarray:
    """View A's map: an upright square of the source, room left for any view B."""
    n = cfg.size
    a = min(rng.uniform(*VIEW_FRACTION) * side, (side - 2) / _extent(cfg))
    centre = rng.uniform(a / 2 + 1, side - a / 2 - 1, size=2)
    return affine(np.eye(2) * a / n, centre, n)


def _extent(cfg: CorrespondenceConfig) -> float:
    """The widest view B can span along an axis, in units of view A's side."""
    turn = 0.0 if cfg.transform == "crop" else math.radians(min(cfg.max_rotation, 45.0))
    bulge = 1.0 + 2.0 * cfg.perspective if cfg.transform == "perspective" else 1.0
    return max(1.0, (math.cos(turn) + math.sin(turn)) * bulge / cfg.scale_range[0])


def views_b(
    rng: np.random.Generator, cfg: CorrespondenceConfig, a_map: np.ndarray, side: int
) -> ViewsB:
    """``BATCH`` independent random views B relative to view A, inside the source."""
    n = cfg.size
    a, centre_a = a_map[0, 0] * n, a_map[:2, 2] + a_map[0, 0] * n / 2
    log_low, log_high = (math.log(v) for v in cfg.scale_range)
    zoom = np.exp(rng.uniform(log_low, log_high, size=BATCH))
    moving = cfg.transform != "crop"
    turn = cfg.max_rotation if moving else 0.0
    angle = rng.uniform(-turn, turn, size=BATCH)
    flip = (rng.random(BATCH) < 0.5) & (moving and cfg.flip)
    warps = _warps(rng, cfg)
    # Source -> B mirrors, then rotates counter-clockwise, then zooms; B -> source undoes it.
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    linear = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) / zoom[:, None, None]
    linear[:, 0] *= np.where(flip, -1.0, 1.0)[:, None]
    offsets = np.einsum("bij,bkj->bki", linear, apply_each(warps, SQUARE * n) - n / 2) / n
    low, high = offsets.min(axis=1) * a, offsets.max(axis=1) * a
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=(BATCH, 2)) * a
    centre_b = np.clip(centre_a + shift, 1 - low, side - 1 - high)
    maps = affines(linear * a / n, centre_b, n) @ warps
    return ViewsB(maps, zoom, angle, flip)


def _warps(rng: np.random.Generator, cfg: CorrespondenceConfig) -> np.ndarray:
    """The perspective part of each view B (identity unless ``transform="perspective"``)."""
    n = cfg.size
    if cfg.transform != "perspective":
        return np.broadcast_to(np.eye(3), (BATCH, 3, 3))
    jitter = rng.uniform(-1.0, 1.0, size=(BATCH, 4, 2)) * cfg.perspective * n
    return homographies(SQUARE * n, SQUARE * n + jitter)


# -- the marked point and the candidates --


def draw_layout(
    rng: np.random.Generator,
    cfg: CorrespondenceConfig,
    options: Sequence[str],
    image: np.ndarray,
    a_map: np.ndarray,
    view_a: np.ndarray,
) -> Layout:
    """The marked point, the candidates, their letters, the true view B and view B.

    The true view is picked uniformly once the candidates and letters are placed, so it
    is independent of every coordinate. Then every candidate's window in view B must
    be textured and unlike the others', or the whole layout is redrawn.
    """
    luma_a = _block_luma(view_a)
    why = "no_room"
    for _ in range(LAYOUT_TRIES):
        marked = _mark(rng, cfg, luma_a)
        views = _candidate_views(rng, cfg, a_map, marked, image.shape[0])
        if views is None:
            why = "no_room"
            continue
        points = np.array([apply(v.a_to_b, marked[None])[0] for v in views])
        boxes = label_boxes(cfg, options, points)
        if boxes is None:
            why = "labels_overlap"
            continue
        truth = int(rng.integers(cfg.candidates))
        view_b = warp(image, views[truth].b_to_source, cfg.size)
        why_not = flaw(cfg, points, view_b)
        if why_not is None:
            return Layout(marked, points, boxes, truth, views[truth], view_b)
        why = why_not
    raise Rejected(why)


def _mark(rng: np.random.Generator, cfg: CorrespondenceConfig, luma_a: np.ndarray) -> np.ndarray:
    """A uniform pixel centre of view A on textured content, away from the edges."""
    margin = _margin(cfg)
    points = np.floor(rng.uniform(margin, cfg.size - margin, size=(BATCH, 2))) + 0.5
    points = points[_window_std(luma_a, points, _half_window(cfg)) >= cfg.min_std]
    if not len(points):
        raise Rejected("no_room")
    return points[0]


def _candidate_views(
    rng: np.random.Generator,
    cfg: CorrespondenceConfig,
    a_map: np.ndarray,
    marked: np.ndarray,
    side: int,
) -> list[Geometry] | None:
    """``k`` independent views B, each sending the marked point to one candidate.

    Views are drawn from one distribution and kept in turn when they send the marked
    point inside view B, ``min_distance`` from the points of those kept so far; a
    condition on the candidates alone, so whichever view turns out true, the
    candidates' coordinates are alike.
    """
    n, margin = cfg.size, _margin(cfg)
    views = views_b(rng, cfg, a_map, side)
    points = apply_each(np.linalg.inv(views.maps), apply(a_map, marked[None]))[:, 0]
    kept: list[int] = []
    for i in np.flatnonzero(inside(points, margin, n - margin)):
        if all(((points[i] - points[j]) ** 2).sum() >= cfg.spacing**2 for j in kept):
            kept.append(int(i))
            if len(kept) == cfg.candidates:
                return [views.geometry(a_map, j, cfg.transform) for j in kept]
    return None


def _half_window(cfg: CorrespondenceConfig) -> int:
    """Half-side of the texture window in blocks of 2 x 2 pixels."""
    return max(2, cfg.window // 2)


def _margin(cfg: CorrespondenceConfig) -> int:
    """Least distance of a point from the edges of both views."""
    return max(cfg.ring_radius + 3, 2 * _half_window(cfg) + 2)


def flaw(cfg: CorrespondenceConfig, points: np.ndarray, view_b: np.ndarray) -> str | None:
    """Why view B's candidates are unfit (a flat window, two alike), or ``None``."""
    w = cfg.window
    std = _window_std(_block_luma(view_b), points, _half_window(cfg))
    if (std < cfg.min_std).any():
        return "flat_candidate"
    idx = np.floor(points).astype(int)
    patches = [view_b[y - w : y + w + 1, x - w : x + w + 1] for x, y in idx]
    if near_duplicates(patches, cfg.min_patch_diff):
        return "similar_candidates"
    return None


# -- letters --


def label_boxes(
    cfg: CorrespondenceConfig, options: Sequence[str], points: np.ndarray
) -> list[Box] | None:
    """The box of each candidate's letter beside its ring (:func:`place_labels`)."""
    sizes = [letter_size(letter, font_size(cfg)) for letter in options]
    return place_labels(points, sizes, cfg.ring_radius, cfg.size)


def font_size(cfg: CorrespondenceConfig) -> int:
    """The letters' font size in pixels."""
    return max(10, round(cfg.size / 10))


# -- texture --


def _block_luma(view: np.ndarray) -> np.ndarray:
    """Luma averaged over blocks of 2 x 2 pixels (fast to measure, blind to pixel grain)."""
    return np.asarray(Image.fromarray(view).convert("L").reduce(2), dtype=np.float32)


def _window_std(luma: np.ndarray, points: np.ndarray, half: int) -> np.ndarray:
    """Standard deviation of ``luma`` (blocks) in the ``2 half + 1`` window of each point."""
    blocks = np.floor(points).astype(int) // 2
    offsets = np.arange(-half, half + 1)
    rows = np.clip(blocks[:, 1, None, None] + offsets[None, :, None], 0, luma.shape[0] - 1)
    cols = np.clip(blocks[:, 0, None, None] + offsets[None, None, :], 0, luma.shape[1] - 1)
    return luma[rows, cols].std(axis=(1, 2))
