"""Shared fixtures. Tests run on CPU with one thread (``import qrl`` sets it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import qrl  # noqa: F401  (one thread for torch and OpenMP)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a fresh ``python`` subprocess that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
