"""Rollouts, the HF sampler, the learner and the trainer on the tiny model (CPU)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ssl_gym  # noqa: F401
from agents.checkpoint import latest_checkpoint
from agents.config import make_config
from agents.learner import Learner, LearnerConfig, _pad
from agents.models import completion_logprobs, encode, load_vlm, prompt_text
from agents.rollout import RolloutBatch, rollout
from agents.samplers.base import Request, Sample, SamplingParams
from agents.samplers.hf import HFSampler
from agents.tiny import build_tiny_model
from agents.train import main, train
from ssl_gym.seeds import group_seeds
from ssl_gym.testing import observation_digest

KW = {"size": 64, "answer_format": "plain", "prompt_style": "plain"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _key(prompt: str, images: Sequence[np.ndarray]) -> str:
    return observation_digest({"prompt": prompt, "images": images})


class OracleSampler:
    """Answers from a table of ground truths keyed by observation bytes."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        return [
            [Sample(self.answers[_key(r.prompt, r.images)], [1], [0.0])] * params.n
            for r in requests
        ]

    def load_weights(self, model: torch.nn.Module) -> None:
        pass


def test_group_seeds_repeat_each_seed_group_size_times() -> None:
    seeds = group_seeds(3, 4, seed=0)
    assert len(seeds) == 12 and len(set(seeds)) == 3
    assert all(seeds[i] == seeds[i - i % 4] for i in range(12))
    assert seeds == group_seeds(3, 4, seed=0) and seeds != group_seeds(3, 4, seed=1)


def test_rollout_with_oracle_policy_gets_reward_one() -> None:
    seeds = group_seeds(2, 3, seed=5)
    answers = {}
    for s in set(seeds):
        obs, info = gym.make("SSL/Jigsaw-2x2-v2", **KW).reset(seed=s)
        answers[_key(obs["prompt"], obs["images"])] = info["answer"]
    envs = gym.make_vec("SSL/Jigsaw-2x2-v2", num_envs=6, vectorization_mode="sync", **KW)
    batch = rollout(envs, OracleSampler(answers), SamplingParams(), seeds, group_size=3)
    assert batch.episode_rewards.tolist() == [1.0] * 6
    assert batch.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.reward_components["accuracy"].tolist() == [1.0] * 6
    assert batch.requests[0].pattern is not None and batch.requests[0].choices is None
    with pytest.raises(ValueError, match="one seed per env"):
        rollout(envs, OracleSampler(answers), SamplingParams(), seeds[:5], group_size=3)


@pytest.mark.parametrize("constrain", [False, True])
def test_sampler_logprobs_equal_the_learners(tiny_dir: Path, constrain: bool) -> None:
    vlm = load_vlm(tiny_dir)
    obs, info = gym.make("SSL/Rotation-4way-v1", **KW).reset(seed=0)
    req = Request(obs["prompt"], obs["images"], (), tuple(info["choices"]), None)
    params = SamplingParams(n=3, max_new_tokens=6, constrain=constrain, seed=0)
    samples = [s for group in HFSampler(vlm).sample([req, req], params) for s in group]
    texts = [prompt_text(vlm, req.prompt, 1)] * len(samples)
    batch = encode(vlm, texts, [list(req.images)] * len(samples))
    ids = _pad([s.token_ids for s in samples], vlm.pad_token_id, torch.long)
    mask = _pad([[1] * len(s.token_ids) for s in samples], 0, torch.long)
    with torch.no_grad():
        ours, _ = completion_logprobs(vlm, batch, ids, mask)
    theirs = _pad([s.logprobs for s in samples], 0.0, torch.float32)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    if constrain:
        assert {s.text for s in samples} <= set(info["choices"])


def test_pattern_constraint_yields_well_formed_permutations(tiny_dir: Path) -> None:
    vlm = load_vlm(tiny_dir)
    obs, info = gym.make("SSL/Jigsaw-2x2-v2", **KW).reset(seed=1)
    req = Request(obs["prompt"], obs["images"], (), None, info["pattern"])
    params = SamplingParams(n=8, max_new_tokens=16, constrain=True, seed=3)
    for s in HFSampler(vlm).sample([req], params)[0]:
        assert re.fullmatch(info["pattern"], s.text), s.text
        assert s.finish_reason == "stop"


def test_the_answer_format_travels_with_the_request(tiny_dir: Path) -> None:
    """Each env's own answer format reaches the grammar; the sampler holds none."""
    sampler = HFSampler(load_vlm(tiny_dir))
    assert not hasattr(sampler, "answer_format")
    params = SamplingParams(max_new_tokens=24, constrain=True, seed=0)
    for fmt, wrap in (("boxed", r"\\boxed\{(.+)\}"), ("plain", r"(.+)")):
        envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=2, **{**KW, "answer_format": fmt})
        batch = rollout(envs, sampler, params, [0, 1], group_size=2)
        assert {r.answer_format for r in batch.requests} == {fmt}
        for sample in batch.samples:
            match = re.search(wrap + "$", sample.text)
            assert match and match.group(1) in batch.requests[0].choices, sample.text
        assert batch.episode_format_ok.all()


def test_free_sampling_suppresses_image_placeholders(tiny_dir: Path) -> None:
    vlm = load_vlm(tiny_dir)
    obs, _ = gym.make("SSL/Rotation-4way-v1", **KW).reset(seed=0)
    req = Request(obs["prompt"], obs["images"])
    samples = HFSampler(vlm).sample([req], SamplingParams(n=16, max_new_tokens=24, seed=1))[0]
    used = {t for s in samples for t in s.token_ids}
    assert not used & set(vlm.placeholder_token_ids)


def _batch(tiny_dir: Path, n_groups: int = 2, group_size: int = 4) -> RolloutBatch:
    vlm = load_vlm(tiny_dir)
    envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=n_groups * group_size, **KW)
    params = SamplingParams(max_new_tokens=4, constrain=True, seed=0)
    return rollout(envs, HFSampler(vlm), params, group_seeds(n_groups, group_size, 0), group_size)


def test_micro_batches_accumulate_to_the_full_batch_gradient(tiny_dir: Path) -> None:
    batch = _batch(tiny_dir)
    batch.episode_rewards = np.array([1.0, 0, 0, 0, 1, 1, 0, 1])  # force non-zero advantages
    weights = []
    for micro in (8, 3):
        vlm = load_vlm(tiny_dir)
        learner = Learner(vlm, LearnerConfig(micro_batch_size=micro, max_grad_norm=1e9))
        learner.optimizer = torch.optim.SGD(vlm.model.parameters(), lr=1.0)  # step = -grad
        learner.step(batch, 4)
        weights.append({k: v.clone() for k, v in vlm.model.state_dict().items()})
    base = load_vlm(tiny_dir).model.state_dict()
    changed = [k for k in base if not torch.equal(base[k], weights[0][k])]
    assert changed, "a learner step must change the weights"
    for k in weights[0]:
        torch.testing.assert_close(
            weights[0][k] - base[k], weights[1][k] - base[k], atol=1e-6, rtol=1e-4
        )


def test_learner_options(tiny_dir: Path) -> None:
    vlm = load_vlm(tiny_dir)
    Learner(vlm, LearnerConfig(freeze_vision=True))
    frozen = [n for n, p in vlm.model.named_parameters() if not p.requires_grad]
    assert frozen and all("vision" in n or "visual" in n for n in frozen)
    with pytest.raises(ValueError, match="reference"):
        Learner(load_vlm(tiny_dir), LearnerConfig(kl_coef=0.1))
    lora = load_vlm(tiny_dir)
    Learner(lora, LearnerConfig(lora_rank=4))
    trainable = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)


def _small(tmp: Path, tiny_dir: Path, **kw: object) -> dict:
    settings = {
        "model": str(tiny_dir),
        "out": str(tmp),
        "steps": 4,
        "groups_per_step": 2,
        "group_size": 4,
        "eval_every": 2,
        "eval_episodes": 8,
        "save_every": 2,
    }
    return train(make_config({**settings, **kw}))


class _Recording:
    """A sampler that records the trainer's calls and samples with the HF sampler."""

    def __init__(self, inner: HFSampler) -> None:
        self.inner, self.calls, self.awake = inner, [], True

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        assert self.awake, "sampled while the engine sleeps"
        self.calls.append("sample")
        return self.inner.sample(requests, params)

    def sleep(self) -> None:
        self.calls.append("sleep")
        self.awake = False

    def wake_up(self) -> None:
        self.calls.append("wake_up")
        self.awake = True

    def load_weights(self, model: torch.nn.Module) -> None:
        assert self.awake, "weights pushed into a sleeping engine"
        self.calls.append("load")
        self.inner.load_weights(model)


def test_the_vllm_engine_sleeps_while_the_learner_steps(
    tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.train

    made: list[_Recording] = []

    def recording(kind: str, vlm: object, **engine: object) -> _Recording:
        assert kind == "vllm" and engine["sleep_mode"] is True
        made.append(_Recording(HFSampler(vlm)))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(agents.train, "make_sampler", recording)
    _small(tmp_path, tiny_dir, steps=2, sampler="vllm", vllm_sleep=True)
    steps = [c for c in made[0].calls if c != "sample"]
    assert steps == ["sleep", "wake_up", "load"] * 2
    with pytest.raises(ValueError, match="need --sampler vllm"):
        make_config({"vllm_sleep": True})


def test_resume_reaches_the_same_weights(tmp_path: Path, tiny_dir: Path) -> None:
    _small(tmp_path / "straight", tiny_dir)
    _small(tmp_path / "cut", tiny_dir, steps=2)
    _small(tmp_path / "cut", tiny_dir, resume=str(tmp_path / "cut"))
    a = load_file(latest_checkpoint(tmp_path / "straight") / "model.safetensors")
    b = load_file(latest_checkpoint(tmp_path / "cut") / "model.safetensors")
    assert latest_checkpoint(tmp_path / "cut").name == "step_000004"
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut/metrics.jsonl").open()]
    assert steps == [0, 1, 2, 3, 4]


def test_curriculum_state_is_checkpointed_and_restored(tmp_path: Path, tiny_dir: Path) -> None:
    kw = {
        "curriculum": "Rotation",
        "curriculum_window": 4,
        "steps": 2,
        "save_every": 1,
        "env_kwargs": {**KW, "canvas": 96},
    }
    _small(tmp_path, tiny_dir, **kw)
    state = json.loads((latest_checkpoint(tmp_path) / "trainer_state.json").read_text())
    saved = state["curriculum"]
    assert saved["num_levels"] == 4 and len(saved["outcomes"]) <= 4
    saved["level"], saved["outcomes"] = 2, []
    (latest_checkpoint(tmp_path) / "trainer_state.json").write_text(json.dumps(state))
    _small(tmp_path, tiny_dir, **{**kw, "steps": 3}, resume=str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert rows[-1]["step"] == 3 and rows[-1]["curriculum/level"] in (1, 2, 3)
    assert rows[-1]["env/chance"] == 0.25  # level 2 is Rotation-4way


def test_partial_checkpoints_are_ignored(tmp_path: Path, tiny_dir: Path) -> None:
    _small(tmp_path, tiny_dir, steps=2)
    (tmp_path / "checkpoints/.tmp-step_000004").mkdir()
    (tmp_path / "checkpoints/step_000009").mkdir()  # no trainer_state.json: incomplete
    assert latest_checkpoint(tmp_path).name == "step_000002"


@pytest.mark.slow
def test_tiny_model_learns_from_the_pixels(tmp_path: Path, tiny_dir: Path) -> None:
    common = {
        "model": str(tiny_dir),
        "env": "SSL/Rotation-2way-v1",
        "steps": 60,
        "eval_every": 20,
        "eval_episodes": 128,
        "save_every": 1000,
    }
    seen = train(make_config({**common, "out": str(tmp_path / "seen")}))["summary"]
    blind = train(make_config({**common, "out": str(tmp_path / "blind"), "blank_images": True}))
    assert seen["final_eval_solve_rate"] >= 0.8, seen["eval_curve"]
    assert abs(blind["summary"]["final_eval_solve_rate"] - 0.5) <= 0.1, blind["summary"]


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        make_config({"stepz": 3})
    bad = tmp_path / "bad.toml"
    bad.write_text('lr = 0.1\ncolour = "red"\n')
    assert main(["--config", str(bad)]) == 2
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.slow
def test_cli_train_smoke(tmp_path: Path) -> None:
    model = tmp_path / "tiny"
    made = subprocess.run(
        [sys.executable, "-m", "ssl_gym.cli", "make-tiny-model", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    cfg = tmp_path / "run.toml"
    cfg.write_text("steps = 2\ngroups_per_step = 2\neval_every = 1\neval_episodes = 4\n")
    out = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssl_gym.cli",
            "train",
            "--config",
            str(cfg),
            "--model",
            str(model),
            "--out",
            str(out),
            "--env-kwargs",
            json.dumps(KW),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "curves.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and [s for s, _ in summary["eval_curve"]] == [0, 1, 2]
    assert (out / "final" / "model.safetensors").is_file()


def test_curves_keep_the_legend_off_the_data_and_steps_whole(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from agents.logs import plot_curves

    for steps in (3, 7, 40):
        history: list[dict[str, float]] = [
            {"step": s, "rollout/reward_mean": 1.0 - 1.0 / (s + 1), "env/chance": 0.25}
            for s in range(steps)
        ]
        history += [{"step": s, "eval/solve_rate": 0.95} for s in range(0, steps, 2)]
        fig = plot_curves(history, tmp_path / "curves.png", "SSL/Rotation-4way-v1 (GRPO)")
        fig.canvas.draw()
        (ax,) = fig.axes
        legend, data = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert not legend.overlaps(data), (steps, legend, data)
        box = fig.bbox  # and inside the figure: nothing cut off
        assert box.x0 <= legend.x0 and legend.x1 <= box.x1
        assert box.y0 <= legend.y0 and legend.y1 <= box.y1
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), (steps, ticks)
        assert (tmp_path / "curves.png").stat().st_size > 1000
