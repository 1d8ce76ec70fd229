"""``ssl-gym export``: write puzzles of one id, or of a mixture, as a dataset.

    ssl-gym export SSL/Jigsaw-3x3-v2 --n 10000 --n-test 500 --seed 0 --format verl --out DIR
    ssl-gym export SSL/Mix-SSL4RL-v1 --n 100000 --workers 8 --out DIR    # SSL4RL's four tasks
    ssl-gym export SSL/Mix-SSLR1-v1 --n 591000 --shard 3/16 --out DIR    # one of 16 machines

Formats (files ``DIR/train.*`` and ``DIR/test.*``, ``DIR/ssl_gym_export.json`` and the
dataset card ``DIR/README.md``):

- ``hf``: a ``datasets.DatasetDict`` saved with ``save_to_disk`` (``load_from_disk(DIR)``);
- ``parquet``: the same columns as parquet files (``load_dataset("parquet", ...)``
  reads the images back as images);
- ``jsonl``: the same columns, one JSON object a line, images as PNG data URLs;
- ``verl``: verl's RLHF layout (:mod:`ssl_gym.adapters.verl`);
- ``easyr1``: EasyR1's layout (:mod:`ssl_gym.adapters.easyr1`).

Images are embedded (PNG bytes at ``--png-level``, never paths); the parquet files of
every format declare them as Hugging Face ``Image`` features, so ``datasets`` and the
Hub's viewer show pictures (verl's and EasyR1's loaders take those too). A mixture's rows
are the puzzles its resets drew, each under its own id (``data_source``), so every
scorer dispatches by row.

Guarantees:

- Deterministic: the same arguments give byte-identical files, whatever ``--workers``.
  Row ``i`` of a split is the env reset with :func:`ssl_gym.seeds.record_seed`, distinct
  for every (export seed, split, index): train and test, shards and exports with other
  seeds never share a puzzle; with a folder or dataset source train and test never share
  a source image either.
- Parallel: ``--workers N`` builds rows in N processes (this one and N - 1 spawned),
  written in order.
- Shards: ``--shard I/N`` writes the I-th of N contiguous parts of every split
  (``train-0000I-of-0000N.parquet``; not for ``hf``); the N shards' rows, in shard order,
  are the whole export's, and they may share one ``--out`` folder.
- Resumable: rows are built into parts of :data:`PART_ROWS` in a hidden sibling folder
  (``.DIR.partial-KEY``), each part written whole, then (in order) into the final files,
  which are complete when the last part is. A killed export, rerun with the same
  arguments, keeps the finished parts and builds the rest; leftovers of other arguments
  are removed. ``DIR`` appears only once complete (a shard's files, each atomically).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import ssl_gym
from ssl_gym.adapters import easyr1, verl
from ssl_gym.adapters._card import dataset_card
from ssl_gym.adapters._records import (
    dumps,
    split_source,
)
from ssl_gym.adapters._rows import ROW_BUILDERS as ROW_BUILDERS  # the row of each format
from ssl_gym.adapters._rows import build_batch, init_worker, preflight
from ssl_gym.adapters.datasets import features, fingerprint, table_to_dataset
from ssl_gym.core import check_int
from ssl_gym.images import make_source
from ssl_gym.overrides import add_set_option
from ssl_gym.render import PNG_LEVEL, png_data_url, png_encoder
from ssl_gym.seeds import EXPORT_SEEDS, SPLITS

FORMATS = ("hf", "parquet", "jsonl", "verl", "easyr1")
MANIFEST = "ssl_gym_export.json"
CARD = "README.md"
BATCH = 64
"""Rows per written batch (parquet row group, Arrow record batch)."""
TASK_ROWS = 16
"""Rows per task a process builds; a batch is written once its tasks are in. Small, so
that the last tasks spread evenly over the processes (a task of Position-2x2 at 224 px
takes about 0.1 s)."""
PART_ROWS = 1024
"""Rows per resumable part (a multiple of :data:`BATCH`)."""
SEED_SCHEME = 2
"""Which :func:`ssl_gym.seeds.record_seed` built the rows (recorded in the manifest)."""


def _with_image_features(schema: pa.Schema) -> pa.Schema:
    """``schema`` with Hugging Face feature metadata: its ``images`` are ``Image``s."""
    import datasets

    feats = datasets.Features.from_arrow_schema(schema)
    feats["images"] = datasets.List(datasets.Image())
    return feats.arrow_schema


def schema(fmt: str) -> pa.Schema:
    """The Arrow schema of a format's rows (images declared as ``Image`` features)."""
    if fmt in ("hf", "parquet", "jsonl"):
        return features().arrow_schema
    return _with_image_features({"verl": verl.SCHEMA, "easyr1": easyr1.SCHEMA}[fmt])


# --- what determines an export ---------------------------------------------------------


@dataclass(frozen=True)
class ExportArgs:
    """Everything that determines an export's bytes, and which shard this process writes."""

    id: str
    n: int
    n_test: int
    seed: int
    format: str
    image_source: str
    test_fraction: float
    overrides: dict[str, Any]
    png_level: int = PNG_LEVEL
    shard: tuple[int, int] = (0, 1)

    @property
    def counts(self) -> dict[str, int]:
        """Rows of each split (of the whole export)."""
        return {"train": self.n, "test": self.n_test}

    @property
    def key(self) -> str:
        """A hash of what determines the whole export's bytes (not the shard)."""
        data = {k: v for k, v in asdict(self).items() if k != "shard"}
        data |= {"scheme": SEED_SCHEME, "png_encoder": png_encoder(self.png_level)}
        return hashlib.sha256(dumps(data).encode()).hexdigest()[:16]

    @property
    def sharded(self) -> bool:
        """Whether this process writes one of several shards."""
        return self.shard[1] > 1

    def suffix(self) -> str:
        """``-0000I-of-0000N`` for a shard, else empty."""
        i, k = self.shard
        return f"-{i:05d}-of-{k:05d}" if self.sharded else ""

    def span(self, split: str) -> tuple[int, int]:
        """The index range ``[start, stop)`` of ``split`` this shard writes."""
        count, (i, k) = self.counts[split], self.shard
        return count * i // k, count * (i + 1) // k

    def splits(self) -> list[str]:
        """The splits with rows in this shard."""
        return [s for s in SPLITS if self.span(s)[1] > self.span(s)[0]]

    def manifest(self, files: list[str]) -> dict[str, Any]:
        """The manifest written beside the data (no times, no paths: deterministic)."""
        out = {
            "ssl_gym_version": ssl_gym.__version__,
            "id": self.id,
            "format": self.format,
            "seed": self.seed,
            "seed_scheme": SEED_SCHEME,
            "rows": {"train": self.n, "test": self.n_test},
            "image_source": self.image_source,
            "test_fraction": self.test_fraction,
            "overrides": self.overrides,
            "png_level": self.png_level,
            "png_encoder": png_encoder(self.png_level),
            "export_key": self.key,
            "files": sorted(files),
        }
        if self.sharded:
            out["shard"] = {"index": self.shard[0], "count": self.shard[1]}
            out["shard_rows"] = {s: list(self.span(s)) for s in SPLITS}
        return out


# --- building rows, in this process or in workers --------------------------------------


@dataclass(frozen=True)
class _Part:
    """``PART_ROWS`` rows (or fewer, at a split's end) saved whole as one Arrow file."""

    split: str
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.start:09d}-{self.stop:09d}.arrow"

    def batches(self) -> list[tuple[int, int]]:
        return [(a, min(a + BATCH, self.stop)) for a in range(self.start, self.stop, BATCH)]

    def tasks(self) -> list[tuple[int, int]]:
        step = min(TASK_ROWS, BATCH)
        return [(t, min(t + step, b)) for a, b in self.batches() for t in range(a, b, step)]

    def ends_batch(self, stop: int) -> bool:
        return stop == self.stop or (stop - self.start) % BATCH == 0


def _parts(args: ExportArgs) -> list[_Part]:
    out = []
    for split in args.splits():
        start, stop = args.span(split)
        out += [_Part(split, a, min(a + PART_ROWS, stop)) for a in range(start, stop, PART_ROWS)]
    return out


def _save_part(folder: Path, part: _Part, batches: list[pa.RecordBatch], sch: pa.Schema) -> None:
    tmp = folder / f"{part.name}.tmp"
    with ipc.new_file(str(tmp), sch) as writer:
        for batch in batches:
            writer.write_batch(batch)
    os.replace(tmp, folder / part.name)


def _build_parts(
    args: ExportArgs,
    folder: Path,
    todo: list[_Part],
    workers: int,
    advance: Callable[[int], None],
    saved: Callable[[_Part, list[pa.RecordBatch]], None],
) -> None:
    """Build every part of ``todo`` in ``workers`` processes, tasks taken in order.

    The processes are this one and ``workers - 1`` spawned. This one builds a task
    whenever the next one due is not ready, so it works from the first second while the
    spawned workers start (about 0.7 s each), and no core waits on a parent that only
    collects. ``advance`` is told the rows of every task collected; ``saved`` is given
    every part, and its batches, once it is saved.
    """
    sch = schema(args.format)
    jobs = deque((part, a, b) for part in todo for a, b in part.tasks())
    splits = {part.split for part in todo}
    sources = {s: split_source(args.image_source, s, args.test_fraction) for s in splits}
    batches: list[pa.RecordBatch] = []
    pieces: list[pa.RecordBatch] = []

    def collect(part: _Part, piece: pa.RecordBatch, stop: int) -> None:
        pieces.append(piece)
        advance(piece.num_rows)
        if not part.ends_batch(stop):
            return
        whole = pa.Table.from_batches(pieces, sch).combine_chunks().to_batches()
        batches.extend(whole)  # one batch: a task never crosses a batch's end
        pieces.clear()
        if stop == part.stop:
            _save_part(folder, part, batches, sch)
            saved(part, batches)
            batches.clear()

    settings = {
        "id": args.id, "seed": args.seed, "format": args.format,
        "image_source": args.image_source, "test_fraction": args.test_fraction,
        "overrides": args.overrides, "png_level": args.png_level, "schema": sch,
    }  # fmt: skip
    init_worker(settings, sources)
    if workers == 1:
        for part, a, b in jobs:
            collect(part, build_batch(part.split, range(a, b)), b)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    spawned = workers - 1
    pool = futures.ProcessPoolExecutor(
        spawned, mp_context=context, initializer=init_worker, initargs=(settings, sources)
    )
    try:
        # In task order: a batch built here, or a spawned worker's future.
        due: deque[tuple[_Part, int, pa.RecordBatch | futures.Future[pa.RecordBatch]]]
        due = deque()
        while jobs or due:
            while due and _ready(due[0][2]):
                part, stop, done = due.popleft()
                if isinstance(done, futures.Future):
                    done = done.result()
                collect(part, done, stop)
            pending = sum(not _ready(job) for _, _, job in due)
            # Up to 3 per worker, and never more than the workers can finish by the
            # time this process has built what is left: no core idles at the end.
            while pending < min(3 * spawned, spawned * (len(jobs) - 1)):
                part, a, b = jobs.popleft()
                due.append((part, b, pool.submit(build_batch, part.split, range(a, b))))
                pending += 1
            if jobs:  # the next one due is not ready: build one here meanwhile
                part, a, b = jobs.popleft()
                due.append((part, b, build_batch(part.split, range(a, b))))
            elif due:
                futures.wait([due[0][2]])
    except BrokenProcessPool as err:
        raise RuntimeError(
            "an export worker process died (killed, out of memory, or started from a script "
            'without an `if __name__ == "__main__":` guard, which spawned workers need); '
            "the parts finished so far are kept: run the same export again to resume"
        ) from err
    finally:  # idle workers exit on their own: the files need not wait for them
        pool.shutdown(wait=False, cancel_futures=True)


def _ready(job: pa.RecordBatch | futures.Future[pa.RecordBatch]) -> bool:
    return not isinstance(job, futures.Future) or job.done()


# --- writing the final files -----------------------------------------------------------


class Sink(Protocol):
    """Where the rows of one split go."""

    def write(self, table: pa.Table) -> None:
        """Append rows."""

    def close(self) -> list[str]:
        """Finish; return the written file names (relative to the output folder)."""


class ParquetSink:
    """Rows as one parquet file with a fixed schema."""

    def __init__(self, folder: Path, name: str, sch: pa.Schema) -> None:
        self.name = name
        self.writer = pq.ParquetWriter(folder / name, sch)

    def write(self, table: pa.Table) -> None:
        """Append rows as one row group."""
        self.writer.write_table(table)

    def close(self) -> list[str]:
        """Close the file."""
        self.writer.close()
        return [self.name]


class JsonlSink:
    """Rows as JSON lines; images as PNG data URLs."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.file = (folder / name).open("w", encoding="utf-8", newline="\n")

    def write(self, table: pa.Table) -> None:
        """Append rows, one line each."""
        for row in table.to_pylist():
            line = {**row, "images": [png_data_url(im["bytes"]) for im in row["images"]]}
            self.file.write(dumps(line) + "\n")

    def close(self) -> list[str]:
        """Close the file."""
        self.file.close()
        return [self.name]


class HFSink:
    """Rows streamed to an Arrow file; saved with ``save_to_disk`` when all splits are done."""

    def __init__(self, folder: Path, split: str, fp: str) -> None:
        self.split, self.fp = split, fp
        self.staging = folder / f".{split}.staging.arrow"
        self.writer = ipc.new_stream(str(self.staging), features().arrow_schema)

    def write(self, table: pa.Table) -> None:
        """Append rows as one record batch."""
        self.writer.write_table(table)

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


def _sink(args: ExportArgs, folder: Path, split: str) -> Sink:
    if args.format == "hf":
        fp = fingerprint(
            id=args.id, n=args.counts[split], seed=args.seed, split=split,
            source=args.image_source, test_fraction=args.test_fraction,
            overrides=args.overrides, png_level=args.png_level,
        )  # fmt: skip
        return HFSink(folder, split, fp)
    ext = "jsonl" if args.format == "jsonl" else "parquet"
    name = f"{split}{args.suffix()}.{ext}"
    if args.format == "jsonl":
        return JsonlSink(folder, name)
    return ParquetSink(folder, name, schema(args.format))


class _Assembly:
    """The final files, written from the parts in order as soon as each is saved.

    Parts are saved in order, so the files grow while later parts are built and are
    complete when the last part is: the end of an export costs no pass over the data,
    and a part built in this run is written from memory, never read back. Every batch
    of a part is one parquet row group (one Arrow record batch), whoever built it. A
    killed run's files are rebuilt from its parts (see :func:`export`).
    """

    def __init__(self, args: ExportArgs, parts_dir: Path, out: Path) -> None:
        self.args, self.parts_dir, self.out = args, parts_dir, out
        self.queue = deque(_parts(args))
        self.sink: Sink | None = None
        self.sinks: list[Sink] = []
        self.files: list[str] = []

    def add(self, part: _Part, batches: list[pa.RecordBatch]) -> None:
        """Write ``part``, just saved and next in order, then the saved parts after it."""
        if not self.queue or self.queue[0] != part:
            raise RuntimeError(f"export part {part.name} was saved out of order")
        self.queue.popleft()
        self._write(part, batches)
        self.advance()

    def advance(self) -> None:
        """Write every part an earlier run saved that is next in order (read back)."""
        while self.queue and (self.parts_dir / self.queue[0].name).is_file():
            part = self.queue.popleft()
            with pa.memory_map(str(self.parts_dir / part.name)) as source:
                reader = ipc.open_file(source)
                self._write(part, [reader.get_batch(i) for i in range(reader.num_record_batches)])

    def _write(self, part: _Part, batches: list[pa.RecordBatch]) -> None:
        if self.sink is None:
            self.sink = _sink(self.args, self.out, part.split)
            self.sinks.append(self.sink)
        for batch in batches:
            self.sink.write(pa.Table.from_batches([batch]))
        if not self.queue or self.queue[0].split != part.split:
            self.files += self.sink.close()
            self.sink = None

    def close(self) -> list[str]:
        """The written files (relative to the output folder), once every part is in."""
        if self.queue:
            raise RuntimeError(f"export part {self.queue[0].name} was never saved")
        if self.args.format == "hf":
            return _save_hf(self.out, [s for s in self.sinks if isinstance(s, HFSink)])
        return self.files


# --- the partial folder: resume, leftovers, lock ---------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(folder: Path) -> int | None:
    """The pid of a live process on this host that holds ``folder``'s lock, if any."""
    try:
        host, pid = (folder / "lock").read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return int(pid)  # another machine's: assume it is alive
    return int(pid) if _pid_alive(int(pid)) and int(pid) != os.getpid() else None


_OLD_PARTIAL = re.compile(r"\d+")


def _partial_folder(args: ExportArgs, out: Path) -> Path:
    """The partial folder of this export and shard, taken and locked; stale ones removed.

    A partial folder of the same ``out`` is stale when nobody holds it and it is from
    other arguments for the same shard (or an unsharded export), or from a killed run of
    an older ssl_gym (``.partial-PID``). Other shards' partial folders are left alone.
    """
    shard_tag = f"shard{args.shard[0]}of{args.shard[1]}" if args.sharded else "whole"
    mine = out.parent / f".{out.name}.partial-{shard_tag}-{args.key}"
    for old in out.parent.glob(f".{out.name}.partial-*"):
        tag = old.name.removeprefix(f".{out.name}.partial-")
        stale = _OLD_PARTIAL.fullmatch(tag) is not None or (
            tag.startswith(f"{shard_tag}-") and old != mine
        )
        if stale and old.is_dir() and _owner(old) is None:
            shutil.rmtree(old, ignore_errors=True)
    mine.mkdir(parents=True, exist_ok=True)
    holder = _owner(mine)
    if holder is not None:
        raise ValueError(f"another export (pid {holder}) is writing {str(out)!r}; wait for it")
    (mine / "lock").write_text(f"{socket.gethostname()} {os.getpid()}", encoding="utf-8")
    for tmp in mine.rglob("*.tmp"):
        tmp.unlink()
    return mine


def _check_out(args: ExportArgs, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()) or overwrite:
        return
    if args.sharded:  # other shards of the same export may be there already
        keys = set()
        for m in out.glob("ssl_gym_export*.json"):
            try:
                keys.add(json.loads(m.read_text(encoding="utf-8")).get("export_key"))
            except (OSError, ValueError):
                keys.add(None)
        if keys <= {args.key}:
            return
        raise ValueError(
            f"--out {str(out)!r} holds another export; use another folder or --overwrite"
        )
    raise ValueError(f"--out {str(out)!r} is not empty; pass --overwrite to replace it")


def _remove_other_exports(args: ExportArgs, out: Path) -> None:
    """Delete what another export left in ``out`` (other shards of this one stay)."""
    if not out.is_dir():
        return
    for m in out.glob("ssl_gym_export*.json"):
        try:
            data = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if data.get("export_key") == args.key:
            continue
        for name in data.get("files", []):
            (out / name).unlink(missing_ok=True)
        m.unlink()


def _finish(
    args: ExportArgs, partial: Path, assembly: _Assembly, out: Path, overwrite: bool
) -> list[str]:
    """Write the manifest and card and move the files in: the whole folder, or a shard's."""
    staging = assembly.out
    files = assembly.close()
    name = f"ssl_gym_export{args.suffix()}.json"
    manifest = args.manifest([*files, CARD])
    (staging / name).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    card = dataset_card(args, files)
    (staging / CARD).write_text(card, encoding="utf-8")
    if not args.sharded:
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    else:
        if overwrite:
            _remove_other_exports(args, out)
        out.mkdir(parents=True, exist_ok=True)
        for f in [*files, name, CARD]:  # README.md: every shard writes the same card
            os.replace(staging / f, out / f)
    shutil.rmtree(partial)
    return files


# --- the entry points -------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with ``0 <= I < N``; a clear error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not int(match[1]) < int(match[2]):
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


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
    *,
    workers: int = 1,
    shard: tuple[int, int] | str = (0, 1),
    png_level: int = PNG_LEVEL,
) -> Path:
    """Write ``n`` train and ``n_test`` test puzzles of ``env_id`` to the folder ``out``.

    Args:
        env_id: A registered single-turn id, or a mixture id (``SSL/Mix-SSL4RL-v1``;
            ``SSL/Mix-v1`` with ``overrides={"ids": [...]}``).
        out: Output folder (must be empty or absent unless ``overwrite``; shards of one
            export may share it).
        n: Train rows (of the whole export, over all shards).
        n_test: Test rows (default ``n // 10``).
        seed: Seed of the export, in ``[0, 2**32)``.
        format: One of :data:`FORMATS`.
        image_source: Image source spec (folder and dataset sources are split by image).
        test_fraction: Share of a finite source's images reserved for the test split.
        overrides: Puzzle config overrides (and a mixture's ``ids``/``weights``).
        overwrite: Replace a non-empty ``out``.
        progress: Show a progress bar on stderr.
        workers: Processes that build rows (the files do not depend on it).
        shard: ``(I, N)`` or ``"I/N"``: write the I-th of N parts of every split.
        png_level: Level of the images' PNG encoding, 0 (stored) to 9 (``render.png_bytes``).

    Returns:
        The output folder.

    Raises:
        ValueError: On bad arguments (checked before anything is written).
    """
    if format not in FORMATS:
        raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    over = dict(overrides or {})
    make_source(image_source)
    n_test = n // 10 if n_test is None else n_test
    check_int("n", n, 0)
    check_int("n_test", n_test, 0)
    check_int("seed", seed, 0, EXPORT_SEEDS - 1)
    check_int("workers", workers, 1, 256)
    check_int("png_level", png_level, 0, 9)
    part: tuple[int, int] = parse_shard(shard) if isinstance(shard, str) else tuple(shard)  # type: ignore[assignment]
    if len(part) != 2 or not 0 <= part[0] < part[1]:
        raise ValueError(f"shard must be (I, N) with 0 <= I < N, got {shard!r}")
    if part[1] > 1 and format == "hf":
        raise ValueError("--shard writes parquet or jsonl files; use --format parquet, not hf")
    if n + n_test == 0:
        raise ValueError("nothing to export: n and n_test are both 0")
    args = ExportArgs(
        env_id, n, n_test, seed, format, image_source, test_fraction, over, png_level,
        (int(part[0]), int(part[1])),
    )  # fmt: skip
    preflight(env_id, over, seed, test_fraction=test_fraction)
    target = Path(out)
    _check_out(args, target, overwrite)
    partial = _partial_folder(args, target)
    parts_dir = partial / "parts"
    parts_dir.mkdir(exist_ok=True)
    parts = _parts(args)
    todo = [p for p in parts if not (parts_dir / p.name).is_file()]
    staging = partial / "out"  # a killed run's files are incomplete: made again
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    assembly = _Assembly(args, parts_dir, staging)
    total = sum(p.stop - p.start for p in parts)
    where = f", shard {part[0]}/{part[1]}" if args.sharded else ""
    label = f"exporting {env_id} ({format}{where})"
    try:
        with Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not progress,
        ) as bar:
            task = bar.add_task(
                "rows", total=total, completed=total - sum(p.stop - p.start for p in todo)
            )
            assembly.advance()  # the parts a killed run saved
            _build_parts(
                args, parts_dir, todo, workers, lambda k: bar.advance(task, k), assembly.add
            )
        _finish(args, partial, assembly, target, overwrite)
    except BaseException:
        (partial / "lock").unlink(missing_ok=True)  # the parts stay: rerun to resume
        raise
    return target


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssl-gym export``."""
    p = argparse.ArgumentParser(
        prog="ssl-gym export",
        description="Write puzzles of one id or a mixture as a dataset "
        "(hf, parquet, jsonl, verl, easyr1).",
    )
    p.add_argument(
        "id", help="a single-turn id (SSL/Jigsaw-3x3-v2) or a mixture (SSL/Mix-SSL4RL-v1)"
    )
    p.add_argument("--n", type=int, required=True, help="train rows")
    p.add_argument("--n-test", type=int, default=None, help="test rows (default: n // 10)")
    p.add_argument("--seed", type=int, default=0, help="export seed, 0 to 2**32 - 1 (default: 0)")
    p.add_argument("--format", choices=FORMATS, default="parquet", help="(default: parquet)")
    p.add_argument("--out", required=True, help="output folder (created; renamed in when done)")
    p.add_argument("--image-source", default="procedural", help="procedural, folder:PATH, ...")
    p.add_argument(
        "--test-fraction", type=float, default=0.1, help="share of source images held out"
    )
    p.add_argument("--workers", type=int, default=1, help="processes building rows (default: 1)")
    p.add_argument("--shard", default="0/1", help="I/N: write the I-th of N parts (default: 0/1)")
    p.add_argument(
        "--png-level",
        type=int,
        default=PNG_LEVEL,
        help=f"PNG level: 0 stores, 1 the fast writer, 2-9 PIL's zlib level (default: {PNG_LEVEL})",
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
            workers=args.workers,
            shard=args.shard,
            png_level=args.png_level,
        )
    except ValueError as err:
        print(f"ssl-gym export: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "ssl-gym export: interrupted; the finished parts are kept: rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130
    print(f"wrote {out}/ ({args.format})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
