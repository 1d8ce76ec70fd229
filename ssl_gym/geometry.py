"""Pure plane geometry for views of an image: 3 x 3 homogeneous maps, resampling, boxes.

Maps send continuous view coordinates (pixel centres at ``i + 0.5``, PIL's convention,
x to the right, y down) to source coordinates. :func:`warp` renders a view through its
map; :func:`to_pixels` rewrites a map for integer pixel centres. Boxes are
``(x0, y0, x1, y1)`` tuples. :class:`Geometry` holds two views of one source (the
Correspondence family's A and B) and :func:`view_metadata` their JSON facts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]
"""An axis-aligned box ``(x0, y0, x1, y1)``."""
SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
"""The corners of the unit square, clockwise on screen from the top left."""


def rotation(degrees: float) -> np.ndarray:
    """The 2 x 2 map turning vectors counter-clockwise on screen (y pointing down)."""
    t = math.radians(degrees)
    return np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])


def affine(linear: np.ndarray, centre: np.ndarray, n: int) -> np.ndarray:
    """3 x 3 map of an ``n x n`` view whose centre goes to ``centre`` via ``linear``."""
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = centre - linear @ np.array([n / 2, n / 2])
    return out


def homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(B, 3, 3) projective maps taking the four points ``src`` to each ``dst[b]``."""
    count = len(dst)
    x, y = src[:, 0], src[:, 1]
    u, v = dst[..., 0], dst[..., 1]  # (B, 4)
    rows = np.zeros((count, 8, 8))
    rows[:, 0::2, 0], rows[:, 0::2, 1], rows[:, 0::2, 2] = x, y, 1.0
    rows[:, 1::2, 3], rows[:, 1::2, 4], rows[:, 1::2, 5] = x, y, 1.0
    rows[:, 0::2, 6], rows[:, 0::2, 7] = -u * x, -u * y
    rows[:, 1::2, 6], rows[:, 1::2, 7] = -v * x, -v * y
    rhs = np.stack([u, v], axis=-1).reshape(count, 8, 1)
    h = np.linalg.solve(rows, rhs)[..., 0]
    return np.concatenate([h, np.ones((count, 1))], axis=1).reshape(count, 3, 3)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3 x 3 homogeneous matrix."""
    homo = points @ matrix[:, :2].T + matrix[:, 2]
    return homo[:, :2] / homo[:, 2:3]


def apply_each(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through each of (B, 3, 3) matrices: (B, N, 2)."""
    homo = np.einsum("bij,nj->bni", matrices[:, :, :2], points) + matrices[:, None, :, 2]
    return homo[..., :2] / homo[..., 2:3]


def affines(linear: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """(B, 3, 3) maps of an ``n x n`` view whose centre goes to ``centres[b]`` via ``linear[b]``."""
    out = np.zeros((len(linear), 3, 3))
    out[:, :2, :2] = linear
    out[:, :2, 2] = centres - linear @ np.array([n / 2, n / 2])
    out[:, 2, 2] = 1.0
    return out


def warp(image: np.ndarray, view_to_source: np.ndarray, n: int) -> np.ndarray:
    """Render an ``n x n`` view through its map into the source, bilinear.

    An upscaling axis-aligned map takes PIL's separable resize, which computes the same
    bilinear interpolation (to rounding) as ``Image.transform`` about twice as fast.
    """
    m = view_to_source / view_to_source[2, 2]
    pil = Image.fromarray(image)
    if _is_upscaling_crop(m):
        box = (m[0, 2], m[1, 2], m[0, 2] + m[0, 0] * n, m[1, 2] + m[1, 1] * n)
        return np.asarray(pil.resize((n, n), Image.Resampling.BILINEAR, box=box))
    flat = np.allclose(m[2, :2], 0.0)
    method = Image.Transform.AFFINE if flat else Image.Transform.PERSPECTIVE
    data = tuple(float(v) for v in m.ravel()[: 6 if flat else 8])
    return np.asarray(pil.transform((n, n), method, data, Image.Resampling.BILINEAR))


def _is_upscaling_crop(m: np.ndarray) -> bool:
    """True for a map that only scales (by at most 1 source pixel per pixel) and shifts."""
    return bool(
        m[0, 1] == 0.0
        and m[1, 0] == 0.0
        and np.allclose(m[2, :2], 0.0)
        and 0.0 < m[0, 0] <= 1.0
        and 0.0 < m[1, 1] <= 1.0
    )


def to_pixels(matrix: np.ndarray) -> np.ndarray:
    """A map in continuous coordinates rewritten for pixel coordinates (centres integer)."""
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    out = np.linalg.inv(shift) @ matrix @ shift
    return out / out[2, 2]


def inside(points: np.ndarray, low: float, high: float) -> np.ndarray:
    """Whether each of (N, 2) points has both coordinates in ``[low, high]``."""
    return np.asarray(((points >= low) & (points <= high)).all(axis=-1))


def overlap(a: Box, b: Box, gap: float = 1.0) -> bool:
    """Whether two boxes come closer than ``gap`` on both axes."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def places_around(x: float, y: float, w: int, h: int, reach: float) -> list[Box]:
    """Boxes of a ``w x h`` label beside a ring at ``(x, y)``, whole-pixel aligned.

    In order: right, left, above, below, then the four diagonals; each keeps ``reach``
    from the centre.
    """
    d = reach * 0.75
    lefts = (x + reach, x - reach - w, x - w / 2, x - w / 2, x + d, x - d - w, x + d, x - d - w)
    tops = (y - h / 2, y - h / 2, y - reach - h, y + reach, y - d - h, y - d - h, y + d, y + d)
    return [
        (float(round(lx)), float(round(ty)), float(round(lx) + w), float(round(ty) + h))
        for lx, ty in zip(lefts, tops, strict=True)
    ]


def place_labels(
    points: np.ndarray, sizes: Sequence[tuple[int, int]], radius: int, n: int
) -> list[Box] | None:
    """A box for each point's ``w x h`` label beside its ring of ``radius``, in an ``n`` view.

    The first of eight places around the ring (:func:`places_around`) that stays inside
    the view, touches no ring and no earlier label, and is clearly nearer its own ring
    than any other (so no label sits between two rings); ``None`` when some label has no
    such place.
    """
    reach = radius + 2
    centres = [(float(x), float(y)) for x, y in points]
    taken: list[Box] = [(x - reach, y - reach, x + reach, y + reach) for x, y in centres]
    placed: list[Box] = []
    for k, (w, h) in enumerate(sizes):
        fits = (
            box
            for box in places_around(*centres[k], w, h, reach + 2)
            if _label_fits(box, k, centres, taken, radius, n)
        )
        box = next(fits, None)
        if box is None:
            return None
        placed.append(box)
        taken.append(box)
    return placed


def _label_fits(
    box: Box, k: int, centres: list[tuple[float, float]], taken: list[Box], radius: int, n: int
) -> bool:
    """Whether a label box for point ``k`` is inside, free and unambiguous."""
    if box[0] < 1 or box[1] < 1 or box[2] > n - 1 or box[3] > n - 1:
        return False
    if any(overlap(box, other) for other in taken):
        return False
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    dist = [math.hypot(x - cx, y - cy) for x, y in centres]
    own = dist.pop(k) + radius
    return all(d >= own for d in dist)


# --- two views of one source ----------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """The two views as 3 x 3 maps from view pixel coordinates to source coordinates.

    Coordinates are continuous with pixel centres at ``i + 0.5`` (PIL's convention).
    """

    a_to_source: np.ndarray
    b_to_source: np.ndarray
    zoom: float
    """View B's magnification relative to view A."""
    rotation: float
    """Counter-clockwise rotation of view B's content in degrees (after mirroring)."""
    flip: bool
    """Whether view B is mirrored left to right (before rotating)."""
    warped: bool
    """Whether view B has a perspective warp."""

    @cached_property
    def a_to_b(self) -> np.ndarray:
        """The map from view A coordinates to view B coordinates."""
        return np.linalg.solve(self.b_to_source, self.a_to_source)

    @cached_property
    def b_to_a(self) -> np.ndarray:
        """The map from view B coordinates to view A coordinates."""
        return np.linalg.solve(self.a_to_source, self.b_to_source)


@dataclass(frozen=True)
class ViewsB:
    """A batch of random views B: maps to the source and the transforms' parameters."""

    maps: np.ndarray
    zoom: np.ndarray
    rotation: np.ndarray
    flip: np.ndarray

    def geometry(self, a_map: np.ndarray, i: int, transform: str) -> Geometry:
        """View A with the ``i``-th view B."""
        return Geometry(
            a_map,
            self.maps[i],
            float(self.zoom[i]),
            float(self.rotation[i]),
            bool(self.flip[i]),
            transform == "perspective",
        )


def view_metadata(
    geo: Geometry, marked: np.ndarray, points: np.ndarray, truth: int, side: int
) -> dict[str, Any]:
    """JSON facts: the transform, and points in pixel coordinates (x right, y down)."""
    maps = {
        name: np.round(to_pixels(m), 8).tolist()
        for name, m in (
            ("a_to_b", geo.a_to_b),
            ("a_to_source", geo.a_to_source),
            ("b_to_source", geo.b_to_source),
        )
    }
    return {
        "zoom": round(geo.zoom, 4),
        "rotation": round(geo.rotation, 3),
        "flip": geo.flip,
        "perspective": geo.warped,
        "source_size": side,
        **maps,
        "point_a": np.round(marked - 0.5, 3).tolist(),
        "point_b": np.round(points[truth] - 0.5, 3).tolist(),
        "candidates": np.round(points - 0.5, 3).tolist(),
        "answer_index": truth,
    }
