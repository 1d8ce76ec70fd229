"""Drawn hints shared by the choice families: wrong options crossed out on the images.

A hint's text is the same for every instance (:class:`ssl_gym.core.Hint`); what it says
about this instance is drawn. :func:`cross_out` crosses out one more wrong option per
level, in an order fixed per instance, and never the last wrong one, so only a player
who looks at the marks learns which options are left (a blind player's best play stays
trying the options in turn, which the retry cost holds to the chance score).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssl_gym.core import Hint, Instance
from ssl_gym.render import mark_cross

Region = tuple[float, float, float, float]
"""(left, top, right, bottom) in pixels of one observation image."""


def wrong_order(instance: Instance) -> list[int]:
    """Indices of the wrong choices in the order the hints cross them out (per instance)."""
    choices = instance.choices or ()
    wrong = [i for i, c in enumerate(choices) if c != instance.answer]
    key = sum(ord(ch) for ch in instance.prompt + instance.answer)
    order = np.random.default_rng([key, len(wrong)]).permutation(len(wrong))
    return [wrong[int(k)] for k in order]


def cross_out(
    instance: Instance,
    level: int,
    boxes: Sequence[tuple[int, Region]],
    text: str,
    images: Sequence[np.ndarray] | None = None,
) -> Hint | None:
    """Hint ``level``: ``level + 1`` wrong options crossed out; ``None`` past ``K - 2``.

    Args:
        instance: the puzzle instance.
        level: 0 for the first hint.
        boxes: per option, in option order, the observation image it is drawn on and its
            box there.
        text: the family's fixed text.
        images: the images to draw on (default: the observation's).
    """
    order = wrong_order(instance)
    if not 0 <= level < len(order) - 1:
        return None
    drawn = list(instance.images if images is None else images)
    for option in order[: level + 1]:
        index, box = boxes[option]
        drawn[index] = mark_cross(drawn[index], box)
    return Hint(text, tuple(drawn))
