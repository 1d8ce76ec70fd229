"""Inpainting: generation, distractors, grammar, scoring, hints and config checks."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter

import numpy as np
import pytest
from sources import ConstantSource, NoiseSource

from ssl_gym.core import Instance
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles.inpainting import PRESETS, Inpainting, InpaintingConfig
from ssl_gym.render import DIHEDRAL, near_duplicates, orient
from ssl_gym.testing import check_puzzle


class StripesSource(NoiseSource):
    """Random horizontal stripes: every patch equals its left-right mirror image."""

    def _paint(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        rows = rng.integers(0, 256, (shape[0], 1, 3), dtype=np.uint8)
        return np.repeat(rows, shape[1], axis=1)


def puzzle(**overrides: object) -> Inpainting:
    return Inpainting(InpaintingConfig(**overrides))  # type: ignore[arg-type]


def generate(pz: Inpainting, seed: int = 0, source: ImageSource | None = None) -> Instance:
    return pz.generate(np.random.default_rng(seed), source or NoiseSource())


def crop(scene: np.ndarray, box: list[int], side: int) -> np.ndarray:
    return scene[box[0] : box[0] + side, box[1] : box[1] + side]


def shown_of(inst: Instance, src: NoiseSource) -> np.ndarray:
    """The picture the instance shows (the source's draw in the instance's orientation)."""
    assert src.last is not None
    return orient(src.last, inst.metadata["orientation"])


TRANSFORMS = {
    "identity": lambda p: p,
    "rot90": lambda p: np.rot90(p, 1),
    "rot180": lambda p: np.rot90(p, 2),
    "rot270": lambda p: np.rot90(p, 3),
    "hflip": lambda p: p[:, ::-1],
    "vflip": lambda p: p[::-1],
}


# --- what the candidates are ------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_true_candidate_is_the_masked_region(name: str) -> None:
    src = NoiseSource()
    pz = Inpainting(InpaintingConfig(**PRESETS[name].overrides))
    side = pz.config.side
    for seed in range(5):
        inst = generate(pz, seed, src)
        meta = inst.metadata
        top, left, s = meta["region"]
        assert s == side
        shown = shown_of(inst, src)
        truth = inst.images[1 + "ABCDEFGH".index(inst.answer)]
        np.testing.assert_array_equal(truth, crop(shown, [top, left], side))
        masked = inst.images[0].copy()
        assert (crop(masked, [top, left], side) == 128).all()
        others = {
            tuple(b) for k, b in zip(meta["kinds"], meta["boxes"], strict=True) if k == "other"
        }
        for y, x in [(top, left), *others]:
            if (y, x) != (top, left):
                assert (crop(masked, [y, x], side) == 0).all()  # other regions blacked out
            masked[y : y + side, x : x + side] = shown[y : y + side, x : x + side]
        np.testing.assert_array_equal(masked, shown)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_candidate_is_its_transformed_crop(name: str) -> None:
    src = NoiseSource()
    pz = Inpainting(InpaintingConfig(**PRESETS[name].overrides))
    for seed in range(10):
        inst = generate(pz, seed, src)
        meta = inst.metadata
        for im, box, op in zip(inst.images[1:], meta["boxes"], meta["transforms"], strict=True):
            expected = TRANSFORMS[op](crop(shown_of(inst, src), box, pz.config.side))
            np.testing.assert_array_equal(im, expected)


def test_distractor_kinds_follow_the_mix() -> None:
    easy = puzzle(**PRESETS["K4"].overrides)
    hard = puzzle(**PRESETS["K6-Hard"].overrides)
    for seed in range(20):
        assert Counter(generate(easy, seed).metadata["kinds"]) == {"true": 1, "other": 3}
        kinds = generate(hard, seed).metadata["kinds"]
        assert kinds.count("true") == 1 and "other" not in kinds and len(kinds) == 6


def test_rotated_and_flipped_are_what_they_say() -> None:
    pz = puzzle(candidates=6, distractors="rotated,flipped")
    for seed in range(10):
        meta = generate(pz, seed).metadata
        for kind, op in zip(meta["kinds"], meta["transforms"], strict=True):
            expected = {"true": {"identity"}, "rotated": {"rot90", "rot180", "rot270"}}
            expected["flipped"] = {"hflip", "vflip"}
            assert op in expected[kind]
        # without other crops every copy is of the true patch, each transform once
        assert len(set(meta["transforms"])) == 6
        assert all(box == meta["boxes"][0] for box in meta["boxes"])


def test_shifted_crops_are_moved_by_the_configured_fraction() -> None:
    pz = puzzle(candidates=5, distractors="shifted", shift=(0.3, 0.4))
    side = pz.config.side
    for seed in range(20):
        meta = generate(pz, seed).metadata
        boxes = [np.array(b) for b in meta["boxes"]]
        for i, box in enumerate(boxes):
            # every crop is a shift (in range) of another crop: the true one or an earlier shift
            dists = [np.hypot(*(box - other)) for j, other in enumerate(boxes) if j != i]
            assert any(0.3 * side - 1 <= d <= 0.4 * side + 1 for d in dists)
        assert len({tuple(b) for b in meta["boxes"]}) == 5


def test_other_regions_overlap_neither_the_mask_nor_each_other() -> None:
    pz = puzzle(candidates=6, distractors="other")
    side = pz.config.side
    for seed in range(10):
        boxes = generate(pz, seed).metadata["boxes"]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert abs(a[0] - b[0]) >= side or abs(a[1] - b[1]) >= side


def test_the_crops_besides_the_true_one_share_one_kind() -> None:
    pz = puzzle(candidates=5, distractors="other,shifted")
    seen: Counter[str] = Counter()
    for seed in range(40):
        kinds = set(generate(pz, seed).metadata["kinds"]) - {"true"}
        assert len(kinds) == 1
        seen.update(kinds)
    assert set(seen) == {"other", "shifted"}


@pytest.mark.parametrize("kind", ["other", "shifted"])
def test_true_and_wrong_boxes_are_placed_alike(kind: str) -> None:
    pz = puzzle(candidates=4, distractors=kind, size=64)
    side, size = pz.config.side, pz.config.size
    at_border: Counter[str] = Counter()
    for seed in range(400):
        meta = generate(pz, seed).metadata
        for k, (top, left) in zip(meta["kinds"], meta["boxes"], strict=True):
            assert 0 <= top <= size - side and 0 <= left <= size - side
            at_border[k] += min(top, left, size - side - top, size - side - left) < 2
    assert abs(at_border["true"] - at_border[kind] / 3) < 25


def test_copies_are_also_made_of_other_crops() -> None:
    pz = puzzle(**PRESETS["K4-Mixed"].overrides)
    bases: Counter[bool] = Counter()
    for seed in range(60):
        meta = generate(pz, seed).metadata
        truth = meta["boxes"][meta["kinds"].index("true")]
        for kind, box in zip(meta["kinds"], meta["boxes"], strict=True):
            if kind in ("rotated", "flipped"):
                bases[box == truth] += 1
    assert bases[True] > 0 and bases[False] > 0


def test_composite_holds_the_same_parts_as_the_images_layout() -> None:
    images = puzzle(candidates=6, distractors="all")
    comp = puzzle(candidates=6, distractors="all", layout="composite")
    for seed in range(3):
        a, b = generate(images, seed), generate(comp, seed)
        assert a.answer == b.answer
        composite = comp._composite
        assert b.images[0].shape == composite.shape
        for (y, x), part in zip(composite.corners, a.images, strict=True):
            h, w = part.shape[:2]
            np.testing.assert_array_equal(b.images[0][y : y + h, x : x + w], part)


def test_the_scene_takes_every_orientation() -> None:
    pz = puzzle(**PRESETS["K4-Hard"].overrides)
    seen = Counter(generate(pz, seed).metadata["orientation"] for seed in range(160))
    assert set(seen) == set(DIHEDRAL)


def test_noise_fill_is_the_same_for_every_instance() -> None:
    pz = puzzle(fill="noise")
    fills = []
    for seed in range(3):
        inst = generate(pz, seed)
        top, left, side = inst.metadata["region"]
        fills.append(crop(inst.images[0], [top, left], side))
    assert fills[0].std() > 30
    np.testing.assert_array_equal(fills[0], fills[1])
    np.testing.assert_array_equal(fills[0], fills[2])


# --- balance, shapes, determinism ------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4, 6])
def test_the_correct_letter_is_uniform(k: int) -> None:
    pz = puzzle(candidates=k, distractors="all", size=64)
    n = 600
    counts = Counter(generate(pz, seed).answer for seed in range(n))
    assert set(counts) == set("ABCDEFGH"[:k])
    expected = n / k
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in counts)
    assert chi2 < 25  # k - 1 <= 5 degrees of freedom: p < 0.001


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("layout", ["images", "composite"])
def test_images_match_image_shapes(name: str, layout: str) -> None:
    for size in (96, 224):
        pz = puzzle(size=size, layout=layout, **PRESETS[name].overrides)
        inst = generate(pz, 1)
        assert tuple(im.shape for im in inst.images) == pz.image_shapes()
        if layout == "images":
            assert {im.shape for im in inst.images[1:]} == {(pz.config.side,) * 2 + (3,)}


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_pass_the_contract_on_procedural_images(name: str) -> None:
    check_puzzle(Inpainting(InpaintingConfig(**PRESETS[name].overrides)), "procedural", (0, 1))


def test_generation_is_deterministic_and_json_clean() -> None:
    pz = puzzle(**PRESETS["K4-Mixed"].overrides)
    a, b = generate(pz, 5), generate(pz, 5)
    assert a.prompt == b.prompt and a.answer == b.answer and a.metadata == b.metadata
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    json.dumps(dict(a.metadata))
    assert a.metadata["chance_score"] == 0.25


# --- ambiguity ---------------------------------------------------------------------------


def test_flat_images_are_rejected() -> None:
    with pytest.raises(RuntimeError, match="flat_patch"):
        generate(puzzle(max_resamples=5), 0, ConstantSource())


def test_invisible_flips_are_rejected() -> None:
    pz = puzzle(candidates=2, distractors="flipped", max_resamples=200)
    reasons: Counter[str] = Counter()
    for seed in range(20):
        inst = generate(pz, seed, StripesSource())
        assert not near_duplicates(inst.images[1:], pz.config.min_patch_diff)
        reasons.update(inst.metadata["rejection_reasons"])
    assert reasons["near_duplicate_candidates"] > 0


def test_only_invisible_transforms_cannot_be_generated() -> None:
    pz = puzzle(candidates=3, distractors="flipped", max_resamples=5)  # needs both flips
    with pytest.raises(RuntimeError, match="near_duplicate_candidates"):
        generate(pz, 0, StripesSource())


# --- grammar and scoring -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("Candidate D fills it.", "D"),
        ("The answer is A.", "A"),
        ("A or B", None),
        ("E", None),
        ("", None),
        ("banana", None),
    ],
)
def test_parse(text: str, expected: str | None) -> None:
    assert puzzle(candidates=4).parse(text) == expected


def test_score_and_verify() -> None:
    pz = puzzle()
    inst = generate(pz)
    wrong = next(c for c in pz.options if c != inst.answer)
    assert pz.score(inst, inst.answer) == 1.0
    assert pz.score(inst, wrong) == 0.0
    assert pz.verify(inst, f"<think>x</think> <answer>{inst.answer}</answer>").reward == 1.0
    assert pz.verify(inst, "<think>x</think> <answer>banana</answer>").reward == 0.0
    assert pz.chance_score == 0.25


def test_random_answers_score_chance() -> None:
    pz = puzzle(candidates=4)
    inst = generate(pz)
    rng = np.random.default_rng(0)
    picks = [pz.score(inst, pz.parse(pz.random_answer(inst, rng))) for _ in range(4000)]
    assert abs(np.mean(picks) - 0.25) < 0.03


# --- hints -------------------------------------------------------------------------------


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"candidates": 9}, "candidates"),
        ({"candidates": 1}, "candidates"),
        ({"layout": "tiles"}, "'images', 'composite'"),
        ({"fill": "black"}, "'gray', 'noise'"),
        ({"distractors": "mirrored"}, "'other', 'shifted', 'rotated', 'flipped'"),
        ({"distractors": ""}, "names no kind"),
        ({"distractors": "rotated", "candidates": 5}, "at most 3 distinct"),
        ({"distractors": "rotated,flipped", "candidates": 7}, "add 'other' or 'shifted'"),
        ({"region": 0.9}, "region"),
        ({"region": 4}, "region"),
        ({"shift": (0.5, 0.2)}, "shift"),
        ({"shift": 0.3}, "pair"),
        ({"min_patch_diff": -1.0}, "min_patch_diff"),
    ],
)
def test_config_validation_names_what_is_valid(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        InpaintingConfig(**overrides)


def test_config_accepts_aliases_lists_and_pixels() -> None:
    cfg = InpaintingConfig(distractors="near,other", shift=[0.2, 0.3], region=40)  # type: ignore[arg-type]
    assert cfg.kinds == ("other", "shifted", "rotated", "flipped")
    assert cfg.shift == (0.2, 0.3)
    assert cfg.side == 40
    assert InpaintingConfig(region=0.25, size=200).side == 50
    assert dataclasses.replace(cfg, candidates=8).candidates == 8
    assert math.isclose(Inpainting(cfg).chance_score, 0.25)


@pytest.mark.parametrize("name", ["K4-Mixed", "K4-Hard", "K6-Hard"])
def test_candidates_come_in_equal_groups_of_a_crop_and_its_copies(name: str) -> None:
    pz = puzzle(**PRESETS[name].overrides)
    sizes: Counter[int] = Counter()
    for seed in range(40):
        meta = generate(pz, seed).metadata
        groups = Counter(tuple(b) for b in meta["boxes"])
        assert set(groups.values()) == {meta["group_size"]}
        sizes[meta["group_size"]] += 1
        for box, count in groups.items():
            ops = [
                t for b, t in zip(meta["boxes"], meta["transforms"], strict=True) if tuple(b) == box
            ]
            assert ops.count("identity") == 1 and len(set(ops)) == count
    assert set(sizes) == set(pz.config.group_sizes)


def test_the_true_crop_sits_anywhere_in_the_chain_of_shifts() -> None:
    pz = puzzle(candidates=3, distractors="shifted", shift=(0.3, 0.3))
    middle = 0
    for seed in range(60):
        meta = generate(pz, seed).metadata
        boxes = [np.array(b) for b in meta["boxes"]]
        truth = boxes[meta["kinds"].index("true")]
        near = sum(np.hypot(*(truth - b)) < 0.3 * pz.config.side + 1.5 for b in boxes) - 1
        middle += near == 2
    assert 10 < middle < 35  # the middle of three places about a third of the time


def test_group_sizes_follow_the_mix() -> None:
    assert InpaintingConfig(candidates=4).group_sizes == (1,)
    assert InpaintingConfig(candidates=4, distractors="near").group_sizes == (1, 2, 4)
    assert InpaintingConfig(candidates=6, distractors="near").group_sizes == (1, 2, 3, 6)
    assert InpaintingConfig(candidates=3, distractors="flipped").group_sizes == (3,)
    assert InpaintingConfig(candidates=5, distractors="shifted,flipped").group_sizes == (1,)
