"""Hand-built checks of the Position family."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ssl_gym.core import format_answer
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles.position import PRESETS, Position, PositionConfig
from ssl_gym.render import MARK


class NoiseSource(ImageSource):
    """Deterministic noise images (textured, every cell distinct); counts what it hands out."""

    spec = "test-noise"

    def __init__(self) -> None:
        self.handed = 0

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        self.handed += 1
        return rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)


class ConstantSource(ImageSource):
    spec = "test-constant"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return np.full((64, 64, 3), 128, dtype=np.uint8)


class RepeatedCellSource(ImageSource):
    """Images made of one textured cell repeated in a 2 x 2 grid: every cell looks alike."""

    spec = "test-repeated"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        cell = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        return np.tile(cell, (2, 2, 1))


def make(**overrides: object) -> Position:
    return Position(PositionConfig(size=96, **overrides))  # type: ignore[arg-type]


# --- parsing -----------------------------------------------------------------------------

PARSE_2X2 = [
    ("top-left", "top-left"),
    ("Top Left", "top-left"),
    ("top_left", "top-left"),
    ("upper-left", "top-left"),
    ("upper left", "top-left"),
    ("TOPLEFT", "top-left"),
    ("left top", "top-left"),
    ("the top-left cell", "top-left"),
    ("top-left.", "top-left"),
    ("Lower right quadrant", "bottom-right"),
    ("bottom-left", "bottom-left"),
    ("3", "bottom-left"),
    ("4", "bottom-right"),
    ("Image 2 comes from the top-right of Image 1", "top-right"),
    ("top-right (2)", "top-right"),
    ("top-left or bottom-right", None),
    ("top-left, 4", None),
    ("top", None),
    ("left", None),
    ("center", None),
    ("5", None),
    ("0", None),
    ("", None),
    ("no idea", None),
]

PARSE_3X3 = [
    ("centre", "center"),
    ("middle", "center"),
    ("Center", "center"),
    ("the center cell", "center"),
    ("top", "top"),
    ("top center", "top"),
    ("upper middle", "top"),
    ("middle-left", "left"),
    ("center right", "right"),
    ("bottom", "bottom"),
    ("bottom-right", "bottom-right"),
    ("5", "center"),
    ("9", "bottom-right"),
    ("cell 3 of the 3x3 grid", "top-right"),
    ("top-left", "top-left"),
    ("top left center", None),
    ("top bottom", None),
    ("left and right", None),
    ("10", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_2X2)
def test_parse_2x2(text: str, expected: str | None):
    assert make(grid=2).parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), PARSE_3X3)
def test_parse_3x3(text: str, expected: str | None):
    assert make(grid=3).parse(text) == expected


# --- generation --------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [2, 3])
def test_patch_is_the_named_cell(grid: int):
    puzzle = make(grid=grid, jitter=0.0)
    cell = 96 // grid
    seen: Counter[str] = Counter()
    for seed in range(60):
        inst = puzzle.generate(np.random.default_rng(seed), NoiseSource())
        full, patch = inst.images
        row, col = divmod(puzzle.cells.index(inst.answer), grid)
        expected = full[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell]
        np.testing.assert_array_equal(patch, expected)
        assert inst.solution == inst.answer and inst.choices == puzzle.cells
        seen[inst.answer] += 1
    assert set(seen) == set(puzzle.cells)


def test_jittered_patch_matches_only_its_cell_by_structure():
    """With the default mild jitter the values move, but the named cell fits best."""
    puzzle = make(grid=3)
    cell, moved = 96 // 3, 0
    for seed in range(40):
        inst = puzzle.generate(np.random.default_rng(seed), NoiseSource())
        full, patch = (im.astype(np.float64).mean(axis=2) for im in inst.images)
        cells = [
            full[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
            for r in range(3)
            for c in range(3)
        ]
        fits = [np.corrcoef(patch.ravel(), c.ravel())[0, 1] for c in cells]
        assert puzzle.cells[int(np.argmax(fits))] == inst.answer and max(fits) > 0.97
        r, c = divmod(puzzle.cells.index(inst.answer), 3)
        exact = inst.images[0][r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
        moved += not np.array_equal(inst.images[1], exact)
        assert inst.metadata["augmentations"] == ["color_jitter"]
    assert moved >= 38  # a factor drawn near 1 can leave a cut unchanged


def test_augmented_patch_keeps_shape_but_changes_pixels():
    puzzle = make(grid=3, augment=True)
    changed = 0
    for seed in range(30):
        inst = puzzle.generate(np.random.default_rng(seed), NoiseSource())
        full, patch = inst.images
        row, col = divmod(puzzle.cells.index(inst.answer), 3)
        cell = full[row * 32 : (row + 1) * 32, col * 32 : (col + 1) * 32]
        assert patch.shape == cell.shape
        changed += not np.array_equal(patch, cell)
        assert bool(inst.metadata["augmentations"]) == (not np.array_equal(patch, cell))
    assert changed >= 15


def test_same_seed_same_instance():
    puzzle = make(grid=3, augment=True)
    a = puzzle.generate(np.random.default_rng(7), NoiseSource())
    b = puzzle.generate(np.random.default_rng(7), NoiseSource())
    assert a.answer == b.answer and a.prompt == b.prompt
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_match_image_shapes(name: str):
    puzzle = Position(PositionConfig(**PRESETS[name].overrides))
    inst = puzzle.generate(np.random.default_rng(0), NoiseSource())
    assert tuple(im.shape for im in inst.images) == puzzle.image_shapes()
    assert all(im.dtype == np.uint8 for im in inst.images)
    assert inst.metadata["chance_score"] == pytest.approx(1 / puzzle.config.grid**2)


def test_constant_source_raises_with_rejections():
    puzzle = make(max_resamples=5)
    with pytest.raises(RuntimeError, match="rejections") as info:
        puzzle.generate(np.random.default_rng(0), ConstantSource())
    assert "flat_cell" in str(info.value)


def test_repeated_cells_are_rejected():
    puzzle = make(grid=2, max_resamples=5, context=1.0)  # the whole periodic scene
    with pytest.raises(RuntimeError, match="duplicate_cells"):
        puzzle.generate(np.random.default_rng(0), RepeatedCellSource())


# --- scoring and hints -------------------------------------------------------------------


@pytest.mark.parametrize("answer_format", ["tags", "boxed", "plain"])
def test_scoring(answer_format: str):
    puzzle = make(grid=3, answer_format=answer_format)
    inst = puzzle.generate(np.random.default_rng(1), NoiseSource())
    assert puzzle.verify(inst, puzzle.oracle(inst)).reward == 1.0
    index = puzzle.cells.index(inst.answer)
    assert puzzle.verify(inst, format_answer(str(index + 1), answer_format)).score == 1.0
    wrong = puzzle.cells[(index + 1) % 9]
    verdict = puzzle.verify(inst, format_answer(wrong, answer_format))
    assert verdict.score == 0.0 and verdict.parsed == wrong
    assert puzzle.score(inst, inst.answer.upper()) == 0.0  # scoring takes parsed names


def _outlined(image: np.ndarray) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the pixels painted in the hint colour."""
    ys, xs = np.nonzero((image == np.array(MARK, dtype=np.uint8)).all(axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("grid", [2, 3])
def test_hints_outline_the_row_then_the_cell(grid: int):
    puzzle = make(grid=grid)
    cell = puzzle.config.size // grid
    for seed in range(6):
        inst = puzzle.generate(np.random.default_rng(seed), NoiseSource())
        row, col = divmod(puzzle.cells.index(inst.answer), grid)
        band, box = puzzle.hint(inst, 0), puzzle.hint(inst, 1)
        assert puzzle.hint(inst, 2) is None
        left, top, right, bottom = _outlined(band.images[0])
        assert (left, right) == (1, grid * cell - 2)  # the whole row, inside its dark edge
        assert top // cell == row and bottom // cell == row
        left, top, right, bottom = _outlined(box.images[0])
        assert (left // cell, top // cell, right // cell, bottom // cell) == (col, row, col, row)
        assert band.images[1] is inst.images[1]  # the patch is left as it is


def test_hint_texts_never_name_a_cell():
    puzzle = make(grid=3)
    inst = puzzle.generate(np.random.default_rng(0), NoiseSource())
    for level in (0, 1):
        words = set(puzzle.hint(inst, level).text.lower().replace(".", "").split())
        assert not words & {"top", "bottom", "left", "right", "middle", "center"}


@pytest.mark.parametrize("style", ["ssl4rl", "ssl_r1", "plain"])
def test_prompt_lists_the_cells(style: str):
    puzzle = make(grid=3, prompt_style=style)
    inst = puzzle.generate(np.random.default_rng(0), NoiseSource())
    assert all(name in inst.prompt for name in puzzle.cells)


# --- configuration -----------------------------------------------------------------------


def test_config_validation_names_valid_options():
    with pytest.raises(ValueError, match=r"grid=4.*2, 3"):
        PositionConfig(grid=4)
    with pytest.raises(ValueError, match="augment"):
        PositionConfig(augment="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_cell_diff"):
        PositionConfig(min_cell_diff=-1.0)
    with pytest.raises(TypeError):
        PositionConfig(3)  # type: ignore[misc]  # keyword-only


def test_presets_easy_to_hard():
    assert [p.difficulty for p in PRESETS.values()] == ["easy", "medium", "hard"]
    assert Position.presets is PRESETS
