"""Where the torch path's GPU time goes (issue 15): autograd vs the adjoint program by size, and the top CUDA
kernels of one call. Run on a machine with a CUDA GPU: python3 tests/gpu/profile.py (CPU tensors elsewhere)."""

from __future__ import annotations

import statistics
import time

import torch

from qrl.backends.torch import TorchStatevector
from qrl.circuits import CircuitSpec
from qrl.nn import VQC

PLACE = "cuda" if torch.cuda.is_available() else "cpu"
SIZES = ((16, 64), (20, 64), (22, 64)) if PLACE == "cuda" else ((8, 8),)


def sync() -> None:
    if PLACE == "cuda":
        torch.cuda.synchronize()


def module(n: int, program: str | None) -> VQC:
    spec = CircuitSpec(n_qubits=n, n_layers=5, n_inputs=n, n_outputs=n)
    vqc = VQC(spec, device="torch", seed=0)
    if program:
        vqc.use_backend(TorchStatevector(spec, program))
    return vqc.to(PLACE)


def step(vqc: VQC, x: torch.Tensor) -> None:
    vqc.zero_grad(set_to_none=True)
    vqc(x).sum().backward()
    sync()


def timing(vqc: VQC, x: torch.Tensor) -> tuple[float, float]:
    if PLACE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    step(vqc, x)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        step(vqc, x)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if PLACE == "cuda" else 0.0
    return statistics.median(times), peak


def main() -> None:
    print(f"device {torch.cuda.get_device_name() if PLACE == 'cuda' else 'cpu'}, torch {torch.__version__}")
    for n, batch in SIZES:
        x = torch.randn(batch, n, device=PLACE)
        for program in ("wires", "adjoint", "fused", "fused-adjoint"):
            try:
                seconds, peak = timing(module(n, program), x)
                print(f"n={n} batch={batch} {program:14s} {seconds * 1e3:9.2f} ms  peak GPU {peak:6.2f} GiB",
                      flush=True)
            except Exception as exc:  # out of memory, say: print it and go on
                print(f"n={n} batch={batch} {program}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
    n, batch = SIZES[-1]
    x = torch.randn(batch, n, device=PLACE)
    for program in ("adjoint", "wires"):
        vqc = module(n, program)
        step(vqc, x)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if PLACE == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            step(vqc, x)
        key = "self_cuda_time_total" if PLACE == "cuda" else "self_cpu_time_total"
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60)
        except Exception:  # newer torch names the column device time
            table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=18, max_name_column_width=60)
        print(f"--- profile n={n} batch={batch} {program}\n{table}", flush=True)


if __name__ == "__main__":
    main()
