"""``VQC``: a variational quantum circuit as a torch ``nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import nn

from qrl.backends.select import make_backend, resolve_device_name
from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError

_OBS_MAPS = {
    "arctan": torch.atan,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}


class VQC(nn.Module):
    """A variational quantum circuit mapping ``(B, n_inputs)`` features to ``(B, n_outputs)`` values.

    ``out[b, a] = w_a * <O_a>(angles_b)`` with ``angles_b[l, i] = lambda[l, i] * map(x[b, i])``,
    where ``map`` is ``spec.obs_map``, ``lambda`` the (trainable) input scaling, ``w`` the (trainable)
    output scaling and ``O_a`` the readout observables (Jerbi et al. 2021; Skolik et al. 2022).

    The module holds plain configuration and ``nn.Parameter`` weights only; the backend (a compiled
    torch program or a PennyLane QNode and device) is built on first use and rebuilt after pickling,
    copying or :meth:`set_device`, because Lightning devices cannot be pickled once they have run.

    :param spec: the circuit.
    :param device: ``"auto"`` (fastest exact backend), ``"torch"`` or a PennyLane device name such as
        ``"lightning.qubit"``.
    :param diff_method: PennyLane differentiation method (``None``: adjoint on Lightning, best elsewhere).
    :param seed: seed for the initial weights (``None``: torch's global generator).

    **Example**

    >>> import torch
    >>> from qrl.circuits import CircuitSpec
    >>> vqc = VQC(CircuitSpec(n_qubits=4, n_layers=2, n_inputs=4, n_outputs=2), seed=0)
    >>> vqc(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, spec: CircuitSpec, device: str = "auto", diff_method: str | None = None,
                 seed: int | None = None):
        super().__init__()
        self.spec = spec
        self.device_name = resolve_device_name(device, spec)
        self.diff_method = diff_method
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        # Variational angles ~ U[-pi, pi] (CleanQRL); lambda = 1 (Jerbi et al.).
        self.weights = nn.Parameter((torch.rand(spec.weight_shape, generator=gen) * 2 - 1) * math.pi)
        scaling = torch.ones(spec.input_scaling_shape)
        out_scale = torch.full((spec.n_outputs,), float(spec.output_scale_init))
        if spec.input_scaling:
            self.input_scaling = nn.Parameter(scaling)
        else:
            self.register_buffer("input_scaling", scaling)
        if spec.output_scaling:
            self.output_scaling = nn.Parameter(out_scale)
        else:
            self.register_buffer("output_scaling", out_scale)
        self._backend = make_backend(spec, self.device_name, diff_method)  # fail now, not at first use

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.spec, self.device_name, self.diff_method)
        return self._backend

    def set_device(self, device: str, diff_method: str | None = None) -> None:
        """Run on another backend from now on (weights are kept)."""
        name = resolve_device_name(device, self.spec)
        self._backend = make_backend(self.spec, name, diff_method)
        self.device_name, self.diff_method = name, diff_method

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        """Encoding angles, shape ``(B, n_encoding_layers, n_inputs)``, from features ``(B, n_inputs)``."""
        if x.dim() != 2 or x.shape[-1] != self.spec.n_inputs:
            raise QRLError(f"expected input of shape (batch, {self.spec.n_inputs}); got {tuple(x.shape)}")
        mapped = _OBS_MAPS[self.spec.obs_map](x.to(self.weights.dtype))
        return self.input_scaling.unsqueeze(0) * mapped.unsqueeze(1)

    def expvals(self, x: torch.Tensor) -> torch.Tensor:
        """Readout expectation values before output scaling, shape ``(B, n_outputs)``."""
        return self.backend(self.angles(x), self.weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expvals(x) * self.output_scaling

    def extra_repr(self) -> str:
        s = self.spec
        return (f"n_qubits={s.n_qubits}, n_layers={s.n_layers}, encoding={s.encoding}, ansatz={s.ansatz}, "
                f"readout={s.readout}, n_outputs={s.n_outputs}, device={self.device_name}")

    # The backend may hold a PennyLane device that cannot be pickled: drop it, rebuild on first use.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state
