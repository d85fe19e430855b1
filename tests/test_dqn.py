"""VQCDQNPolicy in SB3's DQN: smoke run, target network, save/load in a fresh process, backends, errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.utils import polyak_update

from qrl import QRLError
from qrl.nn import VQC
from qrl.sb3 import VQCDQNPolicy, count_parameters

FAST = dict(learning_starts=64, train_freq=16, gradient_steps=4, batch_size=16, seed=0, device="cpu")


def obs_batch(model, n: int = 20) -> torch.Tensor:
    return torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(n)]))


def test_learn_smoke_trains_the_online_circuit_only():
    model = DQN(VQCDQNPolicy, "CartPole-v1", policy_kwargs=dict(n_layers=2), target_update_interval=10_000, **FAST)
    before = [p.detach().clone() for p in model.q_net.parameters()]
    target_before = [p.detach().clone() for p in model.q_net_target.parameters()]
    model.learn(256)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.q_net.parameters(), strict=True))
    # no target update within 256 steps at this interval: the target circuit still holds the initial copy
    for a, b in zip(target_before, model.q_net_target.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), atol=0, rtol=0)
    action, _ = model.predict(model.observation_space.sample(), deterministic=True)
    assert model.action_space.contains(action)


def test_target_network_is_a_separate_vqc_and_follows_sb3_updates():
    model = DQN(VQCDQNPolicy, "CartPole-v1", policy_kwargs=dict(n_layers=2), target_update_interval=10_000, **FAST)
    online, target = model.q_net, model.q_net_target
    assert isinstance(online.q_net.vqc, VQC) and isinstance(target.q_net.vqc, VQC)
    assert not {id(p) for p in online.parameters()} & {id(p) for p in target.parameters()}
    model.learn(200)
    obs = obs_batch(model)
    with torch.no_grad():
        assert not torch.allclose(online(obs), target(obs))  # target evaluated (and its unitaries cached)
        polyak_update(online.parameters(), target.parameters(), 1.0)  # SB3's update, through .data
        torch.testing.assert_close(target(obs), online(obs), atol=0, rtol=0)


def test_parameter_count_does_not_count_the_target():
    model = DQN(VQCDQNPolicy, "CartPole-v1", **FAST)
    # 5 layers x 4 qubits x 2 rotations + 20 input scalings + 2 output weights
    assert count_parameters(model.policy) == {"quantum": 62, "classical": 0, "total": 62}


LOAD_SCRIPT = """
import json, sys
import numpy as np
from stable_baselines3 import DQN
model = DQN.load(sys.argv[1], device="cpu")
actions, _ = model.predict(np.load(sys.argv[2]), deterministic=True)
print(json.dumps(actions.tolist()))
"""


def test_save_then_load_in_fresh_process_gives_identical_actions(tmp_path, python, subprocess_env):
    model = DQN(VQCDQNPolicy, "CartPole-v1", policy_kwargs=dict(n_layers=2, readout="zz", output_scale=5.0), **FAST)
    model.learn(128)
    model.save(tmp_path / "model.zip")
    obs = obs_batch(model, 100).numpy()
    np.save(tmp_path / "obs.npy", obs)
    expected, _ = model.predict(obs, deterministic=True)
    out = subprocess.run([python, "-c", LOAD_SCRIPT, str(tmp_path / "model.zip"), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    np.testing.assert_array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected)
    loaded = DQN.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.circuit_config["readout"] == "zz"
    assert float(loaded.q_net.q_net.vqc.output_scaling.detach()[0]) != 0.0


def test_lightning_and_torch_q_values_agree():
    model = DQN(VQCDQNPolicy, "CartPole-v1", policy_kwargs=dict(n_layers=2, readout="zz"), **FAST)
    obs = obs_batch(model)
    with torch.no_grad():
        torch_q = model.q_net(obs)
        model.policy.set_circuit_device("lightning.qubit")
        torch.testing.assert_close(model.q_net(obs), torch_q, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.q_net_target(obs), torch_q, atol=1e-5, rtol=0)


def test_continuous_actions_are_refused_with_the_fix():
    with pytest.raises(QRLError, match="DQN needs a Discrete action space; got Box; try PPO, SAC or TD3"):
        VQCDQNPolicy(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (1,)), lambda _: 1e-3)
