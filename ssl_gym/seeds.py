"""Every seed rule of the project, in one place.

* **Training** (:func:`group_seeds`): a GRPO group is ``group_size`` envs reset with the
  same seed, so they hold the same puzzle and their rewards can be compared. Training
  seeds lie below :data:`SEED_LIMIT`::

      import gymnasium as gym
      import ssl_gym
      from ssl_gym.seeds import group_seeds

      envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=8)
      seeds = group_seeds(num_groups=2, group_size=4, seed=0)  # [a, a, a, a, b, b, b, b]
      obs, infos = envs.reset(seed=seeds)
      # obs["prompt"][0] == obs["prompt"][3]; envs 4-7 hold another puzzle

* **A training step** (:func:`step_seed`): the seed of step ``k`` of a run, stable across
  resumes.
* **Held-out evaluation** (:func:`eval_seeds`): above :data:`SEED_LIMIT`, fixed per id,
  shared by ``ssl-gym eval`` and the trainer's held-out evaluation.
* **Exported records** (:func:`record_seed`): a bijection of ``(export seed, split,
  index)`` onto ``[2**62, 2**63)``, so train and test records, the shards of an export and
  exports with different seeds never share a puzzle, nor share one with training or
  held-out seeds.
* **A policy's own draws** (:func:`policy_rng`): a stream apart from every env's.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from ssl_gym.core import check_int
from ssl_gym.envs import single_turn_id

#: Training seeds lie below this; held-out evaluation seeds are taken above it.
SEED_LIMIT = 2**30
#: Held-out sets :func:`eval_seeds` offers: their seeds all stay below ``2**62``, where the
#: exported records' seeds begin (:data:`RECORD_SEED_BASE`).
EVAL_SETS = 2**31
#: The splits of an export, in the order :func:`record_seed` numbers them.
SPLITS = ("train", "test")


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


def step_seed(run_seed: int, step: int) -> int:
    """The seed of training step ``step`` of a run (its group seeds come from it)."""
    return int(np.random.default_rng([run_seed, step]).integers(0, SEED_LIMIT))


def eval_seeds(env_id: str, episodes: int, seed: int = 0) -> list[int]:
    """The held-out reset seeds of ``env_id``: episode ``i`` always gets the ``i``-th.

    All lie in ``[(seed + 1) * SEED_LIMIT, (seed + 2) * SEED_LIMIT)``: above every training
    seed, and disjoint for different ``seed`` values. The offset inside the block is the
    CRC-32 of the id (hinted ids share their single-turn id's puzzles).

    Args:
        env_id: A registered id (or any name, e.g. a mixture id).
        episodes: How many seeds.
        seed: Which held-out set (0 is the canonical one).

    Raises:
        ValueError: If ``episodes`` or ``seed`` is negative or too large.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 0 <= episodes:
        raise ValueError(f"episodes must be a non-negative integer, got {episodes!r}")
    if episodes > SEED_LIMIT:
        raise ValueError(f"at most {SEED_LIMIT} held-out episodes per id, got {episodes}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < EVAL_SETS:
        raise ValueError(
            f"the evaluation seed must be an integer from 0 to {EVAL_SETS - 1}, got {seed!r}"
        )
    offset = zlib.crc32(single_turn_id(env_id).encode("utf-8"))
    base = (seed + 1) * SEED_LIMIT
    return [base + (offset + i) % SEED_LIMIT for i in range(episodes)]


#: Records per split an export can hold (the indices :func:`record_seed` maps).
RECORDS_PER_SPLIT = 2**29
#: Export seeds :func:`record_seed` keeps apart (``0 .. EXPORT_SEEDS - 1``).
EXPORT_SEEDS = 2**32
#: Exported records' env seeds lie in ``[RECORD_SEED_BASE, 2 * RECORD_SEED_BASE)``: above
#: every training seed (below :data:`SEED_LIMIT`) and every held-out one (below ``2**62``),
#: and below ``2**63``, so they fit the int64 columns of parquet and Arrow.
RECORD_SEED_BASE = 2**62
_HALF_BITS = 31
_HALF_MASK = (1 << _HALF_BITS) - 1
_FEISTEL_KEY = b"ssl_gym.record_seed.v2"


def _round_key(round_: int, half: int) -> int:
    digest = hashlib.blake2b(
        half.to_bytes(4, "big"), digest_size=4, key=_FEISTEL_KEY, person=bytes([round_]) * 16
    ).digest()
    return int.from_bytes(digest, "big") & _HALF_MASK


def record_seed(seed: int, split: str, index: int) -> int:
    """The env seed of record ``index`` of ``split`` of the export seeded ``seed``.

    The scheme: ``(seed, split, index)`` is packed into 62 bits (``seed`` in the top 32,
    ``index`` in the next 29, the split's code last) and passed through one fixed
    permutation of 62 bits (a four-round Feistel network keyed by BLAKE2b). A permutation
    maps distinct inputs to distinct outputs, so every ``(seed, split, index)`` gets its
    own env seed: train and test never meet, no seed repeats within a split, and exports
    with different ``--seed`` (or the shards of one export, which are index ranges) never
    share a puzzle. The seeds look random, so neighbouring indices are unrelated puzzles.

    Args:
        seed: The export's seed, in ``[0, 2**32)``.
        split: ``"train"`` or ``"test"``.
        index: The record's index in its split, below ``2**29``.

    Returns:
        An int in ``[RECORD_SEED_BASE, 2 * RECORD_SEED_BASE)``.

    Raises:
        ValueError: If an argument is out of range.
    """
    check_int("seed", seed, 0, EXPORT_SEEDS - 1)
    check_int("index", index, 0, RECORDS_PER_SPLIT - 1)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    x = (seed << 30) | (index << 1) | SPLITS.index(split)
    left, right = x >> _HALF_BITS, x & _HALF_MASK
    for round_ in range(4):
        left, right = right, left ^ _round_key(round_, right)
    return RECORD_SEED_BASE + ((left << _HALF_BITS) | right)


#: First word of a policy's seed sequence. ``default_rng([s, 0])`` and ``default_rng(s)``
#: are the generator ``reset(seed=s)`` gives the env (SeedSequence pads with zeros), so a
#: policy seeded with ``s`` would replay the puzzle's own draws; the tag keeps them apart.
POLICY_RNG_TAG = 0x5E1F_E7A1


def policy_rng(*key: int) -> np.random.Generator:
    """A generator for a policy's own draws, independent of every env's reset stream."""
    return np.random.default_rng([POLICY_RNG_TAG, *key])
