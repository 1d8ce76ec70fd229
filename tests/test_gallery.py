"""``ssl-gym gallery``: the HTML page, its scripted hint episodes, and a real headless browser."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from ssl_gym.cli import main as cli_main
from ssl_gym.envs import PuzzleEnv, entries, mixture_ids
from ssl_gym.gallery import build_gallery, gallery_ids, scripted_play

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it
IDS = ["SSL/Jigsaw-2x2-v2", "SSL/Jigsaw-2x2-Hint-v2", "SSL/Rotation-4way-v1", "SSL/Mix-SSL4RL-v1"]
N = 2
HINT_PICTURES = 2 * N
"""The hinted id's episodes show the images of both hints (two wrong answers each)."""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gallery")
    assert cli_main(["gallery", "--out", str(out), "--n", str(N), "--ids", *IDS]) == 0
    return out


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


def test_page_in_headless_chromium(gallery: Path, tmp_path: Path) -> None:
    page = (gallery / "index.html").as_uri()
    shot = tmp_path / "gallery.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", page, profile=tmp_path)
    assert shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 20, "the screenshot is blank"

    run = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", page, profile=tmp_path)
    attrs = _body_attrs(run.stdout)
    assert attrs["errors"] == "[]", html.unescape(attrs["errors"])
    assert attrs["images-loaded"] == attrs["images-total"] == str(len(IDS) * N + HINT_PICTURES)
    assert attrs["status"] == "ok"
    assert "Uncaught" not in run.stderr, run.stderr[-2000:]


def test_the_browser_check_catches_a_missing_picture(gallery: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (gallery / "index.html").read_text(encoding="utf-8")
    (broken / "index.html").write_text(text, encoding="utf-8")  # no img/ folder beside it
    run = _chromium("--dump-dom", (broken / "index.html").as_uri(), profile=tmp_path)
    attrs = _body_attrs(run.stdout)
    assert attrs["status"] == "errors" and attrs["images-loaded"] == "0"
    assert "failed to load" in html.unescape(attrs["errors"])


def test_page_shows_every_example_escaped(gallery: Path) -> None:
    text = (gallery / "index.html").read_text(encoding="utf-8")
    assert not (gallery / "index.html.tmp").exists()
    assert not [p for p in gallery.iterdir() if p.name.endswith(".tmp")]
    for env_id in IDS:
        env = gym.make(env_id)
        for seed in range(N):
            obs, info = env.reset(seed=seed)
            assert html.escape(obs["prompt"]) in text, f"{env_id} seed {seed}: prompt missing"
            assert f"<code>{html.escape(info['answer'])}</code>" in text
    assert "&lt;answer&gt;" in text and "<answer>" not in text
    assert text.count('class="strip"') == N  # one hinted id
    pictures = set(re.findall(r'src="(img/[^"]+\.png)"', text))
    assert all((gallery / p).stat().st_size > 1000 for p in pictures)
    # the -Hint twin shows the same pixels as its single-turn id: files are shared; each
    # hint's images (marks drawn) are pictures of their own
    assert len(pictures) == (len(IDS) - 1) * N + HINT_PICTURES


@pytest.mark.parametrize("env_id", ["SSL/Rotation-4way-Hint-v2", "SSL/Jigsaw-3x3-Hint-v2"])
def test_scripted_episode_is_wrong_then_right(env_id: str, tmp_path: Path) -> None:
    env = gym.make(env_id, render_mode="rgb_array").unwrapped
    assert isinstance(env, PuzzleEnv)
    env.reset(seed=3)
    first = env.render()
    turns = scripted_play(env, seed=3, out=tmp_path)
    shown = [np.asarray(Image.open(tmp_path / t.picture)) for t in turns[:-1]]
    assert turns[-1].picture == "" and all(s.shape == first.shape for s in shown)
    assert not np.array_equal(shown[0], first) and not np.array_equal(shown[1], shown[0])
    cost = env.retry_cost
    assert len(turns) == 3  # two wrong answers, then the right one
    assert [t.score < 1 for t in turns] == [True, True, False]
    assert all("Hint: " in t.reply for t in turns[:-1]) and turns[-1].reply == ""
    assert turns[0].completion != turns[1].completion
    assert [t.reward for t in turns[:-1]] == [0.0, 0.0]
    assert turns[-1].reward == pytest.approx(1.0 - 2 * cost)  # two retries


def test_ids_globs_and_errors(tmp_path: Path) -> None:
    every = gallery_ids(["*"])
    named_mixtures = [m for m in mixture_ids() if m != "SSL/Mix-v1"]  # Mix-v1 needs ids=
    assert every == [e.id for e in entries(hinted=True)] + named_mixtures
    assert gallery_ids(["SSL/Rotation-2way*"]) == [
        "SSL/Rotation-2way-v1",
        "SSL/Rotation-2way-Hint-v2",
    ]
    assert cli_main(["gallery", "--out", str(tmp_path), "--ids", "SSL/Nope-*"]) == 2
    assert cli_main(["gallery", "--out", str(tmp_path), "--n", "0"]) == 2
    assert not (tmp_path / "index.html").exists()


def test_every_id_renders_and_every_hint_episode_ends_right(tmp_path: Path) -> None:
    ids = gallery_ids(["*"])
    page = build_gallery(tmp_path, ids, n=1, seed=5).read_text(encoding="utf-8")
    sections = re.findall(r'<section class="id" id="([^"]+)">', page)
    assert sections == [i.replace("/", "-") for i in ids]
    hinted = [i for i in ids if "-Hint-" in i]
    assert page.count('class="strip"') == len(hinted)
    assert page.count('class="turn final"') == len(hinted)
    finals = re.findall(r"episode over: reward (-?[0-9.]+) \(score ([0-9.]+)\)", page)
    assert len(finals) == len(hinted) and all(score == "1.00" for _, score in finals)
