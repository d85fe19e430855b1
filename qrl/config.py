"""Configuration: the environment suite (``envs/*.yaml``), agent presets (``agents/*.yaml``, rl-zoo3
format) and their resolution into one plain, picklable :class:`RunConfig`.

An agent preset is named ``<algo>-<variant>.yaml`` (``ppo-vqc``, ``ppo-mlp``): the algorithm comes from
the name, the hyperparameters from the section of the environment, exactly as rl-zoo3's
``hyperparams/<algo>.yml`` (``n_timesteps``, ``policy``, ``n_envs``, ``normalize``, ``policy_kwargs`` as
a ``"dict(...)"`` string, ``lin_<x>`` schedules; every other key goes to the algorithm's constructor).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qrl.errors import QRLError

ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")
# rl-zoo3's action-noise keys for off-policy algorithms, turned into SB3's action_noise.
NOISE_KEYS = ("noise_type", "noise_std")
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
# Keys rl-zoo3 reads itself rather than passing to the algorithm.
ZOO_KEYS = ("n_timesteps", "policy", "n_envs", "normalize", "policy_kwargs")
# rl-zoo3 keys qrl does not implement yet: refused rather than silently ignored.
UNSUPPORTED_ZOO_KEYS = ("frame_stack", "env_wrapper", "callback", "vec_env_wrapper", "normalize_kwargs")


def data_dir(kind: str) -> Path:
    """``envs`` or ``agents``: the repository folder in a checkout, else the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / kind
    if checkout.is_dir() and (here.parent / "pyproject.toml").is_file():
        return checkout
    return here / "data" / kind


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise QRLError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise QRLError(f"{path} must hold a mapping; got {type(data).__name__}")
    return data


# -- environments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSpec:
    """One environment of the suite.

    :param id: Gymnasium id.
    :param reward_threshold: the return that counts as solved (Gymnasium's, where it has one).
    :param budget: default training steps.
    :param eval_freq: timesteps between evaluations during training.
    :param eval_episodes: episodes per evaluation.
    :param obs_map: observation -> angle map for VQC agents (``arctan`` unless the bounds say more).
    :param make_kwargs: keyword arguments for ``gymnasium.make``.
    """

    id: str
    reward_threshold: float | None = None
    budget: int = 100_000
    eval_freq: int = 5_000
    eval_episodes: int = 10
    obs_map: str = "arctan"
    make_kwargs: dict[str, Any] = field(default_factory=dict)


def list_envs() -> list[str]:
    return sorted(p.stem for p in data_dir("envs").glob("*.yaml"))


def load_env_spec(env_id: str) -> EnvSpec:
    """The suite's spec for ``env_id``, or a default one for any other registered Gymnasium id."""
    path = data_dir("envs") / f"{env_id}.yaml"
    if path.is_file():
        data = _read_yaml(path)
        known = {f.name for f in dataclasses.fields(EnvSpec)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QRLError(f"{path}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return EnvSpec(**data)
    import gymnasium as gym

    if env_id not in gym.registry:
        import difflib

        close = difflib.get_close_matches(env_id, [*list_envs(), *gym.registry], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise QRLError(f"unknown environment {env_id!r}; {hint}expected one of the suite "
                       f"({', '.join(list_envs())}) or a registered Gymnasium id; see `qrl list`")
    threshold = gym.registry[env_id].reward_threshold
    return EnvSpec(id=env_id, reward_threshold=threshold)


# -- agents ------------------------------------------------------------------------------------------


def list_agents() -> list[str]:
    return sorted(p.stem for p in data_dir("agents").glob("*.yaml"))


def agent_algo(agent: str) -> str:
    algo = agent.split("-")[0].lower()
    if algo not in ALGOS:
        raise QRLError(f"agent {agent!r} must be named <algo>-<variant> with algo one of {', '.join(ALGOS)}")
    return algo


def load_agent(agent: str) -> dict[str, dict[str, Any]]:
    """All per-environment sections of an agent preset."""
    path = data_dir("agents") / f"{agent}.yaml"
    if not path.is_file():
        raise QRLError(f"unknown agent {agent!r}; expected one of {', '.join(list_agents())}; see `qrl list`")
    return _read_yaml(path)


def parse_policy_kwargs(value: Any) -> dict[str, Any]:
    """rl-zoo3 writes ``policy_kwargs`` as a ``"dict(...)"`` string; evaluate it with no builtins."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise QRLError(f"policy_kwargs must be a mapping or a 'dict(...)' string; got {value!r}")
    import torch
    from torch import nn

    try:
        parsed = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": nn, "th": torch, "torch": torch})
    except Exception as exc:
        raise QRLError(f"could not read policy_kwargs {value!r}: {exc}; expected e.g. \"dict(n_layers=5)\"") from exc
    if not isinstance(parsed, dict):
        raise QRLError(f"policy_kwargs must evaluate to a dict; got {type(parsed).__name__}")
    return parsed


# -- overrides ---------------------------------------------------------------------------------------


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["a=1", "policy_kwargs.n_layers=3"]`` -> ``{"a": 1, "policy_kwargs.n_layers": 3}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise QRLError(f"malformed --set {item!r}; expected KEY=VALUE, e.g. --set learning_rate=0.005 "
                           f"or --set policy_kwargs.n_layers=3")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise QRLError(f"malformed value in --set {item!r}: {exc}") from exc
    return out


# -- resolution --------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """Everything one training run needs, as plain values (saved as the run's ``config.yaml``)."""

    agent: str
    env: str
    algo: str
    seed: int
    n_timesteps: int
    n_envs: int
    policy: str
    normalize: bool
    hyperparams: dict[str, Any]
    policy_kwargs: dict[str, Any]
    env_spec: EnvSpec

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data["env_spec"] = EnvSpec(**data["env_spec"])
        return cls(**data)


def algo_class(algo: str):
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN, "sac": sb3.SAC, "td3": sb3.TD3}[algo]


def resolve(agent: str, env: str, *, seed: int = 0, steps: int | None = None, device: str | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """Agent preset + environment spec + command-line overrides -> a validated :class:`RunConfig`."""
    algo = agent_algo(agent)
    sections = load_agent(agent)
    env_spec = load_env_spec(env)
    if env not in sections:
        raise QRLError(f"agent {agent!r} has no section for {env!r}; it has {', '.join(sections)}; "
                       f"add one to {data_dir('agents') / (agent + '.yaml')}")
    params = copy.deepcopy(sections[env])
    policy_kwargs = parse_policy_kwargs(params.pop("policy_kwargs", None))
    for key, value in (overrides or {}).items():
        head, _, rest = key.partition(".")
        if head == "policy_kwargs" and rest:
            policy_kwargs[rest] = value
        elif rest:
            raise QRLError(f"--set {key}: only policy_kwargs.<name> takes a dotted key")
        elif head == "policy_kwargs":
            policy_kwargs = parse_policy_kwargs(value)
        else:
            params[head] = value
    bad = sorted(set(params) & set(UNSUPPORTED_ZOO_KEYS))
    if bad:
        raise QRLError(f"agent {agent!r} uses rl-zoo3 key(s) {', '.join(bad)} that qrl does not support yet")
    policy = str(params.pop("policy", "MlpPolicy"))
    n_timesteps = int(float(steps if steps is not None else params.pop("n_timesteps", env_spec.budget)))
    params.pop("n_timesteps", None)
    n_envs = int(params.pop("n_envs", 1))
    normalize = params.pop("normalize", False)
    if not isinstance(normalize, bool):
        raise QRLError(f"normalize must be true or false; got {normalize!r}")
    if n_timesteps < 1 or n_envs < 1:
        raise QRLError(f"n_timesteps and n_envs must be positive; got {n_timesteps} and {n_envs}")
    accepted = set(inspect.signature(algo_class(algo).__init__).parameters) - {"self", "policy", "env"}
    if "action_noise" in accepted:
        accepted |= set(NOISE_KEYS)
        if params.get("noise_type", "normal") not in NOISE_TYPES:
            raise QRLError(f"unknown noise_type {params['noise_type']!r}; expected one of {', '.join(NOISE_TYPES)}")
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise QRLError(f"unknown hyperparameter(s) {', '.join(unknown)} for {algo.upper()}; expected some of "
                       f"{', '.join(sorted(accepted | set(ZOO_KEYS)))}")
    if is_vqc_policy(policy):
        policy_kwargs.setdefault("obs_map", env_spec.obs_map)
        if device is not None:
            policy_kwargs["device"] = device
    elif device not in (None, "auto"):
        raise QRLError(f"--device {device} names a circuit backend but agent {agent!r} has no circuit "
                       f"(policy {policy}); drop --device or pick a VQC agent")
    return RunConfig(agent=agent, env=env, algo=algo, seed=int(seed), n_timesteps=n_timesteps,
                     n_envs=n_envs, policy=policy, normalize=normalize, hyperparams=params,
                     policy_kwargs=policy_kwargs, env_spec=env_spec)


def linear_schedule(initial: float):
    """rl-zoo3's ``lin_<x>``: decays linearly from ``x`` to 0 over training."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def algo_kwargs(config: RunConfig, action_space=None) -> dict[str, Any]:
    """Hyperparameters as the algorithm takes them (``lin_<x>`` strings made into schedules).

    rl-zoo3's ``noise_type`` / ``noise_std`` (off-policy algorithms) become SB3's ``action_noise``
    for ``action_space``, as rl-zoo3 does: Gaussian or Ornstein-Uhlenbeck noise of that scale on every
    action dimension.
    """
    kwargs = {}
    hyperparams = dict(config.hyperparams)
    noise_type, noise_std = hyperparams.pop("noise_type", None), float(hyperparams.pop("noise_std", 0.1))
    if noise_type is not None:
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        n_actions = int(np.prod(action_space.shape))
        cls = NormalActionNoise if noise_type == "normal" else OrnsteinUhlenbeckActionNoise
        kwargs["action_noise"] = cls(mean=np.zeros(n_actions), sigma=noise_std * np.ones(n_actions))
    for key, value in hyperparams.items():
        if key == "train_freq" and isinstance(value, list):  # YAML has no tuples: [1, "episode"]
            value = tuple(value)
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                value = linear_schedule(float(value[4:]))
            except ValueError as exc:
                raise QRLError(f"{key}: malformed schedule {value!r}; expected lin_<number>") from exc
        kwargs[key] = value
    return kwargs


def is_vqc_policy(policy: str) -> bool:
    """Whether the policy runs circuits (qrl's VQC policies can move them to another backend)."""
    cls = resolve_policy(policy)
    return isinstance(cls, type) and hasattr(cls, "set_circuit_device")


def resolve_policy(policy: str):
    """An SB3 alias (``"MlpPolicy"``) stays a string; a dotted path is imported."""
    if "." not in policy:
        return policy
    import importlib

    module, _, name = policy.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise QRLError(f"cannot import policy {policy!r}: {exc}") from exc
