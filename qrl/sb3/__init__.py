"""Stable-Baselines3 policies whose networks are variational quantum circuits."""

from qrl.sb3.dqn import VQCDQNPolicy, VQCQNetwork
from qrl.sb3.networks import VQCNetwork, count_parameters
from qrl.sb3.policies import VQCActorCriticPolicy, VQCExtractor

__all__ = ["VQCActorCriticPolicy", "VQCDQNPolicy", "VQCExtractor", "VQCNetwork", "VQCQNetwork", "count_parameters"]
