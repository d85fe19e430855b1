"""``VQCActorCriticPolicy``: an SB3 actor-critic policy (PPO, A2C) whose actor and critic are VQCs."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from qrl.errors import QRLError
from qrl.sb3.networks import (
    CircuitDeviceMixin,
    VQCNetwork,
    action_outputs,
    check_observation_space,
    forward_together,
    pop_circuit_options,
)


class VQCExtractor(nn.Module):
    """Stands where SB3's ``MlpExtractor`` stands: separate actor and critic networks.

    ``latent_dim_pi`` is the width of the action-distribution parameters and ``latent_dim_vf`` is 1,
    so the policy's ``action_net`` and ``value_net`` are identities: the circuits' scaled readouts
    *are* the logits (or Gaussian means) and the value.
    """

    def __init__(self, actor: nn.Module, critic: nn.Module, n_action_outputs: int):
        super().__init__()
        self.policy_net = actor
        self.value_net = critic
        self.latent_dim_pi = n_action_outputs
        self.latent_dim_vf = 1

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.policy_net, VQCNetwork) and isinstance(self.value_net, VQCNetwork):
            # one batch of two circuits where they share a structure: about the cost of one
            actor, critic = forward_together([self.policy_net, self.value_net], features)
            return actor, critic
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class VQCActorCriticPolicy(CircuitDeviceMixin, ActorCriticPolicy):
    """Actor-critic policy for PPO and A2C with a VQC actor and a separate VQC critic.

    Discrete actions: ``logits = w * <O_a>`` (one readout per action). Box actions: the Gaussian mean
    is ``w * <O_a>`` and the log-std is a learned, state-independent parameter, as in SB3. The value
    is ``w_v * <O>`` from a second circuit. Default circuit: Jerbi et al. 2021 / Skolik et al. 2022
    (https://arxiv.org/abs/2103.05577, https://arxiv.org/abs/2103.15084): 5 layers of
    ``RX(lambda * arctan(s))`` encoding, RY-RZ rotations and a CZ ring, Pauli-Z readout.

    Every option is a plain value, so SB3 can save it in ``model.zip`` and ``PPO.load`` rebuilds the
    circuits in a fresh process. Use it as ``PPO(VQCActorCriticPolicy, env, policy_kwargs=dict(...),
    device="cpu")``: SB3's default torch device ``"auto"`` moves the policy to a GPU when there is one,
    which does not pay for circuits this small (``qrl train`` always uses the CPU; the circuit backend is
    chosen separately, by ``device`` in ``policy_kwargs``). With ``device="cuda"`` the circuits run on the
    GPU on the torch path, batched (measured 65x the 16-core CPU's steps/s at 16 qubits; README, "On one GPU").

    :param observation_space: observation space (flat: Box, Discrete, MultiDiscrete, MultiBinary).
    :param action_space: action space.
    :param lr_schedule: learning-rate schedule (from the algorithm).
    :param n_qubits: qubits per circuit (default: enough for the features and the outputs).
    :param n_layers: layers per circuit.
    :param encoding: ``"rx"`` | ``"ry"`` | ``"rz"``.
    :param ansatz: ``"hea"`` | ``"strongly_entangling"`` | ``"unentangled"`` (Hsiao et al. 2022).
    :param readout: ``"z"`` | ``"zz"`` | ``"parity"`` (Jerbi et al. 2021).
    :param obs_map: ``"arctan"`` | ``"tanh"`` | ``"identity"`` | ``"bounds"`` (a Box's finite bounds onto
        ``[-pi/2, pi/2]``) | ``"scale"`` (``x_i / obs_scale[i]``) | ``"basis"`` (a Discrete observation's index
        in binary, Chen et al. 2020).
    :param obs_scale: the fixed divisors of ``obs_map="scale"``, one per feature (or one for all).
    :param input_scaling: trainable input scaling ``lambda`` (``None``: trainable, except with ``basis``).
    :param output_scaling: trainable output weights.
    :param data_reuploading: encode the features in every layer.
    :param device: ``"auto"`` | ``"torch"`` | a PennyLane device name (``"lightning.qubit"``, ...).
    :param diff_method: PennyLane differentiation method for device backends (default: adjoint on
        Lightning).
    :param pre_layer: classical linear layer before each circuit (hybrid; off by default).
    :param post_layer: classical linear layer after each circuit (hybrid; off by default).
    :param dtype: ``"float32"`` (default) or ``"float64"`` for the circuits.
    :param shots: train and act with expectation values estimated from this many shots (a PennyLane
        device; gradients by parameter-shift unless ``diff_method="spsa"`` or another is given).
    :param noise: ``{channel: probability}`` on ``device="default.mixed"`` (noise-aware training).
    :param circuit: a user's circuit instead of the built-in menu: a registered name (the library:
        ``qrl list``), an entry point of ``qrl.circuits`` or ``"module:function"``; a PennyLane quantum
        function ``f(inputs, **weights)`` in ``TorchLayer``'s convention (README: Your own circuit).
    :param weight_shapes: the circuit's weight shapes by argument name (registered circuits have defaults).
    :param init: weight initialisation, one for all weights or a dict per weight (``"uniform(0, 2*pi)"``,
        ``"normal(0, 0.01)"``, ``"ones"``, ...).
    :param born: a Born-rule actor (Jerbi et al. 2021): the circuit returns ``qml.probs`` and the action
        probabilities are their sums over the parity partition of the basis states (``actor=dict(born=True)``).
    :param actor_output_scale: initial output weight of the actor (``output_scale_init``).
    :param critic_output_scale: initial output weight of the critic.
    :param actor: options for the actor circuit only, overriding the shared ones (a dict).
    :param critic: options for the critic circuit only, overriding the shared ones (a dict).
    :param kwargs: the circuit options above, and SB3's ``ActorCriticPolicy`` options (``ortho_init``,
        ``log_std_init``, ``optimizer_class``, ...). ``ortho_init`` touches classical layers only, never
        circuit weights.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        actor_output_scale: float = 1.0,
        critic_output_scale: float = 1.0,
        actor: dict[str, Any] | None = None,
        critic: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        check_observation_space(observation_space)
        if kwargs.get("use_sde"):
            raise QRLError("use_sde=True (gSDE) is not supported by VQC policies; try use_sde=False")
        self.circuit_config = pop_circuit_options(kwargs)
        self.actor_config = {"output_scale_init": actor_output_scale, **(actor or {})}
        self.critic_config = {"output_scale_init": critic_output_scale, **(critic or {})}
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], **kwargs)

    def _build_mlp_extractor(self) -> None:
        n_act = action_outputs(self.action_space)
        space = self.observation_space
        actor = VQCNetwork(self.features_dim, n_act, {**self.circuit_config, **self.actor_config}, role="actor",
                           observation_space=space)
        critic = VQCNetwork(self.features_dim, 1, {**self.circuit_config, **self.critic_config}, role="critic",
                            observation_space=space)
        self.mlp_extractor = VQCExtractor(actor, critic, n_act)

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        self.action_net = nn.Identity()
        self.value_net = nn.Identity()
        if isinstance(self.action_dist, DiagGaussianDistribution):
            n_act = self.mlp_extractor.latent_dim_pi
            self.log_std = nn.Parameter(torch.ones(n_act) * self.log_std_init, requires_grad=True)
        if self.ortho_init:
            # SB3's gains, applied to the classical layers only (init_weights touches nn.Linear).
            actor, critic = self.mlp_extractor.policy_net, self.mlp_extractor.value_net
            gains = {actor.pre: np.sqrt(2), critic.pre: np.sqrt(2), actor.post: 0.01, critic.post: 1.0}
            for module, gain in gains.items():
                if module is not None:
                    module.apply(lambda m, g=gain: self.init_weights(m, gain=g))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("net_arch", None)
        data.pop("activation_fn", None)
        data.update(self.circuit_config)
        data["actor_output_scale"] = self.actor_config["output_scale_init"]
        data["critic_output_scale"] = self.critic_config["output_scale_init"]
        data["actor"] = {k: v for k, v in self.actor_config.items() if k != "output_scale_init"}
        data["critic"] = {k: v for k, v in self.critic_config.items() if k != "output_scale_init"}
        return data

    def __getstate__(self) -> dict[str, Any]:
        # SB3 keeps the last torch distribution (with its autograd graph) on ``action_dist``, which
        # makes a trained policy fail to deepcopy; it is recomputed on every call, so drop it.
        state = dict(self.__dict__)
        dist = copy.copy(state["action_dist"])
        dist.__dict__.pop("distribution", None)
        state["action_dist"] = dist
        return state
