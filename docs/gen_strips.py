"""Draw the family strips the README and the docs' landing page show (``docs/strips/``).

    python docs/gen_strips.py            # rewrite docs/strips/<family>.png
    python docs/gen_strips.py --check    # exit 1 if a strip is missing or out of date

One picture per family: what a model sees for one puzzle of the family's first preset
(seed 0, the procedural source), every image side by side and numbered, as
``ssl-gym show`` draws it, 120 pixels high. ``tests/test_docs.py`` runs ``--check``, so
a family added or redrawn without its strip fails the suite.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

import ssl_gym  # noqa: F401  (registers the ids)
from ssl_gym.envs import env_id
from ssl_gym.puzzles import FAMILIES
from ssl_gym.render import composite, png_bytes

STRIPS = Path(__file__).resolve().parent / "strips"
HEIGHT = 120


def strip_id(family: str) -> str:
    """The id a family's strip shows: its first (easiest) preset."""
    cls = FAMILIES[family]
    return env_id(family, next(iter(cls.presets)), cls.version)


def strip(family: str) -> bytes:
    """The strip of ``family`` as PNG bytes (deterministic)."""
    env = gym.make(strip_id(family)).unwrapped
    obs, _ = env.reset(seed=0)
    picture = composite(obs["images"], height=HEIGHT, gap=4)
    return png_bytes(np.ascontiguousarray(picture), level=9)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) every family's strip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    STRIPS.mkdir(exist_ok=True)
    stale = []
    for family in FAMILIES:
        path = STRIPS / f"{family.lower()}.png"
        data = strip(family)
        if args.check:
            old = path.read_bytes() if path.is_file() else b""
            same = bool(old) and np.array_equal(
                np.asarray(Image.open(io.BytesIO(old))), np.asarray(Image.open(io.BytesIO(data)))
            )
            if not same:
                stale.append(path.name)
        else:
            path.write_bytes(data)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python docs/gen_strips.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
