"""glibc's malloc fixed at ``import qrl`` (Linux with glibc): blocks under 32 MiB from the heap, and a 512 MiB heap pad.

glibc adapts the size from which it maps a block afresh, and how much freed memory it keeps, to what the process
freed before: a torch program's temporaries were mapped anew and faulted back page by page, or not, depending on
what had run earlier in the process (14 qubits, 4 samples: 50 or 2,700 page faults, 12.5 or 16.9 ms). Blocks of 32
MiB and more (glibc's largest threshold) are mapped afresh unless the heap's top has room: :data:`TOP_PAD` gives it
room. ``QRL_KEEP_MALLOC=1``, or glibc's own ``MALLOC_*_`` / ``GLIBC_TUNABLES``, leave glibc as it is. README,
"glibc's malloc" and "A heap pad for large states".
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 * 2**20
"""Blocks of at least this many bytes are mapped afresh (glibc's largest ``M_MMAP_THRESHOLD`` on 64-bit systems): a
state batch of 32 MiB or more (16 qubits and 64 samples) still is, and is returned to the system when freed."""
TRIM_THRESHOLD = 2**30
"""Freed memory at the top of the heap kept for later blocks, up to this many bytes (``M_TRIM_THRESHOLD``)."""
TOP_PAD = 2**29
"""Each time the heap grows, it grows by this many bytes more (``M_TOP_PAD``; address space, resident only once
written), and a trim leaves this much at its top: a block of :data:`MMAP_THRESHOLD` or more that fits there is taken
from it instead of being mapped afresh, so the torch program's 64 MiB temporaries at 20 qubits and 8 samples are
reused, not faulted in page by page on every call. 1 GiB at first (2026-12-05): the forward + backward of ``hea`` at
20 qubits and 8 samples on the adjoint program then peaked at 1.14 GiB above the process's start (0.48 without a pad;
the issue's goal is under 1 GiB), 0.58-0.64 with 512 MiB (README, "A heap pad for large states")."""
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                   "GLIBC_TUNABLES")


def fix_malloc_thresholds() -> bool:
    """Set glibc's mmap and trim thresholds and its heap's pad (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`,
    :data:`TOP_PAD`) for this process, unless ``QRL_KEEP_MALLOC`` is set (other than ``0``), the environment sets
    glibc's own (``MALLOC_*_``, ``GLIBC_TUNABLES``) or this is not Linux with glibc; whether they were set."""
    if not sys.platform.startswith("linux") or not _glibc():
        return False
    if os.environ.get("QRL_KEEP_MALLOC", "0") not in ("", "0") or any(name in os.environ for name in _GLIBC_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                                 (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                                                 (_M_TOP_PAD, TOP_PAD)))


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False
