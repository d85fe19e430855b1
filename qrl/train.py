"""One run: config -> environments -> model -> learn -> run folder (:mod:`qrl.runs` names its files).

Everything is validated and built before the folder is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from qrl import runs
from qrl.config import CALLBACK_MODULE, RunConfig, algo_class, algo_kwargs, resolve_policy
from qrl.cost import circuit_executions, run_cost
from qrl.envs import check_env_id, make_eval_env, make_train_env
from qrl.errors import QRLError
from qrl.io import atomic_write, write_json, write_text, write_yaml
from qrl.sb3.callbacks import CALLBACKS
from qrl.sb3.networks import count_parameters, policy_circuits


def build_model(config: RunConfig) -> tuple[BaseAlgorithm, VecEnv]:
    """The SB3 algorithm with its training environments, from a config (validates everything). SB3's torch
    device: the ``device`` hyperparameter (``--set device=cuda``, as rl-zoo3 passes it to the algorithm), else
    the CPU (circuits this small run faster there; from about 16 qubits a GPU pays, README "On one GPU")."""
    check_env_id(config.env_spec)
    env = make_train_env(config)
    try:
        kwargs = algo_kwargs(config, env.action_space)
        device = kwargs.pop("device", "cpu")
        model = algo_class(config.algo)(
            resolve_policy(config.policy), env, seed=config.seed, device=device, verbose=0,
            policy_kwargs=dict(config.policy_kwargs), **kwargs,
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


def preset_callbacks(config: RunConfig, model: BaseAlgorithm | None = None) -> list[BaseCallback]:
    """The callbacks the preset names (``callback:``, checked by :func:`qrl.config.parse_callbacks`), built;
    those with a ``check_model`` method check ``model`` (an algorithm they cannot serve fails here, before
    a run folder exists)."""
    built = []
    for item in config.hyperparams.get("callback", []):
        (name, kwargs), = item.items()
        cls = CALLBACKS.get(name.rpartition(".")[2])
        if cls is None:
            raise QRLError(f"unknown callback {name}; expected one of "
                           f"{', '.join(f'{CALLBACK_MODULE}.{n}' for n in CALLBACKS)}")
        try:
            built.append(cls(**kwargs))
        except TypeError as exc:
            raise QRLError(f"callback {name}: {exc}; expected its keyword arguments") from None
        if model is not None and hasattr(built[-1], "check_model"):
            built[-1].check_model(model)
    return built


def largest_gradient_batch(config: RunConfig) -> int:
    """Samples in the largest batch the algorithm differentiates (SB3's defaults where the preset is silent):
    PPO's minibatch, A2C's whole rollout, the replay batch of DQN, SAC and TD3."""
    h = config.hyperparams
    if config.algo == "a2c":
        return int(h.get("n_steps", 5)) * config.n_envs
    if config.algo == "ppo":
        return min(int(h.get("batch_size", 64)), int(h.get("n_steps", 2048)) * config.n_envs)
    return int(h.get("batch_size", 32 if config.algo == "dqn" else 256))


def check_training_memory(config: RunConfig, model: BaseAlgorithm, available: int | None = None) -> None:
    """Refuse, before any folder exists, a run whose gradient step would not fit in memory: the circuits
    on the torch backend keep their intermediate states for autograd (PennyLane devices are not counted), each
    circuit's call in chunks (``device="auto"`` where a batch does not fit at once) one chunk's forward + backward
    at a time, after the others' backward. On a GPU (``device=cuda``) the states live in the GPU's memory, which
    torch reports when it runs out."""
    from qrl.backends.chunks import Chunks, amplitude_bytes
    from qrl.backends.dispatch import cpu_backend
    from qrl.backends.memory import available_memory, format_bytes
    from qrl.backends.torch import TorchStatevector

    if model.device.type != "cpu":
        return

    batch = largest_gradient_batch(config)
    circuits = policy_circuits(model.policy).values()
    itemsize = amplitude_bytes(next(model.policy.parameters()).dtype)  # 16: a float64 policy's complex128 states
    backends = [cpu_backend(vqc.backend, batch, itemsize) for vqc in circuits]  # auto: a call of this batch's
    torch_circuits = [b for b in backends if isinstance(b, (TorchStatevector, Chunks))]
    peaks = [(b.gradient_bytes(batch, itemsize), isinstance(b, Chunks)) for b in torch_circuits]
    need = sum(p for p, chunked in peaks if not chunked) + max((p for p, chunked in peaks if chunked), default=0)
    have = available_memory() if available is None else available
    if need > have:
        n = max(b.n for b in torch_circuits)
        raise QRLError(f"{config.agent} on {config.env} needs about {format_bytes(need)} for one gradient step "
                       f"({batch} samples through {len(torch_circuits)} circuit(s) of up to {n} qubits, torch "
                       f"backend); expected at most {format_bytes(have)} (available memory); try a smaller "
                       f"batch_size, fewer qubits, or --device torch:adjoint (the torch path with adjoint "
                       f"gradients keeps a few states)")


def check_memory_before_training(config: RunConfig) -> None:
    """:func:`check_training_memory` for a config, nothing written (a config SB3 refuses to build is left
    for its run to report, as a failed run with retries)."""
    try:
        model, env = build_model(config)
    except QRLError:
        return
    env.close()
    check_training_memory(config, model)


def preset_parameters(config: RunConfig) -> dict[str, int]:
    """Trainable parameters of a configuration's policy (the model is built, not trained)."""
    model, vec_env = build_model(config)
    vec_env.close()
    return count_parameters(model.policy)


SB3_SCRATCH = ".sb3"  # where SB3's EvalCallback writes its evaluations.npz (not atomically); removed at the end


class EpisodeLog(BaseCallback):
    """Every training episode that ends (the ``Monitor`` wrapper's ``info["episode"]``: the return before any
    normalising): the step it ended at, its return and length, written to ``training_episodes.csv`` by
    :meth:`flush` (at each checkpoint and at the end). Goes before the evaluation callback, so an episode that
    ends at a checkpoint's step is in that checkpoint's file."""

    def __init__(self, run_dir: Path, rows: list[dict[str, Any]] | None = None):
        super().__init__()
        self.run_dir, self.rows = run_dir, list(rows or [])

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.rows.append({"timesteps": int(self.num_timesteps), "return": float(episode["r"]),
                                  "length": int(episode["l"])})
        return True

    def flush(self) -> None:
        runs.write_training_episodes(self.run_dir, self.rows)


class EvalLog(BaseCallback):
    """After each evaluation: append to ``evaluations.csv`` (rewritten atomically) with the wall-clock, save a
    checkpoint (so a killed run loses at most one evaluation period), then keep the model if it is the best
    so far (:meth:`keep_best`)."""

    def __init__(self, run_dir: Path, started: float, rows: list[dict[str, Any]] | None = None,
                 checkpoints: bool = False, best: dict[str, Any] | None = None, episodes: int = 0,
                 training: EpisodeLog | None = None):
        super().__init__()
        self.run_dir, self.started, self.checkpoints = run_dir, started, checkpoints
        self.training = training if training is not None else EpisodeLog(run_dir)
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.wall_before = self.rows[-1]["wall_clock_s"] if self.rows else 0.0  # a resumed run's earlier time
        self.best, self.last_episodes = best, episodes  # episodes of the last evaluation

    def _on_step(self) -> bool:
        parent: EvalCallback = self.parent  # type: ignore[assignment]
        with interrupts_deferred():  # an interrupt mid-save would leave no checkpoint and no results
            runs.write_evaluation_episodes(self.run_dir, parent.evaluations_timesteps, parent.evaluations_results,
                                           parent.evaluations_length)
            self.add(int(parent.evaluations_timesteps[-1]), parent.evaluations_results[-1])
            if self.checkpoints:
                self.training.flush()
                save_checkpoint(self.run_dir, self.model)
            self.keep_best(self.model)
        return True

    def add(self, timesteps: int, returns) -> None:
        self.rows.append({
            "timesteps": timesteps,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "wall_clock_s": round(self.wall_before + time.perf_counter() - self.started, 3),
        })
        self.last_episodes = len(returns)
        runs.write_evaluations(self.run_dir, self.rows)

    def keep_best(self, model: BaseAlgorithm) -> None:
        """Save ``model`` with its normaliser as the run's best (``best/``, :func:`qrl.runs.best_checkpoint`)
        when the last evaluation is of this model and at least as good as the best so far: ties go to the later
        model, trained longer for the same score (SB3's ``EvalCallback`` keeps the earlier)."""
        row = self.rows[-1] if self.rows else None
        if row is None or row["timesteps"] != model.num_timesteps:
            return
        if self.best is not None and row["mean_return"] < self.best["mean_return"]:
            return
        self.best = {"timesteps": row["timesteps"], "mean_return": row["mean_return"],
                     "std_return": row["std_return"], "episodes": self.last_episodes}
        save_snapshot(self.run_dir / runs.BEST, model, evaluation=self.best)


def save_checkpoint(run_dir: Path, model: BaseAlgorithm) -> None:
    """Model, normaliser and (off-policy) replay buffer at the current step, in ``checkpoint/<steps>/``."""
    save_snapshot(Path(run_dir) / runs.CHECKPOINT, model, replay_buffer=True)


def save_snapshot(root: Path, model: BaseAlgorithm, replay_buffer: bool = False,
                  evaluation: dict[str, Any] | None = None) -> None:
    """Model and normaliser (and the replay buffer, and the evaluation that chose the model) in
    ``root/<steps>/``; ``root/latest`` names it once every file is written, then older ones are removed."""
    steps = str(int(model.num_timesteps))
    folder = root / steps
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / runs.MODEL, lambda p: model.save(p))
    norm = model.get_vec_normalize_env()
    if norm is not None:
        atomic_write(folder / runs.VECNORMALIZE, lambda p: norm.save(p))
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:
        atomic_write(folder / runs.REPLAY_BUFFER, lambda p: model.save_replay_buffer(p))
    if evaluation is not None:
        write_json(folder / runs.BEST_EVALUATION, evaluation)
    write_text(root / runs.CHECKPOINT_LATEST, steps + "\n")
    for old in root.iterdir():
        if old.is_dir() and old.name != steps:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def interrupted_by_sigterm():
    """SIGTERM (what ``kill``, schedulers and the OOM-avoiding supervisor send) stops training like Ctrl-C:
    as a ``KeyboardInterrupt`` that the run saves on; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def grad_mode_kept():
    """torch's gradient mode as before the block, however it ends: an interrupt landing inside
    ``torch.no_grad().__exit__`` (SB3 collects rollouts under it) before the mode is restored leaves gradients
    off, and a caller going on in the same process (a notebook, a resumed run) would then train without them."""
    enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(enabled)


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C and SIGTERM received inside the block take effect at its end, so that what it writes is whole.

    An interrupt inside a save is not safe to raise: torch's zip writer, interrupted in a write, replaces the
    ``KeyboardInterrupt`` with a ``RuntimeError`` ("unexpected pos"), which ended a SIGTERM'd run without its
    ``results.json``. Here the block's signals are recorded; at its end the handlers are restored and the first
    recorded signal is raised again, to the handler that was in place (a ``KeyboardInterrupt`` in training,
    the default action elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum, frame):
        received.append(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: set outside Python, which could not be put back
            previous[signum] = signal.signal(signum, record)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        signal.raise_signal(received[0])


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

    A checkpoint is saved after every evaluation (:func:`save_checkpoint`); Ctrl-C or SIGTERM saves the
    model with ``"status": "interrupted"``, and :func:`resume` continues a run to its step count. The model of
    the best evaluation is kept with its normaliser in ``best/`` (``qrl eval RUN --best``).

    :param announce: called with a one-line description once the model is built (validation passed).
    :param run_dir: write into this (empty or new) folder instead of a new ``out/<env>__<agent>__<seed>__<time>``.
    :param callbacks: more SB3 callbacks, called during training.
    :param tensorboard: write a TensorBoard log (``tb/``).
    """
    model, env = build_model(config)
    try:
        check_training_memory(config, model)
        callbacks = [*preset_callbacks(config, model), *(callbacks or [])]
    except QRLError:
        env.close()
        raise
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
    _learn(config, model, env, run_dir, progress, callbacks, EvalLog(run_dir, time.perf_counter(), checkpoints=True))
    return run_dir


def resume(run_dir: Path, progress: bool = False, announce: Callable[[str], None] | None = None,
           callbacks: list[BaseCallback] | None = None, tensorboard: bool = True) -> Path:
    """Continue an interrupted or killed run from its checkpoint to the configured step count; its
    evaluations continue the same files."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    if (run_dir / runs.RESULTS).is_file() and runs.read_results(run_dir)["status"] == "finished":
        raise QRLError(f"run {run_dir} has finished ({config.n_timesteps} steps); expected an interrupted or "
                       f"killed run; try `qrl eval {run_dir}`")
    steps, folder = runs.latest_checkpoint(run_dir)
    check_env_id(config.env_spec)
    callbacks = [*preset_callbacks(config), *(callbacks or [])]
    env = make_train_env(config)
    if isinstance(env, VecNormalize):
        env = VecNormalize.load(str(folder / runs.VECNORMALIZE), env.venv)
    model = algo_class(config.algo).load(folder / runs.MODEL, env=env, device=config.hyperparams.get("device", "cpu"))
    if (folder / runs.REPLAY_BUFFER).is_file():
        model.load_replay_buffer(folder / runs.REPLAY_BUFFER)
    rows = runs.truncate_evaluations(run_dir, steps)
    if announce is not None:
        announce(f"resuming {config.agent} on {config.env} at step {steps} of {config.n_timesteps} -> {run_dir}")
    model.tensorboard_log = str(run_dir / runs.TENSORBOARD) if tensorboard else None
    best = runs.best_checkpoint(run_dir)
    log = EvalLog(run_dir, time.perf_counter(), rows=rows, checkpoints=True, best=best[1] if best else None,
                  episodes=config.env_spec.eval_episodes,
                  training=EpisodeLog(run_dir, runs.read_training_episodes(run_dir, steps)))
    log.keep_best(model)  # a kill between the checkpoint and the best model: this checkpoint's evaluation
    _learn(config, model, env, run_dir, progress, callbacks, log, resumed=True)
    return run_dir


def _learn(config: RunConfig, model: BaseAlgorithm, env: VecEnv, run_dir: Path, progress: bool,
           callbacks: list[BaseCallback] | None, log: EvalLog, resumed: bool = False) -> None:
    """Learn to ``config.n_timesteps`` with evaluations, then save the model and ``results.json``."""
    eval_env = make_eval_env(config, env)
    evaluator = EvalCallback(  # SB3 writes its npz in place, interruptibly: to scratch; EvalLog writes ours
        eval_env, n_eval_episodes=config.env_spec.eval_episodes,
        eval_freq=max(config.env_spec.eval_freq // config.n_envs, 1), log_path=str(run_dir / SB3_SCRATCH),
        deterministic=True, verbose=0, callback_after_eval=log,
    )
    if resumed:  # evaluations.npz is rewritten from these lists after each evaluation
        evaluator.evaluations_timesteps, evaluator.evaluations_results, evaluator.evaluations_length = \
            runs.read_evaluation_episodes(run_dir)
    status = "finished"
    try:
        with interrupted_by_sigterm(), grad_mode_kept():
            model.learn(max(config.n_timesteps - model.num_timesteps, 0) if resumed else config.n_timesteps,
                        callback=[log.training, evaluator, *(callbacks or [])], progress_bar=progress,
                        tb_log_name=runs.TENSORBOARD, reset_num_timesteps=not resumed)
    except KeyboardInterrupt:
        status = "interrupted"
    wall = log.wall_before + time.perf_counter() - log.started

    with interrupts_deferred():
        atomic_write(run_dir / runs.MODEL, lambda p: model.save(p))
        if isinstance(env, VecNormalize):
            atomic_write(run_dir / runs.VECNORMALIZE, lambda p: env.save(p))
        if status == "interrupted":
            save_checkpoint(run_dir, model)  # --resume continues from here
    final_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=config.env_spec.eval_episodes,
                                       deterministic=True, return_episode_rewards=True)
    if not log.rows or log.rows[-1]["timesteps"] != model.num_timesteps:
        log.add(int(model.num_timesteps), final_returns)
        log.keep_best(model)
    log.training.flush()
    results = run_results(config, model, status, int(model.num_timesteps), wall, final_returns, log.rows)
    results["training"] = runs.training_summary(log.training.rows, config.env_spec.reward_threshold)
    runs.write_results(run_dir, results)
    if status == "finished":
        shutil.rmtree(run_dir / runs.CHECKPOINT, ignore_errors=True)
    shutil.rmtree(run_dir / SB3_SCRATCH, ignore_errors=True)
    env.close()
    eval_env.close()
