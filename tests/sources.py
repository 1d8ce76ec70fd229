"""Tiny deterministic image sources shared by the family tests."""

from __future__ import annotations

import numpy as np

from ssl_gym.images.base import ImageSource


class NoiseSource(ImageSource):
    """Uniform noise from the caller's generator; remembers every image it made."""

    spec = "noise"

    def __init__(self) -> None:
        self.made: list[np.ndarray] = []

    @property
    def last(self) -> np.ndarray | None:
        """The most recent image (``None`` before the first)."""
        return self.made[-1] if self.made else None

    def _sample_raw(self, rng: np.random.Generator) -> np.ndarray:
        return self._paint(rng, (32, 32))

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        image = self._paint(rng, shape)
        self.made.append(image)
        return image

    def _paint(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


class ConstantSource(NoiseSource):
    """One random flat colour per image."""

    spec = "constant"

    def _paint(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        return np.broadcast_to(colour, (*shape, 3)).copy()
