"""The native Lightning path: values and gradients against lightning.qubit's QNode and default.qubit, fallbacks."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl.backends import PennyLaneQNode, make_backend
from qrl.backends import lightning as native_module
from qrl.backends.lightning import LightningStatevector, lightning_module
from qrl.circuits import CircuitSpec, custom_circuit
from qrl.errors import QRLError
from qrl.nn import VQC

F64_TOL = 1e-9  # both exact up to rounding (measured ~1e-15)
F32_TOL = 1e-4  # complex64 simulation against float64 references (measured ~1e-6)


class FunctionCircuit:
    """A circuit given as a function ``f(inputs, *weights)`` (TorchLayer's convention), for these tests."""

    def __init__(self, function, n_qubits: int, n_inputs: int, weight_shapes: dict):
        self.function, self.n_qubits, self.weight_shapes = function, n_qubits, weight_shapes
        self.input_shape = (n_inputs,)

    def qfunc(self):
        return self.function


def paulis_and_constants(inputs, weights, angles):
    """X/Y/Z observables and sums, every kind of constant gate, PhaseShift, Rot, computed angles."""
    qml.Hadamard(0)
    qml.SX(1)
    qml.T(2)
    qml.RX(torch.atan(inputs[..., 0]) * weights[0], wires=0)
    qml.Toffoli([0, 1, 2])
    qml.CY([2, 0])
    qml.IsingXX(0.4, wires=[1, 2])  # constant angle, no named kernel: applied as a matrix
    qml.QubitUnitary(qml.matrix(qml.Rot(0.1, 0.2, 0.3, wires=0)), wires=1)
    qml.PhaseShift(weights[1] * inputs[..., 1], wires=1)
    qml.Rot(weights[2], math.pi / 3, angles[0] + inputs[..., 0], wires=2)
    qml.CRX(angles[1], wires=[0, 2])
    qml.MultiRZ(inputs[..., 1] * angles[2], wires=[0, 1, 2])
    qml.SWAP([0, 1])
    qml.RY(torch.sin(weights[0]) - 0.5, wires=0)
    return [qml.expval(qml.PauliX(0)), qml.expval(0.5 * qml.PauliY(1) @ qml.PauliX(2) - 0.25 * qml.PauliZ(0)),
            qml.expval(qml.PauliZ(0) @ qml.PauliZ(1) @ qml.PauliY(2)), qml.expval(qml.Identity(0) + qml.PauliZ(2))]


def custom(n=3):
    return FunctionCircuit(paulis_and_constants, n, 2, {"weights": (3,), "angles": (3,)})


def library(name: str, n: int = 3):
    return custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=2, obs_map="identity")


CIRCUITS = {
    "default-4x5": lambda: CircuitSpec(n_qubits=4, n_layers=5, n_inputs=4, n_outputs=2),
    "ry-strongly-zz": lambda: CircuitSpec(n_qubits=3, n_layers=2, n_inputs=2, n_outputs=2, encoding="ry",
                                          ansatz="strongly_entangling", readout="zz"),
    "rz-unentangled-parity": lambda: CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=1, encoding="rz",
                                                 ansatz="unentangled", readout="parity", data_reuploading=False),
    **{name: (lambda name=name: library(name)) for name in
       ("jerbi_skolik", "hsiao", "meyer_iqp", "chen_vqdqn", "lockwood_si")},
    "paulis-and-constants": custom,
}


def sample(spec, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed + batch)
    inputs = (torch.rand(batch, *spec.input_shape, generator=gen, dtype=torch.float64) - 0.5) * 4
    weights = [(torch.rand(s, generator=gen, dtype=torch.float64) - 0.5) * 6 for s in spec.weight_shapes.values()]
    return inputs, weights


def values_and_grads(backend, inputs, weights, cotangent, dtype=torch.float64):
    leaves = [t.to(dtype).clone().requires_grad_(True) for t in (inputs, *weights)]
    out = backend(*leaves)
    grads = torch.autograd.grad((out * cotangent.to(dtype)).sum(), leaves)
    return [out.detach(), *grads]


def per_sample(backend, inputs, weights, cotangent):
    """:func:`values_and_grads` one sample at a time (lightning.qubit's adjoint Jacobian of a broadcast
    MultiRZ comes back with the wrong shape), summed over samples like a batch."""
    parts = [values_and_grads(backend, inputs[b:b + 1], weights, cotangent[b:b + 1]) for b in range(len(inputs))]
    return [torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
            *[sum(p[k] for p in parts) for k in range(2, len(parts[0]))]]


def qnode_backend(spec, device: str, diff_method: str):
    return PennyLaneQNode(spec, qml.device(device, wires=spec.n_qubits), diff_method=diff_method, native=False)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("name", list(CIRCUITS))
def test_native_matches_lightning_qnode_and_default_qubit(name, batch):
    spec = CIRCUITS[name]()
    backend = make_backend(spec, "lightning.qubit")
    assert isinstance(backend.native, LightningStatevector), backend.native_refusal
    inputs, weights = sample(spec, batch)
    cot = torch.randn(batch, backend.native.n_outputs, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    refs = {"lightning.qubit adjoint": per_sample(qnode_backend(spec, "lightning.qubit", "adjoint"),
                                                  inputs, weights, cot),
            "default.qubit backprop": values_and_grads(qnode_backend(spec, "default.qubit", "backprop"),
                                                       inputs, weights, cot)}
    for dtype, tol in ((torch.float64, F64_TOL), (torch.float32, F32_TOL)):
        got = values_and_grads(backend, inputs, weights, cot, dtype)
        assert got[0].dtype == dtype
        for ref_name, ref in refs.items():
            for what, g, r in zip(["values", "d inputs", *spec.weight_shapes], got, ref, strict=True):
                np.testing.assert_allclose(g.double().numpy(), r.numpy(), atol=tol, rtol=0,
                                           err_msg=f"{what} against {ref_name} in {dtype}")


def test_recomputed_states_give_the_same_gradients(monkeypatch):
    """Above KEEP_STATES_BYTES the backward recomputes each sample's state instead of keeping it;
    a zero cotangent row gets a zero gradient without an adjoint sweep."""
    spec = custom()
    inputs, weights = sample(spec, 4)
    cot = torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cot[2] = 0.0
    kept = values_and_grads(make_backend(spec, "lightning.qubit"), inputs, weights, cot)
    monkeypatch.setattr(native_module, "KEEP_STATES_BYTES", 0)
    recomputed = values_and_grads(make_backend(spec, "lightning.qubit"), inputs, weights, cot)
    for k, r in zip(kept, recomputed, strict=True):
        np.testing.assert_allclose(r.numpy(), k.numpy(), atol=1e-12, rtol=0)
    assert torch.all(kept[1][2] == 0)


def test_vqc_on_lightning_runs_natively_and_pickles():
    spec = CircuitSpec(n_outputs=2)
    vqc = VQC(spec, device="lightning.qubit", seed=0)
    assert vqc.backend.native is not None
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    out = vqc(x)
    out.sum().backward()
    assert out.shape == (6, 2) and vqc.weights.grad is not None
    twin = pickle.loads(pickle.dumps(vqc))
    torch.testing.assert_close(twin(x), out, atol=1e-6, rtol=0)
    reference = VQC(spec, device="lightning.qubit:qnode", seed=0)
    assert reference.backend.native is None
    torch.testing.assert_close(reference(x), out, atol=1e-5, rtol=0)


def _totals(backend, inputs, weights, grad: bool) -> dict:
    with qml.Tracker(backend.device) as tracker:
        if grad:
            backend(inputs, *weights).sum().backward()
        else:
            with torch.no_grad():
                backend(inputs, *weights)
    return dict(tracker.totals)


def test_tracker_counts_native_work_and_no_grad_does_no_derivative_work():
    spec = CircuitSpec(n_outputs=2)
    backend = make_backend(spec, "lightning.qubit")
    inputs, weights = sample(spec, 8)
    weights = [w.requires_grad_(True) for w in weights]
    totals = _totals(backend, inputs, weights, grad=False)
    assert totals.get("executions") == 8 and totals.get("batches") == 1 and not totals.get("vjps")
    totals = _totals(backend, inputs, weights, grad=True)
    assert totals.get("vjps") == 8 and totals.get("vjp_batches") == 1


def born(inputs, input_scaling, weights):
    qml.RX(input_scaling[0] * inputs[..., 0], wires=0)
    qml.RY(weights[0], wires=1)
    qml.CNOT([0, 1])
    return qml.probs(wires=[0, 1])


def hermitian(inputs, weights):
    qml.RX(inputs[..., 0], wires=0)
    qml.RY(weights[0], wires=0)
    return [qml.expval(qml.Hermitian(np.array([[1.0, 0.5], [0.5, -1.0]]), wires=0))]


def untraceable(inputs, weights):
    qml.RX(inputs[..., 0], wires=0)
    qml.RY(float(weights.detach()[0]), wires=0)  # a Python number: the tracer cannot follow it
    return [qml.expval(qml.PauliZ(0))]


@pytest.mark.parametrize(("make", "options", "why"), [
    (lambda: CircuitSpec(n_outputs=2), {"shots": 20_000}, "finite shots"),
    (lambda: CircuitSpec(n_outputs=2), {"diff_method": "parameter-shift"}, "diff_method='parameter-shift'"),
    # qml.probs: differentiated by parameter-shift (Lightning's adjoint method cannot), so the QNode runs
    (lambda: FunctionCircuit(born, 2, 1, {"input_scaling": (1,), "weights": (1,)}), {}, "parameter-shift"),
    (lambda: library("born_parity", 2), {}, "parameter-shift"),
    (lambda: FunctionCircuit(hermitian, 1, 1, {"weights": (1,)}), {}, "qml.expval of Pauli sums only"),
    (lambda: FunctionCircuit(untraceable, 1, 1, {"weights": (1,)}), {}, "cannot follow"),
])
def test_what_the_native_path_cannot_run_falls_back_to_the_qnode(make, options, why):
    spec = make()
    backend = make_backend(spec, "lightning.qubit", **options)
    assert backend.native is None and why in backend.native_refusal
    inputs, weights = sample(spec, 3)
    with torch.no_grad():
        out = backend(inputs, *weights)
        ref = qnode_backend(spec, "default.qubit", "backprop")(inputs, *weights)
    tol = 0.05 if "shots" in options else F64_TOL  # 20k shots: standard error <= 0.007
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=tol, rtol=0)


def test_native_true_raises_when_the_circuit_cannot_run_natively():
    spec = FunctionCircuit(untraceable, 1, 1, {"weights": (1,)})
    with pytest.raises(QRLError, match=r"native Lightning path cannot run this circuit: .*cannot follow"):
        PennyLaneQNode(spec, qml.device("lightning.qubit", wires=1), native=True)


def test_device_name_variants():
    spec = CircuitSpec(n_outputs=2)
    assert make_backend(spec, "lightning.qubit:qnode").native is None
    with pytest.raises(QRLError, match=r"unknown Lightning variant 'lightning.qubit:fast'; expected"):
        make_backend(spec, "lightning.qubit:fast")


def test_missing_bindings_are_a_qrl_error():
    with pytest.raises(QRLError, match=r"no native Lightning path for 'default\.qubit'"):
        lightning_module("default.qubit")
    for name in ("lightning.gpu", "lightning.kokkos"):
        try:
            lightning_module(name)
        except QRLError as exc:
            assert "did not import" in str(exc)


def test_bindings_without_a_needed_method_fall_back(monkeypatch):
    """A Lightning build whose bindings lack a gate the circuit needs (GPU and Kokkos differ in places)
    runs the QNode rather than failing at the first call."""
    module = lightning_module("lightning.qubit")
    monkeypatch.delattr(module.StateVectorC64, "CZ")
    backend = make_backend(CircuitSpec(n_outputs=2), "lightning.qubit")
    assert backend.native is None and "StateVectorC64.CZ" in backend.native_refusal
