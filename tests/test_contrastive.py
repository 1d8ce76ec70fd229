"""Hand-built checks of the Contrastive family."""

from __future__ import annotations

import numpy as np
import pytest

import ssl_gym.puzzles.contrastive as contrastive_module
from ssl_gym.audit.strong import identity_error
from ssl_gym.core import format_answer
from ssl_gym.images.base import ImageSource, content_key
from ssl_gym.puzzles.contrastive import PRESETS, Contrastive, ContrastiveConfig

SIZE = 64


def textured(seed: int) -> np.ndarray:
    """A distinct image: its own base colour plus blocks of noise, so crops are never flat."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 196, 3) + rng.integers(-60, 61, (SIZE // 4, SIZE // 4, 3))
    return np.kron(small, np.ones((4, 4, 1))).clip(0, 255).astype(np.uint8)


class ListSource(ImageSource):
    """Hands out images from a known list (chosen with the rng) and records which."""

    spec = "test-list"

    def __init__(self, count: int = 50) -> None:
        self.images = [textured(i) for i in range(count)]
        self.handed: list[int] = []

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        index = int(rng.integers(len(self.images)))
        self.handed.append(index)
        return self.images[index]


class ConstantSource(ImageSource):
    spec = "test-constant"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return np.full((SIZE, SIZE, 3), 90, dtype=np.uint8)


def make(**overrides: object) -> Contrastive:
    return Contrastive(ContrastiveConfig(size=SIZE, **overrides))  # type: ignore[arg-type]


# --- parsing -----------------------------------------------------------------------------

PARSE = [
    ("positive", "positive"),
    ("Positive", "positive"),
    ("positive.", "positive"),
    ("NEGATIVE", "negative"),
    ("they are positive", "positive"),
    ("Answer: negative!", "negative"),
    ("same", "positive"),
    ("same image", "positive"),
    ("different", "negative"),
    ("positive or negative", None),
    ("positive, they are different", None),
    ("not negative", None),
    ("they aren't the same", None),
    ("isn't positive", None),
    ("", None),
    ("maybe", None),
    ("positively", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSE)
def test_parse(text: str, expected: str | None):
    assert make().parse(text) == expected


# --- generation --------------------------------------------------------------------------


@pytest.mark.parametrize("strength", ["weak", "weak_crop", "simclr"])
def test_positives_share_the_source_and_negatives_do_not(strength, monkeypatch):
    seen: list[np.ndarray] = []
    real_augment = contrastive_module.augment_with_box

    def recording_augment(image, rng, *args, **kwargs):
        seen.append(image)
        return real_augment(image, rng, *args, **kwargs)

    monkeypatch.setattr(contrastive_module, "augment_with_box", recording_augment)
    puzzle = make(strength=strength, negative_pool=3)
    labels = set()
    for seed in range(40):
        source = ListSource()
        seen.clear()
        inst = puzzle.generate(np.random.default_rng(seed), source)
        first, second = inst.metadata["source_keys"]
        # Two views of the first picture; a negative adds three of another picture (a
        # near-uniform view is augmented again).
        keys = [content_key(image) for image in seen]
        assert keys.count(first) >= 2 and keys[0] == first
        assert (first == second) == (inst.answer == "positive")
        if inst.answer == "negative":
            assert keys.count(second) >= 3 and set(keys) == {first, second}
        parts = puzzle.parts(inst)
        assert parts.sources == (second,) and parts.reference_source == first
        assert not identity_error(puzzle, parts)
        labels.add(inst.answer)
    assert labels == {"positive", "negative"}


def test_a_negative_never_shows_the_positive_picture():
    """With only two pictures, every negative is a view of the other one."""
    puzzle = make(negative_pool=2)
    for seed in range(30):
        inst = puzzle.generate(np.random.default_rng(seed), ListSource(count=2))
        first, second = inst.metadata["source_keys"]
        assert (first == second) == (inst.answer == "positive")


def test_positive_views_are_closer_in_colour():
    """Sanity: each list image has its own base colour, which weak augmentation keeps.

    The texture randomisation (its gamma curve moves mean colours) is off here.
    """
    puzzle = make(strength="weak", texture=False)
    dists: dict[str, list[float]] = {"positive": [], "negative": []}
    for seed in range(100):
        inst = puzzle.generate(np.random.default_rng(seed), ListSource())
        a, b = (im.reshape(-1, 3).mean(axis=0) for im in inst.images)
        dists[inst.answer].append(float(np.abs(a - b).sum()))
    assert np.mean(dists["positive"]) < 0.5 * np.mean(dists["negative"])


def test_labels_balanced_over_400_seeds():
    puzzle = make()
    source = ListSource()
    positives = sum(
        puzzle.generate(np.random.default_rng(s), source).answer == "positive" for s in range(400)
    )
    assert 0.4 <= positives / 400 <= 0.6


def test_same_seed_same_instance():
    puzzle = make(strength="strong")
    a = puzzle.generate(np.random.default_rng(3), ListSource())
    b = puzzle.generate(np.random.default_rng(3), ListSource())
    assert a.answer == b.answer and a.metadata == b.metadata
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_match_image_shapes(name: str):
    puzzle = Contrastive(ContrastiveConfig(**PRESETS[name].overrides))
    for seed in range(4):
        inst = puzzle.generate(np.random.default_rng(seed), ListSource())
        assert tuple(im.shape for im in inst.images) == puzzle.image_shapes()
        assert all(im.dtype == np.uint8 for im in inst.images)
        assert inst.choices == ("positive", "negative")
        assert inst.metadata["chance_score"] == 0.5


def test_constant_source_raises_with_rejections():
    with pytest.raises(RuntimeError, match="rejections") as info:
        make(max_resamples=5).generate(np.random.default_rng(0), ConstantSource())
    assert "flat_image" in str(info.value)


def test_single_image_source_cannot_make_negatives():
    source = ListSource(count=1)
    with pytest.raises(RuntimeError, match="too_few_distinct_sources"):
        make(max_resamples=3).generate(np.random.default_rng(0), source)


# --- scoring and hints -------------------------------------------------------------------


@pytest.mark.parametrize("answer_format", ["tags", "boxed", "plain"])
def test_scoring(answer_format: str):
    puzzle = make(answer_format=answer_format)
    for seed in range(6):
        inst = puzzle.generate(np.random.default_rng(seed), ListSource())
        assert puzzle.verify(inst, puzzle.oracle(inst)).reward == 1.0
        wrong = "negative" if inst.answer == "positive" else "positive"
        verdict = puzzle.verify(inst, format_answer(wrong, answer_format))
        assert verdict.reward == 0.0 and verdict.parsed == wrong
        both = puzzle.verify(inst, format_answer("positive or negative", answer_format))
        assert both.parsed is None and both.parse_error is not None


@pytest.mark.parametrize("style", ["ssl4rl", "ssl_r1", "plain"])
def test_prompt_names_both_labels(style: str):
    inst = make(prompt_style=style).generate(np.random.default_rng(0), ListSource())
    assert "positive" in inst.prompt and "negative" in inst.prompt


# --- configuration -----------------------------------------------------------------------


def test_config_validation_names_valid_options():
    with pytest.raises(ValueError, match=r"strength='medium'.*'weak', 'strong', 'weak_crop'"):
        ContrastiveConfig(strength="medium")
    with pytest.raises(ValueError, match="min_pair_diff"):
        ContrastiveConfig(min_pair_diff=300.0)
    with pytest.raises(ValueError, match="view_retries"):
        ContrastiveConfig(view_retries=0)
    with pytest.raises(ValueError, match="negative_pool"):
        ContrastiveConfig(negative_pool=0)


def test_presets():
    assert {k: p.difficulty for k, p in PRESETS.items()} == {"Weak": "easy", "Strong": "hard"}
    assert Contrastive.presets is PRESETS
    assert {k: p.overrides["strength"] for k, p in PRESETS.items()} == {
        "Weak": "weak_crop",
        "Strong": "simclr",
    }
