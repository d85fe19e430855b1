"""Readouts: which observables the circuit measures, one per output.

``z``: Pauli-Z on qubit ``a`` for output ``a`` (local; CleanQRL's actor). ``zz``: the qubits are split
into ``n_outputs`` contiguous groups and output ``a`` is the product of Z over group ``a``; on 4 qubits
with 2 outputs this is Skolik et al.'s Z0Z1 / Z2Z3.
"""

from __future__ import annotations

import functools
import operator

import pennylane as qml

READOUTS = ("z", "zz")


def zz_groups(n_qubits: int, n_outputs: int) -> list[list[int]]:
    """Split ``range(n_qubits)`` into ``n_outputs`` contiguous groups of near-equal size."""
    base, extra = divmod(n_qubits, n_outputs)
    groups, start = [], 0
    for a in range(n_outputs):
        size = base + (1 if a < extra else 0)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def observables(readout: str, n_qubits: int, n_outputs: int) -> list:
    """The PennyLane observables of a readout, one per output."""
    if readout == "z":
        return [qml.PauliZ(a) for a in range(n_outputs)]
    if readout == "zz":
        return [
            functools.reduce(operator.matmul, [qml.PauliZ(w) for w in group])
            for group in zz_groups(n_qubits, n_outputs)
        ]
    raise KeyError(readout)
