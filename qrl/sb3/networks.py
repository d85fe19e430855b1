"""Building blocks shared by the SB3 policies: a VQC network with optional classical layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError
from qrl.nn import VQC

# policy_kwargs that describe the circuit (CircuitSpec fields the user may set) and how it runs.
SPEC_KEYS = tuple(f.name for f in dataclasses.fields(CircuitSpec) if f.name not in ("n_inputs", "n_outputs"))
RUN_KEYS = ("device", "diff_method", "pre_layer", "post_layer", "dtype")
CIRCUIT_KEYS = SPEC_KEYS + RUN_KEYS

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Circuit options every VQC policy takes as keyword arguments, with their defaults (Jerbi et al. 2021,
# Skolik et al. 2022: 5 layers of RX(lambda * arctan(s)) encoding, RY-RZ rotations, a CZ ring).
CIRCUIT_DEFAULTS: dict[str, Any] = {
    "n_qubits": None, "n_layers": 5, "encoding": "rx", "ansatz": "hea", "readout": "z", "obs_map": "arctan",
    "input_scaling": True, "output_scaling": True, "data_reuploading": True, "device": "auto",
    "diff_method": None, "pre_layer": False, "post_layer": False, "dtype": "float32",
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

    :param n_features: input width.
    :param n_outputs: output width.
    :param config: circuit and run options (keys of :data:`CIRCUIT_KEYS`, plain values).
    :param role: what the network is (``"actor"``, ``"critic"``), for error messages.
    """

    def __init__(self, n_features: int, n_outputs: int, config: dict[str, Any], role: str = "circuit"):
        super().__init__()
        unknown = sorted(set(config) - set(CIRCUIT_KEYS))
        if unknown:
            raise QRLError(f"unknown {role} option(s) {', '.join(unknown)}; expected some of "
                           f"{', '.join(CIRCUIT_KEYS)}")
        pre, post = bool(config.get("pre_layer", False)), bool(config.get("post_layer", False))
        n_qubits = config.get("n_qubits")
        if n_qubits is None:
            n_qubits = max(n_features if not pre else 1, n_outputs if not post else 1)
        spec_fields = {k: config[k] for k in SPEC_KEYS if k in config and config[k] is not None}
        spec_fields["n_qubits"] = n_qubits
        spec = CircuitSpec(
            **spec_fields,
            n_inputs=n_qubits if pre else n_features,
            n_outputs=n_qubits if post else n_outputs,
        )
        dtype = config.get("dtype", "float32")
        if dtype not in _DTYPES:
            raise QRLError(f"unknown dtype {dtype!r}; expected one of {', '.join(_DTYPES)}")
        self.pre = nn.Linear(n_features, n_qubits) if pre else None
        self.vqc = VQC(spec, device=config.get("device", "auto"), diff_method=config.get("diff_method"))
        self.vqc.to(_DTYPES[dtype])
        self.post = nn.Linear(n_qubits, n_outputs) if post else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.pre(features) if self.pre is not None else features
        y = self.vqc(x).to(features.dtype)
        return self.post(y) if self.post is not None else y

    def classical_layers(self) -> list[nn.Module]:
        return [m for m in (self.pre, self.post) if m is not None]


def count_parameters(module: nn.Module) -> dict[str, int]:
    """Trainable parameters split into quantum (circuit, input/output scaling) and classical.

    Target networks (SB3 names them ``q_net_target``, ``actor_target``, ``critic_target``) are copies
    that no optimizer trains, so they are not counted.
    """
    def trained(name: str) -> bool:
        return not any(part.endswith("_target") for part in name.split("."))

    quantum_ids = {id(p) for m in module.modules() if isinstance(m, VQC) for p in m.parameters()}
    counts = {"quantum": 0, "classical": 0}
    for name, p in module.named_parameters():
        if p.requires_grad and trained(name):
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
