"""Similarity: generation, grammar, scoring, hints and config checks on hand-built cases."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ssl_gym.audit.strong import identity_error
from ssl_gym.core import Instance
from ssl_gym.images.base import ImageSource, content_key
from ssl_gym.puzzles import _similarity_views as views
from ssl_gym.puzzles._matching import colour_histograms, similar_group
from ssl_gym.puzzles.similarity import (
    PRESETS,
    Similarity,
    SimilarityConfig,
    overlap,
)
from ssl_gym.render import DIHEDRAL, orient
from ssl_gym.testing import check_puzzle

FAST = {"size": 64, "view_size": 32}
"""Small images keep the many-seed tests fast."""


class SmoothSource(ImageSource):
    """Smooth random colour fields (8x8 noise upsampled); remembers every image it made."""

    spec = "smooth"

    def __init__(self) -> None:
        self.made: list[np.ndarray] = []

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample(rng, (32, 32))

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        image = self.sample(rng, shape)
        return image, content_key(image)

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        cells = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(cells).resize(shape[::-1], Image.Resampling.BICUBIC))
        self.made.append(image)
        return image

    def full(self, side: int) -> list[np.ndarray]:
        """The images made at ``side x side`` (not the thumbnails), in order."""
        return [im for im in self.made if im.shape[:2] == (side, side)]


class ConstantSource(SmoothSource):
    """One random flat colour per image."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        return np.broadcast_to(colour, (*shape, 3)).copy()


class SameSource(SmoothSource):
    """The same smooth image every time."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        return super().sample(np.random.default_rng(0), shape)


class CropsOfOneSource(SmoothSource):
    """Random crops of one large smooth picture (a source with a single picture)."""

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        return self.sample(rng, shape), "one-picture"

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        big = super().sample(np.random.default_rng(0), (2 * shape[0], 2 * shape[1]))
        top, left = rng.integers(0, shape[0] // 2, size=2)
        return big[top : top + shape[0], left : left + shape[1]].copy()


def puzzle(**overrides: object) -> Similarity:
    return Similarity(SimilarityConfig(**overrides))  # type: ignore[arg-type]


def generate(pz: Similarity, seed: int = 0, source: ImageSource | None = None) -> Instance:
    return pz.generate(np.random.default_rng(seed), source or SmoothSource())


def with_truth(pz: Similarity, answer: str) -> Instance:
    """An instance whose answer is ``answer`` (scoring and hints read only that)."""
    blank = np.zeros((8, 8, 3), np.uint8)
    return pz.make_instance(
        [blank], "q", answer, answer, choices=pz.options, mirrored=answer == "B"
    )


def luma_corr(a: np.ndarray, b: np.ndarray) -> float:
    la, lb = a.astype(float) @ [0.299, 0.587, 0.114], b.astype(float) @ [0.299, 0.587, 0.114]
    return float(np.corrcoef(la.ravel(), lb.ravel())[0, 1])


def expected_view(image: np.ndarray, box: list[int], side: int, flipped: bool) -> np.ndarray:
    top, left, h, w = box
    pil = Image.fromarray(image).resize(
        (side, side), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
    )
    view = np.asarray(pil)
    return view[:, ::-1] if flipped else view


# --- grammar and scoring ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["B", "(B)", "Option B", "b", " B. ", "Candidate B is it"])
def test_parse_reads_one_letter(text: str) -> None:
    assert puzzle(candidates=4).parse(text) == "B"


@pytest.mark.parametrize("text", ["A or B", "E", "", "I think it is a view", "AB", "bee"])
def test_parse_rejects_none_or_two_or_out_of_range(text: str) -> None:
    assert puzzle(candidates=4).parse(text) is None


def test_parse_accepts_the_last_letter_only_with_enough_candidates() -> None:
    assert puzzle(candidates=8).parse("H") == "H"
    assert puzzle(candidates=7).parse("H") is None


def test_score_is_exact_match() -> None:
    pz = puzzle(candidates=4)
    inst = with_truth(pz, "C")
    assert [pz.score(inst, c) for c in pz.options] == [0.0, 0.0, 1.0, 0.0]
    assert pz.verify(inst, "<think>x</think> <answer>C</answer>").reward == 1.0
    assert pz.verify(inst, "<think>x</think> <answer>A or C</answer>").reward == 0.0


# --- generation: the views are what they claim --------------------------------------------


@pytest.mark.parametrize(
    "extra", [{"strength": "weak"}, {"strength": "weak_crop"}, {}, {"hard_negatives": True}]
)
def test_views_come_from_the_claimed_sources(extra: dict[str, object]) -> None:
    # Without the per-view random levels and texture, which the luma test cannot see past.
    pz = puzzle(candidates=4, texture=False, **extra)
    side, k = pz.config.view_size, pz.config.candidates
    for seed in range(6):
        src = SmoothSource()
        inst = generate(pz, seed, src)
        sources = src.full(pz.config.size)[-k:]
        index = pz.options.index(inst.answer)
        meta = inst.metadata
        for slot, view in enumerate(inst.images):
            image = sources[index] if slot == 0 else sources[slot - 1]
            flipped = "hflip" in meta["augmentations"][slot]
            want = expected_view(image, meta["crop_boxes"][slot], side, flipped)
            turn = next(op for op in meta["augmentations"][slot] if op in DIHEDRAL)
            fit = {n: luma_corr(view, np.ascontiguousarray(orient(want, n))) for n in DIHEDRAL}
            # Photometric changes (affine colour map, gray, blur) keep much of the luma
            # pattern; SimCLR's hue rotation, clipping and blur can lose some of it, but
            # the recorded turn always fits best.
            assert fit[turn] > 0.5 or fit[turn] == max(fit.values()), (seed, slot, fit)
        for slot in range(k):
            same = np.array_equal(sources[slot], sources[index])
            assert same == (slot == index)
        keys = meta["source_keys"]
        assert [key == keys[0] for key in keys[1:]] == [s == index for s in range(k)]
        assert not identity_error(pz, pz.parts(inst))


def test_every_crop_overlaps_the_reference_crop() -> None:
    pz = puzzle(candidates=4, strength="strong", min_overlap=0.5, **FAST)
    for seed in range(20):
        boxes = generate(pz, seed).metadata["crop_boxes"]
        assert all(overlap(tuple(b), tuple(boxes[0])) >= 0.5 for b in boxes[1:])


def test_labels_are_balanced() -> None:
    pz = puzzle(candidates=4, **FAST)
    counts = Counter(generate(pz, seed).answer for seed in range(400))
    assert set(counts) == set("ABCD")
    assert all(70 <= n <= 130 for n in counts.values()), counts


def test_composite_holds_the_same_views_as_the_images_layout() -> None:
    images, comp = puzzle(candidates=5), puzzle(candidates=5, layout="composite")
    a, b = generate(images, 3), generate(comp, 3)
    assert a.answer == b.answer
    (canvas,) = b.images
    assert canvas.shape == comp.image_shapes()[0]
    side = comp.config.view_size
    for (y, x), view in zip(comp._composite.corners, a.images, strict=True):
        assert np.array_equal(canvas[y : y + side, x : x + side], view)
    label = canvas[4 : 4 + comp._label_height, 4 : 4 + side]
    assert (label < 128).any()  # the "Reference" label is drawn


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_meets_the_contract(name: str) -> None:
    pz = puzzle(**PRESETS[name].overrides)
    check_puzzle(pz, "procedural", seeds=(0, 1))
    inst = generate(pz, 0)
    assert tuple(im.shape for im in inst.images) == pz.image_shapes()
    assert inst.metadata["chance_score"] == pytest.approx(1 / pz.config.candidates)


# --- ambiguity -----------------------------------------------------------------------------


def test_flat_sources_are_rejected() -> None:
    pz = puzzle(max_resamples=3, **FAST)
    with pytest.raises(RuntimeError, match="flat_image"):
        generate(pz, 0, ConstantSource())


def test_a_single_picture_cannot_make_distractors() -> None:
    pz = puzzle(max_resamples=3, **FAST)
    with pytest.raises(RuntimeError, match="too_few_distinct_sources"):
        generate(pz, 0, SameSource())


def test_different_pictures_that_look_the_same_are_rejected() -> None:
    class LookAlikes(SmoothSource):
        """The same smooth image under a new key every time."""

        def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
            return SameSource().sample(rng, shape), f"copy:{rng.integers(1 << 30)}"

    pz = puzzle(max_resamples=3, **FAST)
    with pytest.raises(RuntimeError, match="near_duplicate_sources"):
        generate(pz, 0, LookAlikes())


@pytest.mark.parametrize("hard", [False, True])
def test_crops_of_one_picture_count_as_one_source(hard: bool) -> None:
    pz = puzzle(max_resamples=3, hard_negatives=hard, pool=6, **FAST)
    with pytest.raises(RuntimeError, match=r"too_few_distinct_sources|too_few_distinct_images"):
        generate(pz, 0, CropsOfOneSource())


def test_rejections_are_counted() -> None:
    class SometimesFlat(SmoothSource):
        def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
            image = super().sample(rng, shape)
            return np.full_like(image, 77) if rng.random() < 0.3 else image

    metas = [generate(puzzle(**FAST), seed, SometimesFlat()).metadata for seed in range(5)]
    assert sum(m["rejections"] for m in metas) > 0
    assert all(m["rejections"] == m["rejection_reasons"].get("flat_image", 0) for m in metas)


def test_a_distractor_pool_of_one_measures_no_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing to choose among, the colour statistics are skipped (they draw no
    numbers, so the instance is the same); a larger pool still measures them."""
    calls: list[int] = []
    measure = views.view_statistics

    def counted(image: np.ndarray) -> np.ndarray:
        calls.append(1)
        return measure(image)

    monkeypatch.setattr(views, "view_statistics", counted)
    generate(puzzle(candidates=4, **FAST), 0)
    assert not calls
    inst = generate(puzzle(candidates=4, distractor_pool=3, **FAST), 0)
    assert len(calls) == 2 + 3 * 3 and len(inst.images) == 5


# --- hard negatives ----------------------------------------------------------------------


def test_similar_group_is_a_centre_and_its_nearest_neighbours() -> None:
    for seed in range(10):
        src = SmoothSource()
        group, _ = similar_group(np.random.default_rng(seed), src, 3, 10, (16, 16))
        thumbs = np.stack(src.made[:10])
        hists = colour_histograms(thumbs)
        members = [next(i for i, t in enumerate(src.made[:10]) if _same(t, g)) for g in group]
        outside = [i for i in range(10) if i not in members]
        assert any(_fits(hists, c, members, outside) for c in members), seed


def _fits(hists: np.ndarray, centre: int, members: list[int], outside: list[int]) -> bool:
    """Every member is at least as close to ``centre`` as every image outside the group."""
    d = np.abs(hists - hists[centre]).sum(axis=1)
    return bool(max(d[members]) <= min(d[outside]))


def test_similar_group_skips_a_picture_drawn_twice() -> None:
    class Doubled(SmoothSource):
        """Every picture comes in two copies: seeds pair up by their high bits."""

        def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
            seed = int(rng.integers(0, 4))
            return super().sample(np.random.default_rng(seed), shape)

    for seed in range(10):
        group, keys = similar_group(np.random.default_rng(seed), Doubled(), 3, 12, (32, 32))
        assert len(set(keys)) == 3
        assert not any(np.array_equal(a, b) for i, a in enumerate(group) for b in group[:i])


def _same(thumb: np.ndarray, image: np.ndarray) -> bool:
    """The smooth source draws the same cells for a thumbnail and a full image."""
    small = np.asarray(Image.fromarray(image).resize(thumb.shape[:2][::-1]))
    return float(np.abs(small.astype(int) - thumb).mean()) < 8


def test_colour_histograms_count_coarse_bins() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    image[0, 1] = (0, 0, 255)
    hist = colour_histograms(image[None])[0]
    assert hist.sum() == pytest.approx(1.0)
    assert hist[0] == 0.5 and hist[48] == 0.25 and hist[3] == 0.25


def test_overlap_is_intersection_over_the_smaller_window() -> None:
    assert overlap((0, 0, 10, 10), (5, 5, 10, 10)) == 0.25
    assert overlap((0, 0, 10, 10), (2, 2, 4, 4)) == 1.0
    assert overlap((0, 0, 10, 10), (10, 0, 5, 5)) == 0.0


# --- hints ---------------------------------------------------------------------------------


def test_mirrored_hint_matches_the_flips() -> None:
    pz = puzzle(candidates=3, **FAST)
    for seed in range(10):
        inst = generate(pz, seed)
        ops = inst.metadata["augmentations"]
        index = pz.options.index(inst.answer) + 1
        assert inst.metadata["mirrored"] == (("hflip" in ops[0]) != ("hflip" in ops[index]))


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"candidates": 9}, "candidates"),
        ({"candidates": 1}, "candidates"),
        ({"strength": "medium"}, "'weak', 'strong'"),
        ({"layout": "grid"}, "'images', 'composite'"),
        ({"candidates": 8, "pool": 7}, "pool"),
        ({"view_size": 8}, "view_size"),
        ({"min_overlap": 1.5}, "min_overlap"),
        ({"hard_negatives": "yes"}, "True, False"),
    ],
)
def test_config_errors_name_the_valid_values(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        puzzle(**overrides)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SimilarityConfig().candidates = 3  # type: ignore[misc]
