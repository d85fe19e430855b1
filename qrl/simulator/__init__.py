"""Batched torch statevector simulation: the one home of qrl's state-vector gate updates.

``trace`` turns a circuit into gates (``record``, ``angles``: their angles compiled from inputs and weights),
``readout`` runs its measurements, ``gates`` holds the gate primitives and the schedule, ``dense`` and
``programs`` the dense and per-wire programs (:class:`qrl.backends.torch.TorchStatevector`), ``adjoint``
adjoint gradients.
Imports point one way: backends -> simulator -> circuits.
"""

from qrl.simulator.adjoint import BatchedStatevector
from qrl.simulator.angles import AngleProgram, TensorCache
from qrl.simulator.dense import DenseProgram
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
from qrl.simulator.native import NativeProgram
from qrl.simulator.programs import (
    AUTOGRAD_MAX_BYTES,
    WiresProgram,
    cheaper_program,
    forward_peak_bytes,
    gradient_peak_bytes,
    release_buffers,
)
from qrl.simulator.readout import Readout, z_diagonal
from qrl.simulator.trace import PARAMETRIC_1Q, Gate, Source, TracedCircuit, trace_circuit, trace_gates

__all__ = [
    "AUTOGRAD_MAX_BYTES",
    "PARAMETRIC_1Q",
    "PAULI_K",
    "AngleProgram",
    "BatchedStatevector",
    "DenseProgram",
    "Gate",
    "NativeProgram",
    "Readout",
    "Source",
    "TensorCache",
    "TracedCircuit",
    "WiresProgram",
    "apply_1q",
    "apply_2q",
    "as_rotations",
    "cheaper_program",
    "forward_peak_bytes",
    "gradient_peak_bytes",
    "release_buffers",
    "rotations",
    "schedule",
    "state_bytes",
    "time_ordered_product",
    "trace_circuit",
    "trace_gates",
    "wire_view",
    "z_diagonal",
    "z_expectation",
]
