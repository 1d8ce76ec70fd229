"""Checkpoints of a training run: written whole or not at all, found and restored.

``run/checkpoints/step_N`` holds ``model.safetensors`` (full weights), ``optimizer.pt``
(AdamW state, loaded with ``weights_only=True``) and ``trainer_state.json`` (step, config,
torch RNG, history, curriculum). Each is written under a temporary name and renamed into
place (:func:`ssl_gym.files.atomic_path`), so a crash never leaves a checkpoint that
looks complete but is not.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from agents.config import TrainConfig
from agents.learner import Learner
from agents.models import VLM
from ssl_gym.files import atomic_path


def save_checkpoint(
    run: Path,
    step: int,
    vlm: VLM,
    tensors: tuple[dict[str, torch.Tensor], dict[str, Any]],
    cfg: TrainConfig,
    extra: dict[str, Any],
) -> Path:
    """Write ``run/checkpoints/step_N`` atomically (temporary directory, then rename).

    ``tensors`` is ``Learner.state_dicts()``: full weights and optimizer state, which every
    rank gathers together before rank 0 writes them.
    """
    final = run / "checkpoints" / f"step_{step:06d}"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        weights, optim = tensors
        save_file(weights, tmp / "model.safetensors")
        torch.save(optim, tmp / "optimizer.pt")
        state = {
            "step": step,
            "config": dataclasses.asdict(cfg),
            "base_model": str(vlm.path),
            "torch_rng": torch.get_rng_state().tolist(),
            **extra,
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state))
    return final


def latest_checkpoint(path: Path) -> Path:
    """``path`` itself if it is a checkpoint, else the newest complete one under it."""
    if (path / "trainer_state.json").is_file():
        return path
    found = sorted((path / "checkpoints").glob("step_*/trainer_state.json"))
    if not found:
        raise FileNotFoundError(f"no complete checkpoint under {path}")
    return found[-1].parent


def load_checkpoint(ckpt: Path, learner: Learner) -> dict[str, Any]:
    """Restore weights and optimizer (every rank reads the files); return the trainer state."""
    state: dict[str, Any] = json.loads((ckpt / "trainer_state.json").read_text())
    learner.load_state_dicts(
        load_file(ckpt / "model.safetensors"),
        torch.load(ckpt / "optimizer.pt", weights_only=True),
    )
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return state
