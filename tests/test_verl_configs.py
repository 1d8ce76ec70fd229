"""The verl GRPO launch scripts in examples/verl compose into verl's ppo_trainer config.

Each script is run with ``SSL_GYM_VERL_PRINT=1``, which prints the overrides it would
pass to ``python -m verl.trainer.main_ppo``, one per line; they are composed through
Hydra's compose API against verl's own config directory, exactly as ``main_ppo``'s
``@hydra.main(config_name="ppo_trainer")`` does. Hydra refuses keys that verl's config
does not define (unless prefixed with ``+``), so a misspelt key in a script fails here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from ssl_gym.envs import entries, single_turn_id
from ssl_gym.envs.mixture import MIXTURES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "verl"
SCRIPTS = sorted(EXAMPLES.glob("grpo_*.sh"))
NAMES = [p.name for p in SCRIPTS]
NNODES = "4"

_spec = importlib.util.find_spec("verl")
if _spec is None or not _spec.submodule_search_locations:
    pytest.skip("verl is not installed", allow_module_level=True)
CONFIG_DIR = os.path.join(_spec.submodule_search_locations[0], "trainer", "config")


def overrides(script: Path, **env: str) -> list[str]:
    """The overrides ``script`` passes to verl's trainer."""
    run_env = {k: v for k, v in os.environ.items() if k not in {"NNODES", "RAY_ADDRESS"}}
    run_env.update(SSL_GYM_VERL_PRINT="1", MODEL_PATH="/models/qwen2.5-vl-3b", **env)
    out = subprocess.run(
        ["bash", str(script)], env=run_env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def ppo_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("ppo_trainer", overrides=overrides)


@pytest.fixture(scope="module")
def base():
    return ppo_config([])


@pytest.fixture(scope="module", params=SCRIPTS, ids=NAMES)
def script(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def args(script) -> list[str]:
    return overrides(script, NNODES=NNODES)


@pytest.fixture(scope="module")
def cfg(args):
    return ppo_config(args)


def test_four_scripts():
    assert NAMES == [
        "grpo_hinted_1node.sh",
        "grpo_hinted_nnodes.sh",
        "grpo_ssl4rl_1node.sh",
        "grpo_ssl4rl_nnodes.sh",
    ]


def test_bash_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["bash", "-n", str(EXAMPLES / "common.sh")], check=True)
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert 'source "$(dirname "${BASH_SOURCE[0]}")/common.sh"' in text


def test_ssl4rl_recipe(cfg):
    arr = cfg.actor_rollout_ref
    assert cfg.algorithm.adv_estimator == "grpo"
    assert arr.rollout.n == 5
    assert cfg.data.train_batch_size == 512
    assert arr.actor.ppo_mini_batch_size == 128
    assert arr.actor.optim.lr == pytest.approx(1e-6)
    assert arr.actor.use_kl_loss is True
    assert arr.actor.kl_loss_coef == pytest.approx(0.01)
    assert arr.actor.kl_loss_type == "low_var_kl"
    assert cfg.data.max_response_length == 2048
    assert arr.rollout.response_length == 2048
    assert arr.rollout.temperature == pytest.approx(1.0)
    assert arr.rollout.name == "vllm"
    assert arr.rollout.mode == "async"
    assert arr.model.path == "/models/qwen2.5-vl-3b"


def test_data_and_reward(cfg):
    assert cfg.data.filter_overlong_prompts is False
    assert cfg.data.custom_cls.path == "pkg://ssl_gym.adapters.verl_online"
    assert cfg.data.custom_cls.name == "PuzzleDataset"
    assert (cfg.data.train_files, cfg.data.val_files) == ("ssl_gym:train", "ssl_gym:validation")
    assert cfg.data.ssl_gym.train_size % cfg.data.train_batch_size == 0
    # SSL4RL's prompts and answer tags, as its registered mixture sets them.
    mix = MIXTURES["SSL4RL"]
    assert dict(cfg.data.ssl_gym.overrides) == {
        "answer_format": mix["answer_format"],
        "prompt_style": mix["prompt_style"],
    }
    # The non-legacy reward key is set; the legacy top-level one is left alone.
    assert cfg.reward.custom_reward_function.path == "pkg://ssl_gym.adapters.verl"
    assert cfg.reward.custom_reward_function.name == "compute_score"
    assert cfg.custom_reward_function.path is None


def test_ids_and_agent_loop(script, cfg):
    ids = list(cfg.data.ssl_gym.ids)
    assert all(i in gym.registry for i in ids)
    plain = MIXTURES["SSL4RL"]["ids"]
    rollout = cfg.actor_rollout_ref.rollout
    if "hinted" in script.name:
        hinted = {single_turn_id(e.id): e.id for e in entries(hinted=True) if e.hinted}
        assert ids == [hinted[i] for i in plain]
        assert cfg.data.ssl_gym.agent_name == "ssl_gym_puzzle"
        assert rollout.agent.default_agent_loop == "ssl_gym_puzzle"
        assert rollout.multi_turn.enable is True
    else:
        assert ids == plain
        assert cfg.data.ssl_gym.agent_name is None
        assert rollout.agent.default_agent_loop == "single_turn_agent"
        assert rollout.multi_turn.enable is False


def test_nodes(script, cfg):
    assert cfg.trainer.n_gpus_per_node == 8
    if "nnodes" in script.name:
        assert cfg.trainer.nnodes == int(NNODES)
        assert ppo_config(overrides(script, NNODES="16")).trainer.nnodes == 16
        # Without NNODES the script refuses to start.
        env = {k: v for k, v in os.environ.items() if k != "NNODES"}
        res = subprocess.run(
            ["bash", str(script)],
            env={**env, "SSL_GYM_VERL_PRINT": "1"},
            capture_output=True,
            text=True,
        )
        assert res.returncode != 0
        assert "NNODES" in res.stderr
    else:
        assert cfg.trainer.nnodes == 1


def test_plus_only_for_new_keys(base, args):
    """``+`` adds a key: used only where verl's config lacks it (data.ssl_gym.*)."""
    for arg in args:
        key = arg.split("=", 1)[0]
        parent, _, leaf = key.lstrip("+").rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        present = node is not None and leaf in node.keys()
        if key.startswith("+"):
            assert key.startswith("+data.ssl_gym."), arg
            assert not present, arg
        else:
            assert present, arg


def test_verl_validates(cfg):
    """verl's own checks of batch sizes and micro-batches, and its rollout dataclass."""
    pytest.importorskip("torch")
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    validate_config(cfg, use_reference_policy=True, use_critic=False)
    # The v1 trainer splits each PPO mini-batch (prompts x samples) over all GPUs.
    n_gpus = cfg.trainer.nnodes * cfg.trainer.n_gpus_per_node
    actor = cfg.actor_rollout_ref.actor
    assert actor.ppo_mini_batch_size * cfg.actor_rollout_ref.rollout.n % n_gpus == 0
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.n == 5


def test_misspelt_key_refused(args):
    with pytest.raises(ConfigCompositionException):
        ppo_config([*args, "actor_rollout_ref.rollout.nn=5"])
    with pytest.raises(ConfigCompositionException):
        ppo_config([*args, "reward.custom_reward_fn.path=x"])


def test_typo_in_script_fails(tmp_path):
    """A misspelt key in common.sh fails composition (the scripts are what is tested)."""
    copy = tmp_path / "verl"
    shutil.copytree(EXAMPLES, copy)
    common = copy / "common.sh"
    text = common.read_text()
    assert "actor_rollout_ref.actor.kl_loss_coef=0.01" in text
    common.write_text(text.replace("actor.kl_loss_coef=", "actor.kl_los_coef="))
    args = overrides(copy / "grpo_ssl4rl_1node.sh")
    with pytest.raises(ConfigCompositionException):
        ppo_config(args)


def test_puzzle_dataset_accepts_settings(cfg):
    """The data.ssl_gym block and the split names are what PuzzleDataset reads."""
    online = pytest.importorskip("ssl_gym.adapters.verl_online")
    settings = online.OnlineSettings.from_config(cfg.data)
    assert list(settings.ids) == list(cfg.data.ssl_gym.ids)
    assert settings.train_size == cfg.data.ssl_gym.train_size
    assert settings.agent_name == cfg.data.ssl_gym.agent_name
    assert online.DATA_FILES[cfg.data.train_files] == "train"
    assert online.DATA_FILES[cfg.data.val_files] == "validation"
