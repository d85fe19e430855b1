"""Observation maps that read the observation space or fixed numbers: basis encoding of Discrete observations,
the Box bounds map and fixed divisors, in VQCNetwork and in SB3 policies (save/load in a fresh process included)."""

from __future__ import annotations

import json
import subprocess

import gymnasium as gym
import numpy as np
import pennylane as qml
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.preprocessing import preprocess_obs

from qrl import QRLError, VQCActorCriticPolicy
from qrl.backends import make_backend
from qrl.circuits import CircuitSpec
from qrl.sb3 import VQCDQNPolicy, VQCNetwork, count_parameters

TOL = 1e-12


class _ProbabilitySpec(CircuitSpec):
    """The same circuit, read out as the probabilities of all ``2**n`` basis states (projectors written
    as Z polynomials, which both backends read)."""

    def observables(self) -> list:
        n = self.n_qubits
        sentence, word = qml.pauli.PauliSentence, qml.pauli.PauliWord
        projectors = []
        for k in range(2**n):
            p = sentence({word({}): 1.0})
            for i in range(n):
                bit = (k >> (n - 1 - i)) & 1
                p = p @ sentence({word({}): 0.5, word({i: "Z"}): 0.5 * (1 - 2 * bit)})
            projectors.append(p.operation(wire_order=range(n)))
        return projectors


def _bits(k: int, m: int) -> list[int]:
    return [(k >> (m - 1 - i)) & 1 for i in range(m)]


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_every_discrete16_state_prepares_its_basis_state(device):
    space = spaces.Discrete(16)
    config = {"obs_map": "basis", "n_layers": 1, "ansatz": "unentangled", "device": device, "dtype": "float64"}
    net = VQCNetwork(16, 4, config, role="actor", observation_space=space)
    assert net.vqc.spec.n_inputs == 4 and net.vqc.spec.n_qubits == 4
    onehot = preprocess_obs(torch.arange(16), space)  # what SB3 feeds the policy
    bits = net.circuit_inputs(onehot)
    assert bits.tolist() == [_bits(k, 4) for k in range(16)]
    # Probabilities after the encoding and an identity layer (Rot(0, 0, 0)): state k is |k>.
    spec = net.vqc.spec
    prob_spec = _ProbabilitySpec(**{f: getattr(spec, f) for f in spec.__dataclass_fields__})
    backend = make_backend(prob_spec, device)
    probs = backend(net.vqc.angles(bits).double(), torch.zeros(spec.weight_shape, dtype=torch.float64))
    assert probs.shape == (16, 16)
    np.testing.assert_allclose(probs.detach().numpy(), np.eye(16), atol=TOL, rtol=0)
    # The network's own Z readout on those states: (-1)^{b_i} times the output weight.
    with torch.no_grad():
        net.vqc.weights.zero_()
        net.vqc.output_scaling.fill_(2.0)
        out = net(onehot.double())
    np.testing.assert_allclose(out.numpy(), 2.0 * (1 - 2 * np.array(bits.tolist())), atol=TOL, rtol=0)


def test_multidiscrete_and_multibinary_basis_inputs():
    md = spaces.MultiDiscrete([3, 4])
    net = VQCNetwork(7, 2, {"obs_map": "basis"}, observation_space=md)
    obs = torch.tensor([[0, 0], [2, 1], [1, 3]])
    bits = net.circuit_inputs(preprocess_obs(obs, md))
    assert bits.tolist() == [[0, 0, 0, 0], [1, 0, 0, 1], [0, 1, 1, 1]]  # 2 bits for 3 values, 2 for 4
    mb = spaces.MultiBinary(3)
    net = VQCNetwork(3, 1, {"obs_map": "basis"}, observation_space=mb)
    assert net.basis_code is None and net.vqc.spec.n_inputs == 3
    x = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(net.circuit_inputs(x), x)


def test_network_takes_box_bounds():
    space = gym.make("Acrobot-v1").observation_space
    net = VQCNetwork(6, 3, {"obs_map": "bounds", "dtype": "float64"}, observation_space=space)
    np.testing.assert_array_equal(net.vqc.obs_low.numpy(), space.low.astype(np.float64))
    np.testing.assert_array_equal(net.vqc.obs_high.numpy(), space.high.astype(np.float64))
    x = torch.as_tensor(np.stack([space.low, space.high, (space.low + space.high) / 2]), dtype=torch.float64)
    mapped = net.vqc.map_observation(x).numpy()
    np.testing.assert_allclose(mapped, np.pi / 2 * np.array([[-1.0] * 6, [1.0] * 6, [0.0] * 6]), atol=1e-6, rtol=0)


def test_parity_readout_needs_no_qubit_per_output():
    net = VQCNetwork(2, 3, {"readout": "parity"}, role="actor")
    assert net.vqc.spec.n_qubits == 2 and net.vqc.spec.n_outputs == 3
    assert VQCNetwork(2, 3, {"readout": "z"}).vqc.spec.n_qubits == 3


@pytest.mark.parametrize(
    ("env_id", "policy_kwargs", "message"),
    [
        ("CartPole-v1", {"obs_map": "bounds"},
         r"actor: observation space Box\(.*\) has infinite bounds for features \[1, 3\]; try obs_map='arctan'"),
        ("CartPole-v1", {"obs_map": "basis"},
         r"actor: obs_map='basis' encodes a discrete observation in binary; expected a Discrete, MultiDiscrete or "
         r"MultiBinary observation space .*; got Box; try obs_map='bounds' or obs_map='arctan'"),
        ("FrozenLake-v1", {"obs_map": "bounds"}, r"expected a Box observation space .*; got Discrete; "
                                                 r"try obs_map='basis'"),
        ("FrozenLake-v1", {"obs_map": "basis", "pre_layer": True},
         r"obs_map='basis' maps the observation itself, but pre_layer=True .*; try pre_layer=False"),
        ("FrozenLake-v1", {"obs_map": "basis", "critic": {"encoding": "rz"}},
         r"got encoding='rz', which leaves \|0> unchanged"),
    ],
)
def test_policy_errors_name_the_fix(env_id, policy_kwargs, message):
    with pytest.raises(QRLError, match=message):
        PPO(VQCActorCriticPolicy, env_id, policy_kwargs=policy_kwargs, device="cpu", n_steps=64)


def test_network_errors_without_or_with_the_wrong_space():
    with pytest.raises(QRLError, match=r"obs_map='basis' .*; got no observation space"):
        VQCNetwork(16, 4, {"obs_map": "basis"})
    with pytest.raises(QRLError, match=r"obs_map='bounds' .*; got no observation space; try obs_map='arctan'"):
        VQCNetwork(4, 2, {"obs_map": "bounds"})
    with pytest.raises(QRLError, match=r"obs_map='basis' expected the 16 features SB3 makes of Discrete\(16\).*got 10"):
        VQCNetwork(10, 4, {"obs_map": "basis"}, observation_space=spaces.Discrete(16))
    with pytest.raises(QRLError, match=r"obs_map='bounds' expected the 2 features of Box.*got 3"):
        VQCNetwork(3, 1, {"obs_map": "bounds"}, observation_space=spaces.Box(-1, 1, (2,)))


def test_frozenlake_basis_policy_counts_and_logits():
    model = PPO(VQCActorCriticPolicy, "FrozenLake-v1", seed=0, device="cpu", n_steps=64, batch_size=64,
                policy_kwargs=dict(obs_map="basis", n_layers=2))
    actor = model.policy.mlp_extractor.policy_net
    assert actor.vqc.spec.n_qubits == 4 and actor.vqc.spec.n_inputs == 4  # 16 states on 4 qubits, 4 actions
    # actor: 2*4*2 rotations + 4 output weights; critic: 16 + 1; no input scaling (fixed for basis)
    assert count_parameters(model.policy) == {"quantum": 20 + 17, "classical": 0, "total": 37}
    obs = torch.arange(16)
    with torch.no_grad():
        features = preprocess_obs(obs, model.observation_space)
        logits = model.policy.get_distribution(obs).distribution.logits
        torch.testing.assert_close(logits, torch.log_softmax(actor(features), -1))
    model.learn(64)
    assert not torch.equal(logits, model.policy.get_distribution(obs).distribution.logits.detach())


LOAD_SCRIPT = """
import json, sys
import numpy as np
import torch
from stable_baselines3 import PPO
model = PPO.load(sys.argv[1], device="cpu")
obs, _ = model.policy.obs_to_tensor(np.load(sys.argv[2]))
with torch.no_grad():
    probs = model.policy.get_distribution(obs).distribution.probs
print(json.dumps({"probs": probs.tolist(), "obs_map": model.policy.circuit_config["obs_map"],
                  "readout": model.policy.circuit_config["readout"], "ansatz": model.policy.circuit_config["ansatz"]}))
"""


@pytest.mark.parametrize(
    ("env_id", "policy_kwargs"),
    [
        ("FrozenLake-v1", dict(obs_map="basis", readout="parity", ansatz="unentangled", n_layers=2)),
        ("Acrobot-v1", dict(obs_map="bounds", n_layers=1)),
        ("CartPole-v1", dict(obs_map="scale", obs_scale=[2.4, 2.5, 0.21, 2.5], n_layers=1)),
    ],
    ids=["basis-parity-unentangled", "bounds", "scale"],
)
def test_save_then_load_in_fresh_process(tmp_path, python, subprocess_env, env_id, policy_kwargs):
    model = PPO(VQCActorCriticPolicy, env_id, policy_kwargs=policy_kwargs, seed=0, device="cpu", n_steps=64,
                batch_size=64)
    model.learn(64)
    model.save(tmp_path / "model.zip")
    obs = np.stack([model.observation_space.sample() for _ in range(20)])
    np.save(tmp_path / "obs.npy", obs)
    with torch.no_grad():
        expected = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs.numpy()
    assert expected.std(axis=0).max() > 1e-4  # the policy depends on the state, so the comparison can fail
    out = subprocess.run([python, "-c", LOAD_SCRIPT, str(tmp_path / "model.zip"), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(loaded["probs"]), expected, atol=1e-6, rtol=0)
    assert loaded["obs_map"] == policy_kwargs["obs_map"]
    assert loaded["readout"] == policy_kwargs.get("readout", "z")
    assert loaded["ansatz"] == policy_kwargs.get("ansatz", "hea")


def test_dqn_frozenlake_basis_parity(tmp_path):
    model = DQN(VQCDQNPolicy, "FrozenLake-v1", seed=0, device="cpu", learning_starts=16, train_freq=4,
                batch_size=16, target_update_interval=32,
                policy_kwargs=dict(obs_map="basis", readout="parity", n_layers=2, output_scale=2.0))
    q = model.q_net.q_net
    assert q.vqc.spec.n_qubits == 4 and q.vqc.spec.n_outputs == 4
    obs = torch.arange(16)
    with torch.no_grad():
        values = model.q_net(obs)
        parity = q.vqc.expvals(q.circuit_inputs(preprocess_obs(obs, model.observation_space)))[:, 0]
    # Q(s, a) = w_a (-1)^a <Z0 Z1 Z2 Z3>, w_a = 2 at the start
    torch.testing.assert_close(values, 2.0 * parity[:, None] * torch.tensor([1.0, -1.0, 1.0, -1.0]),
                               atol=1e-6, rtol=0)
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = DQN.load(tmp_path / "model.zip", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded.q_net(obs), model.q_net(obs), atol=1e-6, rtol=0)
    assert loaded.policy.circuit_config["obs_map"] == "basis"


def test_scale_sized_for_the_observation_names_the_critic_that_reads_more():
    from stable_baselines3 import SAC

    from qrl.sb3 import VQCSACPolicy

    kwargs = dict(obs_map="scale", obs_scale=[1.0, 1.0, 8.0])  # Pendulum's 3 features; the critic reads 3 + 1
    with pytest.raises(QRLError, match=r"^critic: expected obs_scale with 4 positive numbers .*; got 3 values"):
        SAC(VQCSACPolicy, "Pendulum-v1", policy_kwargs={**kwargs, "critic": "vqc"})
    actor = SAC(VQCSACPolicy, "Pendulum-v1", policy_kwargs=kwargs).actor
    assert actor.net.vqc.obs_scale.tolist() == [1.0, 1.0, 8.0]
