"""The run folder's schema (qrl.runs): steps to threshold, results.json versions, study table columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qrl import runs
from qrl.errors import QRLError

REFERENCE = Path(__file__).resolve().parents[1] / "runs" / "reference"


def test_steps_to_threshold_first_crossing_and_never():
    t = [1000, 2000, 3000, 4000, 5000]
    assert runs.steps_to_threshold(t, [10, 470, 480, 400, 500], 475) == 3000
    assert runs.steps_to_threshold(t, [10, 475, 480, 400, 500], 475) == 2000  # "at or above"
    assert runs.steps_to_threshold(t, [10, 474.9, 300, 0, 474.99], 475) == math.inf
    assert runs.steps_to_threshold(t, [-90, -120, -99, -80, -70], -100) == 1000  # negative thresholds (Acrobot)
    with pytest.raises(QRLError, match="one length"):
        runs.steps_to_threshold(t, [1, 2], 1)


def test_results_record_stores_never_reached_as_null():
    rows = [{"timesteps": 1000, "mean_return": 10.0}, {"timesteps": 2000, "mean_return": 480.0}]
    kwargs = dict(status="finished", agent="a", env="E", seed=0, timesteps=2000, wall=2.0, final_returns=[480.0],
                  parameters={"total": 1, "quantum": 1, "classical": 0}, circuit_executions=0, cost=None)
    reached = runs.results_record(evaluations=rows, threshold=475, **kwargs)
    assert reached["steps_to_threshold"] == 2000 and isinstance(reached["steps_to_threshold"], int)
    assert runs.results_record(evaluations=rows, threshold=500, **kwargs)["steps_to_threshold"] is None
    assert runs.results_record(evaluations=rows, threshold=None, **kwargs)["steps_to_threshold"] is None
    assert set(reached) == set(runs.RESULT_KEYS) and reached["schema"] == runs.SCHEMA_VERSION
    assert reached["best_eval_mean"] == 480.0 and reached["steps_per_s"] == 1000.0


def test_old_reference_runs_are_committed():
    """Most committed runs were written before the schema had a number (read as schema 1): the test below keeps
    them readable."""
    schemas = [runs.read_results(p.parent)["schema"] for p in REFERENCE.glob("*/results.json")]
    assert schemas.count(1) >= 5 and set(schemas) <= {1, runs.SCHEMA_VERSION}


@pytest.mark.parametrize("run", sorted(p.parent.name for p in REFERENCE.glob("*/results.json")))
def test_committed_reference_runs_read(run):
    results = runs.read_results(REFERENCE / run)
    assert results["schema"] in (1, runs.SCHEMA_VERSION)  # 1: written before the schema had a number
    row = runs.run_row(results)
    assert set(row) == set(runs.RUN_FIELDS) - set(runs.RUN_ID_FIELDS) - {"status", "attempts", "error"}
    assert row["params_total"] == results["parameters"]["total"]


@pytest.mark.parametrize(("text", "message"), [
    ("{", "is damaged \\(not JSON"),
    ("[1, 2]", "expected a mapping; got list"),
    (json.dumps({"status": "finished"}), "is damaged: no agent"),
    (json.dumps({"schema": 99}), "results schema 99"),
])
def test_damaged_results_are_refused_with_a_message(tmp_path, text, message):
    (tmp_path / runs.RESULTS).write_text(text)
    with pytest.raises(QRLError, match=message):
        runs.read_results(tmp_path)
    assert not runs.is_finished(tmp_path)


def test_study_columns_are_defined_once():
    assert runs.RECORD_FIELDS == (*runs.RUN_ID_FIELDS, *runs.EVALUATION_FIELDS)
    assert set(runs.OPTIONAL_RUN_FIELDS) <= set(runs.RUN_FIELDS)
    assert len(set(runs.RUN_FIELDS)) == len(runs.RUN_FIELDS)


REFERENCE_RUNS = sorted(p.parent.name for p in REFERENCE.glob("*/model.zip"))


@pytest.mark.parametrize("run", REFERENCE_RUNS)
def test_committed_reference_runs_load_and_evaluate(run):
    from qrl.evaluate import evaluate_run

    results = runs.read_results(REFERENCE / run)
    mean, std, config, _ = evaluate_run(REFERENCE / run, episodes=1)
    assert (config.agent, config.env, config.seed) == (results["agent"], results["env"], results["seed"])
    assert math.isfinite(mean) and std == 0.0  # one episode


def test_committed_reference_study_reports(tmp_path):
    from qrl.report import write_report

    study = REFERENCE / "cartpole-ppo-study"
    path = write_report(study, out=tmp_path / "report", reps=50)
    text = path.read_text()
    assert "# Study report: cartpole-ppo" in text
    for agent in ("ppo-vqc", "ppo-mlp-matched", "ppo-mlp"):
        assert agent in text
