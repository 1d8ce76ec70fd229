"""Jigsaw's answers: how they are read and scored, and what chance scores.

An answer gives, for each cell of the restored image in row-major order, the 1-based
number of the shown tile that belongs there. :func:`answer_pattern` is the canonical
grammar (for constrained decoding), :func:`parse_answer` the tolerant reader,
:func:`score_answer` the ``position``, ``exact`` or ``adjacency`` score (a repeated or
out-of-range number is a wrong cell) and :func:`chance_score` the expected score of a
uniformly random permutation under each scoring, in closed form.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

SCORINGS = ("position", "exact", "adjacency")
_INT = re.compile(r"-?\d+")


def chance_score(scoring: str, rows: int, cols: int) -> float:
    """Expected score of a uniformly random permutation of a ``rows x cols`` grid."""
    n = rows * cols
    if scoring == "position":
        return 1.0 / n
    if scoring == "exact":
        return 1.0 / math.factorial(n)
    # A pair of adjacent cells holds a uniform ordered pair of distinct tiles, which is
    # right for h (horizontal) or v (vertical) of the n (n - 1) ordered pairs.
    h, v = rows * (cols - 1), (rows - 1) * cols
    return (h * h + v * v) / ((h + v) * n * (n - 1))


def answer_pattern(n: int) -> str:
    """Regular expression (for ``re.fullmatch``) of ``n`` tile numbers, comma separated.

    Commas with at most one space after them: a finite, canonical grammar that
    constrained decoding can follow (:func:`parse_answer` itself is more tolerant).
    """
    number = "(?:" + "|".join(str(k) for k in range(n, 0, -1)) + ")"
    return rf"{number}(?:, ?{number}){{{n - 1}}}"


def parse_answer(text: str, n: int) -> list[int] | None:
    """Read exactly ``n`` integers (any separators); repeats and range are scored.

    Integers longer than 9 characters, never valid, read as 0 (out of range).
    """
    numbers = _INT.findall(text)
    if len(numbers) != n:
        return None
    return [int(x) if len(x) <= 9 else 0 for x in numbers]


def score_answer(scoring: str, truth: Any, solution: Any, shape: tuple[int, int]) -> float:
    """Position, exact or adjacency score; repeated or out-of-range cells are wrong.

    Args:
        scoring: One of :data:`SCORINGS`.
        truth: The right tile number (1-based) per cell, row-major.
        solution: The parsed answer, in the same form.
        shape: Rows and columns of the grid.
    """
    n = shape[0] * shape[1]
    guess = _tile_per_cell(solution, n)
    if guess is None:
        return 0.0
    right = np.asarray(truth) - 1
    if scoring == "position":
        return float(np.mean(guess == right))
    if scoring == "exact":
        return float(np.array_equal(guess, right))
    return _adjacency(right, guess, shape)


def _tile_per_cell(solution: Any, n: int) -> np.ndarray | None:
    """0-based tile per cell, -1 where the number is repeated or out of range."""
    if not isinstance(solution, list | tuple) or len(solution) != n:
        return None
    if not all(isinstance(v, int | np.integer) for v in solution):
        return None
    counts = Counter(int(v) for v in solution)
    return np.array([int(v) - 1 if 1 <= v <= n and counts[int(v)] == 1 else -1 for v in solution])


def _adjacency(truth: np.ndarray, guess: np.ndarray, shape: tuple[int, int]) -> float:
    """Fraction of adjacent cell pairs holding true neighbours in the same relation."""
    rows, cols = shape
    n = rows * cols
    home = np.empty(n + 1, dtype=np.int64)
    home[truth] = np.arange(n)
    home[-1] = 0  # the slot of guess -1 (invalid); such pairs are masked out below
    cells = np.arange(n).reshape(rows, cols)
    scores = []
    for a, b, step in ((cells[:, :-1], cells[:, 1:], (0, 1)), (cells[:-1], cells[1:], (1, 0))):
        ha, hb = home[guess[a]], home[guess[b]]
        same = (hb // cols - ha // cols == step[0]) & (hb % cols - ha % cols == step[1])
        scores.append(same & (guess[a] >= 0) & (guess[b] >= 0))
    return float(np.concatenate([s.ravel() for s in scores]).mean())
