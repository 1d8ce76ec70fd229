"""ssl_gym: self-supervised visual puzzles as Gymnasium environments.

``import ssl_gym`` registers every ``SSL/*`` id::

    import gymnasium as gym
    import ssl_gym

    env = gym.make("SSL/Jigsaw-3x3-v2")
    obs, info = env.reset(seed=7)
    obs, reward, terminated, truncated, info = env.step("<answer>1,2,3,4,5,6,7,8,9</answer>")
"""

from __future__ import annotations

from ssl_gym.core import Instance, Puzzle, PuzzleConfig, Verdict
from ssl_gym.envs import PuzzleEnv, entries, register_all, registered_ids
from ssl_gym.images import ImageSource, make_source
from ssl_gym.puzzles import FAMILIES, build_puzzle

__version__ = "0.1.0"

register_all()

__all__ = [
    "FAMILIES",
    "ImageSource",
    "Instance",
    "Puzzle",
    "PuzzleConfig",
    "PuzzleEnv",
    "Verdict",
    "build_puzzle",
    "entries",
    "make_source",
    "register_all",
    "registered_ids",
]
