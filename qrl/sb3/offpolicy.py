"""``VQCSACPolicy`` and ``VQCTD3Policy``: SB3 SAC and TD3 with a VQC actor and a VQC or MLP critic."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BaseModel, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from qrl.errors import QRLError
from qrl.sb3.networks import (
    CircuitDeviceMixin,
    CircuitPolicyPart,
    VQCNetwork,
    check_observation_space,
    pop_circuit_options,
)

CRITICS = ("mlp", "vqc")


def _observation_and_action(observation_space: spaces.Space, action_space: spaces.Box) -> spaces.Space:
    """What a critic circuit reads: the observation and the action, which SB3 scales to ``[-1, 1]``.

    For a ``Box`` observation, one ``Box`` of both (so ``obs_map="bounds"`` maps the action by its
    scaled bounds); other observation spaces are returned as they are (``basis`` then refuses the
    extra action features with its message).
    """
    if not isinstance(observation_space, spaces.Box):
        return observation_space
    n_act = get_action_dim(action_space)
    low = np.concatenate([observation_space.low.reshape(-1), -np.ones(n_act)])
    high = np.concatenate([observation_space.high.reshape(-1), np.ones(n_act)])
    return spaces.Box(low.astype(np.float32), high.astype(np.float32))


class VQCContinuousCritic(ContinuousCritic):
    """SB3's ``ContinuousCritic`` with circuits: ``Q_k(s, a) = w_k * <O>(s, a)``, one circuit per critic.

    Each circuit encodes the features and the (scaled, ``[-1, 1]``) action, one per qubit.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box,
                 features_extractor: BaseFeaturesExtractor, features_dim: int, circuit_config: dict[str, Any],
                 normalize_images: bool = True, n_critics: int = 2, share_features_extractor: bool = True):
        BaseModel.__init__(self, observation_space, action_space, features_extractor=features_extractor,
                           normalize_images=normalize_images)
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.features_dim = features_dim
        self.circuit_config = circuit_config
        self.q_networks: list[nn.Module] = []
        space = _observation_and_action(observation_space, action_space)
        for idx in range(n_critics):
            q_net = VQCNetwork(features_dim + get_action_dim(action_space), 1, circuit_config, role="critic",
                               observation_space=space)
            self.add_module(f"qf{idx}", q_net)
            self.q_networks.append(q_net)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = BaseModel._get_constructor_parameters(self)
        data.update(features_dim=self.features_dim, features_extractor=self.features_extractor,
                    circuit_config=self.circuit_config, n_critics=self.n_critics,
                    share_features_extractor=self.share_features_extractor)
        return data


class VQCSACActor(CircuitPolicyPart, SACActor):
    """SAC actor from one circuit: its outputs are the Gaussian mean and log-std of every action dimension.

    ``mean_i = w_i <O_i>``, ``log_std_i = clip(w_{d+i} <O_{d+i}>)`` (clipped to SB3's range), squashed by
    ``tanh`` as in SB3's SAC.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box,
                 features_extractor: BaseFeaturesExtractor, features_dim: int, circuit_config: dict[str, Any],
                 normalize_images: bool = True):
        self._init_part(observation_space, action_space, features_extractor, features_dim, circuit_config,
                        normalize_images, squash_output=True)
        self.use_sde = False
        self.sde_features_extractor = None
        self.action_dim = get_action_dim(action_space)
        self.net = VQCNetwork(features_dim, 2 * self.action_dim, circuit_config, role="actor",
                              observation_space=observation_space)
        self.action_dist = SquashedDiagGaussianDistribution(self.action_dim)

    def get_action_dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        features = self.extract_features(obs, self.features_extractor)
        mean, log_std = self.net(features).split(self.action_dim, dim=1)
        return mean, torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX), {}


class VQCTD3Actor(CircuitPolicyPart, TD3Actor):
    """TD3 actor: ``a = tanh(w * <O>(s))``, one readout per action dimension."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box,
                 features_extractor: BaseFeaturesExtractor, features_dim: int, circuit_config: dict[str, Any],
                 normalize_images: bool = True):
        self._init_part(observation_space, action_space, features_extractor, features_dim, circuit_config,
                        normalize_images, squash_output=True)
        net = VQCNetwork(features_dim, get_action_dim(action_space), circuit_config, role="actor",
                         observation_space=observation_space)
        self.mu = nn.Sequential(net, nn.Tanh())


class _VQCOffPolicy(CircuitDeviceMixin):
    """What the SAC and TD3 policies share: options, the VQC actor, the VQC or MLP critic, saving."""

    _actor_class: type
    _default_critic_arch: tuple[int, ...]
    circuit_config: dict[str, Any]

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 critic: str = "mlp", critic_net_arch: list[int] | None = None, actor_output_scale: float = 1.0,
                 critic_output_scale: float = 1.0, **kwargs: Any):
        self._take_options(observation_space, action_space, critic, actor_output_scale, critic_output_scale, kwargs)
        net_arch = list(critic_net_arch or self._default_critic_arch)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=net_arch, **kwargs)

    def _take_options(self, observation_space: spaces.Space, action_space: spaces.Space, critic: str,
                      actor_output_scale: float, critic_output_scale: float, kwargs: dict[str, Any]) -> None:
        check_observation_space(observation_space)
        name = type(self).__name__
        if not isinstance(action_space, spaces.Box):
            raise QRLError(f"{name} needs a Box (continuous) action space; got {type(action_space).__name__}; "
                           f"try PPO or DQN for discrete actions")
        if kwargs.get("use_sde"):
            raise QRLError("use_sde=True (gSDE) is not supported by VQC policies; try use_sde=False")
        if critic not in CRITICS:
            raise QRLError(f"unknown critic {critic!r}; expected one of {', '.join(CRITICS)}")
        self.circuit_config = pop_circuit_options(kwargs)
        self.critic_type = critic
        self.actor_output_scale = actor_output_scale
        self.critic_output_scale = critic_output_scale

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> nn.Module:
        kw = self._update_features_extractor(self.actor_kwargs, features_extractor)
        kw = {k: kw[k] for k in ("observation_space", "action_space", "features_extractor", "features_dim",
                                 "normalize_images")}
        config = {**self.circuit_config, "output_scale_init": self.actor_output_scale}
        return self._actor_class(**kw, circuit_config=config).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        if self.critic_type == "mlp":
            return super().make_critic(features_extractor)
        kw = self._update_features_extractor(self.critic_kwargs, features_extractor)
        kw.pop("net_arch")
        kw.pop("activation_fn")
        config = {**self.circuit_config, "output_scale_init": self.critic_output_scale}
        return VQCContinuousCritic(**kw, circuit_config=config).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["critic_net_arch"] = data.pop("net_arch")
        data.pop("activation_fn", None)
        data.update(self.circuit_config, critic=self.critic_type, actor_output_scale=self.actor_output_scale,
                    critic_output_scale=self.critic_output_scale)
        return data


_POLICY_DOC = """

    :param observation_space: observation space (flat).
    :param action_space: ``Box`` action space.
    :param lr_schedule: learning-rate schedule (from the algorithm).
    :param critic: ``"mlp"`` (SB3's MLP critics, ``critic_net_arch``) or ``"vqc"`` (one circuit per
        critic, encoding the features and the action).
    :param critic_net_arch: hidden layers of the MLP critics (SB3's defaults: ``[256, 256]`` for SAC, ``[400, 300]``
        for TD3).
    :param actor_output_scale: initial output weight of the actor circuit.
    :param critic_output_scale: initial output weight of the critic circuits (Q-values of a VQC critic
        lie in ``[-w, w]``).
    :param kwargs: the circuit options of :class:`qrl.sb3.VQCActorCriticPolicy` (``n_qubits``,
        ``n_layers``, ``encoding``, ``ansatz``, ``readout``, ``obs_map``, ``device``, ...; shared by
        actor and VQC critics) and the SB3 policy's own options (``n_critics``, ``optimizer_class``, ...).
    """


class VQCSACPolicy(_VQCOffPolicy, SACPolicy):
    __doc__ = ("SAC policy with a VQC actor (Gaussian mean and log-std from one circuit, tanh-squashed) "
               "and a VQC or MLP critic; targets are separate copies, updated by SB3's polyak averaging."
               + _POLICY_DOC)

    _actor_class = VQCSACActor
    _default_critic_arch = (256, 256)  # SB3's SAC default


class VQCTD3Policy(_VQCOffPolicy, TD3Policy):
    __doc__ = ("TD3 policy with a VQC actor (``tanh(w <O>)`` per action dimension) and a VQC or MLP critic; "
               "targets are separate copies, updated by SB3's polyak averaging." + _POLICY_DOC)

    _actor_class = VQCTD3Actor
    _default_critic_arch = (400, 300)  # SB3's TD3 default
