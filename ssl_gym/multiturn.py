"""The economics of hinted play: what a retry costs, so that guessing does not pay.

In a ``-Hint`` episode a wrong answer is answered with a fixed reply ("not right"), the
next hint (marks drawn on the images, with a fixed text that points at them) and another
turn. The only thing a player who never looks learns from a reply is that its answer was
wrong, so its best play is to try the answers in turn. Each wrong answer therefore costs
``c``, chosen so that this enumeration earns exactly the single-turn chance:

    V(c) = sum_{t=1..h} (1/M) (1 - c (t - 1)) + (1 - h/M) (q - c (T - 1)) = chance

with ``M`` distinct answers, ``T`` turns, ``h = min(M, T)`` answers tried, and ``q`` the
expected score of the last answer when all ``h`` were wrong (partial credit). ``V`` is
linear in ``c``, so ``c`` has a closed form; when even a free retry cannot lift a blind
player above chance (a huge answer space, as in Jigsaw) the floor applies.

Where partial credit has a structure (FlipPatch: half for the right tile, wrong
direction), a blind player picks its answers to make the most of it: its first ``h - 1``
answers leave open the answers that would give its last one credit. The puzzle's credit
matrix (:meth:`ssl_gym.core.Puzzle.credit`) gives ``q`` for that best order exactly;
without one, ``q`` is the expected score of a random wrong answer.
"""

from __future__ import annotations

import numpy as np

from ssl_gym.core import check_float, check_int


def last_credit(credit: np.ndarray, tries: int) -> float:
    """The most the last of ``tries`` distinct wrong answers earns, summed over answers.

    ``credit[a, g]`` is the score of answer ``g`` when ``a`` is right. For the last answer
    ``g`` the best first ``tries - 1`` answers are those ``a != g`` that would give ``g``
    the least credit; what ``g`` then earns, over the answers left untried, is returned
    (divide by the number of answers for the expectation).
    """
    best = 0.0
    for g in range(credit.shape[0]):
        others = np.sort(np.delete(credit[:, g], g))
        best = max(best, float(others.sum() - others[: tries - 1].sum()))
    return best


def _value_terms(
    answers: int | None, turns: int, chance: float, credit: np.ndarray | None
) -> tuple[float, float]:
    """``(A, B)`` with ``V(c) = A - c B`` for the enumerating blind player."""
    if answers is None or answers <= 1:
        return chance, float(turns - 1)
    m = float(answers)
    h = min(answers, turns)
    if credit is None:
        missed = (m - h) * (chance * m - 1.0) / (m - 1.0)
    else:
        missed = last_credit(credit, h)
    a = (h + missed) / m
    b = sum(t for t in range(h)) / m + (1.0 - h / m) * (turns - 1)
    return a, b


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
    a, b = _value_terms(answers, turns, chance, credit)
    return a - cost * b


def retry_cost(
    answers: int | None,
    turns: int,
    chance: float,
    floor: float = 0.0,
    credit: np.ndarray | None = None,
) -> float:
    """The cost per wrong answer that holds the blind player to the chance score.

    Args:
        answers: How many distinct answers there are (``None``: too many to try).
        turns: Answers allowed in the episode (at least 1).
        chance: The single-turn chance score, in ``[0, 1]``.
        floor: The least a retry costs (``hint_cost``), so that early answers pay more.
        credit: The puzzle's credit matrix (``answers x answers``), if it has one.

    Returns:
        ``max(floor, c)`` with ``blind_value(answers, turns, chance, c, credit) == chance``.
    """
    check_int("turns", turns, 1)
    check_float("chance", chance, 0.0, 1.0)
    check_float("floor", floor, 0.0, 1e6)
    if credit is not None and (answers is None or credit.shape != (answers, answers)):
        raise ValueError(f"credit must be {answers} x {answers}, got shape {credit.shape}")
    a, b = _value_terms(answers, turns, chance, credit)
    if b <= 0.0:
        return floor
    return max(floor, (a - chance) / b)
