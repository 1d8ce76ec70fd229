"""``ssl-gym eval``: policies, metrics, held-out seeds, resuming, the command line."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from http_stub import JSONHandler, chat_choices, serve

from agents.policy import make_policy as make_model_policy
from ssl_gym import cli
from ssl_gym.envs import entries
from ssl_gym.evaluation import (
    Outcome,
    eval_seeds,
    load_episodes,
    make_policy,
    match_ids,
    pass_at_k,
    pass_ks,
    run_eval,
)
from ssl_gym.evaluation.report import reward_ci95
from ssl_gym.seeds import SEED_LIMIT, group_seeds

CHANCE = {e.id: e.chance_score for e in entries()}


def test_oracle_solves_every_puzzle(tmp_path: Path) -> None:
    ids = ["SSL/Rotation-4way-v1", "SSL/Jigsaw-2x3-v2", "SSL/Position-2x2-Hint-v3"]
    summary = run_eval(ids, "oracle", 8, tmp_path, progress=False)
    for m in [summary["overall"], *summary["by_id"].values()]:
        assert m["solve_rate"] == 1.0
        assert m["normalised_score"] == pytest.approx(1.0)
        assert m["format_rate"] == 1.0
        assert m["mean_turns"] == 1.0
    assert list(summary["by_id"]) == ids
    assert summary["by_id"]["SSL/Jigsaw-2x3-v2"]["episodes"] == 8


@pytest.mark.parametrize("env_id", ["SSL/Rotation-4way-v1", "SSL/Jigsaw-3x3-v2"])
def test_random_scores_chance(tmp_path: Path, env_id: str) -> None:
    n, chance = 300, CHANCE[env_id]
    summary = run_eval([env_id], "random", n, tmp_path, progress=False)
    # A score in [0, 1] with mean `chance` has variance at most chance * (1 - chance).
    tolerance = 4 * math.sqrt(chance * (1 - chance) / n)
    assert abs(summary["overall"]["mean_score"] - chance) <= tolerance
    assert summary["overall"]["chance"] == pytest.approx(chance)
    assert summary["overall"]["format_rate"] == 1.0


def test_blind_answers_one_constant_near_chance(tmp_path: Path) -> None:
    policy = make_policy("blind")
    outs = policy.play("SSL/Rotation-4way-v1", eval_seeds("SSL/Rotation-4way-v1", 5), 2)
    assert len({o.turns for row in outs for o in row}) == 1  # one answer each
    n, chance = 300, CHANCE["SSL/Rotation-4way-v1"]
    summary = run_eval(["SSL/Rotation-4way-v1"], policy, n, tmp_path / "one", progress=False)
    assert abs(summary["overall"]["mean_score"] - chance) <= 4 * math.sqrt(
        chance * (1 - chance) / n
    )


def test_blind_play_on_a_hint_id_is_held_to_the_chance(tmp_path: Path) -> None:
    hinted = "SSL/Rotation-4way-Hint-v2"
    summary = run_eval([hinted], "blind", 150, tmp_path, progress=False)
    overall = summary["overall"]
    env = gym.make(hinted).unwrapped
    env.reset(seed=0)
    assert overall["chance"] == pytest.approx(env.blind_value)  # the blind-optimal reward
    assert overall["chance"] < CHANCE["SSL/Rotation-4way-v1"] - 0.05  # less the check's margin
    assert overall["mean_reward"] <= CHANCE["SSL/Rotation-4way-v1"] + 0.05
    assert overall["normalised_score"] <= 0.07
    assert overall["mean_turns"] > 1.5  # it does try again


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (2, 1, 1, 0.5),
        (4, 1, 2, 0.5),  # 1 - C(3, 2) / C(4, 2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3, 2) / C(5, 2) = 1 - 3/10
        (10, 3, 4, 1 - 35 / 210),  # C(7, 4) = 35, C(10, 4) = 210
        (3, 0, 3, 0.0),
        (3, 2, 2, 1.0),  # fewer wrong samples than k: always passes
    ],
)
def test_pass_at_k_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts() -> None:
    for n, c, k in [(3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)]:
        with pytest.raises(ValueError, match="pass@k"):
            pass_at_k(n, c, k)
    assert pass_ks(1) == [1]
    assert pass_ks(5) == [1, 2, 4, 5]


def test_pass_at_k_reported_from_samples(tmp_path: Path) -> None:
    summary = run_eval(["SSL/Rotation-2way-v1"], "random", 40, tmp_path, samples=4, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    solved = [sum(s == 1.0 for s in r["scores"]) for r in lines]
    by_hand = np.mean([1 - math.comb(4 - c, 2) / math.comb(4, 2) for c in solved])
    assert summary["overall"]["pass_at"]["2"] == pytest.approx(by_hand)
    assert summary["overall"]["samples"] == 160
    assert summary["overall"]["pass_at"]["4"] >= summary["overall"]["pass_at"]["1"]


# --- held-out seeds and ids ------------------------------------------------------------


def test_eval_seeds_are_held_out_and_fixed_per_id() -> None:
    ids = [e.id for e in entries()]
    train = set(group_seeds(num_groups=5000, group_size=1, seed=3))
    for env_id in ids[:5]:
        seeds = eval_seeds(env_id, 300)
        assert min(seeds) >= SEED_LIMIT > max(train)
        assert len(set(seeds)) == 300
        assert eval_seeds(env_id, 40) == seeds[:40]  # episode i is always the same puzzle
        assert not set(seeds) & set(eval_seeds(env_id, 300, seed=1))
    assert eval_seeds(ids[0], 10) != eval_seeds(ids[1], 10)
    assert eval_seeds("SSL/Jigsaw-3x3-Hint-v2", 10) == eval_seeds("SSL/Jigsaw-3x3-v2", 10)
    with pytest.raises(ValueError, match="seed"):
        eval_seeds(ids[0], 10, seed=-1)


def test_trainer_evaluates_on_the_same_seeds() -> None:
    import inspect

    from agents import train

    assert train.eval_seeds is eval_seeds
    assert "eval_seeds(" in inspect.getsource(train.evaluate)


def test_match_ids_globs_and_clear_error() -> None:
    found = match_ids(["SSL/Jigsaw-3x3*"])
    assert "SSL/Jigsaw-3x3-v2" in found and "SSL/Jigsaw-3x3-Hint-v2" in found
    assert all(i.startswith("SSL/Jigsaw-3x3") for i in found)
    with pytest.raises(ValueError, match="SSL/Nothing-"):
        match_ids(["SSL/Rotation-*", "SSL/Nothing-*"])


# --- resuming --------------------------------------------------------------------------


class CrashError(RuntimeError):
    """The simulated crash."""


@dataclass
class Counting:
    """Wraps a policy: counts the puzzles it plays; raises after ``crash_after`` chunks."""

    inner: object
    crash_after: int | None = None
    played: list[tuple[str, int]] = field(default_factory=list)
    chunks: int = 0

    @property
    def name(self) -> str:
        return self.inner.name  # type: ignore[attr-defined]

    @property
    def batch_size(self) -> int:
        return 3

    def settings(self) -> dict:
        return self.inner.settings()  # type: ignore[attr-defined]

    def play(self, env_id: str, seeds: list[int], samples: int) -> list[list[Outcome]]:
        if self.crash_after is not None and self.chunks >= self.crash_after:
            raise CrashError("simulated crash")
        self.chunks += 1
        self.played += [(env_id, s) for s in seeds]
        return self.inner.play(env_id, seeds, samples)  # type: ignore[attr-defined]


IDS = ["SSL/Rotation-4way-v1", "SSL/Jigsaw-2x2-v2"]


def test_resume_after_a_crash_redoes_nothing(tmp_path: Path) -> None:
    whole = run_eval(IDS, Counting(make_policy("random")), 7, tmp_path / "a", progress=False)
    first = Counting(make_policy("random"), crash_after=3)
    with pytest.raises(CrashError):
        run_eval(IDS, first, 7, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "summary.json").exists()
    log = tmp_path / "b" / "episodes.jsonl"
    with log.open("a") as f:
        f.write('{"id": "SSL/Rotation-4way-v1", "episode": 6, "sco')  # torn by the crash
    second = Counting(make_policy("random"))
    resumed = run_eval(IDS, second, 7, tmp_path / "b", progress=False)
    assert len(first.played) == 7  # chunks of 3, 3 and 1 of the first id
    assert not set(first.played) & set(second.played)
    assert len(first.played) + len(second.played) == 14
    assert resumed == whole
    records = load_episodes(log)
    assert sorted((r["id"], r["episode"]) for r in records) == sorted(
        (i, e) for i in IDS for e in range(7)
    )


def test_more_episodes_extend_a_run(tmp_path: Path) -> None:
    run_eval(IDS, "random", 4, tmp_path / "a", progress=False)
    more = Counting(make_policy("random"))
    extended = run_eval(IDS, more, 6, tmp_path / "a", progress=False)
    assert len(more.played) == 4
    assert extended == run_eval(IDS, "random", 6, tmp_path / "b", progress=False)


def test_refuses_to_mix_runs(tmp_path: Path) -> None:
    run_eval(IDS, "random", 3, tmp_path, progress=False)
    with pytest.raises(ValueError, match="policy"):
        run_eval(IDS, "oracle", 3, tmp_path, progress=False)
    with pytest.raises(ValueError, match="seed"):
        run_eval(IDS, "random", 3, tmp_path, seed=1, progress=False)
    with pytest.raises(ValueError, match="ids"):
        run_eval(IDS[:1], "random", 3, tmp_path, progress=False)


def test_a_corrupt_line_inside_the_log_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    log.write_text('{"id": "x", "episode": 0}\nnot json\n{"id": "x", "episode": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_episodes(log)


# --- the command line and a model --------------------------------------------------------


def test_cli_writes_summary_table_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["eval", "--policy", "oracle", "--envs", "SSL/Rotation-2way-v1", "SSL/Jigsaw-2x2-v2"]
    assert cli.main([*argv, "--episodes", "4", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["solve_rate"] == 1.0
    assert set(summary["by_family"]) == {"Rotation", "Jigsaw"}
    assert "| Jigsaw | 4 |" in (out / "summary.md").read_text()
    for png in ("score_by_family.png", "score_by_difficulty.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = ["eval", "--policy", "oracle", "--envs", "SSL/Nope-*", "--out", str(tmp_path / "x")]
    assert cli.main(bad) == 2
    assert cli.main([*argv, "--out", str(out), "--seed", "3", "--no-progress"]) == 2
    assert cli.main(["eval", "--policy", "gpt", "--out", str(tmp_path / "y")]) == 2


def test_score_plots_keep_the_legend_off_the_bars(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from ssl_gym.evaluation.report import plot_scores

    for count in (1, 3, 9):
        groups = {f"Family{i}": {"mean_score": 0.97, "chance": 0.9} for i in range(count)}
        fig = plot_scores(groups, tmp_path / f"{count}.png", "oracle: by family")
        fig.canvas.draw()
        (ax,) = fig.axes
        legend, data = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert not legend.overlaps(data), (count, legend, data)
        assert _inside(legend, fig.bbox)
        assert (tmp_path / f"{count}.png").read_bytes()[:4] == b"\x89PNG"


def _inside(box: Any, outer: Any) -> bool:
    """Whether ``box`` lies within ``outer`` (display coordinates): nothing is cut off."""
    return bool(
        box.x0 >= outer.x0 and box.y0 >= outer.y0 and box.x1 <= outer.x1 and box.y1 <= outer.y1
    )


def test_reward_interval_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(0)
    truth = 0.25 * 1.0 + 0.75 * -0.2  # a hinted-like reward: win 1, else lose 0.2
    hits = 0
    for _ in range(400):
        sample = np.where(rng.random(200) < 0.25, 1.0, -0.2)
        hits += abs(sample.mean() - truth) <= reward_ci95(sample)
    assert 0.92 <= hits / 400 <= 0.98
    assert reward_ci95(np.array([1.0])) == 0.0


def test_cli_default_folder_resumes_the_same_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["eval", "--policy", "random", "--envs", "SSL/Rotation-4way-Hint-v2", "--no-progress"]
    assert cli.main([*argv, "--episodes", "3"]) == 0
    (folder,) = (tmp_path / "runs" / "eval").iterdir()
    assert folder.name.startswith("random-")
    printed = capsys.readouterr().out
    assert "| SSL/Rotation-4way-Hint-v2 | 3 |" in printed  # the by-id rows are printed
    assert cli.main([*argv, "--episodes", "5"]) == 0  # the same folder, two more puzzles
    assert len((folder / "episodes.jsonl").read_text().splitlines()) == 5
    assert cli.main([*argv, "--episodes", "3", "--seed", "1"]) == 0  # another folder
    assert len(list((tmp_path / "runs" / "eval").iterdir())) == 2
    with pytest.raises(ValueError, match=r"agents\.policy\.make_policy"):
        make_policy("hf:some/dir")  # ssl_gym builds no model policy; agents does


def test_cli_settings_reach_every_env_and_bind_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["eval", "--policy", "random", "--envs", "SSL/Rotation-4way-v1", "--out", str(out)]
    small = [*argv, "--episodes", "3", "--no-progress", "--set", "size=48", "--set", "hint=x"]
    assert cli.main(small) == 2  # an unknown setting is refused by gym.make, by name
    sized = [*argv, "--episodes", "3", "--no-progress", "--set", "size=48"]
    assert cli.main(sized) == 0
    assert cli.main([*argv, "--episodes", "3", "--no-progress"]) == 2  # other settings
    policy = make_policy("oracle", env_kwargs={"size": 48}, answer_format="boxed")
    env = policy.env("SSL/Rotation-4way-v1")  # type: ignore[attr-defined]
    env.reset(seed=0)
    assert env.instance.images[0].shape == (48, 48, 3)
    assert env.puzzle.config.answer_format == "boxed"


@pytest.mark.slow
def test_hf_policy_on_the_tiny_model(tmp_path: Path) -> None:
    from agents.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", seed=0)
    policy = make_model_policy(
        f"hf:{model}", max_new_tokens=8, constrain=True, batch_size=2, answer_format="plain"
    )
    ids = ["SSL/Rotation-4way-v1", "SSL/Rotation-2way-Hint-v2"]
    summary = run_eval(ids, policy, 3, tmp_path / "run", samples=2, progress=False)
    overall = summary["overall"]
    assert overall["episodes"] == 6 and overall["samples"] == 12
    assert overall["format_rate"] == 1.0  # constrained to the answer grammar
    assert set(overall["pass_at"]) == {"1", "2"}
    assert 1.0 <= summary["by_id"]["SSL/Rotation-2way-Hint-v2"]["mean_turns"] <= 3.0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["env_kwargs"] == {"answer_format": "plain"} and run["constrain"] is True


class _Always90(JSONHandler):
    """A stand-in OpenAI-compatible server whose model always answers 90 degrees."""

    requests = 0

    def respond(self, body: dict) -> dict:
        type(self).requests += 1
        return {
            "choices": chat_choices(["<think>upright?</think> <answer>90</answer>"] * body["n"])
        }


def test_openai_policy_scores_what_the_endpoint_answers(tmp_path: Path) -> None:
    env_id, n = "SSL/Rotation-4way-v1", 12
    with serve(_Always90) as url:
        policy = make_model_policy(f"openai:{url}", batch_size=4, env_kwargs={"size": 32})
        summary = run_eval([env_id], policy, n, tmp_path / "run", progress=False)
    env = gym.make(env_id, size=32)
    answers = [env.reset(seed=s)[1]["answer"] for s in eval_seeds(env_id, n)]
    row = summary["by_id"][env_id]
    assert row["solve_rate"] == pytest.approx(answers.count("90") / n)
    assert row["format_rate"] == 1.0
    assert _Always90.requests == n  # one chat request per puzzle


def test_a_model_that_fails_to_load_leaves_no_run_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.policy import main as eval_main
    from agents.tiny import build_tiny_model

    out = tmp_path / "run"
    argv = ["--envs", "SSL/Rotation-4way-v1", "--episodes", "2", "--out", str(out)]
    assert eval_main([*argv, "--policy", f"hf:{tmp_path / 'nowhere'}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (out / "run.json").exists()  # nothing binds the folder to the failed run
    model = build_tiny_model(tmp_path / "tiny", seed=0)
    fixed = [*argv, "--policy", f"hf:{model}", "--answer-format", "plain", "--no-progress"]
    assert eval_main(fixed) == 0  # the same folder, the fixed command
