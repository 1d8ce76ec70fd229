"""Shortcut audit of every registered id (see ``ssl_gym.audit`` for what is checked).

Writes ``benchmarks/results/shortcut_audit.json`` and ``shortcut_audit.md``.

    python benchmarks/shortcut_audit.py [--n 2000] [--ids 'SSL/Jigsaw-*']
"""

from __future__ import annotations

import argparse
import fnmatch
import os
from pathlib import Path

from ssl_gym.audit import markdown_table, run_audit
from ssl_gym.envs import entries

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--ids", default="*")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    ids = [e.id for e in entries() if fnmatch.fnmatch(e.id, args.ids)]
    results = run_audit(ids, n=args.n, out=str(RESULTS), workers=args.workers)
    print(markdown_table(results))
    failed = [r.id for r in results if not r.passed]
    print(
        f"{len(results) - len(failed)}/{len(results)} ids pass"
        + (f"; failing: {failed}" if failed else "")
    )


if __name__ == "__main__":
    main()
