"""The objective of `qrl tune`: one trial trains its hyperparameters on K tuning seeds (``qrl train``'s code
path) and scores the mean normalised area under their evaluation curves; the running area is reported
after every evaluation, so the pruner can stop a trial early.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from qrl import runs
from qrl.errors import QRLError
from qrl.processes import process_start

TUNING_SEED_BASE = 100_000
"""Tuning runs use seeds 100000, 100001, ...: a run's environments take its seed (training) and seed + 10000
(evaluation episodes), so no tuning run shares a seed with a study run of seed < 10000 (studies use 0..n-1)."""


def tuning_seeds(k: int) -> list[int]:
    return [TUNING_SEED_BASE + i for i in range(k)]


def normalised_return(returns, bounds: tuple[float, float] | None) -> np.ndarray:
    """Returns mapped to [0, 1] between ``bounds`` (a random policy's return, the reward threshold),
    clipped; unchanged without bounds (environments with no threshold)."""
    from qrl.stats import normalise

    values = np.asarray(returns, dtype=float)
    return values if bounds is None else normalise(values, *bounds)


def normalised_auc(timesteps, returns, bounds: tuple[float, float] | None) -> float:
    """Area under one run's evaluation curve over its budget: each evaluation stands for the steps since the
    previous one, so 1 means at the threshold from the first evaluation on.

    Args:
        timesteps: ``(num_evals,)`` increasing. returns: ``(num_evals,)`` mean evaluation returns.
    """
    t = np.asarray(timesteps, dtype=float)
    if t.size == 0:
        raise QRLError("expected at least one evaluation to score a tuning run; got none")
    weights = np.diff(np.concatenate([[0.0], t]))
    return float(np.sum(weights * normalised_return(returns, bounds)) / t[-1])


class RunningArea:
    """The area under the evaluation curves of a trial's seeds so far, over the steps so far: what the
    pruner compares between trials at the same evaluation (the objective itself after the last one)."""

    def __init__(self, bounds: tuple[float, float] | None):
        self.bounds, self.area, self.steps, self.evaluations = bounds, 0.0, 0.0, 0

    def add(self, steps: float, mean_return: float) -> float:
        self.area += steps * float(normalised_return([mean_return], self.bounds)[0])
        self.steps += steps
        self.evaluations += 1
        return self.area / self.steps if self.steps else 0.0


class PruningReporter(BaseCallback):
    """After each of the run's periodic evaluations (the ``EvalCallback`` before it in the list): report the
    running area to the trial, and stop training if the pruner says so."""

    def __init__(self, trial, run_dir: Path, every: int, area: RunningArea):
        super().__init__()
        self.trial, self.run_dir, self.every, self.area = trial, run_dir, every, area
        self.last_timesteps, self.pruned = 0, False

    def _on_step(self) -> bool:
        if self.n_calls % self.every:
            return True
        columns = runs.read_evaluations(self.run_dir)
        timesteps, mean_return = columns["timesteps"][-1], columns["mean_return"][-1]
        value = self.area.add(timesteps - self.last_timesteps, mean_return)
        self.last_timesteps = timesteps
        self.trial.report(value, self.area.evaluations)
        self.pruned = self.trial.should_prune()
        return not self.pruned


def trial_config(settings: dict[str, Any], seed: int, overrides: dict[str, Any]):
    """The :class:`qrl.config.RunConfig` of one tuning run, as ``qrl train --set`` would resolve it."""
    from qrl.config import resolve

    config = resolve(settings["agent"], settings["env"], seed=seed, steps=settings["steps"],
                     device=settings["device"], overrides={**settings["overrides"], **overrides})
    spec = dataclasses.replace(config.env_spec, eval_freq=settings["eval_freq"] or config.env_spec.eval_freq,
                               eval_episodes=settings["eval_episodes"] or config.env_spec.eval_episodes)
    return dataclasses.replace(config, env_spec=spec)


def evaluate_trial(trial, settings: dict[str, Any], overrides: dict[str, Any]) -> float | None:
    """Train the trial's hyperparameters on every tuning seed; the mean normalised area, or ``None`` if
    the pruner stopped it. Per-seed areas and final returns go to the trial's user attributes."""
    from qrl.train import train

    bounds = tuple(settings["bounds"]) if settings["bounds"] else None
    folder = Path(settings["folder"]) / "trials" / str(trial.number)
    shutil.rmtree(folder, ignore_errors=True)  # numbers are unique in a storage: only a reset one left this
    area, aucs, finals = RunningArea(bounds), [], []
    for seed in settings["seeds"]:
        config = trial_config(settings, seed, overrides)
        run_dir = folder / f"seed-{seed}"
        every = max(config.env_spec.eval_freq // config.n_envs, 1)  # EvalCallback's count of calls
        reporter = PruningReporter(trial, run_dir, every, area)
        train(config, run_dir=run_dir, tensorboard=False, callbacks=[reporter])
        results = runs.read_results(run_dir)
        if results["status"] != "finished":  # Ctrl-C or SIGTERM: train() saved the run and returned
            raise KeyboardInterrupt
        if reporter.pruned:
            return None
        columns = runs.read_evaluations(run_dir)
        aucs.append(normalised_auc(columns["timesteps"], columns["mean_return"], bounds))
        finals.append(results["final_eval_mean"])
        trial.set_user_attr("seed_auc", aucs)
        trial.set_user_attr("final_return", finals)
    return float(np.mean(aucs))


def mark_trial(trial, token: str) -> None:
    """Who runs the trial (host, PID and its start time): a later `qrl tune` fails it if that process is gone."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("pid_start", process_start(os.getpid()))
    trial.set_user_attr("job", token)


def run_trial(settings: dict[str, Any], sampler_seed: int, token: str) -> dict[str, Any]:
    """Ask the study for one trial, train and score it, and tell the result (in a worker or in-process).

    A sampled combination that cannot be built or trained (a ``QRLError``, ``ValueError`` or
    ``AssertionError``, e.g. NaN losses) is pruned, as rl-zoo3 does; other errors fail the trial (not counted).
    """
    import optuna

    from qrl.threads import limit_threads
    from qrl.tune.space import Dimension, distributions, overrides
    from qrl.tune.storage import is_surplus, open_study

    limit_threads()
    started = time.perf_counter()
    study = open_study(settings, sampler_seed)
    dims = {k: Dimension(**d) for k, d in settings["space"].items()}
    trial = study.ask(distributions(dims))
    mark_trial(trial, token)
    out = {"number": trial.number, "token": token, "params": dict(trial.params)}
    if is_surplus(study, trial.number, settings["trials"]):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return out | {"state": "surplus", "seconds": 0.0}
    base = settings["base"]
    try:
        values = overrides(dims, trial.params, settings["algo"], base["hyperparams"], base["policy_kwargs"],
                           base["n_envs"])
        trial.set_user_attr("overrides", values)
        value = evaluate_trial(trial, settings, values)
    except KeyboardInterrupt:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except (QRLError, ValueError, AssertionError) as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out | {"state": "PRUNED", "error": str(exc), "seconds": time.perf_counter() - started}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("error", error[:2000])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return out | {"state": "FAIL", "error": error, "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    trial.set_user_attr("seconds", round(seconds, 1))
    if value is None:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out | {"state": "PRUNED", "seconds": seconds}
    study.tell(trial, value)
    return out | {"state": "COMPLETE", "value": value, "seconds": seconds}
