"""qrl.malloc: glibc's malloc thresholds fixed at ``import qrl``, unless the environment names its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qrl import malloc

REUSE = """
import resource, torch, qrl
big = torch.ones(5 * 2**20, dtype=torch.float64); del big  # 40 MiB: mapped, too large to move glibc's threshold
block = torch.ones(2 * 2**20, dtype=torch.float64); del block  # 16 MiB once: its pages faulted in
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = torch.ones(2 * 2**20, dtype=torch.float64); del block
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


class _Mallopt:
    def __init__(self, result: int = 1):
        self.calls, self.result = [], result

    def __call__(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.result


def test_the_thresholds_are_set_through_mallopt_unless_the_environment_names_its_own(monkeypatch):
    mallopt = _Mallopt()
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: type("Libc", (), {"mallopt": mallopt})())
    monkeypatch.setattr(malloc, "_glibc", lambda: True)
    monkeypatch.setattr(malloc.sys, "platform", "linux")
    for name in ("QRL_KEEP_MALLOC", *malloc._GLIBC_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    assert malloc.fix_malloc_thresholds() is True
    assert mallopt.calls == [(-3, 32 * 2**20), (-1, 2**30)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    for name in ("QRL_KEEP_MALLOC", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "1")
        assert malloc.fix_malloc_thresholds() is False and len(mallopt.calls) == 2, name
        monkeypatch.delenv(name)
    monkeypatch.setenv("QRL_KEEP_MALLOC", "0")  # 0: not kept
    assert malloc.fix_malloc_thresholds() is True and len(mallopt.calls) == 4
    monkeypatch.delenv("QRL_KEEP_MALLOC")
    mallopt.result = 0  # glibc refused the value
    assert malloc.fix_malloc_thresholds() is False
    monkeypatch.setattr(malloc, "_glibc", lambda: False)  # musl, or no libc at all
    assert malloc.fix_malloc_thresholds() is False and len(mallopt.calls) == 5


@pytest.mark.skipif(not sys.platform.startswith("linux") or not malloc._glibc(), reason="glibc's malloc only")
def test_after_import_qrl_a_16_mib_block_is_reused_from_the_heap():
    """With glibc's own adaptive thresholds a 16 MiB block after a 40 MiB one is mapped afresh on most allocations
    (measured 816 page faults per block of 4096 pages); with qrl's, it is reused from the heap (0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QRL_KEEP_MALLOC", *malloc._GLIBC_SETTINGS)}

    def faults(extra: dict) -> float:
        out = subprocess.run([sys.executable, "-c", REUSE], env={**env, **extra}, capture_output=True, text=True,
                             check=True).stdout
        return float(out.split()[-1])

    fixed, kept = faults({}), faults({"QRL_KEEP_MALLOC": "1"})
    assert fixed < 50 < 200 < kept, (fixed, kept)
