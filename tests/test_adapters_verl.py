"""verl and EasyR1: the scorers give the env's reward for every id and every kind of answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest

from ssl_gym.adapters import easyr1, verl
from ssl_gym.adapters._records import build_records
from ssl_gym.adapters.export import export
from ssl_gym.core import format_answer
from ssl_gym.envs import entries

ROOT = Path(__file__).resolve().parents[1]
IDS = [e.id for e in entries()]


def completions(env: gym.Env, seed: int) -> list[str]:
    """Oracle, random, wrong, and malformed completions for the env's current instance."""
    puzzle, inst = env.unwrapped.puzzle, env.unwrapped.instance
    fmt = puzzle.config.answer_format
    rng = np.random.default_rng(seed)
    randoms = [puzzle.random_answer(inst, rng) for _ in range(8)]
    wrong = next((a for a in randoms if puzzle.verify(inst, format_answer(a, fmt)).score < 1), "")
    return [
        puzzle.oracle(inst),
        format_answer(randoms[0], fmt),
        format_answer(wrong, fmt),
        f"<answer>{inst.answer}",  # unclosed
        f"<answer>{inst.answer}</answer> <answer>{randoms[1]}</answer>",  # two blocks
        "\\boxed{" + inst.answer + "}",
        inst.answer,
        "",
        "no idea" * 400,
    ]


@pytest.mark.parametrize("env_id", IDS)
def test_scores_equal_the_envs_reward(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    for record in build_records(env_id, 2, seed=11, split="train"):
        row, erow = verl.verl_row(record), easyr1.easyr1_row(record)
        env.reset(seed=record.seed)
        texts = completions(env, record.seed)
        batch = easyr1.compute_score(
            [{"response": t, "ground_truth": erow["answer"], "response_length": 1} for t in texts]
        )
        for text, scores in zip(texts, batch, strict=True):
            env.reset(seed=record.seed)
            _, reward, _, _, info = env.step(text)
            got = verl.compute_score(
                row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
            )
            assert got == reward, (text, got, reward)
            assert scores == {
                "overall": reward,
                "format": float(info["format_ok"]),
                "accuracy": info["score"],
            }
        assert verl.compute_score(record.id, texts[0], record.answer, row["extra_info"]) == 1.0


@pytest.mark.parametrize("fmt", ["verl", "easyr1"])
def test_scoring_rows_read_back_from_parquet_with_overrides(fmt: str, tmp_path: Path) -> None:
    env_id, over = "SSL/Position-2x2-v2", {"answer_format": "boxed", "format_weight": 0.5}
    out = export(env_id, tmp_path / fmt, n=4, n_test=0, seed=1, format=fmt, overrides=over,
                 progress=False)  # fmt: skip
    rows = pq.read_table(out / "train.parquet").to_pylist()
    env = gym.make(env_id, **over).unwrapped
    rewards = []
    for row in rows:
        payload = json.loads(row["extra_info"]["ssl_gym"] if fmt == "verl" else row["answer"])
        env.reset(seed=payload["seed"])
        for text in completions(env, 0):
            env.reset(seed=payload["seed"])
            reward = env.step(text)[1]
            if fmt == "verl":
                got = verl.compute_score(
                    row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
                )
            else:
                got = easyr1.compute_score({"response": text, "ground_truth": row["answer"]})[
                    "overall"
                ]
            assert got == reward
            rewards.append(reward)
    assert 1.5 in rewards and 0.5 in rewards  # accuracy and format, both weighted


def test_verl_prompt_has_one_image_placeholder_per_image() -> None:
    record = next(build_records("SSL/Similarity-K4-v2", 1))
    row = verl.verl_row(record)
    content = row["prompt"][0]["content"]
    assert content.count("<image>") == len(record.images) == len(row["images"]) == 5
    assert content == "<image>" * 5 + record.prompt
    assert easyr1.easyr1_row(record)["problem"] == content


def test_scorers_reject_rows_that_are_not_theirs() -> None:
    record = next(build_records("SSL/Rotation-4way-v1", 1))
    row = verl.verl_row(record)
    with pytest.raises(ValueError, match="does not match"):
        verl.compute_score("SSL/Jigsaw-2x2-v2", "90", record.answer, row["extra_info"])
    with pytest.raises(ValueError, match="extra_info"):
        verl.compute_score(record.id, "90", record.answer, None)
    with pytest.raises(ValueError, match="different puzzles"):
        verl.compute_score(record.id, "90", "not the answer", row["extra_info"])
    with pytest.raises(ValueError, match="not an ssl_gym payload"):
        easyr1.compute_score([{"response": "90", "ground_truth": '{"answer": "90"}'}])
    with pytest.raises(ValueError, match="ground_truth"):
        easyr1.compute_score([{"response": "90"}])


@pytest.mark.parametrize("script", ["verl_export.py", "easyr1_reward.py"])
def test_example_runs(script: str, tmp_path: Path) -> None:
    cmd = [sys.executable, f"examples/{script}", "--n", "8", "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "oracle reward 1.000" in done.stdout
