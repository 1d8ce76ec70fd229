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
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console

import ssl_gym  # noqa: F401  (registers the ids the settings name)
from ssl_gym.core import did_you_mean
from ssl_gym.envs import unknown_id
from ssl_gym.fields import field_docs
from ssl_gym.overrides import add_set_option

console = Console()

RECIPES = Path(__file__).parent / "recipes"
#: The weight dtypes a run may ask for (torch names).
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class LearnerConfig:
    """Optimisation settings of the learner (``agents.learner.Learner``).

    Torch-free, so that the options can be read without it; the aggregation and the KL
    estimator are checked against :mod:`agents.grpo` where the learner is built (and by
    :func:`make_config`).
    """

    lr: float = 1e-6
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient norm clipping threshold."""
    micro_batch_size: int = 16
    """Rows per forward/backward pass; gradients accumulate over the batch."""
    ppo_mini_batches: int = 1
    """Optimizer steps per rollout batch and epoch: the batch is split into this many
    mini-batches (SSL4RL: 512 prompts in mini-batches of 128, i.e. 4)."""
    ppo_epochs: int = 1
    """Passes over the rollout batch (each of ``ppo_mini_batches`` steps)."""
    clip_eps: float = 0.2
    """PPO-style ratio clip range (below 1)."""
    clip_eps_high: float = 0.0
    """Upper clip range (DAPO's clip-higher uses 0.28); 0 = ``clip_eps``."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the frozen initial model (0 = no reference model)."""
    kl_kind: str = "k3"
    """KL estimator: ``k1``, ``k2`` or ``k3`` (GRPO's)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (subtracted from the loss)."""
    aggregation: str = "token_mean"
    """Loss aggregation: ``token_mean`` (DAPO, SSL4RL), ``seq_mean`` (original GRPO),
    ``seq_mean_token_sum`` or ``seq_mean_token_sum_norm`` (Dr. GRPO: divided by
    ``max_new_tokens``, a constant)."""
    normalize_std: bool = True
    """Divide group advantages by the group's reward std."""
    temperature: float = 1.0
    """The sampling temperature: log-probs are those of logits / T (0, greedy, counts as 1)."""
    max_new_tokens: int = 0
    """The generation limit: Dr. GRPO's constant divisor (0: the padded width)."""
    max_prompt_tokens: int = 0
    """Refuse a prompt (images' tokens included) longer than this (0 = no limit)."""
    dtype: str = "float32"
    """Compute dtype (``float32`` or ``bfloat16``); parameters and AdamW states stay fp32."""
    lora_rank: int = 0
    """LoRA rank (peft); 0 trains all weights."""
    freeze_vision: bool = False
    """Keep the vision tower frozen."""
    gradient_checkpointing: bool = False
    """Trade compute for memory (GPU)."""
    old_logprobs: str = "sampler"
    """``sampler``: the ratio's denominator is the sampler's logprobs (they equal the
    learner's for the HF sampler); ``recompute``: the learner's own, taken once per rollout
    before any update (as verl recomputes them), needed when the sampler's differ (vLLM:
    other kernels, logprobs after its grammar mask)."""
    tis_cap: float = 2.0
    """With ``recompute`` (the vLLM sampler): truncated importance sampling, each token's
    loss weighted by ``min(pi_learner / pi_sampler, tis_cap)`` for the sampler/learner
    mismatch (verl's and TRL's correction); 0 = off. The trainer turns it off with
    ``constrain_answers``, where vLLM's logprobs are those after the grammar's mask."""
    parallel: str = "ddp"
    """Under torchrun: ``ddp`` (every rank holds the whole model) or ``fsdp`` (FSDP2
    ``fully_shard``: weights, gradients and AdamW states sharded over the ranks, for models
    that do not fit)."""

    def __post_init__(self) -> None:
        choices = {
            "old_logprobs": ("sampler", "recompute"),
            "parallel": ("ddp", "fsdp"),
            "dtype": DTYPES,
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not valid; choose one of: "
                    + ", ".join(valid)
                )
        for name in ("ppo_mini_batches", "ppo_epochs", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0 or self.tis_cap < 0 or self.clip_eps_high < 0:
            raise ValueError("temperature, tis_cap and clip_eps_high must be >= 0")


#: LearnerConfig fields the trainer sets from its own (sampling) settings, not options.
DERIVED = ("temperature", "max_new_tokens", "dtype", "old_logprobs")

#: The trainer's learner defaults: a high lr and large micro-batches for the tiny model.
TRAIN_LEARNER = LearnerConfig(lr=1e-3, micro_batch_size=64)


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
    """GRPO groups (distinct puzzles) per step, over all ranks: under torchrun each rank
    plays ``groups_per_step / world_size`` of them (a count that does not divide is refused)."""
    group_size: int = 8
    """Samples per puzzle."""
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
    curriculum: str = ""
    """A family name: train on its presets from easy to hard (as ``SSL/Mix-v1``), moving
    one level up or down to keep the rollout solve rate inside ``curriculum_band``."""
    curriculum_band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    """Target solve-rate band of the curriculum."""
    curriculum_window: int = 256
    """Episodes per solve-rate estimate of the curriculum."""
    blank_images: bool = False
    """Control run: replace every image with black pixels (nothing to learn from)."""
    eval_every: int = 10
    """Greedy evaluation on held-out seeds every N steps (and at the start and the end;
    0 = only there)."""
    eval_episodes: int = 128
    """Held-out puzzles per evaluation."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end; 0 = only there)."""
    stop_at_accuracy: float = 0.0
    """Stop early once held-out accuracy reaches this (0 = never)."""
    max_minutes: float = 0.0
    """Stop after this much wall time (0 = no limit)."""
    seed: int = 0
    """Seed of env seeds, sampling and the tiny model."""
    resume: str = ""
    """A run directory (or a checkpoint in one) to continue: its ``config.json`` is the
    base of the settings, options given on the command line win, the run writes there."""
    device: str = "cpu"
    """Torch device."""
    dtype: str = "float32"
    """Compute dtype: float32, or bfloat16 (autocast; parameters and AdamW states stay
    fp32, the KL reference and the vLLM engine are bf16)."""
    learner: LearnerConfig = field(default_factory=lambda: TRAIN_LEARNER)
    """The optimisation settings (:class:`LearnerConfig`); on the command line and in TOML
    files its fields are options of their own (``--lr``, ``lr = ...``)."""


def learner_config(cfg: TrainConfig) -> LearnerConfig:
    """The learner's settings of a run: ``cfg.learner`` with the fields the run sets.

    The sampling temperature, the generation limit and the compute dtype are the run's;
    the old logprobs are recomputed with vLLM; truncated importance sampling is off when
    answers are constrained (vLLM's logprobs are then those after the grammar's mask).
    """
    return dataclasses.replace(
        cfg.learner,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        dtype=cfg.dtype,
        old_logprobs="recompute" if cfg.sampler == "vllm" else "sampler",
        tis_cap=0.0 if cfg.constrain_answers else cfg.learner.tis_cap,
    )


def options() -> list[tuple[str, Any, Any, str]]:
    """Every option of ``ssl-gym train``: ``(name, type, default, doc)``.

    The fields of :class:`TrainConfig`, then those of :class:`LearnerConfig` that the run
    does not set itself, with the trainer's defaults (:data:`TRAIN_LEARNER`).
    """
    train_docs, learner_docs = field_docs(TrainConfig), field_docs(LearnerConfig)
    defaults = TrainConfig()
    out = [
        (f.name, f.type, getattr(defaults, f.name), train_docs.get(f.name, ""))
        for f in dataclasses.fields(TrainConfig)
        if f.name != "learner"
    ]
    out += [
        (f.name, f.type, getattr(TRAIN_LEARNER, f.name), learner_docs.get(f.name, ""))
        for f in dataclasses.fields(LearnerConfig)
        if f.name not in DERIVED
    ]
    return out


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


def plain(doc: str) -> str:
    """A field docstring as plain one-line text for ``--help`` (no RST markup)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    return " ".join(text.replace("``", "").split())


def build_parser() -> argparse.ArgumentParser:
    """One option per setting (:func:`options`), ``--set`` for puzzle settings, ``--config``."""
    parser = argparse.ArgumentParser(
        prog="ssl-gym train", description="GRPO on ssl_gym puzzles (agents/train.py)."
    )
    parser.add_argument("--recipe", help="a recipe of agents/recipes: ssl4rl, ssl_r1, tiny_cpu")
    parser.add_argument("--config", help="TOML file of settings (options below win)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved settings and a memory estimate, then exit",
    )
    add_set_option(parser, "puzzle_settings", "a puzzle setting (env_kwargs), e.g. --set size=96")
    for name, kind, default, doc in options():
        flag = f"--{name.replace('_', '-')}"
        convert = functools.partial(_parse_value, kind)
        # the default shown is the real one; the option's own default stays None, so that
        # only options given on the command line override a recipe or a TOML file
        text = f"{plain(doc)} (default: {default!r})"
        if kind in (bool, "bool"):  # a bare --flag means true
            parser.add_argument(flag, dest=name, type=convert, nargs="?", const=True, help=text)
        else:
            parser.add_argument(flag, dest=name, type=convert, help=text)
    return parser


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings of a recipe file in ``agents/recipes``."""
    path = RECIPES / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise ValueError(f"unknown recipe {name!r}; known: {known}")
    return tomllib.loads(path.read_text())


def run_folder(path: Path) -> Path:
    """The run directory of ``--resume PATH``: PATH, or the run a checkpoint in it is of."""
    if (path / "trainer_state.json").is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return path


def load_config(argv: Sequence[str] | None) -> TrainConfig:
    """Defaults, a resumed run's ``config.json``, the recipe, TOML, then the options."""
    args = vars(build_parser().parse_args(argv))
    args.pop("dry_run")
    settings: dict[str, Any] = {}
    if args.get("resume"):
        run = run_folder(Path(args["resume"]))
        saved = run / "config.json"
        if not saved.is_file():
            raise FileNotFoundError(f"--resume {args['resume']}: no run there ({saved} is missing)")
        settings.update(json.loads(saved.read_text()))
        settings["out"] = str(run)
    recipe = args.pop("recipe")
    if recipe:
        settings.update(recipe_settings(recipe))
    config_file = args.pop("config")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        settings.update(tomllib.loads(path.read_text()))
    puzzle_settings = dict(args.pop("puzzle_settings"))
    settings.update({k: v for k, v in args.items() if v is not None})
    if puzzle_settings:
        settings["env_kwargs"] = {**settings.get("env_kwargs", TrainConfig().env_kwargs),
                                  **puzzle_settings}  # fmt: skip
    return make_config(settings)


def _check_env(cfg: TrainConfig) -> None:
    """The training id must be registered and take the puzzle settings (one-line errors)."""
    if cfg.curriculum:
        return
    if cfg.env not in gym.registry:
        raise ValueError(unknown_id(cfg.env))
    gym.make(cfg.env, disable_env_checker=True, **cfg.env_kwargs).close()


def make_config(settings: dict[str, Any]) -> TrainConfig:
    """A config from settings, naming unknown keys and bad values.

    Learner fields come flat (``lr``, as options and recipes give them) or as a nested
    ``learner`` table (as ``config.json`` holds them); flat ones win.
    """
    settings = dict(settings)
    nested = dict(settings.pop("learner", None) or {})
    train_names = {f.name for f in dataclasses.fields(TrainConfig)} - {"learner"}
    learner_names = {f.name for f in dataclasses.fields(LearnerConfig)} - set(DERIVED)
    for key in DERIVED:  # the run sets these (a saved config.json carries them)
        nested.pop(key, None)
    unknown = sorted((set(settings) - train_names - learner_names) | (set(nested) - learner_names))
    if unknown:
        valid = ", ".join(sorted(train_names | learner_names))
        hint = did_you_mean(unknown[0], train_names | learner_names)
        raise ValueError(f"unknown setting(s) {unknown}{hint}; valid: {valid}")
    nested.update({k: v for k, v in settings.items() if k in learner_names})
    learner = dataclasses.replace(TRAIN_LEARNER, **nested)
    settings = {k: v for k, v in settings.items() if k in train_names}
    cfg = TrainConfig(**settings, learner=learner)
    _check_env(cfg)
    if cfg.sampler != "vllm" and (cfg.vllm_sleep or cfg.vllm_tensor_parallel_size != 1):
        raise ValueError("vllm_sleep and vllm_tensor_parallel_size need --sampler vllm")
    if cfg.vllm_tensor_parallel_size > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "under torchrun every rank runs its own vLLM engine: keep vllm_tensor_parallel_size 1"
        )
    if cfg.sampler == "vllm" and cfg.learner.lora_rank:
        raise ValueError("the vLLM sampler takes full weights: train without LoRA, or merge")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"dtype={cfg.dtype!r} is not valid; choose one of: {', '.join(DTYPES)}")
    if cfg.sampler not in ("hf", "vllm"):
        raise ValueError(f"sampler={cfg.sampler!r} is not valid; choose hf or vllm")
    if cfg.steps < 1 or cfg.group_size < 2 or cfg.groups_per_step < 1:
        raise ValueError(
            "need steps >= 1, group_size >= 2 (GRPO compares samples) and groups_per_step >= 1"
        )
    for name in ("eval_every", "save_every"):
        if getattr(cfg, name) < 0:
            raise ValueError(
                f"{name} must be >= 0 (0: only at the start and end), got {getattr(cfg, name)}"
            )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.groups_per_step % world:
        raise ValueError(
            f"groups_per_step={cfg.groups_per_step} is the global batch and must divide over "
            f"the {world} ranks (each plays an equal share)"
        )
    rows = cfg.groups_per_step // world * cfg.group_size
    if cfg.learner.ppo_mini_batches > rows:
        raise ValueError(
            f"ppo_mini_batches={cfg.learner.ppo_mini_batches} exceeds the {rows} episodes "
            "each rank plays per step"
        )
    if cfg.learner.max_prompt_tokens < 0:
        raise ValueError(f"max_prompt_tokens must be >= 0, got {cfg.learner.max_prompt_tokens}")
    from agents.learner import check_loss_choices  # torch: checked here, not at import

    check_loss_choices(cfg.learner)
    return cfg


def per_rank_groups(cfg: TrainConfig, world: int) -> int:
    """The groups each of ``world`` ranks plays per step (``groups_per_step`` is global)."""
    return cfg.groups_per_step // world


# --- dry run ------------------------------------------------------------------------------


def memory_estimate(
    cfg: TrainConfig, ranks: int = 1, device_gib: float | None = None
) -> dict[str, float]:
    """GiB per rank of every term of a run's memory, from the model's config alone.

    Parameters are counted on the meta device (nothing is loaded). Terms: fp32 master
    weights, fp32 gradients and the two fp32 AdamW states (split over ``ranks`` under
    ``parallel = "fsdp"``, whole on every rank under DDP); the KL reference in the compute
    dtype; activations of one micro-batch of prompt (1024 tokens) and completion, a rough
    bound; the logits of that micro-batch in the compute dtype plus one fp32 chunk of
    :func:`agents.models.token_logprobs_entropies` (three tensors of it); and vLLM's share,
    ``gpu_memory_utilization`` of the device (``device_gib``: the GPU's, else 80).
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from agents.models import (
        LOGPROB_CHUNK_TOKENS,
        resolve_local_dir,
        spend_default_config_warnings,
    )

    if cfg.model == "tiny":
        raise ValueError("the tiny model is built at run time; give --model DIR to estimate")
    root = resolve_local_dir(cfg.model)
    spend_default_config_warnings(root)
    config = AutoConfig.from_pretrained(str(root), local_files_only=True, trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    compute = 2 if cfg.dtype == "bfloat16" else 4
    text = getattr(config, "text_config", config)
    vocab = int(getattr(text, "vocab_size", 0) or getattr(config, "vocab_size", 0))
    learn = cfg.learner
    tokens = learn.micro_batch_size * (1024 + cfg.max_new_tokens)
    completion = learn.micro_batch_size * (cfg.max_new_tokens + 1)
    per_layer = 2 if learn.gradient_checkpointing else 16
    gib = 2.0**30
    shard = gib * (ranks if learn.parallel == "fsdp" else 1)
    if device_gib is None:
        device_gib = 80.0
        if torch.cuda.is_available():
            device_gib = torch.cuda.get_device_properties(0).total_memory / gib
    parts = {
        "params_billion": params / 1e9,
        "master_weights_gib": params * 4 / shard,
        "gradients_gib": params * 4 / shard,
        "adamw_states_gib": 2 * params * 4 / shard,
        "reference_gib": params * compute / shard if learn.kl_coef > 0 else 0.0,
        "activations_gib": tokens
        * text.hidden_size
        * text.num_hidden_layers
        * per_layer
        * compute
        / gib,
        "logits_gib": (completion * vocab * compute + 3 * LOGPROB_CHUNK_TOKENS * vocab * 4) / gib,
        "vllm_gib": cfg.gpu_memory_utilization * device_gib if cfg.sampler == "vllm" else 0.0,
    }
    parts["total_gib"] = sum(v for k, v in parts.items() if k.endswith("_gib"))
    return parts


def schedule(cfg: TrainConfig, world: int) -> dict[str, int]:
    """The batch arithmetic of a step: global and per-rank groups, updates, mini-batches."""
    share, learn = per_rank_groups(cfg, world), cfg.learner
    updates = learn.ppo_epochs * learn.ppo_mini_batches
    return {
        "world_size": world,
        "global_groups_per_step": cfg.groups_per_step,
        "groups_per_rank": share,
        "episodes_per_step": cfg.groups_per_step * cfg.group_size,
        "optimizer_updates_per_step": updates,
        "groups_per_mini_batch": cfg.groups_per_step // learn.ppo_mini_batches,
    }


def dry_run(cfg: TrainConfig) -> None:
    """Print the resolved settings, the batch schedule and, for a model on disk, memory."""
    console.print_json(json.dumps(dataclasses.asdict(cfg)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    plan = schedule(cfg, world)
    console.print(
        f"global batch {plan['global_groups_per_step']} groups x {cfg.group_size} = "
        f"{plan['episodes_per_step']} episodes per step; world size {world}, "
        f"{plan['groups_per_rank']} groups per rank; {plan['optimizer_updates_per_step']} "
        f"updates per step ({cfg.learner.ppo_epochs} epoch(s) x "
        f"{cfg.learner.ppo_mini_batches} mini-batches "
        f"of {plan['groups_per_mini_batch']} groups)"
    )
    if cfg.model == "tiny":
        console.print("memory: the tiny model (a few MB) fits anywhere")
        return
    console.print(f"memory per rank ({world} rank(s), {cfg.learner.parallel}):")
    for key, value in memory_estimate(cfg, world).items():
        console.print(f"{key:>20s}: {value:10.2f}")
    if cfg.learner.parallel == "fsdp":
        per_rank = {n: memory_estimate(cfg, n)["total_gib"] for n in (2, 4, 8)}
        console.print(
            "fsdp total_gib per rank: "
            + ", ".join(f"{n} ranks {gib:.2f}" for n, gib in per_rank.items())
        )
