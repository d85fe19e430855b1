"""``VQCDQNPolicy``: an SB3 DQN policy whose Q-network (and target network) is a VQC."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from qrl.errors import QRLError
from qrl.sb3.networks import (
    CircuitDeviceMixin,
    CircuitPolicyPart,
    VQCNetwork,
    check_observation_space,
    pop_circuit_options,
)


class VQCQNetwork(CircuitPolicyPart, QNetwork):
    """SB3's ``QNetwork`` with a circuit in place of the MLP: ``Q(s, a) = w_a * <O_a>(s)``.

    :param circuit_config: circuit and run options (see :class:`VQCDQNPolicy`).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Discrete,
                 features_extractor: BaseFeaturesExtractor, features_dim: int, circuit_config: dict[str, Any],
                 normalize_images: bool = True):
        self._init_part(observation_space, action_space, features_extractor, features_dim, circuit_config,
                        normalize_images)
        self.q_net = VQCNetwork(features_dim, int(action_space.n), circuit_config, role="q_net",
                                observation_space=observation_space)


class VQCDQNPolicy(CircuitDeviceMixin, DQNPolicy):
    """DQN policy whose Q-network and target network are two VQCs with their own parameters.

    SB3's ``DQN`` is unchanged: the target network is a second circuit, copied from the online one
    with ``load_state_dict`` and updated by SB3's ``polyak_update`` (hard copy every
    ``target_update_interval`` steps with the default ``tau=1``). Default circuit as in Skolik et al.
    2022 (https://arxiv.org/abs/2103.15084): RX(lambda * arctan(s)) encoding re-uploaded in 5 layers of
    RY-RZ rotations and a CZ ring, with trainable input scaling ``lambda`` and output weights ``w``;
    ``readout="zz"`` gives their Z0Z1 / Z2Z3 observables on 4 qubits with 2 actions.

    Use it as ``DQN(VQCDQNPolicy, env, policy_kwargs=dict(...), device="cpu")``.

    :param observation_space: observation space (flat).
    :param action_space: ``Discrete`` action space.
    :param lr_schedule: learning-rate schedule (from the algorithm).
    :param output_scale: initial output weight ``w`` (Q-values lie in ``[-w, w]``).
    :param kwargs: the circuit options of :class:`qrl.sb3.VQCActorCriticPolicy` (``n_qubits``,
        ``n_layers``, ``encoding``, ``ansatz``, ``readout``, ``obs_map``, ``input_scaling``,
        ``output_scaling``, ``data_reuploading``, ``device``, ``diff_method``, ``pre_layer``,
        ``post_layer``, ``dtype``) and SB3's ``DQNPolicy`` options (``optimizer_class``, ...).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 output_scale: float = 1.0, **kwargs: Any):
        check_observation_space(observation_space)
        if not isinstance(action_space, spaces.Discrete):
            raise QRLError(f"DQN needs a Discrete action space; got {type(action_space).__name__}; "
                           f"try PPO, SAC or TD3 for continuous actions")
        self.circuit_config = {**pop_circuit_options(kwargs), "output_scale_init": output_scale}
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_q_net(self) -> VQCQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        net_args.pop("net_arch")
        net_args.pop("activation_fn")
        return VQCQNetwork(**net_args, circuit_config=dict(self.circuit_config)).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("net_arch", None)
        data.pop("activation_fn", None)
        config = dict(self.circuit_config)
        data["output_scale"] = config.pop("output_scale_init")
        data.update(config)
        return data
