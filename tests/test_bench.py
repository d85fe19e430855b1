"""qrl bench: each benchmark runs on tiny sizes, writes JSON and prints its table (no timing asserts)."""

from __future__ import annotations

import json

from qrl import bench
from qrl.cli import main


def test_policy_bench_measures_every_path(tmp_path):
    result = bench.bench_policy(batches=(1, 3), n_layers=1, budget_s=0.0, include_slow=True)
    assert set(result["seconds"]) == {"update", "rollout"}
    for by_path in result["seconds"].values():
        assert {"mlp (SB3 MlpPolicy 64x64)", "qrl torch", "qrl lightning.qubit", "TorchLayer default.qubit backprop",
                "TorchLayer lightning.qubit adjoint"} == set(by_path)
        for by_batch in by_path.values():
            assert set(by_batch) == {"1", "3"} and all(t > 0 for t in by_batch.values())
    table = bench.format_policy(result)
    assert "update: qrl torch / MLP (goal <= 5)" in table
    assert "rollout: TorchLayer lightning.qubit adjoint / qrl torch" in table
    path = bench.save(result, tmp_path)
    saved = json.loads(path.read_text())
    assert saved["kind"] == "policy" and saved["machine"]["torch_threads"] == 1


def test_status_quo_layer_computes_the_same_circuit_as_qrl():
    # The baseline must be the same circuit, or the ratios compare different work.
    import torch

    from qrl.circuits import CircuitSpec
    from qrl.nn import VQC

    layer = bench._status_quo_layer("default.qubit", "backprop", n_layers=2, n_outputs=2).double()
    vqc = VQC(CircuitSpec(n_layers=2, n_outputs=2), device="torch").double()
    with torch.no_grad():
        vqc.weights.copy_(layer.layer.weights)
        vqc.input_scaling.copy_(layer.layer.scaling)
    x = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), vqc(x), atol=1e-10, rtol=0)


def test_train_bench_runs_both_policies():
    result = bench.bench_train(steps=256)
    assert set(result["results"]) == {"mlp", "vqc"}
    assert all(r["steps"] >= 256 and r["steps_per_s"] > 0 for r in result["results"].values())
    assert result["hyperparams"]["n_epochs"] == 20  # rl-zoo3's PPO CartPole settings for both
    assert "0.5" in bench.format_train(result)


def test_train_bench_dqn_and_cli(tmp_path, capsys):
    args = ["bench", "train", "--algos", "dqn", "--steps", "1100", "--out", str(tmp_path)]
    assert main(args) == 0  # learning_starts 1000 (rl-zoo3): 100 steps of training included
    (path,) = tmp_path.glob("train-*.json")
    (run,) = json.loads(path.read_text())["runs"]
    assert run["algo"] == "dqn" and set(run["results"]) == {"mlp", "vqc"}
    assert run["hyperparams"]["target_update_interval"] == 10  # rl-zoo3's DQN CartPole settings for both
    assert "| DQN, CartPole-v1" in capsys.readouterr().out


def test_scaling_bench_and_cli(tmp_path, capsys, monkeypatch):
    from qrl.backends import select

    crossovers = tmp_path / "crossovers.json"
    monkeypatch.setattr(select, "CROSSOVERS", crossovers)
    args = ["bench", "scaling", "--qubits", "2", "3", "--batch", "2", "--budget", "0", "--out", str(tmp_path)]
    assert main([*args, "--update-auto"]) == 0
    out = capsys.readouterr().out
    assert "| qubits |" in out and "fastest" in out
    (path,) = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    assert set(result["seconds"]) == {"torch", "lightning.qubit", "default.qubit"}
    assert set(result["fastest"]) == {"2", "3"}
    assert all(v > 0 for by_n in result["peak_rss_gb"].values() for v in by_n.values())
    assert result["state_mb"]["3"] == 2 * 8 * 2**3 / 2**20
    stored = json.loads(crossovers.read_text())
    assert stored["fastest"] == result["fastest"] and "--update-auto" in stored["command"]
    assert select.auto_table() == {int(n): b for n, b in result["fastest"].items()}
    select.auto_table.cache_clear()


def test_scaling_bench_times_both_torch_programs(tmp_path, capsys):
    args = ["bench", "scaling", "--qubits", "2", "--batch", "2", "--budget", "0", "--out", str(tmp_path),
            "--backends", "torch:dense", "torch:wires"]
    assert main(args) == 0
    (path,) = tmp_path.glob("scaling-*.json")
    assert set(json.loads(path.read_text())["seconds"]) == {"torch:dense", "torch:wires"}
    assert main([*args, "--update-auto"]) == 2  # device names only: refused before any work
    assert "--update-auto stores device names" in capsys.readouterr().err
    assert main(["bench", "scaling", "--qubits", "2", "--backends", "lightning.qubit:dense"]) == 2
    assert "torch backend only" in capsys.readouterr().err
