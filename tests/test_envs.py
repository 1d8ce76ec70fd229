"""Every registered id against the contract; the env shell, vector envs and the CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import ssl_gym
from ssl_gym.core import Instance
from ssl_gym.envs import entries, mixture_ids
from ssl_gym.images import ImageSource
from ssl_gym.puzzles import build_puzzle
from ssl_gym.puzzles.rotation import Rotation
from ssl_gym.testing import ContractError, check_puzzle, check_puzzle_env, observation_digest

IDS = [e.id for e in entries(hinted=True)]


def test_every_family_has_presets_from_easy_to_hard() -> None:
    assert {"Rotation", "Position", "Jigsaw", "Contrastive"} <= {e.family for e in entries()}
    for family in ssl_gym.FAMILIES.values():
        order = [p.difficulty for p in family.presets.values()]
        ranks = [("easy", "medium", "hard").index(d) for d in order]
        assert ranks == sorted(ranks), f"{family.family} presets not easy to hard: {order}"


def test_registry_matches_entries() -> None:
    assert set(IDS) | set(mixture_ids()) == set(ssl_gym.registered_ids())
    for eid in IDS:
        assert gym.spec(eid).version is not None


@pytest.mark.parametrize("env_id", IDS)
def test_env_contract(env_id: str) -> None:
    check_puzzle_env(env_id)


@pytest.mark.parametrize("env_id", IDS)
def test_puzzle_contract(env_id: str) -> None:
    env = gym.make(env_id)
    check_puzzle(env.unwrapped.puzzle, seeds=(0, 1, 2, 3))


class _SeedDeaf(Rotation):
    """A planted fault: the generator ignores its rng, so every episode is the same."""

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        return super()._draft(np.random.default_rng(0), source)


def test_check_puzzle_rejects_a_generator_that_ignores_its_rng() -> None:
    good = build_puzzle("Rotation", "4way")
    check_puzzle(good)
    with pytest.raises(ContractError, match="ignore its rng"):
        check_puzzle(_SeedDeaf(good.config))


@pytest.mark.parametrize("env_id", IDS)
def test_env_pickles(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    obs, _ = env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    assert observation_digest(clone.reset(seed=5)[0]) == observation_digest(obs)


def test_make_with_module_prefix_and_overrides() -> None:
    env = gym.make("ssl_gym:SSL/Jigsaw-3x3-v2", grid=4, answer_format="boxed")
    obs, info = env.reset(seed=3)
    assert len(obs["images"]) == 16
    assert "\\boxed" in obs["prompt"]
    _, reward, *_ = env.step(f"\\boxed{{{info['answer']}}}")
    assert reward == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gird": 4}, "valid:"),
        ({"grid": 9}, "grid"),
        ({"answer_format": "json"}, "'tags', 'boxed', 'plain'"),
        ({"image_source": "ftp://x"}, "procedural"),
        ({"render_mode": "ansi"}, "rgb_array"),
    ],
)
def test_bad_overrides_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        gym.make("SSL/Jigsaw-3x3-v2", **kwargs)
    assert message in str(err.value)


def test_spec_to_json_round_trips_overrides() -> None:
    env = gym.make("SSL/Rotation-4way-v1", answer_format="plain", size=64)
    spec = json.loads(env.spec.to_json())
    assert spec["kwargs"]["answer_format"] == "plain"
    assert spec["kwargs"]["family"] == "Rotation"


def test_step_info_carries_verdict() -> None:
    env = gym.make("SSL/Position-2x2-v2")
    _, info = env.reset(seed=0)
    assert info["choices"] == ("top-left", "top-right", "bottom-left", "bottom-right")
    wrong = next(c for c in info["choices"] if c != info["answer"])
    _, reward, terminated, truncated, info = env.step(f"<think>x</think> <answer>{wrong}</answer>")
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["parsed"] == json.dumps(wrong) and info["format_ok"] and info["parse_error"] is None
    assert info["reward_components"] == {"accuracy": 0.0, "format": 0.0, "retries": 0.0}
    with pytest.raises(RuntimeError, match="reset"):
        env.step("again")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_step_every_family(mode: str) -> None:
    ids = [next(e.id for e in entries() if e.family == f) for f in ssl_gym.FAMILIES]
    for env_id in ids:
        envs = gym.make_vec(env_id, num_envs=4, vectorization_mode=mode)
        obs, infos = envs.reset(seed=[11, 11, 12, 12])
        images = obs["images"][0]
        assert np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])
        assert obs["prompt"][0] == obs["prompt"][1]
        actions = [f"<think>.</think> <answer>{a}</answer>" for a in infos["answer"]]
        _, rewards, terminated, _, _ = envs.step(actions)
        assert rewards.tolist() == [1.0] * 4 and terminated.all()
        envs.close()


def test_same_seed_same_bytes_in_fresh_process() -> None:
    code = (
        "import gymnasium as gym, ssl_gym, json\n"
        "from ssl_gym.testing import observation_digest\n"
        "ids = json.loads(input())\n"
        "print(json.dumps([observation_digest(gym.make(i).reset(seed=7)[0]) for i in ids]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(IDS),
        text=True,
        capture_output=True,
        check=True,
    )
    theirs = json.loads(run.stdout)
    ours = [observation_digest(gym.make(i).reset(seed=7)[0]) for i in IDS]
    assert theirs == ours
    assert len(set(ours)) == len(entries())  # a -Hint id shows its single-turn puzzle


def test_oracle_and_random_policy_scores_match_chance() -> None:
    from ssl_gym.cli import policy_scores

    for e in entries():
        if e.difficulty != "easy":
            continue
        env = gym.make(e.id).unwrapped
        oracle, rand = policy_scores(env, episodes=200, seed=0)
        assert oracle == 1.0
        assert abs(rand - e.chance_score) < 0.12, (e.id, rand, e.chance_score)


def test_puzzle_builds_without_gymnasium_objects() -> None:
    puzzle = build_puzzle("Rotation", "4way")
    assert puzzle.chance_score == 0.25


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ssl_gym.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_list_and_show(tmp_path) -> None:
    listing = run_cli("list")
    assert listing.returncode == 0
    assert "SSL/Jigsaw-3x3-v2" in listing.stdout
    out = tmp_path / "jigsaw.png"
    shown = run_cli("show", "SSL/Jigsaw-3x3-v2", "--seed", "7", "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    assert out.stat().st_size > 1000
    env = gym.make("SSL/Jigsaw-3x3-v2")
    assert env.reset(seed=7)[1]["answer"] in shown.stdout
    bad = run_cli("show", "SSL/Nope-v0")
    assert bad.returncode == 2 and "error" in bad.stdout.lower()


def test_policy_rng_is_not_the_stream_reset_gives_the_env() -> None:
    from gymnasium.utils.seeding import np_random

    from ssl_gym.seeds import policy_rng

    env_stream = np_random(5)[0].integers(0, 2**62, size=8)
    # the trap policy_rng avoids: the plain seed replays the env's draws
    np.testing.assert_array_equal(np.random.default_rng(5).integers(0, 2**62, size=8), env_stream)
    assert not np.array_equal(policy_rng(5).integers(0, 2**62, size=8), env_stream)
    assert not np.array_equal(policy_rng(5, 0).integers(0, 2**62, size=8), env_stream)
    np.testing.assert_array_equal(  # deterministic
        policy_rng(5, 1).integers(0, 9, size=8), policy_rng(5, 1).integers(0, 9, size=8)
    )


def test_ssl_gym_never_needs_the_optional_libraries() -> None:
    heavy = ("torch", "transformers", "datasets", "pyarrow", "trl", "verifiers", "pettingzoo")
    code = (
        "import sys, ssl_gym, ssl_gym.adapters, ssl_gym.cli, ssl_gym.evaluation, ssl_gym.gallery\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_repr_names_the_id_and_the_changed_settings() -> None:
    assert repr(gym.make("SSL/Jigsaw-3x3-v2", size=96).unwrapped) == (
        "PuzzleEnv('SSL/Jigsaw-3x3-v2', size=96)"
    )
    hinted = repr(gym.make("SSL/Rotation-4way-Hint-v2", answer_format="plain").unwrapped)
    assert (
        hinted == "PuzzleEnv('SSL/Rotation-4way-Hint-v2', answer_format='plain', max_turns='auto')"
    )


@pytest.mark.parametrize("env_id", ["SSL/Rotation-4way-v1", "SSL/Rotation-4way-Hint-v2"])
def test_async_vector_env_returns_the_true_prompts(env_id: str) -> None:
    """Gymnasium's shared memory used to hand back 8,192 ``a`` s for every prompt."""
    vec = gym.make_vec(env_id, num_envs=3, vectorization_mode="async")
    try:
        obs, _ = vec.reset(seed=0)
        singles = [gym.make(env_id) for _ in range(3)]
        expected = [env.reset(seed=s)[0]["prompt"] for s, env in enumerate(singles)]
        assert list(obs["prompt"]) == expected
        obs, *_ = vec.step(["not an answer"] * 3)
        after = [env.step("not an answer")[0]["prompt"] for env in singles]
        assert list(obs["prompt"]) == after
    finally:
        vec.close()


def test_hinted_ids_carry_their_own_version_and_map_back_to_their_puzzle() -> None:
    from ssl_gym.envs import single_turn_id
    from ssl_gym.puzzles import FAMILIES

    for cls in FAMILIES.values():
        hint = cls.version if cls.hint_version is None else cls.hint_version
        for variant in cls.presets:
            hinted = f"SSL/{cls.family}-{variant}-Hint-v{hint}"
            assert hinted in gym.registry
            assert single_turn_id(hinted) == f"SSL/{cls.family}-{variant}-v{cls.version}"
    # Position's hinted rewards moved on (v3) while its puzzles did not (v2)
    assert single_turn_id("SSL/Position-3x3-Hint-v3") == "SSL/Position-3x3-v2"
    assert "SSL/Position-3x3-Hint-v2" not in gym.registry


def test_help_on_any_env_shows_its_familys_docs() -> None:
    import pickle
    import pydoc
    import subprocess
    import sys

    from ssl_gym.envs import PuzzleEnv

    for env_id in ("SSL/Rotation-4way-Hint-v2", "SSL/Jigsaw-3x3-v2"):
        env = gym.make(env_id)  # what gym.make returns, not only env.unwrapped
        text = pydoc.render_doc(env, renderer=pydoc.plaintext)
        family = env.puzzle.family
        assert isinstance(env, PuzzleEnv) and type(env).__name__ == f"{family}Env"
        assert f"{family}: " in text and "Version History" in text
        signature = text.split("\n")[3]  # the constructor's, not __new__'s
        assert f"{family}Env(family: 'str', preset:" in signature and "image_source" in signature
    mixture = gym.make("SSL/Mix-SSL4RL-v1")
    assert "MixtureEnv" in pydoc.render_doc(mixture, renderer=pydoc.plaintext)
    # the order is still enforced, with Gymnasium's error; the checker is still at hand
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        gym.make("SSL/Jigsaw-3x3-v2").step("<answer>1</answer>")
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        mixture.step("<answer>1</answer>")
    checked = gym.make("SSL/Jigsaw-3x3-v2", disable_env_checker=False)
    assert type(checked).__name__ == "PassiveEnvChecker"
    checked.reset(seed=0)
    # pickled envs load in a fresh process (the family class is found by name)
    env = gym.make("SSL/Rotation-4way-Hint-v2").unwrapped
    env.reset(seed=3)
    code = (
        "import pickle, sys; env = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(env).__name__, env.instance.answer)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(env), capture_output=True, timeout=120
    )
    assert run.stdout.decode().split() == ["RotationEnv", env.instance.answer], run.stderr
