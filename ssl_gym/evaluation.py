r"""``ssl-gym eval``: score a policy on held-out puzzles, resumably.

    ssl-gym eval --policy random|oracle|blind|hf:DIR|vllm:DIR|openai:URL \\
        --envs 'SSL/Jigsaw-*' --episodes 100 --seed 0 --out outputs/eval/jigsaw

## Policies

* ``random``: a uniformly random valid answer (``puzzle.random_answer``) in the id's
  answer format; its expected score is the id's chance score.
* ``oracle``: the ground truth (``puzzle.oracle``); scores 1.
* ``blind``: never sees an image (the blind adversary, ``ssl_gym.audit.blind``). On a
  single-turn id it answers one constant, the answer that scores best over
  :data:`BLIND_FIT_EPISODES` *training* puzzles: what a policy that learned the answer
  prior but not the images would get. On a ``-Hint`` id it reads every reply, learns on
  the training puzzles what the replies say about the answer, and tries the choices in
  turn: the strongest play the project knows without the pixels.
* ``hf:DIR``, ``vllm:DIR``: a local checkpoint sampled with ``agents``' HF or vLLM
  sampler; ``openai:URL``: an OpenAI-compatible endpoint (``--model`` names the model,
  the key is read from ``OPENAI_API_KEY``). ``--samples K`` completions per puzzle give
  pass@k; sampling is greedy when ``K == 1`` unless ``--temperature`` is given (1.0
  otherwise). Hinted ids (``-Hint``) are played over all their turns, the env's
  feedback and hints coming back as the next user turn.

## Held-out seeds

:func:`eval_seeds` fixes the puzzles of every id: ``--seed S`` selects the block
``[(S + 1) * 2**30, (S + 2) * 2**30)``, and inside it the seeds of an id start at an offset
given by the CRC-32 of the id (the ``-Hint`` id shares the puzzles of its single-turn id).
Training seeds are drawn below ``ssl_gym.vector.SEED_LIMIT = 2**30``, so no held-out
puzzle is ever trained on; the trainer's own held-out evaluation uses the same function.
Episode ``i`` is the same puzzle whatever ``--episodes`` is, so "Jigsaw-3x3, 100 episodes"
means the same set everywhere.

## Metrics (per id, family, difficulty and overall, pooled over episodes)

``mean_reward``, ``mean_score`` (puzzle score, partial credit included), ``solve_rate``
(score 1), ``format_rate`` (the final answer well formed and readable), ``chance``,
``normalised_score`` = (score - chance) / (1 - chance) (0 = chance, 1 = solved; on a
``-Hint`` id the episode reward against the blind-optimal reward, which is ``chance``
there),
``pass@k`` (unbiased estimator of Chen et al. 2021, from K samples), ``mean_turns``.

## Output and resuming

``DIR/run.json`` (the settings), ``DIR/episodes.jsonl`` (one line per finished puzzle,
appended as they finish), and at the end ``DIR/summary.json``, ``DIR/summary.md``,
``DIR/score_by_family.png`` and ``DIR/score_by_difficulty.png`` (each written to a
temporary file and renamed). Rerun the same command after a crash: the puzzles already
in ``episodes.jsonl`` are not played again (a torn last line is dropped). A rerun with a
different policy, seed, id list or sampling settings is refused; a larger ``--episodes``
extends the run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

import ssl_gym  # noqa: F401 - registers the SSL/* ids
from ssl_gym.cli import key_value
from ssl_gym.core import ANSWER_FORMATS, Instance, Puzzle, extract_answer, format_answer
from ssl_gym.envs import EnvEntry, PuzzleEnv, entries, make_puzzle_env, single_turn_id
from ssl_gym.files import write_atomic
from ssl_gym.vector import SEED_LIMIT, policy_rng

#: Training puzzles (seeds ``0 .. n-1``, all below ``SEED_LIMIT``) the blind policy fits on.
BLIND_FIT_EPISODES = 200
#: Safety cap on the turns of one episode for the answer policies.
MAX_TURNS = 64
SIMPLE_POLICIES = ("random", "oracle", "blind")
MODEL_POLICIES = ("hf", "vllm", "openai")


# --- held-out seeds, ids, pass@k ---------------------------------------------------------


def eval_seeds(env_id: str, episodes: int, seed: int = 0) -> list[int]:
    """The held-out reset seeds of ``env_id``: episode ``i`` always gets the ``i``-th.

    All lie in ``[(seed + 1) * SEED_LIMIT, (seed + 2) * SEED_LIMIT)``: above every training
    seed, and disjoint for different ``seed`` values. The offset inside the block is the
    CRC-32 of the id (hinted ids share their single-turn id's puzzles).

    Args:
        env_id: A registered id (or any name, e.g. a mixture id).
        episodes: How many seeds.
        seed: Which held-out set (0 is the canonical one).

    Raises:
        ValueError: If ``episodes`` or ``seed`` is negative or too large.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 0 <= episodes:
        raise ValueError(f"episodes must be a non-negative integer, got {episodes!r}")
    if episodes > SEED_LIMIT:
        raise ValueError(f"at most {SEED_LIMIT} held-out episodes per id, got {episodes}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the evaluation seed must be a non-negative integer, got {seed!r}")
    offset = zlib.crc32(single_turn_id(env_id).encode("utf-8"))
    base = (seed + 1) * SEED_LIMIT
    return [base + (offset + i) % SEED_LIMIT for i in range(episodes)]


def match_ids(patterns: Sequence[str]) -> list[str]:
    """Registered puzzle ids (``-Hint`` ids included) matching any glob, in registry order.

    Raises:
        ValueError: If a pattern matches no id (the message names it).
    """
    every = [e.id for e in entries(hinted=True)]
    for pat in patterns:
        if not any(fnmatch.fnmatch(i, pat) for i in every):
            raise ValueError(
                f"no registered puzzle id matches {pat!r}; see `ssl-gym list --hints` "
                "(ids look like 'SSL/Jigsaw-3x3-v1'; mixtures are not evaluated)"
            )
    return [i for i in every if any(fnmatch.fnmatch(i, pat) for pat in patterns)]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``1 - C(n - c, k) / C(n, k)``, computed as a stable product.

    Raises:
        ValueError: Unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_ks(samples: int) -> list[int]:
    """The k reported for ``samples`` completions per puzzle: 1, powers of 2, and K."""
    return sorted({1, samples} | {2**j for j in range(1, samples.bit_length()) if 2**j <= samples})


# --- policies ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """The final result of one sample (one played episode) of a puzzle."""

    reward: float
    score: float
    format_ok: bool
    turns: int


class Policy(Protocol):
    """Plays the puzzles of one id: ``samples`` episodes per seed."""

    name: str
    batch_size: int

    def settings(self) -> dict[str, Any]:
        """What a resumed run must share with the first (besides the policy name)."""
        ...

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """For each seed, ``samples`` outcomes."""
        ...


def _current(env: PuzzleEnv) -> Instance:
    if env.instance is None:
        raise RuntimeError("reset() produced no instance")
    return env.instance


Answer = Callable[[PuzzleEnv, np.random.Generator], str]


@dataclass
class AnswerPolicy:
    """A policy that writes one completion per turn from the puzzle object (no model)."""

    name: str
    answer: Answer
    batch_size: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments of every id (e.g. ``answer_format``)."""
    _envs: dict[str, PuzzleEnv] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The env arguments, when there are any."""
        return {"env_kwargs": self.env_kwargs} if self.env_kwargs else {}

    def env(self, env_id: str) -> PuzzleEnv:
        """One cached env per id."""
        if env_id not in self._envs:
            self._envs[env_id] = make_puzzle_env(env_id, **self.env_kwargs)
        return self._envs[env_id]

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """Play every seed ``samples`` times; sample ``j`` of seed ``s`` has its own rng."""
        env = self.env(env_id)
        return [[self._episode(env, s, j) for j in range(samples)] for s in seeds]

    def _episode(self, env: PuzzleEnv, seed: int, sample: int) -> Outcome:
        rng = policy_rng(seed, sample)
        env.reset(seed=seed)
        for _ in range(MAX_TURNS):
            _, reward, terminated, truncated, info = env.step(self.answer(env, rng))
            if terminated or truncated:
                break
        return Outcome(float(reward), float(info["score"]), bool(info["format_ok"]), info["turn"])


def _random_answer(env: PuzzleEnv, rng: np.random.Generator) -> str:
    puzzle = env.puzzle
    return format_answer(puzzle.random_answer(_current(env), rng), puzzle.config.answer_format)


def _oracle_answer(env: PuzzleEnv, rng: np.random.Generator) -> str:
    return env.puzzle.oracle(_current(env))


@dataclass
class BlindPolicy:
    """The blind adversary (:class:`ssl_gym.audit.blind.BlindPlayer`) on every id.

    It never sees an image. On a single-turn id it answers the best constant answer of
    ``fit_episodes`` training puzzles; on a ``-Hint`` id it reads every reply, learns on
    the training puzzles what replies say about the answer, and tries the choices in turn.
    """

    name: str = "blind"
    batch_size: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    fit_episodes: int = BLIND_FIT_EPISODES
    _players: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The env arguments, when there are any."""
        return {"env_kwargs": self.env_kwargs} if self.env_kwargs else {}

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """Every seed ``samples`` times, the player fitted on training seeds first."""
        from ssl_gym.audit.blind import BlindPlayer

        if env_id not in self._players:
            env = make_puzzle_env(env_id, **self.env_kwargs)
            self._players[env_id] = BlindPlayer(env, range(self.fit_episodes))
        player = self._players[env_id]
        out = []
        for s in seeds:
            row = []
            for j in range(samples):
                reward, info = player.play(s, policy_rng(s, j))
                row.append(
                    Outcome(reward, float(info["score"]), bool(info["format_ok"]), info["turn"])
                )
            out.append(row)
        return out


@dataclass
class ModelPolicy:
    """A model sampled through one of ``agents``' samplers (imported on first use)."""

    name: str
    temperature: float | None = None
    max_new_tokens: int = 64
    constrain: bool = False
    batch_size: int = 16
    model: str = "default"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments of every id (e.g. ``answer_format``)."""
    sampler: Any = None

    def settings(self) -> dict[str, Any]:
        """Sampling settings (a resumed run must sample the same way)."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "constrain": self.constrain,
        }
        if self.env_kwargs:
            out["env_kwargs"] = self.env_kwargs
        return {**out, "model": self.model} if self.name.startswith("openai:") else out

    def _sampler(self) -> Any:
        if self.sampler is None:
            self.sampler = make_sampler(self.name, self.model)
        return self.sampler

    def params(self, samples: int, seed: int) -> Any:
        """Greedy for one sample unless a temperature is given; else T (default 1)."""
        from agents.samplers.base import SamplingParams

        temperature = self.temperature
        if temperature is None:
            temperature = 0.0 if samples == 1 else 1.0
        return SamplingParams(
            temperature=temperature,
            max_new_tokens=self.max_new_tokens,
            constrain=self.constrain,
            seed=seed % 2**31,
        )

    def play(self, env_id: str, seeds: Sequence[int], samples: int) -> list[list[Outcome]]:
        """One rollout over ``len(seeds) * samples`` envs (groups of ``samples``)."""
        from agents.rollout import rollout

        sampler = self._sampler()
        envs = gym.make_vec(
            env_id, len(seeds) * samples, vectorization_mode="sync", **self.env_kwargs
        )
        puzzle: Puzzle = envs.get_attr("puzzle")[0]  # type: ignore[attr-defined]  # sync
        sampler.answer_format = puzzle.config.answer_format
        group = [s for s in seeds for _ in range(samples)]
        try:
            batch = rollout(envs, sampler, self.params(samples, seeds[0]), group, samples)
        finally:
            envs.close()
        last = {int(e): s.text for e, s in zip(batch.episode, batch.samples, strict=True)}
        outs = [
            Outcome(
                float(batch.episode_rewards[i]),
                float(batch.episode_scores[i]),
                readable(puzzle, last.get(i, "")),
                int(batch.turns[i]),
            )
            for i in range(len(group))
        ]
        return [outs[i * samples : (i + 1) * samples] for i in range(len(seeds))]


def readable(puzzle: Puzzle, completion: str) -> bool:
    """Whether a completion is well formed and its answer parses (the env's format_ok)."""
    text, ok, _ = extract_answer(completion, puzzle.config.answer_format)
    return ok and text is not None and puzzle.parse(text) is not None


def make_sampler(spec: str, model: str = "default") -> Any:
    """The ``agents`` sampler of a policy spec ``hf:DIR``, ``vllm:DIR`` or ``openai:URL``."""
    kind, _, target = spec.partition(":")
    if kind == "hf":
        import torch

        from agents.models import load_vlm
        from agents.samplers.hf import HFSampler

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return HFSampler(load_vlm(target, device=device))
    if kind == "vllm":
        from agents.samplers.vllm import VLLMSampler

        return VLLMSampler(target)
    from agents.samplers.openai import OpenAISampler

    return OpenAISampler(target, model, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))


def make_policy(
    spec: str,
    temperature: float | None = None,
    max_new_tokens: int = 64,
    constrain: bool = False,
    batch_size: int = 16,
    model: str = "default",
    answer_format: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Policy:
    """The policy named by ``spec`` (see the module docstring).

    ``env_kwargs`` go to every ``gym.make`` (puzzle settings such as ``size``, e.g. the
    ones a model was trained with); ``answer_format`` is a shorthand for one of them.

    Raises:
        ValueError: For an unknown policy or a model policy without its target.
    """
    env_kwargs = dict(env_kwargs or {})
    if answer_format is not None:
        env_kwargs["answer_format"] = answer_format
    if spec in SIMPLE_POLICIES:
        if spec == "blind":
            return BlindPolicy(batch_size=batch_size, env_kwargs=env_kwargs)
        answers: dict[str, Answer] = {"random": _random_answer, "oracle": _oracle_answer}
        return AnswerPolicy(spec, answers[spec], batch_size, env_kwargs)
    kind, sep, target = spec.partition(":")
    if kind not in MODEL_POLICIES or not sep or not target:
        raise ValueError(
            f"unknown policy {spec!r}; choose random, oracle, blind, hf:DIR, vllm:DIR or openai:URL"
        )
    return ModelPolicy(spec, temperature, max_new_tokens, constrain, batch_size, model, env_kwargs)


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
        seed: Which held-out set (:func:`eval_seeds`).
        samples: Completions per puzzle (the K of pass@k).
        progress: Show a progress bar.

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


# --- summaries ---------------------------------------------------------------------------


def metrics(records: Sequence[dict[str, Any]], samples: int) -> dict[str, Any]:
    """The metrics of a group of episode records (pooled over episodes and samples)."""
    scores = np.array([r["scores"] for r in records], dtype=float)
    chance = np.array([r["chance"] for r in records], dtype=float)
    solved = (scores == 1.0).sum(axis=1)
    # hinted episodes are judged by their reward, against the blind player's
    earned = np.array([np.mean(r["rewards"] if r.get("hinted") else r["scores"]) for r in records])
    normalised = (earned - chance) / np.maximum(1.0 - chance, 1e-12)
    return {
        "episodes": len(records),
        "samples": int(scores.size),
        "mean_reward": float(np.mean([r["rewards"] for r in records])),
        "mean_score": float(scores.mean()),
        "solve_rate": float((scores == 1.0).mean()),
        "format_rate": float(np.mean([r["format_ok"] for r in records])),
        "chance": float(chance.mean()),
        "normalised_score": float(normalised.mean()),
        "pass_at": {
            str(k): float(np.mean([pass_at_k(samples, int(c), k) for c in solved]))
            for k in pass_ks(samples)
        },
        "mean_turns": float(np.mean([r["turns"] for r in records])),
    }


def _groups(records: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r[key], []).append(r)
    return out


def summarize(
    records: Sequence[dict[str, Any]],
    ids: Sequence[str],
    episodes: int,
    samples: int,
    run: dict[str, Any],
) -> dict[str, Any]:
    """Metrics overall, by id, family and difficulty, from the first ``episodes`` of each id."""
    order = {env_id: n for n, env_id in enumerate(ids)}
    kept = sorted(
        (r for r in records if r["id"] in order and r["episode"] < episodes),
        key=lambda r: (order[r["id"]], r["episode"]),
    )
    by_id = {}
    for env_id, group in _groups(kept, "id").items():
        first = group[0]
        facts = {k: first[k] for k in ("family", "difficulty")}
        by_id[env_id] = {**facts, **metrics(group, samples)}
    return {
        "run": {**run, "episodes": episodes},
        "overall": metrics(kept, samples),
        "by_id": by_id,
        "by_family": {k: metrics(g, samples) for k, g in _groups(kept, "family").items()},
        "by_difficulty": {
            k: metrics(g, samples)
            for k, g in sorted(
                _groups(kept, "difficulty").items(), key=lambda kv: _difficulty_rank(kv[0])
            )
        },
    }


def _difficulty_rank(name: str) -> int:
    from ssl_gym.core import DIFFICULTIES

    return DIFFICULTIES.index(name) if name in DIFFICULTIES else len(DIFFICULTIES)


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables: by family, by difficulty, by id."""
    run = summary["run"]
    ks = list(summary["overall"]["pass_at"])
    head = ["", "episodes", "reward", "score", "solved", "format", "chance", "normalised"]
    head += [f"pass@{k}" for k in ks] + ["turns"]
    lines = [
        f"# Evaluation of `{run['policy']}`",
        "",
        f"{run['episodes']} held-out puzzles per id (seed set {run['seed']}), "
        f"{run['samples']} sample(s) each. Normalised score: (score - chance) / (1 - chance).",
    ]
    sections = (
        ("Overall", {"all": summary["overall"]}),
        ("By family", summary["by_family"]),
        ("By difficulty", summary["by_difficulty"]),
        ("By id", summary["by_id"]),
    )
    for title, rows in sections:
        lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|---|" + "---:|" * (len(head) - 1))
        for name, m in rows.items():
            cells = [m["mean_reward"], m["mean_score"], m["solve_rate"], m["format_rate"]]
            cells += [m["chance"], m["normalised_score"], *m["pass_at"].values()]
            row = [name, str(m["episodes"]), *(f"{v:.3f}" for v in cells)]
            lines.append("| " + " | ".join([*row, f"{m['mean_turns']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def plot_scores(groups: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Bar chart of the mean score per group, with each group's chance marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 4))
    x = np.arange(len(names))
    ax.bar(x, [groups[n]["mean_score"] for n in names], color="tab:blue", label="score")
    ax.scatter(
        x,
        [groups[n]["chance"] for n in names],
        color="black",
        marker="_",
        s=400,
        label="chance",
        zorder=3,
    )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="mean score", ylim=(0, 1.05), title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def write_summary(summary: dict[str, Any], out: Path) -> None:
    """``summary.json``, ``summary.md`` and the two plots (skipped without matplotlib)."""
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "summary.md", markdown(summary))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)")
        return
    policy = summary["run"]["policy"]
    plot_scores(summary["by_family"], out / "score_by_family.png", f"{policy}: by family")
    plot_scores(
        summary["by_difficulty"], out / "score_by_difficulty.png", f"{policy}: by difficulty"
    )


# --- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``ssl-gym eval``."""
    p = argparse.ArgumentParser(
        prog="ssl-gym eval", description="Score a policy on held-out puzzles (resumable)."
    )
    p.add_argument(
        "--policy", required=True, help="random, oracle, blind, hf:DIR, vllm:DIR or openai:URL"
    )
    p.add_argument("--envs", nargs="+", default=["*"], help="ids or globs (-Hint ids too)")
    p.add_argument("--episodes", type=int, default=100, help="held-out puzzles per id")
    p.add_argument("--seed", type=int, default=0, help="held-out set (0: the canonical one)")
    p.add_argument("--out", required=True, help="run folder (rerun to resume)")
    p.add_argument("--samples", type=int, default=1, help="completions per puzzle (pass@k)")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default: greedy for 1 sample, else 1.0)",
    )
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--constrain", action="store_true", help="decode within the answer grammar")
    p.add_argument("--batch-size", type=int, default=16, help="puzzles per sampler call")
    p.add_argument("--model", default="default", help="model name for openai:URL")
    p.add_argument(
        "--answer-format",
        choices=ANSWER_FORMATS,
        default=None,
        help="override every id's answer format (e.g. plain for tiny models)",
    )
    p.add_argument(
        "--set",
        dest="env_kwargs",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="puzzle setting of every id, e.g. --set size=64 (value read as JSON if it can be)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str]) -> int:
    """``ssl-gym eval ...``; returns the exit status (2 for bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        policy = make_policy(
            args.policy,
            args.temperature,
            args.max_new_tokens,
            args.constrain,
            args.batch_size,
            args.model,
            args.answer_format,
            dict(args.env_kwargs),
        )
        summary = run_eval(
            match_ids(args.envs),
            policy,
            args.episodes,
            args.out,
            args.seed,
            args.samples,
            progress=not args.no_progress,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    o = summary["overall"]
    print(markdown({**summary, "by_id": {}}), end="")
    print(
        f"overall: score {o['mean_score']:.3f} (chance {o['chance']:.3f}, normalised "
        f"{o['normalised_score']:.3f}), solved {o['solve_rate']:.3f}; written to {args.out}/"
    )
    return 0
