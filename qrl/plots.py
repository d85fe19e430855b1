"""Plots of run results: evaluation curves over training."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from qrl.errors import QRLError
from qrl.io import atomic_write, check_image_path, write_text
from qrl.runs import read_evaluations


def plot_runs(run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
    """Evaluation mean return (band: +- one std over the evaluation episodes) against timesteps.

    One line per run, labelled by the run folder's name; a dashed line at the environment's
    reward threshold when the runs share one.
    """
    from qrl.evaluate import load_run_config

    check_image_path(out)
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


def plot_sweep(rows, swept: str, out: Path, device: str | None = None, title: str | None = None,
               threshold: float | None = None) -> Path:
    """Return (mean +- std over episodes) against a swept noise strength or shot count; the table is
    written next to the image as ``<out>.csv``. Zero noise sits on a linear stretch of the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_image_path(out)
    xs = [r.value for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(xs, [r.mean for r in rows], yerr=[r.std for r in rows], marker="o", capsize=3, label="policy")
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label="reward threshold")
        ax.legend(fontsize=8)
    positive = [x for x in xs if x > 0]
    if positive and max(positive) / min(positive) >= 20:
        if 0 in xs:
            ax.set_xscale("symlog", linthresh=min(positive))
            ax.set_xlim(left=-0.3 * min(positive))
        else:
            ax.set_xscale("log")
    ax.set_xlabel({"shots": "shots per circuit", "readout_bit_flip": "bit-flip probability per qubit at readout"}
                  .get(swept, f"{swept} probability per gate"))
    ax.set_ylabel("return (mean +- std over episodes)")
    ax.set_title(title or f"return vs {swept}" + (f" on {device}" if device else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([swept, "mean_return", "std_return", "circuit_executions", "shots_per_circuit"])
    for r in rows:
        writer.writerow([r.value, r.mean, r.std, r.executions, r.point.shots or ""])
    write_text(out.with_suffix(".csv"), buf.getvalue())
    atomic_write(out, lambda p: fig.savefig(p, dpi=110, format=out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out
