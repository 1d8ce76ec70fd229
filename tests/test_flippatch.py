"""FlipPatch: generation, symmetric tiles, grammar, scoring, hints and config checks."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from sources import ConstantSource, NoiseSource

from ssl_gym import render
from ssl_gym.core import Instance
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles.flippatch import PRESETS, FlipPatch, FlipPatchConfig
from ssl_gym.testing import check_puzzle


class MirroredTilesSource(NoiseSource):
    """Noise whose tiles (of a ``grid``-square grid) are all left-right symmetric, except
    tile ``keep`` (0-based, or -1 for none); with ``both`` also upside-down symmetric."""

    def __init__(self, grid: int, keep: int = -1, both: bool = False) -> None:
        super().__init__()
        self.grid, self.keep, self.both = grid, keep, both

    def _paint(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        image = super()._paint(rng, shape)
        side = shape[0] // self.grid
        for k in range(self.grid * self.grid):
            if k == self.keep:
                continue
            r, c = divmod(k, self.grid)
            tile = image[r * side : (r + 1) * side, c * side : (c + 1) * side]
            tile[:, side // 2 :] = tile[:, : (side + 1) // 2][:, ::-1][:, : side - side // 2]
            if self.both:
                tile[side // 2 :] = tile[: (side + 1) // 2][::-1][: side - side // 2]
        return image


class CentrallySymmetricSource(NoiseSource):
    """Noise whose tiles all look the same rotated by 180 degrees (direction ambiguous)."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def _paint(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        image = super()._paint(rng, shape)
        side = shape[0] // self.grid
        for r in range(self.grid):
            for c in range(self.grid):
                tile = image[r * side : (r + 1) * side, c * side : (c + 1) * side]
                tile[side // 2 :] = tile[: side - side // 2][::-1, ::-1]
        return image


def puzzle(**overrides: object) -> FlipPatch:
    """Upright unless asked: the geometry tests compare tiles with the source image."""
    return FlipPatch(FlipPatchConfig(**{"orientation": "upright", **overrides}))  # type: ignore[arg-type]


def generate(pz: FlipPatch, seed: int = 0, source: ImageSource | None = None) -> Instance:
    return pz.generate(np.random.default_rng(seed), source or NoiseSource())


def tiles_of(image: np.ndarray, rows: int, cols: int, side: int) -> np.ndarray:
    return image.reshape(rows, side, cols, side, 3).swapaxes(1, 2).reshape(-1, side, side, 3)


def composite_tiles(pz: FlipPatch, canvas: np.ndarray) -> list[np.ndarray]:
    """Cut the shown tiles back out of the composite."""
    (rows, cols), side, label = pz.config.grid_shape, pz.config.tile_side, pz._label_height
    out = []
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        y, x = 4 + r * (side + label + 4) + label, 4 + c * (side + 4)
        out.append(canvas[y : y + side, x : x + side])
    return out


# --- what is shown -----------------------------------------------------------------------


@pytest.mark.parametrize(("grid", "cols"), [(2, None), (3, None), (2, 4), (4, 3)])
def test_exactly_the_answer_tile_is_flipped_in_place(grid: int, cols: int | None) -> None:
    src = NoiseSource()
    pz = puzzle(grid=grid, cols=cols)
    (rows, ncols), side = pz.config.grid_shape, pz.config.tile_side
    for seed in range(10):
        inst = generate(pz, seed, src)
        tile, direction = inst.solution
        original = tiles_of(src.last, rows, ncols, side)
        shown = composite_tiles(pz, inst.images[0])
        for k, (before, after) in enumerate(zip(original, shown, strict=True)):
            if k == tile - 1:
                flipped = before[:, ::-1] if direction == "horizontal" else before[::-1]
                np.testing.assert_array_equal(after, flipped)
                assert not np.array_equal(after, before)
            else:
                np.testing.assert_array_equal(after, before)
        assert inst.answer == f"{tile} {direction}"


def test_random_orientation_turns_the_scene_and_cuts_each_tile_at_a_random_phase() -> None:
    src = NoiseSource()
    pz = puzzle(grid=2, orientation="random", context=1.0)
    side, seen, offsets = pz.config.tile_side, set(), set()
    for seed in range(80):
        inst = generate(pz, seed, src)
        k, direction = inst.solution[0] - 1, inst.solution[1]
        shown = composite_tiles(pz, inst.images[0])
        shown[k] = shown[k][:, ::-1] if direction == "horizontal" else shown[k][::-1]
        assert src.last is not None and src.last.shape[:2] == (2 * side + 2, 2 * side + 2)
        for name in render.DIHEDRAL:
            scene = render.orient(src.last, name)
            found = [_phase(scene, tile, j, side) for j, tile in enumerate(shown)]
            if all(f is not None for f in found):
                seen.add(name)
                offsets.update(found)
                break
        else:
            pytest.fail(f"seed {seed}: the tiles are not cells of an oriented scene")
    assert seen == set(render.DIHEDRAL)
    assert offsets == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_random_orientation_cuts_the_grid_from_a_random_window_of_a_larger_scene() -> None:
    src = NoiseSource()
    pz = puzzle(grid=2, orientation="random")
    cell, corners = pz.config.tile_side + 1, set()
    scene_side = math.ceil(2 * cell * pz.config.context)
    for seed in range(12):
        inst = generate(pz, seed, src)
        assert src.last is not None and src.last.shape[:2] == (scene_side, scene_side)
        k = inst.solution[0] - 1
        j = 1 if k == 0 else 0  # an unflipped tile
        tile = composite_tiles(pz, inst.images[0])[j]
        found = [
            (y, x)
            for name in render.DIHEDRAL
            for scene in [render.orient(src.last, name)]
            for y, x in zip(*np.nonzero((scene == tile[0, 0]).all(axis=2)), strict=True)
            if np.array_equal(scene[y : y + tile.shape[0], x : x + tile.shape[1]], tile)
        ]
        assert found
        corners.add(found[0])
    assert len(corners) > 6


def _phase(scene: np.ndarray, tile: np.ndarray, j: int, side: int) -> tuple[int, int] | None:
    """The offset at which ``tile`` is cut from cell ``j`` (cells of ``side + 1``), if any."""
    r, c = divmod(j, 2)
    for dy in (0, 1):
        for dx in (0, 1):
            y, x = r * (side + 1) + dy, c * (side + 1) + dx
            if np.array_equal(scene[y : y + side, x : x + side], tile):
                return dy, dx
    return None


def test_overlay_layout_draws_lines_and_numbers_only_where_the_overlay_is() -> None:
    src = NoiseSource()
    pz = puzzle(grid=3, layout="overlay")
    mask, overlay = pz._overlay
    side = pz.config.tile_side
    assert mask.mean() < 0.15  # thin lines and small boxes
    for seed in range(5):
        inst = generate(pz, seed, src)
        image = inst.images[0]
        np.testing.assert_array_equal(image[mask], overlay[mask])
        truth = src.last.copy()
        k, direction = inst.solution[0] - 1, inst.solution[1]
        r, c = divmod(k, 3)
        cell = np.s_[r * side : (r + 1) * side, c * side : (c + 1) * side]
        truth[cell] = truth[cell][:, ::-1] if direction == "horizontal" else truth[cell][::-1]
        np.testing.assert_array_equal(image[~mask], truth[~mask])


def test_masked_borders_are_flat_on_every_tile() -> None:
    pz = puzzle(**PRESETS["3x3-Masked"].overrides)
    b = pz.config.border
    for tile in composite_tiles(pz, generate(pz).images[0]):
        assert (tile[:b] == 128).all() and (tile[:, -b:] == 128).all()
        assert tile[b:-b, b:-b].std() > 30


# --- symmetric tiles ---------------------------------------------------------------------


def test_tiles_with_invisible_horizontal_flips_are_flipped_vertically() -> None:
    pz = puzzle(grid=3)
    reasons: Counter[str] = Counter()
    for seed in range(20):
        inst = generate(pz, seed, MirroredTilesSource(3))
        assert inst.solution[1] == "vertical"
        reasons.update(inst.metadata["rejection_reasons"])
    assert set(reasons) == {"no_visible_flip"}


def test_the_one_asymmetric_tile_is_chosen_for_horizontal_flips() -> None:
    pz = puzzle(grid=3)
    for seed in range(20):
        inst = generate(pz, seed, MirroredTilesSource(3, keep=4))
        if inst.solution[1] == "horizontal":
            assert inst.solution[0] == 5
    counts = Counter(generate(pz, s, MirroredTilesSource(3, keep=4)).solution for s in range(40))
    assert counts[(5, "horizontal")] > 5


def test_fully_symmetric_tiles_reject_every_draw() -> None:
    pz = puzzle(grid=3, max_resamples=5)
    with pytest.raises(RuntimeError, match="no_visible_flip"):
        generate(pz, 0, MirroredTilesSource(3, both=True))


def test_ambiguous_directions_reject_every_draw() -> None:
    # tile == rot180(tile): its horizontal flip equals its vertical flip
    pz = puzzle(grid=2, max_resamples=5)
    with pytest.raises(RuntimeError, match="no_visible_flip"):
        generate(pz, 0, CentrallySymmetricSource(2))


def test_flat_images_are_rejected() -> None:
    with pytest.raises(RuntimeError, match="flat_tile"):
        generate(puzzle(max_resamples=5), 0, ConstantSource())


# --- balance, shapes, determinism ------------------------------------------------------


def test_tiles_and_directions_are_uniform() -> None:
    pz = puzzle(grid=3, size=96)
    n = 900
    answers = [generate(pz, seed).solution for seed in range(n)]
    tiles = Counter(t for t, _ in answers)
    directions = Counter(d for _, d in answers)
    chi2 = sum((tiles[k] - n / 9) ** 2 / (n / 9) for k in range(1, 10))
    assert chi2 < 27  # 8 degrees of freedom: p < 0.001
    assert abs(directions["horizontal"] - n / 2) < 3.3 * np.sqrt(n / 4)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("layout", ["composite", "overlay"])
def test_images_match_image_shapes(name: str, layout: str) -> None:
    for size in (96, 224):
        pz = puzzle(size=size, **{**PRESETS[name].overrides, "layout": layout})
        inst = generate(pz, 1)
        assert tuple(im.shape for im in inst.images) == pz.image_shapes()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_pass_the_contract_on_procedural_images(name: str) -> None:
    check_puzzle(FlipPatch(FlipPatchConfig(**PRESETS[name].overrides)), "procedural", (0, 1))


def test_generation_is_deterministic_and_json_clean() -> None:
    pz = puzzle(grid=4, layout="overlay")
    a, b = generate(pz, 3), generate(pz, 3)
    assert a.answer == b.answer and np.array_equal(a.images[0], b.images[0])
    json.dumps(dict(a.metadata))
    json.dumps(a.solution)


# --- grammar and scoring -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 horizontal", (5, "horizontal")),
        ("5 h", (5, "horizontal")),
        ("5 H", (5, "horizontal")),
        ("tile 5, horizontally", (5, "horizontal")),
        ("horizontal 5", (5, "horizontal")),
        ("5-horizontal", (5, "horizontal")),
        ("(5, vertical)", (5, "vertical")),
        ("5 vertically", (5, "vertical")),
        ("5 left-right", (5, "horizontal")),
        ("Tile 5 is mirrored left to right.", (5, "horizontal")),
        ("5 upside down", (5, "vertical")),
        ("5 top-bottom", (5, "vertical")),
        ("In the 3x3 grid, tile 5 is flipped vertically", (5, "vertical")),
        ("5", (5, None)),
        ("tile 5", (5, None)),
    ],
)
def test_parse_reads_tile_and_direction(text: str, expected: tuple) -> None:
    assert puzzle(grid=3).parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "horizontal", "5 or 6 horizontal", "5 horizontal, not vertical", "5 h v", "12345678 h"],
)
def test_parse_rejects_ambiguous_answers(text: str) -> None:
    assert puzzle(grid=3).parse(text) is None


def test_choices_are_canonical_and_parse_to_themselves() -> None:
    pz = puzzle(grid=2, cols=3)
    assert len(pz.choices) == 12
    assert pz.choices[:3] == ("1 horizontal", "1 vertical", "2 horizontal")
    for c in pz.choices:
        tile, direction = c.split()
        assert pz.parse(c) == (int(tile), direction)


def test_scores() -> None:
    pz = puzzle(grid=3)
    inst = generate(pz)
    tile, direction = inst.solution
    other = "vertical" if direction == "horizontal" else "horizontal"
    wrong_tile = tile % 9 + 1
    assert pz.score(inst, (tile, direction)) == 1.0
    assert pz.score(inst, [tile, direction]) == 1.0  # a solution read back from JSON
    assert pz.score(inst, (tile, other)) == 0.5
    assert pz.score(inst, (tile, None)) == 0.5
    assert pz.score(inst, (wrong_tile, direction)) == 0.0
    assert pz.score(inst, "5 horizontal") == 0.0
    assert pz.score(inst, None) == 0.0
    assert pz.verify(inst, f"<think>.</think> <answer>{tile}</answer>").score == 0.5
    assert pz.verify(inst, f"<think>.</think> <answer>{tile} {other}</answer>").reward == 0.5


@pytest.mark.parametrize(("grid", "cols"), [(2, None), (3, None), (4, 5)])
def test_chance_score_is_three_quarters_over_n(grid: int, cols: int | None) -> None:
    pz = puzzle(grid=grid, cols=cols)
    n = pz.n_tiles
    assert pz.chance_score == pytest.approx(0.75 / n)
    inst = generate(pz)
    exact = np.mean([pz.score(inst, pz.parse(c)) for c in pz.choices])
    assert exact == pytest.approx(pz.chance_score)
    assert inst.metadata["chance_score"] == pytest.approx(0.75 / n)


def test_random_answers_score_chance() -> None:
    pz = puzzle(grid=2)
    inst = generate(pz)
    rng = np.random.default_rng(0)
    picks = [pz.score(inst, pz.parse(pz.random_answer(inst, rng))) for _ in range(4000)]
    assert abs(np.mean(picks) - 0.1875) < 0.03


# --- hints -------------------------------------------------------------------------------


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grid": 6}, "grid"),
        ({"grid": 1}, "grid"),
        ({"cols": 7}, "cols"),
        ({"layout": "tiles"}, "'composite', 'overlay'"),
        ({"border": 30}, "border"),
        ({"size": 40, "grid": 5}, "at least 16"),
        ({"min_flip_diff": 300.0}, "min_flip_diff"),
    ],
)
def test_config_validation_names_what_is_valid(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlipPatchConfig(**overrides)


def test_the_retired_image_layout_is_renamed_overlay_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="layout='image' is now layout='overlay'"):
        old = FlipPatchConfig(layout="image")
    assert old == FlipPatchConfig(layout="overlay")
    assert old.layout == "overlay"
