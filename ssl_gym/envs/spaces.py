"""Spaces of the puzzle envs: printable-text prompts and free-text completions."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

#: Characters a prompt may contain (printable ASCII and common whitespace).
PROMPT_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n\t"
#: Longest prompt an env emits, including hints in multi-turn play.
PROMPT_MAX_LENGTH = 8192


def prompt_space() -> spaces.Text:
    """The observation's ``prompt``: printable text of bounded length."""
    return spaces.Text(max_length=PROMPT_MAX_LENGTH, min_length=1, charset=PROMPT_CHARSET)


class Completion(spaces.Text):
    """The action space: the model's whole completion, any ``str``.

    ``sample()`` draws printable text like :class:`gymnasium.spaces.Text`; ``contains``
    accepts every string, since a model may write anything (unicode, 100 KB, nothing).
    """

    def __init__(self, max_length: int = 512, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=PROMPT_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        """Every ``str`` is a valid completion."""
        return isinstance(x, str)

    def __repr__(self) -> str:
        return "Completion(any str)"


def observation_space(shapes: tuple[tuple[int, int, int], ...]) -> spaces.Dict:
    """``{"images": Tuple(Box uint8 per image), "prompt": Text}`` for fixed image shapes."""
    images = spaces.Tuple([spaces.Box(0, 255, shape=shape, dtype=np.uint8) for shape in shapes])
    return spaces.Dict({"images": images, "prompt": prompt_space()})
