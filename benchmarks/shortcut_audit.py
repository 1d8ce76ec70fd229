"""Shortcut audits: the weak one of every single-turn id, then the strong one per source.

The weak audit (oracle, blind, linear probe on cheap statistics) writes
``benchmarks/results/shortcut_audit.json`` and ``.md``; the strong audit (``ssl_gym.audit``:
part alone, statistics matching, drawn geometry, gradient boosting on pixels, source
identity; the blind adversary on every ``-Hint`` id) writes ``benchmarks/results/audit.json``
and ``audit.md``, on the procedural scenes and scikit-image's photographs.

    python benchmarks/shortcut_audit.py [--n 2000] [--ids 'SSL/Jigsaw-*'] [--sources ...]
        [--no-weak] [--no-hinted] [--no-single] [--merge] [--workers N]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import time
from pathlib import Path

from ssl_gym.audit import markdown_table, run_audit, run_strong_audit
from ssl_gym.audit.run import write_reports
from ssl_gym.audit.strong import StrongResult, markdown
from ssl_gym.envs import entries

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--ids", nargs="+", default=["*"], help="id patterns (globs)")
    parser.add_argument("--sources", nargs="+", default=["procedural", "photos"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--weak", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--hinted", action=argparse.BooleanOptionalAction, default=True, help="-Hint ids too"
    )
    parser.add_argument(
        "--single", action=argparse.BooleanOptionalAction, default=True, help="single-turn ids"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the (id, source) rows of benchmarks/results/audit.json not audited now "
        "(rows of ids no longer registered, such as an older version, are dropped)",
    )
    args = parser.parse_args()

    def chosen(eid: str) -> bool:
        return any(fnmatch.fnmatch(eid, pattern) for pattern in args.ids)

    ids = [e.id for e in entries() if chosen(e.id)]
    hinted = [e.id for e in entries(hinted=True) if e.hinted and chosen(e.id)]
    if not args.hinted:
        hinted = []
    if not args.single:
        ids = []
    if args.weak:
        weak = run_audit(ids, n=args.n, out=str(RESULTS), workers=args.workers)
        print(markdown_table(weak))
    strong = []
    for source in args.sources:
        start = time.perf_counter()
        rows = run_strong_audit(ids + hinted, [source], n=args.n, workers=args.workers)
        print(markdown(rows))
        print(f"strong audit of {len(ids)} ids on {source}: {time.perf_counter() - start:.0f} s")
        strong += rows
    if args.merge and (RESULTS / "audit.json").exists():
        done = {(r.id, r.source) for r in strong}
        current = {e.id for e in entries(hinted=True)}  # ids of an old version go
        old = json.loads((RESULTS / "audit.json").read_text(encoding="utf-8"))["results"]
        kept = [
            StrongResult.from_dict(r)
            for r in old
            if (r["id"], r["source"]) not in done and r["id"] in current
        ]
        strong = kept + strong
    write_reports(strong, RESULTS, args.n, seed=0)
    failed = [f"{r.id} ({r.source})" for r in strong if not r.passed]
    print(f"{len(strong) - len(failed)}/{len(strong)} (id, source) pass the strong audit")
    if failed:
        print("failing:", ", ".join(failed))


if __name__ == "__main__":
    main()
