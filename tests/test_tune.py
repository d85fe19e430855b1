"""`qrl tune`: a tiny study runs, survives SIGKILL and resumes to exactly N trials, shares one SQLite file
between workers, refuses bad input with one line and no files, and writes a preset `qrl train` and
rl-zoo3 load. Trials are tiny (CartPole, one- or two-layer circuits, a few hundred steps)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from qrl.cli import main
from qrl.errors import QRLError

optuna = pytest.importorskip("optuna", reason="qrl tune needs Optuna (pip install 'qrl[tune]')")

# Tiny trials: 8 envs x 16 steps per rollout, one evaluation of 2 episodes every 128 steps.
TINY = ["--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "384", "--seeds", "2", "--eval-freq", "128",
        "--eval-episodes", "2", "--space", "n_steps=16", "--space", "batch_size=[32, 64]", "--space", "n_epochs=1",
        "--space", "n_layers=int:1:2"]


def tune_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qrl.cli", "tune", *TINY, "--out", str(out), *extra]


def load(out: Path, name: str = "ppo-vqc__CartPole-v1"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / name}.db")


def counted(study) -> list:
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """4 trials: the command is killed (SIGKILL) while trial 1 trains, then run again as it was."""
    out = tmp_path_factory.mktemp("tune")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = tune_command(out, "--trials", "4", "--steps", "768")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(out / "ppo-vqc__CartPole-v1" / "trials" / "1" / "seed-100000", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.state.name, t.value, t.params) for t in load(out).get_trials()}
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    return out, before, resumed


def test_killed_study_resumes_to_exactly_n_trials(killed_and_resumed):
    out, before, resumed = killed_and_resumed
    assert before[0][0] == "COMPLETE" and before[1][0] == "RUNNING"
    study = load(out)
    after = {t.number: (t.state.name, t.value, t.params) for t in study.get_trials()}
    assert after[0] == before[0]  # the finished trial is kept as it was, not run again
    assert after[1][0] == "FAIL"  # the killed one is failed and not counted
    assert "trial 1: its process" in resumed.stderr and "marked failed, not counted" in resumed.stderr
    assert len(counted(study)) == 4 and sorted(after) == list(range(5))
    settings = study.user_attrs["qrl"]
    assert settings["seeds"] == [100_000, 100_001] and settings["steps"] == 768


def test_outputs_summary_plots_and_preset(killed_and_resumed):
    out, _, resumed = killed_and_resumed
    folder = out / "ppo-vqc__CartPole-v1"
    summary = (folder / "summary.md").read_text()
    assert resumed.stdout == summary
    assert "tuning runs used seeds 100000, 100001" in summary and "1 failed (not counted)" in summary
    assert {"history.png", "importance.png", "trials.csv", "ppo-vqc-tuned.yaml"} <= {p.name for p in folder.iterdir()}
    assert not [p for p in folder.rglob("*.tmp")]
    study = load(out)
    best = study.best_trial
    section = yaml.safe_load((folder / "ppo-vqc-tuned.yaml").read_text())["CartPole-v1"]
    assert section["policy"] == "qrl.sb3.VQCActorCriticPolicy" and section["normalize"] is True
    assert section["n_steps"] == 16 and section["n_epochs"] == 1 and section["batch_size"] == best.params["batch_size"]
    assert f"n_layers={best.params['n_layers']}" in section["policy_kwargs"]
    assert np.isclose(best.value, np.mean(best.user_attrs["seed_auc"]))


def test_preset_loads_with_qrl_train(killed_and_resumed, tmp_path, monkeypatch, capsys):
    import qrl.config

    out, _, _ = killed_and_resumed
    agents = tmp_path / "agents"
    agents.mkdir()
    shutil.copy(out / "ppo-vqc__CartPole-v1" / "ppo-vqc-tuned.yaml", agents)
    real = qrl.config.data_dir
    monkeypatch.setattr(qrl.config, "data_dir", lambda kind: agents if kind == "agents" else real(kind))
    best = load(out).best_trial
    config = qrl.config.resolve("ppo-vqc-tuned", "CartPole-v1")
    assert config.algo == "ppo" and config.policy_kwargs["n_layers"] == best.params["n_layers"]
    assert main(["train", "--agent", "ppo-vqc-tuned", "--env", "CartPole-v1", "--steps", "128", "--out",
                 str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "final eval return" in capsys.readouterr().out


def test_preset_loads_with_rl_zoo3(killed_and_resumed, tmp_path, python, subprocess_env):
    pytest.importorskip("rl_zoo3")
    out, _, _ = killed_and_resumed
    conf = out / "ppo-vqc__CartPole-v1" / "ppo-vqc-tuned.yaml"
    cmd = [python, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "CartPole-v1", "-conf", str(conf), "-n", "128",
           "--seed", "0", "-f", str(tmp_path), "--eval-freq", "-1"]
    subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, timeout=300, check=True)
    assert list((tmp_path / "ppo").glob("CartPole-v1_1/CartPole-v1.zip"))


def test_two_workers_share_one_sqlite_file(tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", *TINY, "--trials", "4", "--workers", "2", "--out", str(out)]) == 0
    trials = load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4 and [t.number for t in trials] == [0, 1, 2, 3]
    assert len({t.user_attrs["job"] for t in trials}) == 4 and len({t.user_attrs["pid"] for t in trials}) == 2
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert sorted(p.name for p in (out / "ppo-vqc__CartPole-v1" / "trials").iterdir()) == ["0", "1", "2", "3"]
    assert "[4/4]" in capsys.readouterr().err


def test_two_commands_share_one_storage_without_extra_trials(tmp_path, subprocess_env):
    out = tmp_path / "tune"
    out.mkdir()
    cmd = tune_command(out, "--trials", "3", "--storage", f"sqlite:///{out}/shared.db", "--name", "shared")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    study = load(out, "shared")
    assert len(counted(study)) == 3
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    assert all(t.state.name != "RUNNING" for t in study.get_trials())


def test_a_study_being_created_by_another_command_is_waited_for(tmp_path):
    """Optuna makes a study and its attribute in two steps; a second command that opens the study in between
    waits for the settings instead of calling them different (CI saw this race)."""
    import threading

    from qrl.tune import storage

    url = f"sqlite:///{tmp_path}/race.db"
    study = optuna.create_study(study_name="race", storage=url, direction="maximize")
    settings = {k: k for k in storage.SETTING_KEYS} | {"name": "race", "storage": url}
    timer = threading.Timer(1.0, lambda: study.set_user_attr("qrl", storage.comparable(settings)))
    timer.start()
    try:
        assert storage.stored_settings(url, "race") == storage.comparable(settings)
    finally:
        timer.join()
    storage.create_study(settings)  # loads it and agrees
    with pytest.raises(QRLError, match=r"other settings \(steps differ\)"):
        storage.create_study(settings | {"steps": 1})


@pytest.mark.parametrize(("extra", "message"), [
    (["--agent", "ppo-qvc"], "unknown agent 'ppo-qvc'; expected one of"),
    (["--storage", "not a url"], "malformed --storage 'not a url'; expected an SQLAlchemy URL"),
    (["--storage", "nosuchdb://x/y"], "malformed --storage 'nosuchdb://x/y'"),
    (["--storage", "sqlite:///no/such/folder/x.db"], "folder no/such/folder does not exist"),
    (["--space", "lr=[0.1, 0.2]"], "unknown search-space key 'lr' for ppo-vqc; expected one of learning_rate"),
    (["--space", "learning_rate=float:1e-4"], "search-space key learning_rate: expected a list of choices"),
    (["--space", "width=[8, 16]"], "unknown search-space key 'width' for ppo-vqc"),
    (["--search", "gamma,foo"], "unknown search-space key 'foo'"),
    (["--trials", "0"], "--trials must be a whole number >= 1; got 0"),
    (["--workers", "0"], "--workers must be a whole number >= 1"),
    (["--preset", "dqn-tuned.yaml"], "--preset dqn-tuned.yaml: expected a file named <algo>-<variant>.yaml"),
    (["--set", "policy_kwargs.n_qubits=2"], "the observation has 4 features but the circuit has 2 qubits"),
])
def test_bad_input_one_line_error_no_files(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    args = ["tune", *TINY, "--trials", "2", "--out", str(tmp_path / "tune")]
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in args and flag not in ("--space", "--set"):
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_resuming_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", *TINY, "--trials", "1", "--out", str(out), "--pruner", "none"]) == 0
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["tune", *TINY, "--trials", "2", "--out", str(out), "--steps", "512"]) == 2
    assert "was made with other settings (steps differ)" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files


# -- search spaces and the objective, without training ------------------------------------------------


def test_search_spaces_per_agent():
    from qrl.tune import default_space, resolve_space

    vqc, mlp, matched = (default_space("ppo", True, False), default_space("ppo", False, False),
                         default_space("ppo", False, True))
    assert {"learning_rate", "lr_schedule", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef",
            "clip_range"} <= set(matched)
    assert {"n_layers", "actor_output_scale", "input_scaling", "readout"} <= set(vqc) and "width" not in vqc
    assert "width" in mlp and "width" not in matched  # the matched MLP keeps its parameter count
    assert {"target_update_interval", "exploration_fraction", "exploration_final_eps", "output_scale"} <= \
        set(default_space("dqn", True, False))
    dims = resolve_space("ppo-vqc", "ppo", True, {"n_epochs": [5, 10]}, search=["gamma"])
    assert {k for k, d in dims.items() if d.searched} == {"gamma", "n_epochs"}
    with pytest.raises(QRLError, match="nothing to search"):
        resolve_space("ppo-vqc", "ppo", True, {k: "preset" for k in default_space("ppo", True, False)})


def test_sampled_values_become_preset_overrides():
    from qrl.tune.space import overrides as to_overrides
    from qrl.tune.space import parse_dimension, resolve_space

    dims = resolve_space("ppo-mlp", "ppo", False, {"n_epochs": 7})
    params = {"learning_rate": 0.01, "lr_schedule": "linear", "n_steps": 16, "batch_size": 512, "width": 32}
    out = to_overrides(dims, params, "ppo", {}, {"net_arch": {"pi": [64, 64], "vf": [64, 64]}}, n_envs=8)
    assert out["learning_rate"] == "lin_0.01" and out["batch_size"] == 128 and out["n_epochs"] == 7
    assert out["policy_kwargs.net_arch"] == {"pi": [32, 32], "vf": [32, 32]}
    dqn = resolve_space("dqn-vqc", "dqn", True, {})
    out = to_overrides(dqn, {"train_freq": 16, "subsample_steps": 4, "output_scale": 50.0}, "dqn", {}, {}, 1)
    assert out["gradient_steps"] == 4 and out["policy_kwargs.output_scale"] == 50.0
    assert parse_dimension("x", "int:1:8:log").distribution() == optuna.distributions.IntDistribution(1, 8, log=True)


def test_normalised_area_under_the_curve():
    from qrl.tune import normalised_auc

    assert normalised_auc([100, 200], [500, 500], (0.0, 475.0)) == 1.0
    assert normalised_auc([100, 200, 400], [0.0, 475.0, 237.5], (0.0, 475.0)) == pytest.approx((0 + 1 + 0.5 * 2) / 4)
    assert normalised_auc([10], [-3.0], None) == -3.0


def test_a_killed_trials_unfinished_writes_are_removed_when_it_is_failed(tmp_path):
    """A trial whose process died mid-write (SIGKILL inside an atomic write) leaves a temporary file beside the one it
    was replacing; failing the stale trial removes it and keeps what was written before."""
    import socket

    from qrl.tune import storage

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", int(gone.stdout))
    run = tmp_path / "trials" / str(trial.number) / "seed-100000"
    run.mkdir(parents=True)
    (run / "evaluations.csv").write_text("timesteps,mean\n")
    (run / ".evaluations.dfuc_qhb.csv.tmp").write_text("timesteps,me")
    logged = []
    storage.fail_stale(study, logged.append, tmp_path)
    assert study.trials[0].state.name == "FAIL" and "marked failed" in logged[0]
    assert sorted(p.name for p in run.iterdir()) == ["evaluations.csv"]
    assert (run / "evaluations.csv").read_text() == "timesteps,mean\n"
