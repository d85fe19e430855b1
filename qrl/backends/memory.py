"""Memory of this machine, and the one formatter of byte counts in qrl's messages."""

from __future__ import annotations

import os

import torch


def physical_memory() -> int:
    """Physical memory in bytes (an upper bound on what a state vector can use)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def accelerator_memory(device: torch.device) -> int | None:
    """Total memory of a CUDA GPU in bytes (the same for every run on that GPU); ``None`` for other devices."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; physical memory where that cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return physical_memory()


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units with three significant digits, e.g. ``16 TiB``, ``1.5 GiB``."""
    for unit, size in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"
