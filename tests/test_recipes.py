"""The papers' recipes as files, and --dry-run with a memory estimate."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import ssl_gym  # noqa: F401
from agents.config import make_config, memory_estimate, recipe_settings
from agents.tiny import write_production_config
from agents.train import main

RECIPES = ["ssl4rl", "ssl_r1", "tiny_cpu"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_a_config_and_its_envs(name: str) -> None:
    cfg = make_config(recipe_settings(name))
    env = gym.make(cfg.env, **cfg.env_kwargs)
    obs, _ = env.reset(seed=0)
    fmt = cfg.env_kwargs["answer_format"]
    assert env.observation_space.contains(obs)
    assert ("\\boxed" in obs["prompt"]) == (fmt == "boxed")


def test_ssl4rl_recipe_matches_the_paper() -> None:
    cfg = make_config(recipe_settings("ssl4rl"))
    tasks = {gym.make(cfg.env).reset(seed=s)[1]["task"] for s in range(40)}
    assert tasks == {"Rotation", "Position", "Jigsaw", "Contrastive"}
    learn = cfg.learner
    assert (cfg.group_size, cfg.groups_per_step, learn.lr, learn.kl_coef) == (5, 512, 1e-6, 0.01)
    assert (learn.clip_eps, learn.aggregation, cfg.temperature) == (0.2, "token_mean", 1.0)
    assert (cfg.max_new_tokens, cfg.steps, cfg.env_kwargs["format_weight"]) == (2048, 300, 0.0)
    assert cfg.groups_per_step // learn.ppo_mini_batches == 128  # mini-batches of 128 prompts


def test_ssl_r1_recipe_matches_the_paper() -> None:
    cfg = make_config(recipe_settings("ssl_r1"))
    tasks = {gym.make(cfg.env).reset(seed=s)[1]["task"] for s in range(60)}
    assert tasks == {"Rotation", "Similarity", "Inpainting", "Jigsaw", "Correspondence"}
    assert cfg.learner.kl_coef == 0.0 and cfg.learner.lr == 1e-6 and cfg.groups_per_step == 256
    assert cfg.env_kwargs["answer_format"] == "boxed" and cfg.env_kwargs["format_weight"] > 0


def test_memory_estimate_of_a_3b_shaped_model(tmp_path: Path) -> None:
    model = write_production_config(tmp_path / "qwen3b")
    with_kl = memory_estimate(make_config({**recipe_settings("ssl4rl"), "model": str(model)}))
    no_kl = memory_estimate(make_config({**recipe_settings("ssl_r1"), "model": str(model)}))
    assert 3.6 < with_kl["params_billion"] < 3.9  # Qwen2.5-VL-3B has 3.75B parameters
    # fp32 master weights; the reference in the bf16 compute dtype: half of them
    assert with_kl["reference_gib"] == pytest.approx(with_kl["master_weights_gib"] / 2)
    assert with_kl["adamw_states_gib"] == pytest.approx(2 * with_kl["gradients_gib"])
    # the logits of one micro-batch (8 x 2049 tokens x a 151,936 vocabulary in bf16) and a chunk
    assert 4.9 < with_kl["logits_gib"] < 7.0
    vllm = make_config({**recipe_settings("ssl4rl"), "model": str(model), "sampler": "vllm"})
    assert memory_estimate(vllm, 1, device_gib=141.0)["vllm_gib"] == pytest.approx(0.5 * 141)
    assert no_kl["reference_gib"] == 0.0 and no_kl["total_gib"] < with_kl["total_gib"]
    fsdp = make_config({**recipe_settings("ssl4rl"), "model": str(model), "parallel": "fsdp"})
    whole, sharded = memory_estimate(fsdp, 1), memory_estimate(fsdp, 4)
    assert sharded["adamw_states_gib"] == pytest.approx(whole["adamw_states_gib"] / 4)
    assert sharded["activations_gib"] == pytest.approx(whole["activations_gib"])  # per rank
    ddp = make_config({**recipe_settings("ssl4rl"), "model": str(model)})
    assert memory_estimate(ddp, 4)["total_gib"] == pytest.approx(with_kl["total_gib"])


def test_ssl4rl_dry_run_prints_the_global_batch_updates_and_every_memory_term(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = write_production_config(tmp_path / "qwen3b")
    assert main(["--recipe", "ssl4rl", "--dry-run", "--model", str(model)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "global batch 512 groups x 5 = 2560 episodes per step" in out
    assert "4 updates per step (1 epoch(s) x 4 mini-batches of 128 groups)" in out
    for term in ("master_weights", "gradients", "adamw_states", "reference", "activations"):
        assert f"{term}_gib:" in out
    assert "logits_gib:" in out and "vllm_gib:" in out and "total_gib:" in out


def test_dry_run_and_recipe_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = write_production_config(tmp_path / "qwen3b")
    assert main(["--recipe", "ssl_r1", "--model", str(model), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"group_size": 8' in out and "params_billion" in out
    assert (
        main(["--recipe", "ssl_r1", "--model", str(model), "--dry-run", "--parallel", "fsdp"]) == 0
    )
    assert "fsdp total_gib per rank: 2 ranks" in capsys.readouterr().out
    assert main(["--recipe", "nope"]) == 2
    assert "known: ssl4rl, ssl_r1, tiny_cpu" in capsys.readouterr().out
    assert main(["--recipe", "ssl4rl"]) == 2  # no --model
    assert "no model" in capsys.readouterr().out
