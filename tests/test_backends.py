"""Backends: the compiled torch path against lightning.qubit, Lightning pitfalls, device errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl.backends import PennyLaneQNode, TorchStatevector, make_backend
from qrl.backends.select import resolve_device_name
from qrl.circuits import ANSATZE, ENCODINGS, READOUTS, CircuitSpec
from qrl.errors import QRLError
from qrl.simulator.fusion import GROUP_EINSUM_MEMBERS, block_in_place, group_blocks, group_in_place, group_matrix

F64_TOL = 1e-9  # float64: both paths are exact up to rounding (measured ~1e-15)
F32_TOL = 1e-5  # float32 torch path against float64 Lightning


COMBOS = list(itertools.product(ENCODINGS, ANSATZE, READOUTS, (True, False)))


def random_specs(count: int = len(COMBOS), seed: int = 0) -> list[CircuitSpec]:
    """Random circuits covering every encoding x ansatz x readout x re-uploading (the default count covers
    each once), with random sizes."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(count):
        encoding, ansatz, readout, reupload = COMBOS[i % len(COMBOS)]
        n_qubits = int(rng.integers(1, 6))
        specs.append(CircuitSpec(
            n_qubits=n_qubits, n_layers=int(rng.integers(1, 4)), n_inputs=int(rng.integers(1, n_qubits + 1)),
            n_outputs=int(rng.integers(1, n_qubits + 1)), encoding=encoding, ansatz=ansatz, readout=readout,
            data_reuploading=reupload,
        ))
    return specs


def values_and_grads(backend, angles, weights, cotangent):
    a = angles.clone().requires_grad_(True)
    w = weights.clone().requires_grad_(True)
    out = backend(a, w)
    ga, gw = torch.autograd.grad((out * cotangent).sum(), (a, w))
    return out.detach(), ga, gw


SPECS = random_specs()
PROGRAMS = ("dense", "wires", "fused", "native")  # torch programs (qrl.backends.torch), each against Lightning's QNode


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.encoding}-{s.ansatz}-{s.readout}-q{s.n_qubits}")
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("program", PROGRAMS)
def test_torch_matches_lightning_float64(spec, batch, program):
    gen = torch.Generator().manual_seed(batch)
    angles = (torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64) - 0.5) * 6
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) - 0.5) * 6
    cot = torch.randn(batch, spec.n_outputs, generator=gen, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "lightning.qubit:qnode"), angles, weights, cot)
    got = values_and_grads(TorchStatevector(spec, program), angles, weights, cot)
    for r, g, name in zip(ref, got, ("values", "d/d angles", "d/d weights"), strict=True):
        assert g.dtype == torch.float64
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0, err_msg=name)


@pytest.mark.parametrize("spec", SPECS[::7], ids=lambda s: f"{s.encoding}-{s.ansatz}-{s.readout}-q{s.n_qubits}")
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("program", PROGRAMS)
def test_torch_float32_matches_lightning(spec, batch, program):
    gen = torch.Generator().manual_seed(7 + batch)
    angles = (torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64) - 0.5) * 6
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) - 0.5) * 6
    cot = torch.randn(batch, spec.n_outputs, generator=gen, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "lightning.qubit:qnode"), angles, weights, cot)
    got = values_and_grads(TorchStatevector(spec, program), angles.float(), weights.float(), cot.float())
    for r, g, name in zip(ref, got, ("values", "d/d angles", "d/d weights"), strict=True):
        assert g.dtype == torch.float32
        np.testing.assert_allclose(g.double().numpy(), r.numpy(), atol=F32_TOL, rtol=0, err_msg=name)


def test_lightning_float64_is_not_rounded_to_float32():
    # Regression: PennyLane's torch interface wrapped Lightning's float results in float32.
    spec = CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1)
    backend = make_backend(spec, "lightning.qubit")
    out = backend(torch.tensor([[[0.3]]], dtype=torch.float64, requires_grad=True),
                  torch.tensor([[[0.5, 0.7]]], dtype=torch.float64, requires_grad=True))
    assert out.dtype == torch.float64
    assert abs(out.item() - np.cos(0.3) * np.cos(0.5)) < 1e-14


def _tracker_totals(backend, angles, weights, grad: bool) -> dict:
    with qml.Tracker(backend.device) as tracker:
        if grad:
            backend(angles, weights).sum().backward()
        else:
            with torch.no_grad():
                backend(angles, weights)
    return dict(tracker.totals)


DERIVATIVE_KEYS = ("derivatives", "derivative_batches", "vjps", "vjp_batches", "execute_and_derivative_batches",
                   "execute_and_derivatives", "jvps", "jacobians")


def test_lightning_no_grad_forward_does_no_derivative_work():
    spec = CircuitSpec(n_outputs=2)
    backend = make_backend(spec, "lightning.qubit")
    assert isinstance(backend, PennyLaneQNode)
    angles = torch.rand(8, spec.n_encoding_layers, spec.n_inputs, dtype=torch.float64)
    weights = torch.rand(spec.weight_shape, dtype=torch.float64, requires_grad=True)
    totals = _tracker_totals(backend, angles, weights, grad=False)
    assert totals.get("executions") == 8
    assert not [k for k in DERIVATIVE_KEYS if totals.get(k)], totals
    # ...while a forward + backward does derivative work (so the check above can fail).
    totals = _tracker_totals(backend, angles, weights, grad=True)
    assert [k for k in DERIVATIVE_KEYS if totals.get(k)], totals


def test_lightning_uses_one_execute_per_batch():
    spec = CircuitSpec(n_outputs=2)
    backend = make_backend(spec, "lightning.qubit")
    with qml.Tracker(backend.device) as tracker, torch.no_grad():
        backend(torch.rand(16, spec.n_encoding_layers, spec.n_inputs), torch.rand(spec.weight_shape))
    assert tracker.totals["batches"] == 1


def test_torch_backend_follows_weight_device_and_dtype():
    spec = CircuitSpec(n_outputs=2)
    backend = make_backend(spec, "torch")
    assert isinstance(backend, TorchStatevector)
    out = backend(torch.rand(3, 5, 4), torch.rand(spec.weight_shape))
    assert out.shape == (3, 2) and out.dtype == torch.float32


def test_auto_picks_the_native_kernel_for_small_circuits():
    """The stored crossovers measured the native kernel fastest at 4 qubits (4.3x-11x on `hea` at 4-8 qubits)."""
    from qrl.simulator import native

    assert resolve_device_name("auto", CircuitSpec()) == ("torch:native" if native.available() else "torch")
    assert resolve_device_name("lightning.qubit", CircuitSpec()) == "lightning.qubit"


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("lightning.gpu", r"device 'lightning.gpu' is not installed; try pip install 'qrl\[gpu\]'"),
        ("braket.local.qubit", r"device 'braket.local.qubit' is not installed; try pip install amazon-braket"),
        ("no.such.device", r"unknown device 'no.such.device'; expected one of: auto, torch, .*lightning.qubit"),
        ("", r"device must be a name"),
    ],
)
def test_device_errors_name_the_fix(device, message):
    with pytest.raises(QRLError, match=message):
        make_backend(CircuitSpec(), device)


def test_missing_qiskit_plugin_names_the_hardware_extra(monkeypatch):
    from qrl.backends import select

    installed = [d for d in select.installed_devices() if not d.startswith("qiskit.")]
    monkeypatch.setattr(select, "installed_devices", lambda: installed)  # as without qrl[hardware]
    with pytest.raises(QRLError, match=r"device 'qiskit.aer' is not installed; try pip install 'qrl\[hardware\]'"):
        make_backend(CircuitSpec(), "qiskit.aer")


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_too_many_qubits_for_memory(device):
    spec = CircuitSpec(n_qubits=40, n_inputs=4)
    with pytest.raises(QRLError, match=r"n_qubits=40 needs 16 TiB for one state vector; this machine has .*; "
                                       r"try n_qubits <= \d+"):
        make_backend(spec, device)


def test_torch_backend_refuses_other_diff_methods():
    with pytest.raises(QRLError, match="the torch backend differentiates by backprop"):
        make_backend(CircuitSpec(), "torch", diff_method="parameter-shift")


def test_default_qubit_and_parameter_shift_agree_with_torch():
    spec = CircuitSpec(n_qubits=2, n_layers=2, n_inputs=2, n_outputs=2)
    angles = torch.rand(4, 2, 2, dtype=torch.float64)
    weights = torch.rand(spec.weight_shape, dtype=torch.float64)
    cot = torch.ones(4, 2, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "torch"), angles, weights, cot)
    got = values_and_grads(make_backend(spec, "default.qubit", diff_method="parameter-shift"), angles, weights, cot)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)


def test_auto_follows_measured_crossovers(monkeypatch):
    from qrl.backends import select

    monkeypatch.setattr(select, "auto_table", lambda: {4: "torch", 10: "lightning.qubit"})
    assert resolve_device_name("auto", CircuitSpec(n_qubits=2, n_inputs=2)) == "torch"
    assert resolve_device_name("auto", CircuitSpec(n_qubits=9, n_inputs=4)) == "torch"
    assert resolve_device_name("auto", CircuitSpec(n_qubits=10, n_inputs=4)) == "lightning.qubit"
    monkeypatch.setattr(select, "auto_table", lambda: {4: "torch", 10: "torch"})
    assert resolve_device_name("auto", CircuitSpec(n_qubits=10, n_inputs=4)) == "torch"
    assert resolve_device_name("auto", CircuitSpec(n_qubits=11, n_inputs=4)) == "torch"  # unmeasured: as at 10
    monkeypatch.setattr(select, "auto_table", lambda: {})
    assert resolve_device_name("auto", CircuitSpec(n_qubits=20, n_inputs=4)) == "lightning.qubit"


class _CustomSpec(CircuitSpec):
    """A spec whose circuit is given directly, to test what the compiler does with any qfunc."""

    def qfunc(self):
        return type(self).body


def _custom(body, **kwargs):
    cls = type("Spec", (_CustomSpec,), {"body": staticmethod(body)})
    return cls(**kwargs)


@pytest.mark.parametrize("program", PROGRAMS)
def test_constant_gates_and_constant_angles_compile_exactly(program):
    import math

    def body(angles, weights):
        qml.Hadamard(wires=0)
        qml.RZ(0.3, wires=0)  # a constant angle
        qml.RX(angles[..., 0, 0], wires=0)
        qml.S(wires=1)
        qml.CNOT(wires=[0, 1])
        qml.PhaseShift(weights[0, 1, 1], wires=1)
        qml.Rot(weights[0, 0, 0], math.pi / 3, weights[0, 1, 0], wires=1)
        qml.SWAP(wires=[0, 1])
        qml.RY(weights[0, 0, 1], wires=0)
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(0) @ qml.PauliZ(1))]

    spec = _custom(body, n_qubits=2, n_layers=1, n_inputs=1, n_outputs=2)
    gen = torch.Generator().manual_seed(5)
    angles = torch.rand(6, 1, 1, generator=gen, dtype=torch.float64) * 3
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 3
    cot = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, cot)
    got = values_and_grads(TorchStatevector(spec, program), angles, weights, cot)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)


@pytest.mark.parametrize("program", ["wires", "adjoint", "fused"])
def test_permutation_gates_above_the_gather_size_are_copied_a_slice_at_a_time(program, monkeypatch):
    """Above PERMUTE_MAX_QUBITS (lowered here to 2) runs of gates that permute basis states (with phases: CY, a
    controlled phase flip) become ``("mono", ...)`` steps, each gate one copy of the state: Lightning's values and
    gradients, by autograd (a backward that is itself such a run) and by the adjoint method."""
    from qrl.simulator import programs

    monkeypatch.setattr(programs, "PERMUTE_MAX_QUBITS", 2)

    def body(angles, weights):
        for w in range(4):
            qml.RY(angles[..., 0, w], wires=w)
        qml.CNOT(wires=[3, 0])
        qml.CY(wires=[1, 3])
        qml.Toffoli(wires=[2, 0, 3])
        qml.RX(weights[0, 0, 0], wires=0)
        qml.RZ(weights[0, 1, 0], wires=2)
        qml.CSWAP(wires=[0, 3, 1])
        qml.SWAP(wires=[2, 1])
        qml.PauliY(wires=3)
        qml.CNOT(wires=[0, 2])
        qml.CNOT(wires=[2, 1])
        qml.RY(weights[0, 2, 1], wires=1)
        qml.RX(weights[0, 3, 1], wires=3)
        return [qml.expval(qml.PauliZ(w)) for w in (0, 2, 3)] + [qml.expval(qml.PauliX(1) @ qml.PauliY(3))]

    spec = _custom(body, n_qubits=4, n_layers=1, n_inputs=4, n_outputs=4)
    gen = torch.Generator().manual_seed(11)
    angles = torch.rand(6, 1, 4, generator=gen, dtype=torch.float64) * 6 - 3
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 6 - 3
    cot = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, cot)
    backend = TorchStatevector(spec, program)
    steps = [step[0] for step in backend._impl._program]
    assert "perm" not in steps and (program == "fused" or steps.count("mono") >= 2), steps
    for r, g in zip(ref, values_and_grads(backend, angles, weights, cot), strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    f32 = values_and_grads(backend, angles.float(), weights.float(), cot.float())
    for r, g in zip(ref, f32, strict=True):
        np.testing.assert_allclose(g.double().numpy(), r.numpy(), atol=F32_TOL, rtol=0)


@pytest.mark.parametrize("max_elements", [2**18, 16])
def test_chunk_overlap_sums_products_over_the_other_wires_in_each_of_its_forms(max_elements, monkeypatch):
    """``chunk_overlap(mu, psi, first, dim)`` (the adjoint method's gradient of a chunk's matrix, conjugated) equals
    ``einsum`` for every chunk of 1-4 wires on 9 qubits, batch 3, complex128: the first wires' product, the last
    wires' with the trace over the wires after, the broadcast per-row products and (the bound lowered to 16 results)
    those products slice by slice; and the block overlap on adjacent and distant pairs."""
    from qrl.simulator import gates
    from qrl.simulator.fusion import block_overlap, block_view

    monkeypatch.setattr(gates, "OVERLAP_MAX_ELEMENTS", max_elements)
    n, gen = 9, torch.Generator().manual_seed(370)
    mu, psi = (torch.randn(3, 2**n, generator=gen, dtype=torch.complex128) for _ in range(2))
    for k in range(1, 5):
        for first in range(n - k + 1):
            view = (3, 2**first, 2**k, -1)
            ref = torch.einsum("baic,bajc->bij", mu.view(view), psi.view(view))
            got = gates.chunk_overlap(mu, psi, first, 2**k)
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-10, rtol=0, err_msg=f"{first}, {k} wires")
    for pair in ((0, 1), (3, 4), (7, 8), (0, 8), (2, 5)):
        ref = torch.einsum("bxiyjr,bxkylr->bijkl", block_view(mu, pair, n), block_view(psi, pair, n)).reshape(3, 4, 4)
        np.testing.assert_allclose(block_overlap(mu, psi, pair, n).numpy(), ref.numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("block", [16, 48, 2**18])
def test_a_matrix_per_sample_times_every_row_runs_per_sample_without_autograd_and_equals_the_broadcast_product(block):
    """``matmul_into`` of ``(B, 1, d, d) @ (B, rows, d, rest)`` one sample at a time (the bounds of
    ``PER_SAMPLE_MIN_EXPANDED`` lowered to 0), over blocks of one, three (the last of two) or all eight rows
    (``PER_SAMPLE_BLOCK_ELEMENTS``), equals ``torch.matmul``'s broadcast product, into a new tensor and into ``out``;
    the same size at the default bounds, or with a gradient recorded, or off the CPU, stays one broadcast product."""
    from qrl.simulator import gates

    gen = torch.Generator().manual_seed(372)
    a = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.complex128)
    b = torch.randn(3, 8, 4, 5, generator=gen, dtype=torch.complex128)
    ref = torch.matmul(a, b)
    assert not gates.per_sample_product(a, b)  # 384 expanded elements: under the default bound
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gates, "PER_SAMPLE_MIN_EXPANDED", 0)
        patch.setattr(gates, "PER_SAMPLE_MIN_AMPLITUDES", 0)
        patch.setattr(gates, "PER_SAMPLE_BLOCK_ELEMENTS", block)
        assert gates.per_sample_product(a, b)
        out = torch.zeros(3, 8 * 4 * 5, dtype=torch.complex128)
        for got in (gates.matmul_into(a, b), gates.matmul_into(a, b, out)):
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-12, rtol=0)
        np.testing.assert_allclose(out.view(ref.shape).numpy(), ref.numpy(), atol=1e-12, rtol=0)
        assert not gates.per_sample_product(a.requires_grad_(), b)  # autograd records one product
        assert not gates.per_sample_product(a[:1].detach(), b[:1, :1])  # one row: nothing to broadcast over
        # measured on the CPU only: tensors elsewhere (the meta device standing in for a GPU) keep the broadcast
        assert not gates.per_sample_product(a.detach().to("meta"), b.to("meta"))
        patch.setattr(gates, "PER_SAMPLE_DEVICES", ("cpu", "meta"))
        assert gates.per_sample_product(a.detach().to("meta"), b.to("meta"))


def test_a_run_of_permutation_gates_has_a_second_derivative():
    """:class:`MonomialRun`'s backward is itself a run (the inverse), so gradcheck and gradgradcheck hold: CNOT, CY
    (phases), Toffoli, on wires in either order."""
    from qrl.simulator.gates import MonomialRun, inverse_monomials, monomial_gate

    cy = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, -1j], [0, 0, 1j, 0]])
    toffoli = np.eye(8, dtype=complex)[[0, 1, 2, 3, 4, 5, 7, 6]]
    run = (monomial_gate((3, 0), np.eye(4, dtype=complex)[[0, 1, 3, 2]]), monomial_gate((1, 4), cy),
           monomial_gate((2, 4, 0), toffoli))
    x = torch.randn(3, 32, dtype=torch.complex128, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def f(t):
        return MonomialRun.apply(t, run, inverse_monomials(run), 5)

    assert torch.autograd.gradcheck(f, (x,)) and torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("ansatz", ["hea", "strongly_entangling"])
def test_runs_without_autograd_write_into_two_buffers_and_the_adjoint_method_into_three(ansatz, monkeypatch):
    """The memory of a run into reused buffers: a forward without autograd allocates two state batches, however many
    steps (a chunk's product, a diagonal, copies of permutation gates), the adjoint method's backward three for its two
    states; buffers are made only from ``REUSE_MIN_BYTES`` (lowered here), never under autograd."""
    from qrl.simulator import programs

    made = []

    class Counted(programs.StateBuffers):
        def other(self, *held):
            out = super().other(*held)
            made.append((self, out.untyped_storage().data_ptr()))  # self kept: ids and addresses stay distinct
            return out

    monkeypatch.setattr(programs, "PERMUTE_MAX_QUBITS", 2)
    monkeypatch.setattr(programs, "StateBuffers", Counted)
    spec = CircuitSpec(n_qubits=9, n_layers=3, n_inputs=9, ansatz=ansatz)
    backend = TorchStatevector(spec, "adjoint")
    angles = torch.rand(4, *spec.input_shape, generator=torch.Generator().manual_seed(3)) * 3
    weights = torch.rand(spec.weight_shape, generator=torch.Generator().manual_seed(4), requires_grad=True)

    def distinct():
        per_run: dict = {}
        for run, buffer in made:
            per_run.setdefault(run, set()).add(buffer)
        return sorted(len(b) for b in per_run.values())

    backend(angles, weights).sum().backward()
    assert made == []  # 4 samples of 9 qubits in complex64: 16 KiB, under REUSE_MIN_BYTES
    monkeypatch.setattr(programs, "REUSE_MIN_BYTES", 0)
    with torch.no_grad():
        backend(angles, weights)
    assert distinct() == [2]
    made.clear()
    backend(angles, weights).sum().backward()
    assert distinct() == [2, 3]  # the forward, then the backward
    made.clear()
    TorchStatevector(spec, "wires")(angles, weights).sum().backward()  # autograd: new tensors
    assert made == []


def test_buffers_go_back_to_a_pool_that_keeps_one_size_and_never_the_states_a_call_returns(monkeypatch):
    """Across calls (``REUSE_MIN_BYTES`` lowered to 0, the pool emptied first): the second forward + backward of the
    adjoint program takes every buffer but one from the pool (the forward's returned state stays out: it is saved for
    the backward), and two forwards before either backward keep their states and gradients (against autograd on the
    per-wire program). The pool holds at most three buffers, of one size: a call of another size, one with autograd,
    one on another backend or one in or out of ``torch.inference_mode`` where the buffers were not empties it."""
    from qrl.simulator import gates, programs

    fresh = []
    take = gates.BufferPool.take

    def counted(self, numel, dtype, device):
        known = {b.untyped_storage().data_ptr() for b in self._free}
        out = take(self, numel, dtype, device)
        fresh.append(out.untyped_storage().data_ptr() not in known)
        return out

    monkeypatch.setattr(gates.BufferPool, "take", counted)
    monkeypatch.setattr(programs, "REUSE_MIN_BYTES", 0)
    programs.BUFFER_POOL.clear()
    spec = CircuitSpec(n_qubits=7, n_layers=3, n_inputs=7, ansatz="strongly_entangling")
    adjoint, wires = TorchStatevector(spec, "adjoint"), TorchStatevector(spec, "wires")
    gen = torch.Generator().manual_seed(371)
    a1, a2 = (torch.rand(4, *spec.input_shape, generator=gen, dtype=torch.float64) * 3 for _ in range(2))
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    state_bytes = 4 * 2**7 * 16
    for _ in range(2):
        fresh.clear()
        adjoint(a1, weights).sum().backward()
        assert programs.BUFFER_POOL.held_bytes() == 3 * state_bytes
    assert sorted(fresh) == [False] * 4 + [True]  # five buffers (two forward, three backward), one new: the one
    # the last call's forward returned stayed out of the pool
    expected = []
    for a in (a1, a2):
        out = wires(a, weights)
        expected.append((out.detach(), torch.autograd.grad(out.square().sum(), weights)[0]))
    outs = [adjoint(a, weights) for a in (a1, a2)]  # the second forward before the first backward
    for out, (value, _) in zip(outs, expected, strict=True):
        np.testing.assert_allclose(out.detach().numpy(), value.numpy(), atol=1e-10, rtol=0)
    for out, (_, grad) in zip(reversed(outs), reversed(expected), strict=True):
        got = torch.autograd.grad(out.square().sum(), weights)[0]
        np.testing.assert_allclose(got.numpy(), grad.numpy(), atol=1e-10, rtol=0)
    assert programs.BUFFER_POOL.held_bytes() == 3 * state_bytes
    with torch.no_grad():
        adjoint(a1[:3], weights)  # another size: the pool now holds one buffer of it
    assert programs.BUFFER_POOL.held_bytes() == 3 * 2**7 * 16
    wires(a1[:3], weights).sum().backward()  # autograd on a state batch of REUSE_MIN_BYTES or more
    assert programs.BUFFER_POOL.held_bytes() == 0
    for other in ("lightning.qubit", "default.qubit"):  # a call on another backend empties it too
        adjoint(a1, weights).sum().backward()
        assert programs.BUFFER_POOL.held_bytes() == 3 * state_bytes
        make_backend(spec, other)(a1, weights.detach())
        assert programs.BUFFER_POOL.held_bytes() == 0, other
    with torch.inference_mode():  # buffers made in inference mode are not handed to runs outside it, and back
        inference = adjoint(a1, weights.detach())
    assert programs.BUFFER_POOL.held_bytes() == state_bytes
    for _ in range(2):
        with torch.no_grad():
            np.testing.assert_allclose(adjoint(a1, weights).numpy(), inference.numpy(), atol=1e-12, rtol=0)
        with torch.inference_mode():
            np.testing.assert_allclose(adjoint(a1, weights).numpy(), inference.numpy(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("program", PROGRAMS)
def test_encoding_gates_anywhere_compile_exactly(program):
    """Several encoding gates on one wire, encoding after trainable and two-qubit gates, an input used
    twice, encoding inside ``Rot``: the dense program's phase layers must keep every wire's gate order."""

    def body(angles, weights):
        qml.RY(weights[0, 0, 0], wires=0)
        qml.RX(angles[..., 0, 0], wires=0)
        qml.RZ(angles[..., 0, 1], wires=0)
        qml.RY(angles[..., 0, 0], wires=1)
        qml.CNOT(wires=[0, 2])
        qml.RY(angles[..., 0, 2], wires=2)
        qml.Rot(angles[..., 0, 1], weights[0, 1, 0], angles[..., 0, 2], wires=1)
        qml.CZ(wires=[1, 2])
        qml.RX(weights[0, 2, 1], wires=2)
        qml.RX(angles[..., 0, 0], wires=2)
        qml.CRX(0.4, wires=[0, 1])
        qml.RZ(weights[0, 1, 1], wires=1)
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(1) @ qml.PauliZ(2)), qml.expval(qml.PauliZ(2))]

    spec = _custom(body, n_qubits=3, n_layers=1, n_inputs=3, n_outputs=3)
    gen = torch.Generator().manual_seed(11)
    angles = (torch.rand(5, 1, 3, generator=gen, dtype=torch.float64) - 0.5) * 6
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) - 0.5) * 6
    cot = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    ref = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, cot)
    got = values_and_grads(TorchStatevector(spec, program), angles, weights, cot)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)


def test_torch_program_choice():
    assert TorchStatevector(CircuitSpec()).program == "dense"
    assert TorchStatevector(CircuitSpec(n_qubits=8, n_inputs=8)).program == "wires"
    assert TorchStatevector(CircuitSpec(n_qubits=16, n_inputs=16, n_layers=1)).program == "wires"
    with pytest.raises(QRLError, match="expected one of 'dense', 'wires', 'adjoint', 'fused', 'fused-adjoint'"):
        TorchStatevector(CircuitSpec(), "fast")


def _meyer(n_qubits: int, n_layers: int):
    from qrl.circuits import custom_circuit

    return custom_circuit("meyer_iqp", n_qubits=n_qubits, n_inputs=n_qubits, n_layers=n_layers,
                          obs_map="identity", output_scaling=False)


def test_fused_blocks_are_chosen_where_they_remove_passes():
    """A ring of controlled rotations (Meyer et al.'s circuit) runs on two-qubit blocks: one pass per gate,
    where the unfused program makes 5 (three single-qubit steps and two CNOTs), and with the wire positions
    rotated so that every block is applied without a copy; by default three blocks on four neighbouring wires
    are one pass; the built-in ansatze, whose CZ ring is already one diagonal, stay unfused."""
    pairs = TorchStatevector(_meyer(10, 4), "fused-pairs")
    steps = [step[0] for step in pairs._impl._program]
    assert steps.count("block") == 40  # 10 blocks per layer, the Hadamards folded in
    assert pairs.passes() == 54  # and 14 rotations of the wire positions, each block then in place
    assert all(block_in_place(step[1], 10) for step in pairs._impl._program if step[0] == "block")
    meyer = TorchStatevector(_meyer(10, 4))  # the default: runs of three blocks as one 16 x 16 per sample
    assert meyer.program == "fused"
    program = meyer._impl._program
    groups = [step for step in program if step[0] == "group"]
    assert [len(step[3]) for step in groups] == [3] * 13 and [step[0] for step in program].count("block") == 1
    assert meyer.passes() == 28  # 13 groups, 1 block, 14 rotations: each group on the first four positions
    assert all(group_in_place(step[1], step[2], 10) for step in groups)
    assert TorchStatevector(_meyer(10, 4), "wires").passes() == 173  # 201, less 28 by the chunk products
    assert TorchStatevector(_meyer(16, 1)).program == "fused"  # its gradient chosen per call by memory
    for ansatz in sorted(ANSATZE):  # at 7 qubits `hea` would go fused if the choice counted groups: it does not
        for n in (7, 10):
            assert TorchStatevector(CircuitSpec(n_qubits=n, n_inputs=n, ansatz=ansatz)).program == "wires"


def test_blocks_are_grouped_on_neighbouring_wires_around_the_ring():
    """Consecutive blocks join a group while they cover at most four neighbouring wires (counted around the
    ring, each block's pair next to each other); a block on wires that are not neighbours, or any other step,
    ends the run; a block alone stays a block."""
    def block(a, b):
        return ("block", (a, b), [])

    steps = [block(3, 4), block(4, 5), block(0, 5), block(0, 1), block(1, 2), ("1q", {}), block(2, 3),
             block(0, 2), block(2, 3)]
    out = group_blocks(steps, 6)
    assert [(s[0], s[1]) for s in out] == [("group", (3, 4, 5, 0)), ("group", (0, 1, 2)), ("1q", {}),
                                           ("block", (2, 3)), ("block", (0, 2)), ("block", (2, 3))]
    assert out[0][2] == steps[:3] and out[1][2] == steps[3:5]
    assert [s[0] for s in group_blocks([block(0, 1), block(1, 2), block(0, 2)], 3)] == ["group", "block"]


@pytest.mark.parametrize("program", ["fused", "fused-adjoint"])
def test_grouped_blocks_compute_what_the_blocks_do(program):
    """Groups of blocks (one ``2**k x 2**k`` matrix per sample, on the first, middle or last positions) give the
    values and gradients of the blocks one by one, float64, Meyer et al.'s circuit at 9 and 13 qubits."""
    for n in (9, 13):
        spec = _meyer(n, 2)
        gen = torch.Generator().manual_seed(n)
        inputs = torch.rand(3, n, generator=gen, dtype=torch.float64) * 4 - 2
        weights = [torch.rand(s, generator=gen, dtype=torch.float64) * 4 - 2 for s in spec.weight_shapes.values()]
        cot = torch.randn(3, n, generator=gen, dtype=torch.float64)
        grouped = TorchStatevector(spec, program)
        assert any(step[0] == "group" for step in grouped._impl._program)
        results = []
        for run in (grouped, TorchStatevector(spec, "fused-pairs")):
            x, ws = inputs.clone().requires_grad_(True), [w.clone().requires_grad_(True) for w in weights]
            out = run(x, *ws)
            results.append([out.detach(), *torch.autograd.grad((out * cot).sum(), [x, *ws])])
        for g, r in zip(*results, strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("width, members", [(2, 3), (3, 5), (4, 3), (4, GROUP_EINSUM_MEMBERS + 3)])
def test_group_matrix_is_the_product_of_the_embedded_blocks(width, members):
    """group_matrix (one einsum over the blocks' shared wires, in pieces of GROUP_EINSUM_MEMBERS) equals the
    time-ordered product of each block embedded as ``I (x) m (x) I`` in ``2**width`` dimensions, per sample,
    float64 (random offsets: some wires of a piece untouched)."""
    rng = np.random.default_rng(width * 100 + members)
    offsets = tuple(int(o) for o in rng.integers(0, width - 1, size=members))
    mats = np.linalg.qr(rng.normal(size=(members, 3, 4, 4)) + 1j * rng.normal(size=(members, 3, 4, 4)))[0]  # unitary
    want = np.stack([np.eye(2**width, dtype=complex)] * 3)
    for m, off in zip(mats, offsets, strict=True):
        embedded = np.stack([np.kron(np.kron(np.eye(2**off), m[s]), np.eye(2 ** (width - off - 2))) for s in range(3)])
        want = embedded @ want
    got = group_matrix([torch.as_tensor(m) for m in mats], offsets, width)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12, rtol=0)


def test_constant_slots_are_folded_into_the_blocks_angles():
    """A block's constant gates (CNOTs, Hadamards, rotations by constant angles) are multiplied into its next slot
    with an angle: Meyer et al.'s blocks (a CRot decomposed into 5 rotations and 2 CNOTs, with Hadamards) take 6
    slots, not 10; the values are those of the unfused program (float64, checked at 1e-12)."""
    spec = _meyer(10, 4)
    fused = TorchStatevector(spec)
    assert len(fused._impl._block_kinds) == 6
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 10, generator=gen, dtype=torch.float64)
    ws = [torch.rand(s, generator=gen, dtype=torch.float64) for s in spec.weight_shapes.values()]
    np.testing.assert_allclose(fused(x, *ws).numpy(), TorchStatevector(spec, "wires")(x, *ws).numpy(), atol=1e-12)


def test_blocks_built_as_a_sum_of_terms_equal_the_slot_by_slot_product():
    """The blocks' ``sum_s t_s(h) C_s`` (cos/sin products times constant terms) gives the values and gradients of the
    slots multiplied one by one (float64, Meyer et al.'s circuit, angles outside [-pi, pi])."""
    spec = _meyer(6, 2)
    gen = torch.Generator().manual_seed(5)
    half = torch.rand(3, 6, 12, generator=gen, dtype=torch.float64) * 8 - 4
    cot = torch.randn(3, 12, 4, 4, generator=gen, dtype=torch.complex128)
    results = []
    for expanded in (True, False):
        program = TorchStatevector(spec, "fused")._impl
        assert (program._block_terms is not None) and program._block_terms.shape[:2] == (12, 2**6)
        if not expanded:
            program._block_terms = None
        h = half[:, :len(program._block_kinds), :program._n_blocks].clone().requires_grad_(True)
        out = program._block_matrices(h, torch.complex128)
        results.append((out.detach(), torch.autograd.grad((out * cot[:, :program._n_blocks].conj()).real.sum(), h)[0]))
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-12, rtol=0)


def test_group_members_are_a_view_where_they_step_evenly():
    """The blocks of a group position, blocks first: a strided view for evenly stepping indices (no copy), one
    gather otherwise, both equal to indexing."""
    from qrl.simulator.angles import TensorCache
    from qrl.simulator.programs import group_members

    blocks, cache = torch.randn(10, 3, 4, 4, dtype=torch.complex128), TensorCache()
    for index in ([1, 4, 7], [2], [0, 1, 5], [9, 3]):
        got = group_members(blocks, index, cache, ("k", tuple(index)))
        assert torch.equal(got, blocks[index])
        assert (got.data_ptr() == blocks[index[0]].data_ptr()) == (index in ([1, 4, 7], [2]))


def test_blocks_of_constant_gates_only_are_built_too():
    """A fused program whose only block has no gate with an angle (Hadamards around a CNOT) computes what the unfused
    program does (the blocks' sum of terms needs an angle; such blocks are built slot by slot)."""
    from qrl.circuits import custom_circuit, register_circuit

    @register_circuit("test_constant_block", replace=True)
    def constant_block(inputs, weights):
        qml.RX(inputs[..., 0], wires=0)
        qml.RY(weights[0], wires=0)
        qml.Hadamard(wires=1)
        qml.CNOT(wires=[1, 2])
        qml.Hadamard(wires=2)
        return [qml.expval(qml.PauliZ(i)) for i in range(3)]

    spec = custom_circuit("test_constant_block", n_qubits=3, n_inputs=1, weight_shapes={"weights": (1,)})
    fused = TorchStatevector(spec, "fused")
    assert fused._impl._n_blocks == 1 and fused._impl._block_terms is None
    x, w = torch.tensor([[0.3], [1.1]], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    np.testing.assert_allclose(fused(x, w).numpy(), TorchStatevector(spec, "wires")(x, w).numpy(), atol=1e-12)


@pytest.mark.parametrize("n", [4, 7, 10, 13])
def test_unfused_passes_are_counted_without_compiling(n):
    """cheaper_program chooses from unfused_passes, the steps alone: equal to the compiled program's passes on
    every built-in ansatz and Meyer et al.'s circuit (CZ-ring diagonals, CNOTs, controlled rotations; chunk
    products from 8 qubits)."""
    from qrl.simulator import WiresProgram, trace_circuit
    from qrl.simulator.programs import unfused_passes

    specs = [CircuitSpec(n_qubits=n, n_inputs=n, ansatz=a) for a in sorted(ANSATZE)] + [_meyer(n, 2)]
    for spec in specs:
        traced = trace_circuit(spec)
        program = WiresProgram(traced.gates, n, traced.angles.n_per_sample, traced.angles.n_shared)
        assert unfused_passes(traced.gates, n) == program.passes(), spec


def test_the_torch_program_weighs_a_block_applied_by_einsum_as_two_passes():
    """cheaper_program (``device="torch"`` above DENSE_MAX_QUBITS): a fused block that is not in place costs its pass
    and one more (a copy in and out), so the fused program is chosen for users' circuits whose blocks all copy where it
    ran 1.05x-2.71x faster (README, "Blocks applied by einsum weighed two passes"), and the circuits whose programs it
    did not change keep theirs (strongly_entangling, whose blocks copy too, unfused; Meyer et al.'s fused)."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl.circuits import custom_circuit
    from qrl.simulator import trace_circuit
    from qrl.simulator.fusion import block_in_place
    from qrl.simulator.programs import unfused_passes

    def spec(name, n):
        return custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=5, obs_map="identity", output_scaling=False)

    for name, n in (("long_crz", 9), ("long_crz", 13), ("long_crz", 15), ("brick_cz", 7), ("xx_yy_ring", 7)):
        fused = TorchStatevector(spec(name, n), "fused-pairs")._impl
        copies = sum(step[0] == "block" and not block_in_place(step[1], n) for step in fused._program)
        traced = trace_circuit(spec(name, n))
        # between the two weights: chosen with two passes per copying block, not with three
        assert fused.passes() + copies < unfused_passes(traced.gates, n) <= fused.passes() + 2 * copies, (name, n)
        assert TorchStatevector(spec(name, n)).program == "fused", (name, n)
    for n in (8, 12, 17):
        assert TorchStatevector(CircuitSpec(n_qubits=n, n_inputs=n, ansatz="strongly_entangling")).program == "wires"
        assert TorchStatevector(_meyer(n, 2)).program == "fused"


def test_iqp_template_keeps_the_unfused_program_by_its_blocks_counted_one_at_a_time():
    """README, "Five shapes with other gates": PennyLane's ``IQPEmbedding`` at 16 qubits, 532 passes unfused, 542 with
    its blocks counted one at a time (what cheaper_program compares), 278 as the fused program runs them, in groups;
    the unfused program is chosen (the fused one is faster at larger batches, slower at one sample)."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl.circuits import custom_circuit
    from qrl.simulator import WiresProgram, trace_circuit
    from qrl.simulator.programs import unfused_passes

    spec = custom_circuit("iqp_template", n_qubits=16, n_inputs=16, n_layers=5, obs_map="identity",
                          output_scaling=False)
    traced = trace_circuit(spec)
    sizes = (traced.gates, 16, traced.angles.n_per_sample, traced.angles.n_shared)
    one_at_a_time = WiresProgram(*sizes, fuse=True, group=False).cost()
    grouped = WiresProgram(*sizes, fuse=True).passes()
    assert (unfused_passes(traced.gates, 16), one_at_a_time, grouped) == (532, 542, 278)
    assert TorchStatevector(spec).program == "wires"


def test_fused_programs_match_default_qubit_at_sixteen_qubits():
    """Meyer et al.'s circuit (every gate data-dependent, blocks on every wire pair of the ring) at 16 qubits:
    the fused programs' values and gradients against default.qubit (backprop, one sample at a time), float64."""
    spec = _meyer(16, 1)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=16), interface="torch", diff_method="backprop")
    gen = torch.Generator().manual_seed(3)
    inputs = torch.rand(2, 16, generator=gen, dtype=torch.float64) * 4 - 2
    weights = [torch.rand(s, generator=gen, dtype=torch.float64) * 4 - 2 for s in spec.weight_shapes.values()]
    cot = torch.randn(2, 16, generator=gen, dtype=torch.float64)

    def outputs_and_grads(run):
        x, ws = inputs.clone().requires_grad_(True), [w.clone().requires_grad_(True) for w in weights]
        out = run(x, *ws)
        return [out.detach(), *torch.autograd.grad((out * cot).sum(), [x, *ws])]

    ref = outputs_and_grads(lambda x, *ws: torch.stack([torch.stack(qnode(row, *ws)) for row in x]))
    for program in ("fused", "fused-adjoint"):
        for r, g in zip(ref, outputs_and_grads(TorchStatevector(spec, program)), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0, err_msg=program)


@pytest.mark.parametrize("name", ["phase_gates", "toffoli_rot"])
def test_x_and_y_readouts_match_default_qubit_at_eighteen_qubits(name):
    """From LAZY_MIN_QUBITS, words with an X (``phase_gates``) or a Y (``toffoli_rot``) are read by PauliFlips, with no
    matrix: values and gradients on the torch program, its adjoint method and the kernel against default.qubit
    (backprop, one sample at a time), float64, one layer."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl.circuits import custom_circuit
    from qrl.simulator.readout import LAZY_MIN_QUBITS

    n = LAZY_MIN_QUBITS
    spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=1, obs_map="identity", output_scaling=False)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=n), interface="torch", diff_method="backprop")
    gen = torch.Generator().manual_seed(5)
    inputs = torch.rand(2, n, generator=gen, dtype=torch.float64) * 4 - 2
    weights = torch.rand(spec.weight_shapes["weights"], generator=gen, dtype=torch.float64) * 4 - 2
    cot = torch.randn(2, n, generator=gen, dtype=torch.float64)
    reference = values_and_grads(lambda x, w: torch.stack([torch.stack(qnode(row, w)) for row in x]), inputs,
                                 weights, cot)
    for program in (None, "adjoint", "native"):
        backend = TorchStatevector(spec, program)
        assert [column[0] for column in backend._readout._lazy] == ["pauli"] * n
        for r, g in zip(reference, values_and_grads(backend, inputs, weights, cot), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0, err_msg=f"{name} {program}")


def test_compiler_follows_arithmetic_on_parameters():
    def body(angles, weights):
        qml.RX(2 * angles[..., 0, 0] + torch.sin(weights[0, 0, 0]), wires=0)
        return [qml.expval(qml.PauliZ(0))]

    spec = _custom(body, n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1)
    angles = torch.tensor([[[0.3]], [[-1.1]]], dtype=torch.float64)
    weights = torch.full(spec.weight_shape, 0.7, dtype=torch.float64)
    want = torch.cos(2 * angles[:, 0, 0] + math.sin(0.7))
    np.testing.assert_allclose(TorchStatevector(spec)(angles, weights)[:, 0].numpy(), want.numpy(), atol=F64_TOL)


@pytest.mark.parametrize("angle", [
    lambda a, w: float(w[0, 0, 0]) * a[..., 0, 0],  # a weight read into Python: no longer followed
    lambda a, w: a[..., 0, 0] if float(a[0, 0, 0]) > 0 else -a[..., 0, 0],  # a branch on a value
])
def test_compiler_refuses_angles_it_cannot_follow(angle):
    def body(angles, weights):
        qml.RX(angle(angles, weights), wires=0)
        return [qml.expval(qml.PauliZ(0))]

    spec = _custom(body, n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1)
    with pytest.raises(QRLError, match="cannot follow"):
        make_backend(spec, "torch")


def test_dense_unitary_cache_follows_weight_updates():
    """No-grad calls reuse the weight unitaries; any change of the weights must be seen."""
    spec = CircuitSpec(n_outputs=2)
    f = TorchStatevector(spec, "dense")
    gen = torch.Generator().manual_seed(3)
    angles = torch.rand(8, spec.n_encoding_layers, spec.n_inputs, generator=gen)
    w = torch.nn.Parameter(torch.rand(spec.weight_shape, generator=gen) * 3)

    def fresh(weights):
        return TorchStatevector(spec, "dense")(angles, weights.detach().clone())

    with torch.no_grad():
        before = f(angles, w)
    torch.testing.assert_close(before, fresh(w))
    opt = torch.optim.SGD([w], lr=0.5)
    f(angles, w).sum().backward()  # grad path: not cached
    opt.step()
    with torch.no_grad():
        after_step = f(angles, w)
    assert not torch.allclose(before, after_step)
    torch.testing.assert_close(after_step, fresh(w))
    with torch.no_grad():  # as SB3's polyak_update: in place through .data (no version bump)
        w.data.mul_(0.5)
        after_polyak = f(angles, w)
    torch.testing.assert_close(after_polyak, fresh(w))
    assert not torch.allclose(after_polyak, after_step)
    w.data = torch.rand(spec.weight_shape, generator=gen)  # new storage, same Parameter object
    with torch.no_grad():
        torch.testing.assert_close(f(angles, w), fresh(w))
        other = w.detach().clone() + 1.0  # another tensor
        torch.testing.assert_close(f(angles, other), fresh(other))
        torch.testing.assert_close(f(angles, w), fresh(w))


@pytest.mark.parametrize("device", ["lightning.qubit", "default.qubit"])
def test_shot_estimates_agree_with_exact_values_within_4_standard_errors(device):
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=3, readout="z")
    gen = torch.Generator().manual_seed(4)
    angles = (torch.rand(16, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64) - 0.5) * 4
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) - 0.5) * 6
    shots = 4000
    with torch.no_grad():
        exact = make_backend(spec, "lightning.qubit")(angles, weights)
        estimate = make_backend(spec, device, shots=shots)(angles, weights)
    stderr = torch.sqrt((1 - exact**2).clamp_min(0) / shots)
    assert not torch.equal(estimate, exact)  # sampled, not exact
    assert ((estimate - exact).abs() <= 4 * stderr + 1e-12).all(), (estimate - exact).abs().max()


def test_shots_need_a_pennylane_device():
    with pytest.raises(QRLError, match="torch backend computes exact expectation values; shots=100 needs a PennyLane"):
        make_backend(CircuitSpec(), "torch", shots=100)
    with pytest.raises(QRLError, match="shots must be a positive integer"):
        make_backend(CircuitSpec(), "lightning.qubit", shots=0)


def test_parameter_shift_gradients_with_shots_estimate_the_exact_ones():
    """With shots the default gradient is parameter-shift (adjoint needs the state); each shifted circuit is
    sampled, so the estimate is noisy but unbiased: within 5 standard errors of the exact gradient."""
    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, n_outputs=1)
    gen = torch.Generator().manual_seed(2)
    angles = torch.rand(2, 1, 2, generator=gen, dtype=torch.float64)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64)
    _, _, exact = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, torch.ones(2, 1))
    backend = make_backend(spec, "lightning.qubit", shots=20000)
    assert backend.diff_method == "parameter-shift"
    _, _, estimate = values_and_grads(backend, angles, weights, torch.ones(2, 1))
    # each weight's gradient is (f(+) - f(-)) / 2 summed over 2 samples: standard error <= sqrt(2 * 2 / 4 / shots)
    assert ((estimate - exact).abs() <= 5 * (1.0 / 20000) ** 0.5).all(), (estimate - exact).abs().max()


def test_depolarizing_noise_scales_z_as_theory_predicts():
    """One qubit, RX(x) then (the ansatz) RY(w), RZ(v), each followed by a depolarizing channel of strength p:
    three channels scale the Bloch vector by (1 - 4p/3)^3, so <Z> = (1 - 4p/3)^3 <Z>_exact."""
    spec = CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1)
    gen = torch.Generator().manual_seed(1)
    angles = torch.rand(5, 1, 1, generator=gen, dtype=torch.float64) * 3
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 3
    p = 0.05
    with torch.no_grad():
        exact = make_backend(spec, "lightning.qubit")(angles, weights)
        noisy = make_backend(spec, "default.mixed", noise={"depolarizing": p})(angles, weights)
        flipped = make_backend(spec, "default.mixed", noise={"readout_bit_flip": p})(angles, weights)
    np.testing.assert_allclose(noisy.numpy(), ((1 - 4 * p / 3) ** 3 * exact).numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(flipped.numpy(), ((1 - 2 * p) * exact).numpy(), atol=1e-10, rtol=0)  # BitFlip on Z


@pytest.mark.parametrize(("device", "noise", "message"), [
    ("lightning.qubit", {"depolarizing": 0.01}, "noise needs a mixed-state simulator; got device 'lightning.qubit'"),
    ("default.mixed", {"thermal": 0.01}, "expected noise as channel=probability"),
    ("default.mixed", {"depolarizing": 1.5}, "probabilities in \\[0, 1\\]"),
])
def test_noise_errors_name_the_fix(device, noise, message):
    with pytest.raises(QRLError, match=message):
        make_backend(CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1), device, noise=noise)


def test_auto_device_with_shots_or_noise_is_a_device_that_can_run_them():
    # SB3's load drops `device` from the saved policy_kwargs, so a model trained with shots or noise
    # comes back on "auto": it must land on a backend that runs them, not on the exact torch path.
    from qrl.nn import VQC

    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, n_outputs=1)
    assert VQC(spec).device_name in ("torch:native", "torch")  # exact: the kernel (the torch program without cc)
    assert VQC(spec, shots=10).device_name == "lightning.qubit"
    assert VQC(spec, noise={"depolarizing": 0.01}).device_name == "default.mixed"


def test_device_snapshot_errors_name_the_fix():
    for module in ("qiskit_aer", "qiskit_ibm_runtime"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'qrl[hardware]')")
    with pytest.raises(QRLError, match="has 5 qubits; the circuit needs 6"):
        make_backend(CircuitSpec(n_qubits=6, n_layers=1, n_inputs=6, n_outputs=1), "qiskit.aer@FakeManilaV2", shots=8)
    with pytest.raises(QRLError, match=r"runs on qiskit\.aer"):
        make_backend(CircuitSpec(), "default.qubit@FakeManilaV2", shots=8)


def test_simulator_imports_point_one_way():
    # backends -> simulator -> circuits: the simulator imports only circuits, errors and itself from qrl.
    import ast
    from pathlib import Path

    import qrl.simulator

    for path in Path(qrl.simulator.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name == "qrl" or name.startswith("qrl."):
                    assert name.startswith(("qrl.circuits", "qrl.errors", "qrl.simulator")), (path.name, name)


@pytest.mark.parametrize("per_sample", [False, True])
def test_elementwise_and_matmul_forms_of_a_one_qubit_gate_agree(per_sample, monkeypatch):
    """apply_1q's two forms (matmul on a view; elementwise on the last wires of mid-sized batches) give the
    same values and gradients on every wire, at a size where the elementwise form is chosen."""
    from qrl.simulator import gates

    n, batch = 10, 64  # 2**16 amplitudes: inside the elementwise window
    gen = torch.Generator().manual_seed(0)
    state = torch.randn(batch, 2**n, dtype=torch.complex128, generator=gen)
    m = torch.randn(*((batch,) if per_sample else ()), 2, 2, dtype=torch.complex128, generator=gen)

    def run(wire):
        s, mm = state.clone().requires_grad_(True), m.clone().requires_grad_(True)
        out = gates.apply_1q(s, wire, mm, n)
        return [out.detach(), *torch.autograd.grad((out.abs() ** 2 * torch.arange(2**n)).sum(), (s, mm))]

    for wire in range(n):
        elementwise = run(wire)
        monkeypatch.setattr(gates, "ELEMENTWISE_MIN_STATE", 2**30)  # the matmul form everywhere
        matmul = run(wire)
        monkeypatch.undo()
        for a, b in zip(elementwise, matmul, strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("ansatz", sorted(ANSATZE))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("program", ["adjoint", "fused", "fused-adjoint", "native"])
def test_programs_equal_autograd_on_built_ins_at_twelve_qubits(ansatz, dtype, program):
    """``torch:adjoint`` (the per-wire program with an adjoint backward), the programs on fused two-qubit
    blocks and the native kernel against the autograd program: values and gradients, 12 qubits x 3 layers,
    batch 5, to 1e-9 in float64 and 1e-4 in float32."""
    spec = CircuitSpec(n_qubits=12, n_layers=3, n_inputs=12, n_outputs=3, ansatz=ansatz, readout="zz")
    gen = torch.Generator().manual_seed(2)
    angles = (torch.rand(5, 3, 12, generator=gen, dtype=torch.float64) * 4 - 2).to(dtype)
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 4 - 2).to(dtype)
    cot = torch.randn(5, 3, generator=gen, dtype=torch.float64).to(dtype)
    ref = values_and_grads(TorchStatevector(spec, "wires"), angles, weights, cot)
    got = values_and_grads(make_backend(spec, f"torch:{program}"), angles, weights, cot)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.detach().numpy(), r.detach().numpy(), atol=tol, rtol=0)


def test_adjoint_program_keeps_a_few_states():
    spec = CircuitSpec(n_qubits=12, n_layers=5, n_inputs=12, n_outputs=1)
    autograd, adjoint = TorchStatevector(spec, "wires"), TorchStatevector(spec, "adjoint")
    # autograd keeps a state batch per pass (20 here: 5 layers x (3 chunk products of 4 wires + 1 CZ ring));
    # the adjoint method about 4, whatever the depth
    assert (autograd._impl.saved_states(), adjoint._impl.saved_states()) == (20, 4)
    assert adjoint.gradient_bytes(8) < autograd.gradient_bytes(8) / 3
    with pytest.raises(QRLError, match="unknown torch program 'fast'"):
        make_backend(spec, "torch:fast")


def test_the_default_program_chooses_its_gradient_by_memory(monkeypatch):
    """The torch path's per-wire program differentiates by autograd while the states autograd keeps fit
    AUTOGRAD_MAX_BYTES, and by the adjoint method beyond: chosen per call from the batch and dtype (so a seeded
    run computes the same everywhere), with values and gradients equal to autograd's, and the memory estimate
    of the training check following the choice."""
    from qrl.simulator import programs

    spec = CircuitSpec(n_qubits=10, n_layers=3, n_inputs=10, n_outputs=2)
    f = TorchStatevector(spec)
    assert f.program == "wires" and f._impl.adjoint is None
    kept = f._impl.autograd_bytes(8, 16)  # complex128 at batch 8
    assert kept == int(programs.KEPT_OVERHEAD * (f.passes() + 2) * 8 * 16 * 2**10)
    monkeypatch.setattr(programs, "AUTOGRAD_MAX_BYTES", kept)
    assert (f.gradient_method(8, 16), f.gradient_method(9, 16), f.gradient_method(16, 8)) == (
        "autograd", "adjoint", "autograd")
    assert f.gradient_bytes(8, 16) == kept  # the training check's estimate follows the choice:
    assert f.gradient_bytes(9, 16) == int(programs.KEPT_OVERHEAD * (4 + 2) * 9 * 16 * 2**10)  # ~4 adjoint states
    adjoint_calls = []
    apply = programs.AdjointRun.apply
    monkeypatch.setattr(programs.AdjointRun, "apply", lambda *a: adjoint_calls.append(a[2].shape[0]) or apply(*a))
    gen = torch.Generator().manual_seed(3)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 4 - 2
    for batch in (8, 9):
        angles = torch.rand(batch, 3, 10, generator=gen, dtype=torch.float64) * 4 - 2
        cot = torch.randn(batch, 2, generator=gen, dtype=torch.float64)
        ref = values_and_grads(TorchStatevector(spec, "wires"), angles, weights, cot)
        got = values_and_grads(f, angles, weights, cot)
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=1e-9, rtol=0)
    assert adjoint_calls == [9]  # batch 8 ran autograd, batch 9 the adjoint method


def test_a_policy_trains_on_the_adjoint_program(tmp_path):
    from qrl.cli import main

    assert main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "256", "--device",
                 "torch:adjoint", "--out", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    assert (run / "model.zip").is_file()


@pytest.mark.parametrize("n_qubits", [9, 11, 16])
@pytest.mark.parametrize("program", ["wires", "adjoint"])
def test_chunk_kronecker_products_equal_single_wire_updates(monkeypatch, n_qubits, program):
    """A moment's wires applied in chunks of 4, each one Kronecker product (from the left on the first wires, in
    between, from the right on the last), against one 2x2 per wire: values and gradients of hea and strongly
    entangling layers, float64."""
    from qrl.simulator import programs

    for ansatz in ("hea", "strongly_entangling"):
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=2, n_inputs=4, n_outputs=3, ansatz=ansatz, readout="zz")
        gen = torch.Generator().manual_seed(n_qubits)
        angles = torch.rand(3, *spec.input_shape, generator=gen, dtype=torch.float64) * 4 - 2
        weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 4 - 2
        cot = torch.randn(3, 3, generator=gen, dtype=torch.float64)
        chunked = TorchStatevector(spec, program)
        firsts = {step[1][0] for step in chunked._impl._program if step[0] == "kron"}
        assert {0, n_qubits - programs.KRON_WIDTH} <= firsts and len(firsts) >= 3  # first, middle and last wires
        monkeypatch.setattr(programs, "KRON_MIN_QUBITS", 99)
        ref = values_and_grads(TorchStatevector(spec, program), angles, weights, cot)
        monkeypatch.undo()
        for r, g in zip(ref, values_and_grads(chunked, angles, weights, cot), strict=True):
            np.testing.assert_allclose(g.detach().numpy(), r.detach().numpy(), atol=1e-9, rtol=0)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_kron_chunk_equals_kron_wires_with_a_hand_written_backward(width):
    """The chunk products' Kronecker build: kron_wires' values to the bit, and gradients that pass torch's
    finite-difference check (complex128) and equal autograd's through kron_wires."""
    from qrl.simulator.gates import kron_chunk, kron_wires

    gen = torch.Generator().manual_seed(width)
    m = torch.randn(3, 2, width, 2, 2, generator=gen, dtype=torch.complex128, requires_grad=True)
    assert torch.equal(kron_chunk(m), kron_wires(m))
    assert torch.autograd.gradcheck(kron_chunk, (m,))
    cot = torch.randn(3, 2, 2**width, 2**width, generator=gen, dtype=torch.complex128)
    (ours,), (ref,) = (torch.autograd.grad(f(m), m, cot) for f in (kron_chunk, kron_wires))
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)


def test_moments_run_in_chunks_where_a_single_wire_would_be_slow():
    from qrl.simulator.programs import chunks, moment_parts

    assert chunks(7) == [(w,) for w in range(7)]
    assert chunks(9) == [(0, 1, 2), (3, 4), (5, 6, 7, 8)]  # never a single wire in the middle
    assert chunks(10) == [(0, 1, 2), (3, 4, 5), (6, 7, 8, 9)]
    assert chunks(12) == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    assert moment_parts(range(12), 12) == [("kron", (0, 1, 2, 3)), ("kron", (4, 5, 6, 7)), ("kron", (8, 9, 10, 11))]
    # a wire alone in its chunk keeps its 2x2 where 64 or more amplitudes follow it, not on the last wires
    assert moment_parts((1, 6, 11), 12) == [("1q", (1,)), ("kron", (4, 5, 6, 7)), ("kron", (8, 9, 10, 11))]


def test_auto_runs_rollout_sized_batches_where_the_small_batch_crossovers_say(monkeypatch):
    from qrl.backends import select
    from qrl.backends.dispatch import SMALL_BATCH_MAX, BatchDispatch
    from qrl.backends.torch import run_together

    spec = CircuitSpec(n_qubits=8, n_layers=2, n_inputs=4, n_outputs=2)
    monkeypatch.setattr(select, "auto_table", lambda: {4: "torch", 12: "torch"})
    monkeypatch.setattr(select, "tiny_batch_table", lambda: {})  # none stored: calls of 1-2 samples as of 3-16
    monkeypatch.setattr(select, "small_batch_table", lambda: {4: "lightning.qubit"})
    assert isinstance(make_backend(CircuitSpec(n_qubits=6, n_inputs=4), "auto").cpu, BatchDispatch)  # at every size
    monkeypatch.setattr(select, "small_batch_table", lambda: {4: "torch", 12: "torch"})
    one = make_backend(spec, "auto")  # one backend for every batch that fits where both tables agree
    assert isinstance(one.for_batch(1), TorchStatevector) and all(one.for_batch(b) is one.for_batch(1) for b in (8, 64))
    monkeypatch.setattr(select, "small_batch_table", lambda: {4: "lightning.qubit"})
    backend = make_backend(spec, "auto")  # (tensors on a GPU would run the torch program: AcceleratorDispatch)
    assert isinstance(backend.cpu, BatchDispatch) and resolve_device_name("auto", spec) == "torch"
    small = backend.for_batch(SMALL_BATCH_MAX)
    assert isinstance(small, PennyLaneQNode) and small.native is not None  # Lightning's native path
    assert backend.for_batch(SMALL_BATCH_MAX + 1) is backend.large and backend.passes() == backend.large.passes()
    assert not isinstance(make_backend(spec, "auto", diff_method="adjoint"), BatchDispatch)  # a method is named
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    for batch in (1, 8, 64):  # values and gradients as the torch path's, whichever backend ran them
        angles = torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
        cot = torch.randn(batch, spec.n_outputs, generator=gen, dtype=torch.float64)
        ref = values_and_grads(backend.large, angles, weights, cot)
        for r, g in zip(ref, values_and_grads(backend, angles, weights, cot), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    angles = torch.rand(64, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
    together = run_together([backend, backend], [angles, angles + 1], [(weights,), (weights * 2,)])
    alone = run_together([backend.large, backend.large], [angles, angles + 1], [(weights,), (weights * 2,)])
    assert all(torch.equal(a, b) for a, b in zip(together, alone, strict=True))  # update batches: bitwise as before
    from qrl.nn import VQC

    vqc = VQC(spec, device="auto", seed=0)  # a module keeps "auto", so its calls are dispatched too
    assert isinstance(vqc.backend.cpu, BatchDispatch) and vqc.device_name == "torch"
    vqc._backend = None  # as after unpickling
    assert isinstance(vqc.backend.cpu, BatchDispatch)


def test_auto_runs_calls_on_an_accelerator_on_the_torch_program_there(monkeypatch):
    from qrl.backends import dispatch, select
    from qrl.backends.dispatch import AcceleratorDispatch, BatchDispatch
    from qrl.backends.torch import run_together

    spec = CircuitSpec(n_qubits=8, n_layers=2, n_inputs=4, n_outputs=2)
    monkeypatch.setattr(select, "auto_table", lambda: {4: "lightning.qubit", 12: "lightning.qubit"})
    monkeypatch.setattr(select, "small_batch_table", lambda: {4: "torch", 12: "torch"})
    backend = make_backend(spec, "auto")
    assert isinstance(backend, AcceleratorDispatch) and isinstance(backend.cpu, BatchDispatch)
    gen = torch.Generator().manual_seed(1)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    angles = {b: torch.rand(b, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
              for b in (8, 64)}
    assert isinstance(backend.for_inputs(angles[64]), PennyLaneQNode)  # CPU tensors: the measured choices
    assert isinstance(backend.for_inputs(angles[8]), TorchStatevector) and backend.accelerated is None
    cpu = {b: values_and_grads(backend, a, weights, torch.ones(b, 2, dtype=torch.float64)) for b, a in angles.items()}
    monkeypatch.setattr(dispatch, "on_accelerator", lambda inputs: True)  # as for tensors on a GPU
    for b, a in angles.items():
        chosen = backend.for_inputs(a)
        assert isinstance(chosen, TorchStatevector) and chosen is backend.accelerated  # the torch program, built once
        moved = values_and_grads(backend, a, weights, torch.ones(b, 2, dtype=torch.float64))
        for r, g in zip(cpu[b], moved, strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    pair = run_together([backend, backend], [angles[64], angles[64] + 1], [(weights,), (weights * 2,)])
    alone = run_together([backend.accelerated] * 2, [angles[64], angles[64] + 1], [(weights,), (weights * 2,)])
    assert all(torch.equal(a, b) for a, b in zip(pair, alone, strict=True))  # resolved to the torch program
    assert isinstance(make_backend(spec, "lightning.qubit"), PennyLaneQNode)  # a named device is never moved
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: "torch", 12: "torch"})
    torch_only = make_backend(spec, "auto")  # torch already: one program for every CPU batch that fits
    assert isinstance(torch_only.for_batch(1), TorchStatevector) and torch_only.for_batch(64) is torch_only.for_batch(1)


def test_auto_takes_the_native_kernel_where_measured_fastest(monkeypatch):
    """The native kernel where the tables name it, at every size; for rollout-sized calls from 12 qubits where the cost
    model estimates it the faster; on a GPU, and where the kernel cannot be built, the torch program."""
    from qrl.backends import dispatch, select
    from qrl.backends.dispatch import TINY_BATCH_MAX, AcceleratorDispatch
    from qrl.circuits import custom_circuit
    from qrl.simulator import native

    both = {4: select.NATIVE, 14: select.NATIVE}
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: both)
    small = make_backend(CircuitSpec(n_qubits=4, n_layers=2, n_inputs=4, n_outputs=2), "auto")
    assert isinstance(small, AcceleratorDispatch) and small.cpu.program == "native"  # 4 qubits too, every batch
    hea = CircuitSpec(n_qubits=10, n_layers=2, n_inputs=10, n_outputs=2)
    backend = make_backend(hea, "auto")
    assert resolve_device_name("auto", hea) == select.NATIVE and isinstance(backend, AcceleratorDispatch)
    assert backend.for_batch(1).program == "native" and all(backend.for_batch(b) is backend.for_batch(1)
                                                             for b in (8, 64))  # every batch
    gen = torch.Generator().manual_seed(2)
    weights = torch.rand(hea.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    angles = torch.rand(8, hea.n_encoding_layers, hea.n_inputs, generator=gen, dtype=torch.float64)
    cot = torch.randn(8, hea.n_outputs, generator=gen, dtype=torch.float64)
    for r, g in zip(values_and_grads(TorchStatevector(hea), angles, weights, cot),
                    values_and_grads(backend, angles, weights, cot), strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    monkeypatch.setattr(dispatch, "on_accelerator", lambda inputs: True)  # as for tensors on a GPU
    assert backend.for_inputs(angles).program != "native"
    monkeypatch.undo()
    monkeypatch.setattr(select, "auto_table", lambda: both)
    monkeypatch.setattr(select, "small_batch_table", lambda: both)
    monkeypatch.setattr(select, "tiny_batch_table", lambda: {4: "torch", 14: "torch"})  # one sample: torch
    backend = make_backend(hea, "auto")
    assert backend.for_inputs(angles[:TINY_BATCH_MAX]).program != "native"
    assert backend.for_inputs(angles[:TINY_BATCH_MAX + 1]).program == "native" == backend.cpu.large.program
    monkeypatch.setattr(select, "tiny_batch_table", lambda: both)
    for n_qubits, name in ((10, "meyer_iqp"), (12, "meyer_iqp"), (12, "hsiao")):
        # rollouts on the kernel below 12 qubits whatever the circuit; from 12 by their cost: Meyer et al.'s circuit
        # there too since its controlled rotations run as controlled runs (4.60 against 8.04 ms at 8 samples,
        # calls-20261207-045315.json), hsiao not (the cost model's test below)
        circuit = custom_circuit(name, n_qubits=n_qubits, n_inputs=n_qubits, n_layers=4)
        backend = make_backend(circuit, "auto")
        rollouts = backend.for_inputs(torch.zeros(8, n_qubits))
        assert (rollouts.program == "native") == (name == "meyer_iqp" or n_qubits < select.NATIVE_PASS_RATIO_MIN_QUBITS)
        assert rollouts is backend.for_inputs(torch.zeros(1, n_qubits))  # one sample: the same choice
        assert backend.for_inputs(torch.zeros(64, n_qubits)).program == "native" or name == "hsiao"  # updates
    assert resolve_device_name("auto", CircuitSpec(n_qubits=27, n_inputs=4)) == "torch"  # above the kernel's 26
    wide = CircuitSpec(n_qubits=22, n_layers=5, n_inputs=22, n_outputs=2)  # 3.3 passes per torch pass, each ring
    assert select.rollout_devices(wide)[7] == select.NATIVE  # rings as one pass (6.3 where the kernel ran CZs alone)
    monkeypatch.setattr(native, "available", lambda: False)  # no C compiler: the torch program, said so
    with pytest.warns(UserWarning, match="cannot be compiled"):
        fallback = make_backend(hea, "auto")
    assert isinstance(fallback.for_batch(64), TorchStatevector) and fallback.program != "native"


def test_auto_builds_each_program_once(monkeypatch):
    """The rules for rollout-sized calls count the passes and nodes of the kernel's and the torch program (from 12
    qubits); auto then runs the programs it built (building the kernel's took seconds at 20 qubits)."""
    from qrl.backends import select
    from qrl.simulator import native

    built = []
    init = native.NativeProgram.__init__
    monkeypatch.setattr(native.NativeProgram, "__init__", lambda self, *a, **k: built.append(a) or init(self, *a, **k))
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: select.NATIVE, 14: select.NATIVE})
    hea = CircuitSpec(n_qubits=12, n_layers=2, n_inputs=12, n_outputs=2)
    backend = make_backend(hea, "auto")
    assert len(built) == 1 and all(backend.for_batch(b).program == "native" for b in (8, 64))
    assert backend.for_batch(1).program != "native"  # the cost model: one sample is cheaper on the torch program
    monkeypatch.setattr(select, "small_batch_table", lambda: {4: "torch", 14: "torch"})  # rollouts: the model
    monkeypatch.setattr(select, "tiny_batch_table", lambda: {4: "torch", 14: "torch"})
    backend = make_backend(hea, "auto")
    assert len(built) == 2 and backend.for_batch(1).program != "native" and backend.for_batch(8).program == "native"
    assert backend.for_batch(64).program == "native"


def test_auto_chooses_the_program_of_each_rollout_sized_call_by_its_estimated_cost(monkeypatch):
    """From 12 qubits each call of 1-16 samples runs on the kernel or the torch program, whichever the cost model
    estimates the faster at that batch: it agrees with the crossovers measured on ``hea`` (the kernel at batch 8, the
    torch program at batch 1; qrl/data/crossovers.json), and it takes the measured faster program for circuits of
    other shapes (README, "Rollout-sized calls by a cost model"): ``one_cnot`` on the kernel at 12 qubits (1.3x and
    1.6x faster at batch 1 and 8, calls-20261205-112331.json: its torch program launches 3.6 times ``hsiao``'s
    operations), ``hsiao`` on
    the torch program at every rollout batch; Meyer et al.'s circuit on the kernel at 12 qubits and at 13 from 4 samples
    since its controlled rotations run as controlled runs (measured faster there from 3 samples; 1.29x slower at 12
    qubits and one sample, the model's one miss over 1.2x in those calls, calls-20261207-045315.json). Above
    CALL_MODEL_MAX_QUBITS the model decides calls of 3-16 samples with the torch program's estimate scaled by the state
    batch's size (large_state_factor; until 2026-12-05 the pass ratio, from 22 qubits the kernel)."""
    import circuit_shapes  # noqa: F401  (registers one_cnot)

    from qrl.backends import select
    from qrl.circuits import custom_circuit

    for n in (12, 14, 16, 18):
        names = select.rollout_devices(CircuitSpec(n_qubits=n, n_layers=5, n_inputs=n, n_outputs=n))
        assert names[0] == select.tiny_batch_table()[n] == "torch", n
        assert names[7] == select.small_batch_table()[n] == select.NATIVE, n
    assert select.rollout_devices(CircuitSpec(n_qubits=10, n_layers=5, n_inputs=10))[0] == select.NATIVE  # below 12
    for name, n_layers, n, expected in (("one_cnot", 5, 12, {1: select.NATIVE, 8: select.NATIVE}),
                                        ("hsiao", 5, 12, dict.fromkeys(range(1, 17), "torch")),
                                        ("meyer_iqp", 4, 12, dict.fromkeys(range(1, 17), select.NATIVE)),
                                        ("meyer_iqp", 4, 13, {**dict.fromkeys(range(1, 4), "torch"),
                                                              **dict.fromkeys(range(4, 17), select.NATIVE)})):
        spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=n_layers)
        programs: dict = {}
        names = select.rollout_devices(spec, programs)
        assert {b: names[b - 1] for b in expected} == expected, (name, n)
        kernel, torch_program, model = programs[select.NATIVE], programs["torch"], select.call_model()
        work = kernel.native_pass_counts(), kernel.native_rotations(), n
        cost = torch_program.autograd_nodes(), torch_program.passes(), n
        assert names == [select.NATIVE if model.kernel_seconds(*work, b) <= model.torch_seconds(*cost, b) else "torch"
                         for b in range(1, 17)]
        backend = make_backend(spec, "auto")
        assert all((backend.for_batch(b).program == "native") == (c == select.NATIVE)
                   for b, c in enumerate(names, start=1))
    from qrl.backends.calls import large_state_factor

    model = select.call_model()
    for name, n, layers, at_8 in (("hsiao", 20, 5, "torch"), ("hsiao", 22, 5, "torch"),
                                  ("meyer_iqp", 20, 4, select.NATIVE), ("meyer_iqp", 22, 4, select.NATIVE),
                                  ("hea", 22, 5, select.NATIVE)):
        # above CALL_MODEL_MAX_QUBITS the model with the torch program's estimate times large_state_factor: at 8
        # samples with a gradient, since the adjoint method's overlaps conjugate no state batch (2026-12-06), hsiao
        # ran 2.4x and 2.9x faster on the torch program (20, 22 qubits), Meyer et al.'s 1.8x at both until its
        # controlled rotations ran as controlled runs (2026-12-07: the kernel 1.35x and 1.11x faster, 2334 against
        # 3154 ms and 12562 against 13967, calls-20261207-040509.json); hea 1.6x faster on the kernel at 22
        spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=layers) if name != "hea" else CircuitSpec(
            n_qubits=n, n_layers=layers, n_inputs=n, n_outputs=n)
        programs = {}
        names = select.rollout_devices(spec, programs)
        kernel, torch_program = programs[select.NATIVE], programs["torch"]
        assert names[7] == at_8 and names[:2] == [select.tiny_batch_device(spec)] * 2, (name, n)
        work = kernel.native_pass_counts(), kernel.native_rotations(), n
        cost = torch_program.autograd_nodes(), torch_program.passes(), n
        assert names[2:] == [select.NATIVE if model.kernel_seconds(*work, b)
                             <= large_state_factor(b * 2**n) * model.torch_seconds(*cost, b) else "torch"
                             for b in range(3, 17)], (name, n)
    assert large_state_factor(2**20) == 1.0 and abs(large_state_factor(8 * 2**20) - 1.01) < 1e-9  # 8 MiB: at least 1
    assert abs(large_state_factor(32 * 2**20) - (1.01 + 2 * 0.04)) < 1e-9  # 256 MiB: 64 MiB's and two doublings
    monkeypatch.setattr(select, "tiny_batch_table", lambda: {4: "lightning.qubit", 20: "lightning.qubit"})
    names = select.rollout_devices(custom_circuit("one_cnot", n_qubits=12, n_inputs=12, n_layers=5))
    assert names[:2] == ["lightning.qubit"] * 2 and names[2:] == [select.NATIVE] * 14  # a table's Lightning stays


def test_auto_runs_rollout_sized_calls_without_a_gradient_by_their_own_estimate():
    """Above CALL_MODEL_MAX_QUBITS a call without a gradient is chosen with the torch program's estimate times
    FORWARD_STATE_FACTOR (no backward: no adjoint method, no size factor): ``chen_vqdqn`` at 22 qubits and 9 samples
    runs on the kernel with a gradient and on the torch program without (Meyer et al.'s circuit at 22 qubits and 16
    samples did until the large-state factor's fit of 2026-12-06 08:20, which runs it on the torch program either way;
    at 8 samples the kernel had been 2.10x slower than the fastest without a gradient, 2026-12-06); at 18 qubits both
    lists are one."""
    from qrl.backends import select
    from qrl.backends.calls import FORWARD_STATE_FACTOR
    from qrl.circuits import custom_circuit

    spec = custom_circuit("chen_vqdqn", n_qubits=22, n_inputs=22, n_layers=5)
    programs: dict = {}
    with_gradient, without = select.rollout_devices(spec, programs), select.rollout_devices(spec, programs, False)
    assert with_gradient[8] == select.NATIVE and without[8] == "torch"
    kernel, torch_program, model = programs[select.NATIVE], programs["torch"], select.call_model()
    work = kernel.native_pass_counts(), kernel.native_rotations(), 22
    cost = torch_program.autograd_nodes(), torch_program.passes(), 22
    assert without[2:] == [select.NATIVE if model.kernel_seconds(*work, b)
                           <= FORWARD_STATE_FACTOR * model.torch_seconds(*cost, b) else "torch" for b in range(3, 17)]
    assert without[:2] == with_gradient[:2]  # 1-2 samples: the tiny-batch table's, either way
    auto = make_backend(spec, "auto")
    assert auto.for_batch(9).program == "native"
    with torch.no_grad():
        assert auto.for_batch(9).program != "native"
    small = custom_circuit("meyer_iqp", n_qubits=18, n_inputs=18, n_layers=4)
    assert select.rollout_devices(small) == select.rollout_devices(small, gradient=False)


def test_the_users_circuit_shapes_run_alike_on_lightning_the_torch_programs_and_the_kernel():
    """The circuits of tests/circuit_shapes.py, which measure auto's rules on users' shapes, give Lightning's values
    and gradients on the torch programs and the kernel (float64)."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl.circuits import custom_circuit

    for name in ("one_cnot", "brick_cz", "zz_ring", "crx_chain", "two_cnot_rz", "zz_words", "templates_basic",
                 "xx_yy_ring", "all_pairs_cz", "long_crz", "phase_gates", "toffoli_rot", "strong_template",
                 "iqp_template", "swap_multirz"):
        spec = custom_circuit(name, n_qubits=5, n_inputs=5, n_layers=3)
        gen = torch.Generator().manual_seed(3)
        weights = torch.rand(spec.weight_shapes["weights"], generator=gen, dtype=torch.float64) * 2 * math.pi
        angles = torch.rand(4, 5, generator=gen, dtype=torch.float64) * 2 * math.pi
        cot = torch.randn(4, spec.n_outputs, generator=gen, dtype=torch.float64)
        reference = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, cot)
        for program in ("wires", "fused", "native"):
            got = values_and_grads(TorchStatevector(spec, program), angles, weights, cot)
            for r, g in zip(reference, got, strict=True):
                np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0, err_msg=f"{name} {program}")


def test_from_sixteen_qubits_update_sized_calls_of_fused_programs_of_much_kernel_work_stay_on_them():
    """NATIVE_FUSED_WORK_RATIO: from 16 qubits, update-sized calls (with and without a gradient, also of the adjoint
    method's sizes) run on the fused torch program where the kernel's work per torch pass exceeds 11 (``zz_ring``,
    12.7; Meyer et al.'s, 16.7 until its controlled rotations ran as controlled runs, 7.2 since: 1.73x faster on the
    kernel at 16 qubits and 64 samples, scaling-20261207-045352.json; ``crx_chain`` 7.7, 1.62x, -041328), not where
    it is below (``xx_yy_ring``, 9.4) or the torch program is per-wire (``hea``,
    ``strongly_entangling``), nor at 15 qubits; ``one_cnot`` (work over 24) keeps the kernel for the calls of the
    adjoint method's sizes at 20 qubits (README, "Update-sized calls from 16 qubits")."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl.backends.select import NATIVE_FUSED_WORK_RATIO
    from qrl.circuits import custom_circuit

    assert NATIVE_FUSED_WORK_RATIO == (16, 11.0)

    def programs(spec, batches=(32, 64)):
        auto = make_backend(spec, "auto")
        with torch.no_grad():
            forward = [auto.for_batch(b).program for b in batches]
        return [auto.for_batch(b).program for b in batches], forward

    def users(name, n):
        return custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=5)

    for name, n, want in (("meyer_iqp", 16, "native"), ("crx_chain", 18, "native"), ("zz_ring", 16, "fused"),
                          ("meyer_iqp", 15, "native"), ("zz_ring", 15, "native"), ("xx_yy_ring", 16, "native")):
        assert programs(users(name, n)) == ([want] * 2, [want] * 2), (name, n)
    for ansatz in ("hea", "strongly_entangling"):
        assert programs(CircuitSpec(n_qubits=16, n_inputs=16, ansatz=ansatz)) == (["native"] * 2, ["native"] * 2)
    assert programs(users("one_cnot", 20)) == (["native"] * 2, ["fused"] * 2)


def test_auto_keeps_update_sized_calls_of_unentangled_circuits_off_the_kernel(monkeypatch):
    """From 12 qubits, calls of more than SMALL_BATCH_MAX samples run on the kernel only where its passes plus half a
    pass per rotation are at most NATIVE_LARGE_BATCH_WORK_RATIO per torch pass: not for ``hsiao`` (no entangling
    gates: the torch program applies four wires' rotations per pass; 45-52), for the other circuits measured (7-16)."""
    from qrl.backends import select
    from qrl.circuits import custom_circuit

    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: select.NATIVE, 16: select.NATIVE})
    work = {}
    for name, n_layers in (("hsiao", 5), ("meyer_iqp", 4), ("chen_vqdqn", 5), ("lockwood_si", 5)):
        for n in (10, 12):
            spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=n_layers)
            update = make_backend(spec, "auto").for_batch(64).program
            assert (update == "native") == (name != "hsiao" or n < select.NATIVE_PASS_RATIO_MIN_QUBITS), (name, n)
        kernel, torch_program = TorchStatevector(spec, "native"), TorchStatevector(spec)
        # Meyer et al.'s rotations are all in controlled runs, half a rotation each; the others have none
        assert kernel.native_rotations() == (kernel._impl.ops[:, 0] <= 2).sum() / (2 if name == "meyer_iqp" else 1)
        work[name] = (kernel.native_passes(True) + kernel.native_rotations() / 2) / torch_program.passes()
    assert work["hsiao"] > 2 * select.NATIVE_LARGE_BATCH_WORK_RATIO > 2 * max(work[c] for c in work if c != "hsiao")
    assert TorchStatevector(CircuitSpec(n_qubits=12, n_layers=5)).native_rotations() is None
    # a user's circuit between them (one CNOT per layer, 38-44): on the kernel at 12 qubits (where a batch of 64
    # states stays in the L2 cache; measured 1.35x faster there), off it from 13 (1.18x slower at 14)
    import circuit_shapes  # noqa: F401  (registers one_cnot)

    for n, on_kernel in ((12, True), (13, False), (14, False)):
        spec = custom_circuit("one_cnot", n_qubits=n, n_inputs=n, n_layers=5)
        assert (make_backend(spec, "auto").for_batch(64).program == "native") == on_kernel, n


def test_auto_runs_gradient_calls_on_the_kernel_where_the_torch_program_would_take_its_adjoint(monkeypatch):
    """Where the work ratio sends update batches to the torch program (``hsiao``, ``one_cnot``), gradient calls from the
    batch at which that program would differentiate by its adjoint method run on the kernel (measured 1.30x-1.34x
    faster there at 20 qubits); smaller ones, and calls without a gradient, stay on the torch program; circuits the
    ratio keeps on the kernel have no such batch. The dispatch pickles with it."""
    import pickle

    import circuit_shapes  # noqa: F401  (registers one_cnot)

    from qrl.backends import select
    from qrl.circuits import custom_circuit

    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: select.NATIVE, 16: select.NATIVE})
    for name, n in (("hsiao", 20), ("hsiao", 19), ("one_cnot", 20)):
        spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=5)
        dispatch = make_backend(spec, "auto").cpu
        first, kernel = dispatch.larger
        torch_program = dispatch.large
        assert kernel.program == "native" and torch_program.program != "native"
        assert torch_program.gradient_method(first) == "adjoint" != torch_program.gradient_method(first - 1)
        assert select.SMALL_BATCH_MAX < first <= 64
        assert dispatch.for_batch(first) is kernel and dispatch.for_batch(4 * first) is kernel
        assert dispatch.for_batch(first - 1) is torch_program or first - 1 <= select.SMALL_BATCH_MAX
        with torch.no_grad():
            assert dispatch.for_batch(first) is torch_program
        assert pickle.loads(pickle.dumps(dispatch)).for_batch(first).program == "native"
    hea = CircuitSpec(n_qubits=20, n_layers=5)
    assert make_backend(hea, "auto").cpu.larger is None  # on the kernel at every update batch
    assert select.adjoint_from_batch(TorchStatevector(CircuitSpec(n_qubits=12, n_layers=1)), 8) > 1000


def test_auto_keeps_update_calls_on_the_torch_program_where_the_model_chose_it_for_adjoint_calls(monkeypatch):
    """Where the torch program already differentiates calls of ``SMALL_BATCH_MAX`` samples by its adjoint method and
    the cost model chose it for them, larger gradient calls stay on it (``hsiao`` at 25 qubits, 32 samples: the torch
    program in chunks 2.05x faster than the kernel, README "The last chunk keeps its state"), or run on it where the
    work ratio kept update batches on the kernel (Meyer et al.'s circuit at 19-25 qubits: README "Update-sized
    gradient calls follow the model where it weighed the adjoint method"; then its update batches ran on its fused
    program from 16 qubits, "Update-sized calls from 16 qubits"; since 2026-12-07 on the kernel, "Controlled
    rotations in one pass"); where the model chose the kernel at that
    batch, or the calls there ran autograd, the kernel takes them from the adjoint batch as before, or keeps them."""
    import circuit_shapes  # noqa: F401  (registers one_cnot)

    from qrl.backends import select
    from qrl.backends.chunks import Chunks
    from qrl.circuits import custom_circuit
    from qrl.simulator import programs

    large = make_backend(custom_circuit("hsiao", n_qubits=25, n_inputs=25, n_layers=5), "auto").cpu
    assert large.larger is None and large.rollouts[-1].program != "native"
    update = large.for_batch(32)
    assert isinstance(update, Chunks) and update.backend.program != "native" and update.size < 32
    meyer = make_backend(custom_circuit("meyer_iqp", n_qubits=20, n_inputs=20, n_layers=5), "auto").cpu
    # its update batches on the kernel since its controlled rotations run as controlled runs (32 samples: 10.45 s
    # against 21.74 on the fused program, scaling-20261207-040902.json): no larger calls apart
    assert meyer.large.program == "native" and meyer.larger is None and meyer.for_batch(32).program == "native"
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: select.NATIVE, 16: select.NATIVE})
    spec = custom_circuit("one_cnot", n_qubits=20, n_inputs=20, n_layers=5)
    assert make_backend(spec, "auto").cpu.larger is not None  # calls of 16 run autograd: the rule of 20 qubits
    kernel_by_work = CircuitSpec(n_qubits=20, n_layers=5)  # hea: the work ratio keeps its update batches on the kernel
    assert make_backend(kernel_by_work, "auto").cpu.larger is None
    monkeypatch.setattr(programs, "AUTOGRAD_MAX_BYTES", 0)  # every gradient call by the adjoint method
    for at_16, on_torch in (("torch", True), (select.NATIVE, False)):
        monkeypatch.setattr(select, "rollout_devices", lambda spec, programs=None, gradient=True, last=at_16:
                            [*["torch"] * (select.SMALL_BATCH_MAX - 1), last])
        dispatch = make_backend(spec, "auto").cpu
        assert (dispatch.larger is None) == on_torch, at_16
        assert (dispatch.for_batch(64).program == "native") != on_torch, at_16
        dispatch = make_backend(kernel_by_work, "auto").cpu  # update batches on the kernel by the work ratio
        assert (dispatch.larger is not None) == on_torch, at_16
        assert (dispatch.for_batch(64).program == "native") != on_torch, at_16
        assert dispatch.for_batch(select.SMALL_BATCH_MAX + 1).program == dispatch.for_batch(64).program, at_16
        with torch.no_grad():  # calls without a gradient stay on the kernel
            assert dispatch.for_batch(64).program == "native", at_16


def test_auto_runs_calls_that_would_not_fit_in_memory_in_chunks(monkeypatch):
    """A call whose program's forward + backward estimate exceeds the share of physical memory runs on that program in
    chunks of the largest batch that fits, with the same values and gradients; calls that fit stay on the measured
    choice, calls on an accelerator run the torch program there, and where one sample does not fit, Lightning
    (adjoint, a few state vectors) runs the call."""
    from qrl.backends import dispatch, select
    from qrl.backends.chunks import Chunks
    from qrl.backends.dispatch import cpu_backend

    spec = CircuitSpec(n_qubits=10, n_layers=2, n_inputs=10, n_outputs=2)
    both = {4: select.NATIVE, 14: select.NATIVE}
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: both)
    kernel = TorchStatevector(spec, "native")
    memory = kernel.gradient_bytes(8)  # 8 samples fit, 9 (padded to 16) do not
    assert select.largest_batch_within(kernel, memory) == 8 and kernel.gradient_bytes(9) > memory
    assert select.largest_batch_within(kernel, kernel.gradient_bytes(1) - 1) == 0
    assert select.largest_batch_within(make_backend(spec, "lightning.qubit"), 1) is None  # no estimate: no limit
    monkeypatch.setattr(select, "physical_memory", lambda: int(memory / select.AUTO_MEMORY_FRACTION) + 1)
    backend = make_backend(spec, "auto")
    assert all(type(backend.for_batch(b)) is TorchStatevector and backend.for_batch(b).program == "native"
               for b in (1, 2, 8))
    for b in (9, 16, 64):  # rollout-sized (a backend per batch size) and update-sized calls
        chunks = backend.for_batch(b)
        assert isinstance(chunks, Chunks) and chunks.size == 8 and chunks.program == "native", b
        assert chunks.gradient_bytes(b) == kernel.gradient_bytes(8) <= memory
    assert cpu_backend(backend, 64) is backend.for_batch(64)
    gen = torch.Generator().manual_seed(4)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    for batch in (8, 9, 20, 64):  # the same values and gradients on either side of the limit
        angles = torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
        cot = torch.randn(batch, spec.n_outputs, generator=gen, dtype=torch.float64)
        for r, g in zip(values_and_grads(TorchStatevector(spec), angles, weights, cot),
                        values_and_grads(backend, angles, weights, cot), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    assert backend.cpu.spilled is None  # Lightning is made on the first call that needs it: none did
    monkeypatch.setattr(dispatch, "on_accelerator", lambda inputs: True)  # as for tensors on a GPU: never chunked
    assert type(backend.for_inputs(torch.zeros(64, 1, 10))) is TorchStatevector
    monkeypatch.setattr(select, "physical_memory", lambda: int(kernel.gradient_bytes(1) / select.AUTO_MEMORY_FRACTION)
                        - 1)  # one sample does not fit on the kernel, nor on the torch program: Lightning
    backend = make_backend(spec, "auto")
    assert all(isinstance(backend.for_batch(b), PennyLaneQNode) for b in (1, 9, 64))
    angles = torch.rand(3, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
    cot = torch.randn(3, spec.n_outputs, generator=gen, dtype=torch.float64)
    for r, g in zip(values_and_grads(TorchStatevector(spec), angles, weights, cot),
                    values_and_grads(backend.cpu, angles, weights, cot), strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)


def test_auto_sizes_a_float64_calls_chunks_by_its_complex128_states(monkeypatch):
    """A float64 policy's states take twice a float32 one's memory: its calls are routed and chunked by their own
    size (a dispatch of their own, made on the first such call), with the values of one call."""
    from qrl.backends import select
    from qrl.backends.chunks import Chunks
    from qrl.backends.dispatch import cpu_backend

    spec = CircuitSpec(n_qubits=10, n_layers=2, n_inputs=10, n_outputs=2)
    for table in ("auto_table", "small_batch_table", "tiny_batch_table"):
        monkeypatch.setattr(select, table, lambda: {4: select.NATIVE, 14: select.NATIVE})
    kernel = TorchStatevector(spec, "native")
    memory = kernel.gradient_bytes(8)  # 8 samples of complex64 fit; of complex128, 4
    assert kernel.gradient_bytes(4, 16) <= memory < kernel.gradient_bytes(5, 16)
    monkeypatch.setattr(select, "physical_memory", lambda: int(memory / select.AUTO_MEMORY_FRACTION) + 1)
    backend = make_backend(spec, "auto")
    assert backend.cpu_wide is None  # made on the first float64 call
    assert type(backend.for_batch(8)) is TorchStatevector and type(backend.for_batch(4, 16)) is TorchStatevector
    wide = backend.for_batch(8, 16)
    assert isinstance(wide, Chunks) and wide.size == 4 and cpu_backend(backend, 64, 16).size == 4
    assert backend.cpu_wide is not None and wide.gradient_bytes(8, 16) <= memory
    calls = []
    program = wide.backend._impl  # the same programs as the float32 dispatch's: built once
    assert program is backend.for_batch(8)._impl
    monkeypatch.setattr(program, "forward", lambda flat_a, *a, real=program.forward, **k:
                        calls.append((flat_a.dtype, flat_a.shape[0])) or real(flat_a, *a, **k))
    gen = torch.Generator().manual_seed(12)
    for dtype in (torch.float32, torch.float64):
        weights = (torch.rand(spec.weight_shape, generator=gen) * 2 * math.pi).to(dtype)
        angles = torch.rand(8, spec.n_encoding_layers, spec.n_inputs, generator=gen).to(dtype)
        cot = torch.randn(8, spec.n_outputs, generator=gen).to(dtype)
        for r, g in zip(values_and_grads(TorchStatevector(spec), angles, weights, cot),
                        values_and_grads(backend, angles, weights, cot), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL if dtype == torch.float64 else F32_TOL,
                                       rtol=0)
    assert calls == [(torch.float32, 8)] + [(torch.float64, 4)] * 3  # two chunks; the first computed again backward


def test_auto_on_a_gpu_runs_calls_over_its_memory_in_chunks(monkeypatch):
    """On an accelerator auto runs the torch program; a call whose forward + backward would exceed the share of the
    GPU's memory runs in chunks that fit, each computed again in its backward, with the same values and gradients
    (run here on CPU tensors taken for a GPU's, with a GPU's memory made small)."""
    from qrl.backends import dispatch, select
    from qrl.backends.chunks import Chunks

    spec = CircuitSpec(n_qubits=8, n_layers=2, n_inputs=8, n_outputs=2)
    program = TorchStatevector(spec)
    monkeypatch.setattr(dispatch, "on_accelerator", lambda inputs: True)
    monkeypatch.setattr(dispatch, "accelerator_memory",  # 16 samples of complex128 (the float64 calls below)
                        lambda device: int(program.gradient_bytes(16, 16) / select.AUTO_MEMORY_FRACTION) + 1)
    backend = make_backend(spec, "auto")
    gen = torch.Generator().manual_seed(11)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    for batch in (16, 40):
        angles = torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
        chosen = backend.for_inputs(angles)
        assert (isinstance(chosen, Chunks) and chosen.size == 16) == (batch > 16), batch
        if batch > 16:  # the torch program does not say what it keeps: computed again
            assert chosen.program == program.program and not chosen.keeps(batch)
        cot = torch.randn(batch, spec.n_outputs, generator=gen, dtype=torch.float64)
        want, got = (values_and_grads(b, angles, weights, cot) for b in (program, backend))
        for r, g in zip(want, got, strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), atol=F64_TOL, rtol=0)
    assert backend.for_inputs(torch.zeros(40, 1, 8)).size > 16  # float32: complex64 states, twice the samples fit
    monkeypatch.setattr(dispatch, "accelerator_memory", lambda device: None)  # not a CUDA GPU: never chunked
    assert type(make_backend(spec, "auto").for_inputs(torch.zeros(64, 1, 8))) is TorchStatevector


@pytest.mark.parametrize("name, n, batch, feature", [
    ("hea", 4, 8, "dense"), ("hea", 8, 8, "chunk products"), ("meyer_iqp", 10, 8, "fused"),
    ("circuit_shapes:phase_gates", 12, 8, "X read out lazily"), ("born_parity", 18, 8, "probabilities"),
    ("hea", 18, 8, "Z read out lazily"), ("hea", 20, 64, "adjoint"), ("hea", 8, 40, "chunks")])
def test_auto_keeps_a_call_on_another_device_on_that_device(monkeypatch, name, n, batch, feature):
    """The path a GPU takes (``device="auto"``'s torch program on the inputs' device; the readout at once, buffers
    outside the CPU's pool, matrices not per sample, chunks by the device's memory), run on PyTorch's ``meta`` device,
    which has no data: a constant made on the CPU and met in arithmetic with the state raises there as on a GPU
    (indices are not checked so). Forward with a gradient and without, and the backward, end on ``meta``. Values on a
    GPU: tests/test_cuda.py (skipped without one)."""
    import circuit_shapes  # noqa: F401  (registers them)

    from qrl import bench
    from qrl.backends import dispatch, select
    from qrl.backends.chunks import Chunks
    from qrl.nn import VQC

    spec = bench._named_spec(name, n, 2)  # as qrl bench scaling builds it: an ansatz or a circuit of the library
    vqc = VQC(spec, device="auto", seed=0)
    if feature == "chunks":  # a GPU's memory made small: 16 samples of complex64 at once
        program = TorchStatevector(vqc.spec)
        monkeypatch.setattr(dispatch, "accelerator_memory",
                            lambda device: int(program.gradient_bytes(16) / select.AUTO_MEMORY_FRACTION) + 1)
    vqc = vqc.to("meta")
    x = torch.randn(batch, n).to("meta")
    out = vqc(x)
    out.sum().backward()
    with torch.no_grad():
        rollout = vqc(x)
    assert out.device.type == rollout.device.type == "meta" and out.shape == rollout.shape == (batch, spec.n_outputs)
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in vqc.parameters() if p.requires_grad)
    chosen, program = vqc.backend.for_inputs(x), vqc.backend.accelerated
    readout = program._readout
    assert {"dense": program.program == "dense", "chunk products": program.program == "wires",
            "fused": program.program == "fused", "X read out lazily": bool(readout._lazy and readout._flip_columns),
            "probabilities": any(column[0] == "probs" for column in readout._lazy or ()),
            "Z read out lazily": readout._lazy is not None,
            "adjoint": program.gradient_method(batch) == "adjoint",
            "chunks": isinstance(chosen, Chunks) and chosen.size == 16}[feature]


def test_chunks_keep_their_states_or_compute_them_again_with_the_same_bits(monkeypatch):
    """A chunked gradient call keeps each chunk's state for its backward where they fit beside one chunk's forward +
    backward; where fewer fit, the last chunks keep theirs (the last always: its backward comes first) and the others
    keep nothing and run their forward again in the backward: the same values and gradients to the bit either way,
    and without a gradient plain chunks."""
    from qrl.backends import chunks as chunks_module
    from qrl.backends.chunks import Chunks

    spec = CircuitSpec(n_qubits=8, n_layers=3, n_inputs=8, n_outputs=2)
    kernel = TorchStatevector(spec, "native")
    state = kernel.kept_bytes(8)
    assert state >= 8 * 2**8 * 8 and kernel.kept_bytes(5) == state  # a batch padded to 8 samples of complex64
    assert TorchStatevector(spec).kept_bytes(8) is None  # the torch program does not say: computed again
    gen = torch.Generator().manual_seed(7)
    weights = torch.rand(spec.weight_shape, generator=gen) * 2 * math.pi
    angles = torch.rand(20, spec.n_encoding_layers, spec.n_inputs, generator=gen)
    cot = torch.randn(20, spec.n_outputs, generator=gen)
    forwards, saved = [], []
    real_forward = kernel._impl.forward
    monkeypatch.setattr(kernel._impl, "forward", lambda *a, **k: forwards.append(1) or real_forward(*a, **k))

    def run(chunked):
        forwards.clear()
        a, w = angles.clone().requires_grad_(True), weights.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            out = chunked(a, w)
        n_forward = len(forwards)
        return (out.detach(), *torch.autograd.grad((out * cot).sum(), (a, w))), n_forward, len(forwards)

    kept = Chunks(kernel, 8, 10**12)
    assert kept.keeps(20, 8)
    keep_result, before, after = run(kept)
    assert (before, after) == (3, 3) and sum(saved) >= 2 * state + kernel.kept_bytes(4)  # 8 + 8 + 4: each one's kept
    saved.clear()
    one_more = kernel.gradient_bytes(8) + state  # room for one chunk's forward + backward and one more kept state
    available = int(one_more / chunks_module.KEEP_MARGIN) + 1
    monkeypatch.setattr(chunks_module, "available_memory", lambda: available)
    assert kept.kept_chunks(20, 8) == 2 and not kept.keeps(20, 8)
    partly_result, before, after = run(kept)
    assert (before, after) == (3, 4) and 2 * state > sum(saved) >= state  # the first chunk's forward run again
    monkeypatch.setattr(chunks_module, "KEEP_MARGIN", 0.0)  # as when the memory available now holds one chunk only
    assert kept.kept_chunks(20, 8) == 1 and not kept.keeps(20, 8)
    saved.clear()
    again_result, before, after = run(kept)
    assert (before, after) == (3, 5) and state > sum(saved) >= kernel.kept_bytes(4)  # only the last chunk kept
    whole = values_and_grads(kernel, angles, weights, cot)
    for k, p, a, w in zip(keep_result, partly_result, again_result, whole, strict=True):
        assert torch.equal(k, a) and torch.equal(k, p)
        np.testing.assert_allclose(k.numpy(), w.numpy(), atol=F32_TOL, rtol=0)
    with torch.no_grad():
        assert torch.equal(kept(angles, weights), keep_result[0])
    assert not Chunks(kernel, 8, kernel.gradient_bytes(8)).keeps(20, 8)  # two kept states do not fit the budget
    with pytest.raises(ValueError, match="at least one sample"):
        Chunks(kernel, 0, 1)


def test_the_torch_programs_adjoint_method_says_what_it_keeps(monkeypatch):
    """Where the torch program runs its adjoint method, ``kept_bytes`` bounds what autograd saves for a call beside
    another's (the final state, the readout's squared amplitudes, the gate matrices; not the constants calls share) and
    is within 2.5x of it; with autograd it says nothing. Chunks of it then keep their states where they fit, with the
    bits of chunks that run their forwards again."""
    import pickle

    from qrl.backends import chunks as chunks_module
    from qrl.backends.chunks import Chunks
    from qrl.circuits import custom_circuit

    def saved_by_second_call(backend, angles, weights):
        storages: dict[int, int] = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            backend(angles, *weights)
            shared = sum(storages.values())
            backend(angles, *weights)
        return sum(storages.values()) - shared

    gen = torch.Generator().manual_seed(13)
    hea = CircuitSpec(n_qubits=12, n_layers=3, n_inputs=12, n_outputs=12)
    for spec in (hea, custom_circuit("meyer_iqp", n_qubits=12, n_inputs=12, n_layers=3),
                 custom_circuit("born_parity", n_qubits=16, n_inputs=3, n_layers=2),  # the state outweighs the rest
                 CircuitSpec(n_qubits=16, n_layers=2, n_inputs=16, n_outputs=16)):
        program = TorchStatevector(spec, "fused-adjoint")
        weights = [torch.rand(shape, generator=gen).requires_grad_(True) for shape in spec.weight_shapes.values()]
        saved = saved_by_second_call(program, torch.rand(8, *spec.input_shape, generator=gen), weights)
        assert saved <= program.kept_bytes(8) <= 2.5 * saved, (spec, saved, program.kept_bytes(8))
        assert program.kept_bytes(16) == 2 * program.kept_bytes(8)
    autograd = TorchStatevector(hea, "fused")
    assert autograd.gradient_method(8) == "autograd" and autograd.kept_bytes(8) is None
    old = pickle.loads(pickle.dumps(TorchStatevector(hea, "fused-adjoint")))
    del old._impl.n_weight  # as pickled before: says nothing, so its chunks keep only the last
    assert old.kept_bytes(8) is None and Chunks(old, 8, 10**12).kept_chunks(20) == 1
    program = TorchStatevector(hea, "fused-adjoint")
    monkeypatch.setattr(chunks_module, "available_memory", lambda: 10**12)
    kept = Chunks(program, 8, program.gradient_bytes(8) + 2 * program.kept_bytes(8))
    assert kept.keeps(20) and not Chunks(program, 8, program.gradient_bytes(8)).keeps(20)
    angles = torch.rand(20, *hea.input_shape, generator=gen)
    weights = torch.rand(hea.weight_shape, generator=gen)
    cot = torch.randn(20, hea.n_outputs, generator=gen)
    results = [values_and_grads(chunked, angles, weights, cot)
               for chunked in (kept, Chunks(program, 8, program.gradient_bytes(8)))]
    for k, again, whole in zip(*results, values_and_grads(program, angles, weights, cot), strict=True):
        assert torch.equal(k, again)
        np.testing.assert_allclose(k.numpy(), whole.numpy(), atol=F32_TOL, rtol=0)


def test_chunks_without_a_gradient_are_sized_by_a_forward_alone(monkeypatch):
    """A call without a gradient (a rollout's) runs in chunks of the largest batch whose forward alone fits (one state
    batch of the kernel's: more samples than a gradient's four), with the values of one call; a gradient call in the
    gradient's chunks; a Chunks pickled before forward sizes uses the gradient's."""
    import pickle

    from qrl.backends.chunks import Chunks, largest_batch_within

    spec = CircuitSpec(n_qubits=8, n_layers=2, n_inputs=8, n_outputs=2)
    kernel = TorchStatevector(spec, "native")
    memory = kernel.gradient_bytes(4)  # 4.05 state batches of 4 samples: a forward of 8 (1.35 of 8) fits, 16 not
    chunked = Chunks(kernel, largest_batch_within(kernel, memory), memory)
    assert (chunked.size, chunked.forward_size) == (4, 8)
    assert kernel.forward_bytes(8) <= memory < kernel.forward_bytes(9)
    assert TorchStatevector(spec).forward_bytes(8) == pytest.approx(3 * kernel.forward_bytes(8), abs=3)  # three
    old = pickle.loads(pickle.dumps(chunked))
    del old.forward_size  # as pickled before forward sizes
    calls = []
    for program in (kernel._impl, old.backend._impl):
        monkeypatch.setattr(program, "forward", lambda flat_a, *a, real=program.forward, **k:
                            calls.append(flat_a.shape[0]) or real(flat_a, *a, **k))
    gen = torch.Generator().manual_seed(5)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 * math.pi
    angles = torch.rand(20, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        got, whole = chunked(angles, weights), kernel(angles, weights)
    assert calls == [8, 8, 4, 20]
    np.testing.assert_allclose(got.numpy(), whole.numpy(), atol=F64_TOL, rtol=0)
    calls.clear()
    chunked(angles, weights.clone().requires_grad_(True))  # differentiated: the gradient's chunks
    assert calls == [4] * 5
    calls.clear()
    with torch.no_grad():
        np.testing.assert_allclose(old(angles, weights).numpy(), whole.numpy(), atol=F64_TOL, rtol=0)
    assert calls == [4] * 5


def test_crossovers_store_the_native_kernel_at_every_size(tmp_path, monkeypatch):
    from qrl.backends import select

    monkeypatch.setattr(select, "CROSSOVERS", tmp_path / "crossovers.json")
    seconds = {"torch": {"4": 2.0, "10": 3.0}, "torch:native": {"4": 1.0, "10": 1.0}, "lightning.qubit": {"4": 1.5}}
    select.write_crossovers({"batch": 64, "seconds": seconds, "fastest": {"4": "torch:native", "10": "torch:native"}},
                            "sweep", {})
    assert select.auto_table() == {4: "torch:native", 10: "torch:native"}
    select.auto_table.cache_clear()
    select.small_batch_table.cache_clear()


def test_crossovers_measured_apart_at_one_batch_are_merged(tmp_path, monkeypatch):
    """Large sizes measured by their own command join the table of the same batch (a size measured again is
    replaced; the kept sizes name the command that measured them); another batch replaces the table."""
    import json

    from qrl.backends import select

    monkeypatch.setattr(select, "CROSSOVERS", tmp_path / "crossovers.json")
    select.write_crossovers({"batch": 8, "fastest": {"4": "torch", "6": "lightning.qubit", "20": "torch"}}, "sweep", {})
    select.write_crossovers({"batch": 8, "fastest": {"22": "torch"}}, "at 22", {})
    select.write_crossovers({"batch": 8, "fastest": {"24": "torch", "20": "lightning.qubit"}}, "at 24", {})
    small = json.loads((tmp_path / "crossovers.json").read_text())["small_batch"]
    assert small["command"] == "at 24" and set(small["fastest"]) == {"4", "6", "20", "22", "24"}
    assert small["kept"] == [{"command": "sweep", "qubits": ["4", "6"], "machine": {}},
                             {"command": "at 22", "qubits": ["22"], "machine": {}}]
    assert select.small_batch_table() == {4: "torch", 6: "lightning.qubit", 20: "lightning.qubit", 22: "torch",
                                          24: "torch"}
    assert select.small_batch_device(CircuitSpec(n_qubits=23, n_inputs=4)) == "torch"
    assert select.small_batch_device(CircuitSpec(n_qubits=25, n_inputs=4)) == "torch"  # above: as at 24
    select.write_crossovers({"batch": 4, "fastest": {"26": "torch"}}, "at 26, batch 4", {})
    assert select.small_batch_table() == {26: "torch"}  # another batch: a new table
    select.write_crossovers({"batch": 1, "fastest": {"10": "lightning.qubit"}}, "at 10, batch 1", {})
    assert select.tiny_batch_table() == {10: "lightning.qubit"} and select.small_batch_table() == {26: "torch"}
    assert select.tiny_batch_device(CircuitSpec(n_qubits=10, n_inputs=4)) == "lightning.qubit"
    assert select.tiny_batch_device(CircuitSpec(n_qubits=8, n_inputs=4)) == "lightning.qubit"  # below: its smallest
    assert select.tiny_batch_device(CircuitSpec(n_qubits=12, n_inputs=4)) == "torch"  # above its largest: the same
    for table in (select.auto_table, select.small_batch_table, select.tiny_batch_table):
        table.cache_clear()


def test_small_batch_crossovers_are_stored_beside_the_main_ones(tmp_path, monkeypatch):
    import json

    from qrl.backends import select

    monkeypatch.setattr(select, "CROSSOVERS", tmp_path / "crossovers.json")
    select.write_crossovers({"batch": 64, "fastest": {"4": "torch", "12": "lightning.qubit"}}, "cmd64", {})
    select.write_crossovers({"batch": 8, "fastest": {"4": "torch", "8": "lightning.qubit"}}, "cmd8", {})
    select.write_crossovers({"batch": 64, "fastest": {"4": "torch", "12": "torch"}}, "cmd64b", {})
    data = json.loads((tmp_path / "crossovers.json").read_text())
    assert data["command"] == "cmd64b" and data["small_batch"]["command"] == "cmd8"
    assert select.auto_table() == {4: "torch", 12: "torch"}
    assert select.small_batch_table() == {4: "torch", 8: "lightning.qubit"}
    select.auto_table.cache_clear()
    select.small_batch_table.cache_clear()


def test_a_batch_dispatch_pickled_before_tiny_batches_had_a_backend_runs_them_on_the_small_one():
    """``BatchDispatch`` objects made before calls of at most two samples had a backend of their own carry no ``tiny``:
    unpickled, such calls run on ``small`` as they did; a pickle round trip keeps all three backends."""
    import pickle

    from qrl.backends.dispatch import BatchDispatch

    spec = CircuitSpec(n_qubits=4, n_layers=1, n_inputs=4, n_outputs=2)
    large, small, tiny = (TorchStatevector(spec, program) for program in ("wires", "dense", "plain"))
    restored = pickle.loads(pickle.dumps(BatchDispatch(large, small, tiny=tiny)))
    assert [restored.for_batch(b).program for b in (1, 2, 3, 16, 17)] == ["plain", "plain", "dense", "dense", "wires"]
    old = BatchDispatch(large, small)
    del old.tiny, old.max_tiny  # as pickled by a qrl that had neither
    restored = pickle.loads(pickle.dumps(old))
    assert [restored.for_batch(b).program for b in (1, 16, 17)] == ["dense", "dense", "wires"]
    assert restored.passes() == large.passes()  # attributes still come from the update batches' backend
    spilled = []
    per_batch = BatchDispatch(large, small, max_small=3, rollouts=(tiny, small, None),
                              spill=lambda: spilled.append(1) or large)
    assert [per_batch.for_batch(b) for b in (1, 2, 3, 4)] == [tiny, small, large, large] and spilled == [1]
    assert per_batch.for_batch(3) is large and spilled == [1]  # 3: spilled, the spill backend made once
    restored = pickle.loads(pickle.dumps(BatchDispatch(large, small, max_small=3, rollouts=(tiny, small, small))))
    assert [restored.for_batch(b).program for b in (1, 2, 3, 4)] == ["plain", "dense", "dense", "wires"]
    assert restored.for_batch(2) is restored.for_batch(3)  # one backend, pickled once
    import functools

    from qrl.backends.chunks import Chunks

    chunked = BatchDispatch(large, small, limits={"large": 20}, chunked={"large": Chunks(large, 20, 10**9)},
                            spill=functools.partial(make_backend, spec, "torch:dense"))
    restored = pickle.loads(pickle.dumps(chunked))
    assert restored.for_batch(20) is restored.large and restored.for_batch(21).backend is restored.large
    assert restored.for_batch(21).size == 20 and restored.for_batch(21).program == "wires"
    del chunked.chunked  # as pickled before chunks: a call over the limit spills, as it did
    assert pickle.loads(pickle.dumps(chunked, protocol=0)).for_batch(21).program == "dense"
    larger = BatchDispatch(large, small, larger=(32, tiny), limits={"larger": 40},
                           chunked={"larger": Chunks(tiny, 40, 10**9)})
    restored = pickle.loads(pickle.dumps(larger))
    assert [restored.for_batch(b).program for b in (16, 31, 32, 40)] == ["dense", "wires", "plain", "plain"]
    assert restored.for_batch(41).size == 40 and restored.for_batch(41).program == "plain"  # its own chunks
    with torch.no_grad():
        assert restored.for_batch(32).program == "wires"
    del larger.larger  # as pickled before: update batches all on large
    assert pickle.loads(pickle.dumps(larger)).for_batch(32).program == "wires"


@pytest.mark.parametrize("program", ["wires", "adjoint"])
def test_every_wires_z_from_18_qubits_equals_lightning(program):
    """From LAZY_MIN_QUBITS the readout has no matrix, and one-wire Z words are read by WireZ (every wire's value in a
    few passes over the state, its backward by doubling): ``lockwood_si`` and ``chen_vqdqn`` (Z on each wire) at 18
    qubits, with autograd and with the adjoint method, values and gradients as lightning.qubit's in float64; and in
    float32 within 1e-4."""
    from qrl.circuits import custom_circuit
    from qrl.simulator.readout import LAZY_MIN_QUBITS, WireZ

    n = LAZY_MIN_QUBITS
    for name in ("lockwood_si", "chen_vqdqn"):
        spec = custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=1, obs_map="identity", output_scaling=False)
        backend = TorchStatevector(spec, program)
        assert backend._readout._lazy is not None and backend._readout._reads_wires
        assert not backend._readout._needs_probabilities
        gen = torch.Generator().manual_seed(n)
        angles = torch.rand(2, *spec.input_shape, generator=gen, dtype=torch.float64) * 4 - 2
        weights = torch.rand(next(iter(spec.weight_shapes.values())), generator=gen, dtype=torch.float64) * 4 - 2
        cot = torch.randn(2, backend.n_outputs, generator=gen, dtype=torch.float64)
        reference = values_and_grads(make_backend(spec, "lightning.qubit"), angles, weights, cot)
        for got, ref in zip(values_and_grads(backend, angles, weights, cot), reference, strict=True):
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=F64_TOL, rtol=0, err_msg=program)
        single = values_and_grads(backend, angles.float(), weights.float(), cot.float())
        for got, ref in zip(single, reference, strict=True):
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4, rtol=0, err_msg=f"{program} float32")
    state = torch.randn(3, 8, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(WireZ.apply, (state,))  # against finite differences, three wires


@pytest.mark.parametrize("chunk", [8, 16, 2**22])
def test_wire_z_reads_its_states_in_chunks_of_samples_with_the_same_values_and_gradients(chunk, monkeypatch):
    """``WireZ`` in chunks of one, two or all samples (``WIRE_Z_CHUNK_ELEMENTS`` of 8, 16 or the default, 3 wires,
    batch 5): the values are ``<Z_w>`` from the probabilities summed wire by wire (a closed form), and gradcheck
    holds."""
    from qrl.simulator import readout

    monkeypatch.setattr(readout, "WIRE_Z_CHUNK_ELEMENTS", chunk)
    assert len(readout.sample_chunks(torch.zeros(5, 8))) == {8: 5, 16: 3, 2**22: 1}[chunk]
    assert readout.sample_chunks(torch.zeros(5, 8, device="meta")) == [slice(0, 5)]  # off the CPU: at once
    state = torch.randn(5, 8, dtype=torch.complex128, generator=torch.Generator().manual_seed(373), requires_grad=True)
    p = (state.abs() ** 2).detach().view(5, 2, 2, 2)
    expected = torch.stack([(p.select(1 + w, 0) - p.select(1 + w, 1)).sum((1, 2)) for w in range(3)], 1)
    np.testing.assert_allclose(readout.WireZ.apply(state).detach().numpy(), expected.numpy(), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(readout.WireZ.apply, (state,))
