"""SHA-256 digests of what every registered id shows and pays, to guard a refactor.

For every id (single-turn, ``-Hint`` and mixtures) and a few seeds it hashes the reset
observation (images and prompt), the answer, the oracle's reward, and, stepping wrong
answers until the episode ends, every reply's observation and reward. Run it before and
after a change that must not alter behaviour and compare the two files:

    python tests/scripts/digests.py --out /tmp/before.json
    python tests/scripts/digests.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

import ssl_gym  # noqa: F401  (registers the ids)
from ssl_gym.core import format_answer
from ssl_gym.testing import observation_digest

#: ``SSL/Mix-v1`` is made from ids given at make time.
MIX_KWARGS = {"ids": ["SSL/Rotation-4way-v1", "SSL/Jigsaw-2x2-Hint-v2"]}


def _wrong(info: dict[str, Any]) -> str:
    wrong = [c for c in info.get("choices") or () if c != info["answer"]]
    return wrong[0] if wrong else "not an answer"


def digest(env_id: str, seeds: range, **kwargs: Any) -> str:
    """One hash over ``seeds`` episodes of ``env_id``: observations, answers, rewards."""
    kwargs = MIX_KWARGS if env_id == "SSL/Mix-v1" else kwargs
    env = gym.make(env_id, **kwargs).unwrapped
    h = hashlib.sha256()
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        fmt = env.puzzle.config.answer_format if hasattr(env, "puzzle") else "tags"
        h.update(f"{observation_digest(obs)} {info['answer']}".encode())
        _, reward, *_ = env.step(format_answer(str(info["answer"]), fmt))
        h.update(f"oracle {reward!r}".encode())
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, reward, done, truncated, _ = env.step(format_answer(_wrong(info), fmt))
            done = done or truncated
            h.update(f"{observation_digest(obs)} {reward!r}".encode())
    return h.hexdigest()


def _config(env_id: str) -> Any:
    kwargs = MIX_KWARGS if env_id == "SSL/Mix-v1" else {}
    return gym.make(env_id, **kwargs).unwrapped.puzzle.config


def _layouts(env_id: str) -> tuple[str, ...]:
    """The family's layouts (its module's ``LAYOUTS``), or none."""
    try:
        config = _config(env_id)
    except AttributeError:  # a mixture
        return ()
    if not hasattr(config, "layout"):
        return ()
    return tuple(getattr(sys.modules[type(config).__module__], "LAYOUTS", ()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--compare", help="a digests file to compare with")
    args = parser.parse_args()
    ids = sorted(i for i in gym.registry if i.startswith("SSL/"))
    digests = {i: digest(i, range(args.seeds)) for i in ids}
    for i in ids:  # every other layout of each single-turn id, keyed by its place in LAYOUTS
        layouts = _layouts(i)
        for k, layout in enumerate(layouts):
            if "Hint" not in i and layout != _config(i).layout:
                digests[f"{i} layout#{k}"] = digest(i, range(args.seeds), layout=layout)
    Path(args.out).write_text(json.dumps(digests, indent=1), encoding="utf-8")
    print(f"{len(digests)} ids hashed")
    if args.compare:
        before = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        changed = sorted(i for i in set(before) | set(digests) if before.get(i) != digests.get(i))
        print(f"{len(changed)} ids differ" + (": " + ", ".join(changed) if changed else ""))
        sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
