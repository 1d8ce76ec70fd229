"""Data-parallel learning (DDP and FSDP2): two gloo ranks under torchrun equal one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.tiny import build_tiny_model

SCRIPT = Path(__file__).parent / "scripts" / "ddp_step.py"


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_process_on_the_same_global_batch(
    tmp_path: Path, parallel: str
) -> None:
    model = build_tiny_model(tmp_path / "tiny", seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(SCRIPT),
        str(model),
        str(tmp_path / "ddp"),
        parallel,  # under fsdp the ranks run different numbers of real micro-batches
    ]
    _run(torchrun, env)
    _run([sys.executable, str(SCRIPT), str(model), str(tmp_path / "one")], env)
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # the ranks stay identical
    ddp = load_file(tmp_path / "ddp" / "weights.safetensors")
    one = load_file(tmp_path / "one" / "weights.safetensors")
    base = load_file(model / "model.safetensors")
    moved = [k for k in base if k in one and not torch.equal(base[k], one[k])]
    assert moved, "the step must change the weights"
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], atol=2e-6, rtol=1e-4)
    single = json.loads((tmp_path / "one" / "rank0.json").read_text())
    assert ranks[0]["loss/policy"] == pytest.approx(single["loss/policy"], abs=1e-5)


def _train_args(model: Path, out: Path, steps: int) -> list[str]:
    return [
        "-m",
        "agents.train",
        "--model",
        str(model),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--groups-per-step",
        "2",  # the global batch: one group per rank under two ranks
        "--group-size",
        "4",
        "--eval-every",
        "1",
        "--eval-episodes",
        "4",
        "--save-every",
        "1",
    ]


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_train_under_torchrun_writes_once_from_rank_zero(tmp_path: Path, parallel: str) -> None:
    model = build_tiny_model(tmp_path / "tiny", seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    _run([*TORCHRUN, *_train_args(model, out, 2), "--parallel", parallel], env)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()]
    assert steps == [0, 1, 2]  # one writer
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    final = load_file(out / "final" / "model.safetensors")
    last = load_file(out / "checkpoints" / "step_000002" / "model.safetensors")
    assert final.keys() == last.keys() == load_file(model / "model.safetensors").keys()
    for key in final:  # full tensors, not one rank's shard
        torch.testing.assert_close(final[key], last[key], rtol=0, atol=0)


@pytest.mark.slow
def test_a_single_process_checkpoint_resumes_under_fsdp(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny", seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    _run([sys.executable, *_train_args(model, out, 1)], env)
    _run([*TORCHRUN, *_train_args(model, out, 2), "--parallel", "fsdp", "--resume", str(out)], env)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()]
    assert steps == [0, 1, 2]
    two = load_file(out / "checkpoints" / "step_000002" / "model.safetensors")
    assert two.keys() == load_file(model / "model.safetensors").keys()  # full, named tensors
    optim = torch.load(out / "checkpoints" / "step_000002" / "optimizer.pt", weights_only=True)
    steps_taken = {int(v["step"]) for v in optim["state"].values()}
    assert steps_taken == {2}  # AdamW's state came through the resume (a fresh one says 1)
