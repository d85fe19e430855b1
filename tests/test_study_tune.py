"""`qrl study` with a `tune` budget: each tuned agent is tuned (qrl tune's code, storage in the study folder)
before its evaluation runs, which use the tuned preset; the same command resumes without tuning again; the
report states each agent's budget, flags unequal ones and the seeds used for tuning and for evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qrl.report import write_report
from qrl.study import load_study, run_study

pytest.importorskip("optuna", reason="tuning in studies needs Optuna (pip install 'qrl[tune]')")

# 2 trials x 1 seed x 256 steps of the rl-zoo3 MLP (8 envs x 16 steps per rollout); the matched MLP is not tuned.
TUNE = {"trials": 2, "steps": 256, "seeds": 1,
        "space": {"n_steps": 16, "batch_size": [32, 64], "n_epochs": 1, "width": [16, 32]},
        "ppo-mlp-matched": None}


def study_file(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump({"name": "tuned", "envs": ["CartPole-v1"], "agents": ["ppo-mlp", "ppo-mlp-matched"],
                                    "seeds": 2, "steps": 256, "eval_freq": 128, "eval_episodes": 2, "tune": TUNE,
                                    **extra}))
    return path


@pytest.fixture(scope="module")
def tuned_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    messages: list[str] = []
    study_dir = run_study(study_file(root), out=root / "study", log=messages.append)
    return root, study_dir, messages


def test_tuned_agent_is_tuned_before_its_runs_which_use_the_tuned_preset(tuned_study):
    _, study_dir, messages = tuned_study
    folder = study_dir / "tune" / "ppo-mlp__CartPole-v1"
    preset = folder / "ppo-mlp-tuned.yaml"
    assert preset.is_file() and (study_dir / "tune" / "ppo-mlp__CartPole-v1.db").is_file()
    assert not (study_dir / "tune" / "ppo-mlp-matched__CartPole-v1").exists()  # tune: null
    tuning = next(i for i, m in enumerate(messages) if m.startswith("study tuned: tuning ppo-mlp on CartPole-v1"))
    first_run = next(i for i, m in enumerate(messages) if "CartPole-v1__ppo-mlp__0" in m)
    assert tuning < first_run
    section = yaml.safe_load(preset.read_text())["CartPole-v1"]
    config = yaml.safe_load((study_dir / "runs" / "CartPole-v1__ppo-mlp__0" / "config.yaml").read_text())
    assert config["agent"] == "ppo-mlp-tuned" and config["hyperparams"]["n_steps"] == section["n_steps"] == 16
    assert config["policy_kwargs"] == yaml.safe_load(yaml.safe_dump(config["policy_kwargs"]))
    assert "tuning runs used seeds 100000" in (folder / "summary.md").read_text()
    matched = yaml.safe_load((study_dir / "runs" / "CartPole-v1__ppo-mlp-matched__0" / "config.yaml").read_text())
    assert matched["agent"] == "ppo-mlp-matched"


def test_rerun_resumes_without_tuning_again(tuned_study):
    root, study_dir, _ = tuned_study
    before = (study_dir / "tune" / "ppo-mlp__CartPole-v1" / "trials.csv").read_text()
    messages: list[str] = []
    run_study(study_file(root), out=study_dir, log=messages.append)
    assert "4 finished before, 0 to run" in messages[0] and not any("tuning" in m for m in messages)
    assert (study_dir / "tune" / "ppo-mlp__CartPole-v1" / "trials.csv").read_text() == before


def test_report_states_budgets_seeds_and_flags_the_unequal_comparison(tuned_study):
    _, study_dir, _ = tuned_study
    text = write_report(study_dir, out=study_dir / "report-test", reps=50).read_text()
    assert "- Tuning budgets (`qrl tune` per environment" in text and "(**unequal**" in text
    assert "ppo-mlp tuned: 2 trials x 1 seed x 256 steps (search space: batch_size=[32, 64], n_epochs=1" in text
    assert "ppo-mlp-matched not tuned (its preset's hyperparameters)" in text
    assert ("- Seed use: evaluation runs seeds 0, 1 (evaluation episodes from 10000); tuning runs seeds 100000 "
            "(evaluation episodes from 110000): disjoint") in text
    assert "- **Unequal tuning budgets**: ppo-mlp tuned: 2 trials x 1 seed x 256 steps" in text
    row = next(line for line in text.splitlines() if line.startswith("| ppo-mlp | tuned:"))
    assert "| 2 / 0 / 0 |" in row or "| 1 / 1 / 0 |" in row or "| 0 / 2 / 0 |" in row
    assert "`tune/ppo-mlp__CartPole-v1/ppo-mlp-tuned.yaml`" in row


def test_bad_search_space_in_a_study_is_refused_before_anything_runs(tmp_path):
    path = study_file(tmp_path, tune={**TUNE, "space": {"n_layers": "int:1:3"}})  # a circuit key for an MLP
    with pytest.raises(Exception, match="unknown search-space key 'n_layers' for ppo-mlp"):
        load_study(path)
    assert not (tmp_path / "study").exists()
