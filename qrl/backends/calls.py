"""The cost model of one forward + backward call on the torch program and on the native kernel, from their structure:
``device="auto"`` runs each call of up to ``SMALL_BATCH_MAX`` samples, from 12 qubits, on the one it estimates the
faster (:func:`qrl.backends.select.rollout_devices`). Fitted by ``qrl bench calls`` (:func:`fit_call_model`); its
``--update-auto`` stores the fit for this machine beside the crossovers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qrl.errors import QRLError
from qrl.simulator.native import padded, vector_width

CACHE_BYTES = 2 * 2**20
"""The L2 cache of one core of this machine (2 MiB): a state batch within it costs the torch program less a pass
(:func:`beyond_cache`)."""
CALL_MODEL_MAX_QUBITS = 18
"""The cost model chooses rollout-sized calls' program as fitted up to this many qubits: it was fitted at 12-16 and
checked at 18 (README, "Rollout-sized calls by a cost model"). Beyond, its estimate of the torch program is low (its
temporaries are faulted in afresh, and it takes the adjoint method), and the torch program's estimate is multiplied
by :func:`large_state_factor` (since 2026-12-05, with the readout of :class:`qrl.simulator.readout.WireZ`; before,
:data:`qrl.backends.select.NATIVE_SMALL_BATCH_PASS_RATIO` decided there, and for a few hours that day the kernel from
22 qubits). :meth:`CallModel.kernel_faster` applies it, so ``device="auto"`` and ``qrl bench calls`` choose alike."""
KERNEL_ROTATION_PASSES = 0.25
"""The kernel's cost of one rotation, in passes (its sine and cosine and the product, within a pass it makes): fixed,
not fitted (fitted with the rest, it trades off against the pass cost and chose no better)."""
WIDTHS = (4, 8, 16)
"""The kernel's vector widths in samples (:func:`qrl.simulator.native.vector_width`)."""


def beyond_cache(amplitudes) -> bool:
    """Whether a state batch of ``amplitudes`` complex64 numbers costs the torch program a pass from beyond the cache:
    from :data:`CACHE_BYTES` on, since a pass reads one state batch and writes another (works elementwise on arrays).
    The first fit (2026-12-05) counted only a batch larger than the cache so, and missed where a state batch is the
    cache's size: ``lockwood_si`` at 15 qubits and 8 samples on the torch program, estimated 53.5 ms, measured 73.6
    (1.23x the kernel's time; README, "Rollout-sized calls by a cost model")."""
    return amplitudes * 8 >= CACHE_BYTES


@dataclass(frozen=True)
class CallModel:
    """Seconds of one forward + backward call (complex64): on the torch program ``node_s`` per node of its autograd
    graph (:meth:`qrl.backends.torch.TorchStatevector.autograd_nodes`: an operation of the forward and one or more of
    the backward, microseconds each whatever the batch) and ``torch_pass_s[0]`` per amplitude of the state batch and
    pass (:meth:`~qrl.backends.torch.TorchStatevector.passes`) while the state batch is within the cache,
    ``torch_pass_s[1]`` beyond (:func:`beyond_cache`); on the kernel ``kernel_pass_s[w]`` per amplitude of one vector
    of ``w`` samples and pass (a call of 1-4 samples computes one vector of 4, 5-8 one of 8, more one of 16 per 16
    samples; its passes the mean of its forward's and its backward's, which group runs differently:
    :meth:`~qrl.backends.torch.TorchStatevector.native_pass_counts`), its rotations :data:`KERNEL_ROTATION_PASSES` of
    a pass each."""

    node_s: float = 9.7e-6
    torch_pass_s: tuple[float, float] = (6.7e-9, 8.1e-9)
    kernel_pass_s: dict[int, float] = field(default_factory=lambda: {4: 8.9e-9, 8: 9.6e-9, 16: 13e-9})

    def torch_seconds(self, nodes: int, passes: int, n_qubits: int, batch: int) -> float:
        """A call of ``batch`` samples on a torch program of ``passes`` passes and ``nodes`` nodes."""
        amplitudes = batch * 2**n_qubits
        return self.node_s * nodes + self.torch_pass_s[beyond_cache(amplitudes)] * passes * amplitudes

    def kernel_seconds(self, passes: tuple[int, int], rotations: int, n_qubits: int, batch: int) -> float:
        """A call of ``batch`` samples on a kernel program of ``passes`` (forward, backward) and ``rotations``."""
        width = vector_width(batch)
        work = sum(passes) / 2 + KERNEL_ROTATION_PASSES * rotations
        return self.kernel_pass_s[width] * (padded(batch) // width) * 2**n_qubits * work

    def kernel_faster(self, nodes: int, torch_passes: int, kernel_passes: tuple[int, int], rotations: int,
                      n_qubits: int, batch: int, gradient: bool = True) -> bool:
        """Whether a call of ``batch`` samples is estimated no slower on the kernel than on the torch program (above
        :data:`CALL_MODEL_MAX_QUBITS` qubits, the torch program's time times :func:`large_state_factor`, or for a call
        without a gradient, ``gradient`` false, times :data:`FORWARD_STATE_FACTOR`)."""
        torch_s = self.torch_seconds(nodes, torch_passes, n_qubits, batch)
        factor = 1.0
        if n_qubits > CALL_MODEL_MAX_QUBITS:
            factor = large_state_factor(batch * 2**n_qubits) if gradient else FORWARD_STATE_FACTOR
        return self.kernel_seconds(kernel_passes, rotations, n_qubits, batch) <= factor * torch_s

    def to_json(self) -> dict:
        return {"node_s": self.node_s, "torch_pass_s": list(self.torch_pass_s),
                "kernel_pass_s": {str(w): s for w, s in self.kernel_pass_s.items()}}

    @classmethod
    def from_json(cls, data) -> CallModel | None:
        """The model stored as :meth:`to_json` wrote it; ``None`` for anything else (a file edited by hand)."""
        try:
            model = cls(float(data["node_s"]), (float(data["torch_pass_s"][0]), float(data["torch_pass_s"][1])),
                        {w: float(data["kernel_pass_s"][str(w)]) for w in WIDTHS})
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        numbers = (model.node_s, *model.torch_pass_s, *model.kernel_pass_s.values())
        return model if all(np.isfinite(x) and x > 0 for x in numbers) else None


LARGE_STATE_FACTOR = (1.01, 0.04)
"""``(factor at a 64 MiB state batch, more per doubling of it)``: :func:`large_state_factor`."""


FORWARD_STATE_FACTOR = 0.91
"""Above :data:`CALL_MODEL_MAX_QUBITS` qubits, a call without a gradient (a rollout's) is estimated no slower on the
kernel where its forward + backward estimate is at most this many times the torch program's: neither's backward
runs, so :func:`large_state_factor` (the torch program's adjoint method and faulted temporaries) does not apply.
Measured over estimated, 16 calls without a gradient (8 circuits at 20 and 22 qubits and 8 samples, two at 20 and 4;
2026-12-06, with the heap pad): the torch program 0.17-0.36 of its estimate, the kernel 0.25-0.32; this is the ratio
of their geometric means (0.241 / 0.278), and takes the faster program in all 16, where ``large_state_factor`` took
the kernel for Meyer et al.'s circuit at 22 qubits, 2.10x slower (README, "The cost model above 18 qubits, refitted
with the pad"; ``bench.model_ratios`` recomputes the ratios). Timed again once runs without autograd wrote into reused
buffers (the torch program 0.17-0.31 of its estimate, the kernel 0.23-0.34): it still takes the faster program in all
16, where their new ratio, 0.82, would miss ``chen_vqdqn`` at 22 qubits (1.24x); kept (README, "Reused buffers for
runs without autograd"). 0.91 since the model was fitted over two days (the same 16 calls: the torch program 0.17-0.38
of its estimate, the kernel 0.25-0.32, 0.251 / 0.276; README, "The cost model fitted over two days")."""


def large_state_factor(amplitudes: int) -> float:
    """How many times its estimate a forward + backward of the torch program takes on a state batch of ``amplitudes``
    complex64 numbers above the sizes the model was fitted at (:data:`CALL_MODEL_MAX_QUBITS`): from a few hundred MiB
    of kept states it takes the adjoint method, three passes for one. Fitted to ``hsiao``, Meyer et al.'s circuit and
    ``chen_vqdqn`` at 8 samples and 20, 22 and 24 qubits (``qrl bench calls``, ``calls-20261206-082018.json``), measured
    over estimated: 1.32, 1.09, 1.37; 0.84, 0.90, 1.07; 0.86, 0.95, 1.00 (64 MiB, 256 MiB, 1 GiB); at least 1.
    Refitted each time the torch program's large temporaries changed: (2.17, 0.44) when glibc mapped and faulted in
    each afresh (2026-12-05); (1.04, 0.46) with a 1 GiB heap pad (:data:`qrl.malloc.TOP_PAD`), (1.08, 0.47) with 512
    MiB, where Meyer et al.'s at 22 qubits still took 1.95x its estimate; (0.85, 0.22) since runs without autograd
    write into reused buffers (2026-12-06, :class:`qrl.simulator.gates.StateBuffers`); (0.72, 0.27) since the adjoint
    method's overlaps conjugate no state batch (:func:`qrl.simulator.gates.chunk_overlap`; fitted at 20 and 22 qubits
    alone, (0.82, 0.07), it would have sent ``chen_vqdqn`` at 24 qubits and 6 samples to the torch program, which ran
    it 1.07x slower than the kernel); (0.97, 0.04) since runs without autograd keep their buffers from call to call
    (:class:`qrl.simulator.gates.BufferPool`), a matrix per sample times its rows runs per sample and the readout
    reads in chunks of samples (before: ``calls-20261206-055132.json``, 0.85, 1.05, 3.25; 0.85, 0.93, 1.31; 0.89,
    0.94, 1.24); (1.01, 0.04) on the same calls once the model was fitted over two days (:data:`DEFAULT_CALL_MODEL`; its
    torch program's cost per pass beyond the cache 4% lower). The kernel's estimates held throughout (0.77-1.04 of its
    times)."""
    at_64_mib, per_doubling = LARGE_STATE_FACTOR
    return max(1.0, at_64_mib + per_doubling * (float(np.log2(amplitudes * 8 / 2**20)) - 6))


DEFAULT_CALL_MODEL = CallModel()
"""The model where none is stored: the fit of ``qrl bench calls`` to 9 circuits at 12-16 qubits and 1, 4, 8 and 16
samples on this 2-core machine, timed on two days (``calls-20261205-112331.json`` and ``calls-20261206-231055.json``,
fitted together by ``--rows``; README, "The cost model fitted over two days"), to two digits. The VM's build changed
between them and with it the torch program's cost per node (8.1 and 13.2 us fitted to each day alone) while the costs
per pass held (within 10%): fitted to the first day alone (8.1 us per node, until 2026-12-06), the model missed 6 of
the 180 calls on the second (worst 1.50x); fitted to both, 3 of 360 (worst 1.32x)."""


def check_fit_points(points: list[tuple[int, int]]) -> None:
    """Refuse calls at these ``(qubits, batch)`` points where they cannot tell the model's constants apart: a fit needs
    state batches within and beyond the cache, and batches of every vector width."""
    beyond = [beyond_cache(b * 2**n) for n, b in points]
    widths = {vector_width(b) for _, b in points}
    missing = [what for what, has in (("calls whose state batch fits the cache", not all(beyond)),
                                      ("calls whose state batch exceeds it", any(beyond)),
                                      *((f"batches of {w} samples' vectors", w in widths) for w in WIDTHS)) if not has]
    if missing:
        raise QRLError(f"fitting the call model needs {', '.join(missing)} (cache {CACHE_BYTES // 2**20} MiB); got "
                       f"{len(points)} calls; try --qubits 12 13 14 15 16 --batches 1 4 8 16")


def fit_call_model(rows: list[dict]) -> CallModel:
    """The model fitted to measured calls (``rows``: ``qubits``, ``batch``, ``nodes``, ``torch_passes``,
    ``kernel_pass_counts`` (forward, backward), ``rotations``, ``torch_s``, ``kernel_s``), minimizing the relative
    errors: non-negative least squares for the torch program's three constants, one least-squares constant per kernel
    width."""
    from scipy.optimize import nnls

    amplitudes = np.array([r["batch"] * 2 ** r["qubits"] for r in rows], dtype=float)
    beyond = beyond_cache(amplitudes)
    passes = np.array([r["torch_passes"] for r in rows], dtype=float) * amplitudes
    columns = np.stack([[r["nodes"] for r in rows], passes * ~beyond, passes * beyond], axis=1)
    seconds = np.array([r["torch_s"] for r in rows], dtype=float)
    widths = [vector_width(r["batch"]) for r in rows]
    check_fit_points([(r["qubits"], r["batch"]) for r in rows])
    torch_fit, _ = nnls(columns / seconds[:, None], np.ones(len(rows)))
    kernel = {}
    for w in WIDTHS:
        mine = [r for r, rw in zip(rows, widths, strict=True) if rw == w]
        work = np.array([CallModel(kernel_pass_s={w: 1.0}).kernel_seconds(r["kernel_pass_counts"], r["rotations"],
                                                                         r["qubits"], r["batch"]) for r in mine])
        ratio = work / np.array([r["kernel_s"] for r in mine])
        kernel[w] = float(ratio.sum() / (ratio**2).sum())
    model = CallModel.from_json({"node_s": torch_fit[0], "torch_pass_s": torch_fit[1:].tolist(),
                                 "kernel_pass_s": {str(w): s for w, s in kernel.items()}})
    if model is None:
        raise QRLError(f"the call model's fit gave a constant of zero (torch: {torch_fit.tolist()}): the calls do not "
                       f"tell the costs apart; try more circuits, sizes or batches")
    return model
