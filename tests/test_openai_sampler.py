"""The OpenAI-compatible sampler against a local stand-in server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from http_stub import JSONHandler, chat_choices, serve
from PIL import Image

import ssl_gym  # noqa: F401
from agents.samplers.base import Request, SamplingParams
from agents.samplers.openai import EndpointUnavailableError, OpenAISampler


class Stub(JSONHandler):
    """Answers chat completions with canned text; fails the first ``fail_first`` calls."""

    bodies: list[dict[str, Any]] = []  # noqa: RUF012
    fail_first = 0

    def respond(self, body: dict[str, Any]) -> dict[str, Any] | None:
        type(self).bodies.append(body)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            return None
        logprobs = {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]}
        texts = [f"answer {i}" for i in range(body["n"])]
        return {"choices": chat_choices(texts, logprobs=logprobs)}


@pytest.fixture
def server() -> Iterator[str]:
    Stub.bodies, Stub.fail_first = [], 0
    with serve(Stub) as url:
        yield url


def _request(env_id: str = "SSL/Rotation-4way-Ref-v1") -> Request:
    obs, info = gym.make(env_id, size=32).reset(seed=0)
    return Request(
        obs["prompt"],
        obs["images"],
        (("assistant", "90"), ("user", "again")),
        info["choices"],
        info["pattern"],
    )


def test_images_travel_as_data_urls_and_samples_come_back(server: str) -> None:
    req = _request()
    sampler = OpenAISampler(server, "tiny")
    out = sampler.sample([req, req], SamplingParams(n=3, temperature=0.7, seed=5))
    assert [len(group) for group in out] == [3, 3]
    assert out[0][2].text == "answer 2" and out[0][0].logprobs == [-0.5, -0.25]
    body = Stub.bodies[0]
    assert (body["n"], body["temperature"], body["seed"], body["logprobs"]) == (3, 0.7, 5, True)
    parts = body["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 2 and parts[-1]["text"] == req.prompt
    png = base64.b64decode(urls[1].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), req.images[1])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_answer_grammar_is_sent_as_structured_output(server: str) -> None:
    sampler = OpenAISampler(server, "tiny")
    sampler.sample([_request()], SamplingParams(constrain=True))
    assert Stub.bodies[-1]["structured_outputs"] == {"choice": ["0", "90", "180", "270"]}
    sampler.sample([_request("SSL/Jigsaw-2x2-v2")], SamplingParams(constrain=True))
    assert "regex" in Stub.bodies[-1]["structured_outputs"]


def test_transient_failures_are_retried(server: str) -> None:
    Stub.fail_first = 2
    sampler = OpenAISampler(server, "tiny", backoff=0.01)
    assert sampler.sample([_request()], SamplingParams())[0][0].text == "answer 0"
    assert len(Stub.bodies) == 3


def test_a_server_that_is_down_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    sampler = OpenAISampler(f"http://127.0.0.1:{port}/v1", "tiny", max_retries=2, backoff=0.01)
    with pytest.raises(EndpointUnavailableError, match=r"after 3 tries.*is the server running"):
        sampler.sample([_request()], SamplingParams())
