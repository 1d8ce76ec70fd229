"""One learner step of the tiny model on a fixed rollout, under torchrun or alone.

Usage: ddp_step.py MODEL_DIR OUT_DIR [ddp|fsdp]. Every rank plays the same global rollout
(same seeds and sampling seed), keeps its own groups, takes one learner step, and writes
its full weights' checksum and, on rank 0, the weights themselves. Under fsdp the ranks
use different micro-batch sizes, so one of them runs padding micro-batches.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import save_file

import ssl_gym  # noqa: F401
from agents.distributed import close_distributed, init_distributed
from agents.learner import Learner, LearnerConfig
from agents.models import load_vlm
from agents.rollout import rollout
from agents.samplers.base import SamplingParams
from agents.samplers.hf import HFSampler
from ssl_gym.seeds import group_seeds

GROUPS, SIZE = 4, 4


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "ddp"
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    vlm = load_vlm(model_dir)
    micro = 3 if mode == "ddp" or info.rank == 0 else 8
    cfg = LearnerConfig(micro_batch_size=micro, max_grad_norm=1e9, parallel=mode)
    learner = Learner(vlm, cfg, dist_info=info)
    # SGD with lr 1: the weight change is the averaged gradient itself (AdamW would magnify
    # rounding in near-zero gradients), which is what the comparison is about
    learner.optimizer = torch.optim.SGD(vlm.model.parameters(), lr=1.0)
    kw = {"size": 64, "answer_format": "plain", "prompt_style": "plain"}
    envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=GROUPS * SIZE, **kw)
    params = SamplingParams(max_new_tokens=4, constrain=True, seed=0)
    with learner.full_weights():
        batch = rollout(envs, HFSampler(vlm), params, group_seeds(GROUPS, SIZE, 0), SIZE)
    batch.episode_rewards = np.tile([1.0, 0.0, 0.0, 1.0], GROUPS)  # every group learns
    metrics = learner.step(batch.shard(info.rank, info.world, SIZE), SIZE)
    weights, _ = learner.state_dicts()
    checksum = float(sum(v.double().sum() for v in weights.values()))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{info.rank}.json").write_text(json.dumps({"checksum": checksum, **metrics}))
    if info.is_main:
        save_file(weights, out / "weights.safetensors")
    close_distributed(info)


if __name__ == "__main__":
    main()
