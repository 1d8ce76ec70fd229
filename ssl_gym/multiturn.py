"""The economics of hinted play: what a retry costs, so that guessing does not pay.

In a ``-Hint`` episode a wrong answer is answered with a fixed reply ("not right"), the
next hint (marks drawn on the images, with a fixed text that points at them) and another
turn. The only thing a player who never looks learns from a reply is that its answer was
wrong, so its best play is to try the answers in turn. Each wrong answer therefore costs
``c``, chosen so that this enumeration earns the single-turn chance less a margin:

    V(c) = sum_{t=1..h} (1/M) (1 - c (t - 1)) + (1 - h/M) (q - c (T - 1)) = chance - margin

with ``M`` distinct answers, ``T`` turns, ``h = min(M, T)`` answers tried, and ``q`` the
expected score of the last answer when all ``h`` were wrong (partial credit). ``V`` is
linear in ``c``, so with no margin ``c`` has a closed form; when even a free retry cannot
lift a blind player above chance (a huge answer space, as in Jigsaw) the floor applies.

The margin. A blind player that earns exactly the chance in expectation still beats
chance + 0.05 on a finite check by luck: its episode rewards spread wider than a single
guess's (a standard deviation of 0.67 on Rotation-4way-Hint against 0.43 for one guess),
so the mean of 200 episodes is above chance + 0.05 about one time in seven. The cost is
therefore raised until the mean of :data:`CHECK_EPISODES` blind episodes stays within
chance + :data:`CHECK_TOLERANCE` at :data:`CHECK_Z` standard errors (a 1% false alarm):
``margin = max(0, CHECK_Z * sd(c) / sqrt(CHECK_EPISODES) - CHECK_TOLERANCE)``, solved with
the spread ``sd(c)`` of :func:`blind_outcomes` by fixed-point iteration. Ids whose spread is
small (under 0.30) keep the exact-chance cost; the others pay about 0.02-0.07 more.

Where partial credit has a structure (FlipPatch: half for the right tile, wrong
direction), a blind player picks its answers to make the most of it: its first ``h - 1``
answers leave open the answers that would give its last one credit. The puzzle's credit
matrix (:meth:`ssl_gym.core.Puzzle.credit`) gives ``q`` for that best order exactly;
without one, ``q`` is the expected score of a random wrong answer.
"""

from __future__ import annotations

import math

import numpy as np

from ssl_gym.core import check_float, check_int

CHECK_EPISODES = 200
"""Episodes of the check a blind player must pass on every ``-Hint`` id
(``ssl-gym eval --policy blind --episodes 200``)."""
CHECK_TOLERANCE = 0.05
"""How far above the single-turn chance the check lets the blind player's mean reward go."""
CHECK_Z = 2.326
"""Standard errors of margin: the check fails by bad luck at most 1% of the time (one-sided)."""


Outcome = tuple[float, float, int]
"""``(probability, score of the last answer, wrong answers paid for)``."""


def blind_outcomes(
    answers: int | None, turns: int, chance: float, credit: np.ndarray | None = None
) -> list[Outcome]:
    """How the enumerating blind player's episode can end: ``(probability, score, wrong)``.

    ``score`` is what its last answer earns and ``wrong`` how many wrong answers it paid
    for; the episode reward is ``score - cost * wrong``. Without a finite answer count
    the player is taken to earn the chance score on every turn and never to find it.
    """
    if answers is None or answers <= 1:
        return [(1.0, chance, turns - 1)]
    m = answers
    h = min(answers, turns)
    found = [(1.0 / m, 1.0, k) for k in range(h)]
    if h == m:
        return found
    if credit is None:
        q = (chance * m - 1.0) / (m - 1.0)
        return [*found, (1.0 - h / m, q, turns - 1)]
    # the best last answer g: the first h - 1 answers are the a != g giving g least credit
    best_g = max(range(m), key=lambda g: float(_left(credit, g, h).sum()))
    return [*found, *((1.0 / m, float(s), turns - 1) for s in _left(credit, best_g, h))]


def _left(credit: np.ndarray, g: int, tries: int) -> np.ndarray:
    """The credit ``g`` earns on the right answers left untried by the best order."""
    others = np.sort(np.delete(credit[:, g], g))
    return others[tries - 1 :]


def _terms(outcomes: list[Outcome]) -> tuple[float, float]:
    """``(A, B)`` with ``V(c) = A - c B`` for the enumerating blind player."""
    return sum(p * s for p, s, _ in outcomes), float(sum(p * w for p, _, w in outcomes))


def _spread(outcomes: list[Outcome], cost: float) -> float:
    mean = sum(p * (s - cost * w) for p, s, w in outcomes)
    second = sum(p * (s - cost * w) ** 2 for p, s, w in outcomes)
    return math.sqrt(max(second - mean * mean, 0.0))


def blind_spread(
    answers: int | None,
    turns: int,
    chance: float,
    cost: float,
    credit: np.ndarray | None = None,
) -> float:
    """Standard deviation of the enumerating blind player's episode reward."""
    return _spread(blind_outcomes(answers, turns, chance, credit), cost)


def blind_value(
    answers: int | None,
    turns: int,
    chance: float,
    cost: float,
    credit: np.ndarray | None = None,
) -> float:
    """Expected episode reward of the blind player that tries the answers in turn.

    Args:
        answers: How many distinct answers there are (``None``: too many to try).
        turns: Answers allowed in the episode.
        chance: The single-turn chance score (expected score of a random answer).
        cost: What each wrong answer before the last costs.
        credit: The puzzle's credit matrix (``answers x answers``), if it has one.
    """
    a, b = _terms(blind_outcomes(answers, turns, chance, credit))
    return a - cost * b


def retry_cost(
    answers: int | None,
    turns: int,
    chance: float,
    floor: float = 0.0,
    credit: np.ndarray | None = None,
    check_episodes: int | None = CHECK_EPISODES,
) -> float:
    """The cost per wrong answer that holds the blind player below the chance score.

    Args:
        answers: How many distinct answers there are (``None``: too many to try).
        turns: Answers allowed in the episode (at least 1).
        chance: The single-turn chance score, in ``[0, 1]``.
        floor: The least a retry costs (``hint_cost``), so that early answers pay more.
        credit: The puzzle's credit matrix (``answers x answers``), if it has one.
        check_episodes: The size of the check the blind player must pass (see the
            module notes); ``None`` holds its expected reward to exactly ``chance``.

    Returns:
        ``max(floor, c)`` with ``blind_value(answers, turns, chance, c, credit)`` equal to
        ``chance - margin``: ``margin`` is 0 with ``check_episodes=None``, else the least
        that keeps the mean of ``check_episodes`` blind episodes within chance +
        :data:`CHECK_TOLERANCE` at :data:`CHECK_Z` standard errors.
    """
    check_int("turns", turns, 1)
    check_float("chance", chance, 0.0, 1.0)
    check_float("floor", floor, 0.0, 1e6)
    if check_episodes is not None:
        check_int("check_episodes", check_episodes, 1)
    if credit is not None and (answers is None or credit.shape != (answers, answers)):
        raise ValueError(f"credit must be {answers} x {answers}, got shape {credit.shape}")
    outcomes = blind_outcomes(answers, turns, chance, credit)  # once: every reset calls this
    a, b = _terms(outcomes)
    if b <= 0.0:
        return floor
    cost = (a - chance) / b
    if check_episodes is not None:
        # the margin grows with the cost (a dearer retry spreads the rewards); the map is a
        # contraction (its slope is CHECK_Z / sqrt(n) / B times the spread's, well below 1)
        for _ in range(100):
            spread = _spread(outcomes, cost)
            margin = max(0.0, CHECK_Z * spread / math.sqrt(check_episodes) - CHECK_TOLERANCE)
            new = (a - chance + margin) / b
            if abs(new - cost) < 1e-12:
                break
            cost = new
    return max(floor, cost)
