"""The settings of ``ssl-gym train``: config, command line, TOML, recipes, dry run.

Settings resolve in this order, later ones winning: the defaults of :class:`TrainConfig`,
a recipe of ``agents/recipes`` (``--recipe``), a TOML file (``--config``), and the
command-line options (one per field). Torch is not imported here (the docs read the
options without it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ssl_gym.fields import field_docs

console = Console()

RECIPES = Path(__file__).parent / "recipes"
#: The weight dtypes a run may ask for (torch names).
DTYPES = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """Every setting of a training run."""

    env: str = "SSL/Rotation-4way-v1"
    """Registered id to train on."""
    env_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"size": 64, "answer_format": "plain", "prompt_style": "plain"}
    )
    """Overrides passed to ``gym.make`` (JSON on the command line)."""
    model: str = "tiny"
    """A local VLM directory, or ``tiny`` to build the tiny random Idefics3 in ``out``."""
    out: str = "outputs/train"
    """Run directory: metrics, checkpoints, curves."""
    steps: int = 300
    """Optimizer steps."""
    groups_per_step: int = 16
    """GRPO groups (distinct puzzles) per step."""
    group_size: int = 8
    """Samples per puzzle."""
    lr: float = 1e-3
    """AdamW learning rate (high: the default model is tiny and random)."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (evaluation is greedy)."""
    top_p: float = 1.0
    """Nucleus sampling mass of rollouts."""
    max_new_tokens: int = 16
    """Longest completion in tokens."""
    constrain_answers: bool = True
    """Sample only completions inside the puzzle's answer grammar."""
    sampler: str = "hf"
    """``hf`` (transformers, samples from the learner's module) or ``vllm`` (a colocated
    vLLM engine that takes the learner's weights after every step)."""
    gpu_memory_utilization: float = 0.5
    """vLLM: share of GPU memory for the engine."""
    vllm_tensor_parallel_size: int = 1
    """vLLM: GPUs one engine spans (one process; under torchrun each rank has its own
    engine, so keep 1 there)."""
    vllm_sleep: bool = False
    """vLLM: put the engine to sleep (weights to CPU, KV cache freed) while the learner
    steps, so the learner can use that memory; it wakes before the weight push (GPU)."""
    clip_eps: float = 0.2
    """Ratio clip range."""
    kl_coef: float = 0.0
    """KL penalty to the initial model (k3); 0 keeps no reference model."""
    aggregation: str = "token_mean"
    """Loss aggregation: token_mean or seq_mean."""
    normalize_std: bool = True
    """Divide advantages by the group's reward std."""
    micro_batch_size: int = 64
    """Rows per forward/backward pass."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    lora_rank: int = 0
    """LoRA rank; 0 trains all weights."""
    freeze_vision: bool = False
    """Keep the vision tower frozen."""
    curriculum: str = ""
    """A family name: train on its presets from easy to hard (as ``SSL/Mix-v0``), moving
    one level up or down to keep the rollout solve rate inside ``curriculum_band``."""
    curriculum_band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    """Target solve-rate band of the curriculum."""
    curriculum_window: int = 256
    """Episodes per solve-rate estimate of the curriculum."""
    blank_images: bool = False
    """Control run: replace every image with black pixels (nothing to learn from)."""
    eval_every: int = 10
    """Greedy evaluation on held-out seeds every N steps (and at the end)."""
    eval_episodes: int = 128
    """Held-out puzzles per evaluation."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end)."""
    stop_at_accuracy: float = 0.0
    """Stop early once held-out accuracy reaches this (0 = never)."""
    max_minutes: float = 0.0
    """Stop after this much wall time (0 = no limit)."""
    seed: int = 0
    """Seed of env seeds, sampling and the tiny model."""
    resume: str = ""
    """A run directory or checkpoint to continue from."""
    device: str = "cpu"
    """Torch device."""
    dtype: str = "float32"
    """Weights dtype: float32, or bfloat16 (GPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (GPU)."""
    parallel: str = "ddp"
    """Under torchrun: ``ddp`` (each rank holds the whole model) or ``fsdp`` (FSDP2: weights,
    gradients and AdamW states sharded over the ranks, for models that do not fit)."""


def learner_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The fields :class:`agents.learner.LearnerConfig` shares with the run's config."""
    from agents.learner import LearnerConfig

    shared = {f.name for f in dataclasses.fields(LearnerConfig)}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k in shared}


# --- the command line, TOML files and recipes ----------------------------------------------


def _parse_value(kind: Any, text: str) -> Any:
    if kind in (bool, "bool"):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    if str(kind).startswith(("dict", "list")):
        value = json.loads(text)
        want = dict if str(kind).startswith("dict") else list
        if not isinstance(value, want):
            raise argparse.ArgumentTypeError(f"expected JSON {want.__name__}, got {text!r}")
        return value
    return text


def build_parser() -> argparse.ArgumentParser:
    """One option per config field, plus ``--config``."""
    parser = argparse.ArgumentParser(
        prog="ssl-gym train",
        description="GRPO on ssl_gym puzzles (agents/train.py).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--recipe", help="a recipe of agents/recipes: ssl4rl, ssl_r1, tiny_cpu")
    parser.add_argument("--config", help="TOML file of settings (options below win)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved settings and a memory estimate, then exit",
    )
    docs = field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag, kind = f"--{f.name.replace('_', '-')}", f.type
        convert = functools.partial(_parse_value, kind)
        if kind in (bool, "bool"):  # a bare --flag means true
            parser.add_argument(
                flag, dest=f.name, type=convert, nargs="?", const=True, help=docs.get(f.name, "")
            )
        else:
            parser.add_argument(flag, dest=f.name, type=convert, help=docs.get(f.name, ""))
    return parser


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings of a recipe file in ``agents/recipes``."""
    path = RECIPES / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise ValueError(f"unknown recipe {name!r}; known: {known}")
    return tomllib.loads(path.read_text())


def load_config(argv: Sequence[str] | None) -> TrainConfig:
    """Defaults, then the recipe, then the TOML file, then command-line options."""
    args = vars(build_parser().parse_args(argv))
    args.pop("dry_run")
    settings: dict[str, Any] = {}
    recipe = args.pop("recipe")
    if recipe:
        settings.update(recipe_settings(recipe))
    config_file = args.pop("config")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        settings.update(tomllib.loads(path.read_text()))
    settings.update({k: v for k, v in args.items() if v is not None})
    return make_config(settings)


def make_config(settings: dict[str, Any]) -> TrainConfig:
    """A config from a dict, naming unknown keys."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid: {', '.join(sorted(names))}")
    cfg = TrainConfig(**settings)
    if cfg.sampler != "vllm" and (cfg.vllm_sleep or cfg.vllm_tensor_parallel_size != 1):
        raise ValueError("vllm_sleep and vllm_tensor_parallel_size need --sampler vllm")
    if cfg.vllm_tensor_parallel_size > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "under torchrun every rank runs its own vLLM engine: keep vllm_tensor_parallel_size 1"
        )
    if cfg.sampler == "vllm" and cfg.lora_rank:
        raise ValueError("the vLLM sampler takes full weights: train without LoRA, or merge")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"dtype={cfg.dtype!r} is not valid; choose one of: {', '.join(DTYPES)}")
    for name, valid in (("sampler", ("hf", "vllm")), ("parallel", ("ddp", "fsdp"))):
        if getattr(cfg, name) not in valid:
            raise ValueError(
                f"{name}={getattr(cfg, name)!r} is not valid; choose {' or '.join(valid)}"
            )
    if cfg.steps < 1 or cfg.group_size < 2 or cfg.groups_per_step < 1:
        raise ValueError(
            "need steps >= 1, group_size >= 2 (GRPO compares samples) and groups_per_step >= 1"
        )
    return cfg


# --- dry run ------------------------------------------------------------------------------


def memory_estimate(cfg: TrainConfig, ranks: int = 1) -> dict[str, float]:
    """GiB per rank for weights, gradients, AdamW states, the reference and activations.

    Parameters are counted on the meta device from the model's config (nothing is
    loaded); activations are a rough bound for one micro-batch of prompt (1024 tokens)
    plus completion. Under ``parallel = "fsdp"`` the weights, gradients, AdamW states and
    reference are split over ``ranks`` (plus the largest gathered block, ignored here);
    under DDP every rank holds them whole.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from agents.models import resolve_local_dir

    if cfg.model == "tiny":
        raise ValueError("the tiny model is built at run time; give --model DIR to estimate")
    config = AutoConfig.from_pretrained(str(resolve_local_dir(cfg.model)))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    size = 2 if cfg.dtype == "bfloat16" else 4
    text = getattr(config, "text_config", config)
    tokens = cfg.micro_batch_size * (1024 + cfg.max_new_tokens)
    per_layer = 2 if cfg.gradient_checkpointing else 16
    gib = 2.0**30 * (ranks if cfg.parallel == "fsdp" else 1)  # sharded states per rank
    parts = {
        "params_billion": params / 1e9,
        "weights_gib": params * size / gib,
        "gradients_gib": params * size / gib,
        "adamw_states_gib": 2 * params * size / gib,
        "reference_gib": params * size / gib if cfg.kl_coef > 0 else 0.0,
        "activations_gib": tokens
        * text.hidden_size
        * text.num_hidden_layers
        * per_layer
        * size
        / 2.0**30,
    }
    parts["total_gib"] = sum(v for k, v in parts.items() if k.endswith("_gib"))
    return parts


def dry_run(cfg: TrainConfig) -> None:
    """Print the resolved settings and, for a model on disk, the memory estimate."""
    console.print_json(json.dumps(dataclasses.asdict(cfg)))
    if cfg.model == "tiny":
        console.print("memory: the tiny model (a few MB) fits anywhere")
        return
    for key, value in memory_estimate(cfg).items():
        console.print(f"{key:>20s}: {value:10.2f}")
    if cfg.parallel == "fsdp":
        per_rank = {n: memory_estimate(cfg, n)["total_gib"] for n in (2, 4, 8)}
        console.print(
            "fsdp total_gib per rank: "
            + ", ".join(f"{n} ranks {gib:.2f}" for n, gib in per_rank.items())
        )
