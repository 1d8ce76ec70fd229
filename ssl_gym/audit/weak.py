"""The weak shortcut audit: can a policy that does not solve the puzzle beat chance?

For one registered id, on ``n`` instances drawn with fixed seeds:

* **oracle**: the ground truth must score 1.0;
* **blind**: the best constant answer in hindsight (the most frequent answer over all
  ``n`` instances; for sequence answers also the most frequent value at each position)
  must score within ``blind_tolerance`` of the declared chance score;
* **probe**: a linear classifier (ridge, one-vs-rest, standardised features) trained on
  half the instances and tested on the other half, seeing only cheap image statistics
  (each image's height, width and mean colour, and the mean and spread of its 2-pixel
  border frame), must not beat chance by more than ``probe_tolerance``. The border frame
  is pooled over its four sides: it detects artefacts (padding, black corners,
  resampling edges) without reading the layout of the scene, which is the content the
  puzzles are about;
* **rejections**: the share of draws the uniqueness checks rejected is reported.

``ssl-gym audit`` and ``benchmarks/shortcut_audit.py`` run it over the registry and
write JSON and a Markdown table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ssl_gym.core import Instance, Puzzle
from ssl_gym.envs import make_puzzle_env
from ssl_gym.files import write_atomic
from ssl_gym.images import ImageSource

BORDER = 2


@dataclass(frozen=True)
class AuditResult:
    """The audit of one id."""

    id: str
    family: str
    n: int
    chance: float
    oracle: float
    blind: float
    probe: float
    rejection_rate: float
    blind_ok: bool
    probe_ok: bool
    oracle_ok: bool

    @property
    def passed(self) -> bool:
        """All three checks hold."""
        return self.blind_ok and self.probe_ok and self.oracle_ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with ``passed``."""
        return {**asdict(self), "passed": self.passed}


def image_features(image: np.ndarray) -> list[float]:
    """Height, width, mean colour, and mean and std of the pooled border frame."""
    h, w = image.shape[:2]
    b = BORDER
    frame = np.concatenate(
        [
            image[:b].reshape(-1, 3),
            image[-b:].reshape(-1, 3),
            image[b:-b, :b].reshape(-1, 3),
            image[b:-b, -b:].reshape(-1, 3),
        ]
    )
    frame = frame.astype(np.float64)
    mean = image.reshape(-1, 3).mean(axis=0)
    return [h, w, *mean, *frame.mean(axis=0), *frame.std(axis=0)]


def instance_features(inst: Instance) -> np.ndarray:
    """The cheap statistics of every image of an instance, concatenated."""
    return np.array([f for im in inst.images for f in image_features(im)])


def _targets(puzzle: Puzzle, inst: Instance) -> list[str]:
    """What the probe predicts: the answer, or each position of a sequence answer."""
    parsed = puzzle.parse(inst.answer)
    if isinstance(parsed, list):
        return [str(v) for v in parsed]
    return [inst.answer]


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ",".join(parts)


def answer_score(puzzle: Puzzle, inst: Instance, answer: str) -> float:
    """The score of an answer text (not a whole completion); 0 when it does not parse."""
    parsed = puzzle.parse(answer)
    return 0.0 if parsed is None else float(puzzle.score(inst, parsed))


def _mean_score(puzzle: Puzzle, instances: Sequence[Instance], answers: Sequence[str]) -> float:
    pairs = zip(instances, answers, strict=True)
    return float(np.mean([answer_score(puzzle, inst, ans) for inst, ans in pairs]))


def blind_answer(puzzle: Puzzle, instances: Sequence[Instance]) -> str:
    """The constant answer text that scores best over ``instances`` (never sees an image).

    The candidates are the most frequent answer and, for sequence answers, the most
    frequent value at each position. ``ssl-gym eval --policy blind`` fits it on training
    seeds and answers it on every held-out puzzle.
    """
    targets = [_targets(puzzle, inst) for inst in instances]
    whole = Counter(_join(t) for t in targets).most_common(1)[0][0]
    candidates = [whole]
    if len(targets[0]) > 1:
        modes = [
            Counter(t[i] for t in targets).most_common(1)[0][0] for i in range(len(targets[0]))
        ]
        candidates.append(_join(modes))
    return max(candidates, key=lambda c: _mean_score(puzzle, instances, [c] * len(instances)))


def blind_score(puzzle: Puzzle, instances: Sequence[Instance]) -> float:
    """Best score of a constant answer, chosen in hindsight over all instances."""
    answer = blind_answer(puzzle, instances)
    return _mean_score(puzzle, instances, [answer] * len(instances))


def ridge_classify(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, lam: float = 10.0
) -> list[str]:
    """One-vs-rest ridge regression on standardised features; the argmax class."""
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
    xs = np.hstack([(train_x - mu) / sd, np.ones((len(train_x), 1))])
    xt = np.hstack([(test_x - mu) / sd, np.ones((len(test_x), 1))])
    classes = sorted(set(train_y))
    onehot = np.array([[float(y == c) for c in classes] for y in train_y])
    weights = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ onehot)
    return [classes[i] for i in (xt @ weights).argmax(axis=1)]


def probe_score(puzzle: Puzzle, instances: Sequence[Instance]) -> float:
    """Score of the linear probe on cheap statistics, trained on half, tested on half."""
    half = len(instances) // 2
    train, test = instances[:half], instances[half:]
    x_train = np.stack([instance_features(i) for i in train])
    x_test = np.stack([instance_features(i) for i in test])
    train_targets = [_targets(puzzle, i) for i in train]
    per_position = [
        ridge_classify(x_train, [t[k] for t in train_targets], x_test)
        for k in range(len(train_targets[0]))
    ]
    answers = [_join([p[j] for p in per_position]) for j in range(len(test))]
    return _mean_score(puzzle, test, answers)


def audit_id(
    env_id: str,
    n: int = 2000,
    seed: int = 0,
    blind_tolerance: float = 0.03,
    probe_tolerance: float = 0.05,
) -> AuditResult:
    """Audit one registered id on ``n`` instances drawn with seeds ``[seed, i]``."""
    env = make_puzzle_env(env_id)
    return audit_puzzle(env.puzzle, env.source, env_id, n, seed, blind_tolerance, probe_tolerance)


def audit_puzzle(
    puzzle: Puzzle,
    source: ImageSource,
    name: str,
    n: int = 2000,
    seed: int = 0,
    blind_tolerance: float = 0.03,
    probe_tolerance: float = 0.05,
) -> AuditResult:
    """Audit a puzzle with an image source; ``name`` labels the result."""
    instances = [puzzle.generate(np.random.default_rng([seed, i]), source) for i in range(n)]
    rejected = sum(int(i.metadata["rejections"]) for i in instances)
    chance = float(puzzle.chance_score)
    oracle = float(np.mean([puzzle.verify(i, puzzle.oracle(i)).score for i in instances]))
    blind, probe = blind_score(puzzle, instances), probe_score(puzzle, instances)
    return AuditResult(
        id=name,
        family=puzzle.family,
        n=n,
        chance=chance,
        oracle=oracle,
        blind=blind,
        probe=probe,
        rejection_rate=rejected / (rejected + n),
        blind_ok=abs(blind - chance) <= blind_tolerance,
        probe_ok=probe - chance <= probe_tolerance,
        oracle_ok=oracle == 1.0,
    )


def markdown_table(results: Sequence[AuditResult]) -> str:
    """The audit as a Markdown table."""
    lines = [
        "| id | chance | oracle | blind | probe | rejected | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        verdict = (
            "pass"
            if r.passed
            else "FAIL: "
            + ", ".join(
                name
                for name, ok in (
                    ("blind", r.blind_ok),
                    ("probe", r.probe_ok),
                    ("oracle", r.oracle_ok),
                )
                if not ok
            )
        )
        lines.append(
            f"| {r.id} | {r.chance:.3f} | {r.oracle:.3f} | {r.blind:.3f} | "
            f"{r.probe:.3f} | {r.rejection_rate:.1%} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _audit_args(args: tuple[str, int, int]) -> AuditResult:
    import ssl_gym  # noqa: F401 - registers the ids in worker processes

    return audit_id(args[0], n=args[1], seed=args[2])


def run_audit(
    ids: Sequence[str], n: int = 2000, seed: int = 0, out: str | None = None, workers: int = 1
) -> list[AuditResult]:
    """Audit ``ids`` (in ``workers`` processes) with a progress bar; write JSON and Markdown.

    With ``out``, writes ``out/shortcut_audit.json`` and ``out/shortcut_audit.md``, each
    through a temporary file and a rename, so a partial file never stands for a result.
    """
    import json
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from rich.progress import track

    jobs = [(i, n, seed) for i in ids]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(
                track(
                    pool.map(_audit_args, jobs),
                    total=len(jobs),
                    description=f"auditing {len(jobs)} ids x {n}",
                )
            )
    else:
        results = [_audit_args(j) for j in track(jobs, description=f"auditing x {n}")]
    if out is not None:
        folder = Path(out)
        payload = {"n": n, "seed": seed, "results": [r.to_dict() for r in results]}
        for name, text in (
            ("shortcut_audit.json", json.dumps(payload, indent=2)),
            ("shortcut_audit.md", markdown_table(results)),
        ):
            write_atomic(folder / name, text)
    return results
