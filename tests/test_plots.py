"""qrl plot: evaluation curves of run folders to an image."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrl.cli import main
from qrl.runs import read_evaluations

REFERENCE = Path(__file__).resolve().parents[1] / "runs" / "reference"


def test_plot_reference_runs(tmp_path, capsys):
    runs = sorted(str(p) for p in REFERENCE.glob("CartPole-v1__ppo-vqc__*"))
    assert len(runs) == 3
    out = tmp_path / "curves.png"
    assert main(["plot", *runs, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(out)


def test_read_evaluations_columns():
    ev = read_evaluations(REFERENCE / "CartPole-v1__ppo-vqc__0")
    assert set(ev) == {"timesteps", "mean_return", "std_return", "wall_clock_s"}
    assert ev["timesteps"][0] == 5000 and max(ev["mean_return"]) == pytest.approx(500.0)


def test_plot_of_a_non_run_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "is not a finished run folder" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
