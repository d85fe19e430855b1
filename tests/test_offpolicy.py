"""VQCSACPolicy and VQCTD3Policy in SB3: smoke runs with VQC and MLP critics, targets, save/load, errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import SAC, TD3

from qrl import QRLError
from qrl.nn import VQC
from qrl.sb3 import VQCSACPolicy, VQCTD3Policy, count_parameters

ALGOS = {"SAC": (SAC, VQCSACPolicy), "TD3": (TD3, VQCTD3Policy)}
FAST = dict(learning_starts=32, batch_size=16, train_freq=1, gradient_steps=1, seed=0, device="cpu")


def make(algo: str, critic: str, **policy_kwargs):
    cls, policy = ALGOS[algo]
    return cls(policy, "Pendulum-v1", policy_kwargs=dict(n_layers=2, critic=critic, **policy_kwargs), **FAST)


def obs_batch(model, n: int = 20) -> np.ndarray:
    return np.stack([model.observation_space.sample() for _ in range(n)]).astype(np.float32)


@pytest.mark.parametrize("critic", ["vqc", "mlp"])
@pytest.mark.parametrize("algo", list(ALGOS))
def test_learn_smoke_updates_actor_and_critic(algo, critic):
    model = make(algo, critic)
    policy = model.policy
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    model.learn(96)
    trained = [n for n in before if not n.split(".")[0].endswith("_target")]
    changed = {n for n in trained if not torch.equal(before[n], dict(policy.named_parameters())[n].detach())}
    assert {n for n in trained if n.startswith("critic.")} <= changed
    assert any(n.startswith("actor.") for n in changed)
    assert isinstance(policy.actor, torch.nn.Module) and any(isinstance(m, VQC) for m in policy.actor.modules())
    assert any(isinstance(m, VQC) for m in policy.critic.modules()) == (critic == "vqc")
    action, _ = model.predict(model.observation_space.sample(), deterministic=True)
    assert model.action_space.contains(action)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_targets_are_separate_circuits(algo):
    policy = make(algo, "vqc").policy
    targets = [policy.critic_target] + ([policy.actor_target] if algo == "TD3" else [])
    online = [policy.critic] + ([policy.actor] if algo == "TD3" else [])
    for t, o in zip(targets, online, strict=True):
        assert any(isinstance(m, VQC) for m in t.modules())
        assert not {id(p) for p in t.parameters()} & {id(p) for p in o.parameters()}


def test_parameter_counts_skip_targets():
    # Pendulum: 3 observation features, 1 action. SAC actor: mean and log-std from 2 readouts on 3 qubits:
    # 2 layers x 3 qubits x 2 rotations + 2 x 3 input scalings + 2 output weights = 20. VQC critic: features
    # and action on 4 qubits: 16 + 8 + 1 = 25, two critics.
    assert count_parameters(make("SAC", "vqc").policy) == {"quantum": 20 + 2 * 25, "classical": 0, "total": 70}
    mlp = count_parameters(make("SAC", "mlp").policy)
    assert mlp["quantum"] == 20 and mlp["classical"] == 2 * (4 * 256 + 256 + 256 * 256 + 256 + 256 + 1)


LOAD_SCRIPT = """
import json, sys
import numpy as np
from stable_baselines3 import SAC, TD3
model = {"SAC": SAC, "TD3": TD3}[sys.argv[3]].load(sys.argv[1], device="cpu")
actions, _ = model.predict(np.load(sys.argv[2]), deterministic=True)
print(json.dumps(actions.tolist()))
"""


@pytest.mark.parametrize("algo", list(ALGOS))
def test_save_then_load_in_fresh_process_gives_identical_actions(tmp_path, algo, python, subprocess_env):
    model = make(algo, "vqc", critic_output_scale=20.0)
    model.learn(48)
    model.save(tmp_path / "model.zip")
    obs = obs_batch(model, 50)
    np.save(tmp_path / "obs.npy", obs)
    expected, _ = model.predict(obs, deterministic=True)
    out = subprocess.run([python, "-c", LOAD_SCRIPT, str(tmp_path / "model.zip"), str(tmp_path / "obs.npy"), algo],
                         capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected, atol=1e-6)
    loaded = ALGOS[algo][0].load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.critic_type == "vqc" and loaded.policy.critic_output_scale == 20.0


@pytest.mark.parametrize("algo", list(ALGOS))
def test_lightning_and_torch_actions_agree(algo):
    model = make(algo, "vqc")
    obs = obs_batch(model)
    expected, _ = model.predict(obs, deterministic=True)
    model.policy.set_circuit_device("lightning.qubit")
    got, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert all(m.device_name == "lightning.qubit" for m in model.policy.modules() if isinstance(m, VQC))


@pytest.mark.parametrize("policy", [VQCSACPolicy, VQCTD3Policy])
def test_errors_name_the_fix(policy):
    box = spaces.Box(-1, 1, (3,))
    with pytest.raises(QRLError, match="needs a Box \\(continuous\\) action space; got Discrete; try PPO or DQN"):
        policy(box, spaces.Discrete(2), lambda _: 1e-3)
    with pytest.raises(QRLError, match="unknown critic 'cnn'; expected one of mlp, vqc"):
        policy(box, spaces.Box(-1, 1, (1,)), lambda _: 1e-3, critic="cnn")


@pytest.mark.parametrize("algo", list(ALGOS))
def test_bounds_map_reads_observation_and_action_bounds(algo):
    model = make(algo, "vqc", obs_map="bounds")
    critic_vqc = model.policy.critic.q_networks[0].vqc
    np.testing.assert_allclose(critic_vqc.obs_low.numpy(), [-1, -1, -8, -1])  # Pendulum obs, then the action
    np.testing.assert_allclose(critic_vqc.obs_high.numpy(), [1, 1, 8, 1])
    model.learn(40)
