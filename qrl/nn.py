"""``VQC``: a variational quantum circuit as a torch ``nn.Module``."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from qrl.backends.select import make_backend, resolve_device_name
from qrl.backends.torch import run_together
from qrl.circuits.custom import CustomCircuit, initial_weights
from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError

# The maps that need nothing but the features; "bounds", "scale" and "basis" are in VQC.map_observation.
_OBS_MAPS = {
    "arctan": torch.atan,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}

# Bounds this large are "unbounded" in practice (Gymnasium spaces use the float32 maximum for that).
_UNBOUNDED = float(np.finfo(np.float32).max)


def unbounded_features(low, high) -> list[int]:
    """Indices of the features whose bound ``low[i]`` or ``high[i]`` is infinite (or >= float32 max)."""
    low, high = np.asarray(low, dtype=np.float64).ravel(), np.asarray(high, dtype=np.float64).ravel()
    bad = ~np.isfinite(low) | ~np.isfinite(high) | (np.abs(low) >= _UNBOUNDED) | (np.abs(high) >= _UNBOUNDED)
    return [int(i) for i in np.flatnonzero(bad)]


class VQC(nn.Module):
    """A variational quantum circuit mapping ``(B, n_inputs)`` features to ``(B, n_outputs)`` values.

    ``out[b, a] = w_a * <O_a>(angles_b)`` with ``angles_b[l, i] = lambda[l, i] * map(x[b, i])``,
    where ``map`` is ``spec.obs_map``, ``lambda`` the (trainable) input scaling, ``w`` the (trainable)
    output scaling and ``O_a`` the readout observables (Jerbi et al. 2021; Skolik et al. 2022).

    ``obs_map="bounds"`` maps ``[obs_low[i], obs_high[i]]`` linearly onto ``[-pi/2, pi/2]`` (the range
    of ``arctan``) and clips values outside the bounds to them; the bounds are buffers in the module's
    dtype, saved in the state dict. A feature with ``low == high`` gets angle 0. Half a turn, not a
    whole one: ``R(pi)`` and ``R(-pi)`` differ only by a global phase, so on ``[-pi, pi]`` a state at
    one bound would read as one at the other (MountainCar's left wall as its goal) at ``lambda = 1``.
    ``obs_map="basis"`` reads bits ``x[b, i]`` in ``{0, 1}`` (see :class:`qrl.sb3.networks.VQCNetwork`
    for the map from a ``Discrete`` observation) and encodes them as ``pi * x``. ``obs_map="scale"`` divides
    feature ``i`` by a fixed ``obs_scale[i]`` and does not clip: the TensorFlow Quantum tutorial's map for
    CartPole (``x / (2.4, 2.5, 0.21, 2.5)``), which gives a feature with a small range (the pole angle) an
    angle of order 1 where ``arctan`` leaves it small until ``lambda`` has grown.

    The module holds plain configuration and ``nn.Parameter`` weights only; the backend (a compiled
    torch program or a PennyLane QNode and device) is built on first use and rebuilt after pickling,
    copying or :meth:`set_device`, because Lightning devices cannot be pickled once they have run.

    :param spec: the circuit.
    :param device: ``"auto"`` (fastest exact backend), ``"torch"`` or a PennyLane device name such as
        ``"lightning.qubit"``.
    :param diff_method: PennyLane differentiation method (``None``: adjoint on Lightning, best elsewhere).
    :param seed: seed for the initial weights (``None``: torch's global generator).
    :param shots: ``None`` (exact expectation values) or finite shots per circuit (PennyLane devices).
    :param noise: ``{channel: probability}`` on a mixed-state device, e.g. ``{"depolarizing": 0.01}``.
    :param obs_low: lower bounds of the ``n_inputs`` features, for ``obs_map="bounds"`` only.
    :param obs_high: upper bounds of the features, for ``obs_map="bounds"`` only.
    :param obs_scale: positive divisors, one per input or one for all, for ``obs_map="scale"`` only.

    **Example**

    >>> import torch
    >>> from qrl.circuits import CircuitSpec
    >>> vqc = VQC(CircuitSpec(n_qubits=4, n_layers=2, n_inputs=4, n_outputs=2), seed=0)
    >>> vqc(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, spec: CircuitSpec, device: str = "auto", diff_method: str | None = None,
                 seed: int | None = None, obs_low=None, obs_high=None, shots: int | None = None,
                 noise: dict[str, float] | None = None, obs_scale=None):
        super().__init__()
        self.spec = spec
        self.shots, self.noise = shots, noise
        self.n_executions = 0  # circuits run: one per sample of every forward pass
        self.n_gradient_samples = 0  # of those, samples in passes that build a graph for a gradient
        self.device_name = resolve_device_name(device, spec, shots, noise)
        self.diff_method = diff_method
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if isinstance(spec, CustomCircuit):
            self.circuit_weights = nn.ParameterDict({name: nn.Parameter(initial_weights(shape, init, gen))
                                                     for (name, shape), (_, init) in zip(spec.weights, spec.init,
                                                                                        strict=True)})
        else:
            # Variational angles ~ U[-pi, pi] (CleanQRL); lambda = 1 (Jerbi et al.).
            self.weights = nn.Parameter((torch.rand(spec.weight_shape, generator=gen) * 2 - 1) * math.pi)
            scaling = torch.ones(spec.input_scaling_shape)
            if spec.trains_input_scaling:
                self.input_scaling = nn.Parameter(scaling)
            else:
                self.register_buffer("input_scaling", scaling)
        out_scale = torch.full((spec.n_outputs,), float(spec.output_scale_init))
        if spec.output_scaling:
            self.output_scaling = nn.Parameter(out_scale)
        else:
            self.register_buffer("output_scaling", out_scale)
        if spec.obs_map == "bounds":
            low, high = _check_bounds(obs_low, obs_high, spec.n_inputs)
            self.register_buffer("obs_low", torch.as_tensor(low, dtype=torch.get_default_dtype()))
            self.register_buffer("obs_high", torch.as_tensor(high, dtype=torch.get_default_dtype()))
        elif obs_low is not None or obs_high is not None:
            raise QRLError(f"obs_low and obs_high are the bounds of obs_map='bounds'; got obs_map="
                           f"{spec.obs_map!r}; try obs_map='bounds', or leave the bounds out")
        if spec.obs_map == "scale":
            scale = check_obs_scale(obs_scale, spec.n_inputs)
            self.register_buffer("obs_scale", torch.as_tensor(scale, dtype=torch.get_default_dtype()))
        elif obs_scale is not None:
            raise QRLError(f"obs_scale divides the features of obs_map='scale'; got obs_map={spec.obs_map!r}; "
                           f"try obs_map='scale', or leave obs_scale out")
        self.device_requested = device  # "auto" may run each call on the backend for its batch (BatchDispatch)
        self._backend = make_backend(spec, device, diff_method, shots, noise)  # fail now, not at first use

    @property
    def backend(self):
        if self._backend is None:
            device = getattr(self, "device_requested", self.device_name)  # modules pickled before it existed
            self._backend = make_backend(self.spec, device, self.diff_method, getattr(self, "shots", None),
                                         getattr(self, "noise", None))
        return self._backend

    def set_device(self, device: str, diff_method: str | None = None, shots: int | None = None,
                   noise: dict[str, float] | None = None) -> None:
        """Run on another backend from now on (weights are kept): exact, or with ``shots`` and ``noise``."""
        name = resolve_device_name(device, self.spec, shots, noise)
        self._backend = make_backend(self.spec, device, diff_method, shots, noise)
        self.device_name, self.diff_method, self.shots, self.noise = name, diff_method, shots, noise
        self.device_requested = device

    def use_backend(self, backend) -> None:
        """Run this module on an explicit backend object from now on (for benchmarks and tests).

        ``backend`` is a callable ``f(angles, weights) -> (B, n_outputs)`` for this module's circuit, e.g.
        ``TorchStatevector(spec, "wires")``. The device name is kept: a pickled or copied module rebuilds
        its backend from the name, not from this object.
        """
        if not callable(backend):
            raise QRLError(f"expected a backend callable as f(angles, weights); got {type(backend).__name__}")
        self._backend = backend

    def circuit_parameters(self) -> list[torch.Tensor]:
        """The circuit's weights in its argument order: ``[weights]`` for a built-in circuit, the
        ``weight_shapes`` tensors for a user's circuit (input and output scaling are not among them)."""
        if isinstance(self.spec, CustomCircuit):
            return list(self.circuit_weights.values())
        return [self.weights]

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        """The circuit's inputs from features ``(B, n_inputs)``: for a built-in circuit the encoding angles
        ``(B, n_encoding_layers, n_inputs)`` (mapped and scaled), for a user's circuit the mapped features."""
        if x.dim() != 2 or x.shape[-1] != self.spec.n_inputs:
            raise QRLError(f"expected input of shape (batch, {self.spec.n_inputs}); got {tuple(x.shape)}")
        mapped = self.map_observation(x.to(self.output_scaling.dtype))
        if isinstance(self.spec, CustomCircuit):
            return mapped
        return mapped[:, None, :] * self.input_scaling  # (B, 1, n) * (L, n)

    def map_observation(self, x: torch.Tensor) -> torch.Tensor:
        """``spec.obs_map`` applied to features ``(B, n_inputs)``: angles before the input scaling."""
        obs_map = self.spec.obs_map
        if obs_map == "bounds":
            center = (self.obs_high + self.obs_low) / 2
            half = (self.obs_high - self.obs_low) / 2
            scaled = torch.where(half > 0, (x - center) / torch.where(half > 0, half, 1.0), 0.0)
            return (math.pi / 2) * scaled.clamp(-1.0, 1.0)
        if obs_map == "basis":
            return math.pi * x
        if obs_map == "scale":
            return x / self.obs_scale
        return _OBS_MAPS[obs_map](x)

    def expvals(self, x: torch.Tensor) -> torch.Tensor:
        """Readout expectation values before output scaling, shape ``(B, n_outputs)``."""
        angles, weights = self.angles(x), self.circuit_parameters()
        if angles.shape[0] == 0:  # no circuit to run (the programs lay states out by batch): an empty result, whose
            return _empty_batch(angles, weights, self.spec.n_outputs)  # backward gives zero gradients, as an MLP's
        return self.backend(angles, *weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._count(x)
        return self.expvals(x) * self.output_scaling

    def _count(self, x: torch.Tensor) -> None:
        self.n_executions = getattr(self, "n_executions", 0) + int(x.shape[0])  # one circuit per sample
        # on hardware: 2 shifted circuits per angle
        if torch.is_grad_enabled() and self.circuit_parameters()[0].requires_grad:
            self.n_gradient_samples = getattr(self, "n_gradient_samples", 0) + int(x.shape[0])

    def extra_repr(self) -> str:
        s = self.spec
        if isinstance(s, CustomCircuit):
            return (f"circuit={s.circuit}, n_qubits={s.n_qubits}, weight_shapes={s.weight_shapes}, "
                    f"obs_map={s.obs_map}, n_outputs={s.n_outputs}, device={self.device_name}")
        return (f"n_qubits={s.n_qubits}, n_layers={s.n_layers}, encoding={s.encoding}, ansatz={s.ansatz}, "
                f"readout={s.readout}, obs_map={s.obs_map}, n_outputs={s.n_outputs}, device={self.device_name}")

    # The backend may hold a PennyLane device that cannot be pickled: drop it, rebuild on first use.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state


def forward_together(modules: list[VQC], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[m(x) for m, x in zip(modules, inputs)]``, the circuits run as one batch where their backends allow
    (:func:`qrl.backends.torch.run_together`: an actor and a critic of one structure on the torch backend);
    the values are those of one call each, to the bit."""
    if any(x.shape[0] == 0 for x in inputs):
        return [m(x) for m, x in zip(modules, inputs, strict=True)]
    for m, x in zip(modules, inputs, strict=True):
        m._count(x)
    expvals = run_together([m.backend for m in modules], [m.angles(x) for m, x in zip(modules, inputs, strict=True)],
                           [m.circuit_parameters() for m in modules])
    return [e * m.output_scaling for e, m in zip(expvals, modules, strict=True)]


def _empty_batch(angles: torch.Tensor, weights: list[torch.Tensor], n_outputs: int) -> torch.Tensor:
    """The ``(0, n_outputs)`` result of an empty batch, in the graph of its inputs and weights."""
    zero = sum((w.sum() for w in weights), angles.sum()) * 0
    return zero.expand(0, n_outputs)


def check_obs_scale(scale, n_inputs: int) -> np.ndarray:
    """The divisors of ``obs_map="scale"`` as ``(n_inputs,)`` (one number is used for every input), or a
    QRLError that says the fix."""
    example = ", ".join(["1.0"] * min(n_inputs, 4)) + (", ..." if n_inputs > 4 else "")
    if scale is None:
        raise QRLError(f"obs_map='scale' divides each feature by a fixed number; expected obs_scale=[{example}] "
                       f"({n_inputs} positive numbers, e.g. the features' typical ranges); got none")
    try:
        values = np.asarray(scale, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        values = None
    if values is None or values.size not in (1, n_inputs):
        got = "something that is not a list of numbers" if values is None else f"{values.size} values"
        raise QRLError(f"expected obs_scale with {n_inputs} positive numbers (one per input) or one for all; "
                       f"got {got} ({scale!r}); try obs_scale=[{example}]")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise QRLError(f"obs_scale divides the features, so every value must be finite and positive; got {scale!r}")
    return np.broadcast_to(values, (n_inputs,)).copy()


def _check_bounds(low, high, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Finite bounds of shape ``(n_inputs,)`` with ``low <= high``, or a QRLError that says the fix."""
    if low is None or high is None:
        raise QRLError("obs_map='bounds' needs the observation bounds; expected obs_low and obs_high "
                       "(VQCNetwork takes them from a Box observation space); got none; try obs_map='arctan'")
    low, high = np.asarray(low, dtype=np.float64).ravel(), np.asarray(high, dtype=np.float64).ravel()
    if low.shape != (n_inputs,) or high.shape != (n_inputs,):
        raise QRLError(f"expected obs_low and obs_high with {n_inputs} values (one per input); "
                       f"got {low.size} and {high.size}")
    infinite = unbounded_features(low, high)
    if infinite:
        raise QRLError(f"obs_map='bounds' maps finite bounds onto [-pi/2, pi/2], but the observation has infinite "
                       f"bounds for features {infinite}; try obs_map='arctan'")
    if np.any(low > high):
        raise QRLError(f"expected obs_low <= obs_high; got low > high for features "
                       f"{np.flatnonzero(low > high).tolist()}")
    return low, high
