"""The registration loop: every family x preset becomes ``SSL/<Family>-<Variant>-v<N>``."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from ssl_gym.puzzles import FAMILIES, build_puzzle

NAMESPACE = "SSL"
ENTRY_POINT = "ssl_gym.envs.puzzle_env:PuzzleEnv"


@dataclass(frozen=True)
class EnvEntry:
    """What ``ssl-gym list`` shows about one registered id."""

    id: str
    family: str
    variant: str
    difficulty: str
    chance_score: float
    description: str


def env_id(family: str, variant: str, version: int) -> str:
    """The registered id of a family preset: version last, variant before it."""
    return f"{NAMESPACE}/{family}-{variant}-v{version}"


def entries() -> list[EnvEntry]:
    """Every family preset, in registry order (families, then presets easy to hard)."""
    out = []
    for cls in FAMILIES.values():
        for variant, p in cls.presets.items():
            chance = build_puzzle(cls.family, variant).chance_score
            out.append(
                EnvEntry(
                    env_id(cls.family, variant, cls.version),
                    cls.family,
                    variant,
                    p.difficulty,
                    chance,
                    p.description,
                )
            )
    return out


def register_all() -> list[str]:
    """Register every family preset with Gymnasium (idempotent); returns the ids."""
    ids = []
    for cls in FAMILIES.values():
        for variant in cls.presets:
            eid = env_id(cls.family, variant, cls.version)
            if eid not in gym.registry:
                gym.register(
                    eid, entry_point=ENTRY_POINT, kwargs={"family": cls.family, "preset": variant}
                )
            ids.append(eid)
    return ids


def registered_ids() -> list[str]:
    """All ``SSL/*`` ids currently in Gymnasium's registry."""
    return [k for k in gym.registry if k.startswith(f"{NAMESPACE}/")]
