"""How Jigsaw's tiles are drawn: the scene they are cut from, the cut, and the checks.

:func:`scene_window` draws the picture to cut, a random window of a larger scene (square
and freely turned or flipped in random mode), so that a tile's content does not tell
its cell; :func:`cut_tiles` cuts it into the grid's tiles, each at a random offset inside
its cell when cuts are jittered; :func:`check_tiles` rejects draws with a near-uniform
tile (``flat_tile``) or two tiles that look alike (``near_duplicate_tiles``), which
would make the answer ambiguous.
"""

from __future__ import annotations

import math

import numpy as np

from ssl_gym.core import Rejected
from ssl_gym.images.base import ImageSource
from ssl_gym.render import random_orientation_name


def scene_window(
    rng: np.random.Generator,
    source: ImageSource,
    shape: tuple[int, int],
    orientation: str,
    context: float,
) -> tuple[np.ndarray, str]:
    """The image to cut (a random window of a larger scene, randomly oriented), its key.

    Args:
        rng: The draw's generator.
        source: Where scenes come from.
        shape: The window's ``(height, width)``.
        orientation: ``random`` (a square scene, turned or flipped by one of the eight
            symmetries of the square) or ``upright`` (the scene as it comes).
        context: How many times larger than the window the scene is.

    Returns:
        The window and the scene's source key (``ImageSource.draw``).
    """
    height, width = shape
    name = "identity"
    if orientation == "random":  # square, so that quarter turns keep its shape
        side = math.ceil(max(height, width) * context)
        scene, key = source.draw_region(rng, (side, side))
        name = random_orientation_name(rng, quarter_turns=True)
    else:
        scene_shape = (math.ceil(height * context), math.ceil(width * context))
        scene, key = source.draw_region(rng, scene_shape)
    top = int(rng.integers(scene.shape[0] - height + 1))
    left = int(rng.integers(scene.shape[1] - width + 1))
    return scene.cut(top, left, height, width, name), key  # only the window is made


def cut_tiles(
    image: np.ndarray, shape: tuple[int, int], side: int, jitter: int, rng: np.random.Generator
) -> np.ndarray:
    """The tiles in row-major order as one ``(n, side, side, 3)`` array.

    Args:
        image: The picture, ``rows x cols`` cells of ``side + jitter`` pixels.
        shape: Rows and columns of the grid.
        side: Side of a tile in pixels.
        jitter: Each tile is cut at a random offset of ``0`` to ``jitter`` in its cell.
        rng: The draw's generator (unused without jitter).
    """
    rows, cols = shape
    if not jitter:
        return image.reshape(rows, side, cols, side, 3).swapaxes(1, 2).reshape(-1, side, side, 3)
    cell, n = side + jitter, rows * cols
    offsets = rng.integers(0, jitter + 1, size=(n, 2))
    tops = np.arange(n) // cols * cell + offsets[:, 0]
    lefts = np.arange(n) % cols * cell + offsets[:, 1]
    return np.stack([image[y : y + side, x : x + side] for y, x in zip(tops, lefts, strict=True)])


def check_tiles(tiles: np.ndarray, min_std: float, min_tile_diff: float) -> None:
    """Reject draws with a flat tile or two near-duplicate tiles.

    On every second pixel (rows and columns) for speed. Flat: the pixel standard deviation
    about each channel's mean (so a flat colour is flat) is below ``min_std``. Duplicates:
    the test of ``render.near_duplicates``, vectorised. The mean absolute difference of a
    pair lies between ``max(msd / 255, mean colour difference)`` and ``sqrt(msd)``, with
    ``msd`` the mean squared difference from one Gram matrix; only pairs that these
    bounds leave open are compared pixel by pixel.

    Args:
        tiles: The visible part of every tile, ``(n, height, width, 3)``.
        min_std: The least pixel standard deviation of a tile.
        min_tile_diff: The least mean absolute difference between two tiles.

    Raises:
        Rejected: ``flat_tile`` or ``near_duplicate_tiles``.
    """
    n, t = len(tiles), min_tile_diff
    pixels = tiles[:, ::2, ::2].astype(np.float64).reshape(n, -1, 3)
    flat = pixels.reshape(n, -1)
    gram = flat @ flat.T / flat.shape[1]
    sq = gram.diagonal()
    colour = np.ones(pixels.shape[1]) @ pixels / pixels.shape[1]  # channel means, (n, 3)
    if (np.sqrt(np.maximum(sq - (colour**2).mean(axis=1), 0.0)) < min_std).any():
        raise Rejected("flat_tile")
    msd = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    np.fill_diagonal(msd, np.inf)
    if (np.sqrt(msd) < t).any():
        raise Rejected("near_duplicate_tiles")
    colour_gap = np.abs(colour[:, None] - colour[None, :]).mean(axis=2)
    a, b = np.nonzero(np.triu((msd < 255.0 * t) & (colour_gap < t)))
    step = max(1, 2**20 // flat.shape[1])  # pairs compared at once, ~8 MB
    for k in range(0, len(a), step):
        diff = np.abs(flat[a[k : k + step]] - flat[b[k : k + step]]).mean(axis=1)
        if (diff < t).any():
            raise Rejected("near_duplicate_tiles")
