"""Source identity: mislabelled or two-answer instances per id, on photos and a folder.

For every id whose answer means "same picture" (``compares_sources``), draws ``--n``
instances on each image source and counts those whose labels disagree with the source
identities (:func:`ssl_gym.audit.strong.identity_error`). The folder source is the
``photos`` pictures written as PNG files into a temporary folder (the ``folder:`` source
keys them by file, not by picture), so both kinds of key are checked. Prints a table and
writes ``benchmarks/results/identity.json``.

    python benchmarks/identity_check.py [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ssl_gym  # noqa: F401 - registers the ids
from ssl_gym.audit.strong import identity_error
from ssl_gym.envs import entries, make_puzzle_env
from ssl_gym.files import write_atomic
from ssl_gym.images import make_source

RESULTS = Path(__file__).parent / "results"


def photo_folder(root: Path) -> str:
    """The ``photos`` pictures as PNG files in ``root``; the folder source spec."""
    photos = make_source("photos")
    for name, image in zip(photos.names, photos.images, strict=True):
        Image.fromarray(np.asarray(image)).save(root / f"{name}.png")
    return f"folder:{root}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = ["photos", photo_folder(Path(tmp))]
        for entry in entries():
            for spec in sources:
                env = make_puzzle_env(entry.id, image_source=spec)
                if not getattr(env.puzzle, "compares_sources", False):
                    continue
                start = time.perf_counter()
                errors = sum(
                    identity_error(env.puzzle, env.puzzle.parts(inst))
                    for inst in (
                        env.puzzle.generate(np.random.default_rng([7, i]), env.source)
                        for i in range(args.n)
                    )
                )
                kind = "photos" if spec == "photos" else "folder of photos"
                rows.append({"id": entry.id, "source": kind, "n": args.n, "errors": errors})
                took = time.perf_counter() - start
                print(f"{entry.id:36s} {kind:17s} {errors:4d} of {args.n} ({took:.0f} s)")
    write_atomic(RESULTS / "identity.json", json.dumps({"n": args.n, "rows": rows}, indent=2))
    bad = [r for r in rows if r["errors"]]
    print(f"{len(rows) - len(bad)}/{len(rows)} (id, source) with 0 identity errors")


if __name__ == "__main__":
    main()
