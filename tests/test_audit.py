"""The shortcut audit detects blind and cheap-statistics shortcuts, and passes clean ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ssl_gym.audit import audit_id, audit_puzzle, markdown_table, run_audit
from ssl_gym.core import Instance
from ssl_gym.images import make_source
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles.rotation import Rotation, RotationConfig


class BrightnessLeak(Rotation):
    """A broken Rotation: each angle brightens the image a little (a cheap shortcut)."""

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        inst = super()._draft(rng, source)
        k = int(inst.solution) // 90
        bright = np.clip(inst.images[0].astype(int) + 12 * k, 0, 255).astype(np.uint8)
        return self.make_instance([bright], inst.question, inst.solution, inst.answer, inst.choices)


class MostlyUpright(Rotation):
    """A broken Rotation: angle 0 three times out of four (a blind shortcut)."""

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        inst = super()._draft(rng, source)
        if rng.random() < 0.66:
            return self.make_instance([inst.images[0]], inst.question, 0, "0", inst.choices)
        return inst


SRC = make_source("procedural")
CFG = RotationConfig(size=32)


def test_probe_catches_a_brightness_leak() -> None:
    result = audit_puzzle(BrightnessLeak(CFG), SRC, "leak", n=400)
    assert result.probe > result.chance + 0.2 and not result.probe_ok and not result.passed
    assert result.oracle_ok


def test_blind_policy_catches_a_skewed_answer_distribution() -> None:
    result = audit_puzzle(MostlyUpright(CFG), SRC, "skewed", n=400)
    assert result.blind > 0.6 and not result.blind_ok


def test_clean_puzzle_passes() -> None:
    result = audit_puzzle(Rotation(CFG), SRC, "clean", n=2000)  # as the audit runs
    assert result.passed, result


def test_sequence_answers_are_probed_per_position(tmp_path: Path) -> None:
    result = audit_id("SSL/Jigsaw-2x2-v2", n=200)
    assert result.oracle == 1.0 and 0.0 <= result.probe <= 1.0
    results = run_audit(["SSL/Rotation-2way-v1"], n=100, out=str(tmp_path))
    data = json.loads((tmp_path / "shortcut_audit.json").read_text())
    assert data["results"][0]["id"] == "SSL/Rotation-2way-v1" and data["n"] == 100
    assert "SSL/Rotation-2way-v1" in (tmp_path / "shortcut_audit.md").read_text()
    assert markdown_table(results).count("\n") == 3
