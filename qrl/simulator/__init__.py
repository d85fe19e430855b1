"""Batched torch statevector simulation: the one home of qrl's state-vector gate updates.

``trace`` turns a circuit spec into gates and readout diagonals, ``gates`` holds the gate primitives
and the schedule, ``programs`` the compiled dense and per-wire programs (run by
:class:`qrl.backends.torch.TorchStatevector`), ``adjoint`` the batched simulator with adjoint gradients.
Imports point one way: backends -> simulator -> circuits.
"""

from qrl.simulator.adjoint import BatchedStatevector
from qrl.simulator.gates import (
    PAULI_K,
    apply_1q,
    apply_2q,
    as_rotations,
    rotations,
    schedule,
    state_bytes,
    time_ordered_product,
    wire_view,
    z_expectation,
)
from qrl.simulator.programs import DenseProgram, TensorCache, WiresProgram
from qrl.simulator.trace import PARAMETRIC_1Q, Gate, Source, trace_gates, z_diagonal

__all__ = [
    "PARAMETRIC_1Q",
    "PAULI_K",
    "BatchedStatevector",
    "DenseProgram",
    "Gate",
    "Source",
    "TensorCache",
    "WiresProgram",
    "apply_1q",
    "apply_2q",
    "as_rotations",
    "rotations",
    "schedule",
    "state_bytes",
    "time_ordered_product",
    "trace_gates",
    "wire_view",
    "z_diagonal",
    "z_expectation",
]
