"""REINFORCE (qrl.algorithms): its gradient step by hand, save/load in a fresh process, the softmax-VQC and
Born-rule policies, its presets through `qrl train` / `qrl eval`, and (expensive) the TFQ tutorial's result."""

from __future__ import annotations

import dataclasses
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from qrl.algorithms import REINFORCE, ActorPolicy, VQCActorPolicy
from qrl.algorithms.reinforce import discounted_returns, returns_with_baseline
from qrl.cli import main
from qrl.config import resolve
from qrl.errors import QRLError
from qrl.train import build_model, preset_parameters

S0, S1 = np.array([1.0, -0.5], dtype=np.float32), np.array([0.3, 2.0], dtype=np.float32)
R1, R2 = 1.0, 2.0


class TwoStepEnv(gym.Env):
    """Every episode: observation S0, reward R1, observation S1, reward R2, terminated."""

    observation_space = spaces.Box(-5.0, 5.0, (2,), np.float32)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return S0.copy(), {}

    def step(self, action):
        self.t += 1
        if self.t == 1:
            return S1.copy(), R1, False, False, {}
        return S0.copy(), R2, True, False, {}


def test_returns_to_go_and_baselines():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5), [1 + 0.5 * 2 + 0.25 * 3, 2 + 1.5, 3])
    episodes = [np.array([1.0, 1.0]), np.array([1.0, 1.0, 1.0])]
    (a, b) = returns_with_baseline(episodes, 1.0, "episode")
    np.testing.assert_allclose(a, [1, -1], atol=1e-6)
    np.testing.assert_allclose(b, np.array([1.0, 0.0, -1.0]) / np.sqrt(2 / 3), atol=1e-6)
    flat = np.concatenate(returns_with_baseline(episodes, 1.0, "batch"))
    assert abs(flat.mean()) < 1e-6 and abs(flat.std() - 1) < 1e-6
    with pytest.raises(QRLError, match="unknown baseline"):
        returns_with_baseline(episodes, 1.0, "critic")


@pytest.mark.parametrize(("baseline", "ent_coef"), [("none", 0.0), ("episode", 0.0), ("none", 0.5)])
def test_one_step_is_the_hand_computed_gradient_of_a_two_step_episode(baseline, ent_coef):
    """A linear softmax policy, logits = W s + b, SGD with lr 1: the step is minus the gradient of
    ``-(G_0 log pi(a_0|s_0) + G_1 log pi(a_1|s_1)) - ent_coef * mean_t H(pi(.|s_t))``, derived by hand:
    d/dz of -G log softmax(z)_a is -G (e_a - p); d/dz of H is -p (log p + H)."""
    gamma = 0.9
    model = REINFORCE(ActorPolicy, TwoStepEnv(), learning_rate=1.0, n_episodes=1, gamma=gamma, baseline=baseline,
                      ent_coef=ent_coef, seed=0, device="cpu",
                      policy_kwargs=dict(net_arch=[], optimizer_class=torch.optim.SGD, ortho_init=False))
    linear = model.policy.action_net
    w0, b0 = linear.weight.detach().clone(), linear.bias.detach().clone()
    model.learn(2)
    assert model.num_timesteps == 2 and model.rollout_buffer.n_episodes == 1
    actions = model.rollout_buffer.actions
    returns = np.array([R1 + gamma * R2, R2])
    if baseline == "episode":
        returns = (returns - returns.mean()) / (returns.std() + 1e-8)
    grad_w, grad_b = np.zeros((3, 2)), np.zeros(3)
    for s, a, g in zip((S0, S1), actions, returns, strict=True):
        z = w0.numpy().astype(np.float64) @ s + b0.numpy()
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        entropy = -(p * np.log(p)).sum()
        dz = -g * (np.eye(3)[a] - p) + ent_coef / 2 * p * (np.log(p) + entropy)  # 2 steps in the batch
        grad_w += np.outer(dz, s)
        grad_b += dz
    np.testing.assert_allclose(linear.weight.detach().numpy(), w0.numpy() - grad_w, atol=1e-5)
    np.testing.assert_allclose(linear.bias.detach().numpy(), b0.numpy() - grad_b, atol=1e-5)


def test_batches_hold_whole_episodes_from_every_environment():
    from stable_baselines3.common.env_util import make_vec_env

    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_episodes=3, batch_size=7,
                      seed=0, device="cpu")
    model.learn(1)
    batch = model.rollout_buffer
    assert batch.n_episodes == 4  # ceil(3 / 2) from each of 2 environments
    assert len(batch.weights) == len(batch.observations) == sum(batch.returns)  # CartPole: reward 1 per step
    assert model.num_timesteps >= sum(batch.returns)


def test_softmax_vqc_beta_is_trained_and_scales_the_logits():
    kwargs = dict(n_layers=2, readout="parity", lr_multipliers=dict(input_scaling=10, output=10))
    model = REINFORCE(VQCActorPolicy, "CartPole-v1", learning_rate=0.01, n_episodes=2, seed=0, device="cpu",
                      policy_kwargs=kwargs)
    policy = model.policy
    beta = policy.action_net.beta
    assert isinstance(beta, torch.nn.Parameter) and beta.item() == 1.0
    obs = torch.rand(5, 4) * 2 - 1
    with torch.no_grad():
        raw = policy.mlp_extractor.policy_net(obs)  # w_a (-1)^a <Z0 Z1 Z2 Z3>
        torch.testing.assert_close(raw[:, 0], -raw[:, 1])
        beta.fill_(2.5)
        probs = policy.get_distribution(obs).distribution.probs
        torch.testing.assert_close(probs, torch.softmax(2.5 * raw, dim=1))
        beta.fill_(1.0)
    groups = {g["group"]: g for g in policy.optimizer.param_groups}
    assert any(p is beta for p in groups["output"]["params"])
    model.learn(1)
    assert beta.item() != 1.0
    assert {g: groups[g]["lr"] for g in groups} == pytest.approx({"input_scaling": 0.1, "weights": 0.01, "output": 0.1})
    fixed = REINFORCE(VQCActorPolicy, "CartPole-v1", device="cpu", policy_kwargs=dict(n_layers=1, beta=3.0,
                                                                                        train_beta=False))
    assert not isinstance(fixed.policy.action_net.beta, torch.nn.Parameter)
    assert float(fixed.policy.action_net.beta) == 3.0


@pytest.mark.parametrize(("env_id", "n_qubits", "n_actions"), [("CartPole-v1", 4, 2), ("Acrobot-v1", 6, 3)])
def test_born_rule_policy_is_the_partition_sum_of_lightning_probs(env_id, n_qubits, n_actions):
    """pi(a|s) = sum over basis states b with popcount(b) = a (mod n_actions) of |<b|psi(s)>|^2; no temperature."""
    import pennylane as qml

    model = REINFORCE(VQCActorPolicy, env_id, seed=0, device="cpu",
                      policy_kwargs=dict(actor=dict(circuit="born_parity", n_layers=2, born=True)))
    assert isinstance(model.policy.action_net, torch.nn.Identity)  # the raw policy: no beta
    actor = model.policy.mlp_extractor.policy_net
    obs = torch.rand(6, n_qubits) * 2 - 1
    with torch.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs.double()
        inputs = actor.vqc.angles(obs).double()
        weights = [w.detach().double() for w in actor.vqc.circuit_parameters()]
    torch.testing.assert_close(probs.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-6, rtol=0)
    qnode = qml.QNode(actor.vqc.spec.qfunc(), qml.device("lightning.qubit", wires=n_qubits), interface="torch")
    full = torch.stack([qnode(x, *weights)[0] for x in inputs])  # (6, 2**n) per sample
    part = torch.tensor([bin(b).count("1") % n_actions for b in range(2**n_qubits)])
    want = torch.stack([full[:, part == a].sum(1) for a in range(n_actions)], 1)
    torch.testing.assert_close(probs, want, atol=1e-5, rtol=0)


def test_saved_models_act_identically_after_load_in_a_fresh_process(tmp_path, python, subprocess_env):
    kinds = {"softmax": dict(n_layers=2, readout="parity"), "born": dict(actor=dict(circuit="born_parity",
                                                                                      n_layers=2, born=True))}
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    want = {}
    for name, kwargs in {**kinds, "mlp": None}.items():
        policy, kwargs = ("MlpPolicy", dict(net_arch=[8])) if kwargs is None else ("VQCPolicy", kwargs)
        model = REINFORCE(policy, "CartPole-v1", n_episodes=2, seed=1, device="cpu", policy_kwargs=kwargs)
        model.learn(1)
        model.save(tmp_path / f"{name}.zip")
        with torch.no_grad():
            probs = model.policy.get_distribution(torch.as_tensor(obs)).distribution.probs.numpy()
        want[name] = (model.predict(obs, deterministic=True)[0], probs)
    script = (
        "import sys, numpy as np, torch\n"
        "from qrl.algorithms import REINFORCE\n"
        f"obs = np.load({str(tmp_path / 'obs.npy')!r})\n"
        "for name in sys.argv[1:]:\n"
        f"    m = REINFORCE.load({str(tmp_path)!r} + '/' + name + '.zip', device='cpu')\n"
        "    with torch.no_grad():\n"
        "        p = m.policy.get_distribution(torch.as_tensor(obs)).distribution.probs.numpy()\n"
        "    actions = m.predict(obs, deterministic=True)[0]\n"
        f"    np.savez({str(tmp_path)!r} + '/' + name + '.out.npz', actions=actions, probs=p)\n"
    )
    subprocess.run([python, "-c", script, *want], env=subprocess_env, check=True, capture_output=True, timeout=300)
    for name, (actions, probs) in want.items():
        got = np.load(tmp_path / f"{name}.out.npz")
        np.testing.assert_array_equal(got["actions"], actions, err_msg=name)
        np.testing.assert_allclose(got["probs"], probs, atol=1e-6, err_msg=name)


def test_qrl_train_and_eval_a_reinforce_preset(train_cli, capsys):
    run_dir = train_cli("reinforce-vqc", "CartPole-v1", 1, "n_episodes=2")
    assert (run_dir / "model.zip").is_file()
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert "reinforce-vqc on CartPole-v1: return" in capsys.readouterr().out


def test_reinforce_presets_resolve_with_the_tutorial_settings():
    config = resolve("reinforce-vqc", "CartPole-v1")
    assert config.algo == "reinforce" and config.hyperparams["gamma"] == 1.0 and config.hyperparams["n_episodes"] == 10
    assert config.policy_kwargs["readout"] == "parity" and config.policy_kwargs["n_layers"] == 5
    with pytest.raises(QRLError, match="unknown hyperparameter"):
        resolve("reinforce-vqc", "CartPole-v1", overrides={"n_steps": 5})
    with pytest.raises(QRLError, match="lr_multipliers: unknown group"):
        build_model(resolve("reinforce-vqc", "CartPole-v1", overrides={"policy_kwargs.lr_multipliers": {"theta": 2}}))


def test_matched_mlp_preset_has_the_closest_parameter_count():
    target = preset_parameters(resolve("reinforce-vqc", "CartPole-v1"))["total"]
    config = resolve("reinforce-mlp-matched", "CartPole-v1")
    got = preset_parameters(config)["total"]
    for k in (-1, 1):
        wider = {**config.policy_kwargs, "net_arch": [w + k for w in config.policy_kwargs["net_arch"]]}
        other = preset_parameters(dataclasses.replace(config, policy_kwargs=wider))["total"]
        assert abs(got - target) <= abs(other - target), (got, other, target)


class EpisodeReturns(BaseCallback):
    """Stops training when the last 10 episodes average ``goal`` or after ``max_episodes`` episodes."""

    def __init__(self, goal: float = 500.0, max_episodes: int = 500):
        super().__init__()
        self.goal, self.max_episodes, self.returns, self.solved_at = goal, max_episodes, [], None

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info and len(self.returns) < self.max_episodes:
                self.returns.append(float(info["episode"]["r"]))
                if self.solved_at is None and len(self.returns) >= 10 and np.mean(self.returns[-10:]) >= self.goal:
                    self.solved_at = len(self.returns)
        return self.solved_at is None and len(self.returns) < self.max_episodes


@pytest.mark.expensive
@pytest.mark.timeout(1800)
def test_reinforce_vqc_solves_cartpole_within_500_episodes():
    """The TensorFlow Quantum tutorial's criterion: the training episodes' return averages 500 over 10
    consecutive episodes within 500 episodes (the preset, seed 0; about a minute on one core)."""
    model, env = build_model(resolve("reinforce-vqc", "CartPole-v1", seed=0, device="torch"))
    episodes = EpisodeReturns()
    model.learn(resolve("reinforce-vqc", "CartPole-v1").n_timesteps, callback=episodes)
    env.close()
    best = max(np.convolve(episodes.returns, np.ones(10) / 10, "valid"))
    assert episodes.solved_at is not None, f"best 10-episode mean {best:.1f} < 500 within 500 episodes"
