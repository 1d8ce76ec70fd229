"""A GRPO step at real scale: our learner and sampler against TRL's GRPOTrainer, same batch.

A Qwen2.5-VL-3B-shaped model with random weights is built from its published config
(nothing is downloaded; the tokenizer and processor are the project's tiny Qwen2.5-VL
ones, whose image patching is the real model's). Both sides then train it on the same
puzzles (``--groups`` groups of ``--group-size`` samples of Rotation-4way at 224 px, up to
``--max-new-tokens`` tokens, transformers' ``generate`` as the sampler) with fp32 master
weights and bf16 compute, gradient checkpointing, lr 1e-6, and rewards drawn at random
(a random model never answers, so every group gets an advantage this way):

* ours: :func:`agents.rollout.rollout` with :class:`agents.samplers.hf.HFSampler`, then
  :meth:`agents.learner.Learner.step`, timed part by part;
* TRL: ``GRPOTrainer`` with the same sizes (``per_device_train_batch_size`` completions,
  ``num_generations`` per prompt), timed per optimizer step by a callback.

The first step of each warms up and is not counted. Printed and written to
``benchmarks/results/gpu_step.json``: the step-time split (env, sample, learn), peak GPU
memory, sampled and trained tokens per second, MFU (``6 x params`` FLOPs per trained
token against the device's dense bf16 peak), TRL's step time and the ratio.

    python benchmarks/gpu_step.py                       # on a GPU (H200: a few minutes)
    python benchmarks/gpu_step.py --shape tiny --device cpu --steps 2 --groups 2 \\
        --group-size 4 --max-new-tokens 8 --out /tmp/gpu_step.json   # the CPU check
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForImageTextToText

import ssl_gym  # noqa: F401 - registers the ids
from agents.learner import Learner, LearnerConfig
from agents.logs import peak_flops
from agents.models import VLM, wrap_model
from agents.rollout import rollout
from agents.samplers.base import SamplingParams
from agents.samplers.hf import HFSampler
from agents.tiny import PRODUCTION_SHAPES, build_tiny_model
from ssl_gym.files import write_atomic
from ssl_gym.seeds import group_seeds

RESULTS = Path(__file__).parent / "results"
ENV_ID = "SSL/Rotation-4way-v1"


def model_dir(shape: str, root: Path, image_size: int) -> Path:
    """The tiny Qwen2.5-VL's tokenizer and processor, with ``shape``'s config (no weights)."""
    path = build_tiny_model(root / "model", arch="qwen2_5_vl", seed=0, image_size=image_size)
    if shape != "tiny":
        config = json.loads((path / "config.json").read_text())
        real = PRODUCTION_SHAPES[shape]
        for part in ("text_config", "vision_config"):
            config[part] = {**config[part], **real[part]}
        config["tie_word_embeddings"] = real.get("tie_word_embeddings", False)
        (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def random_vlm(path: Path, device: str) -> VLM:
    """The model of ``path``'s config with random fp32 weights, on ``device``."""
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    return wrap_model(model, path)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0


def ours(args: argparse.Namespace, path: Path) -> list[dict[str, float]]:
    """Per-step timings of our rollout and learner step."""
    vlm = random_vlm(path, args.device)
    cfg = LearnerConfig(
        lr=1e-6,
        dtype=args.dtype,
        micro_batch_size=args.micro_batch_size,
        gradient_checkpointing=args.device != "cpu",
        max_new_tokens=args.max_new_tokens,
    )
    learner = Learner(vlm, cfg)
    sampler = HFSampler(vlm)
    n = args.groups * args.group_size
    envs = gym.make_vec(ENV_ID, num_envs=n, **_env_kwargs())
    params = SamplingParams(max_new_tokens=args.max_new_tokens, constrain=False, seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for step in range(args.steps):
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seeds = group_seeds(args.groups, args.group_size, seed=step)
        vlm.model.eval()
        with learner.compute():
            batch = rollout(envs, sampler, params, seeds, args.group_size)
        batch.episode_rewards = rng.integers(0, 2, n).astype(float)
        _sync(args.device)
        clock = time.perf_counter()
        learn = learner.step(batch, args.group_size)
        _sync(args.device)
        learn_s = time.perf_counter() - clock
        rows.append(
            {
                "env_s": batch.env_seconds,
                "sample_s": batch.sample_seconds,
                "learn_s": learn_s,
                "step_s": batch.env_seconds + batch.sample_seconds + learn_s,
                "completion_tokens": float(batch.num_tokens),
                "train_tokens": learn["learner/tokens"],
                "peak_gib": _peak_gib(args.device),
            }
        )
        print(f"ours step {step}: {rows[-1]}", flush=True)
    params_count = sum(p.numel() for p in vlm.model.parameters())
    for row in rows:
        row["params"] = float(params_count)
    del learner, sampler, vlm
    return rows


def _env_kwargs() -> dict[str, Any]:
    return {"size": 224, "answer_format": "tags", "prompt_style": "ssl4rl"}


def trl(args: argparse.Namespace, path: Path, out: Path) -> list[float]:
    """Per-step seconds of TRL's GRPOTrainer on the same sizes."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from ssl_gym.adapters.datasets import to_dataset

    vlm = random_vlm(path, args.device)
    rng = np.random.default_rng(0)

    def random_reward(prompts: Any, completions: list[Any], **kwargs: Any) -> list[float]:
        return rng.integers(0, 2, len(completions)).astype(float).tolist()

    times: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            _sync(args.device)
            self.began = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            _sync(args.device)
            times.append(time.perf_counter() - self.began)

    cuda = args.device.startswith("cuda")
    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.groups * args.group_size,
        num_generations=args.group_size,
        max_completion_length=args.max_new_tokens,
        max_steps=args.steps,
        learning_rate=1e-6,
        temperature=1.0,
        bf16=cuda and args.dtype == "bfloat16",
        use_cpu=not cuda,
        gradient_checkpointing=cuda,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=0,
    )
    dataset = to_dataset(ENV_ID, n=args.groups * args.steps, seed=0, overrides=_env_kwargs())
    trainer = GRPOTrainer(
        model=vlm.model,
        reward_funcs=[random_reward],  # type: ignore[list-item]
        args=config,
        train_dataset=dataset,
        processing_class=vlm.processor,
        callbacks=[Clock()],
    )
    trainer.train()
    del trainer, vlm
    return times


def summarise(rows: list[dict[str, float]], trl_times: list[float], device: str) -> dict:
    """Medians over the timed steps (the first one warms up), MFU and the ratio to TRL."""
    timed = rows[1:] if len(rows) > 1 else rows
    med = {k: statistics.median(r[k] for r in timed) for k in timed[0]}
    peak = peak_flops(device)
    out: dict[str, Any] = {f"median_{k}": v for k, v in med.items()}
    out["sample_tokens_per_s"] = med["completion_tokens"] / max(med["sample_s"], 1e-9)
    out["train_tokens_per_s"] = med["train_tokens"] / max(med["learn_s"], 1e-9)
    out["mfu"] = 6 * med["params"] * out["train_tokens_per_s"] / peak if peak else None
    out["peak_gib"] = max(r["peak_gib"] for r in rows)
    if trl_times:
        trl_timed = trl_times[1:] if len(trl_times) > 1 else trl_times
        out["trl_median_step_s"] = statistics.median(trl_timed)
        out["trl_over_ours"] = out["trl_median_step_s"] / med["step_s"]
    out["per_step"] = rows
    out["trl_per_step_s"] = trl_times
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="qwen2_5_vl_3b", choices=[*PRODUCTION_SHAPES, "tiny"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--no-trl", action="store_true", help="skip TRL's GRPOTrainer")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_step.json")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; run with --shape tiny --device cpu to check")
    with tempfile.TemporaryDirectory() as tmp:
        path = model_dir(args.shape, Path(tmp), 224)
        rows = ours(args, path)
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        trl_times = [] if args.no_trl else trl(args, path, Path(tmp) / "trl")
    result = summarise(rows, trl_times, args.device)
    result["setup"] = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "device_name": (
            torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
        ),
        "torch": torch.__version__,
    }
    write_atomic(args.out, json.dumps(result, indent=2))
    keys = ("median_env_s", "median_sample_s", "median_learn_s", "median_step_s", "peak_gib")
    for key in (*keys, "sample_tokens_per_s", "train_tokens_per_s", "mfu", "trl_median_step_s"):
        print(f"{key:>22s}: {result.get(key)}")
    if "trl_over_ours" in result:
        print(f"TRL's step takes {result['trl_over_ours']:.2f}x ours; written to {args.out}")


if __name__ == "__main__":
    main()
