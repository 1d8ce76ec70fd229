"""Resizing, and drawn pictures whose pixels are made only where they are cut.

Every resize of a source picture is PIL's bilinear filter (:func:`resize_bilinear`).
Jigsaw, FlipPatch and Position cut a window of a scene 2.5 times larger than what they
show, so that a tile's content cannot tell its cell. A scene from a folder of photographs
is a resize of the whole file (a 640 x 480 JPEG becomes 747 x 560 for a 560 px scene), of
which a 224 px window keeps 12%. A :class:`Region` is that scene not yet made:
:meth:`Region.cut` resizes only the window, with :func:`resize_window`, which gives the
very bytes of PIL's resize of the whole picture, cropped.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from PIL import Image

from ssl_gym.render import orient

PRECISION_BITS = 22
"""Fractional bits of PIL's 8-bit resampling coefficients (``32 - 8 - 2``)."""


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (height, width) by PIL's bilinear filter (read-only)."""
    height, width = size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _bilinear_taps(
    in_size: int, out_size: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """PIL's bilinear taps of output pixels ``start`` to ``stop`` of an ``in_size`` resize.

    Returns the first input pixel of each and the fixed-point weights ``(n, ksize)``
    for a resize to ``out_size``: the arithmetic of Pillow's ``precompute_coeffs`` and
    ``normalize_coeffs_8bpc``, in the same order of float64 operations, so that the
    weights are the same integers.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter's support is 1
    ksize = math.ceil(support) * 2 + 1
    center = 0.0 + (np.arange(start, stop, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    count = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - first
    taps = np.arange(ksize)
    x = ((taps[None, :] + first[:, None]).astype(np.float64) - center[:, None] + 0.5) * (
        1.0 / filterscale
    )
    weights = np.where(taps[None, :] < count[:, None], np.maximum(1.0 - np.abs(x), 0.0), 0.0)
    total = np.zeros(len(center))
    for k in range(ksize):  # summed tap by tap, as in C
        total = total + weights[:, k]
    weights = np.divide(weights, total[:, None], out=weights, where=total[:, None] != 0.0)
    scaled = weights * float(1 << PRECISION_BITS)
    fixed = np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5)).astype(np.int32)
    return first, fixed


def _pass(image: np.ndarray, axis: int, first: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """One 8-bit resampling pass along ``axis`` (0: rows, 1: columns) of ``image``.

    Bilinear weights are never negative and sum to ``2**22`` give or take half a unit
    per tap, so the sums stay in ``[0, 256 * 2**22)`` and need no clipping.
    """
    size = image.shape[axis]
    if axis == 1:  # gather whole pixels of a (rows, width * 3) array: 2x faster
        image = np.ascontiguousarray(image).reshape(image.shape[0], -1)
    acc: np.ndarray | None = None
    for k in range(fixed.shape[1]):
        weight = fixed[:, k]
        if k and not weight.any():
            continue
        index = np.minimum(first + k, size - 1)  # a tap past the edge has weight 0
        if axis == 1:
            index = (index[:, None] * 3 + np.arange(3)).ravel()
            shaped = np.repeat(weight, 3)[None, :]
        else:
            shaped = weight[:, None, None]
        taken = image.take(index, axis=axis)
        if acc is None:
            acc = np.multiply(taken, shaped, dtype=np.int32)
        else:
            acc += taken * shaped
    assert acc is not None  # tap 0 is always taken
    acc += 1 << (PRECISION_BITS - 1)
    acc >>= PRECISION_BITS
    out = acc.astype(np.uint8)
    return out.reshape(out.shape[0], -1, 3) if axis == 1 else out


def _taps(
    in_size: int, out_size: int, start: int, stop: int
) -> tuple[int, int, tuple[np.ndarray, np.ndarray] | None]:
    """The input span ``[lo, hi)`` that output pixels ``start`` to ``stop`` read, and taps.

    The taps are shifted to the span; ``None`` when the axis keeps its size (PIL does
    not resample it).
    """
    if in_size == out_size:
        return start, stop, None
    first, fixed = _bilinear_taps(in_size, out_size, start, stop)
    lo = int(first.min())
    hi = min(int((first + fixed.shape[1]).max()), in_size)
    return lo, hi, (first - lo, fixed)


def _resize_part(
    image: np.ndarray,
    size: tuple[int, int],
    window: tuple[int, int, int, int],
    rows_first: bool,
) -> np.ndarray:
    """The window of ``image`` resized to ``size``, the two passes in the order given."""
    top, left, height, width = window
    y0, y1, row_taps = _taps(image.shape[0], size[0], top, top + height)
    x0, x1, col_taps = _taps(image.shape[1], size[1], left, left + width)
    part = image[y0:y1, x0:x1]
    passes = [(0, row_taps), (1, col_taps)]
    for axis, taps in passes if rows_first else passes[::-1]:
        if taps is not None:
            part = _pass(part, axis, *taps)
    return np.ascontiguousarray(part)


_ORDERS: dict[tuple[int, ...], bool | None] = {}
"""Per pair of sizes ``(H, W, height, width)``: whether this Pillow resamples the rows
first, or ``None`` where neither order gives its bytes. Absent until learnt."""
_ORDERS_LOCK = threading.Lock()


def _learn_order(
    key: tuple[int, ...],
    image: np.ndarray,
    size: tuple[int, int],
    window: tuple[int, int, int, int],
    want: np.ndarray,
) -> None:
    """Learn the pass order of ``key`` from a window PIL resized (``want``).

    Pillow picks the order of its two passes by the sizes (Pillow 13 runs the rows first
    for some, older ones never), and each pass rounds to 8 bits, so the order shows in
    the bytes. The one order that gives ``want`` is kept; none gives ``None`` (another
    algorithm: PIL resizes every window of these sizes); both (a window too flat to
    tell) leave it to the next window.
    """
    matches = [
        o for o in (False, True) if np.array_equal(_resize_part(image, size, window, o), want)
    ]
    if len(matches) < 2:
        with _ORDERS_LOCK:
            _ORDERS[key] = matches[0] if matches else None


def resize_window(
    image: np.ndarray, size: tuple[int, int], top: int, left: int, height: int, width: int
) -> np.ndarray:
    """``resize_bilinear(image, size)[top : top + height, left : left + width]``, made alone.

    Byte for byte what PIL's bilinear resize of the whole ``image`` to ``size``
    (height, width) holds in that window, at about the cost of the window: Pillow's
    fixed-point taps (``precompute_coeffs``, ``normalize_coeffs_8bpc``), each pass on
    the span of input the window reads, in the order this Pillow takes for these sizes.
    PIL's resize of the whole picture, cropped, gives the window instead where that is
    faster (a window over a third of the resize), for the first window of a pair of
    sizes, which tells the order (:func:`_learn_order`), and where no order gives
    Pillow's bytes (another algorithm in a future Pillow).

    Args:
        image: uint8 ``(H, W, 3)``.
        size: The whole resize's ``(height, width)``.
        top: The window's first row, in the whole resize.
        left: The window's first column.
        height: The window's rows.
        width: The window's columns.

    Raises:
        ValueError: If the window is empty or not inside ``size``.
    """
    window = (top, left, height, width)
    if min(window) < 0 or height < 1 or width < 1:
        raise ValueError(f"window {window} (top, left, height, width) must be non-empty")
    if top + height > size[0] or left + width > size[1]:
        raise ValueError(f"window {window} (top, left, height, width) is not inside {size}")
    in_shape = (int(image.shape[0]), int(image.shape[1]))
    if in_shape == tuple(size):  # no pass
        return image[top : top + height, left : left + width].copy()
    key = (*in_shape, *size)
    learnt = key in _ORDERS
    large = height * width > size[0] * size[1] // 3  # PIL's whole resize is then faster
    if large or not learnt or _ORDERS[key] is None:  # PIL's whole resize, cropped
        want = resize_bilinear(image, size)[top : top + height, left : left + width].copy()
        if not learnt and not large:  # (a large window would cost two resizes to learn)
            _learn_order(key, image, size, window, want)
        return want
    return _resize_part(image, size, window, bool(_ORDERS[key]))


class Region:
    """A picture of ``shape`` whose pixels are made where :meth:`cut` asks for them.

    Either a made picture (:meth:`of`), or the window ``(top, left)`` of a bilinear
    resize of ``image`` to ``resized`` that :func:`fit <ssl_gym.images.base.fit>` would
    have made and cropped.
    """

    def __init__(
        self,
        image: np.ndarray,
        shape: tuple[int, int],
        resized: tuple[int, int] | None = None,
        offset: tuple[int, int] = (0, 0),
    ) -> None:
        self.image = image
        self.shape = (int(shape[0]), int(shape[1]))
        self.resized = resized
        self.offset = offset

    @classmethod
    def of(cls, image: np.ndarray) -> Region:
        """A picture already made, which the region owns (:meth:`array` may give it back)."""
        return cls(image, image.shape[:2])

    def array(self) -> np.ndarray:
        """The whole picture (writable): a made one itself when it is writable and whole."""
        made = self.resized is None and self.image.shape[:2] == self.shape
        if made and self.image.flags.writeable and self.image.flags.c_contiguous:
            return self.image
        return self.cut(0, 0, *self.shape)

    def cut(
        self, top: int, left: int, height: int, width: int, orientation: str = "identity"
    ) -> np.ndarray:
        """``orient(picture, orientation)[top : top + height, left : left + width]``, writable.

        Args:
            top: The window's first row, in the oriented picture.
            left: The window's first column.
            height: The window's rows.
            width: The window's columns.
            orientation: One of :data:`ssl_gym.render.DIHEDRAL` (quarter turns, transposes:
                square pictures only).
        """
        h, w = self.shape
        if orientation != "identity":  # where the window lies in the picture as it is
            ys = np.broadcast_to(np.arange(h)[:, None, None], (h, w, 1))  # views: no memory
            xs = np.broadcast_to(np.arange(w)[None, :, None], (h, w, 1))
            corners = [top, top + height - 1], [left, left + width - 1]
            rows = orient(ys, orientation)[corners][:, 0]
            cols = orient(xs, orientation)[corners][:, 0]
            y0, x0 = int(rows.min()), int(cols.min())
            part = self.cut(y0, x0, int(rows.max()) - y0 + 1, int(cols.max()) - x0 + 1)
            return np.ascontiguousarray(orient(part, orientation))
        if top < 0 or left < 0 or top + height > h or left + width > w:
            raise ValueError(f"window {(top, left, height, width)} is not inside {self.shape}")
        if self.resized is None:
            return self.image[top : top + height, left : left + width].copy()
        y, x = self.offset
        return resize_window(self.image, self.resized, y + top, x + left, height, width)
