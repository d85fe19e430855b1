"""Real devices: credentials, hardware names, dry runs, cost accounting and robustness sweeps."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl import cost
from qrl.backends import hardware, make_backend, select
from qrl.circuits import CircuitSpec
from qrl.cli import main
from qrl.errors import QRLError

CREDENTIAL_VARS = ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "IONQ_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "256", "--seed", "3",
                 "--out", str(out), "--no-progress", "--set", "n_epochs=2", "--set", "n_steps=128",
                 "--set", "n_envs=1", "--set", "batch_size=64", "--set", "policy_kwargs.n_layers=2"])
    assert code == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/credentials
    hardware.qiskit_backend.cache_clear()
    yield
    hardware.qiskit_backend.cache_clear()


def pretend_installed(monkeypatch, *names):
    real = select.installed_devices()
    monkeypatch.setattr(select, "installed_devices", lambda: sorted({*real, *names}))


def needs_qiskit():
    for module in ("qiskit_aer", "qiskit_ibm_runtime", "pennylane_qiskit"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'qrl[hardware]')")


# -- credentials and device names --------------------------------------------------------------------


@pytest.mark.parametrize(("device", "variable"), [
    ("qiskit.remote@ibm_brisbane", "QISKIT_IBM_TOKEN"),
    ("ionq.qpu@aria-1", "IONQ_API_KEY"),
    ("braket.aws.qubit@arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1", "AWS_ACCESS_KEY_ID"),
])
def test_missing_credentials_give_one_line_with_the_variable_to_set(device, variable, monkeypatch, no_credentials):
    pretend_installed(monkeypatch, device.partition("@")[0])  # the credential check comes before the plugin
    with pytest.raises(QRLError) as err:
        make_backend(CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2), device, shots=16)
    message = str(err.value)
    assert "\n" not in message
    assert f"{variable}" in message and "is not set; try export " in message


def test_missing_credentials_on_the_command_line(tiny_run, monkeypatch, no_credentials, capsys):
    pretend_installed(monkeypatch, "ionq.qpu")
    code = main(["eval", str(tiny_run), "--device", "ionq.qpu@aria-1", "--shots", "100", "--episodes", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("qrl: error: ionq.qpu needs credentials; IONQ_API_KEY is not set; try export IONQ_API_KEY")


def test_aws_credentials_file_counts(monkeypatch, no_credentials, tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    hardware.check_credentials("braket.aws.qubit")  # no error


@pytest.mark.parametrize(("device", "message"), [
    ("qiskit.remote", r"qiskit.remote needs the machine in the name; got 'qiskit.remote'; try qiskit.remote@ibm_"),
    ("braket.aws.qubit", r"try braket.aws.qubit@arn:aws:braket"),
    ("default.qubit@ibm_brisbane", r"qrl knows no machine names for default.qubit; expected one of"),
    ("default.qubit@FakeManilaV2", r"runs on qiskit.aer; got default.qubit@FakeManilaV2; try qiskit.aer@FakeManilaV2"),
])
def test_malformed_hardware_names(device, message, monkeypatch, no_credentials):
    pretend_installed(monkeypatch, device.partition("@")[0])
    with pytest.raises(QRLError, match=message):
        make_backend(CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2), device, shots=16)


def test_a_missing_plugin_names_the_package(no_credentials):
    if "ionq.qpu" in select.installed_devices():
        pytest.skip("pennylane-ionq is installed here: its absence cannot be tested")
    with pytest.raises(QRLError, match=r"device 'ionq.qpu' is not installed; try pip install pennylane-ionq"):
        make_backend(CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2), "ionq.qpu@aria-1", shots=16)


def test_hardware_needs_shots():
    with pytest.raises(QRLError, match="samples like hardware; expected shots; try shots=1024"):
        make_backend(CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2), "ionq.qpu@aria-1")


def test_ibm_remote_reads_the_token_from_the_environment_and_never_stores_it(tiny_run, tmp_path, monkeypatch,
                                                                             no_credentials):
    """qiskit.remote@<backend> end to end, with IBM's service replaced by one that hands out an offline
    snapshot: the token goes from the environment to the service and nowhere else."""
    needs_qiskit()
    import qiskit_ibm_runtime
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    from qrl.evaluate import evaluate_model, load_model

    token = "token-0123456789-never-stored"
    seen = {}

    class Service:
        def __init__(self, channel, token, instance):
            seen.update(channel=channel, token=token, instance=instance)

        def backend(self, name):
            seen["backend"] = name
            return FakeManilaV2()

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    monkeypatch.setenv("QISKIT_IBM_TOKEN", token)
    model, config = load_model(tiny_run, device="qiskit.remote@ibm_manila", shots=64)
    mean, _, executions = evaluate_model(model, config, tiny_run, episodes=1)
    assert seen == {"channel": "ibm_quantum_platform", "token": token, "instance": None, "backend": "ibm_manila"}
    assert mean >= 8 and sum(executions.values()) == mean  # one circuit per step
    model.save(tmp_path / "moved.zip")
    for path in [*tiny_run.rglob("*"), tmp_path / "moved.zip"]:
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


# -- cost accounting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3),
    CircuitSpec(n_qubits=2, n_layers=2, n_inputs=2, ansatz="strongly_entangling", data_reuploading=False),
    CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, input_scaling=False),
])
def test_shift_parameters_is_what_parameter_shift_runs(spec):
    """2 x shift_parameters equals the tapes PennyLane's parameter-shift rule makes for one sample, with
    every gate angle that depends on a trainable parameter marked trainable."""
    angles = np.linspace(0.1, 0.9, spec.n_encoding_layers * spec.n_inputs).reshape(spec.n_encoding_layers,
                                                                                  spec.n_inputs)
    weights = np.linspace(-1, 1, math.prod(spec.weight_shape)).reshape(spec.weight_shape)
    tape = qml.tape.make_qscript(spec.qfunc())(angles, weights)
    (tape,), _ = qml.transforms.decompose(tape, gate_set={"RX", "RY", "RZ", "CZ", "CNOT"})
    encoding = {float(a) for a in angles.ravel()}
    trainable = [i for i, p in enumerate(tape.get_parameters(trainable_only=False))
                 if spec.trains_input_scaling or float(p) not in encoding]
    tape.trainable_params = trainable
    shifted, _ = qml.gradients.param_shift(tape)
    assert len(shifted) == cost.circuits_per_gradient_sample(spec, "parameter-shift")
    assert cost.circuits_per_gradient_sample(spec, "spsa") == 2


def test_a_run_records_its_circuits_and_the_hardware_gradient_factor(tiny_run):
    results = json.loads((tiny_run / "results.json").read_text())
    cost = results["cost"]
    # PPO: 2 rollouts of 128 steps; each update: n_epochs=2 passes over 128 samples through actor and critic
    assert cost["gradient_samples"] == 2 * 2 * 2 * 128
    assert cost["shift_parameters"] == 2 * 4 * 2 + 2 * 4  # hea weights (2 layers x 4 qubits x 2) + lambda
    assert cost["gradient_circuits"] == cost["gradient_samples"] * 2 * cost["shift_parameters"]
    assert cost["circuit_executions"] == results["circuit_executions"] > cost["gradient_samples"]
    assert cost["hardware_circuits"] == cost["circuit_executions"] + cost["gradient_circuits"]
    assert cost["shots"] is None and cost["shots_per_circuit"] is None  # trained exactly


def test_estimate_arithmetic():
    ibm, ionq = cost.DEVICE_CLASSES["ibm"], cost.DEVICE_CLASSES["ionq-aria"]
    e = cost.estimate(ibm, circuits=10, shots=100, seconds_per_shot=1e-3)
    assert (e.circuits, e.shots) == (10, 1000) and e.qpu_seconds == pytest.approx(1.0)
    assert e.price == pytest.approx(1.60)
    e = cost.estimate(ionq, circuits=10, shots=100, seconds_per_shot=1e-3)
    assert e.price == pytest.approx(10 * (0.30 + 100 * 0.03))


# -- dry runs ----------------------------------------------------------------------------------------


def test_ion_trap_compilation_counts_gates_and_time():
    spec = CircuitSpec(n_qubits=4, n_layers=3, n_inputs=4)  # hea: RX encoding, RY-RZ, a 4-edge CZ ring
    angles, weights = np.full((3, 4), 0.3), np.full(spec.weight_shape, 0.2)
    t = cost.transpile_for(spec, "ionq.qpu@aria-1", angles, weights)
    assert t.two_qubit_gates == 3 * 4
    assert t.gate_counts == {"RX": 12, "RY": 12, "RZ": 12, "CZ": 12}
    # RZ free; RX, RY one gate each: 24 x 135 us + 12 x 600 us + 300 us readout + 20 us reset
    assert t.seconds_per_shot == pytest.approx(24 * 135e-6 + 12 * 600e-6 + 320e-6)


def test_dry_run_prints_the_compiled_circuit_and_cost_without_credentials(tiny_run, capsys, no_credentials):
    code = main(["eval", str(tiny_run), "--device", "ionq.qpu@aria-1", "--shots", "1000", "--episodes", "2",
                 "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("dry run on ionq.qpu@aria-1: nothing is submitted")
    assert "depth" in out and "8 two-qubit gates" in out  # 2 layers x a 4-edge CZ ring
    evaluation = next(line for line in out.splitlines() if line.startswith("evaluation, 2 episodes"))
    circuits = int(evaluation.split(": ")[1].split(" circuits")[0])
    assert 16 <= circuits <= 1000  # one per step of the 2 episodes (CartPole: 8 <= steps <= 500 each)
    assert "training this run on the device" in out and "parameter-shift" in out
    assert "0: ──" in out  # the drawing


def test_dry_run_on_an_ibm_name_uses_its_snapshot_offline(tiny_run, capsys, no_credentials):
    needs_qiskit()
    code = main(["eval", str(tiny_run), "--device", "qiskit.remote@ibm_brisbane", "--shots", "1024", "--episodes",
                 "1", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, capsys.readouterr().err
    assert "snapshot FakeBrisbane (127 qubits)" in out and "ecr" in out
    two_qubit = int(out.split(" two-qubit gates")[0].rsplit(", ", 1)[1])
    assert two_qubit >= 8  # the 8 CZs, plus SWAPs where the ring is not on the chip's map


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "lightning.qubit", "--shots", "10", "--dry-run"], "no timing model for 'lightning.qubit'"),
    (["--device", "ionq.qpu@aria-1", "--dry-run"],
     "--dry-run prices one hardware device; expected --device NAME --shots N"),
])
def test_dry_run_errors(tiny_run, capsys, args, message):
    assert main(["eval", str(tiny_run), *args]) == 2
    assert message in capsys.readouterr().err


# -- robustness sweeps -------------------------------------------------------------------------------


def test_noise_sweep_prints_a_table_and_writes_the_plot(tiny_run, tmp_path, capsys):
    plot = tmp_path / "sweep.png"
    code = main(["eval", str(tiny_run), "--device", "default.mixed", "--noise", "depolarizing=0,0.2", "--episodes",
                 "2", "--envs", "2", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "| depolarizing | return | circuits | shots |"
    assert plot.is_file() and plot.stat().st_size > 1000
    with open(plot.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["depolarizing"]) for r in rows] == [0.0, 0.2]
    # noise 0 on the mixed-state simulator is the exact policy: same episodes as the torch path
    main(["eval", str(tiny_run), "--episodes", "2", "--envs", "2"])
    exact = float(capsys.readouterr().out.split("return ")[1].split(" +-")[0])
    assert float(rows[0]["mean_return"]) == pytest.approx(exact)


def test_shot_sweep(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--device", "lightning.qubit", "--shots", "4,1000", "--episodes", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 4", "| 1000"]
    circuits = [int(line.split(" | ")[2]) for line in lines[2:]]
    assert [line.split(" | ")[3].rstrip(" |") for line in lines[2:]] == [str(4 * circuits[0]), str(1000 * circuits[1])]


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "default.mixed", "--noise", "depolarizing=0,0.1", "--noise", "amplitude_damping=0,0.1"],
     "a sweep varies one quantity"),
    (["--device", "default.mixed", "--noise", "depolarizing=0.1", "--plot", "x.png"], "--plot draws a sweep"),
    (["--device", "lightning.qubit", "--shots", "10,abc"], "malformed --shots '10,abc'; expected integers"),
    (["--device", "default.mixed", "--noise", "depolarizing"], "malformed --noise 'depolarizing'"),
    (["--episodes", "2", "--envs", "3"], "expected episodes >= 1 and 1 <= envs <= episodes"),
])
def test_sweep_errors(tiny_run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(tiny_run), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_parallel_evaluation_batches_the_circuits(tiny_run):
    from qrl.evaluate import evaluate_model, load_model

    model, config = load_model(tiny_run)
    calls = []
    vqc = model.policy.mlp_extractor.policy_net.vqc
    original = vqc.forward
    vqc.forward = lambda x: calls.append(x.shape[0]) or original(x)
    with torch.no_grad():
        evaluate_model(model, config, tiny_run, episodes=4, n_envs=4)
    assert calls[0] == 4


def test_ibm_dry_run_without_the_qiskit_extra_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pennylane_qiskit.converter", None)  # as if qrl[hardware] were absent
    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2)
    with pytest.raises(QRLError, match=r"transpiles with Qiskit; try pip install 'qrl\[hardware\]'"):
        cost.transpile_for(spec, "qiskit.remote@ibm_brisbane", np.zeros((1, 2)), np.zeros(spec.weight_shape))


def test_policy_circuits_leave_out_target_networks():
    from qrl.config import resolve
    from qrl.sb3.networks import policy_circuits
    from qrl.train import build_model

    model, env = build_model(resolve("dqn-vqc", "CartPole-v1"))
    env.close()
    assert list(policy_circuits(model.policy)) == ["q_net.q_net.vqc"]  # q_net_target's copy is not listed
    assert any("q_net_target" in name for name, _ in model.policy.named_modules())
