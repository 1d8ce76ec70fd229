"""Where a GRPO step's time goes: env, sampling, learning (``ssl-gym train`` on the tiny model).

Runs ``agents.train.train`` for ``--steps`` steps with the default CPU setup (the tiny random
Idefics3, Rotation-4way at 64 px, ``--groups`` groups of ``--group-size`` samples, answers
constrained to the grammar) and reads the time split the trainer logs every step
(``perf/env_s``, ``perf/sample_s``, ``perf/learn_s``). The first step (warm-up) is dropped;
the figures are medians over the rest, with each part's share of the step, and minima
(the least disturbed step: on a shared machine other processes inflate single steps, and
the load average is recorded). Torch runs on one thread by default: on a small shared
machine two threads contending with other processes made steps over ten times slower.
Writes ``benchmarks/results/grpo_step.json``.

    python benchmarks/grpo_step.py [--steps 10] [--sampler hf|vllm] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from agents.config import TrainConfig
from agents.train import train

RESULTS = Path(__file__).parent / "results"
PARTS = ("env_s", "sample_s", "learn_s")


def measure(args: argparse.Namespace, out: str) -> list[dict[str, float]]:
    """The per-step history of a short training run (no evaluation, no checkpoints)."""
    cfg = TrainConfig(
        out=out,
        steps=args.steps,
        groups_per_step=args.groups,
        group_size=args.group_size,
        sampler=args.sampler,
        device=args.device,
        eval_every=10**6,
        eval_episodes=8,
        save_every=10**6,
    )
    history = train(cfg)["history"]
    return [h for h in history if "perf/step_s" in h]


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the parts, the step, its share of each part, and tokens/s."""
    timed = rows[1:] if len(rows) > 1 else rows  # the first step warms caches up
    med = {p: statistics.median(r[f"perf/{p}"] for r in timed) for p in (*PARTS, "step_s")}
    out = {f"median_{p}": v for p, v in med.items()}
    out.update({f"min_{p}": min(r[f"perf/{p}"] for r in timed) for p in (*PARTS, "step_s")})
    out.update({f"share_{p.removesuffix('_s')}": med[p] / med["step_s"] for p in PARTS})
    out["median_tokens_per_s"] = statistics.median(r["perf/tokens_per_s"] for r in timed)
    out["steps_timed"] = len(timed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--groups", type=int, default=16, help="GRPO groups per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--sampler", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "grpo_step.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as run:
        rows = measure(args, run)
    result = summarise(rows)
    print(
        f"GRPO step ({args.groups} x {args.group_size} episodes, {args.sampler} sampler): "
        f"median {result['median_step_s']:.2f} s = env {result['median_env_s']:.3f} s "
        f"({result['share_env']:.1%}) + sampling {result['median_sample_s']:.2f} s "
        f"({result['share_sample']:.1%}) + learning {result['median_learn_s']:.2f} s "
        f"({result['share_learn']:.1%}); {result['median_tokens_per_s']:.0f} tokens/s"
    )
    result["per_step"] = rows
    result["meta"] = {
        "steps": args.steps,
        "groups_per_step": args.groups,
        "group_size": args.group_size,
        "sampler": args.sampler,
        "device": args.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
