"""Learning: the quantum agent solves CartPole-v1 (expensive: ~10 minutes; `make test-expensive`)."""

from __future__ import annotations

import csv
import json

import pytest

from qrl.config import resolve
from qrl.train import train


@pytest.mark.expensive
@pytest.mark.timeout(3600)
def test_vqc_ppo_solves_cartpole_within_100k_steps(tmp_path):
    # The README's command: qrl train --agent ppo-vqc --env CartPole-v1 --seed 0 (100k steps, torch backend)
    config = resolve("ppo-vqc", "CartPole-v1", seed=0, device="torch")
    assert config.n_timesteps == 100_000
    run_dir = train(config, out=tmp_path)
    with open(run_dir / "evaluations.csv") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    assert rows[-1]["timesteps"] <= 100_000 + config.n_envs * config.hyperparams["n_steps"]
    best = max(r["mean_return"] for r in rows)
    assert best >= 475, f"best evaluation mean {best} < 475 within 100k steps: {rows}"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps_to_threshold"] is not None and results["steps_to_threshold"] <= 100_000
