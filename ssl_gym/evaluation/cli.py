"""``ssl-gym eval``: the command line of a held-out run."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ssl_gym.core import ANSWER_FORMATS
from ssl_gym.evaluation.policies import Policy, make_policy
from ssl_gym.evaluation.report import markdown
from ssl_gym.evaluation.run import match_ids, run_eval
from ssl_gym.overrides import add_set_option


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
    p.add_argument(
        "--out",
        default=None,
        help="run folder; rerun to resume (default: runs/eval/POLICY-HASH, one per settings)",
    )
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
    add_set_option(p, "env_kwargs", "puzzle setting of every id, e.g. --set size=64")
    p.add_argument("--no-progress", action="store_true")
    return p


def default_out(args: argparse.Namespace) -> str:
    """``runs/eval/POLICY-HASH``: the same command resumes, other settings get a new folder."""
    keep = ("policy", "envs", "seed", "samples", "temperature", "max_new_tokens", "constrain")
    settings = {k: getattr(args, k) for k in keep}
    settings |= {"model": args.model, "answer_format": args.answer_format}
    settings["env_kwargs"] = sorted(dict(args.env_kwargs).items())
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", args.policy).strip("_")[-40:] or "policy"
    return str(Path("runs") / "eval" / f"{slug}-{digest}")


def main(argv: list[str], policies: Callable[..., Policy] = make_policy) -> int:
    """``ssl-gym eval ...``; returns the exit status (2 for bad arguments).

    ``policies`` builds the policy from the arguments (:func:`make_policy`'s signature);
    ``ssl-gym eval`` passes :func:`agents.policy.make_policy`, which adds model policies.
    """
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = default_out(args)
    try:
        policy = policies(
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
    except (ValueError, FileNotFoundError) as err:  # bad input, a missing model directory
        print(f"error: {err}", file=sys.stderr)
        return 2
    o = summary["overall"]
    print(markdown(summary), end="")
    print(
        f"overall: score {o['mean_score']:.3f} (chance {o['chance']:.3f}, normalised "
        f"{o['normalised_score']:.3f}), solved {o['solve_rate']:.3f}; written to {args.out}/"
    )
    return 0
