"""Circuit definitions: closed forms for small circuits, spec validation, shapes and counts."""

from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl.circuits import (
    ANSATZE,
    OBS_MAPS,
    READOUTS,
    CircuitSpec,
    HardwareEfficient,
    StronglyEntangling,
    Unentangled,
    binary_code,
    n_bits,
    summary,
    zz_groups,
)
from qrl.errors import QRLError
from qrl.nn import VQC

TOL = 1e-10


def _run(spec: CircuitSpec, angles, weights, device: str) -> np.ndarray:
    vqc = VQC(spec, device=device).double()
    with torch.no_grad():
        vqc.weights.copy_(torch.as_tensor(weights, dtype=torch.float64))
        a = torch.as_tensor(angles, dtype=torch.float64)
        return vqc.backend(a, vqc.weights).numpy()


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_one_qubit_closed_form(device):
    # RX(x) RY(a) RZ(b) |0>:  <Z> = cos(x) cos(a)  (RZ does not change <Z>)
    spec = CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1)
    x = np.array([0.0, 0.3, -1.2, 2.5])
    a, b = 0.7, -0.4
    out = _run(spec, x.reshape(-1, 1, 1), [[[a, b]]], device)
    np.testing.assert_allclose(out[:, 0], np.cos(x) * np.cos(a), atol=TOL, rtol=0)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_one_qubit_two_layers_reuploading(device):
    # Layer 1: RX(x1) RY(a1) RZ(b1); layer 2: RX(x2) RY(a2) RZ(b2). Compare with 2x2 matrices.
    spec = CircuitSpec(n_qubits=1, n_layers=2, n_inputs=1, n_outputs=1)
    rng = np.random.default_rng(0)
    angles = rng.uniform(-3, 3, size=(5, 2, 1))
    w = rng.uniform(-3, 3, size=(2, 1, 2))

    def rx(t):
        return np.array([[np.cos(t / 2), -1j * np.sin(t / 2)], [-1j * np.sin(t / 2), np.cos(t / 2)]])

    def ry(t):
        return np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]])

    def rz(t):
        return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])

    expected = []
    for b in range(5):
        psi = np.array([1, 0], dtype=complex)
        for layer in range(2):
            psi = rz(w[layer, 0, 1]) @ ry(w[layer, 0, 0]) @ rx(angles[b, layer, 0]) @ psi
        expected.append(abs(psi[0]) ** 2 - abs(psi[1]) ** 2)
    out = _run(spec, angles, w, device)
    np.testing.assert_allclose(out[:, 0], expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_two_qubit_closed_form_with_cz(device):
    # RX(x0) (x) RX(x1), then RY(a0) (x) RY(a1), RZ's, one CZ. CZ is diagonal so <Z0>, <Z1> and <Z0 Z1>
    # are those of the product state: cos(x_i) cos(a_i) and their product.
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(6, 1, 2))
    w = rng.uniform(-2, 2, size=(1, 2, 2))
    z = np.cos(x[:, 0, :]) * np.cos(w[0, :, 0])
    spec_z = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, n_outputs=2, readout="z")
    np.testing.assert_allclose(_run(spec_z, x, w, device), z, atol=TOL, rtol=0)
    spec_zz = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, n_outputs=1, readout="zz")
    np.testing.assert_allclose(_run(spec_zz, x, w, device)[:, 0], z[:, 0] * z[:, 1], atol=TOL, rtol=0)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_strongly_entangling_cnots(device):
    # RY(pi/2) on qubit 0, then a strongly entangling layer with identity rotations: on two qubits the
    # template applies CNOT(0, 1) then CNOT(1, 0), which maps |+>|0> to |0>|+>:
    # <Z0> = 1, <Z1> = 0, <Z0 Z1> = 0. With RY(pi) (|1>|0>): CNOT(0,1) -> |11>, CNOT(1,0) -> |01>.
    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=1, n_outputs=2, encoding="ry",
                       ansatz="strongly_entangling", readout="z")
    w = np.zeros((1, 2, 3))
    angles = np.array([math.pi / 2, math.pi]).reshape(2, 1, 1)
    np.testing.assert_allclose(_run(spec, angles, w, device), [[1.0, 0.0], [1.0, -1.0]], atol=TOL, rtol=0)
    spec_zz = spec.replace(readout="zz", n_outputs=1)
    np.testing.assert_allclose(_run(spec_zz, angles, w, device), [[0.0], [-1.0]], atol=TOL, rtol=0)


def test_qfunc_matches_pennylane_template_on_default_qubit():
    # The strongly entangling ansatz applied layer by layer equals the PennyLane template applied
    # at once when there is no encoding in between (data_reuploading off, zero angles).
    spec = CircuitSpec(n_qubits=3, n_layers=3, n_inputs=1, n_outputs=3, ansatz="strongly_entangling",
                       data_reuploading=False)
    w = np.random.default_rng(2).uniform(-3, 3, size=spec.weight_shape)
    dev = qml.device("default.qubit", wires=3)

    @qml.qnode(dev)
    def reference(weights):
        qml.StronglyEntanglingLayers(weights, wires=range(3))
        return [qml.expval(qml.PauliZ(i)) for i in range(3)]

    expected = np.array(reference(w))
    out = _run(spec, np.zeros((1, 1, 1)), w, "torch")[0]
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


def test_weight_shapes_and_parameter_count():
    assert HardwareEfficient.shape(5, 4) == (5, 4, 2)
    assert StronglyEntangling.shape(2, 3) == (2, 3, 3)
    assert Unentangled.shape(5, 4) == (5, 4, 3)
    spec = CircuitSpec(n_qubits=4, n_layers=5, n_inputs=4, n_outputs=2)
    # 40 rotation angles + 20 input scalings + 2 output weights
    assert spec.n_parameters() == 62
    vqc = VQC(spec)
    assert sum(p.numel() for p in vqc.parameters()) == 62
    frozen = spec.replace(input_scaling=False, output_scaling=False)
    assert frozen.n_parameters() == 40
    assert sum(p.numel() for p in VQC(frozen).parameters()) == 40


def test_zz_groups_partition():
    assert zz_groups(4, 2) == [[0, 1], [2, 3]]
    assert zz_groups(5, 2) == [[0, 1, 2], [3, 4]]
    assert zz_groups(3, 3) == [[0], [1], [2]]


def test_spec_is_picklable_and_frozen():
    spec = CircuitSpec(n_outputs=2, readout="zz")
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(AttributeError):
        spec.n_qubits = 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_inputs": 6}, "try n_qubits=6, or pre_layer=True"),
        ({"n_outputs": 5}, "try n_qubits=5, or post_layer=True"),
        ({"ansatz": "nope"}, "unknown ansatz 'nope'; expected one of hea, strongly_entangling"),
        ({"readout": "x"}, "unknown readout 'x'"),
        ({"encoding": "amplitude"}, "unknown encoding 'amplitude'"),
        ({"obs_map": "sigmoid"}, "unknown obs_map 'sigmoid'"),
        ({"obs_map": "basis", "encoding": "rz"}, "got encoding='rz', which leaves |0> unchanged up to a phase; "
                                                 "try encoding='rx'"),
        ({"input_scaling": "yes"}, "input_scaling must be true or false; got 'yes'"),
        ({"readout": "zz", "n_outputs": 5}, "readout 'zz' gives at most one output per qubit"),
        ({"n_layers": 0}, "n_layers must be a positive integer; got 0"),
        ({"n_qubits": 2.5}, "n_qubits must be a positive integer; got 2.5"),
    ],
)
def test_spec_errors_name_the_problem_and_fix(kwargs, message):
    with pytest.raises(QRLError, match=re.escape(message)):
        CircuitSpec(**kwargs)


# -- single-qubit matrices for closed forms ---------------------------------------------------------------


def _rx(t):
    return np.array([[np.cos(t / 2), -1j * np.sin(t / 2)], [-1j * np.sin(t / 2), np.cos(t / 2)]])


def _ry(t):
    return np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]])


def _rz(t):
    return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def _z(psi) -> float:
    return float(abs(psi[0]) ** 2 - abs(psi[1]) ** 2)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_unentangled_factorises_per_qubit(device):
    # Each qubit evolves alone: RX(x_l,i) then Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi), per
    # layer. <Z_i> is that qubit's 2x2 result, and every Z product is the product of single-qubit values.
    n, layers, batch = 3, 2, 4
    rng = np.random.default_rng(3)
    angles = rng.uniform(-3, 3, size=(batch, layers, n))
    w = rng.uniform(-3, 3, size=(layers, n, 3))
    z = np.empty((batch, n))
    for b in range(batch):
        for i in range(n):
            psi = np.array([1, 0], dtype=complex)
            for layer in range(layers):
                phi, theta, omega = w[layer, i]
                psi = _rz(omega) @ _ry(theta) @ _rz(phi) @ _rx(angles[b, layer, i]) @ psi
            z[b, i] = _z(psi)
    spec = CircuitSpec(n_qubits=n, n_layers=layers, n_inputs=n, n_outputs=n, ansatz="unentangled", readout="z")
    np.testing.assert_allclose(_run(spec, angles, w, device), z, atol=TOL, rtol=0)
    parity = spec.replace(readout="parity", n_outputs=2)
    expected = np.prod(z, axis=1)
    np.testing.assert_allclose(_run(parity, angles, w, device), np.stack([expected, -expected], 1), atol=TOL, rtol=0)
    zz = spec.replace(readout="zz", n_outputs=2)  # groups [0, 1] and [2]
    np.testing.assert_allclose(_run(zz, angles, w, device), np.stack([z[:, 0] * z[:, 1], z[:, 2]], 1),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_parity_readout_of_a_product_state_is_the_product_of_cosines(device):
    # RX(x_i) RY(a_i) RZ(b_i) per qubit, then a CZ ring (diagonal: Z expvals unchanged).
    # <Z_0 Z_1 Z_2> = prod_i cos(x_i) cos(a_i); output a reads (-1)^a times that, for any number of outputs.
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 2, size=(5, 1, 3))
    w = rng.uniform(-2, 2, size=(1, 3, 2))
    parity = np.prod(np.cos(x[:, 0, :]) * np.cos(w[0, :, 0]), axis=1)
    spec = CircuitSpec(n_qubits=3, n_layers=1, n_inputs=3, n_outputs=5, readout="parity")
    expected = parity[:, None] * np.array([1, -1, 1, -1, 1])[None, :]
    np.testing.assert_allclose(_run(spec, x, w, device), expected, atol=TOL, rtol=0)
    assert spec.observable_labels() == ["Z0 Z1 Z2", "-Z0 Z1 Z2", "Z0 Z1 Z2", "-Z0 Z1 Z2", "Z0 Z1 Z2"]


def test_parity_logits_start_as_plus_minus_one_policy():
    # Two actions, equal output weights: logits (w P, -w P), so pi(0|s) = sigmoid(2 w P) as with Jerbi's
    # w = (+1, -1); identical observables would give every state the uniform policy.
    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, n_outputs=2, readout="parity", output_scale_init=1.5)
    vqc = VQC(spec, device="torch", seed=0).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    logits = vqc(x).detach()
    p = vqc.expvals(x).detach()[:, 0]
    torch.testing.assert_close(logits, torch.stack([1.5 * p, -1.5 * p], 1), atol=1e-12, rtol=0)
    probs = torch.softmax(logits, -1)[:, 0]
    torch.testing.assert_close(probs, torch.sigmoid(3.0 * p), atol=1e-12, rtol=0)
    assert probs.std() > 1e-3  # the policy depends on the state


@pytest.mark.parametrize(
    ("ansatz", "rotations"), [("hea", 5 * 4 * 2), ("strongly_entangling", 5 * 4 * 3), ("unentangled", 5 * 4 * 3)]
)
@pytest.mark.parametrize(("obs_map", "input_scaling", "scalings"),
                         [("arctan", None, 20), ("basis", None, 0), ("basis", True, 20), ("bounds", False, 0)])
def test_parameter_counts_by_kind_match_the_module(ansatz, rotations, obs_map, input_scaling, scalings):
    spec = CircuitSpec(n_qubits=4, n_layers=5, n_inputs=4, n_outputs=2, ansatz=ansatz, obs_map=obs_map,
                       input_scaling=input_scaling)
    counts = spec.parameter_counts()
    assert counts == {"rotations": rotations, "input_scaling": scalings, "output_weights": 2,
                      "total": rotations + scalings + 2}
    bounds = dict(obs_low=[-1.0] * 4, obs_high=[1.0] * 4) if obs_map == "bounds" else {}
    vqc = VQC(spec, **bounds)
    assert sum(p.numel() for p in vqc.parameters()) == counts["total"] == spec.n_parameters()
    assert isinstance(vqc.input_scaling, torch.nn.Parameter) == (scalings > 0)


def test_basis_encoding_fixes_input_scaling_by_default():
    spec = CircuitSpec(obs_map="basis")
    assert spec.input_scaling is None and not spec.trains_input_scaling
    assert CircuitSpec().trains_input_scaling  # None means trainable for every other map
    assert CircuitSpec(obs_map="basis", input_scaling=True).trains_input_scaling
    assert not CircuitSpec(input_scaling=False).trains_input_scaling


def test_binary_code_is_the_index_in_binary():
    assert [n_bits(n) for n in (1, 2, 3, 4, 5, 16, 17, 64)] == [1, 1, 2, 2, 3, 4, 5, 6]
    code = binary_code([16])
    assert code.shape == (16, 4)
    for k in range(16):
        assert int("".join(str(int(b)) for b in code[k]), 2) == k
    # MultiDiscrete: one block per component, bits concatenated
    code = binary_code([3, 2])
    assert code.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_summary_names_every_part_and_counts():
    spec = CircuitSpec(n_qubits=4, n_layers=5, n_inputs=4, n_outputs=2, readout="parity")
    assert summary(spec) == "\n".join([
        "circuit:    4 qubits, 5 layers, data re-uploading (encoding in every layer)",
        "encoding:   RX(lambda[l, i] * arctan(x_i)) on qubit i, i < 4; lambda trainable, shape (5, 4)",
        "ansatz:     hea: RY-RZ on every qubit, then a CZ ring; weights shape (5, 4, 2)",
        "readout:    parity: out_0 = w_0 * <Z0 Z1 Z2 Z3>, out_1 = -w_1 * <Z0 Z1 Z2 Z3>; w trainable, init 1.0",
        "parameters: 40 rotations + 20 input scaling + 2 output weights = 62",
    ])
    basis = summary(CircuitSpec(n_qubits=4, n_layers=2, n_inputs=4, n_outputs=4, ansatz="unentangled",
                                obs_map="basis", data_reuploading=False, output_scaling=False))
    assert "encoding before the first layer only" in basis
    assert "RX(pi * b_i) on qubit i, i < 4; b_i in {0, 1}" in basis and "lambda fixed to 1" in basis
    assert "unentangled: Rot(phi, theta, omega) on every qubit, no two-qubit gates; weights shape (2, 4, 3)" in basis
    assert "w fixed to 1.0" in basis
    assert basis.endswith("parameters: 24 rotations + 0 input scaling + 0 output weights = 24")


@pytest.mark.parametrize("ansatz", list(ANSATZE))
@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("obs_map", OBS_MAPS)
def test_summary_total_is_the_modules_parameter_count(ansatz, readout, obs_map):
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=2, n_outputs=2, ansatz=ansatz, readout=readout,
                       obs_map=obs_map)
    bounds = dict(obs_low=[0.0, 0.0], obs_high=[1.0, 2.0]) if obs_map == "bounds" else {}
    if obs_map == "scale":
        bounds = dict(obs_scale=[1.0, 2.0])  # a buffer: no parameter
    total = sum(p.numel() for p in VQC(spec, **bounds).parameters())
    assert summary(spec).splitlines()[-1].endswith(f"= {total}")
    assert f"weights shape {spec.weight_shape}" in summary(spec)


def test_circuit_command_prints_the_summary(capsys):
    from qrl.cli import main

    assert main(["circuit", "--n-qubits", "3", "--n-layers", "2", "--n-outputs", "2", "--readout", "parity",
                 "--ansatz", "unentangled", "--no-input-scaling"]) == 0
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=2, readout="parity", ansatz="unentangled",
                       input_scaling=False)
    assert capsys.readouterr().out == summary(spec) + "\n"
    assert summary(spec).endswith("= 20")  # 2 * 3 * 3 rotations + 2 output weights
    assert main(["circuit", "--obs-map", "basis", "--encoding", "rz"]) == 2
    assert "try encoding='rx'" in capsys.readouterr().err
