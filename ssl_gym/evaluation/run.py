"""Held-out runs: the ids, the episode log, resuming, pass@k."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ssl_gym.envs import EnvEntry, entries, make_puzzle_env, unknown_id
from ssl_gym.evaluation.policies import Outcome, Policy, make_policy
from ssl_gym.evaluation.report import summarize, write_summary
from ssl_gym.files import write_atomic
from ssl_gym.seeds import eval_seeds


def match_ids(patterns: Sequence[str]) -> list[str]:
    """Registered puzzle ids (``-Hint`` ids included) matching any glob, in registry order.

    Raises:
        ValueError: If a pattern matches no id (the message names it).
    """
    every = [e.id for e in entries(hinted=True)]
    for pat in patterns:
        if not any(fnmatch.fnmatch(i, pat) for i in every):
            raise ValueError(
                unknown_id(pat, "puzzle id or pattern")
                + " (ids look like 'SSL/Jigsaw-3x3-v2'; mixtures are not evaluated)"
            )
    return [i for i in every if any(fnmatch.fnmatch(i, pat) for pat in patterns)]


# --- the episode log ---------------------------------------------------------------------


def load_episodes(path: Path) -> list[dict[str, Any]]:
    """The records of ``episodes.jsonl``; a torn last line is cut off the file.

    Raises:
        ValueError: If a complete line (one ending in a newline) is not valid JSON.
    """
    if not path.is_file():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    records = []
    for n, line in enumerate(raw[:end].split(b"\n")[:-1]):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {n + 1} is not valid JSON: {err}") from err
    tail = raw[end:]
    try:  # a whole record whose newline was not written yet
        records.append(json.loads(tail))
        end = len(raw)
        tail = b"\n"
    except json.JSONDecodeError:
        tail = b""
    with path.open("r+b") as f:
        f.truncate(end)
        f.seek(end)
        f.write(tail)
    return records


def check_run(out: Path, header: dict[str, Any]) -> None:
    """Write ``run.json``, or check that a resumed run has the same settings.

    Raises:
        ValueError: If ``out`` holds a run with other settings (the message names them).
    """
    path = out / "run.json"
    if path.is_file():
        before = json.loads(path.read_text())
        differ = sorted(k for k in set(before) | set(header) if before.get(k) != header.get(k))
        if differ:
            detail = "; ".join(
                f"{k}: {before.get(k)!r} there, {header.get(k)!r} now" for k in differ
            )
            raise ValueError(
                f"{out} holds an evaluation with other settings ({detail}); "
                "use another --out folder, or the same settings to resume"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(header, indent=2))


# --- the run -----------------------------------------------------------------------------


def id_chance(entry: EnvEntry) -> float:
    """What a player who never looks earns on an id.

    The chance score, or on a ``-Hint`` id the blind-optimal episode reward
    (:attr:`ssl_gym.envs.PuzzleEnv.blind_value`).
    """
    if not entry.hinted:
        return entry.chance_score
    env = make_puzzle_env(entry.id)
    env.reset(seed=0)
    return env.blind_value


def _record(
    entry: EnvEntry, index: int, seed: int, outs: list[Outcome], chance: float
) -> dict[str, Any]:
    return {
        "id": entry.id,
        "episode": index,
        "seed": seed,
        "family": entry.family,
        "difficulty": entry.difficulty,
        "hinted": entry.hinted,
        "chance": chance,
        "rewards": [o.reward for o in outs],
        "scores": [o.score for o in outs],
        "format_ok": [o.format_ok for o in outs],
        "turns": [o.turns for o in outs],
    }


def _todo(ids: Sequence[str], episodes: int, seed: int, done: set[tuple[str, int]]) -> list:
    return [
        (
            env_id,
            [
                (i, s)
                for i, s in enumerate(eval_seeds(env_id, episodes, seed))
                if (env_id, i) not in done
            ],
        )
        for env_id in ids
    ]


def run_eval(
    ids: Sequence[str],
    policy: Policy | str,
    episodes: int,
    out: str | Path,
    seed: int = 0,
    samples: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``policy`` on ``episodes`` held-out puzzles of each id; resume if possible.

    Args:
        ids: Registered puzzle ids (see :func:`match_ids` for globs).
        policy: A :class:`Policy` or a spec for :func:`make_policy`.
        episodes: Held-out puzzles per id.
        out: Folder of the run (``run.json``, ``episodes.jsonl``, summaries, plots).
        seed: Which held-out set (:func:`ssl_gym.seeds.eval_seeds`).
        samples: Completions per puzzle (the K of pass@k).
        progress: Show a progress bar.

    A policy with a ``prepare()`` method (a model policy: it loads the model) is prepared
    before ``run.json`` is written, so a run whose model fails to load can be rerun, fixed,
    into the same folder.

    Returns:
        The summary (also written to ``out/summary.json``).
    """
    if samples < 1 or episodes < 1:
        raise ValueError(f"samples and episodes must be >= 1, got {samples}, {episodes}")
    pol = make_policy(policy) if isinstance(policy, str) else policy
    table = {e.id: e for e in entries(hinted=True)}
    unknown = [i for i in ids if i not in table]
    if unknown or not ids:
        raise ValueError(f"not registered puzzle ids: {unknown or 'none given'}")
    for env_id in ids:  # bad settings fail here, before the run folder is bound to them
        make_puzzle_env(env_id, **pol.settings().get("env_kwargs", {}))
    prepare = getattr(pol, "prepare", None)
    if callable(prepare):  # a model that fails to load leaves no run record behind
        prepare()
    folder = Path(out)
    header = {"policy": pol.name, "seed": seed, "ids": list(ids), "samples": samples}
    check_run(folder, {**header, **pol.settings()})
    log = folder / "episodes.jsonl"
    records = load_episodes(log)
    done = {(r["id"], r["episode"]) for r in records}
    todo = _todo(ids, episodes, seed, done)
    chances = {env_id: id_chance(table[env_id]) for env_id, _ in todo}
    with _bar(progress, sum(len(t) for _, t in todo), pol.name) as advance, log.open("a") as f:
        for env_id, pending in todo:
            for start in range(0, len(pending), max(1, pol.batch_size)):
                chunk = pending[start : start + max(1, pol.batch_size)]
                outs = pol.play(env_id, [s for _, s in chunk], samples)
                for (i, s), o in zip(chunk, outs, strict=True):
                    rec = _record(table[env_id], i, s, o, chances[env_id])
                    f.write(json.dumps(rec) + "\n")
                    records.append(rec)
                f.flush()
                os.fsync(f.fileno())
                advance(len(chunk))
    summary = summarize(records, ids, episodes, samples, {**header, **pol.settings()})
    write_summary(summary, folder)
    return summary


class _bar:  # noqa: N801 - used as a context manager like a function
    """A rich progress bar whose ``__enter__`` returns ``advance(n)``."""

    def __init__(self, show: bool, total: int, name: str) -> None:
        from rich.progress import Progress

        self.progress = Progress(disable=not show, transient=False)
        self.task = self.progress.add_task(f"eval {name}", total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.__enter__()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)
