"""Exports at dataset scale: workers, shards, resume, mixtures, the card, Ray."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import ssl_gym
from ssl_gym import render
from ssl_gym.adapters import export as export_mod
from ssl_gym.adapters import verl
from ssl_gym.adapters.export import export, main
from ssl_gym.core import format_answer
from ssl_gym.render import png_bytes

ROTATION = "SSL/Rotation-4way-v1"


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _seeds(table: pa.Table) -> list[int]:
    return [json.loads(info)["seed"] for info in table.column("info").to_pylist()]


@pytest.mark.slow
def test_any_number_of_workers_writes_the_same_bytes(tmp_path: Path) -> None:
    # 150 rows: 10 tasks of 16 rows in 3 batches of 64, so batches join tasks built in
    # different processes
    kwargs = {"n": 150, "n_test": 20, "format": "verl", "progress": False}
    for w in (1, 2, 3):
        export(ROTATION, tmp_path / f"w{w}", workers=w, **kwargs)  # type: ignore[arg-type]
    assert _digests(tmp_path / "w1") == _digests(tmp_path / "w2") == _digests(tmp_path / "w3")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a folder source: the parent splits it once and the workers draw from its parts
    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(pics / f"{i}.png")
    folder = {"n": 70, "n_test": 6, "image_source": f"folder:{pics}", "test_fraction": 0.3}
    export(ROTATION, tmp_path / "f1", progress=False, **folder)  # type: ignore[arg-type]
    export(ROTATION, tmp_path / "f2", workers=2, progress=False, **folder)  # type: ignore[arg-type]
    assert _digests(tmp_path / "f1") == _digests(tmp_path / "f2")


def test_workers_started_from_an_unguarded_script_fail_with_a_clear_error(
    tmp_path: Path,
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(  # spawned workers re-run this script, and die re-entering export
        # (64 rows: enough tasks that the worker is given some)
        "from ssl_gym.adapters.export import export\n"
        f"export({ROTATION!r}, {str(tmp_path / 'out')!r}, n=64, n_test=0, workers=2,"
        " progress=False)\n",
        encoding="utf-8",
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: an export worker process died"), run.stderr[-2000:]
    assert '`if __name__ == "__main__":` guard' in last


def test_shards_are_disjoint_and_together_the_whole(tmp_path: Path) -> None:
    whole = export(ROTATION, tmp_path / "whole", n=23, n_test=7, progress=False)
    for i in range(3):  # three machines, one shared folder
        export(ROTATION, tmp_path / "shards", n=23, n_test=7, shard=f"{i}/3", progress=False)
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert names == sorted(
        ["README.md"]
        + [f"ssl_gym_export-{i:05d}-of-00003.json" for i in range(3)]
        + [f"{s}-{i:05d}-of-00003.parquet" for s in ("train", "test") for i in range(3)]
    )
    for split in ("train", "test"):
        parts = [
            pq.read_table(tmp_path / "shards" / f"{split}-{i:05d}-of-00003.parquet")
            for i in range(3)
        ]
        seeds = [set(_seeds(t)) for t in parts]
        assert not (seeds[0] & seeds[1] or seeds[0] & seeds[2] or seeds[1] & seeds[2])
        assert [t.num_rows for t in parts] == ([7, 8, 8] if split == "train" else [2, 2, 3])
        joined = pa.concat_tables(parts)
        assert joined.to_pylist() == pq.read_table(whole / f"{split}.parquet").to_pylist()
    manifest = json.loads((tmp_path / "shards" / "ssl_gym_export-00001-of-00003.json").read_text())
    assert manifest["shard"] == {"index": 1, "count": 3}
    assert manifest["shard_rows"] == {"train": [7, 15], "test": [2, 4]}
    assert (
        manifest["export_key"]
        == json.loads((whole / "ssl_gym_export.json").read_text())["export_key"]
    )
    # a shard of another export into the same folder is refused by name
    with pytest.raises(ValueError, match="holds another export"):
        export(ROTATION, tmp_path / "shards", n=23, n_test=7, seed=1, shard="0/3", progress=False)


def test_seeds_of_different_exports_never_meet(tmp_path: Path) -> None:
    a = export(ROTATION, tmp_path / "a", n=40, n_test=10, seed=0, progress=False)
    b = export(ROTATION, tmp_path / "b", n=40, n_test=10, seed=1, progress=False)
    seen = [
        set(_seeds(pq.read_table(folder / f"{split}.parquet")))
        for folder in (a, b)
        for split in ("train", "test")
    ]
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 100


def test_the_final_files_are_written_while_later_parts_are_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each part goes into the final parquet as soon as it is saved, so the end of an
    # export is no pass over the whole data set
    monkeypatch.setattr(export_mod, "PART_ROWS", 8)
    monkeypatch.setattr(export_mod, "BATCH", 4)
    events: list[str] = []
    save, write = export_mod._save_part, export_mod.ParquetSink.write
    monkeypatch.setattr(export_mod, "_save_part", lambda *a: (save(*a), events.append("save"))[0])
    monkeypatch.setattr(
        export_mod.ParquetSink, "write", lambda self, t: (write(self, t), events.append("write"))[0]
    )
    export(ROTATION, tmp_path / "out", n=24, n_test=8, progress=False)
    # 4 parts of 8 rows (3 train, 1 test), each written as 2 batches of 4 right after it
    assert events == ["save", "write", "write"] * 4
    assert pq.read_table(tmp_path / "out" / "train.parquet").num_rows == 24
    assert pq.ParquetFile(tmp_path / "out" / "test.parquet").metadata.num_row_groups == 2


@pytest.mark.slow
def test_a_killed_export_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a leftover of an older, killed run with other arguments: the export removes it
    (tmp_path / ".out.partial-123456").mkdir()
    (tmp_path / ".out.partial-whole-0123456789abcdef").mkdir()
    code = (
        "import ssl_gym.adapters.export as e; e.PART_ROWS = 8; e.BATCH = 4; "
        f"e.main(['{ROTATION}', '--n', '200', '--n-test', '0', '--out', {str(out)!r}, "
        "'--no-progress'])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    parts: list[Path] = []
    while time.monotonic() < deadline and len(parts) < 3:
        parts = list(tmp_path.glob(".out.partial-whole-*/parts/*.arrow"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(parts) >= 3, "the export did not get far enough to be killed midway"
    assert not out.exists()
    kept = len(list(tmp_path.glob(".out.partial-whole-*/parts/*.arrow")))
    assert kept < 25  # killed before the end (200 rows in parts of 8)
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    fresh = tmp_path / "fresh"
    code_fresh = code.replace(repr(str(out)), repr(str(fresh)))
    subprocess.run([sys.executable, "-c", code_fresh], env=env, check=True)
    assert _digests(out) == _digests(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]  # no leftovers


def test_mixtures_export_one_row_per_puzzle_scored_like_env_step(tmp_path: Path) -> None:
    out = export("SSL/Mix-SSL4RL-v1", tmp_path / "mix", n=16, n_test=4, format="verl",
                 progress=False)  # fmt: skip
    table = pq.read_table(out / "train.parquet").to_pylist()
    tasks = {row["data_source"] for row in table}
    assert len(tasks) >= 3 and tasks <= set(gym.spec("SSL/Mix-SSL4RL-v1").kwargs["ids"])
    env = gym.make("SSL/Mix-SSL4RL-v1")
    for row in table:
        extra = row["extra_info"]
        _, info = env.reset(seed=extra["seed"])
        assert info["task_id"] == row["data_source"]
        wrong = next(c for c in info["choices"] or ["1,1,1,1"] if c != info["answer"])
        for text in (format_answer(info["answer"], "tags"), format_answer(wrong, "tags"), "x"):
            env.reset(seed=extra["seed"])
            _, reward, *_ = env.step(text)
            got = verl.compute_score(row["data_source"], text, extra_info=extra)
            assert got == pytest.approx(reward)
    # the rows hold the puzzle's own images, not the mixture's canvas
    env.reset(seed=table[0]["extra_info"]["seed"])
    own = env.unwrapped.current.instance.images  # type: ignore[attr-defined]
    assert [im["bytes"] for im in table[0]["images"]] == [png_bytes(im) for im in own]


def test_mix_v0_takes_its_ids_and_refuses_none(tmp_path: Path) -> None:
    ids = [ROTATION, "SSL/Jigsaw-2x2-v2"]
    out = export("SSL/Mix-v1", tmp_path / "m", n=6, n_test=0, overrides={"ids": ids},
                 progress=False)  # fmt: skip
    sources = set(pq.read_table(out / "train.parquet").column("data_source").to_pylist())
    assert sources <= set(ids)
    assert main(["SSL/Mix-v1", "--n", "2", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert not (tmp_path / "x").exists()


def test_every_export_has_a_card_and_parquet_images_show_as_images(tmp_path: Path) -> None:
    for fmt in ("verl", "easyr1", "parquet"):
        out = export(ROTATION, tmp_path / fmt, n=3, n_test=1, format=fmt, progress=False)
        card = (out / "README.md").read_text()
        assert card.startswith("---\nlicense: apache-2.0\n")
        assert ROTATION in card and "2510.16416" in card and "2604.20705" in card
        assert f"ssl-gym export {ROTATION} --n 3 --n-test 1 --seed 0 --format {fmt}" in card
        assert ssl_gym.__version__ in card
        manifest = json.loads((out / "ssl_gym_export.json").read_text())
        assert "README.md" in manifest["files"]
        assert manifest["png_encoder"] == render.png_encoder(1)  # what wrote the bytes
        assert render.png_encoder(1) in card
        ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
        assert isinstance(ds[0]["images"][0], Image.Image)  # Image features, not structs
    hf = export(ROTATION, tmp_path / "hf", n=2, n_test=0, format="hf", progress=False)
    assert (hf / "README.md").exists()
    assert datasets.load_from_disk(str(hf))["train"].num_rows == 2


def test_png_level_is_an_option_and_only_changes_the_encoding(tmp_path: Path) -> None:
    fast = export(ROTATION, tmp_path / "l1", n=4, n_test=0, png_level=1, progress=False)
    small = export(ROTATION, tmp_path / "l9", n=4, n_test=0, png_level=9, progress=False)
    a = datasets.load_dataset("parquet", data_dir=str(fast), split="train")
    b = datasets.load_dataset("parquet", data_dir=str(small), split="train")
    for x, y in zip(a, b, strict=True):
        assert all(
            np.array_equal(np.asarray(p), np.asarray(q))
            for p, q in zip(x["images"], y["images"], strict=True)
        )
    assert (fast / "train.parquet").stat().st_size > (small / "train.parquet").stat().st_size
    with pytest.raises(ValueError, match="png_level"):
        export(ROTATION, tmp_path / "bad", n=1, png_level=10, progress=False)
    with pytest.raises(ValueError, match="png level"):
        png_bytes(np.zeros((4, 4, 3), np.uint8), level=-1)


@pytest.mark.parametrize("deflate", ["isal", "zlib"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (31, 57), (224, 224)])
def test_every_png_level_decodes_to_the_same_pixels(
    shape: tuple[int, int], deflate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if deflate == "zlib":  # the writer without python-isal
        monkeypatch.setattr(render, "isal_zlib", None)
    assert render.png_encoder(1).startswith(deflate)
    rng = np.random.default_rng(shape)
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ramp = np.broadcast_to(
        (np.arange(shape[0])[:, None, None] * 7 + np.arange(3) * 80) % 256, (*shape, 3)
    ).astype(np.uint8)  # rows that differ by a constant: what the Up filter removes
    for image in (noise, ramp):
        sizes = {}
        for level in range(10):
            data = png_bytes(image, level)
            Image.open(io.BytesIO(data)).verify()  # signature, chunk CRCs
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image), level
            sizes[level] = len(data)
        if image is ramp and shape[0] > 8:
            assert sizes[1] < sizes[0] / 4  # level 1 compresses, 0 stores


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "3/3"], "--shard takes I/N"),
        (["--shard", "x"], "--shard takes I/N"),
        (["--shard", "0/2", "--format", "hf"], "use --format parquet"),
        (["--workers", "0"], "workers"),
        (["--seed", str(2**32)], "seed"),
    ],
)
def test_bad_export_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([ROTATION, "--n", "2", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ray_data_builds_the_same_rows_as_the_local_export(tmp_path: Path) -> None:
    import ray

    from ssl_gym.adapters.ray import write_parquet

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        folders = write_parquet(
            "SSL/Mix-SSL4RL-v1", str(tmp_path / "ray"), n=70, n_test=5, format="verl"
        )
    finally:
        ray.shutdown()
    local = export("SSL/Mix-SSL4RL-v1", tmp_path / "local", n=70, n_test=5, format="verl",
                   progress=False)  # fmt: skip
    for split, folder in folders.items():
        files = sorted(Path(folder).glob("*.parquet"))
        got = pa.concat_tables([pq.read_table(f) for f in files])
        want = pq.read_table(local / f"{split}.parquet")
        assert got.num_rows == want.num_rows
        assert got.to_pylist() == want.to_pylist()


def test_a_mixture_draw_is_its_reset_without_the_canvas() -> None:
    env = gym.make("SSL/Mix-SSLR1-v1").unwrapped
    for seed in range(6):
        obs, info = env.draw(seed=seed)
        drawn = [im.copy() for im in obs["images"]]
        _, info_reset = env.reset(seed=seed)
        assert info["task_id"] == info_reset["task_id"]
        shown = env.current.instance.images
        assert all(np.array_equal(a, b) for a, b in zip(drawn, shown, strict=True))
