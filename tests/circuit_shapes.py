"""A user's circuit for `qrl bench scaling --circuit circuit_shapes:one_cnot` (README, "Circuits of other shapes"):
each layer an encoding RX and a Rot on every wire, then one CNOT, on a wire pair that moves with the layer."""

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
