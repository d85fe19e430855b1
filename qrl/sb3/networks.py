"""Building blocks shared by the SB3 policies: a VQC network with optional classical layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pennylane.measurements import ProbabilityMP
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from qrl.circuits.custom import custom_circuit, zero_tape
from qrl.circuits.encodings import binary_code
from qrl.circuits.readouts import max_outputs
from qrl.circuits.spec import RAW_OBS_MAPS, CircuitSpec
from qrl.errors import QRLError
from qrl.nn import VQC, check_obs_scale, unbounded_features
from qrl.nn import forward_together as forward_together_vqc

# policy_kwargs that describe the circuit (CircuitSpec fields the user may set) and how it runs.
SPEC_KEYS = tuple(f.name for f in dataclasses.fields(CircuitSpec) if f.name not in ("n_inputs", "n_outputs"))
RUN_KEYS = ("device", "diff_method", "pre_layer", "post_layer", "dtype", "shots", "noise", "obs_scale")
# A user's circuit (TorchLayer convention) instead of the built-in menu: see qrl.circuits.custom.
CUSTOM_KEYS = ("circuit", "weight_shapes", "init", "born")
# Built-in menu options that mean nothing for a user's circuit (which sets them inside its function).
MENU_ONLY = ("encoding", "ansatz", "readout", "input_scaling", "data_reuploading")
CIRCUIT_KEYS = SPEC_KEYS + RUN_KEYS + CUSTOM_KEYS

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Circuit options every VQC policy takes as keyword arguments, with their defaults (Jerbi et al. 2021,
# Skolik et al. 2022: 5 layers of RX(lambda * arctan(s)) encoding, RY-RZ rotations, a CZ ring).
CIRCUIT_DEFAULTS: dict[str, Any] = {
    "n_qubits": None, "n_layers": 5, "encoding": "rx", "ansatz": "hea", "readout": "z", "obs_map": "arctan",
    "input_scaling": None, "output_scaling": True, "data_reuploading": True, "device": "auto",
    "diff_method": None, "pre_layer": False, "post_layer": False, "dtype": "float32", "shots": None, "noise": None,
    "obs_scale": None,
    "circuit": None, "weight_shapes": None, "init": None, "born": False,
}


def pop_circuit_options(kwargs: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """Take the circuit options out of a policy's ``kwargs`` (the rest goes to SB3).

    Also refuses the MLP options of SB3 policies, which mean nothing for a circuit.
    """
    for name in ("net_arch", "activation_fn"):
        if kwargs.pop(name, None) is not None:
            raise QRLError(f"{name} sets the MLP of MlpPolicy and has no meaning for a VQC policy; "
                           f"try n_layers=..., pre_layer=True or post_layer=True")
    return {k: kwargs.pop(k, defaults.get(k, v)) for k, v in CIRCUIT_DEFAULTS.items()}


def check_observation_space(space: spaces.Space) -> None:
    """VQC policies read flat feature vectors; refuse what they cannot encode, with the fix."""
    if isinstance(space, spaces.Box) and is_image_space(space, check_channels=False):
        raise QRLError(
            f"image observations (shape {space.shape}) are not supported by VQC policies: a circuit "
            f"encodes one feature per qubit; try a feature wrapper that reduces the image to a few features"
        )
    if not isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        raise QRLError(
            f"observation space {type(space).__name__} is not supported by VQC policies; expected Box, "
            f"Discrete, MultiDiscrete or MultiBinary; try gymnasium.wrappers.FlattenObservation"
        )


class VQCNetwork(nn.Module):
    """``[Linear ->] VQC [-> Linear]``: features ``(B, n_features)`` -> ``(B, n_outputs)``.

    Without classical layers (the default) feature ``i`` is encoded on qubit ``i``; with
    ``pre_layer`` a trainable linear map makes ``n_qubits`` angles from any number of features; with
    ``post_layer`` every qubit is read out and a trainable linear map makes the outputs (hybrid model).

    Two observation maps read the observation space, so they need ``observation_space`` and the
    features SB3 makes of it (its default ``FlattenExtractor``):

    - ``obs_map="bounds"`` (Box): the space's ``low`` and ``high`` become the VQC's bounds buffers;
      infinite bounds are refused with the features named.
    - ``obs_map="basis"`` (Discrete, MultiDiscrete, MultiBinary): SB3 one-hot encodes ``Discrete(n)``
      into ``n`` features; a fixed buffer ``basis_code`` (:func:`qrl.circuits.binary_code`) maps the
      one-hot vector to the ``ceil(log2 n)`` bits of the index, one qubit each, most significant bit
      on qubit 0 (Chen et al. 2020, FrozenLake: 16 states on 4 qubits). MultiDiscrete: each
      component in binary, concatenated; MultiBinary: the bits as they are.

    :param n_features: input width.
    :param n_outputs: output width.
    :param config: circuit and run options (keys of :data:`CIRCUIT_KEYS`, plain values).
    :param role: what the network is (``"actor"``, ``"critic"``), for error messages.
    :param observation_space: the space the features were made from (needed by ``obs_map="bounds"``
        and ``"basis"`` only). A network fed something else (e.g. a critic fed observation and action)
        can pass a ``Box`` with the bounds of what it is fed.
    """

    def __init__(self, n_features: int, n_outputs: int, config: dict[str, Any], role: str = "circuit",
                 observation_space: spaces.Space | None = None):
        super().__init__()
        unknown = sorted(set(config) - set(CIRCUIT_KEYS))
        if unknown:
            raise QRLError(f"unknown {role} option(s) {', '.join(unknown)}; expected some of "
                           f"{', '.join(CIRCUIT_KEYS)}")
        pre, post = bool(config.get("pre_layer", False)), bool(config.get("post_layer", False))
        obs_map = config.get("obs_map") or CircuitSpec.obs_map
        code, low, high, n_inputs = None, None, None, n_features
        if obs_map in RAW_OBS_MAPS and pre:
            raise QRLError(f"{role}: obs_map={obs_map!r} maps the observation itself, but pre_layer=True feeds "
                           f"the circuit a learned linear map of it; try pre_layer=False, or obs_map='tanh'")
        if obs_map == "basis":
            code = _basis_code(observation_space, n_features, role)
            if code is not None:
                n_inputs = code.shape[1]
        elif obs_map == "bounds":
            low, high = _box_bounds(observation_space, n_features, role)
        elif obs_map == "scale":
            try:
                check_obs_scale(config.get("obs_scale"), n_inputs)
            except QRLError as err:  # say which network: SAC's critics read the observation and the action
                raise QRLError(f"{role}: {err}") from None
        born = bool(config.get("born", False))
        if born:
            config = {**config, "output_scaling": False, "output_scale_init": 1.0}
            _check_born(config, post, role)
        spec = _make_spec(config, n_inputs, None if born else n_outputs, pre, post, role)
        if born and not all(isinstance(mp, ProbabilityMP) for mp in zero_tape(spec).measurements):
            raise QRLError(f"{role}: born=True reads action probabilities; expected circuit {spec.circuit!r} to "
                           f"return only qml.probs(...); try circuit='born_parity'")
        n_qubits = spec.n_qubits
        dtype = config.get("dtype", "float32")
        if dtype not in _DTYPES:
            raise QRLError(f"unknown dtype {dtype!r}; expected one of {', '.join(_DTYPES)}")
        self.pre = nn.Linear(n_features, n_qubits) if pre else None
        self.register_buffer("basis_code", None if code is None else torch.as_tensor(code, dtype=torch.float32))
        self.vqc = VQC(spec, device=config.get("device", "auto"), diff_method=config.get("diff_method"),
                       obs_low=low, obs_high=high, shots=config.get("shots"), noise=config.get("noise"),
                       obs_scale=config.get("obs_scale"))
        self.vqc.to(_DTYPES[dtype])
        self.post = nn.Linear(spec.n_outputs, n_outputs) if post else None
        self.register_buffer("born_partition", born_partition(spec.n_outputs, n_outputs) if born else None)

    def circuit_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """What the circuit encodes, ``(B, spec.n_inputs)``: the features, their bits, or the pre layer's map."""
        if self.pre is not None:
            return self.pre(features)
        if self.basis_code is not None:
            return features.to(self.basis_code.dtype) @ self.basis_code
        return features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.finish(self.vqc(self.circuit_inputs(features)), features)

    def finish(self, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The network's output from the circuit's ``y`` (``(B, spec.n_outputs)``): Born-rule log-probabilities
        or the post layer's map, in the features' dtype."""
        y = y.to(features.dtype)
        if self.born_partition is not None:  # log P(a): a softmax over these is the Born-rule policy
            return torch.log((y @ self.born_partition.to(y.dtype)).clamp_min(BORN_FLOOR))
        return self.post(y) if self.post is not None else y

    def classical_layers(self) -> list[nn.Module]:
        return [m for m in (self.pre, self.post) if m is not None]


def forward_together(nets: list[VQCNetwork], features: torch.Tensor) -> list[torch.Tensor]:
    """``[net(features) for net in nets]``, their circuits run as one batch where they can
    (:func:`qrl.nn.forward_together`: an actor and a critic of one structure on the torch backend)."""
    ys = forward_together_vqc([net.vqc for net in nets], [net.circuit_inputs(features) for net in nets])
    return [net.finish(y, features) for net, y in zip(nets, ys, strict=True)]


def _make_spec(config: dict[str, Any], n_inputs: int, n_outputs: int, pre: bool, post: bool, role: str):
    """The circuit of a network: the built-in menu's :class:`CircuitSpec`, or a user's ``circuit``."""
    readout = config.get("readout") or CircuitSpec.readout
    n_qubits = config.get("n_qubits")
    if n_qubits is None and config.get("circuit") is not None:  # a user's circuit: one qubit per feature
        n_qubits = max(n_inputs, n_outputs if not post and n_outputs else 1)
    elif n_qubits is None:
        # the parity readout reads every output from all qubits: outputs do not need qubits
        per_qubit = max_outputs(readout, 1) is not None
        n_qubits = max(n_inputs if not pre else 1, n_outputs if per_qubit and not post and n_outputs else 1)
    if config.get("circuit") is None:
        for key in ("weight_shapes", "init"):
            if config.get(key) is not None:
                raise QRLError(f"{role}: {key} belongs to a user's circuit; expected circuit='module:function' "
                               f"(or a registered name) with it; got no circuit")
        spec_fields = {k: config[k] for k in SPEC_KEYS if k in config and config[k] is not None}
        spec_fields["n_qubits"] = n_qubits
        return CircuitSpec(**spec_fields, n_inputs=n_qubits if pre else n_inputs,
                           n_outputs=n_qubits if post else n_outputs)
    menu = [k for k in MENU_ONLY if config.get(k) is not None and config.get(k) != CIRCUIT_DEFAULTS[k]]
    if menu:
        defaults = ", ".join(f"{k}={CIRCUIT_DEFAULTS[k]!r}" for k in menu)
        raise QRLError(f"{role}: {', '.join(menu)} set(s) the built-in circuit; circuit={config['circuit']!r} "
                       f"defines its own gates and measurements; leave {', '.join(menu)} out, or where an agent "
                       f"preset sets it, try {defaults} (--set policy_kwargs.{menu[0]}={CIRCUIT_DEFAULTS[menu[0]]})")
    options = {k: config[k] for k in ("obs_map", "output_scaling", "output_scale_init") if config.get(k) is not None}
    spec = custom_circuit(config["circuit"], n_qubits=n_qubits, n_inputs=n_qubits if pre else n_inputs,
                          weight_shapes=config.get("weight_shapes"), init=config.get("init"),
                          n_layers=config.get("n_layers"), **options)
    if not post and n_outputs is not None and spec.n_outputs != n_outputs:
        raise QRLError(f"{role}: circuit {config['circuit']!r} measures {spec.n_outputs} values; the {role} needs "
                       f"{n_outputs}; try post_layer=True (a trainable linear map), or measure {n_outputs} values")
    return spec


BORN_FLOOR = 1e-12
"""Probabilities are floored here before the log (a policy's logits must stay finite)."""


def born_partition(n_values: int, n_actions: int) -> torch.Tensor:
    """``(n_values, n_actions)`` 0/1 matrix: basis state ``b`` counts for action ``popcount(b) mod n_actions``.

    Jerbi et al. 2021's raw-PQC ("Born-rule") policy: ``pi(a|s) = sum_{b in V_a} |<b|psi(s)>|^2`` for a
    partition ``{V_a}`` of the basis states; with two actions this one is the parity of the bit string, the
    partition of their experiments (``<P_a> = (1 +- Z...Z) / 2``).
    """
    index = torch.arange(n_values)
    ones = torch.tensor([bin(int(b)).count("1") for b in index])
    return torch.nn.functional.one_hot(ones % n_actions, n_actions).to(torch.float32)


def _check_born(config: dict[str, Any], post: bool, role: str) -> None:
    if config.get("circuit") is None or post:
        raise QRLError(f"{role}: born=True reads action probabilities from a circuit's qml.probs; expected "
                       f"circuit=... returning [qml.probs(wires=...)] and no post_layer; got "
                       f"{'post_layer=True' if post else 'no circuit'}; try circuit='born_parity'")


def _basis_code(space: spaces.Space | None, n_features: int, role: str) -> np.ndarray | None:
    """The one-hot -> bits map of ``obs_map="basis"``; ``None`` when the features are bits already."""
    if isinstance(space, spaces.Discrete):
        nvec = [int(space.n)]
    elif isinstance(space, spaces.MultiDiscrete):
        nvec = [int(n) for n in np.ravel(space.nvec)]
    elif isinstance(space, spaces.MultiBinary):
        nvec = None
    else:
        got = "no observation space" if space is None else type(space).__name__
        raise QRLError(f"{role}: obs_map='basis' encodes a discrete observation in binary; expected a Discrete, "
                       f"MultiDiscrete or MultiBinary observation space (VQCNetwork(..., observation_space=...)); "
                       f"got {got}; try obs_map='bounds' or obs_map='arctan'")
    width = int(np.prod(space.shape)) if nvec is None else sum(nvec)
    if n_features != width:
        raise QRLError(f"{role}: obs_map='basis' expected the {width} features SB3 makes of {space} (one-hot); "
                       f"got {n_features}; try the default features extractor")
    return None if nvec is None else binary_code(nvec)


def _box_bounds(space: spaces.Space | None, n_features: int, role: str) -> tuple[np.ndarray, np.ndarray]:
    """The flat ``low`` and ``high`` of a Box observation space, for ``obs_map="bounds"``."""
    if not isinstance(space, spaces.Box):
        got = "no observation space" if space is None else type(space).__name__
        hint = "obs_map='basis'" if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete,
                                                       spaces.MultiBinary)) else "obs_map='arctan'"
        raise QRLError(f"{role}: obs_map='bounds' maps a Box observation's bounds onto [-pi/2, pi/2]; expected a Box "
                       f"observation space (VQCNetwork(..., observation_space=...)); got {got}; try {hint}")
    low, high = np.ravel(space.low).astype(np.float64), np.ravel(space.high).astype(np.float64)
    if low.size != n_features:
        raise QRLError(f"{role}: obs_map='bounds' expected the {low.size} features of {space}; got {n_features}; "
                       f"try the default features extractor")
    infinite = unbounded_features(low, high)
    if infinite:
        raise QRLError(f"{role}: observation space {space} has infinite bounds for features {infinite}; "
                       f"try obs_map='arctan'")
    return low, high


def is_target(name: str) -> bool:
    """Whether a module or parameter name lies in a target network (SB3 names them ``q_net_target``,
    ``actor_target``, ``critic_target``): a copy that no optimizer trains and no action uses."""
    return any(part.endswith("_target") for part in name.split("."))


def policy_circuits(module: nn.Module) -> dict[str, VQC]:
    """The circuits of a policy by module name, target networks left out."""
    return {name: m for name, m in module.named_modules() if isinstance(m, VQC) and not is_target(name)}


def count_parameters(module: nn.Module) -> dict[str, int]:
    """Trainable parameters split into quantum (circuit, input/output scaling) and classical; target
    networks (:func:`is_target`) are not counted."""
    quantum_ids = {id(p) for m in module.modules() if isinstance(m, VQC) for p in m.parameters()}
    counts = {"quantum": 0, "classical": 0}
    for name, p in module.named_parameters():
        if p.requires_grad and not is_target(name):
            counts["quantum" if id(p) in quantum_ids else "classical"] += p.numel()
    return {**counts, "total": counts["quantum"] + counts["classical"]}


def action_outputs(space: spaces.Space) -> int:
    """Width of the action-distribution parameters (logits or Gaussian mean)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape))
    raise QRLError(f"action space {type(space).__name__} is not supported; expected Discrete, Box, "
                   f"MultiDiscrete or MultiBinary")


class CircuitPolicyPart:
    """Mixin for SB3 policy parts (actors, Q-networks) that hold a circuit instead of an MLP.

    Such a part is built with ``BasePolicy.__init__`` only (the SB3 class it replaces would build its
    MLP), keeps ``features_dim`` and ``circuit_config``, and saves them among its constructor parameters.
    """

    features_dim: int
    circuit_config: dict[str, Any]

    def _init_part(self, observation_space: spaces.Space, action_space: spaces.Space, features_extractor: nn.Module,
                   features_dim: int, circuit_config: dict[str, Any], normalize_images: bool,
                   squash_output: bool = False) -> None:
        from stable_baselines3.common.policies import BasePolicy

        BasePolicy.__init__(self, observation_space, action_space, features_extractor=features_extractor,
                            normalize_images=normalize_images, squash_output=squash_output)
        self.features_dim = features_dim
        self.circuit_config = circuit_config

    def _get_constructor_parameters(self) -> dict[str, Any]:
        from stable_baselines3.common.policies import BasePolicy

        data = BasePolicy._get_constructor_parameters(self)
        data.update(features_dim=self.features_dim, features_extractor=self.features_extractor,
                    circuit_config=self.circuit_config)
        return data


class CircuitDeviceMixin:
    """``set_circuit_device`` for every VQC policy class (first base, before the SB3 policy class)."""

    circuit_config: dict[str, Any]

    def set_circuit_device(self, device: str, diff_method: str | None = None, shots: int | None = None,
                           noise: dict[str, float] | None = None) -> None:
        """Run every circuit of the policy (actor, critics, target networks) on another backend, e.g.
        evaluate a torch-trained policy on Lightning, with exact expectation values, finite ``shots`` or
        ``noise``; a model saved afterwards keeps them."""
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, VQC):
                module.set_device(device, diff_method, shots, noise)
            elif hasattr(module, "circuit_config"):  # the policy and its parts (Q-network, actor, targets)
                module.circuit_config.update(device=device, diff_method=diff_method, shots=shots, noise=noise)
