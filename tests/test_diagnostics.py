"""Gradient-variance diagnostics: the batched simulator, closed forms, McClean/Cerezo scaling, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from qrl.backends.select import make_backend
from qrl.backends.torch import TorchStatevector
from qrl.circuits import CircuitSpec
from qrl.cli import main
from qrl.diagnostics import (
    INPUT_RANGE,
    WEIGHT_RANGE,
    check_memory,
    circuit_gradient_study,
    find_fit,
    fit_decay,
    study_spec,
    variance_stats,
)
from qrl.errors import QRLError
from qrl.nn import VQC
from qrl.simulator import BatchedStatevector

LN2 = math.log(2)
N_SE = 5  # closed-form checks: within this many standard errors of the variance estimate


def random_batch(spec: CircuitSpec, n_samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-WEIGHT_RANGE, WEIGHT_RANGE, size=(n_samples, *spec.weight_shape))
    angles = rng.uniform(-1.5, 1.5, size=(n_samples, spec.n_encoding_layers, spec.n_inputs))
    return torch.as_tensor(angles), torch.as_tensor(weights)


# -- the batched simulator against the backends ------------------------------------------------------

SPECS = [
    *(study_spec(ansatz, n, 2, readout) for ansatz in ("hea", "strongly_entangling", "unentangled")
      for readout in ("z", "zz", "parity") for n in (1, 3)),
    CircuitSpec(n_qubits=3, n_layers=2, n_inputs=2, encoding="ry", data_reuploading=False),
    CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, encoding="rz", readout="parity"),
]


def assert_matches(reference, spec: CircuitSpec, n_samples: int, seed: int = 0) -> tuple:
    """The batched simulator's values and gradients, sample by sample, against ``reference`` (a backend
    run on one sample at a time, differentiated by torch)."""
    angles, weights = random_batch(spec, n_samples, seed=seed)
    values, grads = BatchedStatevector(spec).gradients(angles, weights)
    for s in range(n_samples):
        w = weights[s].clone().requires_grad_(True)
        value = reference(angles[s : s + 1], w)[0, 0]
        value.backward()
        np.testing.assert_allclose(values[s].item(), value.item(), atol=1e-9, rtol=0)
        np.testing.assert_allclose(grads[s].numpy(), w.grad.numpy(), atol=1e-9, rtol=0)
    return angles, weights, values


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.ansatz}-{s.readout}-{s.n_qubits}q-{s.encoding}")
def test_batched_simulator_matches_torch_backend(spec):
    angles, weights, values = assert_matches(TorchStatevector(spec), spec, 3)
    np.testing.assert_allclose(BatchedStatevector(spec).values(angles, weights).numpy(), values.numpy(),
                               atol=1e-12, rtol=0)


def test_batched_simulator_matches_lightning():
    spec = study_spec("strongly_entangling", 3, 2, "parity")  # CNOTs at range 1 and 2, Rot gates
    assert_matches(make_backend(spec, "lightning.qubit"), spec, 2, seed=1)  # float64 kept float64 on Lightning


def test_bad_shapes_are_refused():
    spec = study_spec("hea", 2, 2, "z")
    with pytest.raises(QRLError, match=r"expected weights of shape \(S, 2, 2, 2\)"):
        BatchedStatevector(spec).gradients(torch.zeros(4, 2, 2), torch.zeros(4, 2, 2, 3))


# -- closed forms ------------------------------------------------------------------------------------


def test_study_weights_are_drawn_as_the_policy_draws_them():
    # VQC: weights ~ U[-pi, pi] i.i.d.; mean 0, variance pi^2 / 3 (sampling error of 2000 draws ~ 2%).
    w = VQC(CircuitSpec(n_qubits=1, n_layers=1000, n_inputs=1), device="lightning.qubit", seed=0).weights
    w = w.detach().double().numpy().ravel()
    assert WEIGHT_RANGE == pytest.approx(math.pi) and np.abs(w).max() <= math.pi
    assert abs(w.mean()) < N_SE * math.pi / math.sqrt(3 * w.size)
    se = math.sqrt((math.pi**4 / 5 - math.pi**4 / 9) / w.size)
    assert abs(w.var() - math.pi**2 / 3) < N_SE * se


def per_parameter(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased variance of each column and its standard error (from the squared deviations)."""
    dev2 = (grads - grads.mean(0)) ** 2 * (len(grads) / (len(grads) - 1))
    return dev2.mean(0), dev2.std(0, ddof=1) / math.sqrt(len(grads))


def test_one_qubit_two_layers_closed_form():
    # One qubit, inputs 0 (RX(0) = I), weights w0..w3 = RY, RZ of layer 0, RY, RZ of layer 1, ~ U[-pi, pi]:
    # Bloch vector (sin w0 cos w1, sin w0 sin w1, cos w0) after layer 0, so
    # L = <Z> = cos w2 cos w0 - sin w2 sin w0 cos w1 and, with E[sin^2] = E[cos^2] = 1/2 and the cross
    # terms averaging to 0:
    #   dL/dw0 = -cos w2 sin w0 - sin w2 cos w0 cos w1   Var = 1/4 + 1/8 = 3/8
    #   dL/dw1 =  sin w2 sin w0 sin w1                   Var = 1/8
    #   dL/dw2 = -sin w2 cos w0 - cos w2 sin w0 cos w1   Var = 3/8
    #   dL/dw3 = 0 (RZ before a Z readout)               Var = 0
    # Mean over the four: 7/32.
    expected = np.array([3 / 8, 1 / 8, 3 / 8, 0.0])
    spec = study_spec("hea", 1, 2, "z")
    n = 20_000
    rng = np.random.default_rng(0)
    weights = torch.as_tensor(rng.uniform(-WEIGHT_RANGE, WEIGHT_RANGE, size=(n, *spec.weight_shape)))
    values, grads = BatchedStatevector(spec).gradients(torch.zeros(n, 2, 1, dtype=torch.float64), weights)
    w = weights.reshape(n, 4).numpy()
    np.testing.assert_allclose(values.numpy(), np.cos(w[:, 2]) * np.cos(w[:, 0]) -
                               np.sin(w[:, 2]) * np.sin(w[:, 0]) * np.cos(w[:, 1]), atol=1e-12)
    var, se = per_parameter(grads.reshape(n, 4).numpy())
    assert np.all(np.abs(var - expected) <= N_SE * se + 1e-15), (var, se)
    assert np.all(se[:3] < 0.02 * expected[:3])  # the check is sharp: errors of a few percent at most

    result = circuit_gradient_study("hea", qubits=[1], layers=[2], readouts=["z"], samples=n, inputs="zeros")
    (row,) = result["rows"]
    assert abs(row["var_mean"] - 7 / 32) <= N_SE * row["var_mean_se"]
    assert abs(row["var_first"] - 3 / 8) <= N_SE * row["var_first_se"]
    assert result["fits"] == []


def test_one_qubit_random_input_closed_form():
    # One layer with a random input u ~ U[-pi/2, pi/2]: RX(u), RY(w0), RZ(w1) on |0>, so L = cos u cos w0,
    # dL/dw0 = -cos u sin w0 with Var = E[cos^2 u] E[sin^2 w0] = 1/2 * 1/2 = 1/4, dL/dw1 = 0: mean 1/8.
    assert INPUT_RANGE == pytest.approx(math.pi / 2)
    result = circuit_gradient_study("hea", qubits=[1], layers=[1], readouts=["z", "parity"], samples=20_000)
    for row in result["rows"]:  # on one qubit, parity is Z0 too
        assert abs(row["var_first"] - 1 / 4) <= N_SE * row["var_first_se"]
        assert abs(row["var_mean"] - 1 / 8) <= N_SE * row["var_mean_se"]
        assert row["var_first_se"] < 0.02 * 1 / 4


def test_variance_stats_and_fit():
    grads = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 2.0], [-1.0, -2.0]])
    stats = variance_stats(grads)
    assert stats["var_first"] == pytest.approx(4 / 3) and stats["var_mean"] == pytest.approx((4 / 3 + 8 / 3) / 2)
    # observations as a middle axis are averaged like parameters
    assert variance_stats(grads[:, None, :])["var_mean"] == pytest.approx(stats["var_mean"])
    n = np.array([2, 4, 6, 8])
    fit = fit_decay(n, 0.3 * np.exp(-LN2 * n), se=0.01 * 0.3 * np.exp(-LN2 * n))
    assert fit["slope"] == pytest.approx(-LN2) and fit["decay_over_ln2"] == pytest.approx(1.0)
    assert fit["intercept"] == pytest.approx(math.log(0.3)) and fit["slope_se"] == pytest.approx(0.01 / math.sqrt(20))
    assert fit_decay([2, 4, 6], [0.1, 0.0, 0.0]) is None  # zero variances are left out: one point left
    assert fit_decay([2, 4, 6], [0.1, 0.05, 0.0])["points"] == 2


# -- McClean et al. 2018 and Cerezo et al. 2021 ------------------------------------------------------


def test_global_observable_deep_circuits_decay_at_ln2_per_qubit():
    result = circuit_gradient_study("hea", qubits=[2, 4, 6, 8, 10], layers=[20], readouts=["parity"], samples=100)
    for statistic in ("mean", "first"):
        fit = find_fit(result, 20, "parity", statistic)
        assert abs(fit["decay_rate"] - LN2) < 0.25 * LN2, fit
    variances = [r["var_mean"] for r in sorted(result["rows"], key=lambda r: r["qubits"])]
    assert all(a > b for a, b in itertools.pairwise(variances))


def test_local_observable_decays_much_slower_than_global_at_shallow_depth():
    result = circuit_gradient_study("hea", qubits=[2, 4, 6, 8, 10], layers=[2], readouts=["z", "parity"],
                                    samples=100)
    rows = {(r["readout"], r["qubits"]): r for r in result["rows"]}
    for n in (2, 4, 6, 8, 10):
        assert rows[("z", n)]["var_first"] > rows[("parity", n)]["var_first"]
    for n in (6, 8, 10):  # averaged over all weights the local cost dilutes (most lie outside Z0's light cone)
        assert rows[("z", n)]["var_mean"] > rows[("parity", n)]["var_mean"]
    local, glob = find_fit(result, 2, "z", "mean"), find_fit(result, 2, "parity", "mean")
    assert glob["decay_rate"] > 0.75 * LN2  # global: exponential even when shallow
    assert local["decay_rate"] < 0.5 * glob["decay_rate"]
    assert abs(find_fit(result, 2, "z", "first")["slope"]) < 0.15  # a weight in the light cone: no decay at all


def test_memory_is_checked_before_any_work():
    with pytest.raises(QRLError, match=r"30 qubits with 200 samples need 12\.5 TiB .*; try --qubits 16 or fewer"):
        check_memory(30, 200, available=2**30)
    check_memory(10, 200, available=2**30)
    with pytest.raises(QRLError, match="try --qubits"):
        circuit_gradient_study(qubits=[2, 60], layers=[1])


# -- the command -------------------------------------------------------------------------------------


def test_cli_circuit_study(tmp_path, capsys):
    out = tmp_path / "diag"
    args = ["diagnose", "gradients", "--qubits", "1", "2", "3", "--layers", "1", "3", "--readout", "z", "parity",
            "--samples", "20", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "| qubits | layers | readout |" in captured.out and "-b / ln 2" in captured.out
    assert "diagnose: 3 qubits, 3 layers, readout parity" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["gradients_hea.json", "gradients_hea.png"]
    data = json.loads((out / "gradients_hea.json").read_text())
    assert data["command"] == ("qrl diagnose gradients --ansatz hea --qubits 1 2 3 --layers 1 3 --readout z parity "
                               "--inputs random --samples 20 --seed 0")
    assert len(data["rows"]) == 12 and len(data["fits"]) == 8
    assert {r["observable"] for r in data["rows"] if r["qubits"] == 3} == {"Z0", "Z0 Z1 Z2"}
    assert all(r["var_mean"] > 0 and r["var_mean_se"] > 0 for r in data["rows"])
    assert main(args) == 0  # the same seed: the same numbers
    again = json.loads((out / "gradients_hea.json").read_text())
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in data["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in again["rows"]]


def test_cli_policy_loss_study(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "gradients", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--layers", "1", "2",
                 "--samples", "3", "--obs", "8", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "| ppo-vqc | CartPole-v1 | 4 | 2 | hea | z | 16 |" in captured.out
    data = json.loads((out / "gradients_ppo-vqc_CartPole-v1.json").read_text())
    assert data["kind"] == "policy" and [r["layers"] for r in data["rows"]] == [1, 2]
    assert data["command"] == ("qrl diagnose gradients --agent ppo-vqc --env CartPole-v1 --layers 1 2 --readout z "
                               "--ansatz hea --obs 8 --samples 3 --seed 0")
    assert all(r["var_mean"] > 0 for r in data["rows"])
    assert (out / "gradients_ppo-vqc_CartPole-v1.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--qubits", "0"), "expected positive qubit counts for --qubits; got [0]"),
        (("--qubits", "2", "--ansatz", "foo"), "unknown ansatz 'foo'; expected one of hea"),
        (("--qubits", "2", "--readout", "x"), "unknown readout 'x'; expected one of z, zz, parity"),
        (("--qubits", "2", "--layers", "-1"), "expected positive layer counts for --layers"),
        (("--qubits", "2", "--samples", "1"), "a variance needs at least 2 initialisations"),
        (("--qubits", "2", "--seed", "-1"), "expected a non-negative seed; got --seed -1"),
        (("--qubits", "2", "--inputs", "ones"), "unknown inputs 'ones'; expected one of random, zeros"),
        (("--qubits", "40",), "40 qubits with 200 samples need"),
        (("--qubits", "2", "--obs", "8"), "--obs sets the observations of the policy loss"),
        (("--agent", "ppo-vqc",), "--agent and --env go together"),
        (("--agent", "dqn-vqc", "--env", "CartPole-v1"), "expected a PPO or A2C agent; got 'dqn-vqc'"),
        (("--agent", "ppo-mlp", "--env", "CartPole-v1"), "agent 'ppo-mlp' has no circuit"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--qubits", "4"), "the environment sets the qubit count"),
    ],
)
def test_cli_bad_input_one_line_error_no_files(tmp_path, capsys, args, message):
    out = tmp_path / "diag"
    assert main(["diagnose", "gradients", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()


def test_console_script_exit_status(python, subprocess_env, tmp_path):
    proc = subprocess.run([python, "-m", "qrl.cli", "diagnose", "gradients", "--qubits", "0", "--out",
                           str(tmp_path / "d")], capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["qrl: error: expected positive qubit counts for --qubits; got [0]; "
                                                "try --qubits 2 4 6"]


# -- qrl diagnose circuit ----------------------------------------------------------------------------


def test_diagnose_circuit_of_a_preset(capsys):
    assert main(["diagnose", "circuit", "ppo-vqc", "--env", "CartPole-v1", "--shots", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agent ppo-vqc on CartPole-v1, weights at initialisation (seed 0)")
    assert "parameters: 123 trainable = 123 in circuits" in out
    # acting runs the actor only; its 4-qubit, 5-layer hea: RX, RY, RZ per qubit and a 4-CZ ring per layer
    assert "one action on hardware: 1 circuit (mlp_extractor.policy_net.vqc) x 100 shots = 100 shots" in out
    assert out.count("depth 35, 80 gates: RX 20, RY 20, RZ 20, CZ 20") == 2  # actor and critic
    assert "40 rotations + 20 input scaling + 2 output weights = 62" in out
    assert "a gradient adds 2 x 60 = 120 shifted circuits per sample" in out
    assert "0: ──RX(" in out and "<Z>" in out  # PennyLane's drawing


def test_diagnose_circuit_of_a_preset_file(capsys):
    """A preset file (as `qrl train --agent FILE` takes): the critic circuit of this variant has linear layers."""
    preset = Path(__file__).resolve().parents[1] / "agents/studies/cartpole-ppo-vqc-critic/ppo-vqc-critic-post.yaml"
    assert main(["diagnose", "circuit", str(preset), "--env", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agent ppo-vqc-critic-post on CartPole-v1, weights at initialisation (seed 0)")
    assert "parameters: 131 trainable = 126 in circuits" in out


def test_diagnose_circuit_leaves_out_target_networks(capsys):
    assert main(["diagnose", "circuit", "dqn-vqc", "--env", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\ncircuit ") == 1 and "circuit q_net.q_net.vqc:" in out and "target" not in out
    assert "one action on hardware: 1 circuit (q_net.q_net.vqc)" in out


def test_diagnose_circuit_of_a_run_compiled_for_a_device(tmp_path, capsys):
    assert main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "64", "--out", str(tmp_path),
                 "--no-progress", "--set", "n_epochs=1", "--set", "policy_kwargs.n_layers=2"]) == 0
    (run_dir,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["diagnose", "circuit", str(run_dir), "--device", "ionq.qpu@aria-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {run_dir}: ppo-vqc on CartPole-v1, trained weights")
    assert out.count("on ionq.qpu@aria-1: depth 14, 8 two-qubit gates") == 2


@pytest.mark.parametrize(("args", "message"), [
    (["ppo-mlp", "--env", "CartPole-v1"], "ppo-mlp has no circuit (policy MlpPolicy); expected a VQC agent"),
    (["ppo-vqc"], "an agent preset needs an environment; got 'ppo-vqc' without --env; try qrl diagnose circuit"),
    (["ppo-nonesuch", "--env", "CartPole-v1"], "unknown agent"),
    (["ppo-vqc", "--env", "CartPole-v1", "--shots", "0"], "expected --shots N with N >= 1; got 0"),
])
def test_diagnose_circuit_errors(capsys, args, message):
    assert main(["diagnose", "circuit", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_batched_simulator_and_torch_programs_share_one_definition_of_each_gate_update():
    from qrl.simulator import adjoint, gates, programs

    for name in ("apply_1q", "apply_2q", "rotations", "time_ordered_product", "schedule", "as_rotations", "PAULI_K"):
        assert getattr(adjoint, name) is getattr(gates, name)
        if name != "apply_2q":  # the programs apply constant gates on any number of wires (apply_kq -> apply_2q)
            assert getattr(programs, name) is getattr(gates, name)
    assert programs.apply_kq is gates.apply_kq
