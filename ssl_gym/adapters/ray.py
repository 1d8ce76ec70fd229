"""Exports across machines with Ray Data (the ``ray`` extra).

The rows are :func:`ssl_gym.adapters.export.export`'s, row for row: index ``i`` of a split
is the same puzzle, the same PNG bytes, the same payload, whichever machine builds it.
``ray.data.range(n)`` is cut into batches that ``map_batches`` turns into rows on any
node; each worker process builds its env once and keeps it::

    import ray
    from ssl_gym.adapters.ray import write_parquet

    ray.init()  # or ray.init(address="auto") on a cluster
    write_parquet("SSL/Mix-SSLR1-v1", "s3://bucket/sslr1", n=591_000, n_test=5_000)
    # s3://bucket/sslr1/train/*.parquet, .../test/*.parquet: verl or parquet layout

Nothing here runs code from the data; the env is rebuilt from the registry on every node
(``ssl_gym`` must be installed there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ssl_gym.adapters._rows import build_batch, init_worker, preflight
from ssl_gym.adapters.export import BATCH, FORMATS, schema
from ssl_gym.core import check_int
from ssl_gym.render import PNG_LEVEL
from ssl_gym.seeds import RECORDS_PER_SPLIT, SPLITS

if TYPE_CHECKING:
    import ray.data


class _Rows:
    """``map_batches``'s function: a batch of indices to a table of rows.

    Each Ray worker process is set up once (:func:`ssl_gym.adapters._rows.init_worker`)
    and keeps its env, as the export's workers do.
    """

    def __init__(self, settings: dict[str, Any], split: str) -> None:
        init_worker({**settings, "schema": schema(settings["format"])}, {})
        self.split = split

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        return pa.Table.from_batches([build_batch(self.split, batch["id"])])


def build_dataset(
    env_id: str,
    n: int,
    split: str = "train",
    seed: int = 0,
    format: str = "parquet",
    image_source: str = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
    png_level: int = PNG_LEVEL,
    batch_size: int = BATCH,
) -> ray.data.Dataset:
    """The ``n`` rows of one split as a Ray dataset (built lazily, in index order).

    Args:
        env_id: A single-turn id or a mixture id (as for ``ssl-gym export``).
        n: Rows.
        split: ``"train"`` or ``"test"``.
        seed: The export's seed.
        format: ``parquet``/``hf`` (the same columns), ``verl`` or ``easyr1``.
        image_source: Image source spec; it must be readable on every node.
        test_fraction: Share of a finite source's images reserved for the test split.
        overrides: Puzzle settings (and a mixture's ``ids``/``weights``).
        png_level: zlib level of the PNG images.
        batch_size: Rows per ``map_batches`` call.

    Raises:
        ValueError: On a bad id, split, format or count (before Ray runs anything).
    """
    import ray.data

    if format not in FORMATS or format == "jsonl":
        raise ValueError(f"format must be one of parquet, hf, verl, easyr1, got {format!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    check_int("n", n, 1, RECORDS_PER_SPLIT)
    check_int("batch_size", batch_size, 1)
    over = dict(overrides or {})
    preflight(env_id, over, seed, split, image_source, test_fraction)
    settings = {
        "id": env_id, "seed": seed, "format": format, "image_source": image_source,
        "test_fraction": test_fraction, "overrides": over, "png_level": png_level,
    }  # fmt: skip
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    return ray.data.range(n).map_batches(
        _Rows, fn_constructor_args=(settings, split), batch_size=batch_size,
        batch_format="numpy",
        concurrency=(1, max(1, int(ray.available_resources().get("CPU", 1)))),
    )  # fmt: skip


def write_parquet(
    env_id: str,
    out: str,
    n: int,
    n_test: int = 0,
    seed: int = 0,
    format: str = "parquet",
    image_source: str = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
    png_level: int = PNG_LEVEL,
) -> dict[str, str]:
    """Write ``n`` train and ``n_test`` test rows as parquet shards under ``out/SPLIT/``.

    Returns:
        The folder of each split written.
    """
    folders = {}
    for split, count in (("train", n), ("test", n_test)):
        if count <= 0:
            continue
        ds = build_dataset(
            env_id, count, split, seed, format, image_source, test_fraction, overrides, png_level
        )
        folder = f"{out.rstrip('/')}/{split}"
        ds.write_parquet(folder)
        folders[split] = folder
    return folders
