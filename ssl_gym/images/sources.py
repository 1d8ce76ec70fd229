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

from ssl_gym.images.base import ImageSource, ResizeCache, fit, to_rgb_array

PHOTOS_HINT = 'the "photos" image source needs scikit-image: pip install "ssl-gym[photos]"'
DATASETS_HINT = 'the "hf" image source needs the datasets library: pip install "ssl-gym[datasets]"'

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
    A file that cannot be decoded, is truncated, or has more than ``max_pixels`` pixels
    is skipped: another file is drawn from the same generator, the file is never opened
    again, and :attr:`skipped` counts it. The first skip warns once.

    Args:
        root: The folder (``~`` is expanded).
        max_pixels: Largest width * height decoded; larger files are skipped (this also
            stops decompression bombs). Pillow's own limit, ``Image.MAX_IMAGE_PIXELS``,
            still applies on top.

    Raises:
        ValueError: If ``root`` is not a folder or ``max_pixels`` is not a positive int.
    """

    def __init__(self, root: str | os.PathLike[str], max_pixels: int = 64_000_000) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        self.spec = f"folder:{root}"
        self.max_pixels = max_pixels
        self.skipped = 0
        """Number of distinct files found unreadable (or too large) so far."""
        self._files: tuple[Path, ...] | None = None
        self._bad: set[int] = set()

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

        JPEGs are decoded at a reduced scale when they can be.
        """
        key, image = self._pick(rng, shape)
        return fit(image, shape, rng), key

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._pick(rng, None)[1]

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        return self._pick(rng, None)

    def _pick(
        self, rng: np.random.Generator, shape: tuple[int, int] | None
    ) -> tuple[str, np.ndarray]:
        files = self.files
        while len(self._bad) < len(files):
            index = int(rng.integers(len(files)))
            if index in self._bad:
                continue
            try:
                image = _read_image(files[index], self.max_pixels, shape)
                return f"file:{files[index].relative_to(self.root).as_posix()}", image
            except _DECODE_ERRORS as err:
                self._skip(index, files[index], err)
        raise RuntimeError(
            f"all {len(files)} image files under {str(self.root)!r} are unreadable or larger "
            f"than max_pixels={self.max_pixels}"
        )

    def _skip(self, index: int, path: Path, err: BaseException) -> None:
        self._bad.add(index)
        self.skipped += 1
        if self.skipped == 1:
            warnings.warn(
                f"skipping unreadable image {str(path)!r} ({type(err).__name__}: {err}); "
                f"further bad files under {str(self.root)!r} are skipped without a warning, "
                "and FolderSource.skipped counts the distinct files skipped so far",
                RuntimeWarning,
                stacklevel=4,
            )


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


def _read_image(path: Path, max_pixels: int, shape: tuple[int, int] | None) -> np.ndarray:
    """Decode one file fully, closing it before returning.

    With ``shape`` (height, width), a JPEG is decoded at the smallest of its 1/2, 1/4 and
    1/8 scales that still covers ``shape``: much faster for large photographs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                raise ValueError(f"{img.width}x{img.height} is over max_pixels={max_pixels}")
            if shape is not None and img.format == "JPEG":
                height, width = shape
                if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                    height, width = width, height  # stored on its side
                img.draft(img.mode, (width, height))
            img.load()
            return _pil_to_rgb(ImageOps.exif_transpose(img) or img)


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
