"""The learner at real scale, shown on the tiny model: mixed precision, PPO mini-batches,
the sampling temperature, Dr. GRPO's constant divisor, the global batch and run management.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ssl_gym  # noqa: F401
from agents.config import make_config
from agents.distributed import DistInfo
from agents.learner import Learner, LearnerConfig, _pad
from agents.models import completion_logprobs, encode, load_vlm, prompt_text
from agents.rollout import RolloutBatch, rollout
from agents.samplers.base import Request, SamplingParams
from agents.samplers.hf import HFSampler
from agents.tiny import build_tiny_model
from agents.train import main, step_inputs, train
from ssl_gym.seeds import group_seeds

KW = {"size": 64, "answer_format": "plain", "prompt_style": "plain"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def batch(tiny_dir: Path) -> RolloutBatch:
    vlm = load_vlm(tiny_dir)
    envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=16, **KW)
    params = SamplingParams(max_new_tokens=4, constrain=True, seed=0)
    out = rollout(envs, HFSampler(vlm), params, group_seeds(4, 4, 0), 4)
    out.episode_rewards = np.tile([1.0, 0.0, 0.0, 1.0], 4)  # every group has an advantage
    return out


def _moved(before: dict[str, torch.Tensor], model: torch.nn.Module) -> float:
    """The fraction of weight entries that changed."""
    after = model.state_dict()
    changed = sum(int((before[k] != after[k]).sum()) for k in before)
    return changed / sum(v.numel() for v in before.values())


def test_bf16_compute_over_fp32_master_weights_keeps_small_updates(
    tiny_dir: Path, batch: RolloutBatch
) -> None:
    moved = {}
    for name, weights, compute in (
        ("fp32", torch.float32, "float32"),
        ("mixed", torch.float32, "bfloat16"),
        ("pure bf16", torch.bfloat16, "bfloat16"),  # the old way: bf16 weights stepped
    ):
        vlm = load_vlm(tiny_dir, dtype=weights)
        learner = Learner(vlm, LearnerConfig(lr=1e-6, dtype=compute, micro_batch_size=16))
        before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
        for _ in range(3):
            learner.step(batch, 4)
        moved[name] = _moved(before, vlm.model)
        assert next(vlm.model.parameters()).dtype == weights
    assert moved["fp32"] > 0.5 and moved["mixed"] > 0.5, moved
    assert moved["pure bf16"] < 0.2, moved  # bf16 rounding swallows lr 1e-6 updates


def _count_steps(optimizer: torch.optim.Optimizer) -> list[int]:
    """A list that grows by one at every ``optimizer.step()``."""
    steps: list[int] = []
    inner = optimizer.step

    def counted(*args: object, **kwargs: object) -> object:
        steps.append(1)
        return inner(*args, **kwargs)  # type: ignore[arg-type]

    optimizer.step = counted  # type: ignore[method-assign, assignment]
    return steps


def test_ppo_mini_batches_take_that_many_steps_and_clip(
    tiny_dir: Path, batch: RolloutBatch
) -> None:
    clip = {}
    for minis in (1, 4):
        vlm = load_vlm(tiny_dir)
        learner = Learner(vlm, LearnerConfig(lr=3e-2, ppo_mini_batches=minis, micro_batch_size=3))
        steps = _count_steps(learner.optimizer)
        metrics = learner.step(batch, 4)
        assert len(steps) == minis
        clip[minis] = metrics["policy/clip_frac"]
    assert clip[1] == 0.0  # one update: the ratio is 1
    assert clip[4] > 0.0  # later mini-batches see a policy that has moved
    vlm = load_vlm(tiny_dir)
    two_epochs = Learner(vlm, LearnerConfig(ppo_mini_batches=2, ppo_epochs=2))
    assert two_epochs.step(batch, 4)["learner/updates"] == 4
    with pytest.raises(ValueError, match="ppo_mini_batches=32 needs at least 32 rows"):
        Learner(load_vlm(tiny_dir), LearnerConfig(ppo_mini_batches=32)).step(batch, 4)


def test_sampler_and_learner_logprobs_agree_at_the_sampling_temperature(tiny_dir: Path) -> None:
    vlm = load_vlm(tiny_dir)
    obs, _ = gym.make("SSL/Rotation-4way-v1", **KW).reset(seed=0)
    req = Request(obs["prompt"], obs["images"], (), None, None)
    params = SamplingParams(n=4, max_new_tokens=6, temperature=0.7, seed=0)
    samples = HFSampler(vlm).sample([req], params)[0]
    batch = encode(vlm, [prompt_text(vlm, req.prompt, 1)] * 4, [list(req.images)] * 4)
    ids = _pad([s.token_ids for s in samples], vlm.pad_token_id, torch.long)
    mask = _pad([[1] * len(s.token_ids) for s in samples], 0, torch.long)
    theirs = _pad([s.logprobs for s in samples], 0.0, torch.float32)
    with torch.no_grad():
        at_t, _ = completion_logprobs(vlm, batch, ids, mask, temperature=0.7)
        at_one, _ = completion_logprobs(vlm, batch, ids, mask)
    torch.testing.assert_close(at_t, theirs, atol=1e-5, rtol=1e-5)
    assert (at_one - theirs).abs().max() > 1e-3  # T matters: the old T = 1 scoring is off


def _dr_grpo_weights(
    tiny_dir: Path, batch: RolloutBatch, micro: int, norm: int
) -> dict[str, torch.Tensor]:
    vlm = load_vlm(tiny_dir)
    cfg = LearnerConfig(
        micro_batch_size=micro,
        max_grad_norm=1e9,
        aggregation="seq_mean_token_sum_norm",
        max_new_tokens=norm,
    )
    learner = Learner(vlm, cfg)
    learner.optimizer = torch.optim.SGD(vlm.model.parameters(), lr=1.0)  # step = -grad
    learner.step(batch, 4)
    return {k: v.clone() for k, v in vlm.model.state_dict().items()}


def test_dr_grpo_accumulates_exactly_over_micro_batches_of_other_padding(
    tiny_dir: Path, batch: RolloutBatch
) -> None:
    lengths = {len(s.token_ids) for s in batch.samples}
    assert len(lengths) > 1, "the micro-batches must differ in padding for this test"
    base = load_vlm(tiny_dir).model.state_dict()
    whole, split = (_dr_grpo_weights(tiny_dir, batch, m, 4) for m in (16, 3))
    for k in whole:
        torch.testing.assert_close(whole[k] - base[k], split[k] - base[k], atol=1e-6, rtol=1e-4)
    # dividing by each micro-batch's own padded width (norm 0) is not exact
    whole, split = (_dr_grpo_weights(tiny_dir, batch, m, 0) for m in (16, 3))
    gap = max(float((whole[k] - split[k]).abs().max()) for k in whole)
    assert gap > 1e-5


def test_the_global_batch_is_split_over_the_ranks() -> None:
    cfg = make_config({"groups_per_step": 8, "group_size": 4})
    one, _ = step_inputs(cfg, DistInfo(), 3)
    shares = [step_inputs(cfg, DistInfo(rank=r, world=2), 3)[0] for r in (0, 1)]
    assert [len(s) for s in shares] == [16, 16]  # 4 groups of 4 each
    assert shares[0] + shares[1] == one  # together the one process's 8 groups


def test_a_global_batch_that_does_not_divide_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="groups_per_step=3 is the global batch"):
        make_config({"groups_per_step": 3})
    with pytest.raises(ValueError, match="ppo_mini_batches=5 exceeds the 4 episodes"):
        make_config({"groups_per_step": 2, "group_size": 4, "ppo_mini_batches": 5})


def test_bad_settings_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad, message in (
        ({"eval_every": -1}, "eval_every must be >= 0"),
        ({"save_every": -2}, "save_every must be >= 0"),
        ({"kl_kind": "k4"}, "kl_kind='k4' is not valid"),
        ({"aggregation": "sum"}, "aggregation='sum' is not valid"),
        ({"ppo_epochs": 0}, "ppo_epochs must be >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            make_config(bad)
    for model in (str(tmp_path / "nowhere"), "Qwen/Qwen2.5-VL-3B-Instruct"):
        assert main(["--model", model, "--out", str(tmp_path / "run")]) == 2
        printed = capsys.readouterr().out
        assert "error:" in printed and "Traceback" not in printed
    assert "looks like a Hugging Face Hub id" in " ".join(printed.split())


def _run_args(tiny_dir: Path, out: Path, steps: int) -> list[str]:
    return [
        "--model",
        str(tiny_dir),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--groups-per-step",
        "2",
        "--group-size",
        "4",
        "--eval-every",
        "0",
        "--eval-episodes",
        "4",
        "--save-every",
        "1",
        "--lr",
        "0.002",
    ]


def test_resume_continues_the_run_with_its_own_settings(
    tmp_path: Path,
    tiny_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(_run_args(tiny_dir, run, 2)) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["step"] for r in rows if "eval/solve_rate" in r] == [0, 2]  # eval_every 0
    capsys.readouterr()
    assert main(["--resume", str(run), "--steps", "3"]) == 0  # the run's settings, 1 more step
    saved = json.loads((run / "config.json").read_text())
    assert (saved["steps"], saved["learner"]["lr"], saved["group_size"]) == (3, 0.002, 4)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()] == [0, 1, 2, 3]
    assert not (tmp_path / "outputs").exists()  # nothing written to the default folder
    capsys.readouterr()
    assert main(["--resume", str(run)]) == 0
    assert "is finished (3 of 3 steps)" in " ".join(capsys.readouterr().out.split())
    assert main(["--resume", str(tmp_path / "none")]) == 2


def test_throughput_metrics_are_logged(tmp_path: Path, tiny_dir: Path) -> None:
    settings = {"model": str(tiny_dir), "out": str(tmp_path), "steps": 1, "eval_episodes": 4}
    history = train(make_config({**settings, "groups_per_step": 2, "group_size": 4}))["history"]
    step = history[-1]
    assert step["perf/train_tokens_per_s"] > 0 and step["learner/updates"] == 1
    assert "perf/mfu" not in step  # no known device peak on a CPU


@pytest.mark.slow
def test_the_gpu_step_benchmark_runs_on_the_cpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "gpu_step.json"
    cmd = [
        sys.executable,
        "benchmarks/gpu_step.py",
        *("--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--steps", "2"),
        *("--groups", "2", "--group-size", "4", "--max-new-tokens", "8", "--out", str(out)),
    ]
    root = Path(__file__).parents[1]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["per_step"]) == 2 and len(result["trl_per_step_s"]) == 2
    for key in ("median_sample_s", "median_learn_s", "train_tokens_per_s", "trl_median_step_s"):
        assert result[key] > 0, key
    assert result["trl_over_ours"] == pytest.approx(
        result["trl_median_step_s"] / result["median_step_s"]
    )


def test_truncated_importance_sampling_weights_recomputed_old_logprobs(
    tiny_dir: Path, batch: RolloutBatch
) -> None:
    import dataclasses

    # a sampler that found every token e times less likely than the learner does
    shifted = dataclasses.replace(
        batch,
        samples=[
            dataclasses.replace(s, logprobs=[lp - 1.0 for lp in s.logprobs]) for s in batch.samples
        ],
    )
    base = load_vlm(tiny_dir).model.state_dict()
    deltas = []
    for cap, rows in ((0.0, batch), (2.0, shifted)):
        vlm = load_vlm(tiny_dir)
        cfg = LearnerConfig(old_logprobs="recompute", tis_cap=cap, max_grad_norm=1e9)
        learner = Learner(vlm, cfg)
        learner.optimizer = torch.optim.SGD(vlm.model.parameters(), lr=1.0)
        metrics = learner.step(rows, 4)
        deltas.append({k: v - base[k] for k, v in vlm.model.state_dict().items()})
    assert metrics["sampler/logprob_gap_max"] == pytest.approx(1.0, abs=1e-4)
    for k in deltas[0]:  # min(e, 2) = 2: every token's loss weighs twice
        torch.testing.assert_close(deltas[1][k], 2 * deltas[0][k], atol=1e-6, rtol=1e-4)


def test_the_learner_settings_nest_and_come_flat_or_as_a_table() -> None:
    flat = make_config({"lr": 0.5, "kl_coef": 0.1, "steps": 3})
    table = make_config({"learner": {"lr": 0.5, "kl_coef": 0.1}, "steps": 3})
    assert flat == table and flat.learner.lr == 0.5 and flat.learner.kl_coef == 0.1
    assert make_config({}).learner.lr == 1e-3  # the trainer's default for the tiny model
    saved = dataclasses.asdict(flat)  # as config.json holds it, the run-set fields included
    assert make_config(saved) == flat
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lrr'\]"):
        make_config({"learner": {"lrr": 1.0}})
