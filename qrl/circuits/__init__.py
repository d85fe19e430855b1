"""What a circuit is: the built-in menu (encodings, ansatze, readouts, combined by ``CircuitSpec``), a user's
own PennyLane function (``CustomCircuit``, found by name) and the library of published circuits."""

from qrl.circuits import library  # noqa: F401 -- registers the published circuits
from qrl.circuits.ansatze import ANSATZE, HardwareEfficient, StronglyEntangling, Unentangled
from qrl.circuits.custom import (
    CircuitEntry,
    CustomCircuit,
    custom_circuit,
    find_circuit,
    initial_weights,
    register_circuit,
    registered_circuits,
)
from qrl.circuits.encodings import ENCODINGS, angle_encoding, binary_code, n_bits
from qrl.circuits.readouts import READOUTS, observable_labels, observables, zz_groups
from qrl.circuits.spec import OBS_MAP_FORMULAS, OBS_MAPS, CircuitSpec
from qrl.circuits.summary import summary

__all__ = [
    "ANSATZE",
    "ENCODINGS",
    "OBS_MAPS",
    "OBS_MAP_FORMULAS",
    "READOUTS",
    "CircuitEntry",
    "CircuitSpec",
    "CustomCircuit",
    "HardwareEfficient",
    "StronglyEntangling",
    "Unentangled",
    "angle_encoding",
    "binary_code",
    "custom_circuit",
    "find_circuit",
    "initial_weights",
    "n_bits",
    "observable_labels",
    "observables",
    "register_circuit",
    "registered_circuits",
    "summary",
    "zz_groups",
]
