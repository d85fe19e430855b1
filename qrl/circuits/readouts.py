"""Readouts: which observables the circuit measures, one per output.

``z``: Pauli-Z on qubit ``a`` for output ``a`` (local; CleanQRL's actor). ``zz``: the qubits are split
into ``n_outputs`` contiguous groups and output ``a`` is the product of Z over group ``a``; on 4 qubits
with 2 outputs this is Skolik et al.'s Z0Z1 / Z2Z3. ``parity``: every output reads the global parity
``P = Z_0 Z_1 ... Z_{n-1}``, with sign ``(-1)^a`` on output ``a`` (Jerbi et al. 2021's softmax-VQC).
"""

from __future__ import annotations

import functools
import operator

import pennylane as qml

READOUTS = ("z", "zz", "parity")


def zz_groups(n_qubits: int, n_outputs: int) -> list[list[int]]:
    """Split ``range(n_qubits)`` into ``n_outputs`` contiguous groups of near-equal size."""
    base, extra = divmod(n_qubits, n_outputs)
    groups, start = [], 0
    for a in range(n_outputs):
        size = base + (1 if a < extra else 0)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def max_outputs(readout: str, n_qubits: int) -> int | None:
    """How many outputs a readout can give on ``n_qubits`` qubits (``None``: any number)."""
    return None if readout == "parity" else n_qubits


def parity_sign(output: int) -> int:
    """The sign ``(-1)^a`` of output ``a`` of the ``parity`` readout.

    Why the signs. Jerbi's softmax-VQC has logits ``w_a * <P>`` with one trainable weight per action;
    their TensorFlow Quantum tutorial initialises ``w_a = (-1)^a``. qrl's output weights all start at
    ``output_scale_init``, so the sign is put into the observable: ``out_a = w_a * (-1)^a * <P>`` starts as
    the tutorial's policy and spans the same functions (a weight can change sign). Without the signs every
    action would start with the same logit, for every state: a uniform policy whose gradient with respect
    to the circuit weights is exactly zero until the output weights drift apart. Whatever the signs, the
    logits are ``<P>`` times a fixed vector, so with 3 or more actions the policy can only move along one
    direction; ``z`` and ``zz`` give each action its own observable.
    """
    return -1 if output % 2 else 1


def observables(readout: str, n_qubits: int, n_outputs: int) -> list:
    """The PennyLane observables of a readout, one per output."""
    if readout == "z":
        return [qml.PauliZ(a) for a in range(n_outputs)]
    if readout == "zz":
        return [_z_product(group) for group in zz_groups(n_qubits, n_outputs)]
    if readout == "parity":
        parity = _z_product(range(n_qubits))
        return [parity if parity_sign(a) > 0 else qml.s_prod(-1.0, parity) for a in range(n_outputs)]
    raise KeyError(readout)


def observable_labels(readout: str, n_qubits: int, n_outputs: int) -> list[str]:
    """The observables of a readout as text, one per output: ``"Z0"``, ``"Z0 Z1"``, ``"-Z0 Z1 Z2"``."""
    if readout == "z":
        return [f"Z{a}" for a in range(n_outputs)]
    if readout == "zz":
        return [" ".join(f"Z{w}" for w in group) for group in zz_groups(n_qubits, n_outputs)]
    if readout == "parity":
        parity = " ".join(f"Z{w}" for w in range(n_qubits))
        return [("" if parity_sign(a) > 0 else "-") + parity for a in range(n_outputs)]
    raise KeyError(readout)


def _z_product(wires) -> qml.operation.Operator:
    return functools.reduce(operator.matmul, [qml.PauliZ(w) for w in wires])
