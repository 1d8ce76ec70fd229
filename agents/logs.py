"""What a training run records: the metrics log, TensorBoard, the curves, device peaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

#: Dense bf16 peak TFLOP/s of the devices whose name contains the key (for ``perf/mfu``).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def peak_flops(device: str) -> float | None:
    """The device's dense bf16 peak in FLOP/s, when it is a known GPU."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((t * 1e12 for key, t in PEAK_TFLOPS.items() if key in name), None)


def plot_curves(history: list[dict[str, float]], path: Path, title: str) -> Any:
    """Reward and held-out accuracy by step, as a PNG.

    The legend sits beside the axes, and the step axis has whole-number ticks only.

    Returns:
        The matplotlib ``Figure`` written to ``path``.
    """
    from matplotlib.ticker import MaxNLocator

    from ssl_gym.evaluation.report import agg_figure, legend_beside

    fig = agg_figure(8.5, 4)
    ax = fig.add_subplot()
    for key, label in (
        ("rollout/reward_mean", "rollout reward"),
        ("eval/solve_rate", "held-out greedy solve rate"),
    ):
        pts = [(h["step"], h[key]) for h in history if key in h]
        if pts:
            ax.plot(
                *zip(*pts, strict=True), marker="o" if key.startswith("eval") else None, label=label
            )
    chance = next((h["env/chance"] for h in history if "env/chance" in h), None)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", label="chance")
    ax.set(xlabel="step", ylabel="score", ylim=(-0.02, 1.02), title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_beside(ax)
    fig.savefig(path, dpi=100)
    return fig


# --- the run -------------------------------------------------------------------------------


class MetricsLog:
    """``run/metrics.jsonl`` (one JSON row per step, rank 0) and TensorBoard if installed."""

    def __init__(self, run: Path, history: list[dict[str, float]], main: bool) -> None:
        self.path, self.main = run / "metrics.jsonl", main
        self.writer = tensorboard_writer(run) if main else None
        if main:  # a resumed run rewrites the rows its checkpoint kept
            self.path.write_text("".join(json.dumps(h) + "\n" for h in history))

    def write(self, row: dict[str, float]) -> None:
        """Append one row (and its scalars to TensorBoard)."""
        if self.main:
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                self.writer.add_scalar(key, value, int(row["step"]))

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()


def tensorboard_writer(run: Path) -> Any:
    """A TensorBoard writer in ``run/tb`` when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run / "tb"))
