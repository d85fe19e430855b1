"""A user's circuit in every role qrl has: PPO/A2C actor and critic, DQN Q-network and its target, SAC/TD3 actor
and VQC critics, the distillation student; named from the command line (`--set`) and rl-zoo3 strings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

from qrl.circuits import CustomCircuit
from qrl.cli import main
from qrl.config import parse_policy_kwargs, resolve
from qrl.nn import VQC
from qrl.runs import read_config
from qrl.sb3 import VQCActorCriticPolicy, VQCDQNPolicy, VQCSACPolicy, VQCTD3Policy

MEYER = dict(circuit="meyer_iqp", n_layers=2, pre_layer=True, post_layer=True)


def circuits(model) -> dict[str, VQC]:
    return {name: m for name, m in model.policy.named_modules() if isinstance(m, VQC)}


def trained_parameters_change(model, steps: int) -> None:
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters() if "circuit_weights" in n}
    model.learn(steps)
    moved = [n for n, p in model.policy.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert moved, "no circuit weight was trained"


@pytest.mark.parametrize(("algo", "env_id", "kwargs"), [
    (PPO, "CartPole-v1", dict(n_steps=32, batch_size=32, n_epochs=1)),
    (A2C, "Pendulum-v1", dict(n_steps=8)),
])
def test_actor_and_critic_of_on_policy_algorithms(algo, env_id, kwargs):
    model = algo(VQCActorCriticPolicy, env_id, policy_kwargs=dict(n_qubits=4, **MEYER), seed=0, device="cpu",
                 **kwargs)
    found = circuits(model)
    assert len(found) == 2 and all(isinstance(m.spec, CustomCircuit) for m in found.values())
    trained_parameters_change(model, 64)


def test_dqn_q_network_and_its_target_run_the_users_circuit():
    model = DQN(VQCDQNPolicy, "CartPole-v1", policy_kwargs=dict(n_qubits=4, **MEYER), seed=0, device="cpu",
                learning_starts=16, train_freq=4, target_update_interval=8, buffer_size=200)
    trained_parameters_change(model, 64)
    q, target = model.policy.q_net.q_net.vqc, model.policy.q_net_target.q_net.vqc
    assert isinstance(target.spec, CustomCircuit) and target.spec == q.spec
    model.policy.q_net_target.load_state_dict(model.policy.q_net.state_dict())
    obs = torch.rand(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(model.policy.q_net_target(obs), model.policy.q_net(obs))


@pytest.mark.parametrize("algo", [SAC, TD3])
def test_off_policy_actor_and_vqc_critics(algo):
    policy = VQCSACPolicy if algo is SAC else VQCTD3Policy
    model = algo(policy, "Pendulum-v1", policy_kwargs=dict(n_qubits=4, critic="vqc", **MEYER), seed=0,
                 device="cpu", learning_starts=16, buffer_size=200, batch_size=16)
    found = circuits(model)
    assert any("actor" in n for n in found) and any("critic" in n for n in found)
    assert all(isinstance(m.spec, CustomCircuit) for m in found.values())
    trained_parameters_change(model, 48)


def test_policy_kwargs_strings_and_set_name_a_users_circuit():
    kwargs = parse_policy_kwargs("dict(circuit='meyer_iqp', n_qubits=4, weight_shapes={'scaling': (2, 4, 3), "
                                 "'weights': (2, 4, 3)}, init=dict(weights='uniform(0, 2*pi)'), post_layer=True)")
    assert kwargs["weight_shapes"] == {"scaling": (2, 4, 3), "weights": (2, 4, 3)}
    config = resolve("ppo-vqc", "CartPole-v1", overrides={"policy_kwargs": kwargs})
    model = PPO(VQCActorCriticPolicy, "CartPole-v1", policy_kwargs=config.policy_kwargs, seed=0, device="cpu",
                n_steps=32, batch_size=32)
    actor = model.policy.mlp_extractor.policy_net.vqc
    assert actor.spec.weight_shapes == {"scaling": (2, 4, 3), "weights": (2, 4, 3)}
    assert float(actor.circuit_weights["weights"].detach().min()) >= 0


def test_cli_trains_and_distills_with_a_users_circuit(tmp_path, capsys):
    teacher = tmp_path / "teacher.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(64).save(teacher)
    sets = ["--set", "policy_kwargs.circuit=hsiao", "--set", "policy_kwargs.n_layers=2",
            "--set", "policy_kwargs.post_layer=true"]
    assert main(["distill", "--teacher", str(teacher), "--student", "ppo-vqc", "--env", "CartPole-v1", "--samples",
                 "100", "--epochs", "1", "--eval-episodes", "1", "--out", str(tmp_path / "d"), "--no-progress",
                 *sets]) == 0
    (run,) = (tmp_path / "d").iterdir()
    assert read_config(run).policy_kwargs["circuit"] == "hsiao"
    assert main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "256", "--out",
                 str(tmp_path / "t"), "--no-progress", *sets]) == 0
    (run,) = (tmp_path / "t").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["circuit_executions"] > 0 and np.isfinite(results["final_eval_mean"])


def test_noise_and_shots_run_the_users_circuit_on_pennylane_devices():
    from qrl.circuits import custom_circuit

    spec = custom_circuit("meyer_iqp", n_qubits=2, n_inputs=2, n_layers=1)
    exact = VQC(spec, device="torch", seed=0).double()
    x = torch.tensor([[0.3, -0.8], [1.1, 0.2]], dtype=torch.float64)
    with torch.no_grad():
        want = exact(x)
        clean = VQC(spec, device="default.mixed", noise={"depolarizing": 0.0}, seed=0).double()(x)
        noisy = VQC(spec, device="default.mixed", noise={"depolarizing": 0.1}, seed=0).double()(x)
        sampled = VQC(spec, device="lightning.qubit", shots=40_000, seed=0).double()(x)
    torch.testing.assert_close(clean, want, atol=1e-10, rtol=0)
    assert bool((noisy.abs() < want.abs()).all()), (noisy, want)  # depolarising shrinks every <Z>
    sigma = torch.sqrt((1 - want**2).clamp_min(1e-4) / 40_000)
    assert bool(((sampled - want).abs() < 5 * sigma + 1e-3).all()), (sampled, want)


def test_qrl_list_shows_the_circuit_library(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, cite in (("meyer_iqp", "Meyer et al. 2025"), ("hsiao", "Hsiao et al. 2022"),
                       ("jerbi_skolik", "Skolik et al. 2022"), ("chen_vqdqn", "Chen et al. 2020"),
                       ("lockwood_si", "Lockwood & Si 2020")):
        assert name in out and cite in out


def test_born_rule_policy_probabilities_match_lightning():
    """``born=True`` with the ``born_parity`` circuit: action probabilities are the parity partition of
    qml.probs (Jerbi et al. 2021), they sum to 1, and they equal what lightning.qubit measures."""
    import pennylane as qml

    model = PPO(VQCActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, seed=0, device="cpu",
                policy_kwargs=dict(actor=dict(circuit="born_parity", n_layers=2, born=True)))
    actor = model.policy.mlp_extractor.policy_net
    obs = torch.rand(6, 4) * 2 - 1
    with torch.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs
        inputs = actor.vqc.angles(obs).double()
        weights = [w.detach().double() for w in actor.vqc.circuit_parameters()]
    torch.testing.assert_close(probs.sum(1), torch.ones(6), atol=1e-6, rtol=0)
    qnode = qml.QNode(actor.vqc.spec.qfunc(), qml.device("lightning.qubit", wires=4), interface="torch")
    full = torch.stack([qnode(x, *weights)[0] for x in inputs])  # (6, 16) basis-state probabilities
    parity = torch.tensor([bin(b).count("1") % 2 for b in range(16)])
    want = torch.stack([full[:, parity == a].sum(1) for a in (0, 1)], 1)
    torch.testing.assert_close(probs.double(), want, atol=1e-5, rtol=0)
    model.learn(64)  # trains through the log of the partition sums


def test_born_rule_needs_a_probability_circuit():
    with pytest.raises(Exception, match="born=True reads action probabilities"):
        PPO(VQCActorCriticPolicy, "CartPole-v1", device="cpu",
            policy_kwargs=dict(actor=dict(circuit="meyer_iqp", n_layers=1, born=True)))
