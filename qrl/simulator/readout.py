"""Measurements on a batch of state vectors: expectation values of Pauli sums, and probabilities."""

from __future__ import annotations

import numpy as np
import torch
from pennylane.measurements import ExpectationMP, ProbabilityMP

from qrl.circuits.custom import one_line
from qrl.errors import QRLError
from qrl.simulator.angles import TensorCache
from qrl.simulator.gates import basis_bit, local_index, z_expectation


def pauli_word(word, coeff, n: int) -> tuple[int, np.ndarray]:
    """A Pauli word (``{wire: "X" | "Y" | "Z"}``) times ``coeff`` as ``P psi = c * psi[j ^ mask]`` on ``n``
    qubits: ``(mask, c)``, ``c`` over the basis states."""
    mask, phase = 0, np.full(2**n, complex(coeff))
    for wire, letter in word.items():
        b = basis_bit(n, wire)
        if letter in "XY":
            mask |= 1 << (n - 1 - int(wire))
        if letter == "Z":
            phase = phase * (1 - 2 * b)
        elif letter == "Y":  # Y|b> = i (-1)^b |1-b>: (P psi)_j = i (-1)^(1 - b_j) psi_{j^mask}
            phase = phase * 1j * (2 * b - 1)
    return mask, phase


def z_diagonal(obs, n_qubits: int) -> np.ndarray:
    """Eigenvalues of a sum of Z-strings over the computational basis, shape ``(2**n,)`` (an observable
    with X or Y is refused: this is for simulators that read out diagonals only)."""
    if obs.pauli_rep is None:
        raise QRLError(f"observable {obs} has no Pauli form; the torch backend reads out Z-type observables "
                       f"only; try device='lightning.qubit'")
    diag = np.zeros(2**n_qubits)
    for word, coeff in obs.pauli_rep.items():
        mask, phase = pauli_word(word, coeff, n_qubits)
        if mask:
            letter = next(letter for letter in word.values() if letter != "Z")
            raise QRLError(f"observable {obs} contains Pauli {letter}; the torch backend reads out "
                           f"Z-type observables only; try device='lightning.qubit'")
        diag += phase.real
    return diag


class Readout:
    """The values of a tape's measurements, concatenated: ``(B, width)`` from states ``(B, 2**n)``.

    ``qml.expval`` of any sum of Pauli words (products on any wires) gives one column, ``qml.probs(wires)``
    ``2**len(wires)`` columns (wire order as given, the first most significant, as in PennyLane). Terms made
    of Z and I only, and probabilities, are ``|psi|^2 @ D`` for one fixed matrix ``D``; a word with X or Y
    flips the bits of its X/Y wires: ``P psi = c * psi[j ^ mask]``, so ``<P> = Re sum_j conj(psi_j) c_j
    psi_{j ^ mask}`` (one gather per distinct mask).
    """

    def __init__(self, measurements: list, n: int):
        self.n = n
        dim = 2**n
        columns: list[np.ndarray] = []
        flips: dict[int, np.ndarray] = {}  # mask -> (2**n, width) complex coefficients
        pending = []
        for mp in measurements:
            if isinstance(mp, ProbabilityMP) and mp.obs is None:
                wires = mp.wires if len(mp.wires) else range(n)
                onehot = np.zeros((dim, 2 ** len(wires)))
                onehot[np.arange(dim), local_index(wires, n)] = 1.0
                columns.extend(onehot.T)
            elif isinstance(mp, ExpectationMP) and mp.obs is not None and mp.obs.pauli_rep is not None:
                diag = np.zeros(dim)
                for word, coeff in mp.obs.pauli_rep.items():
                    mask, phase = pauli_word(word, coeff, n)
                    if mask == 0:
                        diag = diag + phase.real
                    else:
                        pending.append((mask, len(columns), phase))
                columns.append(diag)
            else:
                raise QRLError(f"measurement {one_line(mp)} is not supported by the torch backend; expected "
                               f"qml.expval of Pauli words (and sums and products of them) or qml.probs; try "
                               f"device='lightning.qubit'")
        self.width = len(columns)
        self._diag = np.stack(columns, axis=1) if columns else np.zeros((dim, 0))
        for mask, col, phase in pending:
            flips.setdefault(mask, np.zeros((dim, self.width), dtype=complex))[:, col] += phase
        self._flips = [(np.arange(dim) ^ mask, c) for mask, c in sorted(flips.items())]
        self._const = TensorCache()

    def __call__(self, state: torch.Tensor, rdtype: torch.dtype) -> torch.Tensor:
        dev = state.device
        out = z_expectation(state, self._const("diag", self._diag, rdtype, dev))
        for k, (perm, coeffs) in enumerate(self._flips):
            flipped = state[:, self._const(("perm", k), perm, torch.int64, dev)]
            out = out + ((state.conj() * flipped) @ self._const(("flip", k), coeffs, state.dtype, dev)).real
        return out
