"""Answer grammars for constrained decoding: allowed token sequences and regex prefixes.

A puzzle declares its valid answers either as a finite list (``choices``) or as a regular
expression (``pattern``). Wrapped in the env's answer format, they become the valid
*completions*; :class:`GrammarConstraint` tells, for a generated prefix of token ids, which
next tokens keep it valid and whether it may end here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from ssl_gym.core import format_answer


def completion_grammar(
    choices: Sequence[str] | None, pattern: str | None, answer_format: str
) -> tuple[tuple[str, ...] | None, str | None]:
    """The answer grammar wrapped in the answer format, as whole completions."""
    if choices is not None:
        return tuple(format_answer(c, answer_format) for c in choices), None
    if pattern is None:
        raise ValueError("a grammar needs choices or a pattern")
    before, after = format_answer("\x00", answer_format).split("\x00")
    return None, f"{re.escape(before)}(?:{pattern}){re.escape(after)}"


@dataclass
class _Trie:
    children: dict[int, _Trie] = field(default_factory=dict)
    terminal: bool = False


class GrammarConstraint:
    """Which next tokens keep a completion inside the grammar."""

    def __init__(self, tokenizer: object, choices: Sequence[str] | None, pattern: str | None):
        self.tokenizer = tokenizer
        self.pattern = None if pattern is None else regex.compile(pattern)
        self.trie: _Trie | None = None
        if choices is not None:
            self.trie = _Trie()
            for choice in choices:
                node = self.trie
                for tid in tokenizer.encode(choice, add_special_tokens=False):  # type: ignore[attr-defined]
                    node = node.children.setdefault(tid, _Trie())
                node.terminal = True

    def allowed(self, prefix: Sequence[int], vocab: Sequence[str]) -> tuple[list[int], bool]:
        """Token ids allowed after ``prefix``, and whether the completion may end here."""
        if self.trie is not None:
            node: _Trie | None = self.trie
            for tid in prefix:
                node = node.children.get(tid) if node else None
            return (list(node.children), node.terminal) if node else ([], True)
        if self.pattern is None:
            return [], True
        text = self.tokenizer.decode(list(prefix))  # type: ignore[attr-defined]
        ok = [
            i
            for i, piece in enumerate(vocab)
            if piece and self.pattern.fullmatch(text + piece, partial=True)
        ]
        return ok, self.pattern.fullmatch(text) is not None
