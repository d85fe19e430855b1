"""How a circuit runs: the compiled torch statevector, or any PennyLane device."""

from qrl.backends.pennylane import PennyLaneQNode
from qrl.backends.select import installed_devices, make_backend, make_device, resolve_device_name
from qrl.backends.torch import TorchStatevector

__all__ = [
    "PennyLaneQNode",
    "TorchStatevector",
    "installed_devices",
    "make_backend",
    "make_device",
    "resolve_device_name",
]
