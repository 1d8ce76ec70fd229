"""``ssl-gym train``: GRPO on ssl_gym puzzles, in one linear script.

Design notes
------------
* One step = one rollout of ``groups_per_step`` GRPO groups of ``group_size`` envs (each
  group reset with one seed: the same puzzle), one sampler call per turn, then one
  learner step on the whole batch. On-policy: the sampler samples from the learner's
  module, so the importance ratio is 1 up to numerics and clipping is a safeguard.
* Everything random is derived from ``(seed, step)``: the env seeds of a step and the
  sampling generator. A run interrupted and resumed from a checkpoint therefore
  replays exactly the steps it would have taken (same weights on CPU).
* Training seeds are drawn below 2**30, held-out evaluation seeds are
  ``ssl_gym.seeds.eval_seeds`` (above 2**30, the set ``ssl-gym eval`` uses):
  evaluation puzzles are never trained on.
* Checkpoints are directories written under a temporary name and renamed into place,
  so a crash never leaves a checkpoint that looks complete but is not.
* A tiny random model learns nothing when it samples freely (it never writes a valid
  answer); ``constrain_answers`` restricts sampling to the puzzle's answer grammar.

Run ``ssl-gym train --help`` for every option; ``--config FILE.toml`` reads them from a
file (command-line options win).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file, save_file

import ssl_gym  # noqa: F401 - registers the SSL/* ids
from agents.distributed import (
    all_gather_list,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    init_distributed,
)
from agents.learner import Learner, LearnerConfig
from agents.models import VLM, load_vlm, resolve_local_dir
from agents.policy import make_sampler, play_held_out
from agents.rollout import RolloutBatch, rollout
from agents.samplers.base import SamplingParams
from agents.tiny import build_tiny_model
from ssl_gym.curriculum import Curriculum, family_ladder
from ssl_gym.evaluation import metrics
from ssl_gym.files import atomic_path
from ssl_gym.seeds import eval_seeds, group_seeds, step_seed

console = Console()

#: The held-out metrics the trainer logs (as ``eval/NAME``), named as ``ssl-gym eval`` names them.
EVAL_METRICS = ("solve_rate", "mean_score", "mean_reward", "format_rate")
RECIPES = Path(__file__).parent / "recipes"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


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


# --- configuration -------------------------------------------------------------------------


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
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--recipe", help="a recipe of agents/recipes: ssl4rl, ssl_r1, tiny_cpu")
    parser.add_argument("--config", help="TOML file of settings (options below win)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved settings and a memory estimate, then exit",
    )
    docs = _field_docs()
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


def _field_docs() -> dict[str, str]:
    """Field docstrings of TrainConfig, read from the source (for --help)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[ast.unparse(node.target)] = str(ast.literal_eval(nxt.value))
    return docs


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


# --- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(
    run: Path,
    step: int,
    vlm: VLM,
    tensors: tuple[dict[str, torch.Tensor], dict[str, Any]],
    cfg: TrainConfig,
    extra: dict[str, Any],
) -> Path:
    """Write ``run/checkpoints/step_N`` atomically (temporary directory, then rename).

    ``tensors`` is ``Learner.state_dicts()``: full weights and optimizer state, which every
    rank gathers together before rank 0 writes them.
    """
    final = run / "checkpoints" / f"step_{step:06d}"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        weights, optim = tensors
        save_file(weights, tmp / "model.safetensors")
        torch.save(optim, tmp / "optimizer.pt")
        state = {
            "step": step,
            "config": dataclasses.asdict(cfg),
            "base_model": str(vlm.path),
            "torch_rng": torch.get_rng_state().tolist(),
            **extra,
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state))
    return final


def latest_checkpoint(path: Path) -> Path:
    """``path`` itself if it is a checkpoint, else the newest complete one under it."""
    if (path / "trainer_state.json").is_file():
        return path
    found = sorted((path / "checkpoints").glob("step_*/trainer_state.json"))
    if not found:
        raise FileNotFoundError(f"no complete checkpoint under {path}")
    return found[-1].parent


def load_checkpoint(ckpt: Path, learner: Learner) -> dict[str, Any]:
    """Restore weights and optimizer (every rank reads the files); return the trainer state."""
    state: dict[str, Any] = json.loads((ckpt / "trainer_state.json").read_text())
    learner.load_state_dicts(
        load_file(ckpt / "model.safetensors"),
        torch.load(ckpt / "optimizer.pt", weights_only=True),
    )
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return state


# --- evaluation and plots ------------------------------------------------------------------


class BlankImages(gym.ObservationWrapper):
    """Control: every image replaced by black pixels, the prompt kept."""

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Zero the images."""
        return {**observation, "images": tuple(np.zeros_like(im) for im in observation["images"])}


def env_spec(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The id and kwargs to make: the training id, or the curriculum's ladder as a mixture."""
    if not cfg.curriculum:
        return cfg.env, dict(cfg.env_kwargs)
    return "SSL/Mix-v0", {"ids": family_ladder(cfg.curriculum), **cfg.env_kwargs}


def make_envs(cfg: TrainConfig, num_envs: int) -> gym.vector.VectorEnv:
    """A sync vector env of ``num_envs`` copies of the training id."""
    wrappers = [BlankImages] if cfg.blank_images else None
    env_id, kwargs = env_spec(cfg)
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync", wrappers=wrappers, **kwargs
    )


def puzzles_of(cfg: TrainConfig) -> list[Any]:
    """The puzzle of each level (one level without a curriculum)."""
    env_id, kwargs = env_spec(cfg)
    env = gym.make(env_id, **kwargs).unwrapped
    return [e.puzzle for e in getattr(env, "envs", [env])]


def evaluate(
    cfg: TrainConfig,
    envs: gym.vector.VectorEnv,
    sampler: Any,
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Greedy play of the fixed held-out seeds: ``ssl-gym eval``'s metrics, as ``eval/*``."""
    env_id = env_spec(cfg)[0]
    seeds = eval_seeds(env_id, cfg.eval_episodes)
    params = SamplingParams(
        temperature=0.0, max_new_tokens=cfg.max_new_tokens, constrain=cfg.constrain_answers
    )
    outcomes = play_held_out(envs, sampler, params, seeds, options=options)
    records = [
        {
            "rewards": [o.reward],
            "scores": [o.score],
            "format_ok": [o.format_ok],
            "turns": [o.turns],
            "chance": 0.0,
        }
        for o in outcomes
    ]
    m = metrics(records, samples=1)
    return {f"eval/{k}": float(m[k]) for k in EVAL_METRICS}


def plot_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Reward and held-out accuracy by step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("rollout/reward_mean", "rollout reward"),
        ("eval/solve_rate", "held-out greedy solve rate"),
    ):
        pts = [(h["step"], h[key]) for h in history if key in h]
        if pts:
            ax.plot(
                *zip(*pts, strict=True), marker="o" if key.startswith("eval") else None, label=label
            )
    chance = next((h["env/chance"] for h in history if "env/chance" in h), None)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", label="chance")
    ax.set(xlabel="step", ylabel="score", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the run -------------------------------------------------------------------------------


def step_metrics(batch: RolloutBatch, learn: dict[str, float], learn_s: float) -> dict[str, float]:
    """Rollout, perf and learner metrics of one step."""
    total = batch.env_seconds + batch.sample_seconds + learn_s
    return {
        "rollout/reward_mean": float(batch.episode_rewards.mean()),
        "rollout/solve_rate": float(np.mean(batch.episode_scores == 1.0)),
        "rollout/completion_len": batch.num_tokens / max(1, len(batch.samples)),
        "perf/env_s": batch.env_seconds,
        "perf/sample_s": batch.sample_seconds,
        "perf/learn_s": learn_s,
        "perf/step_s": total,
        "perf/tokens_per_s": batch.num_tokens / max(batch.sample_seconds, 1e-9),
        **learn,
    }


def sampler_engine(cfg: TrainConfig) -> dict[str, Any]:
    """The vLLM engine settings of a run (none for the HF sampler)."""
    if cfg.sampler != "vllm":
        return {}
    return {
        "dtype": "bfloat16" if cfg.dtype == "bfloat16" else "float32",
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "tensor_parallel_size": cfg.vllm_tensor_parallel_size,
        "sleep_mode": cfg.vllm_sleep,
        "seed": cfg.seed,
    }


def prepare_model(cfg: TrainConfig, run: Path) -> Path:
    """The model directory: ``cfg.model``, or a freshly built tiny model."""
    if cfg.model != "tiny":
        return Path(cfg.model)
    target = run / "tiny-model"
    if not (target / "config.json").is_file():
        build_tiny_model(target, arch="idefics3", seed=cfg.seed)
    return target


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run GRPO; returns the final metrics and the history."""
    # --- setup: directories, model, sampler, learner, envs
    info = init_distributed(cfg.device)  # one process, or one rank of a torchrun job
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(Path(cfg.resume)) if cfg.resume else None
    dtype = DTYPES[cfg.dtype]
    model_dir = prepare_model(cfg, run) if info.is_main else run / "tiny-model"
    barrier(info)  # rank 0 may have built the tiny model
    vlm = load_vlm(model_dir if cfg.model == "tiny" else cfg.model, device=cfg.device, dtype=dtype)
    reference = load_vlm(vlm.path, device=cfg.device, dtype=dtype) if cfg.kl_coef > 0 else None
    learner = Learner(
        vlm,
        LearnerConfig(
            lr=cfg.lr,
            max_grad_norm=cfg.max_grad_norm,
            micro_batch_size=cfg.micro_batch_size,
            clip_eps=cfg.clip_eps,
            kl_coef=cfg.kl_coef,
            aggregation=cfg.aggregation,
            normalize_std=cfg.normalize_std,
            lora_rank=cfg.lora_rank,
            freeze_vision=cfg.freeze_vision,
            gradient_checkpointing=cfg.gradient_checkpointing,
            old_logprobs="recompute" if cfg.sampler == "vllm" else "sampler",
            parallel=cfg.parallel,
        ),
        reference,
        dist_info=info,
    )
    puzzles = puzzles_of(cfg)
    answer_format = puzzles[0].config.answer_format
    curriculum = None
    if cfg.curriculum:
        low, high = cfg.curriculum_band
        curriculum = Curriculum(len(puzzles), band=(low, high), window=cfg.curriculum_window)
    sampler = make_sampler(cfg.sampler, vlm, answer_format=answer_format, **sampler_engine(cfg))
    n_envs = cfg.groups_per_step * cfg.group_size
    envs, eval_envs = make_envs(cfg, n_envs), make_envs(cfg, cfg.eval_episodes)
    start_step, history = 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, learner)
        start_step, history = state["step"], state.get("history", [])
        if curriculum is not None and state.get("curriculum"):
            curriculum = Curriculum.from_state_dict(state["curriculum"])
        console.print(f"resumed from {resume_from} at step {start_step}")

    def level_options() -> dict[str, Any] | None:
        return None if curriculum is None else {"level": curriculum.level}

    def chance() -> float:
        return float(puzzles[0 if curriculum is None else curriculum.level].chance_score)

    def extra_state() -> dict[str, Any]:
        return {
            "history": history,
            "curriculum": None if curriculum is None else curriculum.state_dict(),
        }

    metrics_path = run / "metrics.jsonl"
    writer = _tensorboard(run) if info.is_main else None
    if info.is_main:
        metrics_path.write_text("".join(json.dumps(h) + "\n" for h in history))
        (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))

    # --- the loop: rollout, learn, log, evaluate, checkpoint
    step = start_step
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not info.is_main) as progress:
        began = time.perf_counter()
        title = f"{cfg.curriculum} curriculum" if cfg.curriculum else cfg.env
        task = progress.add_task(title, total=cfg.steps, completed=start_step, stats="")
        last_eval: dict[str, float] = {}
        if start_step == 0:  # the untrained model's accuracy: the start
            with learner.full_weights():  # every rank gathers, rank 0 evaluates
                if info.is_main:
                    last_eval = evaluate(cfg, eval_envs, sampler, level_options())
            history.append({"step": 0, "env/chance": chance(), **last_eval, "time/elapsed_s": 0.0})
            if info.is_main:
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(history[-1]) + "\n")
        for step in range(start_step + 1, cfg.steps + 1):
            per_rank = cfg.groups_per_step * cfg.group_size  # each rank plays its own groups
            seeds = group_seeds(
                cfg.groups_per_step * info.world, cfg.group_size, seed=step_seed(cfg.seed, step)
            )[info.rank * per_rank :][:per_rank]
            params = SamplingParams(
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                constrain=cfg.constrain_answers,
                seed=step_seed(cfg.seed, step) + info.rank,
            )
            vlm.model.eval()
            with learner.full_weights():
                batch = rollout(
                    envs, sampler, params, seeds, cfg.group_size, options=level_options()
                )
            clock = time.perf_counter()
            if cfg.vllm_sleep:
                sampler.sleep()  # the engine's memory is the learner's while it steps
            learn = learner.step(batch, cfg.group_size)
            if cfg.vllm_sleep:
                sampler.wake_up()
            sampler.load_weights(vlm.model)  # the vLLM engine samples the new policy next
            row = {
                "step": step,
                "env/chance": chance(),
                **all_reduce_mean(step_metrics(batch, learn, time.perf_counter() - clock), info),
            }
            if step % cfg.eval_every == 0 or step == cfg.steps:
                with learner.full_weights():  # every rank gathers, rank 0 evaluates
                    if info.is_main:
                        last_eval = evaluate(cfg, eval_envs, sampler, level_options())
                row.update(last_eval)
            if curriculum is not None:
                solved = all_gather_list((batch.episode_scores == 1.0).tolist(), info)
                change = curriculum.update(solved)
                row["curriculum/level"] = curriculum.level
                if change:
                    console.print(
                        f"curriculum: level {change['from']} -> {change['to']} "
                        f"(solve rate {change['solve_rate']:.2f})"
                    )
            row["time/elapsed_s"] = time.perf_counter() - began
            history.append(row)
            if info.is_main:
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            if writer is not None:
                for key, value in row.items():
                    writer.add_scalar(key, value, step)
            progress.update(
                task,
                advance=1,
                stats=(
                    f"reward {row['rollout/reward_mean']:.2f} solve {row['rollout/solve_rate']:.2f}"
                    f" eval {last_eval.get('eval/solve_rate', float('nan')):.2f}"
                    f" {row['perf/tokens_per_s']:.0f} tok/s"
                ),
            )
            if step % cfg.save_every == 0:
                state_dicts = learner.state_dicts()  # every rank gathers, rank 0 writes
                if info.is_main:
                    save_checkpoint(run, step, vlm, state_dicts, cfg, extra_state())
            if all_reduce_sum(float(_should_stop(cfg, row, began)), info) > 0:
                break  # every rank stops at the same step
    # --- the end: final checkpoint, model export, curves
    if writer is not None:
        writer.close()
    evals = [(h["step"], h["eval/solve_rate"]) for h in history if "eval/solve_rate" in h]
    state_dicts = learner.state_dicts()  # every rank gathers, rank 0 writes
    if not info.is_main:
        return {"summary": {"steps": step, "eval_curve": evals}, "history": history}
    final = save_checkpoint(run, step, vlm, state_dicts, cfg, extra_state())
    vlm.model.save_pretrained(run / "final", state_dict=state_dicts[0])
    vlm.processor.save_pretrained(run / "final")
    plot_curves(history, run / "curves.png", f"{cfg.env} (GRPO)")
    summary = {
        "steps": step,
        "final_eval_solve_rate": evals[-1][1] if evals else None,
        "eval_curve": evals,
        "checkpoint": str(final),
        "wall_s": time.perf_counter() - began,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return {"summary": summary, "history": history}


def _tensorboard(run: Path) -> Any:
    """A TensorBoard writer in ``run/tb`` when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run / "tb"))


def _should_stop(cfg: TrainConfig, row: dict[str, float], began: float) -> bool:
    if cfg.stop_at_accuracy and row.get("eval/solve_rate", 0.0) >= cfg.stop_at_accuracy:
        console.print(f"held-out solve rate {row['eval/solve_rate']:.2f} reached the target")
        return True
    return bool(cfg.max_minutes) and time.perf_counter() - began > 60 * cfg.max_minutes


def memory_estimate(cfg: TrainConfig, ranks: int = 1) -> dict[str, float]:
    """GiB per rank for weights, gradients, AdamW states, the reference and activations.

    Parameters are counted on the meta device from the model's config (nothing is
    loaded); activations are a rough bound for one micro-batch of prompt (1024 tokens)
    plus completion. Under ``parallel = "fsdp"`` the weights, gradients, AdamW states and
    reference are split over ``ranks`` (plus the largest gathered block, ignored here);
    under DDP every rank holds them whole.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ssl-gym train``."""
    try:
        cfg = load_config(argv)
        if "--dry-run" in (sys.argv[1:] if argv is None else argv):
            dry_run(cfg)
            return 0
        if not cfg.model:
            raise ValueError("no model: give --model DIR (a local checkpoint directory)")
    except (ValueError, FileNotFoundError, tomllib.TOMLDecodeError) as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    result = train(cfg)
    s = result["summary"]
    if "wall_s" in s:  # rank 0 (or the only process)
        console.print(f"held-out accuracy by step: {s['eval_curve']}")
        console.print(f"wall time {s['wall_s']:.0f} s; curves in {Path(cfg.out) / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
