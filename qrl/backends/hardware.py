"""Real devices: credentials, hardware device names, dry runs and cost accounting.

Hardware is reached through PennyLane plugins, named ``<plugin device>@<target>``:

============================================  ===========================================  =====================
device name                                   what it is                                   credentials (env)
============================================  ===========================================  =====================
``qiskit.aer@FakeManilaV2``                   Aer with an IBM snapshot's noise, offline    none
``qiskit.remote@ibm_brisbane``                an IBM Quantum backend (pennylane-qiskit)    ``QISKIT_IBM_TOKEN``
``ionq.qpu@aria-1``                           an IonQ QPU (pennylane-ionq)                 ``IONQ_API_KEY``
``braket.aws.qubit@arn:aws:braket:...``       any Amazon Braket QPU (amazon-braket plugin) AWS credentials
============================================  ===========================================  =====================

Credentials are read from environment variables when the device is created and handed to the plugin;
they are never written to configs, policies or run folders (a device is saved as its name).

Cost. A policy decision runs one circuit per VQC (its commuting Z-type observables share the shots); a
gradient of a circuit with ``P`` trainable gate angles by the parameter-shift rule runs ``2 P`` more per
sample (two shifted circuits per angle; with SPSA, 2 per sample). :func:`run_cost` records both counts
for a training run; :func:`estimate` turns circuit counts into QPU time and list price for a device class.

QPU-time model (documented assumptions, order-of-magnitude; queueing and job latency are not QPU
time and are not modelled):

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

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from qrl.errors import QRLError

# device-name prefix -> (environment variables, any of which is enough; how to set them)
CREDENTIALS = {
    "qiskit.remote": (("QISKIT_IBM_TOKEN",),
                      "export QISKIT_IBM_TOKEN=<IBM Quantum API key> (and QISKIT_IBM_INSTANCE=<instance CRN>)"),
    "ionq.": (("IONQ_API_KEY",), "export IONQ_API_KEY=<IonQ API key>"),
    "braket.aws.": (("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
                    "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=... "
                    "(or AWS_PROFILE=<profile> from ~/.aws/credentials)"),
}
# plugin device -> example of the name qrl expects (the part after @ says which machine)
TARGET_EXAMPLES = {
    "qiskit.aer": "qiskit.aer@FakeManilaV2",
    "qiskit.remote": "qiskit.remote@ibm_brisbane",
    "ionq.qpu": "ionq.qpu@aria-1",
    "braket.aws.qubit": "braket.aws.qubit@arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1",
}
HARDWARE_PREFIXES = ("qiskit.remote", "ionq.", "braket.aws.")


def is_hardware(name: str) -> bool:
    """A device that samples like hardware: a real QPU plugin or an IBM device snapshot."""
    return "@" in name or name.startswith(HARDWARE_PREFIXES)


def check_credentials(device: str) -> None:
    """Raise with the variables to set when a real device's credentials are not in the environment."""
    for prefix, (variables, how) in CREDENTIALS.items():
        if device.startswith(prefix):
            if prefix == "braket.aws." and (Path.home() / ".aws" / "credentials").is_file():
                return
            if not any(os.environ.get(v) for v in variables):
                raise QRLError(f"{device} needs credentials; {' or '.join(variables)} is not set; try {how}")


def device_kwargs(name: str) -> dict:
    """Keyword arguments for ``qml.device`` of a hardware name ``<device>@<target>`` (credentials
    from the environment, machines looked up); ``{}`` for other names."""
    base, _, target = name.partition("@")
    if base in ("qiskit.remote", "braket.aws.qubit") and not target:
        raise QRLError(f"{base} needs the machine in the name; got {name!r}; try {TARGET_EXAMPLES[base]}")
    check_credentials(base)
    if not target:
        return {}
    if target.startswith("Fake") and base != "qiskit.aer":
        raise QRLError(f"a device snapshot (@{target}) runs on qiskit.aer; got {name}; try qiskit.aer@{target}")
    if base.startswith("qiskit."):
        # Qiskit's transpiler maps, routes and compiles to the native gates (seeded: reproducible layouts)
        return {"backend": qiskit_backend(name), "optimization_level": 1, "seed_transpiler": 0}
    if base.startswith("ionq."):
        return {"backend": target, "api_key": os.environ["IONQ_API_KEY"]}
    if base.startswith("braket."):
        return {"device_arn": target}
    raise QRLError(f"device {name!r}: qrl knows no machine names for {base}; expected one of "
                   f"{', '.join(TARGET_EXAMPLES.values())}")


@functools.lru_cache(maxsize=8)
def qiskit_backend(name: str):
    """The Qiskit backend behind ``qiskit.aer@Fake...`` (an offline snapshot) or ``qiskit.remote@ibm_...``
    (IBM Quantum, credentials from ``QISKIT_IBM_TOKEN``); built once per process."""
    base, _, target = name.partition("@")
    if base == "qiskit.aer":
        return fake_ibm_backend(target, device=name)
    if base != "qiskit.remote":
        fix = f"qiskit.aer@{target}" if target.startswith("Fake") else f"qiskit.remote@{target}"
        raise QRLError(f"an IBM machine (@{target}) runs on qiskit.aer (snapshots) or qiskit.remote; got {name}; "
                       f"try {fix}")
    check_credentials(base)
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService
    except ImportError as exc:
        raise QRLError(f"{name} needs qiskit-ibm-runtime; try pip install 'qrl[hardware]'") from exc
    try:
        service = QiskitRuntimeService(channel=os.environ.get("QISKIT_IBM_CHANNEL", "ibm_quantum_platform"),
                                       token=os.environ["QISKIT_IBM_TOKEN"],
                                       instance=os.environ.get("QISKIT_IBM_INSTANCE") or None)
        return service.backend(target)
    except Exception as exc:  # network, authentication, unknown backend: all reported the same way
        raise QRLError(f"could not reach IBM backend {target!r}: {exc}; check QISKIT_IBM_TOKEN, "
                       f"QISKIT_IBM_INSTANCE and the backend name") from exc


def fake_ibm_backend(snapshot: str, device: str | None = None):
    """An offline IBM device snapshot, ``qiskit_ibm_runtime.fake_provider.<snapshot>()``."""
    try:
        from qiskit_ibm_runtime import fake_provider
    except ImportError as exc:
        raise QRLError(f"{device or snapshot} needs qiskit-ibm-runtime; try pip install 'qrl[hardware]'") from exc
    if not snapshot.startswith("Fake") or not hasattr(fake_provider, snapshot):
        names = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n.endswith("V2"))
        raise QRLError(f"unknown IBM device snapshot {snapshot!r}; expected a class of "
                       f"qiskit_ibm_runtime.fake_provider such as {', '.join(names[:6])}, ...")
    return getattr(fake_provider, snapshot)()


def snapshot_for(name: str) -> str | None:
    """The offline snapshot standing in for an IBM device name in a dry run (``ibm_brisbane`` ->
    ``FakeBrisbane``), or ``None`` if the name is no IBM device."""
    base, _, target = name.partition("@")
    if base == "qiskit.aer" and target:
        return target
    if base == "qiskit.remote" and target.startswith("ibm_"):
        return "Fake" + target.removeprefix("ibm_").capitalize()
    return None


def check_size(name: str, n_qubits: int) -> None:
    """Refuse a circuit wider than the Qiskit machine ``name`` (the plugin's own error names no fix)."""
    if name.startswith("qiskit.") and "@" in name:
        chip = qiskit_backend(name)
        if n_qubits > chip.num_qubits:
            raise QRLError(f"{name} has {chip.num_qubits} qubits; the circuit needs {n_qubits}; try a larger "
                           f"machine (e.g. qiskit.aer@FakeGuadalupeV2, 16 qubits)")


# -- cost accounting ---------------------------------------------------------------------------------


def shift_parameters(spec) -> int:
    """Gate angles that depend on trainable parameters: each needs two shifted circuits per sample for
    a parameter-shift gradient (ansatz rotations, and encoding gates when lambda is trainable)."""
    counts = spec.parameter_counts()
    return counts["rotations"] + counts["input_scaling"]


def circuits_per_gradient_sample(spec, diff_method: str | None) -> int:
    """Extra circuits a hardware gradient runs per differentiated sample: 2 for SPSA, else the
    parameter-shift rule's ``2 x shift_parameters`` (what exact backprop/adjoint stand in for)."""
    return 2 if diff_method == "spsa" else 2 * shift_parameters(spec)


def run_cost(policy) -> dict:
    """Circuits a training run executed, and what it would have cost on hardware (for results.json).

    ``circuit_executions``: one per sample of every VQC forward pass (rollouts, updates, evaluations,
    targets). ``gradient_samples``: the samples of passes that were differentiated. On hardware each of
    those also runs :func:`circuits_per_gradient_sample` circuits, giving ``hardware_circuits``.
    """
    from qrl.nn import VQC

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
    """Timing and price assumptions for a family of QPUs (see the module docstring for sources)."""

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
        return (f"{_count(self.circuits)} circuits, {_count(self.shots)} shots, "
                f"QPU time ~{_duration(self.qpu_seconds)}, ~USD {_count(self.price)}")


def estimate(cls: DeviceClass, circuits: int, shots: int, seconds_per_shot: float) -> Estimate:
    """QPU time and list price of ``circuits`` circuits of ``shots`` shots each."""
    seconds = circuits * shots * seconds_per_shot
    price = seconds * cls.price_per_second + circuits * (cls.price_per_task + shots * cls.price_per_shot)
    return Estimate(circuits, circuits * shots, seconds, price)


def _count(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}" if isinstance(x, float) and x != int(x) else f"{int(x)}"


def _duration(seconds: float) -> str:
    for unit, size in (("years", 3.156e7), ("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e3:.3g} ms"


# -- dry runs ----------------------------------------------------------------------------------------


@dataclass
class Transpiled:
    """One policy circuit as the device would run it."""

    device: str
    summary: str  # machine, qubits used
    depth: int
    two_qubit_gates: int
    gate_counts: dict[str, int]
    seconds_per_shot: float
    drawing: str


_NOT_GATES = {"measure", "reset", "delay", "id", "barrier", "if_else", "for_loop", "switch_case", "while_loop"}


def transpile_for(spec, name: str, angles, weights) -> Transpiled:
    """The circuit of ``spec`` for one sample (``angles``: ``(n_encoding_layers, n_inputs)``), compiled
    for device ``name`` offline: nothing is submitted and no credentials are needed."""
    import pennylane as qml

    cls = device_class(name)
    tape = qml.tape.make_qscript(spec.qfunc())(angles, weights)
    snapshot = snapshot_for(name)
    if snapshot:
        try:
            from pennylane_qiskit.converter import circuit_to_qiskit
            from qiskit import transpile
        except ImportError as exc:
            raise QRLError(f"a dry run for {name} transpiles with Qiskit; try pip install 'qrl[hardware]'") from exc
        chip = qiskit_backend(f"qiskit.aer@{snapshot}")
        check_size(f"qiskit.aer@{snapshot}", spec.n_qubits)
        circuit = transpile(circuit_to_qiskit(tape, spec.n_qubits, diagonalize=True, measure=True), backend=chip,
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
    (tape,), _ = qml.transforms.decompose(tape, gate_set={"RX", "RY", "RZ", "CNOT", "CZ"})
    resources = tape.specs["resources"]
    n2 = resources.gate_sizes.get(2, 0)
    n1 = resources.gate_sizes.get(1, 0) - resources.gate_types.get("RZ", 0)  # Z rotations are phase updates
    return Transpiled(
        device=name, summary=f"{cls.description}; two-qubit gates counted as MS gates",
        depth=resources.depth, two_qubit_gates=n2, gate_counts=dict(resources.gate_types),
        seconds_per_shot=n1 * cls.t_1q + n2 * cls.t_2q + cls.t_readout + cls.t_reset,
        drawing=qml.drawer.tape_text(tape, decimals=2, max_length=100))


def format_gate_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def per_circuit(seconds_per_shot: float, shots: int) -> str:
    return f"{_duration(seconds_per_shot)} per shot, {_duration(seconds_per_shot * shots)} per circuit at {shots} shots"


__all__ = ["CREDENTIALS", "DEVICE_CLASSES", "DeviceClass", "Estimate", "Transpiled", "check_credentials",
           "check_size", "device_class", "device_kwargs", "estimate", "is_hardware", "run_cost",
           "shift_parameters", "transpile_for"]


def dry_run(run_dir, device: str, shots: int, episodes: int = 20, seed: int | None = None) -> str:
    """What evaluating (and training) run ``run_dir`` on ``device`` would run and cost; nothing is
    submitted and no credentials are needed.

    Each policy circuit is compiled for the device with seeded random angles in ``[-pi, pi)`` (depth and
    gate counts do not depend on the values, except for angles a compiler could drop). The evaluation's
    circuits are counted by running it on the exact local simulator; the training run's come from its
    ``results.json`` (``cost``, written since cost accounting exists).
    """
    import json

    import torch

    from qrl.sb3.networks import policy_circuits
    from qrl.train import evaluate_model, load_model

    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QRLError(f"a dry run prices shots; expected --shots N (N >= 1); got {shots!r}; try --shots 1024")
    cls = device_class(device)
    model, config = load_model(run_dir)
    circuits = policy_circuits(model.policy)  # targets are copies of circuits listed
    if not circuits:
        raise QRLError(f"run {run_dir} has no circuit (policy {config.policy}); a dry run prices VQC policies")
    gen = torch.Generator().manual_seed(0)
    lines = [f"dry run on {device}: nothing is submitted", f"device:     {cls.description}"]
    compiled = {}
    for name, vqc in circuits.items():
        spec = vqc.spec
        angles = (torch.rand((spec.n_encoding_layers, spec.n_inputs), generator=gen, dtype=torch.float64) * 2 - 1)
        t = transpile_for(spec, device, angles.numpy() * math.pi, vqc.weights.detach().double().numpy())
        compiled[name] = t
        lines += [f"circuit {name}: {spec.n_qubits} qubits, {shift_parameters(spec)} trainable gate angles; "
                  f"on the device: depth {t.depth}, {t.two_qubit_gates} two-qubit gates",
                  f"  machine: {t.summary}",
                  f"  gates:   {format_gate_counts(t.gate_counts)}",
                  f"  time:    {per_circuit(t.seconds_per_shot, shots)}"]
    _, _, executions = evaluate_model(model, config, run_dir, episodes, seed)
    ran = {name: n for name, n in executions.items() if n}
    total = sum((estimate(cls, n, shots, compiled[name].seconds_per_shot) for name, n in ran.items()),
                Estimate(0, 0, 0.0, 0.0))
    plural = "s" if episodes != 1 else ""
    lines.append(f"evaluation, {episodes} episode{plural} (circuits counted on the exact simulator): {total}")
    results = Path(run_dir) / "results.json"
    cost = json.loads(results.read_text()).get("cost") if results.is_file() else None
    if cost:
        seconds = max(t.seconds_per_shot for t in compiled.values())
        e = estimate(cls, cost["hardware_circuits"], shots, seconds)
        lines.append(f"training this run on the device ({_count(cost['circuit_executions'])} forward circuits + "
                     f"{_count(cost['gradient_circuits'])} for parameter-shift gradients, {cost['shift_parameters']} "
                     f"angles x 2 per sample; the longest circuit's time): {e}")
    else:
        lines.append("training: not recorded (results.json has no 'cost'; runs trained since cost accounting have it)")
    name, t = next(iter(compiled.items()))
    lines += [f"compiled circuit ({name}):", t.drawing]
    return "\n".join(lines)


# -- robustness sweeps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One evaluation setting of a sweep: shots (``None``: exact) and noise (``{channel: p}``)."""

    shots: int | None = None
    noise: dict | None = None


@dataclass
class SweepRow:
    point: SweepPoint
    value: float  # the swept quantity's value at this point
    mean: float
    std: float
    executions: int


def sweep(run_dir, points: list[SweepPoint], device: str | None, episodes: int = 20, seed: int | None = None,
          n_envs: int = 1, log=None) -> list[SweepRow]:
    """Evaluate a run at each point (same episodes and seed, so only the swept quantity changes)."""
    import time

    from qrl.train import evaluate_run

    varying = [k for k in ("shots", *sorted({c for p in points for c in (p.noise or {})}))
               if len({(p.shots if k == "shots" else (p.noise or {}).get(k)) for p in points}) > 1]
    if len(points) < 2 or len(varying) != 1:
        raise QRLError(f"a sweep varies one quantity over several values; got {len(points)} points varying "
                       f"{varying or 'nothing'}")
    key = varying[0]
    rows = []
    for i, point in enumerate(points, 1):
        started = time.perf_counter()
        mean, std, _, executions = evaluate_run(Path(run_dir), episodes=episodes, device=device, seed=seed,
                                                shots=point.shots, noise=point.noise, n_envs=n_envs)
        value = point.shots if key == "shots" else point.noise[key]
        rows.append(SweepRow(point, float(value), mean, std, executions))
        if log is not None:
            log(f"sweep {i}/{len(points)}: {key} {value:g} -> return {mean:.1f} +- {std:.1f} "
                f"({time.perf_counter() - started:.0f} s)")
    return rows
