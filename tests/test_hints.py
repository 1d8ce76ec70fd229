"""Hinted play that needs the pixels: retry costs, the blind adversary, marks a solver reads."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest

from ssl_gym.audit.strong import strong_audit_hinted
from ssl_gym.core import Hint, Instance, format_answer
from ssl_gym.envs import entries, make_puzzle_env
from ssl_gym.multiturn import blind_value, retry_cost
from ssl_gym.puzzles.rotation import Rotation
from ssl_gym.render import MARK


def _enumerate(answers: int, turns: int, cost: float) -> float:
    """Mean reward of trying the answers in turn, over every place of the right one."""
    total = 0.0
    for right in range(answers):
        wrong = min(right, turns - 1)
        total += (1.0 if right < turns else 0.0) - cost * wrong
    return total / answers


@pytest.mark.parametrize(("answers", "turns"), [(2, 3), (4, 4), (4, 3), (8, 4), (9, 4)])
def test_the_retry_cost_holds_enumeration_to_chance(answers: int, turns: int) -> None:
    chance = 1.0 / answers
    cost = retry_cost(answers, turns, chance)
    assert blind_value(answers, turns, chance, cost) == pytest.approx(chance)
    assert _enumerate(answers, turns, cost) == pytest.approx(chance)
    assert retry_cost(answers, turns, chance, floor=2.0) == 2.0
    assert retry_cost(4, 4, 0.25) == pytest.approx(0.5)  # the worked example


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


@pytest.mark.parametrize("env_id", [_id("Rotation", "4way-Ref"), _id("Position", "2x2")])
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
