"""The native program: a traced circuit run by a small C kernel (``native.c``), batch innermost, adjoint backward.

Small circuits spend their time in per-call torch work, not arithmetic (README, Research scale). Here one call
runs every gate on the batch (states laid out ``(2**n, B)``, so each gate is a SIMD loop over the samples and the
batch stays in cache) and one call runs the adjoint backward; autograd sees one node. The kernel is compiled
with the machine's C compiler on first use and cached (:func:`kernel`).
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from qrl.errors import QRLError
from qrl.simulator.gates import as_rotations, diagonal_product, monomial
from qrl.simulator.trace import Gate

SOURCES = ("native.c", "native_widths.h", "native_kernel.h")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-std=gnu99")  # GNU C: vector types
"""Built for this CPU's vector units, but without fused multiply-adds contracted from ``a * b + c``
(``-ffp-contract=off``; GNU C contracts them by default where the CPU has FMA): each sample's arithmetic is then
the same whatever the instruction set, so a seeded run computes the same on every x86-64 machine (tested against
a build for the baseline ``-march=x86-64-v2``, which has no FMA; with contraction they differed by 1e-7 in float32).
Measured: no slower here (hea, 4-14 qubits). The sines and cosines come from the C library."""
X86_FLAGS = ("-mprefer-vector-width=512",)
"""On x86-64: full-width AVX-512 where the CPU has it (measured 5-10% off a call at batch 64-256 here)."""
MAX_CONSTANT_WIRES = 3
"""Constant gates on at most this many wires run in the kernel (a Toffoli); wider ones are refused."""
BLOCK = 16
"""The kernel's batch is padded to a multiple of this many samples (``BLK`` in native.c): whole vector registers
(16 float32 or two registers of 8 float64 with AVX-512); smaller batches to :data:`NARROW_BLOCKS`."""
NARROW_BLOCKS = (4, 8)
"""Batches of at most 4 or 8 samples run in the kernel's narrower widths (vectors of 16 or 32 bytes of float32),
padded to 4 or 8 samples instead of 16: a rollout of one environment at 14 qubits would otherwise do 16 samples'
work. Each sample's arithmetic is the same in every width."""
MAX_RUN = 8
"""One-qubit gates on one wire applied in one pass over the state at most (``MAXRUN`` in native.c)."""
MERGED_DIAGONAL_MAX_QUBITS = 20
"""Consecutive diagonal gates other than CZs (:data:`CZ_PRODUCTS`) become one diagonal of the whole state up to this
many qubits (its ``2**n`` phases and their conjugates: 32 MiB at 20 qubits, once for equal groups); above, each runs
alone (at 26 qubits one such diagonal took 2 GiB)."""
READOUT_MAX_COLUMNS = 32
"""The kernel reads out at most this many Z-type or probability columns itself (a loop over the columns for every
amplitude and sample); a wider readout (``qml.probs`` over 6 or more wires) leaves it as the state, read by the torch
readout (one matrix product, or lazily). ``born_parity``'s probabilities over 10 wires, 1024 columns, took 64.6 ms in
the kernel against 12.7 on the torch program (batch 64, forward + backward, ``scaling-20261205-061752.json``)."""
FUSED_RUNS = 3
"""From :data:`FUSED_RUNS_MIN_QUBITS` qubits, the forward applies up to this many consecutive runs on distinct wires
in one pass over the state (``MAXGROUP`` in native.c): each block of samples of the ``2**3`` rows they mix is read
and written once, so ``hea``'s layers make ``n / 3 + 1`` passes instead of ``n + 1``. The values are the same to the
bit (every amplitude sees the same arithmetic in the same order). Measured (``hea``, 5 layers, forward alone, one
process): 1.38x at 12 qubits / batch 64, 1.4x at 14 / 64, 1.3x at 18 / 8, 1.6x at 20 / 8 and 22 / 8."""
FUSED_RUNS_MIN_QUBITS = 12
"""Runs are grouped in the forward (:data:`FUSED_RUNS`) from this many qubits; smaller circuits (every learning study
on the kernel so far) keep one run per pass. From here on, too, every wire's pending one-qubit gates are emitted
before each multi-qubit gate (:func:`_runs`), so that a layer's runs stand together, also in CNOT rings, unless that
makes more runs (a CNOT on two wires of many would cut every other wire's run in two: more passes backward)."""
FUSED_ADJOINT_RUNS = 2
"""From :data:`FUSED_ADJOINT_MIN_QUBITS` qubits, the adjoint backward walks back through up to this many runs in one
pass. It does more than three times the forward's arithmetic per gate (the gradient term, then the state and its
cotangent rotated back) over twice the memory, and grouping it gained only where the state batch is far out of the
cache: measured on the backward alone, side by side, 1.18x at 20 qubits / batch 8, 1.22x at 22 / 8, 1.09x at
16 / 64, and it lost 5-8% at 12-14 / 64 and 18 / 8 (three runs per pass lost more). Each gate's gradient is summed
over a group's rows before it is added, so gradients differ from one run per pass in the last bits."""
FUSED_ADJOINT_MIN_QUBITS = 20
"""Runs are grouped in the backward (:data:`FUSED_ADJOINT_RUNS`) from this many qubits."""
STATE_SKEW = 80
"""Elements between the kernel's real and imaginary halves of a state (``SKEW`` in native.c; also between the adjoint's
four arrays): halves a power of two apart put the rows a grouped pass keeps in flight into the same cache sets. The
grouped backward ran 1.1x faster with it at 20 qubits / batch 8 (side by side, one process); one run per pass the
same."""
CZ_PRODUCTS = True
"""Consecutive CZs (``hea``'s ring) run as one product of CZs, the signs computed from each amplitude's bits: one
pass at every size, with no table. ``False`` treats them as other diagonal gates (one diagonal of the whole state up
to :data:`MERGED_DIAGONAL_MAX_QUBITS`, each alone above): the values are the same to the bit (a sign flip is exact),
so this is for tests and side-by-side timing only."""
NATIVE_MAX_QUBITS = 26
"""The largest circuit the kernel takes (it keeps about four state batches, as the torch path's adjoint program
does, of the batch padded to :func:`padded`). Measured against the torch programs (``hea``, 5 layers, forward +
backward, README "The native kernel"): 2.5x-7.9x faster at 4-16 qubits at batch 64, 1.35x-11x at batch 8 up to
20 qubits; one sample is faster on the torch programs from 12 qubits (3.7x at 24)."""

_AXES = {"X": 0, "Y": 1, "Z": 2}
_CONST_1Q, _DENSE, _MONOMIAL, _FULL_DIAGONAL, _CZ_PRODUCT = 3, 4, 5, 6, 7  # kinds 0-3: runs on a wire (native_kernel.h)
_CONTROLLED, _CONTROLLED_END = 8, 9  # a controlled run's head and end (native_kernel.h)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_CZ_PHASES = np.array([1, 1, 1, -1], dtype=complex)
_library: dict[str, ctypes.CDLL] = {}
_FUNCTIONS = {(rdtype, width): (f"forward_{name}_w{width}", f"backward_{name}_w{width}")
              for rdtype, name in ((torch.float32, "f32"), (torch.float64, "f64")) for width in (*NARROW_BLOCKS, BLOCK)}
"""The kernel's functions by (dtype, width): forward and backward, as native.c and native_widths.h name them."""
_unavailable: list[str] = []
"""Why the kernel could not be built in this process (:func:`available`), once it failed."""


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$QRL_CACHE``, else ``$XDG_CACHE_HOME/qrl``, else ``~/.cache/qrl``."""
    if os.environ.get("QRL_CACHE"):
        return Path(os.environ["QRL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qrl"


def _cpu_key() -> str:
    """The machine's instruction sets (the kernel is built with ``-march=native``)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def kernel() -> ctypes.CDLL:
    """The compiled kernel, built on first use with ``$CC`` (else ``cc``) into :func:`cache_dir` under a name
    that hashes the sources, flags and CPU (written to a temporary file and renamed: never half a library)."""
    if _library:
        return next(iter(_library.values()))
    here = Path(__file__).resolve().parent
    source = b"".join((here / name).read_bytes() for name in SOURCES)
    compiler = os.environ.get("CC", "cc")
    flags = FLAGS + (X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else ())
    key = hashlib.sha256(source + repr((flags, compiler, _cpu_key())).encode()).hexdigest()[:20]
    path = _writable(cache_dir()) / f"native-{key}.so"
    if not path.exists():
        _compile(compiler, [*flags, str(here / "native.c")], path)
    lib = ctypes.CDLL(str(path))
    for names in _FUNCTIONS.values():
        for name, pointers in zip(names, (13, 12), strict=True):  # forward, backward
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int] * 9 + [ctypes.c_void_p] * pointers
    _library[key] = lib
    return lib


def padded(batch: int) -> int:
    """The samples the kernel computes for a batch: the batch padded to whole vectors of its width."""
    return next((b for b in NARROW_BLOCKS if batch <= b), -(-batch // BLOCK) * BLOCK)


def vector_width(batch: int) -> int:
    """The kernel width (samples per vector) that runs a batch: :data:`NARROW_BLOCKS` or :data:`BLOCK`."""
    return min(padded(batch), BLOCK)


def available() -> bool:
    """Whether the kernel runs here (built now if it was not): ``device="auto"`` takes it only then. A failure is
    remembered for the process, so that a compiler that fails is not run again for every circuit auto builds."""
    if _unavailable:
        return False
    try:
        kernel()
    except (QRLError, OSError) as exc:
        _unavailable.append(str(exc))
        return False
    return True


def _writable(folder: Path) -> Path:
    """``folder``, created; or, where it cannot be, a folder of this user's in the system's temporary directory."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"qrl-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def _compile(compiler: str, args: list[str], path: Path) -> None:
    """``compiler args -o tmp``, then ``tmp`` renamed to ``path``; a QRLError with the compiler's words otherwise."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *args, "-o", tmp], capture_output=True, text=True, check=False)
    except OSError as exc:
        os.unlink(tmp)
        raise QRLError(f"the native program needs a C compiler; running {compiler!r} failed: {exc}; install gcc "
                       f"(or set CC), or try device='torch'") from exc
    if done.returncode != 0:
        os.unlink(tmp)
        raise QRLError(f"compiling the native kernel with {compiler!r} failed: {done.stderr.strip()[-800:]}; "
                       f"try device='torch'")
    os.replace(tmp, path)


def _runs(ops: list[list[int]], diagonals: dict[int, np.ndarray], together: bool = False) -> list[list[int]]:
    """The gate list with each wire's consecutive one-qubit gates (rotations and constants) together (those on other
    wires commute with them; every wire keeps its own order), cut into runs of at most :data:`MAX_RUN`: the kernel
    applies a run in one pass over the state. A run's first gate carries its length in slot 3, its last one in slot
    4. ``diagonals``: the diagonal constant gates (by ``id`` of their op). With ``together``, every pending run is
    emitted before each multi-qubit gate (not only its wires'), so that a layer's runs stand next to each other."""
    out: list[list[int]] = []
    pending: dict[int, list[list[int]]] = {}

    def flush(wire: int) -> None:
        rotations = pending.pop(wire, [])
        for start in range(0, len(rotations), MAX_RUN):
            run = [list(op) for op in rotations[start:start + MAX_RUN]]
            run[0][3], run[-1][4] = len(run), len(run)
            out.extend(run)

    for op in ops:
        if op[0] <= _CONST_1Q:
            pending.setdefault(op[2], []).append(op)
            continue
        # before a diagonal gate every run is emitted (so that a ring of CZs stays together, one diagonal:
        # _merge_diagonals); before another, the runs of its wires
        for wire in sorted(pending) if together or id(op) in diagonals else op[2:2 + op[1]]:
            flush(wire)
        out.append(op)
    for wire in list(pending):
        flush(wire)
    return out


def _grouped_away(ops: np.ndarray, most: int, length_slot: int) -> int:
    """Passes saved by applying up to ``most`` consecutive runs on distinct wires in one pass, walking ``ops``: a gate
    list of :func:`_runs` (``length_slot`` 3: a run's first gate has its length there), or it reversed (4: its last
    gate has)."""
    saved, i = 0, 0
    while i < len(ops):
        if ops[i][0] in (_CONTROLLED, _CONTROLLED_END):  # a controlled run (head, gates, end): one pass
            i += int(ops[i][4]) + 2
            continue
        wires: set[int] = set()
        while len(wires) < most and i < len(ops) and ops[i][0] <= _CONST_1Q and int(ops[i][2]) not in wires:
            wires.add(int(ops[i][2]))
            i += int(ops[i][length_slot])
        saved += max(len(wires) - 1, 0)
        i += not wires
    return saved


def _controlled_groups(gates: list[Gate]) -> list[list[Gate]]:
    """The gates in groups: those of one controlled rotation's decomposition together (the same
    :attr:`qrl.simulator.trace.Gate.controlled` group, one after the other), every other gate alone."""
    groups: list[list[Gate]] = []
    for g in gates:
        if g.controlled is not None and groups and groups[-1][-1].controlled == g.controlled:
            groups[-1].append(g)
        else:
            groups.append([g])
    return groups


def _run_count(ops: list[list[int]]) -> int:
    """Runs of one-qubit gates in a gate list of :func:`_runs` (each run's first gate has its length in slot 3)."""
    return sum(op[0] <= _CONST_1Q and op[3] > 0 for op in ops)


def _merge_diagonals(ops: list[list[int]], diagonals: dict[int, np.ndarray], n: int, mats: list,
                     perms: list) -> list[list[int]]:
    """Consecutive diagonal constant gates (``diagonals``: their phases, by ``id`` of the op) as one pass instead of
    one per gate: CZs (a ring of them) as a product of CZs, whose signs the kernel computes from each amplitude's
    bits (:func:`_cz_terms`), at every size; other diagonals as one diagonal of the whole state, its ``2**n``
    phases and their conjugates appended to ``mats`` (and as many unused entries to ``perms``, which stays aligned
    with it), up to :data:`MERGED_DIAGONAL_MAX_QUBITS`. Groups of the same gates (a layered circuit's rings) are
    stored once."""
    out: list[list[int]] = []
    group: list[list[int]] = []
    offsets: dict[tuple, list[int] | None] = {}  # a group's gates (wires and phases) -> its op

    def close() -> None:
        gates = [(tuple(op[2:2 + op[1]]), diagonals[id(op)]) for op in group]
        cz = CZ_PRODUCTS and all(len(w) == 2 and np.array_equal(d, _CZ_PHASES) for w, d in gates)
        if len(group) < 2 or (not cz and n > MERGED_DIAGONAL_MAX_QUBITS):
            out.extend(group)
        else:
            key = (cz, *((w, d.tobytes()) for w, d in gates))
            if key not in offsets:
                offset = sum(len(x) for x in mats)
                if cz:  # (shift, mask) pairs in ``perms``, unused zeros in ``mats``
                    terms = _cz_terms([w for w, _ in gates], n)
                    mats.append(np.zeros(terms.size, dtype=complex))
                    perms.append(terms)
                    offsets[key] = [_CZ_PRODUCT, terms.size // 2, 0, 0, 0, 0, 0, offset] if terms.size else None
                else:
                    full = diagonal_product(gates, n)
                    mats.extend([full, full.conj()])
                    perms.append(np.zeros(2 * full.size, dtype=np.int64))
                    offsets[key] = [_FULL_DIAGONAL, 0, 0, 0, 0, 0, 0, offset]
            if offsets[key] is not None:  # (None: CZs that cancel)
                out.append(list(offsets[key]))
        group.clear()

    for op in ops:
        if id(op) in diagonals:
            group.append(op)
            continue
        close()
        out.append(op)
    close()
    return out


def _cz_terms(pairs: list[tuple[int, ...]], n: int) -> np.ndarray:
    """CZs on ``pairs`` of wires as the kernel's terms ``[shift, mask, ...]``: amplitude ``j`` changes sign where
    ``popcount(j & (j >> shift) & mask)`` summed over the terms is odd (bit ``n - 1 - w`` of ``j`` is wire ``w``'s;
    a pair at bits ``p < p + shift`` sets bit ``p`` of its shift's mask; a CZ twice cancels, as its mask bits do)."""
    masks: dict[int, int] = {}
    for a, b in pairs:
        low, high = sorted((n - 1 - a, n - 1 - b))
        masks[high - low] = masks.get(high - low, 0) ^ (1 << low)
    return np.asarray([v for shift, mask in sorted(masks.items()) if mask for v in (shift, mask)], dtype=np.int64)


class ZTerms(NamedTuple):
    """Z-type expectation values the kernel reads out without a ``(2**n, width)`` matrix (:meth:`qrl.simulator.Readout.
    z_terms`, from 18 qubits): ``terms`` rows ``(column, mask, coefficient)``, a word's eigenvalue on basis state ``j``
    being ``(-1)**popcount(j & mask)``."""

    width: int
    terms: np.ndarray


def _readout_args(readout) -> tuple:
    """``(K, T, diag, terms)`` for the kernel: a readout matrix ``(2**n, K)``, :class:`ZTerms`, or ``None`` (the state
    leaves the kernel)."""
    if readout is None:
        return 0, 0, None, None
    if isinstance(readout, ZTerms):
        return readout.width, len(readout.terms), None, readout.terms.ctypes.data
    return readout.shape[1], 0, readout.ctypes.data, None


class NativeProgram:
    """A traced circuit as the kernel's gate list: rotations (``Rot`` as three, ``PhaseShift`` as ``RZ``: global
    phases dropped, as in the other programs) with per-sample or shared angles, constant gates as matrices.

    :meth:`state` returns the final states ``(B, 2**n)`` for per-sample angles ``(B, P)`` and shared ones ``(Q,)``;
    the backward is the adjoint method (the state and its cotangent walked back through the inverse gates).
    ``group=False``: one run of one-qubit gates per pass at every size, as before :data:`FUSED_RUNS` (``qrl bench``'s
    ``torch:native-runs``, to measure the grouping side by side).

    A controlled rotation's decomposition (the gates the tracer tags, :attr:`qrl.simulator.trace.Gate.controlled`)
    becomes a controlled run: its target's gates applied in one pass over the half of the state where the control is
    1, those between its two CNOTs conjugated by X, the CNOTs dropped (half the arithmetic, none of the CNOTs'
    passes; Meyer et al.'s circuit 2x faster at 14 qubits, README "Controlled rotations in one pass").
    """

    def __init__(self, gates: list[Gate], n: int, n_angle: int, n_weight: int, group: bool = True):
        if n > NATIVE_MAX_QUBITS:
            raise QRLError(f"the native program runs circuits of up to {NATIVE_MAX_QUBITS} qubits; got {n}; "
                           f"try device='torch'")
        self.n, self.n_angle, self.n_weight = n, n_angle, n_weight
        ops, mats, perms, consts, diagonals = [], [], [], [], {}
        self._controlled: dict[int, list[list[int]]] = {}  # a controlled run's head (by id) -> its gates
        for members in _controlled_groups(gates):
            body = self._controlled_body(members, mats, perms, consts) if len(members) > 1 else None
            if body is not None:
                ops.append([_CONTROLLED, 2, *members[0].controlled[1:], 0, 0, 0, 0])
                self._controlled[id(ops[-1])] = body
                continue
            for g in members:
                if g.name == "const":
                    ops.append(self._constant(g, mats, perms))
                    if len(g.wires) > 1 and np.allclose(g.matrix, np.diag(np.diag(g.matrix)), rtol=0, atol=1e-14):
                        diagonals[id(ops[-1])] = np.diag(g.matrix).astype(complex)
                else:
                    ops.extend(self._rotations(g, consts))
        grouped = group and n >= FUSED_RUNS_MIN_QUBITS
        # runs per pass in the forward and in the backward (tests set them)
        self.fused_runs = (FUSED_RUNS if grouped else 1,
                           FUSED_ADJOINT_RUNS if group and n >= FUSED_ADJOINT_MIN_QUBITS else 1)
        runs = _runs(ops, diagonals)
        if grouped:  # a layer's runs together, where that cuts no wire's run in two (a sparse entangler would)
            together = _runs(ops, diagonals, together=True)
            runs = together if _run_count(together) <= _run_count(runs) else runs
        ordered = _merge_diagonals(runs, diagonals, n, mats, perms)
        diagonal = [id(op) in diagonals for op in ordered]  # (unmerged: above MERGED_DIAGONAL_MAX_QUBITS)
        self._diagonal_repeats = sum(a and b for a, b in itertools.pairwise(diagonal))
        self.ops = np.asarray(self._expand_controlled(ordered), dtype=np.int32).reshape(-1, 8)
        flat = np.concatenate(mats) if mats else np.zeros(1, dtype=complex)
        self.mat_re, self.mat_im = np.ascontiguousarray(flat.real), np.ascontiguousarray(flat.imag)
        self.perm = np.concatenate(perms).astype(np.int32) if perms else np.zeros(1, dtype=np.int32)
        self.consts = np.asarray(consts, dtype=np.float64)
        self._bound: tuple | None = None

    def passes(self, merge_diagonals: bool = False) -> int:
        """Passes over the state batch in one forward call, counted one per run of one-qubit gates and per other gate
        (the adjoint backward's passes below :data:`FUSED_ADJOINT_MIN_QUBITS`; the forward groups runs from
        :data:`FUSED_RUNS_MIN_QUBITS`, and auto's rules were measured with this count). With ``merge_diagonals``,
        consecutive diagonal gates count as one pass at every size, as the kernel merges them up to
        :data:`MERGED_DIAGONAL_MAX_QUBITS` (and CZs at every size: :data:`CZ_PRODUCTS`)."""
        kinds = self.ops[:, 0]
        run_starts = (kinds <= _CONST_1Q) & (self.ops[:, 3] > 0)  # (a controlled run's gates have no length)
        passes = int(np.sum(((kinds > _CONST_1Q) & (kinds != _CONTROLLED_END)) | run_starts))
        return passes - self._diagonal_repeats if merge_diagonals else passes

    def pass_counts(self) -> tuple[float, float]:
        """Passes over the state batch of the forward and of the adjoint backward, as the kernel makes them: runs of
        one-qubit gates grouped by :data:`FUSED_RUNS` (forward, from :data:`FUSED_RUNS_MIN_QUBITS` qubits) and by
        :data:`FUSED_ADJOINT_RUNS` (backward, from :data:`FUSED_ADJOINT_MIN_QUBITS`) as ``forward_group`` and
        ``backward_group`` in native.c group them, consecutive diagonal gates as one, a controlled run as one half (it
        reads and writes the half of the state where its control is 1)."""
        merged = self.passes(merge_diagonals=True) - 0.5 * int(np.sum(self.ops[:, 0] == _CONTROLLED))
        forward = merged - _grouped_away(self.ops, self.fused_runs[0], length_slot=3)
        return forward, merged - _grouped_away(self.ops[::-1], self.fused_runs[1], length_slot=4)

    def rotations(self) -> float:
        """Rotations (RX, RY, RZ: ``Rot`` as three) applied in one forward call, those of a controlled run as one
        half each (they turn half the amplitudes)."""
        depth = np.cumsum((self.ops[:, 0] == _CONTROLLED).astype(int) - (self.ops[:, 0] == _CONTROLLED_END))
        rotation = self.ops[:, 0] < _CONST_1Q
        return float(np.sum(rotation) - 0.5 * np.sum(rotation & (depth > 0)))

    def _rotations(self, g: Gate, consts: list) -> list[list[int]]:
        """A parametric gate's ops: Pauli rotations (:func:`qrl.simulator.gates.as_rotations`) whose angle is a
        per-sample one, a weight or a constant (appended to ``consts``, read after the weights)."""
        ops = []
        for axis, src in as_rotations(g):
            if src.kind == "angle":
                where, index = 0, src.index
            elif src.kind == "weight":
                where, index = 1, src.index
            else:
                where, index = 1, self.n_weight + len(consts)
                consts.append(src.value)
            ops.append([_AXES[axis], 1, g.wires[0], 0, 0, where, index, 0])
        return ops

    def _controlled_body(self, group: list[Gate], mats: list, perms: list, consts: list) -> list[list[int]] | None:
        """A controlled rotation's decomposition (:attr:`qrl.simulator.trace.Gate.controlled`: gates on the target
        and an even number of CNOTs, as the tracer checked) as the gates of a controlled run (native_kernel.h's
        ``controlled_run``): its one-qubit gates, those between an odd number of CNOTs conjugated by X
        (``X RY(a) X = RY(-a)``, the same for RZ; RX unchanged; a constant's matrix conjugated), the CNOTs dropped;
        ``None``, before anything is appended to ``mats``, ``perms`` or ``consts``, where it would have no gate or
        more than the kernel's gradient rows (``MAXGROUP * MAXRUN``)."""
        size = sum(1 if g.name == "const" else len(as_rotations(g)) for g in group if len(g.wires) == 1)
        if not 0 < size <= MAX_RUN * FUSED_RUNS:
            return None
        body, odd = [], False
        for g in group:
            if len(g.wires) == 2:  # a CNOT from the control to the target
                odd = not odd
            elif g.name == "const":
                body.append(self._constant(Gate("const", g.wires, (), _X @ g.matrix @ _X if odd else g.matrix),
                                           mats, perms))
            else:
                body += [[*op[:7], int(odd and op[0] != _AXES["X"])] for op in self._rotations(g, consts)]
        return body

    def _expand_controlled(self, ops: list[list[int]]) -> list[list[int]]:
        """The gate list with each controlled run's head followed by its gates and its end (kind 9); the head and
        the end carry the number of gates in slot 4."""
        out = []
        for op in ops:
            body = self._controlled.get(id(op))
            if body is None:
                out.append(op)
                continue
            out += [[*op[:4], len(body), 0, 0, 0], *body, [_CONTROLLED_END, *op[1:4], len(body), 0, 0, 0]]
        return out

    def _constant(self, g: Gate, mats: list, perms: list) -> list[int]:
        """A constant gate's op; its matrix and inverse appended to ``mats`` (``perms``: monomial rows)."""
        k, m = len(g.wires), np.asarray(g.matrix, dtype=complex)
        if k > MAX_CONSTANT_WIRES:
            raise QRLError(f"the native program applies constant gates on at most {MAX_CONSTANT_WIRES} wires; got one "
                           f"on wires {list(g.wires)}; try device='torch'")
        offset, wires = sum(len(x) for x in mats), [*g.wires, 0, 0][:3]
        if k == 1:  # a member of its wire's runs: its matrix and inverse, row-major
            mats += [m.ravel(), m.conj().T.ravel()]
            perms += [np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64)]
            return [_CONST_1Q, 1, *wires, 0, 0, offset]
        if monomial(m):
            rows = np.argmax(np.abs(m) > 1e-12, axis=0)  # column c -> its row
            phase = m[rows, np.arange(len(rows))]
            inv_rows = np.argsort(rows)  # the inverse maps row r back to column inv_rows[r]
            mats += [phase, np.conj(phase[inv_rows])]
            perms += [rows, inv_rows]
            return [_MONOMIAL, k, *wires, 0, 0, offset]
        inverse = m.conj().T
        mats += [m.ravel(), inverse.ravel()]
        perms += [np.zeros(m.size, dtype=np.int64), np.zeros(m.size, dtype=np.int64)]
        return [_DENSE, k, *wires, 0, 0, offset]

    def _bind(self, device: torch.device) -> None:
        """The kernel's functions and the addresses of the gate list and matrices (kept alive here), made once."""
        if device.type != "cpu":
            raise QRLError(f"the native program runs on the CPU; got tensors on {device}; try device='torch'")
        if self._bound is not None:
            return
        lib = kernel()
        self._arrays = [np.ascontiguousarray(x) for x in (self.ops, self.mat_re, self.mat_im, self.perm,
                                                          np.concatenate([self.consts, [0.0]]))]
        sizes = (self.n_angle, self.n_weight + len(self.consts), self.n_weight, len(self.ops))
        self._bound = (sizes, tuple(x.ctypes.data for x in self._arrays),
                       {key: tuple(getattr(lib, name) for name in names) for key, names in _FUNCTIONS.items()})

    def state(self, flat_a: torch.Tensor, shared: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
        """Final states ``(B, 2**n)`` of ``cdtype`` for angles ``(B, P)`` and shared angles ``(Q,)``."""
        rdtype = torch.float64 if cdtype == torch.complex128 else torch.float32
        return self._run(flat_a, shared, rdtype, None)

    def values(self, flat_a: torch.Tensor, shared: torch.Tensor, readout, rdtype: torch.dtype):
        """``|psi|^2 @ readout`` ``(B, K)`` for a readout matrix (Z-type expectation values and probabilities,
        :meth:`qrl.simulator.Readout.diagonals`) or :class:`ZTerms`, in the same kernel call: no state leaves the
        kernel."""
        return self._run(flat_a, shared, rdtype, readout)

    def _run(self, flat_a, shared, rdtype, readout):
        self._bind(flat_a.device)
        if torch.is_grad_enabled() and (flat_a.requires_grad or shared.requires_grad):
            return NativeRun.apply(self, flat_a, shared, rdtype, readout)
        return self.forward(flat_a, shared, rdtype, readout, keep=False)[0]

    def forward(self, flat_a: torch.Tensor, shared: torch.Tensor, rdtype: torch.dtype, readout,
                keep: bool = True) -> tuple:
        """One forward kernel call: ``(out, state, trig)``, the last two for :meth:`backward` (``None`` with
        ``keep=False``: the kernel's own scratch memory, freed after the call)."""
        (n_angle, n_shared, n_weight, n_ops), arrays, fns = self._bound
        batch, dim = flat_a.shape[0], 2**self.n
        rows = padded(batch)
        angles, weights = _as_kernel_input(flat_a, rdtype), _as_kernel_input(shared, rdtype)
        trig = torch.empty(2 * (n_angle * rows + n_shared), dtype=rdtype) if keep else None
        state = torch.empty(2 * rows * dim + STATE_SKEW, dtype=rdtype) if keep else None
        width, n_terms, diag, terms = _readout_args(readout)
        if readout is None:
            out = torch.empty((batch, dim), dtype=torch.complex128 if rdtype == torch.float64 else torch.complex64)
            ptrs = (out.data_ptr(), None)
        else:
            out = torch.empty((batch, width), dtype=rdtype)
            ptrs = (None, out.data_ptr())
        if fns[rdtype, vector_width(batch)][0](self.n, batch, n_angle, n_shared, n_weight, n_ops, width, n_terms,
                          self.fused_runs[0], *arrays, diag, terms, angles.data_ptr(), weights.data_ptr(),
                          trig.data_ptr() if keep else None, state.data_ptr() if keep else None, *ptrs) != 0:
            raise QRLError("the native kernel could not allocate its scratch memory; try a smaller batch")
        return out, state, trig

    def backward(self, grad: torch.Tensor, state: torch.Tensor, trig: torch.Tensor, readout) -> tuple:
        """One backward kernel call: gradients ``(B, P)`` and ``(Q,)`` for the cotangent ``grad`` of the output."""
        (n_angle, n_shared, n_weight, n_ops), arrays, fns = self._bound
        batch = grad.shape[0]
        grad = grad.resolve_conj().contiguous()
        g_angles = torch.empty((batch, n_angle), dtype=trig.dtype)
        g_shared = torch.empty(n_weight, dtype=trig.dtype)
        width, n_terms, diag, terms = _readout_args(readout)
        ptrs = (grad.data_ptr(), None) if readout is None else (None, grad.data_ptr())
        if fns[trig.dtype, vector_width(batch)][1](self.n, batch, n_angle, n_shared, n_weight, n_ops, width, n_terms,
                              self.fused_runs[1], *arrays[:4], diag, terms, trig.data_ptr(), state.data_ptr(), *ptrs,
                              g_angles.data_ptr(), g_shared.data_ptr()) != 0:
            raise QRLError("the native kernel could not allocate its scratch memory; try a smaller batch")
        return g_angles, g_shared


def _as_kernel_input(t: torch.Tensor, rdtype: torch.dtype) -> torch.Tensor:
    """``t`` as contiguous ``rdtype`` memory the kernel can read (``t`` itself where it already is)."""
    return t if t.dtype == rdtype and t.is_contiguous() else t.detach().to(rdtype).contiguous()


class NativeRun(torch.autograd.Function):
    """:meth:`NativeProgram.state` and :meth:`NativeProgram.values` as one autograd node: the kernel's forward and
    its adjoint backward. The state (the kernel's layout) and the cos and sin of the half angles are kept for the
    backward."""

    @staticmethod
    def forward(ctx, program: NativeProgram, flat_a: torch.Tensor, shared: torch.Tensor, rdtype: torch.dtype,
                readout):  # a readout matrix, ZTerms or None (the state)
        out, state, trig = program.forward(flat_a, shared, rdtype, readout)
        ctx.program, ctx.readout, ctx.dtypes = program, readout, (flat_a.dtype, shared.dtype, shared.shape)
        ctx.save_for_backward(state, trig)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        state, trig = ctx.saved_tensors
        g_angles, g_shared = ctx.program.backward(grad, state, trig, ctx.readout)
        a_dtype, s_dtype, s_shape = ctx.dtypes
        return None, g_angles.to(a_dtype), g_shared.to(s_dtype).reshape(s_shape), None, None
