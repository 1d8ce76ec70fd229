"""The blind adversary: the strongest player the project knows that never looks.

It plays an env as a person who cannot see the images would: it reads every reply, keeps
track of the answers already ruled out, and uses ``info["choices"]``. Before it plays an
id it learns, on training seeds, what the replies say about the answer: for every hint
level, how much more often the right choice than a wrong one is named in the reply (the
whole choice, or a word of it, such as "top" for ``top-left``). A hint that names,
narrows or rules out answers in its text is thereby exploited; one whose text is the
same for every instance teaches it nothing. Then, each turn, it answers the untried
choice with the best odds (the most frequent answer first). Without a finite list of
choices it answers the best constant answer, then random valid answers it has not tried.

``ssl-gym eval --policy blind`` plays it; the strong audit reports its mean reward on
every ``-Hint`` id, which must stay within chance + 0.05.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssl_gym.audit.weak import blind_answer
from ssl_gym.core import format_answer
from ssl_gym.envs import PuzzleEnv

MAX_TURNS = 64
_WORD = re.compile(r"[A-Za-z]+|\d+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def mentions(reply: str, choice: str) -> tuple[bool, bool]:
    """Whether ``reply`` names ``choice`` whole, and whether it shares a word with it."""
    whole = re.search(rf"(?<![A-Za-z0-9]){re.escape(choice)}(?![A-Za-z0-9])", reply)
    return whole is not None, bool(_words(choice) & _words(reply))


def _without(reply: str, said: set[str]) -> str:
    """The reply less the echo of the player's own answers (which tells nothing new)."""
    for text in sorted(said, key=len, reverse=True):
        reply = reply.replace(text, " ")
    return reply


@dataclass
class _Counts:
    """How often a feature fires for the right choice and for a wrong one."""

    right: list[int] = field(default_factory=lambda: [0, 0])
    wrong: list[int] = field(default_factory=lambda: [0, 0])

    def log_ratio(self, fired: bool) -> float:
        k = int(fired)
        p_right = (self.right[k] + 1) / (sum(self.right) + 2)
        p_wrong = (self.wrong[k] + 1) / (sum(self.wrong) + 2)
        return math.log(p_right / p_wrong)


@dataclass
class BlindReader:
    """Odds of each choice given the replies so far, learned on training episodes.

    Two kinds of evidence per reply (hint level): whether it names the choice, whole or
    by one of its words (likelihood ratios of right against wrong choices), and which
    words it holds when the choice is the answer (naive Bayes over the reply's words, so
    that "the top is on the left" can come to mean 90 degrees).
    """

    prior: Counter[str] = field(default_factory=Counter)
    counts: dict[tuple[int, int], _Counts] = field(default_factory=lambda: defaultdict(_Counts))
    words: dict[tuple[int, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    replies_seen: Counter[tuple[int, str]] = field(default_factory=Counter)

    def learn(self, replies: Sequence[str], choices: Sequence[str], answer: str) -> None:
        """Count, per reply (hint level) and feature, how right and wrong choices fare."""
        self.prior[answer] += 1
        for level, reply in enumerate(replies):
            self.replies_seen[(level, answer)] += 1
            self.words[(level, answer)].update(_words(reply))
            for choice in choices:
                for feature, fired in enumerate(mentions(reply, choice)):
                    side = self.counts[(level, feature)]
                    (side.right if choice == answer else side.wrong)[int(fired)] += 1

    def score(self, choice: str, replies: Sequence[str]) -> float:
        """Log odds of ``choice`` (up to a constant) after ``replies``."""
        total = math.log(self.prior[choice] + 1)
        for level, reply in enumerate(replies):
            for feature, fired in enumerate(mentions(reply, choice)):
                if (level, feature) in self.counts:
                    total += self.counts[(level, feature)].log_ratio(fired)
            total += self._word_evidence(level, choice, _words(reply))
        return total

    def _word_evidence(self, level: int, choice: str, words: set[str]) -> float:
        seen = self.replies_seen[(level, choice)]
        counts = self.words[(level, choice)]
        return sum(math.log((counts[w] + 0.5) / (seen + 1.0)) for w in words)


class BlindPlayer:
    """Plays episodes of one env without ever looking at an image."""

    def __init__(self, env: PuzzleEnv, fit_seeds: Sequence[int] = range(200)) -> None:
        self.env = env
        self.reader = BlindReader()
        self.constant = ""
        self._fit(fit_seeds)

    def _fit(self, seeds: Sequence[int]) -> None:
        instances = []
        for seed in seeds:
            _, info = self.env.reset(seed=seed)
            instances.append(self.env.instance)
            if info["choices"] is None:
                continue
            replies = self._play(np.random.default_rng([seed, 1]), info["choices"])[1]
            self.reader.learn(replies, info["choices"], info["answer"])
        self.constant = blind_answer(self.env.puzzle, [i for i in instances if i is not None])

    def play(self, seed: int, rng: np.random.Generator) -> tuple[float, dict[str, Any]]:
        """One episode from ``reset(seed=seed)``: the final reward and step info."""
        _, info = self.env.reset(seed=seed)
        reward, _, last = self._play(rng, info["choices"])
        return reward, last

    def _play(
        self, rng: np.random.Generator, choices: Sequence[str] | None
    ) -> tuple[float, list[str], dict[str, Any]]:
        """Play the env's current episode; the reward, the replies and the last info."""
        tried: set[str] = set()
        replies: list[str] = []
        for _ in range(MAX_TURNS):
            text = self._next(choices, tried, replies, rng)
            tried.add(text)
            obs, reward, done, truncated, last = self.env.step(
                format_answer(text, self.env.puzzle.config.answer_format)
            )
            if done or truncated:
                return float(reward), replies, last
            replies.append(_without(str(obs["prompt"]), tried))
        raise RuntimeError("the episode did not end within MAX_TURNS answers")

    def _next(
        self,
        choices: Sequence[str] | None,
        tried: set[str],
        replies: Sequence[str],
        rng: np.random.Generator,
    ) -> str:
        """The untried answer with the best odds."""
        if choices:
            open_ = [c for c in choices if c not in tried] or list(choices)
            return max(open_, key=lambda c: (self.reader.score(c, replies), -choices.index(c)))
        if self.constant not in tried:
            return self.constant
        inst = self.env.instance
        if inst is None:
            raise RuntimeError("reset() the env before playing")
        for _ in range(100):
            text = self.env.puzzle.random_answer(inst, rng)
            if text not in tried:
                return text
        return text
