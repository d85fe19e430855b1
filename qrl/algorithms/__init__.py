"""RL algorithms that Stable-Baselines3 does not ship, built on its base classes, with their policies."""

from qrl.algorithms.policies import ActorPolicy, VQCActorPolicy
from qrl.algorithms.reinforce import REINFORCE

__all__ = ["REINFORCE", "ActorPolicy", "VQCActorPolicy"]
