"""Should the torch path take a matrix per sample one sample at a time on a GPU too (issue 15)? On the CPU,
``qrl.simulator.gates.matmul_into`` does so for large products without autograd (the adjoint backward, rollouts),
measured 1.2-2.8x faster there; on a GPU (``PER_SAMPLE_DEVICES``) each sample would be a kernel launch. Times hea (5
layers) both ways, calls alternated, same values checked. python3 tests/gpu/persample.py OUT_DIR (JSON there)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from qrl.circuits import CircuitSpec
from qrl.nn import VQC
from qrl.simulator import gates

PLACE = "cuda" if torch.cuda.is_available() else "cpu"
GRAD = ((16, 64), (18, 64), (20, 64), (22, 64), (24, 64), (20, 1024), (26, 16)) if PLACE == "cuda" else ((12, 8),)
NO_GRAD = ((22, 16), (24, 16), (26, 16)) if PLACE == "cuda" else ((12, 8),)
ON = (*gates.PER_SAMPLE_DEVICES, PLACE)  # per sample here too, where the sizes say so
OFF = gates.PER_SAMPLE_DEVICES  # the default: the broadcast product off the CPU


def finish() -> None:
    if PLACE == "cuda":
        torch.cuda.synchronize()


def call(vqc: VQC, x: torch.Tensor, grad: bool) -> torch.Tensor:
    vqc.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(grad):
        out = vqc(x)
        if grad:
            out.sum().backward()
    finish()
    return out.detach()


def point(n: int, batch: int, grad: bool) -> dict:
    spec = CircuitSpec(n_qubits=n, n_layers=5, n_inputs=n, n_outputs=n)
    vqc = VQC(spec, device="torch", seed=0).to(PLACE)
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(n)).to(PLACE)
    times = {"per_sample": [], "broadcast": []}
    outs, peaks = {}, {}
    for round_ in range(4):  # the first round warms both up and is not timed
        for name, bound in (("per_sample", ON), ("broadcast", OFF)):
            gates.PER_SAMPLE_DEVICES = bound
            if PLACE == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            outs[name] = call(vqc, x, grad)
            if round_:
                times[name].append(time.perf_counter() - start)
            if PLACE == "cuda":
                peaks[name] = torch.cuda.max_memory_allocated() / 2**30
    gates.PER_SAMPLE_DEVICES = OFF
    row = {"n": n, "batch": batch, "grad": grad, "max_abs_diff": float((outs["per_sample"] - outs["broadcast"]).abs()
                                                                        .max())}
    row.update({f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()})
    row.update({f"{k}_peak_gib": v for k, v in peaks.items()})
    row["broadcast_over_per_sample"] = row["broadcast_ms"] / row["per_sample_ms"]
    del vqc, x, outs
    if PLACE == "cuda":
        torch.cuda.empty_cache()
    return row


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    device = torch.cuda.get_device_name() if PLACE == "cuda" else "cpu"
    print(f"device {device}, torch {torch.__version__}", flush=True)
    for sizes, grad in ((GRAD, True), (NO_GRAD, False)):
        for n, batch in sizes:
            try:
                rows.append(point(n, batch, grad))
                r = rows[-1]
                print(f"n={n} batch={batch} {'fwd+bwd' if grad else 'no-grad'}: per-sample {r['per_sample_ms']:.2f} ms,"
                      f" broadcast {r['broadcast_ms']:.2f} ms ({r['broadcast_over_per_sample']:.2f}x), "
                      f"diff {r['max_abs_diff']:.1e}", flush=True)
            except Exception as exc:  # out of memory, say: print it and go on
                gates.PER_SAMPLE_DEVICES = OFF
                print(f"n={n} batch={batch}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            (out / "persample.json").write_text(json.dumps({"kind": "persample", "device": device,
                                                            "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
