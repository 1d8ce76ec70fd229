"""GRPO groups over Gymnasium vector envs.

A GRPO group is ``group_size`` envs reset with the same seed, so they hold the same
puzzle and their rewards can be compared::

    import gymnasium as gym
    import ssl_gym
    from ssl_gym.vector import group_seeds

    envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=8)
    seeds = group_seeds(num_groups=2, group_size=4, seed=0)  # [a, a, a, a, b, b, b, b]
    obs, infos = envs.reset(seed=seeds)
    # obs["prompt"][0] == obs["prompt"][3]; envs 4-7 hold another puzzle
"""

from __future__ import annotations

import numpy as np

#: Group seeds lie below this; held-out evaluation seeds can be taken above it.
SEED_LIMIT = 2**30


def group_seeds(num_groups: int, group_size: int, seed: int) -> list[int]:
    """Seeds for a vector reset: ``num_groups`` seeds, each repeated ``group_size`` times.

    The seeds are drawn from ``np.random.default_rng(seed)`` below :data:`SEED_LIMIT`, so
    the same ``seed`` always gives the same groups, and seeds at or above the limit stay
    free for evaluation.
    """
    if num_groups < 1 or group_size < 1:
        raise ValueError(f"num_groups and group_size must be >= 1, got {num_groups}, {group_size}")
    seeds = np.random.default_rng(seed).integers(0, SEED_LIMIT, size=num_groups)
    return [int(s) for s in seeds for _ in range(group_size)]


#: First word of a policy's seed sequence. ``default_rng([s, 0])`` and ``default_rng(s)``
#: are the generator ``reset(seed=s)`` gives the env (SeedSequence pads with zeros), so a
#: policy seeded with ``s`` would replay the puzzle's own draws; the tag keeps them apart.
POLICY_RNG_TAG = 0x5E1F_E7A1


def policy_rng(*key: int) -> np.random.Generator:
    """A generator for a policy's own draws, independent of every env's reset stream."""
    return np.random.default_rng([POLICY_RNG_TAG, *key])
