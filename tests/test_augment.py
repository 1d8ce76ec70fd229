"""Hand-built checks of the shared augmentations."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ssl_gym import augment as aug


def noise(seed: int = 0, shape: tuple[int, int] = (64, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def smooth(seed: int = 0, side: int = 64) -> np.ndarray:
    """A textured but smooth image: blurred noise upsampled (blur visibly changes noise)."""
    small = noise(seed, (side // 8, side // 8))
    return np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))


@pytest.mark.parametrize("strength", ["weak", "strong"])
@pytest.mark.parametrize("out_size", [32, (24, 40)])
def test_augment_shape_dtype_and_determinism(strength: str, out_size: int | tuple[int, int]):
    image = noise()
    expected = (out_size, out_size) if isinstance(out_size, int) else out_size
    for seed in range(20):
        a, ops_a = aug.augment(image, np.random.default_rng(seed), strength, out_size)
        b, ops_b = aug.augment(image, np.random.default_rng(seed), strength, out_size)
        assert a.dtype == np.uint8 and a.shape == (*expected, 3)
        assert ops_a == ops_b and ops_a[0] == "crop"
        np.testing.assert_array_equal(a, b)


def test_augment_differs_between_seeds():
    image = noise()
    views = [aug.augment(image, np.random.default_rng(s), "strong", 32)[0] for s in range(5)]
    assert len({v.tobytes() for v in views}) == 5


def test_augment_does_not_modify_input():
    image = noise()
    before = image.copy()
    for seed in range(10):
        aug.augment(image, np.random.default_rng(seed), "strong", 48)
    np.testing.assert_array_equal(image, before)


def test_strong_uses_every_operation_and_weak_no_gray_or_blur():
    image = noise()
    strong = {
        op
        for s in range(200)
        for op in aug.augment(image, np.random.default_rng(s), "strong", 16)[1]
    }
    weak = {
        op for s in range(200) for op in aug.augment(image, np.random.default_rng(s), "weak", 16)[1]
    }
    assert strong == {"crop", "hflip", "color_jitter", "grayscale", "blur"}
    assert weak == {"crop", "hflip", "color_jitter"}


def test_unknown_strength_names_the_valid_ones():
    with pytest.raises(ValueError, match="'weak', 'strong'"):
        aug.augment(noise(), np.random.default_rng(0), "medium", 16)


def test_params_validation():
    with pytest.raises(ValueError, match="scale"):
        aug.AugmentParams(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="gray_p"):
        aug.AugmentParams(gray_p=2.0)


def test_crop_box_within_bounds_and_area():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = aug.sample_crop_box(rng, 60, 90, (0.2, 0.5))
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 90
        assert 0.17 <= h * w / (60 * 90) <= 0.53
        assert 0.7 <= w / h <= 1.4


def test_crop_box_fallback_is_centred_and_clamped():
    # A 10x100 strip cannot hold a crop with aspect ratio in [1, 1]: the fallback is used.
    top, left, h, w = aug.sample_crop_box(np.random.default_rng(0), 10, 100, (0.9, 1.0), (1, 1))
    assert (top, left, h, w) == (0, 45, 10, 10)


def test_full_crop_is_the_image():
    image = noise(shape=(48, 48))
    out = aug.random_resized_crop(image, np.random.default_rng(0), 48, (1.0, 1.0), (1.0, 1.0))
    np.testing.assert_array_equal(out, image)


def test_hflip():
    image = noise()
    flipped = aug.hflip(image)
    np.testing.assert_array_equal(flipped[:, 0], image[:, -1])
    np.testing.assert_array_equal(aug.hflip(flipped), image)
    assert flipped.flags.c_contiguous


def test_grayscale_has_equal_channels_and_luma():
    image = noise()
    gray = aug.grayscale(image)
    assert gray.shape == image.shape and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    luma = image.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[..., 0] - luma).max() <= 1.0


def test_color_jitter_zero_strength_is_identity():
    image = noise()
    out = aug.color_jitter(image, np.random.default_rng(0), 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(out, image)


def test_hue_rotation_keeps_gray_pixels():
    gray = aug.grayscale(noise())
    out = aug.color_jitter(gray, np.random.default_rng(0), 0.0, 0.0, 0.0, 0.5)
    assert np.abs(out.astype(int) - gray).max() <= 1


def test_hue_rotation_moves_colours():
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 200
    out = aug.color_jitter(red, np.random.default_rng(0), 0.0, 0.0, 0.0, 0.5)
    assert out[..., 1:].max() > 50  # a large hue shift makes pure red something else


def test_brightness_and_saturation_change_the_image():
    image = noise()
    rng = np.random.default_rng(3)
    dark = aug.color_jitter(image, rng, 0.9, 0.0, 0.0, 0.0)
    assert dark.dtype == np.uint8 and dark.shape == image.shape
    assert abs(float(dark.mean()) - float(image.mean())) > 1.0
    desat = aug.color_jitter(image, np.random.default_rng(1), 0.0, 0.0, 1.0, 0.0)
    assert not np.array_equal(desat, image)


def test_gaussian_blur_smooths_and_zero_radius_is_identity():
    image = noise()
    blurred = aug.gaussian_blur(image, 2.0)
    assert blurred.shape == image.shape and blurred.dtype == np.uint8
    assert blurred.std() < 0.6 * image.std()
    np.testing.assert_array_equal(aug.gaussian_blur(image, 0.0), image)


def test_photometric_keeps_geometry():
    image = smooth()
    for seed in range(30):
        out, ops = aug.photometric(image, np.random.default_rng(seed), "strong")
        assert out.shape == image.shape and "crop" not in ops and "hflip" not in ops


def test_texture_is_seeded_and_keeps_shape():
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    a = aug.texture(image, np.random.default_rng(1))
    b = aug.texture(image, np.random.default_rng(1))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_texture_varies_gradient_energy_between_draws():
    """Two draws of one picture differ in sharpness: what a texture statistic reads."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    energy = [
        np.abs(np.diff(aug.texture(image, np.random.default_rng(s)).astype(float), axis=1)).mean()
        for s in range(20)
    ]
    assert max(energy) > 1.5 * min(energy)


def test_gray_alike_turns_every_picture_gray_only_when_one_is_gray():
    colour = noise(1)
    gray = aug.grayscale(noise(2))
    assert aug.is_gray(gray) and not aug.is_gray(colour)
    both = aug.gray_alike([colour, gray])
    assert all(aug.is_gray(im) for im in both)
    assert np.array_equal(both[0], aug.grayscale(colour))
    untouched = aug.gray_alike([colour, noise(3)])
    assert np.array_equal(untouched[0], colour) and not aug.is_gray(untouched[1])


def test_random_levels_keeps_the_order_of_levels_and_forgets_the_picture_s():
    image = smooth(4)
    out = aug.random_levels(image, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8
    for c in range(3):  # a monotone curve per channel: brighter stays at least as bright
        order = np.argsort(image[..., c].ravel(), kind="stable")
        assert (np.diff(out[..., c].ravel()[order].astype(int)) >= 0).all()
    # The output's means do not follow the input's: a dark and a bright copy of one
    # picture come out with the same spread of means.
    dark = (image * 0.3).astype(np.uint8)
    bright = (155 + image * 0.35).astype(np.uint8)
    means = {}
    for name, im in (("dark", dark), ("bright", bright)):
        rng = np.random.default_rng(1)
        means[name] = np.array([aug.random_levels(im, rng).mean() for _ in range(200)])
    assert abs(means["dark"].mean() - means["bright"].mean()) < 8  # inputs differ by ~140
    assert means["dark"].std() > 10  # and the levels really are drawn afresh


@pytest.mark.parametrize("shape", [(1, 1), (75, 75), (97, 131), (1024, 1024)])
def test_channel_means_are_the_exact_means_correctly_rounded(shape):
    # the contrast pivot must not depend on how the sums are taken (so neither do bytes)
    image = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    n = shape[0] * shape[1]
    sums = image.reshape(-1, 3).astype(np.int64).sum(axis=0)
    exact = [float(Fraction(int(s), n)) for s in sums]
    assert aug._channel_means(image).tolist() == exact
    view = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)[::2, 1::3]
    assert aug._channel_means(view).tolist() == [float(v) for v in view.reshape(-1, 3).mean(0)]
