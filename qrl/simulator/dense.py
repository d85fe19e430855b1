"""The dense program for small circuits: encoding gates as phases, everything else one ``2**n`` matrix each.

Takes the per-sample angles ``(B, P)`` and the shared ones ``(Q,)`` (:mod:`qrl.simulator.angles`) and
returns the final state ``(B, 2**n)``; gradients come from torch autograd.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pennylane as qml
import torch

from qrl.simulator.gates import (
    PAULI_K,
    as_rotations,
    basis_bits,
    kron_wires,
    rotations,
    schedule,
    time_ordered_product,
)
from qrl.simulator.trace import Gate

# Basis changes V with P = V Z V^dagger, so exp(-i t/2 P) = V RZ(t) V^dagger (RX = H RZ H).
_HADAMARD = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
_TO_Z_BASIS = {"X": _HADAMARD, "Y": np.diag([1, 1j]) @ _HADAMARD, "Z": np.eye(2, dtype=complex)}


class DenseProgram:
    """Dense program for small circuits: encoding gates as phases, everything else as one matrix each.

    Every encoding gate is a Pauli rotation ``exp(-i x P / 2) = V RZ(x) V^dagger``. Encoding gates
    that act at the same time on different wires (a *phase layer*) are therefore, in the basis
    ``V``, one diagonal per sample: ``exp(-i/2 sum_w x_w z_w(j))`` for basis state ``j``, all of them
    computed for all layers with one matmul of the angles and one ``polar``. Everything between two
    phase layers (trainable rotations, constant gates, the basis changes ``V``) does not depend on the
    sample: it is one ``2**n x 2**n`` unitary ``U_k`` built once per call from the weights (Kronecker
    products of the fused per-wire matrices, for all layers at once). A call is then

        psi = U_K diag(phi_K) ... U_1 diag(phi_1) U_0 |0>,

    two torch ops per layer on the batch (a multiply and a matmul) where the per-wire program needs
    ``n + 3``. Gates are placed as soon as possible (each wire keeps its own gate order; gates on
    different wires commute), encoding gates on phase layers, other gates on the segments between them.

    The unitaries are kept across no-grad calls while the weights are unchanged (a rollout). Building
    ``2**n x 2**n`` matrices stops paying at some qubit count; ``qrl bench scaling --backends torch:dense
    torch:wires`` measures where.
    """

    def __init__(self, gates: list[Gate], n: int, n_angle: int, n_weight: int):
        self.n, self.n_angle, self.n_weight = n, n_angle, n_weight
        self._bundles: dict = {}
        self._cache: dict = {}  # number of circuits -> (weights, complex dtype, unitaries)
        phases, segments = self._layer(gates)
        self._compile_phases(phases)
        self._compile_segments(segments)
        self.structure = self._structure()

    def _structure(self) -> str:
        """A digest of everything the program computes with: programs with equal digests run the same
        gates on different weights and angles, so :meth:`state` can run them together."""
        digest = hashlib.sha256(repr((self.n, self.n_angle, self.n_weight, self.n_segments)).encode())
        for arr in (self._phase_proj, self._slot_source, self._slot_a, self._slot_b, self._pool_consts):
            digest.update(np.ascontiguousarray(arr).tobytes())
        for seg_ids, cs, mids in self._groups:
            digest.update(repr(seg_ids).encode())
            for x in (*cs, *mids):
                digest.update(b"-" if x is None else np.ascontiguousarray(x).tobytes())
        return digest.hexdigest()

    # -- compile -----------------------------------------------------------------------------------
    def _layer(self, gates: list[Gate]) -> tuple[list[list], list[list]]:
        """ASAP placement: phase layer k sits between segments k and k + 1 (position 2k + 1).

        Returns the phase layers, each a list of ``(wire, axis, angle_index)``, and the segments, each
        a time-ordered list of ``(wire, ("rot", axis, source))``, ``(wire, ("const", matrix))`` or
        ``(-1, gate)`` for two-qubit gates. Basis changes are added around each phase layer.
        """
        pos = [0] * self.n
        phases: list[list] = []
        segments: list[list] = [[]]

        def place(p: int, wires: tuple[int, ...], item) -> None:
            for w in wires:
                pos[w] = p
            if p % 2:
                while len(phases) <= p // 2:
                    phases.append([])
                phases[p // 2].append(item)
            else:
                while len(segments) <= p // 2:
                    segments.append([])
                segments[p // 2].append(item)

        for g in gates:
            if g.name == "const":
                p = max(pos[w] for w in g.wires)
                item = (g.wires[0], ("const", g.matrix)) if len(g.wires) == 1 else (-1, g)
                place(p + p % 2, g.wires, item)
                continue
            w = g.wires[0]
            for axis, src in as_rotations(g):
                if src.kind == "angle":
                    place(pos[w] + 1 + pos[w] % 2, (w,), (w, axis, src.index))
                else:
                    place(pos[w] + pos[w] % 2, (w,), (w, ("rot", axis, src)))
        while len(segments) <= len(phases):
            segments.append([])
        for k, layer in enumerate(phases):
            for w, axis, _ in layer:
                v = _TO_Z_BASIS[axis]
                if axis != "Z":
                    segments[k].append((w, ("const", v.conj().T)))
                    segments[k + 1].insert(0, (w, ("const", v)))
        return phases, segments

    def _compile_phases(self, phases: list[list]) -> None:
        """``phi = angles @ P``: ``P[a, k * 2**n + j] = -z_w(j) / 2`` if angle ``a`` is on wire ``w`` in layer k."""
        n, dim = self.n, 2**self.n
        z = 1.0 - 2.0 * basis_bits(n)  # (2**n, n)
        proj = np.zeros((self.n_angle, len(phases) * dim))
        for k, layer in enumerate(phases):
            for w, _, a in layer:
                proj[a, k * dim:(k + 1) * dim] += -0.5 * z[:, w]
        self._phase_proj = proj
        self.n_phases = len(phases)

    def _compile_segments(self, segments: list[list]) -> None:
        """Each segment as ``C_r M_r ... C_1 M_1 C_0``: constants ``C`` folded, weight moments ``M``.

        A weight moment is a Kronecker product of per-wire 2x2 matrices, each a product of ``depth``
        slots ``cos(h) A + sin(h) B`` (``h`` half a weight or constant, as in the per-wire program;
        constant 1-qubit gates inside a moment are slots with ``h = 0``). All weight moments of the
        circuit are padded to one depth and all wires and built together; segments with the same
        number of weight moments are multiplied out together.
        """
        n, dim = self.n, 2**self.n
        eye, zero = np.eye(2, dtype=complex), np.zeros((2, 2), dtype=complex)
        consts: list[float] = [0.0]
        const0 = self.n_weight  # pool index of the constant 0

        def slot(item) -> tuple[int, np.ndarray, np.ndarray]:
            if item[0] == "const":
                return (const0, item[1], zero)
            _, axis, src = item
            if src.kind == "const":
                consts.append(src.value)
                return (const0 + len(consts) - 1, eye, PAULI_K[axis])
            return (src.index, eye, PAULI_K[axis])

        moments: list[dict] = []  # weight moments: wire -> slots
        layouts: list[tuple[list[np.ndarray], list[int]]] = []  # per segment: constants C_0..C_r, moment ids
        for seg in segments:
            entries = [(w, slot(item)) if w >= 0 else (w, item) for w, item in seg]
            factors: list = [np.eye(dim, dtype=complex)]  # time order: C_0, M_1, C_1, ...
            ids: list[int] = []
            for step in schedule(entries, n):
                if step[0] == "1q" and any(s[0] != const0 for slots in step[1].values() for s in slots):
                    ids.append(len(moments))
                    moments.append(step[1])
                    factors.append(np.eye(dim, dtype=complex))
                    continue
                if step[0] == "1q":
                    mats = []
                    for w in range(n):
                        m = eye
                        for s in step[1].get(w, []):
                            m = s[1] @ m
                        mats.append(m)
                    full = mats[0]
                    for m in mats[1:]:
                        full = np.kron(full, m)
                elif step[0] == "diag":
                    full = np.diag(step[1])
                else:
                    full = qml.math.expand_matrix(step[2], list(step[1]), wire_order=list(range(n)))
                factors[-1] = full @ factors[-1]
            layouts.append((factors, ids))
        depth = max((len(v) for m in moments for v in m.values()), default=0)
        src = np.full((len(moments), depth, n), const0, dtype=np.int64)
        a = np.broadcast_to(eye, (len(moments), depth, n, 2, 2)).copy()
        b = np.zeros((len(moments), depth, n, 2, 2), dtype=complex)
        for i, m in enumerate(moments):
            for w, slots in m.items():
                for d, (s_i, s_a, s_b) in enumerate(slots):
                    src[i, d, w], a[i, d, w], b[i, d, w] = s_i, s_a, s_b
        self._slot_source, self._slot_a, self._slot_b = src, a, b
        self._pool_consts = np.array(consts, dtype=np.float64)
        groups: dict[int, list[int]] = {}
        for k, (_, ids) in enumerate(layouts):
            groups.setdefault(len(ids), []).append(k)
        # per group: segment ids, constants per position (None where all are the identity), moment ids
        self._groups = []
        for r, seg_ids in sorted(groups.items()):
            cs = []
            for j in range(r + 1):
                stack = np.stack([layouts[k][0][j] for k in seg_ids])
                cs.append(None if r > 0 and np.allclose(stack, np.eye(dim)) else stack)
            mids = [np.array([layouts[k][1][j] for k in seg_ids], dtype=np.int64) for j in range(r)]
            self._groups.append((seg_ids, cs, mids))
        self.n_segments = len(segments)

    # -- run ---------------------------------------------------------------------------------------
    def _unitaries(self, flat_w: torch.Tensor, cdtype: torch.dtype) -> list[torch.Tensor]:
        """``U_0 .. U_K`` for weights ``(Q,)`` or ``(C, Q)`` (``C`` circuits), each ``(2**n, 2**n)`` or
        ``(C, 2**n, 2**n)`` (a segment without weights is ``(2**n, 2**n)`` either way)."""
        c = self._consts(cdtype, flat_w.dtype, flat_w.device)
        moments = None
        if self._slot_source.size:
            pool = c["pool_consts"]
            pool = torch.cat([flat_w, pool if flat_w.dim() == 1 else pool.expand(*flat_w.shape[:-1], -1)], -1)
            half = (pool[..., c["slot_source"]] * 0.5)[..., None, None]
            mats = rotations(half, c["slot_a"], c["slot_b"])  # (..., M, depth, n, 2, 2)
            moments = kron_wires(time_ordered_product(mats.unbind(-4)))  # (..., M, 2**n, 2**n)
        out: list[torch.Tensor | None] = [None] * self.n_segments
        for (seg_ids, _, mids), cs, ids in zip(self._groups, c["groups_c"], c["groups_m"], strict=True):
            u = cs[0]
            for j in range(len(mids)):
                m = moments[..., ids[j], :, :]
                u = m if u is None else m @ u
                if cs[j + 1] is not None:
                    u = cs[j + 1] @ u
            for k, u_k in zip(seg_ids, u.unbind(-3), strict=True):
                out[k] = u_k
        return out

    def _consts(self, cdtype: torch.dtype, rdtype: torch.dtype, dev: torch.device) -> dict:
        """The program's constants as tensors of this dtype and device, converted once."""
        key = (cdtype, dev)
        if key not in self._bundles:
            def t(x, dtype):
                return None if x is None else torch.as_tensor(x, dtype=dtype, device=dev)

            self._bundles[key] = {
                "pool_consts": t(self._pool_consts, rdtype), "slot_source": t(self._slot_source, torch.int64),
                "slot_a": t(self._slot_a, cdtype), "slot_b": t(self._slot_b, cdtype),
                "proj": t(self._phase_proj, rdtype),
                "groups_c": [[t(x, cdtype) for x in cs] for _, cs, _ in self._groups],
                "groups_m": [[t(x, torch.int64) for x in mids] for _, _, mids in self._groups],
            }
        return self._bundles[key]

    def _cached_unitaries(self, weights: list[torch.Tensor], cdtype: torch.dtype) -> list[torch.Tensor]:
        """The unitaries of one or more circuits' weights, reused while the weights are unchanged and no
        gradient is being recorded.

        During a rollout SB3 calls the policy at every environment step with the same weights; the
        unitaries are then built once per rollout instead of once per step (measured: the build is
        about half of a no-grad call at batch 8). The cache is keyed on the weight *values* (one
        ``torch.equal`` per circuit against a copy): version counters would miss SB3's polyak update of
        target networks, which writes through ``.data``.
        """
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            flat = weights[0].reshape(-1) if len(weights) == 1 else torch.stack([w.reshape(-1) for w in weights])
            return self._unitaries(flat, cdtype)
        entry = self._cache.get(len(weights))
        if entry is None or entry[1] != cdtype or not _same_values(entry[0], weights):
            ws = [w.detach().clone() for w in weights]
            flat = ws[0].reshape(-1) if len(ws) == 1 else torch.stack([w.reshape(-1) for w in ws])
            entry = (ws, cdtype, [u.detach() for u in self._unitaries(flat, cdtype)])
            self._cache[len(weights)] = entry
        return entry[2]

    def state(self, flat_a: torch.Tensor, weights, cdtype: torch.dtype) -> torch.Tensor:
        """The final states ``(B, 2**n)`` for angles ``(B, P)`` and weights ``(Q,)``; or, for ``C`` circuits of
        this structure at once, ``(C, B, 2**n)`` for angles ``(C, B, P)`` and a list of ``C`` weight tensors.

        Several circuits run as one batch of circuits: the same arithmetic as one call each (elementwise
        ops, and batched matmuls that compute every product as the single ones do; at batch 1 a single
        matmul takes another kernel, so there each circuit gets its own), with a fraction of the torch calls.
        """
        if isinstance(weights, (list, tuple)):
            return self._state_many(flat_a, list(weights), cdtype)
        batch, dim = flat_a.shape[0], 2**self.n
        units = self._cached_unitaries((weights,), cdtype)
        psi = units[0][:, 0]  # U_0 |0>
        if self.n_phases == 0:
            return psi.expand(batch, dim)
        proj = self._consts(cdtype, weights.dtype, weights.device)["proj"]
        phi = torch.mm(flat_a, proj).view(batch, self.n_phases, dim)  # mm: what matmul calls, without its dispatch
        phases = torch.polar(torch.ones_like(phi), phi).unbind(1)
        for k in range(self.n_phases):
            psi = torch.mm(psi * phases[k], units[k + 1].mT)
        return psi

    def _state_many(self, flat_a: torch.Tensor, weights: list[torch.Tensor], cdtype: torch.dtype) -> torch.Tensor:
        """:meth:`state` of ``C`` circuits: ``(C, B, 2**n)`` from angles ``(C, B, P)`` and ``C`` weight tensors."""
        n_circuits, batch, dim = len(weights), flat_a.shape[1], 2**self.n
        units = self._cached_unitaries(weights, cdtype)
        psi = units[0][..., :, 0]  # U_0 |0>: (2**n,), or (C, 2**n) where U_0 depends on weights
        psi = psi[:, None, :] if psi.dim() > 1 else psi
        if self.n_phases == 0:
            return psi.expand(n_circuits, batch, dim)
        proj = self._consts(cdtype, weights[0].dtype, weights[0].device)["proj"]
        # a batched matmul over the circuits (bmm), not matmul's fold into one (C * B)-row product,
        # which rounds differently at some batch sizes
        phi = _apply_many(flat_a, proj.mT).view(n_circuits, batch, self.n_phases, dim)
        phases = torch.polar(torch.ones_like(phi), phi).unbind(2)
        for k in range(self.n_phases):
            psi = _apply_many(psi * phases[k], units[k + 1])
        return psi


def _same_values(cached: list[torch.Tensor], weights) -> bool:
    """Whether ``weights`` hold the values of ``cached`` (same shapes and devices)."""
    for c, w in zip(cached, weights, strict=True):
        if c.device != w.device or c.shape != w.shape or not torch.equal(c, w):
            return False
    return True


def _apply_many(psi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``psi @ u^T`` for ``(C, B, d)`` and ``u`` of shape ``(C, e, d)`` or ``(e, d)``: the products a call per
    circuit would compute, to the bit (also in the backward)."""
    if u.dim() == 2:
        u = u.expand(psi.shape[0], *u.shape)
    if psi.shape[1] == 1:  # a one-row product is not a bmm: keep each circuit's own, as in a single call
        return torch.stack([torch.mm(p, v.mT) for p, v in zip(psi.unbind(0), u.unbind(0), strict=True)])
    return torch.bmm(psi, u.mT)
