"""The strong audit: can a player that never does the intended matching beat chance?

For one id and one image source, ``n`` instances are drawn with seeds ``[seed, i]``; 70%
train the probes that learn and the other 30% score every probe. Each instance is cut
into its parts (:meth:`ssl_gym.core.Puzzle.parts`): the tiles, candidates or views, and
the reference they are to be matched with. The probes, all but two of them gradient
boosting (a nonlinear learner) on downsampled pixels and statistics:

* ``blind``: the best constant answer on the training instances;
* ``frame``: each observation image's size, mean colour and border frame (the weak
  audit's cheap statistics, learned nonlinearly);
* ``part_alone``: each part by itself (no reference, no other part) predicts its label
  (right option, cell, flip); the guesses are decoded per instance, with a one-to-one
  assignment for permutations;
* ``context_alone``: the reference alone predicts the answer;
* ``stats_nearest``: no training: the option whose colour statistics (mean and spread,
  histogram, gradient energy: the group that did best on the training instances) are
  nearest the reference's, or, without a reference, farthest from the other parts';
* ``stats_learned``: each part's statistics and their gaps to the reference's and the
  other parts';
* ``geometry``: where each part's marker is drawn and where the instance's marked point
  is, without any pixel (only families that draw points);
* ``blind_play`` (``-Hint`` ids): the mean episode reward of the blind adversary
  (:mod:`ssl_gym.audit.blind`), which reads every reply and tries the answers in turn.

No probe sees the pixels of a part together with those of its reference: that is the
intended matching, which a learner on both would be doing rather than bypassing. For the
same reason a family whose whole observation is the content to read (Rotation: the
picture's orientation) has no parts; its audit is the blind, frame and context probes.

Every probe must score within ``tolerance`` (0.05) of the chance score on the held-out
instances; its 95% confidence interval is reported. The oracle must score 1.0, and, for
families whose answer means "from the same image", every instance's labels must agree
with the source identities of its parts (0 mislabelled or two-answer instances).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ssl_gym.audit.probes import (
    STAT_GROUPS,
    decode,
    fit_predict,
    frame_features,
    statistics,
    thumbnail,
)
from ssl_gym.audit.weak import answer_score, blind_answer
from ssl_gym.core import Instance, Parts, Puzzle
from ssl_gym.envs import PuzzleEnv, make_puzzle_env
from ssl_gym.images import ImageSource

TOLERANCE = 0.05
TRAIN_SHARE = 0.7


@dataclass(frozen=True)
class ProbeResult:
    """One probe's held-out score."""

    name: str
    score: float
    low: float
    high: float
    detail: str = ""


@dataclass(frozen=True)
class StrongResult:
    """The strong audit of one id on one image source."""

    id: str
    family: str
    source: str
    n: int
    chance: float
    oracle: float
    rejection_rate: float
    identity_errors: int
    """Instances whose labels disagree with their parts' source identities."""
    probes: tuple[ProbeResult, ...] = field(default_factory=tuple)
    tolerance: float = TOLERANCE

    def probe_ok(self, probe: ProbeResult) -> bool:
        """The probe's score is within ``tolerance`` of chance."""
        return probe.score <= self.chance + self.tolerance

    @property
    def worst(self) -> ProbeResult:
        """The probe with the highest score."""
        return max(self.probes, key=lambda p: p.score)

    @property
    def passed(self) -> bool:
        """Oracle 1.0, no identity error, and every probe within tolerance."""
        probes_ok = all(self.probe_ok(p) for p in self.probes)
        return self.oracle == 1.0 and self.identity_errors == 0 and probes_ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, each probe with its ``pass``, and the verdict."""
        out = asdict(self)
        out["probes"] = [{**asdict(p), "pass": self.probe_ok(p)} for p in self.probes]
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StrongResult:
        """The result :meth:`to_dict` wrote (derived fields, ``pass`` and ``passed``, dropped)."""
        fields = {k: v for k, v in data.items() if k not in ("probes", "passed")}
        probes = tuple(
            ProbeResult(**{k: v for k, v in p.items() if k != "pass"}) for p in data["probes"]
        )
        return cls(**fields, probes=probes)


# --- scoring -------------------------------------------------------------------------------


def _result(name: str, scores: Sequence[float], detail: str = "") -> ProbeResult:
    arr = np.asarray(scores, dtype=np.float64)
    half = 1.96 * float(arr.std(ddof=1)) / np.sqrt(len(arr)) if len(arr) > 1 else 1.0
    mean = float(arr.mean())
    return ProbeResult(name, round(mean, 4), round(mean - half, 4), round(mean + half, 4), detail)


@dataclass
class _Split:
    """Instances and their parts, training and held out."""

    puzzle: Puzzle
    train: list[Instance]
    test: list[Instance]
    train_parts: list[Parts]
    test_parts: list[Parts]
    _stats: dict[int, tuple[list[np.ndarray], np.ndarray | None]] = field(default_factory=dict)

    def scores(self, answers: Sequence[str]) -> list[float]:
        return [answer_score(self.puzzle, i, a) for i, a in zip(self.test, answers, strict=True)]

    def stats(self, parts: Parts) -> tuple[list[np.ndarray], np.ndarray | None]:
        """:func:`statistics` of each part and of the reference, computed once per split."""
        key = id(parts)
        if key not in self._stats:
            ref = None if parts.reference is None else statistics(parts.reference)
            self._stats[key] = ([statistics(im) for im in parts.parts], ref)
        return self._stats[key]


def _per_part(split: _Split, features: Callable[[Parts, int], np.ndarray]) -> list[str]:
    """Train on every part's features and label; decode held-out instances' answers."""
    x_train = np.stack([features(p, j) for p in split.train_parts for j in range(len(p.parts))])
    y_train = [label for p in split.train_parts for label in p.labels]
    x_test = np.stack([features(p, j) for p in split.test_parts for j in range(len(p.parts))])
    proba, classes = fit_predict(x_train, y_train, x_test)
    answers, start = [], 0
    for inst, parts in zip(split.test, split.test_parts, strict=True):
        rows = proba[start : start + len(parts.parts)]
        answers.append(decode(parts, rows, classes, inst))
        start += len(parts.parts)
    return answers


# --- the probes ----------------------------------------------------------------------------


def probe_blind(split: _Split) -> ProbeResult:
    """The best constant answer on the training instances."""
    answer = blind_answer(split.puzzle, split.train)
    return _result("blind", split.scores([answer] * len(split.test)), answer)


def probe_part_alone(split: _Split) -> ProbeResult | None:
    """Each part on its own: thumbnail and statistics, no reference, no other part."""
    if not split.test_parts[0].parts:
        return None

    def features(parts: Parts, j: int) -> np.ndarray:
        return np.concatenate([thumbnail(parts.parts[j]), split.stats(parts)[0][j]])

    answers = _per_part(split, features)
    return _result("part_alone", split.scores(answers))


def _relational(j: int, stats: list[np.ndarray], ref: np.ndarray | None) -> np.ndarray:
    own = stats[j]
    rows = [own]
    if ref is not None:
        rows.append(np.abs(own - ref))
    if len(stats) > 1:
        others = np.mean([s for k, s in enumerate(stats) if k != j], axis=0)
        rows.append(np.abs(own - others))
    return np.concatenate(rows)


def probe_stats_learned(split: _Split) -> ProbeResult | None:
    """Statistics of each part and their gaps to the reference's and the other parts'."""
    if not split.test_parts[0].parts:
        return None

    def features(parts: Parts, j: int) -> np.ndarray:
        return _relational(j, *split.stats(parts))

    answers = _per_part(split, features)
    return _result("stats_learned", split.scores(answers))


def _nearest_answer(split: _Split, parts: Parts, inst: Instance, group: slice) -> str:
    every, ref = split.stats(parts)
    stats = np.stack([s[group] for s in every])
    if ref is not None:
        pick = int(np.argmin(np.abs(stats - ref[group]).sum(axis=1)))
    else:
        gaps = [
            np.abs(s - np.delete(stats, j, axis=0).mean(axis=0)).sum() for j, s in enumerate(stats)
        ]
        pick = int(np.argmax(gaps))
    return (inst.choices or ())[pick]


def probe_stats_nearest(split: _Split) -> ProbeResult | None:
    """No training: the option nearest the reference (or farthest from the rest)."""
    if split.test_parts[0].kind != "choice":
        return None

    def mean_score(insts: list[Instance], parts: list[Parts], group: slice) -> list[float]:
        return [
            answer_score(split.puzzle, i, _nearest_answer(split, p, i, group))
            for i, p in zip(insts, parts, strict=True)
        ]

    fit = split.train[:300], split.train_parts[:300]
    best = max(STAT_GROUPS, key=lambda g: np.mean(mean_score(*fit, STAT_GROUPS[g])))
    return _result(
        "stats_nearest", mean_score(split.test, split.test_parts, STAT_GROUPS[best]), best
    )


def probe_geometry(split: _Split) -> ProbeResult | None:
    """Where the markers are drawn, without the pixels around them."""
    if split.test_parts[0].points is None:
        return None

    def features(parts: Parts, j: int) -> np.ndarray:
        point = np.asarray((parts.points or ())[j], dtype=np.float64)
        anchor = np.asarray(parts.anchor, dtype=np.float64)
        gap = point[: len(anchor)] - anchor if len(anchor) else point[:0]
        return np.concatenate([point, anchor, gap, [np.hypot(*gap[:2])] if len(gap) >= 2 else []])

    answers = _per_part(split, features)
    return _result("geometry", split.scores(answers))


def probe_context_alone(split: _Split) -> ProbeResult | None:
    """The reference (anchor view, masked picture, full image) alone -> the answer."""
    if split.test_parts[0].reference is None:
        return None

    def features(parts: Parts) -> np.ndarray:
        ref = split.stats(parts)[1]
        return np.concatenate([thumbnail(_ref(parts)), ref if ref is not None else []])

    x_train = np.stack([features(p) for p in split.train_parts])
    x_test = np.stack([features(p) for p in split.test_parts])
    return _learned_answers("context_alone", split, x_train, x_test)


def _ref(parts: Parts) -> np.ndarray:
    if parts.reference is None:
        raise ValueError("every instance of a family has a reference, or none has")
    return parts.reference


def probe_frame(split: _Split) -> ProbeResult | None:
    """Cheap statistics of each observation image (size, mean colour, border frame)."""
    if split.test_parts[0].kind == "permutation":
        return None  # a tile's frame is part of what part_alone sees
    x_train = np.stack([frame_features(i) for i in split.train])
    x_test = np.stack([frame_features(i) for i in split.test])
    return _learned_answers("frame", split, x_train, x_test)


def _learned_answers(
    name: str, split: _Split, x_train: np.ndarray, x_test: np.ndarray
) -> ProbeResult:
    """Gradient boosting from instance features straight to the answer text."""
    proba, classes = fit_predict(x_train, [i.answer for i in split.train], x_test)
    return _result(name, split.scores([classes[int(k)] for k in proba.argmax(axis=1)]))


PROBE_NAMES = (
    "blind_play",
    "blind",
    "frame",
    "part_alone",
    "context_alone",
    "stats_nearest",
    "stats_learned",
    "geometry",
)
PROBES: tuple[Callable[[_Split], ProbeResult | None], ...] = (
    probe_blind,
    probe_frame,
    probe_part_alone,
    probe_context_alone,
    probe_stats_nearest,
    probe_stats_learned,
    probe_geometry,
)


# --- source identity ----------------------------------------------------------------------


def identity_error(puzzle: Puzzle, parts: Parts) -> bool:
    """Whether an instance's labels disagree with its parts' source identities.

    Only for families whose answer means "from the same image" (``compares_sources``);
    such a family that reports no identities is an error on every instance.
    """
    if not getattr(puzzle, "compares_sources", False):
        return False
    sources = parts.sources
    if sources is None:
        return True
    if parts.kind == "label":  # a pair: the label "positive" means one source picture
        return (sources[0] == parts.reference_source) != (parts.labels[0] == "positive")
    right = parts.labels.index("1")
    if parts.reference_source is not None:
        matches = [s == parts.reference_source for s in sources]
        return sum(matches) != 1 or not matches[right]
    others = {s for j, s in enumerate(sources) if j != right}
    return sources[right] in others or len(others) != 1


# --- one id ------------------------------------------------------------------------------


def strong_audit_puzzle(
    puzzle: Puzzle,
    source: ImageSource,
    name: str,
    n: int = 2000,
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> StrongResult:
    """Audit a puzzle with an image source; ``name`` labels the result."""
    instances = [puzzle.generate(np.random.default_rng([seed, i]), source) for i in range(n)]
    parts = [puzzle.parts(i) for i in instances]
    cut = round(TRAIN_SHARE * n)
    split = _Split(puzzle, instances[:cut], instances[cut:], parts[:cut], parts[cut:])
    rejected = sum(int(i.metadata["rejections"]) for i in instances)
    oracle = float(np.mean([puzzle.verify(i, puzzle.oracle(i)).score for i in instances]))
    probes = tuple(r for probe in PROBES if (r := probe(split)) is not None)
    return StrongResult(
        id=name,
        family=puzzle.family,
        source=source.spec,
        n=n,
        chance=round(float(puzzle.chance_score), 4),
        oracle=oracle,
        rejection_rate=round(rejected / (rejected + n), 4),
        identity_errors=sum(identity_error(puzzle, p) for p in parts),
        probes=probes,
        tolerance=tolerance,
    )


def strong_audit_id(
    env_id: str, source: str = "procedural", n: int = 2000, seed: int = 0
) -> StrongResult:
    """Audit one registered id on one image source spec (``-Hint`` ids by blind play)."""
    env = make_puzzle_env(env_id, image_source=source)
    if env.max_turns != 1:
        return strong_audit_hinted(env, env_id, n, seed)
    return strong_audit_puzzle(env.puzzle, env.source, env_id, n, seed)


#: Seeds the blind player learns the replies on; it is scored on seeds above them.
BLIND_FIT_SEEDS = 300


def strong_audit_hinted(
    env: PuzzleEnv, name: str, n: int = 2000, seed: int = 0, tolerance: float = TOLERANCE
) -> StrongResult:
    """The blind adversary's mean reward over ``n`` hinted episodes against the chance.

    The player (:class:`ssl_gym.audit.blind.BlindPlayer`) learns on ``BLIND_FIT_SEEDS``
    training episodes, then plays ``n`` others.
    """
    from ssl_gym.audit.blind import BlindPlayer

    player = BlindPlayer(env, range(BLIND_FIT_SEEDS))
    rewards, oracle = [], []
    for i in range(n):
        episode = BLIND_FIT_SEEDS + seed * n + i
        rewards.append(player.play(episode, np.random.default_rng([seed, i, 7]))[0])
        if env.instance is not None and i < 100:
            oracle.append(env.puzzle.verify(env.instance, env.puzzle.oracle(env.instance)).score)
    chance = float(env.puzzle.chance_score)
    return StrongResult(
        id=name,
        family=env.puzzle.family,
        source=env.source.spec,
        n=n,
        chance=round(chance, 4),
        oracle=float(np.mean(oracle)),
        rejection_rate=0.0,
        identity_errors=0,
        probes=(_result("blind_play", rewards),),
        tolerance=tolerance,
    )


def _cell(result: StrongResult, probe: ProbeResult | None) -> str:
    if probe is None:
        return "-"
    return f"{probe.score:.3f}" + ("" if result.probe_ok(probe) else " **x**")


def markdown(results: Sequence[StrongResult]) -> str:
    """The strong audit as a Markdown table: one row per id and source."""
    names = [n for n in PROBE_NAMES if any(n == q.name for r in results for q in r.probes)]
    head = "| id | source | chance | " + " | ".join(names) + " | oracle | identity | verdict |"
    lines = [head, "|" + "---|" * 2 + "---:|" * (len(names) + 3) + "---|"]
    for r in results:
        by_name = {p.name: p for p in r.probes}
        cells = [_cell(r, by_name.get(k)) for k in names]
        verdict = "pass" if r.passed else f"FAIL ({r.worst.name} {r.worst.score:.3f})"
        lines.append(
            f"| {r.id} | {r.source} | {r.chance:.3f} | "
            + " | ".join(cells)
            + f" | {r.oracle:.3f} | {r.identity_errors} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
