"""The ``ssl-gym`` command line: list, show and demo the registered puzzles."""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import track
from rich.table import Table

import ssl_gym
from ssl_gym.core import Puzzle, did_you_mean, format_answer
from ssl_gym.envs import PuzzleEnv, entries, make_puzzle_env, mixture_ids, unknown_id
from ssl_gym.overrides import add_set_option
from ssl_gym.seeds import policy_rng

console = Console(width=None if sys.stdout.isatty() else 160)  # wide tables in logs


def cmd_list(args: argparse.Namespace) -> int:
    """Print every registered id with its family, difficulty and chance score."""
    families = sorted({e.family for e in entries()})
    if args.family and args.family.lower() not in {f.lower() for f in families}:
        raise ValueError(
            f"unknown --family {args.family!r}{did_you_mean(args.family, families)}; "
            f"families: {', '.join(families)}"
        )
    table = Table(title=f"ssl_gym {ssl_gym.__version__}: registered puzzles")
    columns = ("id", "family", "difficulty", "chance", "turns")
    for col in (*columns, *(("blind",) if args.hints else ()), "description"):
        # ids are never cut (they are what one copies); descriptions wrap instead
        table.add_column(col, no_wrap=col == "id", min_width=32 if col == "id" else None)
    for e in entries(hinted=args.hints):
        if args.family and e.family.lower() != args.family.lower():
            continue
        row = [e.id, e.family, e.difficulty, f"{e.chance_score:.3f}"]
        if args.hints:
            row += _turns_and_blind(e.id) if e.hinted else ["1", f"{e.chance_score:.3f}"]
        else:
            row.append("hints" if e.hinted else "1")
        table.add_row(*row, e.description)
    if not args.family:
        for mid in mixture_ids():
            table.add_row(mid, "mixture", "-", "-", "1", "several families, one composite image")
    console.print(table)
    return 0


def _turns_and_blind(env_id: str) -> list[str]:
    """A hinted id's turns and blind-optimal episode reward (on its seed-0 puzzle)."""
    env = make_puzzle_env(env_id)
    env.reset(seed=0)
    return [str(env.turns), f"{env.blind_value:.3f}"]


def save_observation(env: gym.Env[Any, Any], path: Path) -> None:
    """Write the current observation's images (a puzzle's, a mixture's) as one PNG."""
    picture = env.render()
    if not isinstance(picture, np.ndarray):
        raise RuntimeError("the env must be made with render_mode='rgb_array'")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)


def cmd_show(args: argparse.Namespace) -> int:
    """Render one instance (of a puzzle or a mixture) to a picture; print its prompt and answer."""
    if args.id not in gym.registry:
        raise ValueError(unknown_id(args.id))
    settings = dict(args.settings)
    made = gym.make(args.id, render_mode="rgb_array", image_source=args.image_source, **settings)
    env = made.unwrapped
    obs, info = env.reset(seed=args.seed)
    puzzle_env: Any = getattr(env, "current", None) or env  # a mixture's episode, or the env
    inst = puzzle_env.instance
    if inst is None:
        raise RuntimeError("reset() produced no instance")
    path = Path(args.out)
    save_observation(env, path)
    console.print(f"[bold]{escape(args.id)}[/] seed={args.seed} -> {escape(str(path))}")
    for label, text in (
        ("prompt", obs["prompt"]),
        ("answer", info["answer"]),
        ("oracle completion", puzzle_env.puzzle.oracle(inst)),
    ):
        console.print(f"[bold]{label}:[/]", end=" ")
        console.print(text, markup=False, highlight=False)
    return 0


def policy_scores(env: PuzzleEnv, episodes: int, seed: int) -> tuple[float, float]:
    """Mean reward of the oracle and of a uniformly random valid answer."""
    rng = policy_rng(seed)  # not default_rng(seed): that is episode 0's own stream
    oracle, rand = [], []
    puzzle: Puzzle = env.puzzle
    for i in range(episodes):
        env.reset(seed=seed + i)
        inst = env.instance
        if inst is None:
            raise RuntimeError("reset() produced no instance")
        oracle.append(puzzle.verify(inst, puzzle.oracle(inst)).reward)
        guess = format_answer(puzzle.random_answer(inst, rng), puzzle.config.answer_format)
        rand.append(puzzle.verify(inst, guess).reward)
    return float(np.mean(oracle)), float(np.mean(rand))


def cmd_demo(args: argparse.Namespace) -> int:
    """Render every id to the gallery and print oracle and random-policy scores."""
    out = Path(args.out)
    table = Table(title=f"oracle and random policy, {args.episodes} episodes per id")
    for col in ("id", "difficulty", "chance", "oracle", "random"):
        table.add_column(col, justify="left" if col == "id" else "right")
    for e in track(entries(), description="rendering and scoring", console=console):
        env = make_puzzle_env(e.id, render_mode="rgb_array")
        oracle, rand = policy_scores(env, args.episodes, args.seed)
        env.reset(seed=args.seed)
        save_observation(env, out / f"{e.id.replace('/', '_')}.png")
        table.add_row(e.id, e.difficulty, f"{e.chance_score:.3f}", f"{oracle:.3f}", f"{rand:.3f}")
    console.print(table)
    console.print(f"gallery written to {out}/")
    return 0


#: Commands implemented in other modules, imported only when used (``ssl_gym`` itself never
#: needs torch or the adapters' libraries): name -> (module, extra that provides it, help).
DELEGATED_COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("agents.train", "train", "GRPO-train a VLM on a puzzle"),
    "make-tiny-model": ("agents.tiny", "train", "build a tiny random VLM offline"),
    "export": ("ssl_gym.adapters.export", "adapters", "write puzzles as a dataset file"),
    "eval": ("ssl_gym.evaluation.cli", "", "score a policy on held-out puzzles"),
    "gallery": ("ssl_gym.gallery", "", "an HTML page with examples of every id"),
}


def _any_policy(spec: str, *args: Any, **kwargs: Any) -> Any:
    """``ssl-gym eval``'s policies: ssl_gym's own, or a model policy of ``agents``.

    ``random``, ``oracle`` and ``blind`` need nothing but ``ssl_gym``; ``hf:DIR``,
    ``vllm:DIR`` and ``openai:URL`` import :mod:`agents.policy` (torch) only when asked.
    """
    from ssl_gym.evaluation import make_policy
    from ssl_gym.evaluation.policies import MODEL_POLICIES

    kind, sep, target = spec.partition(":")
    if kind not in MODEL_POLICIES or not sep or not target:
        return make_policy(spec, *args, **kwargs)
    try:  # by name, as the delegation table does: ssl_gym never imports agents
        make_model_policy = importlib.import_module("agents.policy").make_policy
    except ImportError as err:
        raise ValueError(
            f'the {kind}: policy needs a missing package (pip install "ssl-gym[train]"): {err}'
        ) from err
    return make_model_policy(spec, *args, **kwargs)


#: Keyword arguments a delegated command's ``main`` gets beside its arguments.
DELEGATED_KWARGS: dict[str, dict[str, Any]] = {"eval": {"policies": _any_policy}}


def _delegated_command(name: str, argv: list[str]) -> int:
    """Run a command whose code lives in another module (see ``DELEGATED_COMMANDS``)."""
    module, extra, _ = DELEGATED_COMMANDS[name]
    try:
        run = importlib.import_module(module).main
    except ImportError as err:
        hint = f' (pip install "ssl-gym[{extra}]")' if extra else ""
        message = f"`ssl-gym {name}` needs a missing package{hint}: {err}"
        console.print(f"[red]error:[/] {escape(message)}")
        return 2
    return int(run(argv, **DELEGATED_KWARGS.get(name, {})))


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the shortcut audit over ids (globs allowed); exit 1 if any id fails."""
    from ssl_gym.audit import markdown_table, run_audit

    every = [e.id for e in entries(hinted=args.strong)]
    ids = [i for pat in (args.ids or ["*"]) for i in every if fnmatch.fnmatch(i, pat)]
    if not ids:
        raise ValueError(unknown_id(" ".join(args.ids), "id or pattern"))
    if args.strong:
        return _strong_audit(args, ids)
    results = run_audit(ids, n=args.n, seed=args.seed, out=args.out, workers=args.workers)
    console.print(markdown_table(results), markup=False)
    if args.out:
        console.print(f"written to {args.out}/shortcut_audit.json and .md")
    return 0 if all(r.passed for r in results) else 1


def _strong_audit(args: argparse.Namespace, ids: list[str]) -> int:
    """``ssl-gym audit --strong``: the ids (``-Hint`` ones too) on every source named."""
    from ssl_gym.audit import run_strong_audit
    from ssl_gym.audit.strong import markdown
    from ssl_gym.images import make_source

    sources = args.image_source or ["procedural"]
    if args.n < 10:
        raise ValueError(f"--n must be at least 10 for a held-out split, got {args.n}")
    for spec in sources:
        make_source(spec)  # a bad spec fails before any work
    results = run_strong_audit(
        ids, sources, n=args.n, seed=args.seed, out=args.out, workers=args.workers
    )
    console.print(markdown(results), markup=False)
    if args.out:
        console.print(f"written to {args.out}/audit.json and {args.out}/audit.md")
    return 0 if all(r.passed for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssl-gym``."""
    parser = argparse.ArgumentParser(prog="ssl-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="every registered id with family, difficulty, chance")
    p.add_argument("--family", help="only this family")
    p.add_argument(
        "--hints",
        action="store_true",
        help="also the multi-turn -Hint ids, with their turns and blind-optimal reward",
    )
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="render one instance, print prompt and answer")
    p.add_argument("id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="puzzle.png")
    p.add_argument("--image-source", default="procedural")
    add_set_option(
        p, "settings", "a puzzle setting, e.g. --set size=96 (mixtures: --set ids=[...])"
    )
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("demo", help="render every id and score oracle and random policies")
    p.add_argument("--out", default="outputs/gallery")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("audit", help="shortcut audit: blind and cheap-statistics policies")
    p.add_argument("ids", nargs="*", help="ids or globs (default: every id)")
    p.add_argument("--n", type=int, default=2000, help="instances per id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the reports (.json and .md)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--strong",
        action="store_true",
        help="the strong audit (part alone, statistics, geometry, gradient boosting on pixels)",
    )
    p.add_argument(
        "--image-source",
        action="append",
        default=None,
        help="image source spec for --strong (repeat for several; default procedural)",
    )
    p.set_defaults(func=cmd_audit)
    for name, (_, _, text) in DELEGATED_COMMANDS.items():
        sub.add_parser(name, help=f"{text} (see ssl-gym {name} --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssl-gym`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED_COMMANDS:
        return _delegated_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, gym.error.Error) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
