"""Rows of every export format, and the worker that builds them (light to import).

A parallel export's workers are fresh processes: they import this module, not
:mod:`ssl_gym.adapters.export` (which pulls in ``datasets``, seconds of start-up), get
the export's settings as a plain dict and each split's part of the image source, and
build the rows of any index range as one Arrow record batch of the export's schema, so
that the conversion to Arrow runs in the workers too and the parent only writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa

from ssl_gym.adapters import easyr1, verl
from ssl_gym.adapters._records import Record, RecordMaker
from ssl_gym.images import ImageSource
from ssl_gym.render import PNG_LEVEL, png_bytes


def hf_row(record: Record, png_level: int = PNG_LEVEL) -> dict[str, Any]:
    """One record as a row of the Hugging Face layout, images as PNG bytes (no paths)."""
    return {
        "data_source": record.id,
        "images": [{"bytes": png_bytes(im, png_level), "path": None} for im in record.images],
        "prompt": [{"role": "user", "content": record.prompt}],
        "answer": record.answer,
        "info": record.info,
    }


RowBuilder = Callable[[Record, int], dict[str, Any]]
ROW_BUILDERS: dict[str, RowBuilder] = {
    "hf": hf_row,
    "parquet": hf_row,
    "jsonl": hf_row,
    "verl": verl.verl_row,
    "easyr1": easyr1.easyr1_row,
}
"""The row of each export format."""

_SETTINGS: dict[str, Any] = {}
_SOURCES: dict[str, ImageSource] = {}
_MAKERS: dict[str, RecordMaker] = {}


def init_worker(settings: Mapping[str, Any], sources: Mapping[str, ImageSource]) -> None:
    """Set up a worker: the export's settings and each split's part of the source.

    ``settings`` holds ``id``, ``seed``, ``format``, ``image_source``, ``test_fraction``,
    ``overrides``, ``png_level`` and ``schema`` (the rows' Arrow schema). The parent cuts
    the source into splits once (for a folder that reads every file to hash it) and
    hands the parts over.
    """
    _SETTINGS.clear()
    _SETTINGS.update(settings)
    _SOURCES.clear()
    _SOURCES.update(sources)
    _MAKERS.clear()


def build_batch(split: str, indices: Iterable[int]) -> pa.RecordBatch:
    """The rows of ``split`` at ``indices`` as one record batch of the settings' schema."""
    return pa.RecordBatch.from_pylist(rows_at(split, indices), schema=_SETTINGS["schema"])


def rows_at(split: str, indices: Iterable[int]) -> list[dict[str, Any]]:
    """The rows of ``split`` at ``indices``, in that order (after :func:`init_worker`)."""
    s = _SETTINGS
    if not s:
        raise RuntimeError("init_worker was not called")
    maker = _MAKERS.get(split)
    if maker is None:
        source = _SOURCES.get(split, s["image_source"])
        maker = RecordMaker(s["id"], split, source, s["test_fraction"], s["overrides"])
        _MAKERS[split] = maker
    build = ROW_BUILDERS[s["format"]]
    return [build(maker.record(s["seed"], int(i)), s["png_level"]) for i in indices]


def preflight(
    env_id: str,
    overrides: Mapping[str, Any],
    seed: int = 0,
    split: str = "train",
    image_source: str | ImageSource = "procedural",
    test_fraction: float = 0.1,
) -> None:
    """Build one record: a bad id, setting, seed or source fails here, before any work."""
    RecordMaker(env_id, split, image_source, test_fraction, overrides).record(seed, 0)
