"""The economics of hinted play: what a retry costs, so that guessing does not pay.

In a ``-Hint`` episode a wrong answer is answered with a fixed reply ("not right"), the
next hint (marks drawn on the images, with a fixed text that points at them) and another
turn. The only thing a player who never looks learns from a reply is that its answer was
wrong, so its best play is to try the answers in turn. Each wrong answer therefore costs
``c``, chosen so that this enumeration earns exactly the single-turn chance:

    V(c) = sum_{t=1..h} (1/M) (1 - c (t - 1)) + (1 - h/M) (q - c (T - 1)) = chance

with ``M`` distinct answers, ``T`` turns, ``h = min(M, T)`` answers tried, and ``q`` the
expected score of a random answer that is not the right one (partial credit). ``V`` is
linear in ``c``, so ``c`` has a closed form; when even a free retry cannot lift a blind
player above chance (a huge answer space, as in Jigsaw) the floor applies.
"""

from __future__ import annotations

from ssl_gym.core import check_float, check_int


def _value_terms(answers: int | None, turns: int, chance: float) -> tuple[float, float]:
    """``(A, B)`` with ``V(c) = A - c B`` for the enumerating blind player."""
    if answers is None or answers <= 1:
        return chance, float(turns - 1)
    m = float(answers)
    h = min(answers, turns)
    q = (chance * m - 1.0) / (m - 1.0)
    a = h / m + (1.0 - h / m) * q
    b = sum(t for t in range(h)) / m + (1.0 - h / m) * (turns - 1)
    return a, b


def blind_value(answers: int | None, turns: int, chance: float, cost: float) -> float:
    """Expected episode reward of the blind player that tries the answers in turn.

    Args:
        answers: How many distinct answers there are (``None``: too many to try).
        turns: Answers allowed in the episode.
        chance: The single-turn chance score (expected score of a random answer).
        cost: What each wrong answer before the last costs.
    """
    a, b = _value_terms(answers, turns, chance)
    return a - cost * b


def retry_cost(answers: int | None, turns: int, chance: float, floor: float = 0.0) -> float:
    """The cost per wrong answer that holds the blind player to the chance score.

    Args:
        answers: How many distinct answers there are (``None``: too many to try).
        turns: Answers allowed in the episode (at least 1).
        chance: The single-turn chance score, in ``[0, 1]``.
        floor: The least a retry costs (``hint_cost``), so that early answers pay more.

    Returns:
        ``max(floor, c)`` with ``blind_value(answers, turns, chance, c) == chance``.
    """
    check_int("turns", turns, 1)
    check_float("chance", chance, 0.0, 1.0)
    check_float("floor", floor, 0.0, 1e6)
    a, b = _value_terms(answers, turns, chance)
    if b <= 0.0:
        return floor
    return max(floor, (a - chance) / b)
