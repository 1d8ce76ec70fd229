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
    assert cli.main(["show", "SSL/Mix-SSL4RL-v0", "--out", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "answer:" in out.getvalue()
    boxed = tmp_path / "jigsaw.png"
    argv = ["show", "SSL/Jigsaw-2x2-v2", "--set", "answer_format=boxed", "--out", str(boxed)]
    assert cli.main(argv) == 0
    assert "\\boxed" in out.getvalue()
    ids = '["SSL/Rotation-4way-v1"]'
    assert cli.main(["show", "SSL/Mix-v0", "--set", f"ids={ids}", "--out", str(picture)]) == 0
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
