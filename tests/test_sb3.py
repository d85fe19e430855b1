"""VQCActorCriticPolicy in SB3: smoke runs, save/load in a fresh process, pickling, determinism, errors."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from qrl import QRLError, VQCActorCriticPolicy
from qrl.nn import VQC
from qrl.sb3 import count_parameters

SMALL = dict(n_layers=2)


@pytest.mark.parametrize("algo", [PPO, A2C], ids=["PPO", "A2C"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"], ids=["Discrete", "Box"])
def test_learn_smoke(algo, env_id):
    kwargs = {"n_steps": 64, "batch_size": 64} if algo is PPO else {"n_steps": 8}
    model = algo(VQCActorCriticPolicy, env_id, policy_kwargs=SMALL, seed=0, device="cpu", **kwargs)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, model.policy.parameters(), strict=True)]
    assert all(changed), "every parameter (circuit weights, scalings, log-std) should have been updated"
    obs = model.env.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    assert model.env.action_space.contains(action)


def test_discrete_logits_and_value_are_scaled_circuit_readouts():
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", policy_kwargs=SMALL, seed=0, device="cpu", n_steps=64)
    policy = model.policy
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(5)]))
    actor, critic = policy.mlp_extractor.policy_net.vqc, policy.mlp_extractor.value_net.vqc
    with torch.no_grad():
        dist = policy.get_distribution(obs)
        torch.testing.assert_close(dist.distribution.logits, torch.log_softmax(actor(obs), dim=-1))
        torch.testing.assert_close(policy.predict_values(obs), critic(obs))
    assert actor.spec.n_outputs == 2 and critic.spec.n_outputs == 1


def test_box_actions_have_vqc_mean_and_learned_log_std():
    model = PPO(VQCActorCriticPolicy, "Pendulum-v1", seed=0, device="cpu", n_steps=64,
                policy_kwargs=dict(n_layers=2, actor_output_scale=2.0), )
    policy = model.policy
    assert isinstance(policy.log_std, torch.nn.Parameter) and policy.log_std.shape == (1,)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(3)]))
    with torch.no_grad():
        mean = policy.get_distribution(obs).distribution.mean
        torch.testing.assert_close(mean, policy.mlp_extractor.policy_net.vqc(obs))
    torch.testing.assert_close(policy.mlp_extractor.policy_net.vqc.output_scaling.data, torch.tensor([2.0]))


def test_ortho_init_does_not_touch_circuit_weights():
    def circuit_weights(ortho: bool):
        torch.manual_seed(0)
        model = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=0, device="cpu", n_steps=64,
                    policy_kwargs=dict(n_layers=2, ortho_init=ortho, pre_layer=True))
        vqcs = [m for m in model.policy.modules() if isinstance(m, VQC)]
        return [p.detach().clone() for v in vqcs for p in v.parameters()], model.policy

    with_ortho, policy = circuit_weights(True)
    without, _ = circuit_weights(False)
    for a, b in zip(with_ortho, without, strict=True):
        assert torch.equal(a, b)
    # ...while the classical pre-layer did get SB3's orthogonal init (so the check above can fail).
    w = policy.mlp_extractor.policy_net.pre.weight.detach()
    gram = w @ w.T
    torch.testing.assert_close(gram, 2.0 * torch.eye(gram.shape[0]), atol=1e-5, rtol=0)


def test_parameter_count_of_default_cartpole_policy():
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=0, device="cpu", n_steps=64)
    # actor: 40 rotations + 20 input scalings + 2 output weights; critic: 40 + 20 + 1
    assert count_parameters(model.policy) == {"quantum": 123, "classical": 0, "total": 123}


SAVE_LOAD_SCRIPT = """
import json, sys
import numpy as np
from stable_baselines3 import PPO
model = PPO.load(sys.argv[1], device="cpu")
obs = np.load(sys.argv[2])
actions, _ = model.predict(obs, deterministic=True)
print(json.dumps(actions.tolist()))
"""


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_save_then_load_in_fresh_process_gives_identical_actions(tmp_path, env_id, python, subprocess_env):
    model = PPO(VQCActorCriticPolicy, env_id, policy_kwargs=SMALL, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(128)
    path = tmp_path / "model.zip"
    model.save(path)
    obs = np.stack([model.observation_space.sample() for _ in range(100)]).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    expected, _ = model.predict(obs, deterministic=True)
    # The fresh process does not import qrl explicitly: SB3 unpickles the policy class from the zip.
    out = subprocess.run([python, "-c", SAVE_LOAD_SCRIPT, str(path), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    loaded = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_array_equal(loaded.reshape(expected.shape).astype(expected.dtype), expected)


@pytest.mark.parametrize("clone", ["pickle", "deepcopy"])
def test_policy_pickles_after_running_on_lightning(clone):
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=0, device="cpu", n_steps=32, batch_size=32,
                n_epochs=1, policy_kwargs=dict(n_layers=1, device="lightning.qubit"))
    model.learn(32)  # forward under no_grad (rollout) and forward+backward (update) on Lightning
    twin = pickle.loads(pickle.dumps(model.policy)) if clone == "pickle" else copy.deepcopy(model.policy)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(10)]))
    with torch.no_grad():
        torch.testing.assert_close(twin.predict_values(obs), model.policy.predict_values(obs))
        torch.testing.assert_close(twin.get_distribution(obs).distribution.probs,
                                   model.policy.get_distribution(obs).distribution.probs)


def test_lightning_and_torch_policies_agree():
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=0, device="cpu", n_steps=64, policy_kwargs=SMALL)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(20)]))
    with torch.no_grad():
        ref = model.policy.predict_values(obs)
        model.policy.set_circuit_device("lightning.qubit")
        torch.testing.assert_close(model.policy.predict_values(obs), ref, atol=1e-5, rtol=0)


def test_same_seed_same_returns_on_torch_backend():
    def run():
        model = PPO(VQCActorCriticPolicy, "CartPole-v1", policy_kwargs=SMALL, seed=3, device="cpu", n_steps=64,
                    batch_size=64, n_epochs=2)
        model.learn(256)
        eval_env = Monitor(gym.make("CartPole-v1"))
        eval_env.reset(seed=11)
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=3, return_episode_rewards=True)
        params = torch.cat([p.detach().flatten() for p in model.policy.parameters()])
        return returns, params

    (r1, p1), (r2, p2) = run(), run()
    assert r1 == r2
    assert torch.equal(p1, p2)


def test_hybrid_layers_allow_more_features_than_qubits():
    model = PPO(VQCActorCriticPolicy, "Acrobot-v1", seed=0, device="cpu", n_steps=64, batch_size=64,
                policy_kwargs=dict(n_layers=1, n_qubits=3, pre_layer=True, post_layer=True))
    model.learn(64)
    counts = count_parameters(model.policy)
    # pre: 6*3+3 per network; post: 3*3+3 (actor, 3 actions) and 3*1+1 (critic)
    assert counts["classical"] == 2 * 21 + 12 + 4


class ImageEnv(gym.Env):
    observation_space = spaces.Box(0, 255, shape=(16, 16, 3), dtype=np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.mark.parametrize(
    ("env", "policy_kwargs", "message"),
    [
        # SB3 transposes images to channels-first before the policy sees them.
        (ImageEnv(), {}, r"image observations \(shape \(3, 16, 16\)\) are not supported by VQC policies"),
        ("Acrobot-v1", {"n_qubits": 4}, r"the observation has 6 features but the circuit has 4 qubits.*"
                                        r"try n_qubits=6, or pre_layer=True"),
        ("CartPole-v1", {"n_qubits": 1}, r"the observation has 4 features but the circuit has 1 qubits"),
        ("CartPole-v1", {"net_arch": [64]}, r"net_arch sets the MLP of MlpPolicy"),
        ("CartPole-v1", {"critic": {"n_layres": 2}}, r"unknown critic option\(s\) n_layres"),
        ("CartPole-v1", {"device": "lightning.gpu"}, r"device 'lightning.gpu' is not installed"),
        ("CartPole-v1", {"n_qubits": 45}, r"n_qubits=45 needs .* for one state vector"),
    ],
)
def test_policy_errors_name_the_problem_and_fix(env, policy_kwargs, message):
    with pytest.raises(QRLError, match=message):
        PPO(VQCActorCriticPolicy, env, policy_kwargs=policy_kwargs, device="cpu", n_steps=64)


def test_gsde_is_refused():
    with pytest.raises(QRLError, match=r"use_sde=True \(gSDE\) is not supported by VQC policies; try use_sde=False"):
        PPO(VQCActorCriticPolicy, "Pendulum-v1", use_sde=True, device="cpu", n_steps=64)


class _MultiActionEnv(gym.Env):
    """Box observations, MultiDiscrete or MultiBinary actions; reward 1 when the action is all zeros."""

    def __init__(self, action_space):
        self.observation_space = spaces.Box(-1, 1, (3,), dtype=np.float32)
        self.action_space = action_space
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), float(not np.any(action)), False, self._t >= 8, {}


@pytest.mark.parametrize("algo", [PPO, A2C], ids=["PPO", "A2C"])
@pytest.mark.parametrize("action_space", [spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(3)],
                         ids=["MultiDiscrete", "MultiBinary"])
def test_learn_smoke_multi_action_spaces(algo, action_space):
    kwargs = {"n_steps": 64, "batch_size": 64} if algo is PPO else {"n_steps": 8}
    model = algo(VQCActorCriticPolicy, _MultiActionEnv(action_space), policy_kwargs=SMALL, seed=0, device="cpu",
                 **kwargs)
    model.learn(256)
    action, _ = model.predict(model.observation_space.sample(), deterministic=True)
    assert model.action_space.contains(action)
    # one logit per choice: 2 + 3 for MultiDiscrete([2, 3]), 3 for MultiBinary(3)
    assert model.policy.mlp_extractor.latent_dim_pi == int(np.sum(getattr(action_space, "nvec", 3)))


@pytest.mark.parametrize("diff_method", ["parameter-shift", "spsa"])
def test_training_with_shots_and_hardware_gradients(tmp_path, diff_method):
    """Hardware-compatible training: finite shots, gradients by parameter-shift or SPSA; saved and reloaded
    with its shots."""
    kwargs = dict(n_layers=1, device="lightning.qubit", shots=64, diff_method=diff_method)
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", policy_kwargs=kwargs, seed=0, device="cpu", n_steps=16,
                batch_size=16, n_epochs=1)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(16)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.policy.parameters(), strict=True))
    from qrl.cost import run_cost

    cost = run_cost(model.policy)  # one update: 16 samples through actor and critic, each differentiated
    per_sample = 2 if diff_method == "spsa" else 2 * (4 * 2 + 4)  # 2 x (rotations + input scaling angles)
    assert cost["gradient_samples"] == 2 * 16 and cost["gradient_circuits"] == 2 * 16 * per_sample
    assert cost["shots_per_circuit"] == 64 and cost["shots"] == 64 * cost["hardware_circuits"]
    model.save(tmp_path / "m.zip")
    vqc = PPO.load(tmp_path / "m.zip", device="cpu").policy.mlp_extractor.policy_net.vqc
    assert vqc.shots == 64 and vqc.backend.diff_method == diff_method


def test_noise_aware_policy_on_default_mixed():
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=0, device="cpu", n_steps=16, batch_size=16, n_epochs=1,
                policy_kwargs=dict(n_layers=1, device="default.mixed", noise={"depolarizing": 0.02}))
    model.learn(16)
    assert model.policy.mlp_extractor.value_net.vqc.noise == {"depolarizing": 0.02}
