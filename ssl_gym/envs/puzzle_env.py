"""PuzzleEnv: the one Gymnasium shell around every puzzle family.

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
* ``info`` at step adds ``score``, ``reward_components``, ``parsed``, ``format_ok`` and
  ``parse_error``.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from ssl_gym.core import Instance, Puzzle, Verdict, check_choice
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
        **overrides: Any,
    ) -> None:
        """Build the env.

        Args:
            family: puzzle family name, e.g. ``"Jigsaw"``.
            preset: preset name of the family (the id's variant), e.g. ``"3x3"``.
            image_source: an image source spec (``procedural``, ``photos``,
                ``folder:PATH``, ``hf:NAME[:SPLIT[:COLUMN]]``) or an ``ImageSource``.
            render_mode: ``None`` or ``"rgb_array"``.
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
        self.instance: Instance | None = None
        self._done = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Draw a new puzzle; ``seed`` fixes it."""
        super().reset(seed=seed)
        self.instance = self.puzzle.generate(self.np_random, self.source)
        self._done = False
        return self._observation(self.instance), self._reset_info(self.instance)

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Verify the completion ``action``; the episode ends."""
        if not isinstance(action, str):
            raise TypeError(
                f"the action must be the model's completion as a str, got "
                f"{type(action).__name__}; decode token ids before stepping"
            )
        if self.instance is None or self._done:
            raise RuntimeError("the episode is over or never started: call reset() first")
        verdict = self.puzzle.verify(self.instance, action)
        self._done = True
        info = {**self._reset_info(self.instance), **self._verdict_info(verdict)}
        obs = self._observation(self.instance)
        obs["images"] = tuple(im.copy() for im in obs["images"])  # callers may keep both
        return obs, verdict.reward, True, False, info

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
            "parsed": verdict.parsed,
            "format_ok": verdict.format_ok,
            "parse_error": verdict.parse_error,
        }
