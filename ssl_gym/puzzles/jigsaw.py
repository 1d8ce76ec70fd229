"""Jigsaw: put the shuffled tiles of an image back in their places.

## Description

An image is cut into a ``rows x cols`` grid of square tiles, which are shown in a random
order (never the original one); the task is to restore the image (SSL4RL's jigsaw task,
SSL-R1's "patch ordering"). Tiles have one size whatever the image size: the source is
sampled at a size fixed by the grid and cut at native resolution. Optionally each tile is
cut at a random offset inside its cell (``jitter``) and framed flat (``border``), so that
tiles cannot be matched by their edges alone (as Jigsaw-R1 masks borders).

By default (``orientation="random"``, ``context=2.5``) the grid is cut from a random
window of a square scene ``context`` times larger than the grid, turned or flipped by one
of the eight symmetries of the square. Otherwise a tile alone tells its cell: with the
scene's frame tied to the grid, sky or ground, the horizon band and ground lines running
to the vanishing point name the row and column, and even with the scene only flipped or
half-turned the shortcut audit's probe on each tile alone, followed by a one-to-one
assignment, scored 0.55 against a chance of 0.25 on 2x2 grids (a lone 3x3 tile named its
row 80% of the time). In a window of a larger, freely oriented scene, a tile's content
says little about where in the grid it lies; the tiles still continue each other across
their shared edges. Each tile's brightness, contrast and saturation are also mildly
jittered on their own (``tone``, 10%): with exact cuts, the tiles' colour statistics
against each other's tell how central a cell is (the centre tile's are the closest to the
whole picture's), which the strong audit's statistics learner read (0.18 against a
chance of 0.11 on 3x3 photos; 0.15 with the jitter).

## Observation

``layout="images"``: ``rows x cols`` square images of ``tile x tile`` pixels, tile 1 first
(SSL4RL). ``layout="composite"``: one image with the shuffled tiles laid out in the grid
on white, each with its number (1 to ``rows x cols``) in large print above it.

## Answer format

For each cell of the restored image in row-major order (left to right, top to bottom),
the 1-based number of the shown tile that belongs there, comma separated, e.g.
``<answer>3,1,2,4</answer>`` for 2x2: tile 3 goes top-left, tile 1 top-right. ``3, 1, 2,
4``, ``[3 1 2 4]`` and ``3 1 2 4`` read the same; an answer with another count of integers
does not parse.

## Reward

``scoring="position"`` (default, SSL4RL): the fraction of cells holding the right tile.
``"exact"``: 1 only when every cell is right. ``"adjacency"``: the fraction of adjacent
cell pairs (horizontal and vertical) of the answer whose two tiles are neighbours in the
same relation in the original image. A cell holding a repeated or out-of-range number
counts as wrong, so an answer with repeats never beats the best permutation.

## Difficulty

The grid (2x2 to 5x5, or m x n), the layout, border masking, jitter and the scene
(``orientation``, ``context``). Hints (``-Hint`` ids, ``n - 1`` of them): each draws a
small cell map on one more tile, the cell it belongs in filled; the text is the same for
every instance.

## Registered Configurations

* ``SSL/Jigsaw-2x2-v2``: 4 tiles (easy).
* ``SSL/Jigsaw-2x3-v2``: 2 rows, 3 columns (easy).
* ``SSL/Jigsaw-3x3-v2``: 9 tiles (medium).
* ``SSL/Jigsaw-3x3-Composite-v2``: 9 tiles in one labelled image (medium).
* ``SSL/Jigsaw-3x3-Masked-v2``: 9 tiles with masked borders and jittered cuts (hard).
* ``SSL/Jigsaw-4x4-v2``: 16 tiles (hard).
* ``SSL/Jigsaw-5x5-v2``: 25 tiles (hard).

## Version History

* v0: initial release.
* v1: the grid is a random window of a scene 2.5 times larger, turned or flipped by any
  of the eight symmetries of the square (v0: the whole scene, only flipped or half-
  turned), because each tile alone named its cell (audit probe 0.55 against a chance of
  0.25 on 2x2); hints draw cell maps on the tiles instead of naming tiles and cells in
  text.
* v2: every tile mildly colour-jittered on its own (``tone=0.1``), because the exact cuts'
  statistics told how central a tile's cell is (statistics learner 0.18 against 0.11 on
  3x3, photos, n=2000).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ssl_gym.augment import color_jitter
from ssl_gym.core import (
    Hint,
    Instance,
    Parts,
    Preset,
    Puzzle,
    PuzzleConfig,
    check_choice,
    check_float,
    check_int,
    check_layout,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._jigsaw_answers import (
    SCORINGS,
    answer_pattern,
    chance_score,
    parse_answer,
    score_answer,
)
from ssl_gym.puzzles._jigsaw_tiles import check_tiles, cut_tiles, scene_window
from ssl_gym.render import Composite, mark_cell_map, mask_border

QUESTIONS = {
    "ssl4rl": (
        "{shown} are the parts of one original image, divided into a {rows}x{cols} grid "
        "({rows} rows, {cols} columns) and shuffled. Your task is to determine the correct "
        "order of these parts to reconstruct the original image. Starting from the top-left "
        "corner, go through the cells of the original image row by row, from left to right "
        "and top to bottom, and give for each cell the number of the tile that belongs "
        'there. The output should be {n} numbers separated by commas; for instance, "{example}" '
        "would mean that tile {n} belongs in the top-left cell."
    ),
    "ssl_r1": (
        "Patch ordering: {shown} are the patches of one image split into a {rows}x{cols} "
        "grid, in shuffled order. Put the patches back in their original order: for each "
        "position of the original image in raster order (row by row, left to right, from the "
        "top-left), give the number of the patch that goes there, as {n} comma-separated "
        "numbers, e.g. {example}."
    ),
    "plain": (
        "{shown} are the shuffled tiles of a {rows}x{cols} grid. For each cell in row-major "
        "order, give the number of its tile, comma separated (e.g. {example})."
    ),
}
SHOWN = {
    "images": "The {n} images (tiles 1 to {n}, in the order shown)",
    "composite": "The {n} tiles in the image (each labelled with its number above it)",
}
LAYOUTS = ("images", "composite")
GAP = 4
"""Pixels between tiles in the composite layout (as :func:`ssl_gym.render.grid` draws)."""
HINT = "A small grid drawn on a tile shows, filled in, the cell that tile belongs in."
"""The text of every hint; which tiles go where is drawn on the tiles."""


@dataclass(frozen=True, kw_only=True)
class JigsawConfig(PuzzleConfig):
    """Settings of the Jigsaw family."""

    grid: int = 3
    """Rows of the grid, 2 to 5 (also the columns unless ``cols`` is set)."""
    cols: int | None = None
    """Columns of the grid for m x n puzzles, 2 to 5; ``None`` for a square grid."""
    layout: str = "images"
    """``images``: each tile a separate image (SSL4RL); ``composite``: one labelled image
    (``tiles`` is the old name of ``images``)."""
    tile: int | None = None
    """Tile side in pixels; ``None`` for ``size // max(rows, cols)``."""
    border: int = 0
    """Width in pixels of a flat frame masked on every tile, against edge matching."""
    jitter: int = 0
    """Tiles are cut at a random offset inside cells of side ``tile + jitter``."""
    tone: float = 0.1
    """Brightness, contrast and saturation jitter of every tile on its own (factors drawn
    in ``1 +- tone``; 0 = exact cuts, SSL4RL's). With exact cuts the colour statistics of
    the tiles against each other's tell how central a tile's cell is (the strong audit's
    statistics learner: 0.18 against a chance of 0.11 on 3x3 photos)."""
    scoring: str = "position"
    """``position`` (fraction of cells right), ``exact`` or ``adjacency`` (neighbour pairs)."""
    orientation: str = "random"
    """``random``: turn or flip the scene by one of the eight symmetries of the square
    before cutting, so that a tile's content (sky or ground) cannot tell its row or
    column; ``upright``: scenes as they come."""
    context: float = 2.5
    """The grid is cut from a random window of a square scene whose side is ``context``
    times the grid's longer side, so that the scene's centre (horizon band, vanishing
    point) is not tied to the grid's centre (1 = the grid's own frame)."""
    min_std: float = 6.0
    """Reject draws with a near-uniform tile (standard deviation about the channel means).

    Measured on every second pixel of the visible part of each tile (inside ``border``).
    """
    min_tile_diff: float = 6.0
    """Reject draws with two tiles closer than this in mean absolute pixel difference.

    Measured like ``min_std``.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("orientation", self.orientation, ("random", "upright"))
        check_float("context", self.context, 1.0, 4.0)
        check_int("grid", self.grid, 2, 5)
        if self.cols is not None:
            check_int("cols", self.cols, 2, 5)
        check_layout(self, LAYOUTS, {"tiles": "images"})
        check_choice("scoring", self.scoring, SCORINGS)
        if self.tile is not None:
            check_int("tile", self.tile, 8, 1024)
        elif self.size // max(self.grid_shape) < 8:
            raise ValueError(
                f"size={self.size} gives tiles under 8 px for a "
                f"{self.grid}x{self.grid_shape[1]} grid; raise size or set tile"
            )
        check_int("border", self.border, 0, self.tile_side // 4 - 1)
        check_int("jitter", self.jitter, 0, self.tile_side)
        check_float("tone", self.tone, 0.0, 0.5)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_tile_diff", self.min_tile_diff, 0.0, 255.0)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Rows and columns of the grid."""
        return self.grid, self.grid if self.cols is None else self.cols

    @property
    def tile_side(self) -> int:
        """Side of every tile in pixels."""
        return self.tile if self.tile is not None else self.size // max(self.grid_shape)


class Jigsaw(Puzzle[JigsawConfig]):
    """Restore an image from its shuffled tiles."""

    family = "Jigsaw"
    version = 2
    config_cls = JigsawConfig

    @property
    def n_tiles(self) -> int:
        """Number of tiles (cells of the grid)."""
        rows, cols = self.config.grid_shape
        return rows * cols

    @property
    def chance_score(self) -> float:
        """Expected score of a uniformly random permutation (exact, in closed form)."""
        return chance_score(self.config.scoring, *self.config.grid_shape)

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``n`` square tiles, or the one composite."""
        if self.config.layout == "composite":
            return (self._composite.shape,)
        side = self.config.tile_side
        return ((side, side, 3),) * self.n_tiles

    @cached_property
    def _composite(self) -> Composite:
        """The tiles in the grid, each labelled with its number above it."""
        side, n = self.config.tile_side, self.n_tiles
        labels = [str(k + 1) for k in range(n)]
        cols = self.config.grid_shape[1]
        return Composite.grid(n, cols, (side, side), labels, GAP, self._label_height)

    @property
    def _label_height(self) -> int:
        return max(14, self.config.tile_side // 5)

    @cached_property
    def pattern(self) -> str:
        """Regular expression (for ``re.fullmatch``) of well-formed answers: ``n`` numbers.

        Commas with at most one space after them: a finite, canonical grammar that
        constrained decoding can follow (``parse`` itself is more tolerant).
        """
        return answer_pattern(self.n_tiles)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        rows, cols = cfg.grid_shape
        side, b, cell = cfg.tile_side, cfg.border, cfg.tile_side + cfg.jitter
        window = (rows * cell, cols * cell)
        scene, key = scene_window(rng, source, window, cfg.orientation, cfg.context)
        tiles = cut_tiles(scene, (rows, cols), side, cfg.jitter, rng)
        check_tiles(tiles[:, b : side - b, b : side - b], cfg.min_std, cfg.min_tile_diff)
        if cfg.tone:
            tiles = np.stack(
                [color_jitter(t, rng, cfg.tone, cfg.tone, cfg.tone, 0.0) for t in tiles]
            )
        perm = self._shuffle(rng)
        solution = (np.argsort(perm) + 1).tolist()
        shown = SHOWN[cfg.layout].format(n=self.n_tiles)
        example = ",".join(str(k) for k in range(self.n_tiles, 0, -1))
        question = self.style(
            QUESTIONS, shown=shown, n=self.n_tiles, rows=rows, cols=cols, example=example
        )
        return self.make_instance(
            self._observation(tiles[perm]),
            question,
            solution,
            ",".join(map(str, solution)),
            pattern=self.pattern,
            rows=rows,
            cols=cols,
            permutation=perm.tolist(),
            source_keys=[key],
        )

    def _shuffle(self, rng: np.random.Generator) -> np.ndarray:
        """A random permutation other than the identity: tile ``j`` shows cell ``perm[j]``."""
        identity = np.arange(self.n_tiles)
        while True:
            perm = rng.permutation(self.n_tiles)
            if (perm != identity).any():
                return perm

    def _observation(self, shown: np.ndarray) -> tuple[np.ndarray, ...]:
        """The shown tiles, masked, as separate images or pasted into the composite."""
        if self.config.border:
            shown = np.stack([mask_border(t, self.config.border) for t in shown])
        if self.config.layout == "images":
            return tuple(shown)
        return (self._composite.paste(shown),)

    def parts(self, instance: Instance) -> Parts:
        """The shown tiles, each labelled with the cell it belongs in."""
        if self.config.layout == "images":
            tiles = instance.images
        else:
            tiles = tuple(self._composite.cut(instance.images[0]))
        cells = tuple(str(c) for c in instance.metadata["permutation"])
        return Parts("permutation", tiles, cells)

    def random_answer(self, instance: Instance, rng: np.random.Generator) -> str:
        """A uniformly random permutation of the tile numbers (scores ``chance_score``)."""
        return ",".join(str(k + 1) for k in rng.permutation(self.n_tiles))

    def parse(self, text: str) -> list[int] | None:
        """Read exactly ``n`` integers (any separators); repeats and range are scored.

        Integers longer than 9 characters, never valid, read as 0 (out of range).
        """
        return parse_answer(text, self.n_tiles)

    def score(self, instance: Instance, solution: Any) -> float:
        """Position, exact or adjacency score; repeated or out-of-range cells are wrong."""
        return score_answer(
            self.config.scoring, instance.solution, solution, self.config.grid_shape
        )

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Level ``k`` draws a cell map on ``k + 1`` tiles, ``n - 1`` hints in all.

        Each map is a small grid in the tile's corner with the cell the tile belongs in
        filled; the text is the same for every instance, so only a player who looks at
        the maps learns where those tiles go.
        """
        n = self.n_tiles
        if not 0 <= level < n - 1:
            return None
        order = np.random.default_rng(list(instance.solution)).permutation(n)
        side, shape = self.config.tile_side, self.config.grid_shape
        size = max(12, side // 3)
        images = list(instance.images)
        for cell in order[: level + 1]:
            tile = int(instance.solution[int(cell)]) - 1
            if self.config.layout == "images":
                images[tile] = mark_cell_map(images[tile], (2, 2), size, shape, int(cell))
            else:
                y, x = self._composite.corners[tile]
                images[0] = mark_cell_map(images[0], (x + 2, y + 2), size, shape, int(cell))
        return Hint(HINT, tuple(images))


PRESETS: dict[str, Preset] = {
    "2x2": preset("easy", "4 tiles", grid=2),
    "2x3": preset("easy", "2 rows, 3 columns", grid=2, cols=3),
    "3x3": preset("medium", "9 tiles", grid=3),
    "3x3-Composite": preset("medium", "9 tiles in one labelled image", grid=3, layout="composite"),
    "3x3-Masked": preset(
        "hard", "9 tiles, masked borders, jittered cuts", grid=3, border=4, jitter=8
    ),
    "4x4": preset("hard", "16 tiles", grid=4),
    "5x5": preset("hard", "25 tiles", grid=5),
}
Jigsaw.presets = PRESETS
