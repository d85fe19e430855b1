"""Plots of run results: evaluation curves over training."""

from __future__ import annotations

import csv
from pathlib import Path

from qrl.errors import QRLError
from qrl.io import atomic_write


def read_evaluations(run_dir: Path) -> dict[str, list[float]]:
    """A run's ``evaluations.csv`` as columns: timesteps, mean_return, std_return, wall_clock_s."""
    path = Path(run_dir) / "evaluations.csv"
    if not path.is_file():
        raise QRLError(f"{run_dir} has no evaluations.csv; expected a run folder written by `qrl train`")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in rows[0]} if rows else {}


def plot_runs(run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
    """Evaluation mean return (band: +- one std over the evaluation episodes) against timesteps.

    One line per run, labelled by the run folder's name; a dashed line at the environment's
    reward threshold when the runs share one.
    """
    from qrl.train import load_run_config

    if not run_dirs:
        raise QRLError("expected at least one run folder")
    runs = [(Path(d), load_run_config(d), read_evaluations(d)) for d in run_dirs]  # validate before drawing

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    thresholds = set()
    for run_dir, config, ev in runs:
        thresholds.add(config.env_spec.reward_threshold)
        if not ev:
            continue
        lo = [m - s for m, s in zip(ev["mean_return"], ev["std_return"], strict=True)]
        hi = [m + s for m, s in zip(ev["mean_return"], ev["std_return"], strict=True)]
        (line,) = ax.plot(ev["timesteps"], ev["mean_return"], label=Path(run_dir).name)
        ax.fill_between(ev["timesteps"], lo, hi, color=line.get_color(), alpha=0.15)
    if len(thresholds) == 1 and None not in thresholds:
        ax.axhline(thresholds.pop(), color="gray", linestyle="--", linewidth=1, label="reward threshold")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("evaluation return (mean +- std)")
    ax.set_title(title or "evaluation return over training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: fig.savefig(p, dpi=110, format=out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out
