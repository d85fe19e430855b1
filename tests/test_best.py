"""The best model of a run: the model and normaliser of its best evaluation, kept in ``best/``, and
``qrl eval RUN --best``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from qrl import runs
from qrl.cli import main
from qrl.config import resolve
from qrl.evaluate import load_model
from qrl.train import EvalLog, train

REFERENCE = Path(__file__).resolve().parents[1] / "runs" / "reference"


class RecordAtEvaluations(BaseCallback):
    """The policy's parameters and the normaliser's observation mean at every evaluation step."""

    def __init__(self, every: int):
        super().__init__()
        self.every, self.seen = every, {}

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            norm = self.model.get_vec_normalize_env()
            self.seen[self.num_timesteps] = ({k: v.clone() for k, v in self.model.policy.state_dict().items()},
                                             norm.obs_rms.mean.copy())
        return True


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short ppo-vqc run (2 layers) with an evaluation every 512 steps, and what the policy was at each."""
    config = resolve("ppo-vqc", "CartPole-v1", seed=3, steps=4096, overrides={"policy_kwargs.n_layers": 2})
    spec = dataclasses.replace(config.env_spec, eval_freq=512, eval_episodes=3)
    recorder = RecordAtEvaluations(512)
    run = train(dataclasses.replace(config, env_spec=spec), out=tmp_path_factory.mktemp("runs"), callbacks=[recorder],
                tensorboard=False)
    return run, recorder.seen


def test_best_model_is_the_model_and_normaliser_of_the_best_evaluation(trained):
    run, seen = trained
    rows = runs.read_evaluations(run)
    best = max(rows["mean_return"])
    last_best = max(int(t) for t, r in zip(rows["timesteps"], rows["mean_return"], strict=True) if r == best)
    folder, chosen = runs.best_checkpoint(run)
    assert chosen["timesteps"] == last_best and chosen["mean_return"] == best and chosen["episodes"] == 3
    assert folder == run / "best" / str(last_best) and [p.name for p in (run / "best").iterdir() if p.is_dir()] \
        == [str(last_best)]
    assert last_best < rows["timesteps"][-1]  # this seed's best is not its end, so the two models differ
    model, _ = load_model(run, best=True)
    params, obs_mean = seen[last_best]
    for name, value in model.policy.state_dict().items():
        torch.testing.assert_close(value, params[name], rtol=0, atol=0)
    final, _ = load_model(run)
    assert any(not torch.equal(v, final.policy.state_dict()[k]) for k, v in params.items())
    import pickle

    with open(folder / runs.VECNORMALIZE, "rb") as f:
        norm = pickle.load(f)
    np.testing.assert_array_equal(norm.obs_rms.mean, obs_mean)


def test_eval_best_names_the_best_model_and_plain_eval_the_final(trained, capsys):
    run, _ = trained
    _, chosen = runs.best_checkpoint(run)
    assert main(["eval", str(run), "--best", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert f"best model: step {chosen['timesteps']}, chosen by return {chosen['mean_return']:.1f} over 3 episodes" \
        in out
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "best model" not in capsys.readouterr().out


def test_eval_best_of_a_run_without_a_best_model_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(REFERENCE / "CartPole-v1__ppo-vqc__0", run)  # trained before best models were kept
    assert main(["eval", str(run), "--best"]) == 2
    assert "has no best model" in one_error(capsys)
    assert not (run / "best").exists()


class FakeModel:
    """What :meth:`EvalLog.keep_best` uses of a model: its step count, ``save`` and the normaliser."""

    def __init__(self):
        self.num_timesteps, self.saved = 0, []

    def save(self, path):
        Path(path).write_text(str(self.num_timesteps))
        self.saved.append(self.num_timesteps)

    def get_vec_normalize_env(self):
        return None


def test_keep_best_takes_ties_late_ignores_worse_and_other_models(tmp_path):
    log, model = EvalLog(tmp_path, 0.0), FakeModel()
    for steps, mean in [(10, 5.0), (20, 9.0), (30, 7.0), (40, 9.0), (50, 8.0)]:
        model.num_timesteps = steps
        log.add(steps, [mean, mean])
        log.keep_best(model)
    assert model.saved == [10, 20, 40]
    folder, chosen = runs.best_checkpoint(tmp_path)
    assert folder.name == "40" and chosen == {"timesteps": 40, "mean_return": 9.0, "std_return": 0.0, "episodes": 2}
    model.num_timesteps = 60  # the last evaluation is of another model (step 50): nothing saved
    log.rows[-1]["mean_return"] = 100.0
    log.keep_best(model)
    assert model.saved == [10, 20, 40]
    resumed = EvalLog(tmp_path, 0.0, rows=log.rows[:4], best=chosen, episodes=2)  # as `qrl train --resume` builds it
    model.num_timesteps = 40
    resumed.keep_best(model)  # the checkpoint's own evaluation, equal to the best: saved again, same folder
    assert json.loads((tmp_path / "best" / "40" / runs.BEST_EVALUATION).read_text()) == chosen
