"""The Gymnasium side of ssl_gym: one env class, its spaces, the registration loop."""

from __future__ import annotations

from ssl_gym.envs.mixture import MixtureEnv
from ssl_gym.envs.puzzle_env import PuzzleEnv, make_puzzle_env
from ssl_gym.envs.registration import (
    EnvEntry,
    entries,
    env_id,
    mixture_ids,
    register_all,
    registered_ids,
    single_turn_id,
    unknown_id,
)
from ssl_gym.envs.spaces import Completion, observation_space

__all__ = [
    "Completion",
    "EnvEntry",
    "MixtureEnv",
    "PuzzleEnv",
    "entries",
    "env_id",
    "make_puzzle_env",
    "mixture_ids",
    "observation_space",
    "register_all",
    "registered_ids",
    "single_turn_id",
    "unknown_id",
]
