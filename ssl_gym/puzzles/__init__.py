"""The puzzle families: one module each, collected here into the family registry."""

from __future__ import annotations

from ssl_gym.core import Puzzle, PuzzleConfig
from ssl_gym.puzzles.contrastive import Contrastive
from ssl_gym.puzzles.correspondence import Correspondence
from ssl_gym.puzzles.flippatch import FlipPatch
from ssl_gym.puzzles.inpainting import Inpainting
from ssl_gym.puzzles.jigsaw import Jigsaw
from ssl_gym.puzzles.oddtile import OddTile
from ssl_gym.puzzles.position import Position
from ssl_gym.puzzles.rotation import Rotation
from ssl_gym.puzzles.similarity import Similarity

#: Every family by name, in the order the docs and ``ssl-gym list`` show them.
FAMILIES: dict[str, type[Puzzle]] = {
    cls.family: cls
    for cls in (
        Rotation,
        Position,
        Jigsaw,
        Contrastive,
        Similarity,
        Inpainting,
        Correspondence,
        FlipPatch,
        OddTile,
    )
}


def get_family(name: str) -> type[Puzzle]:
    """The puzzle class of a family name (case-insensitive)."""
    by_lower = {k.lower(): v for k, v in FAMILIES.items()}
    if name.lower() not in by_lower:
        raise ValueError(f"unknown puzzle family {name!r}; known: {', '.join(FAMILIES)}")
    return by_lower[name.lower()]


def build_puzzle(family: str, preset: str | None = None, **overrides: object) -> Puzzle:
    """A puzzle from a family name, an optional preset name and config overrides."""
    cls = get_family(family)
    settings: dict[str, object] = {}
    if preset is not None:
        if preset not in cls.presets:
            raise ValueError(
                f"unknown preset {preset!r} for {cls.family}; known: {', '.join(cls.presets)}"
            )
        settings.update(cls.presets[preset].overrides)
    settings.update(overrides)
    config: PuzzleConfig = cls.config_cls.from_overrides(**settings)
    return cls(config)


__all__ = [
    "FAMILIES",
    "Contrastive",
    "Correspondence",
    "FlipPatch",
    "Inpainting",
    "Jigsaw",
    "OddTile",
    "Position",
    "Rotation",
    "Similarity",
    "build_puzzle",
    "get_family",
]
