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


@pytest.fixture
def train_cli(tmp_path):
    """``qrl train AGENT`` of a tiny run (300 steps, 2 circuit layers, into ``tmp_path``) with more ``--set``
    items; returns the run folder once the command has exited with 0."""

    def run(agent: str, env: str, seed: int, *sets: str) -> Path:
        from qrl.cli import main

        args = ["train", "--agent", agent, "--env", env, "--steps", "300", "--seed", str(seed), "--out", str(tmp_path),
                "--no-progress"]
        for item in (*sets, "policy_kwargs.n_layers=2"):
            args += ["--set", item]
        assert main(args) == 0
        (run_dir,) = tmp_path.iterdir()
        return run_dir

    return run
