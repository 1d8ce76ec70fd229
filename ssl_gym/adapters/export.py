"""``ssl-gym export``: write puzzles of one id as a dataset for another ecosystem.

    ssl-gym export SSL/Jigsaw-3x3-v2 --n 10000 --n-test 500 --seed 0 --format verl --out DIR

Formats (files ``DIR/train.*`` and ``DIR/test.*``, plus ``DIR/ssl_gym_export.json``):

- ``hf``: a ``datasets.DatasetDict`` saved with ``save_to_disk`` (``load_from_disk(DIR)``);
- ``parquet``: the same columns as parquet files (``load_dataset("parquet", ...)``
  reads the images back as images);
- ``jsonl``: the same columns, one JSON object a line, images as PNG data URLs;
- ``verl``: verl's RLHF layout (:mod:`ssl_gym.adapters.verl`);
- ``easyr1``: EasyR1's layout (:mod:`ssl_gym.adapters.easyr1`).

Images are embedded (PNG bytes, never paths). The output is deterministic: the same
arguments give byte-identical files. Train and test never share a seed and, with a
folder or dataset image source, never share a source image. Files are written to a
hidden sibling folder that is renamed to ``DIR`` only once complete, so a partial
export is never mistaken for a finished one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import ssl_gym
from ssl_gym.adapters import easyr1, verl
from ssl_gym.adapters._records import Record, build_records, check_exportable, dumps
from ssl_gym.adapters.datasets import features, fingerprint, hf_row, table_to_dataset
from ssl_gym.core import check_int
from ssl_gym.images import make_source
from ssl_gym.overrides import add_set_option
from ssl_gym.render import png_data_url

FORMATS = ("hf", "parquet", "jsonl", "verl", "easyr1")
MANIFEST = "ssl_gym_export.json"
BATCH = 64
"""Rows per written batch (parquet row group, Arrow record batch)."""


class Sink(Protocol):
    """Where the rows of one split go."""

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows."""

    def close(self) -> list[str]:
        """Finish; return the written file names (relative to the output folder)."""


class ParquetSink:
    """Rows as one parquet file with a fixed schema."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema) -> None:
        self.name = f"{split}.parquet"
        self.schema = schema
        self.writer = pq.ParquetWriter(folder / self.name, schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows as one row group."""
        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> list[str]:
        """Close the file."""
        self.writer.close()
        return [self.name]


class JsonlSink:
    """Rows as JSON lines; images as PNG data URLs."""

    def __init__(self, folder: Path, split: str) -> None:
        self.name = f"{split}.jsonl"
        self.file = (folder / self.name).open("w", encoding="utf-8", newline="\n")

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows, one line each."""
        for row in rows:
            line = {**row, "images": [png_data_url(im["bytes"]) for im in row["images"]]}
            self.file.write(dumps(line) + "\n")

    def close(self) -> list[str]:
        """Close the file."""
        self.file.close()
        return [self.name]


class HFSink:
    """Rows streamed to an Arrow file; saved with ``save_to_disk`` when all splits are done."""

    def __init__(self, folder: Path, split: str, fp: str) -> None:
        self.folder, self.split, self.fp = folder, split, fp
        self.staging = folder / f".{split}.staging.arrow"
        self.schema = features().arrow_schema
        self.writer = ipc.new_stream(str(self.staging), self.schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows as one record batch."""
        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> list[str]:
        """Close the staging file (the dataset is saved by :func:`_save_hf`)."""
        self.writer.close()
        return []


def _save_hf(folder: Path, sinks: Sequence[HFSink]) -> list[str]:
    import datasets

    parts = {}
    for sink in sinks:
        table = datasets.table.MemoryMappedTable.from_file(str(sink.staging))
        parts[sink.split] = table_to_dataset(table.table, sink.split, sink.fp)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # ours is on screen already
    try:
        datasets.DatasetDict(parts).save_to_disk(str(folder))
    finally:
        if bars:
            datasets.enable_progress_bars()
    del parts
    for sink in sinks:
        sink.staging.unlink()
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class ExportArgs:
    """Everything that determines an export's bytes."""

    id: str
    n: int
    n_test: int
    seed: int
    format: str
    image_source: str
    test_fraction: float
    overrides: dict[str, Any]

    def manifest(self, files: list[str]) -> dict[str, Any]:
        """The manifest written beside the data (no times, no paths: deterministic)."""
        return {
            "ssl_gym_version": ssl_gym.__version__,
            "id": self.id,
            "format": self.format,
            "seed": self.seed,
            "rows": {"train": self.n, "test": self.n_test},
            "image_source": self.image_source,
            "test_fraction": self.test_fraction,
            "overrides": self.overrides,
            "files": sorted(files),
        }


ROW_BUILDERS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "hf": hf_row,
    "parquet": hf_row,
    "jsonl": hf_row,
    "verl": verl.verl_row,
    "easyr1": easyr1.easyr1_row,
}


def _sink(args: ExportArgs, folder: Path, split: str) -> Sink:
    if args.format == "hf":
        fp = fingerprint(
            id=args.id, n=args.n if split == "train" else args.n_test, seed=args.seed,
            split=split, source=args.image_source, test_fraction=args.test_fraction,
            overrides=args.overrides,
        )  # fmt: skip
        return HFSink(folder, split, fp)
    if args.format == "jsonl":
        return JsonlSink(folder, split)
    schema = {"parquet": features().arrow_schema, "verl": verl.SCHEMA, "easyr1": easyr1.SCHEMA}
    return ParquetSink(folder, split, schema[args.format])


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_split(
    args: ExportArgs, folder: Path, split: str, count: int, advance: Callable[[], None]
) -> Sink:
    sink = _sink(args, folder, split)
    records = build_records(
        args.id, count, args.seed, split, args.image_source, args.test_fraction, args.overrides
    )
    build = ROW_BUILDERS[args.format]

    def rows() -> Iterator[dict[str, Any]]:
        for record in records:
            yield build(record)
            advance()

    for batch in _batches(rows(), BATCH):
        sink.write(batch)
    return sink


def _write_all(args: ExportArgs, folder: Path, advance: Callable[[], None]) -> list[str]:
    sinks = [
        _write_split(args, folder, split, count, advance)
        for split, count in (("train", args.n), ("test", args.n_test))
        if count > 0
    ]
    files = [name for sink in sinks for name in sink.close()]
    if args.format == "hf":
        files = _save_hf(folder, [s for s in sinks if isinstance(s, HFSink)])
    manifest = args.manifest(files)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return files


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {str(out)!r} is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def export(
    env_id: str,
    out: str | os.PathLike[str],
    n: int,
    n_test: int | None = None,
    seed: int = 0,
    format: str = "parquet",
    image_source: str = "procedural",
    test_fraction: float = 0.1,
    overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` train and ``n_test`` test puzzles of ``env_id`` to the folder ``out``.

    Args:
        env_id: A registered single-turn id.
        out: Output folder (must be empty or absent unless ``overwrite``).
        n: Train rows.
        n_test: Test rows (default ``n // 10``).
        seed: Seed of the export.
        format: One of :data:`FORMATS`.
        image_source: Image source spec (folder and dataset sources are split by image).
        test_fraction: Share of a finite source's images reserved for the test split.
        overrides: Puzzle config overrides.
        overwrite: Replace a non-empty ``out``.
        progress: Show a progress bar on stderr.

    Returns:
        The output folder.

    Raises:
        ValueError: On bad arguments (checked before anything is written).
    """
    if format not in FORMATS:
        raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    check_exportable(env_id)
    make_source(image_source)
    n_test = n // 10 if n_test is None else n_test
    check_int("n", n, 0)
    check_int("n_test", n_test, 0)
    if n + n_test == 0:
        raise ValueError("nothing to export: n and n_test are both 0")
    args = ExportArgs(
        env_id, n, n_test, seed, format, image_source, test_fraction, dict(overrides or {})
    )
    next(build_records(env_id, 1, seed, "train", "procedural", test_fraction, args.overrides))
    target = Path(out)
    tmp = _prepare_out(target, overwrite)
    try:
        with Progress(
            TextColumn(f"exporting {env_id} ({format})"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not progress,
        ) as bar:
            task = bar.add_task("records", total=n + n_test)
            _write_all(args, tmp, lambda: bar.advance(task))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssl-gym export``."""
    p = argparse.ArgumentParser(
        prog="ssl-gym export",
        description="Write puzzles of one id as a dataset (hf, parquet, jsonl, verl, easyr1).",
    )
    p.add_argument("id", help="a single-turn id, e.g. SSL/Jigsaw-3x3-v2 (see ssl-gym list)")
    p.add_argument("--n", type=int, required=True, help="train rows")
    p.add_argument("--n-test", type=int, default=None, help="test rows (default: n // 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=FORMATS, default="parquet")
    p.add_argument("--out", required=True, help="output folder (created; renamed in when done)")
    p.add_argument("--image-source", default="procedural", help="procedural, folder:PATH, ...")
    p.add_argument(
        "--test-fraction", type=float, default=0.1, help="share of source images held out"
    )
    add_set_option(p, "overrides", "puzzle setting, e.g. --set answer_format=boxed")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ssl-gym export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        out = export(
            args.id,
            args.out,
            args.n,
            args.n_test,
            args.seed,
            args.format,
            args.image_source,
            args.test_fraction,
            dict(args.overrides),
            args.overwrite,
            not args.no_progress,
        )
    except ValueError as err:
        print(f"ssl-gym export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}/ ({args.format})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
