"""The image source interface: where puzzles get their pictures from."""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ssl_gym.images.resample import Region, resize_bilinear


class ImageSource(ABC):
    """A source of RGB images; puzzles call :meth:`draw` with their own generator.

    Subclasses implement :meth:`_sample_raw`; :meth:`sample` fits the result to the
    requested shape (resize the shorter side, then a random crop). Sources that can
    render at any size directly (the procedural one) override :meth:`draw`.

    Every draw says which source picture it came from (:meth:`draw`): a file, a row, a
    scene seed, a photograph's name. Every instance records the keys of the pictures it
    was cut from (``metadata["source_keys"]``), and families whose answer means "from
    the same image" decide it by that identity, never by a pixel difference. A subclass
    that implements only :meth:`_sample_raw` is identified by a hash of the picture's
    bytes; the sources of the package override :meth:`_draw_raw` with their own keys.

    Puzzles that keep only a window of a large scene call :meth:`draw_region`, which
    resizes a held picture (a file, a row) only where it is cut, to the same bytes.
    """

    spec: str = "?"
    """The spec string that selects this source (``procedural``, ``folder:PATH``, ...)."""

    @abstractmethod
    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        """One image of any size, uint8 (H, W, 3)."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """A random image as uint8 (shape[0], shape[1], 3)."""
        if type(self).draw is ImageSource.draw:
            return fit(self._draw_raw(rng)[1], shape, rng)
        return self.draw(rng, shape)[0]

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        """A random image as in :meth:`sample`, with the identity of its source picture.

        A subclass that overrides only :meth:`sample` still works: its images are keyed
        by their own bytes, so every distinct image counts as its own source picture.

        Returns:
            ``(image, key)``: the uint8 (shape[0], shape[1], 3) image and a string equal
            for two draws exactly when they were cut from the same source picture.
        """
        if type(self).sample is not ImageSource.sample:
            image = self.sample(rng, shape)
            return image, content_key(image)
        key, raw = self._draw_raw(rng)
        return fit(raw, shape, rng), key

    def draw_region(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[Region, str]:
        """:meth:`draw` not yet made: a :class:`~ssl_gym.images.resample.Region` and the key.

        For puzzles that keep only windows of what they draw. Cutting the whole region
        gives the bytes :meth:`draw` gives, with the same draws from ``rng``; a source
        that resizes a picture it holds (a file, a row) resizes only the windows cut.
        """
        if type(self).draw is ImageSource.draw and type(self).sample is ImageSource.sample:
            key, raw = self._draw_raw(rng)
            return fit_region(raw, shape, rng), key
        image, key = self.draw(rng, shape)
        return Region.of(image), key

    def _draw_raw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """One source picture and its key; by default the key hashes the picture's bytes."""
        raw = self._sample_raw(rng)
        return content_key(raw), raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def content_key(image: np.ndarray) -> str:
    """A key for a picture known only by its pixels: ``sha1:`` of its shape and bytes."""
    arr = np.ascontiguousarray(image)
    digest = hashlib.sha1(repr(arr.shape).encode(), usedforsecurity=False)
    digest.update(arr.tobytes())
    return "sha1:" + digest.hexdigest()[:16]


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array (gray, RGB, RGBA, float in [0, 1]) as uint8 (H, W, 3)."""
    if isinstance(image, Image.Image):  # (convert copies even an RGB image)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype.kind == "f":
        scale = 255.0 if arr.size and float(arr.max()) <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image must be (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


Resize = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
"""A function resizing an image to ``(height, width)``, as :func:`fit` calls it."""


def _fit_plan(
    size: tuple[int, int], shape: tuple[int, int], rng: np.random.Generator
) -> tuple[tuple[int, int], int, int]:
    """Where :func:`fit` puts a ``size`` picture: the resized size, the crop's top, left."""
    h, w = size
    th, tw = shape
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    top = int(rng.integers(0, nh - th + 1))
    left = int(rng.integers(0, nw - tw + 1))
    return (nh, nw), top, left


def fit(
    image: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    resize: Resize = resize_bilinear,
) -> np.ndarray:
    """Resize so the image covers ``shape`` (aspect kept), then crop at a random offset.

    ``resize`` does the resizing (a :class:`ResizeCache`'s, to reuse earlier results);
    the generator draws the same numbers whichever it is.
    """
    th, tw = shape
    if image.shape[:2] != (th, tw):
        (nh, nw), top, left = _fit_plan(image.shape[:2], shape, rng)
        if (nh, nw) != image.shape[:2]:
            image = resize(image, (nh, nw))
        image = image[top : top + th, left : left + tw]
    return np.ascontiguousarray(image, dtype=np.uint8)


def fit_region(image: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> Region:
    """:func:`fit` not yet made: the same draws from ``rng``, pixels made where cut.

    ``fit_region(image, shape, rng).array()`` is ``fit(image, shape, rng)``, and a cut of
    it costs the resize of the cut alone (:func:`~ssl_gym.images.resample.resize_window`).
    """
    if image.shape[:2] == tuple(shape):
        return Region.of(image)
    resized, top, left = _fit_plan(image.shape[:2], shape, rng)
    if resized == image.shape[:2]:
        return Region.of(image[top : top + shape[0], left : left + shape[1]])
    return Region(image, shape, resized, (top, left))


class BoundedCache:
    """Values kept under slots, bounded by their bytes, least recently used dropped first.

    Each value is kept with a tag that a lookup must accept (the very array it was made
    from, a file's stamp), so a stale entry is never answered. Thread-safe; pickled (or
    copied) empty, since what it holds is cheap to make again.
    """

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._empty()

    def _empty(self) -> None:
        self.hits = 0
        """How many lookups were answered from the cache."""
        self._entries: OrderedDict[Any, tuple[Any, Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by the values kept."""
        return self._bytes

    def _find(self, slot: Any, accept: Callable[[Any], bool]) -> Any | None:
        """The value kept under ``slot`` if ``accept`` takes its tag, else ``None``."""
        with self._lock:
            entry = self._entries.get(slot)
            if entry is None or not accept(entry[0]):
                return None
            self._entries.move_to_end(slot)
            self.hits += 1
            return entry[1]

    def _keep(self, slot: Any, tag: Any, value: Any, nbytes: int) -> None:
        """Keep ``value`` under ``slot`` (not if it alone is over the bound)."""
        if nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(slot, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[slot] = (tag, value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Drop every value."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (or copied) empty."""
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_bytes = state["max_bytes"]
        self._empty()


def read_only(image: np.ndarray) -> np.ndarray:
    """``image`` itself if it is read-only, else a read-only copy."""
    if image.flags.writeable:
        image = image.copy()
        image.flags.writeable = False
    return image


class ResizeCache(BoundedCache):
    """The resized copies of a source's stored pictures, least recently used dropped first.

    A source whose pictures never change (the ``photos``, arrays) resizes each picture
    to the same few sizes again and again (``Similarity``'s hard negatives draw every
    picture as a thumbnail, then again at full size); this keeps the results, bounded by
    ``max_bytes``. An entry is found by the picture's key and the size, and used only if
    it was made from the very same array (``is``), so a key drawn with other pixels is
    resized afresh; writable arrays, which could change in place, are never kept. The
    results are the same bytes as :func:`resize_bilinear`'s, read-only and shared:
    callers copy before writing (``fit`` crops, then :meth:`ImageSource.draw` copies).
    """

    def resizer(self, key: str) -> Resize:
        """A :data:`Resize` for the picture ``key``, for :func:`fit`."""
        return lambda image, size: self.resize(key, image, size)

    def resize(self, key: str, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``image``, the picture ``key``, resized to ``size`` (height, width), read-only."""
        slot = (key, int(size[0]), int(size[1]))
        kept = self._find(slot, lambda made_from: made_from is image)
        if kept is not None:
            return kept
        out = read_only(resize_bilinear(image, size))
        if not image.flags.writeable:
            self._keep(slot, image, out, out.nbytes)
        return out
