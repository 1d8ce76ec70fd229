"""FlipPatch's answers: how a tile number and a flip direction are read, and scored.

:func:`parse_answer` reads ``(tile, direction)`` from free text tolerantly: ``5 h``,
``tile 5, horizontally``, ``(5, vertical)``, ``5 upside down`` and the like, a tile
number alone with no direction, and nothing from text with two different numbers or
both directions. :func:`score_answer` scores a parsed answer: 1 for the tile and the
direction, 0.5 for the tile alone, 0 otherwise.
"""

from __future__ import annotations

import re
from typing import Any

DIRECTIONS = ("horizontal", "vertical")
_TOKEN = re.compile(r"[a-z]+|\d+")
_GRID_SIZE = re.compile(r"\d+\s*x\s*\d+")
"""``3x3`` and the like: a grid size, not a tile number."""
_HORIZONTAL_WORDS = frozenset({"horizontal", "horizontally", "h", "horiz", "hor", "lr"})
_VERTICAL_WORDS = frozenset({"vertical", "vertically", "v", "vert", "ud"})
_HORIZONTAL_PAIRS = (frozenset({"left", "right"}),)
_VERTICAL_PAIRS = (
    frozenset({"upside", "down"}),
    frozenset({"top", "bottom"}),
    frozenset({"up", "down"}),
)


def parse_answer(text: str) -> tuple[int, str | None] | None:
    """Read ``(tile, direction)``; direction ``None`` when only a number is given.

    ``None`` when there is no number, two different numbers, or both directions.
    """
    tokens = _TOKEN.findall(_GRID_SIZE.sub(" ", text[:200].lower()))
    numbers = {int(t) for t in tokens if t.isdigit() and len(t) <= 6}
    if len(numbers) != 1 or any(t.isdigit() and len(t) > 6 for t in tokens):
        return None
    words = set(tokens)
    horizontal = bool(words & _HORIZONTAL_WORDS) or any(p <= words for p in _HORIZONTAL_PAIRS)
    vertical = bool(words & _VERTICAL_WORDS) or any(p <= words for p in _VERTICAL_PAIRS)
    if horizontal and vertical:
        return None
    direction = DIRECTIONS[0] if horizontal else DIRECTIONS[1] if vertical else None
    return numbers.pop(), direction


def score_answer(truth: Any, guess: Any) -> float:
    """The score of ``guess`` against ``truth``, both ``(tile, direction)`` pairs."""
    if not isinstance(guess, tuple | list) or len(guess) != 2:
        return 0.0
    if guess[0] != truth[0]:
        return 0.0
    return 1.0 if guess[1] == truth[1] else 0.5
