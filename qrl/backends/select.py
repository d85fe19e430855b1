"""Choosing and creating a backend from a device name: ``"auto"``, ``"torch"`` or a PennyLane device."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import pennylane as qml

from qrl.backends.calls import CALL_MODEL_MAX_QUBITS, DEFAULT_CALL_MODEL, CallModel
from qrl.backends.chunks import Chunks, largest_batch_within
from qrl.backends.dispatch import (
    SMALL_BATCH_MAX,
    TINY_BATCH_MAX,
    AcceleratorDispatch,
    BatchDispatch,
)
from qrl.backends.hardware import check_size, device_kwargs, is_hardware
from qrl.backends.memory import format_bytes, physical_memory
from qrl.backends.torch import TorchStatevector, state_bytes
from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError

# `device="auto"` picks, for a circuit of n qubits, the backend that `qrl bench scaling` measured
# fastest at the largest measured size <= n (stored in qrl/data/crossovers.json by
# `qrl bench scaling --update-auto`); above the largest measured size, the one measured there.
# Without the file: torch up to AUTO_TORCH_MAX_QUBITS, Lightning above. A measurement at a batch of at
# most SMALL_BATCH_MAX samples is stored apart ("small_batch") and decides calls of that size (SB3
# rollouts); where it names another backend, auto runs each call on the one for its batch (BatchDispatch).
# A call whose program would not fit in memory (AUTO_MEMORY_FRACTION) runs in chunks that do (Chunks), or on
# Lightning (SPILL) where one sample does not.
AUTO_TORCH_MAX_QUBITS = 14
AUTO_MEMORY_FRACTION = 0.75
"""``device="auto"`` runs a call on a program that holds the state batch (the torch programs, the native kernel) only
where that program's estimated forward + backward (:meth:`TorchStatevector.gradient_bytes`) is within this fraction
of physical memory; a larger call runs on it in chunks of the largest batch that is (:class:`Chunks`; until
2026-12-05 on :data:`SPILL`, whose adjoint method holds a few state vectors whatever the batch, sample by sample).
On this 24 GiB machine at 26 qubits: the kernel for calls of up to 8 samples (16.2 GiB estimated, 13.4 GiB peak
measured at 8, ``scaling-20261205-092325.json``), in chunks of 8 beyond (32.4 GiB for 16 at once). Physical memory,
not what is free now, so that the chunks depend on the machine and the batch only and a seeded run stays
deterministic."""
SPILL = "lightning.qubit"
CROSSOVERS = Path(__file__).resolve().parents[1] / "data" / "crossovers.json"
NATIVE = "torch:native"
NATIVE_LARGE_BATCH_WORK_RATIO = 24
"""Calls of more than ``SMALL_BATCH_MAX`` samples run on the native kernel, from :data:`NATIVE_PASS_RATIO_MIN_QUBITS`
qubits, only where its work per pass of the torch program is at most this: its passes plus half a pass per rotation
(at update-sized batches a run of rotations costs arithmetic, not only memory traffic: fitted to the kernel's times
at 14 qubits and batch 64, where ``hea``, Meyer et al.'s circuit and ``chen_vqdqn`` came within 1% of passes + 0.55
rotations). The circuits measured at batch 64 at 12-16 qubits (README, "Where ``device="auto"`` takes it"): 7-16 for
``hea``, ``strongly_entangling``, Meyer et al.'s circuit, ``chen_vqdqn``, ``lockwood_si`` and ``born_parity``, all
as fast or faster on the kernel; 45-52 for the unentangled ``hsiao``, whose rotations the torch program multiplies
into one 2 x 2 per wire and applies four wires per pass (1.4x-1.7x faster than the kernel there)."""
NATIVE_LARGE_BATCH_WORK_RATIO_BY_QUBITS = {12: 46}
"""Where the limit of :data:`NATIVE_LARGE_BATCH_WORK_RATIO` differs by size. At 12 qubits a batch of 64 states (2 MiB
in complex64) stays in the L2 cache and the kernel's passes cost less: a user's circuit with one CNOT per layer
(``tests/circuit_shapes.py``, work 40.8 per torch pass) ran 1.35x faster on the kernel, ``hsiao`` (52) 1.22x slower
(batch 64, side by side, 2026-12-05). At 13 qubits the two were a tie (44.0) and 1.22x slower (42.2); at 14 the first
(37.8) ran 1.18x slower on the kernel, where the limit of 24 takes torch."""
NATIVE_FUSED_WORK_RATIO = (16, 11.0)
"""``(qubits, limit)``: from this many qubits, update-sized calls whose torch program is the fused one (blocks run in
groups) run on it where the kernel's work per torch pass exceeds this (:func:`_for_large_batches`). That program's
update-sized calls got faster after :data:`NATIVE_LARGE_BATCH_WORK_RATIO` was fitted (buffers kept from call to call,
per-sample products in blocks of rows, the adjoint method's overlaps). Timed at 64 samples, 16 and 18 qubits, on
2026-12-06 (README, "Update-sized calls from 16 qubits"): on the fused program 1.07x-1.82x faster than the kernel for
the six circuits of work 12.0-19.3 (Meyer et al.'s, ``phase_gates``, ``crx_chain``, ``two_cnot_rz``, ``zz_ring``,
``swap_multirz``), 1.35x and 1.04x slower for ``xx_yy_ring`` (9.4-9.6); where the torch program is the per-wire one,
the kernel was faster: 1.25x-2.83x at 14-18 qubits for ``hea``, ``strongly_entangling``, ``chen_vqdqn``,
``lockwood_si``, ``born_parity`` and ``jerbi_skolik`` (work 8.2-12.8), 1.31x-10x at 14 and 16 for ``toffoli_rot``,
``strong_template`` and ``iqp_template`` (2.0-11.5). At 14 qubits Meyer et al.'s circuit and ``swap_multirz`` still
ran 1.19x and 1.18x faster on the kernel. Fitted to those calls; none held out. Since 2026-12-07 the kernel runs a
controlled rotation's decomposition as one controlled run over half the state (:class:`qrl.simulator.NativeProgram`):
Meyer et al.'s work fell to 7.2 and ``crx_chain``'s to 7.7, and both run faster on the kernel at 16 qubits and 64
samples (1.73x and 1.62x; README, "Controlled rotations in one pass")."""
NATIVE_PASS_RATIO_MIN_QUBITS = 12
"""Below this many qubits a small call costs what its per-call work costs, not its passes, and the kernel is the
faster whatever the circuit: Meyer et al.'s circuit (4 layers) ran 1.5x-8.1x faster on it at 4-10 qubits and batch
8, 1.05x-5.9x at batch 1 (README, "Where ``device="auto"`` takes it"). From this many qubits the rules of the kernel
choose between it and the torch program: :func:`rollout_devices` for calls of up to ``SMALL_BATCH_MAX`` samples,
:data:`NATIVE_LARGE_BATCH_WORK_RATIO` above."""
NATIVE_SMALL_BATCH_PASS_RATIO = 6
"""Until 2026-12-05, above :data:`CALL_MODEL_MAX_QUBITS` qubits, calls of 3-16 samples ran on the native kernel only
where the circuit makes at most this many of its passes per pass of the torch program (consecutive diagonal gates
counted as one); ``qrl bench calls`` still reports what it would choose (:func:`kernel_pays_by_passes`). With the
readout of :class:`qrl.simulator.readout.WireZ` it could not tell ``hsiao`` (11 passes per torch pass at 22 qubits) from
Meyer et al.'s circuit (12): at 8 samples with a gradient the first ran 1.20x faster on the torch program at 22 qubits,
the second 1.44x faster on the kernel (README, "The readout from 18 qubits"). Measured at batch 8 and 12-14 qubits,
where this rule decided until the cost model: ``strongly_entangling`` (5 per pass) 1.05x and 0.98x as fast on the
kernel at 12 and 14 qubits; Meyer et al.'s circuit (7.2) 0.66x and 0.63x."""


@functools.lru_cache(maxsize=1)
def auto_table() -> dict[int, str]:
    """Measured fastest backend per qubit count (empty if never measured)."""
    return _table(_crossovers())


@functools.lru_cache(maxsize=1)
def small_batch_table() -> dict[int, str]:
    """Measured fastest backend per qubit count for calls of at most ``SMALL_BATCH_MAX`` samples (empty if
    never measured: those calls follow :func:`auto_table`)."""
    return _table(_crossovers().get("small_batch") or {})


@functools.lru_cache(maxsize=1)
def tiny_batch_table() -> dict[int, str]:
    """Measured fastest backend per qubit count for calls of at most ``TINY_BATCH_MAX`` samples (empty if never
    measured: those calls follow :func:`small_batch_table`)."""
    return _table(_crossovers().get("tiny_batch") or {})


def _crossovers() -> dict:
    try:
        data = json.loads(CROSSOVERS.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _table(data: dict) -> dict[int, str]:
    try:
        return {int(n): str(b) for n, b in data["fastest"].items()}
    except (KeyError, ValueError, AttributeError, TypeError):
        return {}


def _fastest(table: dict[int, str], n_qubits: int) -> str:
    if not table:
        return "torch" if n_qubits <= AUTO_TORCH_MAX_QUBITS else "lightning.qubit"
    measured = [n for n in table if n <= n_qubits]  # above the largest measured size: the one measured there
    return table[max(measured) if measured else min(table)]

# Where to get a device that is not installed (PennyLane only says "does not exist").
_PLUGIN_HINTS = {
    "lightning.gpu": "pip install 'qrl[gpu]' (pennylane-lightning-gpu, needs an NVIDIA GPU with CUDA)",
    "lightning.kokkos": "pip install pennylane-lightning-kokkos",
    "qiskit.": "pip install 'qrl[hardware]' (pennylane-qiskit, qiskit-aer)",
    "braket.": "pip install amazon-braket-pennylane-plugin",
    "ionq.": "pip install pennylane-ionq",
    "cirq.": "pip install pennylane-cirq",
    "qulacs.": "pip install pennylane-qulacs",
}


def resolve_device_name(device: str, spec: CircuitSpec, shots: int | None = None, noise: dict | None = None) -> str:
    """``"auto"`` -> the fastest exact backend for this size (for calls of more than ``SMALL_BATCH_MAX`` samples:
    :func:`small_batch_device` names the one for smaller calls); other names pass through.

    With ``noise``, auto is the mixed-state simulator ``default.mixed``; with ``shots``, ``lightning.qubit``
    (the torch backend is exact). This also matters when SB3 loads a model: ``BaseAlgorithm.load`` drops
    ``device`` from the saved ``policy_kwargs`` (it takes it for the torch device), so a circuit trained
    with shots or noise comes back on ``auto`` and must land on a backend that can run it.
    """
    if not isinstance(device, str) or not device:
        raise QRLError(f"device must be a name such as 'auto', 'torch' or 'lightning.qubit'; got {device!r}")
    if device == "auto" and noise:
        return "default.mixed"
    if device == "auto" and shots is not None:
        return "lightning.qubit"
    if device == "auto":
        return _runnable(_fastest(auto_table(), spec.n_qubits), spec)
    return device


def small_batch_device(spec: CircuitSpec) -> str:
    """The exact backend the small-batch crossovers name for calls of at most ``SMALL_BATCH_MAX`` samples (else the
    main ones'): :func:`rollout_devices` chooses from it per batch size."""
    table = small_batch_table()
    return _runnable(_fastest(table, spec.n_qubits) if table else _fastest(auto_table(), spec.n_qubits), spec)


def tiny_batch_device(spec: CircuitSpec) -> str:
    """The exact backend the tiny-batch crossovers name for calls of at most ``TINY_BATCH_MAX`` samples, up to the
    largest size they measured; else :func:`small_batch_device`'s."""
    table = tiny_batch_table()
    if not table or spec.n_qubits > max(table):  # above it: the small table's
        return small_batch_device(spec)
    return _runnable(_fastest(table, spec.n_qubits), spec)


def rollout_devices(spec: CircuitSpec, programs: dict | None = None, gradient: bool = True) -> list[str]:
    """The exact backend ``device="auto"`` runs a call of ``b`` samples on, for ``b`` from 1 to ``SMALL_BATCH_MAX``
    (entry ``b - 1``): the tiny- or small-batch crossovers' choice, and from :data:`NATIVE_PASS_RATIO_MIN_QUBITS` to
    :data:`CALL_MODEL_MAX_QUBITS` qubits, where that is the kernel or the torch program, whichever of the two the cost
    model estimates the faster for this circuit at ``b`` samples (:func:`call_model`,
    :class:`qrl.backends.calls.CallModel`), above it with the torch program's estimate scaled by the state batch's size
    (:func:`qrl.backends.calls.large_state_factor`; calls of 1-2 samples there follow the tiny-batch table). The
    crossovers are
    measured on ``hea``; a circuit of another shape costs the two programs otherwise (``one_cnot`` at 12 qubits: few
    passes of the torch program, but 3.6 times ``hsiao``'s operations). ``programs`` (``{device name: backend}``)
    keeps the programs built to decide, for the caller to reuse."""
    programs = {} if programs is None else programs
    tiny, small = tiny_batch_device(spec), small_batch_device(spec)
    names = [tiny if b <= TINY_BATCH_MAX else small for b in range(1, SMALL_BATCH_MAX + 1)]
    either = (NATIVE, "torch")
    if spec.n_qubits < NATIVE_PASS_RATIO_MIN_QUBITS or not set(names) & set(either) or not _kernel_runs(spec):
        return names
    kernel, torch_program = _programs(spec, programs)
    if torch_program.passes() is None:
        return names
    model, structure = call_model(), (torch_program.autograd_nodes(), torch_program.passes(),
                                      kernel.native_pass_counts(), kernel.native_rotations(), spec.n_qubits)
    large = spec.n_qubits > CALL_MODEL_MAX_QUBITS
    cheaper = [NATIVE if model.kernel_faster(*structure, b, gradient=gradient) else "torch"
               for b in range(1, SMALL_BATCH_MAX + 1)]
    return [choice if name in either and not (large and b <= TINY_BATCH_MAX) else name
            for b, (name, choice) in enumerate(zip(names, cheaper, strict=True), start=1)]


@functools.lru_cache(maxsize=1)
def call_model() -> CallModel:
    """The cost model of rollout-sized calls: as ``qrl bench calls --update-auto`` fitted it on this machine where
    stored (``call_model`` in the crossovers file), else :data:`qrl.backends.calls.DEFAULT_CALL_MODEL`."""
    stored = _crossovers().get("call_model")
    return (CallModel.from_json(stored.get("model")) if isinstance(stored, dict) else None) or DEFAULT_CALL_MODEL


def write_call_model(model: CallModel, command: str, machine: dict | list | None = None) -> Path:
    """Store a fitted cost model of rollout-sized calls for ``device="auto"`` beside the crossovers."""
    from qrl.io import write_json

    write_json(CROSSOVERS, {**_crossovers(), "call_model": {"command": command, "model": model.to_json(),
                                                            "machine": machine}})
    call_model.cache_clear()
    return CROSSOVERS


def _kernel_runs(spec: CircuitSpec) -> bool:
    """Whether the native kernel takes the circuit's size and runs here (no warning: see :func:`_runnable`)."""
    from qrl.simulator.native import NATIVE_MAX_QUBITS, available

    return spec.n_qubits <= NATIVE_MAX_QUBITS and available()


def _runnable(name: str, spec: CircuitSpec) -> str:
    """``name``, or ``"torch"`` where it is the native kernel and that does not take the circuit's size (above its
    largest size measured, auto takes the choice measured there) or cannot be built here (no C compiler: then with
    a warning)."""
    if name != NATIVE:
        return name
    from qrl.simulator.native import NATIVE_MAX_QUBITS, available

    if spec.n_qubits > NATIVE_MAX_QUBITS:
        return "torch"
    if not available():
        warnings.warn("device='auto' would run this circuit on the native kernel (torch:native), measured fastest "
                      "here, but it cannot be compiled (no C compiler?); running it on device='torch'", stacklevel=3)
        return "torch"
    return name


def _for_large_batches(name: str, spec: CircuitSpec, programs: dict) -> str:
    """The table's choice ``name`` for calls of more than ``SMALL_BATCH_MAX`` samples, or, from
    :data:`NATIVE_PASS_RATIO_MIN_QUBITS` qubits, the torch program where that is the kernel and the circuit's work on
    it exceeds :data:`NATIVE_LARGE_BATCH_WORK_RATIO` passes per torch pass (at 12 qubits
    :data:`NATIVE_LARGE_BATCH_WORK_RATIO_BY_QUBITS`; from 16 qubits on the fused program
    :data:`NATIVE_FUSED_WORK_RATIO`)."""
    if name != NATIVE or spec.n_qubits < NATIVE_PASS_RATIO_MIN_QUBITS:
        return name
    native, torch_program = _programs(spec, programs)
    if torch_program.passes() is None:
        return name
    pays = _pays_by_work(native, torch_program)
    fused_from, fused_limit = NATIVE_FUSED_WORK_RATIO
    if pays and spec.n_qubits >= fused_from and torch_program.program == "fused":
        pays = _kernel_work(native) <= fused_limit * torch_program.passes()
    return name if pays else "torch"


def _pays_by_work(native, torch_program) -> bool:
    """:func:`kernel_pays_by_work` for the kernel's program ``native`` and the torch program of the same circuit."""
    return kernel_pays_by_work(native.native_passes(merge_diagonals=True), native.native_rotations(),
                               torch_program.passes(), torch_program.n)


def _kernel_work(native) -> float:
    """The kernel's work in one forward call, in passes: its passes (consecutive diagonal gates as one) plus half a pass
    per rotation, as :func:`kernel_pays_by_work` weighs them."""
    return native.native_passes(merge_diagonals=True) + native.native_rotations() / 2


def kernel_pays_by_passes(kernel_passes: int, torch_passes: int) -> bool:
    """The rule for calls of 3-16 samples above :data:`CALL_MODEL_MAX_QUBITS` qubits until 2026-12-05: at most
    :data:`NATIVE_SMALL_BATCH_PASS_RATIO` of the kernel's passes (consecutive diagonal gates as one) per torch pass."""
    return kernel_passes <= NATIVE_SMALL_BATCH_PASS_RATIO * torch_passes


def kernel_pays_by_work(kernel_passes: int, rotations: int, torch_passes: int, n_qubits: int) -> bool:
    """The rule for calls of more than ``SMALL_BATCH_MAX`` samples: the kernel's passes plus half a pass per rotation
    at most :data:`NATIVE_LARGE_BATCH_WORK_RATIO` per torch pass (:data:`NATIVE_LARGE_BATCH_WORK_RATIO_BY_QUBITS`)."""
    limit = NATIVE_LARGE_BATCH_WORK_RATIO_BY_QUBITS.get(n_qubits, NATIVE_LARGE_BATCH_WORK_RATIO)
    return kernel_passes + rotations / 2 <= limit * torch_passes


def _programs(spec: CircuitSpec, programs: dict) -> tuple:
    """The kernel's and the torch program of ``spec``, built into ``programs`` (``{device name: backend}``) once."""
    for name in (NATIVE, "torch"):
        if name not in programs:
            programs[name] = make_backend(spec, name)
    return programs[NATIVE], programs["torch"]


def check_memory(spec: CircuitSpec, device: str) -> None:
    """Refuse circuits whose single state vector does not fit in memory."""
    if device.startswith(("torch", "lightning", "default.qubit")):
        need, have = state_bytes(spec.n_qubits), physical_memory()
        if need > have // 2:
            raise QRLError(
                f"n_qubits={spec.n_qubits} needs {format_bytes(need)} for one state vector; this machine has "
                f"{format_bytes(have)}; try n_qubits <= {_max_qubits(have)}"
            )


def _max_qubits(memory: int) -> int:
    n = 1
    while state_bytes(n + 1) <= memory // 2:
        n += 1
    return n


def write_crossovers(result: dict, command: str, machine: dict | None = None) -> Path:
    """Store a scaling benchmark's fastest backend per qubit count for ``device="auto"``
    (``result``: :func:`qrl.bench.bench_scaling`'s, with ``batch`` and ``fastest``; ``machine``: where it
    was measured, as :func:`qrl.bench.machine` describes it). A batch of at most ``SMALL_BATCH_MAX`` goes to
    the ``small_batch`` entry (rollout-sized calls), a larger one to the main table; the other is kept.

    A measurement at the batch of the stored one adds its sizes to that table (a size measured again is
    replaced), so that large sizes, minutes per call, can be measured apart from the sweep: the sizes kept
    are listed under ``kept`` with the command and machine that measured them. At another batch it replaces
    the table."""
    from qrl.io import write_json

    entry = {"command": command, "batch": result["batch"], "fastest": dict(result["fastest"]),
             "machine": machine if machine is not None else result.get("machine")}
    data = _crossovers()
    key = "tiny_batch" if result["batch"] <= TINY_BATCH_MAX else "small_batch" if result["batch"] <= SMALL_BATCH_MAX \
        else None
    entry = _merged(entry, data.get(key) if key else data)
    if key:  # rollout-sized calls: kept apart, the main table stays
        data = {**data, key: entry}
    else:
        data = {**entry, **{k: data[k] for k in ("small_batch", "tiny_batch", "call_model") if k in data}}
    write_json(CROSSOVERS, data)
    for table in (auto_table, small_batch_table, tiny_batch_table):
        table.cache_clear()
    return CROSSOVERS


def _merged(entry: dict, old: dict | None) -> dict:
    """``entry`` with the sizes of the stored table ``old`` that it did not measure, where both have one batch."""
    if not isinstance(old, dict) or old.get("batch") != entry["batch"] or not _table(old):
        return entry
    kept = {n: b for n, b in old["fastest"].items() if n not in entry["fastest"]}
    if not kept:
        return entry
    listed = old.get("kept") if isinstance(old.get("kept"), list) else []
    earlier = [k for k in listed
               if isinstance(k, dict) and isinstance(k.get("qubits"), list) and set(k["qubits"]) & set(kept)]
    for k in earlier:
        k["qubits"] = sorted(set(k["qubits"]) & set(kept), key=int)
    mine = sorted(set(kept) - {n for k in earlier for n in k["qubits"]}, key=int)
    if mine:
        earlier.append({"command": old.get("command"), "qubits": mine, "machine": old.get("machine")})
    return {**entry, "fastest": {**kept, **entry["fastest"]}, "kept": earlier}


def installed_devices() -> list[str]:
    """Names of the PennyLane devices installed here (from their plugins' entry points)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group="pennylane.plugins")})


def make_device(name: str, n_qubits: int, **kwargs):
    """Create a PennyLane device, with an install hint when its plugin is missing.

    Hardware names ``<device>@<machine>`` (see :mod:`qrl.backends.hardware`): ``qiskit.aer@FakeManilaV2`` (any
    class of ``qiskit_ibm_runtime.fake_provider``) is Qiskit Aer with that IBM device snapshot's noise
    model, coupling map and native gates (offline), the device-realistic path to hardware;
    ``qiskit.remote@ibm_brisbane``, ``ionq.qpu@aria-1`` and ``braket.aws.qubit@<ARN>`` are real QPUs,
    with credentials from environment variables. They sample, so they need shots.
    """
    base = name.partition("@")[0]
    if base not in installed_devices():
        hint = next((h for prefix, h in _PLUGIN_HINTS.items() if base.startswith(prefix)), None)
        known = ", ".join(["auto", "torch", "torch:adjoint", "lightning.qubit:qnode", *installed_devices()])
        if hint:
            raise QRLError(f"device {base!r} is not installed; try {hint}")
        raise QRLError(f"unknown device {base!r}; expected one of: {known}")
    kwargs = device_kwargs(name) | kwargs
    if base == "qiskit.aer" and "@" in name:
        # pennylane-qiskit's qiskit.aer device transpiles without routing (and cannot route tensor-product
        # observables); its qiskit.remote device runs a fake backend locally on Aer, with the snapshot's
        # noise, and routes with Qiskit's transpiler, mapping observables through the layout.
        base = "qiskit.remote"
    try:
        return qml.device(base, wires=n_qubits, **kwargs)
    except Exception as exc:  # plugin-specific failures (no GPU, bad option, ...)
        raise QRLError(f"could not create device {name!r}: {exc}") from exc


def _auto_backend(spec: CircuitSpec, name: str):
    """``device="auto"``, exact: ``name`` (the measured fastest for this size), each rollout-sized call on its batch
    size's choice where that differs (:func:`rollout_devices`), each call whose program would not fit in memory on
    that program in chunks that do (:class:`Chunks`; on :data:`SPILL` where one sample does not:
    :class:`BatchDispatch`), and calls on an accelerator on the torch program there (:class:`AcceleratorDispatch`)."""
    programs: dict = {}  # built once: the rules build the kernel's and the torch program to count passes
    table, name = name, _for_large_batches(name, spec, programs)
    rollouts = rollout_devices(spec, programs)
    larger = _for_larger_gradient_calls(table, name, rollouts, programs)
    forward = rollout_devices(spec, programs, gradient=False)
    made = {b: programs[b] if b in programs else make_backend(spec, b)
            for b in dict.fromkeys((name, *rollouts, *forward, *([larger] if larger else [])))}
    by_memory = functools.partial(_memory_dispatch, spec, name, rollouts, made, larger=larger,
                                  forward=forward if forward != rollouts else None)
    return AcceleratorDispatch(by_memory(8), spec, memory_fraction=AUTO_MEMORY_FRACTION,
                               wide=functools.partial(by_memory, 16))


def _for_larger_gradient_calls(table: str, name: str, rollouts: list[str], programs: dict) -> str | None:
    """The program of gradient calls from the batch at which the torch program takes its adjoint method
    (:func:`adjoint_from_batch`) where the table chose the kernel (``table``) and that is not the update batches'
    ``name`` (else ``None``): the torch program where the cost model chose it at ``SMALL_BATCH_MAX`` samples with its
    adjoint method (:func:`_model_chose_torch_adjoint`), else the kernel, whichever program the work ratio gave the
    update batches (:func:`_for_large_batches`)."""
    if table != NATIVE:
        return None
    moved = name == "torch" and _within_work_ratio(programs)  # sent there by NATIVE_FUSED_WORK_RATIO alone
    choice = "torch" if _model_chose_torch_adjoint(rollouts, programs) or moved else NATIVE
    return None if choice == name else choice


def _within_work_ratio(programs: dict) -> bool:
    """Whether the kernel's work per torch pass is within :data:`NATIVE_LARGE_BATCH_WORK_RATIO`
    (:func:`kernel_pays_by_work`; so that only :data:`NATIVE_FUSED_WORK_RATIO` sent the update batches to the torch
    program): then its gradient calls of the adjoint method's sizes stay there too. The kernel for those calls
    (:func:`adjoint_from_batch`) was measured on circuits of more work (``hsiao``, ``one_cnot``); Meyer et al.'s circuit
    (16.9) at 18 qubits ran its calls of 32 and 64 samples 1.76x and 1.64x slower on the kernel than on the torch
    program's adjoint method (README, "Update-sized calls from 16 qubits")."""
    native, torch_program = programs.get(NATIVE), programs.get("torch")
    if native is None or torch_program is None or not torch_program.passes():
        return False
    return _pays_by_work(native, torch_program)


def _model_chose_torch_adjoint(rollouts: list[str], programs: dict) -> bool:
    """Whether the cost model chose the torch program for gradient calls of ``SMALL_BATCH_MAX`` samples (``rollouts``,
    :func:`rollout_devices`) where that program already differentiates them by its adjoint method: then gradient
    calls of more samples run on it too (:func:`_for_larger_gradient_calls`), instead of going to the kernel from the
    batch at which its adjoint method starts (:func:`adjoint_from_batch`, a rule measured at 20 qubits where the calls
    of 16 ran autograd) or staying there by the work ratio (:func:`_for_large_batches`): the model weighed the two
    programs in the regime of the larger calls, whose cost grows with their samples on both. Measured on
    ``hsiao`` with a gradient (README, "The last chunk keeps its state"): at 25 qubits and 32 samples the torch program
    in chunks of 8 took 138.5 s, the kernel in chunks of 16 (the rule's choice) 283.3 s; at 26 and 16 the model's
    choice, the torch program, 164.8 s against the kernel's 350.8; on Meyer et al.'s circuit, whose update batches the
    work ratio keeps on the kernel, at 32 samples 1.26x at 25 qubits and 1.39x at 20 (README, "Update-sized gradient
    calls follow the model where it weighed the adjoint method")."""
    torch_program = programs.get("torch")
    return (rollouts[-1] == "torch" and torch_program is not None
            and torch_program.gradient_method(SMALL_BATCH_MAX) == "adjoint")


def _memory_dispatch(spec: CircuitSpec, name: str, rollouts: tuple[str, ...], made: dict, itemsize: int,
                     larger: str | None = None, forward: tuple[str, ...] | None = None):
    """The :class:`BatchDispatch` of ``made``'s backends (``name`` for update batches, ``rollouts`` per batch size,
    ``forward`` per batch size for calls without a gradient where they differ, ``larger`` for gradient calls from the
    batch at which ``name`` would take its adjoint method: :func:`adjoint_from_batch`) for amplitudes of ``itemsize``
    bytes: each call that would not fit :data:`AUTO_MEMORY_FRACTION` of physical memory on its program in chunks that
    do, or on :data:`SPILL` where one sample does not."""
    memory = int(AUTO_MEMORY_FRACTION * physical_memory())
    fits = {b: largest_batch_within(made[b], memory, itemsize=itemsize) for b in made}
    chunked = {b: Chunks(made[b], fits[b], memory, itemsize) for b in made if fits[b]}  # where one sample fits

    def per_batch(names):
        return tuple(made[b] if fits[b] is None or batch <= fits[b] else chunked.get(b)  # None: spills
                     for batch, b in enumerate(names, start=1))

    roles = {"large": name, **({"larger": larger} if larger else {})}
    first = adjoint_from_batch(made["torch"], itemsize) if larger else None  # the torch program: name or larger
    return BatchDispatch(made[name], made[rollouts[-1]], rollouts=per_batch(rollouts),
                         forward_rollouts=per_batch(forward) if forward is not None else None,
                         limits={role: fits[b] for role, b in roles.items() if fits[b] is not None},
                         chunked={role: chunked[b] for role, b in roles.items() if b in chunked} or None,
                         larger=(first, made[larger]) if first is not None else None,
                         spill=functools.partial(make_backend, spec, SPILL))


ADJOINT_SEARCH_MAX_BATCH = 2**24
"""The largest batch :func:`adjoint_from_batch` looks at."""


def adjoint_from_batch(program, itemsize: int = 8) -> int | None:
    """The smallest update-sized batch (more than ``SMALL_BATCH_MAX`` samples) that the torch ``program`` differentiates
    by its adjoint method (its autograd states over :data:`qrl.simulator.programs.AUTOGRAD_MAX_BYTES`), ``None`` if
    none up to :data:`ADJOINT_SEARCH_MAX_BATCH`. ``device="auto"`` runs gradient calls of that many samples and more on
    the kernel even where :data:`NATIVE_LARGE_BATCH_WORK_RATIO` sends update batches to the torch program: its adjoint
    method makes three passes for each of its forward's and its large temporaries are faulted in afresh. Measured
    with the readout of 2026-12-05 (:class:`qrl.simulator.readout.WireZ`), the backends interleaved: ``hsiao`` at 20
    qubits and 64 samples (work 52 per torch pass) 1.34x and ``one_cnot`` at 20 and 32 (44.5) 1.30x faster on the
    kernel; with autograd, at 18 qubits, the torch program 1.67x (``hsiao``, 64) and 1.61x (``one_cnot``, 32) faster
    (README, "The readout from 18 qubits")."""
    gradient_method = getattr(program, "gradient_method", None)
    low, high = SMALL_BATCH_MAX + 1, ADJOINT_SEARCH_MAX_BATCH
    if gradient_method is None or gradient_method(high, itemsize) != "adjoint":
        return None
    while low < high:  # the method changes once, from autograd to the adjoint, as the batch grows
        middle = (low + high) // 2
        low, high = (low, middle) if gradient_method(middle, itemsize) == "adjoint" else (middle + 1, high)
    return low


def make_backend(spec: CircuitSpec, device: str = "auto", diff_method: str | None = None,
                 shots: int | None = None, noise: dict[str, float] | None = None):
    """A callable ``f(angles, weights) -> (B, n_outputs)`` running ``spec`` on ``device``.

    On Lightning (``"lightning.qubit"``, ``"lightning.gpu"``, ``"lightning.kokkos"``) exact circuits run
    natively on Lightning's C++ simulator, without QNodes (:func:`qrl.backends.pennylane.native_lightning`
    says when); ``"<lightning device>:qnode"`` always runs PennyLane's QNode.

    ``shots``: ``None`` for exact expectation values, else finite shots (PennyLane devices only).
    ``noise``: ``{channel: probability}`` on a mixed-state device (see
    :data:`qrl.backends.pennylane.NOISE_CHANNELS`).
    """
    from qrl.backends.pennylane import MIXED_STATE_DEVICES, NOISE_CHANNELS

    for channel, probability in (noise or {}).items():
        if channel not in NOISE_CHANNELS or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise QRLError(f"expected noise as channel=probability with channels {', '.join(NOISE_CHANNELS)} and "
                           f"probabilities in [0, 1]; got {channel}={probability!r}")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise QRLError(f"shots must be a positive integer or None; got {shots!r}")
    name = resolve_device_name(device, spec, shots, noise)
    if noise and name not in MIXED_STATE_DEVICES:
        raise QRLError(f"noise needs a mixed-state simulator; got device {device!r}; try device='default.mixed'")
    if is_hardware(name) and shots is None:
        raise QRLError(f"{name} samples like hardware; expected shots; try shots=1024")
    if shots is not None and name.partition(":")[0] == "torch":
        raise QRLError(f"the torch backend computes exact expectation values; shots={shots} needs a PennyLane "
                       f"device; try device='lightning.qubit' (or 'default.qubit') with shots")
    if device == "auto" and shots is None and not noise and diff_method is None:
        return _auto_backend(spec, name)  # its make_backend(spec, name) checks the memory
    check_memory(spec, name)
    if name.partition(":")[0] == "torch":  # "torch", or "torch:<program>" (dense, wires, adjoint)
        if diff_method not in (None, "backprop", "adjoint"):
            raise QRLError(f"the torch backend differentiates by backprop or the adjoint method; got diff_method="
                           f"{diff_method!r}; "
                           f"try a PennyLane device such as 'lightning.qubit' for {diff_method!r}")
        return TorchStatevector(spec, name.partition(":")[2] or ("adjoint" if diff_method == "adjoint" else None))
    from qrl.backends.pennylane import LIGHTNING, PennyLaneQNode

    base, colon, variant = name.partition(":")
    if colon and base in LIGHTNING:  # "lightning.qubit:qnode": PennyLane's QNode, not the native path
        if variant != "qnode":
            raise QRLError(f"unknown Lightning variant {name!r}; expected {base!r} (native when exact, else the "
                           f"QNode) or '{base}:qnode' (always the QNode)")
        name = base
    check_size(name, spec.n_qubits)
    device = make_device(name, spec.n_qubits)
    return PennyLaneQNode(spec, device, diff_method=diff_method, shots=shots, noise=noise,
                          native=False if colon and base in LIGHTNING else None)
