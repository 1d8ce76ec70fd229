"""Hand-built checks of the Correspondence family."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ssl_gym.core import format_answer
from ssl_gym.images import make_source
from ssl_gym.images.base import ImageSource
from ssl_gym.puzzles._correspondence_layout import flaw, label_boxes
from ssl_gym.puzzles.correspondence import (
    PRESETS,
    Correspondence,
    CorrespondenceConfig,
)
from ssl_gym.testing import check_puzzle


class CoordinateSource(ImageSource):
    """Red encodes the source column, green the row (exact under bilinear resampling)."""

    spec = "test-coordinates"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        assert max(shape) <= 256
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        noise = rng.integers(0, 256, shape)  # texture for the flatness test, blue only
        return np.stack([xs, ys, noise], axis=-1).astype(np.uint8)


class SmoothSource(ImageSource):
    """Smooth random images: coarse noise upsampled bilinearly (textured everywhere)."""

    spec = "test-smooth"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        coarse = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(coarse).resize((192, 192), Image.Resampling.BILINEAR))


class ConstantSource(ImageSource):
    spec = "test-constant"

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return np.full((64, 64, 3), 128, dtype=np.uint8)


class HalfFlatSource(SmoothSource):
    """Smooth noise on the right half of the source, flat gray on the left half."""

    spec = "test-half-flat"

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        image = super().sample(rng, shape).copy()
        image[:, : shape[1] // 2] = 128
        return image


def make(**overrides: object) -> Correspondence:
    settings: dict[str, object] = {"size": 128, **overrides}
    return Correspondence(CorrespondenceConfig(**settings))  # type: ignore[arg-type]


def preset_puzzle(name: str, **overrides: object) -> Correspondence:
    return make(**{**PRESETS[name].overrides, **overrides})


def pixel_maps(meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.array(meta[k]) for k in ("a_to_b", "a_to_source", "b_to_source"))  # type: ignore[return-value]


def apply(matrix: np.ndarray, point: list[float]) -> np.ndarray:
    v = matrix @ np.array([point[0], point[1], 1.0])
    return v[:2] / v[2]


# --- geometry: the true candidate really is the image of the marked point ----------------

GEOMETRY_PRESETS = ["Crop-K4", "Affine-K4", "Affine-K6", "Perspective-K6"]


@pytest.mark.parametrize("name", GEOMETRY_PRESETS)
def test_views_render_their_maps_exactly(name: str) -> None:
    pz = preset_puzzle(name, min_std=0.0)
    src = CoordinateSource()
    for seed in range(15):
        inst = pz.generate(np.random.default_rng(seed), src)
        meta = dict(inst.metadata)
        _, a_src, b_src = pixel_maps(meta)
        view_a, view_b = inst.images
        # The ring centres are left clean: each view there shows the source pixel its map says.
        xa, ya = np.round(meta["point_a"]).astype(int)
        assert np.abs(view_a[ya, xa, :2] - apply(a_src, [xa, ya])).max() <= 1.0
        for x, y in np.round(meta["candidates"]).astype(int):
            assert np.abs(view_b[y, x, :2] - apply(b_src, [x, y])).max() <= 1.0


@pytest.mark.parametrize("name", GEOMETRY_PRESETS)
def test_marked_point_and_true_candidate_show_the_same_source_pixel(name: str) -> None:
    pz = preset_puzzle(name, min_std=0.0)
    src = CoordinateSource()
    for seed in range(15):
        inst = pz.generate(np.random.default_rng(seed), src)
        meta = dict(inst.metadata)
        a_to_b, a_src, b_src = pixel_maps(meta)
        composed = np.linalg.solve(b_src, a_src)
        # The maps are stored to 8 decimals; tiny perspective terms lose digits to that.
        assert np.allclose(a_to_b, composed / composed[2, 2], rtol=1e-5, atol=1e-3)
        assert np.allclose(apply(composed, meta["point_a"]), meta["point_b"], atol=0.01)
        assert np.allclose(apply(a_to_b, meta["point_a"]), meta["point_b"], atol=0.01)
        assert meta["candidates"][meta["answer_index"]] == meta["point_b"]
        assert inst.answer == "ABCDEFGH"[meta["answer_index"]]
        view_a, view_b = inst.images
        xa, ya = np.round(meta["point_a"]).astype(int)
        xb, yb = np.round(meta["point_b"]).astype(int)
        true_gap = np.abs(view_a[ya, xa, :2].astype(int) - view_b[yb, xb, :2]).max()
        assert true_gap <= 2, (seed, true_gap)
        for k, (x, y) in enumerate(np.round(meta["candidates"]).astype(int)):
            if k != meta["answer_index"]:  # distractors show other parts of the source
                assert np.abs(view_a[ya, xa, :2].astype(int) - view_b[y, x, :2]).max() > 4


def test_rotation_and_mirroring_match_the_recorded_transform() -> None:
    pz = make(transform="affine", max_rotation=180.0, flip=True, scale_range=(0.8, 1.25))
    src = SmoothSource()
    seen: Counter[tuple[bool, bool]] = Counter()
    for seed in range(40):
        inst = pz.generate(np.random.default_rng(seed), src)
        meta = dict(inst.metadata)
        linear = np.array(meta["a_to_b"])[:2, :2]
        theta, zoom = math.radians(meta["rotation"]), meta["zoom"]
        # Counter-clockwise on screen (y down): the up direction turns towards the left.
        up = zoom * np.array([-math.sin(theta), -math.cos(theta)])
        assert np.allclose(linear @ [0, -1], up, atol=1e-3)
        # Mirrored first: the right direction points left before turning.
        right = -1.0 if meta["flip"] else 1.0
        expected = zoom * right * np.array([math.cos(theta), -math.sin(theta)])
        assert np.allclose(linear @ [1, 0], expected, atol=1e-3)
        assert (np.linalg.det(linear) < 0) == meta["flip"]
        seen[meta["flip"], meta["rotation"] > 0] += 1
    assert len(seen) == 4  # both directions, with and without mirroring


def test_a_quarter_turn_counter_clockwise_sends_up_to_left() -> None:
    pz = make(transform="affine", max_rotation=90.0, flip=False, scale_range=(1.0, 1.0))
    for seed in range(60):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        if meta["rotation"] > 85:
            up = np.array(meta["a_to_b"])[:2, :2] @ [0, -1]
            assert up[0] < -0.99 and abs(up[1]) < 0.1
            return
    pytest.fail("no rotation near 90 degrees drawn")


def test_crop_is_a_pure_shift_and_zoom() -> None:
    pz = preset_puzzle("Crop-K4")
    for seed in range(10):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        linear = np.array(meta["a_to_b"])[:2, :2]
        assert np.allclose(linear, np.eye(2) * meta["zoom"], atol=1e-3)
        assert 0.8 <= meta["zoom"] <= 1.25
        assert meta["rotation"] == 0.0 and not meta["flip"] and not meta["perspective"]


def test_perspective_warps_view_b() -> None:
    pz = preset_puzzle("Perspective-K6")
    meta = dict(pz.generate(np.random.default_rng(0), SmoothSource()).metadata)
    a_to_b = np.array(meta["a_to_b"])
    assert meta["perspective"] and np.abs(a_to_b[2, :2]).max() > 1e-5


# --- candidates ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Crop-K4", "Affine-K4", "Affine-K6", "Perspective-K6"])
def test_candidates_are_spaced_and_inside_view_b(name: str) -> None:
    pz = preset_puzzle(name)
    n, spacing, radius = pz.config.size, pz.config.spacing, pz.config.ring_radius
    for seed in range(15):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        points = np.array(meta["candidates"])
        assert len(points) == pz.config.candidates
        gaps = np.sqrt(((points[:, None] - points[None]) ** 2).sum(axis=2))
        assert gaps[~np.eye(len(points), dtype=bool)].min() >= spacing
        assert (points >= radius).all() and (points <= n - 1 - radius).all()
        assert (np.array(meta["point_a"]) >= radius).all()
        assert (np.array(meta["point_a"]) <= n - 1 - radius).all()


def test_labels_are_uniform() -> None:
    pz = preset_puzzle("Affine-K4", size=96)
    counts = Counter(
        pz.generate(np.random.default_rng(seed), SmoothSource()).answer for seed in range(400)
    )
    assert set(counts) == set("ABCD")
    assert all(55 <= c <= 145 for c in counts.values()), counts  # 100 +- 5 sigma


@pytest.mark.parametrize("name", ["Crop-K4", "Affine-K4"])
def test_true_candidate_is_placed_like_the_distractors(name: str) -> None:
    # Every candidate is the marked point sent through an independent view B, so neither
    # its place in view B nor its offset from the marked point tells the true one.
    pz = preset_puzzle(name, size=96)
    true_d: dict[str, list[float]] = {"centre": [], "mark": []}
    other_d: dict[str, list[float]] = {"centre": [], "mark": []}
    for seed in range(300):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        points, truth = np.array(meta["candidates"]), meta["answer_index"]
        for key, origin in (("centre", 47.5), ("mark", np.array(meta["point_a"]))):
            dist = np.sqrt(((points - origin) ** 2).sum(axis=1))
            true_d[key].append(dist[truth])
            other_d[key].extend(np.delete(dist, truth))
    for key in true_d:
        stderr = np.std(other_d[key]) * math.sqrt(1 / len(true_d[key]) + 1 / len(other_d[key]))
        assert abs(np.mean(true_d[key]) - np.mean(other_d[key])) < 4 * stderr, key


def test_nearest_candidate_to_the_mark_is_right_at_chance() -> None:
    pz = preset_puzzle("Crop-K4", size=96)
    hits = 0
    for seed in range(300):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        dist = ((np.array(meta["candidates"]) - meta["point_a"]) ** 2).sum(axis=1)
        hits += int(np.argmin(dist) == meta["answer_index"])
    assert hits / 300 < 0.25 + 4 * math.sqrt(0.25 * 0.75 / 300)  # v0: about 0.8


def test_all_points_lie_on_textured_content() -> None:
    pz = preset_puzzle("Crop-K4")
    # A point counts as textured when its window is; the window reaches 7 view pixels
    # (under 7 source pixels) from it, so no point lies deeper in the flat half than that.
    for seed in range(10):
        inst = pz.generate(np.random.default_rng(seed), HalfFlatSource())
        meta = dict(inst.metadata)
        edge = meta["source_size"] / 2 - 7
        _, a_src, b_src = pixel_maps(meta)
        assert apply(a_src, meta["point_a"])[0] > edge
        for point in meta["candidates"]:
            assert apply(b_src, point)[0] > edge


def test_flat_images_are_rejected() -> None:
    pz = make(max_resamples=5)
    with pytest.raises(RuntimeError, match="no_room"):
        pz.generate(np.random.default_rng(0), ConstantSource())


def test_near_identical_or_flat_candidate_windows_are_flawed() -> None:
    pz = make()
    tile = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    view = np.tile(tile, (8, 8, 1))
    same_phase = np.array([[24.5, 24.5], [56.5, 24.5], [24.5, 88.5]])
    assert flaw(pz.config, same_phase, view) == "similar_candidates"
    other_phase = same_phase + np.array([[0, 0], [5, 0], [0, 7]])
    assert flaw(pz.config, other_phase, view) is None
    view[:48, :48] = 128  # the first candidate now sits on flat gray
    assert flaw(pz.config, other_phase, view) == "flat_candidate"


def boxes_overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


@pytest.mark.parametrize("name", ["Affine-K6", "Perspective-K6"])
def test_labels_are_inside_apart_and_next_to_their_own_ring(name: str) -> None:
    pz = preset_puzzle(name, size=160)
    n, r = pz.config.size, pz.config.ring_radius
    for seed in range(20):
        meta = dict(pz.generate(np.random.default_rng(seed), SmoothSource()).metadata)
        points, boxes = np.array(meta["candidates"]), meta["label_boxes"]
        rings = [[x - r - 1, y - r - 1, x + r + 1, y + r + 1] for x, y in points]
        for k, box in enumerate(boxes):
            assert 0 <= box[0] < box[2] < n and 0 <= box[1] < box[3] < n
            assert box[3] - box[1] >= n / 14  # large letters
            others = [o for j, o in enumerate(boxes + rings) if j != k]
            assert not any(boxes_overlap(box, o) for o in others)
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            dist = np.sqrt(((points - centre) ** 2).sum(axis=1))
            assert dist.argmin() == k and np.sort(dist)[1] >= dist[k] + r
            assert dist[k] < 2 * r + (box[2] - box[0])


def test_labels_never_sit_between_two_rings() -> None:
    pz = make(candidates=3)
    gap = pz.config.spacing
    row = np.array([[30.5, 64.5], [30.5 + gap, 64.5], [64.5, 110.5]])
    boxes = label_boxes(pz.config, pz.options, row)
    assert boxes is not None
    assert not 30.5 < boxes[0][0] < 30.5 + gap  # the right place would be between A and B
    jammed = np.array([[10.5, 10.5], [10.5, 30.5], [30.5, 10.5]])
    jam = make(candidates=3, min_distance=20)
    assert label_boxes(jam.config, jam.options, jammed) is None


def ring_centre(view: np.ndarray, point: list[float], radius: int, colour: str) -> np.ndarray:
    """Centroid of the ring-coloured pixels near ``point``."""
    ys, xs = np.mgrid[0 : view.shape[0], 0 : view.shape[1]]
    near = (xs - point[0]) ** 2 + (ys - point[1]) ** 2 <= (radius + 2) ** 2
    r, g, b = (view[..., c].astype(int) for c in range(3))
    ink = (r > 200) & (b < 60) & ((g < 60) if colour == "red" else (g > 180))
    assert (ink & near).sum() > 4 * radius
    return np.array([xs[ink & near].mean(), ys[ink & near].mean()])


def test_rings_are_drawn_centred_on_the_points() -> None:
    pz = preset_puzzle("Affine-K4", size=224)
    r = pz.config.ring_radius
    for seed in range(5):
        inst = pz.generate(np.random.default_rng(seed), SmoothSource())
        meta = dict(inst.metadata)
        # The mark sits on a pixel; candidates fall anywhere and take their pixel's ring.
        centre = ring_centre(inst.images[0], meta["point_a"], r, "red")
        assert np.abs(centre - meta["point_a"]).max() <= 0.25
        for point in meta["candidates"]:
            centre = ring_centre(inst.images[1], point, r, "yellow")
            assert np.abs(centre - point).max() <= 0.75


# --- observation, contract, presets --------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_meet_the_contract(name: str) -> None:
    pz = Correspondence(CorrespondenceConfig(**PRESETS[name].overrides))
    check_puzzle(pz, make_source("procedural"), seeds=(0, 1))
    inst = pz.generate(np.random.default_rng(5), make_source("procedural"))
    assert tuple(im.shape for im in inst.images) == pz.image_shapes()
    assert inst.metadata["chance_score"] == pytest.approx(1 / pz.config.candidates)


def test_image_shapes() -> None:
    assert make().image_shapes() == ((128, 128, 3),) * 2
    assert make(size=192, layout="composite").image_shapes() == ((192 + 19 + 8, 2 * 192 + 12, 3),)


def test_composite_shows_the_same_views() -> None:
    separate = preset_puzzle("Affine-K4")
    together = preset_puzzle("Affine-K4-Composite")
    a = separate.generate(np.random.default_rng(2), SmoothSource())
    b = together.generate(np.random.default_rng(2), SmoothSource())
    assert a.answer == b.answer
    canvas, n, top = b.images[0], 128, 4 + 14
    assert np.array_equal(canvas[top : top + n, 4 : 4 + n], a.images[0])
    assert np.array_equal(canvas[top : top + n, 8 + n : 8 + 2 * n], a.images[1])
    assert "Image 1 (left)" in b.question


def test_questions_per_style() -> None:
    texts = {
        style: preset_puzzle("Affine-K6", prompt_style=style)._question()
        for style in ("ssl4rl", "ssl_r1", "plain")
    }
    assert "corresponds to the red marked point in Image 1" in texts["ssl_r1"]
    assert "(A, B, C, D, E or F)" in texts["ssl_r1"]
    assert "mirrored" in texts["ssl4rl"] and "rotated" in texts["ssl4rl"]
    assert "rotated" not in preset_puzzle("Crop-K4")._question()
    assert "seen at an angle" in preset_puzzle("Perspective-K6")._question()
    assert all(t.isascii() for t in texts.values())


# --- parsing, scoring, hints ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", "C"),
        ("(C)", "C"),
        ("c", "C"),
        ("Point C", "C"),
        ("The answer is C.", "C"),
        ("**D**", "D"),
        ("A or B", None),
        ("E", None),  # not an option with 4 candidates
        ("a point", None),
        ("", None),
        ("none of them", None),
    ],
)
def test_parse(text: str, expected: str | None) -> None:
    assert make(candidates=4).parse(text) == expected


def test_scoring_and_random_answers() -> None:
    pz = make(candidates=4, answer_format="boxed")
    inst = pz.generate(np.random.default_rng(0), SmoothSource())
    wrong = next(c for c in inst.choices or () if c != inst.answer)
    assert pz.verify(inst, format_answer(inst.answer, "boxed")).score == 1.0
    assert pz.verify(inst, format_answer(wrong, "boxed")).score == 0.0
    assert pz.verify(inst, "\\boxed{Z}").score == 0.0
    rng = np.random.default_rng(1)
    mean = np.mean([pz.score(inst, pz.parse(pz.random_answer(inst, rng))) for _ in range(4000)])
    assert mean == pytest.approx(0.25, abs=0.03)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"transform": "shear"}, "'crop', 'affine', 'perspective'"),
        ({"layout": "tiles"}, "'images', 'composite'"),
        ({"candidates": 9}, "<= 8"),
        ({"candidates": 1}, ">= 2"),
        ({"max_rotation": 200.0}, "max_rotation"),
        ({"scale_range": (1.5, 1.0)}, "low <= high"),
        ({"scale_range": (0.1, 1.0)}, "scale_range"),
        ({"scale_range": 1.2}, "pair"),
        ({"min_distance": 5}, "min_distance"),
        ({"marker_radius": 60}, "marker_radius"),
        ({"perspective": 0.5}, "perspective"),
        ({"size": 32}, "size"),
        ({"flip": "yes"}, "flip"),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        CorrespondenceConfig(**overrides)


def test_scale_range_from_json_becomes_a_tuple() -> None:
    cfg = CorrespondenceConfig(scale_range=[0.9, 1.1])  # type: ignore[arg-type]
    assert cfg.scale_range == (0.9, 1.1)
    assert dataclasses.replace(cfg, candidates=5).scale_range == (0.9, 1.1)


def test_derived_sizes() -> None:
    cfg = CorrespondenceConfig()
    assert (cfg.ring_radius, cfg.spacing) == (9, 32)
    assert CorrespondenceConfig(size=96).ring_radius == 4
    assert CorrespondenceConfig(marker_radius=6, min_distance=40).spacing == 40
