"""``device="auto"`` by batch size: one backend for rollout-sized batches, another for update-sized ones, a call that
would not fit in memory in chunks that do (or on Lightning), and the torch program for tensors on an accelerator."""

from __future__ import annotations

import torch

from qrl.backends.chunks import Chunks, amplitude_bytes, largest_batch_within
from qrl.backends.memory import accelerator_memory
from qrl.backends.torch import TorchStatevector

SMALL_BATCH_MAX = 16
"""Calls with at most this many samples (SB3 rollouts: one per environment) follow the small-batch crossovers
(measured at batch 8 by ``qrl bench scaling --batch 8 --update-auto``); larger calls (updates: 64 and more)
follow the main ones."""


TINY_BATCH_MAX = 2
"""Calls with at most this many samples (one environment's step, an evaluation episode) follow the tiny-batch
crossovers (measured at batch 1 by ``qrl bench scaling --batch 1 --update-auto``) where they are stored: the native
kernel computes a few samples for the price of one vector of them, so from 12 qubits one sample runs faster on the
torch program, eight on the kernel."""


class BatchDispatch:
    """Run each call on ``small`` when its batch has at most ``max_small`` samples, else on ``large``; with ``tiny``,
    calls of at most ``max_tiny`` samples on that. With ``limits`` (``{"tiny" | "small" | "large": the largest batch
    that backend's forward + backward fits in memory}``), a larger call runs on ``chunked[role]`` (the same backend in
    chunks that fit: :class:`qrl.backends.chunks.Chunks`) where given, else on ``spill()`` (Lightning: a few state
    vectors whatever the batch), made on the first such call.

    With ``rollouts`` (a backend for each batch size from 1 to its length, its chunks where the batch does not fit in
    memory, or ``None`` to spill: :func:`qrl.backends.select.rollout_devices`), a call of at most that many samples
    runs on its entry instead, and ``small``, ``tiny`` and their limits are not used; with ``forward_rollouts`` too
    (alike), a call made while gradients are not recorded runs on its entry there. With ``larger`` (``(first batch,
    backend)``), calls of at least that many samples made while gradients are recorded run on that backend (role
    ``"larger"`` in ``limits`` and ``chunked``): the native kernel or the torch program, from the batch at which the
    torch program would differentiate by its adjoint method (:func:`qrl.backends.select.adjoint_from_batch`).

    All are exact backends of one circuit (``f(inputs, *weights)``), so a call's values and gradients are the
    same to rounding (1e-13 in float64) whichever runs it; the choice depends on the batch size (and for ``larger``
    and ``forward_rollouts`` on whether gradients are recorded) only, so a seeded training run stays deterministic.
    Memory checks and the pass counts describe ``large``, the backend of the differentiated update batches
    (:func:`cpu_backend` names the one of a batch).
    """

    def __init__(self, large, small, max_small: int = SMALL_BATCH_MAX, tiny=None, max_tiny: int = TINY_BATCH_MAX,
                 limits: dict[str, int] | None = None, spill=None, rollouts: tuple | None = None,
                 chunked: dict | None = None, larger: tuple | None = None, forward_rollouts: tuple | None = None):
        self.large, self.small, self.max_small = large, small, max_small
        self.forward_rollouts = None if forward_rollouts is None else tuple(forward_rollouts)
        self.larger = larger
        self.tiny, self.max_tiny = tiny, max_tiny
        self.limits, self.spill, self.spilled = dict(limits or {}), spill, None
        self.chunked = dict(chunked or {})
        self.rollouts = None if rollouts is None else tuple(rollouts)

    def for_batch(self, batch: int):
        """The backend that runs a call of ``batch`` samples."""
        rollouts = getattr(self, "rollouts", None)  # (pickled before a backend per batch size: none)
        forward = getattr(self, "forward_rollouts", None)  # (pickled before: none)
        if forward is not None and not torch.is_grad_enabled():
            rollouts = forward
        if rollouts is not None and 1 <= batch <= len(rollouts):
            return rollouts[batch - 1] if rollouts[batch - 1] is not None else self._spilled()
        tiny = getattr(self, "tiny", None)  # (pickled before tiny batches had their own backend: none)
        if tiny is not None and batch <= self.max_tiny:
            role, chosen = "tiny", tiny
        elif batch <= self.max_small:
            role, chosen = "small", self.small
        else:
            larger = getattr(self, "larger", None)  # (pickled before: none)
            if larger is not None and batch >= larger[0] and torch.is_grad_enabled():
                role, chosen = "larger", larger[1]
            else:
                role, chosen = "large", self.large
        limit = getattr(self, "limits", {}).get(role)  # (pickled before the memory limits: none)
        if limit is None or batch <= limit:
            return chosen
        chunks = getattr(self, "chunked", {}).get(role)  # (pickled before chunks: none)
        return chunks if chunks is not None else self._spilled()

    def _spilled(self):
        """The backend of calls that would not fit in memory, made on the first such call."""
        if self.spilled is None:
            self.spilled = self.spill()
        return self.spilled

    def for_inputs(self, inputs: torch.Tensor):
        """The backend that runs a call with these inputs (by their batch size)."""
        return self.for_batch(inputs.shape[0])

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return self.for_batch(inputs.shape[0])(inputs, *weights)

    def __getattr__(self, name: str):  # passes, gradient_bytes, spec, ...: the update batches' backend
        if name in _BATCH_DISPATCH_SLOTS:  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.large, name)


_BATCH_DISPATCH_SLOTS = ("large", "small", "max_small", "tiny", "max_tiny", "limits", "spill", "spilled", "rollouts",
                         "chunked", "larger", "forward_rollouts")


def on_accelerator(inputs: torch.Tensor) -> bool:
    """Whether a call's inputs live on an accelerator (SB3's ``device="cuda"`` moves the policy there)."""
    return inputs.device.type != "cpu"


class AcceleratorDispatch:
    """``device="auto"``'s outer layer: calls whose inputs are on an accelerator (a policy moved to ``cuda``) run the
    torch program there, batched, on the tensors' own device; CPU calls run ``cpu`` (the measured choices for this
    machine's CPU, which may be the native kernel or Lightning: :class:`BatchDispatch`). Both are exact backends of
    one circuit, so values and gradients agree to rounding; a run is on one device throughout, so it stays
    deterministic for a seed.

    With ``memory_fraction``, a call on a GPU whose forward + backward would need more than that fraction of the GPU's
    memory runs in chunks that fit (:class:`qrl.backends.chunks.Chunks`, sized by the GPU's total memory, so the same
    for every run on it; each chunk's forward computed again in its backward). Not measured on a GPU yet.

    ``cpu``'s memory limits are for complex64 amplitudes (float32 policies); with ``wide`` (a callable making the same
    dispatch for complex128), a float64 call on the CPU runs on that, made on the first such call, so that its twice
    larger states are chunked by their own size."""

    def __init__(self, cpu, spec, memory_fraction: float | None = None, wide=None):
        self.cpu, self.spec, self.accelerated = cpu, spec, None
        self.memory_fraction, self.chunked = memory_fraction, {}
        self.wide, self.cpu_wide = wide, None

    def for_inputs(self, inputs: torch.Tensor):
        """The backend that runs a call with these inputs."""
        itemsize = amplitude_bytes(inputs.dtype)
        if not on_accelerator(inputs):
            return self.for_batch(inputs.shape[0], itemsize)
        if self.accelerated is None:
            self.accelerated = TorchStatevector(self.spec)
        fraction = getattr(self, "memory_fraction", None)  # (pickled before GPU chunks: none)
        if not fraction:
            return self.accelerated
        key = (str(inputs.device), itemsize)
        if key not in self.chunked:  # once per device and width: the largest batch that fits its memory, its chunks
            memory = int(fraction * (accelerator_memory(inputs.device) or 0))
            fits = largest_batch_within(self.accelerated, memory, itemsize=itemsize) if memory else None
            self.chunked[key] = Chunks(self.accelerated, fits, memory, itemsize) if fits else None
        chunks = self.chunked[key]
        return chunks if chunks is not None and inputs.shape[0] > chunks.size else self.accelerated

    def for_batch(self, batch: int, itemsize: int = 8):
        """The backend that runs a CPU call of ``batch`` samples whose amplitudes take ``itemsize`` bytes."""
        cpu = self.cpu
        if itemsize != 8 and getattr(self, "wide", None) is not None:  # (pickled before: none)
            if self.cpu_wide is None:
                self.cpu_wide = self.wide()
            cpu = self.cpu_wide
        return cpu.for_batch(batch) if isinstance(cpu, BatchDispatch) else cpu

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return self.for_inputs(inputs)(inputs, *weights)

    def __getattr__(self, name: str):  # passes, gradient_bytes, ...: the CPU backend's
        if name in ("cpu", "spec", "accelerated", "memory_fraction", "chunked", "wide", "cpu_wide"):  # unpickling
            raise AttributeError(name)
        return getattr(self.cpu, name)


def cpu_backend(backend, batch: int, itemsize: int = 8):
    """The backend that runs a CPU call of ``batch`` samples on ``backend`` (``device="auto"``'s dispatch, resolved;
    any other backend is its own), its amplitudes of ``itemsize`` bytes (16: a float64 policy's)."""
    if isinstance(backend, AcceleratorDispatch):
        return backend.for_batch(batch, itemsize)
    return backend.for_batch(batch) if isinstance(backend, BatchDispatch) else backend
