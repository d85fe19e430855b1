"""The run folder: its file names, the versioned ``results.json`` schema, and the columns of study tables.

Train, distill, study, report, plots and the CLI read and write run folders through these names only
(the files are listed in ``runs/README.md``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from qrl.errors import QRLError
from qrl.io import atomic_write, write_json, write_text

CONFIG = "config.yaml"
MODEL = "model.zip"
RESULTS = "results.json"
VECNORMALIZE = "vecnormalize.pkl"
EVALUATIONS_CSV = "evaluations.csv"
EVALUATIONS_NPZ = "evaluations.npz"  # SB3's EvalCallback layout: timesteps, results, ep_lengths
TRAINING_EPISODES_CSV = "training_episodes.csv"  # every training episode: timesteps at its end, return, length
TENSORBOARD = "tb"
CHECKPOINT = "checkpoint"  # checkpoint/<steps>/{model.zip, vecnormalize.pkl, replay_buffer.pkl}
CHECKPOINT_LATEST = "latest"  # checkpoint/latest: the steps of the complete checkpoint
REPLAY_BUFFER = "replay_buffer.pkl"
BEST = "best"  # best/<steps>/{model.zip, vecnormalize.pkl, evaluation.json}, best/latest: the best evaluation's model
BEST_EVALUATION = "evaluation.json"  # the evaluation that chose it: timesteps, mean_return, std_return, episodes

SCHEMA_VERSION = 2
"""Version of ``results.json``. Version 1 (no ``schema`` key) had the keys of 2 but ``schema``, and runs
made before circuit and cost accounting lack ``circuit_executions`` and ``cost`` (read as ``None``)."""

RESULT_KEYS = ("schema", "status", "agent", "env", "seed", "timesteps", "wall_clock_s", "steps_per_s",
               "final_eval_mean", "final_eval_std", "best_eval_mean", "reward_threshold", "steps_to_threshold",
               "parameters", "circuit_executions", "cost")
"""Keys of every run's ``results.json`` (distillation adds its own after these)."""

_LATER_KEYS = ("circuit_executions", "cost")  # absent from version-1 files of early runs
EVALUATION_FIELDS = ("timesteps", "mean_return", "std_return", "wall_clock_s")
"""Columns of ``evaluations.csv``: one row per evaluation during training."""
TRAINING_EPISODE_FIELDS = ("timesteps", "return", "length")
"""Columns of ``training_episodes.csv``: one row per training episode (Monitor's return, before normalising)."""
TRAINING_WINDOW = 10
"""Consecutive training episodes averaged for "solved in training" (the TensorFlow Quantum REINFORCE tutorial's
criterion: an average return of 500 over 10 consecutive episodes; Jerbi et al. 2021)."""

# Study tables: one row per evaluation of a run, per evaluation episode, per run.
RUN_ID_FIELDS = ("run_id", "env", "agent", "seed")
RECORD_FIELDS = (*RUN_ID_FIELDS, *EVALUATION_FIELDS)
EPISODE_FIELDS = (*RUN_ID_FIELDS, "timesteps", "episode", "return", "length")
RUN_RESULT_FIELDS = ("reward_threshold", "timesteps", "wall_clock_s", "steps_per_s", "final_eval_mean",
                     "final_eval_std", "best_eval_mean", "steps_to_threshold")
RUN_FIELDS = (*RUN_ID_FIELDS, "status", "attempts", "error", *RUN_RESULT_FIELDS, "params_total", "params_quantum",
              "params_classical", "circuit_executions", "hardware_circuits", "best_model_timesteps",
              "best_model_eval_mean", "training_episodes", "episodes_to_threshold")
OPTIONAL_RUN_FIELDS = ("hardware_circuits", "best_model_timesteps", "best_model_eval_mean", "training_episodes",
                       "episodes_to_threshold")
"""Columns of ``runs.csv`` that studies made before cost accounting (or before best models, or training-episode
logs) lack; the best model's are empty unless the study re-evaluates best models (``best_model: true``);
``episodes_to_threshold``: training episodes until the mean of the last :data:`TRAINING_WINDOW` reached the
threshold (empty: never)."""


def new_run_dir(out: Path, env: str, label: str, seed: int) -> Path:
    """A new folder ``out/{env}__{label}__{seed}__{timestamp}`` (``-2``, ``-3``, ... if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{env}__{label}__{seed}__{stamp}"
    run_dir, k = Path(out) / base, 1
    while run_dir.exists():
        k += 1
        run_dir = Path(out) / f"{base}-{k}"
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise QRLError(f"cannot create the run folder in {out}: {exc.strerror or exc}; expected --out to be a folder "
                       f"that can be written; try --out runs") from None
    return run_dir


def steps_to_threshold(timesteps: Sequence[float] | np.ndarray, returns: Sequence[float] | np.ndarray,
                       threshold: float) -> float:
    """The timestep of a run's first evaluation whose mean return is at or above ``threshold``.

    Args:
        timesteps: ``(num_evals,)`` increasing evaluation timesteps of one run.
        returns: ``(num_evals,)`` mean evaluation return at each.
        threshold: the return to reach (e.g. the environment's reward threshold).

    Returns:
        That timestep, or ``inf`` if the run never reached the threshold (``results.json`` stores
        ``null`` then: JSON has no infinity).
    """
    t, r = np.asarray(timesteps, dtype=float), np.asarray(returns, dtype=float)
    if t.ndim != 1 or t.shape != r.shape:
        raise QRLError(f"expected timesteps and returns of one length; got {t.size} and {r.size}")
    if np.isnan(t).any() or np.isnan(r).any():
        raise QRLError("expected timesteps and returns without NaN")
    if threshold is None or not math.isfinite(float(threshold)):
        raise QRLError(f"expected a finite threshold; got {threshold}")
    hits = np.flatnonzero(r >= float(threshold))
    return float(t[hits[0]]) if hits.size else math.inf


def results_record(status: str, agent: str, env: str, seed: int, timesteps: int, wall: float, final_returns,
                   evaluations: list[dict[str, Any]], threshold: float | None, parameters: dict[str, int],
                   circuit_executions: int, cost: dict | None) -> dict[str, Any]:
    """The common keys of ``results.json`` (:data:`RESULT_KEYS`), from a run's evaluations
    (rows of :data:`EVALUATION_FIELDS`) and the returns of its final evaluation."""
    steps = None
    if threshold is not None and evaluations:
        reached = steps_to_threshold([r["timesteps"] for r in evaluations],
                                     [r["mean_return"] for r in evaluations], threshold)
        steps = int(reached) if math.isfinite(reached) else None
    return {
        "schema": SCHEMA_VERSION,
        "status": status,
        "agent": agent,
        "env": env,
        "seed": seed,
        "timesteps": timesteps,
        "wall_clock_s": round(wall, 3),
        "steps_per_s": round(timesteps / wall, 1) if wall > 0 else None,
        "final_eval_mean": float(np.mean(final_returns)),
        "final_eval_std": float(np.std(final_returns)),
        "best_eval_mean": max((r["mean_return"] for r in evaluations), default=None),
        "reward_threshold": threshold,
        "steps_to_threshold": steps,
        "parameters": parameters,
        "circuit_executions": circuit_executions,
        "cost": cost,
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RESULTS, results)


def read_results(run_dir: Path) -> dict[str, Any]:
    """A run's ``results.json``, checked: a mapping with the keys of its schema version (version 1
    files, written before the schema had a number, get ``schema: 1``)."""
    path = Path(run_dir) / RESULTS
    try:
        results = json.loads(path.read_text())
    except OSError as exc:
        raise QRLError(f"cannot read {path}: {exc.strerror or exc}; expected a run folder written by `qrl train`") \
            from exc
    except ValueError as exc:
        raise QRLError(f"{path} is damaged (not JSON: {exc}); try training the run again") from exc
    if not isinstance(results, dict):
        raise QRLError(f"{path} is damaged: expected a mapping; got {type(results).__name__}")
    results.setdefault("schema", 1)
    if results["schema"] not in (1, SCHEMA_VERSION):
        raise QRLError(f"{path} has results schema {results['schema']!r}; this qrl reads 1 to {SCHEMA_VERSION}; "
                       f"try a newer qrl")
    missing = [k for k in RESULT_KEYS if k not in results and k not in _LATER_KEYS]
    if missing:
        raise QRLError(f"{path} is damaged: no {', '.join(missing)}; try training the run again")
    return {k: None for k in _LATER_KEYS} | results


def is_finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a readable ``results.json`` of a finished run."""
    try:
        return read_results(run_dir)["status"] == "finished"
    except QRLError:
        return False


def read_config(run_dir: Path):
    """A run's ``config.yaml`` as a :class:`qrl.config.RunConfig`."""
    import yaml

    from qrl.config import RunConfig

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise QRLError(f"{run_dir} is not a run folder (expected {CONFIG}); runs are made by `qrl train`")
    try:
        return RunConfig.from_dict(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, TypeError, AttributeError, KeyError) as exc:
        raise QRLError(f"{path} is damaged ({type(exc).__name__}: {exc}); expected the config `qrl train` "
                       f"wrote") from exc


def latest_checkpoint(run_dir: Path) -> tuple[int, Path]:
    """The steps and folder of a run's complete checkpoint (see :func:`qrl.train.save_checkpoint`)."""
    found = _snapshot(Path(run_dir) / CHECKPOINT)
    if found is None:
        raise QRLError(f"run {run_dir} has no checkpoint to resume from (runs made before checkpoints existed, "
                       f"or killed before their first evaluation, have none); try training it again")
    return found


def best_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The folder of a run's best model (the model of its best evaluation during training, with the
    normaliser of that moment) and that evaluation (``timesteps``, ``mean_return``, ``std_return``,
    ``episodes``); None when the run has none (made before best models were kept, or stopped before its first
    evaluation)."""
    found = _snapshot(Path(run_dir) / BEST)
    if found is None or not (found[1] / BEST_EVALUATION).is_file():
        return None
    try:
        return found[1], json.loads((found[1] / BEST_EVALUATION).read_text())
    except (OSError, ValueError):
        return None


def model_folder(run_dir: Path, best: bool = False) -> Path:
    """Where a run's model and normaliser lie: the run folder (the model at the end of training) or, with
    ``best``, its best checkpoint's folder."""
    run_dir = Path(run_dir)
    if not best:
        return run_dir
    found = best_checkpoint(run_dir)
    if found is None:
        raise QRLError(f"run {run_dir} has no best model ({BEST}/ is missing: runs trained before qrl kept the best "
                       f"evaluation's model, or stopped before their first evaluation, have none); expected a run "
                       f"of `qrl train`; try without --best")
    return found[0]


def _snapshot(root: Path) -> tuple[int, Path] | None:
    """``root/<steps>/`` named by ``root/latest`` once all its files were written (checkpoints, best models)."""
    try:
        steps = int((root / CHECKPOINT_LATEST).read_text().strip())
    except (OSError, ValueError):
        return None
    folder = root / str(steps)
    if not (folder / MODEL).is_file():
        raise QRLError(f"{folder} is incomplete (no {MODEL}); try training the run again")
    return steps, folder


def read_evaluation_episodes(run_dir: Path) -> tuple[list[int], list[list[float]], list[list[int]]]:
    """``evaluations.npz`` as SB3's ``EvalCallback`` keeps it: timesteps, returns and lengths per evaluation."""
    path = Path(run_dir) / EVALUATIONS_NPZ
    if not path.is_file():
        return [], [], []
    data = np.load(path)
    return ([int(t) for t in data["timesteps"]], [list(map(float, r)) for r in data["results"]],
            [list(map(int, n)) for n in data["ep_lengths"]])


def write_evaluation_episodes(run_dir: Path, timesteps: list[int], results: list[list[float]],
                              lengths: list[list[int]]) -> None:
    """Write ``evaluations.npz`` (atomically) in SB3's ``EvalCallback`` layout: ``timesteps (n,)``,
    ``results`` and ``ep_lengths`` ``(n, episodes)``."""

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, timesteps=np.array(timesteps, dtype=np.int64), results=np.array(results),
                     ep_lengths=np.array(lengths))

    atomic_write(Path(run_dir) / EVALUATIONS_NPZ, write)


def truncate_evaluations(run_dir: Path, steps: int) -> list[dict[str, Any]]:
    """Drop evaluations after ``steps`` (a checkpoint) from ``evaluations.npz`` and ``evaluations.csv``,
    and the final evaluation of an interrupted run; returns the rows of :data:`EVALUATION_FIELDS` kept."""
    timesteps, results, lengths = read_evaluation_episodes(run_dir)
    keep = [i for i, t in enumerate(timesteps) if t <= steps]
    if timesteps:
        write_evaluation_episodes(run_dir, [timesteps[i] for i in keep], [results[i] for i in keep],
                                  [lengths[i] for i in keep])
    kept = {timesteps[i] for i in keep}
    path = Path(run_dir) / EVALUATIONS_CSV
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [{"timesteps": int(float(r["timesteps"])), "mean_return": float(r["mean_return"]),
                     "std_return": float(r["std_return"]), "wall_clock_s": float(r["wall_clock_s"])}
                    for r in csv.DictReader(f) if int(float(r["timesteps"])) in kept]
    write_evaluations(run_dir, rows)
    return rows


def write_training_episodes(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``training_episodes.csv`` (atomically) with rows of :data:`TRAINING_EPISODE_FIELDS`."""
    write_text(Path(run_dir) / TRAINING_EPISODES_CSV, table_csv(TRAINING_EPISODE_FIELDS, rows))


def read_training_episodes(run_dir: Path, steps: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``training_episodes.csv`` (none if absent: runs made before it), those that ended by ``steps``
    with it (a checkpoint's: an interrupted run resumes from there)."""
    path = Path(run_dir) / TRAINING_EPISODES_CSV
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{"timesteps": int(r["timesteps"]), "return": float(r["return"]), "length": int(r["length"])}
                for r in csv.DictReader(f)]
    return [r for r in rows if steps is None or r["timesteps"] <= steps]


def episodes_to_mean(returns: Sequence[float], target: float, window: int = TRAINING_WINDOW) -> int | None:
    """The number of training episodes after which the mean of the last ``window`` first reaches ``target``
    (``None``: never); the TensorFlow Quantum tutorial's "solved" is ``episodes_to_mean(returns, 500, 10)``."""
    hits = np.flatnonzero(window_means(returns, window) >= target - 1e-9)
    return int(hits[0]) + window if hits.size else None


def window_means(returns: Sequence[float], window: int = TRAINING_WINDOW) -> np.ndarray:
    """``(len(returns) - window + 1,)``: the mean of every ``window`` consecutive returns (empty if fewer)."""
    x = np.asarray(returns, dtype=float)
    return np.convolve(x, np.ones(window) / window, mode="valid") if x.size >= window else np.array([])


def write_evaluations(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``evaluations.csv`` (atomically) with rows of :data:`EVALUATION_FIELDS`."""
    write_text(Path(run_dir) / EVALUATIONS_CSV, table_csv(EVALUATION_FIELDS, rows))


def read_evaluations(run_dir: Path) -> dict[str, list[float]]:
    """``evaluations.csv`` of a run as columns: ``{field: [values]}`` for :data:`EVALUATION_FIELDS`."""
    path = Path(run_dir) / EVALUATIONS_CSV
    if not path.is_file():
        raise QRLError(f"{run_dir} has no {EVALUATIONS_CSV}; expected a run folder written by `qrl train`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in rows[0]} if rows else {}


def read_episodes(run_dir: Path, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of :data:`EPISODE_FIELDS`: every evaluation episode's return and length (``evaluations.npz``;
    the final evaluation after training is in ``evaluations.csv`` only, as its mean and std)."""
    return [{**base, "timesteps": t, "episode": i, "return": r, "length": n}
            for t, returns, lengths in zip(*read_evaluation_episodes(run_dir), strict=True)
            for i, (r, n) in enumerate(zip(returns, lengths, strict=True))]


def run_row(results: dict[str, Any]) -> dict[str, Any]:
    """The result columns of a finished run's ``runs.csv`` row (:data:`RUN_FIELDS`), from its results."""
    params = results.get("parameters") or {}
    return {**{k: results.get(k) for k in RUN_RESULT_FIELDS},
            "circuit_executions": results.get("circuit_executions"),
            "params_total": params.get("total"), "params_quantum": params.get("quantum"),
            "params_classical": params.get("classical"),
            "hardware_circuits": (results.get("cost") or {}).get("hardware_circuits"),
            "best_model_timesteps": (results.get("best_model") or {}).get("timesteps"),
            "best_model_eval_mean": (results.get("best_model") or {}).get("eval_mean"),
            "training_episodes": (results.get("training") or {}).get("episodes"),
            "episodes_to_threshold": (results.get("training") or {}).get("episodes_to_threshold")}


def training_summary(rows: list[dict[str, Any]], threshold: float | None) -> dict[str, Any]:
    """``results.json``'s ``training``: the number of training episodes, the best mean return over
    :data:`TRAINING_WINDOW` consecutive ones and after how many episodes that mean first reached ``threshold``."""
    returns = [r["return"] for r in rows]
    means = window_means(returns)
    return {"episodes": len(rows), "window": TRAINING_WINDOW,
            "best_window_mean": float(means.max()) if means.size else None,
            "episodes_to_threshold": None if threshold is None else episodes_to_mean(returns, threshold)}


def table_csv(fields: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """CSV text with ``fields`` as header; ``None`` and missing values are empty cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    return buf.getvalue()
