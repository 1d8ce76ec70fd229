"""Export speed: ``ssl-gym export`` against a port of SSL4RL's own dataset builders.

SSL4RL (``github.com/ss8319/SSL4RL``) builds each of its four pretext-task datasets with
one script: ``build_benchmarks/makerotation_mmbench.py``, ``makeposition_mmbench.py``,
``makejigsaw_mmbench.py`` and ``makecontrastive_mmbench.py`` (its augmentation settings:
``build_benchmarks/augcfg_strong.yaml``). This benchmark runs a port of their per-item
logic and ssl_gym's ``export`` (parquet) on the same folder of photographs (JPEGs made
from scikit-image's bundled photos) at the same output size, 224 px, interleaved (SSL4RL,
ssl_gym, SSL4RL, ...) for ``--repeats`` rounds on one pinned core, and reports items/s
for each side (medians over the rounds), the ratio ssl_gym / SSL4RL (the median of the
rounds' ratios) and the bytes each writes per item.

What the port keeps of theirs:

* every item decodes its image (their ``base[j]`` decodes it from the dataset; here PIL
  opens and loads the JPEG file), and every row holds their columns;
* Rotation: an angle in steps of 90 degrees from Python's ``random``, ``rotate(angle,
  expand=True)``, then the crop to the largest upright rectangle inside the turned image
  (their formula, kept for its cost: at right angles it keeps the whole image); the row
  holds the image and the turned one;
* Position: a random quadrant of ``np.asarray(image)``, a crop of 20 to 80 % of its sides
  at a random offset, no augmentation (their ``DO_AUGMENT = False``); the row holds the
  image and the crop;
* Jigsaw 2x2: a shuffled order, ``crop`` of each cell, the inverse order as the answer;
  the row holds the four tiles in the shuffled order;
* Contrastive: a positive pair (two augmentations of one image) per image, then as many
  negative pairs, drawn as random (i, j) with i < j and repeats rejected, with
  ``gc.collect()`` after every pair. Each augmentation re-reads the YAML settings and
  applies, on PIL images as torchvision does, a random resized crop to 224 px (scale
  0.08 to 0.3, bicubic), colour jitter (brightness, contrast, saturation, hue in random
  order), grayscale, Gaussian blur, solarization, equalization and a horizontal flip,
  each with p = 0.8;
* the write: ``datasets.Dataset.from_list(rows).to_parquet(path)`` (datasets stores each
  PIL image as PNG at PIL's default zlib level, 6).

What differs: one step that is not theirs fits each photo to 224 x 224 (the centre
square, bilinear, as ssl_gym's folder source resizes) so that both sides emit 224 px
images; Contrastive needs none, its crop already outputs 224 px. Torch's random draws
become Python's and OmegaConf's YAML load becomes ``yaml.safe_load``: both are cheaper,
so the port errs in SSL4RL's favour. The prompts are ours, of about their length.

As context, measured in the same run: the time to PNG-encode a 224 px photo with
ssl_gym's level 1 and PIL's levels 1 and 6 and the byte sizes, and ssl_gym's export of
``--scaling-n`` items with two workers over one (``workers2_over_1``: unpinned, each
export in a fresh process as ``ssl-gym export`` runs, timed from the call to the return
so that the workers' start and the final write count). Prints a table and
writes ``benchmarks/results/export_vs_ssl4rl.json`` (``--quick`` writes nothing unless
``--out`` is given).

    python benchmarks/export_vs_ssl4rl.py [--n 200] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import io
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL
import pyarrow.parquet as pq
import yaml
from env_throughput import photo_folder, pin_one_core, unpin
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

import ssl_gym
from ssl_gym import render
from ssl_gym.adapters.export import export
from ssl_gym.envs import entries
from ssl_gym.files import write_atomic
from ssl_gym.render import png_bytes, png_encoder

RESULTS = Path(__file__).parent / "results"


def latest_version(prefix: str) -> str:
    """The registered single-turn id ``PREFIX-vN`` with the highest ``N``."""
    versions = [e.id for e in entries() if e.id.rpartition("-v")[0] == prefix]
    if not versions:
        raise LookupError(f"no registered id {prefix}-vN")
    return max(versions, key=lambda i: int(i.rpartition("-v")[2]))


SIZE = 224
MIN_SIZE = 28
"""Their ``min_size``: smaller images or crops are skipped."""

#: SSL4RL's task -> the ssl_gym id it is compared with (its latest version).
TASKS = {
    task: latest_version(prefix)
    for task, prefix in (
        ("Rotation", "SSL/Rotation-4way"),
        ("Position", "SSL/Position-2x2"),
        ("Jigsaw", "SSL/Jigsaw-2x2"),
        ("Contrastive", "SSL/Contrastive-Weak"),
    )
}

#: The augmentation settings of SSL4RL's ``augcfg_strong.yaml`` (one pipeline, in a list).
AUGMENT_SETTINGS = [
    {
        "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 0.3},
        "color_jitter": {
            "prob": 0.8,
            "brightness": 0.8,
            "contrast": 0.8,
            "saturation": 0.8,
            "hue": 0.2,
        },
        "grayscale": {"prob": 0.8},
        "gaussian_blur": {"prob": 0.8},
        "solarization": {"prob": 0.8},
        "equalization": {"prob": 0.8},
        "horizontal_flip": {"prob": 0.8},
        "crop_size": SIZE,
        "num_crops": 2,
    }
]

JITTERED = ("brightness", "contrast", "saturation")
"""The colour jitter's factors drawn around 1 (hue is drawn around 0)."""

ANSWER_FORMAT = "Reason step by step in <think> </think>, then give <answer>{}</answer>."
PROMPTS = {
    "Rotation": "<image><image>\n\nTwo images: the second is the first turned counter-clockwise "
    "by 0, 90, 180 or 270 degrees. By how many degrees was it turned? "
    + ANSWER_FORMAT.format("degrees"),
    "Position": "<image><image>\n\nThe second image is a crop taken from one quarter of the "
    "first. Which quarter: top-left, top-right, bottom-left or bottom-right? "
    + ANSWER_FORMAT.format("quarter"),
    "Jigsaw": "<image>" * 4 + "\n\nThese four images are the cells of a 2x2 grid cut from one "
    "picture, shuffled. Going row by row from the top-left cell, give for each cell the "
    "number of the image that belongs there, separated by commas, e.g. 3,2,1,4. "
    + ANSWER_FORMAT.format("order"),
    "Contrastive": "<image><image>\n\nBoth images are random augmentations (crops, colour "
    "changes, grayscale, blur, flips) of one original image or of two different ones. "
    "Answer positive if they share an original and negative otherwise. "
    + ANSWER_FORMAT.format("positive/negative"),
}


# --- the photographs ---------------------------------------------------------------------


def fit_square(image: Image.Image, side: int) -> Image.Image:
    """The centre square of ``image`` resized to ``side`` px (bilinear)."""
    w, h = image.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return image.resize((side, side), Image.Resampling.BILINEAR, box)


class PhotoBase:
    """SSL4RL's ``base`` dataset over the photo files: ``base[j]`` decodes file ``j``.

    The files are reused in turn when ``length`` exceeds their number. With ``side``,
    each image is fitted to ``side x side`` px (the one step that is not theirs).
    """

    def __init__(self, files: list[Path], length: int, side: int | None) -> None:
        self.files, self.length, self.side = files, length, side

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, j: int) -> dict[str, Any]:
        path = self.files[j % len(self.files)]
        image = Image.open(path)
        image.load()  # as datasets' Image feature decodes: open, then load
        if self.side is not None:
            image = fit_square(image, self.side)
        return {"index": j, "source": path.name, "split": "train", "image": image}


# --- the port of SSL4RL's builders -------------------------------------------------------


def largest_upright_rect(w: int, h: int, angle: float) -> tuple[int, int]:
    """Width and height of the largest upright rectangle inside a ``w x h`` one turned by
    ``angle`` radians, truncated to ints (SSL4RL's formula)."""
    if w <= 0 or h <= 0:
        return 0, 0
    wide = w >= h
    long_side, short_side = (w, h) if wide else (h, w)
    sin_a, cos_a = abs(math.sin(angle)), abs(math.cos(angle))
    if short_side <= 2.0 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        half = 0.5 * short_side
        wr, hr = (half / sin_a, half / cos_a) if wide else (half / cos_a, half / sin_a)
    else:
        cos_2a = cos_a * cos_a - sin_a * sin_a
        wr, hr = (w * cos_a - h * sin_a) / cos_2a, (h * cos_a - w * sin_a) / cos_2a
    return int(wr), int(hr)


def rotation_rows(base: PhotoBase, rng: random.Random) -> list[dict[str, Any]]:
    """Rows of SSL4RL's RotationQA (90 degree steps): the image and the turned crop."""
    rows = []
    for j in range(len(base)):
        datum = base[j]
        image: Image.Image = datum["image"]
        angle = rng.choice(list(range(0, 360, 90)))
        turned = image.rotate(angle, expand=True)
        wr, hr = largest_upright_rect(image.width, image.height, math.radians(angle))
        turned = turned.crop(
            (
                (turned.width - wr) / 2,
                (turned.height - hr) / 2,
                (turned.width + wr) / 2,
                (turned.height + hr) / 2,
            )
        )
        if turned.width < MIN_SIZE or turned.height < MIN_SIZE:
            continue
        rows.append(
            {
                "index": datum["index"],
                "source": datum["source"],
                "split": datum["split"],
                "height": turned.height,
                "width": turned.width,
                "images": [image, turned],
                "query": PROMPTS["Rotation"],
                "answer": f"{angle}",
            }
        )
    return rows


def position_rows(base: PhotoBase, rng: random.Random) -> list[dict[str, Any]]:
    """Rows of SSL4RL's PositionQA: the image and a crop from one of its quadrants."""
    rows = []
    for j in range(len(base)):
        datum = base[j]
        image: Image.Image = datum["image"]
        if image.width < MIN_SIZE * 2 or image.height < MIN_SIZE * 2:
            continue
        pixels = np.asarray(image)
        h, w = image.height, image.width
        top_half, bottom_half = slice(None, h // 2), slice(h // 2, None)
        left_half, right_half = slice(None, w // 2), slice(w // 2, None)
        quadrants = {
            "top-left": (top_half, left_half),
            "top-right": (top_half, right_half),
            "bottom-left": (bottom_half, left_half),
            "bottom-right": (bottom_half, right_half),
        }
        where = rng.choice(list(quadrants))
        part = pixels[quadrants[where]]
        ph, pw = part.shape[:2]
        min_h, max_h = max(MIN_SIZE, int(ph * 0.2)), int(ph * 0.8)
        min_w, max_w = max(MIN_SIZE, int(pw * 0.2)), int(pw * 0.8)
        if max_h < min_h or max_w < min_w:
            continue
        crop_h, crop_w = rng.randint(min_h, max_h), rng.randint(min_w, max_w)
        top, left = rng.randint(0, ph - crop_h), rng.randint(0, pw - crop_w)
        piece = Image.fromarray(part[top : top + crop_h, left : left + crop_w])
        rows.append(
            {
                "index": datum["index"],
                "source": datum["source"],
                "split": datum["split"],
                "height1": image.height,
                "width1": image.width,
                "height2": piece.height,
                "width2": piece.width,
                "images": [image, piece],
                "query": PROMPTS["Position"],
                "answer": where,
            }
        )
    return rows


def jigsaw_rows(base: PhotoBase, rng: random.Random, grid: int = 2) -> list[dict[str, Any]]:
    """Rows of SSL4RL's JigsawQA: the ``grid x grid`` cells, shuffled."""
    rows = []
    for j in range(len(base)):
        datum = base[j]
        order = list(range(grid * grid))
        rng.shuffle(order)
        image: Image.Image = datum["image"]
        cw, ch = image.size[0] // grid, image.size[1] // grid
        if cw < MIN_SIZE or ch < MIN_SIZE:
            continue
        cells = [
            image.crop((col * cw, row * ch, (col + 1) * cw, (row + 1) * ch))
            for row in range(grid)
            for col in range(grid)
        ]
        inverse = [0] * len(order)
        for shown, cell in enumerate(order):
            inverse[cell] = shown + 1
        rows.append(
            {
                "index": datum["index"],
                "source": datum["source"],
                "split": datum["split"],
                "images": [cells[k] for k in order],
                "query": PROMPTS["Jigsaw"],
                "answer": ",".join(map(str, inverse)),
            }
        )
    return rows


def _random_resized_crop(
    image: Image.Image, rng: random.Random, size: int, scale: tuple[float, float]
) -> Image.Image:
    """torchvision's ``RandomResizedCrop`` on a PIL image (aspect 3/4 to 4/3, bicubic)."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            break
    else:  # the central crop at the nearest allowed aspect
        ratio = width / height
        if ratio < 3 / 4:
            w, h = width, round(width / (3 / 4))
        elif ratio > 4 / 3:
            w, h = round(height * (4 / 3)), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    return image.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BICUBIC)


def _adjust_hue(image: Image.Image, factor: float) -> Image.Image:
    """torchvision's ``adjust_hue`` on a PIL image: shift the HSV hue channel."""
    h, s, v = image.convert("HSV").split()
    hue = np.array(h, dtype=np.uint8)
    hue += np.uint8(int(factor * 255) % 256)
    return Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert(image.mode)


def _color_jitter(image: Image.Image, rng: random.Random, cfg: dict[str, float]) -> Image.Image:
    """torchvision's ``ColorJitter``: four factors drawn, applied in a random order."""
    b, c, s = (rng.uniform(max(0.0, 1 - cfg[k]), 1 + cfg[k]) for k in JITTERED)
    hue = rng.uniform(-cfg["hue"], cfg["hue"])
    ops: list[Callable[[Image.Image], Image.Image]] = [
        lambda im: ImageEnhance.Brightness(im).enhance(b),
        lambda im: ImageEnhance.Contrast(im).enhance(c),
        lambda im: ImageEnhance.Color(im).enhance(s),
        lambda im: _adjust_hue(im, hue),
    ]
    rng.shuffle(ops)
    for op in ops:
        image = op(image)
    return image


def _grayscale(image: Image.Image) -> Image.Image:
    """torchvision's ``rgb_to_grayscale`` with three output channels, on PIL."""
    gray = np.array(image.convert("L"), dtype=np.uint8)
    return Image.fromarray(np.dstack([gray, gray, gray]), "RGB")


def _flip(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def augment(image: Image.Image, rng: random.Random, settings: Path) -> Image.Image | None:
    """SSL4RL's contrastive ``augment``: reads the settings, then applies the pipeline.

    The crop (or a plain resize when it is disabled), then each step with its
    probability, in their order; ``None`` where a step fails, as theirs returns.
    """
    (cfg,) = yaml.safe_load(settings.read_text(encoding="utf-8"))
    rrc, jitter, size = cfg["rrc"], cfg["color_jitter"], cfg["crop_size"]

    def blur(im: Image.Image) -> Image.Image:
        return im.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))

    steps: list[tuple[float, Callable[[Image.Image], Image.Image]]] = [
        (jitter["prob"], lambda im: _color_jitter(im, rng, jitter)),
        (cfg["grayscale"]["prob"], _grayscale),
        (cfg["gaussian_blur"]["prob"], blur),
        (cfg["solarization"]["prob"], ImageOps.solarize),
        (cfg["equalization"]["prob"], ImageOps.equalize),
        (cfg["horizontal_flip"]["prob"], _flip),
    ]
    try:
        if rrc["enabled"]:
            scale = (rrc["crop_min_scale"], rrc["crop_max_scale"])
            image = _random_resized_crop(image, rng, size, scale)
        else:
            w, h = image.size
            short = min(w, h)
            image = image.resize((w * size // short, h * size // short), Image.Resampling.BICUBIC)
        for p, step in steps:
            if rng.random() < p:  # RandomApply, RandomGrayscale, RandomHorizontalFlip
                image = step(image)
    except RuntimeError:
        return None
    return image


def _pair(
    first: dict[str, Any], second: dict[str, Any], views: list[Image.Image], answer: str
) -> dict[str, Any]:
    """One ContrastiveQA row."""
    return {
        "index1": first["index"],
        "height1": views[0].height,
        "width1": views[0].width,
        "index2": second["index"],
        "height2": views[1].height,
        "width2": views[1].width,
        "images": views,
        "query": PROMPTS["Contrastive"],
        "answer": answer,
    }


def contrastive_rows(base: PhotoBase, rng: random.Random, settings: Path) -> list[dict[str, Any]]:
    """Rows of SSL4RL's ContrastiveQA: a positive pair per image, then as many negatives."""
    rows = []
    for j in range(len(base)):
        datum = base[j]
        im1, im2 = (augment(datum["image"], rng, settings) for _ in range(2))
        if im1 is None or im2 is None:
            continue
        rows.append(_pair(datum, datum, [im1, im2], "positive"))
        del im1, im2, datum
        gc.collect()
    pool: set[tuple[int, int]] = set()
    negatives = 0
    while negatives < len(base):
        i, j = rng.randint(0, len(base) - 1), rng.randint(0, len(base) - 1)
        if (i, j) in pool or i >= j:
            continue
        pool.add((i, j))
        datum1, datum2 = base[i], base[j]
        im1, im2 = (augment(d["image"], rng, settings) for d in (datum1, datum2))
        if im1 is None or im2 is None:
            continue
        rows.append(_pair(datum1, datum2, [im1, im2], "negative"))
        negatives += 1
        del im1, im2, datum1, datum2
        gc.collect()
    return rows


@dataclass(frozen=True)
class Run:
    """One timed build: rows written, seconds, bytes on disk, images in the first row."""

    rows: int
    seconds: float
    bytes: int
    images_per_item: int

    @property
    def items_per_s(self) -> float:
        return self.rows / self.seconds


def ssl4rl_build(task: str, files: list[Path], n: int, out: Path, settings: Path) -> Run:
    """Build ``n`` rows of ``task`` the SSL4RL way and write them with datasets."""
    start = time.perf_counter()
    if task == "Contrastive":  # n // 2 images give n // 2 positive and as many negative pairs
        rows = contrastive_rows(PhotoBase(files, n // 2, None), random.Random(0), settings)
    else:
        build = {"Rotation": rotation_rows, "Position": position_rows, "Jigsaw": jigsaw_rows}
        rows = build[task](
            PhotoBase(files, n, SIZE), random.Random(42 if task == "Rotation" else 0)
        )
    datasets.Dataset.from_list(rows).to_parquet(str(out))
    seconds = time.perf_counter() - start
    return Run(len(rows), seconds, out.stat().st_size, len(rows[0]["images"]))


# --- the ssl_gym side --------------------------------------------------------------------


def export_options() -> dict[str, int]:
    """The options this ``export`` takes of ``png_level`` (1) and ``workers`` (1)."""
    params = inspect.signature(export).parameters
    return {k: v for k, v in (("png_level", 1), ("workers", 1)) if k in params}


def ssl_gym_build(env_id: str, folder: Path, n: int, out: Path, options: dict[str, int]) -> Run:
    """Export ``n`` train rows of ``env_id`` as parquet from the photo folder."""
    start = time.perf_counter()
    export(
        env_id, out, n, n_test=0, seed=0, format="parquet", image_source=f"folder:{folder}",
        overrides={"size": SIZE}, overwrite=True, progress=False, **options,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    files = sorted(out.glob("*.parquet"))
    first = pq.ParquetFile(files[0]).read_row_group(0, columns=["images"])["images"][0]
    return Run(n, seconds, sum(f.stat().st_size for f in files), len(first.as_py()))


# --- context: PNG levels -----------------------------------------------------------------


def png_levels(files: list[Path], rounds: int) -> dict[str, float | int | str]:
    """ms and bytes to PNG-encode a 224 px photo: ssl_gym's level 1, PIL's 1 and PIL's 6.

    Interleaved over ``rounds`` passes of ten photos; ``png_bytes`` at level 1 is the
    project's own writer (``ssl_gym_level1``: ISA-L's deflate where python-isal is
    installed; ``ssl_gym_level1_zlib``: the same writer without it), PIL's encoder is
    called as ``datasets`` calls it.
    """
    images = [fit_square(Image.open(f).convert("RGB"), SIZE) for f in files[:10]]
    arrays = [np.asarray(image) for image in images]

    def pil(level: int) -> Callable[[int], int]:
        def encode(k: int) -> int:
            buf = io.BytesIO()
            images[k].save(buf, format="PNG", compress_level=level)
            return buf.tell()

        return encode

    def without_isal(k: int) -> int:
        kept, render.isal_zlib = render.isal_zlib, None  # type: ignore[assignment]
        try:
            return len(png_bytes(arrays[k], 1))
        finally:
            render.isal_zlib = kept

    coders: dict[str, Callable[[int], int]] = {
        "ssl_gym_level1": lambda k: len(png_bytes(arrays[k], 1)),
        "ssl_gym_level1_zlib": without_isal,
        "pil_level1": pil(1),
        "pil_level6": pil(6),
    }
    seconds, sizes = dict.fromkeys(coders, 0.0), dict.fromkeys(coders, 0)
    for _ in range(rounds):
        for k in range(len(images)):
            for name, encode in coders.items():
                start = time.perf_counter()
                size = encode(k)
                seconds[name] += time.perf_counter() - start
                sizes[name] += size
    count = rounds * len(images)
    out: dict[str, float | int | str] = {}
    for name in coders:
        out[f"{name}_ms"] = 1000 * seconds[name] / count
        out[f"{name}_bytes"] = round(sizes[name] / count)
    out["ssl_gym_level1_encoder"] = png_encoder(1)
    for name in ("ssl_gym_level1_zlib", "pil_level1", "pil_level6"):
        out[f"{name}_over_ssl_gym_time"] = seconds[name] / seconds["ssl_gym_level1"]
        out[f"ssl_gym_over_{name}_bytes"] = sizes["ssl_gym_level1"] / sizes[name]
    return out


# --- running it --------------------------------------------------------------------------


def median_rate(runs: list[Run]) -> float:
    return statistics.median(r.items_per_s for r in runs)


def median_ratio(top: list[Run], bottom: list[Run]) -> float:
    """The median over rounds of one round's rate over the other's (same round: same noise)."""
    return statistics.median(
        a.items_per_s / b.items_per_s for a, b in zip(top, bottom, strict=True)
    )


def compare(
    files: list[Path],
    folder: Path,
    work: Path,
    settings: Path,
    n: int,
    repeats: int,
    verbose: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[float]]]]:
    """Per task: both sides interleaved ``repeats`` times; (summary rows, raw items/s)."""
    options = export_options()
    summary, raw = {}, {}
    for task, env_id in TASKS.items():
        ours: list[Run] = []
        theirs: list[Run] = []
        for _ in range(repeats):
            theirs.append(ssl4rl_build(task, files, n, work / f"{task}.parquet", settings))
            ours.append(ssl_gym_build(env_id, folder, n, work / task, options))
        a, b = median_rate(theirs), median_rate(ours)
        summary[task] = {
            "ssl_gym_id": env_id,
            "ssl4rl_items_per_s": a,
            "ssl_gym_items_per_s": b,
            "ratio": median_ratio(ours, theirs),
            "ssl4rl_bytes_per_item": round(theirs[0].bytes / theirs[0].rows),
            "ssl_gym_bytes_per_item": round(ours[0].bytes / ours[0].rows),
            "ssl4rl_images_per_item": theirs[0].images_per_item,
            "ssl_gym_images_per_item": ours[0].images_per_item,
        }
        raw[task] = {
            "ssl4rl": [round(r.items_per_s, 1) for r in theirs],
            "ssl_gym": [round(r.items_per_s, 1) for r in ours],
        }
        if verbose:
            print(f"  {task}: SSL4RL {a:.1f}/s, ssl_gym {b:.1f}/s", flush=True)
    return summary, raw


CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from export_vs_ssl4rl import ssl_gym_build
env_id, folder, n, out, options = json.loads(sys.argv[2])
print(json.dumps(vars(ssl_gym_build(env_id, Path(folder), n, Path(out), options))))
"""
""":func:`ssl_gym_build` in a fresh ``python -c`` process: its spawned workers import
only the package, as those of ``ssl-gym export`` do (a worker spawned from this script
would import the script first, ``datasets`` and all)."""


def ssl_gym_build_apart(
    env_id: str, folder: Path, n: int, out: Path, options: dict[str, int]
) -> Run:
    """:func:`ssl_gym_build` in a fresh process (:data:`CHILD`)."""
    spec = json.dumps([env_id, str(folder), n, str(out), options])
    here = str(Path(__file__).parent)
    run = subprocess.run(
        [sys.executable, "-c", CHILD, here, spec], capture_output=True, text=True, check=True
    )
    return Run(**json.loads(run.stdout.splitlines()[-1]))


def workers_scaling(
    folder: Path, work: Path, n: int, repeats: int
) -> tuple[dict[str, float], dict[str, dict[str, list[float]]]]:
    """Per task: ssl_gym's export with two workers over one, interleaved (unpinned).

    Each export runs in a fresh process (:data:`CHILD`) and is timed from the call of
    ``export`` to its return: the workers' start and the final write are inside.
    """
    base = export_options()
    ratios, raw = {}, {}
    for task, env_id in TASKS.items():
        one: list[Run] = []
        two: list[Run] = []
        for _ in range(repeats):
            one.append(ssl_gym_build_apart(env_id, folder, n, work / task, {**base, "workers": 1}))
            two.append(ssl_gym_build_apart(env_id, folder, n, work / task, {**base, "workers": 2}))
        ratios[task] = median_ratio(two, one)
        raw[task] = {
            "workers1": [round(r.items_per_s, 1) for r in one],
            "workers2": [round(r.items_per_s, 1) for r in two],
        }
    return ratios, raw


def print_table(tasks: dict[str, dict[str, Any]]) -> None:
    scaling = any("workers2_over_1" in row for row in tasks.values())
    head = (
        f"{'task':12s} {'SSL4RL/s':>9s} {'ssl_gym/s':>9s} {'ratio':>6s}"
        f" {'SSL4RL B/item':>13s} {'ssl_gym B/item':>14s} {'images':>6s}"
    )
    print(head + (f" {'workers2/1':>10s}" if scaling else ""))
    for task, row in tasks.items():
        line = (
            f"{task:12s} {row['ssl4rl_items_per_s']:9.1f} {row['ssl_gym_items_per_s']:9.1f}"
            f" {row['ratio']:6.2f} {row['ssl4rl_bytes_per_item']:13.0f}"
            f" {row['ssl_gym_bytes_per_item']:14.0f}"
            f" {row['ssl4rl_images_per_item']:>3d}/{row['ssl_gym_images_per_item']:<2d}"
        )
        print(line + (f" {row['workers2_over_1']:10.2f}" if scaling else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="items per task and side")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--scaling-n",
        type=int,
        default=1600,
        help="items per task for the workers=2 over workers=1 figure (start-up amortised)",
    )
    parser.add_argument("--photos", type=int, default=50, help="JPEG files in the folder")
    parser.add_argument("--quick", action="store_true", help="16 items, 1 round, no file")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: benchmarks/results/export_vs_ssl4rl.json; none with --quick)",
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 16, 1
    if args.n < 8:
        parser.error("--n must be at least 8 (contrastive negatives need distinct pairs)")
    out = args.out or (None if args.quick else RESULTS / "export_vs_ssl4rl.json")
    datasets.disable_progress_bars()
    options = export_options()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    all_cores = pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, work = root / "photos", root / "out"
        folder.mkdir()
        work.mkdir()
        files = photo_folder(folder, args.photos)
        settings = root / "augcfg.yaml"
        settings.write_text(yaml.safe_dump(AUGMENT_SETTINGS), encoding="utf-8")
        print(f"warm-up; then {args.repeats} rounds of {args.n} items per task, pinned")
        compare(files, folder, work, settings, 8, 1, verbose=False)
        tasks, raw = compare(files, folder, work, settings, args.n, args.repeats)
        png = png_levels(files, rounds=max(1, args.repeats))
        scaling = "export() has no workers parameter"
        if "workers" in options:
            unpin(all_cores)
            print("workers=2 over workers=1, unpinned")
            try:
                ratios, scaling_raw = workers_scaling(
                    folder, work, 32 if args.quick else args.scaling_n, args.repeats
                )
            except Exception as err:  # context only: keep the comparison's figures
                scaling = f"failed: {err!r}"
                print(f"workers scaling not measured: {scaling}")
            else:
                scaling = "measured (workers2_over_1 per task)"
                for task, ratio in ratios.items():
                    tasks[task]["workers2_over_1"] = ratio
                    raw[task].update(scaling_raw[task])
    print_table(tasks)
    print(
        f"PNG of a {SIZE} px photo: ssl_gym level 1 ({png['ssl_gym_level1_encoder']})"
        f" {png['ssl_gym_level1_ms']:.2f} ms, without isal"
        f" {png['ssl_gym_level1_zlib_ms']:.2f} ms"
        f" ({png['ssl_gym_level1_zlib_over_ssl_gym_time']:.1f}x),"
        f" PIL level 1 {png['pil_level1_ms']:.2f} ms ({png['pil_level1_over_ssl_gym_time']:.1f}x),"
        f" PIL level 6 {png['pil_level6_ms']:.2f} ms ({png['pil_level6_over_ssl_gym_time']:.1f}x);"
        f" bytes over PIL's 1: {png['ssl_gym_over_pil_level1_bytes']:.3f},"
        f" over PIL's 6: {png['ssl_gym_over_pil_level6_bytes']:.3f}"
    )
    print(f"export options passed: {options or 'none'}")
    results = {
        "n": args.n,
        "repeats": args.repeats,
        "size": SIZE,
        "photos": args.photos,
        "export_options": {k: options.get(k, "not a parameter") for k in ("png_level", "workers")},
        "workers_scaling": scaling,
        "tasks": tasks,
        "png": png,
        "items_per_s_per_round": raw,
        "meta": {
            "ssl_gym": ssl_gym.__version__,
            "datasets": datasets.__version__,
            "pillow": PIL.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "cores_allowed": len(all_cores) or None,
            "pinned_core": min(all_cores) if all_cores else None,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "unit": "items/s; ratio = ssl_gym / SSL4RL",
        },
    }
    if out is None:
        print("--quick: results not written (pass --out to keep them)")
        return
    write_atomic(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
