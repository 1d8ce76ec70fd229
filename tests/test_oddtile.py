"""OddTile: generation, grammar, scoring, hints and config checks on hand-built cases."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from sources import ConstantSource, NoiseSource

from ssl_gym.audit.strong import identity_error
from ssl_gym.core import Instance
from ssl_gym.images.base import ImageSource, content_key
from ssl_gym.puzzles.oddtile import PRESETS, OddTile, OddTileConfig
from ssl_gym.testing import check_puzzle

FAST = {"size": 64, "tile": 16}
"""Small images keep the many-seed tests fast."""


class Keyed:
    """Draws through ``sample`` (which records what it made), keyed by content."""

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        image = self.sample(rng, shape)  # type: ignore[attr-defined]
        return image, content_key(image)


class Noise(Keyed, NoiseSource):
    """Noise pictures, each its own source picture."""


class Constant(Keyed, ConstantSource):
    """Flat pictures, each its own source picture."""


class SameSource(Noise):
    """The same noise image every time."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        return super().sample(np.random.default_rng(0), shape)


class RepeatedTextureSource(Noise):
    """Noise whose 16-pixel cells all repeat one texture (every tile looks the same)."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        cell = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        return np.tile(cell, (shape[0] // 16, shape[1] // 16, 1))


def puzzle(**overrides: object) -> OddTile:
    return OddTile(OddTileConfig(**overrides))  # type: ignore[arg-type]


def generate(pz: OddTile, seed: int = 0, source: ImageSource | None = None) -> Instance:
    return pz.generate(np.random.default_rng(seed), source or Noise())


def with_truth(pz: OddTile, answer: str) -> Instance:
    """An instance whose answer is ``answer`` (scoring and hints read only that)."""
    blank = np.zeros((8, 8, 3), np.uint8)
    return pz.make_instance([blank], "q", answer, answer, choices=pz.options)


def cell(image: np.ndarray, index: int, side: int) -> np.ndarray:
    g = image.shape[0] // side
    r, c = divmod(index, g)
    return image[r * side : (r + 1) * side, c * side : (c + 1) * side]


# --- grammar and scoring ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["C", "(C)", "Tile C", "c", "C.", "The odd one is C"])
def test_parse_reads_one_letter(text: str) -> None:
    assert puzzle(tiles=4).parse(text) == "C"


@pytest.mark.parametrize("text", ["A or C", "E", "", "a tile", "CD", "cat"])
def test_parse_rejects_none_or_two_or_out_of_range(text: str) -> None:
    assert puzzle(tiles=4).parse(text) is None


def test_score_is_exact_match() -> None:
    pz = puzzle(tiles=3)
    inst = with_truth(pz, "A")
    assert [pz.score(inst, c) for c in pz.options] == [1.0, 0.0, 0.0]
    assert pz.verify(inst, "<think>x</think> <answer>(A)</answer>").reward == 1.0
    assert pz.verify(inst, "<think>x</think> <answer>B</answer>").reward == 0.0


# --- generation: the tiles are what they claim --------------------------------------------


@pytest.mark.parametrize("tiles", [3, 5, 8])
def test_tiles_are_cells_of_the_main_image_but_the_odd_one(tiles: int) -> None:
    pz = puzzle(tiles=tiles, tile_jitter=0.0, **FAST)
    side = pz.config.tile_side
    for seed in range(10):
        src = Noise()
        inst = generate(pz, seed, src)
        main, other = src.made[-2:]
        cells = inst.metadata["cells"]
        index = pz.options.index(inst.answer)
        main_tiles = [t for i, t in enumerate(inst.images) if i != index]
        assert len(set(cells)) == tiles
        for tile, c in zip(main_tiles, cells[:-1], strict=True):
            assert np.array_equal(tile, cell(main, c, side))
        assert np.array_equal(inst.images[index], cell(other, cells[-1], side))


def test_jitter_changes_every_tile_mildly() -> None:
    pz = puzzle(tiles=4, tile_jitter=0.3, **FAST)
    plain = puzzle(tiles=4, tile_jitter=0.0, **FAST)
    a, b = generate(pz, 5), generate(plain, 5)
    assert a.answer == b.answer
    for x, y in zip(a.images, b.images, strict=True):
        gap = np.abs(x.astype(int) - y).mean()
        assert 0 < gap < 100


def test_hard_other_pairs_similar_colours() -> None:
    class TwoTone(Noise):
        """Dark or bright noise, half and half."""

        def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
            low = 0 if rng.random() < 0.5 else 160
            image = rng.integers(low, low + 96, (*shape, 3), dtype=np.uint8)
            self.made.append(image)
            return image

    pz = puzzle(tiles=3, hard_other=True, pool=8, tile_jitter=0.0, **FAST)
    for seed in range(10):
        src = TwoTone()
        generate(pz, seed, src)
        main, other = src.made[-2:]
        assert abs(float(main.mean()) - float(other.mean())) < 40


def test_labels_are_balanced() -> None:
    pz = puzzle(tiles=4, **FAST)
    counts = Counter(generate(pz, seed).answer for seed in range(400))
    assert set(counts) == set("ABCD")
    assert all(70 <= n <= 130 for n in counts.values()), counts


def test_composite_holds_the_same_tiles_as_the_images_layout() -> None:
    images, comp = puzzle(tiles=5, **FAST), puzzle(tiles=5, layout="composite", **FAST)
    a, b = generate(images, 2), generate(comp, 2)
    (canvas,) = b.images
    assert canvas.shape == comp.image_shapes()[0]
    side, lh = comp.config.tile_side, comp._label_height
    for i, tile in enumerate(a.images):
        r, c = divmod(i, comp._cols)
        y, x = 4 + r * (side + lh + 4) + lh, 4 + c * (side + 4)
        assert np.array_equal(canvas[y : y + side, x : x + side], tile)
        assert (canvas[y - lh : y, x : x + side] < 128).any()  # the letter is drawn


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_meets_the_contract(name: str) -> None:
    pz = puzzle(**PRESETS[name].overrides)
    check_puzzle(pz, "procedural", seeds=(0, 1))
    inst = generate(pz, 0)
    assert tuple(im.shape for im in inst.images) == pz.image_shapes()
    assert inst.metadata["chance_score"] == pytest.approx(1 / pz.config.tiles)


# --- ambiguity -----------------------------------------------------------------------------


def test_flat_tiles_are_rejected() -> None:
    with pytest.raises(RuntimeError, match="flat_tile"):
        generate(puzzle(max_resamples=3, **FAST), 0, Constant())


def test_a_single_picture_cannot_make_an_odd_tile() -> None:
    with pytest.raises(RuntimeError, match="too_few_distinct_sources"):
        generate(puzzle(max_resamples=3, **FAST), 0, SameSource())


def test_repeated_tiles_are_rejected() -> None:
    with pytest.raises(RuntimeError, match="near_duplicate_tiles"):
        generate(puzzle(max_resamples=3, **FAST), 0, RepeatedTextureSource())


@pytest.mark.parametrize("hard", [False, True])
def test_source_keys_say_which_tile_is_odd(hard: bool) -> None:
    pz = puzzle(tiles=5, hard_other=hard, **FAST)
    for seed in range(10):
        inst = generate(pz, seed)
        main, *keys = inst.metadata["source_keys"]  # the main picture's, then each tile's
        index = pz.options.index(inst.answer)
        assert len(set(keys)) == 2 and keys.count(keys[index]) == 1
        assert keys.count(main) == len(keys) - 1
        parts = pz.parts(inst)
        assert parts.sources == tuple(keys) and not identity_error(pz, parts)


# --- hints ---------------------------------------------------------------------------------


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"tiles": 9}, "tiles"),
        ({"tiles": 2}, "tiles"),
        ({"tiles": 6, "tile": 100}, "cells"),
        ({"tile": 4}, "tile"),
        ({"layout": "tiles"}, "'images', 'composite'"),
        ({"pool": 1}, "pool"),
        ({"tile_jitter": 0.9}, "tile_jitter"),
        ({"hard_other": "yes"}, "True, False"),
    ],
)
def test_config_errors_name_the_valid_values(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        puzzle(**overrides)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OddTileConfig().tiles = 3  # type: ignore[misc]
