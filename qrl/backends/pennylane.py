"""PennyLane backend: the circuit as a QNode on any PennyLane device, ``lightning.qubit`` first-class."""

from __future__ import annotations

import contextlib

import pennylane as qml
import torch

from qrl.backends.lightning import LightningStatevector
from qrl.circuits.custom import measurement_width, measures_probabilities
from qrl.errors import QRLError
from qrl.simulator import release_buffers

LIGHTNING = ("lightning.qubit", "lightning.gpu", "lightning.kokkos")
MIXED_STATE_DEVICES = ("default.mixed",)
# Built-in noise: a channel after every gate on each of its wires (qml.noise.insert, position "all"), or
# before the readout ("readout_bit_flip": a bit flip with that probability on every wire at the end).
NOISE_CHANNELS = {"depolarizing": "DepolarizingChannel", "amplitude_damping": "AmplitudeDamping",
                  "readout_bit_flip": "BitFlip"}
GRADIENT_TRANSFORMS = ("parameter-shift", "finite-diff", "spsa", "hadamard")
NATIVE_DIFF_METHODS = ("adjoint", "best", "device")
"""Differentiation methods that mean Lightning's adjoint method, which the native path computes."""


def default_diff_method(device_name: str, shots: int | None = None) -> str:
    """Adjoint on Lightning (exact, O(gates) memory); parameter-shift with shots (the adjoint method
    needs the state vector, which a finite-shot device does not give); PennyLane's choice elsewhere."""
    if shots is not None:
        return "parameter-shift"
    return "adjoint" if device_name in LIGHTNING else "best"


class PennyLaneQNode:
    """Run a circuit (:class:`CircuitSpec` or a user's :class:`qrl.circuits.CustomCircuit`) as a torch QNode.

    :param spec: the circuit.
    :param device: a PennyLane device already created (see :func:`qrl.backends.select.make_device`).
    :param diff_method: ``None`` for PennyLane's choice per device (adjoint on Lightning).
    :param shots: ``None`` for exact expectation values, else this many shots per circuit: each value
        then carries sampling noise of standard error ``sqrt((1 - <O>^2) / shots)``.
    :param noise: ``{channel: probability}`` with channels of :data:`NOISE_CHANNELS`, on a mixed-state
        device (``default.mixed``). ``depolarizing=p`` after a one-qubit gate scales that qubit's Bloch
        vector by ``1 - 4p/3``.
    :param native: ``None`` (default): on a Lightning device with exact expectation values and the adjoint
        method, run the circuit natively (:class:`qrl.backends.lightning.LightningStatevector`: Lightning's
        C++ simulator without QNodes, same values and gradients, 30-80x faster at batch 64) when it can,
        else the QNode; ``False``: always the QNode; ``True``: natively or raise. :attr:`native` holds the
        native path (``None`` when the QNode runs) and :attr:`native_refusal` why it was not used.

    Call: ``f(inputs, *weights)``, ``inputs`` of shape ``(B, *spec.input_shape)`` and one tensor per entry
    of ``spec.weight_shapes``; returns ``(B, n_outputs)`` (measurements concatenated) in the weights' dtype.

    Pitfalls handled here (PennyLane 0.45 / Lightning 0.45; measurements in the README):

    - With ``device_vjp=False`` (PennyLane's default) a torch QNode on Lightning computes Jacobians in the
      forward pass whenever inputs require grad -- including SB3 rollouts under ``torch.no_grad()``, when
      nothing is differentiated. qrl runs ``no_grad`` calls through a second QNode with
      ``diff_method=None``: forward only, no derivative work (tested with ``qml.Tracker``). Differentiated
      calls keep ``device_vjp=False`` (adjoint Jacobians with the forward pass): ``True`` was measured slower.
    - A *list* of expvals comes back as ``n_outputs`` tensors of shape ``(B,)`` (a tuple would come back
      as ``(n_meas, B, 1)``-like shapes); they are stacked to ``(B, n_outputs)``.
    - Lightning devices cannot be pickled after their first execution: the backend holds only the spec and
      device name, and the module that owns it rebuilds it after unpickling (see :class:`qrl.nn.VQC`).
    - Lightning returns expvals as Python floats and PennyLane's torch interface wraps them with
      ``torch.as_tensor``, which gives torch's *default* dtype: float64 circuits came back rounded to
      float32 (errors ~1e-8). The call runs with the default dtype set to the weights' dtype.
    - Lightning's OpenMP threads: see :mod:`qrl.threads`.
    """

    def __init__(self, spec, device, diff_method: str | None = None, shots: int | None = None,
                 noise: dict[str, float] | None = None, native: bool | None = None):
        self.spec = spec
        self.device = device
        self.shots = shots
        name = getattr(device, "short_name", None) or getattr(device, "name", "")
        self.device_name = name
        self.diff_method = diff_method or self.default_method(spec, name, shots)
        self._width = measurement_width(spec)
        qfunc = spec.qfunc()
        self._qnode_grad = _noisy(qml.QNode(qfunc, device, interface="torch", diff_method=self.diff_method,
                                            shots=shots), noise)
        if self.diff_method in GRADIENT_TRANSFORMS:
            # PennyLane's gradient transforms cannot differentiate a broadcast tape with respect to
            # the broadcast (input) angles: expand the batch into one tape per sample first.
            self._qnode_grad = qml.transforms.broadcast_expand(self._qnode_grad)
        self._qnode_value = _noisy(qml.QNode(qfunc, device, interface="torch", diff_method=None, shots=shots), noise)
        self.native, self.native_refusal = None, "native=False"
        if native is not False:
            self.native, self.native_refusal = native_lightning(spec, device, name, self.diff_method, shots, noise)
        if native and self.native is None:
            raise QRLError(f"the native Lightning path cannot run this circuit: {self.native_refusal}; "
                           f"try native=None (the QNode runs what the native path cannot)")

    @staticmethod
    def default_method(spec, device_name: str = "lightning.qubit", shots: int | None = None) -> str:
        """:func:`default_diff_method`, with parameter-shift where the adjoint method cannot differentiate
        the circuit's measurements (``qml.probs``)."""
        method = default_diff_method(device_name, shots)
        return "parameter-shift" if method == "adjoint" and measures_probabilities(spec) else method

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        release_buffers()
        if self.native is not None:
            like = weights[0] if weights else inputs
            return self.native(inputs, *weights).to(dtype=like.dtype, device=like.device)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (inputs, *weights))
        qnode = self._qnode_grad if needs_grad else self._qnode_value
        like = weights[0] if weights else inputs
        with _default_dtype(like.dtype):
            result = qnode(inputs, *weights)
        # one (B,) tensor per expval, (B, 2**k) per probs; an unbroadcast call (B = 1) drops B
        batch = inputs.shape[0]
        parts = [result] if isinstance(result, torch.Tensor) else result  # one measurement, not in a list
        out = torch.cat([torch.as_tensor(r).reshape(batch, -1) for r in parts], dim=-1)
        if out.shape[1] != self._width:  # seen: lightning.qubit + adjoint, broadcast MultiRZ on one wire
            raise QRLError(f"{self.device_name} returned {[tuple(torch.as_tensor(r).shape) for r in result]} for a "
                           f"batch of {batch}; expected {self._width} values per sample; try device='torch' "
                           f"or diff_method='parameter-shift'")
        return out.to(dtype=like.dtype, device=like.device)


def native_lightning(spec, device, device_name: str, diff_method: str, shots: int | None = None,
                     noise: dict[str, float] | None = None) -> tuple[LightningStatevector | None, str | None]:
    """``(native path, None)`` when the circuit can run on Lightning's C++ simulator without QNodes, else
    ``(None, why not)``: a device other than Lightning, shots, noise, a differentiation method other than
    the adjoint method (:data:`NATIVE_DIFF_METHODS`), device wires other than ``0..n-1``, or a circuit the
    tracer refuses or whose measurements are not expectation values of Pauli sums. Never a guess: what the
    native path cannot follow exactly runs on the QNode."""
    if device_name not in LIGHTNING:
        return None, f"{device_name} is not a Lightning device ({', '.join(LIGHTNING)})"
    if shots is not None or getattr(getattr(device, "shots", None), "total_shots", None) is not None:
        return None, "finite shots (the native path computes exact expectation values)"
    if noise:
        return None, "noise"
    if diff_method not in NATIVE_DIFF_METHODS:
        return None, f"diff_method={diff_method!r} (the native path differentiates by the adjoint method)"
    if list(device.wires) != list(range(spec.n_qubits)):
        return None, f"device wires {list(device.wires)}; the native path needs wires 0..{spec.n_qubits - 1}"
    try:
        return LightningStatevector(spec, device_name, device), None
    except QRLError as exc:
        return None, str(exc)


def _noisy(qnode, noise: dict[str, float] | None):
    """The QNode with the noise channels inserted (see :data:`NOISE_CHANNELS`)."""
    for channel, probability in (noise or {}).items():
        position = "end" if channel == "readout_bit_flip" else "all"
        qnode = qml.noise.insert(qnode, getattr(qml, NOISE_CHANNELS[channel]), float(probability), position=position)
    return qnode


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
