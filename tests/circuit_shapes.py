"""Users' circuits for `qrl bench scaling --circuit circuit_shapes:one_cnot` (README, "Circuits of other shapes": each
layer an encoding RX and a Rot on every wire, then one CNOT, on a wire pair that moves with the layer) and `qrl bench
calls --circuits circuit_shapes:brick_cz ...`: shapes the cost model of rollout-sized calls was not fitted to, and
`zz_words`, whose readout is two-wire Z words (README, "Z words of several wires from 18 qubits"); `templates_basic`,
`xx_yy_ring`, `all_pairs_cz` and `long_crz`, four more shapes that `auto`'s rules were checked on after they were set
(README, "Four more users' shapes"); `phase_gates` ... `swap_multirz`, five more, with other gates and readouts
(README, "Five shapes with other gates, PennyLane's templates among them")."""

import pennylane as qml

from qrl.circuits import register_circuit


@register_circuit("one_cnot", weight_shapes=lambda n, layers: {"weights": (layers, n, 3)}, replace=True)
def one_cnot(inputs, weights):
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RX(inputs[..., i], wires=i)
            qml.Rot(weights[layer, i, 0], weights[layer, i, 1], weights[layer, i, 2], wires=i)
        qml.CNOT(wires=[layer % n, (layer + 1) % n])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("brick_cz", weight_shapes=lambda n, layers: {"weights": (layers, n)}, replace=True)
def brick_cz(inputs, weights):
    """RY(x * w) on every wire, then CZs on alternate neighbour pairs (a brick wall)."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i] * weights[layer, i], wires=i)
        for i in range(layer % 2, n - 1, 2):
            qml.CZ(wires=[i, i + 1])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("zz_ring", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def zz_ring(inputs, weights):
    """RX(x) on every wire, an IsingZZ ring, RY on every wire."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RX(inputs[..., i], wires=i)
        for i in range(n):
            qml.IsingZZ(weights[layer, i, 0], wires=[i, (i + 1) % n])
        for i in range(n):
            qml.RY(weights[layer, i, 1], wires=i)
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("crx_chain", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def crx_chain(inputs, weights):
    """RY(x + w) on every wire, then a chain of CRX; Z0 Z(n-1) and Z on all but the last wire read out."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i] + weights[layer, i, 0], wires=i)
        for i in range(n - 1):
            qml.CRX(weights[layer, i, 1], wires=[i, i + 1])
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(n - 1))] + [qml.expval(qml.PauliZ(i)) for i in range(n - 1)]


@register_circuit("two_cnot_rz", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def two_cnot_rz(inputs, weights):
    """RY(x), RZ, RY on every wire, then two CNOTs: across the ends and in the middle."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i], wires=i)
            qml.RZ(weights[layer, i, 0], wires=i)
            qml.RY(weights[layer, i, 1], wires=i)
        qml.CNOT(wires=[0, n - 1])
        qml.CNOT(wires=[n // 2, (n // 2 + 1) % n])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("zz_words", weight_shapes=lambda n, layers: {"weights": (layers, n)}, replace=True)
def zz_words(inputs, weights):
    """RY(x) and RY(w) on every wire, then a CZ ring; every neighbouring pair's Z Z read out (words of two wires)."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i], wires=i)
            qml.RY(weights[layer, i], wires=i)
        for i in range(n):
            qml.CZ(wires=[i, (i + 1) % n])
    return [qml.expval(qml.PauliZ(i) @ qml.PauliZ((i + 1) % n)) for i in range(n)]


@register_circuit("templates_basic", weight_shapes=lambda n, layers: {"weights": (layers, n)}, replace=True)
def templates_basic(inputs, weights):
    """PennyLane's templates as its tutorials use them: the inputs encoded once (``AngleEmbedding``, RY), then
    ``BasicEntanglerLayers`` (an RX per wire and a CNOT ring per layer)."""
    wires = range(weights.shape[1])
    qml.AngleEmbedding(inputs, wires=wires, rotation="Y")
    qml.BasicEntanglerLayers(weights, wires=wires)
    return [qml.expval(qml.PauliZ(i)) for i in wires]


@register_circuit("xx_yy_ring", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def xx_yy_ring(inputs, weights):
    """RX(x) on every wire, then rings of trained IsingXX and IsingYY (two-qubit rotations that are not diagonal)."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RX(inputs[..., i], wires=i)
        for i in range(n):
            qml.IsingXX(weights[layer, i, 0], wires=[i, (i + 1) % n])
        for i in range(n):
            qml.IsingYY(weights[layer, i, 1], wires=[i, (i + 1) % n])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("all_pairs_cz", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def all_pairs_cz(inputs, weights):
    """RY(x) and a trained RZ, RY on every wire, then a CZ on every pair of wires (n (n - 1) / 2 per layer)."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i], wires=i)
            qml.RZ(weights[layer, i, 0], wires=i)
            qml.RY(weights[layer, i, 1], wires=i)
        for i in range(n):
            for j in range(i + 1, n):
                qml.CZ(wires=[i, j])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("long_crz", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def long_crz(inputs, weights):
    """RY(x) and a trained RX on every wire, then trained CRZs from each wire to the one half the register away."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i], wires=i)
            qml.RX(weights[layer, i, 0], wires=i)
        for i in range(n):
            qml.CRZ(weights[layer, i, 1], wires=[i, (i + n // 2) % n])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit("phase_gates", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def phase_gates(inputs, weights):
    """Hadamard, RZ(x), S, a trained PhaseShift and T on every wire, then a ring of trained ControlledPhaseShifts;
    every wire's X read out (complex constant gates, a diagonal two-qubit rotation, a readout that is not Z)."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.Hadamard(wires=i)
            qml.RZ(inputs[..., i], wires=i)
            qml.S(wires=i)
            qml.PhaseShift(weights[layer, i, 0], wires=i)
            qml.T(wires=i)
        for i in range(n):
            qml.ControlledPhaseShift(weights[layer, i, 1], wires=[i, (i + 1) % n])
    return [qml.expval(qml.PauliX(i)) for i in range(n)]


@register_circuit("toffoli_rot", weight_shapes=lambda n, layers: {"weights": (layers, n, 3)}, replace=True)
def toffoli_rot(inputs, weights):
    """RY(x) and a trained Rot on every wire, a chain of Toffolis (three-qubit gates), one trained CRot from the last
    wire to the first; every wire's Y read out."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.RY(inputs[..., i], wires=i)
            qml.Rot(*weights[layer, i], wires=i)
        for i in range(n - 2):
            qml.Toffoli(wires=[i, i + 1, i + 2])
        qml.CRot(weights[layer, 0, 0], weights[layer, 0, 1], weights[layer, 0, 2], wires=[n - 1, 0])
    return [qml.expval(qml.PauliY(i)) for i in range(n)]


@register_circuit("strong_template", weight_shapes=lambda n, layers: {"weights": (layers, n, 3)}, replace=True)
def strong_template(inputs, weights):
    """PennyLane's ``AngleEmbedding`` (RY) once, then its ``StronglyEntanglingLayers`` template."""
    wires = range(weights.shape[1])
    qml.AngleEmbedding(inputs, wires=wires, rotation="Y")
    qml.StronglyEntanglingLayers(weights, wires=wires)
    return [qml.expval(qml.PauliZ(i)) for i in wires]


@register_circuit("iqp_template", weight_shapes=lambda n, layers: {"weights": (layers, n)}, replace=True)
def iqp_template(inputs, weights):
    """PennyLane's ``IQPEmbedding`` (Havlicek et al.'s feature map: Hadamards, RZ(x_i) and a MultiRZ(x_i x_j) on
    every pair, twice), then ``BasicEntanglerLayers`` of RY; Z0 Z1 and Z on the other wires read out."""
    n = weights.shape[1]
    qml.IQPEmbedding(inputs, wires=range(n), n_repeats=2)
    qml.BasicEntanglerLayers(weights, wires=range(n), rotation=qml.RY)
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(1))] + [qml.expval(qml.PauliZ(i)) for i in range(2, n)]


@register_circuit("swap_multirz", weight_shapes=lambda n, layers: {"weights": (layers, n, 2)}, replace=True)
def swap_multirz(inputs, weights):
    """U3(x, w, 0.3) on every wire, a trained MultiRZ on three wires, SWAPs, a chain of trained IsingXY, a CY and a
    CH."""
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(n):
            qml.U3(inputs[..., i], weights[layer, i, 0], 0.3, wires=i)
        qml.MultiRZ(weights[layer, 0, 1], wires=[0, 1, 2])
        for i in range(0, n - 1, 2):
            qml.SWAP(wires=[i, i + 1])
        for i in range(n - 1):
            qml.IsingXY(weights[layer, i, 1], wires=[i, i + 1])
        qml.CY(wires=[0, n - 1])
        qml.CH(wires=[1, 0])
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]
