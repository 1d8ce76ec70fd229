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
own answers and the env's replies. After a wrong or partly right answer the episode goes
on: the next observation has the same images and, as its prompt, the env's reply to this
turn: what was right (e.g. "4 of 9 tiles are in place"), the next of the family's graded
hints, and the answer-format instruction. The episode ends when the answer is fully
right or after ``max_turns`` answers (``"auto"``: the hints the instance offers plus
two, so that a policy that answers first, then follows every hint, can finish).
Intermediate steps give reward 0; the last gives the final verdict's reward minus
``hint_cost`` per hint given, never below 0 (``reward_components["hints"]`` holds the
penalty). ``info`` carries ``turn``, ``max_turns``, ``hints`` (the hints given so far)
and ``turn_scores``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import gymnasium as gym
import numpy as np

from ssl_gym.core import (
    FORMAT_INSTRUCTIONS,
    Instance,
    Puzzle,
    Verdict,
    check_choice,
    check_float,
    check_int,
)
from ssl_gym.envs.spaces import Completion, observation_space
from ssl_gym.images import ImageSource, make_source
from ssl_gym.puzzles import build_puzzle
from ssl_gym.render import composite

Observation = dict[str, Any]


class PuzzleEnv(gym.Env[Observation, str]):
    """A single-turn visual puzzle: images and a prompt in, the model's text out."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}  # noqa: RUF012

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
            hint_cost: reward deducted per hint given in multi-turn play.
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

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Draw a new puzzle; ``seed`` fixes it."""
        super().reset(seed=seed)
        self.instance = self.puzzle.generate(self.np_random, self.source)
        self._done, self._hints, self._scores = False, [], []
        self._turns = self._max_turns(self.instance)
        return self._observation(self.instance), self._reset_info(self.instance)

    def _max_turns(self, inst: Instance) -> int:
        if self.max_turns != "auto":
            return int(self.max_turns)
        hints = 0
        while hints < 63 and self.puzzle.hint(inst, hints) is not None:
            hints += 1
        return hints + 2

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Verify the completion ``action``; the episode ends."""
        if not isinstance(action, str):
            raise TypeError(
                f"the action must be the model's completion as a str, got "
                f"{type(action).__name__}; decode token ids before stepping"
            )
        if self.instance is None or self._done:
            raise RuntimeError("the episode is over or never started: call reset() first")
        inst = self.instance
        verdict = self.puzzle.verify(inst, action)
        self._scores.append(verdict.score)
        self._done = verdict.score == 1.0 or len(self._scores) >= self._turns
        obs = self._observation(inst)
        obs["images"] = tuple(im.copy() for im in obs["images"])  # callers may keep both
        if self._done:
            parts = {**verdict.components, "hints": -self.hint_cost * len(self._hints)}
            reward = max(0.0, sum(parts.values()))
        else:
            parts = dict.fromkeys((*verdict.components, "hints"), 0.0)
            reward = 0.0
            obs["prompt"] = self._reply(inst, verdict)
        info = {
            **self._reset_info(inst),
            **self._verdict_info(verdict),
            "reward_components": parts,
            **self._turn_info(),
        }
        return obs, reward, self._done, False, info

    def _reply(self, inst: Instance, verdict: Verdict) -> str:
        """The env's next user turn: feedback, the next hint, the format instruction."""
        parts = [self.puzzle.feedback(inst, verdict)]
        hint = self.puzzle.hint(inst, len(self._hints))
        if hint is not None:
            self._hints.append(hint)
            parts.append(f"Hint: {hint}")
        parts.append(f"Try again. {FORMAT_INSTRUCTIONS[self.puzzle.config.answer_format]}")
        return "\n".join(parts)

    def _turn_info(self) -> dict[str, Any]:
        return {
            "turn": len(self._scores),
            "max_turns": self._turns,
            "hints": list(self._hints),
            "turn_scores": list(self._scores),
        }

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: the observation images side by side."""
        if self.render_mode is None or self.instance is None:
            return None
        return composite(self.instance.images)

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


def make_puzzle_env(env_id: str, **kwargs: Any) -> PuzzleEnv:
    """``gym.make(env_id, **kwargs)`` unwrapped to its :class:`PuzzleEnv`.

    For code that drives the puzzle itself (evaluation, adapters, the CLI).

    Raises:
        ValueError: If ``env_id`` is not registered, or is not a single-puzzle id (a
            mixture holds several puzzles).
    """
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; see `ssl-gym list`")
    env = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped
    if not isinstance(env, PuzzleEnv):
        raise ValueError(
            f"{env_id!r} is not a single-puzzle id (got {type(env).__name__}; "
            "a mixture holds several puzzles)"
        )
    return env
