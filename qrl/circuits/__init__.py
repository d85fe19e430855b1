"""What a circuit is: encodings, ansatze, readouts, and the ``CircuitSpec`` that combines them."""

from qrl.circuits.ansatze import ANSATZE, HardwareEfficient, StronglyEntangling, Unentangled
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
    "CircuitSpec",
    "HardwareEfficient",
    "StronglyEntangling",
    "Unentangled",
    "angle_encoding",
    "binary_code",
    "n_bits",
    "observable_labels",
    "observables",
    "summary",
    "zz_groups",
]
