"""TRL multi-turn: GRPOTrainer plays -Hint ids through HintRollout; rewards are the env's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from ssl_gym.adapters.trl import completion_text
from ssl_gym.adapters.trl_env import (
    KEY,
    Episode,
    HintRollout,
    PuzzleEpisode,
    episode_reward,
    row_key,
    to_hint_dataset,
)

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "SSL/Rotation-4way-Hint-v2"
OVER = {"answer_format": "plain", "size": 64}
ANGLES = ("0", "90", "180", "270")


def replay(env_id: str, seed: int, replies: list[str]) -> list[float]:
    """The step rewards of ``replies`` through a fresh env; the episode must end on the last."""
    env = gym.make(env_id, **OVER).unwrapped
    env.reset(seed=seed)
    rewards, done = [], False
    for reply in replies:
        assert not done, "the replay ended before its last reply"
        _, reward, done, _, _ = env.step(reply)
        rewards.append(float(reward))
    assert done, "the replay did not end the episode"
    return rewards


def test_episode_wrong_then_right_is_the_envs() -> None:
    game = PuzzleEpisode(ENV_ID, OVER)
    for seed in (0, 1, 2):
        game.reset(seed)
        assert game.env.instance is not None
        answer = game.env.instance.answer
        wrong = next(a for a in ANGLES if a != answer)
        text = game.step(wrong)
        assert text is not None and "Hint:" in text and not game.done
        assert game.step(answer) is None and game.done
        ep = game.episode
        assert (ep.replies, ep.turns, ep.forced) == ([wrong, answer], 2, 0)
        assert ep.rewards == replay(ENV_ID, seed, [wrong, answer])
        assert ep.reward == pytest.approx(1.0 - game.env.retry_cost)
        assert [m["role"] for m in ep.messages()] == ["user", "assistant", "user", "assistant"]
        assert ep.messages()[2]["content"] == text
        assert ep.image_hints == 1  # the first hint draws a line on the picture
    game.reset(3)
    assert game.env.instance is not None
    assert game.step(game.env.instance.answer) is None
    assert (game.episode.turns, game.episode.reward) == (1, 1.0)


def test_close_plays_empty_answers_like_the_env() -> None:
    game = PuzzleEpisode(ENV_ID, OVER)
    game.reset(5)
    assert game.step("no idea") is not None
    game.close()
    ep = game.episode
    assert game.done and ep.forced == game.env.turns - 1 and ep.turns == 1
    assert ep.replies == ["no idea"] + [""] * ep.forced
    assert ep.rewards == replay(ENV_ID, 5, ep.replies)
    assert ep.reward < 0  # wrong answers cost the hints
    with pytest.raises(RuntimeError, match="reset"):
        PuzzleEpisode(ENV_ID).step("90")


def test_unknown_ids_are_one_line_value_errors() -> None:
    for bad in ("SSL/Nope-Hint-v1", "SSL/Mix-v1"):
        with pytest.raises(ValueError) as err:
            PuzzleEpisode(bad)
        assert "\n" not in str(err.value)
        with pytest.raises(ValueError) as err:
            to_hint_dataset(bad, n=1)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="max_turn_tokens"):
        HintRollout(max_turn_tokens=0)
    with pytest.raises(ValueError, match="to_hint_dataset"):
        row_key([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="HintRollout"):
        episode_reward(None, ["a"])


def test_the_module_imports_no_trl() -> None:
    code = "import sys, ssl_gym.adapters.trl_env; assert 'trl' not in sys.modules, 'trl'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_rows_are_the_hint_envs_first_observation() -> None:
    ds = to_hint_dataset(ENV_ID, n=3, seed=1, overrides=OVER)
    env = gym.make(ENV_ID, **OVER).unwrapped
    for row in ds:
        key = row_key(row["prompt"])
        assert row["data_source"] == key["id"] == ENV_ID
        assert key["seed"] == json.loads(row["info"])["seed"]
        obs, info = env.reset(seed=key["seed"])
        assert row["prompt"][0]["content"] == obs["prompt"] and row["answer"] == info["answer"]
        shown = [np.asarray(im.convert("RGB")) for im in row["images"]]
        assert all(np.array_equal(a, b) for a, b in zip(shown, obs["images"], strict=True))


# --- the rollout with scripted answers: a stand-in for GRPOTrainer's generation ----------


class ScriptedTrainer:
    """The attributes HintRollout reads of GRPOTrainer, generating scripted answers.

    Each episode (found by its first image) answers ``script[answer][turn]``; the
    tokenization is the tiny model's processor, as TRL's ``_tokenize_prompts`` does it.
    """

    def __init__(self, processor: Any, script: dict[str, list[str]], budget: int) -> None:
        self.processing_class = processor
        self.max_completion_length = budget
        self.script = script
        self.answers: dict[bytes, str] = {}
        self.turn: dict[bytes, int] = {}
        self.calls: list[int] = []

    def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], list[Any], dict]:
        out = self.processing_class.apply_chat_template(
            conversation=prompts, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        images = [[p["image"] for p in pr[0]["content"] if p["type"] == "image"] for pr in prompts]
        return out["input_ids"], images, {}

    def _generate_single_turn(
        self, ids: list[list[int]], images: list[Any], fields: dict, n: int
    ) -> tuple[list[list[int]], None]:
        assert n == 1 and len(ids) == len(images)
        self.calls.append(len(ids))
        tok = self.processing_class.tokenizer
        out = []
        for imgs in images:
            key = imgs[0].tobytes()
            turn = self.turn.get(key, 0)
            self.turn[key] = turn + 1
            text = self.script[self.answers[key]][turn]
            out.append([*tok.encode(" " + text, add_special_tokens=False), tok.eos_token_id])
        return out, None


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from agents.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


def _scripted_run(model: str, budget: int) -> tuple[Any, ScriptedTrainer, list[Any]]:
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    ds = to_hint_dataset(ENV_ID, n=4, seed=0, overrides=OVER)
    # each episode: a wrong angle, then an unreadable reply, then the right answer
    script = {a: [ANGLES[(ANGLES.index(a) + 1) % 4], "maybe", a] for a in ANGLES}
    trainer = ScriptedTrainer(AutoProcessor.from_pretrained(model), script, budget)
    prompts = []
    for row in ds:
        trainer.answers[row["images"][0].tobytes()] = row["answer"]
        prompts.append(prepare_multimodal_messages(row["prompt"], images=row["images"]))
    return HintRollout(max_turn_tokens=16)(prompts, trainer), trainer, list(ds)


def _rotation_cost() -> float:
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    return float(env.retry_cost)  # 4 angles, 3 turns: the same for every puzzle


ROTATION_COST = _rotation_cost()


def test_rollout_plays_every_turn_and_masks_the_envs_replies(tiny_model: str) -> None:
    out, trainer, rows = _scripted_run(tiny_model, budget=2000)
    tok = trainer.processing_class.tokenizer
    assert trainer.calls == [4, 4, 4]  # three answers each, batched per turn
    episodes: list[Episode] = out["ssl_gym_episode"]
    layouts = zip(out["completion_ids"], out["env_mask"], strict=True)
    for row, ep, (ids, mask) in zip(rows, episodes, layouts, strict=True):
        assert ep.seed == row_key(row["prompt"])["seed"] and ep.turns == 3 and ep.forced == 0
        assert ep.rewards == replay(ENV_ID, ep.seed, ep.replies)
        assert ep.replies[-1].strip() == row["answer"]
        assert ep.reward == pytest.approx(1.0 - 2 * ROTATION_COST)  # two retries
        assert len(ids) == len(mask)
        pairs = list(zip(ids, mask, strict=True))
        model_text = tok.decode([t for t, m in pairs if m], skip_special_tokens=True)
        env_text = tok.decode([t for t, m in pairs if not m], skip_special_tokens=True)
        assert model_text == "".join(ep.replies)
        assert all(f in env_text for f in ep.feedback) and len(ep.feedback) == 2
        assert "User:" in env_text and env_text.rstrip().endswith("Assistant:")
    assert out["logprobs"] is None
    assert out["prompt_ids"] == trainer._tokenize_prompts(_prompts(rows))[0]
    assert episode_reward(None, out["completion_ids"], ssl_gym_episode=episodes) == [
        e.reward for e in episodes
    ]


def _prompts(rows: list[Any]) -> list[Any]:
    from trl.data_utils import prepare_multimodal_messages

    return [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]


def test_rollout_closes_episodes_the_budget_cannot_hold(tiny_model: str) -> None:
    out, trainer, _ = _scripted_run(tiny_model, budget=12)
    assert trainer.calls == [4]  # no room for the env's reply: one answer each
    for ep, ids in zip(out["ssl_gym_episode"], out["completion_ids"], strict=True):
        assert ep.turns == 1 and ep.forced == 2 and ep.replies[1:] == ["", ""]
        assert ep.rewards == replay(ENV_ID, ep.seed, ep.replies)
        assert len(ids) <= 12


def test_rollout_rejects_rows_of_another_puzzle(tiny_model: str) -> None:
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    row = to_hint_dataset(ENV_ID, n=1, overrides=OVER)[0]
    other = to_hint_dataset(ENV_ID, n=2, overrides=OVER)[1]
    row["prompt"][0][KEY] = other["prompt"][0][KEY]  # the key of another seed
    trainer = ScriptedTrainer(AutoProcessor.from_pretrained(tiny_model), {}, 100)
    prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
    with pytest.raises(ValueError, match="first observation"):
        HintRollout()([prompt], trainer)
    with pytest.raises(TypeError, match="GRPOTrainer"):
        HintRollout()([prompt], object())


# --- a real GRPOTrainer run --------------------------------------------------------------


@pytest.mark.slow
def test_grpo_trainer_plays_hinted_episodes(tmp_path: Path, tiny_model: str) -> None:
    from transformers import AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    dataset = to_hint_dataset(ENV_ID, n=4, seed=0, overrides=OVER)
    seeds = {row_key(p)["seed"] for p in dataset["prompt"]}
    calls: list[tuple[list[Any], list[Episode]]] = []

    def ssl_gym_reward(prompts: Any, completions: list[Any], **kwargs: Any) -> list[float]:
        calls.append((list(completions), list(kwargs["ssl_gym_episode"])))
        return episode_reward(prompts, completions, **kwargs)

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
        max_completion_length=512, max_steps=2, logging_steps=1, use_cpu=True, bf16=False,
        report_to="none", save_strategy="no", seed=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=tiny_model,
        reward_funcs=[ssl_gym_reward],
        args=args,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(tiny_model),
        rollout_func=HintRollout(max_turn_tokens=8),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/ssl_gym_reward/mean" in h]
    assert len(logs) == len(calls) == 2
    wrong_first = 0
    for log, (completions, episodes) in zip(logs, calls, strict=True):
        assert len(completions) == len(episodes) == 8
        rewards = []
        for completion, ep in zip(completions, episodes, strict=True):
            assert ep.env_id == ENV_ID and ep.seed in seeds
            steps = replay(ENV_ID, ep.seed, ep.replies)
            rewards.append(sum(steps))
            # the first answer was wrong: the env replied, and the model answered again
            if len(steps) > 1:
                wrong_first += 1
                assert ep.turns > 1 and ep.forced == 0
            text = completion_text(completion)
            assert all(f in text for f in ep.feedback)  # the env's replies, in the trained tokens
        assert log["rewards/ssl_gym_reward/mean"] == pytest.approx(np.mean(rewards), abs=1e-6)
        assert log["reward"] == pytest.approx(np.mean(rewards), abs=1e-6)
        assert log["ssl_gym/turns"] == pytest.approx(np.mean([e.turns for e in episodes]))
    assert wrong_first > 0
    ep = next(e for _, eps in calls for e in eps if e.turns > 1)
    print(f"\n{ep.env_id} seed {ep.seed}: rewards {ep.rewards}, reward {ep.reward}")
    for message in ep.messages():
        print(f"  {message['role']}: {message['content']!r}")


@pytest.mark.slow
def test_trl_hinted_example_runs(tmp_path: Path) -> None:
    args = ["--steps", "1", "--n", "2", "--out", str(tmp_path)]
    cmd = [sys.executable, "examples/trl_hinted.py", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 1: reward" in done.stdout and "  user: " in done.stdout
