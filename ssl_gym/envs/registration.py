"""The registration loop: every family x preset becomes ``SSL/<Family>-<Variant>-v<N>``.

Beside each single-turn id, ``SSL/<Family>-<Variant>-Hint-v<N>`` is the same puzzle
played over several turns with hints (``max_turns="auto"``, see ``PuzzleEnv``).

Every id is registered without Gymnasium's ``OrderEnforcing`` and ``PassiveEnvChecker``
wrappers (:data:`SPEC_OPTIONS`): the envs raise Gymnasium's ``ResetNeeded`` themselves on a step
before ``reset``, and the test suite runs Gymnasium's full ``check_env`` on every id, so
``gym.make`` returns the family's env itself: ``help(env)`` shows the family's
documentation and ``print(env)`` its id. ``gym.make(id, disable_env_checker=False)``
still adds the checker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from ssl_gym.core import Puzzle, did_you_mean
from ssl_gym.envs.mixture import MIXTURES
from ssl_gym.puzzles import FAMILIES, build_puzzle

NAMESPACE = "SSL"
ENTRY_POINT = "ssl_gym.envs.puzzle_env:PuzzleEnv"
MIXTURE_ENTRY_POINT = "ssl_gym.envs.mixture:MixtureEnv"
SPEC_OPTIONS: dict[str, Any] = {"order_enforce": False, "disable_env_checker": True}
"""How every id is registered (see the module's documentation)."""
MIXTURE_VERSION = 1
"""The ``vN`` of the mixture ids. v1: every image resized once onto the canvas (v0
resized the side-by-side picture a second time)."""


@dataclass(frozen=True)
class EnvEntry:
    """What ``ssl-gym list`` shows about one registered id."""

    id: str
    family: str
    variant: str
    difficulty: str
    chance_score: float
    description: str
    hinted: bool = False


def env_id(family: str, variant: str, version: int) -> str:
    """The registered id of a family preset: version last, variant before it."""
    return f"{NAMESPACE}/{family}-{variant}-v{version}"


def single_turn_id(eid: str) -> str:
    """The single-turn id of a ``-Hint`` id, read from its registry entry; others as given."""
    spec = gym.registry.get(eid)
    if spec is None or "preset" not in spec.kwargs or spec.kwargs.get("max_turns", 1) == 1:
        return eid
    family = spec.kwargs["family"]
    return env_id(family, spec.kwargs["preset"], FAMILIES[family].version)


def _hint_version(cls: type[Puzzle[Any]]) -> int:
    return cls.version if cls.hint_version is None else cls.hint_version


def entries(hinted: bool = False) -> list[EnvEntry]:
    """Every family preset, in registry order (families, then presets easy to hard).

    With ``hinted``, the ``-Hint`` ids follow each family's single-turn ones.
    """
    out = []
    for cls in FAMILIES.values():
        for variant, p in cls.presets.items():
            chance = build_puzzle(cls.family, variant).chance_score
            eid = env_id(cls.family, variant, cls.version)
            out.append(EnvEntry(eid, cls.family, variant, p.difficulty, chance, p.description))
        if hinted:
            out += [
                EnvEntry(
                    env_id(e.family, f"{e.variant}-Hint", _hint_version(cls)),
                    e.family,
                    e.variant,
                    e.difficulty,
                    e.chance_score,
                    f"{e.description}, with hints",
                    True,
                )
                for e in out
                if e.family == cls.family and not e.hinted
            ]
    return out


def register_all() -> list[str]:
    """Register every family preset with Gymnasium (idempotent); returns the ids."""
    ids = []
    for cls in FAMILIES.values():
        for variant in cls.presets:
            eid = env_id(cls.family, variant, cls.version)
            hint_id = env_id(cls.family, f"{variant}-Hint", _hint_version(cls))
            single = {"family": cls.family, "preset": variant}
            for key, kwargs in ((eid, single), (hint_id, {**single, "max_turns": "auto"})):
                if key not in gym.registry:
                    gym.register(key, entry_point=ENTRY_POINT, kwargs=kwargs, **SPEC_OPTIONS)
                ids.append(key)
    return ids + register_mixtures()


def mixture_ids() -> list[str]:
    """The registered mixtures: the papers' task sets, and ``SSL/Mix-v1`` (give ``ids=``)."""
    return [f"{NAMESPACE}/Mix-{name}-v{MIXTURE_VERSION}" for name in MIXTURES] + [
        f"{NAMESPACE}/Mix-v{MIXTURE_VERSION}"
    ]


def register_mixtures() -> list[str]:
    """Register the mixture ids (idempotent)."""
    for eid in mixture_ids():
        name = eid.removeprefix(f"{NAMESPACE}/Mix-").removesuffix(f"-v{MIXTURE_VERSION}")
        if eid not in gym.registry:
            gym.register(
                eid,
                entry_point=MIXTURE_ENTRY_POINT,
                kwargs=dict(MIXTURES[name]) if name in MIXTURES else {},
                **SPEC_OPTIONS,
            )
    return mixture_ids()


def registered_ids() -> list[str]:
    """All ``SSL/*`` ids currently in Gymnasium's registry."""
    return [k for k in gym.registry if k.startswith(f"{NAMESPACE}/")]


def unknown_id(name: str, what: str = "id") -> str:
    """The one-line error for an id (or glob) that names nothing.

    It names the closest registered ids, and where to look.
    """
    hint = did_you_mean(name, registered_ids())
    return f"unknown {what} {name!r}{hint}; see `ssl-gym list --hints`"
