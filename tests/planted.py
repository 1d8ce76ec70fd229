"""Small puzzles with one planted shortcut each, for the strong audit's tests.

``Match`` with ``leak="none"`` is the negative control: every picture is independent
noise made the same way, so nothing but luck answers it and every probe must score
chance. Each ``leak`` setting plants exactly one cue of a kind the audit must
catch. ``Pair`` is a same-or-different puzzle over an in-memory source whose
``leak="same_source"`` labels two crops of one picture as different.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ssl_gym.core import (
    ChoicePuzzle,
    Instance,
    Parts,
    Puzzle,
    PuzzleConfig,
    Rejected,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles.jigsaw import Jigsaw

SIDE = 16
LEAKS = ("none", "part", "colour", "coordinate", "pixels")


@dataclass(frozen=True, kw_only=True)
class MatchConfig(PuzzleConfig):
    """A clean puzzle, or one with a planted cue."""

    size: int = SIDE
    candidates: int = 4
    leak: str = "none"


def _noise(rng: np.random.Generator, mean: np.ndarray | float = 128.0) -> np.ndarray:
    return np.clip(rng.normal(mean, 40.0, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)


class Match(ChoicePuzzle[MatchConfig]):
    """Which candidate goes with the reference? (Only a planted cue can tell.)"""

    family = "Match"
    config_cls = MatchConfig

    @property
    def num_options(self) -> int:
        return self.config.candidates

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return ((SIDE, SIDE, 3),) * (self.config.candidates + 1)

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        leak, k = self.config.leak, self.config.candidates
        right = int(rng.integers(k))
        colours = rng.uniform(60, 200, (k + 1, 3))
        if leak == "colour":  # the right candidate keeps the reference's colour
            colours[right + 1] = colours[0]
        else:
            colours[:] = 128.0
        reference = _noise(rng, colours[0])
        views = [_noise(rng, colours[j + 1]) for j in range(k)]
        if leak == "part":  # the right candidate is brighter, whatever the reference
            views[right] = np.clip(views[right].astype(int) + 40, 0, 255).astype(np.uint8)
        if leak == "pixels":  # the reference's corner spells the answer
            reference[:4, :4] = 60 * right
        points = rng.uniform(0, SIDE, (k, 2))
        anchor = rng.uniform(0, SIDE, 2)
        if leak == "coordinate":  # the right point is drawn where the marked point is
            points[right] = anchor + rng.normal(0, 0.5, 2)
        answer = self.options[right]
        return self.make_instance(
            (reference, *views),
            "Which candidate is the reference?",
            answer,
            answer,
            choices=self.options,
            points=points.tolist(),
            anchor=anchor.tolist(),
        )

    def hint(self, instance: Instance, level: int) -> str | None:
        return None

    def parts(self, instance: Instance) -> Parts:
        labels = tuple(str(int(o == instance.answer)) for o in self.options)
        points = tuple(tuple(p) for p in instance.metadata["points"])
        return Parts(
            "choice",
            instance.images[1:],
            labels,
            reference=instance.images[0],
            points=points,
            anchor=tuple(instance.metadata["anchor"]),
        )


class TintedJigsaw(Jigsaw):
    """A broken Jigsaw: every tile is tinted by the cell it belongs in (a tile cue)."""

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        inst = super()._draft(rng, source)
        cells = inst.metadata["permutation"]
        tinted = [
            np.clip(t.astype(int) + 40 * cell, 0, 255).astype(np.uint8)
            for t, cell in zip(inst.images, cells, strict=True)
        ]
        meta = {k: v for k, v in inst.metadata.items() if k not in ("family", "chance_score")}
        return self.make_instance(
            tinted, inst.question, inst.solution, inst.answer, pattern=inst.pattern, **meta
        )


@dataclass(frozen=True, kw_only=True)
class PairConfig(PuzzleConfig):
    """Same picture or not; ``leak="same_source"`` forgets to check the negative's source."""

    size: int = SIDE
    leak: str = "none"


class Pair(Puzzle[PairConfig]):
    """Are two crops cut from the same picture?"""

    family = "Pair"
    config_cls = PairConfig
    compares_sources = True

    @property
    def chance_score(self) -> float:
        return 0.5

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return ((SIDE, SIDE, 3),) * 2

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        first, key_a = source.draw(rng, (SIDE, SIDE))
        positive = bool(rng.random() < 0.5)
        for _ in range(50):
            second, key_b = source.draw(rng, (SIDE, SIDE))
            if not positive or key_b == key_a:
                break
        else:
            raise Rejected("no_second_crop")  # a positive needs a small source
        if not positive and key_b == key_a and self.config.leak != "same_source":
            raise Rejected("same_source")
        label = "positive" if positive else "negative"
        return self.make_instance(
            (first, second),
            "Same picture?",
            label,
            label,
            choices=("positive", "negative"),
            source_keys=[key_a, key_b],
        )

    def parse(self, text: str) -> str | None:
        word = text.strip().lower()
        return word if word in ("positive", "negative") else None

    def score(self, instance: Instance, solution: Any) -> float:
        return float(solution == instance.solution)

    def hint(self, instance: Instance, level: int) -> str | None:
        return None

    def parts(self, instance: Instance) -> Parts:
        key_a, key_b = instance.metadata["source_keys"]
        return Parts(
            "label",
            (instance.images[1],),
            (instance.answer,),
            reference=instance.images[0],
            sources=(key_b,),
            reference_source=key_a,
        )
