"""Image augmentations shared by the families that compare views of images.

SimCLR-style operations (random resized crop, colour jitter, grayscale, Gaussian blur,
horizontal flip) on uint8 ``(H, W, 3)`` arrays, fast enough to run online: colour jitter
is one affine map of the RGB values (brightness, contrast, saturation and an approximate
hue rotation composed into a 3 x 3 matrix and an offset), resizing and blurring use PIL.

:func:`augment` chains them with the named settings of :data:`STRENGTHS` and returns the
names of the operations it applied. :func:`texture` randomises a view's sharpness, grain
and tone, :func:`random_levels` its levels per channel, and :func:`gray_alike` keeps a
grayscale picture from standing out among colour ones. All randomness comes from the
``np.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

#: Luma weights (ITU-R 601-2), as PIL's ``convert("L")`` and torchvision use.
LUMA = np.array([0.299, 0.587, 0.114])

#: Blur radii are given for 224-pixel images and scaled with the output size.
REFERENCE_SIZE = 224


@dataclass(frozen=True, kw_only=True)
class AugmentParams:
    """Settings of the :func:`augment` pipeline; each probability is per operation."""

    scale: tuple[float, float] = (0.2, 1.0)
    """Range of the crop's area as a fraction of the image area."""
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Range of the crop's aspect ratio (width / height), sampled log-uniformly."""
    flip_p: float = 0.5
    """Probability of a horizontal flip."""
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    """Colour jitter strengths: brightness, contrast, saturation, hue."""
    jitter_p: float = 0.8
    """Probability of colour jitter."""
    gray_p: float = 0.2
    """Probability of converting to grayscale."""
    blur_p: float = 0.5
    """Probability of a Gaussian blur."""
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    """Range of the blur's standard deviation in pixels of a 224-pixel image."""

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


#: SimCLR's colour jitter at full strength (``s = 1``): brightness, contrast and
#: saturation 0.8, hue 0.2. Without it, two views of one image are told from views of two
#: images by their colour histograms alone (SimCLR, section 3).
SIMCLR_JITTER = (0.8, 0.8, 0.8, 0.2)

#: The named pipelines. ``weak``: mild crop and colour; ``strong``: SimCLR's crop with
#: half-strength colour jitter (``s = 0.5``); ``weak_crop``: the mild crop with SimCLR's
#: full colour distortion (jitter 0.8/0.8/0.8/0.2 with p=0.8, grayscale p=0.2, blur
#: p=0.5); ``simclr``: the ``strong`` crop (20-100 % of the area) with that distortion.
STRENGTHS: dict[str, AugmentParams] = {
    "weak": AugmentParams(
        scale=(0.6, 1.0), jitter=(0.2, 0.2, 0.2, 0.02), jitter_p=0.5, gray_p=0.0, blur_p=0.0
    ),
    "strong": AugmentParams(),
    "weak_crop": AugmentParams(scale=(0.6, 1.0), jitter=SIMCLR_JITTER),
    "simclr": AugmentParams(jitter=SIMCLR_JITTER),
}


# --- geometric ---------------------------------------------------------------------------


def _shape(out_size: int | tuple[int, int]) -> tuple[int, int]:
    return (out_size, out_size) if isinstance(out_size, int) else (out_size[0], out_size[1])


def sample_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A random crop window ``(top, left, height, width)`` as torchvision draws it.

    Ten tries at an area fraction in ``scale`` and a log-uniform aspect ratio in
    ``ratio``; if none fits, the largest centred crop with the ratio clamped to ``ratio``.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    aspect = min(max(width / height, ratio[0]), ratio[1])
    if width / height < aspect:  # too tall for the ratio: full width
        w, h = width, round(width / aspect)
    else:  # too wide (or within the ratio): full height
        w, h = round(height * aspect), height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    out_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Crop a random window (see :func:`sample_crop_box`) and resize it to ``out_size``."""
    box = sample_crop_box(rng, image.shape[0], image.shape[1], scale, ratio)
    return crop_resize(image, box, out_size)


def crop_resize(
    image: np.ndarray, box: tuple[int, int, int, int], out_size: int | tuple[int, int]
) -> np.ndarray:
    """The window ``(top, left, height, width)`` of ``image`` resized to ``out_size`` (bilinear)."""
    top, left, h, w = box
    oh, ow = _shape(out_size)
    pil = Image.fromarray(image).resize(
        (ow, oh), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
    )
    return np.asarray(pil)


def hflip(image: np.ndarray) -> np.ndarray:
    """The image mirrored left to right (a contiguous copy)."""
    return np.ascontiguousarray(image[:, ::-1])


# --- photometric -------------------------------------------------------------------------


# The constants of the jitter's maps, made once (the same values as made per call).
_EYE = np.eye(3)
_GRAY_AXIS = np.full(3, 1.0 / math.sqrt(3.0))
_AXIS_CROSS = np.array(
    [
        [0.0, -_GRAY_AXIS[2], _GRAY_AXIS[1]],
        [_GRAY_AXIS[2], 0.0, -_GRAY_AXIS[0]],
        [-_GRAY_AXIS[1], _GRAY_AXIS[0], 0.0],
    ]
)
_AXIS_OUTER = np.outer(_GRAY_AXIS, _GRAY_AXIS)
_TO_GRAY = np.outer(np.ones(3), LUMA)
for _constant in (_EYE, _GRAY_AXIS, _AXIS_CROSS, _AXIS_OUTER, _TO_GRAY):
    _constant.setflags(write=False)
del _constant


def _hue_matrix(turns: float) -> np.ndarray:
    """Rotation of RGB space about the gray axis by ``turns`` of a full circle."""
    theta = 2.0 * math.pi * turns
    return (
        math.cos(theta) * _EYE
        + math.sin(theta) * _AXIS_CROSS
        + (1.0 - math.cos(theta)) * _AXIS_OUTER
    )


def _jitter_step(
    op: int, factor: float, m: np.ndarray, t: np.ndarray, mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compose one jitter operation onto the affine map ``x -> m @ x + t``."""
    luma = LUMA
    if op == 0:  # brightness: scale towards black
        return factor * m, factor * t
    if op == 1:  # contrast: scale towards the mean gray level of the (current) image
        gray = float(luma @ (m @ mean + t))
        return factor * m, factor * t + (1.0 - factor) * gray
    if op == 2:  # saturation: blend with the pixel's own gray level
        blend = factor * _EYE + (1.0 - factor) * _TO_GRAY
    else:  # hue: rotate about the gray axis (an approximation of an HSV hue shift)
        blend = _hue_matrix(factor)
    return blend @ m, blend @ t


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
) -> np.ndarray:
    """Random brightness, contrast, saturation and hue changes, in a random order.

    Factors are drawn as torchvision does (``uniform(1 - s, 1 + s)``, hue a shift in
    ``[-hue, hue]`` turns). The four operations are composed into one affine map of the
    RGB values and applied once by PIL, rounding and clipping only at the end; the hue
    shift is a rotation about the gray axis, close to but not exactly an HSV hue shift.
    """
    factors = [rng.uniform(max(0.0, 1.0 - s), 1.0 + s) for s in (brightness, contrast, saturation)]
    factors.append(rng.uniform(-hue, hue))
    pil = Image.fromarray(image)
    m, t = _EYE, np.zeros(3)
    mean = _channel_means(image)
    for op in rng.permutation(4):
        m, t = _jitter_step(int(op), float(factors[op]), m, t, mean)
    matrix = np.concatenate([m, t[:, None]], axis=1).ravel()
    return np.asarray(pil.convert("RGB", matrix=tuple(float(v) for v in matrix)))


def _channel_means(image: np.ndarray) -> np.ndarray:
    """Mean of each RGB channel: the channel sums over the pixel count.

    The sums are of integers below ``2**53`` in float64, so exact in any order (a
    matrix product, 6x faster than a strided integer sum or PIL's histogram).
    """
    pixels = image.reshape(-1, 3)
    return np.ones(len(pixels)) @ pixels.astype(np.float64) / len(pixels)


def grayscale(image: np.ndarray) -> np.ndarray:
    """The luma of the image (PIL's ``L`` mode), repeated in all three channels."""
    return np.asarray(Image.fromarray(image).convert("L").convert("RGB"))


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``radius`` pixels (PIL's filter)."""
    if radius <= 0:
        return image
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


# --- pipelines ---------------------------------------------------------------------------


def _params(strength: str | AugmentParams) -> AugmentParams:
    if isinstance(strength, AugmentParams):
        return strength
    if strength not in STRENGTHS:
        valid = ", ".join(repr(s) for s in STRENGTHS)
        raise ValueError(f"strength={strength!r} is not valid; choose one of: {valid}")
    return STRENGTHS[strength]


def photometric(
    image: np.ndarray,
    rng: np.random.Generator,
    strength: str | AugmentParams,
    blur_scale: float = 1.0,
) -> tuple[np.ndarray, list[str]]:
    """Colour jitter, grayscale and blur (no geometry), each with its probability.

    Args:
        image: uint8 ``(H, W, 3)``.
        rng: the source of randomness.
        strength: a name in :data:`STRENGTHS` or explicit :class:`AugmentParams`.
        blur_scale: multiplies the blur radius (``size / 224`` for a ``size``-pixel scene).

    Returns:
        The augmented image and the names of the operations applied, in order.
    """
    p = _params(strength)
    applied: list[str] = []
    draws = rng.random(3)
    if draws[0] < p.jitter_p:
        image = color_jitter(image, rng, *p.jitter)
        applied.append("color_jitter")
    if draws[1] < p.gray_p:
        image = grayscale(image)
        applied.append("grayscale")
    if draws[2] < p.blur_p:
        image = gaussian_blur(image, rng.uniform(*p.blur_sigma) * blur_scale)
        applied.append("blur")
    return image, applied


def augment(
    image: np.ndarray,
    rng: np.random.Generator,
    strength: str | AugmentParams,
    out_size: int | tuple[int, int],
) -> tuple[np.ndarray, list[str]]:
    """SimCLR's view pipeline: resized crop, flip, jitter, grayscale, blur.

    Args:
        image: uint8 ``(H, W, 3)``.
        rng: the source of randomness.
        strength: ``"weak"`` (crop 60-100 % of the area, mild jitter, flip), ``"strong"``
            (SimCLR: crop 20-100 %, jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2,
            blur p=0.5), ``"weak_crop"`` or ``"simclr"`` (those crops with SimCLR's full
            colour distortion, jitter 0.8/0.8/0.8/0.2) or explicit :class:`AugmentParams`.
        out_size: side, or ``(H, W)``, of the view.

    Returns:
        The view, uint8 ``(H, W, 3)``, and the names of the operations applied, in order
        (``crop`` always first).
    """
    view, applied, _ = augment_with_box(image, rng, strength, out_size)
    return view, applied


def augment_with_box(
    image: np.ndarray,
    rng: np.random.Generator,
    strength: str | AugmentParams,
    out_size: int | tuple[int, int],
) -> tuple[np.ndarray, list[str], tuple[int, int, int, int]]:
    """:func:`augment`, also returning the crop window ``(top, left, height, width)``."""
    p = _params(strength)
    box = sample_crop_box(rng, image.shape[0], image.shape[1], p.scale, p.ratio)
    view = crop_resize(image, box, out_size)
    applied = ["crop"]
    if rng.random() < p.flip_p:
        view = hflip(view)
        applied.append("hflip")
    view, more = photometric(view, rng, p, blur_scale=min(_shape(out_size)) / REFERENCE_SIZE)
    return view, applied + more, box


# --- texture randomisation ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TextureParams:
    """Settings of :func:`texture`: per-view randomisation of sharpness, noise and tone."""

    rescale: tuple[float, float] = (0.4, 1.0)
    """Range of the factor the view is shrunk by and then resized back (bilinear)."""
    blur: tuple[float, float] = (0.0, 1.5)
    """Range of the Gaussian blur's standard deviation in pixels."""
    noise: tuple[float, float] = (0.0, 14.0)
    """Range of the standard deviation of additive Gaussian noise (0-255 levels)."""
    gamma: tuple[float, float] = (0.6, 1.6)
    """Range of the tone curve's exponent, sampled log-uniformly."""


STRONG_TEXTURE = TextureParams(
    rescale=(0.3, 1.0), blur=(0.0, 1.5), noise=(0.0, 20.0), gamma=(0.5, 2.0)
)
"""Wider ranges for views that are compared with each other (OddTile, Similarity): the
sharpness of two crops of one picture region must not tell them apart from two crops of
two pictures."""


def texture(
    image: np.ndarray, rng: np.random.Generator, params: TextureParams | None = None
) -> np.ndarray:
    """The image with random sharpness, grain and tone, drawn afresh for every call.

    A random down-and-up rescale, a Gaussian blur of random radius, a random gamma curve
    and additive Gaussian noise of random strength. Gradient energy and histogram shape
    then vary from view to view more than from picture to picture, so they cannot say
    which picture a view came from; shapes and layout survive.
    """
    p = params or TextureParams()
    h, w = image.shape[:2]
    factor, radius, sigma = (rng.uniform(*r) for r in (p.rescale, p.blur, p.noise))
    gamma = math.exp(rng.uniform(math.log(p.gamma[0]), math.log(p.gamma[1])))
    pil = Image.fromarray(image)
    small = (max(2, round(w * factor)), max(2, round(h * factor)))
    pil = pil.resize(small, Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.BILINEAR)
    if radius > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255)
    out = lut[np.asarray(pil)]
    out += rng.normal(0.0, sigma, size=image.shape)
    out += 0.5  # in place: the temporaries took more time than the arithmetic
    return np.clip(out, 0.0, 255.0, out=out).astype(np.uint8)


GRAY_TOLERANCE = 3.0
"""Mean absolute gap (0-255 levels) between a pixel's channels and their mean below
which :func:`is_gray` calls a picture grayscale."""


def is_gray(image: np.ndarray, tolerance: float = GRAY_TOLERANCE) -> bool:
    """Whether a picture is grayscale: its channels differ by less than ``tolerance``.

    Measured on every fourth pixel of every fourth row.
    """
    px = image[::4, ::4].reshape(-1, 3).astype(np.float32)
    return float(np.abs(px - px.mean(axis=1, keepdims=True)).mean()) < tolerance


def gray_alike(images: list[np.ndarray]) -> list[np.ndarray]:
    """The pictures, all turned gray if any of them is grayscale.

    For puzzles that ask whether views share a picture: a colour view beside a grayscale
    one would otherwise tell "different picture" without looking at what either shows
    (four of the nine ``photos`` are grayscale).
    """
    if not any(is_gray(im) for im in images):
        return images
    return [grayscale(im) for im in images]


LEVELS_KNOTS = 5
"""Knots of the random quantile function :func:`random_levels` maps each channel onto."""


def random_levels(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every channel mapped, by rank, onto a freshly drawn random distribution.

    Each channel's levels are replaced by the quantiles of a random piecewise-linear
    distribution (:data:`LEVELS_KNOTS` sorted uniform knots, the darkest in 0-70 and the
    brightest in 185-255), independently per channel and per call: a monotone tone curve
    per channel, so that the ordering of levels (shapes, edges, layout) is kept while the
    means, spreads and histogram shapes are drawn afresh and cannot say which picture a
    view came from (colour jitter only scales them, and a picture's own histogram shows
    through it).
    """
    pil = Image.fromarray(np.ascontiguousarray(image))
    hist = np.asarray(pil.histogram(), dtype=np.float64).reshape(3, 256)
    luts = []
    for counts in hist:
        cdf = (np.cumsum(counts) - counts / 2) / counts.sum()
        knots = np.sort(rng.uniform(0.0, 255.0, size=LEVELS_KNOTS))
        knots[0], knots[-1] = rng.uniform(0.0, 70.0), rng.uniform(185.0, 255.0)
        knots = np.sort(knots)
        luts.append(np.interp(cdf, np.linspace(0.0, 1.0, LEVELS_KNOTS), knots))
    lut = np.clip(np.rint(np.concatenate(luts)), 0, 255).astype(np.uint8)
    return np.asarray(pil.point(lut.tolist()))
