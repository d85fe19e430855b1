"""Exact Lightning runs without QNodes: a traced circuit applied gate by gate to Lightning's C++ state vector.

The gates and their angles come from qrl's tracer (:func:`qrl.simulator.trace_circuit`); values are Lightning's
own expectation values and gradients its C++ adjoint method, one vector-Jacobian product per sample.
"""

from __future__ import annotations

import importlib

import numpy as np
import pennylane as qml
import torch
from pennylane.measurements import ExpectationMP
from torch.autograd.function import once_differentiable

from qrl.errors import QRLError
from qrl.simulator import release_buffers, trace_circuit

OPS_MODULES = {
    "lightning.qubit": "pennylane_lightning.lightning_qubit_ops",
    "lightning.gpu": "pennylane_lightning.lightning_gpu_ops",
    "lightning.kokkos": "pennylane_lightning.lightning_kokkos_ops",
}
"""Lightning devices and their C++ bindings (the modules their PennyLane devices use)."""

KEEP_STATES_BYTES = 1 << 28
"""Final states of a differentiated batch are kept for the backward pass up to this many bytes; above, the
backward recomputes each sample's state (one more pass over its gates)."""

# Constant gates Lightning has a kernel for, recognised by their matrix (the tracer keeps matrices only).
_NAMED_CONSTANTS = [(op.name, len(op.wires), qml.matrix(op)) for op in (
    qml.Hadamard(0), qml.PauliX(0), qml.PauliY(0), qml.PauliZ(0), qml.S(0), qml.T(0), qml.SX(0),
    qml.CNOT([0, 1]), qml.CZ([0, 1]), qml.CY([0, 1]), qml.SWAP([0, 1]), qml.Toffoli([0, 1, 2]))]
_PAULI_NAMES = {"X": "PauliX", "Y": "PauliY", "Z": "PauliZ"}


def constant_name(matrix: np.ndarray, n_wires: int) -> str:
    """Lightning's name for a constant gate with this matrix, or ``"QubitUnitary"`` (applied as a matrix)."""
    for name, width, known in _NAMED_CONSTANTS:
        if width == n_wires and known.shape == matrix.shape and np.allclose(known, matrix, rtol=0, atol=1e-14):
            return name
    return "QubitUnitary"


class LightningPlan:
    """A circuit's gates as Lightning operations, with one column per rotation angle.

    ``Rot(a, b, c)`` becomes ``RZ(a) RY(b) RZ(c)`` (as Lightning's own serializer does). :attr:`columns`
    says where each rotation's angle comes from: ``("angle", i)`` (per-sample angle ``i`` of the tracer's
    angle program), ``("weight", i)`` (shared angle ``i``) or ``("const", value)``; :attr:`trainable` lists
    the rotations whose angle is not a constant (Lightning's parameter indices: rotations in gate order).
    """

    def __init__(self, gates):
        self.names, self.wires, self.matrices, self.slots, self.columns = [], [], [], [], []
        for gate in gates:
            if gate.name == "const":
                name = constant_name(gate.matrix, len(gate.wires))
                self._add(name, gate.wires, np.ascontiguousarray(gate.matrix) if name == "QubitUnitary" else None)
                continue
            names = ("RZ", "RY", "RZ") if gate.name == "Rot" else (gate.name,)
            for name, source in zip(names, gate.params, strict=True):
                column = ("const", source.value) if source.kind == "const" else (source.kind, source.index)
                self._add(name, gate.wires, None, column)
        self.trainable = [k for k, c in enumerate(self.columns) if c[0] != "const"]

    def _add(self, name: str, wires, matrix, column=None) -> None:
        self.names.append(name)
        self.wires.append([int(w) for w in wires])
        self.matrices.append(matrix)
        self.slots.append(None if column is None else len(self.columns))
        if column is not None:
            self.columns.append(column)

    def gather(self, n_per_sample: int, n_shared: int) -> tuple[list[int], list[float]]:
        """Indices into ``cat([per_sample, shared, constants])`` giving the rotations' angles in order,
        and the constants."""
        consts = [float(c[1]) for c in self.columns if c[0] == "const"]
        index, k = [], 0
        for kind, value in self.columns:
            if kind == "angle":
                index.append(int(value))
            elif kind == "weight":
                index.append(n_per_sample + int(value))
            else:
                index.append(n_per_sample + n_shared + k)
                k += 1
        return index, consts


def lightning_observable(obs, module, cdtype: str):
    """A PennyLane observable with a Pauli form as a Lightning observable (``cdtype``: ``"C64"``/``"C128"``)."""
    kinds = module.observables
    named, tensor = getattr(kinds, f"NamedObs{cdtype}"), getattr(kinds, f"TensorProdObs{cdtype}")
    rtype = np.float32 if cdtype == "C64" else np.float64
    terms, coeffs = [], []
    for word, coeff in obs.pauli_rep.items():
        if abs(complex(coeff).imag) > 1e-12:
            raise QRLError(f"observable {obs} has a complex coefficient {coeff}; expected a Hermitian observable")
        letters = [named(_PAULI_NAMES[p], [int(w)]) for w, p in word.items()]
        terms.append(named("Identity", [0]) if not letters else letters[0] if len(letters) == 1 else tensor(letters))
        coeffs.append(complex(coeff).real)
    if len(terms) == 1 and coeffs[0] == 1.0:
        return terms[0]
    if not terms:
        terms, coeffs = [named("Identity", [0])], [0.0]
    return getattr(kinds, f"Hamiltonian{cdtype}")(np.asarray(coeffs, dtype=rtype), terms)


def lightning_module(device_name: str):
    """The C++ bindings of a Lightning device, or a QRLError saying why they cannot be used."""
    if device_name not in OPS_MODULES:
        raise QRLError(f"no native Lightning path for {device_name!r}; expected one of {', '.join(OPS_MODULES)}")
    try:
        return importlib.import_module(OPS_MODULES[device_name])
    except ImportError as exc:
        raise QRLError(f"{device_name}'s C++ bindings ({OPS_MODULES[device_name]}) did not import: {exc}") from exc


def check_bindings(module, plan: LightningPlan) -> None:
    """Raise a QRLError unless ``module`` has every C++ binding ``plan`` needs, in both precisions (the
    GPU and Kokkos bindings differ from lightning.qubit's in places: what is missing runs on the QNode)."""
    missing = []
    for cd in ("C64", "C128"):
        sv = getattr(module, f"StateVector{cd}", None)
        methods = {"resetStateVector", *("applyMatrix" if n == "QubitUnitary" else n for n in plan.names)}
        missing += [f"StateVector{cd}.{m}" for m in sorted(methods) if sv is None or not hasattr(sv, m)]
        algorithms, observables = getattr(module, "algorithms", None), getattr(module, "observables", None)
        needs = [(module, f"Measurements{cd}"), (algorithms, f"AdjointJacobian{cd}"),
                 (algorithms, f"create_ops_list{cd}"),
                 *((observables, f"{kind}{cd}") for kind in ("NamedObs", "TensorProdObs", "Hamiltonian"))]
        missing += [name for where, name in needs if not hasattr(where, name)]
    if missing:
        raise QRLError(f"{module.__name__} lacks {', '.join(missing)}")


class LightningStatevector:
    """A circuit run on Lightning's C++ simulator sample by sample, with no QNode or tape per call.

    Why this and not PennyLane's QNode, or Catalyst: a QNode builds, validates and serialises a tape per
    sample in Python, which costs far more than Lightning's arithmetic at QRL sizes (batch 64, 4-14
    qubits). Here the circuit is traced once (:func:`qrl.simulator.trace_circuit`): per call, torch
    computes every gate angle for the whole batch, then each sample is one loop of C++ gate calls, one
    expectation value per observable and, in the backward pass, one adjoint vector-Jacobian product
    (Lightning's ``AdjointJacobian`` with the observable ``sum_k g_k O_k``: one backward sweep whatever the
    number of outputs). Catalyst (``qjit``) would need JAX in a torch model and compiles per circuit.

    :param spec: the circuit (:class:`qrl.circuits.CircuitSpec` or a :class:`qrl.circuits.CustomCircuit`).
    :param device_name: ``"lightning.qubit"``, ``"lightning.gpu"`` or ``"lightning.kokkos"``.
    :param device: optional PennyLane device whose ``qml.Tracker`` records this path's work as the device's
        own would (``batches``/``executions`` per forward call and sample, ``vjp_batches``/``vjps`` per
        backward); no computation runs on it.

    Raises :class:`qrl.errors.QRLError` when the circuit cannot run here: the tracer refuses it (angles it
    cannot follow, a gate sequence that depends on values), or a measurement is not ``qml.expval`` of an
    observable with a Pauli form; :class:`qrl.backends.pennylane.PennyLaneQNode` then runs the QNode.

    Call: ``f(inputs, *weights)`` as :class:`qrl.backends.torch.TorchStatevector`; returns
    ``(B, n_outputs)`` in the weights' dtype (complex64 simulation for float32, complex128 for float64).
    """

    def __init__(self, spec, device_name: str = "lightning.qubit", device=None):
        self.spec, self.device_name, self.device = spec, device_name, device
        self.module = lightning_module(device_name)
        traced = trace_circuit(spec)
        for mp in traced.measurements:
            if not isinstance(mp, ExpectationMP) or mp.obs is None or mp.obs.pauli_rep is None:
                raise QRLError(f"the native Lightning path measures qml.expval of Pauli sums only; got {mp}")
        self.n_qubits = traced.n_qubits
        self.n_outputs = len(traced.measurements)
        self._observables = [mp.obs for mp in traced.measurements]
        self._angles = traced.angles
        self._names = list(spec.weight_shapes)
        self.plan = LightningPlan(traced.gates)
        check_bindings(self.module, self.plan)
        index, consts = self.plan.gather(traced.angles.n_per_sample, traced.angles.n_shared)
        self._index = torch.as_tensor(index, dtype=torch.int64)
        self._consts = torch.as_tensor(consts, dtype=torch.float64)  # float32 would round constant angles
        self._simulators: dict[str, Simulator] = {}

    def simulator(self, cdtype: str) -> Simulator:
        """The C++ state vector and operations for ``"C64"`` or ``"C128"``, created once."""
        if cdtype not in self._simulators:
            obs = [lightning_observable(o, self.module, cdtype) for o in self._observables]
            self._simulators[cdtype] = Simulator(self.module, cdtype, self.n_qubits, self.plan, obs)
        return self._simulators[cdtype]

    def rotation_angles(self, inputs: torch.Tensor, weights) -> torch.Tensor:
        """Every rotation's angle per sample, ``(B, K)`` in the weights' dtype (differentiable)."""
        want = tuple(self.spec.input_shape)
        if tuple(inputs.shape[1:]) != want or len(weights) != len(self._names):
            raise QRLError(f"expected inputs of shape (B, {', '.join(map(str, want))}) and {len(self._names)} "
                           f"weight tensor(s) ({', '.join(self._names)}); got inputs {tuple(inputs.shape)} and "
                           f"{len(weights)} weight tensor(s)")
        rdtype = weights[0].dtype if weights else inputs.dtype
        rdtype = rdtype if rdtype in (torch.float32, torch.float64) else torch.float32
        leaves = {"inputs": inputs.to(rdtype), **{n: w.to(rdtype) for n, w in zip(self._names, weights, strict=True)}}
        per_sample, shared = self._angles(leaves)
        batch = per_sample.shape[0]
        consts = self._consts.to(dtype=rdtype, device=per_sample.device)
        table = torch.cat([per_sample, shared.expand(batch, -1), consts.expand(batch, -1)], dim=1)
        return table[:, self._index.to(per_sample.device)]

    def track(self, **counts: int) -> None:
        """Add ``counts`` to the device's active ``qml.Tracker``, if any (qml.Tracker replaces
        ``device.tracker`` when it starts, so it is looked up here, at every call)."""
        tracker = getattr(self.device, "tracker", None)
        if tracker is not None and tracker.active:
            tracker.update(**counts)
            tracker.record()

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        release_buffers()
        angles = self.rotation_angles(inputs, weights)
        sim = self.simulator("C128" if angles.dtype == torch.float64 else "C64")
        self.track(batches=1, executions=int(angles.shape[0]))
        if torch.is_grad_enabled() and angles.requires_grad:
            return LightningFunction.apply(angles, sim, self)
        values, _ = sim.forward(angles.detach().cpu().numpy(), keep=False)
        return torch.from_numpy(values).to(dtype=angles.dtype, device=angles.device)


class Simulator:
    """One Lightning state vector with a circuit's operations: forward values and adjoint VJPs per sample.

    :param module: the device's C++ bindings (:func:`lightning_module`).
    :param cdtype: ``"C64"`` or ``"C128"``.
    :param n_qubits: the circuit's width.
    :param plan: the circuit's operations (:class:`LightningPlan`).
    :param observables: its measured observables, as Lightning observables of ``cdtype``.
    """

    def __init__(self, module, cdtype: str, n_qubits: int, plan: LightningPlan, observables: list):
        self.cdtype, self.n_qubits, self.plan, self.observables = cdtype, n_qubits, plan, observables
        self.complex = np.complex64 if cdtype == "C64" else np.complex128
        self.real = np.float32 if cdtype == "C64" else np.float64
        self.sv = getattr(module, f"StateVector{cdtype}")(n_qubits)
        self.measure = getattr(module, f"Measurements{cdtype}")(self.sv)
        self.adjoint = getattr(module.algorithms, f"AdjointJacobian{cdtype}")()
        self.ops_list = getattr(module.algorithms, f"create_ops_list{cdtype}")
        self.hamiltonian = getattr(module.observables, f"Hamiltonian{cdtype}")
        empty = np.zeros(0, dtype=self.complex)
        self._mats = [empty if m is None else m.astype(self.complex) for m in plan.matrices]
        self._steps = []  # (bound method, wires, rotation slot or None, matrix or None)
        for name, wires, slot, mat in zip(plan.names, plan.wires, plan.slots, self._mats, strict=True):
            matrix = mat if name == "QubitUnitary" else None
            self._steps.append((getattr(self.sv, "applyMatrix" if matrix is not None else name), wires, slot, matrix))
        self.can_copy = hasattr(self.sv, "getState") and hasattr(self.sv, "updateData")

    def run(self, row: list[float]) -> None:
        """Reset to ``|0...0>`` and apply the circuit with rotation angles ``row``."""
        self.sv.resetStateVector()
        for fn, wires, slot, matrix in self._steps:
            if matrix is not None:
                fn(matrix, wires, False)
            else:
                fn(wires, False, [] if slot is None else [row[slot]])

    def forward(self, angles: np.ndarray, keep: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Values ``(B, n_outputs)`` for rotation angles ``(B, K)``; with ``keep``, the final states
        ``(B, 2**n)`` too when they fit in :data:`KEEP_STATES_BYTES` (else None: recomputed later)."""
        batch, dim = angles.shape[0], 2**self.n_qubits
        values = np.empty((batch, len(self.observables)), dtype=np.float64)
        keep = keep and self.can_copy and batch * dim * np.dtype(self.complex).itemsize <= KEEP_STATES_BYTES
        states = np.empty((batch, dim), dtype=self.complex) if keep else None
        for b, row in enumerate(angles.tolist()):
            self.run(row)
            values[b] = [self.measure.expval(o) for o in self.observables]
            if keep:
                self.sv.getState(states[b])
        return values, states

    def vjp(self, angles: np.ndarray, states: np.ndarray | None, cotangents: np.ndarray) -> np.ndarray:
        """``sum_k g[b, k] d<O_k>_b / d angles[b]`` per sample, ``(B, K)``, by Lightning's adjoint method."""
        plan = self.plan
        grads = np.zeros(angles.shape, dtype=np.float64)
        n = len(plan.names)
        inverses, no_controls = [False] * n, [[]] * n
        for b, row in enumerate(angles.tolist()):
            g = cotangents[b]
            if not np.any(g):
                continue
            if states is not None:
                self.sv.updateData(states[b])
            else:
                self.run(row)
            params = [[] if slot is None else [row[slot]] for slot in plan.slots]
            ops = self.ops_list(plan.names, params, plan.wires, inverses, self._mats, no_controls, no_controls)
            obs = self.hamiltonian(np.asarray(g, dtype=self.real), self.observables)
            grads[b, plan.trainable] = np.asarray(self.adjoint(self.sv, [obs], ops, plan.trainable)).ravel()
        return grads


class LightningFunction(torch.autograd.Function):
    """Values of a :class:`Simulator` as a differentiable function of the rotation angles ``(B, K)``.

    The forward pass keeps the final states (or nothing, see :data:`KEEP_STATES_BYTES`); the backward pass
    runs one adjoint sweep per sample with the incoming gradient folded into the observable.
    """

    @staticmethod
    def forward(ctx, angles: torch.Tensor, sim: Simulator, owner: LightningStatevector) -> torch.Tensor:
        host = angles.detach().cpu().numpy()
        values, states = sim.forward(host, keep=True)
        ctx.sim, ctx.host, ctx.states, ctx.owner = sim, host, states, owner
        ctx.like = (angles.dtype, angles.device)
        return torch.from_numpy(values).to(dtype=angles.dtype, device=angles.device)

    @staticmethod
    @once_differentiable  # the adjoint VJP is not itself differentiable: second derivatives raise
    def backward(ctx, grad: torch.Tensor):
        cot = grad.detach().to(torch.float64).cpu().numpy()
        grads = ctx.sim.vjp(ctx.host, ctx.states, cot)
        ctx.owner.track(vjp_batches=1, vjps=int(cot.shape[0]))
        dtype, device = ctx.like
        return torch.from_numpy(grads).to(dtype=dtype, device=device), None, None
