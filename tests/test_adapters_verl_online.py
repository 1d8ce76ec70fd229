"""verl online: PuzzleDataset and PuzzleAgentLoop through verl's own code, on the CPU.

The tiny Qwen2.5-VL checkpoint stands in for the policy: its tokenizer and processor are
the real family's, and a stand-in server manager returns the token ids of chosen answers
(the interface verl's vLLM and SGLang servers implement).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopWorker,
    DictConfigWrap,
    ToolListWrap,
    _agent_loop_registry,
)
from verl.protocol import DataProto
from verl.trainer.ppo.reward import load_reward_manager
from verl.trainer.ppo.utils import create_rl_dataset
from verl.utils.dataset.rl_dataset import collate_fn, get_dataset_class
from verl.workers.rollout.replica import TokenOutput

import ssl_gym.adapters.verl as verl_adapter
from agents.models import load_processor
from agents.tiny import build_tiny_model
from ssl_gym.adapters._records import build_records
from ssl_gym.adapters.verl_online import AGENT_NAME, PuzzleAgentLoop, PuzzleDataset
from ssl_gym.seeds import RECORD_SEED_BASE, SEED_LIMIT, eval_seeds

ROTATION, ROTATION_HINT = "SSL/Rotation-4way-v1", "SSL/Rotation-4way-Hint-v2"
POSITION, JIGSAW = "SSL/Position-2x2-v2", "SSL/Jigsaw-2x2-v2"
END = "<|im_end|>"


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen", arch="qwen2_5_vl")
    return load_processor(model)


def data_config(**ssl_gym: Any) -> Any:
    return OmegaConf.create(
        {
            "custom_cls": {"path": "pkg://ssl_gym.adapters.verl_online", "name": "PuzzleDataset"},
            "filter_overlong_prompts": False,
            "shuffle": False,
            "ssl_gym": ssl_gym,
        }
    )


def dataset(processor: Any, split: str = "train", max_samples: int = -1, **ssl_gym: Any) -> Any:
    """The dataset as verl's trainer builds it (``create_rl_dataset`` on ``data.*``)."""
    config = data_config(**ssl_gym)
    return create_rl_dataset(
        f"ssl_gym:{split}", config, processor.tokenizer, processor, max_samples=max_samples
    )


def image_parts(raw_prompt: list[dict[str, Any]]) -> list[np.ndarray]:
    return [
        np.asarray(part["image"])
        for message in raw_prompt
        for part in message["content"]
        if part["type"] == "image"
    ]


def reset(env_id: str, seed: int, **overrides: Any) -> tuple[gym.Env, dict[str, Any]]:
    env = gym.make(env_id, **overrides).unwrapped
    obs, _ = env.reset(seed=seed)
    return env, obs


# --- the dataset -----------------------------------------------------------------------


def test_verl_builds_the_dataset_and_collates_its_rows(processor: Any) -> None:
    ds = dataset(processor, ids=[ROTATION_HINT, POSITION], train_size=6, seed=3)
    assert get_dataset_class(data_config(ids=[ROTATION], train_size=1)) is PuzzleDataset
    assert isinstance(ds, PuzzleDataset) and len(ds) == 6
    batch = collate_fn([ds[i] for i in range(4)])
    assert batch["dummy_tensor"].shape == (4, 1)
    assert list(batch["data_source"]) == [ROTATION_HINT, POSITION] * 2
    assert list(batch["agent_name"]) == [AGENT_NAME] * 4
    assert list(batch["index"]) == [0, 0, 1, 1]
    for i in range(4):
        info = batch["extra_info"][i]
        env, obs = reset(batch["data_source"][i], info["seed"])
        assert batch["reward_model"][i]["ground_truth"] == env.instance.answer
        raw = batch["raw_prompt"][i]
        assert [m["role"] for m in raw] == ["user"]
        texts = [p["text"] for p in raw[0]["content"] if p["type"] == "text"]
        assert texts == [obs["prompt"]]
        shown = image_parts(raw)
        assert len(shown) == len(obs["images"])
        assert all(np.array_equal(a, b) for a, b in zip(shown, obs["images"], strict=True))
    proto = DataProto.from_single_dict(batch)  # as the trainer turns a batch into its input
    assert len(proto) == 4 and "raw_prompt" in proto.non_tensor_batch
    # the processor renders one image placeholder run per image
    text = processor.apply_chat_template(batch["raw_prompt"][1], add_generation_prompt=True)
    assert text.count("<|vision_start|>") == len(image_parts(batch["raw_prompt"][1])) == 2


def test_rows_are_the_exports_records_and_rebuild_identically(processor: Any) -> None:
    ids = [ROTATION, JIGSAW]
    ds = dataset(processor, ids=ids, train_size=6, seed=5)
    again = dataset(processor, ids=ids, train_size=6, seed=5)
    records = {i: list(build_records(i, 3, seed=5, split="train")) for i in ids}
    for index in range(6):
        row = ds.dataframe[index]
        want = verl_adapter.verl_row(records[ids[index % 2]][index // 2])
        for key in ("data_source", "prompt", "images", "ability", "reward_model"):
            assert row[key] == want[key], key
        assert row["extra_info"]["ssl_gym"] == want["extra_info"]["ssl_gym"]
        assert row["extra_info"]["seed"] == want["extra_info"]["seed"]
        assert again.dataframe[index] == ds.dataframe[index] == row
        first, second = (
            image_parts(ds[index]["raw_prompt"]),
            image_parts(again[index]["raw_prompt"]),
        )
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    other = dataset(processor, ids=ids, train_size=6, seed=6)
    assert other.dataframe[0]["images"] != ds.dataframe[0]["images"]
    hinted = dataset(processor, ids=[ROTATION_HINT], train_size=2, seed=5)
    assert hinted.dataframe[1]["images"] == ds.dataframe[2]["images"]  # same puzzle, hinted


def test_validation_rows_are_the_held_out_puzzles(processor: Any) -> None:
    ids = [ROTATION, POSITION]
    train = dataset(processor, ids=ids, train_size=40, val_size=8, seed=2)
    val = dataset(processor, "validation", ids=ids, train_size=40, val_size=8, seed=2)
    assert len(val) == 8
    val_seeds = [val.dataframe[i]["extra_info"]["seed"] for i in range(8)]
    assert val_seeds == [eval_seeds(ids[i % 2], 4, 2)[i // 2] for i in range(8)]
    train_seeds = {train.dataframe[i]["extra_info"]["seed"] for i in range(40)}
    assert all(SEED_LIMIT <= s < RECORD_SEED_BASE for s in val_seeds)
    assert all(s >= RECORD_SEED_BASE for s in train_seeds)
    assert not train_seeds & set(val_seeds)
    assert {val.dataframe[i]["extra_info"]["split"] for i in range(8)} == {"validation"}
    assert len(dataset(processor, "validation", ids=ids, train_size=1)) == 200  # 100 per id
    assert len(dataset(processor, ids=ids, train_size=40, max_samples=5)) == 5


def test_several_ids_take_turns_by_row(processor: Any) -> None:
    ids = [ROTATION, POSITION, JIGSAW]
    ds = dataset(processor, ids=ids, train_size=7, seed=0)
    rows = [ds.dataframe[i] for i in range(7)]
    assert [r["data_source"] for r in rows] == [*ids, *ids, ROTATION]
    assert [r["extra_info"]["index"] for r in rows] == [0, 0, 0, 1, 1, 1, 2]
    for row in rows:  # each row is its own id's puzzle
        _, obs = reset(row["data_source"], row["extra_info"]["seed"])
        assert row["prompt"][0]["content"].endswith(obs["prompt"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ids": ["SSL/Nope-v1"]}, "'SSL/Nope-v1' is not a registered env id"),
        ({"ids": ["SSL/Mix-SSL4RL-v1"]}, "not a single-puzzle id"),
        ({"overrides": {"bogus": 1}}, r"unknown setting\(s\) \['bogus'\]"),
        ({"overrides": {"max_turns": 2}}, "env settings"),
        ({"train_size": 0}, "train_size must be >= 1"),
        ({"colour": "red"}, r"unknown data.ssl_gym keys \['colour'\]"),
        ({"ids": [ROTATION_HINT], "agent_name": None}, "multi-turn"),
        ({"files": "train.parquet"}, "data files must be one of"),
        ({"train_size": None, "shuffle": True}, "cannot be shuffled"),
        ({"filter_overlong_prompts": True}, "filter_overlong_prompts=False"),
        ({"no_train_size": True}, "train_size is required"),
    ],
)
def test_bad_settings_fail_with_one_line_errors(
    processor: Any, change: dict[str, Any], match: str
) -> None:
    change = dict(change)
    files = change.pop("files", "ssl_gym:train")
    settings: dict[str, Any] = {"ids": [ROTATION], "train_size": 4}
    if change.pop("no_train_size", False):
        del settings["train_size"]
    config = data_config(**settings)
    for key in ("shuffle", "filter_overlong_prompts"):
        if key in change:
            config[key] = change.pop(key)
    config.ssl_gym.update(change)
    with pytest.raises(ValueError, match=match) as err:
        PuzzleDataset(files, processor.tokenizer, config, processor)
    assert "\n" not in str(err.value)


# --- the agent loop --------------------------------------------------------------------


class StubServer:
    """verl's server manager interface: ``generate`` returns the next scripted answer's ids."""

    def __init__(self, tokenizer: Any, answers: list[str] | None = None, default: str = "") -> None:
        self.tokenizer, self.answers, self.default = tokenizer, list(answers or []), default
        self.calls: list[dict[str, Any]] = []
        self.returned: list[list[int]] = []

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        self.calls.append(
            {"prompt_ids": list(prompt_ids), "images": list(image_data or []), **sampling_params}
        )
        text = self.answers.pop(0) if self.answers else self.default
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        ids.append(self.tokenizer.convert_tokens_to_ids(END))
        self.returned.append(ids)
        return TokenOutput(token_ids=ids)


def trainer_config(data: Any, response_length: int = 2048) -> Any:
    rollout = {
        "prompt_length": 1024,
        "response_length": response_length,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": -1,
        "calculate_log_probs": False,
        "full_determinism": False,
        "val_kwargs": {"top_p": 1.0, "top_k": -1, "temperature": 0},
        "agent": {"default_agent_loop": "single_turn_agent"},
    }
    return OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}, "data": data})


def play(
    processor: Any, row: dict[str, Any], server: StubServer, response_length: int = 2048
) -> Any:
    """``PuzzleAgentLoop.run`` on a row, the loop built as verl's worker builds it."""
    data = data_config(ids=[row["data_source"]], train_size=1)
    config = trainer_config(data, response_length)
    kwargs = {k: v for k, v in row.items() if k not in ("dummy_tensor", "agent_name")}

    async def run() -> Any:
        loop = hydra.utils.instantiate(
            _agent_loop_registry[row["agent_name"]],
            trainer_config=DictConfigWrap(config),
            server_manager=server,
            tokenizer=processor.tokenizer,
            processor=processor,
            hf_model_type="qwen2_5_vl",
            dataset_cls=get_dataset_class(data),
            data_config=DictConfigWrap(data),
            tools=ToolListWrap([]),
        )
        assert isinstance(loop, PuzzleAgentLoop)
        return await loop.run({"temperature": 1.0, "logprobs": False}, priority=0, **kwargs)

    return asyncio.run(run())


def replay(env_id: str, seed: int, texts: list[str]) -> tuple[list[float], list[str], Any, Any]:
    """Step a fresh env with the same texts: rewards, replies, last info, the env."""
    env, _ = reset(env_id, seed)
    rewards, replies, info = [], [], {}
    for i, text in enumerate(texts):
        obs, reward, done, _, info = env.step(text)
        rewards.append(reward)
        assert done == (i == len(texts) - 1), "the script must end the episode at its last answer"
        if not done:
            replies.append(obs)
    return rewards, replies, info, env


def runs(mask: list[int], value: int) -> list[tuple[int, int]]:
    """The [start, end) spans where ``mask`` equals ``value``."""
    spans, start = [], None
    for i, m in enumerate([*mask, 1 - value]):
        if m == value and start is None:
            start = i
        elif m != value and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_the_agent_loop_is_in_verls_registry() -> None:
    entry = _agent_loop_registry[AGENT_NAME]
    assert hydra.utils.get_class(entry["_target_"]) is PuzzleAgentLoop
    assert issubclass(PuzzleAgentLoop, AgentLoopBase)


@pytest.mark.parametrize("script", ["wrong-then-right", "all-wrong"])
def test_a_hinted_episode_through_the_agent_loop(processor: Any, script: str) -> None:
    ds = dataset(processor, ids=[ROTATION_HINT], train_size=2, seed=4)
    row = ds[1]
    seed, answer = row["extra_info"]["seed"], row["reward_model"]["ground_truth"]
    wrong = [a for a in ("0", "90", "180", "270") if a != answer]
    picks = [wrong[0], answer] if script == "wrong-then-right" else wrong
    texts = [f"<think>looking</think> <answer>{a}</answer>" for a in picks]
    server = StubServer(processor.tokenizer, texts)
    out = play(processor, row, server)
    rewards, replies, info, env = replay(ROTATION_HINT, seed, texts)

    # the reward is the env's, with the retry cost of each wrong answer
    assert (
        out.reward_score
        == rewards[-1]
        == pytest.approx(
            (1.0 if script == "wrong-then-right" else 0.0) - env.retry_cost * (len(texts) - 1)
        )
    )
    assert out.num_turns == 2 * len(texts)  # user, assistant, user (env), assistant, ...
    assert out.extra_fields["turn_scores"] == info["turn_scores"]
    # the first prompt is the processor's own rendering of the row
    raw = list(row["raw_prompt"])
    text = processor.apply_chat_template(raw, add_generation_prompt=True, tokenize=False)
    images = [part for m in raw for part in m["content"] if part["type"] == "image"]
    want = processor(text=[text], images=[p["image"] for p in images], return_tensors="pt")[
        "input_ids"
    ][0]
    assert out.prompt_ids == want.tolist()
    # the model's tokens are trained (mask 1), the env's replies are not (mask 0)
    mask, response = out.response_mask, out.response_ids
    assert len(mask) == len(response)
    assert [t for t, m in zip(response, mask, strict=True) if m == 1] == [
        t for ids in server.returned for t in ids
    ]
    env_spans = runs(mask, 0)
    assert len(env_spans) == len(texts) - 1 == len(replies)
    for (start, end), obs in zip(env_spans, replies, strict=True):
        reply = processor.tokenizer.decode(response[start:end])
        assert obs["prompt"] in reply and reply.count("<|vision_start|>") == len(obs["images"])
        assert "<answer>" not in reply.split("Try again.")[0]  # no model text in the env's part
    # every turn sees the images so far: the row's, then each hint's marked images
    assert [len(c["images"]) for c in server.calls] == [1 + i for i in range(len(texts))]
    hint_images = out.multi_modal_data["images"][1:]
    marked = [im for obs in replies for im in obs["images"]]
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(hint_images, marked, strict=True))
    assert not np.array_equal(marked[0], image_parts(raw)[0])  # the hint drew on the image
    # the budget shrinks by what the episode already holds
    assert server.calls[0]["max_tokens"] == 2048
    assert server.calls[1]["max_tokens"] == 2048 - len(server.returned[0]) - (
        env_spans[0][1] - env_spans[0][0]
    )
    print(f"\n{script} episode of {ROTATION_HINT} (seed {seed}, answer {answer}):")
    for i, (t, r) in enumerate(zip(texts, rewards, strict=True)):
        print(f"  assistant: {t!r} -> reward {r}")
        if i < len(replies):
            print(f"  env (user): {replies[i]['prompt']!r}")
    print(f"  reward_score {out.reward_score}, num_turns {out.num_turns}")


def test_an_episode_cut_short_forfeits_its_remaining_answers(processor: Any) -> None:
    ds = dataset(processor, ids=[ROTATION_HINT], train_size=1, seed=4)
    row = ds[0]
    wrong = "0" if row["reward_model"]["ground_truth"] != "0" else "90"
    texts = [f"<answer>{wrong}</answer>"]
    server = StubServer(processor.tokenizer, texts)
    out = play(processor, row, server, response_length=40)  # no room for the env's reply
    rewards, _, _, env = replay(ROTATION_HINT, row["extra_info"]["seed"], [*texts, "", ""])
    assert len(server.calls) == 1
    assert out.reward_score == rewards[-1] == pytest.approx(-2 * env.retry_cost)
    assert out.num_turns == 2 and out.extra_fields["ssl_gym_forfeited"] == 2
    assert out.response_mask == [1] * len(server.returned[0]) == [1] * len(out.response_ids)


def test_verls_worker_batches_the_episodes(processor: Any) -> None:
    """``AgentLoopWorker.generate_sequences`` on collated rows, as the trainer calls it."""
    data = data_config(ids=[ROTATION_HINT, POSITION], train_size=2, seed=1)
    ds = create_rl_dataset("ssl_gym:train", data, processor.tokenizer, processor)
    batch = DataProto.from_single_dict(collate_fn([ds[0], ds[1]]))
    config = trainer_config(data)
    text = "<answer>no idea</answer>"
    server = StubServer(processor.tokenizer, default=text)
    # the attributes AgentLoopWorker.__init__ sets (verl 0.9.1), without its model loading
    worker = AgentLoopWorker.__new__(AgentLoopWorker)
    worker.config, worker.rollout_config = config, config.actor_rollout_ref.rollout
    worker.llm_client, worker.tokenizer, worker.processor = server, processor.tokenizer, processor
    worker.hf_model_type, worker.dataset_cls = "qwen2_5_vl", get_dataset_class(data)
    worker.tools, worker.reward_loop_worker_handles = [], None
    worker.distillation_enabled, worker.mm_processor_kwargs = False, {}
    out = asyncio.run(worker.generate_sequences(batch))
    want, turns = [], []
    for i, env_id in enumerate([ROTATION_HINT, POSITION]):
        env, _ = reset(env_id, batch.non_tensor_batch["extra_info"][i]["seed"])
        done, n = False, 0
        while not done:
            _, reward, done, _, _ = env.step(text)
            n += 1
        want.append(reward)
        turns.append(2 * n)
    assert out.batch["rm_scores"].sum(-1).tolist() == pytest.approx(want)
    assert want[0] < 0  # three wrong answers, two retry costs
    assert out.non_tensor_batch["__num_turns__"].tolist() == turns
    answer_len = len(server.returned[0])
    assert out.batch["response_mask"].sum(-1).tolist() == [answer_len * turns[0] // 2, answer_len]
    valid = out.batch["attention_mask"][:, -config.actor_rollout_ref.rollout.response_length :]
    assert (out.batch["response_mask"] <= valid).all()  # padding is never trained
    for i, reward in enumerate(want):  # the reward sits on the last response token
        assert out.batch["rm_scores"][i, int(valid[i].sum()) - 1].item() == pytest.approx(reward)


# --- verl's reward path ----------------------------------------------------------------


def test_verls_reward_manager_scores_online_rows_as_the_env(processor: Any) -> None:
    """verl's naive reward manager with ``reward.custom_reward_function`` = our scorer."""
    ds = dataset(processor, ids=[ROTATION, POSITION], train_size=4, seed=8)
    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": str(Path(verl_adapter.__file__)),
                    "name": "compute_score",
                },
                "reward_manager": {"source": "register", "name": "naive"},
            }
        }
    )
    tokenizer = processor.tokenizer
    cases: list[tuple[dict[str, Any], str, float]] = []
    for index in range(4):
        row = ds[index]
        env, _ = reset(row["data_source"], row["extra_info"]["seed"])
        answer = row["reward_model"]["ground_truth"]
        for text in (env.puzzle.oracle(env.instance), f"<answer>{answer}", "<answer>zzz</answer>"):
            env.reset(seed=row["extra_info"]["seed"])
            cases.append((row, text, env.step(text)[1]))

    async def score() -> list[float]:
        manager = load_reward_manager(config, tokenizer)
        got = []
        for row, text, _ in cases:
            ids = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
            responses = torch.tensor([ids + [tokenizer.pad_token_id] * 3])
            prompts = torch.tensor([[tokenizer.pad_token_id, 5, 6]])
            attention = torch.tensor([[0, 1, 1] + [1] * len(ids) + [0] * 3])
            data = DataProto.from_single_dict(
                {
                    "prompts": prompts,
                    "responses": responses,
                    "attention_mask": attention,
                    "data_source": np.array([row["data_source"]], dtype=object),
                    "reward_model": np.array([row["reward_model"]], dtype=object),
                    "extra_info": np.array([dict(row["extra_info"])], dtype=object),
                }
            )
            got.append((await manager.run_single(data))["reward_score"])
        return got

    got = asyncio.run(score())
    assert got == [reward for _, _, reward in cases]
    assert {1.0, 0.0} <= set(got)
    hinted = dataset(processor, ids=[ROTATION_HINT], train_size=1)[0]
    with pytest.raises(ValueError, match="multi-turn"):  # hinted rows are the loop's to score
        verl_adapter.compute_score(
            hinted["data_source"], "<answer>0</answer>", None, hinted["extra_info"]
        )
