"""Image sources backed by real pictures: sample photographs, folders, datasets, arrays.

Everything heavy is lazy: scikit-image is imported, folders are listed and datasets are
loaded on the first :meth:`~ssl_gym.images.base.ImageSource.sample`, never at import.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import stat
import struct
import sys
import warnings
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps

from ssl_gym.images.base import (
    BoundedCache,
    ImageSource,
    Resize,
    ResizeCache,
    fit,
    fit_region,
    read_only,
    to_rgb_array,
)
from ssl_gym.images.resample import Region, resize_bilinear

PHOTOS_HINT = 'the "photos" image source needs scikit-image: pip install "ssl-gym[photos]"'
DATASETS_HINT = 'the "hf" image source needs the datasets library: pip install "ssl-gym[datasets]"'

#: Default :class:`FolderSource` ``max_decoded_bytes``: 128 MiB of RGB, a picture of
#: 44.7 million pixels (8192 x 5461).
MAX_DECODED_BYTES = 128 << 20

#: File name endings (lower case) that :class:`FolderSource` reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

_EXIF_ORIENTATION = 0x0112

# What a broken, truncated or hostile file can raise while Pillow decodes it.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _module_available(name: str) -> bool:
    """Whether ``import name`` could work, without importing it."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _read_only(image: np.ndarray) -> np.ndarray:
    arr = np.array(image, dtype=np.uint8, copy=True)
    arr.flags.writeable = False
    return arr


class _StoredSource(ImageSource):
    """A source that keeps pictures in memory; samples never alias them.

    Its pictures never change, so their resized copies are kept (:class:`ResizeCache`,
    one per source) and a picture drawn again at a size it was drawn at before is only
    cropped.
    """

    @cached_property
    def resized(self) -> ResizeCache:
        """This source's resized pictures."""
        return ResizeCache()

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        """A random picture fitted to ``shape`` (writable) and its key."""
        if type(self).sample is not ImageSource.sample:  # a subclass's own sample
            out, key = super().draw(rng, shape)
        else:
            key, raw = self._draw_raw(rng)
            out = fit(raw, shape, rng, self.resized.resizer(key))
        return (out if out.flags.writeable else out.copy()), key


# --- scikit-image's sample photographs ---------------------------------------------------


class PhotosSource(_StoredSource):
    """The photographs that ship inside scikit-image (no download needed).

    Needs the ``photos`` extra (scikit-image). The pictures are loaded once, on first use,
    and shared by every instance.
    """

    spec = "photos"
    NAMES: ClassVar[tuple[str, ...]] = (
        "astronaut",
        "camera",
        "chelsea",
        "coffee",
        "coins",
        "rocket",
        "motorcycle",
        "page",
        "text",
    )
    """The bundled photographs used, by their ``skimage.data`` names. All have a clear
    up and down (people, objects, buildings, writing); the bundled pictures without one
    (``moon``, ``hubble_deep_field``, microscopy) are left out, since rotation puzzles
    could not be solved on them."""

    def __init__(self) -> None:
        if not _module_available("skimage"):
            raise ImportError(PHOTOS_HINT)

    @property
    def images(self) -> tuple[np.ndarray, ...]:
        """The photographs, read-only uint8 (H, W, 3) arrays (loaded on first access)."""
        return _load_photos(self.NAMES)[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the photographs that loaded, in the order of :attr:`images`."""
        return _load_photos(self.NAMES)[1]

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._draw_raw(rng)[1]

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        images = self.images
        index = int(rng.integers(len(images)))
        return f"photo:{self.names[index]}", images[index]


@lru_cache(maxsize=4)
def _load_photos(names: tuple[str, ...]) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    try:
        data = importlib.import_module("skimage.data")
    except ImportError as err:
        raise ImportError(PHOTOS_HINT) from err
    images, loaded, failed = [], [], []
    for name in names:
        try:
            raw = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        except (AttributeError, ImportError, OSError, ValueError) as err:
            failed.append(f"{name} ({type(err).__name__})")
            continue
        images.append(_read_only(to_rgb_array(raw)))
        loaded.append(name)
    if failed:
        warnings.warn(
            f"scikit-image photographs not available: {', '.join(failed)}",
            RuntimeWarning,
            stacklevel=3,
        )
    if not images:
        raise RuntimeError("none of the scikit-image sample photographs could be loaded")
    return tuple(images), tuple(loaded)


# --- a folder of image files -------------------------------------------------------------


class FolderSource(ImageSource):
    """Every image file under a folder (recursively); bad files are skipped.

    Files ending in .jpg, .jpeg, .png, .webp or .bmp (any case) are used, listed on first
    use and sorted by relative path so that a seed picks the same file on every machine.
    A file that cannot be decoded, is truncated, has more than ``max_pixels`` pixels or
    would decode to more than ``max_decoded_bytes`` is skipped: another file is drawn
    from the same generator, the file is never opened again, :attr:`skipped` counts it
    and :attr:`rejected` says why. The first skip warns once.

    Both limits are read from the file's header, before anything is decoded, so a file
    that is tiny on disk but huge in memory (a 7.6 KB 1-bit PNG of 7900 x 7900 pixels
    decodes to 187 MB of RGB) costs one header read, once. A JPEG larger than the budget
    is decoded at its 1/2, 1/4 or 1/8 scale when one fits, and skipped only when even
    1/8 does not; whether a file is skipped never depends on the size it is drawn at.

    A large file drawn again at the same size is not decoded again: the resized picture
    of every file that decodes to at least :attr:`CACHE_FROM_BYTES` is kept (at most
    :attr:`CACHE_BYTES` per source, least recently used dropped first, never pickled)
    and used while the file's size, modification time and inode are unchanged. The
    draws give the same bytes and take the same numbers from the generator either way.

    Args:
        root: The folder (``~`` is expanded).
        max_pixels: Largest width * height decoded; larger files are skipped (this also
            stops decompression bombs). Pillow's own limit, ``Image.MAX_IMAGE_PIXELS``,
            still applies on top.
        max_decoded_bytes: Largest decode, in bytes of the RGB picture it gives
            (width * height * 3 at the scale decoded); larger files are skipped.

    Raises:
        ValueError: If ``root`` is not a folder or a limit is not a positive int.
    """

    CACHE_BYTES: ClassVar[int] = 32 << 20
    """Bytes of resized pictures of large files kept per source."""

    CACHE_FROM_BYTES: ClassVar[int] = 4 << 20
    """Decodes at least this large (in RGB bytes) have their resized pictures kept."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        max_pixels: int = 64_000_000,
        max_decoded_bytes: int = MAX_DECODED_BYTES,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        for name, value in (("max_pixels", max_pixels), ("max_decoded_bytes", max_decoded_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.spec = f"folder:{root}"
        self.max_pixels = max_pixels
        self.max_decoded_bytes = max_decoded_bytes
        self.skipped = 0
        """Number of distinct files found unreadable (or too large) so far."""
        self.rejected: dict[str, str] = {}
        """Each file skipped so far (its path under ``root``) and why."""
        self._files: tuple[Path, ...] | None = None
        self._bad: set[int] = set()
        self._fitted = _FittedCache(self.CACHE_BYTES)

    @property
    def files(self) -> tuple[Path, ...]:
        """The image files, sorted (listed on first access).

        Raises:
            ValueError: If the folder holds no image files.
        """
        if self._files is None:
            files = _list_images(self.root)
            if not files:
                exts = ", ".join(IMAGE_EXTENSIONS)
                raise ValueError(f"no image files ({exts}) under {str(self.root)!r}")
            self._files = files
        return self._files

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        """A random file fitted to ``shape``, keyed ``file:<path under root>``.

        JPEGs are decoded at a reduced scale when they can be; a large file drawn at this
        size before is not decoded again (see the class).
        """
        region, key = self.draw_region(rng, shape)
        return region.array(), key

    def draw_region(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[Region, str]:
        """:meth:`draw` not yet made: a file that is not kept is resized where it is cut."""
        files = self.files
        while len(self._bad) < len(files):
            index = int(rng.integers(len(files)))
            if index in self._bad:
                continue
            key = self._key(index)
            slot = (index, int(shape[0]), int(shape[1]))
            stamp = _stamp(files[index])
            kept = self._fitted.get(slot, stamp)
            if kept is not None:
                return Region.of(_refit(kept, shape, rng)), key
            image = self._read(index, shape)
            if image is None:
                continue
            if image.nbytes < self.CACHE_FROM_BYTES or stamp is None:
                return fit_region(image, shape, rng), key
            return Region.of(fit(image, shape, rng, self._fitted.resizer(slot, stamp))), key
        raise self._all_bad()

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._pick(rng)[1]

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        return self._pick(rng)

    def _key(self, index: int) -> str:
        return f"file:{self.files[index].relative_to(self.root).as_posix()}"

    def _pick(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """A random file at full size (a JPEG over the budget at a reduced scale)."""
        files = self.files
        while len(self._bad) < len(files):
            index = int(rng.integers(len(files)))
            if index in self._bad:
                continue
            image = self._read(index, None)
            if image is not None:
                return self._key(index), image
        raise self._all_bad()

    def _read(self, index: int, shape: tuple[int, int] | None) -> np.ndarray | None:
        """File ``index`` decoded, or None when it is skipped (and so never read again)."""
        path = self.files[index]
        try:
            return _read_image(path, self.max_pixels, shape, self.max_decoded_bytes)
        except _DECODE_ERRORS as err:
            self._skip(index, path, err)
            return None

    def _all_bad(self) -> RuntimeError:
        return RuntimeError(
            f"all {len(self.files)} image files under {str(self.root)!r} are unreadable or "
            f"larger than max_pixels={self.max_pixels} or "
            f"max_decoded_bytes={self.max_decoded_bytes}"
        )

    def _skip(self, index: int, path: Path, err: BaseException) -> None:
        self._bad.add(index)
        self.rejected[path.relative_to(self.root).as_posix()] = f"{type(err).__name__}: {err}"
        self.skipped += 1
        if self.skipped == 1:
            warnings.warn(
                f"skipping unreadable image {str(path)!r} ({type(err).__name__}: {err}); "
                f"further bad files under {str(self.root)!r} are skipped without a warning, "
                "FolderSource.skipped counts the distinct files skipped so far and "
                "FolderSource.rejected says why each was",
                RuntimeWarning,
                stacklevel=4,
            )


class _FittedCache(BoundedCache):
    """The resized pictures of a folder's large files, least recently used dropped first.

    An entry is found by ``(file index, height, width)`` of the draw and used only while
    the file's stamp (:func:`_stamp`) is the one it was made under. It holds the decoded
    picture's (height, width) and the read-only result of the resize :func:`fit` asked
    for, so that a later draw repeats ``fit`` exactly without decoding the file.
    """

    def get(
        self, slot: tuple[int, int, int], stamp: Any
    ) -> tuple[tuple[int, int], np.ndarray] | None:
        """The decoded (height, width) and resized picture kept for ``slot``, if current."""
        if stamp is None:
            return None
        return self._find(slot, lambda made_under: made_under == stamp)

    def resizer(self, slot: tuple[int, int, int], stamp: Any) -> Resize:
        """A :data:`Resize` that keeps what it makes under ``slot``."""

        def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            out = read_only(resize_bilinear(image, size))
            self._keep(slot, stamp, ((image.shape[0], image.shape[1]), out), out.nbytes)
            return out

        return resize


def _refit(
    kept: tuple[tuple[int, int], np.ndarray], shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """:func:`fit` of a decoded picture whose resize is kept, without the picture.

    ``fit`` reads only the picture's size before it resizes, so a stand-in of that size
    (no memory: one pixel broadcast) and a resize answering the kept result give the same
    bytes and the same draws from ``rng``.
    """
    (height, width), resized = kept
    stand_in = np.broadcast_to(np.zeros(3, dtype=np.uint8), (height, width, 3))
    return fit(stand_in, shape, rng, lambda _image, _size: resized)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a file's current contents from earlier ones: size, mtime, inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _list_images(root: Path) -> tuple[Path, ...]:
    """The image files under ``root``, sorted.

    Regular files only, never a FIFO or a device named like an image (opening one would
    block), and never a link that leads out of ``root``.
    """
    found = []
    inside = root.resolve()
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                path = Path(folder, name)
                try:
                    mode = path.stat().st_mode
                    target = path.resolve()
                except OSError:  # a broken link
                    continue
                if not stat.S_ISREG(mode) or not target.is_relative_to(inside):
                    continue
                found.append((path.relative_to(root).as_posix(), path))
    return tuple(path for _key, path in sorted(found))


class _TooLargeError(ValueError):
    """A file whose header says it is larger than a :class:`FolderSource` limit."""


def _jpeg_scale(size: tuple[int, int], request: tuple[int, int]) -> int:
    """The scale (1, 2, 4 or 8) ``JpegImageFile.draft(mode, request)`` decodes at."""
    scale = min(size[0] // max(1, request[0]), size[1] // max(1, request[1]))
    return next(s for s in (8, 4, 2, 1) if scale >= s or s == 1)


def _rgb_bytes(size: tuple[int, int], scale: int) -> int:
    """Bytes of the RGB picture a ``size`` (width, height) file gives at 1/``scale``."""
    return -(-size[0] // scale) * -(-size[1] // scale) * 3


def _read_image(
    path: Path, max_pixels: int, shape: tuple[int, int] | None, max_bytes: int
) -> np.ndarray:
    """Decode one file fully, closing it before returning.

    The limits are checked on the header, before anything is decoded: more than
    ``max_pixels`` pixels, or a decode of more than ``max_bytes`` RGB bytes at every scale
    the format can decode at, raises :class:`_TooLargeError`.

    With ``shape`` (height, width), a JPEG is decoded at the smallest of its 1/2, 1/4 and
    1/8 scales that still covers ``shape``: much faster for large photographs. A JPEG
    over ``max_bytes`` at that scale (or at full size, without ``shape``) is decoded at
    the smallest of those scales that fits.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                raise _TooLargeError(f"{img.width}x{img.height} is over max_pixels={max_pixels}")
            jpeg = img.format == "JPEG"
            scales = [
                s for s in ((1, 2, 4, 8) if jpeg else (1,)) if _rgb_bytes(img.size, s) <= max_bytes
            ]
            if not scales:
                smallest = "at 1/8 scale " if jpeg else ""
                raise _TooLargeError(
                    f"{img.width}x{img.height} (mode {img.mode}) decodes {smallest}to "
                    f"{_rgb_bytes(img.size, 8 if jpeg else 1)} bytes of RGB, over "
                    f"max_decoded_bytes={max_bytes}"
                )
            if jpeg:
                request = None
                if shape is not None:
                    height, width = shape
                    if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                        height, width = width, height  # stored on its side
                    request = (width, height)
                wanted = _jpeg_scale(img.size, request) if request else 1
                if wanted < scales[0]:  # over the budget at that scale: a smaller one
                    request = (max(1, img.width // scales[0]), max(1, img.height // scales[0]))
                if request is not None:
                    img.draft(img.mode, request)
                if img.width * img.height * 3 > max_bytes:  # the scale could not be had
                    raise _TooLargeError(
                        f"{img.width}x{img.height} JPEG decodes to {img.width * img.height * 3} "
                        f"bytes of RGB, over max_decoded_bytes={max_bytes}"
                    )
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # (a copy when there is none)
            return _pil_to_rgb(img)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image as uint8 RGB; 16-bit and float images are rescaled, not clipped."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / 65535.0 if top > 255.0 else (255.0 if 0.0 < top <= 1.0 else 1.0)
        return to_rgb_array(np.clip(arr * scale, 0.0, 255.0).round().astype(np.uint8))
    return to_rgb_array(img)


# --- a Hugging Face dataset --------------------------------------------------------------


class HFDatasetSource(ImageSource):
    """Images from a Hugging Face dataset (the ``datasets`` extra), loaded on first use.

    Args:
        name: A Hub dataset name, a local dataset folder, or a folder written by
            ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
        split: The split to read (slices such as ``train[:1000]`` work too).
        column: The image column; by default the first column of type ``datasets.Image``.

    Raises:
        ValueError: If ``name``, ``split`` or ``column`` is empty.
    """

    def __init__(self, name: str, split: str = "train", column: str | None = None) -> None:
        for label, value in (("name", name), ("split", split)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"the dataset {label} must be a non-empty string, got {value!r}")
        if column is not None and (not isinstance(column, str) or not column):
            raise ValueError(f"column must be a non-empty string or None, got {column!r}")
        self.name, self.split, self.column = name, split, column
        self.spec = ":".join(["hf", name, split] + ([column] if column else []))
        self._data: Any = None

    def _dataset(self) -> Any:
        if self._data is None:
            datasets = _import_datasets()
            data = _load_dataset(datasets, self.name, self.split)
            column = self.column or _image_column(data, datasets, self.name)
            if column not in data.column_names:
                raise ValueError(
                    f"dataset {self.name!r} has no column {column!r}; columns: {data.column_names}"
                )
            if len(data) == 0:
                raise ValueError(f"dataset {self.name!r} split {self.split!r} has no rows")
            self.column, self._data = column, data
        return self._data

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._draw_raw(rng)[1]

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        data = self._dataset()
        index = int(rng.integers(len(data)))
        return f"row:{index}", _value_to_rgb(data[index][self.column])


def _import_datasets() -> Any:
    try:
        return importlib.import_module("datasets")
    except ImportError as err:
        raise ImportError(DATASETS_HINT) from err


def _load_dataset(datasets: Any, name: str, split: str) -> Any:
    path = Path(name)
    saved = path.is_dir() and any(
        (path / marker).is_file() for marker in ("state.json", "dataset_dict.json")
    )
    if not saved:
        return datasets.load_dataset(name, split=split)
    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"dataset {name!r} has no split {split!r}; splits: {list(data)}")
        data = data[split]
    return data


def _image_column(data: Any, datasets: Any, name: str) -> str:
    for column, feature in data.features.items():
        if isinstance(feature, datasets.Image):
            return str(column)
    raise ValueError(
        f"dataset {name!r} has no column of type datasets.Image; columns: {data.column_names}. "
        "Name the column: hf:NAME:SPLIT:COLUMN"
    )


def _value_to_rgb(value: Any) -> np.ndarray:
    """A dataset cell (PIL image, undecoded {'bytes', 'path'} dict, or array) as RGB."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        with Image.open(source) as img:
            img.load()
            return _pil_to_rgb(img)
    if isinstance(value, Image.Image):
        return _pil_to_rgb(value)
    return to_rgb_array(np.asarray(value))


# --- arrays in memory --------------------------------------------------------------------


class ArraySource(_StoredSource):
    """Images held in memory, copied and checked at construction.

    Args:
        images: Arrays (gray, RGB, RGBA, or float in [0, 1]) or PIL images; a single
            4-D array (N, H, W, C) is read as N images.

    Raises:
        ValueError: If there are no images, or one has no pixels or an unusable shape.
    """

    spec = "arrays"

    def __init__(self, images: Sequence[np.ndarray | Image.Image] | np.ndarray) -> None:
        if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4):
            raise ValueError("ArraySource takes a sequence of images (or one (N, H, W, C) array)")
        arrays = []
        for i, image in enumerate(images):
            arr = to_rgb_array(image)
            if arr.shape[0] == 0 or arr.shape[1] == 0:
                raise ValueError(f"image {i} has no pixels (shape {arr.shape})")
            arrays.append(_read_only(arr))
        if not arrays:
            raise ValueError("ArraySource needs at least one image")
        self.images: tuple[np.ndarray, ...] = tuple(arrays)
        """The images, read-only uint8 (H, W, 3)."""

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._draw_raw(rng)[1]

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        index = int(rng.integers(len(self.images)))
        return f"array:{index}", self.images[index]
