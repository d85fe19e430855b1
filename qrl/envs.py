"""Environment factory: Gymnasium environments from the suite, as SB3 vectorised environments."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from qrl.config import EnvSpec
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
    """``n_envs`` copies in one process (small envs: subprocesses would only add IPC cost)."""
    return make_vec_env(env_factory(spec), n_envs=n_envs, seed=seed)
