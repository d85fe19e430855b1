"""Torch backend: a circuit compiled once into batched torch statevector operations.

:class:`TorchStatevector` traces the circuit and runs it on one of the programs of
:mod:`qrl.simulator` (dense for small circuits, per-wire for large ones); values are exact and
gradients come from torch autograd.
"""

from __future__ import annotations

import numpy as np
import torch

from qrl.errors import QRLError
from qrl.simulator import (
    DenseProgram,
    NativeProgram,
    Readout,
    WiresProgram,
    cheaper_program,
    forward_peak_bytes,
    gradient_peak_bytes,
    release_buffers,
    state_bytes,
    trace_circuit,
)
from qrl.simulator.native import READOUT_MAX_COLUMNS, ZTerms, padded

__all__ = ["DENSE_MAX_QUBITS", "TorchStatevector", "run_together", "state_bytes"]

PROGRAMS = ("dense", "wires", "adjoint", "fused", "fused-adjoint", "plain", "plain-adjoint", "fused-pairs", "native",
            "native-runs", "native-plain")
"""The torch programs: dense matrices (small circuits), per-wire with autograd, per-wire with an adjoint backward,
the per-wire program on two-qubit blocks (:mod:`qrl.simulator.fusion`) with autograd or the adjoint method, and
the *plain* per-wire program, one pass per wire of a moment and per constant gate, as it was before chunk
products and runs of permutations (:func:`qrl.simulator.programs.moment_parts`,
:func:`qrl.simulator.gates.schedule`), and ``fused-pairs``, the blocks one pass each, as before groups of blocks
(:func:`qrl.simulator.fusion.group_blocks`): those two for ``qrl bench`` to measure side by side; and ``native``,
the gates run by a compiled C kernel with an adjoint backward (:class:`qrl.simulator.NativeProgram`), and
``native-runs``, the kernel with one run of one-qubit gates per pass, as before runs were grouped, and
``native-plain``, also with its readout through the state from 18 qubits, as before Z words were read out by their
masks (:class:`qrl.simulator.native.ZTerms`): those two for ``qrl bench`` to measure side by side."""

DENSE_MAX_QUBITS = 6
"""Circuits up to this many qubits run the dense program, larger ones the per-wire program (which chooses
autograd or the adjoint method per call by memory: :data:`qrl.simulator.programs.AUTOGRAD_MAX_BYTES`)."""


class TorchStatevector:
    """A circuit compiled into batched torch ops; call it like the QNode: ``f(angles, weights)``.

    :param spec: the circuit.
    :param program: ``"adjoint"`` (the per-wire program with an adjoint backward: a few state batches
        whatever the depth), ``"dense"`` (small circuits: one ``2**n`` matrix per layer,
        :class:`qrl.simulator.DenseProgram`), ``"wires"`` (a moment's 2x2s applied per wire, or per
        chunk of wires as one Kronecker product; memory linear in ``2**n``, autograd keeps a state batch per
        pass; :class:`qrl.simulator.WiresProgram`), the other :data:`PROGRAMS`, or ``None``: dense up to
        :data:`DENSE_MAX_QUBITS` qubits, above them the cheaper of wires and fused, each call differentiated by
        autograd while the states it keeps fit :data:`qrl.simulator.programs.AUTOGRAD_MAX_BYTES` and by the
        adjoint method beyond (:meth:`gradient_method`).

    Call: ``f(inputs, *weights)`` with ``inputs`` of shape ``(B, *spec.input_shape)`` (a built-in circuit's
    scaled encoding angles, a user's features) and one tensor per entry of ``spec.weight_shapes``, real,
    float32 or float64; returns ``(B, n_outputs)`` of the same dtype. Values are exact (tested against
    default.qubit and lightning.qubit to 1e-6 in float64 on random circuits; measured ~1e-13).
    """

    def __init__(self, spec, program: str | None = None):
        self.spec = spec
        self.n = spec.n_qubits
        traced = trace_circuit(spec)
        if program not in (*PROGRAMS, None):
            raise QRLError(f"unknown torch program {program!r}; expected one of {', '.join(map(repr, PROGRAMS))}")
        self._angles = traced.angles
        self._names = list(spec.weight_shapes)
        sizes = (traced.gates, self.n, traced.angles.n_per_sample, traced.angles.n_shared)
        if program is None and self.n <= DENSE_MAX_QUBITS:
            program = "dense"
        if program is None:
            self._impl = cheaper_program(*sizes, adjoint=None)
            program = "fused" if self._impl.fuse else "wires"
        elif program == "dense":
            self._impl = DenseProgram(*sizes)
        elif program.startswith("native"):
            self._impl = NativeProgram(*sizes, group=program == "native")
        else:
            self._impl = WiresProgram(*sizes, adjoint=program.endswith("adjoint"), fuse=program.startswith("fused"),
                                      plain=program.startswith("plain"), group=program != "fused-pairs")
        self.program = program
        self._readout = Readout(traced.measurements, self.n)
        # what the kernel reads out itself, so that no state leaves it: the readout's matrix, or from 18 qubits its Z
        # words by their masks (ZTerms; not for native-plain); None: the state leaves the kernel
        self._kernel_readout = None
        if program.startswith("native") and self._readout.width <= READOUT_MAX_COLUMNS:
            diagonals = self._readout.diagonals()
            terms = self._readout.z_terms() if diagonals is None and program != "native-plain" else None
            if diagonals is not None:
                self._kernel_readout = np.ascontiguousarray(diagonals, dtype=np.float64)
            elif terms is not None:
                self._kernel_readout = ZTerms(self._readout.width, np.ascontiguousarray(terms))
        self.n_outputs = self._readout.width
        self._input_shape = torch.Size(spec.input_shape)

    def passes(self) -> int | None:
        """Passes over the state batch in one forward call of a per-wire program (``None`` for the dense one)."""
        return self._impl.passes() if isinstance(self._impl, WiresProgram) else None

    def native_passes(self, merge_diagonals: bool = False) -> int | None:
        """Passes over the state batch in one forward call of the native program (``None`` for the others): one
        per run of one-qubit gates on a wire and per other gate (:meth:`qrl.simulator.NativeProgram.passes`; with
        ``merge_diagonals``, consecutive diagonal gates as one at every size)."""
        return self._impl.passes(merge_diagonals) if isinstance(self._impl, NativeProgram) else None

    def native_pass_counts(self) -> tuple[int, int] | None:
        """Passes of the native program's forward and adjoint backward as the kernel groups its runs
        (:meth:`qrl.simulator.NativeProgram.pass_counts`; ``None`` for the other programs)."""
        return self._impl.pass_counts() if isinstance(self._impl, NativeProgram) else None

    def native_rotations(self) -> int | None:
        """Rotations the native program applies in one forward call (``None`` for the other programs)."""
        return self._impl.rotations() if isinstance(self._impl, NativeProgram) else None

    def autograd_nodes(self) -> int:
        """Nodes of the autograd graph of one call (one sample, float32): the torch operations a call launches, each
        with a forward and a backward, whose fixed cost (microseconds each) is most of a small call's time at 12-16
        qubits. Counted by running the call once (a forward of one sample: the graph is the same for any batch), on the
        first request only (``device="auto"`` asks for calls with and without a gradient); an adjoint program's
        backward is one node, its operations inside it, uncounted."""
        counted = getattr(self, "_autograd_nodes", None)  # (a backend pickled before it was kept: none)
        if counted is None:
            counted = self._autograd_nodes = self._count_autograd_nodes()
        return counted

    def _count_autograd_nodes(self) -> int:
        leaves = [torch.zeros(shape, requires_grad=True) for shape in self.spec.weight_shapes.values()]
        with torch.enable_grad():
            out = self(torch.zeros((1, *self._input_shape)), *leaves)
        seen, todo = set(), [out.grad_fn]
        while todo:
            node = todo.pop()
            if node is not None and node not in seen:
                seen.add(node)
                todo.extend(child for child, _ in node.next_functions)
        return len(seen)

    def gradient_bytes(self, batch: int, itemsize: int = 8) -> int:
        """Peak memory of one forward + backward at ``batch`` samples (``itemsize``: 8 for complex64,
        the float32 policies of SB3; 16 for complex128): autograd keeps one state batch per pass of the
        program (:meth:`qrl.simulator.WiresProgram.passes`), and the backward about a third more
        (:data:`qrl.simulator.programs.KEPT_OVERHEAD`); the adjoint method about four."""
        if isinstance(self._impl, WiresProgram):
            kept = self._impl.saved_states(batch, itemsize)
        elif isinstance(self._impl, NativeProgram):
            # peaks measured (forward + backward, 16-21 qubits): 3.0 state batches where the kernel reads out itself
            # (the forward's state, kept; the backward's copy of it and the adjoint state), 5.0 where the state
            # leaves it and its cotangent comes back (X or Y words, wide readouts; Z words through the state by WireZ:
            # 4.25, 2026-12-05); estimated 4.05 and 6.75 (two
            # more in flight and KEPT_OVERHEAD, gradient_peak_bytes)
            kept = 1 if self._kernel_readout is not None else 3
            batch = padded(batch)  # the batch padded to whole vector registers
        else:
            kept = 2 * self._impl.n_phases + 2
        return gradient_peak_bytes(kept, self.n, batch, itemsize)

    def forward_bytes(self, batch: int, itemsize: int = 8) -> int:
        """Peak memory of one forward without a gradient (a rollout's) at ``batch`` samples. Measured (18-21 qubits,
        ``hea``, 2026-12-05): one state batch where the native kernel reads out itself (its scratch state, padded),
        three on the torch programs (a state batch in, one out, one temporary); three taken where the kernel's state
        leaves it (its scratch and the state out, the readout's products); each with
        :data:`~qrl.simulator.programs.KEPT_OVERHEAD`."""
        if isinstance(self._impl, NativeProgram):
            return forward_peak_bytes(1 if self._kernel_readout is not None else 3, self.n, padded(batch), itemsize)
        return forward_peak_bytes(3, self.n, batch, itemsize)

    def kept_bytes(self, batch: int, itemsize: int = 8) -> int | None:
        """Memory a gradient call of ``batch`` samples holds from its forward until its backward: where the native
        kernel reads out itself, its state batch (padded) and the cosines and sines of its angles; where the torch
        program runs its adjoint method, its final state, what the readout keeps (at most about one more state batch)
        and the call's gate matrices with their build's autograd (at most four times the matrices): two state batches
        and four times the matrices. Measured (the tensors autograd saved for a second call beside a first, so not the
        readout's constants the calls share; the eight circuits of ``qrl bench calls`` at 8-20 qubits and 8 samples):
        1.01-1.03 state batches at 20 qubits, 1.51 for ``born_parity`` (its probabilities keep the squared amplitudes
        beside the state); 0.40-0.79 of this estimate throughout. ``None`` for the others (autograd's states, a
        kernel whose state leaves it, a torch program pickled before), whose estimates do not tell what they keep apart
        from their peak."""
        if isinstance(self._impl, WiresProgram) and self.gradient_method(batch, itemsize) == "adjoint":
            matrices = self._impl.matrix_bytes(batch, itemsize)  # (None: pickled before it could say)
            return None if matrices is None else 2 * state_bytes(self.n, batch, itemsize) + 4 * matrices
        if not isinstance(self._impl, NativeProgram) or self._kernel_readout is None:
            return None
        rows = padded(batch)
        shared = self._impl.n_weight + len(self._impl.consts)
        trig = itemsize * (self._impl.n_angle * rows + shared)  # a cosine and a sine per angle: an amplitude's bytes
        return state_bytes(self.n, rows, itemsize) + trig

    def gradient_method(self, batch: int, itemsize: int = 8) -> str:
        """``"adjoint"`` or ``"autograd"``: how a gradient call at ``batch`` samples is differentiated."""
        if isinstance(self._impl, NativeProgram) or (isinstance(self._impl, WiresProgram)
                                                     and self._impl.uses_adjoint(batch, itemsize)):
            return "adjoint"
        return "autograd"

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        per_sample, shared, rdtype, cdtype = self._prepare(inputs, weights)
        if not isinstance(self._impl, WiresProgram):
            release_buffers()
        if self._kernel_readout is not None:  # the native program reads out in its own call
            return self._impl.values(per_sample, shared, self._kernel_readout, rdtype)
        return self._readout(self._impl.state(per_sample, shared, cdtype), rdtype)

    def _prepare(self, inputs: torch.Tensor, weights: tuple) -> tuple:
        """``(per_sample, shared, rdtype, cdtype)``: the program's angles for a call, checked."""
        if inputs.shape[1:] != self._input_shape or len(weights) != len(self._names):
            want = tuple(self.spec.input_shape)
            raise QRLError(f"expected inputs of shape (B, {', '.join(map(str, want))}) and {len(self._names)} "
                           f"weight tensor(s) ({', '.join(self._names)}); got inputs {tuple(inputs.shape)} and "
                           f"{len(weights)} weight tensor(s)")
        rdtype = weights[0].dtype if weights else inputs.dtype
        cdtype = torch.complex128 if rdtype == torch.float64 else torch.complex64
        leaves = {"inputs": inputs if inputs.dtype == rdtype else inputs.to(rdtype),
                  **dict(zip(self._names, weights, strict=True))}
        per_sample, shared = self._angles(leaves)
        return per_sample, shared, rdtype, cdtype

    def runs_with(self, other) -> bool:
        """Whether :func:`run_together` can run this circuit and ``other`` as one batch of circuits: both
        on the dense program with the same gates (weights, angles and measurements may differ)."""
        return (isinstance(other, TorchStatevector) and self.program == other.program == "dense"
                and self._impl.structure == other._impl.structure)


def run_together(backends: list, inputs: list[torch.Tensor], weights: list[tuple]) -> list[torch.Tensor]:
    """``[backends[c](inputs[c], *weights[c]) for c]``, computed as one batch of circuits where it can be.

    Circuits that :meth:`TorchStatevector.runs_with` the first one, with inputs of one batch size and weights
    of one dtype and device (an actor and a critic of one structure), share each torch call of the dense
    program (measured: an actor + critic forward and backward at batch 64 in about 0.75 of the time of two
    calls); the values are those of one call each, to the bit (the same elementwise ops, and batched matmuls
    that compute each product as the single ones do).
    Otherwise each circuit runs on its own.
    """
    backends = [b.for_inputs(x) if hasattr(b, "for_inputs") else b  # auto's dispatch: the backend of this call
                for b, x in zip(backends, inputs, strict=True)]
    first = backends[0]
    together = len(backends) > 1 and isinstance(first, TorchStatevector) and all(
        first.runs_with(b) and x.shape[0] == inputs[0].shape[0] for b, x in zip(backends, inputs, strict=True))
    if together:
        prepared = [b._prepare(x, w) for b, x, w in zip(backends, inputs, weights, strict=True)]
        together = len({(p[1].dtype, p[1].device) for p in prepared}) == 1
    if not together:
        return [b(x, *w) for b, x, w in zip(backends, inputs, weights, strict=True)]
    rdtype, cdtype = prepared[0][2], prepared[0][3]
    states = first._impl.state(torch.stack([p[0] for p in prepared]), [p[1] for p in prepared], cdtype)
    return [b._readout(s, rdtype) for b, s in zip(backends, states.unbind(0), strict=True)]
