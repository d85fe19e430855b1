"""Gate fusion into two-qubit blocks (as qsim and cuStateVec do), and the block updates on batched states.

At 10-26 qubits a program is bound by its passes over the ``(B, 2**n)`` state. A two-qubit gate and the
single-qubit gates around it on its wires become one ``4 x 4`` matrix per sample, built on the small
matrices and applied in one pass (a ring of controlled rotations: 7 passes per gate before, 1 now); runs of
blocks on at most four neighbouring wires become one ``16 x 16`` per sample (a group: one pass per three gates).
"""

from __future__ import annotations

import numpy as np
import torch

from qrl.simulator.gates import chunk_overlap, matmul_into

_SWAP = np.eye(4, dtype=complex)[[0, 2, 1, 3]]


def embed(m: np.ndarray, wires: tuple[int, ...], pair: tuple[int, int]) -> np.ndarray:
    """A 2x2 on one wire of ``pair`` or a 4x4 on both (in either order) as the 4x4 on ``pair``
    (``pair[0]`` the more significant bit)."""
    if len(wires) == 1:
        return np.kron(m, np.eye(2)) if wires[0] == pair[0] else np.kron(np.eye(2), m)
    return m if tuple(wires) == pair else _SWAP @ m @ _SWAP


def fuse_blocks(entries: list, n: int) -> list[tuple]:
    """Group a gate sequence into two-qubit blocks, greedily in time order.

    ``entries`` as for :func:`qrl.simulator.gates.schedule`: ``(wire, slot)`` for single-qubit matrices,
    ``(-1, gate)`` for constant gates on two or more wires. Returns steps ``("block", (lo, hi), items)``
    with ``items`` in time order, each ``(wires, slot_or_gate)``; ``("1q", {wire: [slot, ...]})`` for
    single-qubit gates on wires no later block touches; ``("kq", wires, matrix)`` for gates on 3+ wires.

    A two-qubit gate opens a block on its wires, taking the single-qubit gates waiting on them; later
    single-qubit gates on a wire join the last block on that wire (no later step touches that wire, so
    they commute with everything in between), and a two-qubit gate joins the block open on both its wires.
    """
    steps: list[tuple] = []
    pending: dict[int, list] = {}
    open_block: dict[int, int] = {}  # wire -> index in steps of the last block on that wire

    def flush(wires) -> None:
        moment = {w: pending.pop(w) for w in wires if pending.get(w)}
        if moment:
            steps.append(("1q", moment))

    for wire, item in entries:
        if wire >= 0:
            if wire in open_block:
                steps[open_block[wire]][2].append(((wire,), item))
            else:
                pending.setdefault(wire, []).append(item)
            continue
        wires = tuple(item.wires)
        if len(wires) > 2:
            flush(wires)
            steps.append(("kq", wires, item.matrix))
            for w in wires:
                open_block.pop(w, None)
            continue
        a, b = wires
        if open_block.get(a, -1) == open_block.get(b, -2):
            steps[open_block[a]][2].append((wires, item))
            continue
        items = [((w,), s) for w in (a, b) for s in pending.pop(w, [])]
        steps.append(("block", (min(a, b), max(a, b)), [*items, (wires, item)]))
        open_block[a] = open_block[b] = len(steps) - 1
    flush(sorted(pending))
    return steps


def relayout(steps: list[tuple], n: int) -> list[tuple]:
    """Steps on wires -> steps on state positions, with ``("rotate", d)`` steps that relabel the wires.

    :func:`apply_block` is in place (no copy) on adjacent positions with at least 64 amplitudes after them,
    or on the last two; elsewhere it copies the state in and out. Before a block that would copy, the
    positions are rotated (one copy of the state: wire ``w`` sits at position ``(w - s) % n``) so that one of
    its wires comes first, if that puts it in place: a ring of blocks then needs about ``n / (n - 7)``
    rotations per round instead of a copy in and out for 7 of its blocks. The last step rotates back.
    A group of blocks (:func:`group_blocks`) is rotated to the front where its wires are not neighbouring
    positions, or where they would be applied as a slow product (:func:`group_in_place`).
    """
    out: list[tuple] = []
    shift = 0

    def pos(w: int) -> int:
        return (w - shift) % n

    def place_block(step: tuple) -> tuple:
        nonlocal shift
        wires = step[1]
        if not block_in_place(tuple(sorted(map(pos, wires))), n):
            for first in wires:
                if block_in_place(tuple(sorted((w - first) % n for w in wires)), n):
                    out.append(("rotate", (first - shift) % n))
                    shift = first
                    break
        pair = tuple(sorted(map(pos, wires)))
        return ("block", pair, [(tuple(map(pos, ws)), item) for ws, item in step[2]])

    for step in steps:
        kind = step[0]
        if kind == "group":
            window = step[1]
            if not group_in_place(pos(window[0]), len(window), n):
                out.append(("rotate", (window[0] - shift) % n))
                shift = window[0]
            members = [("block", tuple(sorted(map(pos, b[1]))), [(tuple(map(pos, ws)), it) for ws, it in b[2]])
                       for b in step[2]]
            out.append(("group", pos(window[0]), len(window), members))
        elif kind == "block":
            out.append(place_block(step))
        elif kind == "1q":
            out.append(("1q", {pos(w): slots for w, slots in step[1].items()}))
        else:  # ("kq", wires, matrix)
            out.append((kind, tuple(map(pos, step[1])), step[2]))
    if shift:
        out.append(("rotate", (n - shift) % n))
    return out


def rotate(state: torch.Tensor, d: int, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Move every wire ``d`` positions towards the front (the first ``d`` go to the back): one copy (into ``out``, a
    state batch, if given)."""
    batch = state.shape[0]
    moved = state.view(batch, 2**d, 2 ** (n - d)).transpose(1, 2)
    if out is None:
        return moved.reshape(batch, -1)
    out.view(moved.shape).copy_(moved)
    return out


def block_view(state: torch.Tensor, pair: tuple[int, int], n: int) -> torch.Tensor:
    """``(B, 2**n)`` as ``(B, 2**lo, 2, 2**mid, 2, 2**rest)``: axes 2 and 4 are the wires of ``pair``."""
    lo, hi = pair
    return state.view(state.shape[0], 2**lo, 2, 2 ** (hi - lo - 1), 2, 2 ** (n - hi - 1))


MATMUL_MIN_REST = 64
"""Adjacent wires with at least this many amplitudes after them take their 4x4 as a broadcast ``matmul`` on a
view (no copy); elsewhere ``einsum`` (a copy in, one large matmul per sample, a copy out) was faster
(measured at 14 qubits, batch 64: 1.3-1.5 ms against 2-4 ms up to wire 5; 5-17 ms against 2-5 ms after)."""


def block_in_place(pair: tuple[int, int], n: int) -> bool:
    """Whether :func:`apply_block` applies a block on ``pair`` without copying the state."""
    lo, hi = pair
    return (hi == lo + 1 and 2 ** (n - hi - 1) >= MATMUL_MIN_REST) or lo == n - 2


def apply_block(state: torch.Tensor, pair: tuple[int, int], m: torch.Tensor, n: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a 4x4 on the wires ``pair = (lo, hi)``, ``lo < hi``: ``m`` is ``(4, 4)`` or ``(B, 4, 4)``; written into
    ``out`` (a state batch, no autograd) where given and the block is applied in place."""
    lo, hi = pair
    batch = state.shape[0]
    if hi == lo + 1 and lo < n - 2 and block_in_place(pair, n):
        view = state.view(batch, 2**lo, 4, -1)
        if m.dim() == 3 and torch.is_grad_enabled() and (m.requires_grad or state.requires_grad):
            return BlockProduct.apply(m, view).reshape(batch, -1)
        return matmul_into(m.unsqueeze(-3) if m.dim() == 3 else m, view, out).reshape(batch, -1)
    if lo == n - 2:  # the last two wires: a (2**(n-2), 4) matrix per sample times m^T
        return matmul_into(state.view(batch, -1, 4), m.mT, out).reshape(batch, -1)
    view = block_view(state, pair, n)
    if m.dim() == 3:
        return torch.einsum("bijkl,bxkylr->bxiyjr", m.view(batch, 2, 2, 2, 2), view).reshape(batch, -1)
    return torch.einsum("ijkl,bxkylr->bxiyjr", m.view(2, 2, 2, 2), view).reshape(batch, -1)


class BlockProduct(torch.autograd.Function):
    """``m[:, None] @ view`` (per-sample 4x4 blocks on a ``(B, L, 4, R)`` view of the state) with its backward
    written out: ``grad_m = sum_L g @ view^H``, ``grad_view = m^H @ g``. Autograd's own backward of the
    broadcast product was 1.1-1.7x slower (it expands ``m`` and conjugates a copy of the state)."""

    @staticmethod
    def forward(ctx, m: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(m, view)
        return torch.matmul(m.unsqueeze(1), view)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        m, view = ctx.saved_tensors
        grad_m = torch.matmul(grad, view.mH).sum(1) if ctx.needs_input_grad[0] else None
        grad_view = torch.matmul(m.mH.unsqueeze(1), grad) if ctx.needs_input_grad[1] else None
        return grad_m, grad_view


def block_overlap(mu: torch.Tensor, psi: torch.Tensor, pair: tuple[int, int], n: int) -> torch.Tensor:
    """``R[b, i, j] = sum mu[b, ..i..] psi[b, ..j..]`` over all but the ``pair`` bits: a 4x4 on ``pair`` has the
    gradient ``conj(R)`` (``mu`` the conjugated gradient of its output, ``psi`` its input; as
    :func:`qrl.simulator.gates.chunk_overlap`, whose product adjacent wires take)."""
    lo, hi = pair
    if hi == lo + 1:
        return chunk_overlap(mu, psi, lo, 4)
    out = torch.einsum("bxiyjr,bxkylr->bijkl", block_view(mu, pair, n), block_view(psi, pair, n))
    return out.reshape(psi.shape[0], 4, 4)


GROUP_WIDTH = 4
"""Consecutive blocks on adjacent wires within this many neighbouring wires run as one ``2**k x 2**k`` matrix
per sample (:func:`group_blocks`): a ring of controlled rotations then makes one pass per three gates. A
``16 x 16`` applied on four wires costs about what one ``4 x 4`` does (at 10 and 14 qubits, batch 64, with
training on both cores, forward + backward: three blocks 1.5-2.8 ms and 48-56 ms, their product 0.6-1.3 ms and
10-27 ms)."""


def group_blocks(steps: list[tuple], n: int, width: int = GROUP_WIDTH) -> list[tuple]:
    """Merge runs of consecutive blocks of :func:`fuse_blocks` into groups: ``("group", window, blocks)``, where the
    blocks (each on two neighbouring wires, counted around the ring) together cover ``window``, at most ``width``
    neighbouring wires in order (``(12, 13, 0)`` at 14 qubits). A block alone stays a block; other steps end a
    run, so the steps keep their order and the program computes the same product."""
    out: list[tuple] = []
    run: list[tuple] = []

    def flush() -> None:
        if len(run) > 1:
            out.append(("group", _window([b[1] for b in run], n), list(run)))
        elif run:
            out.append(run[0])
        run.clear()

    for step in steps:
        if step[0] != "block" or (step[1][1] - step[1][0]) % n not in (1, n - 1):
            flush()
            out.append(step)
            continue
        pairs = [b[1] for b in run] + [step[1]]
        if run and (len({w for p in pairs for w in p}) > width or _window(pairs, n) is None):
            flush()
        run.append(step)
    flush()
    return out


def _window(pairs: list[tuple[int, int]], n: int) -> tuple[int, ...] | None:
    """The wires of ``pairs`` as neighbouring wires in order around the ring, each pair next to each other in it
    (from the lowest start that does), or ``None``."""
    wires = {w for p in pairs for w in p}
    for start in range(n):
        window = tuple((start + i) % n for i in range(len(wires)))
        at = {w: i for i, w in enumerate(window)}
        if set(window) == wires and all(abs(at[a] - at[b]) == 1 for a, b in pairs):
            return window
    return None


def group_in_place(first: int, width: int, n: int) -> bool:
    """Whether a group's ``2**width x 2**width`` matrices on the positions from ``first`` are applied as one fast
    product (:func:`qrl.simulator.programs.apply_chunk`): on the first or the last positions, or with at least
    :data:`MATMUL_MIN_REST` amplitudes after them (with groups wherever they fell, some with 2 amplitudes after them,
    Meyer et al.'s circuit at 14 qubits ran 2x slower than with its blocks one by one)."""
    return first + width <= n and (first == 0 or first + width == n or 2 ** (n - first - width) >= MATMUL_MIN_REST)


GROUP_EINSUM_MEMBERS = 8
"""Blocks contracted by one ``einsum`` in :func:`group_matrix` (two index letters each, of 52)."""


def group_matrix(mats: list[torch.Tensor], offsets: tuple[int, ...], width: int) -> torch.Tensor:
    """The ``(..., 2**width, 2**width)`` product of ``4 x 4`` matrices ``(..., 4, 4)`` in time order, each on the
    wires ``(offset, offset + 1)`` of ``width`` wires (the first the most significant).

    One ``einsum`` of the blocks as ``2 x 2 x 2 x 2`` tensors, wire by wire, for up to
    :data:`GROUP_EINSUM_MEMBERS` blocks (longer runs: the products of such pieces): a sum over the wires
    the blocks share, where embedding each block in ``2**width`` dimensions and multiplying made batches of
    ``4 x 4`` by ``4 x 16`` products, 1.8x slower forward + backward (Meyer et al.'s circuit, 10 qubits).
    """
    lead, dim = mats[0].shape[:-2], 2**width
    u = None
    for start in range(0, len(mats), GROUP_EINSUM_MEMBERS):
        piece = _group_einsum(mats[start:start + GROUP_EINSUM_MEMBERS], offsets[start:start + GROUP_EINSUM_MEMBERS],
                              width).reshape(*lead, dim, dim)
        u = piece if u is None else piece @ u
    return u


def _group_einsum(mats: list[torch.Tensor], offsets: tuple[int, ...], width: int) -> torch.Tensor:
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxy")
    inputs = [next(letters) for _ in range(width)]
    wires, terms = list(inputs), []
    for off in offsets:  # each block maps the current letters of its two wires to two new ones
        out = [next(letters), next(letters)]
        terms.append("z" + "".join(out) + wires[off] + wires[off + 1])
        wires[off:off + 2] = out
    operands = [m.reshape(-1, 2, 2, 2, 2) for m in reversed(mats)]
    for k in range(width):  # a wire no block of this piece touches: the identity
        if wires[k] == inputs[k]:
            wires[k] = next(letters)
            terms.insert(0, wires[k] + inputs[k])
            operands.append(torch.eye(2, dtype=mats[0].dtype, device=mats[0].device))
    equation = ",".join(reversed(terms)) + "->z" + "".join(wires) + "".join(inputs)
    return torch.einsum(equation, *operands)
