"""Cost accounting: circuits a run executed, and their QPU time and price on a hardware device class."""

from __future__ import annotations

from dataclasses import dataclass

from qrl.backends.hardware import check_size, qiskit_backend, snapshot_for
from qrl.errors import QRLError
from qrl.nn import VQC


def circuit_executions(policy) -> int:
    """Circuits run by the policy so far: one per sample of every VQC forward pass (training, rollouts,
    evaluations, target networks), not counting the extra evaluations a hardware gradient would need."""
    return sum(getattr(m, "n_executions", 0) for m in policy.modules() if isinstance(m, VQC))


def shift_parameters(spec) -> int:
    """Gate angles that depend on trainable parameters: each needs two shifted circuits per sample for
    a parameter-shift gradient (ansatz rotations, and encoding gates when lambda is trainable; for a user's
    circuit, every gate parameter computed from its inputs or weights)."""
    if hasattr(spec, "trainable_gate_angles"):
        return spec.trainable_gate_angles
    counts = spec.parameter_counts()
    return counts["rotations"] + counts["input_scaling"]


def circuits_per_gradient_sample(spec, diff_method: str | None) -> int:
    """Extra circuits a hardware gradient runs per differentiated sample: 2 for SPSA, else the
    parameter-shift rule's ``2 x shift_parameters`` (what exact backprop/adjoint stand in for)."""
    return 2 if diff_method == "spsa" else 2 * shift_parameters(spec)


def run_cost(policy) -> dict:
    """Circuits a training run executed, and what it would have cost on hardware (for results.json).

    A policy decision runs one circuit per VQC (its commuting Z-type observables share the shots); a
    gradient of a circuit with ``P`` trainable gate angles by the parameter-shift rule runs ``2 P`` more
    per sample (two shifted circuits per angle; with SPSA, 2 per sample).

    ``circuit_executions``: one per sample of every VQC forward pass (rollouts, updates, evaluations,
    targets). ``gradient_samples``: the samples of passes that were differentiated. On hardware each of
    those also runs :func:`circuits_per_gradient_sample` circuits, giving ``hardware_circuits``.
    """
    circuits = {"circuit_executions": 0, "gradient_samples": 0, "gradient_circuits": 0}
    shift = shots = None
    for m in policy.modules():
        if isinstance(m, VQC):
            circuits["circuit_executions"] += getattr(m, "n_executions", 0)
            samples = getattr(m, "n_gradient_samples", 0)
            circuits["gradient_samples"] += samples
            circuits["gradient_circuits"] += samples * circuits_per_gradient_sample(m.spec, m.diff_method)
            shift = max(shift or 0, shift_parameters(m.spec))
            shots = getattr(m, "shots", None) or shots
    hardware = circuits["circuit_executions"] + circuits["gradient_circuits"]
    return circuits | {"shift_parameters": shift, "hardware_circuits": hardware, "shots_per_circuit": shots,
                       "shots": hardware * shots if shots else None}


@dataclass(frozen=True)
class DeviceClass:
    """Timing and price assumptions for a family of QPUs (order of magnitude; queueing and job latency
    are not QPU time and are not modelled).

    - IBM (``qiskit.remote@ibm_*``, ``qiskit.aer@Fake*``): one shot takes the transpiled circuit's
      scheduled duration from the snapshot's calibration data (``QuantumCircuit.estimate_duration``) plus
      the snapshot's default repetition delay (250 us on current chips). Per-job set-up time is not
      modelled, so the estimate is a lower bound. Price: IBM Quantum pay-as-you-go, USD 1.60 per second of
      QPU usage (USD 96 per minute, list price 2024-2025).
    - IonQ Aria (``ionq.qpu@aria-*``, Braket ARNs containing ``ionq/Aria``): gates run strictly in sequence
      and Z rotations are virtual (IonQ's hardware best-practices guide); 135 us per one-qubit gate, 600 us
      per two-qubit (MS) gate, 300 us readout, 20 us reset (the "system timing" IonQ publishes for Aria,
      e.g. on Azure Quantum's IonQ provider page; check the current numbers). Gates are counted after
      decomposing to {RX, RY, RZ, CNOT, CZ}: one MS gate per two-qubit gate (all-to-all connectivity, no
      routing), RZ free (a phase update in software), the other one-qubit gates one GPI/GPI2 each. Price:
      Amazon Braket, USD 0.30 per task (one circuit) plus USD 0.03 per shot (list price 2024-2025).
    """

    name: str
    description: str
    price_per_second: float = 0.0  # USD per second of QPU time
    price_per_task: float = 0.0  # USD per circuit submitted
    price_per_shot: float = 0.0  # USD per shot
    t_1q: float = 0.0  # seconds per one-qubit gate (sequential devices)
    t_2q: float = 0.0
    t_readout: float = 0.0
    t_reset: float = 0.0


DEVICE_CLASSES = {
    "ibm": DeviceClass("ibm", "IBM Quantum (timing from the snapshot's calibration)", price_per_second=1.60),
    "ionq-aria": DeviceClass("ionq-aria", "IonQ Aria (trapped ions, all-to-all)", price_per_task=0.30,
                             price_per_shot=0.03, t_1q=135e-6, t_2q=600e-6, t_readout=300e-6, t_reset=20e-6),
}


def device_class(name: str) -> DeviceClass:
    base, _, target = name.partition("@")
    if snapshot_for(name):
        return DEVICE_CLASSES["ibm"]
    if (base.startswith("ionq.") and target.lower().startswith("aria")) or "ionq/aria" in target.lower():
        return DEVICE_CLASSES["ionq-aria"]
    raise QRLError(f"no timing model for {name!r}; expected an IBM machine (qiskit.remote@ibm_brisbane, "
                   f"qiskit.aer@FakeManilaV2) or IonQ Aria (ionq.qpu@aria-1)")


@dataclass
class Estimate:
    circuits: int
    shots: int
    qpu_seconds: float
    price: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.circuits + other.circuits, self.shots + other.shots,
                        self.qpu_seconds + other.qpu_seconds, self.price + other.price)

    def __str__(self) -> str:
        return (f"{format_count(self.circuits)} circuits, {format_count(self.shots)} shots, "
                f"QPU time ~{format_duration(self.qpu_seconds)}, ~USD {format_count(self.price)}")


def estimate(cls: DeviceClass, circuits: int, shots: int, seconds_per_shot: float) -> Estimate:
    """QPU time and list price of ``circuits`` circuits of ``shots`` shots each."""
    seconds = circuits * shots * seconds_per_shot
    price = seconds * cls.price_per_second + circuits * (cls.price_per_task + shots * cls.price_per_shot)
    return Estimate(circuits, circuits * shots, seconds, price)


def format_count(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}" if isinstance(x, float) and x != int(x) else f"{int(x)}"


def format_duration(seconds: float) -> str:
    for unit, size in (("years", 3.156e7), ("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e3:.3g} ms"


# -- dry runs ----------------------------------------------------------------------------------------


@dataclass
class Transpiled:
    """One policy circuit as the device would run it. A circuit whose measurements are not qubit-wise
    commuting runs as ``circuits`` circuits per sample, one per measurement group: then ``depth`` is the
    deepest's, the gate counts and ``seconds_per_shot`` (one shot of each) their sums, the drawing the first's."""

    device: str
    summary: str  # machine, qubits used
    depth: int
    two_qubit_gates: int
    gate_counts: dict[str, int]
    seconds_per_shot: float
    drawing: str
    circuits: int = 1


_NOT_GATES = {"measure", "reset", "delay", "id", "barrier", "if_else", "for_loop", "switch_case", "while_loop"}


def transpile_for(spec, name: str, inputs, weights) -> Transpiled:
    """The circuit of ``spec`` for one sample, compiled for device ``name`` offline: nothing is submitted
    and no credentials are needed. ``inputs``: the circuit's inputs, shape ``spec.input_shape`` (a
    built-in circuit's encoding angles, a user's mapped features); ``weights``: the weight arrays in
    ``spec.weight_shapes`` order (one array alone stands for ``[array]``)."""
    import pennylane as qml

    cls = device_class(name)
    tape = qml.tape.make_qscript(spec.qfunc())(inputs, *circuit_weight_list(spec, weights))
    tapes, _ = qml.transforms.split_non_commuting(tape, grouping_strategy="qwc")
    tapes = [tape] if len(tapes) == 1 else list(tapes)  # one group: the tape as it was written
    snapshot = snapshot_for(name)
    if snapshot:
        parts = [_ibm_transpiled(t, name, snapshot, spec.n_qubits) for t in tapes]
    else:
        parts = [_sequential_transpiled(t, name, cls) for t in tapes]
    if len(parts) == 1:
        return parts[0]
    counts: dict[str, int] = {}
    for part in parts:
        for gate, k in part.gate_counts.items():
            counts[gate] = counts.get(gate, 0) + k
    return Transpiled(
        device=name, summary=f"{parts[0].summary}; {len(parts)} circuits per sample (measurements in "
                             f"{len(parts)} qubit-wise commuting groups)",
        depth=max(p.depth for p in parts), two_qubit_gates=sum(p.two_qubit_gates for p in parts),
        gate_counts=counts, seconds_per_shot=sum(p.seconds_per_shot for p in parts), drawing=parts[0].drawing,
        circuits=len(parts))


def _ibm_transpiled(tape, name: str, snapshot: str, n_qubits: int) -> Transpiled:
    """One tape transpiled by Qiskit for an IBM snapshot; timing from its calibration."""
    import pennylane as qml

    try:
        from pennylane_qiskit.converter import QISKIT_OPERATION_MAP, circuit_to_qiskit
        from qiskit import transpile
    except ImportError as exc:
        raise QRLError(f"a dry run for {name} transpiles with Qiskit; try pip install 'qrl[hardware]'") from exc
    chip = qiskit_backend(f"qiskit.aer@{snapshot}")
    check_size(f"qiskit.aer@{snapshot}", n_qubits)
    (tape,), _ = qml.transforms.decompose(tape, gate_set=set(QISKIT_OPERATION_MAP))  # e.g. Rot, CRot
    circuit = transpile(circuit_to_qiskit(tape, n_qubits, diagonalize=True, measure=True), backend=chip,
                        optimization_level=1, seed_transpiler=0)
    rep_delay = float(getattr(chip, "_conf_dict", {}).get("default_rep_delay", 250.0)) * 1e-6
    ops = {k: int(v) for k, v in circuit.count_ops().items()}
    family = getattr(chip, "processor_type", None) or {}
    kind = f"{family.get('family', 'IBM')} r{family.get('revision', '?')}" if family else "IBM"
    return Transpiled(
        device=name, summary=f"{kind}, snapshot {snapshot} ({chip.num_qubits} qubits), native gates "
                             f"{', '.join(sorted(set(chip.operation_names) - _NOT_GATES))}",
        depth=circuit.depth(), two_qubit_gates=circuit.num_nonlocal_gates(), gate_counts=ops,
        seconds_per_shot=circuit.estimate_duration(chip.target, unit="s") + rep_delay,
        drawing=str(circuit.draw(output="text", idle_wires=False, fold=100)))


def _sequential_transpiled(tape, name: str, cls: DeviceClass) -> Transpiled:
    """One tape counted for a device that runs gates one after another (IonQ): decomposed to {RX, RY, RZ,
    CNOT, CZ} with the rotations into its measurement basis, RZ free."""
    import pennylane as qml

    tape = qml.tape.QuantumScript(tape.operations + tape.diagonalizing_gates, tape.measurements)
    (tape,), _ = qml.transforms.decompose(tape, gate_set={"RX", "RY", "RZ", "CNOT", "CZ"})
    resources = tape.specs["resources"]
    n2 = resources.gate_sizes.get(2, 0)
    n1 = resources.gate_sizes.get(1, 0) - resources.gate_types.get("RZ", 0)  # Z rotations are phase updates
    return Transpiled(
        device=name, summary=f"{cls.description}; two-qubit gates counted as MS gates",
        depth=resources.depth, two_qubit_gates=n2, gate_counts=dict(resources.gate_types),
        seconds_per_shot=n1 * cls.t_1q + n2 * cls.t_2q + cls.t_readout + cls.t_reset,
        drawing=qml.drawer.tape_text(tape, decimals=2, max_length=100))


def circuit_weight_list(spec, weights) -> list:
    """``weights`` as a list in ``spec.weight_shapes`` order: a sequence of arrays as it is, one array
    (a built-in circuit's ``weights``) as ``[array]``; refused when the count or a shape differs."""
    import numpy as np

    listed = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    shapes = list(spec.weight_shapes.values())
    got = [tuple(np.shape(w)) for w in listed]
    if got != [tuple(s) for s in shapes]:
        raise QRLError(f"expected weights of shapes {[tuple(s) for s in shapes]} (spec.weight_shapes, in order); "
                       f"got {got}; try [w.detach().numpy() for w in vqc.circuit_parameters()]")
    return listed


def format_gate_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def per_circuit(seconds_per_shot: float, shots: int) -> str:
    return (f"{format_duration(seconds_per_shot)} per shot, {format_duration(seconds_per_shot * shots)} per circuit "
            f"at {shots} shots")
