"""Using a trained run: load its config and model, evaluate it (on any backend, with shots or noise),
sweep shots or noise, and price it on hardware (dry runs)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from qrl import runs
from qrl.circuits.custom import CustomCircuit
from qrl.config import RunConfig, algo_class
from qrl.cost import (
    Estimate,
    device_class,
    estimate,
    format_count,
    format_gate_counts,
    per_circuit,
    shift_parameters,
    transpile_for,
)
from qrl.envs import load_frozen_normalizer, make_eval_env
from qrl.errors import QRLError
from qrl.sb3.networks import policy_circuits


def load_run_config(run_dir: Path) -> RunConfig:
    """The config of a run folder that holds a trained model."""
    run_dir = Path(run_dir)
    if (run_dir / runs.CONFIG).is_file() and not (run_dir / runs.MODEL).is_file() \
            and (run_dir / runs.CHECKPOINT).is_dir():
        raise QRLError(f"{run_dir} was stopped before it saved its model; expected model.zip; try "
                       f"`qrl train --resume {run_dir}` to finish it from its checkpoint")
    if not (run_dir / runs.CONFIG).is_file() or not (run_dir / runs.MODEL).is_file():
        raise QRLError(f"{run_dir} is not a finished run folder (expected config.yaml and model.zip); "
                       f"runs are made by `qrl train`")
    return runs.read_config(run_dir)


def load_model(run_dir: Path, device: str | None = None, shots: int | None = None,
               noise: dict[str, float] | None = None, best: bool = False) -> tuple[BaseAlgorithm, RunConfig]:
    """Load a run's model (with ``best``, its best evaluation's: :func:`qrl.runs.best_checkpoint`); ``device``
    moves its circuits to another backend (VQC agents only), where ``shots`` makes every expectation value an
    estimate from that many shots."""
    config = load_run_config(run_dir)
    model = read_model(runs.model_folder(run_dir, best), config)
    if shots is not None and device is None:
        raise QRLError(f"--shots {shots} needs a PennyLane device for the circuits; try --device lightning.qubit "
                       f"--shots {shots}")
    if noise and device is None:
        raise QRLError("--noise needs a mixed-state simulator for the circuits; try --device default.mixed")
    if device is not None:
        if not hasattr(model.policy, "set_circuit_device"):
            raise QRLError(f"--device {device} names a circuit backend but run {run_dir} has no circuit "
                           f"(policy {config.policy}); drop --device")
        model.policy.set_circuit_device(device, shots=shots, noise=noise)
    return model, config


def read_model(run_dir: Path, config: RunConfig) -> BaseAlgorithm:
    """The ``model.zip`` in ``run_dir`` (a run folder or its best checkpoint's) as the run's algorithm's model,
    or a one-line error for a damaged or foreign file."""
    try:
        return algo_class(config.algo).load(run_dir / runs.MODEL, device="cpu")
    except Exception as exc:  # SB3 raises ValueError, TypeError, KeyError, zipfile and pickle errors alike
        raise QRLError(f"{run_dir / runs.MODEL} cannot be loaded as the {config.algo.upper()} model of this run "
                       f"({type(exc).__name__}: {str(exc)[:200]}); expected the model `qrl train` saved; try training "
                       f"the run again") from None


def evaluate_run(run_dir: Path, episodes: int = 20, device: str | None = None,
                 seed: int | None = None, shots: int | None = None,
                 noise: dict[str, float] | None = None, n_envs: int = 1,
                 without_normalizer: bool = False, best: bool = False) -> tuple[float, float, RunConfig, int]:
    """Mean and std of the deterministic policy's return over ``episodes`` episodes, the config, and the
    circuits the evaluation ran (one per sample; with shots, each ran that many shots).

    A run trained with ``normalize: true`` is evaluated with its ``vecnormalize.pkl``; without it the
    returns would be those of another policy, so that is an error unless ``without_normalizer``.

    ``n_envs`` > 1 runs that many episodes side by side, one batched circuit call per step for all of
    them (much faster on simulators such as default.mixed); the episodes then start from other seeds
    than with one environment, so returns differ within their spread.

    ``best`` evaluates the run's best model (the model of its best evaluation during training) with the
    normaliser saved with it.
    """
    model, config = load_model(run_dir, device, shots, noise, best)
    mean, std, executions = evaluate_model(model, config, runs.model_folder(run_dir, best), episodes, seed, n_envs,
                                           without_normalizer)
    return mean, std, config, sum(executions.values())


FRESH_SEED_OFFSET = 1_000_003
"""Seeds of :func:`evaluate_best`'s episodes: the run's seed plus this, so none is an episode of training's
evaluations (those start at the seed plus :data:`qrl.envs.EVAL_SEED_OFFSET`)."""


def evaluate_best(run_dir: Path, episodes: int | None = None) -> dict[str, Any]:
    """Evaluate a finished run's best model (:func:`qrl.runs.best_checkpoint`) on ``episodes`` episodes (default:
    the run's evaluation episodes) that no evaluation during training ran, and record it in ``results.json`` as
    ``best_model``: the step, the return that chose it (a maximum over noisy evaluations, so optimistic) and the
    fresh evaluation's mean and std."""
    run_dir = Path(run_dir)
    model, config = load_model(run_dir, best=True)  # a one-line error when the run has none
    folder, chosen = runs.best_checkpoint(run_dir)
    episodes = config.env_spec.eval_episodes if episodes is None else episodes
    mean, std, _ = evaluate_model(model, config, folder, episodes, seed=config.seed + FRESH_SEED_OFFSET)
    record = {"timesteps": chosen["timesteps"], "chosen_by": chosen["mean_return"], "eval_mean": mean,
              "eval_std": std, "episodes": episodes}
    runs.write_results(run_dir, {**runs.read_results(run_dir), "best_model": record})
    return record


def evaluate_model(model: BaseAlgorithm, config: RunConfig, run_dir: Path, episodes: int = 20,
                   seed: int | None = None, n_envs: int = 1,
                   without_normalizer: bool = False) -> tuple[float, float, dict[str, int]]:
    """Mean and std return of a run's loaded model, and the circuits each of its circuits ran (by module
    name; target networks, which no action uses, left out). ``run_dir`` is where the model's normaliser lies
    (:func:`qrl.runs.model_folder`)."""
    if episodes < 1 or not 1 <= n_envs <= episodes:
        raise QRLError(f"expected episodes >= 1 and 1 <= envs <= episodes; got {episodes} episodes, {n_envs} envs")
    if seed is not None:
        config.seed = seed
    env = with_normalizer(make_eval_env(config, n_envs=n_envs), config, Path(run_dir), without_normalizer)
    circuits = policy_circuits(model.policy)
    before = {name: m.n_executions for name, m in circuits.items()}
    mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    env.close()
    return float(mean), float(std), {name: m.n_executions - before[name] for name, m in circuits.items()}


def with_normalizer(env: VecEnv, config: RunConfig, run_dir: Path, without: bool = False) -> VecEnv:
    """``env`` wrapped in the run's saved ``VecNormalize`` (frozen, rewards raw); an error when a run
    trained with ``normalize: true`` has none (unless ``without``) or when it does not fit ``env``."""
    path = run_dir / runs.VECNORMALIZE
    if not path.is_file():
        if config.normalize and not without:
            env.close()
            raise QRLError(f"run {run_dir} was trained with normalize: true but has no {runs.VECNORMALIZE}; "
                           f"expected it beside {runs.MODEL} (without it the policy sees other inputs and the "
                           f"returns are wrong); try restoring the file, or --without-normalizer to evaluate anyway")
        return env
    return load_frozen_normalizer(path, env, lambda reason: (
        f"{path} does not fit run {run_dir} on {config.env}: {reason}; expected the normaliser saved by "
        f"`qrl train` with this run; try restoring it"))


# -- dry runs ---------------------------------------------------------------------------------------


def dry_run(run_dir, device: str, shots: int, episodes: int = 20, seed: int | None = None) -> str:
    """What evaluating (and training) run ``run_dir`` on ``device`` would run and cost; nothing is
    submitted and no credentials are needed.

    Each policy circuit is compiled for the device with seeded random inputs in ``[-pi, pi)`` (a built-in
    circuit's encoding angles, a user's features; depth and gate counts do not depend on the values, except
    for angles a compiler could drop) and the run's weights. The evaluation's
    circuits are counted by running it on the exact local simulator; the training run's come from its
    ``results.json`` (``cost``, written since cost accounting exists).
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QRLError(f"a dry run prices shots; expected --shots N (N >= 1); got {shots!r}; try --shots 1024")
    cls = device_class(device)
    model, config = load_model(run_dir)
    circuits = policy_circuits(model.policy)  # targets are copies of circuits listed
    if not circuits:
        raise QRLError(f"run {run_dir} has no circuit (policy {config.policy}); a dry run prices VQC policies")
    gen = torch.Generator().manual_seed(0)
    lines = [f"dry run on {device}: nothing is submitted", f"device:     {cls.description}"]
    compiled = {}
    for name, vqc in circuits.items():
        spec = vqc.spec
        inputs = (torch.rand(tuple(spec.input_shape), generator=gen, dtype=torch.float64) * 2 - 1)
        t = transpile_for(spec, device, inputs.numpy() * math.pi,
                          [w.detach().double().numpy() for w in vqc.circuit_parameters()])
        compiled[name] = t
        which = f" ({spec.circuit})" if isinstance(spec, CustomCircuit) else ""
        lines += [f"circuit {name}{which}: {spec.n_qubits} qubits, {shift_parameters(spec)} trainable gate angles; "
                  f"on the device: depth {t.depth}, {t.two_qubit_gates} two-qubit gates",
                  f"  machine: {t.summary}",
                  f"  gates:   {format_gate_counts(t.gate_counts)}",
                  f"  time:    {per_circuit(t.seconds_per_shot, shots)}"]
    _, _, executions = evaluate_model(model, config, run_dir, episodes, seed)
    ran = {name: n for name, n in executions.items() if n}
    total = sum((estimate(cls, n * compiled[name].circuits, shots, compiled[name].seconds_per_shot
                          / compiled[name].circuits) for name, n in ran.items()), Estimate(0, 0, 0.0, 0.0))
    plural = "s" if episodes != 1 else ""
    lines.append(f"evaluation, {episodes} episode{plural} (circuits counted on the exact simulator): {total}")
    results = Path(run_dir) / runs.RESULTS
    cost = runs.read_results(run_dir).get("cost") if results.is_file() else None
    if cost:
        longest = max(compiled.values(), key=lambda t: t.seconds_per_shot)  # per sample: its circuits' shots
        e = estimate(cls, cost["hardware_circuits"] * longest.circuits, shots,
                     longest.seconds_per_shot / longest.circuits)
        lines.append(f"training this run on the device ({format_count(cost['circuit_executions'])} forward circuits "
                     f"+ {format_count(cost['gradient_circuits'])} for parameter-shift gradients, "
                     f"{cost['shift_parameters']} angles x 2 per sample; the longest circuit's time): {e}")
    else:
        lines.append("training: not recorded (results.json has no 'cost'; runs trained since cost accounting have it)")
    name, t = next(iter(compiled.items()))
    lines += [f"compiled circuit ({name}):", t.drawing]
    return "\n".join(lines)


# -- robustness sweeps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One evaluation setting of a sweep: shots (``None``: exact) and noise (``{channel: p}``)."""

    shots: int | None = None
    noise: dict | None = None


@dataclass
class SweepRow:
    point: SweepPoint
    value: float  # the swept quantity's value at this point
    mean: float
    std: float
    executions: int


def sweep_points(shots: list[int], noise: dict[str, list[float]]) -> tuple[str | None, list[SweepPoint]]:
    """The evaluation settings of ``--shots`` and ``--noise`` values: the swept quantity (``"shots"`` or a
    channel; ``None`` when every quantity has one value) and one point per swept value, the other
    quantities held at their single values."""
    swept = [k for k, v in {"shots": shots, **noise}.items() if len(v) > 1]
    if len(swept) > 1:
        raise QRLError(f"a sweep varies one quantity; got several values for {' and '.join(swept)}; "
                       f"try one list, e.g. --noise depolarizing=0,0.01,0.03")
    n = max([len(shots), *map(len, noise.values()), 1])
    points = [SweepPoint(shots=shots[i if len(shots) > 1 else 0] if shots else None,
                         noise={k: v[i if len(v) > 1 else 0] for k, v in noise.items()} or None) for i in range(n)]
    return (swept[0] if swept else None), points


def sweep(run_dir, points: list[SweepPoint], device: str | None, episodes: int = 20, seed: int | None = None,
          n_envs: int = 1, log=None, best: bool = False) -> list[SweepRow]:
    """Evaluate a run at each point (same episodes and seed, so only the swept quantity changes)."""
    varying = [k for k in ("shots", *sorted({c for p in points for c in (p.noise or {})}))
               if len({(p.shots if k == "shots" else (p.noise or {}).get(k)) for p in points}) > 1]
    if len(points) < 2 or len(varying) != 1:
        raise QRLError(f"a sweep varies one quantity over several values; got {len(points)} points varying "
                       f"{varying or 'nothing'}")
    key = varying[0]
    rows = []
    for i, point in enumerate(points, 1):
        started = time.perf_counter()
        mean, std, _, executions = evaluate_run(Path(run_dir), episodes=episodes, device=device, seed=seed,
                                                shots=point.shots, noise=point.noise, n_envs=n_envs, best=best)
        value = point.shots if key == "shots" else point.noise[key]
        rows.append(SweepRow(point, float(value), mean, std, executions))
        if log is not None:
            log(f"sweep {i}/{len(points)}: {key} {value:g} -> return {mean:.1f} +- {std:.1f} "
                f"({time.perf_counter() - started:.0f} s)")
    return rows
