"""`qrl tune`: validate everything (no file is made before), then run trials until the study holds the
number asked for, one at a time in this process or ``workers`` at a time in a pool, then write the outputs.

Resuming is running the same command again: finished trials are kept, trials whose process died are
failed (not counted), and only the missing ones run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrl.errors import QRLError
from qrl.tune import storage
from qrl.tune.objective import run_trial, trial_config, tuning_seeds
from qrl.tune.space import check_searchable, resolve_space

PRUNERS = ("median", "none")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclass
class TuneRequest:
    """What `qrl tune` was asked (its flags); :func:`prepare` turns it into the settings workers get."""

    agent: str
    env: str
    trials: int
    steps: int | None = None
    seeds: int = 3
    workers: int = 1
    storage: str | None = None
    name: str | None = None
    out: str = "runs/tune"
    preset: str | None = None
    space: dict[str, Any] = field(default_factory=dict)
    search: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    eval_freq: int | None = None
    eval_episodes: int | None = None
    pruner: str = "median"
    seed: int = 0
    device: str | None = None


def _check_numbers(request: TuneRequest) -> None:
    for flag, value in (("--trials", request.trials), ("--workers", request.workers), ("--seeds", request.seeds),
                        ("--steps", request.steps), ("--eval-freq", request.eval_freq),
                        ("--eval-episodes", request.eval_episodes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise QRLError(f"{flag} must be a whole number >= 1; got {value!r}; try {flag} 10")
    if request.pruner not in PRUNERS:
        raise QRLError(f"unknown pruner {request.pruner!r}; expected one of {', '.join(PRUNERS)}")
    if request.seed < 0:
        raise QRLError(f"--seed must be >= 0; got {request.seed}")


def _check_preset_path(path: Path, algo: str) -> Path:
    from qrl.config import ALGOS
    from qrl.io import check_output_folder

    if path.suffix not in (".yaml", ".yml") or path.stem.split("-")[0].lower() != algo or "-" not in path.stem:
        raise QRLError(f"--preset {path}: expected a file named <algo>-<variant>.yaml with algo {algo} (so `qrl "
                       f"train` takes its algorithm from the name; algorithms: {', '.join(ALGOS)}); try --preset "
                       f"agents/{algo}-tuned.yaml")
    check_output_folder(path.parent, "--preset")
    return path


def prepare(request: TuneRequest) -> dict[str, Any]:
    """Check every input and resolve the settings (plain values, for pool workers); creates nothing."""
    from qrl.config import agent_name, is_vqc_policy
    from qrl.io import check_output_folder

    _check_numbers(request)
    name = request.name or f"{agent_name(request.agent)}__{request.env}"
    if not _NAME.fullmatch(name):
        raise QRLError(f"--name {name!r}: expected letters, digits, '-', '_' and '.', not starting with a dot")
    storage.optuna_module()
    seeds = tuning_seeds(request.seeds)
    settings: dict[str, Any] = {"agent": request.agent, "env": request.env, "steps": request.steps,
                                "seeds": seeds, "eval_freq": request.eval_freq, "eval_episodes": request.eval_episodes,
                                "device": request.device, "overrides": dict(request.overrides)}
    config = trial_config(settings, seeds[0], {})  # unknown agent or env, bad --set: QRLError
    fixed = {k.partition(".")[2] or k for k in request.overrides}
    dims = resolve_space(agent_name(request.agent), config.algo, is_vqc_policy(config.policy), request.space,
                         request.search)
    dims = {k: (dataclasses.replace(d, kind="preset") if k in fixed and k not in request.space else d)
            for k, d in dims.items()}  # a key fixed with --set is not searched
    check_searchable(request.agent, dims)
    folder = check_output_folder(request.out) / name
    url = storage.check_storage_url(request.storage or storage.default_storage(folder), request.storage is None)
    preset = _check_preset_path(Path(request.preset or folder / f"{agent_name(request.agent)}-tuned.yaml"),
                                config.algo)
    _check_builds(config)
    every = max(config.env_spec.eval_freq // config.n_envs, 1) * config.n_envs
    settings |= {"steps": config.n_timesteps, "eval_freq": config.env_spec.eval_freq,
                 "eval_episodes": config.env_spec.eval_episodes, "algo": config.algo, "trials": request.trials,
                 "space": {k: dataclasses.asdict(d) for k, d in dims.items()}, "name": name, "storage": url,
                 "folder": str(folder.resolve()), "preset": str(preset), "pruner": request.pruner,
                 "seed": request.seed, "workers": request.workers, "evaluations_per_seed": config.n_timesteps // every,
                 "base": {"hyperparams": config.hyperparams, "policy_kwargs": config.policy_kwargs,
                          "n_envs": config.n_envs}}
    stored = storage.stored_settings(url, name)
    settings["bounds"] = stored.get("bounds") if stored else random_bounds(config)
    if stored is not None:
        storage.check_same_settings(settings, stored)
    return settings


def _check_builds(config) -> None:
    """The preset's own hyperparameters build a model that fits in memory (sampled ones are tried per trial)."""
    from qrl.train import build_model, check_training_memory

    model, env = build_model(config)
    try:
        check_training_memory(config, model)
    finally:
        env.close()


def random_bounds(config) -> list[float] | None:
    """``[random policy's mean return, reward threshold]``: the normalisation of the objective (0: no better
    than acting at random, 1: at the threshold); ``None`` without a threshold above the random return."""
    import gymnasium as gym
    import numpy as np

    threshold = config.env_spec.reward_threshold
    if threshold is None:
        return None
    env = gym.make(config.env_spec.id, **config.env_spec.make_kwargs)
    env.action_space.seed(config.seed)
    returns = []
    for episode in range(config.env_spec.eval_episodes):
        env.reset(seed=config.seed + 10_000 + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    low = float(np.mean(returns))
    return [low, float(threshold)] if math.isfinite(low) and float(threshold) > low else None


def _sampler_seed(settings: dict[str, Any], study, k: int) -> int:
    """A new sampler seed per trial (a resumed command must not repeat the first command's random trials)."""
    return (settings["seed"] * 1_000_003 + len(study.get_trials(deepcopy=False)) * 7_919 + k) % 2**31


class Progress:
    """One line per trial on stderr; stops the command when too many trials fail."""

    def __init__(self, settings: dict[str, Any], log: Callable[[str], None]):
        self.settings, self.log, self.failed = settings, log, 0

    def report(self, study, result: dict[str, Any]) -> None:
        done, _ = storage.counts(study, set())
        head = f"[{done}/{self.settings['trials']}] trial {result['number']}"
        state = result["state"]
        if state == "COMPLETE":
            self.log(f"{head}: objective {result['value']:.4f} in {result['seconds']:.0f} s")
        elif state == "PRUNED":
            why = f" ({result['error']})" if result.get("error") else ""
            self.log(f"{head}: pruned{why} in {result['seconds']:.0f} s")
        elif state == "surplus":
            self.log(f"{head}: not run; another command sharing the storage already started the last trials")
        else:
            self.failed += 1
            self.log(f"{head}: failed, not counted: {result.get('error')}")
            if self.failed > max(3, self.settings["trials"]):
                raise QRLError(f"{self.failed} trials failed; last error: {result.get('error')}; expected trials "
                               f"that train; see {self.settings['folder']}/trials/")


def run_here(settings: dict[str, Any], study, progress: Progress) -> None:
    """Trials one at a time in this process until the study holds ``trials`` counted ones."""
    k = 0
    while True:
        storage.fail_stale(study, progress.log, settings["folder"])
        done, others = storage.counts(study, set())
        if done + others >= settings["trials"]:
            return
        k += 1
        progress.report(study, run_trial(settings, _sampler_seed(settings, study, k), uuid.uuid4().hex))


def run_pool(settings: dict[str, Any], study, progress: Progress) -> None:
    """Trials ``workers`` at a time in fresh processes sharing the storage; a worker that dies (killed) is
    replaced and its trial failed (not counted)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from qrl.processes import watch_parent

    context, submitted = multiprocessing.get_context("spawn"), 0
    for _ in range(3 + settings["trials"]):  # pools: a new one after a worker died
        futures: dict[Any, str] = {}
        with ProcessPoolExecutor(settings["workers"], mp_context=context, initializer=watch_parent,
                                 initargs=(os.getpid(),)) as pool:
            try:
                while True:
                    storage.fail_stale(study, progress.log, settings["folder"])
                    done, others = storage.counts(study, set(futures.values()))
                    need = settings["trials"] - done - others - len(futures)
                    while need > 0 and len(futures) < settings["workers"]:
                        token, submitted, need = uuid.uuid4().hex, submitted + 1, need - 1
                        futures[pool.submit(run_trial, settings, _sampler_seed(settings, study, submitted),
                                            token)] = token
                    if not futures:
                        return
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        futures.pop(future)
                        progress.report(study, future.result())
            except BrokenProcessPool:
                progress.log("qrl tune: a worker process died (killed?); its trial is failed and run again")
                progress.failed += 1


def run_tune(request: TuneRequest, log: Callable[[str], None] | None = None) -> str:
    """Run (or resume) a tuning study; returns the summary (also in ``<out>/<name>/summary.md``)."""
    from qrl.tune.output import write_outputs

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    settings = prepare(request)
    Path(settings["folder"]).mkdir(parents=True, exist_ok=True)
    study = storage.create_study(settings)
    done, _ = storage.counts(study, set())
    seeds = ", ".join(map(str, settings["seeds"]))
    log(f"tuning {settings['agent']} on {settings['env']}: {settings['trials']} trials ({done} done before) of "
        f"{len(settings['seeds'])} seeds x {settings['steps']} steps (seeds {seeds}), {settings['workers']} "
        f"worker(s) -> {settings['folder']} ({settings['storage']})")
    progress = Progress(settings, log)
    (run_here if settings["workers"] == 1 else run_pool)(settings, study, progress)
    done, others = storage.counts(study, set())
    if done < settings["trials"] and others:
        log(f"qrl tune: {others} trial(s) still running in another command sharing the storage; run this command "
            f"again when they end to finish the study")
    return write_outputs(study, settings, log)
