"""OddTile: which tile was cut from a different image than the others?

## Description

``K`` square tiles: ``K - 1`` are cut from distinct cells of one image, and exactly one
from a cell of another image (PC-GRPO's "PatchFit"). The model names the odd tile. With
``hard_other`` the two images look alike: ``pool`` images are drawn (as small
thumbnails), one of them is picked at random and paired with its nearest in coarse colour
histogram, and the pair's order is random; so the odd tile's colour does not give it away,
and its image is no more and no less typical than the main one. The two images have
different source-picture keys (``ImageSource.draw``), so the odd tile is never cut from
the main picture; the metadata's ``source_keys`` are the main picture's key, then each
tile's in option order. If either picture is grayscale, both are turned gray
(:func:`ssl_gym.augment.gray_alike`). With ``tile_jitter`` every tile (the odd one too)
gets its own random change of brightness, contrast, saturation and hue, and may be turned
gray (p=0.2) or blurred (p=0.5), then its own random tone curve per channel
(:func:`ssl_gym.augment.random_levels`) and random sharpness, grain and tone
(``STRONG_TEXTURE``), so that tiles cannot be told apart by colour levels, histogram
shapes or texture statistics, only by what they show; with ``odd_pool`` above 1
the odd tile is the one of that many jittered copies whose statistics gap to the main
tiles is nearest a main tile's gap to the others.

## Observation

``layout="images"``: ``K`` square images of ``tile`` pixels, tiles A, B, ... in order.
``layout="composite"``: one image with the tiles in a grid on white, each with its letter
in large print above it. Every tile is cut at native resolution from a cell of a grid of
``tile``-pixel cells of its image and goes through the same processing, whichever image it
comes from. Draws with a near-uniform tile, two near-identical tiles, or an odd tile that
nearly matches some cell of the main image are rejected before the answer is drawn.

## Answer format

The odd tile's letter, e.g. ``<answer>C</answer>``; ``(C)``, ``Tile C`` and a lone ``c``
read the same. Text naming two different letters does not parse.

## Reward

1 for the right letter, else 0.

## Difficulty

``tiles`` (3 to 8), ``hard_other`` (an odd image of similar colours), ``tile_jitter`` and
``odd_pool``. Hints (``-Hint`` ids, ``K - 2`` of them): each crosses out one more tile that
is not the odd one, drawn on the images; the text is the same for every instance.

## Registered Configurations

* ``SSL/OddTile-K4-v1``: 4 tiles (easy).
* ``SSL/OddTile-K6-v1``: 6 tiles (medium).
* ``SSL/OddTile-K6-Composite-v1``: 6 tiles in one labelled picture (medium).
* ``SSL/OddTile-K6-Hard-v1``: 6 tiles, odd image of similar colours (hard).
* ``SSL/OddTile-K8-Hard-v1``: 8 tiles, odd image of similar colours (hard).

## Version History

* -Hint v2 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
* v0: initial release.
* v1: the two images are told apart by source-picture key, not by an aligned pixel
  difference; each tile's own jitter is stronger (0.4, with hue, grayscale and blur; v0:
  0.15) against per-tile statistics cues; ``odd_pool`` (off by default) matches the odd
  tile's statistics; ``compares_sources``; each jittered tile also gets random
  sharpness, grain and tone (``ssl_gym.augment.texture``), since with nine photographs
  gradient energy and histogram shape named each tile's picture; grayscale pictures
  alike, per-tile random levels and the wider ``STRONG_TEXTURE`` (on ``photos`` the tile
  farthest from the others in mean and spread was the odd one 0.37 of the time on K4,
  and statistics learned 0.42, chance 0.25; 0.26-0.30 after); hints cross out tiles on
  the images instead of naming them in text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ssl_gym.augment import (
    STRONG_TEXTURE,
    AugmentParams,
    gray_alike,
    photometric,
    random_levels,
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
from ssl_gym.puzzles._matching import draw_distinct, nearest_gap, similar_group, view_statistics
from ssl_gym.render import Composite

QUESTIONS = {
    "ssl4rl": (
        "{shown} All but one of the tiles were cut from the same original image; exactly "
        "one tile comes from a different image. Which tile does not belong? Answer with its "
        "letter ({options})."
    ),
    "ssl_r1": (
        "{shown} These patches were taken from one image, except one patch that was taken "
        "from another image. Which patch does not fit? Options: {options}. Answer with the "
        "letter."
    ),
    "plain": "{shown} Which tile ({options}) comes from a different image than the others?",
}
SHOWN = {
    "images": "The {k} images are tiles {span}, in that order.",
    "composite": "The image shows {k} tiles, labelled {span}.",
}
LAYOUTS = ("images", "composite")
HINT = "The tiles crossed out on the images are not the odd one."
"""The text of every hint; which tiles are crossed out is drawn on the images."""
GAP = 4
"""Pixels between tiles in the composite layout."""
GRAY_P = 0.2
"""Probability that a jittered tile is turned gray."""
BLUR_SCALE = 0.5
"""Blur radius of a jittered tile, as a fraction of SimCLR's 0.1-2 px (applied with p=0.5)."""


@dataclass(frozen=True, kw_only=True)
class OddTileConfig(PuzzleConfig):
    """Settings of the OddTile family (tiles are cut from ``size``-pixel images)."""

    tiles: int = 4
    """Number of tiles ``K``, 3 to 8; exactly one comes from another image."""
    tile: int | None = None
    """Tile side in pixels; ``None`` for ``size // 4``. Cells of this side tile the image."""
    hard_other: bool = False
    """Cut the tiles from a pair of images close in colour histogram (of ``pool`` drawn)."""
    pool: int = 8
    """Images drawn to pick the similar pair from when ``hard_other`` is set (at least 2)."""
    layout: str = "images"
    """``images``: each tile a separate image; ``composite``: one labelled picture."""
    tile_jitter: float = 0.4
    """Strength of each tile's own brightness, contrast and saturation jitter, up to 0.8
    (0: none, and no random levels or texture either)."""
    odd_pool: int = 1
    """Jittered copies of the odd tile it is picked from, matched in colour statistics to
    the main tiles (1: no matching)."""
    min_std: float = 8.0
    """Reject draws with a near-uniform tile (pixel standard deviation below this)."""
    min_tile_diff: float = 8.0
    """Reject draws with two tiles (or the odd tile and a main-image cell) this close.

    Mean absolute pixel difference, before the jitter.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("tiles", self.tiles, 3, 8)
        if self.tile is not None:
            check_int("tile", self.tile, 8, self.size)
        if self.cells_per_side**2 < self.tiles or self.tile_side < 8:
            raise ValueError(
                f"size={self.size} and tile={self.tile} give {self.cells_per_side**2} cells of "
                f"{self.tile_side} px; {self.tiles} tiles need as many cells of at least 8 px"
            )
        check_int("pool", self.pool, 2, 256)
        check_choice("hard_other", self.hard_other, (True, False))
        check_choice("layout", self.layout, LAYOUTS)
        check_float("tile_jitter", self.tile_jitter, 0.0, 0.8)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_tile_diff", self.min_tile_diff, 0.0, 255.0)
        check_int("odd_pool", self.odd_pool, 1, 64)

    @property
    def tile_side(self) -> int:
        """Side of every tile in pixels."""
        return self.tile if self.tile is not None else self.size // 4

    @property
    def cells_per_side(self) -> int:
        """Cells of ``tile_side`` along each side of an image."""
        return self.size // max(1, self.tile_side)


class OddTile(ChoicePuzzle[OddTileConfig]):
    """Find the one tile cut from a different image."""

    family = "OddTile"
    version = 1
    hint_version = 2  # retries priced for the 200-episode blind check
    config_cls = OddTileConfig
    compares_sources = True

    @property
    def num_options(self) -> int:
        """The number of options."""
        return self.config.tiles

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``K`` square tiles, or the one composite."""
        if self.config.layout == "composite":
            return (self._composite.shape,)
        side = self.config.tile_side
        return ((side, side, 3),) * self.config.tiles

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        g, k = cfg.cells_per_side, cfg.tiles
        shape = (g * cfg.tile_side, g * cfg.tile_side)
        (main, other), keys = self._images(rng, source, shape)
        main, other = gray_alike([main, other])
        cells = rng.choice(g * g, size=k, replace=False)
        main_cells, other_cells = self._cells(main), self._cells(other)
        tiles = np.concatenate([main_cells[cells[:-1]], other_cells[cells[-1:]]])
        _check(tiles, main_cells, cfg)
        index = int(rng.integers(k))
        mains = [self._jitter(rng, t) for t in tiles[:-1]]
        odd = self._matched_odd(rng, tiles[-1], mains)
        shown = [*mains[:index], odd, *mains[index:]]
        tile_keys = [keys[0]] * k
        tile_keys[index] = keys[1]
        return self._instance(shown, index, cells, [keys[0], *tile_keys])

    def _jitter(self, rng: np.random.Generator, tile: np.ndarray) -> np.ndarray:
        """The tile with its own colour jitter (hue a quarter as strong), grayscale, blur."""
        j = self.config.tile_jitter
        if not j:
            return tile
        params = AugmentParams(jitter=(j, j, j, j / 4), jitter_p=1.0, gray_p=GRAY_P)
        view = photometric(tile, rng, params, blur_scale=BLUR_SCALE)[0]
        return texture(random_levels(view, rng), rng, STRONG_TEXTURE)

    def _matched_odd(
        self, rng: np.random.Generator, tile: np.ndarray, mains: list[np.ndarray]
    ) -> np.ndarray:
        """Of ``odd_pool`` jittered copies of the odd tile, the most typical one.

        Its colour-statistics gap to the main tiles' mean is nearest the gap of a main tile
        (picked at random) to the mean of the other main tiles, so the odd tile stands out
        by its statistics no more than a main tile does.
        """
        if not self.config.tile_jitter or self.config.odd_pool == 1:
            return self._jitter(rng, tile)
        stats = np.stack([view_statistics(t) for t in mains])
        i = int(rng.integers(len(mains)))
        gap = np.abs(stats[i] - np.delete(stats, i, axis=0).mean(axis=0))
        pool = [self._jitter(rng, tile) for _ in range(self.config.odd_pool)]
        return pool[nearest_gap(stats.mean(axis=0), gap, [view_statistics(t) for t in pool])]

    def _instance(
        self, shown: list[np.ndarray], index: int, cells: np.ndarray, keys: list[str]
    ) -> Instance:
        options = self.options
        span = f"{options[0]} to {options[-1]}"
        text = SHOWN[self.config.layout].format(k=self.config.tiles, span=span)
        question = self.style(QUESTIONS, shown=text, options=", ".join(options))
        return self.make_instance(
            self._observation(shown),
            question,
            options[index],
            options[index],
            choices=options,
            cells=[int(c) for c in cells],
            hard_other=self.config.hard_other,
            source_keys=keys,
        )

    def parts(self, instance: Instance) -> Parts:
        """The tiles in option order, the odd one labelled ``1``."""
        if self.config.layout == "images":
            tiles = instance.images
        else:
            tiles = tuple(self._composite.cut(instance.images[0]))
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        keys = tuple(instance.metadata["source_keys"][1:])  # the main picture's key first
        return Parts("choice", tiles, labels, sources=keys)

    def _images(
        self, rng: np.random.Generator, source: ImageSource, shape: tuple[int, int]
    ) -> tuple[list[np.ndarray], list[str]]:
        """The main image and the other one, with their (different) source keys.

        Independent draws, or a pair of similar colours in random order
        (:func:`ssl_gym.puzzles._matching.similar_group`), so the odd tile's image is
        distributed exactly like the main one.
        """
        cfg = self.config
        if not cfg.hard_other:
            return draw_distinct(rng, source, shape, 2)
        return similar_group(rng, source, 2, cfg.pool, shape)

    def _cells(self, image: np.ndarray) -> np.ndarray:
        """All cells of an image in row-major order, shape ``(g * g, tile, tile, 3)``."""
        g, side = self.config.cells_per_side, self.config.tile_side
        return image.reshape(g, side, g, side, 3).swapaxes(1, 2).reshape(-1, side, side, 3)

    def _observation(self, shown: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The tiles as separate images, or pasted into the composite."""
        if self.config.layout == "images":
            return tuple(shown)
        return (self._composite.paste(shown),)

    @property
    def _label_height(self) -> int:
        return max(16, self.config.tile_side // 3)

    @property
    def _cols(self) -> int:
        k = self.config.tiles
        return k if k <= 3 else math.ceil(k / 2)

    @cached_property
    def _composite(self) -> Composite:
        """The tiles in a grid, each labelled with its letter above it."""
        panel = (self.config.tile_side,) * 2
        return Composite.grid(
            self.config.tiles, self._cols, panel, self.options, GAP, self._label_height
        )

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Each level crosses out one more tile that is not the odd one (never the last)."""
        return cross_out(instance, level, self._tile_boxes(), HINT)

    def _tile_boxes(self) -> list[tuple[int, Region]]:
        """Where each tile is drawn: its own image, or its slot of the composite."""
        side = self.config.tile_side
        if self.config.layout == "images":
            return [(j, (0, 0, side - 1, side - 1)) for j in range(self.config.tiles)]
        return [(0, (x, y, x + w - 1, y + h - 1)) for y, x, h, w in self._composite.boxes]


def _mad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the last axis, broadcasting the leading ones."""
    return np.abs(a - b).mean(axis=-1)


def _check(tiles: np.ndarray, main_cells: np.ndarray, cfg: OddTileConfig) -> None:
    """Reject ambiguous draws; measured on every second pixel of every second row.

    Flat tiles, two near-identical tiles, and an odd tile (the last) that nearly matches
    some cell of the main image.
    """
    n = len(tiles)
    flat = tiles[:, ::2, ::2].reshape(n, -1, 3).astype(np.float32)
    if (flat.std(axis=1).mean(axis=1) < cfg.min_std).any():
        raise Rejected("flat_tile")
    vec = flat.reshape(n, -1)
    pairs = _mad(vec[:, None], vec[None, :]) + np.diag(np.full(n, np.inf))
    if (pairs < cfg.min_tile_diff).any():
        raise Rejected("near_duplicate_tiles")
    cells = main_cells[:, ::2, ::2].reshape(len(main_cells), -1).astype(np.float32)
    if (_mad(cells, vec[-1]) < cfg.min_tile_diff).any():
        raise Rejected("odd_tile_matches_main")


PRESETS: dict[str, Preset] = {
    "K4": preset("easy", "4 tiles", tiles=4),
    "K6": preset("medium", "6 tiles", tiles=6),
    "K6-Composite": preset(
        "medium", "6 tiles in one labelled picture", tiles=6, layout="composite"
    ),
    "K6-Hard": preset("hard", "6 tiles, odd image of similar colours", tiles=6, hard_other=True),
    "K8-Hard": preset("hard", "8 tiles, odd image of similar colours", tiles=8, hard_other=True),
}
OddTile.presets = PRESETS
