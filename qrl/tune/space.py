"""Search spaces of `qrl tune`: one dict per algorithm (plus circuit options for VQC agents and a width for
MLP agents), written in the notation users type, and the map from sampled values to preset keys.

A dimension is a list (categorical choices), ``"float:LOW:HIGH[:log]"``, ``"int:LOW:HIGH[:log]"``, a plain
value (fixed: written into the preset, not searched) or ``"preset"`` (not searched: the preset's value).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import yaml

from qrl.errors import QRLError

GAMMAS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
LEARNING_RATE = "float:1e-5:3e-2:log"
# The algorithms' own hyperparameters (after rl-zoo3's hyperparams_opt.py samplers, with its ranges where
# they fit small circuits; learning rates reach higher because circuit angles need larger steps).
SPACES: dict[str, dict[str, Any]] = {
    "ppo": {"learning_rate": LEARNING_RATE, "lr_schedule": ["constant", "linear"],
            "n_steps": [16, 32, 64, 128, 256, 512, 1024, 2048], "batch_size": [32, 64, 128, 256, 512],
            "n_epochs": [1, 5, 10, 20], "gamma": GAMMAS, "gae_lambda": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0],
            "ent_coef": "float:1e-8:0.1:log", "clip_range": [0.1, 0.2, 0.3, 0.4],
            "max_grad_norm": [0.3, 0.5, 1.0, 2.0, 5.0]},
    "a2c": {"learning_rate": LEARNING_RATE, "lr_schedule": ["constant", "linear"],
            "n_steps": [5, 8, 16, 32, 64, 128, 256, 512], "gamma": GAMMAS,
            "gae_lambda": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0], "ent_coef": "float:1e-8:0.1:log",
            "max_grad_norm": [0.3, 0.5, 1.0, 2.0, 5.0]},
    "dqn": {"learning_rate": "float:1e-5:1e-2:log", "lr_schedule": "preset",
            "batch_size": [16, 32, 64, 128, 256, 512], "gamma": GAMMAS,
            "target_update_interval": "int:1:20000:log", "exploration_fraction": "float:0.0:0.5",
            "exploration_final_eps": "float:0.0:0.2", "train_freq": [1, 4, 8, 16, 64, 128, 256],
            "subsample_steps": [1, 2, 4, 8]},
    "sac": {"learning_rate": "float:1e-5:1e-2:log", "lr_schedule": "preset",
            "batch_size": [32, 64, 128, 256, 512, 1024], "gamma": GAMMAS, "tau": "float:0.001:0.08:log",
            "train_freq": [1, 4, 8, 16, 32]},
    "td3": {"learning_rate": "float:1e-5:1e-2:log", "lr_schedule": "preset",
            "batch_size": [32, 64, 128, 256, 512, 1024], "gamma": GAMMAS, "tau": "float:0.001:0.08:log",
            "train_freq": [1, 4, 8, 16, 32], "noise_type": ["normal", "ornstein-uhlenbeck"],
            "noise_std": "float:0.0:0.5"},
    "reinforce": {"learning_rate": LEARNING_RATE, "lr_schedule": ["constant", "linear"],
                  "n_episodes": [1, 2, 5, 10, 20], "gamma": [*GAMMAS, 1.0], "baseline": ["episode", "batch", "none"],
                  "ent_coef": "float:1e-8:0.1:log"},
}
SPACES["ddpg"] = SPACES["td3"]  # SB3's DDPG is TD3 with one critic, no target smoothing and no delay
# Circuit options of VQC agents (policy_kwargs). The output weight's name depends on the policy: DQN's
# Q-values are w * <O> and reach 1 / (1 - gamma), so its range is wider.
CIRCUIT_SPACE: dict[str, Any] = {"n_layers": "int:1:8", "input_scaling": [True, False],
                                 "readout": ["z", "zz", "parity"]}
OUTPUT_SCALE = {"dqn": ("output_scale", "float:1.0:200.0:log")}
ACTOR_OUTPUT_SCALE = ("actor_output_scale", "float:0.5:20.0:log")
KNOWN_ONLY = {"critic_output_scale": "preset"}  # known keys, searched only when given a range
# Hidden width of MLP agents (every hidden layer; the preset's depth, or SB3's default architecture).
WIDTH = [16, 32, 64, 128, 256]
DEFAULT_NET_ARCH = {"ppo": {"pi": [64, 64], "vf": [64, 64]}, "a2c": {"pi": [64, 64], "vf": [64, 64]},
                    "dqn": [64, 64], "sac": [256, 256], "td3": [400, 300],
                    "ddpg": [400, 300], "reinforce": [64, 64]}
# Keys that are not hyperparameters themselves: they change others (see overrides()).
META_KEYS = ("lr_schedule", "subsample_steps", "width")
POLICY_KWARGS = ("n_layers", "input_scaling", "readout", "output_scale", "actor_output_scale",
                 "critic_output_scale")


@dataclass(frozen=True)
class Dimension:
    """One key of a search space: ``kind`` is ``float``, ``int``, ``choice``, ``fixed`` or ``preset``."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    value: Any = None

    def distribution(self):
        """The Optuna distribution of a searched dimension (``float``, ``int`` or ``choice``)."""
        import optuna

        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.CategoricalDistribution(list(self.choices))

    @property
    def searched(self) -> bool:
        return self.kind in ("float", "int", "choice")

    def text(self) -> str:
        """The dimension in the notation users type."""
        if self.kind in ("float", "int"):
            return f"{self.kind}:{self.low:g}:{self.high:g}{':log' if self.log else ''}"
        if self.kind == "choice":
            return "[" + ", ".join(str(c) for c in self.choices) + "]"
        return "preset" if self.kind == "preset" else str(self.value)


def parse_dimension(key: str, spec: Any) -> Dimension:
    """A dimension from its notation (a YAML value: list, ``float:..``/``int:..`` string, plain value)."""
    expected = (f"expected a list of choices, float:LOW:HIGH[:log], int:LOW:HIGH[:log], a fixed value or preset; "
                f"got {spec!r}; try --space {key}=float:1e-4:1e-2:log")
    if isinstance(spec, list):
        if not spec or not all(c is None or isinstance(c, (bool, int, float, str)) for c in spec):
            raise QRLError(f"search-space key {key}: {expected}")
        return Dimension("choice", choices=tuple(spec))
    if isinstance(spec, str) and spec.split(":")[0] in ("float", "int"):
        parts = spec.split(":")
        log = len(parts) == 4 and parts[3] == "log"
        try:
            if len(parts) not in (3, 4) or (len(parts) == 4 and not log):
                raise ValueError
            low, high = float(parts[1]), float(parts[2])
        except ValueError:
            raise QRLError(f"search-space key {key}: {expected}") from None
        if parts[0] == "int" and not (low.is_integer() and high.is_integer()):
            raise QRLError(f"search-space key {key}: int bounds must be whole numbers; {expected}")
        if not low < high or (log and low <= 0):
            raise QRLError(f"search-space key {key}: expected LOW < HIGH (and LOW > 0 with log); got {spec!r}")
        return Dimension(parts[0], low=low, high=high, log=log)
    if spec == "preset":
        return Dimension("preset")
    if isinstance(spec, (dict, tuple)):
        raise QRLError(f"search-space key {key}: {expected}")
    return Dimension("fixed", value=spec)


def parse_space_items(items: list[str]) -> dict[str, Any]:
    """``["learning_rate=float:1e-4:1e-2:log", "n_epochs=[5, 10]"]`` -> ``{key: YAML value}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise QRLError(f"malformed --space {item!r}; expected KEY=SPEC, e.g. --space n_epochs=[5,10] or "
                           f"--space learning_rate=float:1e-4:1e-2:log")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise QRLError(f"malformed value in --space {item!r}: {exc}") from exc
    return out


def default_space(algo: str, vqc: bool, matched: bool) -> dict[str, Any]:
    """The search space of an agent, in notation: its algorithm's, plus circuit options (VQC agents) or a
    hidden width (MLP agents, except parameter-matched ones, whose size is the point)."""
    space = dict(SPACES[algo])
    if vqc:
        name, spec = OUTPUT_SCALE.get(algo, ACTOR_OUTPUT_SCALE)
        space.update(CIRCUIT_SPACE, **{name: spec})
        if algo != "dqn":
            space.update(KNOWN_ONLY)
    elif not matched:
        space["width"] = WIDTH
    return space


def resolve_space(agent: str, algo: str, vqc: bool, user: dict[str, Any],
                  search: list[str] | None = None) -> dict[str, Dimension]:
    """The agent's space with the user's dimensions (``--space``, ``--space-file``) in place; with ``search``,
    only those keys are searched (the others keep the preset's values). Unknown keys are refused."""
    space = default_space(algo, vqc, agent.endswith("-matched"))
    known = ", ".join(space)
    for key in [*user, *(search or [])]:
        if key not in space:
            raise QRLError(f"unknown search-space key {key!r} for {agent}; expected one of {known}")
    dims = {key: parse_dimension(key, user.get(key, spec)) for key, spec in space.items()}
    if search is not None:
        dims = {k: d if k in search or k in user else Dimension("preset") for k, d in dims.items()}
    check_searchable(agent, dims)
    return dims


def check_searchable(agent: str, dims: dict[str, Dimension]) -> None:
    if not any(d.searched for d in dims.values()):
        raise QRLError(f"nothing to search for {agent}: every key is fixed or preset; expected at least one "
                       f"range or list of choices; try --space learning_rate=float:1e-4:1e-2:log")


def distributions(dims: dict[str, Dimension]) -> dict[str, Any]:
    """Optuna distributions of the searched dimensions (what ``study.ask`` samples)."""
    return {key: dim.distribution() for key, dim in dims.items() if dim.searched}


def default_learning_rate(algo: str) -> float:
    from qrl.config import algo_class

    return float(inspect.signature(algo_class(algo).__init__).parameters["learning_rate"].default)


def overrides(dims: dict[str, Dimension], params: dict[str, Any], algo: str, hyperparams: dict[str, Any],
              policy_kwargs: dict[str, Any], n_envs: int) -> dict[str, Any]:
    """Sampled ``params`` (plus fixed dimensions) -> preset overrides as ``qrl train --set`` takes them
    (``learning_rate``, ``policy_kwargs.n_layers``, ...), given the preset's resolved values."""
    values = {k: d.value for k, d in dims.items() if d.kind == "fixed"} | dict(params)
    out = {k: v for k, v in values.items() if k not in META_KEYS and k not in POLICY_KWARGS}
    out |= {f"policy_kwargs.{k}": v for k, v in values.items() if k in POLICY_KWARGS}
    schedule = values.get("lr_schedule")
    if schedule not in (None, "constant", "linear"):
        raise QRLError(f"lr_schedule must be constant or linear; got {schedule!r}")
    if schedule is not None:
        rate = out.get("learning_rate", hyperparams.get("learning_rate", default_learning_rate(algo)))
        rate = float(rate[4:]) if isinstance(rate, str) and rate.startswith("lin_") else float(rate)
        out["learning_rate"] = f"lin_{rate:.6g}" if schedule == "linear" else rate
    if algo == "ppo" and "batch_size" in out:  # a minibatch no larger than the rollout
        n_steps = int(out.get("n_steps", hyperparams.get("n_steps", 2048)))
        out["batch_size"] = min(int(out["batch_size"]), n_steps * n_envs)
    if "train_freq" in out and algo in ("sac", "td3"):  # rl-zoo3: one gradient step per environment step
        out["gradient_steps"] = int(out["train_freq"])
    if "subsample_steps" in values:
        freq = out.get("train_freq", hyperparams.get("train_freq", 4))
        freq = freq if isinstance(freq, int) else int(freq[0]) if isinstance(freq, (list, tuple)) else 4
        out["gradient_steps"] = max(freq // int(values["subsample_steps"]), 1)
    if "width" in values:
        out["policy_kwargs.net_arch"] = widen(policy_kwargs.get("net_arch", DEFAULT_NET_ARCH[algo]),
                                              int(values["width"]))
    return out


def widen(net_arch: Any, width: int) -> Any:
    """``net_arch`` with every hidden layer ``width`` wide (its depth and its actor/critic split kept)."""
    if isinstance(net_arch, dict):
        return {k: [width] * len(v) for k, v in net_arch.items()}
    return [width] * len(net_arch)
