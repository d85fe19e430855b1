"""``BatchedStatevector``: many copies of one circuit, each with its own weights, with adjoint gradients.

It serves studies over initialisations (``qrl diagnose gradients``): the value and every weight
gradient of every sample from one forward pass and one adjoint sweep, no autograd.
"""

from __future__ import annotations

from typing import Any

import torch

from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError
from qrl.simulator.gates import (
    PAULI_K,
    apply_1q,
    apply_2q,
    as_rotations,
    rotations,
    schedule,
    time_ordered_product,
    wire_view,
    z_expectation,
)
from qrl.simulator.readout import z_diagonal
from qrl.simulator.trace import trace_gates


class BatchedStatevector:
    """``S`` copies of one circuit, each with its own weights and inputs, simulated as one batch.

    The value is ``L = <O_0>``, the expectation value of the spec's first readout observable (before the
    output weight); :meth:`gradients` also returns ``dL/dweights`` for every sample from one adjoint
    sweep (Jones & Gacon 2020, https://arxiv.org/abs/2009.02823): with ``psi_k`` the state after gate
    ``k = exp(-i t P / 2)`` and ``lam_k`` the state ``O psi`` carried back through the later gates,
    ``dL/dt = Re <lam_k| (-i P) |psi_k>``. Autograd would keep every intermediate state for its backward
    pass, ``S * 2**n * 16`` bytes per gate; the adjoint sweep keeps two states and two temporaries.

    The single-qubit gates between two-qubit gates are fused per wire into one 2x2 matrix per sample (a
    *block*; with :func:`qrl.simulator.gates.schedule`, which also fuses a CZ ring into one diagonal). The
    sweep applies each block's inverse to both states and takes the 2x2 reduced overlap ``R_ij = sum
    conj(lam)_{..i..} psi_{..j..}`` on the block's wire once; every gate of the block then gets its
    derivative from ``R`` and 2x2 products, ``Re tr((G_m .. K G_j .. G_1)^T R)``. Four passes over the
    batch per block, whatever its number of gates.

    :param spec: the circuit (any ansatz and readout of :class:`CircuitSpec`).

    Call :meth:`values` / :meth:`gradients` with ``angles`` of shape ``(S, n_encoding_layers, n_inputs)``
    (already scaled and mapped, as :class:`qrl.backends.torch.TorchStatevector` takes them) and
    ``weights`` of shape ``(S, *spec.weight_shape)``; computed in float64.

    **Example**

    >>> sim = BatchedStatevector(CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1))
    >>> value, grad = sim.gradients(torch.zeros(1, 1, 1, dtype=torch.float64),
    ...                             torch.tensor([[[[0.5, 0.3]]]], dtype=torch.float64))
    >>> round(float(value[0]), 6), round(float(grad[0, 0, 0, 0]), 6)  # cos(0.5), -sin(0.5)
    (0.877583, -0.479426)
    """

    def __init__(self, spec: CircuitSpec):
        self.spec = spec
        self.n = spec.n_qubits
        gates, obs = trace_gates(spec)
        self._readout = torch.as_tensor(z_diagonal(obs[0], self.n), dtype=torch.float64)
        self._steps = self._compile(gates)
        self._eye = torch.eye(2, dtype=torch.complex128)
        self._k = {axis: torch.as_tensor(k, dtype=torch.complex128) for axis, k in PAULI_K.items()}

    def _compile(self, gates) -> list[tuple]:
        """Steps in time order: ``("block", wire, items)`` with items ``("rot", axis, kind, index_or_value)``
        or ``("const", M)``; ``("diag", d)`` (a ``2**n`` diagonal); ``("2q", wires, M)``."""
        entries: list[tuple[int, Any]] = []
        for g in gates:
            if len(g.wires) == 2:
                entries.append((-1, g))
            elif g.name == "const":
                entries.append((g.wires[0], ("const", torch.as_tensor(g.matrix, dtype=torch.complex128))))
            else:
                entries.extend((g.wires[0], ("rot", axis, src.kind, src.value if src.kind == "const" else src.index))
                               for axis, src in as_rotations(g))
        steps: list[tuple] = []
        for step in schedule(entries, self.n):
            if step[0] == "1q":
                steps.extend(("block", w, tuple(items)) for w, items in sorted(step[1].items()))
            elif step[0] == "diag":
                steps.append(("diag", torch.as_tensor(step[1], dtype=torch.complex128)))
            else:
                steps.append(("2q", tuple(step[1]), torch.as_tensor(step[2], dtype=torch.complex128)))
        return steps

    def _check(self, angles: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = weights.shape[0]
        if tuple(weights.shape[1:]) != tuple(self.spec.weight_shape):
            raise QRLError(f"expected weights of shape (S, {', '.join(map(str, self.spec.weight_shape))}); "
                           f"got {tuple(weights.shape)}")
        want = (s, self.spec.n_encoding_layers, self.spec.n_inputs)
        if tuple(angles.shape) != want:
            raise QRLError(f"expected angles of shape {want}; got {tuple(angles.shape)}")
        return angles.reshape(s, -1).to(torch.float64), weights.reshape(s, -1).to(torch.float64)

    def _forward(self, flat_a: torch.Tensor, flat_w: torch.Tensor) -> torch.Tensor:
        n = self.n
        psi = torch.zeros(flat_w.shape[0], 2**n, dtype=torch.complex128)
        psi[:, 0] = 1
        for step in self._steps:
            if step[0] == "block":
                psi = apply_1q(psi, step[1], time_ordered_product(self._matrices(step[2], flat_a, flat_w)), n)
            elif step[0] == "diag":
                psi = psi * step[1]
            else:
                psi = apply_2q(psi, step[1], step[2], n)
        return psi

    @torch.no_grad()
    def values(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``L = <O_0>`` per sample, shape ``(S,)``."""
        psi = self._forward(*self._check(angles, weights))
        return z_expectation(psi, self._readout)

    @torch.no_grad()
    def gradients(self, angles: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``L`` per sample, shape ``(S,)``, and ``dL/dweights``, shape ``(S, *spec.weight_shape)``."""
        n = self.n
        flat_a, flat_w = self._check(angles, weights)
        psi = self._forward(flat_a, flat_w)
        value = z_expectation(psi, self._readout)
        lam = psi * self._readout
        grads = torch.zeros_like(flat_w)
        for step in reversed(self._steps):
            if step[0] == "diag":
                psi, lam = psi * step[1].conj(), lam * step[1].conj()
                continue
            if step[0] == "2q":
                inv = step[2].conj().T
                psi, lam = apply_2q(psi, step[1], inv, n), apply_2q(lam, step[1], inv, n)
                continue
            _, wire, items = step
            mats = self._matrices(items, flat_a, flat_w)
            inv = time_ordered_product(mats).conj().transpose(-2, -1)
            psi = apply_1q(psi, wire, inv, n)  # the state before the block
            weighted = [j for j, item in enumerate(items) if item[0] == "rot" and item[2] == "weight"]
            if weighted:
                r = torch.einsum("saib,sajb->sij", wire_view(lam, wire, n).conj(), wire_view(psi, wire, n))
                for j in weighted:  # G_m .. G_j+1 K G_j .. G_1
                    deriv = time_ordered_product([*mats[:j], self._k[items[j][1]], *mats[j:]])
                    grads[:, items[j][3]] += (deriv * r).sum((-2, -1)).real
            lam = apply_1q(lam, wire, inv, n)
        return value, grads.reshape(weights.shape)

    def _matrices(self, items: tuple, flat_a: torch.Tensor, flat_w: torch.Tensor) -> list[torch.Tensor]:
        """Each item's 2x2 matrix in time order: ``(S, 2, 2)``, or ``(2, 2)`` for a constant."""
        out = []
        for item in items:
            if item[0] == "const":
                out.append(item[1])
                continue
            _, axis, kind, src = item
            if kind == "const":
                half = torch.tensor(0.5 * float(src), dtype=torch.float64)
            else:
                half = 0.5 * (flat_w[:, src] if kind == "weight" else flat_a[:, src])
            out.append(rotations(half[..., None, None], self._eye, self._k[axis]))
        return out
