"""The fast tier of the strong audit: real ids of every family, a few hundred instances.

It fails when any probe that never does the intended matching beats chance by a wide
margin (``MARGIN``), or when a label disagrees with the source identities. The full audit
(2,000 instances, every id, procedural and photos) is ``make bench``'s, with its results
in ``benchmarks/results/audit.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_gym.audit import identity_error, strong_audit_id
from ssl_gym.envs import entries, make_puzzle_env
from ssl_gym.images import PhotosSource

N = 300
MARGIN = 0.12
"""Wide enough for 90 held-out instances (a 95% interval is about +-0.09 at p = 0.25)."""

#: One or two variants of every family: those whose shortcuts were found and fixed.
TIER = {
    "Rotation": ("4way",),
    "Position": ("2x2",),
    "Jigsaw": ("2x2", "3x3"),
    "FlipPatch": ("3x3",),
    "Contrastive": ("Weak",),
    "Similarity": ("K4",),
    "Inpainting": ("K4-Hard",),
    "Correspondence": ("Crop-K4", "Affine-K4"),
    "OddTile": ("K6-Hard",),
}
IDS = [e.id for e in entries() if e.variant in TIER.get(e.family, ())]
SAME_SOURCE = [e.id for e in entries() if e.family in ("Contrastive", "Similarity", "OddTile")]


def test_the_tier_covers_every_family() -> None:
    assert {e.family for e in entries()} == set(TIER)
    assert len(IDS) == sum(len(v) for v in TIER.values())


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_no_probe_beats_chance_widely(env_id: str) -> None:
    result = strong_audit_id(env_id, "procedural", n=N)
    assert result.oracle == 1.0
    assert result.identity_errors == 0
    for probe in result.probes:
        assert probe.score <= result.chance + MARGIN, (env_id, probe)


def _identity_errors(env_id: str, source: object, n: int) -> int:
    env = make_puzzle_env(env_id, image_source=source)
    puzzle = env.puzzle
    return sum(
        identity_error(
            puzzle, puzzle.parts(puzzle.generate(np.random.default_rng([7, i]), env.source))
        )
        for i in range(n)
    )


@pytest.mark.slow
@pytest.mark.parametrize("env_id", SAME_SOURCE)
def test_labels_follow_source_identity_on_photos(env_id: str) -> None:
    assert _identity_errors(env_id, "photos", 200) == 0


@pytest.mark.slow
def test_labels_follow_source_identity_on_a_folder(tmp_path: Path) -> None:
    for name, image in zip(PhotosSource().names, PhotosSource().images, strict=True):
        Image.fromarray(image).save(tmp_path / f"{name}.jpg", quality=90)
    for env_id in SAME_SOURCE[::2]:
        assert _identity_errors(env_id, f"folder:{tmp_path}", 100) == 0, env_id
