"""``CircuitSpec``: what a circuit is, as plain picklable data, and the PennyLane qfunc it describes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pennylane as qml

from qrl.circuits.ansatze import ANSATZE
from qrl.circuits.encodings import ENCODINGS, angle_encoding
from qrl.circuits.readouts import READOUTS, observables
from qrl.errors import QRLError

OBS_MAPS = ("arctan", "tanh", "identity")


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
    :param ansatz: ``"hea"`` (RY-RZ + CZ ring) | ``"strongly_entangling"``.
    :param readout: ``"z"`` (Z on qubit ``a`` for output ``a``) | ``"zz"`` (Z products over groups).
    :param obs_map: ``"arctan"`` | ``"tanh"`` | ``"identity"``: observation -> angle, before scaling.
    :param input_scaling: trainable ``lambda`` per layer and feature (else fixed to 1).
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
    input_scaling: bool = True
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
        if self.n_inputs > self.n_qubits:
            raise QRLError(
                f"the observation has {self.n_inputs} features but the circuit has {self.n_qubits} qubits "
                f"and encoding {self.encoding!r} puts one feature on each qubit; "
                f"try n_qubits={self.n_inputs}, or pre_layer=True (a trainable linear map into "
                f"{self.n_qubits} angles, i.e. a hybrid model)"
            )
        if self.n_outputs > self.n_qubits:
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
    def input_scaling_shape(self) -> tuple[int, int]:
        return (self.n_encoding_layers, self.n_inputs)

    def n_parameters(self) -> int:
        """Trainable parameters: ansatz weights, plus input and output scaling when trainable."""
        n = 1
        for d in self.weight_shape:
            n *= d
        if self.input_scaling:
            n += self.n_encoding_layers * self.n_inputs
        if self.output_scaling:
            n += self.n_outputs
        return n

    def observables(self) -> list:
        return observables(self.readout, self.n_qubits, self.n_outputs)

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
