"""Run the strong audit over ids and image sources, with a progress bar and reports.

``run_strong_audit`` audits every (id, source) pair, in worker processes when asked, and
writes ``DIR/audit.json`` (every probe's score, confidence interval, chance and verdict)
and ``DIR/audit.md`` atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ssl_gym.audit.strong import StrongResult, markdown, strong_audit_id
from ssl_gym.files import write_atomic


def _job(args: tuple[str, str, int, int]) -> StrongResult:
    import ssl_gym  # noqa: F401 - registers the ids in worker processes

    env_id, source, n, seed = args
    return strong_audit_id(env_id, source, n, seed)


def run_strong_audit(
    ids: Sequence[str],
    sources: Sequence[str] = ("procedural",),
    n: int = 2000,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
) -> list[StrongResult]:
    """Audit every id on every source; with ``out``, write ``audit.json`` and ``audit.md``."""
    from rich.progress import track

    jobs = [(i, s, n, seed) for s in sources for i in ids]
    label = f"strong audit: {len(jobs)} (id, source) x {n}"
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            results = list(track(pool.map(_job, jobs), total=len(jobs), description=label))
    else:
        results = [_job(j) for j in track(jobs, description=label)]
    if out is not None:
        write_reports(results, out, n, seed)
    return results


def write_reports(results: Sequence[StrongResult], out: str | Path, n: int, seed: int) -> None:
    """Write ``out/audit.json`` and ``out/audit.md`` for ``results``, each atomically."""
    folder = Path(out)
    payload = {
        "n": n,
        "seed": seed,
        "sources": sorted({r.source for r in results}),
        "passed": all(r.passed for r in results),
        "results": [r.to_dict() for r in results],
    }
    write_atomic(folder / "audit.json", json.dumps(payload, indent=2))
    write_atomic(folder / "audit.md", markdown(results))
