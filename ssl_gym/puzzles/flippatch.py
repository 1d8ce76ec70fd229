"""FlipPatch: which tile of the image is flipped, and how?

## Description

An image is cut into a ``rows x cols`` grid of square tiles shown in their places; exactly
one tile is flipped in place, horizontally (mirrored left to right) or vertically (upside
down) (Spatial-SSRL's flipped-patch task). The model names the tile and the direction.
The direction is drawn first, with probability 1/2 each, then the tile uniformly among
those whose flip in that direction is visible: a tile that looks the same flipped
(symmetric content), or whose two flips look alike (so the direction would be
ambiguous), is never chosen. Draws with a near-uniform tile, or with no tile to choose,
are rejected and redrawn. Optionally every tile is framed flat (``border``), so that the
flip must be seen in the content rather than in broken edges.

By default (``orientation="random"``) the whole scene is first turned or flipped by one
of the eight symmetries of the square. A flip composed with one of them is another of
them, so a flipped tile on its own looks exactly like an unflipped tile of a scene in
another orientation: sky at a tile's bottom, or light from its wrong side, gives nothing
away, and only comparing the tile with its neighbours reveals it. With upright scenes
(``orientation="upright"``) the shortcut audit's probe on each tile alone found the flip
and its direction 0.33 of the time on 3x3 grids, against a chance of 0.083. The grid is
also cut from a random window of a scene ``context`` (2.5) times larger: with the scene's
frame tied to the grid, a tile that carries its own number (the overlay layout) told its
cell, and a learner that knew a photograph's parts saw when a tile's content belonged to
the mirror cell (probe 0.16 against 0.083 on 3x3-Image, photos). In random
mode each tile is also cut at a random offset of 0 or 1 pixel in a cell one pixel larger
than the tile: flipping a tile of even side swaps the parity of the rows or columns it
shows, which statistics taken on every second pixel pick up; with a random phase on
every tile that tells nothing. Neighbouring tiles still continue each other (a seam
skips at most two rows or columns of pixels).

## Observation

``layout="composite"`` (default): one image with the tiles in place on white, small gaps
between them and each tile's number (1 to ``rows x cols``, row-major) in large print above
it. ``layout="overlay"``: the plain ``rows*tile x cols*tile`` image with thin white grid
lines (a one-pixel frame on every tile) and each tile's number in a small box in its
top-left corner. Tile numbers, lines and frames are the same for every instance; only
the pixels of the one flipped tile differ from the original image.

## Answer format

The tile number and the direction, e.g. ``<answer>5 horizontal</answer>``. Reading is
tolerant: ``5 h``, ``tile 5, horizontally``, ``horizontal 5``, ``(5, vertical)``,
``5-vertically``, ``5 left-right`` / ``5 mirrored left to right`` (horizontal) and
``5 upside down`` / ``5 top-bottom`` (vertical) all parse. A tile number alone (``5``)
parses with no direction. Text with two different numbers or both directions does not
parse. The canonical answers (``choices``) are ``"k horizontal"`` and ``"k vertical"``
for every tile ``k``.

## Reward

1 for the right tile and direction, 0.5 for the right tile with the wrong (or no)
direction, 0 otherwise. In multi-turn play each wrong answer costs the retry cost of
:mod:`ssl_gym.multiturn`, priced with the credit matrix (:meth:`FlipPatch.credit`) so that
no order of answers earns a blind player more than chance.

## Difficulty

The grid (2x2 to 5x5, or m x n), border masking, the layout and the scene
(``orientation``, ``context``). Hints (``-Hint`` ids): level 0 outlines the flipped
tile's row, level 1 the tile; which way it is flipped stays to be seen. The texts are
the same for every instance.

## Registered Configurations

* ``SSL/FlipPatch-2x2-v2``: 4 tiles (easy).
* ``SSL/FlipPatch-3x3-v2``: 9 tiles (medium).
* ``SSL/FlipPatch-3x3-Image-v2``: 9 tiles, drawn on the plain image with grid lines (medium).
* ``SSL/FlipPatch-3x3-Masked-v2``: 9 tiles with masked borders (hard).
* ``SSL/FlipPatch-4x4-v2``: 16 tiles (hard).

## Version History

* -Hint v3 (the single-turn ids keep their version): each wrong answer costs enough
  that the mean of 200 blind episodes stays within chance + 0.05 at 2.33 standard
  errors (``ssl_gym.multiturn``); at exactly chance, blind play's wide spread passed
  that check only about six times in seven.
* v0: initial release.
* v1: the scene is turned or flipped at random (all eight symmetries of the square)
  before the tile is flipped, because on upright scenes a flipped tile alone gave its flip
  away (sky at its bottom; audit probe 0.33 against a chance of 0.083 on 3x3); each tile
  is cut at a random one-pixel phase, so that a flip's swap of pixel parity is no cue; the
  grid is a random window of a scene 2.5 times larger, because on photos a tile with its
  number in its corner (3x3-Image) gave the flip away when its content belonged to another
  cell (probe 0.16 against 0.083); hints outline the row, then the tile, instead of naming
  the row and column in text.
* v2: in multi-turn play (``-Hint`` ids) a retry is priced against the blind player that
  orders its answers to collect the most partial credit (its first answers leave open the
  other direction of the tile it names last; :meth:`FlipPatch.credit`): on 2x2 that player
  earned 0.206 against a chance of 0.1875, and the retry cost goes from 0.143 to 0.154.
  Single-turn puzzles are unchanged (the same instances, checked by hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ssl_gym.core import (
    Hint,
    Instance,
    Parts,
    Preset,
    Puzzle,
    PuzzleConfig,
    Rejected,
    check_choice,
    check_float,
    check_int,
    check_layout,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._flippatch_answers import DIRECTIONS, parse_answer, score_answer
from ssl_gym.puzzles._flippatch_tiles import draw_tiles, pixel_weights, visible_flips
from ssl_gym.render import Composite, label_strip, mark_box

QUESTIONS = {
    "ssl4rl": (
        "{shown} Exactly one tile has been flipped in place, either horizontally (mirrored "
        "left to right) or vertically (upside down); all other tiles are unchanged. Which "
        "tile is flipped, and in which direction? Answer with the tile number and the "
        'direction, for instance "{example}".'
    ),
    "ssl_r1": (
        "{shown} One of the patches has been flipped horizontally or vertically. Identify "
        "the flipped patch and the flip direction. Answer with the patch number and "
        '"horizontal" or "vertical", e.g. {example}.'
    ),
    "plain": (
        "{shown} One tile is flipped. Which tile, and horizontal or vertical (e.g. {example})?"
    ),
}
SHOWN = {
    "composite": (
        "The image is divided into a {rows}x{cols} grid of tiles ({rows} rows, {cols} "
        "columns), shown in their places with their numbers (1 to {n}, row by row from the "
        "top-left) above them."
    ),
    "overlay": (
        "The image is divided by thin lines into a {rows}x{cols} grid of tiles ({rows} rows, "
        "{cols} columns), numbered 1 to {n} row by row from the top-left; each tile's number "
        "is in its top-left corner."
    ),
}
LAYOUTS = ("composite", "overlay")
GAP = 4
"""Pixels between tiles in the composite layout."""
HINTS = (
    "The box drawn on the image outlines the row of tiles that holds the flipped tile.",
    "The box drawn on the image outlines the flipped tile.",
)
"""The texts of the two hints; where the flipped tile is, is drawn on the image."""
LINE = (255, 255, 255)
"""Colour of the grid lines in the overlay layout."""


@dataclass(frozen=True, kw_only=True)
class FlipPatchConfig(PuzzleConfig):
    """Settings of the FlipPatch family."""

    grid: int = 3
    """Rows of the grid, 2 to 5 (also the columns unless ``cols`` is set)."""
    cols: int | None = None
    """Columns of the grid for m x n puzzles, 2 to 5; ``None`` for a square grid."""
    layout: str = "composite"
    """``composite``: numbered tiles in place with gaps; ``overlay``: grid lines drawn on the
    picture (``image`` is the old name of ``overlay``)."""
    border: int = 0
    """Width in pixels of a flat frame masked on every tile, against edge matching."""
    orientation: str = "random"
    """``random``: turn or flip the whole scene by one of the eight symmetries of the
    square first, so that a flipped tile alone looks like an unflipped tile of another
    scene orientation (sky at its bottom is no clue); ``upright``: scenes as they come."""
    context: float = 2.5
    """In random mode the grid is cut from a random window of a square scene whose side
    is ``context`` times the grid's (1 = the grid's own frame), so that which part of a
    picture a tile shows says nothing about which cell it is in."""
    min_std: float = 6.0
    """Reject draws with a tile whose pixel standard deviation is below this."""
    min_flip_diff: float = 8.0
    """A flip counts as visible when the tile and its flip differ by this much (mean
    absolute difference over the visible pixels), and so must the two flips."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("grid", self.grid, 2, 5)
        if self.cols is not None:
            check_int("cols", self.cols, 2, 5)
        check_layout(self, LAYOUTS, {"image": "overlay"})
        check_choice("orientation", self.orientation, ("random", "upright"))
        check_float("context", self.context, 1.0, 4.0)
        if self.tile_side < 16:
            raise ValueError(
                f"size={self.size} gives tiles of {self.tile_side} px for a "
                f"{self.grid_shape[0]}x{self.grid_shape[1]} grid; need at least 16"
            )
        check_int("border", self.border, 0, self.tile_side // 4 - 1)
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_flip_diff", self.min_flip_diff, 0.0, 255.0)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Rows and columns of the grid."""
        return self.grid, self.grid if self.cols is None else self.cols

    @property
    def tile_side(self) -> int:
        """Side of every tile in pixels."""
        return self.size // max(self.grid_shape)


class FlipPatch(Puzzle[FlipPatchConfig]):
    """Find the one tile that is flipped in place, and its direction."""

    family = "FlipPatch"
    version = 2
    hint_version = 3  # retries priced for the 200-episode blind check
    config_cls = FlipPatchConfig

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        rows, cols = self.config.grid_shape
        return rows * cols

    @cached_property
    def choices(self) -> tuple[str, ...]:
        """Every canonical answer: ``"k horizontal"`` and ``"k vertical"`` per tile."""
        return tuple(f"{k} {d}" for k in range(1, self.n_tiles + 1) for d in DIRECTIONS)

    @property
    def chance_score(self) -> float:
        """Mean score of a uniformly random choice: ``0.75 / n``, computed from the choices."""
        truth = (1, DIRECTIONS[0])
        return sum(score_answer(truth, self.parse(c)) for c in self.choices) / len(self.choices)

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """The one observation image."""
        return (self._composite.shape,)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        rows, cols = cfg.grid_shape
        tiles, key = draw_tiles(
            rng, source, cfg.grid_shape, cfg.tile_side, cfg.orientation, cfg.context
        )
        visible = visible_flips(tiles, self._weights, cfg.min_std, cfg.min_flip_diff)
        d = int(rng.integers(2))
        eligible = np.flatnonzero(visible[:, d])
        if not len(eligible):
            raise Rejected("no_visible_flip")
        k = int(eligible[rng.integers(len(eligible))])
        shown = tiles.copy()
        shown[k] = tiles[k][:, ::-1] if d == 0 else tiles[k][::-1]
        solution = (k + 1, DIRECTIONS[d])
        question = self.style(
            QUESTIONS,
            shown=SHOWN[cfg.layout].format(rows=rows, cols=cols, n=self.n_tiles),
            example=f"{self.n_tiles} vertical",
        )
        return self.make_instance(
            (self._observation(shown),),
            question,
            solution,
            f"{k + 1} {DIRECTIONS[d]}",
            choices=self.choices,
            rows=rows,
            cols=cols,
            eligible_tiles=len(eligible),
            source_keys=[key],
        )

    def parts(self, instance: Instance) -> Parts:
        """Every tile as shown, labelled ``none`` or the direction it was flipped in."""
        tiles = self._composite.cut(instance.images[0])
        k, direction = instance.solution
        labels = tuple(direction if i == k - 1 else "none" for i in range(self.n_tiles))
        return Parts("flip", tuple(tiles), labels)

    @cached_property
    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights of the pixels the observation shows, as :func:`pixel_weights` gives them.

        Inside the border, and outside the overlay's lines and number boxes.
        """
        (rows, cols), side, b = self.config.grid_shape, self.config.tile_side, self.config.border
        shown = np.zeros((self.n_tiles, side, side), dtype=bool)
        shown[:, b : side - b, b : side - b] = True
        if self.config.layout == "overlay":
            mask, _ = self._overlay
            shown &= ~mask.reshape(rows, side, cols, side).swapaxes(1, 2).reshape(-1, side, side)
        return pixel_weights(shown)

    def _observation(self, tiles: np.ndarray) -> np.ndarray:
        """The tiles, masked, pasted into the composite or drawn on as one image."""
        cfg = self.config
        if cfg.border:  # render.mask_border on every tile at once
            b, tiles = cfg.border, tiles.copy()
            tiles[:, :b], tiles[:, -b:], tiles[:, :, :b], tiles[:, :, -b:] = 128, 128, 128, 128
        image = self._composite.paste(tiles)
        if cfg.layout == "overlay":
            mask, overlay = self._overlay
            np.copyto(image, overlay, where=mask[..., None])
        return image

    @property
    def _label_height(self) -> int:
        return max(14, self.config.tile_side // 5)

    @cached_property
    def _composite(self) -> Composite:
        """Where the tiles go: edge to edge (overlay), or numbered above them with gaps."""
        side, n, cols = self.config.tile_side, self.n_tiles, self.config.grid_shape[1]
        if self.config.layout == "overlay":
            return Composite.grid(n, cols, (side, side), gap=0)
        labels = [str(k + 1) for k in range(n)]
        return Composite.grid(n, cols, (side, side), labels, GAP, self._label_height)

    @cached_property
    def _overlay(self) -> tuple[np.ndarray, np.ndarray]:
        """Mask and pixels of the overlay layout's grid lines and number boxes."""
        (rows, cols), side = self.config.grid_shape, self.config.tile_side
        frame = np.zeros((side, side), dtype=bool)
        frame[[0, -1]], frame[:, [0, -1]] = True, True
        mask = np.tile(frame, (rows, cols))
        overlay = np.full((rows * side, cols * side, 3), LINE, dtype=np.uint8)
        box_h = max(14, side // 5)
        for k in range(self.n_tiles):
            y, x = (side * v for v in divmod(k, cols))
            box_w = round(box_h * (0.2 + 0.55 * len(str(k + 1))))
            box = np.s_[y + 1 : y + 1 + box_h, x + 1 : x + 1 + box_w]
            mask[box], overlay[box] = True, label_strip(str(k + 1), box_w, box_h)
        return mask, overlay

    def parse(self, text: str) -> tuple[int, str | None] | None:
        """Read ``(tile, direction)``; direction ``None`` when only a number is given.

        ``None`` when there is no number, two different numbers, or both directions.
        """
        return parse_answer(text)

    def score(self, instance: Instance, solution: Any) -> float:
        """1 for tile and direction, 0.5 for the tile alone, else 0."""
        return score_answer(instance.solution, solution)

    def credit(self, instance: Instance) -> np.ndarray | None:
        """Half of a point between the two directions of each tile, else 0 off the diagonal."""
        return self._credit_matrix

    @cached_property
    def _credit_matrix(self) -> np.ndarray:
        """The credit matrix over :attr:`choices` (the same for every instance)."""
        parsed = [self.parse(c) for c in self.choices]
        return np.array([[score_answer(a, g) for g in parsed] for a in parsed])

    def hint(self, instance: Instance, level: int) -> Hint | None:
        """Level 0 outlines the flipped tile's row, level 1 the tile itself.

        The texts are the same for every instance: only the outlines, which a player must
        look at, say where the flipped tile is; which way it is flipped stays to be seen.
        """
        if not 0 <= level < len(HINTS):
            return None
        corners, side = self._composite.corners, self.config.tile_side
        cols = self.config.grid_shape[1]
        k = int(instance.solution[0]) - 1
        row = k // cols
        first, last = (row * cols, row * cols + cols - 1) if level == 0 else (k, k)
        (y0, x0), (y1, x1) = corners[first], corners[last]
        box = (x0 - 1, y0 - 1, x1 + side, y1 + side)
        return Hint(HINTS[level], (mark_box(instance.images[0], box),))


PRESETS: dict[str, Preset] = {
    "2x2": preset("easy", "4 tiles", grid=2),
    "3x3": preset("medium", "9 tiles", grid=3),
    "3x3-Image": preset("medium", "9 tiles drawn on the plain image", grid=3, layout="overlay"),
    "3x3-Masked": preset("hard", "9 tiles with masked borders", grid=3, border=4),
    "4x4": preset("hard", "16 tiles", grid=4),
}
FlipPatch.presets = PRESETS
