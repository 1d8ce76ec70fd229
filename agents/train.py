"""``ssl-gym train``: GRPO on ssl_gym puzzles, in one linear script.

Design notes
------------
* One step = one rollout of ``groups_per_step`` GRPO groups of ``group_size`` envs (each
  group reset with one seed: the same puzzle; under torchrun the groups are split over
  the ranks), one sampler call per turn, then the learner's PPO updates on the batch
  (``ppo_epochs x ppo_mini_batches`` optimizer steps; with one, the ratio is 1 up to
  numerics and clipping a safeguard).
* Everything random is derived from ``(seed, step)``: the env seeds of a step and the
  sampling generator. A run interrupted and resumed from a checkpoint therefore
  replays exactly the steps it would have taken (same weights on CPU).
* Training seeds are drawn below 2**30, held-out evaluation seeds are
  ``ssl_gym.seeds.eval_seeds`` (above 2**30, the set ``ssl-gym eval`` uses):
  evaluation puzzles are never trained on.
* Checkpoints are directories written under a temporary name and renamed into place,
  so a crash never leaves a checkpoint that looks complete but is not
  (:mod:`agents.checkpoint`); every setting, its command line, TOML files, recipes and
  the dry run are :mod:`agents.config`'s.
* A tiny random model learns nothing when it samples freely (it never writes a valid
  answer); ``constrain_answers`` restricts sampling to the puzzle's answer grammar.

Run ``ssl-gym train --help`` for every option; ``--config FILE.toml`` reads them from a
file (command-line options win).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import ssl_gym  # noqa: F401 - registers the SSL/* ids
from agents.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from agents.config import (
    TrainConfig,
    dry_run,
    learner_config,
    load_config,
    per_rank_groups,
)
from agents.distributed import (
    DistInfo,
    all_gather_list,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    close_distributed,
    init_distributed,
)
from agents.learner import COMPUTE_DTYPES, Learner
from agents.logs import MetricsLog, peak_flops, plot_curves
from agents.models import VLM, load_vlm, resolve_local_dir
from agents.policy import make_sampler, play_held_out
from agents.rollout import RolloutBatch, rollout
from agents.samplers.base import SamplingParams
from agents.tiny import build_tiny_model
from ssl_gym.curriculum import Curriculum, family_ladder
from ssl_gym.evaluation import metrics
from ssl_gym.files import write_atomic
from ssl_gym.seeds import eval_seeds, group_seeds, step_seed

console = Console()

#: The held-out metrics the trainer logs (as ``eval/NAME``), named as ``ssl-gym eval`` names them.
EVAL_METRICS = ("solve_rate", "mean_score", "mean_reward", "format_rate")


# --- evaluation and plots ------------------------------------------------------------------


class BlankImages(gym.ObservationWrapper):
    """Control: every image replaced by black pixels, the prompt kept."""

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Zero the images."""
        return {**observation, "images": tuple(np.zeros_like(im) for im in observation["images"])}


def train_env(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The id and kwargs to make: the training id, or the curriculum's ladder as a mixture."""
    if not cfg.curriculum:
        return cfg.env, dict(cfg.env_kwargs)
    return "SSL/Mix-v1", {"ids": family_ladder(cfg.curriculum), **cfg.env_kwargs}


def make_envs(cfg: TrainConfig, num_envs: int) -> gym.vector.VectorEnv:
    """A sync vector env of ``num_envs`` copies of the training id."""
    wrappers = [BlankImages] if cfg.blank_images else None
    env_id, kwargs = train_env(cfg)
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync", wrappers=wrappers, **kwargs
    )


def puzzles_of(cfg: TrainConfig) -> list[Any]:
    """The puzzle of each level (one level without a curriculum)."""
    env_id, kwargs = train_env(cfg)
    env = gym.make(env_id, **kwargs).unwrapped
    return [e.puzzle for e in getattr(env, "envs", [env])]


def evaluate(
    cfg: TrainConfig,
    envs: gym.vector.VectorEnv,
    sampler: Any,
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Greedy play of the fixed held-out seeds: ``ssl-gym eval``'s metrics, as ``eval/*``."""
    env_id = train_env(cfg)[0]
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


def step_metrics(
    batch: RolloutBatch,
    learn: dict[str, float],
    learn_s: float,
    params: int = 0,
    peak: float | None = None,
) -> dict[str, float]:
    """Rollout, perf and learner metrics of one step.

    ``perf/train_tokens_per_s`` counts the tokens the learner ran forward and backward
    (prompts and completions, every update); ``perf/mfu`` is ``6 x params`` FLOPs per
    such token against the device's ``peak`` (when known).
    """
    total = batch.env_seconds + batch.sample_seconds + learn_s
    tokens = learn.pop("learner/tokens", 0.0)
    perf = {"perf/train_tokens_per_s": tokens / max(learn_s, 1e-9)}
    if peak and params:
        perf["perf/mfu"] = 6.0 * params * perf["perf/train_tokens_per_s"] / peak
    return {
        **perf,
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
        # the logprobs of what really sampled when that is not the policy at T = 1
        "logprobs_mode": (
            "raw_logprobs"
            if cfg.temperature in (0.0, 1.0) and cfg.top_p == 1.0
            else "processed_logprobs"
        ),
    }


def prepare_model(cfg: TrainConfig, run: Path) -> Path:
    """The model directory: ``cfg.model``, or a freshly built tiny model."""
    if cfg.model != "tiny":
        return Path(cfg.model)
    target = run / "tiny-model"
    if not (target / "config.json").is_file():
        build_tiny_model(target, arch="idefics3", seed=cfg.seed)
    return target


def build_learner(cfg: TrainConfig, run: Path, info: DistInfo) -> tuple[VLM, Learner]:
    """Load the policy in fp32 (master weights) and the KL reference in the compute dtype."""
    model_dir = prepare_model(cfg, run) if info.is_main else run / "tiny-model"
    barrier(info)  # rank 0 may have built the tiny model
    path = model_dir if cfg.model == "tiny" else cfg.model
    vlm = load_vlm(path, device=cfg.device, dtype=torch.float32)
    compute = COMPUTE_DTYPES[cfg.dtype]
    with_kl = cfg.learner.kl_coef > 0
    reference = load_vlm(vlm.path, device=cfg.device, dtype=compute) if with_kl else None
    return vlm, Learner(vlm, learner_config(cfg), reference, dist_info=info)


def step_inputs(cfg: TrainConfig, info: DistInfo, step: int) -> tuple[list[int], SamplingParams]:
    """This rank's env seeds and the sampling settings of one step (from the run seed).

    The step's ``groups_per_step`` groups are the same for any world size; rank ``r``
    plays the ``r``-th equal share of them.
    """
    per_rank = per_rank_groups(cfg, info.world) * cfg.group_size
    seeds = group_seeds(cfg.groups_per_step, cfg.group_size, seed=step_seed(cfg.seed, step))
    seeds = seeds[info.rank * per_rank :][:per_rank]
    params = SamplingParams(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        constrain=cfg.constrain_answers,
        seed=step_seed(cfg.seed, step) + info.rank,
    )
    return seeds, params


def _progress(info: DistInfo) -> Progress:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=console, transient=False, disable=not info.is_main)


def _stats(row: dict[str, float], last_eval: dict[str, float]) -> str:
    return (
        f"reward {row['rollout/reward_mean']:.2f} solve {row['rollout/solve_rate']:.2f}"
        f" eval {last_eval.get('eval/solve_rate', float('nan')):.2f}"
        f" {row['perf/tokens_per_s']:.0f} tok/s"
    )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run GRPO; returns the final metrics and the history."""
    info = init_distributed(cfg.device)  # one process, or one rank of a torchrun job
    try:
        result = _train(cfg, info)
    except BaseException:
        close_distributed(info, wait=False)
        raise
    close_distributed(info)  # no rank exits while rank 0 still writes the final model
    return result


def _train(cfg: TrainConfig, info: DistInfo) -> dict[str, Any]:
    # --- setup: directories, model, learner, sampler, envs, curriculum, resume
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(Path(cfg.resume)) if cfg.resume else None
    if resume_from is not None:
        done = json.loads((resume_from / "trainer_state.json").read_text())["step"]
        if done >= cfg.steps:
            console.print(
                f"the run in {run} is finished ({done} of {cfg.steps} steps); "
                "give a larger --steps to train on"
            )
            return {"summary": {"steps": done, "finished": True}, "history": []}
    vlm, learner = build_learner(cfg, run, info)
    puzzles = puzzles_of(cfg)
    curriculum = None
    if cfg.curriculum:
        low, high = cfg.curriculum_band
        curriculum = Curriculum(len(puzzles), band=(low, high), window=cfg.curriculum_window)
    sampler = make_sampler(cfg.sampler, vlm, **sampler_engine(cfg))
    envs = make_envs(cfg, per_rank_groups(cfg, info.world) * cfg.group_size)
    eval_envs = make_envs(cfg, cfg.eval_episodes)
    start_step, history = 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, learner)
        start_step, history = state["step"], state.get("history", [])
        if curriculum is not None and state.get("curriculum"):
            curriculum = Curriculum.from_state_dict(state["curriculum"])
        console.print(f"resumed {run} from {resume_from} at step {start_step}")
    level = None if curriculum is None else curriculum.level
    log = MetricsLog(run, history, info.is_main)
    if info.is_main:  # the settings the run goes on with, command-line options included
        write_atomic(run / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in vlm.model.parameters())

    def sampling_weights() -> contextlib.AbstractContextManager[None]:
        # the HF sampler samples from the (gathered) policy; vLLM has weights of its own, so
        # a sharded policy stays sharded through its rollout
        return learner.full_weights() if cfg.sampler == "hf" else contextlib.nullcontext()

    peak = peak_flops(cfg.device)

    def held_out() -> dict[str, float]:  # every rank gathers the weights, rank 0 evaluates
        options = None if curriculum is None else {"level": curriculum.level}
        with sampling_weights(), learner.compute():
            return evaluate(cfg, eval_envs, sampler, options) if info.is_main else {}

    def extra_state() -> dict[str, Any]:
        curriculum_state = None if curriculum is None else curriculum.state_dict()
        return {"history": history, "curriculum": curriculum_state}

    # --- the loop: rollout, learn, log, evaluate, checkpoint
    step, began, last_eval = start_step, time.perf_counter(), {}
    with _progress(info) as progress:
        title = f"{cfg.curriculum} curriculum" if cfg.curriculum else cfg.env
        task = progress.add_task(title, total=cfg.steps, completed=start_step, stats="")
        if start_step == 0:  # the untrained model's held-out score: the start
            last_eval = held_out()
            chance = float(puzzles[level or 0].chance_score)
            history.append({"step": 0, "env/chance": chance, **last_eval, "time/elapsed_s": 0.0})
            log.write(history[-1])
        for step in range(start_step + 1, cfg.steps + 1):
            level = None if curriculum is None else curriculum.level
            seeds, params = step_inputs(cfg, info, step)
            vlm.model.eval()
            options = None if level is None else {"level": level}
            with sampling_weights(), learner.compute():
                batch = rollout(envs, sampler, params, seeds, cfg.group_size, options=options)
            clock = time.perf_counter()
            if cfg.vllm_sleep:
                sampler.sleep()  # the engine's memory is the learner's while it steps
            learn = learner.step(batch, cfg.group_size)
            if cfg.vllm_sleep:
                sampler.wake_up()
            sampler.load_weights(vlm.model)  # the vLLM engine samples the new policy next
            perf = step_metrics(batch, learn, time.perf_counter() - clock, n_params, peak)
            chance = float(puzzles[level or 0].chance_score)
            row = {"step": step, "env/chance": chance, **all_reduce_mean(perf, info)}
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                last_eval = held_out()
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
            log.write(row)
            progress.update(task, advance=1, stats=_stats(row, last_eval))
            if cfg.save_every and step % cfg.save_every == 0:
                state_dicts = learner.state_dicts()  # every rank gathers, rank 0 writes
                if info.is_main:
                    save_checkpoint(run, step, vlm, state_dicts, cfg, extra_state())
            if all_reduce_sum(float(_should_stop(cfg, row, began)), info) > 0:
                break  # every rank stops at the same step
    # --- the end: final checkpoint, model export, curves
    log.close()
    return finish(cfg, run, vlm, learner, info, step, history, extra_state(), began)


def finish(
    cfg: TrainConfig,
    run: Path,
    vlm: VLM,
    learner: Learner,
    info: DistInfo,
    step: int,
    history: list[dict[str, float]],
    state: dict[str, Any],
    began: float,
) -> dict[str, Any]:
    """The final checkpoint, the exported model, the curves and ``summary.json``."""
    evals = [(h["step"], h["eval/solve_rate"]) for h in history if "eval/solve_rate" in h]
    state_dicts = learner.state_dicts()  # every rank gathers, rank 0 writes
    if not info.is_main:
        return {"summary": {"steps": step, "eval_curve": evals}, "history": history}
    final = save_checkpoint(run, step, vlm, state_dicts, cfg, state)
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


def _should_stop(cfg: TrainConfig, row: dict[str, float], began: float) -> bool:
    if cfg.stop_at_accuracy and row.get("eval/solve_rate", 0.0) >= cfg.stop_at_accuracy:
        console.print(f"held-out solve rate {row['eval/solve_rate']:.2f} reached the target")
        return True
    return bool(cfg.max_minutes) and time.perf_counter() - began > 60 * cfg.max_minutes


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ssl-gym train``."""
    try:
        cfg = load_config(argv)
        if "--dry-run" in (sys.argv[1:] if argv is None else argv):
            dry_run(cfg)
            return 0
        if not cfg.model:
            raise ValueError("no model: give --model DIR (a local checkpoint directory)")
        if cfg.model != "tiny":
            resolve_local_dir(cfg.model)  # a missing directory or a hub id: one line
    except (ValueError, FileNotFoundError, tomllib.TOMLDecodeError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
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
