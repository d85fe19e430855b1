"""From a circuit to what the simulator runs: gates, a compiled program for their angles, and the measurements.

The circuit's PennyLane qfunc is run on recorded tensors (:mod:`qrl.simulator.record`), never on a device:
every gate parameter is an expression of the inputs and weights (compiled by :mod:`qrl.simulator.angles`)
or a constant, and templates are decomposed into the gates the simulator knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pennylane as qml
import torch

from qrl.errors import QRLError
from qrl.simulator.angles import AngleProgram
from qrl.simulator.record import Recorder, Ref

PARAMETRIC_1Q = frozenset({"RX", "RY", "RZ", "PhaseShift", "Rot"})
"""Parametric gates the simulator runs as they are; every other gate is decomposed or constant."""

CONTROLLED_ROTATIONS = frozenset({"CRX", "CRY", "CRZ", "CRot"})
"""Controlled rotations: decomposed as every other gate (PennyLane's decomposition: one-qubit gates on the target
between two CNOTs), and their gates tagged with the gate they came from (:attr:`Gate.controlled`) where the gates'
product is the identity when the control is 0, so that a program may apply them where the control is 1 only."""

_DROPPED = frozenset({"GlobalPhase", "Identity", "Barrier", "Snapshot"})  # no effect on any measurement
_TRACE_BATCHES = (3, 5)  # two recordings, at two batch sizes and two sets of random values


@dataclass(frozen=True)
class Source:
    """Where a gate parameter comes from: ``kind`` is "angle", "weight" or "const".

    "angle": a per-sample value (it depends on the inputs), "weight": a value shared by the batch (it
    depends on the weights only); ``index`` is its position in the outputs of the circuit's
    :class:`qrl.simulator.angles.AngleProgram`. "const": the number ``value``.
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
    controlled: tuple[int, int, int] | None = None
    """(group, control wire, target wire) for the gates of one controlled rotation's decomposition
    (:data:`CONTROLLED_ROTATIONS`; ``group`` tells two such gates apart): one-qubit gates on the target and an even
    number of CNOTs from the control to it, the target's gates multiplying to the identity where the control is 0;
    ``None`` for every other gate."""


@dataclass
class TracedCircuit:
    """A circuit as the simulator runs it: gates, the program computing their angles, the measurements."""

    gates: list[Gate]
    angles: AngleProgram
    measurements: list
    n_qubits: int


def _unsupported(op, why: str) -> QRLError:
    return QRLError(f"{op.name} on wires {op.wires.tolist()} is not supported by the torch backend ({why}); "
                    f"try device='lightning.qubit' or 'default.qubit' (any PennyLane device runs every gate)")


def _flatten_ops(ops, recorder: Recorder, tags: list) -> list:
    """Decompose until every op is a :data:`PARAMETRIC_1Q` gate or a gate with constant parameters; ``tags`` gets,
    per op returned, ``(group, control, target)`` for the gates of a controlled rotation's decomposition whose
    gates are all on the target or CNOTs from the control to it, an even number of those (:data:`CONTROLLED_ROTATIONS`),
    else ``None``."""
    out = []
    for op in ops:
        if op.name in _DROPPED:
            continue
        constant = not any(recorder.ref(p) is not None for p in op.data)
        if op.name in PARAMETRIC_1Q or (constant and op.has_matrix and getattr(op, "batch_size", None) is None):
            out.append(op)
            tags.append(None)
        elif op.has_decomposition:
            start = len(tags)
            parts = _flatten_ops(op.decomposition(), recorder, tags)
            control, target = (int(w) for w in op.wires) if op.name in CONTROLLED_ROTATIONS else (-1, -1)
            cnots = [p.name == "CNOT" and tuple(p.wires) == (control, target) for p in parts]
            if control >= 0 and sum(cnots) % 2 == 0 and all(c or tuple(p.wires) == (target,)
                                                            for c, p in zip(cnots, parts, strict=True)):
                tags[start:] = [(start, control, target)] * len(parts)
            out.extend(parts)
        else:
            raise _unsupported(op, "no matrix with constant parameters and no decomposition")
    return out


def _record(circuit, batch: int, seed: int):
    """Run the circuit's qfunc once on random tensors (float64), recording every torch call."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.rand((batch, *circuit.input_shape), generator=gen, dtype=torch.float64) * 2 - 1
    weights = {name: torch.rand(shape, generator=gen, dtype=torch.float64) * 4 - 2
               for name, shape in circuit.weight_shapes.items()}
    recorder, tags = Recorder(), []
    recorder.leaf(inputs, "inputs", batched=True)
    for name, w in weights.items():
        recorder.leaf(w, name, batched=False)
    with recorder:
        tape = qml.tape.make_qscript(circuit.qfunc())(inputs, *weights.values())
        ops = _flatten_ops(tape.operations, recorder, tags)
    if recorder.problems:
        raise QRLError(f"the torch backend cannot follow this circuit's angles: {recorder.problems[0]}; write "
                       f"angles as torch expressions of inputs and weights, or try device='lightning.qubit'")
    return recorder, ops, tape.measurements, {"inputs": inputs, **weights}, tags


def trace_circuit(circuit) -> TracedCircuit:
    """Trace a circuit into gates whose angles are compiled expressions of the inputs and weights.

    ``circuit`` has ``qfunc()`` (``f(inputs, *weights)`` in the order of ``weight_shapes``), ``input_shape``
    (one sample's), ``weight_shapes`` and ``n_qubits``. The qfunc is run twice on random tensors at two batch
    sizes while every torch call is recorded (:class:`qrl.simulator.record.Recorder`); PennyLane
    templates are decomposed until every gate is one the simulator knows. The angle program compiled from
    the first recording must reproduce every angle of the second, and both must have the same gates;
    otherwise the circuit is refused rather than misread.
    """
    (rec, ops, measurements, _, tags), (rec2, ops2, _, leaves2, _) = (_record(circuit, b, 11 + b)
                                                                       for b in _TRACE_BATCHES)
    if [(o.name, o.wires) for o in ops] != [(o.name, o.wires) for o in ops2]:
        raise QRLError("the circuit's gate sequence depends on its parameter values; the torch backend needs "
                       "a fixed gate sequence; try device='lightning.qubit'")
    params: dict[Ref, int] = {}
    layout = []  # per op and parameter: a constant number, None (a constant matrix) or (param, recorded value)
    for op, op2 in zip(ops, ops2, strict=True):
        entry = []
        for p, p2 in zip(op.data, op2.data, strict=True):
            ref, ref2 = rec.ref(p), rec2.ref(p2)
            if ref is None and ref2 is None and np.array_equal(np.asarray(p), np.asarray(p2)):
                entry.append(float(np.asarray(p)) if np.ndim(p) == 0 else None)
            elif ref is not None and ref2 is not None:
                entry.append((params.setdefault(ref, len(params)), p2))
            else:
                raise QRLError(f"a parameter of {op.name} on wires {op.wires.tolist()} changes with the inputs or "
                               f"weights in a way the torch backend cannot follow; try device='lightning.qubit'")
        layout.append(entry)
    program = AngleProgram(rec.nodes, list(params), _TRACE_BATCHES[0])
    _check_replay(program, layout, leaves2)
    tags = _identity_when_off(ops2, layout, tags)
    gates = []
    for op, entry, tag in zip(ops, layout, tags, strict=True):
        wires = tuple(int(w) for w in op.wires)
        if op.name not in PARAMETRIC_1Q or all(not isinstance(e, tuple) for e in entry):
            gates.append(Gate("const", wires, (), np.asarray(qml.matrix(op, wire_order=op.wires), dtype=complex),
                              controlled=tag))
            continue
        srcs = tuple(Source("const", value=e) if not isinstance(e, tuple) else
                     Source(program.kinds[e[0]], program.index[e[0]]) for e in entry)
        gates.append(Gate(op.name, wires, srcs, controlled=tag))
    return TracedCircuit(gates, program, list(measurements), circuit.n_qubits)


def _identity_when_off(ops, layout: list, tags: list) -> list:
    """``tags`` with each group's kept only where its one-qubit gates, as the programs apply them (a parametric
    ``PhaseShift`` without its global phase), multiply to the identity (to 1e-9) for every sample of the recording
    ``ops``: then the group does nothing where its control is 0."""
    kept, groups = list(tags), {}
    for i, t in enumerate(tags):
        if t is not None:
            groups.setdefault(t[0], []).append(i)
    for members in groups.values():
        product = torch.eye(2, dtype=torch.complex128)
        for i in members:
            if ops[i].name == "CNOT":
                continue
            m = torch.as_tensor(qml.matrix(ops[i]), dtype=torch.complex128)
            if ops[i].name == "PhaseShift" and any(isinstance(e, tuple) for e in layout[i]):
                m = m * torch.exp(-0.5j * torch.as_tensor(ops[i].data[0], dtype=torch.float64))[..., None, None]
            product = m @ product
        if not torch.allclose(product, torch.eye(2, dtype=torch.complex128).expand_as(product), rtol=0, atol=1e-9):
            for i in members:
                kept[i] = None
    return kept


def _check_replay(program: AngleProgram, layout: list, leaves: dict) -> None:
    """Every angle the program computes for the second recording's leaves equals the recorded one."""
    per_sample, shared = program(leaves)
    for entry in layout:
        for e in entry:
            if not isinstance(e, tuple):
                continue
            k, recorded = e
            got = per_sample[:, program.index[k]] if program.kinds[k] == "angle" else shared[program.index[k]]
            want = torch.as_tensor(recorded, dtype=torch.float64)
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-10, atol=1e-10):
                raise QRLError("the torch backend cannot follow how this circuit computes its angles (recomputed "
                               "angles differ from the circuit's own); try device='lightning.qubit'")


def trace_gates(spec) -> tuple[list[Gate], list]:
    """A built-in circuit's gates with sources indexing its flat angles ("angle") and weights ("weight").

    For :class:`qrl.simulator.BatchedStatevector`, which differentiates with respect to the weights
    themselves: every parameter must be one input angle, one weight or a constant.
    """
    traced = trace_circuit(spec)
    prog = traced.angles
    direct = {(prog.kinds[k], prog.index[k]): prog.direct(k) for k in range(len(prog.kinds))}
    gates = []
    for g in traced.gates:
        srcs = []
        for s in g.params:
            d = None if s.kind == "const" else direct[(s.kind, s.index)]
            if s.kind != "const" and (d is None or d[0] not in ("inputs", "weights")):
                raise QRLError("this simulator needs every gate angle to be one input angle, one weight or a "
                               "constant; the circuit computes some angles from them")
            srcs.append(s if d is None else Source("angle" if d[0] == "inputs" else "weight", d[1]))
        gates.append(Gate(g.name, g.wires, tuple(srcs), g.matrix))
    return gates, [m.obs for m in traced.measurements]
