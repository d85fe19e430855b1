"""Stable-Baselines3 policies whose networks are variational quantum circuits."""

from qrl.sb3.dqn import VQCDQNPolicy, VQCQNetwork
from qrl.sb3.networks import VQCNetwork, count_parameters
from qrl.sb3.offpolicy import VQCContinuousCritic, VQCSACPolicy, VQCTD3Policy
from qrl.sb3.policies import VQCActorCriticPolicy, VQCExtractor

__all__ = ["VQCActorCriticPolicy", "VQCContinuousCritic", "VQCDQNPolicy", "VQCExtractor", "VQCNetwork",
           "VQCQNetwork", "VQCSACPolicy", "VQCTD3Policy", "count_parameters"]
