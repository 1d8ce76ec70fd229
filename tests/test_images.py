"""Image sources: procedural scenes, photos, folders, HF datasets, arrays, spec parsing."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ssl_gym.images import (
    ArraySource,
    FolderSource,
    HFDatasetSource,
    ImageSource,
    PhotosSource,
    ProceduralSource,
    fit,
    make_source,
    procedural,
    to_rgb_array,
)
from ssl_gym.images import base as images_base


def _small(image: np.ndarray, side: int = 16) -> np.ndarray:
    """A box-filtered thumbnail, so that only the layout (not the grain) is compared."""
    thumb = Image.fromarray(image).resize((side, side), Image.Resampling.BOX)
    return np.asarray(thumb, dtype=np.float32)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


# --- procedural --------------------------------------------------------------------------


def test_render_is_deterministic_per_index() -> None:
    a, b = ProceduralSource(), ProceduralSource()
    for index in (0, 1, 12345, 2**63 - 1, 2**70):
        np.testing.assert_array_equal(a.render(index, (64, 80)), b.render(index, (64, 80)))


def test_sample_is_deterministic_across_fresh_generators() -> None:
    src = ProceduralSource()
    first = [src.sample(np.random.default_rng(7), (48, 48)) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(5):
        np.testing.assert_array_equal(src.sample(rng_a, (40, 56)), src.sample(rng_b, (40, 56)))


def test_different_seeds_give_different_scenes() -> None:
    src = ProceduralSource()
    images = [src.sample(np.random.default_rng(seed), (64, 64)) for seed in range(12)]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert _diff(images[i], images[j]) > 10.0, (i, j)
    # random palettes: the typical colour of the sky and of the ground vary a lot
    sky = np.array([np.median(im[:8].reshape(-1, 3), axis=0) for im in images])
    ground = np.array([np.median(im[-8:].reshape(-1, 3), axis=0) for im in images])
    assert float(sky.std(axis=0).mean()) > 25.0
    assert float(ground.std(axis=0).mean()) > 15.0


@pytest.mark.parametrize(
    "shape", [(224, 224), (32, 32), (96, 160), (160, 96), (512, 512), (1, 1), (17, 5)]
)
def test_shapes_and_dtype(shape: tuple[int, int]) -> None:
    img = ProceduralSource().sample(np.random.default_rng(0), shape)
    assert img.shape == (*shape, 3)
    assert img.dtype == np.uint8
    assert img.flags.c_contiguous and img.flags.writeable


@pytest.mark.parametrize("index", [-1, 1.5, True, "3", None])
def test_render_rejects_bad_index(index: Any) -> None:
    with pytest.raises(ValueError, match="index"):
        ProceduralSource().render(index, (8, 8))


@pytest.mark.parametrize("shape", [(0, 8), (8, -1), (8,), (8, 8, 3), "ab", (8.0, 8), (True, 8)])
def test_render_rejects_bad_shape(shape: Any) -> None:
    with pytest.raises(ValueError, match="shape"):
        ProceduralSource().sample(np.random.default_rng(0), shape)


def test_same_scene_at_every_size() -> None:
    src = ProceduralSource()
    same = [
        _diff(_small(src.render(i, (224, 224))), _small(src.render(i, (96, 96)))) for i in range(8)
    ]
    other = [
        _diff(_small(src.render(i, (224, 224))), _small(src.render(i + 100, (96, 96))))
        for i in range(8)
    ]
    assert max(same) < 12.0
    assert min(other) > 2 * max(same)


def test_scenes_have_a_clear_up_and_down() -> None:
    src = ProceduralSource()
    top_minus_bottom, flips = [], []
    for seed in range(50):
        img = src.render(seed, (96, 96))
        small = _small(img)
        assert _diff(small, small[::-1, ::-1]) > 25.0, seed  # 180 degrees
        assert _diff(small, np.rot90(small)) > 25.0, seed
        assert _diff(small, np.rot90(small, 3)) > 25.0, seed
        flips.append(_diff(small, small[:, ::-1]))
        luma = img.astype(np.float32).mean(axis=2)
        top_minus_bottom.append(float(luma[:19].mean() - luma[-19:].mean()))
    assert min(flips) > 8.0 and float(np.median(flips)) > 18.0
    # the sky is brighter than the ground
    assert min(top_minus_bottom) > 0.0
    assert float(np.median(top_minus_bottom)) > 40.0


def test_every_tile_of_a_grid_is_textured_and_distinct() -> None:
    src = ProceduralSource()
    side = 224 // 5
    for seed in range(12):
        img = src.render(seed, (224, 224)).astype(np.float32)
        tiles = [
            img[r * side : (r + 1) * side, c * side : (c + 1) * side]
            for r in range(5)
            for c in range(5)
        ]
        for k, tile in enumerate(tiles):
            assert float(tile.std(axis=(0, 1)).mean()) > 4.0, (seed, k)
        for i in range(25):
            for j in range(i + 1, 25):
                assert _diff(tiles[i], tiles[j]) > 3.0, (seed, i, j)


def test_procedural_sample_raw_and_repr() -> None:
    src = ProceduralSource()
    assert src._sample_raw(np.random.default_rng(0)).shape[2] == 3
    assert repr(src) == "ProceduralSource('procedural')"


@pytest.mark.parametrize("shape", [(1, 1), (32, 32), (37, 90), (224, 224)])
def test_procedural_noise_is_the_plain_sum(shape: tuple[int, int]) -> None:
    """The fused noise is canvas + clip(luma + colour + 128, 0, 255) - 128, clipped, per channel."""
    h, w = shape
    rng = np.random.default_rng(3)
    canvas = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    ramp = 20.0 * (0.5 - (np.arange(w) + 0.5) / w)
    fused, plain = np.random.default_rng(11), np.random.default_rng(11)
    got = procedural._add_noise(canvas, fused, ramp)
    lum = procedural._luma_noise(plain, h, w, ramp).astype(np.int64)
    noise = [np.clip(col + lum + 128, 0, 255) for col in procedural._colour_noise(plain, h, w)]
    want = np.clip(np.asarray(canvas) + np.stack(noise, axis=-1) - 128, 0, 255)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint8 and got.flags.writeable and got.flags.c_contiguous
    assert fused.random() == plain.random()


# --- folder ------------------------------------------------------------------------------


def _write(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    Image.new("RGB", size, color).save(path, format=fmt[path.suffix.lower()], quality=100)


def _truncated_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_folder_finds_images_recursively_and_sorted(tmp_path: Path) -> None:
    _write(tmp_path / "b.png", (255, 0, 0))
    _write(tmp_path / "a" / "x.JPG", (0, 0, 255))
    _write(tmp_path / "a" / "deep" / "er" / "y.jpeg", (0, 255, 0))
    _write(tmp_path / "c.bmp", (255, 255, 0))
    _write(tmp_path / "d.WebP", (0, 255, 255))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "image.gif").write_bytes(b"GIF89a")
    src = FolderSource(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in src.files]
    assert rel == ["a/deep/er/y.jpeg", "a/x.JPG", "b.png", "c.bmp", "d.WebP"]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        img = src.sample(rng, (8, 8))
        assert img.shape == (8, 8, 3) and img.dtype == np.uint8
        seen.add(tuple(int(v) // 64 for v in img.reshape(-1, 3).mean(axis=0)))
    assert len(seen) == 5
    assert src.skipped == 0
    assert src.spec == f"folder:{tmp_path}"


def test_folder_never_opens_a_fifo_nor_follows_a_link_out(tmp_path: Path) -> None:
    import os

    root = tmp_path / "pictures"
    _write(root / "a.png", (255, 0, 0))
    _write(root / "b.png", (0, 255, 0))
    os.mkfifo(root / "fifo.png")  # opening it would block every reset for ever
    outside = tmp_path / "private.png"
    _write(outside, (0, 0, 255))
    (root / "leak.png").symlink_to(outside)  # a link that leaves the folder
    (root / "alias.png").symlink_to(root / "a.png")  # a link inside it is fine
    (root / "broken.png").symlink_to(tmp_path / "missing.png")
    src = FolderSource(root)
    assert [p.name for p in src.files] == ["a.png", "alias.png", "b.png"]
    assert src.sample(np.random.default_rng(0), (8, 8)).shape == (8, 8, 3)


def test_folder_skips_bad_files_with_one_warning(tmp_path: Path) -> None:
    _write(tmp_path / "good.png", (10, 200, 30))
    (tmp_path / "random.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    _truncated_png(tmp_path / "sub" / "truncated.png")
    _write(tmp_path / "big.png", (0, 0, 0), size=(100, 100))  # over max_pixels below
    src = FolderSource(tmp_path, max_pixels=5000)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = [src.sample(rng, (6, 6)) for _ in range(40)]
    ours = [w for w in caught if "skipping unreadable image" in str(w.message)]
    assert len(ours) == 1
    assert "FolderSource.skipped" in str(ours[0].message)
    assert src.skipped == 3
    for img in images:
        np.testing.assert_array_equal(img, np.broadcast_to([10, 200, 30], (6, 6, 3)))


def test_folder_picks_do_not_depend_on_history(tmp_path: Path) -> None:
    for i in range(6):
        _write(tmp_path / f"{i}.png", (40 * i, 0, 0))
    (tmp_path / "bad1.png").write_bytes(b"nope")
    (tmp_path / "bad2.jpg").write_bytes(b"nope either")
    warm, cold = FolderSource(tmp_path), FolderSource(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(99)
        for _ in range(40):
            warm.sample(rng, (4, 4))
        assert warm.skipped == 2
        rng_w, rng_c = np.random.default_rng(5), np.random.default_rng(5)
        for _ in range(10):
            np.testing.assert_array_equal(warm.sample(rng_w, (4, 4)), cold.sample(rng_c, (4, 4)))


def test_folder_of_only_bad_files_raises(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"broken")
    (tmp_path / "b.jpg").write_bytes(b"")
    src = FolderSource(tmp_path)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="all 2 image files"):
        src.sample(np.random.default_rng(0), (4, 4))
    assert src.skipped == 2


def test_folder_empty_or_missing_raises(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no image files") as info:
        FolderSource(tmp_path).sample(np.random.default_rng(0), (4, 4))
    assert str(tmp_path) in str(info.value)
    missing = tmp_path / "does-not-exist"
    with pytest.raises(ValueError, match="does not exist") as info:
        FolderSource(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError, match="not a folder"):
        FolderSource(tmp_path / "readme.txt")
    with pytest.raises(ValueError, match="max_pixels"):
        FolderSource(tmp_path, max_pixels=0)


def test_folder_applies_exif_orientation_and_rescales_16_bit(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (200, 100, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    src = FolderSource(tmp_path)
    assert src._sample_raw(np.random.default_rng(0)).shape == (40, 20, 3)
    (tmp_path / "rotated.jpg").unlink()
    Image.fromarray(np.full((10, 10), 32896, dtype=np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(
        FolderSource(tmp_path)._sample_raw(np.random.default_rng(0)),
        np.full((10, 10, 3), 128, dtype=np.uint8),
    )


def test_folder_decodes_large_jpegs_at_reduced_scale(tmp_path: Path) -> None:
    stored = np.zeros((600, 800, 3), dtype=np.uint8)
    stored[:300] = (220, 20, 20)  # red on top as stored; on display it is on the right
    stored[300:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "big.jpg", quality=95, exif=exif.tobytes())
    src = FolderSource(tmp_path)
    assert src._sample_raw(np.random.default_rng(0)).shape == (800, 600, 3)
    img = src.sample(np.random.default_rng(0), (80, 60)).astype(int)
    assert img.shape == (80, 60, 3)
    assert img[:, :20, 2].mean() > 180 and img[:, :20, 0].mean() < 60  # blue on the left
    assert img[:, -20:, 0].mean() > 180 and img[:, -20:, 2].mean() < 60  # red on the right


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_folder_does_not_hold_files_open(tmp_path: Path) -> None:
    for i in range(4):
        _write(tmp_path / f"{i}.png", (i, i, i))
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    src = FolderSource(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):
            src.sample(np.random.default_rng(0), (4, 4))
    assert len(os.listdir("/proc/self/fd")) == before


class _Decoded(Exception):  # noqa: N818  (not an error a source would catch and skip)
    """Raised by the patched decoder on a file the test says must never be decoded."""


def _watch_files(monkeypatch: pytest.MonkeyPatch, forbid: str | None = None) -> dict[str, Any]:
    """Counts of ``Image.open`` and of decodes (``load``) per file name.

    A decode of the file named ``forbid`` raises :class:`_Decoded` before it allocates.
    """
    from PIL import ImageFile

    from ssl_gym.images import sources

    seen: dict[str, Any] = {"open": {}, "load": {}}
    real_open, real_load = Image.open, ImageFile.ImageFile.load

    def opening(fp: Any, *args: Any, **kwargs: Any) -> Any:
        name = Path(str(fp)).name
        seen["open"][name] = seen["open"].get(name, 0) + 1
        return real_open(fp, *args, **kwargs)

    def loading(self: Any) -> Any:
        name = Path(str(getattr(self, "filename", ""))).name
        if self.tile:  # a decode, not a no-op on an already decoded image
            seen["load"][name] = seen["load"].get(name, 0) + 1
            if name == forbid:
                raise _Decoded(name)
        return real_load(self)

    monkeypatch.setattr(sources.Image, "open", opening)
    monkeypatch.setattr(ImageFile.ImageFile, "load", loading)
    return seen


def test_folder_skips_a_file_over_the_decode_budget_without_decoding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    _write(tmp_path / "a.png", (200, 10, 10))
    _write(tmp_path / "b.jpg", (10, 10, 200))
    Image.new("1", (7900, 7900)).save(tmp_path / "huge.png")  # 62.4 Mpx: under max_pixels
    assert (tmp_path / "huge.png").stat().st_size < 20_000  # tiny on disk, 187 MB as RGB
    seen = _watch_files(monkeypatch, forbid="huge.png")
    src = FolderSource(tmp_path)
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            keys = [src.draw(rng, (16, 16))[1] for _ in range(30)]
            raws = [src._sample_raw(rng) for _ in range(10)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20
    assert set(keys) == {"file:a.png", "file:b.jpg"}
    assert all(raw.shape == (16, 24, 3) for raw in raws)
    assert seen["open"]["huge.png"] == 1  # its header, once; never opened again
    assert "huge.png" not in seen["load"]
    assert src.skipped == 1
    assert "7900x7900" in src.rejected["huge.png"]
    assert "max_decoded_bytes" in src.rejected["huge.png"]
    ours = [w for w in caught if "skipping unreadable image" in str(w.message)]
    assert len(ours) == 1 and "max_decoded_bytes" in str(ours[0].message)
    with pytest.raises(ValueError, match="max_decoded_bytes"):
        FolderSource(tmp_path, max_decoded_bytes=0)


def test_folder_decodes_a_jpeg_over_the_budget_at_a_scale_that_fits(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300), (30, 160, 90)).save(tmp_path / "big.jpg", quality=95)
    _write(tmp_path / "small.png", (1, 2, 3))
    full = 400 * 300 * 3
    src = FolderSource(tmp_path, max_decoded_bytes=full // 3)  # 1/2 scale fits, 1/1 not
    shapes = {src._draw_raw(np.random.default_rng(i))[1].shape for i in range(20)}
    assert shapes == {(150, 200, 3), (16, 24, 3)} and src.skipped == 0
    img, _ = src.draw(np.random.default_rng(1), (280, 380))  # wants 1/1; gets 1/2, scaled up
    assert img.shape == (280, 380, 3) and src.skipped == 0
    # Too large even at 1/8 (50 x 38): skipped at any draw size.
    tight = FolderSource(tmp_path, max_decoded_bytes=50 * 38 * 3 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = {tight.draw(np.random.default_rng(i), (4, 4))[1] for i in range(20)}
    assert keys == {"file:small.png"}
    assert "at 1/8 scale" in tight.rejected["big.jpg"]


def test_folder_keeps_resized_large_files_and_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    for name, size in (("large.png", (120, 90)), ("small.png", (8, 6))):
        noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / name)
    monkeypatch.setattr(FolderSource, "CACHE_FROM_BYTES", 120 * 90 * 3)
    shapes = [(32, 24), (40, 40), (60, 80)] * 8
    fresh = FolderSource(tmp_path)
    fresh._fitted.max_bytes = 0  # keeps nothing: decodes on every draw
    rng_b = np.random.default_rng(3)
    wanted = [fresh.draw(rng_b, shape) for shape in shapes]
    seen = _watch_files(monkeypatch)
    src = FolderSource(tmp_path)
    rng_a = np.random.default_rng(3)
    for shape, (want, want_key) in zip(shapes, wanted, strict=True):
        got, key = src.draw(rng_a, shape)
        assert key == want_key and got.flags.writeable
        np.testing.assert_array_equal(got, want)
        got[:] = 0  # a caller's writes never reach what is kept
    assert rng_a.random() == rng_b.random()
    sizes = {shape for shape, (_, key) in zip(shapes, wanted, strict=True) if "large" in key}
    assert seen["load"]["large.png"] == len(sizes) < shapes.count((32, 24))  # once a size
    assert src._fitted.hits > 0
    with (tmp_path / "large.png").open("r+b") as fh:  # a changed file is decoded again
        Image.new("RGB", (120, 90), (250, 0, 0)).save(fh, format="PNG")
        fh.truncate()
    os.utime(tmp_path / "large.png", ns=(1, 1))
    while True:
        got, key = src.draw(rng_a, (32, 24))
        if key == "file:large.png":
            break
    np.testing.assert_array_equal(got, np.broadcast_to([250, 0, 0], (32, 24, 3)))
    assert pickle.loads(pickle.dumps(src))._fitted.hits == 0


# --- photos ------------------------------------------------------------------------------


def test_photos_source_returns_photographs() -> None:
    src = PhotosSource()
    assert len(src.images) == len(PhotosSource.NAMES)
    for photo in src.images:
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8
        assert min(photo.shape[:2]) >= 100 and float(photo.std()) > 10.0
    rng = np.random.default_rng(0)
    picks = {id(src._sample_raw(rng)) for _ in range(60)}
    assert len(picks) >= 6
    img = src.sample(rng, (64, 48))
    assert img.shape == (64, 48, 3) and img.dtype == np.uint8


def test_photos_samples_never_alias_the_cache() -> None:
    src = PhotosSource()
    photo = src.images[0]
    before = photo.copy()
    for seed in range(20):  # any crop the size of a whole photo or a full-width band
        out = src.sample(np.random.default_rng(seed), photo.shape[:2])
        assert out.flags.writeable
        out[:] = 0
    np.testing.assert_array_equal(photo, before)


def test_photos_without_scikit_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(ImportError, match=r'pip install "ssl-gym\[photos\]"'):
        PhotosSource()
    with pytest.raises(ImportError, match="scikit-image"):
        make_source("photos")


# --- arrays ------------------------------------------------------------------------------


def test_array_source_accepts_gray_rgba_float_and_pil() -> None:
    images = [
        np.full((10, 12), 77, dtype=np.uint8),
        np.full((10, 12, 4), [1, 2, 3, 0], dtype=np.uint8),
        np.full((10, 12, 3), 0.5, dtype=np.float32),
        np.full((10, 12, 1), 9, dtype=np.uint8),
        Image.new("L", (12, 10), 200),
    ]
    src = ArraySource(images)
    expected = [[77] * 3, [1, 2, 3], [128] * 3, [9] * 3, [200] * 3]
    for stored, colour in zip(src.images, expected, strict=True):
        assert stored.shape == (10, 12, 3) and stored.dtype == np.uint8
        np.testing.assert_array_equal(stored, np.broadcast_to(colour, (10, 12, 3)))
    rng = np.random.default_rng(0)
    colours = {tuple(src.sample(rng, (5, 5))[0, 0].tolist()) for _ in range(80)}
    assert colours == {tuple(c) for c in expected}


def test_array_source_copies_and_protects_its_images() -> None:
    original = np.zeros((6, 6, 3), dtype=np.uint8)
    src = ArraySource([original])
    original[:] = 255
    assert int(src.images[0].max()) == 0
    out = src.sample(np.random.default_rng(0), (6, 6))
    out[:] = 7
    assert int(src.images[0].max()) == 0
    assert src.spec == "arrays"


def test_array_source_batch_array() -> None:
    batch = np.stack([np.full((4, 4, 3), v, dtype=np.uint8) for v in (1, 2, 3)])
    assert len(ArraySource(batch).images) == 3


@pytest.mark.parametrize(
    ("images", "match"),
    [
        ([], "at least one"),
        (np.zeros((4, 4, 3), dtype=np.uint8), "sequence of images"),
        ([np.zeros((0, 4, 3), dtype=np.uint8)], "no pixels"),
        ([np.zeros((4, 4, 2), dtype=np.uint8)], r"\(H, W\)"),
        ([np.zeros(5, dtype=np.uint8)], r"\(H, W\)"),
    ],
)
def test_array_source_rejects_bad_input(images: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ArraySource(images)


# --- the resize cache of stored sources ---------------------------------------------------


def _gradients(count: int, shape: tuple[int, int] = (40, 60)) -> list[np.ndarray]:
    """Different pictures with detail everywhere, so every resize of each is distinct."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("kind", ["photos", "arrays"])
def test_cached_draws_are_the_uncached_bytes_and_numbers(kind: str) -> None:
    """A stored source draws what plain ``fit`` would, from the same generator numbers."""
    src = PhotosSource() if kind == "photos" else ArraySource(_gradients(3))
    for shape in [(32, 32), (224, 224), (20, 90), (32, 32), (224, 224)] * 3:
        for seed in range(4):
            cached, plain = np.random.default_rng(seed), np.random.default_rng(seed)
            image, key = src.draw(cached, shape)
            plain_key, raw = src._draw_raw(plain)
            np.testing.assert_array_equal(image, fit(raw, shape, plain))
            assert key == plain_key and cached.random() == plain.random()
    assert src.resized.hits > 0


def test_resize_cache_keeps_keys_sizes_and_arrays_apart() -> None:
    cache = images_base.ResizeCache()
    a, b = (_read_only_copy(im) for im in _gradients(2))
    outs = {
        (key, size): cache.resize(key, image, size)
        for key, image in (("a", a), ("b", b))
        for size in ((16, 24), (24, 16), (80, 120))
    }
    for (key, size), out in outs.items():
        image = a if key == "a" else b
        assert out.shape[:2] == size and not out.flags.writeable
        np.testing.assert_array_equal(out, images_base.resize_bilinear(image, size))
        assert cache.resize(key, image, size) is out  # a hit returns the kept result
    digests = {out.tobytes() for out in outs.values()}
    assert len(digests) == len(outs)
    # the same key with other pixels is resized afresh, never answered by the old entry
    other = _read_only_copy(255 - a)
    np.testing.assert_array_equal(
        cache.resize("a", other, (16, 24)), images_base.resize_bilinear(other, (16, 24))
    )
    # a writable picture could change in place: resized every time, never kept
    writable = a.copy()
    first = cache.resize("w", writable, (16, 24))
    writable[:] = 0
    assert int(cache.resize("w", writable, (16, 24)).max()) == 0 < int(first.max())


def _read_only_copy(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    out.flags.writeable = False
    return out


def test_resize_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    entry = 16 * 16 * 3
    cache = images_base.ResizeCache(max_bytes=3 * entry)
    pictures = [_read_only_copy(im) for im in _gradients(5)]
    for i, picture in enumerate(pictures[:3]):
        cache.resize(str(i), picture, (16, 16))
    cache.resize("0", pictures[0], (16, 16))  # used again: "1" is now the oldest
    cache.resize("3", pictures[3], (16, 16))
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    hits = cache.hits
    cache.resize("0", pictures[0], (16, 16))
    cache.resize("1", pictures[1], (16, 16))
    assert cache.hits == hits + 1  # "0" was kept, "1" was dropped
    cache.resize("big", pictures[4], (64, 64))  # larger than the whole cache: not kept
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_resize_cache_is_per_source_and_never_aliased() -> None:
    first, second = ArraySource(_gradients(1)), ArraySource(_gradients(1))
    assert first.resized is not second.resized
    before = first.draw(np.random.default_rng(0), (80, 120))[0].copy()
    for seed in range(6):  # full-width crops would be views of the kept picture
        out, _ = first.draw(np.random.default_rng(seed), (80, 120))
        assert out.flags.writeable
        out[:] = 0
    np.testing.assert_array_equal(first.draw(np.random.default_rng(0), (80, 120))[0], before)
    assert len(second.resized) == 0
    copied = pickle.loads(pickle.dumps(first))
    assert len(copied.resized) == 0 and copied.resized.max_bytes == first.resized.max_bytes
    np.testing.assert_array_equal(copied.draw(np.random.default_rng(0), (80, 120))[0], before)


# --- Hugging Face datasets ---------------------------------------------------------------


def test_hf_source_without_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    src = make_source("hf:someone/pictures")  # constructing needs nothing
    with pytest.raises(ImportError, match=r'pip install "ssl-gym\[datasets\]"'):
        src.sample(np.random.default_rng(0), (8, 8))


class _FakeImage:
    """Stands in for ``datasets.Image``."""


class _FakeValue:
    """Stands in for ``datasets.Value``."""


class _FakeDataset:
    def __init__(self, columns: dict[str, tuple[Any, list[Any]]]) -> None:
        self.features = {name: feature for name, (feature, _rows) in columns.items()}
        self._columns = {name: rows for name, (_feature, rows) in columns.items()}
        self.column_names = list(columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.values())))

    def __getitem__(self, row: int) -> dict[str, Any]:
        return {name: rows[row] for name, rows in self._columns.items()}


class _FakeDatasetDict(dict):  # type: ignore[type-arg]
    pass


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, data: Any) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("datasets")
    module.Image = _FakeImage  # type: ignore[attr-defined]
    module.DatasetDict = _FakeDatasetDict  # type: ignore[attr-defined]

    def load_dataset(name: str, split: str) -> Any:
        calls.append(("load_dataset", (name, split)))
        return data

    def load_from_disk(path: str) -> Any:
        calls.append(("load_from_disk", path))
        return data

    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    module.load_from_disk = load_from_disk  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def _png_bytes(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (9, 7), color).save(buf, format="PNG")
    return buf.getvalue()


def test_hf_source_reads_the_first_image_column(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _FakeDataset(
        {
            "label": (_FakeValue(), [0, 1]),
            "img": (
                _FakeImage(),
                [
                    Image.new("RGB", (9, 7), (1, 2, 3)),
                    {"bytes": _png_bytes((4, 5, 6)), "path": None},
                ],
            ),
            "other": (_FakeImage(), [None, None]),
        }
    )
    calls = _fake_datasets(monkeypatch, data)
    src = make_source("hf:someone/pictures:validation[:50%]")
    assert isinstance(src, HFDatasetSource) and src.split == "validation[:50%]"
    rng = np.random.default_rng(0)
    colours = {tuple(src.sample(rng, (3, 3))[0, 0].tolist()) for _ in range(20)}
    assert colours == {(1, 2, 3), (4, 5, 6)}
    assert src.column == "img"
    assert calls == [("load_dataset", ("someone/pictures", "validation[:50%]"))]


def test_hf_source_column_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _FakeDataset({"label": (_FakeValue(), [0]), "text": (_FakeValue(), ["a"])})
    _fake_datasets(monkeypatch, data)
    with pytest.raises(ValueError, match=r"no column of type datasets.Image.*label.*text"):
        HFDatasetSource("x").sample(np.random.default_rng(0), (4, 4))
    with pytest.raises(ValueError, match="no column 'pixels'"):
        HFDatasetSource("x", column="pixels").sample(np.random.default_rng(0), (4, 4))
    arrays = _FakeDataset({"label": (_FakeValue(), [np.full((5, 5), 50, dtype=np.uint8)])})
    _fake_datasets(monkeypatch, arrays)
    img = HFDatasetSource("x", column="label").sample(np.random.default_rng(0), (4, 4))
    assert int(img.min()) == int(img.max()) == 50


def test_hf_source_loads_a_saved_dataset_dict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    test_split = _FakeDataset({"image": (_FakeImage(), [Image.new("L", (4, 4), 99)])})
    calls = _fake_datasets(monkeypatch, _FakeDatasetDict(train=None, test=test_split))
    img = HFDatasetSource(str(tmp_path), split="test").sample(np.random.default_rng(0), (4, 4))
    assert int(img.min()) == int(img.max()) == 99
    assert calls == [("load_from_disk", str(tmp_path))]
    with pytest.raises(ValueError, match="no split 'validation'"):
        HFDatasetSource(str(tmp_path), split="validation").sample(np.random.default_rng(0), (4, 4))


def test_hf_source_empty_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_datasets(monkeypatch, _FakeDataset({"image": (_FakeImage(), [])}))
    with pytest.raises(ValueError, match="has no rows"):
        HFDatasetSource("x").sample(np.random.default_rng(0), (4, 4))


# --- make_source and the package ---------------------------------------------------------


def test_make_source_parses_specs(tmp_path: Path) -> None:
    assert isinstance(make_source("procedural"), ProceduralSource)
    assert isinstance(make_source("photos"), PhotosSource)
    folder = make_source(f"folder:{tmp_path}")
    assert isinstance(folder, FolderSource) and folder.root == tmp_path
    hf = make_source("hf:org/name")
    assert isinstance(hf, HFDatasetSource)
    assert (hf.name, hf.split, hf.column) == ("org/name", "train", None)
    hf = make_source("hf:org/name:test:picture")
    assert (hf.name, hf.split, hf.column) == ("org/name", "test", "picture")
    assert make_source("hf:a/b").spec == "hf:a/b:train"
    for spec in (
        "procedural",
        "photos",
        f"folder:{tmp_path}",
        "hf:a/b:train",
        "hf:a:test:img",
        "hf:a:train[:10]",
    ):
        assert make_source(spec).spec == spec
    source = ProceduralSource()
    assert make_source(source) is source


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nope",
        "Procedural",
        "folder:",
        "hf:",
        "hf::train",
        "hf:a:b:c:d",
        "hf:a::c",
        "arrays",
        42,
        None,
    ],
)
def test_make_source_rejects_bad_specs(spec: Any) -> None:
    with pytest.raises(ValueError, match="valid forms") as info:
        make_source(spec)
    for form in ("procedural", "photos", "folder:PATH", "hf:NAME[:SPLIT[:COLUMN]]"):
        assert form in str(info.value)


def test_sources_survive_pickling(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", (1, 2, 3))
    _write(tmp_path / "b.png", (4, 5, 6))
    arrays = [np.full((5, 5, 3), v, dtype=np.uint8) for v in (10, 20)]
    for src in (ProceduralSource(), PhotosSource(), FolderSource(tmp_path), ArraySource(arrays)):
        copy = pickle.loads(pickle.dumps(src))
        assert copy.spec == src.spec
        for seed in range(3):
            np.testing.assert_array_equal(
                copy.sample(np.random.default_rng(seed), (8, 8)),
                src.sample(np.random.default_rng(seed), (8, 8)),
            )


def test_package_exports() -> None:
    assert fit is images_base.fit and to_rgb_array is images_base.to_rgb_array
    for cls in (ProceduralSource, PhotosSource, FolderSource, HFDatasetSource, ArraySource):
        assert issubclass(cls, ImageSource)


def test_importing_images_is_cheap() -> None:
    code = (
        "import sys, ssl_gym.images\n"
        "print(sorted(m for m in ('skimage', 'datasets', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


class _Recording(ImageSource):
    """Wraps the procedural source; keeps the keys drawn since :meth:`clear`."""

    spec = "procedural"

    def __init__(self) -> None:
        self.source, self.keys = make_source("procedural"), []

    def clear(self) -> None:
        self.keys = []

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        image, key = self.source.draw(rng, shape)
        self.keys.append(key)
        return image, key


#: Families that draw one picture per draft: ``source_keys`` is exactly its key.
ONE_DRAW = ("Rotation", "Position", "Jigsaw", "FlipPatch", "Inpainting", "Correspondence")


def test_every_instance_records_the_keys_of_the_pictures_it_was_cut_from() -> None:
    from ssl_gym.envs import entries
    from ssl_gym.puzzles import build_puzzle

    for entry in entries():
        puzzle, source = build_puzzle(entry.family, entry.variant), _Recording()

        def last_draft(
            rng: np.random.Generator, src: _Recording, draft: Any = puzzle._draft
        ) -> Any:
            src.clear()  # so that source.keys are the draws of the accepted draft
            return draft(rng, src)

        puzzle._draft = last_draft  # type: ignore[method-assign]
        firsts = set()
        for seed in range(2):
            keys = puzzle.generate(np.random.default_rng(seed), source).metadata["source_keys"]
            assert isinstance(keys, list) and keys, entry.id
            assert all(isinstance(k, str) and k in source.keys for k in keys), entry.id
            if entry.family in ONE_DRAW:
                assert keys == source.keys, entry.id
            firsts.add(keys[0])
        assert len(firsts) == 2, f"{entry.id}: the scene's key does not change with the seed"
