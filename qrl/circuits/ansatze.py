"""Ansatze: the trainable layers of a circuit.

Each ansatz is a class with a static ``shape(n_layers, n_qubits)`` giving its weight shape (as in
PennyLane templates), a static ``layer(weights, layer, wires)`` that applies one layer, and a one-line
``description`` (shown by :func:`qrl.circuits.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pennylane as qml


def cz_ring(wires: Sequence[int]) -> None:
    """CZ between neighbours on a ring (one CZ for two wires, none for one)."""
    n = len(wires)
    if n == 2:
        qml.CZ(wires=[wires[0], wires[1]])
    elif n > 2:
        for i in range(n):
            qml.CZ(wires=[wires[i], wires[(i + 1) % n]])


class HardwareEfficient:
    """RY and RZ on every qubit, then a CZ ring (Jerbi et al. 2021; Skolik et al. 2022; CleanQRL).

    Weights: shape ``(n_layers, n_qubits, 2)``; ``[..., 0]`` is the RY angle, ``[..., 1]`` the RZ angle.
    """

    name = "hea"
    description = "RY-RZ on every qubit, then a CZ ring"

    @staticmethod
    def shape(n_layers: int, n_qubits: int) -> tuple[int, ...]:
        return (n_layers, n_qubits, 2)

    @staticmethod
    def layer(weights, layer: int, wires: Sequence[int]) -> None:
        for i, w in enumerate(wires):
            qml.RY(weights[layer, i, 0], wires=w)
            qml.RZ(weights[layer, i, 1], wires=w)
        cz_ring(wires)


class StronglyEntangling:
    """PennyLane's ``StronglyEntanglingLayers``: a general rotation per qubit, CNOTs at growing range.

    Weights: shape ``(n_layers, n_qubits, 3)``. Layer ``l`` uses CNOT range ``l % (n_qubits - 1) + 1``,
    which is what the template uses when all layers are applied at once; here layers are interleaved
    with the encoding (data re-uploading), so each is applied as its own one-layer template.
    """

    name = "strongly_entangling"
    description = "Rot on every qubit, then CNOTs at range l % (n_qubits - 1) + 1 (PennyLane template)"

    @staticmethod
    def shape(n_layers: int, n_qubits: int) -> tuple[int, ...]:
        return (n_layers, n_qubits, 3)

    @staticmethod
    def layer(weights, layer: int, wires: Sequence[int]) -> None:
        n = len(wires)
        ranges = [layer % (n - 1) + 1] if n > 1 else None  # one wire: no CNOTs, no range
        qml.StronglyEntanglingLayers(weights[layer : layer + 1], wires=wires, ranges=ranges)


class Unentangled:
    """A general rotation ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)`` on every qubit, no
    two-qubit gates (Hsiao et al. 2022, https://arxiv.org/abs/2203.14348).

    Weights: shape ``(n_layers, n_qubits, 3)``; ``[l, i]`` are the ``(phi, theta, omega)`` of qubit ``i``
    in layer ``l``. ``Rot`` rather than RY-RZ because with data re-uploading each layer sits between two
    encoding rotations, and only three angles make an arbitrary single-qubit unitary there. The qubits
    never interact: the state stays a product state, every ``<Z_i>`` depends on qubit ``i``'s feature
    and weights only, and a Z-product readout is the product of the single-qubit values. Hsiao et al.
    follow the circuit with a small classical network; here that is ``post_layer=True``.
    """

    name = "unentangled"
    description = "Rot(phi, theta, omega) on every qubit, no two-qubit gates"

    @staticmethod
    def shape(n_layers: int, n_qubits: int) -> tuple[int, ...]:
        return (n_layers, n_qubits, 3)

    @staticmethod
    def layer(weights, layer: int, wires: Sequence[int]) -> None:
        for i, w in enumerate(wires):
            qml.Rot(weights[layer, i, 0], weights[layer, i, 1], weights[layer, i, 2], wires=w)


ANSATZE = {cls.name: cls for cls in (HardwareEfficient, StronglyEntangling, Unentangled)}
