"""Policies that play held-out puzzles: the protocol, and those that need no model.

``random``, ``oracle`` and ``blind`` are here; model policies (``hf:DIR``, ``vllm:DIR``,
``openai:URL``) are :mod:`agents.policy`'s, since ``ssl_gym`` never imports ``agents``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ssl_gym.core import Instance, format_answer
from ssl_gym.envs import PuzzleEnv, make_puzzle_env
from ssl_gym.seeds import policy_rng

#: Training puzzles (seeds ``0 .. n-1``, all below ``SEED_LIMIT``) the blind policy fits on.
BLIND_FIT_EPISODES = 200
#: Safety cap on the turns of one episode for the answer policies.
MAX_TURNS = 64
SIMPLE_POLICIES = ("random", "oracle", "blind")
MODEL_POLICIES = ("hf", "vllm", "openai")


@dataclass
class Outcome:
    """The final result of one sample (one played episode) of a puzzle."""

    reward: float
    score: float
    format_ok: bool
    turns: int


class Policy(Protocol):
    """Plays the puzzles of one id: ``samples`` episodes per seed."""

    name: str
    batch_size: int

    def settings(self) -> dict[str, Any]:
        """What a resumed run must share with the first (besides the policy name)."""
        ...

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """For each seed, ``samples`` outcomes."""
        ...


def _current(env: PuzzleEnv) -> Instance:
    if env.instance is None:
        raise RuntimeError("reset() produced no instance")
    return env.instance


Answer = Callable[[PuzzleEnv, np.random.Generator], str]


@dataclass
class AnswerPolicy:
    """A policy that writes one completion per turn from the puzzle object (no model)."""

    name: str
    answer: Answer
    batch_size: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments of every id (e.g. ``answer_format``)."""
    _envs: dict[str, PuzzleEnv] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The env arguments, when there are any."""
        return {"env_kwargs": self.env_kwargs} if self.env_kwargs else {}

    def env(self, env_id: str) -> PuzzleEnv:
        """One cached env per id."""
        if env_id not in self._envs:
            self._envs[env_id] = make_puzzle_env(env_id, **self.env_kwargs)
        return self._envs[env_id]

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """Play every seed ``samples`` times; sample ``j`` of seed ``s`` has its own rng."""
        env = self.env(env_id)
        return [[self._episode(env, s, j) for j in range(samples)] for s in seeds]

    def _episode(self, env: PuzzleEnv, seed: int, sample: int) -> Outcome:
        rng = policy_rng(seed, sample)
        env.reset(seed=seed)
        for _ in range(MAX_TURNS):
            _, reward, terminated, truncated, info = env.step(self.answer(env, rng))
            if terminated or truncated:
                break
        return Outcome(float(reward), float(info["score"]), bool(info["format_ok"]), info["turn"])


def _random_answer(env: PuzzleEnv, rng: np.random.Generator) -> str:
    puzzle = env.puzzle
    return format_answer(puzzle.random_answer(_current(env), rng), puzzle.config.answer_format)


def _oracle_answer(env: PuzzleEnv, rng: np.random.Generator) -> str:
    return env.puzzle.oracle(_current(env))


@dataclass
class BlindPolicy:
    """The blind adversary (:class:`ssl_gym.audit.blind.BlindPlayer`) on every id.

    It never sees an image. On a single-turn id it answers the best constant answer of
    ``fit_episodes`` training puzzles; on a ``-Hint`` id it reads every reply, learns on
    the training puzzles what replies say about the answer, and tries the choices in turn.
    """

    name: str = "blind"
    batch_size: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    fit_episodes: int = BLIND_FIT_EPISODES
    _players: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The env arguments, when there are any."""
        return {"env_kwargs": self.env_kwargs} if self.env_kwargs else {}

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """Every seed ``samples`` times, the player fitted on training seeds first."""
        from ssl_gym.audit.blind import BlindPlayer

        if env_id not in self._players:
            env = make_puzzle_env(env_id, **self.env_kwargs)
            self._players[env_id] = BlindPlayer(env, range(self.fit_episodes))
        player = self._players[env_id]
        out = []
        for s in seeds:
            row = []
            for j in range(samples):
                reward, info = player.play(s, policy_rng(s, j))
                row.append(
                    Outcome(reward, float(info["score"]), bool(info["format_ok"]), info["turn"])
                )
            out.append(row)
        return out


def env_settings(answer_format: str | None, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The ``gym.make`` arguments of every id: ``env_kwargs``, ``answer_format`` folded in."""
    out = dict(env_kwargs or {})
    if answer_format is not None:
        out["answer_format"] = answer_format
    return out


def make_policy(
    spec: str,
    temperature: float | None = None,
    max_new_tokens: int = 64,
    constrain: bool = False,
    batch_size: int = 16,
    model: str = "default",
    answer_format: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Policy:
    """The policy named by ``spec``: ``random``, ``oracle`` or ``blind``.

    ``env_kwargs`` go to every ``gym.make`` (puzzle settings such as ``size``, e.g. the
    ones a model was trained with); ``answer_format`` is a shorthand for one of them.
    Model policies (``hf:DIR``, ``vllm:DIR``, ``openai:URL``) are built by
    :func:`agents.policy.make_policy`, which takes the same arguments.

    Raises:
        ValueError: For an unknown policy, or a model policy (the message says where).
    """
    del temperature, max_new_tokens, constrain, model  # the sampling settings of models
    env_kwargs = env_settings(answer_format, env_kwargs)
    if spec in SIMPLE_POLICIES:
        if spec == "blind":
            return BlindPolicy(batch_size=batch_size, env_kwargs=env_kwargs)
        answers: dict[str, Answer] = {"random": _random_answer, "oracle": _oracle_answer}
        return AnswerPolicy(spec, answers[spec], batch_size, env_kwargs)
    kind, sep, target = spec.partition(":")
    if kind in MODEL_POLICIES and sep and target:
        raise ValueError(
            f"{spec!r} is a model policy: build it with agents.policy.make_policy "
            "(`ssl-gym eval` does)"
        )
    raise ValueError(
        f"unknown policy {spec!r}; choose random, oracle, blind, hf:DIR, vllm:DIR or openai:URL"
    )
