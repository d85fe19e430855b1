"""The qrl command: train -> run folder -> eval; one-line errors with no traceback and no files."""

from __future__ import annotations

import json
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from stable_baselines3 import PPO

from qrl.cli import build_parser, main


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = run_cli("train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "512", "--seed", "1",
                   "--out", str(out), "--no-progress", "--set", "n_epochs=2", "--set", "policy_kwargs.n_layers=2")
    assert code == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_train_writes_a_complete_run_folder(trained_run):
    assert trained_run.name.startswith("CartPole-v1__ppo-vqc__1__")
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "model.zip", "results.json", "evaluations.csv", "tb", "vecnormalize.pkl"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["policy_kwargs"]["n_layers"] == 2 and config["hyperparams"]["n_epochs"] == 2
    results = json.loads((trained_run / "results.json").read_text())
    assert results["status"] == "finished" and results["timesteps"] == 512
    assert results["parameters"] == {"quantum": 2 * 4 * 2 * 2 + 2 * 2 * 4 + 3, "classical": 0,
                                     "total": 2 * 4 * 2 * 2 + 2 * 2 * 4 + 3}
    assert (trained_run / "evaluations.csv").read_text().splitlines()[0] == \
        "timesteps,mean_return,std_return,wall_clock_s"
    assert any((trained_run / "tb").rglob("events.out.tfevents.*"))
    model = PPO.load(trained_run / "model.zip", device="cpu")
    assert model.policy.circuit_config["n_layers"] == 2


def test_eval_prints_mean_and_std(trained_run, capsys):
    assert run_cli("eval", str(trained_run), "--episodes", "3") == 0
    out = capsys.readouterr().out
    assert out.startswith("ppo-vqc on CartPole-v1: return ") and "over 3 episodes" in out
    mean = float(out.split("return ")[1].split(" +-")[0])
    assert 8 <= mean <= 500


def test_eval_on_lightning_matches_torch(trained_run, capsys):
    run_cli("eval", str(trained_run), "--episodes", "2")
    torch_out = capsys.readouterr().out
    run_cli("eval", str(trained_run), "--episodes", "2", "--device", "lightning.qubit")
    lightning_out = capsys.readouterr().out
    assert "on lightning.qubit" in lightning_out
    # Same policy, same seeds: the same returns (float32 vs float64 can only flip exact ties).
    assert torch_out.split("return ")[1] == lightning_out.split("return ")[1]


def test_list(capsys):
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    for word in ("ppo-vqc", "ppo-mlp", "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "lightning.qubit", "torch"):
        assert word in out
    # parameter counts per agent and env: the VQC, the matched MLP, and the circuit share of a hybrid
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "CartPole-v1 (123)" in lines["ppo-vqc"] and "CartPole-v1 (120)" in lines["ppo-mlp-matched"]
    assert "CartPole-v1 (9155)" in lines["ppo-mlp"]
    assert "Pendulum-v1 (134705, 47 in circuits)" in lines["sac-vqc"]
    assert "qiskit.remote@ibm_brisbane" in lines["<device>@<machine>"]


class TinyImageEnv(gym.Env):
    observation_space = spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.fixture
def image_env_id():
    env_id = "QrlTestImage-v0"
    gym.register(env_id, entry_point=TinyImageEnv)
    yield env_id
    gym.registry.pop(env_id, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--agent", "ppo-vqc", "--env", "CartPol-v1"), "unknown environment 'CartPol-v1'; did you mean CartPole-v1?"),
        (("--agent", "ppo-qvc", "--env", "CartPole-v1"), "unknown agent 'ppo-qvc'; expected one of"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--device", "lightning.gpu"),
         "device 'lightning.gpu' is not installed; try pip install 'qrl[gpu]'"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--device", "foo.bar"), "unknown device 'foo.bar'"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--set", "gamma"), "malformed --set 'gamma'"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--set", "policy_kwargs.n_qubits=2"),
         "the observation has 4 features but the circuit has 2 qubits"),
        (("--agent", "ppo-vqc", "--env", "CartPole-v1", "--set", "policy_kwargs.n_qubits=50"),
         "n_qubits=50 needs 16 PiB for one state vector"),
        (("--agent", "ppo-vqc", "--env", "Acrobot-v1", "--set", "policy_kwargs.n_qubits=4"),
         "the observation has 6 features but the circuit has 4 qubits"),
    ],
)
def test_bad_input_one_line_error_no_files(tmp_path, capsys, args, message):
    out = tmp_path / "runs"
    code = run_cli("train", *args, "--steps", "64", "--out", str(out), "--no-progress")
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_image_observations_error(tmp_path, capsys, monkeypatch, image_env_id):
    # A preset with a section for the image env, in a temporary agents/ folder.
    import qrl.config

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "ppo-vqc.yaml").write_text(f"{image_env_id}:\n  policy: qrl.sb3.VQCActorCriticPolicy\n  n_steps: 64\n")
    real = qrl.config.data_dir
    monkeypatch.setattr(qrl.config, "data_dir", lambda kind: agents if kind == "agents" else real(kind))
    out = tmp_path / "runs"
    code = run_cli("train", "--agent", "ppo-vqc", "--env", image_env_id, "--steps", "64", "--out", str(out),
                   "--no-progress")
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert "image observations (shape (3, 8, 8)) are not supported by VQC policies" in line
    assert "Traceback" not in err
    assert not out.exists()


def test_eval_of_a_non_run_folder(tmp_path, capsys):
    assert run_cli("eval", str(tmp_path)) == 2
    assert "is not a finished run folder" in capsys.readouterr().err


def test_console_script_reports_errors_without_traceback(tmp_path, python, subprocess_env):
    proc = subprocess.run([python, "-m", "qrl.cli", "train", "--agent", "nope-vqc", "--env", "CartPole-v1",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("qrl: error: ")
    assert "Traceback" not in proc.stderr


def test_eval_with_shots(trained_run, capsys):
    assert run_cli("eval", str(trained_run), "--episodes", "2", "--device", "lightning.qubit", "--shots", "256") == 0
    assert "on lightning.qubit with 256 shots: return" in capsys.readouterr().out
    assert run_cli("eval", str(trained_run), "--episodes", "2", "--shots", "256") == 2
    assert "--shots 256 needs a PennyLane device" in capsys.readouterr().err


def test_eval_with_noise(trained_run, capsys):
    args = ["eval", str(trained_run), "--episodes", "2", "--device", "default.mixed", "--noise", "depolarizing=0.01"]
    assert run_cli(*args) == 0
    assert "on default.mixed, depolarizing 0.01: return" in capsys.readouterr().out
    assert run_cli("eval", str(trained_run), "--episodes", "2", "--noise", "depolarizing=0.01") == 2
    assert "--noise needs a mixed-state simulator" in capsys.readouterr().err


def test_eval_on_a_fake_ibm_device(trained_run, capsys):
    for module in ("qiskit_aer", "qiskit_ibm_runtime"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'qrl[hardware]')")
    args = ["eval", str(trained_run), "--episodes", "1", "--device", "qiskit.aer@FakeManilaV2", "--shots", "1024"]
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "on qiskit.aer@FakeManilaV2 with 1024 shots: return" in out
    executions = int(out.split("cost: ")[1].split()[0])
    assert executions > 0 and f"{executions * 1024} shots" in out
    assert run_cli("eval", str(trained_run), "--device", "qiskit.aer@FakeNowhere", "--shots", "8") == 2
    assert "unknown IBM device snapshot 'FakeNowhere'" in capsys.readouterr().err
    assert run_cli("eval", str(trained_run), "--device", "qiskit.aer@FakeManilaV2") == 2
    assert "expected shots" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "value", "dest"),
    [
        (["eval", "RUN", "--envs", "4"], ["eval", "RUN", "--n-envs", "4"], 4, "n_envs"),
        (["distill", "--teacher", "t.zip", "--student", "ppo-vqc", "--env", "CartPole-v1", "--noise", "0.3"],
         ["distill", "--teacher", "t.zip", "--student", "ppo-vqc", "--env", "CartPole-v1", "--random-actions", "0.3"],
         0.3, "random_actions"),
    ],
)
def test_renamed_flags_keep_the_old_name_with_one_warning(capsys, old, new, value, dest):
    parsed_new = build_parser().parse_args(new)
    assert capsys.readouterr().err == ""
    parsed_old = build_parser().parse_args(old)
    flag, new_flag = old[-2], new[-2]
    assert capsys.readouterr().err.splitlines() == [f"qrl: warning: {flag} is deprecated; use {new_flag}"]
    assert getattr(parsed_old, dest) == getattr(parsed_new, dest) == value
    assert vars(parsed_old).keys() == vars(parsed_new).keys()  # no attribute named after the old flag


def test_renamed_flags_defaults():
    assert build_parser().parse_args(["eval", "RUN"]).n_envs == 1
    distill = ["distill", "--teacher", "t.zip", "--student", "ppo-vqc", "--env", "CartPole-v1"]
    assert build_parser().parse_args(distill).random_actions == 0.2


@pytest.mark.parametrize(
    ("what", "own", "foreign"),
    [
        ("policy", ["--batches", "--skip-slow", "--budget", "--out"], ["--qubits", "--backends", "--update-auto",
                                                                       "--steps", "--algos", "--env"]),
        ("train", ["--steps", "--env", "--algos", "--out"], ["--qubits", "--batches", "--budget", "--skip-slow"]),
        ("scaling", ["--qubits", "--batch", "--backends", "--update-auto", "--budget"],
         ["--batches", "--steps", "--algos", "--skip-slow"]),
    ],
)
def test_bench_subcommands_list_only_their_own_flags(capsys, what, own, foreign):
    with pytest.raises(SystemExit) as exc:
        main(["bench", what, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in own), out
    assert not [flag for flag in foreign if flag + " " in out or flag + "\n" in out], out


@pytest.mark.parametrize(
    ("args", "what", "attrs"),
    [
        (["bench", "policy", "--batches", "1", "8"], "policy", {"batches": [1, 8]}),
        (["bench", "train", "--steps", "20000"], "train", {"steps": 20000, "algos": ["ppo", "dqn"]}),
        (["bench", "scaling", "--qubits", "4", "6", "--backends", "torch", "lightning.qubit", "--update-auto"],
         "scaling", {"qubits": [4, 6], "backends": ["torch", "lightning.qubit"], "update_auto": True}),
    ],
)
def test_bench_command_lines_parse(args, what, attrs):
    parsed = build_parser().parse_args(args)
    assert parsed.command == "bench" and parsed.what == what
    assert {k: getattr(parsed, k) for k in attrs} == attrs


def test_bench_flag_of_another_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "policy", "--qubits", "4"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --qubits" in capsys.readouterr().err


def test_every_command_parses_to_a_runner():
    for args in (["list"], ["plot", "RUN", "--out", "x.png"], ["circuit"], ["study", "s.yaml"], ["report", "S"],
                 ["diagnose", "gradients"], ["diagnose", "circuit", "ppo-vqc"], ["compare", "--agents", "a", "--env",
                                                                                  "CartPole-v1"]):
        parsed = build_parser().parse_args(args)
        assert parsed.command == args[0] and callable(parsed.run)


def test_interrupt_is_one_line_and_status_130(capsys, monkeypatch):
    from qrl.cli import info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run_list", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "qrl: interrupted\n"
