"""Configuration: the environment suite (``envs/*.yaml``), agent presets (``agents/*.yaml``, rl-zoo3
format) and their resolution into one plain, picklable :class:`RunConfig`.

An agent preset is named ``<algo>-<variant>.yaml`` (``ppo-vqc``, ``ppo-mlp``): the algorithm comes from
the name, the hyperparameters from the section of the environment, exactly as rl-zoo3's
``hyperparams/<algo>.yml`` (``n_timesteps``, ``policy``, ``n_envs``, ``normalize``, ``policy_kwargs`` as
a ``"dict(...)"`` string, ``lin_<x>`` schedules; every other key goes to the algorithm's constructor).
A preset file elsewhere is named by its path (``runs/tune/.../ppo-vqc-tuned.yaml``), its algorithm by its file name.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qrl.errors import QRLError

ALGOS = ("ppo", "a2c", "dqn", "sac", "td3", "ddpg", "reinforce")
# rl-zoo3's action-noise keys for off-policy algorithms, turned into SB3's action_noise.
NOISE_KEYS = ("noise_type", "noise_std")
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
# Keys rl-zoo3 reads itself rather than passing to the algorithm.
ZOO_KEYS = ("n_timesteps", "policy", "n_envs", "normalize", "policy_kwargs", "callback")
# rl-zoo3 keys qrl does not implement yet: refused rather than silently ignored.
UNSUPPORTED_ZOO_KEYS = ("frame_stack", "env_wrapper", "vec_env_wrapper", "normalize_kwargs")
CALLBACK_MODULE = "qrl.sb3.callbacks"
"""Where the callbacks a preset may name (``callback:``) live: naming any importable class would let a preset
file run code."""


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


AGENT_FILE_SUFFIXES = (".yaml", ".yml")


def is_agent_file(agent: str) -> bool:
    """Whether ``agent`` is a preset file's path (``runs/tune/x/ppo-vqc-tuned.yaml``) rather than the name of
    a preset in ``agents/`` (``ppo-vqc``): it ends in ``.yaml``/``.yml`` or holds a path separator."""
    return agent.lower().endswith(AGENT_FILE_SUFFIXES) or "/" in agent or os.sep in agent


def agent_name(agent: str) -> str:
    """The name runs and reports use: a preset file's stem (``ppo-vqc-tuned``), else ``agent`` itself."""
    return Path(agent).stem if is_agent_file(agent) else agent


def preset_path(agent: str) -> Path:
    """The file of a preset: ``agent`` itself when it is a path, else ``agents/<agent>.yaml``."""
    return Path(agent).expanduser() if is_agent_file(agent) else data_dir("agents") / f"{agent}.yaml"


def agent_algo(agent: str) -> str:
    """The algorithm of a preset, from its name (``ppo-vqc``) or file name (``ppo-vqc-tuned.yaml``, rl-zoo3's
    ``ppo.yml``): rl-zoo3 presets carry no algorithm key, its trainer takes ``--algo``."""
    algo = agent_name(agent).split("-")[0].lower()
    if algo not in ALGOS:
        if is_agent_file(agent):
            raise QRLError(f"preset file {agent}: expected a file named <algo>-<variant>.yaml (or rl-zoo3's "
                           f"<algo>.yml) with algo one of {', '.join(ALGOS)}, which gives the algorithm; got "
                           f"{Path(agent).name!r}; try renaming it e.g. ppo-{agent_name(agent)}.yaml")
        raise QRLError(f"agent {agent!r} must be named <algo>-<variant> with algo one of {', '.join(ALGOS)}")
    return algo


def load_agent(agent: str) -> dict[str, dict[str, Any]]:
    """All per-environment sections of an agent preset: a name in ``agents/`` or a preset file's path."""
    path = preset_path(agent)
    if not is_agent_file(agent):
        if not path.is_file():
            raise QRLError(f"unknown agent {agent!r}; expected one of {', '.join(list_agents())} or a preset "
                           f"file path (<algo>-<variant>.yaml); see `qrl list`")
        return _read_yaml(path)
    if path.suffix.lower() not in AGENT_FILE_SUFFIXES:
        raise QRLError(f"agent {agent!r} looks like a path but is not a YAML file; expected a preset file "
                       f"<algo>-<variant>.yaml or a preset name ({', '.join(list_agents())})")
    if not path.is_file():
        raise QRLError(f"agent file {agent} not found; expected a preset YAML file (rl-zoo3 format, named "
                       f"<algo>-<variant>.yaml) or a preset name ({', '.join(list_agents())}); see `qrl list`")
    sections = _read_yaml(path)
    bad = [str(env) for env, section in sections.items() if not isinstance(section, dict)]
    if bad:
        raise QRLError(f"{path}: expected one mapping of hyperparameters per environment (rl-zoo3 format, "
                       f"e.g. CartPole-v1: {{n_timesteps: 100000, ...}}); got {bad[0]}: "
                       f"{sections[bad[0]]!r}")
    return sections


# policy_kwargs strings are parsed, never evaluated: literals, lists, tuples, {...}, dict(key=value) and
# these exact dotted names (rl-zoo3's hyperparams for ppo, a2c, dqn, sac, td3 use nn.ReLU, nn.GELU and
# RMSpropTFLike). Anything else (other calls, attribute chains such as th.os, subscripts, ...) is refused.
_ZOO_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU", "SELU", "Sigmoid", "Softplus", "Mish")
_ZOO_OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD")
_ZOO_NAMES: dict[str, tuple[str, str]] = {
    **{f"{prefix}.{name}": ("torch.nn", name)
       for prefix in ("nn", "th.nn", "torch.nn") for name in _ZOO_ACTIVATIONS},
    **{f"{prefix}.{name}": ("torch.optim", name) for prefix in ("th.optim", "torch.optim") for name in _ZOO_OPTIMIZERS},
    "RMSpropTFLike": ("stable_baselines3.common.sb2_compat.rmsprop_tf_like", "RMSpropTFLike"),
}
_ZOO_EXPECTED = (f"expected literals, lists, tuples, {{...}}, dict(key=value, ...) and the names "
                 f"nn.{{{'|'.join(_ZOO_ACTIVATIONS)}}} (also th.nn., torch.nn.), "
                 f"th.optim.{{{'|'.join(_ZOO_OPTIMIZERS)}}} (also torch.optim.), RMSpropTFLike")
_ZOO_ARITHMETIC = ("Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow")
_ZOO_KINDS = {"Lambda": "a lambda", "ListComp": "a comprehension", "SetComp": "a comprehension",
              "DictComp": "a comprehension", "GeneratorExp": "a generator", "NamedExpr": "an assignment (:=)",
              "JoinedStr": "an f-string", "Starred": "an unpacking (*)", "Subscript": "a subscript",
              "Set": "a set", "Compare": "a comparison", "BoolOp": "a boolean operator", "IfExp": "an if-else",
              "Await": "an await", "Yield": "a yield", "YieldFrom": "a yield", "Slice": "a slice"}


class _Refused(Exception):
    """A piece of a policy_kwargs string that is not allowed; its message names the piece."""


def _snippet(node) -> str:
    import ast

    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _zoo_name(node) -> Any:
    """A whitelisted dotted name (``nn.ReLU``) -> its object; anything else names its first bad prefix."""
    import ast
    import importlib

    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise _Refused(f"attribute access .{'.'.join(parts)} on {_snippet(node)}")
    parts.insert(0, node.id)
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if not any(name == prefix or name.startswith(prefix + ".") for name in _ZOO_NAMES):
            raise _Refused(prefix)
    dotted = ".".join(parts)
    if dotted not in _ZOO_NAMES:
        raise _Refused(dotted)
    module, attr = _ZOO_NAMES[dotted]
    return getattr(importlib.import_module(module), attr)


def _zoo_arithmetic(node) -> Any:
    import ast
    import operator

    children = (node.operand,) if isinstance(node, ast.UnaryOp) else (node.left, node.right)
    operands = [_zoo_literal(n) for n in children]
    if any(type(x) not in (int, float) for x in operands):
        raise _Refused(f"arithmetic on non-numbers ({_snippet(node)})")
    if isinstance(node, ast.UnaryOp):
        return -operands[0] if isinstance(node.op, ast.USub) else +operands[0]
    left, right = operands
    if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) \
            and max(left.bit_length(), 1) * abs(right) > 4096:
        raise _Refused(f"a power this large ({_snippet(node)})")
    name = {"Div": "truediv", "Mult": "mul", "FloorDiv": "floordiv"}.get(type(node.op).__name__,
                                                                          type(node.op).__name__.lower())
    try:
        return getattr(operator, name)(left, right)
    except (ArithmeticError, ValueError) as exc:
        raise _Refused(f"arithmetic that fails ({_snippet(node)}: {exc})") from exc


def _zoo_literal(node) -> Any:
    """One node of a parsed policy_kwargs string -> its value, or :class:`_Refused`."""
    import ast

    if isinstance(node, ast.Constant) and type(node.value) in (str, int, float, bool, type(None)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_zoo_literal(n) for n in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Refused(f"an unpacking (**) in {_snippet(node)}")
        bad = [k for k in node.keys if not isinstance(k, ast.Constant)]
        if bad:
            raise _Refused(f"the dict key {_snippet(bad[0])} (keys must be literals)")
        return {_zoo_literal(k): _zoo_literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
            if isinstance(node.func, (ast.Name, ast.Attribute)):
                _zoo_name(node.func)  # names the bad part of th.os.system(...) before the call itself
            raise _Refused(f"a call to {_snippet(node.func)}(...)")
        if node.args:
            raise _Refused(f"a positional argument to dict() ({_snippet(node.args[0])})")
        if any(k.arg is None for k in node.keywords):
            raise _Refused("an unpacking (**) in dict()")
        return {k.arg: _zoo_literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.Name, ast.Attribute)):
        return _zoo_name(node)
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))) or (
            isinstance(node, ast.BinOp) and type(node.op).__name__ in _ZOO_ARITHMETIC):
        return _zoo_arithmetic(node)
    kind = (f"a {type(node.value).__name__} literal" if isinstance(node, ast.Constant)
            else _ZOO_KINDS.get(type(node).__name__, f"a {type(node).__name__} expression"))
    raise _Refused(f"{kind} ({_snippet(node)})")


def parse_policy_kwargs(value: Any) -> dict[str, Any]:
    """rl-zoo3 writes ``policy_kwargs`` as a ``"dict(...)"`` string: parse it (``ast``, never ``eval``),
    allowing only literals, ``dict(...)`` and the whitelisted names of ``_ZOO_NAMES``."""
    import ast
    import json

    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise QRLError(f"policy_kwargs must be a mapping or a 'dict(...)' string; got {value!r}")
    got = f"got {json.dumps(value if len(value) <= 200 else value[:197] + '...')}"
    try_ = 'try e.g. "dict(net_arch=[64, 64], activation_fn=nn.ReLU)"'
    if len(value) > 10_000:
        raise QRLError(f"could not read policy_kwargs: {len(value)} characters is too long; {_ZOO_EXPECTED}; {got}")
    try:
        parsed = _zoo_literal(ast.parse(value.strip(), mode="eval").body)
    except _Refused as exc:
        raise QRLError(f"could not read policy_kwargs: {exc} is not allowed; {_ZOO_EXPECTED}; {got}; {try_}") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        why = " ".join(str(getattr(exc, "msg", exc) or type(exc).__name__).split())
        raise QRLError(f"could not read policy_kwargs: not a Python expression ({why}); {_ZOO_EXPECTED}; {got}; "
                       f"{try_}") from None
    if not isinstance(parsed, dict):
        raise QRLError(f"policy_kwargs must evaluate to a dict; got {type(parsed).__name__}; {try_}")
    return parsed


def parse_callbacks(value: Any) -> list[dict[str, dict[str, Any]]]:
    """rl-zoo3's ``callback``: a class name, ``{name: {kwargs}}``, a list of these, or null -> ``[{name: kwargs}]``;
    names must be classes of :data:`CALLBACK_MODULE` (imported when training starts, not here)."""
    if value is None:  # rl-zoo3: no callbacks (`--set callback=null` drops a preset's)
        return []
    items = value if isinstance(value, list) else [value]
    parsed = []
    for item in items:
        name, kwargs = (next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (item, {}))
        kwargs = {} if kwargs is None else kwargs
        if not (isinstance(name, str) and name.rpartition(".")[0] == CALLBACK_MODULE and isinstance(kwargs, dict)):
            raise QRLError(f"expected callback: a class of {CALLBACK_MODULE} or {{class: {{keyword: value}}}}, or a "
                           f"list of these; got {item!r}; try callback: [{{{CALLBACK_MODULE}.FreezeNormalization: "
                           f"{{after_steps: 30000}}}}]")
        parsed.append({name: dict(kwargs)})
    return parsed


NORMALIZE_KEYS = ("norm_obs", "norm_reward")
"""What ``normalize`` may choose, as in rl-zoo3: ``"{'norm_obs': False, 'norm_reward': True}"``."""


def parse_normalize(value: Any) -> bool | dict[str, bool]:
    """``normalize``: true, false, or which of observations and rewards ``VecNormalize`` normalises, as a mapping
    or rl-zoo3's string (parsed with ``ast``, never ``eval``); a mapping gets both keys (absent ones true)."""
    import ast

    if isinstance(value, bool):
        return value
    expected = (f"expected normalize: true, false or a mapping of {' and '.join(NORMALIZE_KEYS)} to true or false; "
                f"got {value!r}; try normalize: \"{{'norm_obs': False, 'norm_reward': True}}\"")
    parsed = value
    if isinstance(value, str):
        try:
            parsed = _zoo_literal(ast.parse(value.strip(), mode="eval").body)
        except (_Refused, SyntaxError, ValueError, RecursionError, MemoryError):
            raise QRLError(expected) from None
    if not isinstance(parsed, dict) or set(parsed) - set(NORMALIZE_KEYS) \
            or not all(isinstance(v, bool) for v in parsed.values()):
        raise QRLError(expected)
    return {k: parsed.get(k, True) for k in NORMALIZE_KEYS}


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
    normalize: bool | dict[str, bool]  # a mapping: which of observations and rewards (:data:`NORMALIZE_KEYS`)
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

    if algo == "reinforce":  # qrl's own (qrl.algorithms, a layer above): imported by name, as policy paths are
        return _import_name("qrl.algorithms.REINFORCE", "algorithm")
    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN, "sac": sb3.SAC, "td3": sb3.TD3, "ddpg": sb3.DDPG}[algo]


def resolve(agent: str, env: str, *, seed: int = 0, steps: int | None = None, device: str | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """Agent preset + environment spec + command-line overrides -> a validated :class:`RunConfig`."""
    sections = load_agent(agent)  # a missing preset file is named before its name is judged
    algo = agent_algo(agent)
    env_spec = load_env_spec(env)
    if env not in sections:
        raise QRLError(f"agent {agent!r} has no section for {env!r}; it has {', '.join(map(str, sections))}; "
                       f"add one to {preset_path(agent)}")
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
    budget = steps if steps is not None else params.pop("n_timesteps", env_spec.budget)
    n_timesteps = _whole_number("n_timesteps", budget)
    params.pop("n_timesteps", None)
    n_envs = _whole_number("n_envs", params.pop("n_envs", 1))
    normalize = parse_normalize(params.pop("normalize", False))
    if n_timesteps < 1 or n_envs < 1:
        raise QRLError(f"n_timesteps and n_envs must be positive; got {n_timesteps} and {n_envs}")
    _check_ranges(params, seed)
    accepted = {k for k in inspect.signature(algo_class(algo).__init__).parameters
                if not k.startswith("_")} - {"self", "policy", "env"}
    if "callback" in params:
        params["callback"] = parse_callbacks(params["callback"])
        accepted.add("callback")
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
    return RunConfig(agent=agent_name(agent), env=env, algo=algo, seed=int(seed), n_timesteps=n_timesteps,
                     n_envs=n_envs, policy=policy, normalize=normalize, hyperparams=params,
                     policy_kwargs=policy_kwargs, env_spec=env_spec)


MAX_TIMESTEPS = 10**12
"""More steps than any training run takes (a float such as 1e23 would also lose its integer value)."""
UNIT_INTERVAL_KEYS = ("gamma", "gae_lambda", "tau")
"""Hyperparameters in (0, 1] that SB3 takes without checking (gamma = 2 trains on exploding returns)."""


def _whole_number(name: str, value: Any) -> int:
    """A count given as ``100000``, ``1e5`` or ``"1e5"``: an integer up to :data:`MAX_TIMESTEPS`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QRLError(f"{name} must be a whole number; got {value!r}; try 100000") from None
    if not number.is_integer() or not abs(number) <= MAX_TIMESTEPS:
        raise QRLError(f"{name} must be a whole number up to {MAX_TIMESTEPS:.0e}; got {value!r}; try 100000")
    return int(number)


def _check_ranges(params: dict[str, Any], seed: Any) -> None:
    """Refuse what SB3 accepts without a word but cannot train with, and private constructor arguments."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise QRLError(f"seed must be an integer in [0, 2**32); got {seed!r}; try --seed 0")
    private = sorted(k for k in params if str(k).startswith("_"))
    if private:
        raise QRLError(f"{', '.join(private)} is not a hyperparameter (SB3's internals); expected rl-zoo3 keys "
                       f"such as learning_rate, n_steps, gamma")
    for key in UNIT_INTERVAL_KEYS:
        value = params.get(key)
        if key in params and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1):
            raise QRLError(f"{key} must be a number in (0, 1]; got {value!r}; try {key}=0.99")
    rate = params.get("learning_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and not rate > 0:
        raise QRLError(f"learning_rate must be positive; got {rate!r}; try learning_rate=0.001")
    if "device" in params:
        check_sb3_device(params["device"])


def check_sb3_device(device: Any) -> None:
    """The ``device`` hyperparameter: SB3's torch device, which rl-zoo3 passes to the algorithm (``cpu``, ``auto``,
    ``cuda`` or ``cuda:N``; with ``cuda`` the policy's circuits run on the GPU on the torch path). Not the circuit
    backend, which is ``--device`` / ``policy_kwargs.device``."""
    import torch

    if not isinstance(device, str) or not (device in ("cpu", "auto", "cuda") or
                                           (device.startswith("cuda:") and device[5:].isdigit())):
        raise QRLError(f"device (SB3's torch device) must be cpu, auto, cuda or cuda:N; got {device!r}; try "
                       f"device=cpu (the circuit backend is --device, e.g. --device torch)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise QRLError(f"device={device} needs a CUDA GPU, and torch {torch.__version__} sees none here; try "
                       f"device=cpu")


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
    hyperparams.pop("callback", None)  # callbacks go to learn(): qrl.train.preset_callbacks
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
    """An SB3 alias (``"MlpPolicy"``) stays a string; a dotted path is imported and must name an SB3 policy class
    (a preset naming any callable, ``os.system``, would otherwise have SB3 call it)."""
    if "." not in policy:
        return policy
    from stable_baselines3.common.policies import BasePolicy

    cls = _import_name(policy, "policy")
    if not (isinstance(cls, type) and issubclass(cls, BasePolicy)):
        raise QRLError(f"policy {policy!r} is not an SB3 policy class (a subclass of stable_baselines3's "
                       f"BasePolicy); expected e.g. qrl.sb3.VQCActorCriticPolicy or MlpPolicy")
    return cls


def _import_name(dotted: str, what: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise QRLError(f"cannot import {what} {dotted!r}: {exc}") from exc
