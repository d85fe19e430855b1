"""One thread by default: small circuits are slower with more.

Measured on a 2-core machine (REFERENCES.md): Lightning with default OpenMP threads runs 4-qubit
circuits 6-40x slower than with one thread, and torch's intra-op threads add overhead at QRL batch
sizes. OpenMP reads ``OMP_NUM_THREADS`` when its runtime first starts, so :func:`limit_threads` sets it
at ``import qrl`` (before Lightning's library is loaded), unless the user set it.
"""

from __future__ import annotations

import os


def limit_threads(n: int | None = None) -> None:
    """Use ``n`` threads for torch and OpenMP (default: ``QRL_NUM_THREADS`` or 1)."""
    if n is None:
        n = int(os.environ.get("QRL_NUM_THREADS", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import torch

    torch.set_num_threads(n)
