"""Env throughput: instances per second for every registered id, and ratios to baselines.

Every id: the single-turn puzzles, their ``-Hint`` twins (episodes answered right at the
first turn, so the figure is the hinted shell's overhead) and the mixtures (except
``SSL/Mix-v1``, which needs its ids). For each id, on one core (the process is pinned where
the OS allows it):

* ``single``: ``reset`` + ``step(oracle)`` on one env;
* ``sync``: the same through ``gym.make_vec(..., vectorization_mode="sync")``;
* ``async``: through an async vector env with ``--workers`` subprocesses (this one uses
  that many cores; the figure is also reported per worker);
* ``reset_over_jpeg_decode``: one ``reset`` in units of one PIL decode of a 224 x 224
  JPEG of a photograph (quality 90; the same unit for every id);
* ``episode_over_copy``: an episode (reset + step) in units of copying its pixels once;
* ``reset_over_source_decode`` (for :data:`FOLDER_IDS`): a reset from a folder of 640 x
  480 JPEG photographs (COCO's size) in units of decoding one of those files.

The two ratios are measured in the same run as their baselines, in turns (short slices of
reset, episode, JPEG decode and pixel copy, alternating), so a slow spell of a shared
machine falls on both sides of each ratio. ``single`` is the episode figure of that run.

Also the procedural image source alone at 224 px. Prints a table; a full run (every id,
no ``--quick``) writes ``benchmarks/results/env_throughput.json``, a partial one writes
only where ``--out`` says.

    python benchmarks/env_throughput.py [--ids 'SSL/Jigsaw-*' ...] [--seconds 0.5] [--quick]
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

import ssl_gym
from ssl_gym.core import format_answer
from ssl_gym.envs import entries, mixture_ids
from ssl_gym.files import write_atomic
from ssl_gym.images import ProceduralSource, make_source

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


def in_turns(
    fns: dict[str, Callable[[], object]], seconds: float, rounds: int = 5
) -> dict[str, float]:
    """Seconds per call of each function, measured in turns.

    After one warm-up call each, ``rounds`` rounds give every function in turn a slice of
    ``seconds / rounds`` (at least one call), so machine noise falls on all of them alike.
    """
    for fn in fns.values():
        fn()
    calls, spent = dict.fromkeys(fns, 0), dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            n, start = 0, time.perf_counter()
            while n == 0 or (elapsed := time.perf_counter() - start) < seconds / rounds:
                fn()
                n += 1
            calls[name] += n
            spent[name] += elapsed
    return {name: spent[name] / calls[name] for name in fns}


@lru_cache(maxsize=1)
def photo_jpeg(shape: tuple[int, int] = (224, 224)) -> bytes:
    """A JPEG (quality 90) of a photograph fitted to ``shape``; procedural without skimage."""
    try:
        source = make_source("photos")
    except ImportError:
        source = ProceduralSource()
    buf = io.BytesIO()
    Image.fromarray(source.sample(np.random.default_rng(0), shape)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def decode(jpeg: bytes) -> np.ndarray:
    """The pixels of a JPEG, decoded by PIL."""
    return np.asarray(Image.open(io.BytesIO(jpeg)))


def photo_folder(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JPEG photographs (640 x 480, quality 90) in ``root``, sorted.

    Each is a random crop (70 to 100 % of each side) of one of the photos bundled with
    scikit-image, taken in turn: the files all differ, though several show one photo.
    """
    photos = make_source("photos").images
    paths = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        image = Image.fromarray(np.asarray(photos[k % len(photos)]))
        w, h = image.size
        cw, ch = (int(side * rng.uniform(0.7, 1.0)) for side in (w, h))
        left, top = int(rng.integers(w - cw + 1)), int(rng.integers(h - ch + 1))
        crop = image.resize((640, 480), Image.Resampling.BILINEAR, (left, top, left + cw, top + ch))
        paths.append(root / f"photo_{k:03d}.jpg")
        crop.save(paths[-1], quality=90)
    return paths


FOLDER_IDS = ("SSL/Rotation-4way-v1", "SSL/Jigsaw-3x3-v2", "SSL/Similarity-K8-Hard-v2")
"""Ids also measured on a folder of JPEG photographs (``reset_over_source_decode``)."""


def folder_ratio(env_id: str, folder: Path, seconds: float) -> float:
    """One reset from a folder of 640 x 480 JPEGs, in units of decoding one such file.

    The reset decodes its file (the folder's small files are not cached) and makes the
    puzzle from it; the unit is PIL opening and decoding one of the same files to RGB.
    """
    env = gym.make(env_id, image_source=f"folder:{folder}", disable_env_checker=True)
    files = sorted(folder.glob("*.jpg"))
    seeds, which = iter(range(10**9)), iter(range(10**9))

    def decode_file() -> np.ndarray:
        return np.asarray(Image.open(files[next(which) % len(files)]).convert("RGB"))

    t = in_turns({"reset": lambda: env.reset(seed=next(seeds)), "decode": decode_file}, seconds)
    return t["reset"] / t["decode"]


def single_and_ratios(env_id: str, seconds: float) -> dict[str, float]:
    """Episodes/s on one env, and reset and episode times over the same run's baselines.

    Reset, episode (reset + ``step`` with the right answer), a 224 px JPEG decode and a
    copy of the observation's pixels, in turns.
    """
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    formats = answer_formats(env_id)
    obs, _ = env.reset(seed=0)
    jpeg = photo_jpeg()
    seeds = iter(range(1, 10**9))

    def episode() -> None:
        _, info = env.reset(seed=next(seeds))
        env.step(format_answer(info["answer"], formats[info.get("task_index", 0)]))

    t = in_turns(
        {
            "reset": lambda: env.reset(seed=next(seeds)),
            "episode": episode,
            "jpeg_decode": lambda: decode(jpeg),
            "copy": lambda: [np.array(im, copy=True) for im in obs["images"]],
        },
        seconds,
    )
    return {
        "single": 1.0 / t["episode"],
        "reset_over_jpeg_decode": t["reset"] / t["jpeg_decode"],
        "episode_over_copy": t["episode"] / t["copy"],
    }


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
    parser.add_argument("--ids", nargs="+", default=["*"], help="globs over registered ids")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--quick", action="store_true", help="0.1 s per measurement")
    parser.add_argument("--workers", type=int, default=2, help="async vector env workers")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: benchmarks/results/env_throughput.json for a full run, "
        "none for a partial or --quick one)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds = 0.1
    every = [e.id for e in entries(hinted=True)] + mixture_ids()[:-1]  # Mix-v1 needs ids
    ids = [i for i in every if any(fnmatch.fnmatch(i, glob) for glob in args.ids)]
    if not ids:
        parser.error(f"no registered id matches {' '.join(args.ids)}")
    full = len(ids) == len(every) and not args.quick
    out = args.out or (RESULTS / "env_throughput.json" if full else None)
    all_cores = pin_one_core()
    results = {"procedural_images_per_s_224": procedural_rate(args.seconds), "ids": {}}
    print(f"procedural source, 224x224: {results['procedural_images_per_s_224']:.0f} images/s")
    print(
        f"{'id':32s} {'single':>8s} {'sync x4':>8s} {'async x' + str(args.workers):>9s}"
        f" {'reset/jpeg':>10s} {'episode/copy':>12s}"
    )
    folder = Path(tempfile.mkdtemp(prefix="ssl_gym_jpegs_"))
    photo_folder(folder, 50)
    for env_id in ids:
        pin_one_core()
        row = single_and_ratios(env_id, args.seconds)
        if env_id in FOLDER_IDS:
            row["reset_over_source_decode"] = folder_ratio(env_id, folder, args.seconds)
        row["sync"] = vector_rate(env_id, "sync", 4, args.seconds)
        unpin(all_cores)  # async workers inherit the affinity: give them every core
        row["async"] = vector_rate(env_id, "async", args.workers, args.seconds)
        row["async_per_worker"] = row["async"] / args.workers
        results["ids"][env_id] = row
        print(
            f"{env_id:32s} {row['single']:8.0f} {row['sync']:8.0f} {row['async']:9.0f}"
            f" {row['reset_over_jpeg_decode']:10.1f} {row['episode_over_copy']:12.0f}"
        )
        if "reset_over_source_decode" in row:
            ratio = row["reset_over_source_decode"]
            print(f"  from 640x480 JPEG files: a reset = {ratio:.1f} decodes")
    shutil.rmtree(folder, ignore_errors=True)
    results["meta"] = {
        "ssl_gym": ssl_gym.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seconds_per_measurement": args.seconds,
        "unit": "instances/s; ratios: time of one reset (episode) over one JPEG decode (copy)",
    }
    if out is None:
        print("partial or --quick run: results not written (pass --out to keep them)")
        return
    write_atomic(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
