"""Actor-only policies for REINFORCE: an MLP actor and the softmax-VQC / Born-rule VQC actors of Jerbi et al."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from qrl.errors import QRLError
from qrl.sb3.networks import VQCNetwork, action_outputs
from qrl.sb3.policies import VQCActorCriticPolicy, VQCExtractor

LR_GROUPS = ("input_scaling", "weights", "output")
"""Parameter groups that ``lr_multipliers`` scales: input scaling ``lambda``, everything else (circuit angles,
classical layers, log-std), and the output weights ``w`` with the inverse temperature ``beta``."""


def lr_group(name: str) -> str:
    """The :data:`LR_GROUPS` entry of a parameter, by its name in the policy (``...vqc.input_scaling``)."""
    last = name.rsplit(".", 1)[-1]
    if last == "input_scaling":
        return "input_scaling"
    return "output" if last in ("output_scaling", "beta") else "weights"


def parameter_groups(module: nn.Module, lr_multipliers: dict[str, float] | None) -> list[dict[str, Any]]:
    """The module's trainable parameters as optimizer groups, each with its ``lr_multiplier`` (1 where unset).

    The algorithm sets each group's learning rate to ``schedule(progress) * lr_multiplier`` (the TensorFlow
    Quantum tutorial trains ``lambda`` and ``w`` at 10x the circuit angles' rate); empty groups are left out.
    """
    multipliers = dict(lr_multipliers or {})
    unknown = sorted(set(multipliers) - set(LR_GROUPS))
    if unknown:
        raise QRLError(f"lr_multipliers: unknown group(s) {', '.join(unknown)}; expected some of "
                       f"{', '.join(LR_GROUPS)}; try lr_multipliers=dict(input_scaling=10.0, output=10.0)")
    groups: dict[str, list[nn.Parameter]] = {g: [] for g in LR_GROUPS}
    for name, p in module.named_parameters():
        if p.requires_grad:
            groups[lr_group(name)].append(p)
    return [{"params": ps, "lr_multiplier": float(multipliers.get(g, 1.0)), "group": g}
            for g, ps in groups.items() if ps]


class NoCritic(nn.Module):
    """Stands where a critic stands, with no parameters: the value is 0 (REINFORCE learns no value)."""

    pre = post = None  # what VQC policies look for on a critic network (classical layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.new_zeros(features.shape[0], 1)


class InverseTemperature(nn.Module):
    """``logits -> beta * logits``: the inverse temperature of the softmax-VQC policy (Jerbi et al. 2021).

    :param beta: initial value.
    :param trainable: whether ``beta`` is a parameter (else a buffer).
    """

    def __init__(self, beta: float, trainable: bool = True):
        super().__init__()
        value = torch.tensor(float(beta))
        if trainable:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.beta * logits


class ActorPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` with the critic taken out: an MLP actor for REINFORCE.

    REINFORCE learns no value function. This stays an ``ActorCriticPolicy`` so that ``OnPolicyAlgorithm``,
    ``predict``, ``evaluate_policy`` and ``EvalCallback`` use it unchanged, but its value is a constant 0 with
    no parameters, so parameter counts (``qrl list``, the matched MLP) count the actor only.

    :param net_arch: the actor's hidden layers (a list, or ``dict(pi=[...])``); ``[]`` is a linear softmax
        policy. Default ``[64, 64]``.
    :param lr_multipliers: learning-rate multiplier per parameter group (:data:`LR_GROUPS`).
    :param kwargs: SB3's ``ActorCriticPolicy`` options (``activation_fn``, ``ortho_init``, ``optimizer_class``, ...).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 net_arch: list[int] | dict[str, list[int]] | None = None,
                 lr_multipliers: dict[str, float] | None = None, **kwargs: Any):
        if isinstance(net_arch, dict):
            if net_arch.get("vf"):
                raise QRLError(f"net_arch={net_arch}: REINFORCE's policy has no critic; expected dict(pi=[...]) "
                               f"or a list; try net_arch={list(net_arch.get('pi', []))}")
            pi = list(net_arch.get("pi", []))
        else:
            pi = [64, 64] if net_arch is None else list(net_arch)
        self.lr_multipliers = dict(lr_multipliers or {})
        super().__init__(observation_space, action_space, lr_schedule, net_arch=dict(pi=pi, vf=[]), **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.value_net = NoCritic()
        self.optimizer = self.optimizer_class(parameter_groups(self, self.lr_multipliers), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["lr_multipliers"] = self.lr_multipliers
        return data


class VQCActorPolicy(VQCActorCriticPolicy):
    """A VQC actor without a critic, for REINFORCE: the softmax-VQC or the Born-rule ("raw") policy.

    softmax-VQC (Jerbi et al. 2021, https://arxiv.org/abs/2103.05577): ``pi(a|s) = softmax_a(beta * w_a <O_a>)``
    with a trainable inverse temperature ``beta``; with ``readout="parity"`` every ``O_a`` is the global parity
    ``Z0 Z1 ... Zn-1`` with sign ``(-1)^a``, their CartPole policy. Born rule: ``actor=dict(circuit="born_parity",
    born=True)`` makes ``pi(a|s) = sum_{b in V_a} |<b|psi(s)>|^2`` over a partition ``{V_a}`` of the basis
    states (:func:`qrl.sb3.networks.born_partition`), with no temperature unless ``beta`` is given.

    Like :class:`ActorPolicy`, an ``ActorCriticPolicy`` whose value is a constant 0 with no parameters.

    :param beta: initial inverse temperature of discrete-action logits; ``None``: 1.0 for the softmax-VQC, no
        temperature for a Born-rule actor or Box actions.
    :param train_beta: whether ``beta`` is trained (with the ``output`` group's learning rate).
    :param lr_multipliers: learning-rate multiplier per parameter group (:data:`LR_GROUPS`), e.g. the tutorial's
        ``dict(input_scaling=10.0, output=10.0)`` with learning rate 0.01 for the circuit angles.
    :param actor_output_scale: initial output weight ``w`` of the actor.
    :param actor: options for the actor circuit only (e.g. ``dict(circuit="born_parity", born=True)``).
    :param kwargs: the circuit options of :class:`qrl.sb3.VQCActorCriticPolicy` and SB3's policy options.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 beta: float | None = None, train_beta: bool = True, lr_multipliers: dict[str, float] | None = None,
                 actor_output_scale: float = 1.0, actor: dict[str, Any] | None = None, **kwargs: Any):
        for name in ("critic", "critic_output_scale"):
            if kwargs.pop(name, None) is not None:
                raise QRLError(f"{name}: REINFORCE's policy has no critic; leave {name} out")
        self.beta, self.train_beta = beta, bool(train_beta)
        self.lr_multipliers = dict(lr_multipliers or {})
        super().__init__(observation_space, action_space, lr_schedule, actor_output_scale=actor_output_scale,
                         actor=actor, **kwargs)

    def _build_mlp_extractor(self) -> None:
        n_act = action_outputs(self.action_space)
        actor = VQCNetwork(self.features_dim, n_act, {**self.circuit_config, **self.actor_config}, role="actor",
                           observation_space=self.observation_space)
        self.mlp_extractor = VQCExtractor(actor, NoCritic(), n_act)

    def _initial_beta(self) -> float | None:
        born = bool({**self.circuit_config, **self.actor_config}.get("born"))
        if isinstance(self.action_space, spaces.Box):
            if self.beta is not None:
                raise QRLError(f"beta={self.beta} scales the logits of discrete actions; the action space is a Box "
                               f"(Gaussian actions); leave beta out")
            return None
        return self.beta if self.beta is not None or born else 1.0

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        beta = self._initial_beta()
        self.action_net = nn.Identity() if beta is None else InverseTemperature(beta, self.train_beta)
        self.value_net = nn.Identity()
        if isinstance(self.action_dist, DiagGaussianDistribution):
            n_act = self.mlp_extractor.latent_dim_pi
            self.log_std = nn.Parameter(torch.ones(n_act) * self.log_std_init, requires_grad=True)
        actor = self.mlp_extractor.policy_net
        if self.ortho_init:  # SB3's gains, on the classical layers only (never the circuit weights)
            for module, gain in ((actor.pre, np.sqrt(2)), (actor.post, 0.01)):
                if module is not None:
                    module.apply(lambda m, g=gain: self.init_weights(m, gain=g))
        self.optimizer = self.optimizer_class(parameter_groups(self, self.lr_multipliers), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("critic", None)
        data.pop("critic_output_scale", None)
        data.update(beta=self.beta, train_beta=self.train_beta, lr_multipliers=self.lr_multipliers)
        return data
