"""The per-wire program that runs a traced circuit on a batch (large circuits; dense ones: :mod:`qrl.simulator.dense`).

It takes the per-sample angles ``(B, P)`` and the shared ones ``(Q,)`` (:mod:`qrl.simulator.angles`) and
returns the final state ``(B, 2**n)``; gradients come from torch autograd or the adjoint method.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from qrl.simulator.angles import TensorCache
from qrl.simulator.fusion import (
    BlockProduct,
    apply_block,
    block_in_place,
    block_overlap,
    embed,
    fuse_blocks,
    group_blocks,
    group_matrix,
    relayout,
    rotate,
)
from qrl.simulator.gates import (
    PAULI_K,
    BufferPool,
    MonomialRun,
    StateBuffers,
    apply_1q,
    apply_kq,
    apply_monomials,
    as_rotations,
    chunk_overlap,
    chunk_view,
    conjugate_monomials,
    inverse_monomials,
    kron_chunk,
    local_index,
    matmul_into,
    monomial,
    monomial_gate,
    rotations,
    schedule,
    state_bytes,
    time_ordered_product,
)
from qrl.simulator.trace import Gate

KRON_MIN_QUBITS, KRON_WIDTH = 8, 4
"""From ``KRON_MIN_QUBITS`` qubits a moment's single-qubit gates are applied in chunks of ``KRON_WIDTH``
neighbouring wires, each chunk one Kronecker product of its 2x2s (identity on its other wires) applied in one
pass (:func:`apply_chunk`): a 2x2 on a wire with few amplitudes after it is a batch of tiny matrix products,
5-10x slower than a copy of the state, where a ``16 x 16`` on four wires costs about one copy (measured at
12 qubits, batch 64: 1.4-1.8 ms per wire on wires 5-11, 0.2-0.5 ms per 4-wire chunk; at 16 qubits, batch 8,
0.5-0.9 ms per chunk). A wire alone in its chunk with ``FAST_REST`` or more amplitudes after it keeps its 2x2."""

FAST_REST = 64
"""A 2x2 on a wire with at least this many amplitudes after it runs at about the speed of a copy."""

AUTOGRAD_MAX_BYTES = 2 * 2**30
"""A per-wire program that chooses its gradient by memory (``adjoint=None``, the torch path's default) uses
autograd while the state batches autograd would keep for a call (:meth:`WiresProgram.autograd_bytes`) are
estimated at most this many bytes, and the adjoint method above (about four state batches whatever the depth).
Memory decides, not time: from 12 qubits the two are within about 25% of each other either way (README,
Research scale). A constant, not the memory free now, so that a seeded run computes the same on every machine.
"""

KEPT_OVERHEAD = 1.35
"""Peak memory of a forward + backward over the state batches kept (measured with the per-wire program of issue 15's
start: 20 qubits x 5 layers at batch 8, 8.9 GB peak for 105 kept states of 64 MiB). With the chunk products it is
rough: at batch 8 it estimates 0.67 GiB at 18 qubits (0.85 GiB measured) and 2.7 GiB at 20 (2.2 GiB measured); it
only decides near :data:`AUTOGRAD_MAX_BYTES`."""


def gradient_peak_bytes(kept: int, n: int, batch: int, itemsize: int = 8) -> int:
    """Estimated peak memory of a forward + backward that keeps ``kept`` state batches of ``batch`` samples at ``n``
    qubits (``itemsize``: 8 for complex64, 16 for complex128), two more in flight, and :data:`KEPT_OVERHEAD`."""
    return int(KEPT_OVERHEAD * (kept + 2) * state_bytes(n, batch, itemsize))


def forward_peak_bytes(states: int, n: int, batch: int, itemsize: int = 8) -> int:
    """Estimated peak memory of a forward without a gradient (a rollout's) that holds ``states`` state batches of
    ``batch`` samples at once, with :data:`KEPT_OVERHEAD`."""
    return int(KEPT_OVERHEAD * states * state_bytes(n, batch, itemsize))


def chunks(n: int) -> list[tuple[int, ...]]:
    """The wire chunks of a moment at ``n`` qubits: the last ``KRON_WIDTH`` wires, and the others in as few
    chunks of at most that width as will do, of even widths (so no single wire is left in the middle); one
    chunk per wire below ``KRON_MIN_QUBITS``."""
    if n < KRON_MIN_QUBITS:
        return [(w,) for w in range(n)]
    front = n - KRON_WIDTH
    count = -(-front // KRON_WIDTH)
    base, extra = divmod(front, count)
    starts = np.cumsum([0] + [base + 1] * extra + [base] * (count - extra))
    return [tuple(range(a, b)) for a, b in itertools.pairwise(starts)] + [tuple(range(front, n))]


def moment_parts(wires, n: int, chunked: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    """How one moment on ``wires`` runs: ``("1q", wires)`` (one 2x2 pass per wire) and ``("kron", chunk)``
    steps (one pass per chunk, every wire of the chunk padded with identity); not ``chunked``: 2x2s only."""
    single, parts = [], []
    for chunk in chunks(n) if chunked else [(w,) for w in range(n)]:
        mine = [w for w in chunk if w in wires]
        if len(chunk) == 1 or (len(mine) == 1 and 2 ** (n - mine[0] - 1) >= FAST_REST):
            single.extend(mine)
        elif mine:
            parts.append(("kron", chunk))
    return ([("1q", tuple(sorted(single)))] if single else []) + parts


PERMUTE_MAX_QUBITS = 16
"""Up to this size the per-wire program applies constant gates that only permute basis states (and multiply
phases: CNOT, CY, SWAP, Toffoli, CSWAP, X ...) as one gather over the state (an index of ``2**n`` entries,
kept per run); larger circuits, whose indices would cost more memory than a state, copy the state once per gate,
a slice at a time (:func:`qrl.simulator.gates.apply_monomials`; before 2026-12-05 a matrix product each, which made
``strongly_entangling`` 2.3x-2.8x slower at 18 qubits and 4.6x-4.9x at 20: README, "Permutation gates above 16
qubits")."""


def run_permutation(run: list[tuple[tuple[int, ...], np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A run of monomial gates ``(wires, m)`` in time order as one permutation of all ``2**n`` basis states:
    ``psi -> phase * psi[perm]`` for each, composed (``perm = perm_1[perm_2]``, ``phase = phase_2 *
    phase_1[perm_2]``)."""
    perm, phase = np.arange(2**n), np.ones(2**n, dtype=complex)
    for wires, m in run:
        p, f = _gate_permutation(m, wires, n)
        perm, phase = perm[p], f * phase[p]
    return perm, (None if np.allclose(phase, 1) else phase)


def _gate_permutation(m: np.ndarray, wires: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """One monomial gate's ``(perm, phase)`` over all ``2**n`` basis states."""
    local = local_index(wires, n)
    source = np.argmax(np.abs(m) > 1e-12, axis=1)  # row r takes amplitude from column source[r]
    src_local = source[local]
    perm = np.arange(2**n)
    for k, w in enumerate(wires):
        shift, bit = n - 1 - w, (src_local >> (len(wires) - 1 - k)) & 1
        perm = (perm & ~(1 << shift)) | (bit << shift)
    return perm, m[local, src_local]


class WiresProgram:
    """Per-wire program, for large circuits: memory and work linear in ``2**n`` (``B * n * 2**n``).

    The state is ``(B, 2**n)`` and every fused 2x2 is applied on its wire:

    - every single-qubit rotation is ``cos(t/2) I + sin(t/2) (-iP)`` up to a global phase, so all gate
      matrices of a call are built at once (one gather of the angles, one cos, one sin);
    - the single-qubit gates between two-qubit gates form a *moment*; they are fused per wire into one
      2x2 matrix with one batched matmul per gate depth, for all wires of the moment together;
    - the matrices are laid out so that one ``split`` hands each fused step its operands (indexing one
      large tensor per step cost a full-size zero tensor per step in the backward pass);
    - a 2x2 is applied by a broadcast ``matmul`` on a view of the state (:func:`apply_1q`); from
      :data:`KRON_MIN_QUBITS` qubits the moment's wires run in chunks, each chunk's 2x2s as one Kronecker
      product in one pass (:func:`moment_parts`, :func:`apply_chunk`);
    - runs of constant diagonal two-qubit gates (the CZ ring) are fused into one sign vector, runs of gates that
      permute basis states (a CNOT ring) into one gather (:func:`run_permutation`).

    The program is a list of steps: ``("1q", wires, first, depth)`` applies one fused 2x2 matrix per wire of a moment
    (its operands are the ``depth`` slot groups from ``first`` on); ``("kron", wires, first, depth)`` applies the
    Kronecker product of those wires' 2x2s (:func:`moment_parts`); ``("diag", d, index, real)`` multiplies by a
    fused diagonal (``real``: its own conjugate, as a CZ ring's); ``("perm", perm, phase)`` gathers the amplitudes
    of a constant gate or run that permutes basis states (``("mono", gates, inverse, conjugated inverse)`` above
    :data:`PERMUTE_MAX_QUBITS`: a copy per gate, :func:`~qrl.simulator.gates.apply_monomials`); ``("2q", wires, M)``
    applies any other constant gate's matrix. With
    ``fuse``, ``("block", pair, index)`` applies a two-qubit block's 4x4 and, unless ``group`` is false,
    ``("group", first, k, members)`` the product of consecutive blocks on ``k`` neighbouring positions from
    ``first`` as one ``2**k x 2**k`` per sample (``members``: ``(index, offset)`` in time order).
    """

    def __init__(self, gates: list[Gate], n: int, n_angle: int, n_weight: int, adjoint: bool | None = False,
                 fuse: bool = False, plain: bool = False, group: bool = True):
        self.n, self.n_angle, self.adjoint, self.fuse, self.plain = n, n_angle, adjoint, fuse, plain
        self.group, self.n_weight = group, n_weight
        self._const = TensorCache()
        self._compile(gates, n_angle + n_weight)
        self._passes = sum(len(step[1]) if step[0] in ("1q", "mono") else 1 for step in self._program)

    def passes(self) -> int:
        """Passes over the state batch of one forward call: one per step (a chunk's Kronecker product or a block
        is one), one per wire of a single-qubit moment."""
        return self._passes

    def autograd_bytes(self, batch: int, itemsize: int = 8) -> int:
        """Estimated peak memory of a forward + backward by autograd at ``batch`` samples (``itemsize``: 8 for
        complex64, 16 for complex128): a state batch kept per pass."""
        return gradient_peak_bytes(self._passes, self.n, batch, itemsize)

    def uses_adjoint(self, batch: int, itemsize: int = 8) -> bool:
        """Whether a gradient call at ``batch`` samples runs the adjoint method: as asked (``adjoint`` true or
        false), or by memory (``adjoint=None``: where autograd would need over :data:`AUTOGRAD_MAX_BYTES`)."""
        if self.adjoint is not None:
            return self.adjoint
        return self.autograd_bytes(batch, itemsize) > AUTOGRAD_MAX_BYTES

    def cost(self) -> float:
        """Estimated passes of one forward call, weighing a block applied by ``einsum`` (a copy in and out,
        :func:`qrl.simulator.fusion.apply_block`) as two: to choose between the fused and unfused programs. Weighed
        three until 2026-12-06 (an estimate, never timed); that kept a users' circuit of long-range ``CRZ``s
        (``long_crz`` in ``tests/circuit_shapes.py``: every block copies) at 9, 11, 13 and 15 qubits, a brick wall of
        CZs and a ring of ``IsingXX`` / ``IsingYY`` at 7, on the unfused program, which ran 1.05x-2.71x slower than the
        fused one in 22 of 24 calls (1, 8 and 64 samples with a gradient; at 13 and 15 qubits without one too) and
        0.97x and 0.99x in the two others (README, "Blocks applied by einsum weighed two passes"). Of the 18 circuits of
        the README's checks at 7-26 qubits, those are the programs it changed."""
        copies = sum(step[0] == "block" and not block_in_place(step[1], self.n) for step in self._program)
        return self.passes() + copies

    def matrix_bytes(self, batch: int, itemsize: int = 8) -> int | None:
        """Memory of one call's gate matrices at ``batch`` samples (every one is per sample: ``(B, ...)``) in
        amplitudes of ``itemsize`` bytes, with the angle pool they are built from; counted once by building them for
        one sample. ``None`` for a program pickled before it kept its count of weights."""
        if getattr(self, "n_weight", None) is None:
            return None
        if getattr(self, "_matrix_elements", None) is None:
            with torch.no_grad():
                one = self._slot_matrices(torch.zeros(1, self.n_angle), torch.zeros(self.n_weight), torch.complex64)
            self._matrix_elements = sum(m.numel() for m in one)
        pool = self.n_angle + self.n_weight + len(self._pool_consts)  # real: half an amplitude each
        return batch * (self._matrix_elements * itemsize + pool * itemsize // 2)

    def saved_states(self, batch: int = 1, itemsize: int = 8) -> int:
        """State batches a call at ``batch`` samples holds at its backward's peak, beside the two in flight that
        :func:`gradient_peak_bytes` adds: with autograd one per pass; with the adjoint method 4 (the final state, the
        readout's cotangent, and the state and gradient walked back; the walk's third buffer and the temporaries of a
        step are the two in flight)."""
        return 4 if self.uses_adjoint(batch, itemsize) else self._passes

    def _compile(self, gates: list[Gate], n_pool: int) -> None:
        """Turn the gate list into slots (one per single-qubit matrix) and a program over them.

        Every single-qubit matrix is ``cos(h) A + sin(h) B`` with ``h`` half an angle from the pool
        ``[angles | weights | constants]``: a rotation has ``A = I, B = -iP``; a constant gate ``M``
        has ``A = M, B = 0, h = 0``; identity padding has ``A = I, B = 0, h = 0``. Slots are laid out in
        program order, moment by moment and depth by depth, so one ``split`` of the matrices of a call
        yields the operands of every fused step (its backward is one concatenation, where indexing a
        large tensor step by step cost a full-size zero tensor per step). With ``fuse``, two-qubit blocks
        (:func:`qrl.simulator.fusion.fuse_blocks`) get 4x4 slots, all blocks padded to one depth.
        """
        consts: list[float] = [0.0]
        eye, zero = np.eye(2, dtype=complex), np.zeros((2, 2), dtype=complex)

        def slot(g: Gate) -> list[tuple[int, np.ndarray, np.ndarray]]:
            if g.name == "const":
                return [(n_pool, g.matrix, zero)]
            out = []
            for axis, src in as_rotations(g):
                if src.kind == "const":
                    consts.append(src.value)
                    out.append((n_pool + len(consts) - 1, eye, PAULI_K[axis]))
                else:
                    out.append((src.index + (self.n_angle if src.kind == "weight" else 0), eye, PAULI_K[axis]))
            return out

        entries: list[tuple[int, Any]] = []  # (wire, slot) for 1-qubit matrices, (-1, gate) for 2-qubit gates
        for g in gates:
            if len(g.wires) == 1:
                entries.extend((g.wires[0], s) for s in slot(g))
            else:
                entries.append((-1, g))
        if self.fuse:
            steps = fuse_blocks(entries, self.n)
            steps = relayout(group_blocks(steps, self.n) if self.group else steps, self.n)
        else:
            steps = schedule(entries, self.n, runs=not self.plain)
        self._pool_consts = np.array(consts, dtype=np.float64)
        self._compile_steps(steps, n_pool)

    def _compile_steps(self, steps: list[tuple], n_pool: int) -> None:
        """The program and its slot tables (2x2 slots of the moments, 4x4 slots of the blocks)."""
        eye = np.eye(2, dtype=complex)
        slots: list[tuple[int, np.ndarray, np.ndarray]] = []
        blocks: list[list[tuple[int, np.ndarray, np.ndarray]]] = []
        diagonals: list[np.ndarray] = []
        real: list[bool] = []  # per distinct diagonal: all its entries real
        self._program, self._chunk_sizes = [], []
        identity = (n_pool, eye, np.zeros((2, 2), dtype=complex))
        for step in steps:
            kind = step[0]
            if kind == "block":
                self._program.append(("block", step[1], len(blocks)))
                blocks.append(self._block_slots(step[2], step[1], n_pool))
                continue
            if kind == "group":  # ("group", first, width, member blocks): offsets from the first position
                members = tuple((len(blocks) + i, b[1][0] - step[1]) for i, b in enumerate(step[3]))
                self._program.append(("group", step[1], step[2], members))
                blocks.extend(self._block_slots(b[2], b[1], n_pool) for b in step[3])
                continue
            if kind == "rotate":
                self._program.append(step)
                continue
            if kind == "diag":  # one copy of each distinct diagonal (a CZ ring repeats it every layer)
                same = next((i for i, d in enumerate(diagonals) if d is step[1] or np.array_equal(d, step[1])),
                            len(diagonals))
                if same == len(diagonals):
                    diagonals.append(step[1])
                    real.append(not np.iscomplexobj(step[1]) or not np.any(np.imag(step[1])))
                self._program.append(("diag", diagonals[same], same, real[same]))  # real: its own conjugate
                continue
            if kind == "run":  # monomial gates: one gather for the run, or one matrix product per gate
                self._program.append(self._monomial_step(step[1]))
                continue
            if kind != "1q":
                wires, m = step[1], step[2]
                self._program.append(self._monomial_step([(wires, m)]) if monomial(m) else ("2q", wires, m))
                continue
            moment = step[1]
            depth = max(len(v) for v in moment.values())
            for kind_, wires in moment_parts(moment, self.n, not self.plain):
                self._program.append((kind_, wires, len(self._chunk_sizes), depth))
                for d in range(depth):
                    slots.extend(moment[w][d] if d < len(moment.get(w, ())) else identity for w in wires)
                    self._chunk_sizes.append(len(wires))
        self._slot_source = np.array([s[0] for s in slots], dtype=np.int64)
        self._slot_a = np.array([s[1] for s in slots], dtype=complex).reshape(-1, 2, 2)
        self._slot_b = np.array([s[2] for s in slots], dtype=complex).reshape(-1, 2, 2)
        depth = max((len(b) for b in blocks), default=0)  # block slots depth-major: (depth, n_blocks)
        pad = (n_pool, np.eye(4, dtype=complex), np.zeros((4, 4), dtype=complex))
        grid = [b[d] if d < len(b) else pad for d in range(depth) for b in blocks]
        self._block_source = np.array([s[0] for s in grid], dtype=np.int64)
        self._block_a = np.array([s[1] for s in grid], dtype=complex).reshape(-1, 4, 4)
        self._block_b = np.array([s[2] for s in grid], dtype=complex).reshape(-1, 4, 4)
        self._n_blocks = len(blocks)
        a, b = self._block_a.reshape(depth, len(blocks), 4, 4), self._block_b.reshape(depth, len(blocks), 4, 4)
        self._block_kinds = [(bool(np.allclose(a[k], np.eye(4))), not b[k].any()) for k in range(depth)]
        self._block_angles = [k for k, (_, b_is_zero) in enumerate(self._block_kinds) if not b_is_zero]
        self._block_terms = (block_terms(a, b, self._block_angles)  # blocks of constant gates only: slot by slot
                             if 0 < len(self._block_angles) <= BLOCK_TERMS_MAX_ANGLES else None)

    def _monomial_step(self, run: list[tuple[tuple[int, ...], np.ndarray]]) -> tuple:
        """A run of monomial gates ``(wires, matrix)``: up to :data:`PERMUTE_MAX_QUBITS` one gather, ``("perm", perm,
        phase)``; above, ``("mono", gates, inverse, conjugated inverse)``, each gate one copy of the state
        (:func:`apply_monomials`)."""
        if self.n <= PERMUTE_MAX_QUBITS:
            return ("perm", *run_permutation(run, self.n))
        gates = tuple(monomial_gate(wires, m) for wires, m in run)
        inverse = inverse_monomials(gates)
        return ("mono", gates, inverse, conjugate_monomials(inverse))

    def _block_slots(self, items: list, pair: tuple[int, int], n_pool: int) -> list[tuple]:
        """A block's 4x4 slots on ``pair`` (:func:`_block_slot`), with every constant one (a constant gate, a
        rotation by a constant angle) multiplied into the next slot that has an angle (``A <- A C``, ``B <- B C``),
        or kept as the last slot: a ring of ``CRot`` decomposed into rotations and CNOTs, with Hadamards, goes from
        10 slots per block to 6, and each slot with an angle is a factor of :meth:`_block_matrices`."""
        out, pending = [], None
        for source, a, b in (_block_slot(wires, item, pair, n_pool) for wires, item in items):
            if source >= n_pool:  # cos(h) A + sin(h) B with h known now
                half = 0.5 * self._pool_consts[source - n_pool]
                m = np.cos(half) * a + np.sin(half) * b
                pending = m if pending is None else m @ pending
                continue
            if pending is not None:
                a, b, pending = a @ pending, b @ pending, None
            out.append((source, a, b))
        if pending is not None:
            out.append((n_pool, pending, np.zeros((4, 4), dtype=complex)))
        return out

    def _slot_matrices(self, flat_a: torch.Tensor, flat_w: torch.Tensor, cdtype: torch.dtype) -> list:
        """The matrices of one call in program order: per single-qubit step ``(B, n_wires, 2, 2)`` (its
        wires' fused 2x2s), per chunk step ``(B, 2**k, 2**k)`` (their Kronecker product), per block ``(B, 4, 4)``."""
        batch, dev, rdtype = flat_a.shape[0], flat_a.device, flat_w.dtype
        consts = self._const("pool_consts", self._pool_consts, rdtype, dev)
        pool = torch.cat([flat_a, flat_w.unsqueeze(0).expand(batch, -1), consts.unsqueeze(0).expand(batch, -1)], 1)
        per_depth, blocks = (), ()
        if len(self._slot_source):
            half = (pool[:, self._const("slot_source", self._slot_source, torch.int64, dev)] * 0.5)[..., None, None]
            a = self._const("slot_a", self._slot_a, cdtype, dev)
            b = self._const("slot_b", self._slot_b, cdtype, dev)
            per_depth = rotations(half, a, b).split(self._chunk_sizes, dim=1)  # (B, n_slots, 2, 2) split per depth
        if self._n_blocks:
            half = pool[:, self._const("block_source", self._block_source, torch.int64, dev)] * 0.5
            blocks_first = self._block_matrices(half.view(batch, -1, self._n_blocks), cdtype).transpose(0, 1)
            blocks = blocks_first.unbind(0)
        out: list = []
        groups: dict[tuple, list[tuple]] = {}  # chunk products by (width, depth); groups of blocks by their offsets
        for step in self._program:
            if step[0] == "block":
                out.append(blocks[step[2]])
            elif step[0] == "group":
                groups.setdefault(("group", step[2], tuple(off for _, off in step[3])), []).append((len(out), step[3]))
                out.append(None)
            elif step[0] == "1q":
                out.append(time_ordered_product(per_depth[step[2]:step[2] + step[3]]))
            elif step[0] == "kron":
                groups.setdefault((len(step[1]), step[3]), []).append((len(out), step[2]))
                out.append(None)
        for key, members in groups.items():  # one product and one Kronecker build per group
            if key[0] == "group":  # blocks on the same offsets: their products built together
                indices = [[index for index, _ in m] for _, m in members]
                stacks = [group_members(blocks_first, [row[j] for row in indices], self._const, (key, j))
                          for j in range(len(key[2]))]  # (G, B, 4, 4): each group's matrices contiguous
                for (i, _), mat in zip(members, group_matrix(stacks, key[2], key[1]).unbind(0), strict=True):
                    out[i] = mat
                continue
            width, depth = key
            mats = [torch.cat([per_depth[first + d] for _, first in members], 1) for d in range(depth)]
            krons = kron_chunk(time_ordered_product(mats).view(batch, len(members), width, 2, 2))
            for (i, _), kron in zip(members, krons.unbind(1), strict=True):
                out[i] = kron
        return out

    def _block_matrices(self, half: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
        """``(B, n_blocks, 4, 4)``: every block's product of slots ``cos(h) A + sin(h) B`` over its depth, from
        the half angles ``(B, depth, n_blocks)``: as a sum of constant terms where blocks have 1 to
        :data:`BLOCK_TERMS_MAX_ANGLES` slots with an angle (:meth:`_expanded_blocks`), else slot by slot.

        The running product ``P`` is kept as ``(n_blocks, 4, B * 4)``, the samples side by side, so a step
        ``P <- cos(h) (A P) + sin(h) (B P)`` is two matrix products per block over all samples at once (one
        product per sample and block of ``4 x 4`` matrices cost four times more, forward + backward)."""
        batch, depth, nb = half.shape
        dev = half.device
        if self._block_terms is not None:
            return self._expanded_blocks(half, cdtype)
        a = self._const("block_a", self._block_a, cdtype, dev).view(depth, nb, 4, 4)
        b = self._const("block_b", self._block_b, cdtype, dev).view(depth, nb, 4, 4)
        cos, sin = (f(half).permute(1, 2, 0)[:, :, None, :, None, None] for f in (torch.cos, torch.sin))
        eye = torch.eye(4, dtype=cdtype, device=dev)
        p = eye[None, :, None, :].expand(nb, 4, batch, 4).reshape(nb, 4, batch * 4)
        for k, (a_is_eye, b_is_zero) in enumerate(self._block_kinds):
            if b_is_zero:  # constant gates (and identity padding) at this depth: no angle
                p = p if a_is_eye else a[k] @ p
                continue
            ap = p if a_is_eye else a[k] @ p  # real arithmetic for the real weights: 3x faster than complex
            ap, bp = (torch.view_as_real(t).view(nb, 4, batch, 4, 2) for t in (ap, b[k] @ p))
            p = torch.view_as_complex(cos[k] * ap + sin[k] * bp).view(nb, 4, batch * 4)
        return p.view(nb, 4, batch, 4).permute(2, 0, 1, 3).contiguous()

    def _expanded_blocks(self, half: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
        """:meth:`_block_matrices` as one sum: with ``p`` slots that have an angle, a block is
        ``sum_s t_s(h) C_s`` over the ``2**p`` choices ``s`` of ``cos`` or ``sin`` per slot, ``t_s`` the product of
        the chosen ``cos(h_k)`` / ``sin(h_k)`` and ``C_s`` the product of the matching ``A_k`` / ``B_k`` (and the
        constant slots), computed when the circuit is compiled (:func:`block_terms`). The ``t_s`` are ``p - 1``
        outer products, the sum one real matrix product per block over all samples: Meyer et al.'s circuit at
        10 qubits, batch 64, ran 12% faster forward + backward than with the slots multiplied one by one."""
        batch, _, nb = half.shape
        terms = self._const("block_terms", self._block_terms, cdtype, half.device)  # (nb, 2**p, 4, 4)
        h = half[:, self._block_angles]
        trig = torch.stack([torch.cos(h), torch.sin(h)], -1)  # (B, p, nb, 2)
        t = trig[:, 0]
        for k in range(1, len(self._block_angles)):
            t = (t.unsqueeze(-1) * trig[:, k].unsqueeze(-2)).reshape(batch, nb, -1)
        out = torch.bmm(t.transpose(0, 1), torch.view_as_real(terms).reshape(nb, terms.shape[1], 32))
        return torch.view_as_complex(out.view(nb, batch, 4, 4, 2)).transpose(0, 1)

    def state(self, flat_a: torch.Tensor, weights: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
        batch, dev = flat_a.shape[0], weights.device
        fused = self._slot_matrices(flat_a, weights.reshape(-1), cdtype)
        init = torch.zeros(1, 2**self.n, dtype=cdtype, device=dev)  # |0...0>, not kept: 1 GiB at 26 qubits
        init[0, 0] = 1
        init = init.expand(batch, -1)
        if (torch.is_grad_enabled() and any(f.requires_grad for f in fused)
                and self.uses_adjoint(batch, init.element_size())):
            return AdjointRun.apply(self, init, *fused)
        return self.run(init, fused)

    def run(self, state: torch.Tensor, fused: list) -> torch.Tensor:
        """Apply every step to ``state``; ``fused``: each single-qubit step's ``(B, n_wires, 2, 2)`` matrices. Without
        autograd, a state batch of :data:`REUSE_MIN_BYTES` or more is written into two buffers by turns."""
        n, dev, cdtype, k = self.n, state.device, state.dtype, 0
        buffers = reused_buffers(state)
        for step_i, step in enumerate(self._program):
            kind = step[0]
            if kind == "1q":
                for w, mat in zip(step[1], fused[k].unbind(1), strict=True):
                    state = apply_1q(state, w, mat, n, into(buffers, state))
                k += 1
            elif kind == "block":
                state = apply_block(state, step[1], fused[k], n, into(buffers, state))
                k += 1
            elif kind == "kron":
                state = apply_chunk(state, step[1][0], fused[k], n, into(buffers, state))
                k += 1
            elif kind == "group":
                state = apply_group(state, step[1], fused[k], n, into(buffers, state))
                k += 1
            elif kind == "rotate":
                state = rotate(state, step[1], n, into(buffers, state))
            elif kind == "diag":
                state = multiply(state, self._const(("diag", step[2]), step[1], cdtype, dev), into(buffers, state))
            elif kind == "perm":
                state = gather(state, self._const(("perm", step_i), step[1], torch.int64, dev), into(buffers, state))
                if step[2] is not None:
                    phase = self._const(("phase", step_i), step[2], cdtype, dev)
                    state = multiply(state, phase, into(buffers, state))
            elif kind == "mono":
                state = (MonomialRun.apply(state, step[1], step[2], n) if buffers is None
                         else apply_monomials(state, step[1], n, buffers))
            else:
                state = apply_kq(state, step[1], self._const(("2q", step_i), step[2], cdtype, dev), n)
        if buffers is not None:
            buffers.release(state)  # the state returned stays out of the pool
        return state

    def adjoint_backward(self, psi: torch.Tensor, lam: torch.Tensor, fused: list) -> list[torch.Tensor]:
        """The gradients of the fused matrices, by the adjoint method: walk the program backwards, undoing
        each step on the final state ``psi`` (every step is unitary) and on the incoming gradient ``lam``.

        For ``y = M x`` on a wire, torch's vector-Jacobian products are ``grad_x = M^H grad_y`` and
        ``grad_M = sum grad_y x^H`` over the other axes. The walk carries ``mu = conj(lam)`` instead (``mu`` takes
        ``conj(M^H) = M^T``, conjugated diagonals and phases), so that ``grad_M = conj(sum mu x^T)`` is a product
        with no conjugated state batch (:func:`~qrl.simulator.gates.chunk_overlap`). Memory: ``psi``, ``mu`` and a
        few temporaries, whatever the depth, where autograd keeps a state batch per step.
        """
        n, dev, cdtype = self.n, psi.device, psi.dtype
        grads, k = [torch.zeros_like(f) for f in fused], len(fused)
        buffers = reused_buffers(psi)  # three, for psi, mu and the next step's output; never the ones handed in
        mu = torch.conj_physical(lam, out=into(buffers, psi))
        for step_i in reversed(range(len(self._program))):
            step = self._program[step_i]
            kind = step[0]
            if kind == "1q":
                k -= 1
                for j in reversed(range(len(step[1]))):
                    w, m = step[1][j], fused[k][:, j].transpose(-1, -2)
                    psi = apply_1q(psi, w, m.conj(), n, into(buffers, psi, mu))  # one after the other: psi is new
                    grads[k][:, j] = chunk_overlap(mu, psi, w, 2).conj()
                    mu = apply_1q(mu, w, m, n, into(buffers, mu, psi))
            elif kind == "rotate":
                psi = rotate(psi, n - step[1], n, into(buffers, psi, mu))
                mu = rotate(mu, n - step[1], n, into(buffers, mu, psi))
            elif kind in ("kron", "group"):
                k -= 1
                first, m = (step[1][0] if kind == "kron" else step[1]), fused[k].mT
                psi = apply_chunk(psi, first, m.conj(), n, into(buffers, psi, mu))
                grads[k] = chunk_overlap(mu, psi, first, m.shape[-1]).conj()
                mu = apply_chunk(mu, first, m, n, into(buffers, mu, psi))
            elif kind == "block":
                k -= 1
                m = fused[k].mT
                psi = apply_block(psi, step[1], m.conj(), n, into(buffers, psi, mu))
                grads[k] = block_overlap(mu, psi, step[1], n).conj()
                mu = apply_block(mu, step[1], m, n, into(buffers, mu, psi))
            elif kind == "diag":
                d = self._const(("diag", step[2]), step[1], cdtype, dev)  # a CZ ring's is real: no conjugated copy
                psi = multiply(psi, d if step[3] else d.conj(), into(buffers, psi, mu))
                mu = multiply(mu, d, into(buffers, mu, psi))
            elif kind == "perm":
                inv = self._const(("inverse", step_i), np.argsort(step[1]), torch.int64, dev)
                if step[2] is not None:
                    phase = self._const(("phase", step_i), step[2], cdtype, dev)
                    psi = multiply(psi, phase.conj(), into(buffers, psi, mu))
                    mu = multiply(mu, phase, into(buffers, mu, psi))
                psi = gather(psi, inv, into(buffers, psi, mu))
                mu = gather(mu, inv, into(buffers, mu, psi))
            elif kind == "mono":
                psi = apply_monomials(psi, step[2], n, buffers, (mu,))
                mu = apply_monomials(mu, step[3], n, buffers, (psi,))
            else:
                m = self._const(("2q", step_i), step[2], cdtype, dev).T
                psi, mu = apply_kq(psi, step[1], m.conj(), n), apply_kq(mu, step[1], m, n)
        if buffers is not None:
            buffers.release()  # nothing returned is a state batch
        return grads


REUSE_MIN_BYTES = 32 * 2**20
"""A run without autograd (a rollout's forward; the adjoint method's forward and backward) writes state batches of at
least this many bytes into buffers it reuses (:class:`~qrl.simulator.gates.StateBuffers`) instead of a new tensor per
step: glibc maps such blocks afresh (:data:`qrl.malloc.MMAP_THRESHOLD`), so every step faulted its output in page by
page. Smaller ones come from the heap at no such cost, and run as before (the same values either way)."""


BUFFER_POOL = BufferPool()
"""The state batches that runs on the CPU without autograd give back, for the next run of the same size (on a GPU
torch's caching allocator keeps freed blocks already). A run with autograd on a state batch of
:data:`REUSE_MIN_BYTES` or more empties it, so the memory it holds is never on top of autograd's."""


def release_buffers() -> None:
    """Empty :data:`BUFFER_POOL`: called by every backend call that does not run a :class:`WiresProgram` (the native
    kernel, Lightning, PennyLane), so that memory sized for the last large torch program run is not held beside it
    (``device="auto"`` sizes each call to fit memory alone)."""
    BUFFER_POOL.clear()


def reused_buffers(state: torch.Tensor) -> StateBuffers | None:
    """Buffers for a run on ``state`` without autograd, where its batch is :data:`REUSE_MIN_BYTES` or more (from
    :data:`BUFFER_POOL` on the CPU; the run gives them back by :meth:`StateBuffers.release`)."""
    if state.shape[0] * state.shape[-1] * state.element_size() < REUSE_MIN_BYTES:
        return None
    if torch.is_grad_enabled():
        release_buffers()
        return None
    return StateBuffers(state, BUFFER_POOL if state.device.type == "cpu" else None)


def into(buffers: StateBuffers | None, *held: torch.Tensor) -> torch.Tensor | None:
    """The buffer for the next step's output (one that holds none of ``held``), or ``None`` for a new tensor."""
    return None if buffers is None else buffers.other(*held)


def multiply(state: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``state * factor`` (a diagonal or phases over the ``2**n`` amplitudes), into ``out`` if given."""
    return state * factor if out is None else torch.mul(state, factor, out=out)


def gather(state: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``state[:, index]`` (a permutation of the amplitudes), into ``out`` if given."""
    return state[:, index] if out is None else torch.index_select(state, 1, index, out=out)


def group_members(blocks: torch.Tensor, index: list[int], const, key) -> torch.Tensor:
    """``blocks[index]`` (blocks first: ``(n_blocks, B, 4, 4)``): a strided view where ``index`` steps evenly (the
    blocks of a ring of groups), else one gather (its index tensor converted once, cached under ``key``)."""
    step = index[1] - index[0] if len(index) > 1 else 1
    if step > 0 and index == list(range(index[0], index[0] + step * len(index), step)):
        return blocks[index[0]:index[-1] + 1:step]
    return blocks[const(key, index, torch.int64, blocks.device)]


def apply_chunk(state: torch.Tensor, first: int, kron: torch.Tensor, n: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a ``(B, 2**k, 2**k)`` matrix on the ``k`` wires from ``first``: one batched product from the left
    on the first wires, from the right (rows of ``2**k`` amplitudes times its transpose) on the last ones, a
    broadcast one in between; into ``out`` (a state batch, no autograd) if given."""
    batch, dim = state.shape[0], kron.shape[-1]
    if first == 0:
        return matmul_into(kron, state.view(batch, dim, -1), out, bmm=True).reshape(batch, -1)
    if 2**first * dim == state.shape[1]:
        return matmul_into(state.view(batch, -1, dim), kron.mT, out, bmm=True).reshape(batch, -1)
    return matmul_into(kron.unsqueeze(1), chunk_view(state, first, dim), out).reshape(batch, -1)


def apply_group(state: torch.Tensor, first: int, m: torch.Tensor, n: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`apply_chunk` of a group of blocks' ``(B, 2**k, 2**k)`` matrices; in the middle wires, while a gradient
    is recorded, with :class:`qrl.simulator.fusion.BlockProduct`'s backward (autograd's expands the matrices and
    conjugates a copy of the state)."""
    batch, dim = state.shape[0], m.shape[-1]
    middle = 0 < first and 2**first * dim < state.shape[1]
    if middle and torch.is_grad_enabled() and (m.requires_grad or state.requires_grad):
        return BlockProduct.apply(m, chunk_view(state, first, dim)).reshape(batch, -1)
    return apply_chunk(state, first, m, n, out)


def cheaper_program(gates: list[Gate], n: int, n_angle: int, n_weight: int,
                    adjoint: bool | None = False) -> WiresProgram:
    """The per-wire program with or without two-qubit blocks, whichever :meth:`WiresProgram.cost` says is
    cheaper (unfused on a tie: blocks pay off where they remove many passes, e.g. rings of controlled
    rotations, 281 -> 56 passes at 14 qubits; a CZ ring is already one diagonal). The unfused program's cost
    comes from its steps alone (:func:`unfused_passes`), so it is compiled only when chosen (at 26 qubits its
    compile builds ``2**n`` diagonals: half a minute). The choice counts the blocks one pass each, as it did
    before groups of blocks (:func:`qrl.simulator.fusion.group_blocks`), so every circuit runs the program it
    ran before (the committed training runs reproduce); a chosen fused program then runs its blocks in groups."""
    fused = WiresProgram(gates, n, n_angle, n_weight, adjoint=adjoint, fuse=True, group=False)
    if fused.cost() < unfused_passes(gates, n):
        return WiresProgram(gates, n, n_angle, n_weight, adjoint=adjoint, fuse=True)
    return WiresProgram(gates, n, n_angle, n_weight, adjoint=adjoint)


def unfused_passes(gates: list[Gate], n: int) -> int:
    """:meth:`WiresProgram.passes` of the unfused program of ``gates``, from its schedule: one pass per single
    wire of a moment and one per chunk product (:func:`moment_parts`), one per run of permutations or other step;
    no ``2**n`` array built."""
    entries = [(g.wires[0], None) if len(g.wires) == 1 else (-1, g) for g in gates]
    total = 0
    for step in schedule(entries, n, diagonals=False, runs=True):
        if step[0] == "run":
            total += 1 if n <= PERMUTE_MAX_QUBITS else len(step[1])
            continue
        if step[0] != "1q":
            total += 1
            continue
        total += sum(len(wires) if kind == "1q" else 1 for kind, wires in moment_parts(step[1], n))
    return total


BLOCK_TERMS_MAX_ANGLES = 8
"""Blocks with at most this many slots with an angle are built as a sum of ``2**p`` constant terms
(:meth:`WiresProgram._expanded_blocks`); deeper ones slot by slot."""


def block_terms(a: np.ndarray, b: np.ndarray, angles: list[int]) -> np.ndarray:
    """``(n_blocks, 2**p, 4, 4)``: for each choice ``s`` (bit ``p - 1 - j`` for the ``j``-th slot with an angle: 0
    for ``cos``, 1 for ``sin``) the time-ordered product of ``A_k`` or ``B_k`` over the slots with an angle and of
    ``A_k`` over the others, from the slot tables ``a``, ``b`` of shape ``(depth, n_blocks, 4, 4)``."""
    p, nb = len(angles), a.shape[1]
    out = np.empty((nb, 2**p, 4, 4), dtype=complex)
    for s in range(2**p):
        m = np.broadcast_to(np.eye(4, dtype=complex), (nb, 4, 4))
        for k in range(a.shape[0]):
            sine = k in angles and (s >> (p - 1 - angles.index(k))) & 1
            m = (b[k] if sine else a[k]) @ m
        out[:, s] = m
    return out


def _block_slot(wires: tuple[int, ...], item, pair: tuple[int, int], n_pool: int) -> tuple:
    """A block's 4x4 slot: a single-qubit slot ``(source, A, B)`` or a constant gate, embedded on ``pair``."""
    if len(wires) == 1:
        return item[0], embed(item[1], wires, pair), embed(item[2], wires, pair)
    return n_pool, embed(item.matrix, wires, pair), np.zeros((4, 4), dtype=complex)


class AdjointRun(torch.autograd.Function):
    """A :class:`WiresProgram` run whose backward is the adjoint method (nothing kept but the final state)."""

    @staticmethod
    def forward(ctx, program: WiresProgram, init: torch.Tensor, *fused: torch.Tensor) -> torch.Tensor:
        out = program.run(init, list(fused))
        ctx.program = program
        ctx.save_for_backward(out, *fused)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out, *fused = ctx.saved_tensors
        return (None, None, *ctx.program.adjoint_backward(out, grad, fused))
