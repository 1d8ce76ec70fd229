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
from ssl_gym.vector import group_seeds

DIRECTIONS = {
    "top": 0,
    "top-left": 45,
    "left": 90,
    "bottom-left": 135,
    "bottom": 180,
    "bottom-right": 225,
    "right": 270,
    "top-right": 315,
}


class HintFollower:
    """A scripted player: a wrong first answer, then whatever the hints pin down."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info, self.tried, self.hints = info, set(), []
        self.choices = list(info["choices"] or [])

    def act(self) -> str:
        if not self.hints:  # turn 1: a wrong answer on purpose
            answer = self.wrong()
        else:
            answer = self.follow()
        self.tried.add(answer)
        return answer

    def wrong(self) -> str:
        if self.choices:
            return next(c for c in self.choices if c != self.info["answer"])
        n = len(self.info["answer"].split(","))
        return ",".join(str(k) for k in range(1, n + 1))  # never the answer: not the identity

    def follow(self) -> str:
        family = self.info["family"]
        if family == "Rotation" and (m := re.search(r"now at the ([a-z-]+) of", self.hints[0])):
            return str(DIRECTIONS[m.group(1)])
        if family == "Jigsaw":
            return self.jigsaw()
        if family in ("Position", "FlipPatch"):
            candidates = [c for c in self.choices if self.fits_position(c)]
        else:
            ruled_out = {
                a or b
                for h in self.hints
                for a, b in re.findall(r"Option (\S+) is not the answer|answer is not ([\w-]+)", h)
            }
            candidates = [c for c in self.choices if c not in ruled_out]
        untried = [c for c in candidates if c not in self.tried]
        return (untried or candidates or self.choices)[0]

    def fits_position(self, choice: str) -> bool:
        text = " ".join(self.hints)
        if self.info["family"] == "FlipPatch":
            grid = self.info["metadata"].get("cols") or int(len(self.choices) ** 0.5 / 2**0.5)
            tile = int(choice.split()[0]) - 1
            row, col = divmod(tile, self.info["metadata"].get("cols", grid))
            m_row, m_col = re.search(r"row (\d+)", text), re.search(r"column (\d+)", text)
            return (not m_row or int(m_row.group(1)) == row + 1) and (
                not m_col or int(m_col.group(1)) == col + 1
            )
        words = re.findall(r"(top|bottom|middle|left|right|center)", text)
        return all(w in choice or (w in ("middle", "center") and "-" not in choice) for w in words)

    def jigsaw(self) -> str:
        n = len(self.info["answer"].split(","))
        cols = self.info["metadata"]["cols"]
        cells: dict[int, int] = {}
        for h in self.hints:
            tile, row, col = map(int, re.findall(r"\d+", h)[:3])
            cells[(row - 1) * cols + col - 1] = tile
        free_tiles = [t for t in range(1, n + 1) if t not in cells.values()]
        return ",".join(str(cells[i] if i in cells else free_tiles.pop(0)) for i in range(n))

    def observe(self, info: dict[str, Any]) -> None:
        self.hints = info["hints"]


def easy_hint_ids() -> list[str]:
    firsts = {}
    for e in entries(hinted=True):
        if e.hinted:
            firsts.setdefault(e.family, e.id)
    return list(firsts.values())


@pytest.mark.parametrize("env_id", easy_hint_ids())
def test_hint_follower_finishes_and_pays_for_hints(env_id: str) -> None:
    env = gym.make(env_id, hint_cost=0.1)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        player, fmt = HintFollower(info), env.unwrapped.puzzle.config.answer_format
        rewards, terminated = [], False
        while not terminated:
            obs, reward, terminated, truncated, step_info = env.step(
                format_answer(player.act(), fmt)
            )
            rewards.append(reward)
            player.observe(step_info)
            assert not truncated
            if not terminated:
                assert (reward == 0.0 and "Hint:" in obs["prompt"]) or "Try again" in obs["prompt"]
        assert step_info["turn_scores"][-1] == 1.0, (env_id, seed, step_info["hints"])
        assert len(rewards) == step_info["turn"] <= step_info["max_turns"]
        expected = max(0.0, 1.0 - 0.1 * len(step_info["hints"]))
        assert rewards[-1] == pytest.approx(expected)
        assert step_info["reward_components"]["hints"] == pytest.approx(
            -0.1 * len(step_info["hints"])
        )


def test_jigsaw_feedback_counts_tiles_in_place() -> None:
    env = gym.make("SSL/Jigsaw-3x3-Hint-v0")
    _, info = env.reset(seed=0)
    truth = [int(t) for t in info["answer"].split(",")]
    guess = truth[:4] + truth[4:][::-1]
    right = sum(a == b for a, b in zip(guess, truth, strict=True))
    obs, *_ = env.step(format_answer(",".join(map(str, guess)), "tags"))
    assert f"{right} of 9 tiles are in place." in obs["prompt"]


def test_feedback_never_echoes_unprintable_text() -> None:
    env = gym.make("SSL/Rotation-4way-Hint-v0", answer_format="plain")
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
        "SSL/Rotation-4way-Hint-v0",
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
    assert terminated[1] and rewards[1] == pytest.approx(0.9)  # one hint given
    if mode == AutoresetMode.NEXT_STEP:
        assert not terminated[0] and rewards[0] == 0.0  # this step only reset env 0
    elif mode == AutoresetMode.SAME_STEP:
        assert "final_obs" in infos2 and infos2["_final_obs"][1]
    assert not terminated[2]


def test_mixture_has_one_observation_space_and_names_its_task() -> None:
    env = gym.make("SSL/Mix-SSL4RL-v0")
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
        "SSL/Mix-v0",
        ids=["SSL/Rotation-2way-v0", "SSL/Jigsaw-2x2-v0"],
        weights=[0.9, 0.1],
        canvas=256,
    )
    tasks = [env.reset(seed=s)[1]["task"] for s in range(200)]
    assert 0.8 < tasks.count("Rotation") / 200 < 0.97
    with pytest.raises(ValueError, match="unknown id"):
        gym.make("SSL/Mix-v0", ids=["SSL/Nope-v0"])
    with pytest.raises(ValueError, match="weights"):
        gym.make("SSL/Mix-v0", ids=["SSL/Rotation-2way-v0"], weights=[-1])


def test_sslr1_mixture_covers_the_five_tasks() -> None:
    env = gym.make("SSL/Mix-SSLR1-v0")
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
    envs = gym.make_vec("SSL/Rotation-4way-v0", num_envs=8)
    seeds = group_seeds(num_groups=2, group_size=4, seed=0)
    obs, _ = envs.reset(seed=seeds)
    images = obs["images"][0]
    assert np.array_equal(images[0], images[3]) and not np.array_equal(images[3], images[4])
    assert ssl_gym.vector.SEED_LIMIT > max(seeds)
