"""Contract checks for puzzles and puzzle envs, for this project's tests and for yours.

``check_puzzle`` checks a :class:`~ssl_gym.core.Puzzle` on its own (numpy only);
``check_puzzle_env`` checks a registered id end to end through Gymnasium. Both raise
``AssertionError`` with a message naming the broken contract, like Gymnasium's
``check_env``. Use them on a new family before registering it::

    from ssl_gym.testing import check_puzzle_env
    check_puzzle_env("SSL/Jigsaw-3x3-v2")
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from ssl_gym.core import ANSWER_FORMATS, Hint, Instance, Puzzle
from ssl_gym.envs.spaces import PROMPT_CHARSET
from ssl_gym.images import ImageSource, make_source

#: Completions that must score 0 without raising, whatever the puzzle.
ADVERSARIAL_COMPLETIONS = (
    "",
    "   \n\t ",
    "I don't know.",
    "<answer></answer>",
    "<think>hmm</think> <answer>banana</answer>",
    "\\boxed{}",
    "\\boxed{\\boxed{{{",
    "<answer>" * 500,
    "\udcff\ufffd\x00\x7f\u202e garbage \U0001f600",
    "9" * 5000,
    ("lorem ipsum " * 9000)[:100_000],
)


class ContractError(AssertionError):
    """A puzzle or env breaks the ssl_gym contract."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


def instance_digest(inst: Instance) -> str:
    """A hash of everything the model sees and the verifier uses."""
    h = hashlib.sha256(inst.prompt.encode() + inst.answer.encode())
    for im in inst.images:
        h.update(repr(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()


def observation_digest(obs: dict[str, Any]) -> str:
    """A hash of an observation's bytes."""
    h = hashlib.sha256(obs["prompt"].encode())
    for im in obs["images"]:
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()


def _check_instance(puzzle: Puzzle, inst: Instance) -> None:
    name = puzzle.family
    shapes = puzzle.image_shapes()
    got = tuple(im.shape for im in inst.images)
    _require(got == shapes, f"{name}: image shapes {got} differ from image_shapes() {shapes}")
    _require(all(im.dtype == np.uint8 for im in inst.images), f"{name}: images must be uint8")
    _require(set(inst.prompt) <= set(PROMPT_CHARSET), f"{name}: prompt has non-printable text")
    json.dumps(dict(inst.metadata))
    json.dumps(inst.solution)
    chance = inst.metadata.get("chance_score")
    _require(
        isinstance(chance, float) and 0.0 <= chance < 1.0,
        f"{name}: metadata must declare chance_score in [0, 1), got {chance!r}",
    )
    _require(
        (inst.choices is None) != (inst.pattern is None),
        f"{name}: an instance declares exactly one of choices and pattern",
    )
    if inst.choices is not None:
        _require(inst.answer in inst.choices, f"{name}: answer {inst.answer!r} not in choices")
    if inst.pattern is not None:
        _require(
            re.fullmatch(inst.pattern, inst.answer) is not None,
            f"{name}: answer {inst.answer!r} does not match pattern {inst.pattern!r}",
        )


def _check_verifier(puzzle: Puzzle, inst: Instance) -> None:
    name = puzzle.family
    for fmt in ANSWER_FORMATS:
        other = type(puzzle)(dataclasses.replace(puzzle.config, answer_format=fmt))
        verdict = other.verify(inst, other.oracle(inst))
        _require(
            verdict.score == 1.0 and verdict.format_ok,
            f"{name}: the oracle scores {verdict.score} in format {fmt!r}",
        )
    for bad in ADVERSARIAL_COMPLETIONS:
        verdict = puzzle.verify(inst, bad)
        _require(verdict.score == 0.0, f"{name}: {bad[:40]!r} scored {verdict.score}")
    if inst.choices is not None:
        scores = [puzzle.score(inst, puzzle.parse(c)) for c in inst.choices]
        _require(scores.count(1.0) == 1, f"{name}: exactly one choice must score 1, {scores}")


def _check_hints(puzzle: Puzzle, inst: Instance) -> None:
    for level in range(64):
        hint = puzzle.hint(inst, level)
        if hint is None:
            _require(level > 0, f"{puzzle.family}: offers no hint at all")
            return
        text = hint.text if isinstance(hint, Hint) else hint
        _require(isinstance(text, str) and text.strip() != "", f"{puzzle.family}: empty hint")
        _require(set(text) <= set(PROMPT_CHARSET), f"{puzzle.family}: hint not printable")
        if isinstance(hint, Hint) and hint.images is not None:
            shapes = [(im.shape, im.dtype) for im in hint.images]
            want = [(im.shape, im.dtype) for im in inst.images]
            _require(shapes == want, f"{puzzle.family}: hint images {shapes}, expected {want}")
    raise ContractError(f"{puzzle.family}: hints never run out (64 levels)")


def check_puzzle(
    puzzle: Puzzle, source: ImageSource | str = "procedural", seeds: tuple[int, ...] = (0, 1, 2)
) -> None:
    """Check a puzzle's contract on a few seeds: shapes, grammar, oracle, garbage, hints.

    Each seed must give the same instance twice, and different seeds different instances
    (a generator that ignores its rng would hand every episode the same puzzle).
    """
    src = make_source(source)
    digests = set()
    for seed in seeds:
        inst = puzzle.generate(np.random.default_rng(seed), src)
        again = puzzle.generate(np.random.default_rng(seed), src)
        _require(
            instance_digest(inst) == instance_digest(again),
            f"{puzzle.family}: seed {seed} is not deterministic",
        )
        digests.add(instance_digest(inst))
        _check_instance(puzzle, inst)
        _check_verifier(puzzle, inst)
        _check_hints(puzzle, inst)
    _require(
        len(digests) == len(set(seeds)),
        f"{puzzle.family}: seeds {sorted(set(seeds))} gave only {len(digests)} different "
        "instances; does the generator ignore its rng?",
    )


def check_puzzle_env(env_id: str, seed: int = 0, **kwargs: Any) -> None:
    """Check a registered id end to end: Gymnasium's checker, actions, seeding, copying."""
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=seed)
    _require(env.observation_space.contains(obs), f"{env_id}: observation outside its space")
    try:
        env.step(123)
    except TypeError:
        pass
    else:
        raise ContractError(f"{env_id}: a non-str action must raise TypeError")
    oracle = env.unwrapped.puzzle.oracle(env.unwrapped.instance)  # type: ignore[attr-defined]
    _, reward, terminated, _, step_info = env.step(oracle)
    _require(
        terminated and reward == 1.0 and step_info["score"] == 1.0,
        f"{env_id}: the oracle's completion got reward {reward}",
    )
    _require(step_info["answer"] == info["answer"], f"{env_id}: info answer changed")
    json.dumps(env.spec.to_json() if env.spec else "")
    clone = copy.deepcopy(env.unwrapped)
    first = observation_digest(obs)
    again = observation_digest(clone.reset(seed=seed)[0])
    _require(first == again, f"{env_id}: a copy reset with the same seed differs")
    env.close()
