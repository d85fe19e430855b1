"""Environment factory: Gymnasium environments from the suite, as SB3 vectorised environments for
training and evaluation (with their observation normalisation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from qrl.circuits.spec import RAW_OBS_MAPS
from qrl.config import EnvSpec, RunConfig, is_vqc_policy
from qrl.errors import QRLError


def env_factory(spec: EnvSpec) -> Callable[[], gym.Env]:
    """A zero-argument constructor of one environment (what SB3's ``make_vec_env`` takes)."""

    def make() -> gym.Env:
        return gym.make(spec.id, **spec.make_kwargs)

    return make


def check_env_id(spec: EnvSpec) -> None:
    """Fail early, with the fix, if the environment cannot be created."""
    try:
        env = env_factory(spec)()
    except gym.error.Error as exc:
        raise QRLError(f"cannot create environment {spec.id!r}: {exc}") from exc
    except ImportError as exc:  # e.g. box2d environments without the extra
        raise QRLError(f"environment {spec.id!r} needs a package that is not installed: {exc}; "
                       f"try pip install 'gymnasium[box2d]' or the package named above") from exc
    env.close()


def make_vec(spec: EnvSpec, n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` copies in one process (small envs: subprocesses would only add IPC cost), whose
    observations are checked to be finite."""
    return FiniteObservations(make_vec_env(env_factory(spec), n_envs=n_envs, seed=seed), spec.id)


class FiniteObservations(VecEnvWrapper):
    """Stop at the first NaN or infinite observation, naming the environment, the step and the features
    (a circuit's ``arctan`` would map infinity to pi/2 without a word, and NaN fails deep inside torch)."""

    def __init__(self, venv: VecEnv, env_id: str):
        super().__init__(venv)
        self.env_id, self.steps = env_id, 0

    def reset(self):
        self.steps = 0
        return self._check(self.venv.reset(), "reset")

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        return self._check(obs, f"step {self.steps}"), rewards, dones, infos

    def _check(self, obs, when: str):
        if isinstance(obs, np.ndarray) and obs.dtype.kind == "f" and not np.isfinite(obs).all():
            env_index, *feature = np.argwhere(~np.isfinite(obs))[0].tolist()
            value = obs[(env_index, *feature)]
            raise QRLError(f"{self.env_id} returned a non-finite observation at {when} (environment {env_index}, "
                           f"feature {feature[0] if len(feature) == 1 else feature}: {value}); expected finite "
                           f"observations; try an observation wrapper that clips or replaces them")
        return obs


EVAL_SEED_OFFSET = 10_000  # evaluation episodes never share seeds with training episodes


def normalizes(config: RunConfig, what: str) -> bool:
    """Whether the config's ``normalize`` asks for ``what`` (``norm_obs`` or ``norm_reward``): ``true`` asks
    for both, a mapping names each."""
    return config.normalize[what] if isinstance(config.normalize, dict) else bool(config.normalize)


def normalizes_observations(config: RunConfig, env: VecEnv) -> bool:
    """``normalize: true`` normalises rewards always (unless ``norm_reward: false``), observations only where the
    config leaves ``norm_obs`` true and the policy reads them raw.

    SB3's ``VecNormalize`` refuses non-Box observations, and circuits with ``obs_map`` ``bounds``, ``scale``
    or ``basis`` map the raw observation through the space's bounds, fixed divisors or cell index:
    standardised values would break that map.
    """
    if not normalizes(config, "norm_obs"):
        return False
    if not isinstance(env.observation_space, spaces.Box):
        return False
    return not (is_vqc_policy(config.policy) and config.policy_kwargs.get("obs_map") in RAW_OBS_MAPS)


def make_train_env(config: RunConfig) -> VecEnv:
    """The training environments of a run, wrapped in ``VecNormalize`` if the config normalises."""
    env = make_vec(config.env_spec, config.n_envs, config.seed)
    if config.normalize:
        env = VecNormalize(env, norm_obs=normalizes_observations(config, env),
                           norm_reward=normalizes(config, "norm_reward"))
    return env


def make_eval_env(config: RunConfig, train_env: VecEnv | None = None, n_envs: int = 1) -> VecEnv:
    """Evaluation environments (seeds offset from training's), sharing ``train_env``'s observation
    statistics when it normalises."""
    env = make_vec(config.env_spec, n_envs, config.seed + EVAL_SEED_OFFSET)
    if isinstance(train_env, VecNormalize):
        env = VecNormalize(env, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        if train_env.norm_obs:  # SB3 keeps no observation statistics otherwise
            env.obs_rms = train_env.obs_rms
    return env


def load_frozen_normalizer(path: Path, venv: VecEnv, error: Callable[[str], str]) -> VecNormalize:
    """The ``VecNormalize`` statistics saved at ``path`` around ``venv``, frozen (no updates, raw rewards);
    a :class:`QRLError` with ``error(reason)`` when the file is not statistics for this observation space."""
    try:
        norm = VecNormalize.load(str(path), venv)
    except Exception as exc:  # a pickle of something else, or statistics of another observation space
        venv.close()
        raise QRLError(error(f"{type(exc).__name__}: {exc}")) from exc
    norm.training, norm.norm_reward = False, False
    return norm
