"""SB3's algorithms with a ``"VQCPolicy"`` alias: ``PPO("VQCPolicy", env)`` as ``PPO("MlpPolicy", env)``.

Subclasses of SB3's algorithms that add the alias and change nothing else (see :class:`PPO`).
"""

from __future__ import annotations

from typing import ClassVar

from stable_baselines3 import A2C as _A2C
from stable_baselines3 import DQN as _DQN
from stable_baselines3 import PPO as _PPO
from stable_baselines3 import SAC as _SAC
from stable_baselines3 import TD3 as _TD3
from stable_baselines3.common.policies import BasePolicy

from qrl.sb3.dqn import VQCDQNPolicy
from qrl.sb3.offpolicy import VQCSACPolicy, VQCTD3Policy
from qrl.sb3.policies import VQCActorCriticPolicy


class PPO(_PPO):
    """SB3's PPO with the ``"VQCPolicy"`` alias.

    SB3 resolves a policy given as a string through the algorithm's ``policy_aliases``. These subclasses
    add ``"VQCPolicy"`` (the VQC policy for that algorithm) and change nothing else; SB3's own classes are
    left untouched (no import-time patching), and a model saved by either loads with either, because the
    zip stores the policy class itself. Passing the policy class (``PPO(VQCActorCriticPolicy, env)``) to
    SB3's own algorithm works as well and needs none of this.

    >>> from qrl.sb3.algorithms import PPO
    >>> model = PPO("VQCPolicy", "CartPole-v1", n_steps=64, batch_size=64, device="cpu")
    >>> type(model.policy).__name__
    'VQCActorCriticPolicy'
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**_PPO.policy_aliases, "VQCPolicy": VQCActorCriticPolicy}


class A2C(_A2C):
    """SB3's A2C with the ``"VQCPolicy"`` alias (see :class:`PPO`)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**_A2C.policy_aliases, "VQCPolicy": VQCActorCriticPolicy}


class DQN(_DQN):
    """SB3's DQN with the ``"VQCPolicy"`` alias (see :class:`PPO`)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**_DQN.policy_aliases, "VQCPolicy": VQCDQNPolicy}


class SAC(_SAC):
    """SB3's SAC with the ``"VQCPolicy"`` alias (see :class:`PPO`)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**_SAC.policy_aliases, "VQCPolicy": VQCSACPolicy}


class TD3(_TD3):
    """SB3's TD3 with the ``"VQCPolicy"`` alias (see :class:`PPO`)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**_TD3.policy_aliases, "VQCPolicy": VQCTD3Policy}


__all__ = ["A2C", "DQN", "PPO", "SAC", "TD3"]
