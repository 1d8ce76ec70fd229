"""What the strong audit's probes see, and how their guesses become answers.

Features are computed from pixels only: a thumbnail, colour statistics and gradient
energy of each part (:func:`thumbnail`, :func:`statistics`), or of every observation image
(:func:`instance_features`). Probes that learn use scikit-learn's histogram gradient
boosting (the ``audit`` extra), imported on first use. A probe's per-part class
probabilities become an answer text with :func:`decode`, one way per :class:`Parts` kind:
the most likely right option, a one-to-one assignment of tiles to cells, the tile most
likely flipped, or the predicted label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ssl_gym.core import Instance, Parts

AUDIT_HINT = 'the strong audit needs scikit-learn: pip install "ssl-gym[audit]"'
THUMB = 8
"""Side of the thumbnail a part is reduced to."""
BINS = 8
"""Histogram bins per colour channel."""
_LUMA_MILLI = np.array([299, 587, 114], dtype=np.int32)


def thumbnail(image: np.ndarray, side: int = THUMB) -> np.ndarray:
    """The image box-filtered to ``side x side``, as floats in [0, 1], flattened."""
    small = Image.fromarray(np.ascontiguousarray(image)).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64).ravel() / 255.0


def statistics(image: np.ndarray) -> np.ndarray:
    """Colour statistics of an image: channel means and spreads, histograms, gradients.

    32 numbers: the mean and standard deviation of each channel, an ``BINS``-bin
    histogram of each channel, and the mean absolute horizontal and vertical luma
    gradient. These are what a matcher that never looks at layout compares. Every pixel
    counts (no subsampling), so that a turned or flipped picture has the same histogram
    and the same total gradient energy.
    """
    # Everything from per-channel level counts and integer sums, so the result does not
    # depend on the order of the pixels in memory: a turned copy of a picture gets
    # bit-identical statistics (float rounding would differ, and a learner can read the
    # turn from the last bits).
    px = image.reshape(-1, 3)
    counts = np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    levels = np.arange(256.0)
    mean = counts @ levels / len(px)
    std = np.sqrt(np.maximum((counts * (levels - mean[:, None]) ** 2).sum(axis=1) / len(px), 0))
    hist = counts.reshape(3, BINS, 256 // BINS).sum(axis=2).ravel()
    luma = image.astype(np.int32) @ _LUMA_MILLI
    pixels = 1000.0 * luma.size
    grads = (
        int(np.abs(np.diff(luma, axis=1)).sum()) / pixels,
        int(np.abs(np.diff(luma, axis=0)).sum()) / pixels,
    )
    return np.concatenate([mean / 255, std / 255, hist / len(px), grads]).astype(np.float64)


#: Slices of :func:`statistics` that the no-training matcher compares one at a time.
STAT_GROUPS = {
    "mean_std": slice(0, 6),
    "histogram": slice(6, 6 + 3 * BINS),
    "gradient": slice(6 + 3 * BINS, 8 + 3 * BINS),
    "all_stats": slice(0, 8 + 3 * BINS),
}


def sharpness(image: np.ndarray) -> float:
    """Mean luma gradient magnitude, the same at any turn of the picture.

    Exactly so at right angles and nearly so at any other, so it tells a resampled,
    blurred picture from a sharp one but not its tilt (the L1 energy of
    :func:`statistics` is larger for diagonal edges).
    """
    luma = image.astype(np.int32) @ _LUMA_MILLI
    luma = luma.astype(np.float64)
    # Scharr's kernels: the discrete gradient whose magnitude depends least on direction.
    dx = luma[:, 2:] - luma[:, :-2]
    dy = luma[2:] - luma[:-2]
    gx = 3.0 * dx[:-2] + 10.0 * dx[1:-1] + 3.0 * dx[2:]
    gy = 3.0 * dy[:, :-2] + 10.0 * dy[:, 1:-1] + 3.0 * dy[:, 2:]
    return float(np.sqrt(gx**2 + gy**2).mean() / 32000.0)


def frame_features(inst: Instance) -> np.ndarray:
    """What every observation image shows whatever its layout: size, colours, sharpness.

    Per image: height, width, mean colour and the pooled border frame (the weak audit's
    cheap statistics), the colour histograms and the :func:`sharpness`.
    """
    from ssl_gym.audit.weak import image_features

    rows = []
    for im in inst.images:
        stats = statistics(im)
        rows.append([*image_features(im), *stats[6 : 6 + 3 * BINS], sharpness(im)])
    # Rounded: the last bits of a float sum depend on the memory order of a turned copy.
    return np.round(np.asarray(rows, dtype=np.float64).ravel(), 9)


def classifier(seed: int = 0) -> Any:
    """A gradient-boosting classifier (scikit-learn), fixed settings and seed."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError as err:
        raise ImportError(AUDIT_HINT) from err
    return HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.15,
        max_leaf_nodes=15,
        max_bins=64,
        early_stopping=False,
        random_state=seed,
    )


def fit_predict(
    x_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities of the test rows, and the class names in column order."""
    from threadpoolctl import threadpool_limits

    classes = sorted(set(y_train))
    if len(classes) == 1:
        return np.ones((len(x_test), 1)), classes
    # One thread: the audit parallelises over ids in processes, and OpenMP threads that
    # spin on busy cores make gradient boosting many times slower.
    with threadpool_limits(limits=1):
        model = classifier().fit(x_train, np.asarray(y_train))
        return model.predict_proba(x_test), [str(c) for c in model.classes_]


def decode(parts: Parts, proba: np.ndarray, classes: Sequence[str], inst: Instance) -> str:
    """The answer text a probe gives, from its class probabilities for each part."""
    col = {c: i for i, c in enumerate(classes)}

    def p(label: str) -> np.ndarray:
        return proba[:, col[label]] if label in col else np.zeros(len(proba))

    if parts.kind == "choice":
        return (inst.choices or ())[int(np.argmax(p("1")))]
    if parts.kind == "label":
        return classes[int(np.argmax(proba[0]))]
    if parts.kind == "flip":
        k = int(np.argmax(1.0 - p("none")))
        direction = max(("horizontal", "vertical"), key=lambda d: float(p(d)[k]))
        return f"{k + 1} {direction}"
    return assign_cells(proba, classes)


def assign_cells(proba: np.ndarray, classes: Sequence[str]) -> str:
    """The permutation answer (tile number per cell) that best fits tile-to-cell odds."""
    from scipy.optimize import linear_sum_assignment

    n = proba.shape[0]
    cost = np.full((n, n), 50.0)  # tile x cell; cells never seen in training stay unlikely
    for j, c in enumerate(classes):
        cost[:, int(c)] = -np.log(proba[:, j] + 1e-9)
    tiles, cells = linear_sum_assignment(cost)
    per_cell = np.empty(n, dtype=int)
    per_cell[cells] = tiles + 1
    return ",".join(map(str, per_cell))
