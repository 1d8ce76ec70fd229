"""TRL: reward functions equal the env's reward; GRPOTrainer logs exactly our rewards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from ssl_gym.adapters.datasets import to_dataset
from ssl_gym.adapters.trl import completion_text, reward_funcs
from ssl_gym.core import format_answer
from ssl_gym.envs import entries

ROOT = Path(__file__).resolve().parents[1]


def test_completion_text_reads_strings_and_conversations() -> None:
    assert completion_text("<answer>90</answer>") == "<answer>90</answer>"
    assert completion_text([{"role": "assistant", "content": "9"}]) == "9"
    parts = [{"type": "text", "text": "<answer>"}, {"type": "image"}, {"type": "text", "text": "B"}]
    assert completion_text([{"role": "assistant", "content": parts}]) == "<answer>B"
    assert completion_text([{"role": "tool", "content": "x"}, {"role": "assistant"}]) == ""
    with pytest.raises(TypeError, match="str or a list of messages"):
        completion_text(42)


@pytest.mark.parametrize("env_id", [e.id for e in entries()][::4])
def test_reward_equals_the_envs_for_string_and_chat_completions(env_id: str) -> None:
    ds = to_dataset(env_id, n=2, seed=3, split="test")
    env = gym.make(env_id).unwrapped
    fmt = env.puzzle.config.answer_format
    rng = np.random.default_rng(0)
    texts, infos, expected = [], [], []
    for info in ds["info"]:
        seed = json.loads(info)["seed"]
        env.reset(seed=seed)
        guess = format_answer(env.puzzle.random_answer(env.instance, rng), fmt)
        for text in (env.puzzle.oracle(env.instance), guess, "", "<answer>"):
            env.reset(seed=seed)
            texts.append(text)
            infos.append(info)
            expected.append(env.step(text)[1])
    [reward] = reward_funcs(env_id)
    assert reward.__name__ == "ssl_gym_reward"
    assert reward(None, texts, info=infos) == expected
    chats = [[{"role": "assistant", "content": t}] for t in texts]
    assert reward(None, chats, info=infos, answer=["ignored"] * len(texts)) == expected
    assert 1.0 in expected


def test_components_add_up_to_the_reward() -> None:
    over = {"answer_format": "boxed", "format_weight": 0.25}
    ds = to_dataset("SSL/OddTile-K4-v1", n=3, overrides=over)
    texts = [f"<think>.</think> \\boxed{{{a}}}" for a in ds["answer"]] + ["\\boxed{Z}", "A"] * 3
    infos = list(ds["info"]) * 3
    [whole] = reward_funcs("SSL/OddTile-K4-v1")
    acc, fmt = reward_funcs("SSL/OddTile-K4-v1", components=True)
    assert (acc.__name__, fmt.__name__) == ("ssl_gym_accuracy", "ssl_gym_format")
    parts = zip(acc(None, texts, info=infos), fmt(None, texts, info=infos), strict=True)
    total = [a + f for a, f in parts]
    assert total == whole(None, texts, info=infos)
    assert whole(None, texts, info=infos)[:3] == [1.25] * 3


def test_reward_rejects_other_ids_and_missing_info() -> None:
    info = to_dataset("SSL/Rotation-4way-v1", n=1)["info"]
    [reward] = reward_funcs("SSL/Jigsaw-2x2-v2")
    with pytest.raises(ValueError, match="reached a reward"):
        reward(None, ["90"], info=info)
    with pytest.raises(ValueError, match="info"):
        reward(None, ["90"])
    with pytest.raises(ValueError, match="multi-turn"):
        reward_funcs("SSL/Rotation-4way-Hint-v2")


@pytest.mark.slow
def test_grpo_trainer_logs_our_rewards(tmp_path: Path) -> None:
    from transformers import AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from agents.tiny import build_tiny_model

    env_id = "SSL/Rotation-4way-v1"
    over = {"answer_format": "plain", "angular_credit": True, "size": 64}
    model = str(build_tiny_model(tmp_path / "model", seed=0))
    dataset = to_dataset(env_id, n=4, seed=0, overrides=over)
    [ours] = reward_funcs(env_id)
    calls: list[tuple[list[Any], list[str]]] = []

    def ssl_gym_reward(prompts: Any, completions: list[Any], **kwargs: Any) -> list[float]:
        calls.append((list(completions), list(kwargs["info"])))
        return ours(prompts, completions, **kwargs)

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
        max_completion_length=8, max_steps=2, logging_steps=1, use_cpu=True, bf16=False,
        report_to="none", save_strategy="no", seed=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[ssl_gym_reward],
        args=args,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(model),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/ssl_gym_reward/mean" in h]
    assert len(logs) == len(calls) == 2
    env = gym.make(env_id, **over).unwrapped
    for log, (completions, infos) in zip(logs, calls, strict=True):
        assert len(completions) == 8
        rewards = []
        for completion, info in zip(completions, infos, strict=True):
            env.reset(seed=json.loads(info)["seed"])
            rewards.append(env.step(completion_text(completion))[1])
        assert log["rewards/ssl_gym_reward/mean"] == pytest.approx(np.mean(rewards), abs=1e-6)
        assert log["reward"] == pytest.approx(np.mean(rewards), abs=1e-6)
    assert any(log["reward"] > 0 for log in logs)  # some completions scored, not all 0


@pytest.mark.slow
def test_trl_example_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, "examples/trl_grpo.py", "--steps", "1", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 1: reward" in done.stdout
