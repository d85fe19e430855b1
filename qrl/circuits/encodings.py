"""Encodings: how (already scaled) angles enter the circuit.

Every encoding takes the angle tensor of one layer, shape ``(..., n_inputs)`` (leading dims are a
PennyLane broadcast batch), and the wires, and applies one gate per input. The angles are computed
outside the circuit (``angle = lambda * map(observation)``, see :class:`qrl.nn.VQC`): each encoding gate
carries exactly one angle, so the torch backend compiles the circuit into batched tensor ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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


def n_bits(n_values: int) -> int:
    """Bits needed for the indices ``0 .. n_values - 1``: ``ceil(log2 n_values)``, at least 1."""
    return max(1, (int(n_values) - 1).bit_length())


def binary_code(nvec: Sequence[int]) -> np.ndarray:
    """The linear map from concatenated one-hot vectors to the bits of their indices.

    Stable-Baselines3 turns a ``Discrete(n)`` observation into a one-hot vector of length ``n`` and a
    ``MultiDiscrete(nvec)`` one into the concatenation of one one-hot vector per component; ``onehot @
    binary_code(nvec)`` is the concatenation of each component's index in binary, most significant bit
    first, so that index ``k`` of a ``Discrete(2**m)`` becomes the basis state ``|k>`` of PennyLane's
    ordering (wire 0 most significant).

    Basis encoding (Chen et al. 2020) is the ``rx`` (or ``ry``) encoding of angles ``pi * b_i``, where
    ``b_i`` are the bits of a discrete state index (``obs_map="basis"``): ``RX(pi) |0> = -i |1>``, so the
    encoding prepares the computational basis state ``|b>`` up to a global phase. Chen et al. also apply
    ``RZ(pi b_i)``; on a basis state that is a phase too, so it is left out. :func:`binary_code` is the fixed
    map from Stable-Baselines3's one-hot vectors to those bits.

    Args:
        nvec: the number of values of each component (``[n]`` for ``Discrete(n)``).

    Returns:
        array of shape ``(sum(nvec), sum(n_bits(n) for n in nvec))`` with entries 0 and 1.

    **Example**

    >>> binary_code([4]).astype(int).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    blocks = []
    for n in nvec:
        m = n_bits(n)
        index = np.arange(int(n))[:, None]
        blocks.append(((index >> (m - 1 - np.arange(m))[None, :]) & 1).astype(np.float64))
    rows, cols = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
    code = np.zeros((rows, cols))
    r = c = 0
    for b in blocks:
        code[r : r + b.shape[0], c : c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return code
