"""Multi-turn play with hints, vector envs under each autoreset mode, mixtures, curriculum."""

from __future__ import annotations

import json
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import ssl_gym
from ssl_gym.core import format_answer
from ssl_gym.curriculum import AdaptiveDifficulty, Curriculum, family_ladder
from ssl_gym.envs import entries
from ssl_gym.multiturn import retry_cost
from ssl_gym.seeds import group_seeds


def easy_hint_ids() -> list[str]:
    firsts = {}
    for e in entries(hinted=True):
        if e.hinted:
            firsts.setdefault(e.family, e.id)
    return list(firsts.values())


def _wrong(info: dict[str, Any], k: int) -> str:
    """The ``k``-th wrong answer of a player who tries the choices in turn."""
    wrong = [c for c in info["choices"] or () if c != info["answer"]]
    return wrong[k] if k < len(wrong) else "not an answer"


@pytest.mark.parametrize("env_id", easy_hint_ids())
@pytest.mark.parametrize("wrong", [0, 1, 2])
def test_every_wrong_answer_costs_the_retry_cost(env_id: str, wrong: int) -> None:
    env = gym.make(env_id, hint_cost=0.1)
    fmt = env.unwrapped.puzzle.config.answer_format
    obs, info = env.reset(seed=wrong)
    wrong = min(wrong, env.unwrapped.turns - 1)  # ids with one hint allow two answers
    shapes = [im.shape for im in obs["images"]]
    for k in range(wrong):
        obs, reward, terminated, _, _ = env.step(format_answer(_wrong(info, k), fmt))
        assert not terminated and reward == 0.0
        assert "is not right" in obs["prompt"] or "could not read" in obs["prompt"]
        assert [im.shape for im in obs["images"]] == shapes
        assert env.observation_space.contains(obs)
    _, reward, terminated, _, step = env.step(format_answer(info["answer"], fmt))
    puzzle = env.unwrapped.puzzle
    count = puzzle.answer_count(env.unwrapped.instance)
    credit = puzzle.credit(env.unwrapped.instance)
    cost = retry_cost(count, step["max_turns"], info["chance_score"], floor=0.1, credit=credit)
    assert terminated and step["turn_scores"][-1] == 1.0 and step["retry_cost"] == cost
    assert step["reward_components"]["retries"] == pytest.approx(-cost * wrong)
    assert reward == pytest.approx(1.0 - cost * wrong)


def test_a_reply_never_says_how_close_the_answer_was() -> None:
    env = gym.make(next(i for i in easy_hint_ids() if "Jigsaw" in i))
    _, info = env.reset(seed=0)
    truth = [int(t) for t in info["answer"].split(",")]
    guess = truth[:2] + truth[2:][::-1]
    obs, *_ = env.step(format_answer(",".join(map(str, guess)), "tags"))
    assert "is not right." in obs["prompt"]
    assert not re.search(r"\d+ of \d+|score|partly", obs["prompt"].split("Hint:")[0])


def test_feedback_never_echoes_unprintable_text() -> None:
    env = gym.make(next(i for i in easy_hint_ids() if "Rotation" in i), answer_format="plain")
    env.reset(seed=0)
    obs, *_ = env.step("\u00e9\u00e9 \U0001f600 90 degrees? \x00" * 50)
    assert env.observation_space.contains(obs)


def _answers(infos: dict[str, Any], right: list[bool], fmt: str = "tags") -> list[str]:
    return [
        format_answer(a if ok else "nonsense", fmt)
        for a, ok in zip(infos["answer"], right, strict=True)
    ]


@pytest.mark.parametrize(
    "mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]
)
def test_hinted_vector_env_with_mixed_episode_lengths(mode: AutoresetMode) -> None:
    envs = gym.make_vec(
        "SSL/Rotation-4way-Hint-v2",
        num_envs=3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
    )
    _, infos = envs.reset(seed=[1, 2, 3])
    answers = list(infos["answer"])
    # env 0 is right at once, env 1 at its second answer, env 2 never right
    _, rewards, terminated, _, _ = envs.step(_answers(infos, [True, False, False]))
    assert terminated.tolist() == [True, False, False] and rewards[0] == 1.0
    if mode == AutoresetMode.DISABLED:
        envs.reset(options={"reset_mask": terminated})
    step2 = [
        format_answer("x", "tags"),
        format_answer(answers[1], "tags"),
        format_answer("x", "tags"),
    ]
    _, rewards, terminated, _, infos2 = envs.step(step2)
    cost = retry_cost(4, 3, 0.25, floor=0.1)  # 4 angles, 2 hints so 3 turns
    assert terminated[1] and rewards[1] == pytest.approx(1.0 - cost)
    if mode == AutoresetMode.NEXT_STEP:
        assert not terminated[0] and rewards[0] == 0.0  # this step only reset env 0
    elif mode == AutoresetMode.SAME_STEP:
        assert "final_obs" in infos2 and infos2["_final_obs"][1]
    assert not terminated[2]


def test_mixture_has_one_observation_space_and_names_its_task() -> None:
    env = gym.make("SSL/Mix-SSL4RL-v1")
    tasks = set()
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        tasks.add(info["task"])
        _, reward, terminated, _, info = env.step(format_answer(info["answer"], "tags"))
        assert reward == 1.0 and terminated and info["task"] in tasks
    assert tasks == {"Rotation", "Position", "Jigsaw", "Contrastive"}


def test_custom_mixture_weights_and_errors() -> None:
    env = gym.make(
        "SSL/Mix-v1",
        ids=["SSL/Rotation-2way-v1", "SSL/Jigsaw-2x2-v2"],
        weights=[0.9, 0.1],
        canvas=256,
    )
    tasks = [env.reset(seed=s)[1]["task"] for s in range(200)]
    assert 0.8 < tasks.count("Rotation") / 200 < 0.97
    with pytest.raises(ValueError, match="unknown id"):
        gym.make("SSL/Mix-v1", ids=["SSL/Nope-v0"])
    with pytest.raises(ValueError, match="weights"):
        gym.make("SSL/Mix-v1", ids=["SSL/Rotation-2way-v1"], weights=[-1])
    for bad in ([float("nan")], [float("inf")]):  # refused when built, not at a reset
        with pytest.raises(ValueError, match="finite non-negative"):
            gym.make("SSL/Mix-v1", ids=["SSL/Rotation-2way-v1"], weights=bad)
    with pytest.raises(ValueError, match=r"needs its ids, e\.g\. gym\.make\('SSL/Mix-v1'"):
        gym.make("SSL/Mix-v1")


def test_sslr1_mixture_covers_the_five_tasks() -> None:
    env = gym.make("SSL/Mix-SSLR1-v1")
    seen = {env.reset(seed=s)[1]["task"] for s in range(60)}
    assert len(seen) == 5
    obs, _ = env.reset(seed=0)
    assert "\\boxed" in obs["prompt"]


def _play(wrapper: AdaptiveDifficulty, episodes: int, solve: bool) -> None:
    for ep in range(episodes):
        _, info = wrapper.reset(seed=ep)
        answer = info["answer"] if solve else "nonsense"
        wrapper.step(format_answer(answer, "tags"))


def test_curriculum_moves_up_for_a_solver_and_down_for_a_failer() -> None:
    ladder = family_ladder("Rotation")
    wrapper = AdaptiveDifficulty(ladder, window=8)
    _play(wrapper, 30, solve=True)
    assert wrapper.curriculum.level == 3 and len(wrapper.curriculum.changes) == 3
    _play(wrapper, 20, solve=False)
    assert wrapper.curriculum.level == 1
    state = json.loads(json.dumps(wrapper.state_dict()))
    restored = AdaptiveDifficulty(ladder, window=8)
    restored.load_state_dict(state)
    assert restored.state_dict() == wrapper.state_dict()
    _, info = restored.reset(seed=0)
    assert info["curriculum"]["id"] == ladder[1] and info["task_id"] == ladder[1]


def test_curriculum_stays_inside_the_band() -> None:
    c = Curriculum(3, band=(0.3, 0.7), window=10)
    assert c.update([True, False] * 5) is None and c.level == 0
    with pytest.raises(ValueError):
        Curriculum(3, band=(0.8, 0.2))


def test_group_seeds_example() -> None:
    envs = gym.make_vec("SSL/Rotation-4way-v1", num_envs=8)
    seeds = group_seeds(num_groups=2, group_size=4, seed=0)
    obs, _ = envs.reset(seed=seeds)
    images = obs["images"][0]
    assert np.array_equal(images[0], images[3]) and not np.array_equal(images[3], images[4])
    assert ssl_gym.seeds.SEED_LIMIT > max(seeds)
