"""``CircuitSpec``: what a circuit is, as plain picklable data, and the PennyLane qfunc it describes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pennylane as qml

from qrl.circuits.ansatze import ANSATZE
from qrl.circuits.encodings import ENCODINGS, angle_encoding
from qrl.circuits.readouts import READOUTS, max_outputs, observable_labels, observables
from qrl.errors import QRLError

# Observation -> angle maps (before the input scaling lambda), as formulas of feature x_i.
# "bounds" needs the observation space's finite bounds [low_i, high_i]; "scale" fixed divisors s_i (obs_scale,
# unclipped); "basis" reads bits b_i in {0, 1} (a Discrete observation's index in binary, see
# qrl.circuits.encodings.binary_code).
OBS_MAP_FORMULAS = {
    "arctan": "arctan(x_i)",
    "tanh": "tanh(x_i)",
    "identity": "x_i",
    "bounds": "pi/2 * (2 * (x_i - low_i) / (high_i - low_i) - 1)",
    "scale": "x_i / s_i",
    "basis": "pi * b_i",
}
OBS_MAPS = tuple(OBS_MAP_FORMULAS)
RAW_OBS_MAPS = ("bounds", "scale", "basis")
"""The maps that read the raw observation (its space's bounds, fixed divisors, its bits): no ``VecNormalize`` of the
observation and no ``pre_layer`` before them."""


@dataclass(frozen=True)
class CircuitSpec:
    """A variational quantum circuit, described by plain values (safe to pickle and to log).

    The default is the Jerbi/Skolik circuit: per layer, ``RX(lambda_{l,i} * map(x_i))`` on qubit ``i``
    (data re-uploading with trainable ``lambda``), then ``RY`` and ``RZ`` rotations on every qubit and a
    CZ ring; Pauli-Z readout per qubit, times a trainable output scale; observations mapped to angles
    with ``arctan``.

    :param n_qubits: number of qubits (wires).
    :param n_layers: number of (encoding + variational) layers.
    :param n_inputs: number of encoded features; feature ``i`` goes to qubit ``i``, so
        ``n_inputs <= n_qubits``.
    :param n_outputs: number of readout values.
    :param encoding: ``"rx"`` | ``"ry"`` | ``"rz"``: the rotation that encodes each feature.
    :param ansatz: ``"hea"`` (RY-RZ + CZ ring) | ``"strongly_entangling"`` | ``"unentangled"`` (``Rot``
        per qubit, no two-qubit gates; Hsiao et al. 2022).
    :param readout: ``"z"`` (Z on qubit ``a`` for output ``a``) | ``"zz"`` (Z products over groups) |
        ``"parity"`` (``(-1)^a Z_0 ... Z_{n-1}`` for output ``a``; Jerbi et al. 2021).
    :param obs_map: observation -> angle, before scaling: ``"arctan"`` | ``"tanh"`` | ``"identity"`` |
        ``"bounds"`` (the observation space's finite bounds mapped linearly onto ``[-pi/2, pi/2]``) |
        ``"scale"`` (``x_i / s_i`` with fixed divisors ``obs_scale``, not clipped) | ``"basis"`` (bits
        ``b_i`` of a discrete state to ``pi * b_i``: basis encoding, Chen et al. 2020; needs encoding ``"rx"``
        or ``"ry"``). See :data:`OBS_MAP_FORMULAS`.
    :param input_scaling: trainable ``lambda`` per layer and feature (else fixed to 1). ``None`` (the
        default): trainable, except with ``obs_map="basis"``, whose angles must stay 0 or ``pi`` to
        prepare a basis state; ``True`` makes them trainable there too (no longer a basis encoding).
    :param output_scaling: trainable weight per output (else fixed to ``output_scale_init``).
    :param output_scale_init: initial output weight.
    :param data_reuploading: encode in every layer (else only before the first).
    """

    n_qubits: int = 4
    n_layers: int = 5
    n_inputs: int = 4
    n_outputs: int = 1
    encoding: str = "rx"
    ansatz: str = "hea"
    readout: str = "z"
    obs_map: str = "arctan"
    input_scaling: bool | None = None
    output_scaling: bool = True
    output_scale_init: float = 1.0
    data_reuploading: bool = True

    def __post_init__(self) -> None:
        for name in ("n_qubits", "n_layers", "n_inputs", "n_outputs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise QRLError(f"{name} must be a positive integer; got {value!r}")
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("ansatz", self.ansatz, tuple(ANSATZE))
        _check_choice("readout", self.readout, READOUTS)
        _check_choice("obs_map", self.obs_map, OBS_MAPS)
        for name in ("input_scaling", "output_scaling", "data_reuploading"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and name == "input_scaling")):
                raise QRLError(f"{name} must be true or false; got {value!r}")
        if self.obs_map == "basis" and self.encoding == "rz":
            raise QRLError("obs_map='basis' prepares the basis state |b> with RX(pi b) or RY(pi b); "
                           "got encoding='rz', which leaves |0> unchanged up to a phase; try encoding='rx'")
        if self.n_inputs > self.n_qubits:
            raise QRLError(
                f"the observation has {self.n_inputs} features but the circuit has {self.n_qubits} qubits "
                f"and encoding {self.encoding!r} puts one feature on each qubit; "
                f"try n_qubits={self.n_inputs}, or pre_layer=True (a trainable linear map into "
                f"{self.n_qubits} angles, i.e. a hybrid model)"
            )
        limit = max_outputs(self.readout, self.n_qubits)
        if limit is not None and self.n_outputs > limit:
            raise QRLError(
                f"readout {self.readout!r} gives at most one output per qubit: {self.n_outputs} outputs "
                f"need n_qubits >= {self.n_outputs}; got n_qubits={self.n_qubits}; "
                f"try n_qubits={self.n_outputs}, or post_layer=True (a trainable linear map from the "
                f"readout to the outputs)"
            )

    def replace(self, **changes) -> CircuitSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def n_encoding_layers(self) -> int:
        return self.n_layers if self.data_reuploading else 1

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the ansatz weights."""
        return ANSATZE[self.ansatz].shape(self.n_layers, self.n_qubits)

    @property
    def input_shape(self) -> tuple[int, int]:
        """One sample's circuit inputs: the scaled encoding angles, ``(n_encoding_layers, n_inputs)``."""
        return (self.n_encoding_layers, self.n_inputs)

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The weights of :meth:`qfunc` by name, in its argument order (TorchLayer's ``weight_shapes``)."""
        return {"weights": self.weight_shape}

    @property
    def input_scaling_shape(self) -> tuple[int, int]:
        return (self.n_encoding_layers, self.n_inputs)

    @property
    def trains_input_scaling(self) -> bool:
        """Whether ``lambda`` is trained: :attr:`input_scaling`, or its default for :attr:`obs_map`."""
        if self.input_scaling is None:
            return self.obs_map != "basis"
        return self.input_scaling

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters by kind: ``rotations`` (ansatz weights), ``input_scaling`` (``lambda``),
        ``output_weights`` (``w``) and ``total``; fixed scalings count 0."""
        rotations = math.prod(self.weight_shape)
        scaling = math.prod(self.input_scaling_shape) if self.trains_input_scaling else 0
        outputs = self.n_outputs if self.output_scaling else 0
        return {"rotations": rotations, "input_scaling": scaling, "output_weights": outputs,
                "total": rotations + scaling + outputs}

    def n_parameters(self) -> int:
        """Trainable parameters: ansatz weights, plus input and output scaling when trainable."""
        return self.parameter_counts()["total"]

    def observables(self) -> list:
        """The PennyLane observables, one per output."""
        return observables(self.readout, self.n_qubits, self.n_outputs)

    def observable_labels(self) -> list[str]:
        """The observables as text, one per output (``"Z0"``, ``"Z0 Z1"``, ``"-Z0 Z1 Z2 Z3"``)."""
        return observable_labels(self.readout, self.n_qubits, self.n_outputs)

    def qfunc(self):
        """The circuit as a PennyLane quantum function ``f(angles, weights) -> list of expvals``.

        ``angles``: shape ``(..., n_encoding_layers, n_inputs)``, already scaled and mapped (leading
        dims broadcast). ``weights``: shape :attr:`weight_shape`. Returns a *list* of ``n_outputs``
        expectation values (a list, not a tuple: PennyLane gives batch-major shapes for lists).
        """
        wires = list(range(self.n_qubits))
        ansatz = ANSATZE[self.ansatz]
        obs = self.observables()
        encoding = self.encoding

        def circuit(angles, weights):
            for layer in range(self.n_layers):
                if layer < self.n_encoding_layers:
                    angle_encoding(angles[..., layer, :], wires, rotation=encoding)
                ansatz.layer(weights, layer, wires)
            return [qml.expval(o) for o in obs]

        return circuit


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise QRLError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
