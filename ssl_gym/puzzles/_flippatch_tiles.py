"""How FlipPatch's tiles are drawn, and which of their flips can be seen.

:func:`draw_tiles` cuts the grid's tiles from a scene: upright, the scene at the grid's
size; in random mode, a random window of a larger, freely turned or flipped square
scene, every tile cut at a random one-pixel phase in its cell, so that neither a tile's
content nor the parity of its pixels tells its cell or its flip. :func:`visible_flips`
says which tiles may be flipped in which direction (the flip must show, and the two
flips must differ), measured on the pixels the observation shows
(:func:`pixel_weights`), and rejects draws with a near-uniform tile.
"""

from __future__ import annotations

import math

import numpy as np

from ssl_gym.core import Rejected
from ssl_gym.images.base import ImageSource
from ssl_gym.render import random_orientation_name


def draw_tiles(
    rng: np.random.Generator,
    source: ImageSource,
    shape: tuple[int, int],
    side: int,
    orientation: str,
    context: float,
) -> tuple[np.ndarray, str]:
    """The tiles of the scene in row-major order, ``(n, side, side, 3)``, and its key.

    Upright: the scene at exactly the grid's size, cut into equal tiles. Random: a
    random window of a larger square scene, randomly turned or flipped (see
    ``context``), in cells one pixel larger than a tile, each tile cut at a random
    offset (0 or 1) in its cell; so the parity of the rows
    and columns a tile shows is random for every tile, and flipping a tile (which
    swaps the parity of an even side) leaves no trace in pixel-phase statistics.

    Args:
        rng: The draw's generator.
        source: Where scenes come from.
        shape: Rows and columns of the grid.
        side: Side of a tile in pixels.
        orientation: ``random`` or ``upright``.
        context: In random mode, how many times larger than the grid the scene is.

    Returns:
        The tiles and the scene's source key (``ImageSource.draw``).
    """
    rows, cols = shape
    if orientation == "upright":
        image, key = source.draw(rng, (rows * side, cols * side))
        grid = image.reshape(rows, side, cols, side, 3).swapaxes(1, 2)
        return grid.reshape(-1, side, side, 3), key
    cell, n = side + 1, rows * cols
    scene, key = _window(rng, source, rows * cell, cols * cell, context)
    offsets = rng.integers(0, 2, size=(n, 2))
    cells = divmod(np.arange(n), cols)
    tops, lefts = cells[0] * cell + offsets[:, 0], cells[1] * cell + offsets[:, 1]
    tiles = [scene[y : y + side, x : x + side] for y, x in zip(tops, lefts, strict=True)]
    return np.stack(tiles), key


def _window(
    rng: np.random.Generator, source: ImageSource, height: int, width: int, context: float
) -> tuple[np.ndarray, str]:
    """A random ``height x width`` window of a larger square scene, randomly oriented."""
    side = math.ceil(max(height, width) * context)
    scene, key = source.draw_region(rng, (side, side))  # square: quarter turns keep its shape
    name = random_orientation_name(rng, quarter_turns=True)
    top, left = (int(rng.integers(side - n + 1)) for n in (height, width))
    return scene.cut(top, left, height, width, name), key  # only the window is made


def pixel_weights(shown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the pixels the observation shows, on every second pixel of each tile.

    Args:
        shown: ``(n, side, side)`` booleans, true where the observation shows the tile.

    Returns:
        ``(n, pixels)`` per pixel and ``(n, pixels * 3)`` per value, each row summing to 1.
    """
    pixel = shown[:, ::2, ::2].reshape(len(shown), -1).astype(np.float32)
    pixel /= pixel.sum(axis=1, keepdims=True)
    return pixel, np.repeat(pixel, 3, axis=1) / 3.0


def visible_flips(
    tiles: np.ndarray,
    weights: tuple[np.ndarray, np.ndarray],
    min_std: float,
    min_flip_diff: float,
) -> np.ndarray:
    """``(n, 2)`` booleans: is the tile's horizontal / vertical flip clearly visible.

    Measured on the pixels the observation shows (inside the border, outside the
    number box: ``weights``, from :func:`pixel_weights`). A flip is visible when the
    flipped tile differs from the original by ``min_flip_diff``; both flips also need
    the two flips to differ from each other (else the direction is ambiguous: the tile
    looks the same rotated by 180 degrees).

    Raises:
        Rejected: ``flat_tile``, when a tile's pixel standard deviation is below
            ``min_std``.
    """
    pixel, value = weights
    n = len(tiles)
    t = tiles[:, ::2, ::2].astype(np.float32).reshape(n, -1, 3)
    colour = np.matmul(pixel[:, None], t)[:, 0]
    spread = np.einsum("np,np->n", t.reshape(n, -1) ** 2, value) - (colour**2).mean(axis=1)
    if (np.sqrt(np.maximum(spread, 0.0)) < min_std).any():
        raise Rejected("flat_tile")
    mirrored = (  # flips sampled at the same pixels as ``t``
        tiles[:, ::2, ::-1][:, :, ::2],
        tiles[:, ::-1][:, ::2, ::2],
        tiles[:, ::-1, ::-1][:, ::2, ::2],
    )
    h, v, both = (
        np.einsum("np,np->n", np.abs(t.reshape(n, -1) - m.reshape(n, -1)), value) >= min_flip_diff
        for m in mirrored
    )
    return np.stack([h & both, v & both], axis=1)
