"""Encodings: how (already scaled) angles enter the circuit.

Every encoding takes the angle tensor of one layer, shape ``(..., n_inputs)`` (leading dims are a
PennyLane broadcast batch), and the wires, and applies one gate per input. The angles are computed
outside the circuit (``angle = lambda * map(observation)``, see :class:`qrl.nn.VQC`), so each encoding
gate carries exactly one angle: this is what lets the torch backend compile the circuit into batched
tensor ops, and lets Lightning see plain parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import pennylane as qml

_ROTATIONS = {"rx": qml.RX, "ry": qml.RY, "rz": qml.RZ}

ENCODINGS = tuple(_ROTATIONS)


def angle_encoding(angles, wires: Sequence[int], rotation: str = "rx") -> None:
    """Apply ``R(angles[..., i])`` on ``wires[i]`` for each input ``i``.

    Args:
        angles: tensor of shape ``(..., n_inputs)`` with ``n_inputs <= len(wires)``.
        wires: the circuit's wires; input ``i`` goes to ``wires[i]``.
        rotation: ``"rx"`` (default, Jerbi et al. 2021; Skolik et al. 2022), ``"ry"`` or ``"rz"``.
    """
    gate = _ROTATIONS[rotation]
    n_inputs = qml.math.shape(angles)[-1]
    for i in range(n_inputs):
        gate(angles[..., i], wires=wires[i])
