"""From a circuit spec to what the simulator runs: a gate list with parameter sources, and readout diagonals.

The spec's PennyLane qfunc is traced (never run): every gate parameter is traced back to an encoding
angle, a weight or a constant, and every readout observable becomes its eigenvalues over the
computational basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pennylane as qml

from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError

# Tags sit far from any angle a circuit would use as a constant; the second trace shifts them so a
# coincidence with a true constant is detected instead of silently misread.
_TAG_BASES = ((-7.0e5, -9.0e5), (-3.0e5, -5.0e5))

PARAMETRIC_1Q = frozenset({"RX", "RY", "RZ", "PhaseShift", "Rot"})
"""Parametric gates the simulator runs as they are; every other gate is decomposed or constant."""


@dataclass(frozen=True)
class Source:
    """Where a gate parameter comes from: ``kind`` is "angle", "weight" or "const".

    ``index`` is the position in the flattened angles ``(n_encoding_layers * n_inputs)`` or weights;
    ``value`` is the constant.
    """

    kind: str
    index: int = 0
    value: float = 0.0


@dataclass(frozen=True)
class Gate:
    """One gate of a traced circuit: ``name`` is a :data:`PARAMETRIC_1Q` name or ``"const"``.

    Parametric gates carry their parameters' :class:`Source`; constant gates their ``matrix``.
    """

    name: str
    wires: tuple[int, ...]
    params: tuple[Source, ...]
    matrix: np.ndarray | None = None  # constant gates only


def _tags(shape: tuple[int, ...], base: float) -> np.ndarray:
    return base - np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


def _flatten_ops(ops) -> list:
    """Decompose until every op is a known parametric 1-qubit gate or a constant 1-2 qubit gate."""
    out = []
    for op in ops:
        if op.name in PARAMETRIC_1Q or (op.num_params == 0 and len(op.wires) <= 2 and op.has_matrix):
            out.append(op)
        elif op.has_decomposition:
            out.extend(_flatten_ops(op.decomposition()))
        else:
            raise QRLError(
                f"gate {op.name} on wires {op.wires.tolist()} is not supported by the torch backend; "
                f"try device='lightning.qubit' (any PennyLane device runs every gate)"
            )
    return out


def trace_gates(spec: CircuitSpec) -> tuple[list[Gate], list]:
    """Trace the spec's qfunc into a gate list with parameter sources, and its observables.

    The qfunc is traced twice with *tagged* parameters: every encoding angle and every weight is
    replaced by a unique number (two different tag sets for the two traces). Each gate parameter in
    the resulting tape is then looked up among the tags, which says where it comes from
    (``angles[..., layer, i]`` or ``weights.flat[k]``); a parameter found in neither trace must be the
    same number in both (a constant, e.g. ``pi``), otherwise the circuit computes on its parameters
    inside the qfunc and the tracer refuses it rather than guess. Templates (``StronglyEntanglingLayers``,
    ``Rot`` ...) are decomposed with PennyLane's own decompositions until every gate is one the simulator
    knows.
    """
    angle_shape = (spec.n_encoding_layers, spec.n_inputs)
    n_angle = int(np.prod(angle_shape))
    n_weight = int(np.prod(spec.weight_shape))
    qfunc = spec.qfunc()
    traces = []
    for base_a, base_w in _TAG_BASES:
        tape = qml.tape.make_qscript(qfunc)(_tags(angle_shape, base_a), _tags(spec.weight_shape, base_w))
        traces.append((tape, base_a, base_w))
    flat = [_flatten_ops(t.operations) for t, _, _ in traces]
    if len(flat[0]) != len(flat[1]):
        raise QRLError("the circuit's gate sequence depends on its parameter values; the torch backend "
                       "needs a fixed gate sequence; try device='lightning.qubit'")

    def source(v0: float, v1: float) -> Source:
        (_, a0, w0), (_, a1, w1) = traces
        for kind, b0, b1, n in (("angle", a0, a1, n_angle), ("weight", w0, w1, n_weight)):
            k0, k1 = b0 - v0, b1 - v1
            if 0 <= k0 < n and k0 == k1 and float(k0).is_integer():
                return Source(kind, int(k0))
        if v0 == v1:
            return Source("const", value=v0)
        raise QRLError("a gate angle is computed from the parameters inside the circuit; the torch "
                       "backend needs each angle to be one input angle, one weight or a constant; "
                       "try device='lightning.qubit'")

    gates = []
    for op0, op1 in zip(*flat, strict=True):
        if op0.name != op1.name or op0.wires != op1.wires:
            raise QRLError("the circuit's gate sequence depends on its parameter values; "
                           "try device='lightning.qubit'")
        wires = tuple(int(w) for w in op0.wires)
        if op0.name in PARAMETRIC_1Q:
            params = tuple(source(float(np.asarray(p0)), float(np.asarray(p1)))
                           for p0, p1 in zip(op0.data, op1.data, strict=True))
            if all(p.kind == "const" for p in params):
                gates.append(Gate("const", wires, (), qml.matrix(op0)))
            else:
                gates.append(Gate(op0.name, wires, params))
        else:
            gates.append(Gate("const", wires, (), qml.matrix(op0)))
    return gates, traces[0][0].observables


def z_diagonal(obs, n_qubits: int) -> np.ndarray:
    """Eigenvalues of a sum of Z-strings over the computational basis, shape ``(2**n,)``.

    A readout is then ``|psi|^2 @ D`` (:func:`qrl.simulator.gates.z_expectation`), ``D`` holding the
    diagonals of the observables as columns.
    """
    rep = obs.pauli_rep
    if rep is None:
        raise QRLError(f"observable {obs} has no Pauli form; the torch backend reads out Z-type observables "
                       f"only; try device='lightning.qubit'")
    bits = (np.arange(2**n_qubits)[:, None] >> (n_qubits - 1 - np.arange(n_qubits))[None, :]) & 1
    signs = 1.0 - 2.0 * bits  # (2**n, n): eigenvalue of Z_w on each basis state
    diag = np.zeros(2**n_qubits)
    for word, coeff in rep.items():
        term = np.full(2**n_qubits, float(np.real(coeff)))
        for wire, letter in word.items():
            if letter != "Z":
                raise QRLError(f"observable {obs} contains Pauli {letter}; the torch backend reads out "
                               f"Z-type observables only; try device='lightning.qubit'")
            term = term * signs[:, int(wire)]
        diag += term
    return diag
