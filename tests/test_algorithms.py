"""``qrl.sb3.algorithms``: SB3's algorithms with the "VQCPolicy" alias."""

from __future__ import annotations

import pytest
import stable_baselines3 as sb3

from qrl.sb3 import VQCActorCriticPolicy, VQCDQNPolicy, VQCSACPolicy, VQCTD3Policy
from qrl.sb3 import algorithms as qa

CASES = [(qa.PPO, "CartPole-v1", VQCActorCriticPolicy, dict(n_steps=32, batch_size=32)),
         (qa.A2C, "CartPole-v1", VQCActorCriticPolicy, dict(n_steps=8)),
         (qa.DQN, "CartPole-v1", VQCDQNPolicy, dict(learning_starts=16, train_freq=16)),
         (qa.SAC, "Pendulum-v1", VQCSACPolicy, dict(learning_starts=16, batch_size=16)),
         (qa.TD3, "Pendulum-v1", VQCTD3Policy, dict(learning_starts=16, batch_size=16))]


@pytest.mark.parametrize(("algo", "env", "policy", "kwargs"), CASES, ids=[c[0].__name__ for c in CASES])
def test_vqc_policy_alias_and_sb3_load(tmp_path, algo, env, policy, kwargs):
    model = algo("VQCPolicy", env, policy_kwargs=dict(n_layers=1), seed=0, device="cpu", **kwargs)
    assert type(model.policy) is policy
    model.learn(32)
    model.save(tmp_path / "m.zip")
    loaded = getattr(sb3, algo.__name__).load(tmp_path / "m.zip", device="cpu")  # SB3's own class loads it
    assert type(loaded.policy) is policy
    assert "VQCPolicy" not in getattr(sb3, algo.__name__).policy_aliases  # SB3 itself is not patched
