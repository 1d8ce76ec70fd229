"""Resizing only the window a puzzle keeps gives PIL's bytes for the whole picture, cropped."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import ssl_gym  # noqa: F401  (registers the ids)
from ssl_gym.images import FolderSource, fit, resample
from ssl_gym.images.base import fit_region
from ssl_gym.images.resample import Region, resize_bilinear, resize_window
from ssl_gym.render import DIHEDRAL, orient


def _picture(rng: np.random.Generator, height: int, width: int, smooth: bool) -> np.ndarray:
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if not smooth:
        return noise
    small = Image.fromarray(noise).resize((max(1, width // 8), max(1, height // 8)))
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC))


def test_a_window_is_the_whole_resize_cropped_byte_for_byte() -> None:
    rng = np.random.default_rng(0)
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(2, 400, size=2))
        out_h, out_w = (int(v) for v in rng.integers(1, 600, size=2))
        if trial % 6 == 0:
            out_h = h  # an axis that keeps its size is not resampled
        if trial % 6 == 1:
            out_w = w
        image = _picture(rng, h, w, smooth=trial % 2 == 0)
        whole = resize_bilinear(image, (out_h, out_w))
        for _ in range(3):
            height, width = int(rng.integers(1, out_h + 1)), int(rng.integers(1, out_w + 1))
            top, left = int(rng.integers(out_h - height + 1)), int(rng.integers(out_w - width + 1))
            got = resize_window(image, (out_h, out_w), top, left, height, width)
            assert got.flags.c_contiguous and got.dtype == np.uint8
            want = whole[top : top + height, left : left + width]
            np.testing.assert_array_equal(got, want, err_msg=f"{(h, w)} -> {(out_h, out_w)}")


def test_the_pass_order_is_learnt_and_a_wrong_order_shows_in_the_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each pass rounds to 8 bits, so the order matters: the first window must find it."""
    monkeypatch.setattr(resample, "_ORDERS", {})
    rng = np.random.default_rng(1)
    image = _picture(rng, 423, 215, smooth=False)
    for size in ((351, 748), (560, 747), (100, 60), (300, 30)):
        want = resize_bilinear(image, size)
        np.testing.assert_array_equal(resize_window(image, size, 5, 6, 20, 20), want[5:25, 6:26])
        order = resample._ORDERS[(423, 215, *size)]
        assert order is not None
        whole = (0, 0, *size)
        np.testing.assert_array_equal(resample._resize_part(image, size, whole, order), want)
        other = resample._resize_part(image, size, whole, not order)
        assert not np.array_equal(other, want)  # the planted fault: the other order


def test_a_window_too_flat_to_tell_the_order_leaves_it_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resample, "_ORDERS", {})
    flat = np.full((60, 80, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize_window(flat, (90, 120), 0, 0, 30, 30), flat[:30, :30])
    assert resample._ORDERS == {}  # both orders give it: not learnt
    image = _picture(np.random.default_rng(6), 60, 80, smooth=False)
    want = resize_bilinear(image, (90, 120))[10:40, 20:50]
    np.testing.assert_array_equal(resize_window(image, (90, 120), 10, 20, 30, 30), want)
    assert list(resample._ORDERS) == [(60, 80, 90, 120)]


def test_a_pillow_with_another_algorithm_falls_back_to_its_whole_resize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BICUBIC))

    monkeypatch.setattr(resample, "resize_bilinear", bicubic)
    monkeypatch.setattr(resample, "_ORDERS", {})
    image = _picture(np.random.default_rng(2), 90, 120, smooth=False)
    got = resize_window(image, (150, 200), 10, 20, 64, 64)
    assert resample._ORDERS == {(90, 120, 150, 200): None}
    np.testing.assert_array_equal(got, bicubic(image, (150, 200))[10:74, 20:84])


@pytest.mark.parametrize(
    "window", [(-1, 0, 4, 4), (0, 0, 0, 4), (0, 0, 4, -2), (27, 0, 4, 4), (0, 30, 4, 4)]
)
def test_a_window_outside_the_resize_is_refused(window: tuple[int, int, int, int]) -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="window"):
        resize_window(image, (30, 32), *window)
    with pytest.raises(ValueError, match="not inside"):
        Region.of(image).cut(5, 5, 6, 6)


def test_a_region_cuts_what_fit_and_orient_would_have_made() -> None:
    rng = np.random.default_rng(3)
    image = _picture(rng, 48, 64, smooth=True)
    for shape in ((40, 40), (56, 56), (30, 70), (48, 64), (20, 64)):
        made = np.random.default_rng(5)
        lazy = np.random.default_rng(5)
        whole = fit(image, shape, made)
        region = fit_region(image, shape, lazy)
        assert made.random() == lazy.random()  # the same draws
        np.testing.assert_array_equal(region.array(), whole)
        names = DIHEDRAL if shape[0] == shape[1] else DIHEDRAL[:4]
        for name in names:
            turned = orient(whole, name)
            for _ in range(4):
                height = int(rng.integers(1, turned.shape[0] + 1))
                width = int(rng.integers(1, turned.shape[1] + 1))
                top = int(rng.integers(turned.shape[0] - height + 1))
                left = int(rng.integers(turned.shape[1] - width + 1))
                got = region.cut(top, left, height, width, name)
                assert got.flags.writeable and got.flags.c_contiguous
                np.testing.assert_array_equal(got, turned[top : top + height, left : left + width])


def _folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    for k, (w, h) in enumerate([(160, 120), (90, 150), (300, 200), (64, 64), (41, 77)]):
        Image.fromarray(_picture(rng, h, w, smooth=False)).save(tmp_path / f"p{k}.jpg")
    return tmp_path


def test_a_folders_region_is_its_draw(tmp_path: Path) -> None:
    src = FolderSource(_folder(tmp_path))
    for seed in range(12):
        made, lazy = np.random.default_rng(seed), np.random.default_rng(seed)
        image, key = src.draw(made, (140, 140))
        region, lazy_key = src.draw_region(lazy, (140, 140))
        assert key == lazy_key and made.random() == lazy.random()
        np.testing.assert_array_equal(region.cut(10, 20, 56, 56), image[10:66, 20:76])


@pytest.mark.parametrize(
    "env_id", ["SSL/Jigsaw-2x2-v2", "SSL/Jigsaw-3x3-Masked-v2", "SSL/FlipPatch-3x3-v2",
               "SSL/Position-3x3-v2"],
)  # fmt: skip
def test_puzzles_cut_from_regions_are_the_puzzles_cut_from_whole_scenes(
    env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = f"folder:{_folder(tmp_path)}"
    lazy = gym.make(env_id, image_source=folder, size=96)
    shown = [lazy.reset(seed=s)[0]["images"] for s in range(6)]

    def whole(image: np.ndarray, size: tuple[int, int], *window: int) -> np.ndarray:
        top, left, height, width = window
        return resize_bilinear(image, size)[top : top + height, left : left + width].copy()

    monkeypatch.setattr(resample, "resize_window", whole)  # the whole scene, then the cut
    made = gym.make(env_id, image_source=folder, size=96)
    for seed, images in enumerate(shown):
        for got, want in zip(images, made.reset(seed=seed)[0]["images"], strict=True):
            np.testing.assert_array_equal(got, want)
