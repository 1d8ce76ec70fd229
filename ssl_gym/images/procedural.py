"""Procedural outdoor scenes: the default image source, offline and fast.

Every image is a small landscape with an unmistakable up and down: a sky that is
brighter than the ground, a sun and clouds with flat, shaded undersides at the top,
a horizon at a random height, ground marks that narrow with perspective towards the
horizon, and trees, houses, poles and bushes standing on the ground, lit from the
sun's side and casting shadows away from it. Multi-scale noise covers everything, so
no crop is flat and the tiles of a grid differ from each other.

Geometry is drawn in coordinates relative to the image, so one index renders the same
scene at every size; only the finest grain depends on the resolution.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ssl_gym.images.base import ImageSource

Color = tuple[float, float, float]
Point = tuple[float, float]

_DEFAULT_SHAPE = (256, 256)
_POOL = 256
"""Scalar random numbers drawn per generator call while laying out a scene."""

#: Luminance value-noise layers: (cells across the shorter side, amplitude).
_LUMA_LAYERS = ((4, 12.0), (10, 18.0), (32, 12.0))
_COLOUR_CELLS, _COLOUR_AMP = 3, 22.0
"""Cells across the shorter side and amplitude of the per-channel colour noise."""
_GRAIN, _GRAIN_SIZE = 6, 1024
"""Amplitude of the per-pixel grain, and the side of the cached grain texture."""
_BLAS_BLOCK = 131_072
"""Largest m * n * k of one BLAS call. OpenBLAS runs products below 4 * 65536 on the
calling thread; larger ones wake its thread pool, which is 10-20x slower than one thread
when the cores are busy (as in vectorised environments)."""


class ProceduralSource(ImageSource):
    """Synthetic outdoor scenes rendered directly at the requested size.

    ``render(index, shape)`` is a pure function of its arguments; :meth:`sample` draws
    the index from the caller's generator, so the same generator state always gives the
    same picture.
    """

    spec = "procedural"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self.render(_draw_index(rng), _DEFAULT_SHAPE)

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        """A random scene rendered at ``shape``, keyed ``scene:<index>`` (its seed)."""
        index = _draw_index(rng)
        return self.render(index, shape), f"scene:{index}"

    def render(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """The scene number ``index`` as uint8 (shape[0], shape[1], 3).

        Args:
            index: Any non-negative integer; equal indices give equal scenes.
            shape: Height and width in pixels, each at least 1.

        Returns:
            A new, writable, C-contiguous uint8 array.

        Raises:
            ValueError: If ``index`` is not a non-negative integer or ``shape`` is not
                two positive integers.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        return _Scene(np.random.default_rng(int(index)), _check_shape(shape)).render()


def _draw_index(rng: np.random.Generator) -> int:
    return int(rng.integers(2**63))


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    ok = isinstance(shape, tuple | list) and len(shape) == 2
    ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in shape)
    if not ok or min(shape) < 1:
        raise ValueError(f"shape must be (height, width) with positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


# --- colours -----------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255.0, g * 255.0, b * 255.0)


def _mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _scale(c: Color, f: float) -> Color:
    return (c[0] * f, c[1] * f, c[2] * f)


def _luma(c: Color) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _ink(c: Color) -> tuple[int, int, int]:
    """A colour as PIL wants it: clipped integer RGB."""
    r, g, b = int(c[0]), int(c[1]), int(c[2])
    return (
        0 if r < 0 else 255 if r > 255 else r,
        0 if g < 0 else 255 if g > 255 else g,
        0 if b < 0 else 255 if b > 255 else b,
    )


# --- noise -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _upsample_matrix(cells: int, size: int) -> np.ndarray:
    """Bilinear interpolation weights (size, cells) from a coarse grid to ``size`` pixels."""
    pos = (np.arange(size, dtype=np.float64) + 0.5) * (cells / size) - 0.5
    pos = np.clip(pos, 0.0, cells - 1.0)
    lo = np.minimum(np.floor(pos).astype(np.intp), max(cells - 2, 0))
    frac = pos - lo
    weights = np.zeros((size, cells))
    rows = np.arange(size)
    weights[rows, lo] = 1.0 - frac
    if cells > 1:
        weights[rows, lo + 1] += frac
    weights.flags.writeable = False
    return weights


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for BLAS to stay on the calling thread."""
    rows, inner = a.shape
    step = max(1, _BLAS_BLOCK // max(inner * b.shape[1], 1))
    if rows <= step:
        return a @ b
    blocks = -(-rows // step)
    padded = np.zeros((blocks * step, inner), dtype=a.dtype)
    padded[:rows] = a
    return np.matmul(padded.reshape(blocks, step, inner), b).reshape(blocks * step, -1)[:rows]


def _grid_dims(cells: int, h: int, w: int) -> tuple[int, int]:
    short = min(h, w)
    return max(2, round(cells * h / short) + 1), max(2, round(cells * w / short) + 1)


@lru_cache(maxsize=64)
def _noise_basis(h: int, w: int) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, int], ...]]:
    """Stacked interpolation matrices of all luminance layers and their grid sizes."""
    dims = tuple(_grid_dims(cells, h, w) for cells, _amp in _LUMA_LAYERS)
    ry = np.concatenate([_upsample_matrix(gh, h) for gh, _gw in dims], axis=1)
    rxt = np.ascontiguousarray(np.concatenate([_upsample_matrix(gw, w) for _gh, gw in dims], 1).T)
    ry.flags.writeable = rxt.flags.writeable = False
    return ry, rxt, dims


@lru_cache(maxsize=1)
def _grain_texture() -> np.ndarray:
    """A fixed per-pixel grain texture; images take a window of it at a random offset."""
    grain = np.random.default_rng(0x55106).integers(-_GRAIN, _GRAIN + 1, (_GRAIN_SIZE,) * 2)
    out = grain.astype(np.int16)
    out.flags.writeable = False
    return out


def _luma_noise(rng: np.random.Generator, h: int, w: int, ramp: np.ndarray) -> np.ndarray:
    """Multi-scale luminance noise plus grain and the side-light ramp, int16 (H, W)."""
    ry, rxt, dims = _noise_basis(h, w)
    grid = np.zeros((ry.shape[1], rxt.shape[0]))
    r = c = 0
    for (gh, gw), (_cells, amp) in zip(dims, _LUMA_LAYERS, strict=True):
        grid[r : r + gh, c : c + gw] = rng.uniform(-amp, amp, (gh, gw))
        r, c = r + gh, c + gw
    out = np.empty((h, w), dtype=np.int16)
    np.add(_matmul(_matmul(ry, grid), rxt), ramp, out=out, casting="unsafe")  # truncates
    if h <= _GRAIN_SIZE and w <= _GRAIN_SIZE:
        top, left = rng.integers(0, _GRAIN_SIZE - h + 1), rng.integers(0, _GRAIN_SIZE - w + 1)
        out += _grain_texture()[top : top + h, left : left + w]
    else:
        out += rng.integers(-_GRAIN, _GRAIN + 1, (h, w), dtype=np.int16)
    return out


def _colour_noise(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Coarse, independent noise per colour channel, three int16 (H, W) planes."""
    gh, gw = _grid_dims(_COLOUR_CELLS, h, w)
    ry, rxt = _upsample_matrix(gh, h), _upsample_matrix(gw, w).T
    grids = rng.uniform(-_COLOUR_AMP, _COLOUR_AMP, (3, gh, gw))
    return [_matmul(_matmul(ry, g), rxt).astype(np.int16) for g in grids]


def _add_noise(canvas: Image.Image, rng: np.random.Generator, ramp: np.ndarray) -> np.ndarray:
    """The canvas with all the noise added, as a new uint8 (H, W, 3) array.

    Each channel's noise (luminance plus its colour noise) is clipped to [-128, 127],
    added to the canvas and the sum clipped to [0, 255], in one int16 buffer.
    """
    w, h = canvas.size
    lum = _luma_noise(rng, h, w, ramp)
    out = np.empty((h, w, 3), dtype=np.int16)
    for channel, col in enumerate(_colour_noise(rng, h, w)):
        np.add(col, lum, out=out[:, :, channel])
    np.clip(out, -128, 127, out=out)
    out += np.asarray(canvas)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


# --- the scene ---------------------------------------------------------------------------


class _Scene:
    """One scene being drawn: palette, layout and a PIL canvas.

    Scalar random numbers come from a pool drawn in one call (much faster than one
    generator call each); the pool refills from the same generator when it runs out.
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int]) -> None:
        self.rng = rng
        self._next = iter(rng.random(_POOL).tolist()).__next__
        self.h, self.w = shape
        self.s = float(min(shape))
        self.light = 1.0 if self.chance(0.5) else -1.0
        """+1 when the light comes from the left, -1 from the right."""
        self.horizon = self.u(0.3, 0.66) * self.h
        self._palette()

    # -- randomness --

    def rand(self) -> float:
        """A uniform draw in [0, 1)."""
        try:
            return self._next()
        except StopIteration:
            self._next = iter(self.rng.random(_POOL).tolist()).__next__
            return self._next()

    def u(self, lo: float, hi: float) -> float:
        """A uniform draw in [lo, hi)."""
        try:
            return lo + (hi - lo) * self._next()
        except StopIteration:
            return lo + (hi - lo) * self.rand()

    def count(self, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi)."""
        return lo + int((hi - lo) * self.rand())

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rand() < p

    # -- colours --

    def _palette(self) -> None:
        u = self.u
        sky_h = u(0.52, 0.68) if self.chance(0.65) else u(0.0, 1.0)
        sat = u(0.2, 0.75)
        self.sky_top = _hsv(sky_h, sat, u(0.62, 0.88))
        self.sky_low = _hsv(sky_h + u(-0.06, 0.06), sat * u(0.2, 0.6), u(0.86, 1.0))
        gr_h = u(0.06, 0.38) if self.chance(0.7) else u(0.0, 1.0)
        self.ground_far = _hsv(gr_h, u(0.25, 0.7), u(0.4, 0.7))
        self.ground_near = _hsv(gr_h + u(-0.05, 0.05), u(0.35, 0.85), u(0.25, 0.55))
        # Keep the ground darker than the sky: the main "this way up" cue.
        sky_luma = 0.5 * (_luma(self.sky_top) + _luma(self.sky_low))
        ground_luma = 0.5 * (_luma(self.ground_far) + _luma(self.ground_near))
        factor = min(1.0, max(0.2, (sky_luma - 45.0) / max(ground_luma, 1.0)))
        self.ground_far = _scale(self.ground_far, factor)
        self.ground_near = _scale(self.ground_near, factor)
        self.haze = _mix(self.sky_low, self.ground_far, u(0.25, 0.6))

    def sky_at(self, y: float) -> Color:
        """The sky colour at row ``y``."""
        t = min(max(y / max(self.horizon, 1.0), 0.0), 1.0) ** 0.8
        return _mix(self.sky_top, self.sky_low, t)

    def ground_at(self, y: float) -> Color:
        """The ground colour at row ``y``."""
        t = (y - self.horizon) / max(self.h - self.horizon, 1.0)
        return _mix(self.ground_far, self.ground_near, min(max(t, 0.0), 1.0))

    def lit(self, base: Color) -> tuple[Color, Color]:
        """(left colour, right colour) of an object's two sides under the light."""
        bright, dark = _scale(base, 1.18), _scale(base, 0.68)
        return (bright, dark) if self.light > 0 else (dark, bright)

    def leaf(self) -> Color:
        """A foliage colour: mostly greens, sometimes anything."""
        hue = self.u(0.2, 0.45) if self.chance(0.8) else self.rand()
        return _hsv(hue, self.u(0.35, 0.85), self.u(0.25, 0.6))

    def width(self, fraction: float) -> int:
        """A line width of ``fraction`` of the image's shorter side, at least 1 pixel."""
        return max(1, int(self.s * fraction))

    # -- drawing --

    def render(self) -> np.ndarray:
        canvas = self._background()
        self.draw = ImageDraw.Draw(canvas)
        self._sun()
        self._clouds()
        self._birds()
        self._mountains()
        self._ground_marks()
        self._objects()
        x = (np.arange(self.w) + 0.5) / self.w
        ramp = (self.light * self.u(10.0, 25.0)) * (0.5 - x)
        return _add_noise(canvas, self.rng, ramp)

    def _background(self) -> Image.Image:
        """Sky and ground gradients, one colour per row."""
        h, hz = self.h, self.horizon
        y = np.arange(h, dtype=np.float64)[:, None] + 0.5
        t_sky = np.clip(y / max(hz, 1.0), 0.0, 1.0) ** 0.8
        t_gnd = np.clip((y - hz) / max(h - hz, 1.0), 0.0, 1.0)
        sky_top, ground_far = np.array(self.sky_top), np.array(self.ground_far)
        sky = sky_top + t_sky * (np.array(self.sky_low) - sky_top)
        gnd = ground_far + t_gnd * (np.array(self.ground_near) - ground_far)
        column = np.clip(np.where(y < hz, sky, gnd), 0.0, 255.0).astype(np.uint8)
        strip = Image.fromarray(column[:, None, :])
        return strip.resize((self.w, h), Image.Resampling.NEAREST)

    def _sun(self) -> None:
        if not self.chance(0.8):
            return
        x = self.w * (0.5 - self.light * self.u(0.12, 0.42))
        y = self.horizon * self.u(0.12, 0.5)
        r = self.s * self.u(0.035, 0.075)
        sun = _hsv(self.u(0.1, 0.17), self.u(0.05, 0.45), 1.0)
        halo = 2.2 * r
        self.draw.ellipse(
            (x - halo, y - halo, x + halo, y + halo), fill=_ink(_mix(self.sky_at(y), sun, 0.3))
        )
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=_ink(sun))

    def _clouds(self) -> None:
        white = _mix(self.sky_low, (255.0, 255.0, 255.0), self.u(0.5, 0.9))
        shade = _ink(_mix(white, (90.0, 95.0, 110.0), self.u(0.25, 0.45)))
        lit = _ink(white)
        for _ in range(self.count(1, 4)):
            cx = self.rand() * self.w
            cy = self.horizon * self.u(0.15, 0.75)
            width = self.s * self.u(0.15, 0.4)
            puffs = []
            for _ in range(self.count(3, 6)):
                r = width * self.u(0.12, 0.26)
                puffs.append((cx + width * self.u(-0.5, 0.5), cy - 0.5 * r, r))
            for px, py, r in puffs:  # flat, shaded underside
                self.draw.ellipse((px - r, py - r, px + r, py + 0.5 * r), fill=shade)
            for px, py, r in puffs:  # tops lit from above and from the light's side
                q, px2, py2 = 0.8 * r, px - 0.15 * r * self.light, py - 0.3 * r
                self.draw.ellipse((px2 - q, py2 - q, px2 + q, py2 + 0.5 * q), fill=lit)

    def _birds(self) -> None:
        ink = _ink(_scale(self.sky_top, 0.35))
        width = self.width(1 / 180)
        for _ in range(self.count(0, 4)):
            x, y = self.u(0.05, 0.95) * self.w, self.horizon * self.u(0.1, 0.7)
            d = self.s * self.u(0.012, 0.03)
            self.draw.line(
                [(x - d, y - 0.6 * d), (x, y), (x + d, y - 0.6 * d)], fill=ink, width=width
            )

    def _mountains(self) -> None:
        if not self.chance(0.65):
            return
        hz, w = self.horizon, self.w
        n = self.count(4, 10)
        peak = hz * self.u(0.12, 0.4)
        pts: list[Point] = [(0.0, hz + 1)]
        for i in range(n + 1):
            pts.append((w * (i + self.u(-0.4, 0.4)) / n, hz - peak * self.u(0.15, 1.0)))
        pts.append((float(w), hz + 1))
        self.draw.polygon(pts, fill=_ink(self.haze))
        # a lit flank on each peak, on the light's side
        lit = _ink(_mix(self.haze, self.sky_low, 0.35))
        for (x0, y0), (x1, y1) in itertools.pairwise(pts[1:-1]):
            top, low = ((x0, y0), (x1, y1)) if y0 < y1 else ((x1, y1), (x0, y0))
            if (low[0] - top[0]) * self.light < 0:
                self.draw.polygon([top, low, (top[0], hz + 1)], fill=lit)

    def _ground_marks(self) -> None:
        hz, depth, w = self.horizon, self.h - self.horizon, self.w
        n = self.count(5, 11)
        power = self.u(1.5, 2.2)
        edges = [hz + depth * (k / n) ** power for k in range(n + 1)]
        for k in range(n):  # bands that narrow towards the horizon
            tint = self.u(0.85, 1.12)
            self.draw.rectangle(
                (0, edges[k], w, edges[k + 1]), fill=_ink(_scale(self.ground_at(edges[k]), tint))
            )
        vx = w * self.u(0.15, 0.85)
        if self.chance(0.5):
            self._furrows(vx)
        if self.chance(0.4):
            self._road(vx)
        self._pebbles()

    def _furrows(self, vx: float) -> None:
        hz, h, w = self.horizon, self.h, self.w
        ink = _ink(_scale(self.ground_near, self.u(0.6, 0.8)))
        m = self.count(6, 14)
        t = 0.06
        y0 = hz + (h - hz) * t
        for i in range(m):  # lines converging on a vanishing point on the horizon
            xb = w * (3 * (i + 0.5) / m - 1)
            self.draw.line([(vx + (xb - vx) * t, y0), (xb, h)], fill=ink, width=self.width(0.006))

    def _road(self, vx: float) -> None:
        hz, h = self.horizon, self.h
        half = self.s * self.u(0.12, 0.3)
        xb = vx + self.u(-0.3, 0.3) * self.w
        road = _hsv(self.rand(), self.u(0.0, 0.25), self.u(0.3, 0.6))
        self.draw.polygon(
            [(vx - 1, hz), (vx + 1, hz), (xb + half, h), (xb - half, h)], fill=_ink(road)
        )
        line = _ink(_mix(road, (250.0, 240.0, 200.0), 0.8))
        for k in range(5):  # dashes that lengthen and widen towards the viewer
            t0, t1 = ((k + 0.2) / 5) ** 2, ((k + 0.6) / 5) ** 2
            pts = [(vx + (xb - vx) * t, hz + (h - hz) * t) for t in (t0, t1)]
            self.draw.line(pts, fill=line, width=self.width(0.012 * (t0 + 0.2)))

    def _pebbles(self) -> None:
        hz, h = self.horizon, self.h
        for _ in range(self.count(3, 9)):
            t = self.u(0.05, 1.0)
            x, y = self.rand() * self.w, hz + (h - hz) * t
            r = self.s * 0.02 * (0.3 + t) * self.u(0.5, 1.5)
            color = _hsv(self.rand(), self.u(0.2, 0.9), self.u(0.35, 0.95))
            self.draw.pieslice((x - r, y - r, x + r, y + r), 180, 360, fill=_ink(color))

    # -- things standing on the ground --

    def _objects(self) -> None:
        hz, h = self.horizon, self.h
        if self.chance(0.35):
            self._fence(hz + (h - hz) * self.u(0.1, 0.5))
        kinds = (self._pine, self._round_tree, self._house, self._pole, self._bush)
        cumulative = (0.25, 0.5, 0.7, 0.82, 1.0)
        depths = sorted(self.rand() ** 0.8 for _ in range(self.count(3, 8)))
        for d in depths:  # far to near, so near things cover far ones
            pick = self.rand()
            kind = next(k for k, c in zip(kinds, cumulative, strict=True) if pick < c)
            y = hz + (h - hz) * (0.03 + 1.05 * d)
            x = self.u(-0.05, 1.05) * self.w
            size = self.s * (0.1 + 0.45 * d) * self.u(0.75, 1.3)
            self._shadow(x, y, size)
            kind(x, y, size)

    def _shadow(self, x: float, y: float, size: float) -> None:
        cx, rx, ry = x - self.light * 0.35 * size, 0.45 * size, 0.05 * size
        self.draw.ellipse(
            (cx - rx, y - ry, cx + rx, y + ry), fill=_ink(_scale(self.ground_at(y), 0.6))
        )

    def _split(self, apex: Point, left: Point, right: Point, base: Color) -> None:
        """A triangle split down the middle into a lit and a shaded half."""
        mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
        c_left, c_right = self.lit(base)
        self.draw.polygon([apex, left, mid], fill=_ink(c_left))
        self.draw.polygon([apex, mid, right], fill=_ink(c_right))

    def _trunk(self, x: float, y: float, half: float, height: float) -> None:
        bark = _hsv(self.u(0.03, 0.1), self.u(0.3, 0.7), self.u(0.2, 0.45))
        c_left, c_right = self.lit(bark)
        self.draw.rectangle((x - half, y - height, x, y), fill=_ink(c_left))
        self.draw.rectangle((x, y - height, x + half, y), fill=_ink(c_right))

    def _pine(self, x: float, y: float, size: float) -> None:
        self._trunk(x, y, 0.05 * size, 0.3 * size)
        leaf = self.leaf()
        tiers = self.count(2, 4)
        top, bottom = y - size * 1.3, y - 0.2 * size
        for i in range(tiers):
            y0 = top + (bottom - top) * 0.8 * i / tiers
            y1 = top + (bottom - top) * min((i + 1.6) / tiers, 1.0)
            half = 0.18 * size + 0.22 * size * (i + 1) / tiers
            self._split((x, y0), (x - half, y1), (x + half, y1), _scale(leaf, 1.0 + 0.06 * i))
        zigzag = [  # branches: a zigzag between the flanks, from the tip down
            (x + (0.3 * size * k / 12) * (1 if k % 2 else -1), top + (bottom - top) * k / 12)
            for k in range(1, 12)
        ]
        self.draw.line(zigzag, fill=_ink(_scale(leaf, 0.55)), width=self.width(1 / 224))

    def _round_tree(self, x: float, y: float, size: float) -> None:
        self._trunk(x, y, 0.06 * size, 0.55 * size)
        leaf = self.leaf()
        r = size * self.u(0.3, 0.42)
        cy = y - 0.55 * size - 0.7 * r
        self.draw.ellipse((x - r, cy - r, x + r, cy + r), fill=_ink(_scale(leaf, 0.7)))
        q = 0.7 * r
        hx, hy = x - self.light * 0.22 * r, cy - 0.25 * r
        self.draw.ellipse((hx - q, hy - q, hx + q, hy + q), fill=_ink(leaf))
        bright = _ink(_scale(leaf, 1.3))
        for _ in range(3):  # leafy highlights
            bx, by, b = hx + self.u(-0.6, 0.4) * q, hy + self.u(-0.7, 0.2) * q, 0.3 * q
            self.draw.ellipse((bx - b, by - b, bx + b, by + b), fill=bright)

    def _house(self, x: float, y: float, size: float) -> None:
        wd, ht = size * self.u(0.7, 1.2), size * self.u(0.45, 0.75)
        x0, x1, top = x - wd / 2, x + wd / 2, y - ht
        wall = _hsv(self.rand(), self.u(0.1, 0.55), self.u(0.55, 0.95))
        c_left, c_right = self.lit(wall)
        depth = wd * 0.3 * (1 if self.chance(0.5) else -1)  # side wall on a random side
        side_x = x1 if depth > 0 else x0
        side, front = (c_right, c_left) if depth > 0 else (c_left, c_right)
        rise = 0.12 * wd
        self.draw.polygon(
            [(side_x, y), (side_x, top), (side_x + depth, top - rise), (side_x + depth, y - rise)],
            fill=_ink(side),
        )
        self.draw.rectangle((x0, top, x1, y), fill=_ink(_mix(front, wall, 0.5)))
        siding, rows = _ink(_scale(wall, 0.8)), self.count(3, 8)
        for i in range(1, rows):
            yy = top + ht * i / rows
            self.draw.line([(x0, yy), (x1, yy)], fill=siding, width=max(1, int(size / 90)))
        roof_hue = self.u(0.95, 1.1) if self.chance(0.6) else self.rand()
        roof = _hsv(roof_hue, self.u(0.3, 0.8), self.u(0.3, 0.6))
        peak = top - ht * self.u(0.35, 0.7)
        self._split((x, peak), (x0 - 0.08 * wd, top), (x1 + 0.08 * wd, top), roof)
        self._door_and_windows(x0, x1, top, y)

    def _door_and_windows(self, x0: float, x1: float, top: float, y: float) -> None:
        wd, ht = x1 - x0, y - top
        door_x = x0 + wd * self.u(0.15, 0.7)
        door = _hsv(self.rand(), self.u(0.3, 0.8), self.u(0.2, 0.5))
        self.draw.rectangle((door_x, y - 0.55 * ht, door_x + 0.18 * wd, y), fill=_ink(door))
        glass = _mix(self.sky_low, (40.0, 50.0, 70.0), self.u(0.2, 0.7))
        frame, pane, shine = _ink(_scale(glass, 0.4)), _ink(glass), _ink(_scale(glass, 1.25))
        ww, wy = 0.16 * wd, top + 0.2 * ht
        for wx in (x0 + 0.08 * wd, x1 - 0.08 * wd - ww):
            if door_x - ww < wx < door_x + 0.18 * wd:
                continue
            self.draw.rectangle((wx, wy, wx + ww, wy + 0.3 * ht), fill=pane)
            self.draw.rectangle((wx, wy, wx + ww, wy + 0.1 * ht), fill=shine)
            self.draw.line([(wx + ww / 2, wy), (wx + ww / 2, wy + 0.3 * ht)], fill=frame)

    def _pole(self, x: float, y: float, size: float) -> None:
        wood = _hsv(self.u(0.02, 0.12), self.u(0.1, 0.6), self.u(0.15, 0.4))
        half, top = 0.035 * size, y - 1.6 * size
        c_left, c_right = self.lit(wood)
        self.draw.rectangle((x - half, top, x, y), fill=_ink(c_left))
        self.draw.rectangle((x, top, x + half, y), fill=_ink(c_right))
        arm, bar = 0.3 * size, top + 0.1 * size
        self.draw.rectangle((x - arm, bar, x + arm, bar + 3 * half), fill=_ink(wood))
        wire, width = _ink(_scale(wood, 0.6)), max(1, int(size / 120))
        for end in (x - arm, x + arm):  # wires sagging under their weight
            far = end + (self.w + size) * (1 if end > x else -1)
            sag = self.u(0.05, 0.15) * self.h
            self.draw.line(
                [(end, bar), ((end + far) / 2, bar + sag), (far, bar + 0.3 * sag)],
                fill=wire,
                width=width,
            )

    def _bush(self, x: float, y: float, size: float) -> None:
        r = size * self.u(0.25, 0.45)
        leaf = self.leaf() if self.chance(0.7) else _hsv(0.0, 0.0, self.u(0.3, 0.6))
        self.draw.pieslice((x - r, y - r, x + r, y + r), 180, 360, fill=_ink(_scale(leaf, 0.7)))
        q, hx, hy = 0.65 * r, x - self.light * 0.2 * r, y - 0.15 * r
        self.draw.pieslice((hx - q, hy - q, hx + q, hy + q), 180, 360, fill=_ink(leaf))

    def _fence(self, y: float) -> None:
        size = self.s * (0.05 + 0.2 * (y - self.horizon) / max(self.h - self.horizon, 1.0))
        wood = _hsv(self.u(0.05, 0.12), self.u(0.1, 0.5), self.u(0.35, 0.75))
        x0 = self.u(-0.2, 0.5) * self.w
        x1 = x0 + self.u(0.3, 0.8) * self.w
        rail, post = _ink(wood), _ink(_scale(wood, 0.8))
        for frac in (0.35, 0.75):
            yy = y - frac * size
            self.draw.rectangle((x0, yy - 0.04 * size, x1, yy + 0.04 * size), fill=rail)
        step = max(size * 0.35, (x1 - x0) / 14, 2.0)
        half = 0.05 * size
        for i in range(math.ceil((x1 - x0) / step) + 1):  # pointed posts
            px = x0 + i * step
            self.draw.polygon(
                [
                    (px - half, y),
                    (px - half, y - 0.9 * size),
                    (px, y - size),
                    (px + half, y - 0.9 * size),
                    (px + half, y),
                ],
                fill=post,
            )
