"""Contrastive: are two augmented views of the same image?

## Description

Two views made by SimCLR-style augmentation (random resized crop, horizontal flip, colour
jitter, grayscale, Gaussian blur): either both of one source image (positive) or one of
each of two different images (negative), with probability 1/2 each (SSL4RL's contrastive
task).

## Observation

Two ``size x size`` images. Both views always go through the same pipeline and two source
images are always drawn, whatever the label, so nothing but the content tells a positive
from a negative. Draws whose two source images are near-identical, or where a source
image is near-uniform, are rejected before the label is drawn (so rejections do not skew
the label balance); a near-uniform view is re-augmented from the same source.

## Answer format

``positive`` or ``negative``, e.g. ``<answer>positive</answer>``. Case and punctuation do
not matter (``Positive.``, ``they are positive``); ``same`` and ``different`` are read as
``positive`` and ``negative``. Text with both labels, or with a negation (``not
negative``), does not parse.

## Reward

1 for the right label, else 0.

## Difficulty

``strength``: ``weak`` (crops of 60-100 % of the area, mild colour jitter, flip) or
``strong`` (SimCLR: crops of 20-100 %, strong jitter, grayscale, blur).

## Registered Configurations

* ``SSL/Contrastive-Weak-v0``: weak augmentation (easy).
* ``SSL/Contrastive-Strong-v0``: SimCLR's augmentation (hard).

## Version History

* v0: initial release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssl_gym.augment import STRENGTHS, augment, describe
from ssl_gym.core import (
    Instance,
    Parts,
    Preset,
    Puzzle,
    PuzzleConfig,
    Rejected,
    check_choice,
    check_float,
    check_int,
    preset,
)
from ssl_gym.images.base import ImageSource
from ssl_gym.render import is_flat, near_duplicates

QUESTIONS = {
    "ssl4rl": (
        "Image 1 and Image 2 are two views produced by random augmentations (cropping, "
        "flipping, colour changes, blurring). Are both views generated from the same "
        "original image? Answer positive if they come from the same image and negative "
        "if they come from different images."
    ),
    "ssl_r1": (
        "The two images are randomly augmented views. Were they produced from the same "
        "source image? Options: positive (same image), negative (different images). "
        "Answer with positive or negative."
    ),
    "plain": "Are Image 1 and Image 2 views of the same image (positive) or not (negative)?",
}
LABELS = ("positive", "negative")
#: Words read as a label.
SYNONYMS = {
    "positive": "positive",
    "same": "positive",
    "negative": "negative",
    "different": "negative",
}
NEGATIONS = frozenset(
    {"not", "no", "never", "neither", "nor", "t", "isnt", "arent", "dont", "doesnt", "cannot"}
)
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, kw_only=True)
class ContrastiveConfig(PuzzleConfig):
    """Settings of the Contrastive family."""

    strength: str = "weak"
    """Augmentation of both views: ``weak`` or ``strong`` (SimCLR's)."""
    min_std: float = 10.0
    """Reject near-uniform source images and views (pixel standard deviation below this)."""
    min_pair_diff: float = 12.0
    """Reject draws whose two source images are closer than this (mean absolute diff)."""
    view_retries: int = 3
    """Augmentations tried per view before a near-uniform view rejects the draw."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("strength", self.strength, tuple(STRENGTHS))
        check_float("min_std", self.min_std, 0.0, 128.0)
        check_float("min_pair_diff", self.min_pair_diff, 0.0, 255.0)
        check_int("view_retries", self.view_retries, 1, 100)


class Contrastive(Puzzle[ContrastiveConfig]):
    """Tell whether two augmented views share their source image."""

    family = "Contrastive"
    version = 0
    config_cls = ContrastiveConfig

    @property
    def chance_score(self) -> float:
        """Two balanced labels."""
        return 0.5

    def image_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Two square views."""
        side = self.config.size
        return ((side, side, 3),) * 2

    def _draft(self, rng: np.random.Generator, source: ImageSource) -> Instance:
        cfg = self.config
        first = source.sample(rng, (cfg.size, cfg.size))
        second = source.sample(rng, (cfg.size, cfg.size))
        if _flat(first, cfg.min_std) or _flat(second, cfg.min_std):
            raise Rejected("flat_image")
        if near_duplicates((first, second), cfg.min_pair_diff):
            raise Rejected("near_identical_pair")
        positive = bool(rng.random() < 0.5)
        view_a, ops_a = self._view(rng, first)
        view_b, ops_b = self._view(rng, first if positive else second)
        label = LABELS[0] if positive else LABELS[1]
        question = self.style(QUESTIONS)
        return self.make_instance(
            (view_a, view_b), question, label, label, choices=LABELS, augmentations=[ops_a, ops_b]
        )

    def parts(self, instance: Instance) -> Parts:
        """The second view, labelled with the answer; the first as reference."""
        first, second = instance.images
        return Parts("label", (second,), (instance.answer,), reference=first)

    def _view(self, rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """An augmented view that is not near-uniform, re-augmenting a few times."""
        cfg = self.config
        for _ in range(cfg.view_retries):
            view, applied = augment(image, rng, cfg.strength, cfg.size)
            if not _flat(view, cfg.min_std):
                return view, applied
        raise Rejected("flat_view")

    def parse(self, text: str) -> str | None:
        """Read ``positive`` / ``negative`` (or ``same`` / ``different``); else ``None``."""
        words = _WORD.findall(text[:200].lower())
        if NEGATIONS.intersection(words):
            return None
        labels = {SYNONYMS[w] for w in words if w in SYNONYMS}
        return labels.pop() if len(labels) == 1 else None

    def score(self, instance: Instance, solution: Any) -> float:
        """1 for the right label, else 0."""
        return float(solution == instance.solution)

    def hint(self, instance: Instance, level: int) -> str | None:
        """Level 0 names the second view's augmentations, level 1 rules out the wrong label."""
        if level == 0:
            applied = list(instance.metadata["augmentations"][1])
            return f"The second image was {describe(applied)}."
        if level == 1:
            wrong = LABELS[1] if instance.solution == LABELS[0] else LABELS[0]
            return f"The answer is not {wrong}."
        return None


def _flat(image: np.ndarray, min_std: float) -> bool:
    """:func:`is_flat` on every other row and column (4x faster, nearly the same std)."""
    return is_flat(image[::2, ::2], min_std)


PRESETS: dict[str, Preset] = {
    "Weak": preset("easy", "weak augmentation", strength="weak"),
    "Strong": preset("hard", "SimCLR's strong augmentation", strength="strong"),
}
Contrastive.presets = PRESETS
