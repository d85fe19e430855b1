"""``device="auto"`` by batch size: one backend for rollout-sized batches, another for update-sized ones."""

from __future__ import annotations

import torch

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
    calls of at most ``max_tiny`` samples on that.

    Both are exact backends of one circuit (``f(inputs, *weights)``), so a call's values and gradients are the
    same to rounding (1e-13 in float64) whichever runs it; the choice depends on the batch size only, so a
    seeded training run stays deterministic. Memory checks and the pass counts describe ``large``, the
    backend of the differentiated update batches.
    """

    def __init__(self, large, small, max_small: int = SMALL_BATCH_MAX, tiny=None, max_tiny: int = TINY_BATCH_MAX):
        self.large, self.small, self.max_small = large, small, max_small
        self.tiny, self.max_tiny = tiny, max_tiny

    def for_batch(self, batch: int):
        """The backend that runs a call of ``batch`` samples."""
        tiny = getattr(self, "tiny", None)  # (pickled before tiny batches had their own backend: none)
        if tiny is not None and batch <= self.max_tiny:
            return tiny
        return self.small if batch <= self.max_small else self.large

    def for_inputs(self, inputs: torch.Tensor):
        """The backend that runs a call with these inputs (by their batch size)."""
        return self.for_batch(inputs.shape[0])

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return self.for_batch(inputs.shape[0])(inputs, *weights)

    def __getattr__(self, name: str):  # passes, gradient_bytes, spec, ...: the update batches' backend
        if name in ("large", "small", "max_small", "tiny", "max_tiny"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.large, name)


def on_accelerator(inputs: torch.Tensor) -> bool:
    """Whether a call's inputs live on an accelerator (SB3's ``device="cuda"`` moves the policy there)."""
    return inputs.device.type != "cpu"


class AcceleratorDispatch:
    """``device="auto"`` where the measured CPU choice is not the torch path: calls whose inputs are on an
    accelerator (a policy moved to ``cuda``) run the torch program there, batched, on the tensors' own device;
    CPU calls run ``cpu`` (Lightning, measured faster on this machine's CPU). Both are exact backends of one
    circuit, so values and gradients agree to rounding; a run is on one device throughout, so it stays
    deterministic for a seed."""

    def __init__(self, cpu, spec):
        self.cpu, self.spec, self.accelerated = cpu, spec, None

    def for_inputs(self, inputs: torch.Tensor):
        """The backend that runs a call with these inputs."""
        if not on_accelerator(inputs):
            return self.cpu.for_inputs(inputs) if isinstance(self.cpu, BatchDispatch) else self.cpu
        if self.accelerated is None:
            self.accelerated = TorchStatevector(self.spec)
        return self.accelerated

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return self.for_inputs(inputs)(inputs, *weights)

    def __getattr__(self, name: str):  # passes, gradient_bytes, ...: the CPU backend's
        if name in ("cpu", "spec", "accelerated"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.cpu, name)
