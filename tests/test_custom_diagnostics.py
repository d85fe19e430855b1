"""Diagnostics of users' circuits: ``qrl diagnose circuit`` and dry runs of policies with a ``CustomCircuit``,
``transpile_for`` with a list of weights, and gradient variances of ``--circuit`` and of presets set with ``--set``."""

from __future__ import annotations

import json

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl import cost
from qrl.circuits import CircuitSpec, custom_circuit
from qrl.cli import main
from qrl.config import parse_set
from qrl.diagnostics import (
    custom_circuit_gradient_study,
    custom_gradients,
    custom_study_spec,
    first_value_label,
    policy_score_gradients,
    set_value,
)
from qrl.errors import QRLError

MEYER = ["--set", "policy_kwargs.circuit=meyer_iqp", "--set", "policy_kwargs.n_qubits=4", "--set",
         "policy_kwargs.pre_layer=true", "--set", "policy_kwargs.post_layer=true"]


def probs_first(inputs, w):
    """A user's circuit whose first measured value is a probability: P(00)."""
    qml.RY(inputs[..., 0] * w[0], wires=0)
    qml.CRX(w[1], wires=[0, 1])
    qml.RX(w[2] + inputs[..., 1], wires=1)
    return [qml.probs(wires=[0, 1]), qml.expval(qml.PauliZ(1))]


def x_and_z(inputs, w):
    """Measurements that no single circuit reads: X and Z on the same wire."""
    qml.RY(inputs[..., 0] + w[0], wires=0)
    qml.CNOT(wires=[0, 1])
    return [qml.expval(qml.PauliX(0)), qml.expval(qml.PauliZ(0)), qml.probs(wires=[1])]


def needs_qiskit():
    for module in ("qiskit_aer", "qiskit_ibm_runtime", "pennylane_qiskit"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'qrl[hardware]')")


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """A run folder of ppo-vqc trained for 64 steps with the library's meyer_iqp circuit (one layer)."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "64", "--out", str(out),
                 "--no-progress", "--set", "n_epochs=1", "--set", "n_steps=32", "--set", "n_envs=1", "--set",
                 "batch_size=32", "--set", "policy_kwargs.n_layers=1", *MEYER]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


# -- qrl diagnose circuit ----------------------------------------------------------------------------


def test_diagnose_circuit_of_an_agent_with_a_library_circuit(capsys):
    assert main(["diagnose", "circuit", "ppo-vqc", "--env", "CartPole-v1", "--shots", "100", *MEYER,
                 "--set", "policy_kwargs.n_layers=2", "--device", "ionq.qpu@aria-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agent ppo-vqc on CartPole-v1 (policy_kwargs.circuit=meyer_iqp, policy_kwargs.n_qubits=4, "
                          "policy_kwargs.pre_layer=true, policy_kwargs.post_layer=true, policy_kwargs.n_layers=2), "
                          "weights at initialisation (seed 0)")
    # 2 circuits x (48 weights + 4 output weights); pre layers 4 x 4 + 4, post layers 4 x 2 + 2 and 4 x 1 + 1
    assert "parameters: 159 trainable = 104 in circuits (circuit weights and output scaling) + 55 classical" in out
    assert "one action on hardware: 1 circuit (mlp_extractor.policy_net.vqc) x 100 shots = 100 shots" in out
    assert out.count("circuit mlp_extractor.policy_net.vqc: meyer_iqp\n") == 1
    assert out.count("circuit mlp_extractor.value_net.vqc: meyer_iqp\n") == 1
    assert out.count("  citation: Meyer et al. 2025") == 2
    assert out.count("weights: scaling (2, 4, 3) init ones, weights (2, 4, 3) init uniform(-pi, pi)") == 2
    assert out.count("measurements: expval(Z(0)), expval(Z(1)), expval(Z(2)), expval(Z(3)) (4 values") == 2
    # H on 4 wires, 2 layers of 4 CRots with 4 H between them
    assert out.count("depth 10, 16 gates: Hadamard 8, CRot 8") == 2
    assert out.count("parameters: 48 circuit weights + 4 output weights = 52") == 2
    assert "a gradient adds 2 x 24 = 48 shifted circuits per sample" in out  # 8 CRots x 3 angles
    assert out.count("on ionq.qpu@aria-1: depth ") == 2 and "16 two-qubit gates" in out  # 2 CNOTs per CRot
    assert "╭Rot(" in out and "<Z>" in out  # PennyLane's drawing


def test_diagnose_circuit_of_a_user_circuit_on_an_ibm_snapshot(capsys):
    needs_qiskit()
    assert main(["diagnose", "circuit", "ppo-vqc", "--env", "CartPole-v1", *MEYER, "--set", "policy_kwargs.n_layers=1",
                 "--device", "qiskit.aer@FakeManilaV2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("  on qiskit.aer@FakeManilaV2: depth "))
    assert int(line.split(", ")[1].split(" two-qubit")[0]) >= 8  # 4 CRots, 2 CNOTs each, plus routing


def test_diagnose_circuit_of_a_run_with_a_user_circuit_and_set_refused(user_run, capsys):
    assert main(["diagnose", "circuit", str(user_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {user_run}: ppo-vqc on CartPole-v1, trained weights")
    assert "depth 5, 8 gates: Hadamard 4, CRot 4" in out and "24 circuit weights + 4 output weights = 28" in out
    assert main(["diagnose", "circuit", str(user_run), "--set", "policy_kwargs.n_layers=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--set changes a preset; expected an agent preset with --env" in err


# -- dry runs ----------------------------------------------------------------------------------------


def test_dry_run_of_a_run_with_a_user_circuit(user_run, capsys):
    assert main(["eval", str(user_run), "--device", "ionq.qpu@aria-1", "--shots", "100", "--episodes", "1",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run on ionq.qpu@aria-1: nothing is submitted")
    assert ("circuit mlp_extractor.policy_net.vqc (meyer_iqp): 4 qubits, 12 trainable gate angles; on the device: "
            "depth ") in out
    assert out.count(", 8 two-qubit gates") == 2  # actor and critic: 4 CRots of 2 CNOTs each
    evaluation = next(line for line in out.splitlines() if line.startswith("evaluation, 1 episode"))
    assert 8 <= int(evaluation.split(": ")[1].split(" circuits")[0]) <= 500  # one per CartPole step
    assert "training this run on the device" in out and "12 angles x 2 per sample" in out
    assert "0: ──" in out  # the drawing


def test_dry_run_of_a_user_circuit_on_an_ibm_snapshot(user_run, capsys):
    needs_qiskit()
    assert main(["eval", str(user_run), "--device", "qiskit.aer@FakeManilaV2", "--shots", "100", "--episodes", "1",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "circuit mlp_extractor.policy_net.vqc (meyer_iqp)" in out and "snapshot FakeManilaV2 (5 qubits)" in out
    assert int(out.split(" two-qubit gates")[0].rsplit(", ", 1)[1]) >= 8


def test_transpile_for_takes_the_inputs_and_a_list_of_weights():
    spec = CircuitSpec(n_qubits=4, n_layers=3, n_inputs=4)
    angles, weights = np.full(spec.input_shape, 0.3), np.full(spec.weight_shape, 0.2)
    one = cost.transpile_for(spec, "ionq.qpu@aria-1", angles, weights)
    listed = cost.transpile_for(spec, "ionq.qpu@aria-1", angles, [weights])
    assert one == listed and one.circuits == 1
    user = custom_circuit("jerbi_skolik", n_qubits=4, n_inputs=4, n_layers=3)  # the same gates, written as a user
    t = cost.transpile_for(user, "ionq.qpu@aria-1", np.full(4, 0.3), [np.ones((3, 4)), np.full((3, 4, 2), 0.2)])
    assert (t.gate_counts, t.two_qubit_gates, t.seconds_per_shot) == (one.gate_counts, 12, one.seconds_per_shot)
    with pytest.raises(QRLError, match=r"expected weights of shapes \[\(3, 4\), \(3, 4, 2\)\].*; got \[\(3, 4\)\]"):
        cost.transpile_for(user, "ionq.qpu@aria-1", np.zeros(4), [np.ones((3, 4))])


def test_gates_qiskit_does_not_name_are_decomposed_before_transpiling():
    needs_qiskit()
    for spec in (CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, ansatz="strongly_entangling"),
                 custom_circuit("meyer_iqp", n_qubits=2, n_inputs=2, n_layers=1)):  # StronglyEntanglingLayers, CRot
        weights = [np.full(shape, 0.3) for shape in spec.weight_shapes.values()]
        t = cost.transpile_for(spec, "qiskit.aer@FakeManilaV2", np.full(spec.input_shape, 0.2), weights)
        assert t.two_qubit_gates >= 2 and t.circuits == 1


def test_measurements_in_two_commuting_groups_run_as_two_circuits():
    spec = custom_circuit(f"{__name__}:x_and_z", n_qubits=2, n_inputs=1, weight_shapes={"w": (1,)})
    t = cost.transpile_for(spec, "ionq.qpu@aria-1", np.zeros(1), [np.zeros(1)])
    assert t.circuits == 2 and "2 circuits per sample" in t.summary
    assert t.two_qubit_gates == 2  # the CNOT in each circuit
    aria = cost.DEVICE_CLASSES["ionq-aria"]
    # RY each; the X group also rotates into X's basis (RZ RX RZ: one timed gate); readout and reset each
    assert t.seconds_per_shot == pytest.approx(3 * aria.t_1q + 2 * aria.t_2q + 2 * (aria.t_readout + aria.t_reset))


# -- gradient variance of a circuit (--circuit) ------------------------------------------------------


def test_hsiao_gradients_match_the_closed_form():
    """One qubit, one layer: RX(lam x) then Rot(phi, theta, omega) = RZ RY RZ, so
    <Z> = cos(lam x) cos(theta) - sin(lam x) sin(phi) sin(theta)."""
    spec = custom_study_spec("hsiao", 1, 1)
    assert spec.weight_shapes == {"input_scaling": (1, 1), "weights": (1, 1, 3)}
    rng = np.random.default_rng(1)
    lam, w, x = rng.uniform(-3, 3, (20, 1, 1)), rng.uniform(-3, 3, (20, 1, 1, 3)), rng.uniform(-1.5, 1.5, (20, 1))
    grads = custom_gradients(spec, x, [lam, w])
    a, phi, theta = lam[:, 0, 0] * x[:, 0], w[:, 0, 0, 0], w[:, 0, 0, 1]
    expected = np.stack([x[:, 0] * (-np.sin(a) * np.cos(theta) - np.cos(a) * np.sin(phi) * np.sin(theta)),
                         -np.sin(a) * np.cos(phi) * np.sin(theta),
                         -np.cos(a) * np.sin(theta) - np.sin(a) * np.sin(phi) * np.cos(theta),
                         np.zeros(20)], axis=1)
    np.testing.assert_allclose(grads, expected, atol=1e-12)


def test_study_variance_is_that_of_the_closed_form_on_the_same_draws():
    """Inputs zero: dL/dtheta = -sin(theta), the other three gradients 0, so Var mean = Var[sin theta] / 4,
    1/8 in expectation for theta ~ U[-pi, pi]."""
    samples = 400
    result = custom_circuit_gradient_study("hsiao", qubits=[1], layers=[1], samples=samples, seed=3, inputs="zeros")
    (row,) = result["rows"]
    rng = np.random.default_rng([3, 1, 1])  # the study's draws: each weight in argument order, then the inputs
    rng.uniform(-np.pi, np.pi, (samples, 1, 1))
    theta = rng.uniform(-np.pi, np.pi, (samples, 1, 1, 3))[:, 0, 0, 1]
    assert row["var_mean"] == pytest.approx(np.var(np.sin(theta), ddof=1) / 4, rel=1e-9)
    assert row["var_first"] == 0.0  # d/d lambda at x = 0
    assert abs(row["var_mean"] - 1 / 8) < 4 * row["var_mean_se"]
    assert (row["observable"], row["n_params"], row["readout"]) == ("expval(Z(0))", 4, "first")
    assert result["fits"] == []  # one qubit count


@pytest.mark.parametrize("name", ["meyer_iqp", f"{__name__}:probs_first"])
def test_gradients_agree_with_default_qubit_parameter_shift(name):
    spec = (custom_study_spec(name, 2, 2) if name == "meyer_iqp"
            else custom_circuit(name, n_qubits=2, n_inputs=2, weight_shapes={"w": (3,)}))
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-np.pi, np.pi, (3, *shape)) for shape in spec.weight_shapes.values()]
    x = rng.uniform(-1.5, 1.5, (3, 2))
    grads = custom_gradients(spec, x, weights)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=2), interface="torch",
                      diff_method="parameter-shift")
    for i in range(3):
        theta = [torch.tensor(w[i], requires_grad=True) for w in weights]
        value = qnode(torch.tensor(x[i]), *theta)[0]
        value = value[0] if value.ndim else value  # probs: P(00)
        value.backward()
        np.testing.assert_allclose(grads[i], torch.cat([t.grad.reshape(-1) for t in theta]).numpy(), atol=1e-10)
    assert first_value_label(spec) == ("expval(Z(0))" if name == "meyer_iqp" else "probs(wires=[0, 1])[0]")


def test_cli_circuit_study(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "gradients", "--circuit", "meyer_iqp", "--qubits", "2", "3", "--layers", "1", "2",
                 "--samples", "10", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "| qubits | layers | readout | observable | params |" in captured.out
    assert "| 3 | 2 | first | expval(Z(0)) | 36 |" in captured.out and "-b / ln 2" in captured.out
    assert "diagnose: meyer_iqp, 3 qubits, 2 layers" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["gradients_meyer_iqp.json", "gradients_meyer_iqp.png"]
    data = json.loads((out / "gradients_meyer_iqp.json").read_text())
    assert data["command"] == ("qrl diagnose gradients --circuit meyer_iqp --qubits 2 3 --layers 1 2 --inputs random "
                               "--samples 10 --seed 0")
    assert data["circuit"] == "meyer_iqp" and data["citation"].startswith("Meyer et al. 2025")
    assert len(data["rows"]) == 4 and len(data["fits"]) == 4
    assert data["rows"][0]["weight_shapes"] == {"scaling": [1, 2, 3], "weights": [1, 2, 3]}
    assert all(r["var_mean"] > 0 for r in data["rows"])


@pytest.mark.parametrize(("args", "message"), [
    (("--circuit", "hsiao", "--ansatz", "hea"), "expected --ansatz (a built-in ansatz) or --circuit (a library or "
                                                "user circuit); got both (--ansatz hea --circuit hsiao); try one"),
    (("--circuit", "hsiao", "--readout", "z"), "expected --circuit without --readout"),
    (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--circuit", "hsiao"),
     "try --set policy_kwargs.circuit=hsiao"),
    (("--set", "policy_kwargs.circuit=hsiao"), "--set overrides an agent preset; expected it with --agent"),
    (("--circuit", "nonesuch_circuit", "--qubits", "2"), "unknown circuit 'nonesuch_circuit'"),
    (("--circuit", "hsiao", "--samples", "1"), "a variance needs at least 2 initialisations"),
    (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--set", "policy_kwargs.circuit=hsiao", "--set",
      "policy_kwargs.post_layer=true", "--readout", "parity", "--samples", "2", "--obs", "2"),
     "readout set(s) the built-in circuit"),
])
def test_cli_circuit_flags_one_line_error_no_files(tmp_path, capsys, args, message):
    out = tmp_path / "diag"
    assert main(["diagnose", "gradients", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not out.exists()


# -- gradient variance of a policy with a user's circuit (--set) -------------------------------------


def test_score_gradients_of_several_weights_are_theirs_concatenated():
    from qrl.config import resolve
    from qrl.train import build_model

    config = resolve("ppo-vqc", "CartPole-v1", overrides=parse_set([*MEYER[1::2], "policy_kwargs.n_layers=1"]))
    model, env = build_model(config)
    env.close()
    vqc = model.policy.mlp_extractor.policy_net.vqc
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    parts = []
    for w in vqc.circuit_parameters():
        torch.manual_seed(7)  # the same actions drawn
        parts.append(policy_score_gradients(model.policy, w, obs))
    torch.manual_seed(7)
    together = policy_score_gradients(model.policy, vqc.circuit_parameters(), obs)
    assert together.shape == (5, 24)
    np.testing.assert_allclose(together, np.concatenate(parts, axis=1), rtol=1e-6, atol=1e-9)


def test_cli_policy_study_with_a_user_circuit(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "gradients", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--set",
                 "policy_kwargs.circuit=hsiao", "--set", "policy_kwargs.post_layer=true", "--layers", "1",
                 "--samples", "2", "--obs", "4", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "| agent | env | qubits | layers | circuit | readout | params |" in captured.out
    assert "| ppo-vqc | CartPole-v1 | 4 | 1 | hsiao | - | 16 |" in captured.out  # lambda (1, 4) + Rot (1, 4, 3)
    assert "diagnose: ppo-vqc on CartPole-v1, 1 layers, circuit hsiao" in captured.err
    data = json.loads((out / "gradients_ppo-vqc_CartPole-v1_hsiao.json").read_text())
    assert data["command"] == ("qrl diagnose gradients --agent ppo-vqc --env CartPole-v1 --set "
                               "policy_kwargs.circuit=hsiao --set policy_kwargs.post_layer=true --layers 1 --obs 4 "
                               "--samples 2 --seed 0")
    assert data["overrides"] == {"policy_kwargs.circuit": "hsiao", "policy_kwargs.post_layer": True}
    (row,) = data["rows"]
    assert (row["circuit"], row["ansatz"], row["readout"], row["n_params"]) == ("hsiao", None, None, 16)
    assert row["var_mean"] > 0 and (out / "gradients_ppo-vqc_CartPole-v1_hsiao.png").is_file()


@pytest.mark.parametrize("value", ["meyer_iqp", "true", "3", "", "a: b", True, 4, 0.5, None, [1, 2], {"a": [1, 2]}])
def test_set_values_read_back(value):
    assert parse_set([f"k={set_value(value)}"]) == {"k": value}


def test_score_gradients_on_the_native_kernel_are_the_torch_programs_one_row_at_a_time():
    """The native kernel's backward is a C call, which autograd cannot batch over cotangents (``is_grads_batched``):
    the score gradients are then taken one observation at a time, and equal the torch program's batched ones."""
    from qrl.config import resolve
    from qrl.train import build_model

    obs = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    scores = []
    for device in ("torch", "torch:native"):
        config = resolve("ppo-vqc", "CartPole-v1", seed=3, device=device, overrides={"policy_kwargs.n_layers": 2})
        model, env = build_model(config)
        env.close()
        torch.manual_seed(7)  # the same actions drawn
        scores.append(policy_score_gradients(model.policy, model.policy.mlp_extractor.policy_net.vqc
                                             .circuit_parameters(), obs))
    assert scores[0].shape == (6, 16) and np.abs(scores[0]).max() > 1e-3
    np.testing.assert_allclose(scores[1], scores[0], rtol=0, atol=1e-5)
