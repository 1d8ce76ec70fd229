"""A newcomer's first commands: errors that read right, help with real defaults, whole ids."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import gymnasium as gym
import pytest
from rich.console import Console

import ssl_gym  # noqa: F401
from agents.config import build_parser, load_config
from ssl_gym import cli


def _narrow_console(monkeypatch: pytest.MonkeyPatch, width: int = 80) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=width, color_system=None))
    return out


def test_list_never_cuts_an_id_on_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _narrow_console(monkeypatch)
    assert cli.main(["list", "--hints"]) == 0
    text = out.getvalue()
    longest = max((i for i in gym.registry if i.startswith("SSL/")), key=len)
    for env_id in ("SSL/Jigsaw-3x3-Composite-v2", longest):
        assert env_id in text, env_id


def test_install_advice_keeps_its_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _narrow_console(monkeypatch, width=200)

    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert cli.main(["train", "--steps", "1"]) == 2
    assert 'pip install "ssl-gym[train]"' in out.getvalue()


def test_train_help_shows_real_defaults_in_plain_text() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "(default: 'SSL/Rotation-4way-v1')" in text
    assert "(default: 0.001)" in text  # the trainer's lr for the tiny model
    assert "default: None" not in text
    assert "``" not in text and ":class:" not in text


def test_train_takes_set_for_puzzle_settings_like_eval_and_export() -> None:
    cfg = load_config(["--set", "size=96", "--set", "answer_format=boxed"])
    assert cfg.env_kwargs["size"] == 96 and cfg.env_kwargs["answer_format"] == "boxed"
    assert cfg.env_kwargs["prompt_style"] == "plain"  # the other defaults stay
    recipe = load_config(["--recipe", "ssl4rl", "--set", "size=224"])
    assert recipe.env_kwargs["prompt_style"] == "ssl4rl" and recipe.env_kwargs["size"] == 224


def test_show_takes_set_and_mixture_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _narrow_console(monkeypatch, width=400)
    picture = tmp_path / "mix.png"
    assert cli.main(["show", "SSL/Mix-SSL4RL-v1", "--out", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "answer:" in out.getvalue()
    boxed = tmp_path / "jigsaw.png"
    argv = ["show", "SSL/Jigsaw-2x2-v2", "--set", "answer_format=boxed", "--out", str(boxed)]
    assert cli.main(argv) == 0
    assert "\\boxed" in out.getvalue()
    ids = '["SSL/Rotation-4way-v1"]'
    assert cli.main(["show", "SSL/Mix-v1", "--set", f"ids={ids}", "--out", str(picture)]) == 0
    assert cli.main(["show", "SSL/Nope-v0"]) == 2


TYPO = "SSL/Rotaton-4way-v1"
SUGGESTION = "did you mean 'SSL/Rotation-4way-v1'"


@pytest.mark.parametrize(
    "argv",
    [
        ["show", TYPO],
        ["eval", "--policy", "random", "--envs", TYPO, "--episodes", "1"],
        ["export", TYPO, "--n", "1", "--out", "never"],
        ["audit", TYPO, "--n", "4"],
        ["gallery", TYPO, "--out", "never"],
        ["train", "--env", TYPO, "--dry-run"],
    ],
)
def test_every_command_suggests_the_closest_id_in_one_line(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "console", Console(width=400, force_terminal=False))
    assert cli.main(argv) == 2
    captured = capfd.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert SUGGESTION in text and "Traceback" not in text
    assert not (tmp_path / "never").exists()


def test_unknown_family_and_config_keys_name_the_closest_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "console", Console(width=400, force_terminal=False))
    assert cli.main(["list", "--family", "Rotaton"]) == 2
    assert "did you mean 'Rotation'" in capfd.readouterr().out
    (tmp_path / "run.toml").write_text("lrr = 1e-6\n")
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        load_config(["--config", str(tmp_path / "run.toml")])
    with pytest.raises(ValueError, match="did you mean 'size'"):
        load_config(["--set", "sizee=64"])
    with pytest.raises(ValueError, match="did you mean 'size'"):
        gym.make("SSL/Rotation-4way-v1", sizee=64)


def _five_minutes() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The first five minutes", 1)[1].split("```bash", 1)[1]
    return [line.split("  #")[0].strip() for line in section.split("```", 1)[0].splitlines()]


@pytest.mark.slow
def test_the_first_five_minutes_need_no_extras(tmp_path: Path) -> None:
    import os
    import shlex
    import subprocess
    import sys

    blocker = Path(__file__).parent / "scripts" / "no_extras"
    env = {**os.environ, "PYTHONPATH": str(blocker), "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "ssl_gym.cli"]
    lines = [line for line in _five_minutes() if line and not line.startswith("pip ")]
    assert [line.split()[0] for line in lines] == ["ssl-gym", "ssl-gym", "python", "ssl-gym"]
    # the blocker really blocks: a model policy asks for the train extra
    blocked = subprocess.run(
        [*cli, "eval", "--policy", "hf:x", "--envs", ROTATION_ID],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert blocked.returncode == 2 and 'pip install "ssl-gym[train]"' in blocked.stderr
    for line in lines:
        words = shlex.split(line)
        argv = [sys.executable, *words[1:]] if words[0] == "python" else [*cli, *words[1:]]
        run = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, f"{line}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    assert (tmp_path / "jigsaw.png").is_file()


ROTATION_ID = "SSL/Rotation-4way-v1"


def test_the_readme_shows_all_nine_families_with_current_strips() -> None:
    import subprocess
    import sys

    from ssl_gym.puzzles import FAMILIES

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    for family in FAMILIES:
        strip = f"docs/strips/{family.lower()}.png"
        assert f"![{family}]({strip})" in readme and (root / strip).is_file()
    check = subprocess.run(
        [sys.executable, str(root / "docs" / "gen_strips.py"), "--check"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
