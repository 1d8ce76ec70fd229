"""Env throughput: instances per second for every registered id.

Every id: the single-turn puzzles, their ``-Hint`` twins (episodes answered right at the
first turn, so the figure is the hinted shell's overhead) and the mixtures (except
``SSL/Mix-v0``, which needs its ids). For each id, on one core (the process is pinned where
the OS allows it):

* ``single``: ``reset`` + ``step(oracle)`` on one env;
* ``sync``: the same through ``gym.make_vec(..., vectorization_mode="sync")``;
* ``async``: through an async vector env with ``--workers`` subprocesses (this one uses
  that many cores; the figure is also reported per worker);
* ``episode_over_copy``: an episode (reset + step) in units of copying its pixels once;
* ``shell_over_copy``: what the env shell adds on top of the puzzle's own work
  (generate + verify), in units of copying the observation's pixels once (single-turn
  ids only).

Also the procedural image source alone at 224 px. Prints a table and writes
``benchmarks/results/env_throughput.json``.

    python benchmarks/env_throughput.py [--ids 'SSL/Jigsaw-*'] [--seconds 0.5] [--quick]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import ssl_gym
from ssl_gym.core import format_answer
from ssl_gym.envs import entries, mixture_ids
from ssl_gym.images import ProceduralSource

RESULTS = Path(__file__).parent / "results"


def rate(fn, seconds: float, batch: int = 1) -> float:
    """Calls of ``fn`` per second (times ``batch`` items per call), after one warm-up."""
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n * batch / elapsed


def answer_formats(env_id: str) -> list[str]:
    """The answer format of the id, or of each task of a mixture (by ``task_index``)."""
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    return [e.puzzle.config.answer_format for e in getattr(env, "envs", [env])]


def right_answers(infos: dict, formats: list[str], n: int) -> list[str]:
    """The ground truth of each env of a vector reset, written in its answer format."""
    tasks = infos.get("task_index", [0] * n)
    return [format_answer(infos["answer"][i], formats[int(tasks[i])]) for i in range(n)]


def single_rate(env_id: str, seconds: float) -> float:
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    formats = answer_formats(env_id)
    seed = iter(range(10**9))

    def one() -> None:
        _, info = env.reset(seed=next(seed))
        env.step(format_answer(info["answer"], formats[info.get("task_index", 0)]))

    return rate(one, seconds)


def vector_rate(env_id: str, mode: str, num_envs: int, seconds: float) -> float:
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    formats = answer_formats(env_id)
    _, infos = envs.reset(seed=0)
    state = {"actions": right_answers(infos, formats, num_envs)}

    def one() -> None:
        envs.step(state["actions"])  # every episode ends: next-step autoreset draws new puzzles
        _, infos = envs.reset()
        state["actions"] = right_answers(infos, formats, num_envs)

    try:
        return rate(one, seconds, batch=num_envs)
    finally:
        envs.close()


def copy_ratios(env_id: str, seconds: float) -> tuple[float, float]:
    """(episode / pixel copy, env shell overhead / pixel copy).

    The shell overhead is an env episode (reset + step) minus the same puzzle work done
    directly (generate + verify): what the Gymnasium layer adds on top of the puzzle.
    """
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    obs, _ = env.reset(seed=0)
    puzzle, source = env.puzzle, env.source
    oracle = puzzle.oracle(env.instance)
    seeds = iter(range(10**9))

    def direct() -> None:
        inst = puzzle.generate(np.random.default_rng(next(seeds)), source)
        puzzle.verify(inst, oracle)

    def shell() -> None:
        env.reset(seed=next(seeds))
        env.step(oracle)

    copy = rate(lambda: [np.array(im, copy=True) for im in obs["images"]], seconds / 2)
    through_env, bare = rate(shell, seconds), rate(direct, seconds)
    overhead = max(1.0 / through_env - 1.0 / bare, 0.0)
    return copy / through_env, overhead * copy


def pin_one_core() -> set[int]:
    """Pin this process to its first allowed core; returns the cores it had."""
    if not hasattr(os, "sched_setaffinity"):
        return set()
    cores = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {min(cores)})
    return cores


def unpin(cores: set[int]) -> None:
    """Give this process (and the workers it starts) the cores it had."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def procedural_rate(seconds: float) -> float:
    src, rng = ProceduralSource(), np.random.default_rng(0)
    return rate(lambda: src.sample(rng, (224, 224)), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", default="*", help="glob over registered ids")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--quick", action="store_true", help="0.1 s per measurement")
    parser.add_argument("--workers", type=int, default=2, help="async vector env workers")
    parser.add_argument("--out", type=Path, default=RESULTS / "env_throughput.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 0.1
    every = [e.id for e in entries(hinted=True)] + mixture_ids()[:-1]  # Mix-v0 needs ids
    ids = [i for i in every if fnmatch.fnmatch(i, args.ids)]
    all_cores = pin_one_core()
    results = {"procedural_images_per_s_224": procedural_rate(args.seconds), "ids": {}}
    print(f"procedural source, 224x224: {results['procedural_images_per_s_224']:.0f} images/s")
    print(
        f"{'id':32s} {'single':>8s} {'sync x4':>8s} {'async x' + str(args.workers):>9s}"
        f" {'episode/copy':>12s} {'shell/copy':>10s}"
    )
    for env_id in ids:
        pin_one_core()
        row = {
            "single": single_rate(env_id, args.seconds),
            "sync": vector_rate(env_id, "sync", 4, args.seconds),
        }
        if "-Hint-" not in env_id and "/Mix-" not in env_id:
            row["episode_over_copy"], row["shell_over_copy"] = copy_ratios(env_id, args.seconds)
        unpin(all_cores)  # async workers inherit the affinity: give them every core
        row["async"] = vector_rate(env_id, "async", args.workers, args.seconds)
        row["async_per_worker"] = row["async"] / args.workers
        results["ids"][env_id] = row
        print(
            f"{env_id:32s} {row['single']:8.0f} {row['sync']:8.0f} {row['async']:9.0f}"
            f" {row.get('episode_over_copy', float('nan')):12.0f}"
            f" {row.get('shell_over_copy', float('nan')):10.1f}"
        )
    results["meta"] = {
        "ssl_gym": ssl_gym.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seconds_per_measurement": args.seconds,
        "unit": "instances/s",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
