"""Jigsaw: generation, grammar, scoring, hints and config checks on hand-built cases."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re

import numpy as np
import pytest
from sources import ConstantSource, NoiseSource

from ssl_gym import render
from ssl_gym.core import Instance, Rejected
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._jigsaw_tiles import check_tiles
from ssl_gym.puzzles.jigsaw import PRESETS, Jigsaw, JigsawConfig


class CopiedCellSource(NoiseSource):
    """Noise in which the top-left cell of a 3x3 grid is copied to the centre cell."""

    spec = "copied"

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        image = super().sample(rng, shape)
        t = shape[0] // 3
        image[t : 2 * t, t : 2 * t] = image[:t, :t]
        return image


def puzzle(**overrides: object) -> Jigsaw:
    """Upright, exact cuts unless asked: the geometry tests compare tiles with the source."""
    settings = {"orientation": "upright", "context": 1.0, "tone": 0.0, **overrides}
    return Jigsaw(JigsawConfig(**settings))  # type: ignore[arg-type]


def test_random_orientation_restores_a_turned_or_flipped_source() -> None:
    pz = puzzle(grid=2, orientation="random")
    seen = set()
    for seed in range(80):
        rng = np.random.default_rng(seed)
        source = NoiseSource()
        inst = pz.generate(rng, source)
        tiles = [inst.images[i - 1] for i in inst.solution]
        restored = render.join_tiles(tiles, 2, 2)
        original = source.last
        assert original is not None
        match = [k for k in render.DIHEDRAL if np.array_equal(render.orient(original, k), restored)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(render.DIHEDRAL)


def test_the_grid_is_a_random_window_of_a_larger_scene() -> None:
    pz = puzzle(grid=2, context=1.5)
    side, corners = 2 * pz.config.tile_side, set()
    for seed in range(20):
        source = NoiseSource()
        inst = generate(pz, seed, source)
        restored = render.join_tiles([inst.images[i - 1] for i in inst.solution], 2, 2)
        scene = source.last
        assert scene is not None and scene.shape[:2] == (math.ceil(1.5 * side),) * 2
        found = [
            (y, x)
            for y in range(scene.shape[0] - side + 1)
            for x in range(scene.shape[1] - side + 1)
            if np.array_equal(scene[y : y + side, x : x + side], restored)
        ]
        assert len(found) == 1
        corners.add(found[0])
    assert len(corners) > 10


def with_truth(pz: Jigsaw, solution: list[int]) -> Instance:
    """An instance whose ground truth is ``solution`` (scoring only reads the solution)."""
    blank = np.zeros((8, 8, 3), np.uint8)
    answer = ",".join(map(str, solution))
    return pz.make_instance([blank], "q", solution, answer, pattern=pz.pattern)


def generate(pz: Jigsaw, seed: int = 0, source: ImageSource | None = None) -> Instance:
    return pz.generate(np.random.default_rng(seed), source or NoiseSource())


# --- grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["3,1,2,4", "3, 1, 2, 4", "[3 1 2 4]", "3 1 2 4", "3\n1\n2\n4", "(3;1;2;4)"]
)
def test_parse_reads_four_integers_in_any_separators(text: str) -> None:
    assert puzzle(grid=2).parse(text) == [3, 1, 2, 4]


@pytest.mark.parametrize("text", ["3,1,2", "3,1,2,4,5", "", "one, two", "3,1,2,4 and 7"])
def test_parse_needs_exactly_n_integers(text: str) -> None:
    assert puzzle(grid=2).parse(text) is None


def test_parse_keeps_repeats_and_out_of_range_for_scoring() -> None:
    pz = puzzle(grid=2)
    assert pz.parse("1,1,1,1") == [1, 1, 1, 1]
    assert pz.parse("0, 5, -1, 2") == [0, 5, -1, 2]
    assert pz.parse("1,2,3," + "9" * 3000) == [1, 2, 3, 0]  # huge numbers do not raise


def test_pattern_matches_exactly_n_numbers_in_range() -> None:
    pattern = puzzle(grid=2).pattern
    for good in ("3,1,2,4", "3, 1, 2,4", "1,1,1,1"):
        assert re.fullmatch(pattern, good), good
    for bad in ("3,1,2", "3,1,2,4,1", "0,1,2,3", "5,1,2,3", "3 1 2 4", "31,2,4", "3 ,1,2,4"):
        assert not re.fullmatch(pattern, bad), bad
    assert re.fullmatch(puzzle(grid=5).pattern, ",".join(map(str, range(25, 0, -1))))
    assert not re.fullmatch(puzzle(grid=5).pattern, "26" + ",1" * 24)


# --- scoring ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guess", "position", "adjacency"),
    [
        ([1, 2, 3, 4], 1.0, 1.0),
        ([2, 1, 3, 4], 0.5, 0.25),  # top row swapped: only the bottom pair is right
        ([3, 4, 1, 2], 0.0, 0.5),  # rows swapped: both horizontal pairs are right
        ([4, 3, 2, 1], 0.0, 0.0),  # turned by 180 degrees: every relation reversed
    ],
)
def test_scores_on_a_2x2(guess: list[int], position: float, adjacency: float) -> None:
    for scoring, expected in (
        ("position", position),
        ("exact", float(guess == [1, 2, 3, 4])),
        ("adjacency", adjacency),
    ):
        pz = puzzle(grid=2, scoring=scoring)
        assert pz.score(with_truth(pz, [1, 2, 3, 4]), guess) == expected, scoring


def test_adjacency_on_a_2x3_with_columns_rotated() -> None:
    pz = puzzle(grid=2, cols=3, scoring="adjacency")
    inst = with_truth(pz, [1, 2, 3, 4, 5, 6])
    # 2 of 4 horizontal pairs stay neighbours, all 3 vertical pairs do.
    assert pz.score(inst, [2, 3, 1, 5, 6, 4]) == pytest.approx(5 / 7)
    assert puzzle(grid=2, cols=3).score(inst, [2, 3, 1, 5, 6, 4]) == 0.0


def test_scores_against_a_shuffled_truth() -> None:
    truth = [3, 1, 4, 2]  # tile 3 top-left, tile 1 top-right, tile 4 bottom-left
    for scoring in ("position", "exact", "adjacency"):
        pz = puzzle(grid=2, scoring=scoring)
        assert pz.score(with_truth(pz, truth), truth) == 1.0
    pz = puzzle(grid=2, scoring="adjacency")
    # The truth's rows swapped: tiles 4,2 side by side and 3,1 side by side are right.
    assert pz.score(with_truth(pz, truth), [4, 2, 3, 1]) == 0.5


def test_repeated_and_out_of_range_cells_score_zero() -> None:
    pz = puzzle(grid=2)
    inst = with_truth(pz, [1, 2, 3, 4])
    assert pz.score(inst, [1, 1, 3, 4]) == 0.5  # both cells holding 1 are wrong
    assert pz.score(inst, [2, 2, 3, 4]) == 0.5
    assert pz.score(inst, [1, 1, 1, 1]) == 0.0
    assert pz.score(inst, [0, 2, 3, 4]) == 0.75
    assert pz.score(inst, [1, 2, 3, 5]) == 0.75
    assert pz.score(inst, [1, 2, 3]) == 0.0
    assert pz.score(inst, "1,2,3,4") == 0.0
    adj = puzzle(grid=2, scoring="adjacency")
    assert adj.score(with_truth(adj, [1, 2, 3, 4]), [1, 2, 3, 3]) == 0.25
    assert adj.score(with_truth(adj, [1, 2, 3, 4]), [1, 1, 1, 1]) == 0.0


@pytest.mark.parametrize("scoring", ["position", "exact", "adjacency"])
def test_repeats_never_beat_the_best_permutation(scoring: str) -> None:
    pz = puzzle(grid=2, cols=3, scoring=scoring)
    rng = np.random.default_rng(0)
    for _ in range(300):
        inst = with_truth(pz, (rng.permutation(6) + 1).tolist())
        guess = rng.integers(1, 7, 6).tolist()
        missing = iter(sorted(set(range(1, 7)) - set(guess)))
        seen: set[int] = set()
        repaired = []
        for v in guess:  # keep first uses, give repeats the missing numbers
            repaired.append(v if v not in seen else next(missing))
            seen.add(v)
        assert sorted(repaired) == list(range(1, 7))
        assert pz.score(inst, guess) <= pz.score(inst, repaired)


def test_chance_scores() -> None:
    for name, preset in PRESETS.items():
        pz = Jigsaw(JigsawConfig(**preset.overrides))
        assert pz.chance_score == pytest.approx(1 / pz.n_tiles), name
    assert puzzle(grid=3, scoring="exact").chance_score == pytest.approx(1 / math.factorial(9))
    assert puzzle(grid=2, scoring="adjacency").chance_score == pytest.approx(1 / 6)


@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (2, 3), (3, 3), (3, 2)])
def test_chance_scores_match_random_guessing(rows: int, cols: int) -> None:
    rng = np.random.default_rng(1)
    for scoring in ("position", "adjacency"):
        pz = puzzle(grid=rows, cols=cols, scoring=scoring)
        inst = with_truth(pz, (rng.permutation(rows * cols) + 1).tolist())
        guesses = [(rng.permutation(rows * cols) + 1).tolist() for _ in range(20_000)]
        mean = np.mean([pz.score(inst, g) for g in guesses])
        assert mean == pytest.approx(pz.chance_score, abs=0.01), scoring


def test_random_answers_score_chance_through_verify() -> None:
    for scoring in ("position", "adjacency"):
        pz = puzzle(grid=2, cols=3, scoring=scoring, answer_format="plain")
        inst = generate(pz)
        rng = np.random.default_rng(3)
        scores = [pz.verify(inst, pz.random_answer(inst, rng)).score for _ in range(5000)]
        assert np.mean(scores) == pytest.approx(pz.chance_score, abs=0.015), scoring


def test_exhaustive_adjacency_chance_on_2x2() -> None:
    pz = puzzle(grid=2, scoring="adjacency")
    inst = with_truth(pz, [1, 2, 3, 4])
    scores = [pz.score(inst, list(p)) for p in itertools.permutations([1, 2, 3, 4])]
    assert np.mean(scores) == pytest.approx(pz.chance_score)
    assert scores.count(1.0) == 1  # only the solution has every relation right


# --- generation ---------------------------------------------------------------------------


def test_the_shown_order_is_never_the_original() -> None:
    pz = puzzle(grid=2)
    for seed in range(400):  # an unconstrained shuffle would give ~17 identities
        inst = generate(pz, seed)
        assert inst.solution != [1, 2, 3, 4]
        assert inst.metadata["permutation"] != [0, 1, 2, 3]


@pytest.mark.parametrize("name", ["2x2", "2x3", "3x3", "4x4", "5x5"])
def test_the_answer_restores_the_image(name: str) -> None:
    pz = Jigsaw(
        JigsawConfig(orientation="upright", context=1.0, tone=0.0, **PRESETS[name].overrides)
    )
    src = NoiseSource()
    inst = generate(pz, 3, src)
    rows, cols = inst.metadata["rows"], inst.metadata["cols"]
    restored = render.join_tiles([inst.images[k - 1] for k in inst.solution], rows, cols)
    assert src.last is not None
    np.testing.assert_array_equal(restored, src.last)
    cells = render.split_tiles(src.last, rows, cols)
    for shown, cell in zip(inst.images, inst.metadata["permutation"], strict=True):
        np.testing.assert_array_equal(shown, cells[cell])


def test_toned_tiles_change_values_but_still_match_their_cells() -> None:
    pz = puzzle(grid=3, tone=0.1)
    src = NoiseSource()
    inst = generate(pz, 3, src)
    assert src.last is not None
    cells = render.split_tiles(src.last, 3, 3)
    changed = 0
    for shown, home in zip(inst.images, inst.metadata["permutation"], strict=True):
        gray = [im.astype(float).mean(axis=2).ravel() for im in (shown, *cells)]
        fits = [np.corrcoef(gray[0], cell)[0, 1] for cell in gray[1:]]
        assert int(np.argmax(fits)) == home and max(fits) > 0.97
        changed += not np.array_equal(shown, cells[home])
    assert changed >= 8


def test_composite_lays_the_shown_tiles_out_like_render_grid() -> None:
    pz = Jigsaw(
        JigsawConfig(
            orientation="upright", context=1.0, tone=0.0, **PRESETS["3x3-Composite"].overrides
        )
    )
    src = NoiseSource()
    inst = generate(pz, 5, src)
    assert src.last is not None
    cells = render.split_tiles(src.last, 3, 3)
    shown = [cells[c] for c in inst.metadata["permutation"]]
    labels = [str(k) for k in range(1, 10)]
    expected = render.grid(shown, 3, labels, gap=4, label_height=max(14, 74 // 5))
    assert len(inst.images) == 1
    np.testing.assert_array_equal(inst.images[0], expected)
    assert "labelled" in inst.question


def test_jittered_masked_tiles_come_from_their_cells() -> None:
    pz = Jigsaw(
        JigsawConfig(
            orientation="upright", context=1.0, tone=0.0, **PRESETS["3x3-Masked"].overrides
        )
    )
    cfg = pz.config
    src = NoiseSource()
    inst = generate(pz, 7, src)
    side, cell, b = cfg.tile_side, cfg.tile_side + cfg.jitter, cfg.border
    assert src.last is not None and src.last.shape[:2] == (3 * cell, 3 * cell)
    for tile, home in zip(inst.images, inst.metadata["permutation"], strict=True):
        r, c = divmod(home, 3)
        found = [
            (dy, dx)
            for dy in range(cfg.jitter + 1)
            for dx in range(cfg.jitter + 1)
            if np.array_equal(
                tile[b:-b, b:-b],
                src.last[
                    r * cell + dy + b : r * cell + dy + side - b,
                    c * cell + dx + b : c * cell + dx + side - b,
                ],
            )
        ]
        assert len(found) == 1


@pytest.mark.parametrize("name", list(PRESETS))
def test_images_match_image_shapes(name: str) -> None:
    for size in (224, 160):
        pz = Jigsaw(JigsawConfig(size=size, **PRESETS[name].overrides))
        inst = generate(pz, 0)
        assert tuple(im.shape for im in inst.images) == pz.image_shapes()
        assert all(im.dtype == np.uint8 for im in inst.images)
        assert re.fullmatch(inst.pattern or "", inst.answer)


def test_tiles_have_one_size_whatever_the_image_size() -> None:
    shapes = {puzzle(size=s, tile=40).image_shapes() for s in (64, 224, 512)}
    assert shapes == {((40, 40, 3),) * 9}
    assert puzzle(size=224, grid=2, cols=3).image_shapes()[0] == (74, 74, 3)


def test_border_masking_makes_tile_frames_flat() -> None:
    inst = generate(puzzle(grid=3, border=5))
    for tile in inst.images:
        frame = np.concatenate(
            [
                tile[:5].reshape(-1, 3),
                tile[-5:].reshape(-1, 3),
                tile[:, :5].reshape(-1, 3),
                tile[:, -5:].reshape(-1, 3),
            ]
        )
        assert (frame == frame[0]).all()
        assert tile[5:-5, 5:-5].std() > 30  # the inside is untouched noise


def test_generation_is_deterministic_and_json_clean() -> None:
    pz = puzzle(grid=3, layout="composite")
    a, b = generate(pz, 11), generate(pz, 11)
    assert a.answer == b.answer and a.prompt == b.prompt
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    json.dumps(dict(a.metadata))
    json.dumps(a.solution)
    assert a.metadata["rejections"] == 0
    assert a.choices is None


def test_the_oracle_scores_one_in_every_format() -> None:
    for fmt in ("tags", "boxed", "plain"):
        pz = puzzle(grid=3, answer_format=fmt)
        inst = generate(pz)
        verdict = pz.verify(inst, pz.oracle(inst))
        assert verdict.score == 1.0 and verdict.format_ok
    swapped = list(inst.solution)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert pz.verify(inst, ", ".join(map(str, swapped))).score == pytest.approx(7 / 9)


# --- rejection ----------------------------------------------------------------------------


def test_flat_images_are_rejected() -> None:
    pz = puzzle(grid=3, max_resamples=5)
    with pytest.raises(RuntimeError, match=r"rejections.*flat_tile"):
        generate(pz, source=ConstantSource())


def test_identical_tiles_are_rejected() -> None:
    pz = puzzle(grid=3, min_std=0.0, max_resamples=5)
    with pytest.raises(RuntimeError, match=r"rejections.*near_duplicate_tiles"):
        generate(pz, source=ConstantSource())


def test_one_duplicated_pair_among_noise_is_rejected() -> None:
    pz = puzzle(grid=3, max_resamples=3)
    with pytest.raises(RuntimeError, match="near_duplicate_tiles"):
        generate(pz, source=CopiedCellSource())
    generate(puzzle(grid=3, min_tile_diff=0.0), source=CopiedCellSource())  # check off


def test_rejections_are_counted() -> None:
    class FlatFirst(NoiseSource):
        calls = 0

        def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
            self.calls += 1
            image = super().sample(rng, shape)
            return np.zeros_like(image) if self.calls <= 2 else image

    inst = generate(puzzle(grid=2), source=FlatFirst())
    assert inst.metadata["rejections"] == 2
    assert inst.metadata["rejection_reasons"] == {"flat_tile": 2}


def test_tile_checks_agree_with_the_render_helpers() -> None:
    cfg = JigsawConfig(min_std=20.0, min_tile_diff=30.0)
    rng = np.random.default_rng(2)
    outcomes = set()
    for _ in range(300):  # tiles sharing a pattern, colours, noise: all three outcomes
        pattern = rng.integers(-60, 60, (1, 24, 24, 3))
        colours = rng.integers(60, 200, (6 if rng.random() < 0.5 else 1, 1, 1, 3))
        noise = rng.normal(0, rng.uniform(0, 40), (6, 24, 24, 3))
        tiles = np.clip(colours + rng.uniform(0, 1) * pattern + noise, 0, 255).astype(np.uint8)
        seen = tiles[:, ::2, ::2]
        spatial = seen - seen.mean(axis=(1, 2), keepdims=True)  # about each channel's mean
        if any(np.sqrt((t.astype(float) ** 2).mean()) < cfg.min_std for t in spatial):
            expected = "flat_tile"
        elif render.near_duplicates(list(seen), cfg.min_tile_diff):
            expected = "near_duplicate_tiles"
        else:
            expected = "ok"
        try:
            check_tiles(tiles, cfg.min_std, cfg.min_tile_diff)
            got = "ok"
        except Rejected as why:
            got = why.reason
        assert got == expected
        outcomes.add(got)
    assert outcomes == {"ok", "flat_tile", "near_duplicate_tiles"}


# --- hints --------------------------------------------------------------------------------

_HINT = re.compile(r"Tile (\d+) belongs in row (\d+), column (\d+)")


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grid": 1}, r"grid must be >= 2 and <= 5"),
        ({"grid": 6}, r"grid must be >= 2 and <= 5"),
        ({"cols": 1}, r"cols must be >= 2 and <= 5"),
        ({"layout": "x"}, r"layout='x'.*'images', 'composite'"),
        ({"scoring": "fuzzy"}, r"scoring='fuzzy'.*'position', 'exact', 'adjacency'"),
        ({"tile": 4}, r"tile must be >= 8"),
        ({"size": 32, "grid": 5}, r"tiles under 8 px"),
        ({"border": 20}, r"border must be >= 0 and <= 17"),
        ({"jitter": -1}, r"jitter must be >= 0"),
        ({"jitter": 100}, r"jitter must be >= 0 and <= 74"),
        ({"min_std": -1.0}, r"min_std"),
        ({"min_tile_diff": "a"}, r"min_tile_diff must be a number"),
    ],
)
def test_config_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JigsawConfig(**overrides)  # type: ignore[arg-type]


def test_unknown_setting_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="layout"):
        JigsawConfig.from_overrides(grids=3)


def test_presets_run_easy_to_hard_and_configs_are_frozen() -> None:
    order = {"easy": 0, "medium": 1, "hard": 2}
    ranks = [order[p.difficulty] for p in PRESETS.values()]
    assert ranks == sorted(ranks)
    assert Jigsaw.presets is PRESETS
    with pytest.raises(dataclasses.FrozenInstanceError):
        JigsawConfig().grid = 4  # type: ignore[misc]


@pytest.mark.parametrize("style", ["ssl4rl", "ssl_r1", "plain"])
def test_prompts_state_the_grid_and_the_answer_order(style: str) -> None:
    inst = generate(puzzle(grid=2, cols=3, prompt_style=style))
    assert "2x3" in inst.question and "6" in inst.question
    assert "6,5,4,3,2,1" in inst.question  # the fixed example
    assert ("Patch ordering" in inst.question) == (style == "ssl_r1")
    assert inst.prompt.startswith(inst.question)
