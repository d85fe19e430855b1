"""Published quantum-RL circuits, registered by name, in ``TorchLayer``'s convention ``f(inputs, **weights)``.

Each reads ``n_qubits`` from its weights' shapes and encodes feature ``i`` (after the policy's ``obs_map``)
on wire ``i``; ``qrl list`` shows them with their citations. ``tests/test_custom_circuits.py`` checks each
on the torch path against ``default.qubit``.
"""

from __future__ import annotations

import pennylane as qml

from qrl.circuits.ansatze import cz_ring
from qrl.circuits.custom import register_circuit


def _n_features(inputs, n_qubits: int) -> int:
    return min(inputs.shape[-1], n_qubits)


def _rx_rz_encoding(inputs, n_qubits: int) -> None:
    """RX(x_i) then RZ(x_i) on wire i (Chen et al.'s basis encoding when x_i = pi b_i)."""
    for i in range(_n_features(inputs, n_qubits)):
        qml.RX(inputs[..., i], wires=i)
        qml.RZ(inputs[..., i], wires=i)


@register_circuit(
    "jerbi_skolik",
    weight_shapes=lambda n, layers: {"input_scaling": (layers, n), "weights": (layers, n, 2)},
    init={"input_scaling": "ones"},
    description="per layer RX(lambda x_i) on wire i, RY-RZ on every wire, CZ ring; <Z_i> per wire "
                "(qrl's default circuit, written as a user would)",
    citation="Jerbi et al. 2021 (arXiv:2103.05577); Skolik et al. 2022, Quantum 6, 720",
)
def jerbi_skolik(inputs, input_scaling, weights):
    layers, n = weights.shape[0], weights.shape[1]
    wires = list(range(n))
    for layer in range(layers):
        for i in range(_n_features(inputs, n)):
            qml.RX(input_scaling[layer, i] * inputs[..., i], wires=i)
        for i in wires:
            qml.RY(weights[layer, i, 0], wires=i)
            qml.RZ(weights[layer, i, 1], wires=i)
        cz_ring(wires)
    return [qml.expval(qml.PauliZ(i)) for i in wires]


@register_circuit(
    "hsiao",
    weight_shapes=lambda n, layers: {"input_scaling": (layers, n), "weights": (layers, n, 3)},
    init={"input_scaling": "ones"},
    description="unentangled: per layer RX(lambda x_i), then Rot on every wire, no two-qubit gates; <Z_i> "
                "per wire (use with post_layer=True)",
    citation="Hsiao et al. 2022, 'Unentangled quantum reinforcement learning agents in the OpenAI Gym' "
             "(arXiv:2203.14348)",
)
def hsiao(inputs, input_scaling, weights):
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(_n_features(inputs, n)):
            qml.RX(input_scaling[layer, i] * inputs[..., i], wires=i)
        for i in range(n):
            qml.Rot(weights[layer, i, 0], weights[layer, i, 1], weights[layer, i, 2], wires=i)
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit(
    "meyer_iqp",
    weight_shapes=lambda n, layers: {"scaling": (layers, n, 3), "weights": (layers, n, 3)},
    init={"scaling": "ones"},
    description="H on every wire; per layer CRot(s * x_q + w) on (q, q+1 mod n) for every q, H between "
                "layers; <Z_q> per wire (use with pre_layer=True, post_layer=True)",
    citation="Meyer et al. 2025, 'Benchmarking quantum reinforcement learning' (ICML; nicomeyer96/qrl-benchmark)",
)
def meyer_iqp(inputs, scaling, weights):
    layers, n = weights.shape[0], weights.shape[1]
    for q in range(n):
        qml.Hadamard(wires=q)
    for layer in range(layers):
        for q in range(n):
            x = inputs[..., q % inputs.shape[-1]]
            qml.CRot(*(scaling[layer, q, k] * x + weights[layer, q, k] for k in range(3)), wires=[q, (q + 1) % n])
        if layer < layers - 1:
            for q in range(n):
                qml.Hadamard(wires=q)
    return [qml.expval(qml.PauliZ(q)) for q in range(n)]


@register_circuit(
    "chen_vqdqn",
    weight_shapes=lambda n, layers: {"weights": (layers, n, 3)},
    description="RX(x_i) and RZ(x_i) on wire i (basis encoding with obs_map='basis'), then per layer a CNOT "
                "chain and Rot on every wire; <Z_i> per wire",
    citation="Chen et al. 2020, 'Variational quantum circuits for deep reinforcement learning' (IEEE Access 8)",
)
def chen_vqdqn(inputs, weights):
    layers, n = weights.shape[0], weights.shape[1]
    _rx_rz_encoding(inputs, n)
    for layer in range(layers):
        for i in range(n - 1):
            qml.CNOT(wires=[i, i + 1])
        for i in range(n):
            qml.Rot(weights[layer, i, 0], weights[layer, i, 1], weights[layer, i, 2], wires=i)
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit(
    "lockwood_si",
    weight_shapes=lambda n, layers: {"weights": (layers, n, 3)},
    description="RX(x_i) RZ(x_i) encoding on wire i, then per layer a CNOT ring and RX-RY-RZ on every wire; "
                "<Z_i> per wire",
    citation="Lockwood & Si 2020, 'Reinforcement learning with quantum variational circuits' (AIIDE 16)",
)
def lockwood_si(inputs, weights):
    layers, n = weights.shape[0], weights.shape[1]
    _rx_rz_encoding(inputs, n)
    for layer in range(layers):
        if n > 1:
            for i in range(n):
                qml.CNOT(wires=[i, (i + 1) % n])
        for i in range(n):
            qml.RX(weights[layer, i, 0], wires=i)
            qml.RY(weights[layer, i, 1], wires=i)
            qml.RZ(weights[layer, i, 2], wires=i)
    return [qml.expval(qml.PauliZ(i)) for i in range(n)]


@register_circuit(
    "born_parity",
    weight_shapes=lambda n, layers: {"input_scaling": (layers, n), "weights": (layers, n, 2)},
    init={"input_scaling": "ones"},
    description="the jerbi_skolik layers read out as qml.probs over every wire: a Born-rule (raw-VQC) policy "
                "takes action probabilities as sums over a partition of these 2**n basis states",
    citation="Jerbi et al. 2021, 'Parametrized quantum policies for reinforcement learning' (NeurIPS)",
)
def born_parity(inputs, input_scaling, weights):
    layers, n = weights.shape[0], weights.shape[1]
    for layer in range(layers):
        for i in range(_n_features(inputs, n)):
            qml.RX(input_scaling[layer, i] * inputs[..., i], wires=i)
        for i in range(n):
            qml.RY(weights[layer, i, 0], wires=i)
            qml.RZ(weights[layer, i, 1], wires=i)
        cz_ring(list(range(n)))
    return [qml.probs(wires=list(range(n)))]
