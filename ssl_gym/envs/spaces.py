"""Spaces of the puzzle envs: printable-text prompts and free-text completions."""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

#: Characters a prompt may contain (printable ASCII and common whitespace).
PROMPT_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n\t"
#: Longest prompt an env emits, including hints in multi-turn play.
PROMPT_MAX_LENGTH = 8192


class PromptText(spaces.Text):
    """The observation's ``prompt`` space: printable text of bounded length.

    A :class:`gymnasium.spaces.Text` that survives ``AsyncVectorEnv``'s shared memory.
    Gymnasium reads a space's shared memory once, when the vector env is built, and hands
    out copies of what it read: for arrays those are views that follow the workers'
    writes, but a ``Text`` space's read is a tuple of strings frozen at build time (every
    prompt came back as 8,192 ``a`` s). The read of this space is a live sequence
    (:class:`LivePrompts`) that decodes the buffer when indexed or copied.
    """


class LivePrompts(Sequence[str]):
    """The prompts in an ``AsyncVectorEnv``'s shared memory, decoded when read.

    ``deepcopy`` (what the vector env returns by default) gives a plain tuple of the
    prompts as they are now.
    """

    def __init__(self, space: spaces.Text, memory: Any, n: int) -> None:
        self._space, self._memory, self._n = space, memory, n

    def _rows(self) -> np.ndarray:
        data = np.frombuffer(self._memory.get_obj(), dtype=np.int32)
        return data.reshape((self._n, self._space.max_length))

    def _decode(self, values: np.ndarray) -> str:
        chars, n = self._space.character_list, len(self._space.character_set)
        return "".join(chars[v] for v in values if v < n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self)[index]
        return self._decode(self._rows()[index])

    def __iter__(self) -> Iterator[str]:
        return iter([self._decode(row) for row in self._rows()])

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(PromptText)
def _read_prompts(space: PromptText, shared_memory: Any, n: int = 1) -> LivePrompts:
    return LivePrompts(space, shared_memory, n)


def prompt_space() -> PromptText:
    """The observation's ``prompt``: printable text of bounded length."""
    return PromptText(max_length=PROMPT_MAX_LENGTH, min_length=1, charset=PROMPT_CHARSET)


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
