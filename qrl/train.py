"""One run: config -> environments -> model -> learn -> run folder (:mod:`qrl.runs` names its files).

Everything is validated and built before the folder is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from qrl import runs
from qrl.config import RunConfig, algo_class, algo_kwargs, resolve_policy
from qrl.cost import circuit_executions, run_cost
from qrl.envs import check_env_id, make_eval_env, make_train_env
from qrl.errors import QRLError
from qrl.io import atomic_write, write_yaml
from qrl.sb3.networks import count_parameters


def build_model(config: RunConfig) -> tuple[BaseAlgorithm, VecEnv]:
    """The SB3 algorithm with its training environments, from a config (validates everything)."""
    check_env_id(config.env_spec)
    env = make_train_env(config)
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


def preset_parameters(config: RunConfig) -> dict[str, int]:
    """Trainable parameters of a configuration's policy (the model is built, not trained)."""
    model, vec_env = build_model(config)
    vec_env.close()
    return count_parameters(model.policy)


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
        runs.write_evaluations(self.run_dir, self.rows)


def run_results(config: RunConfig, model: BaseAlgorithm, status: str, timesteps: int, wall: float,
                final_returns, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The common keys of a run's ``results.json`` (:data:`qrl.runs.RESULT_KEYS`) for a trained model."""
    executions = circuit_executions(model.policy)
    return runs.results_record(status, config.agent, config.env, config.seed, timesteps, wall, final_returns, rows,
                               config.env_spec.reward_threshold, count_parameters(model.policy), executions,
                               run_cost(model.policy) if executions else None)


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
        run_dir = runs.new_run_dir(Path(out), config.env, config.agent, config.seed)
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if announce is not None:
        announce(f"training {config.agent} on {config.env}: {config.n_timesteps} steps, seed {config.seed} "
                 f"-> {run_dir}")
    write_yaml(run_dir / runs.CONFIG, config.to_dict())
    model.tensorboard_log = str(run_dir / runs.TENSORBOARD) if tensorboard else None

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

    atomic_write(run_dir / runs.MODEL, lambda p: model.save(p))
    if isinstance(env, VecNormalize):
        atomic_write(run_dir / runs.VECNORMALIZE, lambda p: env.save(p))
    final_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=config.env_spec.eval_episodes,
                                       deterministic=True, return_episode_rewards=True)
    if not log.rows or log.rows[-1]["timesteps"] != model.num_timesteps:
        log.add(int(model.num_timesteps), final_returns)
    results = run_results(config, model, status, int(model.num_timesteps), wall, final_returns, log.rows)
    runs.write_results(run_dir, results)
    env.close()
    eval_env.close()
    return run_dir
