"""A call of more samples than fit in memory, run as consecutive chunks that do on one exact backend: ``device="auto"``
at 24-26 qubits runs an update batch on the native kernel this way instead of sample by sample on Lightning."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from qrl.backends.memory import available_memory
from qrl.backends.torch import TorchStatevector

KEEP_MARGIN = 0.9
"""A chunked gradient call keeps each chunk's state for its backward only where the kept states and one chunk's
forward + backward are estimated within this fraction of the memory available at the call (and within the budget);
otherwise each chunk's forward is run again in the backward. Either way the values and gradients are the same to the
bit (the kernel is deterministic), so the choice, made from the memory free now, cannot change a seeded run."""


class Chunks:
    """Run ``backend`` (an exact program that holds its state batch: the native kernel, the torch program) on a call of
    ``B`` samples as ``ceil(B / size)`` consecutive calls of at most ``size`` samples, the largest batch whose forward
    + backward fits ``memory`` bytes (:func:`largest_batch_within`), and their outputs concatenated.

    Under autograd each chunk is its own node. The last chunk, and as many before it as the states they keep for
    their backward (:meth:`~qrl.backends.torch.TorchStatevector.kept_bytes`) fit beside one chunk's forward +
    backward, keep them (:meth:`kept_chunks`); each other chunk runs as a checkpoint
    (:func:`torch.utils.checkpoint.checkpoint`): its forward keeps nothing and is run again in the backward, one chunk
    at a time, so the peak is one chunk's forward + backward whatever ``B``, for the price of those chunks' forwards
    once more.

    A call without a gradient (a rollout's, a target network's) runs in chunks of ``forward_size``, the largest batch
    whose forward alone fits (:meth:`~qrl.backends.torch.TorchStatevector.forward_bytes`; at least ``size``): at 26
    qubits here 16 samples, one vector of the kernel's widest, where a gradient's chunk is 8.

    The sizes are for amplitudes of ``itemsize`` bytes (8: complex64, SB3's float32 policies; 16: complex128, float64
    ones; ``device="auto"`` makes one set of chunks for each).

    Values equal one call's to rounding (a gradient summed over the batch is summed per chunk, then over the chunks:
    1e-13 in float64); the sizes depend on the machine's physical memory only, so a seeded run stays deterministic.
    """

    def __init__(self, backend, size: int, memory: int, itemsize: int = 8):
        if size < 1:
            raise ValueError(f"expected a chunk of at least one sample; got {size}")
        self.backend, self.size, self.memory = backend, int(size), int(memory)
        forward = largest_batch_within(backend, self.memory, forward=True, itemsize=itemsize)
        self.forward_size = max(self.size, forward or 0)

    def __call__(self, inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[0]
        differentiated = torch.is_grad_enabled() and (inputs.requires_grad or any(w.requires_grad for w in weights))
        size = self.size if differentiated else getattr(self, "forward_size", self.size)  # (pickled before: none)
        if batch <= size:
            return self.backend(inputs, *weights)
        pieces = inputs.split(size)
        if not differentiated:
            return torch.cat([self.backend(x, *weights) for x in pieces])
        again = len(pieces) - self.kept_chunks(batch, _itemsize(weights, inputs))
        return torch.cat([checkpoint(self.backend, x, *weights, use_reentrant=False, preserve_rng_state=False)
                          for x in pieces[:again]] + [self.backend(x, *weights) for x in pieces[again:]])

    def kept_chunks(self, batch: int, itemsize: int = 8) -> int:
        """How many of a gradient call's chunks of ``batch`` samples keep their states for the backward: the last ones
        (autograd runs the chunks' backwards last chunk first, each freeing what its chunk kept); the others keep
        nothing and run their forward again in the backward. The last chunk always keeps: its forward + backward is
        the peak either way. Chunks before it keep where their states
        (:meth:`~qrl.backends.torch.TorchStatevector.kept_bytes`), beside one chunk's forward + backward, are within
        the budget and :data:`KEEP_MARGIN` of the memory available now."""
        chunks = self.count(batch)
        kept = getattr(self.backend, "kept_bytes", None)
        per_chunk = kept(self.size, itemsize) if kept is not None else None
        if per_chunk is None or chunks <= 1:  # the backend does not say what it keeps: only the last chunk
            return 1
        room = min(self.memory, KEEP_MARGIN * available_memory()) - self.backend.gradient_bytes(self.size, itemsize)
        return max(1, min(chunks, 1 + int(room // per_chunk)))

    def keeps(self, batch: int, itemsize: int = 8) -> bool:
        """Whether every chunk of a gradient call of ``batch`` samples keeps its state (:meth:`kept_chunks`)."""
        return self.kept_chunks(batch, itemsize) == self.count(batch)

    def count(self, batch: int) -> int:
        """How many chunks a gradient call of ``batch`` samples runs in."""
        return -(-batch // self.size)

    def gradient_bytes(self, batch: int, itemsize: int = 8) -> int:
        """Peak memory of one forward + backward of ``batch`` samples: one chunk's (the chunks before the last keep
        their states only where they fit the budget beside it: :meth:`kept_chunks`)."""
        return self.backend.gradient_bytes(min(batch, self.size), itemsize)

    def __getattr__(self, name: str):  # passes, spec, program, n, ...: the backend's
        if name in ("backend", "size", "memory", "forward_size"):  # not set (unpickling, or pickled before): none
            raise AttributeError(name)
        return getattr(self.backend, name)


def amplitude_bytes(dtype: torch.dtype) -> int:
    """Bytes of a complex amplitude for a call in ``dtype``: 16 in float64 (complex128), else 8 (complex64)."""
    return 16 if dtype == torch.float64 else 8


def _itemsize(weights: tuple, inputs: torch.Tensor) -> int:
    """Bytes of a complex amplitude for this call: 16 in float64, else 8 (complex64)."""
    return amplitude_bytes(weights[0].dtype if weights else inputs.dtype)


def largest_batch_within(backend, memory: int, forward: bool = False, itemsize: int = 8) -> int | None:
    """The largest batch whose forward + backward on ``backend`` is estimated within ``memory`` bytes
    (:meth:`TorchStatevector.gradient_bytes`; with ``forward``, a forward without a gradient alone:
    :meth:`~TorchStatevector.forward_bytes`; 0 if one sample is not) for amplitudes of ``itemsize`` bytes; ``None``
    for a backend without that estimate (a PennyLane device). The estimate grows with the batch beyond the switch to
    the adjoint method (under 2 GiB)."""
    if not isinstance(backend, TorchStatevector):
        return None
    estimate = backend.forward_bytes if forward else backend.gradient_bytes

    def peak(batch: int) -> int:
        return estimate(batch, itemsize)

    if peak(1) > memory:
        return 0
    fits, over = 1, 2
    while peak(over) <= memory:
        fits, over = over, 2 * over
    while over - fits > 1:  # bisection: ``fits`` fits, ``over`` does not
        middle = (fits + over) // 2
        fits, over = (middle, over) if peak(middle) <= memory else (fits, middle)
    return fits
