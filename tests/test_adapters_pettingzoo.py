"""The PettingZoo games: API conformance, determinism, and reward arithmetic."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

import ssl_gym  # noqa: F401
from ssl_gym.adapters.pettingzoo import MESSAGE_INTRO, describer_solver_env, duel_env

KW = {"size": 64, "answer_format": "plain"}
IDS = ["SSL/Jigsaw-2x2-v2", "SSL/Jigsaw-2x2-Hint-v2", "SSL/Rotation-4way-Ref-v1"]


def env_reward(env_id: str, seed: int, replies: list[str]) -> float:
    """What the Gymnasium env gives for ``replies`` (the last step's reward)."""
    env = gym.make(env_id, **KW)
    env.reset(seed=seed)
    for reply in replies:
        _, reward, terminated, _, _ = env.step(reply)
        if terminated:
            return float(reward)
    raise AssertionError("the script did not finish the episode")


# PettingZoo's checks warn that text and dict spaces are not Box or Discrete: expected here.
API_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning:pettingzoo.test.api_test")


@API_WARNINGS
@pytest.mark.parametrize("env_id", IDS)
def test_duel_passes_the_parallel_api_and_seed_tests(env_id: str) -> None:
    parallel_api_test(duel_env(env_id, n_agents=3, **KW), num_cycles=20)
    parallel_seed_test(lambda: duel_env(env_id, n_agents=2, **KW), num_cycles=20)


@API_WARNINGS
@pytest.mark.parametrize("env_id", IDS)
def test_describer_solver_passes_the_aec_api_and_seed_tests(env_id: str) -> None:
    api_test(describer_solver_env(env_id, max_message_chars=40, **KW), num_cycles=20)
    seed_test(lambda: describer_solver_env(env_id, max_message_chars=40, **KW), num_cycles=20)


def test_duel_players_share_one_puzzle_and_seeds_repeat() -> None:
    env = duel_env("SSL/Jigsaw-2x2-v2", n_agents=3, **KW)
    obs, _ = env.reset(seed=5)
    first = obs["player_0"]
    for agent in ("player_1", "player_2"):
        assert obs[agent]["prompt"] == first["prompt"]
        for a, b in zip(obs[agent]["images"], first["images"], strict=True):
            np.testing.assert_array_equal(a, b)
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(again["player_0"]["images"][0], first["images"][0])
    other, _ = env.reset(seed=6)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(other["player_0"]["images"], first["images"], strict=True)
    )


def test_duel_reward_is_own_score_minus_the_mean_of_the_others() -> None:
    env_id = "SSL/Jigsaw-2x2-v2"  # partial credit: wrong answers score in (0, 1)
    env = duel_env(env_id, n_agents=3, **KW)
    _, infos = env.reset(seed=11)
    answer = infos["player_0"]["answer"]
    replies = {"player_0": answer, "player_1": "2,1,4,3", "player_2": "not an answer"}
    _, rewards, terms, truncs, step_infos = env.step(replies)
    seed = int(np.random.default_rng(11).integers(0, 2**31 - 1))
    scores = {a: env_reward(env_id, seed, [r]) for a, r in replies.items()}
    assert scores["player_0"] == 1.0 and scores["player_2"] == 0.0
    for agent, score in scores.items():
        others = [s for a, s in scores.items() if a != agent]
        assert rewards[agent] == pytest.approx(score - sum(others) / 2)
        assert step_infos[agent]["score_reward"] == pytest.approx(score)
    assert sum(rewards.values()) == pytest.approx(0.0)
    assert all(terms.values()) and not any(truncs.values()) and env.agents == []


def test_duel_with_hints_pays_out_when_the_last_player_is_done() -> None:
    env = duel_env("SSL/Rotation-4way-Hint-v2", n_agents=2, **KW)
    _, infos = env.reset(seed=2)
    answer = infos["player_0"]["answer"]
    wrong = next(c for c in infos["player_0"]["choices"] if c != answer)
    _, rewards, terms, _, _ = env.step({"player_0": answer, "player_1": wrong})
    assert rewards == {"player_0": 0.0, "player_1": 0.0} and not any(terms.values())
    _, rewards, terms, _, infos = env.step({"player_0": "ignored: done", "player_1": answer})
    assert all(terms.values())
    late = 1.0 - infos["player_1"]["retry_cost"]  # one wrong answer before the right one
    assert rewards["player_0"] == pytest.approx(1.0 - late)
    assert rewards["player_1"] == pytest.approx(late - 1.0)


def test_duel_rejects_bad_use() -> None:
    with pytest.raises(ValueError, match="n_agents"):
        duel_env("SSL/Rotation-4way-v1", n_agents=1)
    env = duel_env("SSL/Rotation-4way-v1", n_agents=2, **KW)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_1"):
        env.step({"player_0": "90"})
    with pytest.raises(TypeError, match="str"):
        env.step({"player_0": "90", "player_1": 90})


def test_describer_sees_the_unshuffled_picture() -> None:
    # cut exactly from the whole scene as it comes, the picture is the tiles put back
    env = describer_solver_env(
        "SSL/Jigsaw-2x2-v2", context=1.0, orientation="upright", tone=0.0, **KW
    )
    env.reset(seed=3)
    (original,) = env.observe("describer_0")["images"]
    tiles = env.observe("solver_0")["images"]
    order = [int(t) for t in env.infos["solver_0"]["answer"].split(",")]
    side = tiles[0].shape[0]
    for cell, tile in enumerate(order):
        r, c = divmod(cell, 2)
        np.testing.assert_array_equal(
            original[r * side : (r + 1) * side, c * side : (c + 1) * side], tiles[tile - 1]
        )
    # by default the tiles are a turned window of a larger scene, which the describer sees
    env = describer_solver_env("SSL/Jigsaw-2x2-v2", **KW)
    env.reset(seed=3)
    (scene,) = env.observe("describer_0")["images"]
    assert scene.shape[0] > 2 * side and scene.shape[1] > 2 * side


@pytest.mark.parametrize("solved", [True, False])
def test_both_get_the_solvers_score_and_the_message_is_bounded(solved: bool) -> None:
    env = describer_solver_env("SSL/Rotation-4way-v1", max_message_chars=12, **KW)
    env.reset(seed=4)
    answer = env.infos["solver_0"]["answer"]
    wrong = next(c for c in env.infos["solver_0"]["choices"] if c != answer)
    env.step("Upside\x00down\u00e9 tree on the left")
    prompt = env.observe("solver_0")["prompt"]
    # unprintable characters become spaces; the 12-character bound cuts before "tree"
    assert prompt.startswith(MESSAGE_INTRO + "Upside down\n")
    assert env.observation_space("solver_0").contains(env.observe("solver_0"))
    env.step(answer if solved else wrong)
    seed = int(np.random.default_rng(4).integers(0, 2**31 - 1))
    expected = env_reward("SSL/Rotation-4way-v1", seed, [answer if solved else wrong])
    assert expected == (1.0 if solved else 0.0)
    finished = {}
    for agent in env.agent_iter():
        _, reward, terminated, _, _ = env.last()
        assert terminated
        finished[agent] = reward
        env.step(None)
    assert finished == {"describer_0": expected, "solver_0": expected}


def test_describer_solver_rejects_families_with_several_pictures() -> None:
    with pytest.raises(ValueError, match="Similarity"):
        describer_solver_env("SSL/Similarity-K4-v2", **KW)
    with pytest.raises(ValueError, match="max_message_chars"):
        describer_solver_env("SSL/Jigsaw-2x2-v2", max_message_chars=0)


def test_the_original_is_the_last_picture_drawn_with_the_scenes_key() -> None:
    from ssl_gym.adapters.pettingzoo import _OriginalRecorder
    from ssl_gym.core import Instance
    from ssl_gym.images import ImageSource

    class OnePicture(ImageSource):  # every draw the same picture, cut anew
        def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
            return "one", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)

        def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
            return self._draw_raw(rng)[1]

    recorder, rng = _OriginalRecorder(OnePicture()), np.random.default_rng(0)
    images = [recorder.draw(rng, (8, 8))[0] for _ in range(3)]  # two rejected draws first
    inst = Instance("Rotation", (), "q", "q", "0", 0, metadata={"source_keys": ["one"]})
    np.testing.assert_array_equal(recorder.original(inst), images[-1])
    with pytest.raises(ValueError, match="source_keys"):
        recorder.original(Instance("Rotation", (), "q", "q", "0", 0))
    recorder.clear()
    with pytest.raises(RuntimeError, match="'one'"):
        recorder.original(inst)


def run_example(*args: str) -> list[str]:
    command = [sys.executable, *args]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return run.stdout.splitlines()


def test_the_duel_example_runs() -> None:
    lines = run_example("examples/pettingzoo_duel.py", "--episodes", "4")
    assert len(lines) == 5 and lines[-1].startswith("mean reward")
    oracle = float(lines[-1].split()[3])
    assert oracle > 0.0  # the oracle never loses to a random player


def test_the_describer_solver_example_runs() -> None:
    lines = run_example("examples/pettingzoo_describer_solver.py", "--episodes", "8")
    with_message, without = (float(line.rsplit(" ", 1)[1]) for line in lines)
    assert with_message == 1.0 and without < 1.0


def test_pettingzoos_render_test_gets_the_puzzles_picture() -> None:
    from pettingzoo.test import render_test
    from pettingzoo.utils.conversions import parallel_to_aec

    def duel(render_mode: str | None = None) -> object:
        return parallel_to_aec(duel_env("SSL/Jigsaw-2x2-v2", render_mode=render_mode))

    def describer(render_mode: str | None = None) -> object:
        return describer_solver_env("SSL/Jigsaw-2x2-v2", render_mode=render_mode)

    for make in (duel, describer):
        render_test(make)  # type: ignore[arg-type]
        env = make("rgb_array")
        env.reset(seed=0)  # type: ignore[attr-defined]
        picture = env.render()  # type: ignore[attr-defined]
        assert isinstance(picture, np.ndarray) and picture.ndim == 3 and picture.std() > 0
    with pytest.raises(ValueError, match="render_mode='ascii' is not valid"):
        duel_env("SSL/Jigsaw-2x2-v2", render_mode="ascii")


def test_pettingzoos_max_cycles_test_on_a_long_hinted_duel() -> None:
    import types

    from pettingzoo.test import max_cycles_test
    from pettingzoo.utils.conversions import parallel_to_aec

    def parallel_env(max_cycles: int | None = None) -> object:  # random answers: all wrong
        return duel_env("SSL/Position-3x3-Hint-v3", max_turns=8, max_cycles=max_cycles)

    module = types.SimpleNamespace(
        parallel_env=parallel_env,
        env=lambda max_cycles=None: parallel_to_aec(parallel_env(max_cycles)),
    )
    max_cycles_test(module)
    env = duel_env("SSL/Position-3x3-Hint-v3", max_turns=8, max_cycles=2)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, "not an answer"))
    *_, terminated, truncated, _ = env.step(dict.fromkeys(env.agents, "not an answer"))
    assert all(truncated.values()) and not any(terminated.values()) and not env.agents
