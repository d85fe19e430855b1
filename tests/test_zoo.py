"""The agent presets are rl-zoo3 files: rl-zoo3's own trainer runs them with the dotted policy path."""

from __future__ import annotations

import subprocess

import pytest

from qrl.config import data_dir

rl_zoo3 = pytest.importorskip("rl_zoo3", reason="rl-zoo3 is not installed (pip install 'qrl[test]' installs it)")


@pytest.mark.parametrize(("algo", "agent", "env", "extra"), [
    ("ppo", "ppo-vqc", "CartPole-v1", []),  # normalize, lin_ schedules, policy_kwargs string
    ("td3", "td3-vqc", "Pendulum-v1", ["-params", "learning_starts:64"]),  # noise keys, train_freq [1, "episode"]
    ("dqn", "dqn-vqc", "CartPole-v1", ["-params", "learning_starts:64", "train_freq:32", "gradient_steps:4"]),
])
def test_rl_zoo3_trains_the_preset(tmp_path, python, subprocess_env, algo, agent, env, extra):
    conf = data_dir("agents") / f"{agent}.yaml"
    cmd = [python, "-m", "rl_zoo3.train", "--algo", algo, "--env", env, "-conf", str(conf), "-n", "256",
           "--seed", "0", "-f", str(tmp_path), "--eval-freq", "-1", *extra]
    subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    (zip_path,) = (tmp_path / algo).glob(f"{env}_1/{env}.zip")
    load = (f"from stable_baselines3 import {algo.upper()}; m = {algo.upper()}.load({str(zip_path)!r}, device='cpu'); "
            "print(type(m.policy).__module__, type(m.policy).__name__)")
    out = subprocess.run([python, "-c", load], capture_output=True, text=True, env=subprocess_env, timeout=300,
                         check=True).stdout.split()
    assert out[0].startswith("qrl.sb3") and out[1].startswith("VQC")
