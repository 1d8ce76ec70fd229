"""PuzzleEnv: the one Gymnasium shell around every puzzle family, single- or multi-turn.

The env receives its puzzle by injection (family name, preset name and config
overrides, all JSON primitives so that ``EnvSpec.to_json()`` works) and its pictures from
an image source spec. It adds no puzzle logic of its own.

## Protocol

* ``reset(seed=s)`` draws one instance; the same seed gives the same bytes in any process.
  The observation is ``{"images": tuple of uint8 (H, W, 3), "prompt": str}``.
* ``step(completion)`` takes the model's whole completion (any ``str``; anything else is
  a ``TypeError``), verifies it and ends the episode (single turn).
* ``info`` at reset: ``family``, ``variant``, ``chance_score``, ``choices``, ``pattern``
  (the answer grammar, for constrained decoding), ``answer`` (ground truth, for oracle
  policies and logging; the model only ever sees the observation) and ``metadata``.
* ``info`` at step adds ``score``, ``reward_components``, ``parsed`` (the answer as the
  verifier read it, as JSON text, or ``None``: one type whatever the answer, so that
  vector envs can batch it), ``format_ok`` and ``parse_error``.

## Multi-turn play with hints (``max_turns > 1``, the ``-Hint`` ids)

The agent keeps the conversation: the first observation's images and prompt, then its
own answers and the env's replies. After an answer that is not fully right the episode
goes on: the next observation's prompt is the env's reply to this turn, which says only
that the answer is not right (never how close it was), then the next of the family's
graded hints and the answer-format instruction. A hint marks the images (the region to
compare, the tile to look at) and its text only points at the marks, so the next
observation's images may differ from the first (same count and shapes). The episode ends
when the answer is fully right or after ``max_turns`` answers (``"auto"``: one answer
before the hints and one after each; fewer turns also mean cheaper retries).

Retries cost, so that a player who never looks cannot win by trying the answers in turn:
intermediate steps give reward 0, and the last gives the final verdict's reward minus
``retry_cost`` per wrong answer before it (``reward_components["retries"]``; the reward
may be negative). ``retry_cost`` is the larger of ``hint_cost`` and the cost at which the
best blind play (:mod:`ssl_gym.multiturn`) earns the single-turn chance less the margin
that keeps a 200-episode blind check within chance + 0.05.
``info`` carries ``turn``, ``max_turns``, ``hints`` (the hint texts given so far),
``turn_scores`` and ``retry_cost``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import sys
from typing import Any

import gymnasium as gym
import numpy as np

from ssl_gym.core import (
    FORMAT_INSTRUCTIONS,
    Hint,
    Instance,
    Puzzle,
    Verdict,
    check_choice,
    check_float,
    check_int,
    not_right,
)
from ssl_gym.envs.spaces import Completion, observation_space
from ssl_gym.images import ImageSource, make_source
from ssl_gym.multiturn import blind_value, retry_cost
from ssl_gym.puzzles import FAMILIES, build_puzzle
from ssl_gym.render import composite

Observation = dict[str, Any]


class ResetNeededError(gym.error.ResetNeeded, RuntimeError):
    """``step`` before ``reset`` or after the episode ended.

    Gymnasium's :class:`~gymnasium.error.ResetNeeded`, as its ``OrderEnforcing`` wrapper
    raises it (the ids are registered without that wrapper: the envs enforce the order
    themselves), and a ``RuntimeError``.
    """


class PuzzleEnv(gym.Env[Observation, str]):
    """A single-turn visual puzzle: images and a prompt in, the model's text out."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}  # noqa: RUF012

    def __new__(cls, family: object = None, *args: Any, **kwargs: Any) -> PuzzleEnv:
        """An instance of the family's own class (``RotationEnv`` ...).

        So ``help(env.unwrapped)`` shows the family's documentation: its puzzle, reward,
        difficulty and hints, single-turn or hinted.
        """
        if cls is PuzzleEnv and isinstance(family, str) and family in FAMILIES:
            cls = family_env_class(family)
        return super().__new__(cls)

    def __init__(
        self,
        family: str,
        preset: str | None = None,
        image_source: str | ImageSource = "procedural",
        render_mode: str | None = None,
        max_turns: int | str = 1,
        hint_cost: float = 0.1,
        **overrides: Any,
    ) -> None:
        """Build the env.

        Args:
            family: puzzle family name, e.g. ``"Jigsaw"``.
            preset: preset name of the family (the id's variant), e.g. ``"3x3"``.
            image_source: an image source spec (``procedural``, ``photos``,
                ``folder:PATH``, ``hf:NAME[:SPLIT[:COLUMN]]``) or an ``ImageSource``.
            render_mode: ``None`` or ``"rgb_array"``.
            max_turns: answers allowed per episode (1: single turn), or ``"auto"``.
            hint_cost: the least reward deducted per wrong answer in multi-turn play
                (the cost that holds blind play to chance applies when it is larger).
            **overrides: config fields of the family, e.g. ``grid=5``,
                ``answer_format="boxed"``; unknown ones raise ``ValueError``.
        """
        check_choice("render_mode", render_mode, [None, *self.metadata["render_modes"]])
        self.puzzle: Puzzle = build_puzzle(family, preset, **overrides)
        self.source: ImageSource = make_source(image_source)
        self.variant = preset
        self.render_mode = render_mode
        self.observation_space = observation_space(self.puzzle.image_shapes())
        self.action_space = Completion()
        if max_turns != "auto":
            check_int("max_turns", max_turns, 1, 64)
        check_float("hint_cost", hint_cost, 0.0, 1.0)
        self.max_turns, self.hint_cost = max_turns, float(hint_cost)
        self.instance: Instance | None = None
        self._done = False
        self._turns = 1
        self._hints: list[str] = []
        self._scores: list[float] = []
        self._images: tuple[np.ndarray, ...] = ()
        self._retry_cost = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Draw a new puzzle; ``seed`` fixes it."""
        super().reset(seed=seed)
        self.instance = self.puzzle.generate(self.np_random, self.source)
        self._done, self._hints, self._scores = False, [], []
        self._images = self.instance.images
        self._turns = self._max_turns(self.instance)
        self._retry_cost = retry_cost(
            self.puzzle.answer_count(self.instance),
            self._turns,
            float(self.instance.metadata["chance_score"]),
            floor=self.hint_cost,
            credit=self.puzzle.credit(self.instance) if self._turns > 1 else None,
        )
        return self._observation(self.instance), self._reset_info(self.instance)

    def _max_turns(self, inst: Instance) -> int:
        if self.max_turns != "auto":
            return int(self.max_turns)
        hints = 0
        while hints < 63 and self.puzzle.hint(inst, hints) is not None:
            hints += 1
        return hints + 1

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Verify the completion ``action``; the episode ends."""
        if not isinstance(action, str):
            raise TypeError(
                f"the action must be the model's completion as a str, got "
                f"{type(action).__name__}; decode token ids before stepping"
            )
        if self.instance is None or self._done:
            raise ResetNeededError("the episode is over or never started: call reset() first")
        inst = self.instance
        verdict = self.puzzle.verify(inst, action)
        self._scores.append(verdict.score)
        self._done = verdict.score == 1.0 or len(self._scores) >= self._turns
        if self._done:
            wrong = len(self._scores) - 1
            parts = {**verdict.components, "retries": -self._retry_cost * wrong}
            reward = sum(parts.values())
            prompt = inst.prompt
        else:
            parts = dict.fromkeys((*verdict.components, "retries"), 0.0)
            reward = 0.0
            prompt = self._reply(inst, verdict)  # may bring the hint's images
        # copies: callers may keep the observations of several turns
        obs: Observation = {"images": tuple(im.copy() for im in self._images), "prompt": prompt}
        info = {
            **self._reset_info(inst),
            **self._verdict_info(verdict),
            "reward_components": parts,
            **self._turn_info(),
        }
        return obs, reward, self._done, False, info

    def _reply(self, inst: Instance, verdict: Verdict) -> str:
        """The env's next user turn: feedback, the next hint, the format instruction."""
        parts = [not_right(verdict)]
        hint = self.puzzle.hint(inst, len(self._hints))
        if isinstance(hint, Hint):
            if hint.images is not None:
                self._images = self._checked(hint.images)
            hint = hint.text
        if hint is not None:
            self._hints.append(hint)
            parts.append(f"Hint: {hint}")
        parts.append(f"Try again. {FORMAT_INSTRUCTIONS[self.puzzle.config.answer_format]}")
        return "\n".join(parts)

    @property
    def turns(self) -> int:
        """Answers allowed in the current episode (``max_turns``, resolved)."""
        return self._turns

    @property
    def retry_cost(self) -> float:
        """What each wrong answer before the last costs in the current episode."""
        return self._retry_cost

    @property
    def blind_value(self) -> float:
        """What the best blind play earns on the current puzzle.

        The chance score, or in multi-turn play the expected reward of the player who tries
        the answers in turn (:mod:`ssl_gym.multiturn`).
        """
        if self.instance is None:
            raise RuntimeError("reset() the env first")
        chance = float(self.instance.metadata["chance_score"])
        if self._turns == 1:
            return chance
        count = self.puzzle.answer_count(self.instance)
        credit = self.puzzle.credit(self.instance)
        return blind_value(count, self._turns, chance, self._retry_cost, credit)

    def _checked(self, images: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """Hint images, which must match the observation's count, shapes and dtype."""
        want = [im.shape for im in self._images]
        got = [np.shape(im) for im in images]
        if got != want or any(np.asarray(im).dtype != np.uint8 for im in images):
            raise ValueError(
                f"{self.puzzle.family}: a hint's images must be uint8 with the observation's "
                f"shapes {want}, got {got}"
            )
        return tuple(np.ascontiguousarray(im) for im in images)

    def _turn_info(self) -> dict[str, Any]:
        return {
            "turn": len(self._scores),
            "max_turns": self._turns,
            "hints": list(self._hints),
            "turn_scores": list(self._scores),
            "retry_cost": self._retry_cost,
        }

    def __repr__(self) -> str:
        """``PuzzleEnv('SSL/Jigsaw-3x3-v2', size=96)``: the id and the changed settings.

        The puzzle settings that differ from the family's defaults, then ``max_turns``
        when the env plays more than one turn.
        """
        env_id = self.spec.id if self.spec is not None else type(self.puzzle).__name__
        config = self.puzzle.config
        changed = [
            f"{f.name}={getattr(config, f.name)!r}"
            for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING and getattr(config, f.name) != f.default
        ]
        if self.max_turns != 1:
            changed.append(f"max_turns={self.max_turns!r}")
        return f"PuzzleEnv({', '.join([repr(env_id), *changed])})"

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: the current observation images side by side."""
        if self.render_mode is None or self.instance is None:
            return None
        return composite(self._images)

    @staticmethod
    def _observation(inst: Instance) -> Observation:
        return {"images": inst.images, "prompt": inst.prompt}

    def _reset_info(self, inst: Instance) -> dict[str, Any]:
        return {
            "family": inst.family,
            "variant": self.variant,
            "chance_score": inst.metadata["chance_score"],
            "choices": inst.choices,
            "pattern": inst.pattern,
            "answer_format": self.puzzle.config.answer_format,
            "answer": inst.answer,
            "metadata": copy.deepcopy(dict(inst.metadata)),
        }

    @staticmethod
    def _verdict_info(verdict: Verdict) -> dict[str, Any]:
        return {
            "score": verdict.score,
            "reward_components": dict(verdict.components),
            "parsed": None if verdict.parsed is None else json.dumps(verdict.parsed),
            "format_ok": verdict.format_ok,
            "parse_error": verdict.parse_error,
        }


_FAMILY_ENVS: dict[str, type[PuzzleEnv]] = {}


def family_env_class(family: str) -> type[PuzzleEnv]:
    """:class:`PuzzleEnv` for one family: the same class, documented by the family's module.

    The class is ``ssl_gym.envs.puzzle_env.<Family>Env``; the module's ``__getattr__``
    makes it on first use, so pickled envs load in a fresh process.
    """
    env_cls = _FAMILY_ENVS.get(family)
    if env_cls is None:
        module_doc = sys.modules[FAMILIES[family].__module__].__doc__ or ""
        doc = f"{module_doc.strip()}\n\n{PuzzleEnv.__doc__}"
        name = f"{family}Env"
        init = inspect.signature(PuzzleEnv.__init__)
        signature = init.replace(parameters=list(init.parameters.values())[1:])  # no self
        namespace = {
            "__doc__": doc, "__module__": __name__, "__qualname__": name,
            "__signature__": signature,
        }  # fmt: skip
        env_cls = type(name, (PuzzleEnv,), namespace)
        _FAMILY_ENVS[family] = env_cls
    return env_cls


def __getattr__(name: str) -> Any:
    """``<Family>Env``: the family's env class (see :func:`family_env_class`)."""
    if name.endswith("Env") and name.removesuffix("Env") in FAMILIES:
        return family_env_class(name.removesuffix("Env"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_puzzle_env(env_id: str, **kwargs: Any) -> PuzzleEnv:
    """``gym.make(env_id, **kwargs)`` unwrapped to its :class:`PuzzleEnv`.

    For code that drives the puzzle itself (evaluation, adapters, the CLI).

    Raises:
        ValueError: If ``env_id`` is not registered, or is not a single-puzzle id (a
            mixture holds several puzzles).
    """
    if env_id not in gym.registry:
        from ssl_gym.envs.registration import unknown_id  # registration imports this module

        raise ValueError(unknown_id(env_id))
    env = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped
    if not isinstance(env, PuzzleEnv):
        raise ValueError(
            f"{env_id!r} is not a single-puzzle id (got {type(env).__name__}; "
            "a mixture holds several puzzles)"
        )
    return env
