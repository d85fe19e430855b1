"""What a circuit is: encodings, ansatze, readouts, and the ``CircuitSpec`` that combines them."""

from qrl.circuits.ansatze import ANSATZE, HardwareEfficient, StronglyEntangling
from qrl.circuits.encodings import ENCODINGS, angle_encoding
from qrl.circuits.readouts import READOUTS, observables, zz_groups
from qrl.circuits.spec import OBS_MAPS, CircuitSpec

__all__ = [
    "ANSATZE",
    "ENCODINGS",
    "OBS_MAPS",
    "READOUTS",
    "CircuitSpec",
    "HardwareEfficient",
    "StronglyEntangling",
    "angle_encoding",
    "observables",
    "zz_groups",
]
