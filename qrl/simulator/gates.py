"""Gate primitives on batched state vectors, and the schedule that orders a gate list into fused steps.

A state is a ``(B, 2**n)`` complex tensor, wire 0 the most significant bit (as in PennyLane). Every
gate update of the simulator is defined here once; the programs and the adjoint simulator compose them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch

from qrl.simulator.trace import Gate, Source

# Every parametric single-qubit gate is, up to a global phase, exp(-i theta/2 P) for a Pauli P:
# M = cos(theta/2) I + sin(theta/2) K with K = -i P. So all gate matrices of a call are built at once
# from one gather, one cos, one sin and two broadcast products, whatever the gate mix.
PAULI_K = {
    "X": -1j * np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": -1j * np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": -1j * np.array([[1, 0], [0, -1]], dtype=complex),
}
"""``K = -i P`` per Pauli axis: the generator part of ``exp(-i t P / 2) = cos(t/2) I + sin(t/2) K``."""


def as_rotations(gate: Gate) -> list[tuple[str, Source]]:
    """A parametric gate as Pauli rotations in the order they act, dropping global phases.

    ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``; ``PhaseShift(phi) = e^{i phi/2} RZ(phi)``.
    Global phases never change an expectation value.
    """
    if gate.name == "Rot":
        phi, theta, omega = gate.params
        return [("Z", phi), ("Y", theta), ("Z", omega)]
    axis = {"RX": "X", "RY": "Y", "RZ": "Z", "PhaseShift": "Z"}[gate.name]
    return [(axis, gate.params[0])]


def rotations(half: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Single-qubit matrices ``cos(h) A + sin(h) B``, ``half`` broadcast against the trailing ``(2, 2)``.

    A Pauli rotation by ``t`` is ``h = t / 2, A = I, B = K`` (:data:`PAULI_K`); a constant gate ``M`` is
    ``h = 0, A = M, B = 0``.
    """
    return torch.cos(half) * a + torch.sin(half) * b


def time_ordered_product(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``M_m @ ... @ M_1`` of matrices in time order (batched matrices broadcast)."""
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def kron_wires(m: torch.Tensor) -> torch.Tensor:
    """``(..., n, 2, 2)`` per-wire matrices -> ``(..., 2**n, 2**n)``, wire 0 most significant."""
    first, *rest = m.unbind(-3)  # unbind, not indexing: its backward is one stack, not a zero tensor per index
    out = first
    for k in rest:
        out = kron_pair(out, k)
    return out


def kron_pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a (x) b`` of (batched) square matrices ``(..., da, da)`` and ``(..., db, db)``: one broadcast product."""
    da, db = a.shape[-1], b.shape[-1]
    return (a[..., :, None, :, None] * b[..., None, :, None, :]).reshape(*a.shape[:-2], da * db, da * db)


class KronPair(torch.autograd.Function):
    """:func:`kron_pair` of batched square matrices ``(N, da, da)``, ``(N, db, db)`` -> ``(N, da*db, da*db)`` (the
    step of :func:`kron_wires`, so the same values to the bit). The backward is two batched matrix-vector products,
    where autograd's backward of the broadcast product summed over the broadcast axes (half the time of forward +
    backward of a chunk's Kronecker product at 10 qubits, batch 64; those sums were a fifth of a call)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return kron_pair(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # grad_a[i, j] = sum_{c, d} grad[(i, c), (j, d)] conj(b[c, d]); grad_b alike with conj(a)
        a, b = ctx.saved_tensors
        n, da, db = a.shape[0], a.shape[-1], b.shape[-1]
        pairs = grad.reshape(n, da, db, da, db).transpose(2, 3).reshape(n, da * da, db * db)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.bmm(pairs, b.conj().reshape(n, db * db, 1)).view(n, da, da)
        if ctx.needs_input_grad[1]:
            grad_b = torch.bmm(a.conj().reshape(n, 1, da * da), pairs).view(n, db, db)
        return grad_a, grad_b


def kron_chunk(m: torch.Tensor) -> torch.Tensor:
    """:func:`kron_wires` of per-sample matrices ``(..., k, 2, 2)``, same values, with :class:`KronPair`'s faster
    backward (the per-wire program's chunk products; the dense program keeps :func:`kron_wires`, so its gradients
    and the reference training runs stay bitwise as they were)."""
    lead = m.shape[:-3]
    first, *rest = m.reshape(-1, *m.shape[-3:]).unbind(-3)
    out = first
    for k in rest:
        out = KronPair.apply(out, k)
    return out.reshape(*lead, *out.shape[-2:])


def chunk_view(state: torch.Tensor, first: int, dim: int) -> torch.Tensor:
    """``(B, 2**n)`` as ``(B, 2**first, dim, rest)``: axis 2 is the chunk of wires from ``first``."""
    return state.view(state.shape[0], 2**first, dim, -1)


def wire_view(state: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """``(B, 2**n)`` as ``(B, 2**wire, 2, 2**(n - wire - 1))``: axis 2 is ``wire``."""
    return state.reshape(state.shape[0], 2**wire, 2, 2 ** (n - wire - 1))


ELEMENTWISE_BELOW = 64
"""Wires with fewer amplitudes than this after them get their 2x2 as elementwise products (see apply_1q)."""
ELEMENTWISE_MIN_STATE, ELEMENTWISE_MAX_STATE = 2**16, 2**21
"""...for state batches of this many amplitudes: below, the elementwise form's extra torch calls cost more
(12 qubits at batch 8: 21 ms with the matmul, 32 ms without); above, its temporaries do (20 qubits at batch
8: 31.5 s with the matmul, 39.9 s without; forward + backward of 5 layers of hea)."""


POOL_MAX_BUFFERS = 3
"""The most state batches a :class:`BufferPool` keeps (the adjoint method's backward writes into three)."""


class BufferPool:
    """State batches that runs without autograd gave back, handed to the next such run of the same size.

    A run's :class:`StateBuffers` are otherwise new each call: at 24 qubits and 8 samples five 1 GiB batches faulted
    in page by page per forward + backward (README, "Where hsiao's time at 24 qubits goes"). The pool keeps buffers of
    one size only (a run of another size, or :meth:`clear`, drops them) and at most :data:`POOL_MAX_BUFFERS`; the
    programs empty it where a call runs without them (:func:`qrl.simulator.programs.release_buffers`). Thread-safe; a
    buffer taken belongs to its run alone.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._free: list[torch.Tensor] = []

    def take(self, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A flat buffer of ``numel`` elements: one given back, else a new one (dropping those of another size, or
        made in or out of ``torch.inference_mode`` where this call is not: an inference tensor cannot be written
        outside it)."""
        key = (numel, dtype, device, torch.is_inference_mode_enabled())
        with self._lock:
            if self._key != key:
                self._key, self._free = key, []
            if self._free:
                return self._free.pop()
        return torch.empty(numel, dtype=dtype, device=device)

    def give(self, buffers: Sequence[torch.Tensor]) -> None:
        """Keep ``buffers`` (no longer used by anyone) for the next run of their size, up to the pool's bound."""
        with self._lock:
            for buffer in buffers:
                key = (buffer.numel(), buffer.dtype, buffer.device, buffer.is_inference())
                if key == self._key and len(self._free) < POOL_MAX_BUFFERS:
                    self._free.append(buffer.reshape(-1))

    def clear(self) -> None:
        """Drop every buffer kept (their memory goes back to the allocator)."""
        with self._lock:
            self._key, self._free = None, []

    def held_bytes(self) -> int:
        """The bytes of the buffers kept now."""
        with self._lock:
            return sum(b.numel() * b.element_size() for b in self._free)


class StateBuffers:
    """State batches that a run without autograd writes its steps into by turns, instead of a new tensor per step.

    A state batch of 32 MiB or more is mapped afresh by glibc on every allocation and faulted in page by page
    (:mod:`qrl.malloc`): at 22 qubits and 8 samples a chunk's product took 0.13 s into a new tensor and 0.05-0.07 s into
    one written before (``out=``). :meth:`other` hands out a buffer that holds none of the states given, creating one
    (or taking it from ``pool``) only when every buffer does (two for one state walked forward; three for the adjoint
    method's two); :meth:`release` gives them back to ``pool`` when the run is over.
    """

    def __init__(self, like: torch.Tensor, pool: BufferPool | None = None):
        self._shape, self._dtype, self._device = like.shape, like.dtype, like.device
        self._buffers: list[torch.Tensor] = []
        self._pool = pool

    def other(self, *held: torch.Tensor) -> torch.Tensor:
        """A buffer of ``like``'s shape whose memory is none of ``held``'s."""
        free = self.apart_from(held)
        if free:
            return free[0]
        numel = math.prod(self._shape)
        flat = (self._pool.take(numel, self._dtype, self._device) if self._pool is not None
                else torch.empty(numel, dtype=self._dtype, device=self._device))
        self._buffers.append(flat.view(self._shape))
        return self._buffers[-1]

    def apart_from(self, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """This run's buffers whose memory is none of ``states``', in the order they were made."""
        taken = {state.untyped_storage().data_ptr() for state in states}
        return [b for b in self._buffers if b.untyped_storage().data_ptr() not in taken]

    def release(self, *kept: torch.Tensor) -> None:
        """End of the run: every buffer but those holding ``kept`` (the states it returns) goes to the pool. The
        buffers are then no longer this object's."""
        if self._pool is not None:
            self._pool.give(self.apart_from(kept))
        self._buffers = []


PER_SAMPLE_MIN_EXPANDED = 2**20
"""A broadcast product of one matrix per sample with every row of its state, ``(B, 1, d, d) @ (B, rows, d, rest)``,
copies the matrices out to ``(B, rows, d, d)`` first (``torch.matmul`` merges the batch axes): a state batch's worth at
``d == rest``. Without autograd, where that copy would be at least this many elements and a sample at least
:data:`PER_SAMPLE_MIN_AMPLITUDES` amplitudes, :func:`matmul_into` takes one product per sample instead, whose matrix is
copied over a block of rows only (:data:`PER_SAMPLE_BLOCK_ELEMENTS`; until 2026-12-06 ``bmm`` copied it over all of a
sample's rows, which this docstring called no copy). Measured with that copy (complex64, one thread, qrl's
:mod:`qrl.malloc` settings, 2026-12-06), the broadcast product's time over the per-sample ones' at ``d = 16``: 2.8x at
24 and 22 qubits and 8 samples (1.17x at 22 with ``d = 8``), 1.23x at 20, 1.9x at 18, 1.03x at 16 and 64 samples; where
the copy is smaller 0.98x at 17 qubits and 16 samples, 1.09x at 15 and 64, 0.88x-0.94x at 14, 0.58x at 12 and 64."""
PER_SAMPLE_MIN_AMPLITUDES = 2**15
PER_SAMPLE_BLOCK_ELEMENTS = 2**18
"""A per-sample product broadcasts its matrix over at most this many elements (2 MiB in complex64, from the heap) and
runs over the rows in blocks of that many: ``torch.bmm`` (and ``matmul``) copy a broadcast operand out to a contiguous
one first, one sample's worth (128 MiB at 24 qubits with ``d = rest = 16``), which in a forward + backward of ``hea``
at 24 qubits and 8 samples was mapped afresh and faulted in on each of 40 products (1.31 M page faults per call)."""
PER_SAMPLE_DEVICES = ("cpu",)
"""Where the per-sample products run: measured on the CPU only. On a GPU each sample would be a kernel launch (1,024
per product at batch 1,024), and the GPU table of 2026-12-04 was measured with the broadcast product; there it stays
until measured (``tests/gpu/persample.py`` times both, ``tests/gpu/check.sh`` runs it)."""


def matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None, bmm: bool = False) -> torch.Tensor:
    """``a @ b`` (batch axes broadcast), into ``out`` (a state batch, viewed to the product's shape) if given; ``bmm``:
    by ``torch.bmm`` (two 3-D batches of one size), whose autograd graph is one node where ``matmul``'s is four. A
    matrix per sample times every row of its state, ``(B, 1, d, d) @ (B, rows, d, rest)``, runs per sample where
    :data:`PER_SAMPLE_MIN_EXPANDED` says so."""
    product = torch.bmm if bmm else torch.matmul
    if not bmm and per_sample_product(a, b):
        shape = (*b.shape[:-2], a.shape[-2], b.shape[-1])
        out = b.new_empty(shape) if out is None else out.view(shape)
        rows = b.shape[1]
        step = min(rows, max(1, PER_SAMPLE_BLOCK_ELEMENTS // (a.shape[-2] * a.shape[-1])))
        for s in range(b.shape[0]):
            m = a[s].expand(step, -1, -1).contiguous()  # bmm would copy a broadcast matrix over all the rows
            for r in range(0, rows, step):
                torch.bmm(m[:rows - r], b[s, r:r + step], out=out[s, r:r + step])
        return out
    if out is None:
        return product(a, b)
    shape = (*torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    return product(a, b, out=out.view(shape))


def per_sample_product(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether :func:`matmul_into` takes ``a @ b`` one sample at a time (no autograd; see
    :data:`PER_SAMPLE_MIN_EXPANDED`)."""
    if a.dim() != 4 or b.dim() != 4:
        return False
    (batch, one, d_out, d_in), (rows_batch, rows, d_rows, rest) = a.shape, b.shape
    if one != 1 or rows == 1 or batch != rows_batch:
        return False
    if batch * rows * d_out * d_in < PER_SAMPLE_MIN_EXPANDED or rows * d_rows * rest < PER_SAMPLE_MIN_AMPLITUDES:
        return False  # the sizes first: this runs on every small product of the torch path
    if a.device.type not in PER_SAMPLE_DEVICES:
        return False
    return not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))


def apply_1q(state: torch.Tensor, wire: int, m: torch.Tensor, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a 2x2 matrix on ``wire``: ``m`` is ``(2, 2)`` or one per sample ``(B, 2, 2)``; the matrix product is
    written into ``out`` (a state batch, no autograd) where given (:class:`StateBuffers`).

    A broadcast ``matmul`` on a view of the state: no permutes or copies (``einsum`` permuted and copied).
    On the last wires that ``matmul`` is a batch of ``B * 2**wire`` products of ``2 x 2`` by ``2 x rest``
    matrices with ``rest`` small, slow forward and slower backward; there the two output halves are
    elementwise sums ``m[i, 0] a_0 + m[i, 1] a_1`` instead (measured, forward + backward: 12 qubits x 5
    layers of hea at batch 64, 147 -> 97 ms; at batch 8, 16 qubits 420 -> 272 ms, 18 qubits 2053 -> 1520 ms).
    """
    view = wire_view(state, wire, n)
    if view.shape[-1] >= ELEMENTWISE_BELOW or not ELEMENTWISE_MIN_STATE <= state.numel() <= ELEMENTWISE_MAX_STATE:
        if m.dim() == 3:
            m = m.unsqueeze(1)  # (B, 1, 2, 2) @ (B, 2**w, 2, rest)
        return matmul_into(m, view, out).reshape(state.shape[0], -1)
    a0, a1 = view[:, :, 0], view[:, :, 1]
    if m.dim() == 3:
        m = m[:, :, :, None, None]  # (B, 2, 2, 1, 1): entry (i, j) broadcasts over (B, 2**w, rest)
        rows = [m[:, i, 0] * a0 + m[:, i, 1] * a1 for i in (0, 1)]
    else:
        rows = [m[i, 0] * a0 + m[i, 1] * a1 for i in (0, 1)]
    return torch.stack(rows, 2).reshape(state.shape[0], -1)


def apply_2q(state: torch.Tensor, wires: tuple[int, ...], m: torch.Tensor, n: int) -> torch.Tensor:
    """Apply a 4x4 matrix ``m`` on ``wires = (w0, w1)`` (``w0`` the more significant bit of ``m``)."""
    batch = state.shape[0]
    w0, w1 = wires
    lo, hi = min(w0, w1), max(w0, w1)
    view = state.view(batch, 2**lo, 2, 2 ** (hi - lo - 1), 2, 2 ** (n - hi - 1))
    mat = m.view(2, 2, 2, 2)
    out = torch.einsum("ijkl,bakcld->baicjd", mat, view) if w0 < w1 else \
        torch.einsum("ijkl,balckd->bajcid", mat, view)
    return out.reshape(batch, -1)


def apply_kq(state: torch.Tensor, wires: tuple[int, ...], m: torch.Tensor, n: int) -> torch.Tensor:
    """Apply a ``2**k x 2**k`` matrix on ``k`` wires (the first the most significant bit of ``m``)."""
    if len(wires) == 2:
        return apply_2q(state, wires, m, n)
    batch, k = state.shape[0], len(wires)
    rest = [w for w in range(n) if w not in wires]
    view = state.reshape(batch, *[2] * n).permute(0, *[1 + w for w in wires], *[1 + w for w in rest])
    out = (m @ view.reshape(batch, 2**k, -1)).reshape(batch, *[2] * n)
    inverse = np.argsort([0, *[1 + w for w in wires], *[1 + w for w in rest]])
    return out.permute(*inverse.tolist()).reshape(batch, -1)


MonomialGate = tuple[tuple[int, ...], tuple[int, ...], tuple[complex, ...] | None]
"""A gate that permutes basis states and multiplies phases, as ``(wires, source, phase)``: output row ``r`` of its
``2**k`` local rows takes input row ``source[r]`` times ``phase[r]`` (``phase`` ``None``: all 1)."""


def monomial_gate(wires: tuple[int, ...], m: np.ndarray) -> MonomialGate:
    """A monomial matrix (:func:`monomial`) on ``wires`` as ``(wires, source, phase)``."""
    source = np.argmax(np.abs(m) > 1e-12, axis=1)
    phase = m[np.arange(len(m)), source]
    return tuple(wires), tuple(source.tolist()), None if np.allclose(phase, 1) else tuple(complex(p) for p in phase)


def inverse_monomials(run: Sequence[MonomialGate]) -> tuple[MonomialGate, ...]:
    """The inverse (the conjugate transpose) of a run of monomial gates, in the order it applies."""
    out = []
    for wires, source, phase in reversed(run):
        back, back_phase = [0] * len(source), [1.0 + 0j] * len(source)
        for r, s in enumerate(source):
            back[s], back_phase[s] = r, (1.0 if phase is None else phase[r].conjugate())
        out.append((wires, tuple(back), None if phase is None else tuple(back_phase)))
    return tuple(out)


def apply_monomials(state: torch.Tensor, run: Sequence[MonomialGate], n: int, buffers: StateBuffers | None = None,
                    keep: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
    """Apply a run of monomial gates without autograd: each one copy of the state batch, quarter by quarter for a
    two-qubit gate (no matrix product, no index of ``2**n`` entries), between two buffers reused along the run (the
    run's own, or ``buffers`` shared with the steps around it, never writing into the states in ``keep``)."""
    buffers, src = buffers or StateBuffers(state), state
    for wires, source, phase in run:
        dst = buffers.other(src, *keep)
        shape, rows = _row_slices(wires, n, state.shape[0])
        sv, dv = src.view(shape), dst.view(shape)
        for r, s in enumerate(source):
            if phase is None or phase[r] == 1:
                dv[rows[r]].copy_(sv[rows[s]])
            else:
                torch.mul(sv[rows[s]], phase[r], out=dv[rows[r]])
        src = dst
    return src


def conjugate_monomials(run: Sequence[MonomialGate]) -> tuple[MonomialGate, ...]:
    """The run with every phase conjugated (the complex conjugate of each gate's matrix: same rows, same order)."""
    return tuple((wires, source, None if phase is None else tuple(p.conjugate() for p in phase))
                 for wires, source, phase in run)


OVERLAP_TRACE_MAX = 16
""":func:`chunk_overlap` takes one product of ``dim * rest`` columns (and the trace over ``rest``) where a chunk has
at most this many amplitudes per row, or at most 2 after it; a product per row, broadcast, elsewhere."""
OVERLAP_MAX_ELEMENTS = 2**18
"""...and there writes at most this many elements of per-row products at a time (2 MiB at complex64, from the heap:
at 22 qubits and 8 samples the whole broadcast product was up to 1 GiB of new memory, faulted in page by page)."""


def chunk_overlap(mu: torch.Tensor, psi: torch.Tensor, first: int, dim: int) -> torch.Tensor:
    """``R[b, i, j] = sum_{a, c} mu[b, a, i, c] psi[b, a, j, c]`` of ``(B, 2**first, dim, rest)`` views: the
    gradient of a ``dim x dim`` matrix on the wires from ``first`` is ``conj(R)`` with ``mu`` the conjugated
    gradient of its output and ``psi`` its input (the adjoint method). No operand is conjugated: a conjugated
    operand made torch copy it (a state batch each time, 0.14 s of a 0.17 s overlap at 22 qubits and 8 samples).
    One batched product on the first wires, one with the trace over ``rest`` on the last ones, else products per
    row in slices of :data:`OVERLAP_MAX_ELEMENTS` results."""
    batch = psi.shape[0]
    m, p = chunk_view(mu, first, dim), chunk_view(psi, first, dim)
    rows, rest = m.shape[1], m.shape[-1]
    if rows == 1:
        return torch.bmm(m[:, 0], p[:, 0].mT)
    if dim * rest <= OVERLAP_TRACE_MAX or rest <= 2:
        r = torch.bmm(m.reshape(batch, rows, -1).mT, p.reshape(batch, rows, -1))
        return r if rest == 1 else r.view(batch, dim, rest, dim, rest).diagonal(dim1=2, dim2=4).sum(-1)
    if batch * rows * dim * dim <= OVERLAP_MAX_ELEMENTS:
        return (m @ p.mT).sum(1)
    step, out = max(1, OVERLAP_MAX_ELEMENTS // (dim * dim)), m.new_zeros(batch, dim, dim)
    for b in range(batch):
        for s in range(0, rows, step):
            out[b] += torch.bmm(m[b, s:s + step], p[b, s:s + step].mT).sum(0)
    return out


def wires_view_shape(wires, n: int, batch: int) -> list[int]:
    """The shape that views ``(batch, 2**n)`` with an axis of 2 per wire of ``wires`` (distinct), in wire order: the
    ``j``-th smallest wire's axis is ``2 + 2 j``, between axes of the wires' runs before and after it."""
    shape, last = [batch], -1
    for w in sorted(wires):
        shape += [2 ** (w - last - 1), 2]
        last = w
    return [*shape, 2 ** (n - last - 1)]


def _row_slices(wires: tuple[int, ...], n: int, batch: int) -> tuple[list[int], list[tuple]]:
    """:func:`wires_view_shape`, and per local row ``r`` of a gate on ``wires`` (``wires[0]`` its most significant
    bit) the index of its slice of that view."""
    order = sorted(range(len(wires)), key=lambda j: wires[j])
    shape = wires_view_shape(wires, n, batch)
    rows = []
    for r in range(2 ** len(wires)):
        index: list = [slice(None)]
        for j in order:
            index += [slice(None), (r >> (len(wires) - 1 - j)) & 1]
        rows.append((*index, slice(None)))
    return shape, rows


class MonomialRun(torch.autograd.Function):
    """:func:`apply_monomials` with autograd: the backward applies the inverse run to the incoming gradient (the
    vector-Jacobian product of a unitary ``U`` is ``U^H``, itself a :class:`MonomialRun`, so a second derivative
    works too); nothing is saved."""

    @staticmethod
    def forward(ctx, state: torch.Tensor, run: tuple, inverse: tuple, n: int) -> torch.Tensor:
        ctx.run, ctx.inverse, ctx.n = run, inverse, n
        return apply_monomials(state, run, n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return MonomialRun.apply(grad.contiguous(), ctx.inverse, ctx.run, ctx.n), None, None, None


def z_expectation(state: torch.Tensor, diagonals: torch.Tensor) -> torch.Tensor:
    """``|psi|^2 @ D``: expectation values of Z-type observables, ``D`` their eigenvalues (``(2**n, k)``)."""
    return (state.real**2 + state.imag**2) @ diagonals


def schedule(entries: list, n: int, diagonals: bool = True, runs: bool = False) -> list[tuple]:
    """Order a gate sequence into moments, diagonals and two-qubit gates.

    ``entries`` is the gate sequence: ``(wire, slot)`` for single-qubit matrices, ``(-1, gate)``
    for two-qubit gates. Returns steps ``("1q", {wire: [slot, ...]})``, ``("diag", d)`` (a full
    ``2**n`` diagonal) and ``("2q", wires, matrix)``. A wire's pending single-qubit gates are emitted
    before the next two-qubit gate on that wire; consecutive diagonal two-qubit gates (e.g. a CZ ring)
    accumulate into one diagonal, emitted before the next single-qubit gate or non-diagonal gate.
    Pending gates on wires a diagonal does not touch commute with it, so their relative order does not
    matter; single-qubit runs emitted next to each other act on distinct wires and form one moment.
    With ``diagonals=False`` a diagonal step holds an empty array: the steps alone, with no ``2**n`` array
    built (to count a program's passes before choosing it). A run of diagonal gates equal to an earlier run
    (a CZ ring in every layer) shares that run's array (:func:`diagonal_product`).

    With ``runs``, gates that only permute basis states and multiply phases (CNOT, CZ, SWAP ...: *monomial*)
    accumulate into one run however single-qubit gates arrive, as long as each one's wires have no gate
    pending since the run touched them; a run with a non-diagonal gate is one step ``("run", [(wires, m),
    ...])`` (a CNOT ring: one step, where it was one per CNOT with a moment between each two).
    """
    program: list[tuple] = []
    pending: dict[int, list] = {}
    run: list[tuple[tuple[int, ...], np.ndarray]] = []  # the gates of the open run (diagonal, or monomial)
    touched: set[int] = set()  # wires the open run acts on
    built: dict[bytes, np.ndarray] = {}
    moment: dict[int, list] = {}

    def emit_moment() -> None:
        if moment:
            program.append(("1q", dict(moment)))
            moment.clear()

    def emit_run() -> None:
        if run:
            emit_moment()
            if any(d.ndim == 2 for _, d in run):
                program.append(("run", [(w, d if d.ndim == 2 else np.diag(d)) for w, d in run]))
            else:
                key = repr([(w, d.tobytes()) for w, d in run]).encode()
                if key not in built:
                    built[key] = diagonal_product(run, n) if diagonals else np.empty(0)
                program.append(("diag", built[key]))
            run.clear()
            touched.clear()

    def emit_pending(w: int) -> None:
        if pending.get(w):
            if w in touched:  # a gate after the run on this wire: the run goes first
                emit_run()
            moment[w] = pending.pop(w)

    for wire, item in entries:
        if wire >= 0:
            if not runs:
                emit_run()
            pending.setdefault(wire, []).append(item)
            continue
        for w in item.wires:
            emit_pending(w)
        m = item.matrix
        if np.allclose(m, np.diag(np.diag(m))):
            run.append((tuple(item.wires), np.diag(m).copy()))
            touched.update(item.wires)
        elif runs and monomial(m):
            run.append((tuple(item.wires), m))
            touched.update(item.wires)
        else:
            emit_run()
            emit_moment()
            program.append(("2q", item.wires, m))
    emit_run()
    for w in sorted(pending):
        emit_pending(w)
    emit_moment()
    return program


def monomial(m: np.ndarray) -> bool:
    """Whether ``m`` has exactly one nonzero per row and column (a permutation times phases)."""
    nonzero = np.abs(m) > 1e-12
    return bool((nonzero.sum(0) == 1).all() and (nonzero.sum(1) == 1).all())


def basis_bits(n: int) -> np.ndarray:
    """``(2**n, n)``: bit ``w`` of every basis state, wire 0 the most significant (PennyLane's order)."""
    return (np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))[None, :]) & 1


def basis_bit(n: int, wire: int) -> np.ndarray:
    """``(2**n,)``: bit ``wire`` of every basis state (one column of :func:`basis_bits`, without the
    ``(2**n, n)`` table: 14 GiB at 26 qubits)."""
    return (np.arange(2**n, dtype=np.int64) >> (n - 1 - int(wire))) & 1


def local_index(wires, n: int) -> np.ndarray:
    """``(2**n,)``: every basis state's bits on ``wires`` read as an integer, the first wire most significant
    (the row or column of a gate on those wires, or the outcome of ``qml.probs(wires)``)."""
    local = np.zeros(2**n, dtype=np.int64)
    for w in wires:
        local = (local << 1) | basis_bit(n, w)
    return local


def diagonal_product(gates: list[tuple[tuple[int, ...], np.ndarray]], n: int) -> np.ndarray:
    """``(2**n,)``: the diagonal of a product of diagonal gates ``(wires, d)`` (``d`` indexed by the bits of
    ``wires``, the first most significant): each multiplied in place, broadcast over the ``(2,) * n`` state
    axes (one pass over ``2**n`` per gate; gathering through an index array made several)."""
    full = np.ones((2,) * n, dtype=np.complex128)
    for wires, d in gates:
        local = d.reshape((2,) * len(wires)).transpose(np.argsort(wires))
        shape = [1] * n
        for w in wires:
            shape[w] = 2
        full *= local.reshape(shape)
    return full.reshape(-1)


def state_bytes(n_qubits: int, batch: int = 1, itemsize: int = 16) -> int:
    """Memory of ``batch`` complex state vectors of ``n_qubits`` qubits."""
    return batch * itemsize * int(math.pow(2, n_qubits))
