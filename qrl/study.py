"""Convergence-comparison studies: agents x envs x seeds (x a hyperparameter grid), run locally or on Ray.

A study folder holds ``study.yaml`` (the resolved definition), ``runs/<run_id>/`` (run folders),
``failures/<run_id>.json``, ``tune/`` (equal-budget tuning, :func:`tune_agents`) and the tables ``qrl report``
reads (columns: :mod:`qrl.runs`), rebuilt after every run. File format: :func:`load_study`; faults and
resuming: :func:`run_study`.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qrl import runs
from qrl.config import agent_name
from qrl.errors import QRLError
from qrl.io import write_json, write_text, write_yaml
from qrl.processes import holder, this_process, wait_for_workers, watch_parent

EXECUTORS = ("local", "ray")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_STUDY_KEYS = ("name", "envs", "agents", "seeds", "steps", "eval_freq", "eval_episodes", "retries", "grid", "tune",
               "final_evals", "best_model", "device")
REPORT_ONLY_KEYS = ("final_evals",)
"""Study keys only the report reads: changing them in a study folder needs no run again."""
DEFAULT_FINAL_EVALS = 3
"""The report's final return is the mean of a run's last this many evaluations (``final_evals``)."""
TUNE_KEYS = ("trials", "steps", "seeds", "space")
"""A tuning budget (``tune:`` in a study file): trials, training steps per seed, seeds per trial, and optionally
changes to the search space (``qrl tune --space`` as a mapping, e.g. ``{n_steps: [16, 32]}``)."""
DEFAULT_TUNE_SEEDS = 3
TUNE_FOLDER = "tune"
"""Tuning studies in a study folder: ``tune/<agent>__<env>.db`` and ``tune/<agent>__<env>/`` (``qrl tune``'s)."""


@dataclass(frozen=True)
class RunKey:
    """One run of a study: an environment, an agent (with grid overrides), a seed."""

    env: str
    agent: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The agent as the report names it: ``ppo-vqc`` or ``ppo-vqc@learning_rate=lin_0.01``."""
        if not self.overrides:
            return agent_name(self.agent)
        return agent_name(self.agent) + "@" + ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))

    @property
    def run_id(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_.=@," else "_" for c in self.label)
        return f"{self.env}__{safe}__{self.seed}"


@dataclass
class Study:
    """A resolved study definition (the study file format: :func:`load_study`)."""

    name: str
    envs: list[str]
    agents: list[str]
    seeds: list[int]
    steps: int | dict[str, int] | None = None
    eval_freq: int | None = None
    eval_episodes: int | None = None
    retries: int = 1
    grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    tune: dict[str, Any] | None = None
    final_evals: int = DEFAULT_FINAL_EVALS
    best_model: bool = False
    device: str | None = None

    def steps_for(self, env: str) -> int | None:
        """Training steps per run on ``env``: ``steps``, or its entry for ``env`` when it is a mapping per env."""
        return per_env(self.steps, env)

    def tune_budget(self, agent: str, env: str | None = None) -> dict[str, Any] | None:
        """The tuning budget of ``agent`` (``{trials, steps, seeds, space}``), or ``None`` when it is not tuned: the
        ``tune`` mapping's own budget keys, with the agent's entry (by its name as listed, or its preset name)
        over them; steps default to the study's ``steps``, seeds to 3. With ``env``, steps given per env are
        that env's."""
        if not self.tune:
            return None
        shared = {k: v for k, v in self.tune.items() if k in TUNE_KEYS}
        entry = self.tune.get(agent, self.tune.get(agent_name(agent), {} if shared else None))
        if entry is None or entry is False:
            return None
        budget = {"steps": self.steps, "seeds": DEFAULT_TUNE_SEEDS, "space": {}, **shared, **entry}
        if env is not None:
            budget["steps"] = per_env(budget["steps"], env)
        return {k: budget.get(k) for k in TUNE_KEYS}

    def added_device(self, config) -> str | None:
        """The study's ``device`` where a run's agent has circuits and names no device itself (a preset's or a
        grid's ``policy_kwargs.device`` wins; agents without circuits have none), else ``None``."""
        from qrl.config import is_vqc_policy

        if self.device is None or not is_vqc_policy(config.policy) or "device" in config.policy_kwargs:
            return None
        return self.device

    def runs(self) -> list[RunKey]:
        keys = []
        for env in self.envs:
            for agent in self.agents:
                grid = self.grid.get(agent, {})
                names = sorted(grid)
                for values in itertools.product(*(grid[n] for n in names)):
                    for seed in self.seeds:
                        keys.append(RunKey(env, agent, seed, dict(zip(names, values, strict=True))))
        return keys

    def labels(self) -> list[str]:
        """Agent labels in definition order (grid variants after their agent)."""
        out: list[str] = []
        for key in self.runs():
            if key.label not in out:
                out.append(key.label)
        return out

    def config(self, key: RunKey, study_dir: str | Path | None = None):
        """The run's :class:`qrl.config.RunConfig`, as ``qrl train`` would resolve it; with ``study_dir``, a
        tuned agent's from the preset its tuning wrote there (:func:`tuned_preset`)."""
        import dataclasses

        from qrl.config import resolve

        agent = key.agent
        if study_dir is not None and self.tune_budget(key.agent) is not None:
            preset = tuned_preset(study_dir, key.agent, key.env)
            if not preset.is_file():
                raise QRLError(f"{key.label} on {key.env} is tuned by this study but {preset} is missing; expected "
                               f"`qrl study` to tune it before its evaluation runs; try the same qrl study command "
                               f"again")
            agent = str(preset)
        config = resolve(agent, key.env, seed=key.seed, steps=self.steps_for(key.env), overrides=dict(key.overrides))
        if self.added_device(config) is not None:
            config = dataclasses.replace(config, policy_kwargs={**config.policy_kwargs, "device": self.device})
        spec = config.env_spec
        if self.eval_freq is not None:
            spec = dataclasses.replace(spec, eval_freq=int(self.eval_freq))
        if self.eval_episodes is not None:
            spec = dataclasses.replace(spec, eval_episodes=int(self.eval_episodes))
        return dataclasses.replace(config, env_spec=spec)


STUDY_FILE = "study.yaml"
"""The resolved definition in a study folder: the study file's keys (seeds as a list) and ``thresholds``."""


def load_study(path: str | Path) -> Study:
    """Read and validate a study file: every (agent, env) pair must resolve, before anything runs.

    ``path`` is a file, or the name of a study that ships with qrl (``cartpole-ppo``: ``agents/studies/``).
    A study file::

        name: cartpole-ppo
        envs: [CartPole-v1]
        agents: [ppo-vqc, ppo-mlp-matched, ppo-mlp]   # the first is the focus of the report's verdicts
        seeds: 10                 # or a list of seeds
        steps: 100000             # per run (default: each agent's n_timesteps), or per env:
                                  # {CartPole-v1: 100000, Acrobot-v1: 200000} (every env named)
        eval_freq: 5000           # optional: override the env's evaluation cadence and episodes
        eval_episodes: 10
        retries: 1                # a failed run is tried again this many times per invocation
        grid:                     # optional: variants of an agent, one per combination of values
          ppo-vqc: {learning_rate: [lin_0.005, lin_0.01]}
        tune: {trials: 20, steps: 20000, seeds: 3}   # optional: every agent tuned with this budget first
        final_evals: 3            # the report's final return: mean of each run's last 3 evaluations
        best_model: false         # true: the final return is each run's best model re-evaluated on fresh episodes
        device: torch             # optional: the circuit backend of every agent with circuits that names none

    ``tune`` holds a budget for every agent (``trials``; ``steps`` per seed, default the study's; ``seeds``, default
    3) and/or one per agent (``tune: {trials: 20, ppo-mlp: null}``: ``null`` leaves an agent untuned). Agents may
    be preset names or preset file paths (relative to the current folder).
    """
    path = Path(path)
    if not path.exists() and path.suffix == "":
        from qrl.config import data_dir

        shipped = data_dir("agents") / "studies" / f"{path.name}.yaml"
        path = shipped if shipped.is_file() else path
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise QRLError(f"cannot read study {path}: {exc}") from exc
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": path.stem}
    study = study_from_mapping(data, str(path), fix="see agents/studies/cartpole-ppo.yaml")
    if len({k.run_id for k in study.runs()}) != len(study.runs()):
        raise QRLError(f"{path}: two runs share a name; expected distinct agents, envs and seeds")
    for key in study.runs():
        config = study.config(key)  # raises QRLError naming the problem
        budget = study.tune_budget(key.agent)
        if budget is not None:
            from qrl.config import is_vqc_policy
            from qrl.tune.space import resolve_space

            resolve_space(agent_name(key.agent), config.algo, is_vqc_policy(config.policy), budget["space"])
    _check_tuning_seeds(study, str(path))
    return study


def _check_device(device: Any, where: str) -> str | None:
    """The study's ``device``: absent, or a circuit backend name as ``qrl train --device`` takes it."""
    if device is None:
        return None
    if not isinstance(device, str) or not device.strip():
        raise QRLError(f"{where}: expected `device` to be a circuit backend name (e.g. torch, auto, lightning.qubit) "
                       f"or absent; got {device!r}; try device: torch")
    return device


def study_from_mapping(data: Any, where: str, fix: str) -> Study:
    """A :class:`Study` from a study file's mapping (or a study folder's definition), its shape checked;
    errors name ``where`` and end with ``fix``."""
    if not isinstance(data, dict):
        raise QRLError(f"{where}: expected a mapping with keys {', '.join(_STUDY_KEYS)}; got {type(data).__name__}; "
                       f"{fix}")
    unknown = sorted(set(data) - set(_STUDY_KEYS))
    if unknown:
        raise QRLError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(_STUDY_KEYS)}")
    missing = [k for k in ("envs", "agents", "seeds") if not data.get(k)]
    if missing:
        raise QRLError(f"{where}: expected non-empty {', '.join(missing)}; {fix}")
    for key in ("envs", "agents"):
        if not isinstance(data[key], list) or not all(isinstance(x, str) for x in data[key]):
            raise QRLError(f"{where}: expected `{key}` to be a list of names; got {data[key]!r}; {fix}")
    name, seeds = _check_name(data["name"], where, fix), _check_seeds(data["seeds"], where, fix)
    steps = check_steps(data.get("steps"), data["envs"], where, "steps", fix)
    for key in ("eval_freq", "eval_episodes", "retries"):
        value, least = data.get(key, 1), int(key != "retries")
        if not (value is None and key != "retries") and not (_is_int(value) and value >= least):
            raise QRLError(f"{where}: expected `{key}` to be an integer >= {least}"
                           f"{'' if key == 'retries' else ' or absent'}; got {value!r}; {fix}")
    final_evals = data.get("final_evals", DEFAULT_FINAL_EVALS)
    if not (_is_int(final_evals) and final_evals >= 1):
        raise QRLError(f"{where}: expected `final_evals` (evaluations averaged into a run's final return) to be an "
                       f"integer >= 1; got {final_evals!r}; try final_evals: {DEFAULT_FINAL_EVALS}")
    if not isinstance(data.get("best_model", False), bool):
        raise QRLError(f"{where}: expected `best_model` to be true or false; got {data['best_model']!r}; try "
                       f"best_model: true")
    study = Study(name=name, envs=list(data["envs"]), agents=list(data["agents"]), seeds=seeds,
                  steps=steps, eval_freq=data.get("eval_freq"), eval_episodes=data.get("eval_episodes"),
                  retries=data.get("retries", 1), grid=dict(data.get("grid") or {}),
                  tune=_check_tune(data.get("tune"), data, where), final_evals=final_evals,
                  best_model=data.get("best_model", False), device=_check_device(data.get("device"), where))
    for agent, grid in study.grid.items():
        valid = isinstance(grid, dict) and all(isinstance(v, list) for v in grid.values())
        if agent not in study.agents or not valid:
            raise QRLError(f"{where}: grid.{agent}: expected an agent of the study mapped to {{key: [values]}}; "
                           f"got {grid!r}")
    return study


def _check_budget(budget: Any, where: str, envs: list[str]) -> dict[str, Any]:
    """The keys of one tuning budget: a subset of :data:`TUNE_KEYS`, each an integer >= 1 (``space``: a mapping;
    ``steps``: or a mapping of every env to one)."""
    fix = "try tune: {trials: 20, steps: 20000, seeds: 3}"
    if not isinstance(budget, dict):
        raise QRLError(f"{where}: expected a mapping of {', '.join(TUNE_KEYS)}; got {budget!r}; {fix}")
    unknown = sorted(map(str, set(budget) - set(TUNE_KEYS)))
    if unknown:
        raise QRLError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(TUNE_KEYS)}; {fix}")
    for key, value in budget.items():
        if key == "space":
            if not isinstance(value, dict):
                raise QRLError(f"{where}.space: expected a mapping of search-space keys to specs, as qrl tune "
                               f"--space KEY=SPEC; got {value!r}; try space: {{n_steps: [16, 32]}}")
        elif key == "steps":
            check_steps(value, envs, where, "steps", fix)
        elif not (_is_int(value) and value >= 1):
            raise QRLError(f"{where}.{key}: expected an integer >= 1; got {value!r}; {fix}")
    return dict(budget)


def _check_tune(tune: Any, data: dict[str, Any], where: str) -> dict[str, Any] | None:
    """``tune``: budget keys for every agent and/or ``<agent>: {budget} | null``; every tuned agent ends with
    ``trials`` and ``steps``, and has no ``grid`` (a grid over a tuned preset would mix two searches)."""
    if tune is None or tune == {}:
        return None
    agents = {a: a for a in data["agents"]} | {agent_name(a): a for a in data["agents"]}
    if not isinstance(tune, dict):
        raise QRLError(f"{where}: expected `tune` to be a mapping such as {{trials: 20, steps: 20000, seeds: 3}}; "
                       f"got {tune!r}")
    envs = list(data["envs"])
    out = _check_budget({k: v for k, v in tune.items() if k in TUNE_KEYS}, f"{where}: tune", envs)
    for key, entry in tune.items():
        if key in TUNE_KEYS:
            continue
        if key not in agents:
            raise QRLError(f"{where}: tune.{key}: expected a budget key ({', '.join(TUNE_KEYS)}) or an agent of the "
                           f"study ({', '.join(data['agents'])})")
        out[key] = None if entry is None or entry is False else _check_budget(entry, f"{where}: tune.{key}", envs)
    study = Study(name="check", envs=envs, agents=list(data["agents"]), seeds=[0], steps=data.get("steps"), tune=out)
    for agent in data["agents"]:
        budget = study.tune_budget(agent)
        missing = [k for k in ("trials", "steps") if budget is not None and budget[k] is None]
        if missing:
            raise QRLError(f"{where}: tune: expected {' and '.join(missing)} in the budget of {agent} (steps may come "
                           f"from the study's `steps`); try tune: {{trials: 20, steps: 20000, seeds: 3}}")
        if budget is not None and agent in (data.get("grid") or {}):
            raise QRLError(f"{where}: {agent} has both a `grid` and a `tune` budget; expected one of them; try "
                           f"tune.{agent}: null to keep its grid")
    return out


def per_env(value: Any, env: str) -> Any:
    """``value``, or its entry for ``env`` when it is a mapping per environment (study ``steps``)."""
    return value.get(env) if isinstance(value, dict) else value


def check_steps(value: Any, envs: list[str], where: str, name: str, fix: str) -> int | dict[str, int] | None:
    """Steps per run (the study key ``name``): absent, an integer >= 1, or a mapping of every env of the study to
    one (``{CartPole-v1: 100000, Acrobot-v1: 200000}``)."""
    if value is None or (_is_int(value) and value >= 1):
        return value
    if not isinstance(value, dict):
        raise QRLError(f"{where}: expected `{name}` to be an integer >= 1, a mapping of every env to one, or absent; "
                       f"got {value!r}; {fix}")
    bad = {k: v for k, v in value.items() if k not in envs or not (_is_int(v) and v >= 1)}
    if bad:
        raise QRLError(f"{where}: {name}: expected each key an env of the study ({', '.join(envs)}) and each value "
                       f"an integer >= 1; got {bad!r}; {fix}")
    missing = [env for env in envs if env not in value]
    if missing:
        raise QRLError(f"{where}: {name}: expected steps for every env of the study; {', '.join(missing)} missing; "
                       f"try {{{', '.join(f'{env}: 100000' for env in envs)}}}")
    return {env: value[env] for env in envs}


def tuned_preset(study_dir: str | Path, agent: str, env: str) -> Path:
    """Where the tuning of ``agent`` on ``env`` in a study folder writes its best preset."""
    name = agent_name(agent)
    return Path(study_dir) / TUNE_FOLDER / f"{name}__{env}" / f"{name}-tuned.yaml"


def tuning_seed_use(study: Study) -> tuple[list[int], list[int]] | None:
    """``(evaluation seeds, tuning seeds)`` of a study that tunes (``None`` if none is tuned)."""
    from qrl.tune.objective import tuning_seeds

    most = max((b["seeds"] for b in map(study.tune_budget, study.agents) if b is not None), default=0)
    return (list(study.seeds), tuning_seeds(most)) if most else None


def _check_tuning_seeds(study: Study, where: str) -> None:
    """Tuning seeds (100000 + i; their evaluation episodes + 10000) must stay clear of the evaluation runs'."""
    from qrl.envs import EVAL_SEED_OFFSET
    from qrl.tune.objective import TUNING_SEED_BASE

    use = tuning_seed_use(study)
    limit = TUNING_SEED_BASE - 2 * EVAL_SEED_OFFSET
    if use is not None and max(use[0]) >= limit:
        raise QRLError(f"{where}: seeds up to {max(use[0])} come near the tuning seeds ({TUNING_SEED_BASE} and up, "
                       f"evaluation episodes from {TUNING_SEED_BASE + EVAL_SEED_OFFSET}); expected evaluation seeds "
                       f"below {limit} in a study that tunes, so no run shares a seed with tuning; try seeds: 10")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_name(name: Any, where: str, fix: str) -> str:
    """A study name is a folder name under ``runs/studies/``: never a path."""
    if _is_int(name):
        name = str(name)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise QRLError(f"{where}: expected `name` to be a name of letters, digits, '-', '_' and '.', not starting "
                       f"with a dot (it names the folder runs/studies/<name>); got {name!r}; {fix}")
    return name


def _check_seeds(seeds: Any, where: str, fix: str) -> list[int]:
    """``seeds``: a count (seeds 0 to n-1) or a list of distinct seeds."""
    if _is_int(seeds) and seeds > 0:
        return list(range(seeds))
    if (isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds)
            and len(set(seeds)) == len(seeds)):
        return list(seeds)
    raise QRLError(f"{where}: expected `seeds` to be a positive integer (a count) or a non-empty list of distinct "
                   f"integers >= 0; got {seeds!r}; {fix}")


def read_definition(study_dir: Path, fix: str) -> tuple[Study, dict[str, float | None]]:
    """The study saved in a study folder (``study.yaml``) and its reward thresholds per environment."""
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise QRLError(f"expected {path} written by `qrl study`; got no such file; {fix}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise QRLError(f"expected {path} to be YAML written by `qrl study`; got a parse error: {e}; {fix}") from e
    if not isinstance(data, dict) or "name" not in data:
        raise QRLError(f"expected {path} to be a mapping with keys name, envs, agents, seeds; got "
                       f"{data if not isinstance(data, dict) else 'no name'!r}; {fix}")
    thresholds = data.pop("thresholds", None) or {}
    if not isinstance(thresholds, dict):
        raise QRLError(f"expected {path} `thresholds` to map env names to numbers or null; got {thresholds!r}; {fix}")
    return study_from_mapping(data, str(path), fix), thresholds


# -- one run (in a worker) -----------------------------------------------------------------------------


KILL_RUN_VARIABLE = "QRL_TEST_KILL_RUN"
"""For tests only: a worker about to train the run of this ``run_id`` kills itself with SIGKILL."""


def run_one(study_dir: str, study: dict[str, Any], key: dict[str, Any]) -> dict:
    """Train one run into a partial folder, then move it into place; never raises (errors are returned)."""
    from qrl.threads import limit_threads

    limit_threads()
    study_obj, run_key = Study(**study), RunKey(**key)
    if os.environ.get(KILL_RUN_VARIABLE) == run_key.run_id:
        os.kill(os.getpid(), signal.SIGKILL)  # for tests only: a worker killed as the out-of-memory killer does
    folders = Path(study_dir) / "runs"
    final = folders / run_key.run_id
    started = time.perf_counter()
    partial = resumable(study_dir, run_key.run_id)
    try:
        from qrl.train import resume, train

        if partial is not None:  # a run interrupted or killed in an earlier invocation: from its checkpoint
            resume(partial, tensorboard=False)
        else:
            partial = folders / ".partial" / f"{run_key.run_id}-{uuid.uuid4().hex[:8]}"
            train(study_obj.config(run_key, study_dir), run_dir=partial, tensorboard=False)
        status = runs.read_results(partial)["status"]
        if status == "interrupted":  # kept, with its checkpoint, for the next invocation to resume
            return {"run_id": run_key.run_id, "status": "failed", "seconds": time.perf_counter() - started,
                    "error": f"interrupted at step {runs.read_results(partial)['timesteps']}; the next "
                             f"`qrl study` resumes it from its checkpoint"}
        if status != "finished":  # never moved into place as if it were complete
            raise RuntimeError(f"training ended with status {status!r}")
        if study_obj.best_model:
            from qrl.evaluate import evaluate_best

            evaluate_best(partial)  # on the run's own evaluation episodes (its config.yaml)
        try:
            os.rename(partial, final)  # atomic; fails if another worker finished this run first
            status = "finished"
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            status = "duplicate"
        return {"run_id": run_key.run_id, "status": status, "seconds": time.perf_counter() - started}
    except BaseException as exc:  # a worker reports every failure (even SystemExit) to the study, never dies
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        return {"run_id": run_key.run_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - started}


# -- the study (in the main process) -------------------------------------------------------------------


def run_study(study_path: str | Path, out: str | Path | None = None, workers: int = 1, executor: str = "local",
              address: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) a study; returns the study folder (default ``runs/studies/<name>``).

    Every run is ``qrl train``'s code path (:func:`qrl.train.train`). Tables: ``records.csv`` (one row
    per evaluation of a run: the learning curves), ``episodes.csv`` (one row per evaluation episode:
    return and length) and ``runs.csv`` (one row per run: status, results, parameter counts, wall-clock,
    circuit executions).

    Faults. A run is trained into ``runs/.partial/<run_id>-<random>/`` and renamed to ``runs/<run_id>/``
    only when it is complete; a rename onto an existing run fails, so a run is never duplicated, and a
    killed worker leaves only a partial folder, which the next invocation removes. Re-running the same
    command skips finished runs and starts the others again. A local worker whose study process died
    exits within a second (a watcher thread), idle or mid-run, instead of living on as an orphan; workers
    register in ``workers/`` while they live, and the next invocation waits for a killed one's before it
    touches the folder (so no orphan writes into a run it resumes). A killed worker (e.g. out of memory)
    fails the run it trained (its runs in flight run again alone to find which) and the study goes on. A
    run folder whose ``results.json`` is damaged is reported (status ``damaged``), never trained over.
    ``study.lock`` (a PID) keeps a second ``qrl study`` out of the folder.
    """
    if executor not in EXECUTORS:
        raise QRLError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise QRLError(f"--workers must be at least 1; got {workers}")
    study = load_study(study_path)
    study_dir = Path(out) if out is not None else Path("runs") / "studies" / study.name
    from qrl.train import check_memory_before_training

    unfinished = [k for k in study.runs() if _state(study_dir, k.run_id)[0] != "finished"]
    for config in {(k.env, k.label): study.config(k) for k in unfinished}.values():
        check_memory_before_training(config)  # every variant left to train fits, before the folder exists
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    with _lock(study_dir):
        wait_for_workers(study_dir / WORKERS_FOLDER, ORPHAN_WAIT_S, log, f"qrl study {study_dir}")
        _prepare(study_dir, study)
        states = {k.run_id: (k, *_state(study_dir, k.run_id)) for k in study.runs()}
        damaged = [detail for _, state, detail in states.values() if state == "damaged"]
        pending = [k for k, state, _ in states.values() if state == "pending"]
        log(f"study {study.name}: {len(states)} runs, {len(states) - len(pending) - len(damaged)} finished before, "
            f"{len(pending)} to run ({executor}, {workers} worker{'s' if workers > 1 else ''}) -> {study_dir}")
        for error in damaged:
            log(error)
        tune_agents(study_dir, study, pending, workers, log)
        if pending:
            submit = _local_pool if executor == "local" else _ray_pool
            submit(study_dir, study, pending, workers, address, log)
        write_tables(study_dir, study)
        wait_for_workers(study_dir / WORKERS_FOLDER, ORPHAN_WAIT_S, log, f"qrl study {study_dir}")  # gone: cleared
    return study_dir


def tune_agents(study_dir: Path, study: Study, pending: list[RunKey], workers: int,
                log: Callable[[str], None]) -> None:
    """Tune every agent that has a budget, on every environment, before its evaluation runs: ``qrl tune``'s code
    (:func:`qrl.tune.run_tune`) with the study's evaluation cadence, ``workers`` trials at a time, its storage in
    ``tune/`` (resumed by the same ``qrl study`` command). Skipped where the preset exists and no run is pending."""
    from qrl.config import resolve
    from qrl.tune import TuneRequest, run_tune

    todo = {(k.agent, k.env) for k in pending}
    for env in study.envs:
        for agent in study.agents:
            budget, preset = study.tune_budget(agent, env), tuned_preset(study_dir, agent, env)
            if budget is None or ((agent, env) not in todo and preset.is_file()):
                continue
            log(f"study {study.name}: tuning {agent_name(agent)} on {env} before its evaluation runs: "
                f"{budget['trials']} trials x {budget['seeds']} seeds x {budget['steps']} steps")
            device = study.added_device(resolve(agent, env))
            request = TuneRequest(agent=agent, env=env, trials=budget["trials"], steps=budget["steps"],
                                  seeds=budget["seeds"], space=dict(budget["space"]), workers=workers, device=device,
                                  out=str(study_dir / TUNE_FOLDER),
                                  eval_freq=study.eval_freq, eval_episodes=study.eval_episodes)
            run_tune(request, log=log)
            if not preset.is_file():
                raise QRLError(f"tuning {agent_name(agent)} on {env} ended with no complete trial (all pruned or "
                               f"failed), so there is no tuned preset; see {preset.parent / 'summary.md'}; expected "
                               f"one complete trial at least; try a larger tune budget (trials or steps)")


WORKERS_FOLDER = "workers"
"""In a study folder while local workers run: ``workers/<pid>`` (``PID START``) for each, so that the next
``qrl study`` of the folder waits for the workers a killed one left (they exit within a second or so)."""
ORPHAN_WAIT_S = 60.0
"""How long ``qrl study`` waits for the workers of an earlier, killed invocation before it refuses to start."""

LOCK_FILE = "study.lock"
"""In a study folder while ``qrl study`` runs in it: that process's PID (one process per study folder)."""


@contextlib.contextmanager
def _lock(study_dir: Path):
    """Hold ``study.lock`` in ``study_dir`` (created with O_EXCL) for the block; a lock whose PID is no
    longer alive (its process was killed) is taken over; a live one is a :class:`QRLError`."""
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / LOCK_FILE
    for _ in range(10):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = holder(path)
            if pid == -1:
                time.sleep(0.2)
                continue
            if pid is not None:
                raise QRLError(f"study folder {study_dir} is in use by qrl study (PID {pid}); expected one process "
                               f"per study folder; try waiting for it or --out with another folder (or delete "
                               f"{path} if PID {pid} is not qrl)") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(this_process())
        break
    else:
        raise QRLError(f"cannot lock study folder {study_dir} ({path} keeps reappearing); expected one process per "
                       f"study folder; try again")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if holder(path) == os.getpid():
                path.unlink()


def _prepare(study_dir: Path, study: Study) -> None:
    saved = study_dir / STUDY_FILE
    definition = asdict(study)
    from qrl.config import load_env_spec

    definition["thresholds"] = {env: load_env_spec(env).reward_threshold for env in study.envs}
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text()) or {}
        compared = [k for k in definition if k not in REPORT_ONLY_KEYS]  # the report's keys may change
        defaults = asdict(Study(name="", envs=[], agents=[], seeds=[]))  # keys newer than a saved study.yaml
        if {k: previous.get(k, defaults.get(k)) for k in compared} != {k: definition[k] for k in compared}:
            raise QRLError(f"{study_dir} holds another study definition (study.yaml differs); expected the same "
                           f"study to resume; try --out with a new folder")
    (study_dir / "runs").mkdir(parents=True, exist_ok=True)
    (study_dir / "failures").mkdir(exist_ok=True)
    _clean_partials(study_dir)
    write_yaml(saved, definition)


def resumable(study_dir: Path, run_id: str) -> Path | None:
    """The partial folder of ``run_id`` left by an interrupted or killed invocation with a checkpoint
    (the one with the most steps), or ``None``."""
    best = None
    for folder in (Path(study_dir) / "runs" / ".partial").glob(f"{run_id}-*"):
        try:
            steps, _ = runs.latest_checkpoint(folder)
        except QRLError:
            continue
        if best is None or steps > best[0]:
            best = (steps, folder)
    return None if best is None else best[1]


def _clean_partials(study_dir: Path) -> None:
    """Remove what killed workers left in ``runs/.partial/``, except each run's resumable folder."""
    root = study_dir / "runs" / ".partial"
    if not root.is_dir():
        return
    keep = {resumable(study_dir, p.name.rsplit("-", 1)[0]) for p in root.iterdir()}
    for folder in root.iterdir():
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _state(study_dir: Path, run_id: str) -> tuple[str, Any]:
    """What ``runs/<run_id>/`` holds (only complete runs are moved there): ``("pending", None)`` without a
    folder, ``("finished", results)``, or ``("damaged", why)`` for a folder that is not a readable finished
    run, which is reported (status ``damaged``) and never retrained over: its folder must be deleted first."""
    run_dir = study_dir / "runs" / run_id
    if not run_dir.is_dir():
        return "pending", None
    try:
        results = runs.read_results(run_dir)
    except QRLError as exc:
        problem = str(exc)
    else:
        if results["status"] == "finished":
            return "finished", results
        problem = f"{run_dir / runs.RESULTS} has status {results['status']!r}"
    return "damaged", (f"{run_id}: damaged, not retrained: {problem}; expected a finished run; "
                       f"try deleting {run_dir} to train it again")


def _record_failure(study_dir: Path, run_id: str, error: str) -> int:
    attempts = _attempts(study_dir, run_id) + 1
    write_json(study_dir / "failures" / f"{run_id}.json", {"run_id": run_id, "attempts": attempts, "error": error})
    return attempts


class _Progress:
    """One line per finished or failed run: runs done, running (at most the workers) and failed."""

    def __init__(self, total: int, workers: int, log: Callable[[str], None]):
        self.total, self.workers, self.log = total, workers, log
        self.done = self.failed = self.running = 0

    def report(self, result: dict[str, Any]) -> None:
        if result["status"] == "failed":
            self.failed += 1
            detail = result["error"]
        else:
            self.done += 1
            detail = f"{result['status']} in {result['seconds']:.0f} s"
        self.log(f"[{self.done}/{self.total} done, {min(self.running, self.workers)} running, {self.failed} failed] "
                 f"{result['run_id']}: {detail}")


def _handle(study_dir: Path, study: Study, result: dict[str, Any], retries: dict[str, int]) -> bool:
    """Record a result; ``True`` when the run should be tried again."""
    if result["status"] != "failed":
        write_tables(study_dir, study)
        return False
    _record_failure(study_dir, result["run_id"], result["error"])
    write_tables(study_dir, study)
    retries[result["run_id"]] = retries.get(result["run_id"], 0) + 1
    return retries[result["run_id"]] <= study.retries


def _local_pool(study_dir: Path, study: Study, pending: list[RunKey], workers: int, address: str | None,
                log: Callable[[str], None]) -> None:
    """Run the pending runs in a pool of local processes, ``workers`` at a time. A worker process that
    dies (killed, e.g. by the out-of-memory killer) breaks the pool: a new pool is made, and the runs it
    had in flight are run again one at a time, alone, where a run that kills its worker is a failed attempt."""
    if address is not None:
        raise QRLError("--address names a Ray cluster; expected --executor ray with it")
    progress, retries = _Progress(len(pending), workers, log), {}
    queue, suspects = list(pending), []
    while queue or suspects:
        _pool_round(study_dir, study, (queue, suspects), workers, progress, retries)


def _pool_round(study_dir: Path, study: Study, todo: tuple[list[RunKey], list[RunKey]], workers: int,
                progress: _Progress, retries: dict[str, int]) -> None:
    """Run ``todo`` = (queue: many at a time, suspects: one at a time, alone) in a fresh pool until both
    are empty or a worker process dies; the lists are consumed in place, and a dead worker's runs put back."""
    import functools
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue, suspects = todo
    futures: dict[Any, RunKey] = {}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited torch/OpenMP state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=watch_parent,
                             initargs=(os.getpid(), str(study_dir / WORKERS_FOLDER))) as pool:
        submit = functools.partial(pool.submit, run_one, str(study_dir), asdict(study))
        with contextlib.suppress(BrokenProcessPool):
            while queue or suspects or futures:
                while (suspects and not futures) or (queue and not suspects and len(futures) < workers):
                    source = suspects or queue
                    future = submit(asdict(source[0]))  # before the pop: it raises if the pool is broken
                    futures[future] = source.pop(0)
                progress.running = len(futures)
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    if isinstance(future.exception(), BrokenProcessPool):
                        raise BrokenProcessPool
                    key = futures.pop(future)
                    _finish(study_dir, study, key, future.result(), progress, retries, queue)
        wait(futures)
        lost = []
        for future, key in futures.items():
            if isinstance(future.exception(), BrokenProcessPool):
                lost.append(key)
            else:  # finished just before the pool broke
                _finish(study_dir, study, key, future.result(), progress, retries, queue)
    _lost(study_dir, study, lost, progress, retries, suspects)


def _finish(study_dir: Path, study: Study, key: RunKey, result: dict[str, Any], progress: _Progress,
            retries: dict[str, int], again: list[RunKey]) -> None:
    """Report and record a run's result; put the run on ``again`` if it failed and has retries left."""
    progress.report(result)
    if _handle(study_dir, study, result, retries):
        again.append(key)


def _lost(study_dir: Path, study: Study, lost: list[RunKey], progress: _Progress, retries: dict[str, int],
          suspects: list[RunKey]) -> None:
    """The runs in flight when a worker process died: one alone is a failed attempt (and its retry runs
    alone); of several, none can be blamed, so each runs again alone, without counting an attempt."""
    for key in lost:
        for partial in (study_dir / "runs" / ".partial").glob(f"{key.run_id}-*"):
            shutil.rmtree(partial, ignore_errors=True)
    if len(lost) == 1:
        error = ("worker process died while training this run alone (killed by a signal, e.g. SIGKILL from the "
                 "out-of-memory killer)")
        _finish(study_dir, study, lost[0], {"run_id": lost[0].run_id, "status": "failed", "error": error,
                                            "seconds": 0.0}, progress, retries, suspects)
    elif lost:
        progress.log(f"a worker process died (killed, e.g. out of memory) with {len(lost)} runs in flight "
                     f"({', '.join(k.run_id for k in lost)}); running them again one at a time")
        suspects.extend(lost)


def _ray_pool(study_dir: Path, study: Study, pending: list[RunKey], workers: int, address: str | None,
              log: Callable[[str], None]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise QRLError("--executor ray needs Ray; try pip install 'qrl[ray]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False)
    try:
        _ray_loop(ray, study_dir, study, pending, workers, log)
    finally:
        if started_here:
            ray.shutdown()


def _ray_loop(ray, study_dir: Path, study: Study, pending: list[RunKey], workers: int,
              log: Callable[[str], None]) -> None:
    remote = ray.remote(num_cpus=1)(run_one)
    progress, retries = _Progress(len(pending), workers, log), {}
    definition = asdict(study)
    refs = {remote.remote(str(study_dir.resolve()), definition, asdict(k)): k for k in pending}
    while refs:
        progress.running = len(refs)
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            key = refs.pop(ref)
            result = ray.get(ref)
            progress.running = len(refs)
            progress.report(result)
            if _handle(study_dir, study, result, retries):
                refs[remote.remote(str(study_dir.resolve()), definition, asdict(key))] = key


# -- the tables the report reads ---------------------------------------------------------------------


def write_tables(study_dir: Path, study: Study) -> None:
    """Rebuild ``records.csv``, ``episodes.csv`` and ``runs.csv`` (columns: :mod:`qrl.runs`) from the
    finished run folders and the failures."""
    records, rows, episodes = [], [], []
    for key in study.runs():
        base = {"run_id": key.run_id, "env": key.env, "agent": key.label, "seed": key.seed}
        run_dir = study_dir / "runs" / key.run_id
        state, detail = _state(study_dir, key.run_id)
        if state == "finished":
            with open(run_dir / runs.EVALUATIONS_CSV, newline="") as f:
                for row in csv.DictReader(f):
                    records.append({**base, **{k: row[k] for k in runs.EVALUATION_FIELDS}})
            episodes += runs.read_episodes(run_dir, base)
            rows.append({**base, "status": "finished", "attempts": _attempts(study_dir, key.run_id) + 1, "error": "",
                         **runs.run_row(detail)})
        elif state == "damaged":
            rows.append({**base, "status": "damaged", "attempts": _attempts(study_dir, key.run_id) + 1,
                         "error": detail})
        elif (study_dir / "failures" / f"{key.run_id}.json").is_file():
            failure = json.loads((study_dir / "failures" / f"{key.run_id}.json").read_text())
            rows.append({**base, "status": "failed", "attempts": failure["attempts"], "error": failure["error"]})
    write_text(study_dir / "records.csv", runs.table_csv(runs.RECORD_FIELDS, records))
    write_text(study_dir / "episodes.csv", runs.table_csv(runs.EPISODE_FIELDS, episodes))
    write_text(study_dir / "runs.csv", runs.table_csv(runs.RUN_FIELDS, rows))


def _attempts(study_dir: Path, run_id: str) -> int:
    """Failed attempts of a run so far (``failures/<run_id>.json`` keeps them after the run finishes)."""
    path = study_dir / "failures" / f"{run_id}.json"
    if not path.is_file():
        return 0
    with contextlib.suppress(OSError, json.JSONDecodeError, ValueError):
        return int(json.loads(path.read_text()).get("attempts", 0))
    return 0
