"""Adaptive difficulty: keep the recent solve rate in the "just right" band.

Both source papers find that puzzles help most when they are neither too easy nor too
hard. :class:`Curriculum` is the controller: it walks a ladder of levels (a family's
presets from easy to hard) and moves one level up when the solve rate over the last
``window`` episodes exceeds ``band[1]``, one level down when it falls below ``band[0]``.
Its state is a small JSON-ready dict, saved with the trainer's checkpoints.

:class:`AdaptiveDifficulty` is the Gymnasium wrapper for single-env use: it plays a
ladder through a :class:`~ssl_gym.envs.mixture.MixtureEnv` (one fixed observation space
for all levels), feeds every finished episode to the controller and reports it in
``info["curriculum"]``. With vector envs, keep one controller outside and pass
``options={"level": curriculum.level}`` to ``reset`` so that a GRPO group shares its
puzzle (the trainer does this).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from ssl_gym.core import check_float, check_int
from ssl_gym.envs.mixture import MixtureEnv
from ssl_gym.envs.registration import entries


def family_ladder(family: str) -> list[str]:
    """The single-turn ids of a family, easy to hard: a curriculum's ladder."""
    ids = [e.id for e in entries() if e.family.lower() == family.lower()]
    if not ids:
        known = sorted({e.family for e in entries()})
        raise ValueError(f"unknown family {family!r}; known: {', '.join(known)}")
    return ids


@dataclass
class Curriculum:
    """Move along ``num_levels`` levels to keep the recent solve rate inside ``band``."""

    num_levels: int
    band: tuple[float, float] = (0.3, 0.7)
    window: int = 64
    level: int = 0
    outcomes: deque[bool] = field(default_factory=deque)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_int("num_levels", self.num_levels, 1)
        check_int("window", self.window, 1)
        check_int("level", self.level, 0, self.num_levels - 1)
        low, high = self.band
        check_float("band low", low, 0.0, 1.0)
        check_float("band high", high, low, 1.0)
        self.band = (float(low), float(high))
        self.outcomes = deque(self.outcomes, maxlen=self.window)

    @property
    def solve_rate(self) -> float | None:
        """Solve rate over the current window (``None`` before any episode)."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else None

    def update(self, solved: Iterable[bool]) -> dict[str, Any] | None:
        """Record finished episodes; returns the change made, if the level moved."""
        self.outcomes.extend(bool(s) for s in solved)
        rate = self.solve_rate
        if rate is None or len(self.outcomes) < self.window:
            return None
        step = 1 if rate > self.band[1] else -1 if rate < self.band[0] else 0
        new = min(max(self.level + step, 0), self.num_levels - 1)
        if new == self.level:
            return None
        change = {"from": self.level, "to": new, "solve_rate": rate}
        self.level = new
        self.outcomes.clear()
        self.changes.append(change)
        return change

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (saved with checkpoints)."""
        return {
            "num_levels": self.num_levels,
            "band": list(self.band),
            "window": self.window,
            "level": self.level,
            "outcomes": list(self.outcomes),
            "changes": list(self.changes),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Curriculum:
        """Restore a controller saved with :meth:`state_dict`."""
        return cls(
            num_levels=state["num_levels"],
            band=(float(state["band"][0]), float(state["band"][1])),
            window=state["window"],
            level=state["level"],
            outcomes=deque(state["outcomes"]),
            changes=list(state["changes"]),
        )


class AdaptiveDifficulty(gym.Wrapper):
    """Play a ladder of ids, moving up or down to keep the solve rate in the band."""

    def __init__(
        self,
        ladder: Sequence[str] | str,
        band: tuple[float, float] = (0.3, 0.7),
        window: int = 64,
        **env_kwargs: Any,
    ) -> None:
        """Build the wrapper.

        Args:
            ladder: ids from easy to hard, or a family name (its presets in order).
            band: the target solve-rate band.
            window: episodes per solve-rate estimate (and between two moves).
            **env_kwargs: passed to :class:`MixtureEnv` (``canvas``, ``answer_format``...).
        """
        ids = family_ladder(ladder) if isinstance(ladder, str) else list(ladder)
        super().__init__(MixtureEnv(ids, **env_kwargs))
        self.ladder = ids
        self.curriculum = Curriculum(len(ids), band=band, window=window)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode at the current level."""
        options = {**(options or {}), "level": self.curriculum.level}
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "curriculum": self._info(None)}

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Play a turn; a finished episode updates the controller."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        change = None
        if terminated or truncated:
            change = self.curriculum.update([info.get("score", 0.0) == 1.0])
        info = {**info, "curriculum": self._info(change)}
        return obs, float(reward), terminated, truncated, info

    def _info(self, change: dict[str, Any] | None) -> dict[str, Any]:
        c = self.curriculum
        return {
            "level": c.level,
            "id": self.ladder[c.level],
            "solve_rate": float("nan") if c.solve_rate is None else c.solve_rate,
            "change": change,
        }

    def state_dict(self) -> dict[str, Any]:
        """The controller's state, for checkpoints."""
        return self.curriculum.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the controller's state."""
        self.curriculum = Curriculum.from_state_dict(state)
