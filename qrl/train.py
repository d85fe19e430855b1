"""One run: config -> environments -> model -> learn -> run folder.

A run folder ``runs/{env}__{agent}__{seed}__{timestamp}/`` holds (see ``runs/README.md``):
``config.yaml`` (the resolved config), ``model.zip`` (SB3's format), ``evaluations.npz`` and
``evaluations.csv`` (evaluation returns over training), ``results.json`` (summary), ``tb/``
(TensorBoard) and, for normalised agents, ``vecnormalize.pkl``. Everything is validated and built
before the folder is created, so bad input leaves nothing behind; files are written atomically.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from qrl.config import RunConfig, algo_class, algo_kwargs, is_vqc_policy, resolve_policy
from qrl.devices import run_cost
from qrl.envs import check_env_id, make_vec
from qrl.errors import QRLError
from qrl.io import atomic_write, write_json, write_text, write_yaml
from qrl.sb3.networks import count_parameters, policy_circuits

EVAL_SEED_OFFSET = 10_000  # evaluation episodes never share seeds with training episodes


def build_model(config: RunConfig) -> tuple[BaseAlgorithm, VecEnv]:
    """The SB3 algorithm with its training environments, from a config (validates everything)."""
    check_env_id(config.env_spec)
    env = make_vec(config.env_spec, config.n_envs, config.seed)
    if config.normalize:
        env = VecNormalize(env, norm_obs=_normalizes_observations(config, env))
    try:
        model = algo_class(config.algo)(
            resolve_policy(config.policy), env, seed=config.seed, device="cpu", verbose=0,
            policy_kwargs=dict(config.policy_kwargs), **algo_kwargs(config, env.action_space),
        )
    except QRLError:
        env.close()
        raise
    except (TypeError, ValueError, AssertionError) as exc:
        env.close()
        raise QRLError(
            f"cannot build {config.algo.upper()} with policy {config.policy} on {config.env}: {exc}"
        ) from exc
    return model, env


def _normalizes_observations(config: RunConfig, env: VecEnv) -> bool:
    """``normalize: true`` normalises rewards always, observations only where the policy reads them raw.

    SB3's ``VecNormalize`` refuses non-Box observations, and circuits with ``obs_map`` ``bounds`` or
    ``basis`` map the raw observation through the space's bounds or cell index: standardised values
    would break that map.
    """
    if not isinstance(env.observation_space, spaces.Box):
        return False
    return not (is_vqc_policy(config.policy) and config.policy_kwargs.get("obs_map") in ("bounds", "basis"))


def circuit_executions(policy) -> int:
    """Circuits run by the policy so far: one per sample of every VQC forward pass (training, rollouts,
    evaluations, target networks), not counting the extra evaluations a hardware gradient would need."""
    from qrl.nn import VQC

    return sum(getattr(m, "n_executions", 0) for m in policy.modules() if isinstance(m, VQC))


def preset_parameters(config: RunConfig) -> dict[str, int]:
    """Trainable parameters of a configuration's policy (the model is built, not trained)."""
    model, vec_env = build_model(config)
    vec_env.close()
    return count_parameters(model.policy)


def make_eval_env(config: RunConfig, train_env: VecEnv | None = None, n_envs: int = 1) -> VecEnv:
    env = make_vec(config.env_spec, n_envs, config.seed + EVAL_SEED_OFFSET)
    if isinstance(train_env, VecNormalize):
        env = VecNormalize(env, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        env.obs_rms = train_env.obs_rms
    return env


def new_run_dir(out: Path, config: RunConfig, label: str | None = None) -> Path:
    """A new folder ``out/{env}__{label}__{seed}__{timestamp}`` (``label``: the agent by default)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{config.env}__{label or config.agent}__{config.seed}__{stamp}"
    run_dir, k = Path(out) / base, 1
    while run_dir.exists():
        k += 1
        run_dir = Path(out) / f"{base}-{k}"
    run_dir.mkdir(parents=True)
    return run_dir


class EvalLog(BaseCallback):
    """After each evaluation: append to ``evaluations.csv`` (rewritten atomically) and the wall-clock."""

    def __init__(self, run_dir: Path, started: float):
        super().__init__()
        self.run_dir, self.started = run_dir, started
        self.rows: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        parent: EvalCallback = self.parent  # type: ignore[assignment]
        self.add(int(parent.evaluations_timesteps[-1]), parent.evaluations_results[-1])
        return True

    def add(self, timesteps: int, returns) -> None:
        self.rows.append({
            "timesteps": timesteps,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "wall_clock_s": round(time.perf_counter() - self.started, 3),
        })
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.run_dir / "evaluations.csv", buf.getvalue())


def steps_to_threshold(rows: list[dict[str, Any]], threshold: float | None) -> int | None:
    """First evaluated timestep whose mean return reaches the threshold (``None`` if never)."""
    if threshold is None:
        return None
    return next((r["timesteps"] for r in rows if r["mean_return"] >= threshold), None)


def run_results(config: RunConfig, model: BaseAlgorithm, status: str, timesteps: int, wall: float,
                final_returns, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The keys of every run's ``results.json`` (``qrl study`` and ``qrl report`` read them)."""
    executions = circuit_executions(model.policy)
    return {
        "status": status,
        "agent": config.agent,
        "env": config.env,
        "seed": config.seed,
        "timesteps": timesteps,
        "wall_clock_s": round(wall, 3),
        "steps_per_s": round(timesteps / wall, 1) if wall > 0 else None,
        "final_eval_mean": float(np.mean(final_returns)),
        "final_eval_std": float(np.std(final_returns)),
        "best_eval_mean": max((r["mean_return"] for r in rows), default=None),
        "reward_threshold": config.env_spec.reward_threshold,
        "steps_to_threshold": steps_to_threshold(rows, config.env_spec.reward_threshold),
        "parameters": count_parameters(model.policy),
        "circuit_executions": executions,
        "cost": run_cost(model.policy) if executions else None,
    }


def train(config: RunConfig, out: str | Path = "runs", progress: bool = False,
          announce: Callable[[str], None] | None = None, run_dir: Path | None = None,
          callbacks: list[BaseCallback] | None = None, tensorboard: bool = True) -> Path:
    """Train one agent as configured; returns the run folder.

    :param announce: called with a one-line description once the model is built (validation passed).
    :param run_dir: write into this (empty or new) folder instead of a new ``out/<env>__<agent>__<seed>__<time>``.
    :param callbacks: more SB3 callbacks, called during training.
    :param tensorboard: write a TensorBoard log (``tb/``).
    """
    model, env = build_model(config)
    if run_dir is None:
        run_dir = new_run_dir(Path(out), config)
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if announce is not None:
        announce(f"training {config.agent} on {config.env}: {config.n_timesteps} steps, seed {config.seed} "
                 f"-> {run_dir}")
    write_yaml(run_dir / "config.yaml", config.to_dict())
    model.tensorboard_log = str(run_dir / "tb") if tensorboard else None

    eval_env = make_eval_env(config, env)
    started = time.perf_counter()
    log = EvalLog(run_dir, started)
    evaluator = EvalCallback(
        eval_env, n_eval_episodes=config.env_spec.eval_episodes,
        eval_freq=max(config.env_spec.eval_freq // config.n_envs, 1), log_path=str(run_dir),
        deterministic=True, verbose=0, callback_after_eval=log,
    )
    status = "finished"
    try:
        model.learn(config.n_timesteps, callback=[evaluator, *(callbacks or [])], progress_bar=progress,
                    tb_log_name="tb")
    except KeyboardInterrupt:
        status = "interrupted"
    wall = time.perf_counter() - started

    atomic_write(run_dir / "model.zip", lambda p: model.save(p))
    if isinstance(env, VecNormalize):
        atomic_write(run_dir / "vecnormalize.pkl", lambda p: env.save(p))
    final_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=config.env_spec.eval_episodes,
                                       deterministic=True, return_episode_rewards=True)
    if not log.rows or log.rows[-1]["timesteps"] != model.num_timesteps:
        log.add(int(model.num_timesteps), final_returns)
    results = run_results(config, model, status, int(model.num_timesteps), wall, final_returns, log.rows)
    write_json(run_dir / "results.json", results)
    env.close()
    eval_env.close()
    return run_dir


# -- loading and evaluating a run --------------------------------------------------------------------


def load_run_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file() or not (run_dir / "model.zip").is_file():
        raise QRLError(f"{run_dir} is not a finished run folder (expected config.yaml and model.zip); "
                       f"runs are made by `qrl train`")
    return RunConfig.from_dict(yaml.safe_load(path.read_text()))


def load_model(run_dir: Path, device: str | None = None, shots: int | None = None,
               noise: dict[str, float] | None = None) -> tuple[BaseAlgorithm, RunConfig]:
    """Load a run's model; ``device`` moves its circuits to another backend (VQC agents only), where
    ``shots`` makes every expectation value an estimate from that many shots."""
    config = load_run_config(run_dir)
    model = algo_class(config.algo).load(Path(run_dir) / "model.zip", device="cpu")
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


def evaluate_run(run_dir: Path, episodes: int = 20, device: str | None = None,
                 seed: int | None = None, shots: int | None = None,
                 noise: dict[str, float] | None = None, n_envs: int = 1) -> tuple[float, float, RunConfig, int]:
    """Mean and std of the deterministic policy's return over ``episodes`` episodes, the config, and the
    circuits the evaluation ran (one per sample; with shots, each ran that many shots).

    ``n_envs`` > 1 runs that many episodes side by side, one batched circuit call per step for all of
    them (much faster on simulators such as default.mixed); the episodes then start from other seeds
    than with one environment, so returns differ within their spread.
    """
    model, config = load_model(run_dir, device, shots, noise)
    mean, std, executions = evaluate_model(model, config, run_dir, episodes, seed, n_envs)
    return mean, std, config, sum(executions.values())


def evaluate_model(model: BaseAlgorithm, config: RunConfig, run_dir: Path, episodes: int = 20,
                   seed: int | None = None, n_envs: int = 1) -> tuple[float, float, dict[str, int]]:
    """Mean and std return of a run's loaded model, and the circuits each of its circuits ran (by module
    name; target networks, which no action uses, left out)."""
    if episodes < 1 or not 1 <= n_envs <= episodes:
        raise QRLError(f"expected episodes >= 1 and 1 <= envs <= episodes; got {episodes} episodes, {n_envs} envs")
    if seed is not None:
        config.seed = seed
    env = make_eval_env(config, n_envs=n_envs)
    norm = Path(run_dir) / "vecnormalize.pkl"
    if norm.is_file():
        env = VecNormalize.load(str(norm), env)
        env.training, env.norm_reward = False, False
    circuits = policy_circuits(model.policy)
    before = {name: m.n_executions for name, m in circuits.items()}
    mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    env.close()
    return float(mean), float(std), {name: m.n_executions - before[name] for name, m in circuits.items()}
