"""qrl bench: each benchmark runs on tiny sizes, writes JSON and prints its table (no timing asserts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qrl import bench
from qrl.cli import main
from qrl.errors import QRLError

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "runs/reference/bench"  # the README's benchmark results


def _readme() -> str:
    """The README with its whitespace runs as single spaces (a quoted sentence may wrap anywhere)."""
    return " ".join((ROOT / "README.md").read_text().split())


def _ms(seconds: float) -> str:
    """Milliseconds as the README's tables print them: whole from a second on, else to one decimal."""
    return f"{seconds * 1e3:.0f}" if seconds >= 1 else f"{seconds * 1e3:.1f}"


def _auto_over_fastest(seconds: dict, n: str) -> float:
    """A ``qrl bench scaling`` result's ``auto`` time at ``n`` qubits over the fastest backend's there."""
    return seconds["auto"][n] / min(v[n] for v in seconds.values())


def _scaling_run(stamp: str) -> dict:
    """The committed ``qrl bench scaling`` result of 2026-12-06 with this time stamp (``HHMMSS``)."""
    return bench.load(COMMITTED / f"scaling-20261206-{stamp}.json")


def _scaling_seconds(stamp: str) -> dict:
    """Its ``seconds`` (backend -> qubits -> seconds)."""
    return _scaling_run(stamp)["seconds"]


def _shapes_auto_ratios(stamps) -> dict:
    """Auto over the fastest per ``(circuit, batch, qubits)`` in these ``qrl bench scaling`` runs of a users' shape
    (``--backends auto torch torch:native --qubits 4 6 8 10 12 14 16``)."""
    ratios = {}
    for stamp in stamps:
        run = _scaling_run(stamp)
        assert run["backends"] == ["auto", "torch", "torch:native"] and run["qubits"] == [4, 6, 8, 10, 12, 14, 16]
        for n in map(str, run["qubits"]):
            ratios[(run["circuit"].partition(":")[2], run["batch"], n)] = _auto_over_fastest(run["seconds"], n)
    return ratios


def _day(*stamps: str) -> tuple[str, ...]:
    """Time stamps of 2026-12-06 (``HHMMSS``) as the JSON files name them."""
    return tuple(f"20261206-{stamp}" for stamp in stamps)


def test_policy_bench_measures_every_path(tmp_path):
    result = bench.bench_policy(batches=(1, 3), n_layers=1, budget_s=0.0, include_slow=True)
    assert set(result["seconds"]) == {"update", "rollout"}
    for by_path in result["seconds"].values():
        assert {"mlp (SB3 MlpPolicy 64x64)", "qrl auto", "qrl torch", "qrl torch:native", "qrl lightning.qubit",
                "TorchLayer default.qubit backprop", "TorchLayer lightning.qubit adjoint"} == set(by_path)
        for by_batch in by_path.values():
            assert set(by_batch) == {"1", "3"} and all(t > 0 for t in by_batch.values())
    table = bench.format_policy(result)
    assert "update: qrl torch / MLP (issue 3's goal <= 5)" in table
    assert "update: qrl torch:native / MLP (issue 15's goal <= 1.5 at B=64)" in table
    assert "update: qrl auto / MLP (issue 15's goal <= 1.5 at B=64)" in table
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
    assert "x (goal >= 0.9) |" in bench.format_train(result)  # issue 15's PPO goal


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
    args = ["bench", "scaling", "--qubits", "2", "3", "--batch", "3", "--budget", "0", "--out", str(tmp_path)]
    assert main([*args, "--update-auto"]) == 0
    out = capsys.readouterr().out
    assert "| qubits |" in out and "fastest" in out
    (path,) = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    assert set(result["seconds"]) == {"torch", "lightning.qubit", "default.qubit"}
    assert set(result["fastest"]) == {"2", "3"}
    assert all(v > 0 for by_n in result["peak_rss_gb"].values() for v in by_n.values())
    assert result["state_mb"]["3"] == 3 * 8 * 2**3 / 2**20
    stored = json.loads(crossovers.read_text())  # batch 3: rollout-sized, stored apart from the main table
    assert stored["small_batch"]["fastest"] == result["fastest"] and "--update-auto" in stored["small_batch"]["command"]
    assert "fastest" not in stored and "calls of at most 16 samples" in out
    assert select.small_batch_table() == {int(n): b for n, b in result["fastest"].items()}
    assert select.auto_table() == {}
    tiny = ["bench", "scaling", "--qubits", "2", "--batch", "1", "--budget", "0", "--out", str(tmp_path / "tiny"),
            "--backends", "torch", "--update-auto"]
    assert main(tiny) == 0 and "calls of at most 2 samples" in capsys.readouterr().out  # batch 1: a table of its own
    assert select.tiny_batch_table() == {2: "torch"} and len(select.small_batch_table()) == 2
    for table in (select.auto_table, select.small_batch_table, select.tiny_batch_table):
        table.cache_clear()


def test_scaling_bench_times_both_torch_programs(tmp_path, capsys):
    args = ["bench", "scaling", "--qubits", "2", "--batch", "2", "--budget", "0", "--out", str(tmp_path),
            "--backends", "torch:dense", "torch:wires"]
    assert main(args) == 0
    (path,) = tmp_path.glob("scaling-*.json")
    assert set(json.loads(path.read_text())["seconds"]) == {"torch:dense", "torch:wires"}
    assert main([*args, "--update-auto"]) == 2  # device names only: refused before any work
    assert "--update-auto stores device names" in capsys.readouterr().err
    native = ["bench", "scaling", "--qubits", "2", "--batch", "2", "--budget", "0", "--backends", "torch",
              "torch:native", "torch:wires", "--update-auto"]
    assert main(native) == 2  # of the torch programs, only the native kernel is a choice of auto's
    assert "(CPU calls; of the torch programs, torch:native)" in capsys.readouterr().err
    assert main(["bench", "scaling", "--qubits", "2", "--backends", "default.qubit:dense"]) == 2
    assert "torch backend only" in capsys.readouterr().err
    assert main(["bench", "scaling", "--qubits", "2", "--backends", "lightning.qubit:dense"]) == 2
    assert "unknown Lightning variant 'lightning.qubit:dense'" in capsys.readouterr().err


def test_scaling_bench_times_forwards_without_a_gradient(tmp_path, capsys):
    """--no-grad: a rollout's call, a forward under no_grad (no passes: they count forward + backward)."""
    import torch

    from qrl.circuits import CircuitSpec

    args = ["bench", "scaling", "--qubits", "3", "--batch", "4", "--budget", "0", "--out", str(tmp_path),
            "--backends", "torch", "torch:native", "--no-grad"]
    assert main(args) == 0
    assert "torch (ms, forward without gradient)" in capsys.readouterr().out
    (path,) = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    assert result["no_grad"] is True and result["passes"] == {"torch": {}, "torch:native": {}}
    vqc = bench._scaling_vqc(CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=3), "torch")
    grads = []
    vqc.register_forward_hook(lambda module, inputs, out: grads.append(out.requires_grad))
    bench._forward(vqc, torch.zeros(4, 3))()
    assert grads == [False] and all(p.grad is None for p in vqc.parameters())
    assert main([*args, "--update-auto"]) == 2 and "got --no-grad" in capsys.readouterr().err


def test_scaling_bench_against_a_baseline_program(tmp_path, capsys):
    args = ["bench", "scaling", "--qubits", "9", "--batch", "2", "--budget", "0", "--out", str(tmp_path),
            "--backends", "torch", "torch:plain", "--ansatz", "strongly_entangling"]
    assert main([*args, "--baseline", "torch:plain"]) == 0
    out = capsys.readouterr().out
    (path,) = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    assert result["ansatz"] == "strongly_entangling"
    # chunk products and one gather per CNOT ring: fewer passes than one per wire and per CNOT
    assert result["passes"]["torch"]["9"] < result["passes"]["torch:plain"]["9"] / 3
    ratio = result["seconds"]["torch:plain"]["9"] / result["seconds"]["torch"]["9"]
    assert "torch:plain / torch |" in out and f"| {ratio:.2f}x |" in out
    assert main([*args, "--baseline", "lightning.qubit"]) == 2  # not among the backends: refused before any work
    assert "--baseline must be one of --backends" in capsys.readouterr().err
    assert main([*args[:-2], "--update-auto", "--ansatz", "strongly_entangling"]) == 2
    assert "--update-auto measures device='auto' on the hea circuit" in capsys.readouterr().err


def test_scaling_bench_times_a_circuit_of_the_library(tmp_path, capsys):
    """--circuit: the library's circuit as meyer_paths builds it, on every backend; auto against the others."""
    args = ["bench", "scaling", "--qubits", "10", "--batch", "8", "--budget", "0", "--out", str(tmp_path),
            "--backends", "auto", "torch", "torch:native", "--circuit", "meyer_iqp", "--layers", "2"]
    assert main([*args, "--baseline", "auto"]) == 0
    (path,) = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    assert result["circuit"] == "meyer_iqp" and result["n_layers"] == 2
    qrl = bench.meyer_paths(10, 2, include_slow=False)["qrl"]
    assert result["passes"]["torch"]["10"] == bench.PASSES_PER_FORWARD_PASS * qrl.backend.passes()
    assert "auto / torch:native |" in capsys.readouterr().out
    assert main([*args, "--update-auto"]) == 2  # auto's crossovers are hea's
    assert "leave out --ansatz, --circuit and --layers" in capsys.readouterr().err
    assert main([*args[:-4], "--circuit", "no_such_circuit"]) == 2
    assert "no_such_circuit" in capsys.readouterr().err


def test_median_times_interleaves_the_paths():
    calls: list[str] = []
    secs = bench._median_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, min_repeats=3,
                               budget_s=0.0)
    assert calls == ["a", "b"] * 4  # one warm-up each, then rounds of both
    assert set(secs) == {"a", "b"} and all(t >= 0 for t in secs.values())


def test_flexibility_pair_is_one_circuit_twice():
    # The user's copy must compute what the built-in program computes, or the ratio compares different work.
    import torch

    builtin, user = (m.double() for m in bench.flexibility_pair(n_layers=2))
    assert set(user.circuit_weights) == {"weights", "input_scaling"}
    x = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(user(x), builtin(x), atol=1e-10, rtol=0)


def test_meyer_paths_compute_the_same_function():
    import torch

    paths = bench.meyer_paths(3, n_layers=2)
    assert set(paths) == set(bench.MEYER_PATHS)
    x = torch.randn(4, 3)
    outputs, input_grads = [], []
    for module in paths.values():
        xi = x.clone().requires_grad_(True)
        out = module(xi)
        out.sum().backward()
        outputs.append(out.detach())
        input_grads.append(xi.grad)
    for out, grad in zip(outputs[1:], input_grads[1:], strict=True):
        torch.testing.assert_close(out, outputs[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(grad, input_grads[0], atol=1e-5, rtol=0)
    assert set(bench.meyer_paths(3, n_layers=1, include_slow=False)) == {"qrl", "qrl-pairs", "qrl-native",
                                                                          "qrl-lightning", "default.qubit"}


def test_circuits_bench_cli(tmp_path, capsys):
    args = ["bench", "circuits", "--batches", "1", "2", "--meyer-qubits", "3", "--batch", "2", "--budget", "0",
            "--min-repeats", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "goal: user / built-in <= 1.3" in out and "| batch | mode | built-in (ms) | user (ms) |" in out
    assert ("| qubits | qrl torch (ms) | qrl torch, blocks one by one (ms) | qrl torch:native (ms) | "
            "qrl lightning.qubit (native) (ms) | TorchLayer default.qubit backprop (ms) |" in out)
    assert ("| lightning.qubit / qrl-lightning | default.qubit / qrl-native | lightning.qubit / qrl-native |"
            in out)
    (path,) = tmp_path.glob("circuits-*.json")
    result = json.loads(path.read_text())
    assert result["kind"] == "circuits" and result["machine"]["torch_threads"] == 1
    flex = result["flexibility"]
    assert flex["goal_ratio"] == 1.3
    assert [(r["batch"], r["mode"]) for r in flex["rows"]] == [(b, m) for b in (1, 2) for m in ("rollout", "update")]
    for r in flex["rows"]:
        assert all(isinstance(r[k], float) and r[k] > 0 for k in ("builtin_s", "user_s", "ratio"))
        assert r["meets_goal"] == (r["ratio"] <= 1.3)
    (row,) = result["meyer"]["rows"]
    assert row["qubits"] == 3
    assert set(row["seconds"]) == {"qrl", "qrl-pairs", "qrl-native", "qrl-lightning", "default.qubit",
                                   "lightning.qubit"}
    ratios = [row["default.qubit_over_qrl"], row["lightning.qubit_over_qrl"], row["lightning.qubit_over_qrl-lightning"],
              row["default.qubit_over_qrl-native"], row["lightning.qubit_over_qrl-native"]]
    assert all(isinstance(r, float) and r > 0 for r in ratios)


def test_circuits_bench_skip_slow_and_refusals(tmp_path, capsys):
    result = bench.bench_meyer((2,), batch=1, n_layers=1, budget_s=0.0, min_repeats=1, include_slow=False)
    (row,) = result["rows"]
    assert set(row["seconds"]) == {"qrl", "qrl-pairs", "qrl-native", "qrl-lightning", "default.qubit"}
    assert "lightning.qubit_over_qrl" not in row and "lightning.qubit_over_qrl-native" not in row
    assert bench.NATIVE_RATIO not in row
    table = bench.format_circuits({"flexibility": {"goal_ratio": 1.3, "n_qubits": 4, "n_layers": 5, "rows": []},
                                   "meyer": result})
    header, row = (line.strip("|").split(" | ") for line in (table.splitlines()[-3], table.splitlines()[-1]))
    assert row[header.index("lightning.qubit / qrl")].strip() == "-"  # no Lightning ratio
    assert "lightning.qubit / qrl-native" not in header and row[-1].strip().endswith("x")  # default.qubit / native
    assert main(["bench", "circuits", "--batch", "0", "--out", str(tmp_path)]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["bench", "circuits", "--min-repeats", "0", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("*.json"))


def test_gpu_options_are_refused_where_torch_sees_no_gpu(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for backends, message in ((["torch@cuda"], "torch@cuda needs a CUDA GPU"),
                              (["auto@cuda"], "auto@cuda needs a CUDA GPU"),
                              (["lightning.qubit@cuda"], "expected @cuda (or @cuda:N) after a torch backend or auto"),
                              (["torch@gpu"], "expected @cuda (or @cuda:N) after a torch backend")):
        assert main(["bench", "scaling", "--qubits", "2", "--backends", *backends, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    assert main(["bench", "scaling", "--qubits", "2", "--backends", "torch@cuda", "--update-auto"]) == 2
    assert "leave out torch:dense / torch:wires / torch@cuda" in capsys.readouterr().err
    assert main(["bench", "train", "--algos", "ppo", "--steps", "64", "--sb3-device", "cuda", "--out",
                 str(tmp_path)]) == 2
    assert "expected --sb3-device cpu, or cuda on a machine with a CUDA GPU" in capsys.readouterr().err
    assert main(["bench", "train", "--algos", "ppo", "--steps", "64", "--n-qubits", "0", "--out", str(tmp_path)]) == 2
    assert "expected --n-qubits as a positive integer; got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_train_bench_with_more_qubits_names_them(tmp_path, capsys):
    assert main(["bench", "train", "--algos", "ppo", "--steps", "256", "--n-qubits", "6", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("train-*.json")
    (run,) = json.loads(path.read_text())["runs"]
    assert run["n_qubits"] == 6 and run["sb3_device"] == "cpu" and "gpu" not in run
    assert "| PPO, CartPole-v1 (256; 6 qubits; auto) |" in capsys.readouterr().out  # the default device, named


def gpu_rows() -> list[str]:
    """The README's GPU table rows, from the committed `qrl bench scaling ... torch@cuda` results."""
    rows = []
    for path in sorted(COMMITTED.glob("scaling-*.json")):
        r = json.loads(path.read_text())
        if "gpu" not in r or "torch" in r["seconds"]:  # the GPU-only tables (not the CPU comparison)
            continue
        for n in r["qubits"]:
            k = str(n)
            s, p = r["seconds"]["torch@cuda"][k], r["passes"]["torch@cuda"][k]
            rows.append((n, r["batch"], f"| {n} | {r['batch']} | {r['state_mb'][k] / 1024:.3g} | {bench._ms(s)} | "
                                        f"{r['peak_gpu_gb']['torch@cuda'][k]:.1f} | {p} | "
                                        f"{p * r['copy_s'][f'{k}@cuda'] / s:.0%} |"))
    return [row for *_, row in sorted(rows)]


def test_the_readme_gpu_table_is_the_committed_measurement():
    readme = (ROOT / "README.md").read_text()
    rows = gpu_rows()
    assert len(rows) == 14 and "\n".join(rows) in readme  # 16-26 qubits, batch 16-1024, in order
    cpu = bench.load(COMMITTED / "scaling-20261204-153836.json")
    table = bench.format_scaling(cpu, "torch")  # the CPU comparison: GPU memory, copy bound per device, ratios
    assert "torch@cuda peak GPU (GiB)" in table and "| 51.63x |" in table and "| 59.28x |" in table
    assert cpu["gpu"] == "NVIDIA H200" and "(52x)" in readme and "(59x)" in readme
    trains = {f: json.loads((COMMITTED / f"train-20261204-{f}.json").read_text())["runs"][0]
              for f in ("153852", "153908", "153934", "154105")}
    speeds = {f: round(r["results"]["vqc"]["steps_per_s"], 1) for f, r in trains.items()}
    assert speeds == {"153852": 1209.3, "153908": 2183.4, "153934": 222.3, "154105": 3.4}
    assert "222 steps/s on the GPU against 3.4 on the CPU with 16 threads (65x" in readme
    assert "1,209 steps/s against 2,183 on one CPU thread" in readme


def test_the_readme_gpu_profile_is_the_committed_one():
    profile = (COMMITTED / "gpu-profile-20261204-h200.txt").read_text()
    times = {(m[0], m[1]): float(m[2]) for m in re.findall(r"n=(\d+) batch=64 (\S+)\s+([\d.]+) ms", profile)}
    assert round(times["20", "wires"]) == 116 and round(times["20", "adjoint"]) == 143
    assert round(times["22", "wires"]) == 575 and round(times["22", "adjoint"]) == 705
    bmm = re.search(r"--- profile n=22 batch=64 adjoint.*?aten::bmm(?:\s+\S+){5}\s+\S+\s+([\d.]+)%", profile, re.S)
    assert bmm and round(float(bmm.group(1))) == 79
    assert "116 against 143 ms at 20 qubits and 575 against 705 ms at 22" in (ROOT / "README.md").read_text()


def test_the_readme_20_qubit_auto_point_is_the_committed_one():
    result = bench.load(COMMITTED / "scaling-20261204-155959.json")
    seconds = {b: round(t["20"]) for b, t in result["seconds"].items()}
    assert result["batch"] == 64 and seconds == {"torch": 91, "lightning.qubit": 64}
    assert result["fastest"]["20"] == "lightning.qubit"
    readme = (ROOT / "README.md").read_text()
    assert "| 20, 64 | 91.0 | 64.1 | 0.70x | - | lightning.qubit |" in readme


def test_the_readme_meyer_table_is_the_committed_measurement():
    readme = (ROOT / "README.md").read_text()
    runs = {f: bench.load(COMMITTED / f"circuits-20261204-{f}.json")["meyer"] for f in ("195155", "195230", "195305")}
    for r in runs["195155"]["rows"]:
        t = {k: f"{v * 1e3:,.0f}" if v >= 1 else f"{v * 1e3:.1f}" for k, v in r["seconds"].items()}  # ms
        row = (f"| {r['qubits']} | {t['qrl']} | {t['qrl-pairs']} | {t['qrl-lightning']} | "
               f"{t['default.qubit']} | {t['lightning.qubit']} | {r['qrl-pairs_over_qrl']:.2f}x | "
               f"{r['default.qubit_over_qrl']:.1f}x | {r['lightning.qubit_over_qrl']:.0f}x | "
               f"{r[bench.NATIVE_RATIO]:.1f}x |")
        assert row in readme, row
    ratios = {f: [round(r["default.qubit_over_qrl"], 1) for r in m["rows"]] for f, m in runs.items()}
    assert ratios == {"195155": [7.4, 15.3], "195230": [9.3, 12.5], "195305": [8.0, 13.0]}
    assert "7.4x, 9.3x and 8.0x" in readme and "15.3x, 12.5x and 13.0x" in " ".join(readme.split())
    (single,) = bench.load(COMMITTED / "circuits-20261204-195315.json")["meyer"]["rows"]
    assert round(single["seconds"]["qrl"] * 1e3, 1) == 2.8 and "(2.8 ms at batch 1" in readme


def test_the_readme_lightning_table_at_20_to_26_qubits_is_the_committed_measurement():
    readme = (ROOT / "README.md").read_text()
    for f, n, batch in (("182157", 22, 8), ("183109", 24, 8), ("184014", 26, 2), ("155959", 20, 64),
                        ("185524", 22, 64)):
        result = bench.load(COMMITTED / f"scaling-20261204-{f}.json")
        torch_s, light_s = (result["seconds"][b][str(n)] for b in ("torch", "lightning.qubit"))
        assert result["batch"] == batch
        row = f"| {n}, {batch} | {torch_s:.1f} | {light_s:.1f} | {light_s / torch_s:.2f}x |"
        assert row in readme, row


def test_the_readme_native_kernel_tables_are_the_committed_measurements():
    readme = (ROOT / "README.md").read_text()
    policy = bench.load(COMMITTED / "policy-20261204-215042.json")
    table = bench.format_policy(policy)
    for row in table.splitlines():
        if row.startswith(("| mlp", "| qrl torch |", "| qrl torch:native", "| update: qrl torch:native",
                           "| rollout: qrl torch:native")):
            assert row in readme, row
    update = policy["seconds"]["update"]
    assert round(update["qrl torch:native"]["64"] / update["mlp (SB3 MlpPolicy 64x64)"]["64"], 2) == 1.36
    earlier = bench.load(COMMITTED / "policy-20261204-205712.json")["seconds"]
    ratios = [earlier[m]["qrl torch:native"][b] / earlier[m]["mlp (SB3 MlpPolicy 64x64)"][b]
              for m in ("update", "rollout") for b in ("1", "8", "64", "256")]
    assert [f"{r:.2f}x" for r in ratios] == ["1.38x", "1.35x", "1.28x", "1.27x", "1.32x", "1.65x", "1.82x", "1.29x"]
    trains = {f: bench.load(COMMITTED / f"train-20261204-{f}.json")["runs"]
              for f in ("214935", "212005", "205809", "210209", "210223")}
    for row in bench.format_train(trains["214935"]).splitlines()[2:]:
        assert row in readme, row
    ppo, dqn = trains["214935"]
    assert [f"{r:.2f}x" for r in ppo["ratios"]] == ["0.94x", "0.90x", "0.95x", "0.93x", "0.90x"]
    assert "0.94x, 0.90x, 0.95x, 0.93x and 0.90x" in " ".join(readme.split())
    assert f"{min(dqn['ratios']):.2f}x-{max(dqn['ratios']):.2f}x" == "1.77x-1.88x" and "DQN 1.77x-1.88x" in readme
    ppo, dqn = trains["212005"]
    assert [f"{r:.2f}x" for r in ppo["ratios"]] == ["0.89x", "0.89x", "0.94x", "0.93x", "0.94x"]
    assert "0.89x, 0.89x, 0.94x, 0.93x and 0.94x" in " ".join(readme.split())
    assert f"{dqn['vqc_over_mlp']:.2f}x" == "1.80x"
    singles = [round(runs[0]["vqc_over_mlp"], 2) for f, runs in trains.items() if f not in ("214935", "212005")]
    assert singles == [0.88, 0.97, 0.89] and "0.88x, 0.97x and 0.89x" in " ".join(readme.split())
    assert all(r["vqc_device"] == "torch:native" for runs in trains.values() for r in runs)
    meyer = bench.load(COMMITTED / "circuits-20261204-205942.json")["meyer"]
    for r in meyer["rows"]:
        t = {k: f"{v * 1e3:,.0f}" if v >= 1 else f"{v * 1e3:.1f}" for k, v in r["seconds"].items()}  # ms
        row = (f"| {r['qubits']} | {t['qrl']} | {t['qrl-native']} | {t['default.qubit']} | {t['lightning.qubit']} | "
               f"{r['default.qubit_over_qrl']:.1f}x | {r['default.qubit_over_qrl-native']:.1f}x | "
               f"{r['lightning.qubit_over_qrl-native']:.0f}x |")
        assert row in readme, row
    assert round(meyer["rows"][0]["default.qubit_over_qrl-native"], 1) == 20.0 and meyer["rows"][0]["qubits"] == 10


def test_the_readme_native_scaling_rows_are_the_committed_measurements():
    readme = (ROOT / "README.md").read_text()
    for f in ("211040", "211052", "211216"):
        r = bench.load(COMMITTED / f"scaling-20261204-{f}.json")
        for n in r["qubits"]:
            torch_s, native_s = r["seconds"]["torch"][str(n)], r["seconds"]["torch:native"][str(n)]
            row = f"| {n} | {r['batch']} | {bench._ms(torch_s)} | {bench._ms(native_s)} | {torch_s / native_s:.2f}x |"
            assert row in readme, row


def test_train_bench_repeats_alternate_and_report_medians(tmp_path, capsys):
    assert main(["bench", "train", "--algos", "ppo", "--steps", "64", "--repeats", "3", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("train-*.json")
    (run,) = json.loads(path.read_text())["runs"]
    assert run["repeats"] == 3 and len(run["ratios"]) == 3
    for name in ("mlp", "vqc"):
        speeds = sorted(r["steps_per_s"] for r in run["results"][name]["runs"])
        assert len(speeds) == 3 and run["results"][name]["steps_per_s"] == speeds[1]
    assert run["vqc_over_mlp"] == sorted(run["ratios"])[1]
    assert "; median of 3) |" in capsys.readouterr().out
    assert main(["bench", "train", "--repeats", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "expected repeats as a positive integer" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_the_readme_auto_table_is_the_committed_measurement():
    """The rows of "Where device="auto" takes it": auto against every other choice, from the committed runs: those of
    2026-12-05 (4-8 qubits, and Meyer et al.'s circuit at 10) replace those of 2026-12-04 at the sizes they measured."""
    readme = (ROOT / "README.md").read_text()
    circuits = ("hea", "hea", "hea", "strongly_entangling", "strongly_entangling", "strongly_entangling", "meyer_iqp",
                "meyer_iqp", "meyer_iqp")
    runs = {"20261204": ("225252", "230433", "230518", "230548", "230602", "230614", "230652", "230708", "230725"),
            "20261205": ("003845", "003853", "003900", "003907", "003913", "003919", "003929", "003939", "003950")}
    rows, ratios = {}, {}
    for day, files in runs.items():
        for f, circuit in zip(files, circuits, strict=True):
            r = bench.load(COMMITTED / f"scaling-{day}-{f}.json")
            assert r.get("circuit", r["ansatz"]) == circuit
            for n in r["qubits"]:
                s = {b: r["seconds"][b][str(n)] for b in r["seconds"] if str(n) in r["seconds"][b]}
                ratio = s["auto"] / min(v for b, v in s.items() if b != "auto")
                cells = [bench._ms(s[b]) if b in s else "-" for b in ("auto", "torch", "torch:native",
                                                                      "lightning.qubit")]
                key = circuit, n, r["batch"]
                rows[key] = f"| {circuit} | {n} | {r['batch']} | " + " | ".join(cells) + f" | {ratio:.2f}x |"
                ratios[key] = ratio
    for row in rows.values():
        assert row in readme, row
    assert {n for c, n, b in rows} == {4, 6, 8, 10, 12, 14, 16, 18, 20} and len(rows) == 68
    assert f"{min(ratios.values()):.2f}x-{max(ratios.values()):.2f}x" == "0.89x-1.11x"
    assert "4-20 qubits, on these three circuits: 0.89x-1.11x" in " ".join(readme.split())
    before = [bench.load(COMMITTED / f"scaling-20261204-{f}.json") for f in ("225252", "230433", "230518")]
    slower = [r["seconds"]["auto"][str(n)] / r["seconds"]["torch:native"][str(n)] for r in before for n in (4, 6, 8)]
    assert f"{min(slower):.1f}x-{max(slower):.0f}x" == "4.3x-11x"  # before: auto on the torch programs there


def test_the_readme_native_kernel_numbers_after_the_narrow_widths_are_the_committed_runs():
    readme = _readme()
    seconds = bench.load(COMMITTED / "policy-20261204-230856.json")["seconds"]
    ratios = [seconds[m]["qrl torch:native"][b] / seconds[m]["mlp (SB3 MlpPolicy 64x64)"][b]
              for m in ("update", "rollout") for b in ("1", "8", "64", "256")]
    assert [f"{r:.2f}x" for r in ratios] == ["1.42x", "1.30x", "1.29x", "1.27x", "1.53x", "1.43x", "1.44x", "1.45x"]
    assert "update 1.42x, 1.30x, 1.29x and 1.27x; rollout 1.53x, 1.43x, 1.44x and 1.45x" in readme
    ppo, dqn = bench.load(COMMITTED / "train-20261204-231249.json")["runs"]
    assert [f"{r:.2f}x" for r in ppo["ratios"]] == ["0.91x", "0.94x", "0.93x", "0.91x", "0.92x"]
    assert f"{ppo['vqc_over_mlp']:.2f}x {dqn['vqc_over_mlp']:.2f}x" == "0.92x 1.82x"
    assert "PPO 0.92x (pairs 0.91x, 0.94x, 0.93x, 0.91x and 0.92x), DQN 1.82x" in readme
    assert round(ppo["results"]["mlp"]["steps_per_s"]) == 4795 and "PPO at 4795 steps/s" in readme


def test_the_readme_default_device_numbers_at_4_qubits_are_the_committed_runs():
    """Issue 15's 4-qubit goals on the default device (auto, the native kernel there since 2026-12-05)."""
    readme = _readme()
    seconds = bench.load(COMMITTED / "policy-20261205-004114.json")["seconds"]
    mlp = "mlp (SB3 MlpPolicy 64x64)"
    ratios = {(m, p): [f"{seconds[m][p][b] / seconds[m][mlp][b]:.2f}x" for b in ("1", "8", "64", "256")]
              for m in ("update", "rollout") for p in ("qrl auto", "qrl torch:native")}
    assert ratios["update", "qrl auto"] == ["1.46x", "1.32x", "1.34x", "1.30x"]
    assert ratios["rollout", "qrl auto"] == ["1.54x", "1.44x", "1.43x", "1.41x"]
    assert ratios["update", "qrl torch:native"] == ["1.45x", "1.31x", "1.35x", "1.32x"]
    assert ("update 1.46x, 1.32x, 1.34x and 1.30x the MLP's at batch 1, 8, 64 and 256 (torch:native in the same run: "
            "1.45x, 1.31x, 1.35x and 1.32x); rollout 1.54x, 1.44x, 1.43x and 1.41x") in readme
    assert "costs 1.34x the MLP's (goal 1.5x; 1.30x-1.46x over batch 1-256" in readme
    ppo, dqn = bench.load(COMMITTED / "train-20261205-004450.json")["runs"]
    assert ppo["vqc_device"] == dqn["vqc_device"] == "auto" and ppo["repeats"] == 5
    assert [f"{r:.2f}x" for r in ppo["ratios"]] == ["0.92x", "0.91x", "0.95x", "0.97x", "0.93x"]
    assert f"{ppo['vqc_over_mlp']:.2f}x {dqn['vqc_over_mlp']:.2f}x" == "0.93x 1.78x"
    assert "PPO 0.93x (pairs 0.92x, 0.91x, 0.95x, 0.97x and 0.93x), DQN 1.78x" in readme
    assert ("PPO runs at 0.93x the MLP's steps/s (goal 0.9x; median of five alternating pairs, which ranged "
            "0.91x-0.97x) and DQN at 1.78x") in readme
    ppo, dqn = bench.load(COMMITTED / "train-20261205-043831.json")["runs"]  # again, after the dispatch by memory
    assert ppo["vqc_device"] == dqn["vqc_device"] == "auto" and ppo["repeats"] == 5
    assert [f"{r:.2f}x" for r in ppo["ratios"]] == ["0.90x", "0.88x", "0.94x", "0.93x", "0.89x"]
    assert f"{ppo['vqc_over_mlp']:.2f}x {dqn['vqc_over_mlp']:.2f}x" == "0.90x 1.88x"
    assert [round(ppo["results"][p]["steps_per_s"]) for p in ("mlp", "vqc")] == [4984, 4493]
    assert "PPO 0.90x (pairs 0.90x, 0.88x, 0.94x, 0.93x and 0.89x), DQN 1.88x" in readme
    ppo, dqn = bench.load(COMMITTED / "train-20261207-051629.json")["runs"]  # re-run on 2026-12-07
    assert ppo["vqc_device"] == dqn["vqc_device"] == "auto" and ppo["repeats"] == 5
    pairs = [f"{r:.2f}x" for r in ppo["ratios"]]
    assert (f"PPO {ppo['vqc_over_mlp']:.2f}x (pairs {', '.join(pairs[:-1])} and {pairs[-1]}), DQN "
            f"{dqn['vqc_over_mlp']:.2f}x") in " ".join(readme.split())


def test_the_readme_26_qubit_tiny_batch_rows_are_the_committed_measurement():
    readme = (ROOT / "README.md").read_text()
    r = bench.load(COMMITTED / "scaling-20261204-233745.json")
    assert r["batch"] == 1 and r["qubits"] == [22, 24, 26]
    for n in r["qubits"]:
        cells = [f"{r['seconds'][b][str(n)]:.1f}" if str(n) in r["seconds"][b] else "-"
                 for b in ("torch", "torch:native", "lightning.qubit")]
        peak = max(v[str(n)] for v in r["peak_rss_gb"].values() if str(n) in v)
        row = f"| {n}, 1 | " + " | ".join(cells) + f" | {peak:.2f} |"
        assert row in readme, row
    s = {b: r["seconds"][b]["24"] for b in r["seconds"]}
    assert f"{s['torch:native'] / s['torch']:.1f}x and {s['lightning.qubit'] / s['torch']:.1f}x" == "3.7x and 2.3x"


def test_auto_at_25_and_26_qubits_runs_each_call_where_it_fits_from_the_stored_crossovers(monkeypatch):
    """On a machine of this one's memory (23.5 GiB), from the stored tables: at 26 qubits 1-2 samples on torch (the
    tiny table), 3 on the torch program (by the model's large-state factor since its fit of 2026-12-06 08:20; the
    kernel before: at 3 samples with a gradient 81.7 s against 77.8 on the torch program, timed once on 2026-12-06,
    ``scaling-20261206-050905.json``), 4-8 on the kernel (the small table's choice at 24, within 3/4 of memory: 4.05
    state batches estimated, as the kernel reads the Z words out itself), 9 and more on the kernel in chunks of 8 (on
    Lightning until 2026-12-05); at 25 qubits the torch program at 3 samples, the kernel at 4-16 (until the estimate
    followed the measured peaks: up to 4 and 8), in chunks of 16 beyond."""
    from qrl.backends import select
    from qrl.circuits import CircuitSpec

    monkeypatch.setattr(select, "physical_memory", lambda: int(23.5 * 2**30))
    expected = {26: {1: "wires", 2: "wires", 3: "wires", 4: "native", 5: "native", 8: "native", 9: "native 8",
                     16: "native 8", 64: "native 8"},
                25: {2: "wires", 3: "wires", 4: "native", 8: "native", 16: "native", 17: "native 16",
                     64: "native 16"}}
    for n, choices in expected.items():
        backend = select.make_backend(CircuitSpec(n_qubits=n, n_layers=5, n_inputs=n, n_outputs=n), "auto")
        chosen = {b: backend.for_batch(b) for b in choices}
        assert {b: " ".join([c.program, *([str(c.size)] if hasattr(c, "keeps") else [])])
                for b, c in chosen.items()} == choices
    readme = _readme()
    assert "the kernel runs in chunks of 8 samples at 26 qubits, 16 at 25, 32 at 24, 64 at 23 and 128 at 22" in readme
    for n, size in ((24, 32), (23, 64), (22, 128)):  # the README's chunks, as auto makes them for an update batch
        backend = select.make_backend(CircuitSpec(n_qubits=n, n_layers=5, n_inputs=n, n_outputs=n), "auto")
        assert (backend.for_batch(size).program, backend.for_batch(size + 1).size) == ("native", size), n
    assert select.tiny_batch_table()[26] == "torch" and select.small_batch_table()[24] == select.NATIVE


def test_the_readme_chunked_call_at_26_qubits_is_the_committed_measurement():
    """README, "Calls that do not fit, in chunks": auto (two chunks) against Lightning at 26 qubits / 16 samples and
    24 qubits / 64 samples, one call each, from the committed JSON."""
    text = (ROOT / "README.md").read_text()
    ratios = []
    for stamp, n, batch in (("134153", 26, 16), ("144804", 24, 64)):
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert (r["batch"], r["qubits"], r["fastest"][str(n)]) == (batch, [n], "auto")
        auto, light = (r["seconds"][b][str(n)] for b in ("auto", "lightning.qubit"))
        peak = r["peak_rss_gb"]["auto"][str(n)]
        assert f"| {n}, {batch} | {auto:.1f} | {light:.1f} | {light / auto:.2f}x | {peak:.2f} |" in text
        ratios.append(f"{light / auto:.2f}x")
    assert "auto ran these calls on Lightning: {} and {} slower".format(*ratios) in " ".join(text.split())


def test_the_readme_rollout_at_26_qubits_is_the_committed_measurement():
    """README, "Calls that do not fit, in chunks": a forward without a gradient at 26 qubits / 16 samples, auto
    against the kernel in one call, both orders, before and after chunks sized by a forward's memory."""
    readme = _readme()
    ratios = []
    for when, first, stamp in (("before", "first", "153410"), ("before", "second", "154025"),
                               ("after", "first", "153703"), ("after", "second", "154331")):
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert (r["batch"], r["qubits"], r.get("no_grad")) == (16, [26], True)
        assert set(r["seconds"]) == {"auto", "torch:native"}  # (the order they ran in is the log's, not the JSON's)
        auto, kernel = (r["seconds"][b]["26"] for b in ("auto", "torch:native"))
        ratios.append(auto / kernel)
        assert f"| {auto:.1f} | {kernel:.1f} | {auto / kernel:.2f}x |" in readme
        assert f"| {when}, auto {first}" in readme
    assert min(ratios[:2]) > 1.2 and max(ratios[2:]) < 1.2  # a miss before, within the goal after
    peak = bench.load(COMMITTED / "scaling-20261205-154025.json")["peak_rss_gb"]["torch:native"]["26"]  # ran first
    assert f"{peak:.2f} GiB peak RSS for the 8 GiB state batch" in readme
    assert "was 1.22x-1.23x the fastest choice" in readme and "1.00x-1.11x" in readme


def test_the_readme_rollouts_without_a_gradient_at_12_to_18_qubits_are_the_committed_measurements():
    """README, "Calls that do not fit, in chunks": auto against both programs on forwards without a gradient, eight
    circuits, 12-18 qubits, 1, 8 and 16 samples: every point, the worst, and the kernel's place, from the JSON."""
    readme = _readme()
    results = [bench.load(path) for path in sorted(COMMITTED.glob("scaling-20261205-1*.json"))]
    results = [r for r in results if r.get("no_grad") and r["qubits"] == [12, 14, 16, 18]]
    names = {(r.get("circuit") or r["ansatz"], r["batch"]) for r in results}
    assert len(results) == len(names) == 24 and {b for _, b in names} == {1, 8, 16}
    points = [(r.get("circuit") or r["ansatz"], n, r["batch"], {b: t[str(n)] for b, t in r["seconds"].items()})
              for r in results for n in r["qubits"]]
    ratios = sorted(((t["auto"] / min(t.values()), c, n, b) for c, n, b, t in points), reverse=True)
    assert len(ratios) == 96 and ratios[0][0] < 1.2
    (worst, c, n, b), (second, c2, n2, b2) = ratios[:2]
    assert f"all 96 points (worst {worst:.2f}x: `{c}` at {n} qubits and one sample; then {second:.2f}x, `{c2}` at " \
           f"{n2} and {b2})" in readme and b == 1
    single = [t["torch:native"] / t["torch"] for _, _, b, t in points if b == 1]
    assert f"ran {min(single):.2f}x-{max(single):.1f}x slower than the torch program" in readme
    kernel = sum(t["torch:native"] < t["torch"] for _, _, b, t in points if b == 16)
    assert f"at 16 samples it was the faster at {kernel} of the 32 points" in readme


def test_the_readme_rollouts_at_20_and_22_qubits_are_the_committed_measurements():
    """README, "Calls that do not fit, in chunks": forwards without a gradient at 20 and 22 qubits, the one miss
    (`hsiao` at 22 / 8), and its gradient call, from the JSON."""
    readme = _readme()
    results = [bench.load(path) for path in sorted(COMMITTED.glob("scaling-20261205-16*.json"))]
    nograd = [r for r in results if r.get("no_grad") and r["qubits"] == [20, 22]]
    points = {(r.get("circuit") or r["ansatz"], n, r["batch"]): {b: t[str(n)] for b, t in r["seconds"].items()}
              for r in nograd for n in r["qubits"]}
    assert len(points) == 18
    ratios = {k: t["auto"] / min(t.values()) for k, t in points.items()}
    assert [k for k, v in ratios.items() if v > 1.2] == [("hsiao", 22, 8)]
    miss = points["hsiao", 22, 8]
    assert f"**not at `hsiao` at 22 qubits: {ratios['hsiao', 22, 8]:.2f}x** (auto {miss['auto']:.2f} s on the torch " \
           f"program, the kernel {miss['torch:native']:.2f};" in readme
    assert f"(auto {ratios['hsiao', 20, 8]:.2f}x)" in readme
    grad = bench.load(COMMITTED / "scaling-20261205-163141.json")
    assert grad["circuit"] == "hsiao" and not grad.get("no_grad") and grad["batch"] == 8
    t = {b: v["22"] for b, v in grad["seconds"].items()}
    assert f"auto {t['auto']:.2f} s, the kernel {t['torch:native']:.2f} ({t['auto'] / min(t.values()):.2f}x; the " \
           f"torch program timed beside them, {t['torch']:.2f};" in readme


def test_the_readme_circuits_over_the_pass_ratio_at_22_and_24_qubits_are_the_committed_measurements():
    """README, "Calls that do not fit, in chunks": hsiao and Meyer et al.'s circuit at 22 and 24 qubits, the rows
    that moved rollout-sized calls there to the kernel (NATIVE_ROLLOUT_MIN_QUBITS), from the JSON."""
    readme = _readme()
    rows = (("hsiao", 22, "no", "162102"), ("hsiao", 24, "no", "165147"), ("hsiao", 22, "yes", "163141"),
            ("hsiao", 24, "yes", "165911"), ("Meyer et al.'s", 22, "no", "161540"),
            ("Meyer et al.'s", 24, "no", "165434"), ("Meyer et al.'s", 22, "yes", "165642"))
    kernel = []
    for name, n, gradient, stamp in rows:
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert r["circuit"] == ("hsiao" if name == "hsiao" else "meyer_iqp") and r["batch"] == 8
        assert bool(r.get("no_grad")) == (gradient == "no")
        t = {b: v[str(n)] for b, v in r["seconds"].items()}
        best = min(t.values())
        cell = f"`{name}`" if name == "hsiao" else name
        assert (f"| {cell}, {n} | {gradient} | {t['auto']:.2f} | {t['torch']:.2f} | {t['torch:native']:.2f} | "
                f"{t['auto'] / best:.2f}x |") in readme, (name, n, gradient)
        kernel.append((t["torch:native"] / best, t["torch:native"], best))
    worst = max(kernel)
    assert f"the kernel's time is within {worst[0]:.2f}x of the fastest at all seven" in readme
    assert f"{worst[1]:.2f} s against {worst[2]:.2f})" in readme
    after = []
    for n, stamp in ((22, "170033"), (24, "170249")):  # auto itself after the change: the kernel
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert r["circuit"] == "hsiao" and bool(r.get("no_grad")) == (n == 22)
        t = {b: v[str(n)] for b, v in r["seconds"].items()}
        after.append(t["auto"] / min(t.values()))
        assert f"{t['auto']:.2f} s (the kernel {t['torch:native']:.2f}, the torch program {t['torch']:.2f}: " \
               f"{after[-1]:.2f}x" in readme
    assert max(after) < 1.2 and "the kernel from 22 qubits: {:.2f}x and {:.2f}x there after".format(*after) in readme


def test_the_readme_auto_points_at_24_to_26_qubits_are_the_committed_measurements():
    """The table of auto's per-call choice by memory (README, "Against Lightning at 20-26 qubits"): each cell and
    ratio from the committed JSON, and the 24-qubit batch-8 point that put the kernel in the small table."""
    text = (ROOT / "README.md").read_text()
    readme = " ".join(text.split())
    narrow = bench.load(COMMITTED / "scaling-20261205-025926.json")
    assert (narrow["batch"], narrow["qubits"], narrow["fastest"]["24"]) == (8, [24], "torch:native")
    assert [f"{narrow['seconds'][b]['24']:.0f}" for b in ("torch:native", "torch")] == ["115", "161"]
    assert "the kernel there (115 s against 161 on torch, `scaling-20261205-025926.json`)" in readme
    rows = []
    for name, n, batch in (("scaling-20261205-033209.json", 26, 4), ("scaling-20261205-035134.json", 25, 8)):
        r = bench.load(COMMITTED / name)
        assert (r["batch"], r["qubits"]) == (batch, [n])
        t = {b: r["seconds"][b][str(n)] for b in r["seconds"]}
        others = [v for b, v in t.items() if b != "auto"] + ([612.0] if n == 26 else [])  # Lightning at 26 / 4: above
        light = f"{t['lightning.qubit']:.1f}" if "lightning.qubit" in t else "(612, above)"
        rows.append(f"| {n}, {batch} | {t['auto']:.1f} | {t['torch:native']:.1f} | {light} | "
                    f"{t['auto'] / min(others):.2f}x | {max(v[str(n)] for v in r['peak_rss_gb'].values()):.2f} |")
    assert all(row in text for row in rows), rows


def test_the_readme_cz_product_points_are_the_committed_measurements():
    """The table of the kernel's one-pass ring of CZs at 22 and 24 qubits (README, "A ring of CZs in one pass above
    20 qubits"): each cell and ratio from the committed JSON, the "before" ratios from the earlier ones."""
    text = (ROOT / "README.md").read_text()
    rows = []
    for name, before, n in (("scaling-20261205-060229.json", "scaling-20261204-235234.json", 22),
                            ("scaling-20261205-060627.json", "scaling-20261205-025926.json", 24)):
        r, b = bench.load(COMMITTED / name), bench.load(COMMITTED / before)
        assert (r["batch"], r["qubits"], b["batch"], b["qubits"]) == (8, [n], 8, [n])
        t = {k: r["seconds"][k][str(n)] for k in r["seconds"]}
        old = {k: b["seconds"][k][str(n)] for k in ("torch", "torch:native")}
        old_cells = (f"{old['torch']:.1f} s against {old['torch:native']:.1f}" if n == 22
                     else f"{old['torch']:.0f} s against {old['torch:native']:.0f}")
        auto, ratio = f"{t['auto']:.1f}" if "auto" in t else "-", old["torch"] / old["torch:native"]
        rows.append(f"| {n}, 8 | {auto} | {t['torch']:.1f} | {t['torch:native']:.1f} | "
                    f"{t['torch'] / t['torch:native']:.2f}x | {ratio:.2f}x ({old_cells}) |")
    assert all(row in text for row in rows), rows
    update = bench.load(COMMITTED / "scaling-20261205-063340.json")
    t = {k: update["seconds"][k]["22"] for k in ("torch", "torch:native")}
    assert (update["batch"], update["qubits"], update["fastest"]["22"]) == (64, [22], "torch:native")
    assert (f"gave {t['torch:native']:.1f} s on the kernel against {t['torch']:.1f} s on torch "
            f"({t['torch'] / t['torch:native']:.2f}x;") in " ".join(text.split())
    from qrl.backends import select

    assert select.auto_table()[22] == select.NATIVE  # stored by that command's --update-auto
    odd = bench.load(COMMITTED / "scaling-20261205-064934.json")
    t = {k: odd["seconds"][k]["23"] for k in odd["seconds"]}
    assert (odd["batch"], odd["qubits"]) == (8, [23])
    assert (f"auto {t['auto']:.1f} s, the kernel {t['torch:native']:.1f}, torch {t['torch']:.1f} and Lightning "
            f"{t['lightning.qubit']:.1f} (auto / fastest {t['auto'] / min(v for k, v in t.items() if k != 'auto'):.2f}x"
            ) in " ".join(text.split())
    again = bench.load(COMMITTED / "scaling-20261205-070846.json")
    t = {k: again["seconds"][k]["26"] for k in again["seconds"]}
    assert (again["batch"], again["qubits"]) == (4, [26])
    assert (f"auto {t['auto']:.1f} s, the kernel {t['torch:native']:.1f} ({t['auto'] / t['torch:native']:.2f}x; 333.6 "
            f"and 331.8 before") in " ".join(text.split())


def _seconds_cell(seconds: dict, backend: str, n: str) -> str:
    if n not in seconds.get(backend, {}):
        return "-"
    v = seconds[backend][n]
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def test_the_readme_grouped_runs_table_is_the_committed_measurements():
    """README, "Three runs in one pass from 12 qubits": every cell and ratio from the committed JSON, each file the
    batch and sizes of its command."""
    text = (ROOT / "README.md").read_text()
    rows = []
    for name, batch, qubits in (("080339", 64, [12, 14, 16]), ("080530", 8, [16, 18, 20]), ("081321", 8, [22, 24]),
                                ("082243", 4, [26])):
        r = bench.load(COMMITTED / f"scaling-20261205-{name}.json")
        assert (r["batch"], r["qubits"]) == (batch, qubits)
        s = r["seconds"]
        rows += [f"| {n}, {batch} | {_seconds_cell(s, 'torch:native-runs', n)} | {_seconds_cell(s, 'torch:native', n)} "
                 f"| {s['torch:native-runs'][n] / s['torch:native'][n]:.2f}x | {_seconds_cell(s, 'auto', n)} | "
                 f"{_seconds_cell(s, 'torch', n)} |" for n in map(str, qubits)]
    assert all(row in text for row in rows), [row for row in rows if row not in text]
    again = bench.load(COMMITTED / "scaling-20261205-083304.json")
    t = {k: again["seconds"][k]["25"] for k in ("auto", "torch:native")}
    assert (again["batch"], again["qubits"]) == (8, [25])
    assert (f"auto {t['auto']:.1f} s, the kernel {t['torch:native']:.1f} (auto / kernel "
            f"{t['auto'] / t['torch:native']:.2f}x; 233.0 and 238.0 before") in " ".join(text.split())


def test_the_readme_z_words_in_the_kernel_table_is_the_committed_measurements():
    """README, "Z words read out in the kernel from 18 qubits": every cell and ratio from the committed JSON."""
    text = (ROOT / "README.md").read_text()
    rows = []
    for name, batch, qubits in (("090308", 8, [18, 20]), ("090430", 64, [18]), ("090743", 8, [22]),
                                ("091001", 8, [24])):
        r = bench.load(COMMITTED / f"scaling-20261205-{name}.json")
        assert (r["batch"], r["qubits"]) == (batch, qubits)
        s = r["seconds"]
        plain, native = "torch:native-plain", "torch:native"
        rows += [f"| {n}, {batch} | {_seconds_cell(s, plain, n)} | {_seconds_cell(s, native, n)} "
                 f"| {s[plain][n] / s[native][n]:.2f}x | {_seconds_cell(s, 'auto', n)} |" for n in map(str, qubits)]
    assert all(row in text for row in rows), [row for row in rows if row not in text]
    readme = " ".join(text.split())
    fits = [bench.load(COMMITTED / f"scaling-20261205-{name}.json") for name in ("092325", "092540")]
    assert [(r["batch"], r["qubits"], list(r["seconds"])) for r in fits] == [(8, [26], ["auto"]), (64, [23], ["auto"])]
    (t26, r26), (t23, r23) = ((r["seconds"]["auto"][n], r["peak_rss_gb"]["auto"][n])
                              for r, n in zip(fits, ("26", "23"), strict=True))
    assert (f"26 qubits / batch 8: {t26:.1f} s, peak RSS {r26:.2f} GiB; 23 / 64: {t23:.1f} s, {r23:.2f} GiB"
            in readme) and max(r26, r23) < 0.75 * 24  # within auto's share of this machine's memory
    t24 = bench.load(COMMITTED / "scaling-20261205-091001.json")["seconds"]["torch:native"]["24"]
    torch24 = bench.load(COMMITTED / "scaling-20261205-060627.json")["seconds"]["torch"]["24"]
    assert (f"the kernel now takes {t24:.1f} s where torch took {torch24:.1f} ({torch24 / t24:.1f}x;"
            in " ".join(text.split()))


OTHER_CIRCUITS = {"chen_vqdqn": ("062152", "062207", "062222"), "lockwood_si": ("062255", "062311", "062326"),
                  "hsiao": ("061954", "062008", "062022"), "born_parity": ("061904", "061919", "061934")}


def test_the_readme_auto_table_of_other_circuits_is_the_committed_measurements():
    """README, "Circuits of other shapes": auto's time over the fastest other choice per circuit, batch and size,
    from the committed JSON, each within the goal's 1.2x; and the two points that were not before the changes."""
    text = (ROOT / "README.md").read_text()
    worst = 0.0
    for circuit, stamps in OTHER_CIRCUITS.items():
        for stamp, batch in zip(stamps, (64, 8, 1), strict=True):
            r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
            assert (r["circuit"], r["batch"], r["qubits"]) == (circuit, batch, [4, 6, 8, 10, 12, 14, 16])
            ratios = [r["seconds"]["auto"][str(n)] / min(r["seconds"][b][str(n)] for b in ("torch", "torch:native"))
                      for n in r["qubits"]]
            worst = max(worst, *ratios)
            assert f"| {circuit} | {batch} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |" in text
    assert worst <= 1.2  # the goal: auto within 1.2x of the fastest choice
    hsiao = bench.load(COMMITTED / "scaling-20261205-061005.json")
    before = [hsiao["seconds"]["auto"][str(n)] / hsiao["seconds"]["torch"][str(n)] for n in (12, 14, 16)]
    born = bench.load(COMMITTED / "scaling-20261205-061752.json")["seconds"]
    readme = " ".join(text.split())
    assert (f"**{before[0]:.2f}x, {before[1]:.2f}x and {before[2]:.2f}x slower** than the torch program at 12, 14 and "
            f"16 qubits") in readme
    assert (f"took {born['torch:native']['10'] * 1e3:.1f} ms on the kernel against {born['torch']['10'] * 1e3:.1f} on "
            f"torch ({born['auto']['10'] / born['torch']['10']:.2f}x") in readme


def test_the_readme_auto_rows_of_a_users_one_cnot_circuit_are_the_committed_measurements():
    """README, "Circuits of other shapes", the fifth circuit (tests/circuit_shapes.py): each ratio from the committed
    JSON; within 1.2x everywhere but the two rollout-sized calls at 12 qubits that the README says are not; and the
    first run's 12-qubit update that the 12-qubit limit fixed."""
    text = (ROOT / "README.md").read_text()
    over = []
    for stamp, batch in (("083816", 64), ("083832", 8), ("083847", 1)):
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert (r["circuit"], r["batch"], r["qubits"]) == ("circuit_shapes:one_cnot", batch, [4, 6, 8, 10, 12, 14, 16])
        ratios = [r["seconds"]["auto"][str(n)] / min(r["seconds"][b][str(n)] for b in ("torch", "torch:native"))
                  for n in r["qubits"]]
        assert f"| one_cnot | {batch} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |" in text
        over += [(batch, n) for n, x in zip(r["qubits"], ratios, strict=True) if x > 1.2]
    assert over == [(8, 12), (1, 12)]
    first = bench.load(COMMITTED / "scaling-20261205-083559.json")["seconds"]
    assert (f"found auto **{first['auto']['12'] / first['torch:native']['12']:.2f}x slower** than the kernel at 12 "
            f"qubits ({first['auto']['12'] * 1e3:.1f} ms, on the torch program, against "
            f"{first['torch:native']['12'] * 1e3:.1f};") in " ".join(text.split())


def test_the_readme_native_points_at_20_and_22_qubits_are_the_committed_ones():
    readme = _readme()
    wide = bench.load(COMMITTED / "scaling-20261204-235043.json")
    rollout = bench.load(COMMITTED / "scaling-20261204-235234.json")
    assert (wide["batch"], wide["qubits"], rollout["batch"], rollout["qubits"]) == (64, [20], 8, [22])
    cells = [f"{r['seconds'][b][str(n)]:.1f}" for r, n in ((wide, 20), (rollout, 22))
             for b in ("torch:native", "torch", "lightning.qubit")]
    assert cells == ["33.0", "54.5", "71.0", "24.2", "28.2", "53.2"]
    assert "33.0 s against 54.5 on torch and 71.0 on Lightning, and 24.2 s against 28.2 and 53.2" in readme
    assert wide["fastest"]["20"] == rollout["fastest"]["22"] == "torch:native"
    from qrl.backends import select

    assert select.auto_table()[20] == select.small_batch_table()[22] == "torch:native"


def test_the_readme_26_qubit_batch_4_point_is_the_committed_measurement():
    """Calls of 3-7 samples at 25-26 qubits ran on Lightning (above the small table's sizes) until auto chose by
    memory: at batch 4 the kernel and torch were faster."""
    readme = _readme()
    r = bench.load(COMMITTED / "scaling-20261205-014252.json")
    assert (r["batch"], r["qubits"]) == (4, [26])
    s = {b: r["seconds"][b]["26"] for b in ("torch:native", "torch", "lightning.qubit")}
    assert [f"{v:.0f}" for v in s.values()] == ["320", "367", "612"]
    slower = s["lightning.qubit"] / s["torch:native"]
    assert f"{slower:.2f}x" == "1.91x" and f"{s['lightning.qubit'] / s['torch']:.2f}x" == "1.67x"
    assert "the kernel took 320 s, torch 367 s and Lightning 612 s, so auto, on Lightning, was 1.91x slower" in readme


def _calls(model, circuits: dict) -> list[dict]:
    """Calls whose times ``model`` gives exactly, for ``circuits`` (``{name: (nodes, torch passes, kernel passes
    forward and backward, rotations)}``) at 12-16 qubits and 1, 4, 8 and 16 samples."""
    return [{"circuit": name, "qubits": n, "batch": b, "nodes": s[0], "torch_passes": s[1], "kernel_pass_counts": s[2],
             "rotations": s[3], "torch_s": model.torch_seconds(s[0], s[1], n, b),
             "kernel_s": model.kernel_seconds(s[2], s[3], n, b)}
            for name, s in circuits.items() for n in (12, 13, 14, 15, 16) for b in (1, 4, 8, 16)]


def test_the_call_model_fit_finds_the_constants_of_calls_it_describes():
    """The fit recovers the constants of calls a model generated (to 1e-6), refuses calls that cannot tell its
    constants apart, and a stored model round-trips through JSON; anything else stored reads as none."""
    import pytest

    from qrl.backends.calls import DEFAULT_CALL_MODEL, CallModel, fit_call_model
    from qrl.errors import QRLError

    truth = CallModel(5e-6, (4e-9, 9e-9), {4: 6e-9, 8: 7e-9, 16: 12e-9})
    rows = _calls(truth, {"a": (137, 20, (25, 65), 180), "b": (700, 4, (29, 43), 240), "c": (186, 3, (25, 36), 240)})
    fit = fit_call_model(rows)
    for got, want in zip(fit.to_json().values(), truth.to_json().values(), strict=True):
        values = zip(got.values(), want.values(), strict=True) if isinstance(got, dict) else (
            zip(got, want, strict=True) if isinstance(got, list) else [(got, want)])
        assert all(abs(g / w - 1) < 1e-6 for g, w in values), (got, want)
    with pytest.raises(QRLError, match="exceeds it"):
        fit_call_model([r for r in rows if r["qubits"] <= 14 and r["batch"] <= 8])
    with pytest.raises(QRLError, match="vectors"):
        fit_call_model([r for r in rows if r["batch"] != 16])
    assert CallModel.from_json(fit.to_json()) == fit and CallModel.from_json(DEFAULT_CALL_MODEL.to_json()) is not None
    for bad in (None, [], {"node_s": 1e-6}, {**truth.to_json(), "node_s": -1.0}, {**truth.to_json(), "node_s": "x"},
                {**truth.to_json(), "kernel_pass_s": {"4": 1e-9}}, {**truth.to_json(), "torch_pass_s": [1e-9]}):
        assert CallModel.from_json(bad) is None, bad


def test_calls_bench_times_both_programs_and_stores_its_fit_for_auto(tmp_path, capsys, monkeypatch):
    """`qrl bench calls` times the torch program and the kernel side by side, prints the model's choice over the
    faster, and with --update-auto stores its fit, which auto then uses (and a main-table update keeps)."""
    from qrl.backends import select
    from qrl.backends.calls import DEFAULT_CALL_MODEL

    crossovers = tmp_path / "crossovers.json"
    monkeypatch.setattr(select, "CROSSOVERS", crossovers)
    select.call_model.cache_clear()
    args = ["bench", "calls", "--circuits", "hea", "hsiao", "--qubits", "12", "15", "--batches", "1", "4", "8", "16",
            "--layers", "1", "--budget", "0", "--out", str(tmp_path)]
    assert main([*args, "--update-auto"]) == 0
    out = capsys.readouterr().out
    assert "| circuit | qubits | batch | torch (ms) | kernel (ms) | model's choice | choice / faster |" in out
    assert "of 16 calls" in out and "now chooses rollout-sized calls by the fitted model" in out
    (path,) = tmp_path.glob("calls-*.json")
    result = json.loads(path.read_text())
    assert len(result["rows"]) == 16 and {r["circuit"] for r in result["rows"]} == {"hea", "hsiao"}
    assert all(r["torch_s"] > 0 and r["kernel_s"] > 0 and r["nodes"] > 0 for r in result["rows"])
    stored = json.loads(crossovers.read_text())["call_model"]
    assert stored["model"] == result["fit"] and "--update-auto" in stored["command"]
    assert select.call_model().to_json() == result["fit"]
    select.write_crossovers({"batch": 64, "fastest": {"4": "torch"}}, "main", {})
    assert json.loads(crossovers.read_text())["call_model"] == stored  # kept beside the main table
    crossovers.write_text(json.dumps({**json.loads(crossovers.read_text()), "call_model": None}))
    select.call_model.cache_clear()  # the code's model: --rows reads the timings again, fits them, stores the fit
    assert main(["bench", "calls", "--rows", str(path), "--update-auto", "--out", str(tmp_path / "again")]) == 0
    assert "now chooses rollout-sized calls by the model fitted to" in capsys.readouterr().out
    (again,) = (tmp_path / "again").glob("calls-*.json")
    again = json.loads(again.read_text())
    assert again["rows"] == [{**r, "model_choice": bench._model_choice(DEFAULT_CALL_MODEL, r)} for r in result["rows"]]
    assert again["fit"] == result["fit"] and again["calls_from"] == str(path)
    assert json.loads(crossovers.read_text())["call_model"]["model"] == result["fit"]
    halves = [tmp_path / "hea.json", tmp_path / "hsiao.json"]  # two files (two days' timings): one fit to all calls
    for half, name in zip(halves, ("hea", "hsiao"), strict=True):
        half.write_text(json.dumps({**result, "circuits": [name], "rows": [r for r in result["rows"]
                                                                            if r["circuit"] == name]}))
    assert main(["bench", "calls", "--rows", *map(str, halves), "--update-auto", "--out", str(tmp_path / "two")]) == 0
    (two,) = (tmp_path / "two").glob("calls-*.json")
    two = json.loads(two.read_text())
    chosen = [{**r, "model_choice": bench._model_choice(select.call_model(), r)} for r in result["rows"]]
    assert two["fit"] == result["fit"] and two["rows"] == chosen and two["circuits"] == ["hea", "hsiao"]
    assert two["calls_from"] == [str(h) for h in halves] and len(two["calls_machine"]) == 2
    assert json.loads(crossovers.read_text())["call_model"]["command"].endswith("hsiao.json --update-auto")
    halves[1].write_text(json.dumps({**json.loads(halves[1].read_text()), "n_layers": 2}))
    assert main(["bench", "calls", "--rows", *map(str, halves), "--out", str(tmp_path / "mixed")]) == 2
    assert "with the same --layers; got [1, 2]" in capsys.readouterr().err and not (tmp_path / "mixed").exists()
    (tmp_path / "bad.json").write_text(json.dumps({"rows": [{"qubits": 12}]}))
    assert main(["bench", "calls", "--rows", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad")]) == 2
    assert "expected a result of qrl bench calls" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["bench", "calls", "--rows", str(path), "--qubits", "12", "--layers", "3"]) == 2  # the file.s
    assert "got --qubits --layers too; leave them out" in capsys.readouterr().err
    for bad in (["--qubits", "8"], ["--batches", "0"], ["--layers", "0"], ["--circuits", "hea", "no_such_circuit"]):
        assert main([*args, *bad]) == 2
    timed = ["bench", "calls", "--circuits", "hea", "--qubits", "12", "--batches", "32", "--layers", "1", "--budget",
             "0", "--out", str(tmp_path / "large")]
    assert main([*timed, "--update-auto"]) == 2  # one vector width, one side of the cache: refused before any work
    assert "vectors" in capsys.readouterr().err and not (tmp_path / "large").exists()
    assert main(timed) == 0 and "not fitted: fitting the call model needs" in capsys.readouterr().out
    for table in (select.auto_table, select.small_batch_table, select.tiny_batch_table, select.call_model):
        table.cache_clear()


CALLS_SUMMARY = r"in (\d+) of (\d+) calls \(worst ([\d.]+)x\).* in (\d+) \(worst ([\d.]+)x\)"
"""`qrl bench calls`' summary: the model's choices within 1.2x, of all, its worst; the rules' within, their worst."""


def test_the_readme_cost_model_rows_are_the_committed_measurements(monkeypatch):
    """README, "Rollout-sized calls by a cost model": each row's counts and worst ratios (the fitted calls by the fit's
    own choice, the others by the stored fit's), the fit, the first version's misses, the large calls and auto's ratios
    on one_cnot, from the committed JSON (the stored model and the code's default are the fit over two days since:
    test_the_readme_two_day_fit_is_the_stored_model_and_the_committed_measurements)."""
    readme = (ROOT / "README.md").read_text()
    flat = " ".join(readme.split())
    refits = {"125434": "112331", "125440": "112513", "125443": "112753"}  # `--rows` result: the timed one
    for stamp, label in (("125434", "9 circuits (fitted), 12-16 qubits"), ("125440", "4 shapes not fitted, 12-16"),
                         ("125443", "6 circuits, 18 qubits")):
        result = bench.load(COMMITTED / f"calls-20261205-{stamp}.json")
        assert result["calls_from"] == f"runs/reference/bench/calls-20261205-{refits[stamp]}.json"
        timed = bench.load(COMMITTED / f"calls-20261205-{refits[stamp]}.json")["rows"]
        assert [(r["torch_s"], r["kernel_s"]) for r in result["rows"]] == [(r["torch_s"], r["kernel_s"]) for r in timed]
        lines = bench.format_calls(result).splitlines()
        summary = next(line for line in lines if line.startswith("model's choice"))
        made, total, worst, before, worst_before = re.search(CALLS_SUMMARY, summary).groups()
        if stamp == "125434":  # the fit's own choice
            own = next(line for line in lines if line.startswith("the fit's own choice"))
            made, worst = re.search(r"in (\d+) \(worst ([\d.]+)x\)", own).groups()
        else:  # the stored fit's choices
            assert result["model"] == bench.load(COMMITTED / "calls-20261205-125434.json")["fit"]
        row = f"| {made} of {total} | {worst}x | {before} of {total} | {worst_before}x |"
        assert any(line.startswith(f"| {label}") and line.endswith(row) for line in readme.splitlines()), (label, row)
    from qrl.backends import calls

    def larger_than_the_cache(amplitudes):  # the first fit's boundary: a state batch larger than the cache is beyond
        return amplitudes * 8 > calls.CACHE_BYTES

    with monkeypatch.context() as patch:
        patch.setattr(calls, "beyond_cache", larger_than_the_cache)
        first = bench.format_calls(bench.load(COMMITTED / "calls-20261205-112331.json")).splitlines()
    first_own = re.search(r"in (\d+) \(worst ([\d.]+)x\)", next(x for x in first if x.startswith("the fit's own")))
    assert first_own.groups() == ("179", "1.23") and "the first fit had 179, worst 1.23x" in flat
    fit = bench.load(COMMITTED / "calls-20261205-125434.json")["fit"]
    ns = {w: f"{s * 1e9:.2f}" for w, s in fit["kernel_pass_s"].items()}
    assert (f"torch {fit['node_s'] * 1e6:.2f} us per node, {fit['torch_pass_s'][0] * 1e9:.2f} ns per amplitude and "
            f"pass in the cache, {fit['torch_pass_s'][1] * 1e9:.2f} beyond; kernel {ns['4']} ns per amplitude and pass "
            f"of a vector of 4, {ns['8']} ns of a vector of 8, {ns['16']} ns of a vector of 16") in flat
    first = re.search(CALLS_SUMMARY, bench.format_calls(bench.load(COMMITTED / "calls-20261205-103537.json"))).groups()
    assert first[:3] == ("75", "80", "1.56")
    assert "it missed 5 of the 80 calls" in flat and "(worst 1.56x, `brick" in flat
    large = re.search(CALLS_SUMMARY, bench.format_calls(bench.load(COMMITTED / "calls-20261205-113131.json"))).groups()
    assert "chosen within 1.2x of the faster in {} of {} calls (worst {}x".format(*large[:3]) in flat
    assert "the work ratio in {} (worst {}x".format(*large[3:]) in flat
    refit = re.search(CALLS_SUMMARY, bench.format_calls(bench.load(COMMITTED / "calls-20261205-125447.json"))).groups()
    assert refit[:3] == ("89", "90", large[2]) and "the refit in 89, the same worst" in flat
    again = {(r["qubits"], r["batch"]): r for r in bench.load(COMMITTED / "calls-20261205-113158.json")["rows"]}
    assert again[16, 64]["model_choice"] == "torch"
    assert f"{again[16, 64]['torch_s'] / again[16, 64]['kernel_s']:.2f}x slower again" in flat
    third = bench.load(COMMITTED / "calls-20261205-114212.json")["rows"][0]
    assert (third["qubits"], third["batch"]) == (15, 32) and "within 1.00x there" in flat
    assert f"{max(third['torch_s'], third['kernel_s']) / min(third['torch_s'], third['kernel_s']):.2f}" == "1.00"
    import circuit_shapes  # noqa: F401  (registers one_cnot)

    from qrl.backends import select
    from qrl.backends.calls import CallModel
    from qrl.circuits import custom_circuit

    first_fit, refit = (CallModel.from_json(bench.load(COMMITTED / f"calls-20261205-{s}.json")["fit"])
                        for s in ("112331", "125434"))
    assert "the refit chooses the same program at all 16 points" in flat
    for n in (12, 13, 14, 16):  # auto's rows on one_cnot were timed with the first fit
        kernel, torch_program = select._programs(custom_circuit("one_cnot", n_qubits=n, n_inputs=n, n_layers=5), {})
        shape = (torch_program.autograd_nodes(), torch_program.passes(), kernel.native_pass_counts(),
                 kernel.native_rotations(), n)
        with monkeypatch.context() as patch:
            patch.setattr(calls, "beyond_cache", larger_than_the_cache)
            before = [first_fit.kernel_faster(*shape, b) for b in (1, 4, 8, 16)]
        assert [refit.kernel_faster(*shape, b) for b in (1, 4, 8, 16)] == before, n
    for stamp, batch in (("112804", 1), ("112815", 4), ("112826", 8), ("112837", 16)):
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert r["batch"] == batch and r["qubits"] == [12, 13, 14, 16]
        s = r["seconds"]
        cells = [f"{s['auto'][str(n)] / min(s['torch'][str(n)], s['torch:native'][str(n)]):.2f}x" for n in r["qubits"]]
        assert f"| one_cnot | {batch} | " + " | ".join(cells) + " |" in readme, batch


def test_the_readme_lockwood_auto_rows_are_the_committed_measurements():
    """README, "Rollout-sized calls by a cost model": auto on lockwood_si at 8 samples against the faster of the torch
    program and the kernel, three runs at 14 qubits, from the committed JSON; and the model's estimate there."""
    from qrl.backends import select
    from qrl.backends.calls import CallModel
    from qrl.circuits import custom_circuit

    readme = (ROOT / "README.md").read_text()
    ratio = {}
    for stamp in ("134253", "134318", "134328"):
        r = bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")
        assert (r["batch"], r["circuit"]) == (8, "lockwood_si")
        for n in r["qubits"]:
            s = {b: r["seconds"][b][str(n)] for b in ("auto", "torch", "torch:native")}
            ratio.setdefault(n, []).append(f"{s['auto'] / min(s['torch'], s['torch:native']):.2f}x")
    assert f"| lockwood_si | 8 | {', '.join(ratio[14])} | {ratio[15][0]} | {ratio[16][0]} |" in readme
    spec = custom_circuit("lockwood_si", n_qubits=14, n_inputs=14, n_layers=5, obs_map="identity", output_scaling=False)
    kernel, torch_program = select._programs(spec, {})
    shape = (torch_program.autograd_nodes(), torch_program.passes(), kernel.native_pass_counts(),
             kernel.native_rotations(), 14)
    model = CallModel.from_json(bench.load(COMMITTED / "calls-20261205-125434.json")["fit"])  # the model of that time
    assert not model.kernel_faster(*shape, 8)  # the torch program, as timed
    estimate = model.torch_seconds(*shape[:2], 14, 8)
    assert f"The model estimates the torch program there at {estimate * 1e3:.1f} ms" in " ".join(readme.split())


def test_the_readme_malloc_rows_are_the_committed_measurements():
    """README, "glibc's malloc": the torch program's times with glibc's thresholds and qrl's, two runs each, and the
    ratios of both programs, from the committed JSON."""
    readme = (ROOT / "README.md").read_text()
    glibc = [bench.load(COMMITTED / f"scaling-20261205-{stamp}.json") for stamp in ("115008", "115136")]
    fixed = [bench.load(COMMITTED / f"scaling-20261205-{stamp}.json") for stamp in ("115047", "115218")]
    for n in ("12", "14", "16", "18", "20"):
        times = [[r["seconds"][b][n] for r in runs] for runs in (glibc, fixed) for b in ("torch", "torch:native")]
        torch_ratio = ", ".join(f"{g / f:.2f}x" for g, f in zip(times[0], times[2], strict=True))
        kernel_ratio = ", ".join(f"{g / f:.2f}x" for g, f in zip(times[1], times[3], strict=True))
        row = (f"| {n} | {bench._ms(times[0][0])}, {bench._ms(times[0][1])} | {bench._ms(times[2][0])}, "
               f"{bench._ms(times[2][1])} | {torch_ratio} | {kernel_ratio} |")
        assert row in readme, row
    peaks = [max(max(v.values()) for v in r["peak_rss_gb"].values()) for r in glibc + fixed]
    assert f"{peaks[2]:.2f} GiB resident (both runs) against {peaks[0]:.2f} and {peaks[1]:.2f}" in " ".join(
        readme.split()) and f"{peaks[3]:.2f}" == f"{peaks[2]:.2f}"


def _seconds(stamp: str, n: int) -> dict[str, float]:
    return {b: v[str(n)] for b, v in bench.load(COMMITTED / f"scaling-20261205-{stamp}.json")["seconds"].items()}


def test_the_readme_readout_rows_are_the_committed_measurements():
    """README, "The readout from 18 qubits": the before/after table (two runs of each commit, alternately), the misses
    that started it, the rollout-sized rows before and after the model with a size factor, from the JSON."""
    readme = _readme()
    runs = {"hea": (("222239", "222423"), ("222336", "222526")), "hsiao": (("222311", "222456"), ("222358", "222548"))}
    for name, (before, after) in runs.items():
        for n in bench.load(COMMITTED / f"scaling-20261205-{before[0]}.json")["qubits"]:
            tb, ta = [_seconds(s, n) for s in before], [_seconds(s, n) for s in after]
            batch = 8 if name == "hea" else 64
            row = (f"| `{name}`, {batch} | {n} | {', '.join(_ms(t['torch']) for t in tb)} | "
                   f"{', '.join(_ms(t['torch']) for t in ta)} | "
                   f"{sum(t['torch'] for t in tb) / sum(t['torch'] for t in ta):.2f}x | "
                   f"{', '.join(_ms(t['torch:native']) for t in tb)}; "
                   f"{', '.join(_ms(t['torch:native']) for t in ta)} |")
            assert row in readme, row
    missed = [_seconds("213058", n) for n in (20, 22)]
    assert "found `auto` {:.2f}x and {:.2f}x slower than the kernel".format(
        *(t["auto"] / t["torch:native"] for t in missed)) in readme
    rows = (("hsiao", 20, "no", "220015", None), ("hsiao", 22, "no", "220015", "222610"),
            ("hsiao", 20, "yes", "220512", None), ("hsiao", 22, "yes", "220512", "222733"),
            ("Meyer et al.'s", 20, "no", "220228", "222757"), ("Meyer et al.'s", 22, "no", "220228", None),
            ("Meyer et al.'s", 20, "yes", "220759", "222918"), ("Meyer et al.'s", 22, "yes", "220759", None))
    for name, n, grad, then, now in rows:
        t = _seconds(then, n)
        cell = f"`{name}`" if name == "hsiao" else name
        r = _seconds(now, n) if now else t
        after = "(as then)" if now is None else f"{r['auto']:.2f}"
        assert (f"| {cell}, {n} | {grad} | {t['auto']:.2f} | {t['torch']:.2f} | {t['torch:native']:.2f} | "
                f"{t['auto'] / min(t.values()):.2f}x | {after} | {r['auto'] / min(r.values()):.2f}x |") in readme
    worst = _seconds("222757", 20)
    assert f"gradient in one run of four: {worst['auto'] / min(worst.values()):.2f}x**" in readme
    calls = bench.load(COMMITTED / "calls-20261205-222206.json")
    ratios = [r[f"{r['model_choice']}_s"] / min(r["torch_s"], r["kernel_s"]) for r in calls["rows"]]
    assert len(ratios) == 24 and f"24 of 24 (worst {max(ratios):.2f}x" in readme


def test_the_readme_permutation_rows_are_the_committed_measurements():
    """README, "Permutation gates above 16 qubits": `strongly_entangling` before and after the copied permutation
    gates, two runs of each commit, alternately, with and without a gradient, from the JSON."""
    readme = _readme()
    runs = {"no": (("233640", "234014"), ("233806", "234145")), "yes": (("233745", "234124"), ("233906", "234245"))}
    for grad, (before, after) in runs.items():
        for n in (18, 20):
            tb, ta = [_seconds(s, n) for s in before], [_seconds(s, n) for s in after]
            rss = [bench.load(COMMITTED / f"scaling-20261205-{s}.json")["peak_rss_gb"]["torch"][str(n)]
                   for s in (*before, *after)]
            ratios = ", ".join(f"{b['torch'] / a['torch']:.2f}x" for b, a in zip(tb, ta, strict=True))
            row = (f"| {n} | {grad} | {', '.join(_ms(t['torch']) for t in tb)} | "
                   f"{', '.join(_ms(t['torch']) for t in ta)} | {ratios} | "
                   f"{', '.join(_ms(t['torch:native']) for t in tb)}; "
                   f"{', '.join(_ms(t['torch:native']) for t in ta)} | "
                   f"{rss[0]:.2f}, {rss[1]:.2f}; {rss[2]:.2f}, {rss[3]:.2f} |")
            assert row in readme, row


def test_the_readme_heap_pad_rows_are_the_committed_measurements():
    """README, "A heap pad for large states": the torch program and the kernel before and after the pad, two runs of
    each commit, alternately, from the JSON."""
    readme = _readme()
    runs = (("Meyer et al.'s", "no", ("20261205-235350", "20261205-235953"), ("20261205-235650", "20261206-000246")),
            ("`hsiao`", "yes", ("20261205-235459", "20261206-000103"), ("20261205-235745", "20261206-000343")),
            ("`hea`", "yes", ("20261205-235530", "20261206-000132"), ("20261205-235815", "20261206-000411")))
    _assert_before_after_rows(readme, runs)


def _assert_before_after_rows(readme: str, runs) -> None:
    """README tables of the torch program before and after a change, per ``(name, gradient, before stamps, after
    stamps)``: its times, their ratio of sums, the kernel's times and the peak RSS, each run's from its JSON."""
    for name, grad, before, after in runs:
        b, a = ([bench.load(COMMITTED / f"scaling-{s}.json") for s in stamps] for stamps in (before, after))
        for n in map(str, b[0]["qubits"]):
            tb, ta = ([d["seconds"]["torch"][n] for d in runs] for runs in (b, a))
            kb, ka = ([d["seconds"]["torch:native"][n] for d in runs] for runs in (b, a))
            rb, ra = ([f"{d['peak_rss_gb']['torch'][n]:.2f}" for d in runs] for runs in (b, a))
            row = (f"| {name} | {n} | {grad} | {', '.join(map(_ms, tb))} | {', '.join(map(_ms, ta))} | "
                   f"{sum(tb) / sum(ta):.2f}x | {', '.join(map(_ms, kb))}; {', '.join(map(_ms, ka))} | "
                   f"{', '.join(rb)}; {', '.join(ra)} |")
            assert row in readme, row


def test_the_large_state_factor_is_the_fit_to_the_committed_calls():
    """``LARGE_STATE_FACTOR`` (qrl/backends/calls.py) is the least-squares line through the measured over estimated
    times of the torch program in the committed ``qrl bench calls`` run at 20-24 qubits since runs without autograd
    keep their buffers from call to call, each estimate by the model fitted over two days (2026-12-06; by the model
    stored in that run, the README's ratios, (0.97, 0.04)), to two digits; the README quotes those ratios, and those of
    the earlier fits (20-24 and 20-22 qubits after the overlaps, reused buffers, the heap pad of 512 MiB, of 1 GiB,
    none)."""
    from qrl.backends.calls import LARGE_STATE_FACTOR, CallModel

    readme = _readme()
    ratios = {}
    for stamp in ("20261206-082018", "20261206-055132", "20261206-045358", "20261206-030541", "20261206-004720",
                  "20261205-234714", "20261205-235213"):  # kept buffers; overlaps at 20-24 qubits, 20-22; buffers; pads
        run = bench.load(COMMITTED / f"calls-{stamp}.json")
        model = CallModel.from_json(run["model"])
        ratios[stamp] = [(np.log2(r["batch"] * 2 ** r["qubits"] * 8 / 2**20) - 6,
                          r["torch_s"] / model.torch_seconds(r["nodes"], r["torch_passes"], r["qubits"], r["batch"]))
                         for r in run["rows"]]
        quoted = ", ".join(f"{y:.2f}" for _, y in ratios[stamp])
        assert f"measured over estimated {quoted}" in readme, quoted
    model = CallModel.from_json(bench.load(COMMITTED / "calls-20261206-231724.json")["fit"])  # the fit over two days
    run = bench.load(COMMITTED / "calls-20261206-082018.json")
    x, y = np.array([(np.log2(r["batch"] * 2 ** r["qubits"] * 8 / 2**20) - 6,
                      r["torch_s"] / model.torch_seconds(r["nodes"], r["torch_passes"], r["qubits"], r["batch"]))
                     for r in run["rows"]]).T
    slope, intercept = np.polyfit(x, y, 1)
    assert (round(intercept, 2), round(slope, 2)) == LARGE_STATE_FACTOR == (1.01, 0.04)
    assert "`LARGE_STATE_FACTOR` (0.97, 0.04) became (1.01, 0.04)" in readme


def test_model_ratios_are_the_measured_over_the_estimated_times():
    """``bench.model_ratios``: each timed call of a scaling result over the cost model's estimate, as the model computes
    it for the same circuit; a result without both programs is refused with what to run."""
    from qrl.backends.select import NATIVE, call_model

    result = bench.bench_scaling(qubits=(12,), batch=3, n_layers=1, backends=("torch", NATIVE), budget_s=0.0,
                                 circuit="meyer_iqp", no_grad=True)
    (row,) = bench.model_ratios(result)
    assert (row["circuit"], row["qubits"], row["batch"], row["gradient"]) == ("meyer_iqp", 12, 3, False)
    spec = bench._named_spec("meyer_iqp", 12, 1)
    from qrl.backends.select import make_backend

    torch_program, kernel = make_backend(spec, "torch"), make_backend(spec, NATIVE)
    estimate = call_model().torch_seconds(torch_program.autograd_nodes(), torch_program.passes(), 12, 3)
    assert abs(row["torch"] - result["seconds"]["torch"]["12"] / estimate) < 1e-12
    estimate = call_model().kernel_seconds(kernel.native_pass_counts(), kernel.native_rotations(), 12, 3)
    assert abs(row["kernel"] - result["seconds"][NATIVE]["12"] / estimate) < 1e-12
    with pytest.raises(QRLError, match="try --backends torch torch:native"):
        bench.model_ratios({**result, "seconds": {"torch": result["seconds"]["torch"]}})


def test_the_readme_z_word_rows_are_the_committed_measurements():
    """README, "Z words of several wires from 18 qubits": the torch program before and after, two runs each, the
    ratios of their sums and the commands' peaks, from the JSON."""
    readme = _readme()
    before, after = (("001715", "001811"), ("001742", "001839"))
    load = _scaling_run
    for n in ("18", "20"):
        tb, ta = [load(s)["seconds"]["torch"][n] for s in before], [load(s)["seconds"]["torch"][n] for s in after]
        assert (f"{_ms(tb[0])} and {_ms(tb[1])} ms before, {_ms(ta[0])} and {_ms(ta[1])} after at {n} qubits "
                f"({sum(tb) / sum(ta):.2f}x)") in readme, n
    peaks = [f"{load(s)['peak_rss_gb']['torch']['20']:.2f}" for s in (*before, *after)]
    assert f"peak {peaks[0]} and {peaks[1]} GiB before, {peaks[2]} and {peaks[3]} after" in readme


def test_the_readme_auto_rows_after_the_refit_are_the_committed_measurements():
    """README, "The cost model above 18 qubits, refitted with the pad": auto, the torch program and the kernel at 20-22
    qubits, 22 rows, and the one miss, from the JSON."""
    readme = _readme()
    names = {"hsiao": "`hsiao`", "meyer_iqp": "Meyer et al.'s", "hea": "`hea`", "chen_vqdqn": "`chen_vqdqn`",
             "strongly_entangling": "`strongly_entangling`", "lockwood_si": "`lockwood_si`",
             "jerbi_skolik": "`jerbi_skolik`"}
    stamps = ("000434", "000547", "000728", "000943", "001024", "001210", "001341", "001439", "001536", "001620",
              "001628", "001638")
    ratios = []
    for stamp in stamps:
        run = _scaling_run(stamp)
        for n in map(str, run["qubits"]):
            t = {b: run["seconds"][b][n] for b in ("auto", "torch", "torch:native")}
            ratios.append(t["auto"] / min(t.values()))
            row = (f"| {names[run.get('circuit') or run['ansatz']]} | {n} | {run['batch']} | "
                   f"{'no' if run.get('no_grad') else 'yes'} | {t['auto']:.2f} | {t['torch']:.2f} | "
                   f"{t['torch:native']:.2f} | {ratios[-1]:.2f}x |")
            assert row in readme, row
    worst = sorted(ratios)
    assert len(ratios) == 22 and f"21 of 22 within {worst[-2]:.2f}x" in readme
    assert f"at 22 qubits without a gradient: {worst[-1]:.2f}x**" in readme


def test_the_readme_rows_without_a_gradient_after_their_own_factor_are_the_committed_measurements():
    """README, calls without a gradient above 18 qubits after FORWARD_STATE_FACTOR: the ratios quoted, from the JSON."""
    readme = _readme()
    load = _scaling_seconds
    ratio = _auto_over_fastest
    first, second = load("002318"), load("002608")
    assert (f"4.17 and 3.00 s on `auto` against 4.16 and 2.99 on the torch program and 6.64 and 6.57 on the kernel "
            f"({ratio(first, '22'):.2f}x and {ratio(second, '22'):.2f}x;") in readme
    assert [round(s[b]["22"], 2) for s in (first, second) for b in ("auto", "torch", "torch:native")] == [
        4.17, 4.16, 6.64, 3.00, 2.99, 6.57]
    assert f"at 20 qubits {ratio(first, '20'):.2f}x and {ratio(second, '20'):.2f}x" in readme
    assert f"`chen_vqdqn` {ratio(load('002422'), '22'):.2f}x, `hea` {ratio(load('002442'), '22'):.2f}x" in readme


def test_the_readme_rows_with_the_smaller_pad_are_the_committed_measurements():
    """README, "The pad at 512 MiB": the torch program and the kernel with 512 MiB, and auto's ratios, from the JSON."""
    readme = _readme()
    load = _scaling_seconds
    meyer, hsiao = load("004144"), load("004248")
    assert (f"{meyer['torch']['20'] * 1e3:.0f} ms at 20 qubits" in readme
            and f"{meyer['torch']['22'] * 1e3:.0f} ms at 22 (its gain lost: the kernel "
                f"{meyer['torch:native']['22'] * 1e3:.0f} ms in that run)" in readme)
    assert (f"`hsiao` with one {hsiao['torch']['20'] * 1e3:.1f} ms at 20 and {hsiao['torch']['22'] * 1e3:.0f} "
            f"at 22") in readme
    ratio = lambda s, n: f"{_auto_over_fastest(s, n):.2f}x"  # noqa: E731
    first, second, nograd, grad = load("004914"), load("005257"), load("004939"), load("005051")
    assert (f"twice, {ratio(first, '20')}, {ratio(first, '22')}, {ratio(second, '20')} and {ratio(second, '22')}"
            in readme)
    assert f"{ratio(nograd, '20')}, {ratio(nograd, '22')}, {ratio(grad, '20')} and {ratio(grad, '22')}" in readme
    assert f"up to {meyer['torch']['22'] / meyer['torch:native']['22']:.2f}x slower than the kernel" in readme


def test_the_readme_hea_goal_on_the_default_device_is_the_committed_measurements():
    """README, issue 15's goals, `hea` at 16-20 qubits and 8 samples: the kernel's range in the heap pad's four runs
    and the ratios to the times when the issue was filed (367 ms, 1.65 s, 6.7 s)."""
    readme = _readme()
    runs = [bench.load(COMMITTED / f"scaling-{s}.json")["seconds"]["torch:native"]
            for s in ("20261205-235530", "20261206-000132", "20261205-235815", "20261206-000411")]
    cells, ratios = [], []
    for n, filed in (("16", 0.367), ("18", 1.65), ("20", 6.7)):
        times = [r[n] for r in runs]
        cells.append(f"{_ms(min(times))}-{_ms(max(times))} ms")
        ratios.append(f"{filed / max(times):.1f}x-{filed / min(times):.1f}x")
    assert f"{cells[0][:-3]}, {cells[1][:-3]} and {cells[2]} at 16, 18 and 20 qubits" in readme
    assert f"({ratios[0]}, {ratios[1]} and {ratios[2]})" in readme
    auto = bench.load(COMMITTED / "scaling-20261206-001210.json")["seconds"]["auto"]["20"]
    assert f"`auto` itself {auto:.2f} s at 20 qubits" in readme


def test_the_readme_four_qubit_rows_after_the_malloc_changes_are_the_committed_measurements():
    """README, issue 15's 4-qubit goal: PPO and DQN VQC / MLP on the commits after, before and after the heap pad."""
    readme = _readme()
    runs = [bench.load(COMMITTED / f"train-20261206-{s}.json")["runs"] for s in ("010518", "010727", "010934")]
    ratio = {algo: [f"{next(r for r in run if r['algo'] == algo)['vqc_over_mlp']:.2f}x" for run in runs]
             for algo in ("ppo", "dqn")}
    assert (f"PPO {ratio['ppo'][0]}, {ratio['ppo'][1]} and {ratio['ppo'][2]}, DQN {ratio['dqn'][0]}, "
            f"{ratio['dqn'][1]} and {ratio['dqn'][2]}") in readme
    mlp = [next(r for r in run if r["algo"] == "ppo")["results"]["mlp"]["steps_per_s"] for run in runs]
    assert f"The MLP ran {min(mlp):.0f}-{max(mlp):.0f} PPO steps/s" in readme


def test_the_readme_rows_without_a_gradient_at_21_and_23_qubits_are_the_committed_measurements():
    """README: auto on calls without a gradient at 21 and 23 qubits (not fitted there), worst ratio and choices."""
    readme = _readme()
    ratios, choices = [], []
    for stamp in ("011928", "012023", "012202", "012423"):
        seconds = _scaling_seconds(stamp)
        for n in ("21", "23"):
            ratios.append(_auto_over_fastest(seconds, n))
            choices.append(seconds["torch"][n] < seconds["torch:native"][n])
    assert f"`auto` within {max(ratios):.2f}x of the fastest at all 8" in readme
    assert choices == [True] * 4 + [False] * 4  # the torch program fastest for Meyer et al.'s and hsiao, not the others


def test_the_readme_rows_of_the_reused_buffers_are_the_committed_measurements():
    """README, "Reused buffers for runs without autograd": the torch program and the kernel before and after, two runs
    of each commit alternately (Meyer et al.'s circuit with a gradient once), and auto without a gradient after, from
    the JSON."""
    readme = _readme()
    _assert_before_after_rows(readme, (("Meyer et al.'s", "no", _day("024344", "025535"), _day("024859", "025906")),
                                       ("`hsiao`", "yes", _day("024448", "025641"), _day("024957", "030005")),
                                       ("`hea`", "yes", _day("024611", "025804"), _day("025150", "030157")),
                                       ("Meyer et al.'s", "yes", _day("024752"), _day("025413"))))
    nograd = [_scaling_seconds(s) for s in
              ("030601", "030725", "030803", "030931", "031031", "031131", "031208", "031215", "031225")]
    ratios = [_auto_over_fastest(s, n) for s in nograd for n in s["auto"]]
    assert len(ratios) == 16 and f"`auto` within {max(ratios):.2f}x of the fastest in all 16" in readme
    names = {"032145": "Meyer et al.'s", "032246": "`hsiao`", "032619": "`chen_vqdqn`", "033011": "`lockwood_si`",
             "033235": "`jerbi_skolik`", "033600": "`strongly_entangling`"}
    worst = 0.0
    for stamp, name in names.items():  # auto with a gradient after the refit
        s = _scaling_seconds(stamp)
        for n in ("20", "22"):
            ratio = _auto_over_fastest(s, n)
            worst = max(worst, ratio)
            assert (f"| {name} | {n} | {s['auto'][n]:.2f} | {s['torch'][n]:.2f} | {s['torch:native'][n]:.2f} | "
                    f"{ratio:.2f}x |") in readme
    assert f"Within {worst:.2f}x at all 12" in readme
    fits = {stamp: _scaling_seconds(stamp) for stamp in
            ("034841", "035122", "035334")}  # 21 and 23 qubits, where the factor was not fitted
    ratio = {stamp: [f"{_auto_over_fastest(s, n):.2f}x" for n in s["auto"]]
             for stamp, s in fits.items()}
    assert (f"`hsiao` {ratio['034841'][0]} and {ratio['034841'][1]} (the torch program" in readme
            and f"`chen_vqdqn` {ratio['035122'][0]} and {ratio['035122'][1]} (the kernel)" in readme
            and f"Meyer et al.'s {ratio['035334'][0]} at 21" in readme)


def test_the_readme_rows_of_the_overlaps_without_conjugation_are_the_committed_measurements():
    """README, "The adjoint method's overlaps without a conjugated copy": the before/after table (two runs each of three
    commands), auto with a gradient on the two circuits nearest the crossover after the first refit, and the three
    calls whose choice that refit changed, each from its JSON."""
    readme = _readme()
    _assert_before_after_rows(readme, (("`hsiao`", "yes", _day("043135", "044113"), _day("043227", "044207")),
                                       ("`hea`", "yes", _day("043421", "044358"), _day("043550", "044527")),
                                       ("Meyer et al.'s", "yes", _day("043812", "044751"), _day("044016", "044950"))))
    chen, lockwood = (_scaling_seconds(s) for s in ("050251", "050615"))
    ratio = lambda s, n: f"{_auto_over_fastest(s, n):.2f}x"  # noqa: E731
    assert (f"`chen_vqdqn` {ratio(chen, '20')} and {ratio(chen, '22')} at 20 and 22 qubits "
            f"({chen['auto']['20']:.2f} s against {chen['torch:native']['20']:.2f} on the kernel at 20; "
            f"the torch program {chen['torch']['20']:.2f})") in readme
    assert (f"`lockwood_si` {ratio(lockwood, '20')} and {ratio(lockwood, '22')} (the torch program "
            f"{lockwood['torch']['20']:.2f} and {lockwood['torch']['22']:.2f} s against "
            f"{lockwood['torch:native']['20']:.2f} and {lockwood['torch:native']['22']:.2f} on the kernel") in readme
    meyer, chen24 = (_scaling_seconds(s) for s in ("052237", "051912"))
    assert (f"Meyer et al.'s at 23 qubits and 16 samples, auto (the torch program) the fastest "
            f"({meyer['auto']['23']:.1f} s; the kernel {meyer['torch:native']['23']:.1f}") in readme
    assert ratio(meyer, "23") == "1.00x"
    assert (f"`chen_vqdqn` at 24 qubits and 6 samples, **auto {ratio(chen24, '24')}** (the torch program, "
            f"{chen24['auto']['24']:.1f} s; the same program beside it {chen24['torch']['24']:.1f}, the kernel "
            f"{chen24['torch:native']['24']:.1f}") in readme
    big = bench.load(COMMITTED / "scaling-20261206-050905.json")
    assert (big["batch"], big["qubits"]) == (3, [26])
    seconds = big["seconds"]
    assert (f"{seconds['torch']['26']:.1f} s on the torch program against {seconds['torch:native']['26']:.1f} on the "
            f"kernel, {big['peak_rss_gb']['torch']['26']:.2f} GiB peak") in readme


def test_the_readme_lockwood_si_at_14_qubits_timed_again_is_the_committed_measurement():
    """README, "Rollout-sized calls by a cost model": ``lockwood_si`` at 14 qubits and 8 samples, auto over the fastest
    in the two runs of 2026-12-06, from their JSON (1.19x-1.23x before)."""
    readme = _readme()
    runs = [_scaling_seconds(s) for s in ("055851", "055901")]
    ratios = [_auto_over_fastest(s, "14") for s in runs]
    assert max(ratios) < 1.2
    assert f"auto (the torch program) {ratios[0]:.2f}x and {ratios[1]:.2f}x of the kernel" in readme
    assert f"{ratios[0]:.2f}x and {ratios[1]:.2f}x in two runs on 2026-12-06" in readme


def test_the_readme_huge_page_trial_is_the_committed_measurement():
    """README, "Where hsiao's time at 24 qubits goes": the torch program at 22 qubits with and without torch's
    transparent huge pages (``hea`` with a gradient, Meyer et al.'s without), one run each way, from their JSON."""
    readme = _readme()
    seconds = {s: _scaling_seconds(s)["torch"]["22"]
               for s in ("061457", "061640", "061746", "061904")}
    with_thp, without = _ms(seconds["061640"]), _ms(seconds["061457"])
    assert f"took {with_thp} ms at 22 qubits on the torch program with it against {without}" in readme
    assert f"meyer_iqp --no-grad` {_ms(seconds['061904'])} against {_ms(seconds['061746'])}" in readme


def test_the_readme_rows_of_the_buffers_kept_across_calls_are_the_committed_fresh_process_calls():
    """README, "Buffers kept from call to call": ``hsiao`` and ``hea`` at 24 qubits and 8 samples in fresh processes,
    before and after, two rounds of three calls each; per row the second and third calls' forward + backward seconds
    (round by round), their ratio of sums, the page faults of those calls and the peak RSS, from the committed JSON."""
    _assert_fresh_call_rows("fresh-calls-20261206-074240.json", (("hsiao", True, "`hsiao` | yes", 4),
                                                                  ("hea", True, "`hea` | yes", 4),
                                                                  ("hea", False, "`hea` | no", 4)))


def test_the_readme_rows_of_the_blocked_per_sample_products_are_the_committed_fresh_process_calls():
    """README, "Per-sample products in blocks of rows": ``hea`` at 24 qubits and 8 samples in fresh processes, before
    and after, two rounds (three calls with a gradient, four without), as the rows above; and the 20-22 qubit runs."""
    _assert_fresh_call_rows("fresh-calls-20261206-102000.json", (("hea", True, "`hea` | yes", 4),
                                                                  ("hea", False, "`hea` | no", 6)))
    readme = _readme()
    seconds = [_scaling_seconds(s)["torch"] for s in ("102112", "102204", "102256", "102348")]
    for n in ("20", "22"):
        assert ", ".join(_ms(t[n]) for t in seconds[:3]) + f" and {_ms(seconds[3][n])}" in readme


def test_the_readme_rollout_calls_above_20_qubits_are_the_committed_measurements():
    """README, "Per-sample products in blocks of rows": calls without a gradient timed with auto beside both programs
    (``chen_vqdqn`` at 22 qubits and 7, 8, 9 samples, where the model's choice turns torch, kernel, torch; ``hea`` at
    24 and 8): auto within 1.2x of the fastest at each, and the numbers in the README from their JSON."""
    readme = _readme()  # whitespace runs as single spaces: the numbers as read, whatever the line breaks
    runs = [_scaling_run(s) for s in ("103529", "103621", "103723", "103925")]
    for run in runs:
        assert run.get("no_grad") and _auto_over_fastest(run["seconds"], str(run["qubits"][0])) < 1.2
    chen = [[_ms(r["seconds"][backend]["22"]) for r in runs[:3]] for backend in ("auto", "torch", "torch:native")]
    for first, second, third in chen:
        assert f"{first}, {second} and {third}" in readme
    hea = runs[3]["seconds"]
    assert (f"auto (the kernel) {_ms(hea['auto']['24'])} ms, the torch program {_ms(hea['torch']['24'])}, the kernel "
            f"{_ms(hea['torch:native']['24'])}") in readme
    ratios = ", ".join(f"{_auto_over_fastest(r['seconds'], str(r['qubits'][0])):.2f}x" for r in runs[:3])
    assert f"Auto within {ratios} and {_auto_over_fastest(hea, '24'):.2f}x of the fastest" in readme


def _assert_fresh_call_rows(name: str, rows: tuple) -> None:
    """Each ``(circuit, gradient, label, calls)`` row of a README table of calls in fresh processes (before, after):
    the calls after the first of each round, their seconds, ratio of sums, page faults and peak RSS, from ``name``."""
    readme, measured = _readme(), json.loads((COMMITTED / name).read_text())["rows"]
    for circuit, gradient, label, count in rows:
        cells, sums = [], []
        for tree in ("before", "after"):
            calls = sorted((r for r in measured if (r["tree"], r["circuit"], r["gradient"]) == (tree, circuit, gradient)
                            and r["call"] > 1), key=lambda r: (r["round"], r["call"]))
            assert len(calls) == count
            seconds = [r["forward_s"] + r["backward_s"] for r in calls]
            faults = [r["page_faults"] / 1e6 for r in calls]
            sums.append(sum(seconds))
            cells.append((", ".join(f"{s:.2f}" for s in seconds), f"{min(faults):.2f}-{max(faults):.2f}",
                          f"{max(r['max_rss_gib'] for r in calls):.2f}"))
        (tb, fb, rb), (ta, fa, ra) = cells
        row = f"| {label} | {tb} | {ta} | {sums[0] / sums[1]:.2f}x | {fb}; {fa} | {rb}; {ra} |"
        assert row in readme, row


def test_the_readme_rows_at_20_and_22_qubits_after_the_kept_buffers_are_the_committed_measurements():
    """README, "Buffers kept from call to call": the torch program before (``c14a55d``) and after (``8324ceb``) at 20
    and 22 qubits, one run each way, from their JSON."""
    _assert_before_after_rows(_readme(), (("`hsiao`", "yes", _day("082112"), _day("082200")),
                                          ("`hea`", "yes", _day("082320"), _day("082441")),
                                          ("Meyer et al.'s", "yes", _day("082641"), _day("082841")),
                                          ("`hea`", "no", _day("082905"), _day("082930"))))


def test_each_backends_first_scaling_call_starts_with_an_empty_buffer_pool(monkeypatch):
    """``qrl bench scaling`` times a slow backend by its first call: that call must not take the state batches the
    backend before it left in the torch programs' pool (runs without autograd, the pool's bound lowered to every
    size). The pool is non-empty after the first backend's call, and empty as each next backend's first call starts."""
    from qrl.simulator import programs

    monkeypatch.setattr(programs, "REUSE_MIN_BYTES", 0)
    held, forward = [], bench._forward

    def watched(vqc, x, place="cpu"):
        call = forward(vqc, x, place)
        first = []

        def step():
            if not first:
                held.append(programs.BUFFER_POOL.held_bytes())
                first.append(True)
            call()
            if len(held) == 1:
                held.append(programs.BUFFER_POOL.held_bytes())  # what the first backend left

        return step

    monkeypatch.setattr(bench, "_forward", watched)
    bench.bench_scaling(qubits=(8,), batch=4, backends=("torch:wires", "torch:adjoint"), budget_s=0.0, no_grad=True)
    assert held[0] == 0 and held[1] > 0 and held[2] == 0


def test_the_readme_auto_checks_after_the_large_state_refit_are_the_committed_measurements():
    """README, "Buffers kept from call to call" and after: seven calls the refitted large-state factor moved to the
    torch program, timed with auto beside both programs; auto within 1.2x of the fastest, the kernel (the old choice)
    not."""
    readme = _readme()  # whitespace runs as single spaces: the numbers as read, whatever the line breaks
    for stamp, n in (("084054", "22"), ("084251", "24"), ("095433", "24"), ("095559", "22"), ("104518", "24"),
                     ("104909", "24"), ("105502", "24"), ("110751", "24")):
        seconds = _scaling_seconds(stamp)
        assert _auto_over_fastest(seconds, n) < 1.2 and seconds["torch:native"][n] / seconds["torch"][n] > 1.2
        assert (f"auto {_ms(seconds['auto'][n])} ms, the torch program {_ms(seconds['torch'][n])}, the kernel "
                f"{_ms(seconds['torch:native'][n])}") in readme
        ratio = seconds["torch:native"][n] / seconds["torch"][n]
        assert f"{ratio:.2f}x" in readme and f"{_auto_over_fastest(seconds, n):.2f}x" in readme


def test_the_readme_last_chunk_table_is_the_committed_measurements():
    """README, "The last chunk keeps its state": auto's chunked gradient calls before and after, one call each, their
    ratios and peaks; and the kernel's one call beside auto's after at 25 qubits, slower than auto."""
    readme = _readme()
    rows = (("meyer_iqp", "25", 16, "123432", "124523"), ("hea", "26", 16, "125721", "125135"),
            ("hea", "24", 64, "130148", "130600"))
    for circuit, n, batch, before, after in rows:
        runs = [_scaling_run(stamp) for stamp in (before, after)]
        assert all(r["batch"] == batch and r["n_layers"] == 5 and r["qubits"] == [int(n)] for r in runs)
        assert [r.get("circuit") or r["ansatz"] for r in runs] == [circuit, circuit]
        old, new = (r["seconds"]["auto"][n] for r in runs)
        peaks = ", ".join(f"{r['peak_rss_gb']['auto'][n]:.2f}" for r in runs)
        assert new < old and f"| {old:.1f} | {new:.1f} | {old / new:.2f}x faster | {peaks} |" in readme
    seconds = _scaling_seconds("124523")
    assert seconds["torch:native"]["25"] > seconds["auto"]["25"]
    ratio = seconds["torch:native"]["25"] / seconds["auto"]["25"]
    assert (f"took {seconds['torch:native']['25']:.1f} s in the same process as auto's {seconds['auto']['25']:.1f} "
            f"(auto {ratio:.2f}x faster") in readme
    hsiao = _scaling_run("133050")
    auto, peak = hsiao["seconds"]["auto"]["26"], hsiao["peak_rss_gb"]["auto"]["26"]
    assert (hsiao["circuit"], hsiao["batch"]) == ("hsiao", 16)
    assert f"--backends auto`): {auto:.1f} s at {peak:.2f} GiB peak" in readme
    assert f"took 350.8 s at 12.45 GiB: auto {350.8 / auto:.2f}x faster" in readme  # the kernel's, printed by the block


def test_the_readme_hsiao_update_calls_above_20_qubits_are_the_committed_measurements():
    """README, "The last chunk keeps its state": `hsiao`'s gradient calls of 32 samples at 22, 23 and 25 qubits before
    (auto on the kernel; the torch program faster) and after (auto on the torch program), as committed."""
    readme = _readme()
    before = {n: _scaling_seconds(stamp) for n, stamp in (("22", "134205"), ("23", "134438"))}
    for n, seconds in before.items():
        assert seconds["torch"][n] < seconds["torch:native"][n] < seconds["auto"][n]  # auto ran the kernel, first
    assert "at 22 qubits took 18396 ms, its later ones " + _ms(before["22"]["torch"]["22"]) in readme
    assert (f"the torch program {_ms(before['22']['torch']['22'])} ms against the kernel's "
            f"{_ms(before['22']['torch:native']['22'])} at 22 qubits, {_ms(before['23']['torch']['23'])} against "
            f"{_ms(before['23']['torch:native']['23'])} at 23") in readme
    assert f"auto, the kernel, {_ms(before['22']['auto']['22'])} and {_ms(before['23']['auto']['23'])} ms" in readme
    chunks = 138.5  # the torch program in chunks at 25 qubits, printed by the README's block (no JSON)
    old = _scaling_seconds("133658")["auto"]["25"]
    assert f"{chunks} s in chunks against auto's (the kernel in chunks of 16) {old:.1f} s" in readme
    assert f"auto {old / chunks:.2f}x slower than the fastest" in readme
    new = _scaling_seconds("135657")["auto"]["25"]
    assert f"32 samples {new:.1f} s (`scaling-20261206-135657.json`, {old / new:.2f}x faster than before, " \
           f"{new / chunks:.2f}x the torch program's chunks" in readme
    after, reverse = _scaling_seconds("140040"), _scaling_seconds("140214")
    assert after["auto"]["23"] < after["torch"]["23"] < after["torch:native"]["23"]
    assert (f"auto {_ms(after['auto']['23'])} ms (timed again; its first call 19565), the torch program "
            f"{_ms(after['torch']['23'])} and the kernel {_ms(after['torch:native']['23'])}") in readme
    assert f"the torch program {_ms(reverse['torch']['23'])}, auto {_ms(reverse['auto']['23'])}" in readme
    meyer = _scaling_run("142412")  # Meyer et al.'s at 25 qubits and 32 samples: auto on the kernel, a miss
    auto, chunks = meyer["seconds"]["auto"]["25"], 604.1  # the torch program's chunks, printed by the block
    assert (meyer["circuit"], meyer["batch"]) == ("meyer_iqp", 32) and auto / chunks > 1.2
    assert f"auto {auto:.1f} s (`scaling-20261206-142412.json`" in readme
    assert f"program's {chunks} s in four chunks of 8" in readme
    assert f"**auto {auto / chunks:.2f}x slower, a miss" in readme
    assert f"circuit at 25 qubits and 32 samples: {auto / chunks:.2f}x**" in readme


def test_the_readme_meyer_update_calls_table_is_the_committed_measurements():
    """README, "Update-sized gradient calls follow the model where it weighed the adjoint method": Meyer et al.'s
    gradient calls at 19-25 qubits before (auto on the kernel) and after (auto on the torch program), as committed."""
    readme = _readme()
    before = {n: _scaling_run(stamp) for n, stamp in (("20", "150616"), ("22", "150923"), ("24", "151441"))}
    after = {n: _scaling_run(stamp) for n, stamp in (("20", "152558"), ("20/64", "152716"), ("22", "152904"),
                                                      ("24", "153442"), ("25", "154435"))}
    for run in (*before.values(), *after.values()):
        assert run["circuit"] == "meyer_iqp" and run["batch"] == (64 if run is after["20/64"] else 32)
    for n in ("20", "22"):
        old, new = before[n]["seconds"], after[n]["seconds"]
        assert old["torch"][n] < old["auto"][n] and new["auto"][n] < old["auto"][n]
        row = (f"| {n} / 32 | {_ms(old['auto'][n])} ms | {_ms(old['torch'][n])} | {_ms(old['torch:native'][n])} | "
               f"{_ms(new['auto'][n])} (torch {_ms(new['torch'][n])}")
        assert row in readme
        assert f"{_auto_over_fastest(old, n):.2f}x -> {_auto_over_fastest(new, n):.2f}x |" in readme
    wide = after["20/64"]["seconds"]
    assert (f"| 20 / 64 | | | | {_ms(wide['auto']['20'])} (torch {_ms(wide['torch']['20'])}, kernel "
            f"{_ms(wide['torch:native']['20'])}) | -> {_auto_over_fastest(wide, '20'):.2f}x |") in readme
    kernel, chunks = before["24"]["seconds"]["auto"]["24"], 331.8  # the torch program's chunks, printed by the block
    new = after["24"]["seconds"]["auto"]["24"]
    assert (f"| 24 / 32 | {kernel:.1f} s | {chunks} s (chunks of 17) | | {new:.1f} s | 1.00x -> "
            f"{new / kernel:.2f}x |") in readme
    more = {n: _scaling_run(stamp) for n, stamp in (("21", "163832"), ("23", "164539"))}  # after, first calls
    assert all((run["circuit"], run["batch"]) == ("meyer_iqp", 32) for run in more.values())
    assert all(_auto_over_fastest(run["seconds"], n) <= 1.2 for n, run in more.items())
    seconds = {n: run["seconds"] for n, run in more.items()}
    assert (f"auto {_ms(seconds['21']['auto']['21'])} and {_ms(seconds['23']['auto']['23'])} ms, the torch program "
            f"{_ms(seconds['21']['torch']['21'])} and {_ms(seconds['23']['torch']['23'])}, the kernel "
            f"{_ms(seconds['21']['torch:native']['21'])} and {_ms(seconds['23']['torch:native']['23'])}") in readme
    kernel = [seconds[n]["torch:native"][n] / seconds[n]["torch"][n] for n in ("21", "23")]
    assert f"was {kernel[0]:.2f}x and {kernel[1]:.2f}x slower than the torch program" in readme
    low = _scaling_run("172409")  # 19 qubits, after
    assert (low["circuit"], low["batch"]) == ("meyer_iqp", 32) and _auto_over_fastest(low["seconds"], "19") <= 1.2
    assert (f"auto {_ms(low['seconds']['auto']['19'])} ms, the torch program {_ms(low['seconds']['torch']['19'])}, "
            f"the kernel, the choice before, {_ms(low['seconds']['torch:native']['19'])}") in readme
    wide = _scaling_run("170050")  # 22 qubits, 64 samples: auto (the torch program) and the kernel
    assert (wide["circuit"], wide["batch"]) == ("meyer_iqp", 64) and _auto_over_fastest(wide["seconds"], "22") <= 1.2
    assert (f"auto {_ms(wide['seconds']['auto']['22'])} ms against the kernel's "
            f"{_ms(wide['seconds']['torch:native']['22'])}") in readme
    old, chunks = _scaling_seconds("142412")["auto"]["25"], 604.1  # as in the previous section
    new = after["25"]["seconds"]["auto"]["25"]
    assert (f"| 25 / 32 | {old:.1f} s | {chunks} s (chunks of 8) | | {new:.1f} s | {old / chunks:.2f}x -> "
            f"{new / min(new, chunks):.2f}x |") in readme


def test_the_readme_update_calls_at_20_qubits_are_the_committed_measurements():
    """README, "Update-sized gradient calls follow the model ...": the six circuits whose update batches stay on the
    kernel at 20 qubits and 32 samples, and `hsiao`'s (on the torch program) at 21 and 24 qubits, as committed."""
    readme = _readme()
    runs = [_scaling_run(stamp) for stamp in ("161810", "162106", "162311", "162524", "162712", "162835")]
    assert [run.get("circuit", run["ansatz"]) for run in runs] == [
        "hea", "strongly_entangling", "chen_vqdqn", "lockwood_si", "born_parity", "jerbi_skolik"]
    auto = [_auto_over_fastest(run["seconds"], "20") for run in runs]
    torch_program = [run["seconds"]["torch"]["20"] / min(s["20"] for s in run["seconds"].values()) for run in runs]
    assert all(run["batch"] == 32 for run in runs) and max(auto) <= 1.2
    assert f"auto on the kernel within {min(auto):.2f}x-{max(auto):.2f}x of the fastest" in readme
    assert f"torch program {min(torch_program):.2f}x-{max(torch_program):.2f}x slower" in readme
    small, large = _scaling_seconds("160903"), _scaling_seconds("161229")
    assert (f"auto {_ms(small['auto']['21'])} ms, the torch program {_ms(small['torch']['21'])} (the same program; "
            f"medians of interleaved calls) and the kernel {_ms(small['torch:native']['21'])}") in readme
    assert large["auto"]["24"] < large["torch:native"]["24"]
    assert (f"auto in chunks {large['auto']['24']:.1f} s against the kernel's {large['torch:native']['24']:.1f} s"
            in readme)


def test_scaling_does_not_run_a_named_program_whose_call_would_not_fit_in_memory(monkeypatch):
    """A named program's call (the whole batch at once) whose estimated peak exceeds the memory available is not run,
    here nor at larger sizes (such a call was killed by the out-of-memory killer with the points timed before it);
    the other backends are timed, the JSON names what was skipped and its estimate, the table shows it as "-"."""
    from qrl.backends import memory
    from qrl.backends.select import NATIVE, make_backend

    spec = bench._named_spec("hea", 6, 1)
    need_6 = make_backend(spec, NATIVE).gradient_bytes(4)
    monkeypatch.setattr(memory, "available_memory", lambda: need_6 - 1)  # the 4-qubit call fits, the 6-qubit not
    lines = []
    result = bench.bench_scaling(qubits=(4, 6, 8), batch=4, n_layers=1, backends=(NATIVE, "lightning.qubit"),
                                 budget_s=0.0, log=lines.append)
    assert set(result["seconds"][NATIVE]) == {"4"} and set(result["seconds"]["lightning.qubit"]) == {"4", "6", "8"}
    assert result["skipped"] == {NATIVE: {"6": need_6}}  # dropped for 8: not tried again
    assert result["fastest"]["6"] == result["fastest"]["8"] == "lightning.qubit"
    (why,) = [line for line in lines if "not run" in line]
    assert why.startswith(f"n=6   {NATIVE}: not run: one forward + backward of 4 samples needs about") and \
        "try a smaller --batch, or --backends auto" in why
    table = bench.format_scaling(result).splitlines()
    assert table[3].startswith("| 6 | - | ") and "| lightning.qubit |" in table[3]
    monkeypatch.setattr(memory, "available_memory", lambda: 0)  # nothing fits: a row without a fastest backend
    result = bench.bench_scaling(qubits=(4,), batch=2, n_layers=1, backends=("torch",), budget_s=0.0, no_grad=True)
    needs = make_backend(bench._named_spec("hea", 4, 1), "torch").forward_bytes(2)
    assert result["seconds"] == {"torch": {}} and result["skipped"] == {"torch": {"4": needs}}
    assert result["fastest"] == {} and bench.format_scaling(result).splitlines()[2].startswith("| 4 | - | - |")


def test_the_readme_four_more_shapes_are_the_committed_measurements():
    """README, "Four more users' shapes": the cost model's choices on the four shapes (summary of the committed calls),
    auto beside both programs at 4-16 qubits (within 1.06x at 82 of 84 points; the two others and the one timed again,
    each the same program as the one it is compared with), and ``long_crz``'s passes."""
    flat = _readme()
    calls = bench.load(COMMITTED / "calls-20261206-182103.json")
    within, total, worst, rules, rules_worst = re.search(CALLS_SUMMARY, bench.format_calls(calls)).groups()
    assert (within, total, worst, rules, rules_worst) == ("80", "80", "1.09", "67", "2.19")
    assert f"within 1.2x of the faster in {within} of {total} calls (worst {worst}x" in flat
    assert f"the rules before it in {rules} (worst {rules_worst}x)" in flat
    stamps = ("182125", "182138", "182152", "182236", "182253", "182308", "182331", "182345", "182359", "182425",
              "182441", "182456")
    ratios = _shapes_auto_ratios(stamps)
    close = [k for k, r in ratios.items() if r <= 1.06]
    assert len(ratios) == 84 and len(close) == 82 and "within 1.06x of the fastest at 82 of 84 points" in flat
    (a, b) = sorted(set(ratios) - set(close))
    assert (a, b) == (("long_crz", 64, "16"), ("xx_yy_ring", 8, "16"))
    for (circuit, batch, n), stamp, other in ((a, "182425", "torch"), (b, "182253", "torch")):
        s = _scaling_seconds(stamp)
        assert f"{ratios[(circuit, batch, n)]:.2f}x" in flat
        assert f"{s['auto'][n] * 1e3:.1f} against {s[other][n] * 1e3:.1f} ms" in flat
    again = _scaling_seconds("182850")
    assert f"{again['auto']['16'] / again['torch']['16']:.2f}x ({again['auto']['16'] * 1e3:.1f} against " \
           f"{again['torch']['16'] * 1e3:.1f} ms" in flat
    passes = {r["qubits"]: r["torch_passes"] for r in calls["rows"]
              if r["circuit"] == "circuit_shapes:long_crz" and r["batch"] == 16}
    assert passes == {12: 6, 13: 181, 14: 7, 15: 207, 16: 8}
    assert "in 6, 7 and 8 passes at 12, 14 and 16 qubits" in flat and "makes 181 and 207 passes at 13 and 15" in flat
    from qrl.backends.memory import format_bytes

    meyer = bench.load(COMMITTED / "scaling-20261206-184343.json")  # Meyer et al.'s at 24 qubits and 64, the skip
    assert (meyer["circuit"], meyer["batch"], meyer["backends"]) == ("meyer_iqp", 64, ["auto", "torch:native"])
    auto = meyer["seconds"]["auto"]["24"]
    assert meyer["seconds"]["torch:native"] == {} and f"auto {auto:.1f} s, the kernel not run" in flat
    assert f"needs about {format_bytes(meyer['skipped']['torch:native']['24'])}; 22.4 GiB available" in flat
    chen = bench.load(COMMITTED / "scaling-20261206-184958.json")  # chen_vqdqn at 24 and 32: the torch program skipped
    assert (chen["circuit"], chen["batch"], chen["seconds"]["torch"]) == ("chen_vqdqn", 32, {})
    seconds, peak = chen["seconds"]["auto"]["24"], chen["peak_rss_gb"]["auto"]["24"]
    assert f"auto (the kernel, one call) {seconds:.1f} s at {peak:.2f} GiB; the torch program not run there " \
           f"({format_bytes(chen['skipped']['torch']['24'])} estimated" in flat
    assert f"309.9 s at 11.35 GiB, {309.9 / chen['seconds']['auto']['24']:.2f}x slower" in flat  # the block's print
    chen = bench.load(COMMITTED / "scaling-20261206-191907.json")  # and at 25 qubits
    assert (chen["circuit"], chen["batch"], chen["qubits"], chen["seconds"]["torch"]) == ("chen_vqdqn", 32, [25], {})
    seconds, peak = chen["seconds"]["auto"]["25"], chen["peak_rss_gb"]["auto"]["25"]
    assert f"auto (the kernel in chunks of 16) {seconds:.1f} s at {peak:.2f} GiB; the torch program " \
           f"({format_bytes(chen['skipped']['torch']['25'])} estimated at once)" in flat
    assert f"628.9 s at 10.84 GiB, {628.9 / seconds:.2f}x slower" in flat and f"{seconds:.1f} s against 628.9" in flat
    kernel, first = 670.9, 633.5  # the kernel in its chunks (the README's block), auto's first run (killed, no JSON)
    assert f"{first / kernel:.2f}x and {auto / kernel:.2f}x of the kernel's time" in flat
    assert f"{kernel / first:.2f}x slower than auto" in flat


def test_the_readme_older_auto_points_timed_again_are_the_committed_measurements():
    """README, the goal of auto: ``lockwood_si`` at 14 qubits and 8 samples and Meyer et al.'s circuit at 15 qubits and
    32 samples, the two older points over 1.2x, timed three times each later on 2026-12-06: auto over the fastest."""
    flat = _readme()
    for circuit, n, batch, stamps in (("lockwood_si", "14", 8, ("184607", "184616", "184623")),
                                      ("meyer_iqp", "15", 32, ("184540", "184549", "184558"))):
        runs = [_scaling_run(stamp) for stamp in stamps]
        assert all((r["circuit"], r["batch"], r["qubits"]) == (circuit, batch, [int(n)]) for r in runs)
        ratios = [f"{_auto_over_fastest(r['seconds'], n):.2f}x" for r in runs]
        assert "{}, {} and {}".format(*ratios) in flat, (circuit, ratios)
        assert all(float(x[:-1]) <= 1.2 for x in ratios)


def test_the_readme_einsum_weight_rows_are_the_committed_measurements():
    """README, "Blocks applied by einsum weighed two passes": the unfused against the fused program where the weight
    decides (24 calls: the fused faster in 22, the range, the two others), the model's choices and auto after."""
    flat = _readme()
    stamps = ("185957", "190006", "190044", "190052", "190101", "190114", "190149", "190154", "190159", "190204",
              "190209", "190215", "190222", "190230", "190238")
    ratios = []
    for stamp in stamps:
        run = _scaling_run(stamp)
        assert run["backends"] == ["torch:wires", "torch:fused"]
        ratios += [run["seconds"]["torch:wires"][n] / run["seconds"]["torch:fused"][n] for n in map(str, run["qubits"])]
    faster = sorted(r for r in ratios if r >= 1)
    assert (len(ratios), len(faster)) == (24, 22)
    assert f"{faster[0]:.2f}x-{faster[-1]:.2f}x faster in 22 of the 24 calls" in flat
    assert "and {:.2f}x and {:.2f}x in the other two".format(*sorted(r for r in ratios if r < 1)) in flat
    calls = bench.load(COMMITTED / "calls-20261206-190340.json")
    within, total, worst = re.search(CALLS_SUMMARY, bench.format_calls(calls)).groups()[:3]
    assert (within, total, worst) == ("20", "20", "1.00")
    after = [_auto_over_fastest(_scaling_seconds(s), n) for s in ("190403", "190415", "190426") for n in
             ("9", "11", "13", "15")]
    assert len(after) == 12 and f"within {max(after):.2f}x of the fastest at all 12 points" in flat
    before = bench.load(COMMITTED / "calls-20261206-182103.json")
    one = {(r["qubits"], "before" if rows is before else "after"): r["torch_s"] for rows in (before, calls)
           for r in rows["rows"] if r["circuit"] == "circuit_shapes:long_crz" and r["batch"] == 1}
    assert (f"{one[(13, 'after')] * 1e3:.2f} and {one[(15, 'after')] * 1e3:.2f} ms in the calls after, "
            f"{one[(13, 'before')] * 1e3:.2f} and {one[(15, 'before')] * 1e3:.2f} in those before") in flat


def test_the_readme_five_shapes_with_other_gates_are_the_committed_measurements():
    """README, "Five shapes with other gates": the model's choices on the five shapes, auto beside both programs at
    4-16 qubits (within 1.2x at 102 of 105 points; two others the kernel against itself, timed again; the miss and its
    runs again), the fit's per-node cost against the stored one, and ``hea``'s call at 12 qubits and 4 samples."""
    flat = _readme()
    calls = bench.load(COMMITTED / "calls-20261206-202934.json")
    within, total, worst, rules, rules_worst = re.search(CALLS_SUMMARY, bench.format_calls(calls)).groups()
    assert (within, total, worst, rules, rules_worst) == ("98", "100", "1.26", "90", "2.47")
    assert f"within 1.2x of the faster program in {within} of {total} calls (worst {worst}x); the rules before it in " \
           f"{rules} (worst {rules_worst}x" in flat
    assert f"they give {calls['fit']['node_s'] * 1e6:.1f} us" in flat
    assert f"({calls['model']['node_s'] * 1e6:.1f} us" in flat
    stamps = ("201246", "201322", "201355", "201533", "201609", "201640", "201718", "201743", "201807", "202112",
              "202211", "202247", "202358", "202428", "202456")
    ratios = _shapes_auto_ratios(stamps)
    assert len(ratios) == 105 and sum(r <= 1.2 for r in ratios.values()) == 102
    assert sum(r <= 1.06 for r in ratios.values()) == 97 and "at 102 of 105 points (97 within 1.06x)" in flat
    over = sorted(k for k, r in ratios.items() if r > 1.2)
    assert over == [("iqp_template", 64, "14"), ("iqp_template", 64, "16"), ("strong_template", 8, "12")]
    twice = f"{ratios[over[0]]:.2f}x and {ratios[over[1]]:.2f}x; timed again"
    assert twice == "1.21x and 1.26x; timed again" and twice in flat
    again = _scaling_seconds("203626")
    assert "0.94x and 1.00x, `scaling-20261206-203626.json`" in flat
    assert [f"{again['auto'][n] / again['torch:native'][n]:.2f}" for n in ("14", "16")] == ["0.94", "1.00"]
    miss = _scaling_seconds("201743")
    assert f"{ratios[over[2]]:.2f}x** (auto, on the torch program as the model chose, {miss['auto']['12'] * 1e3:.2f} " \
           f"ms against the kernel's {miss['torch:native']['12'] * 1e3:.2f}" in flat
    runs = [_auto_over_fastest(_scaling_seconds(s), "12") for s in ("203324", "203332", "203339")]
    assert f"{runs[0]:.2f}x, {runs[1]:.2f}x and {runs[2]:.2f}x in three runs more" in flat
    swap = [_auto_over_fastest(_scaling_seconds(s), "15") for s in ("203349", "203400", "203410")]
    assert f"was {swap[0]:.2f}x, {swap[1]:.2f}x and {swap[2]:.2f}x with `auto` timed again" in flat


def test_the_readme_day_drift_and_iqp_template_programs_are_the_committed_measurements():
    """README, "Five shapes with other gates": ``hea``'s call at 12 qubits and 4 samples on this day and in the fitted
    calls, the MLP's update on two days, and ``iqp_template``'s two torch programs side by side (and the circuits whose
    program a grouped count would move, at 7, 9 and 17 qubits)."""
    flat = _readme()

    def hea(name):
        return next(r for r in bench.load(COMMITTED / f"calls-{name}.json")["rows"]
                    if r["circuit"] == "hea" and r["qubits"] == 12 and r["batch"] == 4)

    today, fitted = hea("20261206-203840"), hea("20261205-112331")
    assert f"ran {today['torch_s'] * 1e3:.2f} ms on the torch program against the kernel's " \
           f"{today['kernel_s'] * 1e3:.2f} ({today['torch_s'] / today['kernel_s']:.2f}x" in flat
    assert f"the fitted calls had {fitted['torch_s'] * 1e3:.2f} against {fitted['kernel_s'] * 1e3:.2f}" in flat
    old, new = [hea(f"20261206-{s}")["torch_s"] * 1e3 for s in ("203859", "203923")], \
        [hea(f"20261206-{s}")["torch_s"] * 1e3 for s in ("203911", "203936")]
    assert f"took {old[0]:.2f} and {old[1]:.2f} ms, and {new[0]:.2f} and {new[1]:.2f}" in flat
    from qrl.backends.calls import CallModel

    model = CallModel.from_json(bench.load(COMMITTED / "calls-20261206-202934.json")["model"])
    for stamp, build in (("20261205-112331", "v1252"), ("20261206-182103", "v1272"), ("20261206-202934", "v1300")):
        run = bench.load(COMMITTED / f"calls-{stamp}.json")
        over = [r["torch_s"] / model.torch_seconds(r["nodes"], r["torch_passes"], r["qubits"], r["batch"])
                for r in run["rows"]]
        assert f"-fc-{build}-" in run["machine"]["platform"] and f"{min(over):.2f}-{max(over):.2f}" in flat
    mlp = "mlp (SB3 MlpPolicy 64x64)"
    update = [bench.load(COMMITTED / f"policy-{s}.json")["seconds"]["update"][mlp]["64"] * 1e3
              for s in ("20261206-204020", "20261205-004114")]
    assert f"batch 64 took {update[0]:.2f} ms against {update[1]:.2f} on 2026-12-05" in flat

    def ratios(stamp, n_from=0):  # wires over fused, per qubit count
        s = _scaling_seconds(stamp)
        return {int(n): s["torch:wires"][n] / s["torch:fused"][n] for n in s["torch:wires"] if int(n) >= n_from}

    one, eight, many = ratios("204106"), ratios("204130", 12), ratios("204307")
    assert f"{min(many[n] for n in many if n < 15):.2f}x-{max(many[n] for n in many if n < 15):.2f}x faster at 64 " \
           f"samples from 8 qubits ({many[15]:.1f}x at 15" in flat
    assert f"{min(eight.values()):.2f}x-{max(eight.values()):.2f}x at 8 samples from 12 qubits" in flat
    slower = [1 / one[n] for n in one if n <= 14]
    assert f"and {min(slower):.2f}x-{max(slower):.2f}x slower at one sample up to 14 qubits" in flat
    seven = [_scaling_seconds(f"200{s}") for s in ("617", "623", "630", "636", "643", "649", "654", "700", "706",
                                                   "712", "718", "724", "730", "736", "742", "748", "754", "800",
                                                   "809", "816", "823", "830", "836", "842", "848", "853", "859",
                                                   "905")]
    fused_by = max(s["torch:wires"]["7"] / s["torch:fused"]["7"] for s in seven)
    wires_by = max(s["torch:fused"]["7"] / s["torch:wires"]["7"] for s in seven)
    assert f"the fused program up to {fused_by:.2f}x faster at 1 and 8 samples, the unfused one up to " \
           f"{wires_by:.2f}x at 64 and without a gradient" in flat
    brick = [_scaling_seconds(s) for s in ("200913", "200923")]
    assert f"fused {brick[0]['torch:wires']['9'] / brick[0]['torch:fused']['9']:.2f}x and " \
           f"{brick[1]['torch:wires']['9'] / brick[1]['torch:fused']['9']:.2f}x faster at 9 qubits, " \
           f"{brick[0]['torch:fused']['17'] / brick[0]['torch:wires']['17']:.2f}x and " \
           f"{brick[1]['torch:fused']['17'] / brick[1]['torch:wires']['17']:.2f}x slower at 17" in flat


def test_the_readme_x_and_y_readout_rows_are_the_committed_measurements():
    """README, "X and Y read out from 18 qubits": the table (auto, both programs, auto over the fastest, the peak),
    the other three shapes at 18 and 20 qubits, and the matrices the matrix form held (``n`` of ``(2**n, n)`` complex128
    at 20 qubits)."""
    flat = _readme()
    for stamp, name, letter in (("210003", "phase_gates", "X"), ("210151", "toffoli_rot", "Y")):
        run = _scaling_run(stamp)
        assert run["circuit"] == f"circuit_shapes:{name}" and run["backends"] == ["auto", "torch", "torch:native"]
        for n in ("18", "20"):
            s = run["seconds"]
            assert f"| `{name}` ({letter}) | {n} | {_ms(s['auto'][n])} | {_ms(s['torch'][n])} | " \
                   f"{_ms(s['torch:native'][n])} | {_auto_over_fastest(s, n):.2f}x | " \
                   f"{run['peak_rss_gb']['torch:native'][n]:.2f} |" in flat
    near = []
    for stamp in ("205328", "205607"):  # (iqp_template's torch program not run at 20: its call at 18 took 24.6 s)
        s = _scaling_seconds(stamp)
        near += [s["auto"][n] / min(v[n] for v in s.values() if n in v) for n in ("18", "20")]
    assert _scaling_seconds("205328")["torch"].keys() == {"18"} and "24.6 s at 18 qubits, not run at 20" in flat
    assert max(near) < 1.035 and "auto the fastest or within 1.03x" in flat
    strong, again = _scaling_seconds("205131"), _scaling_seconds("210210")
    assert f"{_auto_over_fastest(strong, '18'):.2f}x at 18 qubits in its one call " \
           f"({strong['auto']['18'] * 1e3:.2f} against the kernel's {strong['torch:native']['18'] * 1e3:.2f} ms" in flat
    assert _auto_over_fastest(strong, "20") == 1.0
    assert f"{_auto_over_fastest(again, '18'):.2f}x with `--budget 1`" in flat
    assert f"{20 * 2**20 * 20 * 16 / 2**30:.2f} GiB at 20 qubits" in flat


def test_the_readme_update_sized_calls_from_16_qubits_are_the_committed_measurements():
    """README, "Update-sized calls from 16 qubits": auto's misses before (its own runs), the side-by-side ratios by the
    torch program's kind, and the table after."""
    flat = _readme()
    before = _scaling_seconds("211855")
    assert f"1.95x the torch program's time ({before['auto']['18'] * 1e3:.0f} against " \
           f"{before['torch']['18'] * 1e3:.0f} ms" in flat and _auto_over_fastest(before, "18") > 1.9
    assert f"without a gradient {_auto_over_fastest(_scaling_seconds('212106'), '20'):.2f}x" in flat
    meyer = [_auto_over_fastest(_scaling_seconds(stamp), n) for stamp, n in
             (("212659", "16"), ("212810", "17"), ("212352", "18"), ("212619", "18"))]
    assert "auto " + ", ".join(f"{r:.2f}x" for r in meyer[:3]) + f" and {meyer[3]:.2f}x slower" in flat

    def kernel_over_torch(stamp):
        s = _scaling_seconds(stamp)
        return {n: s["torch:native"][n] / s["torch"][n] for n in s["torch"] if n in s["torch:native"]}

    wires = ("212915", "213108", "213221", "213336", "213431", "213522")  # hea ... jerbi_skolik
    ratios = [r for stamp in wires for n, r in kernel_over_torch(stamp).items() if n != "14"]
    at_14 = [kernel_over_torch(stamp)["14"] for stamp in wires]
    assert f"| {min(ratios):.2f}-{max(ratios):.2f} ({min(at_14):.2f}-{max(at_14):.2f} at 14) |" in flat
    xx = kernel_over_torch("215021")
    assert f"| fused | `xx_yy_ring` (9.4) | {xx['16']:.2f}, {xx['18']:.2f} |" in flat
    fused = ("213715", "213934", "214223", "214512", "214541", "214711")  # Meyer ... zz_ring
    ratios = [r for stamp in fused for n, r in kernel_over_torch(stamp).items() if n != "14"]
    assert f"| {min(ratios):.2f}-{max(ratios):.2f} (Meyer et al.'s {kernel_over_torch('213715')['14']:.2f} and " \
           f"`swap_multirz` {kernel_over_torch('214223')['14']:.2f} at 14) |" in flat
    rows = (("Meyer et al.'s", "16", "64", "215341"), ("Meyer et al.'s", "18", "64", "215341"),
            ("`zz_ring`", "16", "64", "215553"), ("`zz_ring`", "18", "64", "215553"),
            ("`phase_gates`", "18", "32", "215722"), ("`phase_gates`, no gradient", "20", "32", "215913"))
    for name, n, batch, stamp in rows:
        s = _scaling_seconds(stamp)
        assert _scaling_run(stamp)["batch"] == int(batch)
        assert f"| {name} | {n} | {batch} | " in flat and f" | {_ms(s['auto'][n])} | {_ms(s['torch'][n])} | " \
               f"{_ms(s['torch:native'][n])} | {_auto_over_fastest(s, n):.2f}x |" in flat
    swap = _scaling_seconds("222123")
    assert all(_auto_over_fastest(swap, n) == 1.0 for n in ("16", "18"))
    assert f"the fastest at both ({_ms(swap['auto']['16'])} and {_ms(swap['auto']['18'])} ms against the kernel's " \
           f"{_ms(swap['torch:native']['16'])} and {_ms(swap['torch:native']['18'])}" in flat
    hea = _scaling_seconds("220031")
    for n in ("16", "18"):
        assert f"| {_ms(hea['auto'][n])} | {_ms(hea['torch'][n])} | {_ms(hea['torch:native'][n])} | " \
               f"{_auto_over_fastest(hea, n):.2f}x |" in flat


def test_the_readme_two_day_fit_is_the_stored_model_and_the_committed_measurements():
    """README, "The cost model fitted over two days": the stored model is `--rows` of the two days' timings fitted
    together (the code's default that fit to two digits); each day's fit, the counts and worst ratios quoted (by the
    fit in use then, the new fit on each day and on calls not fitted), the refitted factor above 18 qubits, and the
    table of calls the new fit moved, from the committed JSON; at 12-16 qubits each row's "before" is the first day's
    fit's choice and auto's now the other program."""
    import circuit_shapes  # noqa: F401  (registers the users' shapes)

    from qrl.backends import select
    from qrl.backends.calls import DEFAULT_CALL_MODEL, CallModel
    from qrl.backends.select import CROSSOVERS

    readme, load = _readme(), lambda name: bench.load(COMMITTED / f"{name}.json")
    days = ["runs/reference/bench/calls-20261205-112331.json", "runs/reference/bench/calls-20261206-231055.json"]
    both = load("calls-20261206-231724")
    assert both["calls_from"] == days and both["rows"] == [
        {**r, "model_choice": bench._model_choice(CallModel.from_json(both["model"]), r)}
        for day in days for r in bench.load(ROOT / day)["rows"]]
    fit, stored = both["fit"], json.loads(CROSSOVERS.read_text())["call_model"]
    assert stored["model"] == fit and stored["command"] == f"qrl bench calls --rows {' '.join(days)} --update-auto"
    assert select.call_model().to_json() == fit
    for key in ("node_s", "torch_pass_s", "kernel_pass_s"):
        assert json.dumps(DEFAULT_CALL_MODEL.to_json()[key], sort_keys=True) == json.dumps(
            json.loads(json.dumps(fit[key]), parse_float=lambda x: float(f"{float(x):.1e}")), sort_keys=True), key

    def constants(f):
        k = f["kernel_pass_s"]
        return (f"{f['node_s'] * 1e6:.2f}", *(f"{x * 1e9:.2f}" for x in f["torch_pass_s"]),
                *(f"{k[w] * 1e9:.2f}" for w in ("4", "8", "16")))

    first, second = (constants(load(name)["fit"]) for name in ("calls-20261205-125434", "calls-20261206-231055"))
    new = constants(fit)
    assert (f"{second[0]} us per node of its autograd graph against {first[0]} on the first day, while its costs per "
            f"amplitude and pass ({second[1]} and {second[2]} ns against {first[1]} and {first[2]}) and the kernel's "
            f"({', '.join(second[3:5])} and {second[5]} ns against {', '.join(first[3:5])} and {first[5]})") in readme
    assert (f"{new[0]} us per node, {new[1]} and {new[2]} ns per amplitude and pass, the kernel {', '.join(new[3:5])} "
            f"and {new[5]} ns") in readme
    summary = re.search(CALLS_SUMMARY, bench.format_calls(load("calls-20261206-231055"))).groups()
    assert "in {} of the {} calls (worst {}x: `lockwood_si`".format(*summary[:3]) in readme
    model = CallModel.from_json(fit)
    chosen = [_chosen_by_model(model, bench.load(ROOT / day)["rows"]) for day in days]
    made, worst = sum(c[0] for c in chosen), max(c[1] for c in chosen)
    assert f"its choice within 1.2x in {made} of the 360 calls (worst {worst:.2f}x), {chosen[0][0]} of the" in readme
    assert f"(`one_cnot` at 13 qubits and 1 sample, {chosen[0][1]:.2f}x) and {chosen[1][0]} of this day's (worst " \
           f"{chosen[1][1]:.2f}x)" in readme
    again = [load(f"calls-20261206-{stamp}") for stamp in ("233906", "233910", "233914", "233918", "233923")]
    assert [a["calls_from"][-20:-5] for a in again] == ["20261205-112513", "20261206-182103", "20261206-202934",
                                                       "20261205-112753", "20261205-222206"]
    assert all(a["model"] == fit for a in again)
    counts = [re.search(CALLS_SUMMARY, bench.format_calls(a)).groups()[:3] for a in again]
    assert counts[0][:2] == counts[1][:2] == ("80", "80") and counts[2][:2] == ("99", "100")
    assert counts[3][:2] == counts[4][:2] == ("23", "24")
    assert f"80 of 80 each (worst {counts[0][2]}x and {counts[1][2]}x;" in readme
    assert f"99 of 100 (worst {counts[2][2]}x; before 98, worst 1.26x)" in readme
    assert f"(`zz_ring` at 16 samples, {counts[3][2]}x and {counts[4][2]}x; before 24 of 24)" in readme
    rows, before = _two_day_rows(readme)
    slower = sum(b > 1.2 for _, b in before)
    assert f"in {slower} of these {len(rows)} runs ({len(set(rows))} calls) on this build (1.21x-3.46x)" in readme
    assert f"{min(b for _, b in before if b > 1.2):.2f}" == "1.21" and f"{max(b for _, b in before):.2f}" == "3.46"
    fitted_first = CallModel.from_json(load("calls-20261205-125434")["fit"])
    for (name, n, batch), (program, _) in zip(rows, before, strict=True):
        if n <= 16:  # the first day's fit chose "before", the new fit the other program
            spec = bench._named_spec(name if name in ("hea", "strongly_entangling", "meyer_iqp", "chen_vqdqn",
                                                      "lockwood_si", "born_parity", "jerbi_skolik")
                                     else f"circuit_shapes:{name}", n, 5)
            kernel, torch_program = select._programs(spec, {})
            if (kernel._impl.ops[:, 0] == 8).any():  # controlled runs since 2026-12-07 ("Controlled rotations in
                continue  # one pass"): another kernel program than the one timed; its row is the JSON's alone
            shape = (torch_program.autograd_nodes(), torch_program.passes(), kernel.native_pass_counts(),
                     kernel.native_rotations(), n)
            assert fitted_first.kernel_faster(*shape, batch) == (program == "kernel") != model.kernel_faster(
                *shape, batch), (name, n, batch)


def _chosen_by_model(model, rows) -> tuple[int, float]:
    """How many of these calls ``model`` chooses within 1.2x of the faster program, and its worst ratio."""
    ratios = [r[f"{bench._model_choice(model, r)}_s"] / min(r["torch_s"], r["kernel_s"]) for r in rows]
    return sum(x <= 1.2 for x in ratios), max(ratios)


def _two_day_rows(readme: str) -> tuple[list, list]:
    """The table of "The cost model fitted over two days", each row from its committed run (``scaling-20261206-231739``
    to ``-233901`` in order): ``[(circuit, qubits, samples)]`` and ``[(program before, its time over the fastest)]``."""
    stamps = sorted(p.name[17:23] for p in COMMITTED.glob("scaling-20261206-23*.json") if p.name[17:23] <= "233901")
    assert stamps[0] == "231739" and len(stamps) == 32
    rows, before = [], []
    for stamp in stamps:
        run = _scaling_run(stamp)
        n, s = str(run["qubits"][0]), run["seconds"]
        name = (run.get("circuit") or run["ansatz"]).rpartition(":")[2]
        fastest = min(s["torch"][n], s["torch:native"][n])
        cells = (f"| `{name}` | {n} | {run['batch']} | {'no' if run.get('no_grad') else 'yes'} | "
                 f"{_ms(s['auto'][n])} | {_ms(s['torch'][n])} | {_ms(s['torch:native'][n])} | "
                 f"{s['auto'][n] / fastest:.2f}x | ")
        match = re.search(re.escape(cells) + r"(torch|kernel), ([\d.]+)x \|", readme)
        assert match, cells
        program = match.group(1)
        time = s["torch" if program == "torch" else "torch:native"][n]
        assert match.group(2) == f"{time / fastest:.2f}"
        rows.append((name, int(n), run["batch"]))
        before.append((program, time / fastest))
    return rows, before


def test_the_readme_lazy_x_and_y_readout_rows_are_the_committed_measurements():
    """README, "X and Y read out lazily from 11 qubits": the torch program's time before over after per circuit, batch
    and qubit count (the faster of two runs per side, the runs alternating before and after), from the JSON; and the
    threshold they gave."""
    from qrl.simulator.readout import FLIPS_LAZY_MIN_QUBITS

    readme = (ROOT / "README.md").read_text()
    names = sorted(p.name[8:23] for p in COMMITTED.glob("scaling-2026120*.json"))
    for first, last, qubits, batches in (("20261206-235205", "20261206-235645", ["8", "9", "10", "11", "12", "14"],
                                          (64, 8, 1)),
                                         ("20261206-235737", "20261207-000154", ["9", "10", "11", "12"], (64, 1))):
        stamps = [s for s in names if first <= s <= last]
        assert len(stamps) == 4 * len(batches) * 2  # 2 circuits x batches x 2 sides x 2 runs
        times: dict = {}
        for i, stamp in enumerate(stamps):
            run = bench.load(COMMITTED / f"scaling-{stamp}.json")
            assert run["backends"] == ["torch"] and run["qubits"] == [int(n) for n in qubits]
            key = (run["circuit"].partition(":")[2], run["batch"], i % 2)  # i % 2: 0 before, 1 after
            times.setdefault(key, []).append(run["seconds"]["torch"])
        for circuit in ("phase_gates", "toffoli_rot"):
            for batch in batches:
                before, after = times[circuit, batch, 0], times[circuit, batch, 1]
                assert len(before) == len(after) == 2
                cells = [f"{min(t[n] for t in before) / min(t[n] for t in after):.2f}x" for n in qubits]
                assert f"| `{circuit}` | {batch} | " + " | ".join(cells) + " |" in readme, (circuit, batch)
    assert FLIPS_LAZY_MIN_QUBITS == 11 and "`FLIPS_LAZY_MIN_QUBITS` in `qrl/simulator/readout.py`" in readme


def test_the_readme_large_gradient_calls_of_the_two_day_fit_are_the_committed_measurements():
    """README, "Large gradient calls the two-day fit moved or left untimed": auto's call from the JSON, the other
    program's from the block's lines in the committed log, and the ratio between them."""
    readme = _readme()
    log = (COMMITTED / "chunks-20261207.log").read_text()
    rows = (("meyer_iqp", 26, 16, "010600", "Meyer et al.'s circuit", "torch program, 4 x 4", "kernel", 8,
             "kernel, 2 x 8"),
            ("lockwood_si", 24, 32, "014757", "`lockwood_si`", "kernel, one call", "torch", 17,
             "torch program, 17 + 15"),
            ("born_parity", 24, 32, "020450", "`born_parity`", "kernel, 2 x 16", "torch", 17, "torch program, 17 + 15"))
    for circuit, n, batch, stamp, name, chosen, program, size, other in rows:
        run = bench.load(COMMITTED / f"scaling-20261207-{stamp}.json")
        assert (run["circuit"], run["qubits"], run["batch"], run["backends"]) == (circuit, [n], batch, ["auto"])
        auto, peak = run["seconds"]["auto"][str(n)], run["peak_rss_gb"]["auto"][str(n)]
        block = log.split(f"== {circuit} {n}/{batch} {program} chunks")[1].split("==")[0]
        assert f"chunks of {size}, kept 1" in block, circuit
        seconds, gib = (float(v) for v in block.split("call ")[1].split(" GiB")[0].split(" s, peak RSS "))
        assert (f"| {name}, {n} qubits, {batch} samples | {chosen}: {auto:.1f} s, {peak:.2f} GiB | {other}: "
                f"{seconds:.1f} s, {gib:.2f} GiB | {seconds / auto:.2f}x |") in readme, circuit
    strongly = bench.load(COMMITTED / "scaling-20261207-020009.json")
    assert (strongly["ansatz"], strongly.get("circuit"), strongly["batch"]) == ("strongly_entangling", None, 32)
    auto, peak = strongly["seconds"]["auto"]["24"], strongly["peak_rss_gb"]["auto"]["24"]
    assert f"auto (the kernel, one call) {auto:.1f} s at {peak:.2f} GiB (`-020009`)" in readme


def test_the_readme_meyer_re_run_of_2026_12_07_is_the_committed_measurements():
    """README, the first goal's re-run on 2026-12-07: times and ratios against default.qubit and lightning.qubit from
    the two committed runs."""
    readme = _readme()
    first, second = (bench.load(COMMITTED / f"circuits-20261207-{stamp}.json")["meyer"]["rows"]
                     for stamp in ("031657", "031937"))
    ten, fourteen, again = first[0]["seconds"], first[1]["seconds"], second[0]["seconds"]
    assert (first[0]["qubits"], first[1]["qubits"], second[0]["qubits"]) == (10, 14, 14)
    ratio = lambda s, path: f"{s['default.qubit'] / s[path]:.1f}x"  # noqa: E731
    assert f"the kernel {ratio(ten, 'qrl-native')} faster than `default.qubit` ({_ms(ten['qrl-native'])} against " \
           f"{_ms(ten['default.qubit'])} ms)" in readme
    assert f"the kernel {ratio(fourteen, 'qrl-native')} and {ratio(again, 'qrl-native')}, the fused torch program " \
           f"{ratio(fourteen, 'qrl')} and {ratio(again, 'qrl')}: not reached in one of two runs" in readme
    assert f"took {_ms(fourteen['default.qubit'])} and {_ms(again['default.qubit'])} ms there" in readme
    assert f"the torch program {_ms(fourteen['qrl'])} and {_ms(again['qrl'])} ms" in readme
    assert f"the kernel {_ms(fourteen['qrl-native'])} and {_ms(again['qrl-native'])} (" in readme
    lightning = fourteen["lightning.qubit"]
    assert f"{lightning / fourteen['qrl-native']:.1f}x on the kernel and {lightning / fourteen['qrl']:.1f}x on the " \
           f"torch program" in readme
    policy = bench.load(COMMITTED / "policy-20261207-031414.json")["seconds"]["update"]
    mlp = next(v for k, v in policy.items() if k.startswith("mlp"))
    assert f"batch 64 on `auto` {policy['qrl auto']['64'] / mlp['64']:.2f}x the MLP's" in readme
    scaling = bench.load(COMMITTED / "scaling-20261207-031534.json")["seconds"]
    plain = scaling["torch:plain-adjoint"]
    for path, words in (("auto", "auto"), ("torch", "and the torch program")):
        cells = [f"{plain[n] / scaling[path][n]:.2f}x" for n in ("16", "18", "20")]
        assert f"{words} {cells[0]}, {cells[1]} and {cells[2]}" in readme, path


def test_the_readme_controlled_runs_section_is_the_committed_measurements():
    """README, "Controlled rotations in one pass": Meyer et al.'s circuit against PennyLane (two runs, and the two
    before the change), auto's table, the rollout-sized calls' counts and worst ratios, and the update-sized calls,
    from the committed JSON."""
    readme = _readme()
    a, b = readme.index("**Controlled rotations in one pass**"), readme.index("**Issue 15's goals, as measured**")
    flat = " ".join(readme[a:b].split())  # (one space for every line break)
    ms = bench._ms  # as qrl bench prints them
    times = lambda x: f"{x:.0f}x" if x >= 100 else f"{x:.1f}x"  # noqa: E731
    first, second, third = (bench.load(COMMITTED / f"circuits-20261207-{stamp}.json")["meyer"]["rows"]
                            for stamp in ("041537", "041712", "050859"))
    for row, label in ((first[0], "10"), (first[1], "14"), (second[0], "14, second run (`-041712`)"),
                       (third[0], "14, third run, the final code (`-050859`)")):
        s = row["seconds"]
        slow = [ms(s["lightning.qubit"]), times(s["lightning.qubit"] / s["qrl-native"])] if "lightning.qubit" in s \
            else ["-", "-"]
        cells = [ms(s["qrl-native"]), ms(s["qrl"]), ms(s["default.qubit"]), slow[0],
                 times(s["default.qubit"] / s["qrl-native"]), slow[1]]
        assert f"| {label} | {' | '.join(cells)} |" in flat, label
    before = [bench.load(COMMITTED / f"circuits-20261207-{stamp}.json")["meyer"]["rows"]
              for stamp in ("031657", "031937")]
    b14 = (before[0][1]["seconds"], before[1][0]["seconds"])
    assert f"| 10, before (`-031657`) | {before[0][0]['seconds']['qrl-native'] * 1e3:.1f} |" in flat
    assert (f"{b14[0]['qrl-native'] * 1e3:.1f}, {b14[1]['qrl-native'] * 1e3:.1f} | {b14[0]['qrl'] * 1e3:.1f}, "
            f"{b14[1]['qrl'] * 1e3:.1f} | {b14[0]['default.qubit'] * 1e3:.0f}, {b14[1]['default.qubit'] * 1e3:.0f}"
            ) in flat
    runs = [bench.load(COMMITTED / f"scaling-20261207-{stamp}.json")["seconds"]
            for stamp in ("045352", "045407", "045422")]
    for n in ("10", "12", "14", "16"):
        ratio = [f"{r['auto'][n] / min(r['torch'][n], r['torch:native'][n]):.2f}x" for r in runs]
        big = runs[0]
        assert (f"| {n} | {ms(big['auto'][n])} | {ms(big['torch'][n])} | {ms(big['torch:native'][n])} | {ratio[0]} | "
                f"{ms(runs[1]['auto'][n])} | {ratio[1]} | {ms(runs[2]['auto'][n])} | {ratio[2]} |") in flat, n

    def calls(stamp):
        rows = bench.load(COMMITTED / f"calls-20261207-{stamp}.json")["rows"]
        ratios = [r[f"{r['model_choice']}_s"] / min(r["torch_s"], r["kernel_s"]) for r in rows]
        return rows, sum(x <= 1.2 for x in ratios), len(rows), max(ratios)

    rows, made, total, worst = calls("045315")
    miss = next(r for r in rows if r["qubits"] == 12 and r["batch"] == 1)
    assert (f"in {made} of {total} calls, **worst {worst:.2f}x at 12 qubits and one sample** (the kernel, "
            f"{ms(miss['kernel_s'])} against {ms(miss['torch_s'])} ms") in flat
    rows = calls("040509")[0]
    assert [r["model_choice"] for r in rows] == ["kernel"] * 2
    assert (f"{rows[0]['torch_s'] / rows[0]['kernel_s']:.2f}x and {rows[1]['torch_s'] / rows[1]['kernel_s']:.2f}x "
            f"faster than the torch program ({ms(rows[0]['kernel_s'])} against {ms(rows[0]['torch_s'])} ms, "
            f"{ms(rows[1]['kernel_s'])} against {ms(rows[1]['torch_s'])}") in flat
    rows, made, total, worst = calls("041148")
    miss = next(r for r in rows if r["circuit"] == "circuit_shapes:long_crz" and r["qubits"] == 14 and r["batch"] == 16)
    assert f"{made} of {total} within 1.2x, worst {worst:.2f}x (`long_crz`" in flat
    assert f"{ms(miss['torch_s'])} against {ms(miss['kernel_s'])} ms" in flat
    twenty = bench.load(COMMITTED / "scaling-20261207-040902.json")["seconds"]
    assert (f"{twenty['torch:native']['20']:.2f} s against {twenty['torch']['20']:.2f} "
            f"({twenty['torch']['20'] / twenty['torch:native']['20']:.2f}x") in flat
    crx = bench.load(COMMITTED / "scaling-20261207-041328.json")["seconds"]
    k, t = crx["torch:native"], crx["torch"]
    assert (f"{ms(k['16'])} and {ms(k['18'])} ms against {ms(t['16'])} and {ms(t['18'])} ({t['16'] / k['16']:.2f}x "
            f"and {t['18'] / k['18']:.2f}x") in flat
    assert f"auto's one call at 18, {ms(crx['auto']['18'])} ms, {crx['auto']['18'] / k['18']:.2f}x" in flat
    large = bench.load(COMMITTED / "scaling-20261207-043053.json")["seconds"]
    k, t = large["torch:native"]["24"], large["torch"]["24"]
    assert f"the kernel {k:.1f} s against {t:.1f} s ({t / k:.2f}x, `scaling-20261207-043053.json`)" in flat
    largest = bench.load(COMMITTED / "scaling-20261207-044343.json")["seconds"]["auto"]["26"]
    assert f"two chunks of 8: {largest:.1f} s (`scaling-20261207-044343.json`), against the torch program's 895.6 s" \
        in flat


def test_the_readme_final_re_run_of_2026_12_07_is_the_committed_measurements():
    """README, issue 15's goals re-run on 2026-12-07's final code: the torch program over the plain one for hea and
    strongly_entangling at 10-14 qubits and hea at 16-20, and the policy update against the MLP's."""
    flat = " ".join(_readme().split())
    ratios = {}
    for stamp, plain, qubits in (("052656", "torch:plain", "10 12 14"), ("052711", "torch:plain", "10 12 14"),
                                 ("052829", "torch:plain-adjoint", "16 18 20")):
        seconds = bench.load(COMMITTED / f"scaling-20261207-{stamp}.json")["seconds"]
        for path in ("auto", "torch"):
            if path in seconds:
                ratios[stamp, path] = [f"{seconds[plain][n] / seconds[path][n]:.2f}x" for n in qubits.split()]
    hea, strongly = ratios["052656", "torch"], ratios["052711", "torch"]
    assert hea == ["3.04x", "3.03x", "3.61x"]  # the goal, 3x, with little margin at 10 and 12 qubits
    assert (f"`hea` {hea[0]}, {hea[1]} and {hea[2]} and `strongly_entangling` {strongly[0]}, {strongly[1]} and "
            f"{strongly[2]} faster than the plain program at 10, 12 and 14 qubits") in flat
    auto, torch_program = ratios["052829", "auto"], ratios["052829", "torch"]
    assert (f"auto {', '.join(auto[:2])} and {auto[2]} and the torch program {', '.join(torch_program[:2])} and "
            f"{torch_program[2]} (`-052829`)") in flat
    update = bench.load(COMMITTED / "policy-20261207-052906.json")["seconds"]["update"]
    mlp = next(v for k, v in update.items() if k.startswith("mlp"))
    assert f"a policy update at batch 64 on `auto` {update['qrl auto']['64'] / mlp['64']:.2f}x the MLP's" in flat
