"""Circuit definitions: closed forms for small circuits, spec validation, shapes and counts."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl.circuits import CircuitSpec, HardwareEfficient, StronglyEntangling, zz_groups
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
        ({"n_layers": 0}, "n_layers must be a positive integer; got 0"),
        ({"n_qubits": 2.5}, "n_qubits must be a positive integer; got 2.5"),
    ],
)
def test_spec_errors_name_the_problem_and_fix(kwargs, message):
    with pytest.raises(QRLError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CircuitSpec(**kwargs)
