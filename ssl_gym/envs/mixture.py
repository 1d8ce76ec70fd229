"""MixtureEnv: several puzzle ids behind one fixed observation space.

Each episode draws one of ``ids`` (with ``weights``) and plays it, single- or
multi-turn. Different puzzles show different numbers and sizes of images, so the
observation is one composite picture of fixed size (the puzzle's images side by side,
labelled "Image 1", "Image 2", ... as the prompts call them, letterboxed onto a
``canvas x canvas`` white square). ``info["task"]`` names the family of the episode and
``info["task_id"]`` its id. ``set_active(i)`` pins the draw to one id (the adaptive
curriculum uses it to move along a ladder of presets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ssl_gym.envs.puzzle_env import Observation, PuzzleEnv, ResetNeededError
from ssl_gym.envs.spaces import Completion, observation_space
from ssl_gym.images import ImageSource
from ssl_gym.render import composite_on_canvas

#: The papers' task sets, as registered mixtures.
MIXTURES = {
    "SSL4RL": {
        "ids": [
            "SSL/Rotation-4way-v1",
            "SSL/Position-2x2-v2",
            "SSL/Jigsaw-2x2-v2",
            "SSL/Contrastive-Weak-v2",
        ],
        "answer_format": "tags",
        "prompt_style": "ssl4rl",
    },
    "SSLR1": {
        "ids": [
            "SSL/Rotation-4way-v1",
            "SSL/Similarity-K4-v2",
            "SSL/Inpainting-K4-v1",
            "SSL/Jigsaw-3x3-v2",
            "SSL/Correspondence-Affine-K4-v1",
        ],
        "answer_format": "boxed",
        "prompt_style": "ssl_r1",
    },
}


class MixtureEnv(gym.Env[Observation, str]):
    """Draw one of several puzzle ids per episode; one composite image of fixed size."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}  # noqa: RUF012

    def __init__(
        self,
        ids: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        canvas: int = 448,
        image_source: str | ImageSource = "procedural",
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        """Build the mixture.

        Args:
            ids: registered ``SSL/*`` ids to draw from.
            weights: drawing weights (default uniform); normalised.
            canvas: side in pixels of the composite observation image.
            image_source: passed to every puzzle env.
            render_mode: ``None`` or ``"rgb_array"``.
            **overrides: settings every puzzle takes (``answer_format``, ``max_turns``...).
        """
        if not ids:
            raise ValueError(
                "a mixture needs its ids, e.g. gym.make('SSL/Mix-v1', "
                "ids=['SSL/Rotation-4way-v1', 'SSL/Jigsaw-2x2-v2'])"
            )
        self.ids = list(ids)
        self.weights = self._normalise(weights, len(self.ids))
        self.envs: list[PuzzleEnv] = [self._make(i, image_source, overrides) for i in self.ids]
        self.canvas, self.render_mode = canvas, render_mode
        self.observation_space = observation_space(((canvas, canvas, 3),))
        self.action_space = Completion()
        self.active: int | None = None
        self._index = 0
        self._current: PuzzleEnv | None = None
        self._picture: np.ndarray | None = None

    @staticmethod
    def _normalise(weights: Sequence[float] | None, n: int) -> np.ndarray:
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights must be {n} finite non-negative numbers with a positive sum, "
                f"got {weights!r}"
            )
        return w / w.sum()

    @staticmethod
    def _make(env_id: str, source: str | ImageSource, overrides: dict[str, Any]) -> PuzzleEnv:
        try:
            env = gym.make(env_id, image_source=source, **overrides).unwrapped
        except gym.error.Error as err:
            raise ValueError(f"unknown id {env_id!r} in the mixture: {err}") from err
        if not isinstance(env, PuzzleEnv):
            raise ValueError(f"{env_id} is not a puzzle env")
        return env

    @property
    def current(self) -> PuzzleEnv | None:
        """The puzzle env of the current episode (``None`` before the first reset)."""
        return self._current

    def set_active(self, index: int | None) -> None:
        """Play only ``ids[index]`` from the next reset on (``None``: draw by weights)."""
        if index is not None and not 0 <= index < len(self.ids):
            raise ValueError(f"index {index} out of range for {len(self.ids)} ids")
        self.active = index

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Draw a task (or take the active one), then its puzzle, from the env's generator."""
        obs, info = self.draw(seed=seed, options=options)
        self._picture = composite_on_canvas(obs["images"], self.canvas)
        return {"images": (self._picture,), "prompt": obs["prompt"]}, info

    def draw(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """What :meth:`reset` draws, without the composite picture.

        Returns the puzzle's own observation (its images as they are) and the reset's
        info. The same generator calls as :meth:`reset`, so ``current`` then holds the very
        puzzle a reset with ``seed`` shows. Exports use it: a dataset row keeps the
        puzzle's own images, and the canvas is not worth drawing.
        """
        super().reset(seed=seed)
        index = self.active
        if options and "level" in options:
            index = int(options["level"])
        if index is None:
            index = int(self.np_random.choice(len(self.ids), p=self.weights))
        self._index, self._current = index, self.envs[index]
        obs, info = self._current.reset(seed=int(self.np_random.integers(2**31)))
        self._picture = None
        return obs, {**info, **self._task()}

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Play the turn in the current task's env."""
        if self._current is None or self._picture is None:
            raise ResetNeededError("call reset() before step()")
        obs, reward, terminated, truncated, info = self._current.step(action)
        info.update(self._task())
        return (
            {"images": (self._picture.copy(),), "prompt": obs["prompt"]},
            reward,
            terminated,
            truncated,
            info,
        )

    def _task(self) -> dict[str, Any]:
        family = self.envs[self._index].puzzle.family
        return {"task": family, "task_id": self.ids[self._index], "task_index": self._index}

    def render(self) -> np.ndarray | None:
        """The composite picture of the current puzzle."""
        return None if self.render_mode is None else self._picture
