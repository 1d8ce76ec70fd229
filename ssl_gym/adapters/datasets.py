"""Puzzles as Hugging Face ``datasets`` (the ``adapters`` extra).

:func:`to_dataset` writes ``n`` puzzles of one id as a :class:`datasets.Dataset`::

    from ssl_gym.adapters.datasets import to_dataset

    ds = to_dataset("SSL/Rotation-4way-v1", n=1000, seed=0, split="train")
    ds[0]["images"]   # list of PIL images (embedded PNG, no paths)
    ds[0]["prompt"]   # [{"role": "user", "content": "...question and format..."}]
    ds[0]["answer"]   # "90"
    ds[0]["info"]     # JSON: what the scorers need (ssl_gym.adapters.verl / trl)

Columns: ``data_source`` (the env id), ``images`` (``List(Image())``), ``prompt``
(chat messages whose content is plain text; the images go before the text, as TRL's
``GRPOTrainer`` and the processors' chat templates place them), ``answer`` (ground truth
as answer text) and ``info`` (JSON payload of :mod:`ssl_gym.adapters._records`). The
layout is what TRL's ``GRPOTrainer`` reads (``prompt`` and ``images``; the other columns
reach reward functions as keyword arguments), so
``ssl_gym.adapters.trl.reward_funcs(...)`` scores it.

Same arguments, same rows, same fingerprint: train and test never share a seed, and
with a folder or dataset image source never share a source image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import datasets
import pyarrow as pa

from ssl_gym.adapters._records import Record, build_records, dumps
from ssl_gym.adapters._rows import hf_row
from ssl_gym.images import ImageSource, make_source

COLUMNS = ("data_source", "images", "prompt", "answer", "info")


def features() -> datasets.Features:
    """The dataset's features (column types)."""
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features(
        {
            "data_source": datasets.Value("string"),
            "images": datasets.List(datasets.Image()),
            "prompt": datasets.List(message),
            "answer": datasets.Value("string"),
            "info": datasets.Value("string"),
        }
    )


def rows_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows as an Arrow table with the dataset's schema."""
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for row in rows:
        for c in COLUMNS:
            columns[c].append(row[c])
    return pa.Table.from_pydict(columns, schema=features().arrow_schema)


def fingerprint(**args: Any) -> str:
    """A deterministic dataset fingerprint from the arguments that made it."""
    return hashlib.sha256(dumps(args).encode()).hexdigest()[:16]


def table_to_dataset(table: pa.Table, split: str, fp: str) -> datasets.Dataset:
    """Wrap an Arrow table of rows as an in-memory dataset with our features."""
    info = datasets.DatasetInfo(features=features())
    return datasets.Dataset(
        datasets.table.InMemoryTable(table),
        info=info,
        split=datasets.NamedSplit(split),
        fingerprint=fp,
    )


def to_dataset(
    env_id: str,
    n: int,
    seed: int = 0,
    split: str = "train",
    image_source: str | ImageSource = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> datasets.Dataset:
    """``n`` puzzles of one id as a Hugging Face dataset (see the module docstring).

    Args:
        env_id: A registered single-turn id, e.g. ``"SSL/Jigsaw-3x3-v2"``.
        n: Number of rows.
        seed: Seed of the export; with ``split`` and the row index it fixes each row.
        split: ``"train"`` or ``"test"`` (their seeds never meet).
        image_source: Image source spec or source (folder and dataset sources are split
            by a hash of each image's bytes).
        test_fraction: Share of a finite source's images reserved for ``"test"``.
        overrides: Puzzle config overrides, e.g. ``{"answer_format": "boxed"}``.
        on_record: Called after each record is built (progress bars).

    Returns:
        The dataset with columns ``data_source``, ``images``, ``prompt``, ``answer``, ``info``.

    Raises:
        ValueError: On a bad id, count, split, override or source.
    """
    records = build_records(env_id, n, seed, split, image_source, test_fraction, overrides)
    rows = []
    for record in records:
        rows.append(hf_row(record))
        if on_record is not None:
            on_record(record)
    spec = make_source(image_source).spec
    fp = fingerprint(
        id=env_id, n=n, seed=seed, split=split, source=spec, test_fraction=test_fraction,
        overrides=dict(overrides or {}),
    )  # fmt: skip
    return table_to_dataset(rows_table(rows), split, fp)


def to_dataset_dict(
    env_id: str,
    n: int,
    n_test: int,
    seed: int = 0,
    image_source: str | ImageSource = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
) -> datasets.DatasetDict:
    """A ``DatasetDict`` with ``n`` train and ``n_test`` test rows (see :func:`to_dataset`)."""
    parts = {"train": n, "test": n_test}
    return datasets.DatasetDict(
        {
            split: to_dataset(env_id, count, seed, split, image_source, test_fraction, overrides)
            for split, count in parts.items()
            if count > 0
        }
    )
