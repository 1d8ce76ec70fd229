"""Hugging Face datasets and `ssl-gym export`: seeds, splits, determinism, atomic output."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import datasets
import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl_gym.adapters import export as export_mod
from ssl_gym.adapters._records import build_records, split_source
from ssl_gym.adapters._rows import hf_row
from ssl_gym.adapters.datasets import to_dataset
from ssl_gym.adapters.export import FORMATS, export, main
from ssl_gym.seeds import EVAL_SETS, RECORD_SEED_BASE, SEED_LIMIT, eval_seeds, record_seed

ROOT = Path(__file__).resolve().parents[1]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _decode(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def test_record_seeds_never_repeat_within_or_across_splits_or_export_seeds() -> None:
    n = 3000
    seen: set[int] = set()
    for seed in (0, 1, 2, 123456, 2**32 - 1):
        train = [record_seed(seed, "train", i) for i in range(n)]
        test = [record_seed(seed, "test", i) for i in range(n)]
        assert len(set(train)) == n and len(set(test)) == n
        assert not set(train) & set(test)
        # exports with other seeds (or other shards) never meet this one's puzzles
        assert not (set(train) | set(test)) & seen
        seen |= set(train) | set(test)
        assert all(RECORD_SEED_BASE <= s < 2**63 for s in train + test)
    # apart from training seeds and from every held-out set's
    top_eval = eval_seeds("SSL/Rotation-4way-v1", 1, seed=EVAL_SETS - 1)[0] + SEED_LIMIT
    assert SEED_LIMIT <= top_eval < RECORD_SEED_BASE
    with pytest.raises(ValueError, match="evaluation seed"):
        eval_seeds("SSL/Rotation-4way-v1", 1, seed=EVAL_SETS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, "train", 0), "seed"),
        ((2**32, "train", 0), "seed"),
        ((0, "val", 0), "split"),
        ((0, "train", 2**29), "index"),
    ],
)
def test_record_seed_rejects_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record_seed(*args)


@pytest.mark.parametrize("env_id", ["SSL/Jigsaw-2x2-v2", "SSL/Similarity-K4-v2"])
def test_a_record_is_the_env_reset_with_its_seed(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    for record in build_records(env_id, 3, seed=7, split="test"):
        obs, info = env.reset(seed=record.seed)
        assert obs["prompt"] == record.prompt and info["answer"] == record.answer
        assert all(np.array_equal(a, b) for a, b in zip(obs["images"], record.images, strict=True))


def test_to_dataset_embeds_the_images_and_the_scorer_payload() -> None:
    ds = to_dataset("SSL/Jigsaw-2x2-v2", n=3, seed=1, split="train")
    assert ds.column_names == ["data_source", "images", "prompt", "answer", "info"]
    assert isinstance(ds.features["images"].feature, datasets.Image)
    records = list(build_records("SSL/Jigsaw-2x2-v2", 3, seed=1, split="train"))
    for row, record in zip(ds, records, strict=True):
        decoded = [np.asarray(im) for im in row["images"]]
        assert all(np.array_equal(a, b) for a, b in zip(decoded, record.images, strict=True))
        assert all(im.filename == "" for im in row["images"])  # embedded, not a path
        assert row["prompt"] == [{"role": "user", "content": record.prompt}]
        info = json.loads(row["info"])
        assert info["id"] == "SSL/Jigsaw-2x2-v2" and info["seed"] == record.seed
        assert info["solution"] == [int(x) for x in row["answer"].split(",")]


def test_to_dataset_is_deterministic_and_the_seed_matters() -> None:
    a = to_dataset("SSL/Rotation-4way-v1", n=4, seed=3)
    b = to_dataset("SSL/Rotation-4way-v1", n=4, seed=3)
    c = to_dataset("SSL/Rotation-4way-v1", n=4, seed=4)
    assert a.data.table.equals(b.data.table) and a._fingerprint == b._fingerprint
    assert not a.data.table.equals(c.data.table) and a._fingerprint != c._fingerprint


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_twice_gives_byte_identical_files(fmt: str, tmp_path: Path) -> None:
    for name in ("a", "b"):
        export("SSL/Jigsaw-2x2-v2", tmp_path / name, n=5, n_test=2, seed=2, format=fmt,
               progress=False)  # fmt: skip
    first = _digests(tmp_path / "a")
    assert first == _digests(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "ssl_gym_export.json").read_text())
    assert manifest["rows"] == {"train": 5, "test": 2}
    assert sorted(manifest["files"]) == sorted(f for f in first if f != "ssl_gym_export.json")
    assert not list(tmp_path.glob(".*partial*"))


def test_export_formats_read_back_with_embedded_images(tmp_path: Path) -> None:
    env_id, kw = "SSL/Contrastive-Weak-v2", {"n": 3, "n_test": 2, "seed": 5, "progress": False}
    records = list(build_records(env_id, 2, seed=5, split="test"))
    hf = datasets.load_from_disk(str(export(env_id, tmp_path / "hf", format="hf", **kw)))
    assert hf["train"].num_rows == 3 and hf["test"]["answer"] == [r.answer for r in records]
    lines = (export(env_id, tmp_path / "j", format="jsonl", **kw) / "test.jsonl").read_text()
    rows = [json.loads(line) for line in lines.splitlines()]
    verl = pq.read_table(export(env_id, tmp_path / "v", format="verl", **kw) / "test.parquet")
    for row, vrow, record in zip(rows, verl.to_pylist(), records, strict=True):
        header, _, data = row["images"][0].partition(",")
        assert header == "data:image/png;base64"
        assert np.array_equal(_decode(base64.b64decode(data)), record.images[0])
        assert np.array_equal(_decode(vrow["images"][1]["bytes"]), record.images[1])
        assert vrow["prompt"][0]["content"] == "<image><image>" + record.prompt
        assert vrow["extra_info"]["seed"] == record.seed


def _noise_folder(folder: Path, count: int, side: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(count)]
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    return images


def test_folder_splits_never_share_a_source_image(tmp_path: Path) -> None:
    images = _noise_folder(tmp_path / "pics", 12, 64)
    spec = f"folder:{tmp_path / 'pics'}"
    names = {s: {f.name for f in split_source(spec, s, 0.4).files} for s in ("train", "test")}
    assert not names["train"] & names["test"]
    assert names["train"] | names["test"] == {f"{i:02d}.png" for i in range(12)}
    for split in ("train", "test"):
        for record in build_records("SSL/Rotation-4way-v1", 4, 0, split, spec, 0.4, {"size": 64}):
            # a 64-pixel puzzle of a 64-pixel picture is the picture, turned by k * 90 degrees
            drawn = {
                f"{i:02d}.png"
                for i, im in enumerate(images)
                for k in range(4)
                if np.array_equal(np.rot90(record.images[0], k), im)
            }
            assert len(drawn) == 1 and drawn <= names[split]


def test_a_split_without_images_is_a_clear_error(tmp_path: Path) -> None:
    _noise_folder(tmp_path / "pics", 2, 32)
    with pytest.raises(ValueError, match="test split"):
        split_source(f"folder:{tmp_path / 'pics'}", "test", 0.0)


def test_a_failed_export_leaves_no_output_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing(record: object, png_level: int) -> dict:
        calls.append(record)
        if len(calls) > 20:
            raise RuntimeError("disk full")
        return hf_row(record, png_level)  # type: ignore[arg-type]

    monkeypatch.setattr(export_mod, "PART_ROWS", 8)
    monkeypatch.setattr(export_mod, "BATCH", 4)
    monkeypatch.setitem(export_mod.ROW_BUILDERS, "parquet", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        export("SSL/Jigsaw-2x2-v2", tmp_path / "out", n=30, n_test=0, progress=False)
    assert not (tmp_path / "out").exists()  # no output that looks finished
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".out.partial-")
    assert len(list((partial / "parts").glob("*.arrow"))) == 2  # 16 of 30 rows kept
    monkeypatch.setitem(export_mod.ROW_BUILDERS, "parquet", hf_row)
    calls.clear()
    export("SSL/Jigsaw-2x2-v2", tmp_path / "out", n=30, n_test=0, progress=False)
    export("SSL/Jigsaw-2x2-v2", tmp_path / "whole", n=30, n_test=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "whole"]  # partial gone
    assert _digests(tmp_path / "out") == _digests(tmp_path / "whole")


def test_export_refuses_a_non_empty_folder_and_bad_ids(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="--overwrite"):
        export("SSL/Jigsaw-2x2-v2", tmp_path / "out", n=2, progress=False)
    with pytest.raises(ValueError, match="SSL/Jigsaw-2x2-v2"):
        export("SSL/Jigsaw-2x2-Hint-v2", tmp_path / "h", n=2, progress=False)
    with pytest.raises(ValueError, match="gird"):
        export("SSL/Jigsaw-2x2-v2", tmp_path / "o", n=2, overrides={"gird": 3}, progress=False)
    assert main(["SSL/Nope-v0", "--n", "2", "--out", str(tmp_path / "x")]) == 2
    assert (tmp_path / "out" / "keep.txt").exists() and not (tmp_path / "x").exists()


def test_cli_export_with_overrides(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "ssl_gym.cli", "export", "SSL/Rotation-4way-v1", "--n", "3",
           "--n-test", "1", "--format", "jsonl", "--out", str(out), "--set", "answer_format=boxed",
           "--set", "format_weight=0.5"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert "\\boxed" in row["prompt"][0]["content"]
    assert json.loads(row["info"])["overrides"] == {"answer_format": "boxed", "format_weight": 0.5}


def test_hf_dataset_example_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, "examples/hf_dataset.py", "--n", "8", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "oracle reward 1.000" in done.stdout
