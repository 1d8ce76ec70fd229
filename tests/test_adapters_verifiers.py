"""The verifiers 0.4 adapter: tasks, the rollout machinery, and rewards equal to the env's."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import verifiers.v1 as vf
from http_stub import JSONHandler, chat_choices, serve
from PIL import Image
from vllm_server import vllm_server

import ssl_gym  # noqa: F401
from ssl_gym.adapters.verifiers import VerifiersEnv, load_environment
from ssl_gym.seeds import record_seed

KW = {"size": 64, "answer_format": "plain"}


class Scripted(JSONHandler):
    """An OpenAI-compatible stand-in: replies with the next scripted completion."""

    replies: list[str] = []  # noqa: RUF012
    bodies: list[dict[str, Any]] = []  # noqa: RUF012

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        type(self).bodies.append(body)
        text = type(self).replies.pop(0) if type(self).replies else "(script ran out)"
        return {
            "id": f"c{len(type(self).bodies)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": chat_choices([text]),
            "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
        }


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(Scripted) as url:
        yield url


def rollout(env: VerifiersEnv, task: vf.Task, base_url: str, model: str = "stub") -> vf.Trace:
    """One episode through verifiers' own machinery (interception, harness, scoring)."""
    client = vf.EvalClientConfig(base_url=base_url, api_key_var="SSL_GYM_TEST_KEY")

    async def run() -> vf.Episode:
        async with env.serving():
            return await env.run_episode(task, vf.ModelContext(model=model, client=client))

    episode = asyncio.run(run())
    assert episode.ok, episode.errors
    (trace,) = episode.traces
    return trace


def play(env_id: str, seed: int, replies: list[str]) -> tuple[float, list[str]]:
    """The Gymnasium env's final reward for ``replies`` and the prompts it replied with."""
    env = gym.make(env_id, **KW)
    env.reset(seed=seed)
    prompts, reward = [], 0.0
    for reply in replies:
        obs, reward, terminated, _, _ = env.step(reply)
        if terminated:
            break
        prompts.append(obs["prompt"])
    return float(reward), prompts


def decode(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_tasks_carry_the_env_instance_with_images_as_data_urls() -> None:
    env = load_environment("SSL/Jigsaw-2x2-v2", num_examples=3, seed=7, **KW)
    tasks = list(env.taskset)
    assert len(tasks) == 3
    for i, task in enumerate(tasks):
        obs, info = gym.make("SSL/Jigsaw-2x2-v2", **KW).reset(seed=record_seed(7, "train", i))
        (message,) = task.data.prompt
        *images, text = message.content
        assert text.text == obs["prompt"]
        assert len(images) == len(obs["images"])
        for part, expected in zip(images, obs["images"], strict=True):
            np.testing.assert_array_equal(decode(part.image_url.url), expected)
        assert task.data.answer == info["answer"]
    assert len({t.data.seed for t in tasks}) == 3
    held_out = load_environment("SSL/Jigsaw-2x2-v2", num_examples=3, seed=7, split="test", **KW)
    test_seeds = [t.data.seed for t in held_out.taskset]
    assert test_seeds == [record_seed(7, "test", i) for i in range(3)]  # export's test split
    assert not set(test_seeds) & {t.data.seed for t in tasks}


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        load_environment("SSL/Jigsaw-2x2-v2", num_examples=2, split="dev")
    with pytest.raises(ValueError, match="unknown id"):
        load_environment("SSL/NoSuchPuzzle-v0")
    with pytest.raises(ValueError, match="num_examples"):
        load_environment("SSL/Rotation-4way-v1", num_examples=0)


@pytest.mark.parametrize(
    ("env_id", "script"),
    [
        ("SSL/Rotation-4way-v1", ["ORACLE"]),
        ("SSL/Rotation-4way-v1", ["WRONG"]),
        ("SSL/Jigsaw-2x2-v2", ["2,1,4,3"]),
        ("SSL/Jigsaw-2x2-v2", ["no answer here"]),
        ("SSL/Jigsaw-2x2-Hint-v2", ["ORACLE"]),
        ("SSL/Jigsaw-2x2-Hint-v2", ["1,2,3,4", "ORACLE"]),
        ("SSL/Jigsaw-2x2-Hint-v2", ["garbage", "4,3,2,1", "ORACLE"]),
        ("SSL/Rotation-4way-Hint-v2", ["WRONG"] * 8),
    ],
    ids=lambda v: v if isinstance(v, str) else "+".join(v),
)
def test_rollout_reward_equals_the_gym_env(server: str, env_id: str, script: list[str]) -> None:
    env = load_environment(env_id, num_examples=1, seed=3, **KW)
    (task,) = list(env.taskset)
    answer = task.data.answer
    wrong = next(c for c in ("0", "90", "180", "270") if c != answer)
    replies = [{"ORACLE": answer, "WRONG": wrong}.get(r, r) for r in script]
    Scripted.replies, Scripted.bodies = list(replies), []
    trace = rollout(env, task, server)
    expected, env_prompts = play(env_id, task.data.seed, replies)
    assert trace.reward == pytest.approx(expected)
    # the env's feedback and hints came back as the user's next turns, in order
    user_turns = [m["content"] for m in Scripted.bodies[-1]["messages"][1:] if m["role"] == "user"]
    assert user_turns == env_prompts
    assert len(Scripted.bodies) == len(env_prompts) + 1
    first = Scripted.bodies[0]["messages"][0]["content"]
    assert first[0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.slow
def test_the_example_rolls_out_offline() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "examples/verifiers_env.py",
            "--env-id",
            "SSL/Rotation-4way-Hint-v2",
            "--num-examples",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    assert "reward 1.00" in lines[0]  # right at once
    env = gym.make("SSL/Rotation-4way-Hint-v2").unwrapped
    env.reset(seed=0)
    cost = env.retry_cost  # 4 angles, 3 turns: 0.453 (the 200-episode check's price)
    assert f"reward {1 - cost:.2f}" in lines[1]  # wrong, a hint, then right: one retry


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from agents.tiny import build_tiny_model  # torch: only for this test

    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)
    with vllm_server(model, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


@pytest.mark.vllm
@pytest.mark.slow
def test_one_real_rollout_against_vllm_cpu(vllm_url: str) -> None:
    env = load_environment(
        "SSL/Rotation-4way-v1", num_examples=1, seed=0, prompt_style="plain", **KW
    )
    (task,) = list(env.taskset)
    client = vf.EvalClientConfig(base_url=vllm_url, api_key_var="SSL_GYM_TEST_KEY")
    ctx = vf.ModelContext(model="tiny", client=client, sampling=vf.Sampling(max_tokens=8))

    async def run() -> vf.Episode:
        async with env.serving():
            return await env.run_episode(task, ctx)

    episode = asyncio.run(run())
    assert episode.ok, episode.errors
    (trace,) = episode.traces
    (reply,) = trace.assistant_messages
    puzzle_env = gym.make("SSL/Rotation-4way-v1", prompt_style="plain", **KW)
    puzzle_env.reset(seed=task.data.seed)
    verdict = puzzle_env.unwrapped.puzzle.verify(puzzle_env.unwrapped.instance, reply.content)
    assert trace.reward == pytest.approx(verdict.reward)


def test_verifiers_loads_the_plugin_by_its_id_in_a_fresh_process() -> None:
    code = (
        "from verifiers.v1.utils.loaders import environment_class, taskset_class\n"
        "print(taskset_class('ssl_gym_verifiers').__name__,"
        " environment_class('ssl_gym_verifiers').__name__)"
    )
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["PuzzleTaskset", "VerifiersEnv"]
