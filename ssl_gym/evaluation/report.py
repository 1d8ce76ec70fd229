"""Reports of a run: metrics per id, family and difficulty, Markdown tables, plots."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssl_gym.files import atomic_path, write_atomic


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``1 - C(n - c, k) / C(n, k)``, computed as a stable product.

    Raises:
        ValueError: Unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_ks(samples: int) -> list[int]:
    """The k reported for ``samples`` completions per puzzle: 1, powers of 2, and K."""
    return sorted({1, samples} | {2**j for j in range(1, samples.bit_length()) if 2**j <= samples})


def metrics(records: Sequence[dict[str, Any]], samples: int) -> dict[str, Any]:
    """The metrics of a group of episode records (pooled over episodes and samples)."""
    scores = np.array([r["scores"] for r in records], dtype=float)
    chance = np.array([r["chance"] for r in records], dtype=float)
    solved = (scores == 1.0).sum(axis=1)
    # hinted episodes are judged by their reward, against the blind player's
    earned = np.array([np.mean(r["rewards"] if r.get("hinted") else r["scores"]) for r in records])
    normalised = (earned - chance) / np.maximum(1.0 - chance, 1e-12)
    rewards = np.array([np.mean(r["rewards"]) for r in records], dtype=float)
    return {
        "episodes": len(records),
        "samples": int(scores.size),
        "mean_reward": float(np.mean([r["rewards"] for r in records])),
        "reward_ci95": reward_ci95(rewards),
        "mean_score": float(scores.mean()),
        "solve_rate": float((scores == 1.0).mean()),
        "format_rate": float(np.mean([r["format_ok"] for r in records])),
        "chance": float(chance.mean()),
        "normalised_score": float(normalised.mean()),
        "pass_at": {
            str(k): float(np.mean([pass_at_k(samples, int(c), k) for c in solved]))
            for k in pass_ks(samples)
        },
        "mean_turns": float(np.mean([r["turns"] for r in records])),
    }


def reward_ci95(rewards: np.ndarray) -> float:
    """Half-width of the normal 95% interval of the mean of per-puzzle rewards.

    What a held-out mean is worth: on a ``-Hint`` id a blind player's episode reward
    spreads from a loss (below 0) to a win (near 1), so 200 puzzles pin its mean down to
    a few hundredths only. 0 for fewer than two puzzles.
    """
    if rewards.size < 2:
        return 0.0
    return float(1.96 * rewards.std(ddof=1) / np.sqrt(rewards.size))


def _groups(records: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r[key], []).append(r)
    return out


def summarize(
    records: Sequence[dict[str, Any]],
    ids: Sequence[str],
    episodes: int,
    samples: int,
    run: dict[str, Any],
) -> dict[str, Any]:
    """Metrics overall, by id, family and difficulty, from the first ``episodes`` of each id."""
    order = {env_id: n for n, env_id in enumerate(ids)}
    kept = sorted(
        (r for r in records if r["id"] in order and r["episode"] < episodes),
        key=lambda r: (order[r["id"]], r["episode"]),
    )
    by_id = {}
    for env_id, group in _groups(kept, "id").items():
        first = group[0]
        facts = {k: first[k] for k in ("family", "difficulty")}
        by_id[env_id] = {**facts, **metrics(group, samples)}
    return {
        "run": {**run, "episodes": episodes},
        "overall": metrics(kept, samples),
        "by_id": by_id,
        "by_family": {k: metrics(g, samples) for k, g in _groups(kept, "family").items()},
        "by_difficulty": {
            k: metrics(g, samples)
            for k, g in sorted(
                _groups(kept, "difficulty").items(), key=lambda kv: _difficulty_rank(kv[0])
            )
        },
    }


def _difficulty_rank(name: str) -> int:
    from ssl_gym.core import DIFFICULTIES

    return DIFFICULTIES.index(name) if name in DIFFICULTIES else len(DIFFICULTIES)


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables: by family, by difficulty, by id."""
    run = summary["run"]
    ks = list(summary["overall"]["pass_at"])
    head = ["", "episodes", "reward", "±95%", "score", "solved", "format", "chance", "normalised"]
    head += [f"pass@{k}" for k in ks] + ["turns"]
    lines = [
        f"# Evaluation of `{run['policy']}`",
        "",
        f"{run['episodes']} held-out puzzles per id (seed set {run['seed']}), "
        f"{run['samples']} sample(s) each. Normalised score: (score - chance) / (1 - chance); "
        "±95%: half-width of the 95% interval of the mean reward; on -Hint ids chance is "
        "the blind-optimal reward.",
    ]
    sections = (
        ("Overall", {"all": summary["overall"]}),
        ("By family", summary["by_family"]),
        ("By difficulty", summary["by_difficulty"]),
        ("By id", summary["by_id"]),
    )
    for title, rows in sections:
        lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|---|" + "---:|" * (len(head) - 1))
        for name, m in rows.items():
            cells = [
                m["mean_reward"],
                m.get("reward_ci95", 0.0),
                m["mean_score"],
                m["solve_rate"],
                m["format_rate"],
            ]
            cells += [m["chance"], m["normalised_score"], *m["pass_at"].values()]
            row = [name, str(m["episodes"]), *(f"{v:.3f}" for v in cells)]
            lines.append("| " + " | ".join([*row, f"{m['mean_turns']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def agg_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` drawn by Agg, laid out so nothing is clipped.

    No pyplot: nothing global changes (the backend a notebook uses stays), and the figure
    is freed with its last reference. Constrained layout shrinks the axes to make room
    for what sits outside them (the legend, rotated tick labels).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def legend_beside(ax: Any) -> Any:
    """The axes' legend to the right of its data area, top aligned: it never hides data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def plot_scores(groups: dict[str, dict[str, Any]], path: Path, title: str) -> Any:
    """Bar chart of the mean score per group, with each group's chance marked.

    Returns:
        The matplotlib ``Figure`` written to ``path`` (PNG).
    """
    names = list(groups)
    fig = agg_figure(max(4.0, 0.8 * len(names) + 2) + 1.2, 4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, [groups[n]["mean_score"] for n in names], color="tab:blue", label="score")
    ax.scatter(
        x,
        [groups[n]["chance"] for n in names],
        color="black",
        marker="_",
        s=400,
        label="chance",
        zorder=3,
    )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="mean score", ylim=(0, 1.05), title=title)
    legend_beside(ax)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return fig


def write_summary(summary: dict[str, Any], out: Path) -> None:
    """``summary.json``, ``summary.md`` and the two plots (skipped without matplotlib)."""
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "summary.md", markdown(summary))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)")
        return
    policy = summary["run"]["policy"]
    plot_scores(summary["by_family"], out / "score_by_family.png", f"{policy}: by family")
    plot_scores(
        summary["by_difficulty"], out / "score_by_difficulty.png", f"{policy}: by difficulty"
    )
