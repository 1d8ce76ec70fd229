"""Helpers shared by the families that ask "which views come from the same picture?".

Contrastive, Similarity and OddTile decide "same / different image" by the identity of
the source picture (the key of :meth:`ssl_gym.images.base.ImageSource.draw`), never by
a pixel difference: :func:`draw_distinct` draws pictures with pairwise different keys.
To keep colour statistics from telling the answer, :func:`view_statistics` summarises a
view as a matcher that never looks at layout would, and :func:`matched_index` picks,
among candidate wrong views, the one whose statistical gap to the reference is nearest a
target gap (the right view's), so that wrong views are neither closer to the reference
nor farther from it than the right one. :func:`similar_group` draws pictures of similar
colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssl_gym.augment import LUMA
from ssl_gym.core import Rejected
from ssl_gym.images.base import ImageSource

THUMB = 32
"""Side of the thumbnails whose colour histograms rank a pool of images."""
BINS = 8
"""Histogram bins per channel in :func:`view_statistics`."""
DRAW_TRIES = 20
"""Draws allowed per picture before :func:`draw_distinct` gives up."""
WEIGHTS = np.concatenate([np.ones(6), np.full(3 * BINS, 0.25), np.full(2, 6.0)])
"""Weights of :func:`view_statistics`: each group (means and spreads, histograms,
gradients) counts about as much as the others in :func:`matched_index`."""


def draw_distinct(
    rng: np.random.Generator,
    source: ImageSource,
    shape: tuple[int, int],
    count: int,
    avoid: Sequence[str] = (),
    distinct: bool = True,
) -> tuple[list[np.ndarray], list[str]]:
    """``count`` pictures whose source keys are not in ``avoid``.

    With ``distinct``, their keys also differ from each other's. A draw whose key is
    taken is drawn again, at most :data:`DRAW_TRIES` times a picture.

    Raises:
        Rejected: ``too_few_distinct_sources`` when a picture needs more draws than that.
    """
    images: list[np.ndarray] = []
    keys: list[str] = []
    taken = set(avoid)
    for _ in range(count):
        for _ in range(DRAW_TRIES):
            image, key = source.draw(rng, shape)
            if key not in taken:
                break
        else:
            raise Rejected("too_few_distinct_sources")
        if distinct:
            taken.add(key)
        images.append(image)
        keys.append(key)
    return images, keys


def view_statistics(image: np.ndarray) -> np.ndarray:
    """Channel means and spreads, ``BINS``-bin channel histograms and luma gradients.

    Measured on every second pixel of every second row, values in about [0, 1].
    """
    px = image[::2, ::2].astype(np.float64)
    flat = px.reshape(-1, 3)
    hist = [np.bincount((flat[:, c] * BINS / 256).astype(int), minlength=BINS) for c in range(3)]
    luma = px @ LUMA
    grads = (np.abs(np.diff(luma, axis=1)).mean() / 64, np.abs(np.diff(luma, axis=0)).mean() / 64)
    return WEIGHTS * np.concatenate(
        [flat.mean(axis=0) / 255, flat.std(axis=0) / 128, np.concatenate(hist) / len(flat), grads]
    )


def matched_index(reference: np.ndarray, target: np.ndarray, pool: Sequence[np.ndarray]) -> int:
    """The pool member whose gap to ``reference`` is nearest ``target``'s gap.

    All three are :func:`view_statistics` vectors; see :func:`nearest_gap`.
    """
    return nearest_gap(reference, np.abs(target - reference), pool)


def nearest_gap(reference: np.ndarray, gap: np.ndarray, pool: Sequence[np.ndarray]) -> int:
    """The pool member whose gap to ``reference`` is nearest ``gap``.

    Gaps are absolute differences per statistic, compared by their L1 distance.
    """
    gaps = np.abs(np.stack(pool) - reference)
    return int(np.argmin(np.abs(gaps - gap).sum(axis=1)))


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """Normalised 4x4x4 RGB histograms of a stack of uint8 images, shape ``(n, 64)``."""
    n = len(images)
    q = images.reshape(n, -1, 3) >> 6
    bins = (q[..., 0].astype(np.int64) * 16 + q[..., 1] * 4 + q[..., 2]) + 64 * np.arange(n)[
        :, None
    ]
    counts = np.bincount(bins.ravel(), minlength=64 * n).reshape(n, 64)
    return counts / counts.sum(axis=1, keepdims=True)


def similar_group(
    rng: np.random.Generator,
    source: ImageSource,
    count: int,
    pool: int,
    shape: tuple[int, int],
) -> tuple[list[np.ndarray], list[str]]:
    """``count`` pictures of similar colours with distinct source keys, in random order.

    ``pool`` pictures are drawn as thumbnails, each from its own generator seeded from
    ``rng``; one of them, picked at random, and its nearest in 4x4x4 colour histogram (L1)
    form the group, skipping any thumbnail whose source key is already in the group. The
    group is drawn again from the same seeds at ``shape``, in shuffled order, so every
    member is distributed alike: a puzzle that then picks one member at random (the true
    one) does not make it any more or less typical than the others.

    Returns:
        The pictures and their source keys, in the same order.

    Raises:
        Rejected: ``too_few_distinct_images`` if the pool holds fewer than ``count`` keys.
    """
    seeds = rng.integers(0, 2**63, size=pool)
    drawn = [source.draw(np.random.default_rng(s), (THUMB, THUMB)) for s in seeds]
    hists = colour_histograms(np.stack([image for image, _ in drawn]))
    centre = int(rng.integers(pool))
    distance = np.abs(hists - hists[centre]).sum(axis=1)
    distance[centre] = -1.0
    group: list[int] = []
    for i in np.argsort(distance, kind="stable"):
        if drawn[i][1] not in {drawn[j][1] for j in group}:
            group.append(int(i))
        if len(group) == count:
            order = rng.permutation(group)
            full = [source.draw(np.random.default_rng(seeds[i]), shape) for i in order]
            return [image for image, _ in full], [key for _, key in full]
    raise Rejected("too_few_distinct_images")
