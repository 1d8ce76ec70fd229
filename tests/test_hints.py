"""Hinted play that needs the pixels: retry costs, the blind adversary, marks a solver reads."""

from __future__ import annotations

import dataclasses
import math
from itertools import permutations

import gymnasium as gym
import numpy as np
import pytest

from ssl_gym.audit.strong import strong_audit_hinted
from ssl_gym.core import Hint, Instance, format_answer
from ssl_gym.envs import entries, make_puzzle_env
from ssl_gym.multiturn import blind_value, retry_cost
from ssl_gym.puzzles.rotation import Rotation
from ssl_gym.render import DIHEDRAL, MARK, orient, orient_box


def _enumeration(answers: int, turns: int, cost: float) -> np.ndarray:
    """Rewards of trying the answers in turn, one for every place of the right one."""
    out = []
    for right in range(answers):
        wrong = min(right, turns - 1)
        out.append((1.0 if right < turns else 0.0) - cost * wrong)
    return np.array(out)


def _enumerate(answers: int, turns: int, cost: float) -> float:
    """Mean reward of trying the answers in turn, over every place of the right one."""
    return float(_enumeration(answers, turns, cost).mean())


@pytest.mark.parametrize(("answers", "turns"), [(2, 3), (4, 4), (4, 3), (8, 4), (9, 4)])
def test_the_retry_cost_holds_enumeration_to_chance(answers: int, turns: int) -> None:
    chance = 1.0 / answers
    cost = retry_cost(answers, turns, chance, check_episodes=None)
    assert blind_value(answers, turns, chance, cost) == pytest.approx(chance)
    assert _enumerate(answers, turns, cost) == pytest.approx(chance)
    assert retry_cost(answers, turns, chance, floor=2.0) == 2.0
    assert retry_cost(4, 4, 0.25, check_episodes=None) == pytest.approx(0.5)  # worked example


@pytest.mark.parametrize(("answers", "turns"), [(2, 3), (4, 4), (4, 3), (8, 4), (9, 3), (6, 5)])
def test_the_margin_keeps_a_200_episode_blind_check_within_chance_plus_005(
    answers: int, turns: int
) -> None:
    """The mean of 200 blind episodes stays under chance + 0.05 at 2.33 standard errors,
    with no more margin than that (hints are not priced dearer than the check needs)."""
    chance = 1.0 / answers
    exact = retry_cost(answers, turns, chance, check_episodes=None)
    cost = retry_cost(answers, turns, chance)
    rewards = _enumeration(answers, turns, cost)  # brute force, not the module's model
    bound = rewards.mean() + 2.326 * rewards.std() / np.sqrt(200)
    assert bound == pytest.approx(chance + 0.05, abs=1e-6)
    assert cost > exact
    # with the exact-chance cost the same check fails by luck more than 5% of the time
    spread = _enumeration(answers, turns, exact).std() / np.sqrt(200)
    assert 0.5 * math.erfc(0.05 / spread / math.sqrt(2)) > 0.05


def test_a_narrow_spread_needs_no_margin() -> None:
    # 30 answers, 2 turns: the blind player's rewards spread little, the exact cost stands
    assert retry_cost(30, 2, 1 / 30) == retry_cost(30, 2, 1 / 30, check_episodes=None)
    assert retry_cost(20, 2, 0.05) > retry_cost(20, 2, 0.05, check_episodes=None)


def _best_order_value(credit: np.ndarray, turns: int, cost: float) -> float:
    """The best blind player's mean reward: every order of distinct answers, brute force."""
    m = credit.shape[0]
    best = -np.inf
    for order in permutations(range(m), min(m, turns)):
        total = 0.0
        for right in range(m):
            tried = order.index(right) if right in order else len(order) - 1
            score = 1.0 if right in order else credit[right, order[-1]]
            total += score - cost * tried
        best = max(best, total / m)
    return best


def test_the_retry_cost_holds_the_best_order_to_chance_under_partial_credit() -> None:
    env = gym.make("SSL/FlipPatch-2x2-Hint-v3").unwrapped
    env.reset(seed=0)
    credit, turns = env.puzzle.credit(env.instance), env.turns
    chance = float(env.instance.metadata["chance_score"])
    assert credit is not None and credit.max(initial=0.0, where=~np.eye(8, dtype=bool)) == 0.5
    exact = retry_cost(credit.shape[0], turns, chance, credit=credit, check_episodes=None)
    assert _best_order_value(credit, turns, exact) == pytest.approx(chance)
    # the env prices in the check's margin: the best order earns less than chance
    assert _best_order_value(credit, turns, env.retry_cost) == pytest.approx(env.blind_value)
    assert env.blind_value < chance - 0.02
    # priced as if every wrong answer earned the mean partial credit, the best order wins
    naive = retry_cost(credit.shape[0], turns, chance, check_episodes=None)
    assert _best_order_value(credit, turns, naive) > chance + 0.015


def test_without_a_list_of_answers_the_floor_applies() -> None:
    assert retry_cost(None, 5, 0.1, floor=0.1) == 0.1
    perms = len(list(permutations(range(4))))
    assert retry_cost(perms, 4, 0.25, floor=0.0) < 0.05


def _id(family: str, variant: str) -> str:
    (eid,) = [
        e.id
        for e in entries(hinted=True)
        if e.family == family and e.variant == variant and e.hinted
    ]
    return eid


class NamingRotation(Rotation):
    """A broken Rotation whose hint says the answer in words."""

    def hint(self, instance: Instance, level: int) -> Hint | None:
        return Hint(f"The answer is {instance.answer}.") if level == 0 else None


def test_the_blind_adversary_reads_a_hint_that_names_the_answer() -> None:
    env = make_puzzle_env(_id("Rotation", "4way"))
    clean = strong_audit_hinted(env, "clean", n=150)
    env.puzzle = NamingRotation(env.puzzle.config)
    leaky = strong_audit_hinted(env, "leaky", n=150)
    (clean_play,), (leaky_play,) = clean.probes, leaky.probes
    assert clean_play.score <= clean.chance + 0.05 and clean.passed
    assert leaky_play.score > leaky.chance + 0.3 and not leaky.passed


# --- a solver that reads the marks ------------------------------------------------------------


def _marks(image: np.ndarray) -> np.ndarray:
    """(x, y) of the pixels painted in the hint colour."""
    ys, xs = np.nonzero((image == np.array(MARK, dtype=np.uint8)).all(axis=2))
    return np.stack([xs, ys], axis=1).astype(float)


def read_rotation(images: tuple[np.ndarray, ...], step: int) -> str:
    """The angle an arrow drawn through the picture's centre points out."""
    image = images[-1]
    h, w = image.shape[:2]
    ux, uy = _marks(image).mean(axis=0) - (w / 2, h / 2)  # the arrowhead pulls the mean
    angle = math.degrees(math.atan2(-ux, -uy)) % 360
    return str(round(angle / step) * step % 360)


def read_position(images: tuple[np.ndarray, ...], cells: tuple[str, ...], grid: int) -> str:
    """The cell whose outline is drawn on the full image."""
    full = images[0]
    centre = _marks(full).mean(axis=0)
    col, row = (int(v // (full.shape[0] // grid)) for v in centre)
    return cells[row * grid + col]


def _play(env_id: str, seed: int, read: bool) -> tuple[float, float]:
    """Two wrong answers, then the marks read (or a guess): final reward and score."""
    env = make_puzzle_env(env_id)
    obs, info = env.reset(seed=seed)
    fmt, puzzle = env.puzzle.config.answer_format, env.puzzle
    wrong = [c for c in info["choices"] if c != info["answer"]]
    rng = np.random.default_rng(seed)
    for k in range(2):
        obs, reward, done, _, step = env.step(format_answer(wrong[k], fmt))
        assert not done
    if not read:
        guess = str(rng.choice([c for c in info["choices"] if c not in wrong[:2]]))
    elif puzzle.family == "Rotation":
        guess = read_rotation(obs["images"], puzzle.step)
    else:
        guess = read_position(obs["images"], puzzle.cells, puzzle.config.grid)
    _, reward, done, _, step = env.step(format_answer(guess, fmt))
    return float(reward), float(step["score"])


@pytest.mark.parametrize(
    "env_id", [_id("Rotation", "4way"), _id("Rotation", "8way"), _id("Position", "3x3")]
)
def test_a_solver_that_reads_the_marks_solves_and_one_that_ignores_them_does_worse(
    env_id: str,
) -> None:
    seeing = [_play(env_id, s, read=True) for s in range(12)]
    ignoring = [_play(env_id, s, read=False) for s in range(12)]
    assert all(score == 1.0 for _, score in seeing), seeing
    assert np.mean([r for r, _ in seeing]) > np.mean([r for r, _ in ignoring]) + 0.1


@pytest.mark.parametrize(
    "env_id",
    [
        _id("Rotation", "4way-Ref"),
        _id("Position", "2x2"),
        _id("Jigsaw", "2x3"),
        _id("Jigsaw", "3x3-Composite"),
        _id("Contrastive", "Strong"),
        _id("Similarity", "K4-Composite"),
        _id("Inpainting", "K4-Mixed"),
        _id("Correspondence", "Affine-K4-Composite"),
        _id("FlipPatch", "3x3-Image"),
        _id("OddTile", "K6-Composite"),
    ],
)
def test_hint_texts_are_the_same_for_every_instance(env_id: str) -> None:
    env = make_puzzle_env(env_id)
    texts = set()
    for seed in range(8):
        env.reset(seed=seed)
        inst = env.instance
        level, hints = 0, []
        while (hint := env.puzzle.hint(inst, level)) is not None:
            assert isinstance(hint, Hint) and hint.images is not None
            hints.append(hint.text)
            level += 1
        texts.add(tuple(hints))
    assert len(texts) == 1 and len(next(iter(texts))) >= 1


# --- crossed-out options, cell maps, outlines: what a player that looks can read -------------


def _marked(before: np.ndarray, after: np.ndarray) -> int:
    """Pixels newly painted in the hint colour."""
    mark = np.array(MARK, dtype=np.uint8)
    return int(((after == mark).all(axis=2) & (before != after).any(axis=2)).sum())


def _crossed(puzzle, inst: Instance, images: tuple[np.ndarray, ...]) -> set[str]:
    """The options whose part (tile, candidate, window) carries new marks in ``images``."""
    shown = dataclasses.replace(inst, images=images)
    before, after = puzzle.parts(inst).parts, puzzle.parts(shown).parts
    return {
        option
        for option, b, a in zip(inst.choices or (), before, after, strict=True)
        if _marked(b, a) >= 8
    }


@pytest.mark.parametrize(
    ("env_id", "first"),
    [
        (_id("OddTile", "K6-Composite"), 0),
        (_id("OddTile", "K4"), 0),
        (_id("Similarity", "K4-Composite"), 1),
        (_id("Similarity", "K8-Hard"), 1),
        (_id("Inpainting", "K6-Hard"), 1),
        (_id("Correspondence", "Affine-K6"), 0),
        (_id("Correspondence", "Crop-K4"), 0),
    ],
)
def test_each_hint_crosses_out_one_more_wrong_option_and_never_the_last(
    env_id: str, first: int
) -> None:
    env = make_puzzle_env(env_id)
    for seed in range(3):
        env.reset(seed=seed)
        inst, puzzle = env.instance, env.puzzle
        k = len(inst.choices or ())
        crossed: list[set[str]] = []
        level = first
        while (hint := puzzle.hint(inst, level)) is not None:
            crossed.append(_crossed(puzzle, inst, hint.images))
            level += 1
        assert len(crossed) == k - 2  # every wrong option but one, one per hint
        for n, options in enumerate(crossed, start=1):
            assert len(options) == n and inst.answer not in options
            assert n == 1 or crossed[n - 2] < options  # the earlier ones stay crossed
        if first:  # the hints before the cross-outs mark no option
            assert not _crossed(puzzle, inst, puzzle.hint(inst, 0).images)


def _read_map(tile: np.ndarray, rows: int, cols: int) -> int | None:
    """The cell filled in a cell map drawn in the tile's top-left corner, if there is one."""
    ys, xs = np.nonzero((tile == np.array(MARK, dtype=np.uint8)).all(axis=2))
    size = max(12, tile.shape[0] // 3)
    inside = (xs < size + 4) & (ys < size + 4)
    if inside.sum() < 4:
        return None
    cx, cy = xs[inside].mean() - 2, ys[inside].mean() - 2
    cw, ch = size / cols, size / cols
    return int(cy // ch) * cols + int(cx // cw)


@pytest.mark.parametrize("env_id", [_id("Jigsaw", "2x3"), _id("Jigsaw", "3x3-Composite")])
def test_a_solver_that_reads_every_cell_map_solves_the_jigsaw(env_id: str) -> None:
    env = make_puzzle_env(env_id)
    for seed in range(3):
        env.reset(seed=seed)
        inst, puzzle = env.instance, env.puzzle
        rows, cols = puzzle.config.grid_shape
        n = rows * cols
        last = puzzle.hint(inst, n - 2)
        assert last is not None and puzzle.hint(inst, n - 1) is None
        tiles = puzzle.parts(dataclasses.replace(inst, images=last.images)).parts
        cells = [_read_map(t, rows, cols) for t in tiles]
        assert sum(c is None for c in cells) == 1  # n - 1 maps: the last tile is deduced
        missing = (set(range(n)) - set(cells)).pop()
        cells = [missing if c is None else c for c in cells]
        answer = ",".join(str(cells.index(cell) + 1) for cell in range(n))
        assert puzzle.verify(inst, format_answer(answer, puzzle.config.answer_format)).score == 1


@pytest.mark.parametrize("env_id", [_id("FlipPatch", "3x3"), _id("FlipPatch", "3x3-Image")])
def test_the_flippatch_outlines_show_the_row_then_the_tile(env_id: str) -> None:
    env = make_puzzle_env(env_id)
    for seed in range(4):
        env.reset(seed=seed)
        inst, puzzle = env.instance, env.puzzle
        cols = puzzle.config.grid_shape[1]
        k = int(inst.solution[0]) - 1
        before = puzzle.parts(inst).parts
        marked = []
        for level in (0, 1):
            hint = puzzle.hint(inst, level)
            after = puzzle.parts(dataclasses.replace(inst, images=hint.images)).parts
            marked.append(
                {j for j, (b, a) in enumerate(zip(before, after, strict=True)) if _marked(b, a)}
            )
        assert marked[0] == set(range(k // cols * cols, k // cols * cols + cols))
        assert marked[1] == {k}
        assert puzzle.hint(inst, 2) is None


@pytest.mark.parametrize("name", DIHEDRAL)
def test_orient_box_follows_the_pixels(name: str) -> None:
    """A box moved by :func:`orient_box` covers exactly the pixels ``orient`` moved there."""
    mask = np.zeros((20, 20, 1), dtype=bool)
    mask[3:8, 10:15] = True  # rows 3-7, columns 10-14: the box (10, 3, 15, 8)
    ys, xs = np.nonzero(orient(mask, name)[..., 0])
    want = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert orient_box((10, 3, 15, 8), 20, name) == tuple(float(v) for v in want)
