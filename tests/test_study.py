"""`qrl study`: a tiny study runs, resumes, survives SIGKILL, records failures; Ray when installed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qrl.errors import QRLError
from qrl.study import load_study, run_study

AGENTS = ["ppo-vqc", "ppo-mlp-matched", "ppo-mlp"]


def tiny_study(tmp_path: Path, steps: int = 512, **extra) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "envs": ["CartPole-v1"], "agents": AGENTS, "seeds": 2,
                                    "steps": steps, "eval_freq": 256, "eval_episodes": 2, **extra}))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_complete(study_dir: Path, n_runs: int) -> None:
    """Every run finished exactly once, complete, nothing half-written left behind."""
    runs = rows(study_dir / "runs.csv")
    assert sorted(r["run_id"] for r in runs) == sorted({r["run_id"] for r in runs}), "duplicated runs"
    assert len(runs) == n_runs and all(r["status"] == "finished" for r in runs), runs
    for r in runs:
        run_dir = study_dir / "runs" / r["run_id"]
        assert json.loads((run_dir / "results.json").read_text())["status"] == "finished"
        assert (run_dir / "model.zip").is_file() and (run_dir / "evaluations.csv").is_file()
    assert sorted(p.name for p in (study_dir / "runs").iterdir() if p.name != ".partial") == sorted(
        r["run_id"] for r in runs)
    assert not any((study_dir / "runs" / ".partial").glob("*"))
    records = rows(study_dir / "records.csv")
    assert {r["run_id"] for r in records} == {r["run_id"] for r in runs}


def test_tiny_study_runs_and_resumes(tmp_path):
    study_dir = run_study(tiny_study(tmp_path), out=tmp_path / "study", workers=2, log=lambda _: None)
    check_complete(study_dir, 6)
    runs = {r["run_id"]: r for r in rows(study_dir / "runs.csv")}
    vqc = runs["CartPole-v1__ppo-vqc__0"]
    assert vqc["params_total"] == vqc["params_quantum"] == "123" and int(vqc["circuit_executions"]) > 512
    # on hardware: every differentiated sample adds 2 circuits per trainable gate angle (60 of them)
    assert int(vqc["hardware_circuits"]) > int(vqc["circuit_executions"]) + 2 * 60
    assert runs["CartPole-v1__ppo-mlp__0"]["hardware_circuits"] == ""
    assert runs["CartPole-v1__ppo-mlp-matched__1"]["params_classical"] == "120"
    records = [r for r in rows(study_dir / "records.csv") if r["run_id"] == "CartPole-v1__ppo-vqc__0"]
    assert [int(r["timesteps"]) for r in records] == [256, 512]
    episodes = [r for r in rows(study_dir / "episodes.csv") if r["run_id"] == "CartPole-v1__ppo-vqc__0"]
    assert [(int(r["timesteps"]), int(r["episode"])) for r in episodes] == [(256, 0), (256, 1), (512, 0), (512, 1)]
    mean_at_256 = sum(float(r["return"]) for r in episodes[:2]) / 2
    assert abs(mean_at_256 - float(records[0]["mean_return"])) < 1e-9
    stamps = {p.name: p.stat().st_mtime_ns for p in (study_dir / "runs").glob("*/results.json")}
    messages = []
    run_study(tiny_study(tmp_path), out=study_dir, workers=2, log=messages.append)  # resume: nothing to do
    assert "6 finished before, 0 to run" in messages[0]
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (study_dir / "runs").glob("*/results.json")}
    check_report(study_dir)


def check_report(study_dir: Path) -> None:
    """`qrl report` on the study: the markdown names every agent and links PNGs that exist."""
    import re

    from qrl.cli import main

    assert main(["report", str(study_dir), "--reps", "50"]) == 0
    report = (study_dir / "report" / "report.md").read_text()
    assert all(agent in report for agent in AGENTS)
    images = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert images and all((study_dir / "report" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for image in images)


def test_sigkill_mid_study_then_rerun_completes_without_duplicates(tmp_path, subprocess_env):
    study = tiny_study(tmp_path, steps=4096)
    study_dir = tmp_path / "study"
    cmd = [sys.executable, "-m", "qrl.cli", "study", str(study), "--workers", "2", "--out", str(study_dir)]
    proc = subprocess.Popen(cmd, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list((study_dir / "runs").glob("*/results.json")):
        time.sleep(0.2)
    assert list((study_dir / "runs").glob("*/results.json")), "no run finished before the kill"
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert workers, "expected the study's pool workers"
    os.kill(proc.pid, signal.SIGKILL)  # the study process only: its workers notice and exit
    proc.wait()
    from qrl.processes import process_alive

    deadline = time.time() + 30  # a watcher checks each second; a loaded machine may run it late
    while time.time() < deadline and any(process_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if process_alive(pid)], "orphaned workers live on"
    assert len(list((study_dir / "runs").glob("*/results.json"))) < 6, "killed too late to test anything"
    subprocess.run(cmd, env=subprocess_env, check=True, capture_output=True, timeout=600)
    check_complete(study_dir, 6)


def test_failed_run_is_recorded_with_its_error_and_retried(tmp_path):
    # batch_size 1 passes `qrl study`'s up-front check but SB3's PPO refuses it when the run starts
    study = tiny_study(tmp_path, retries=1, grid={"ppo-mlp": {"batch_size": [1]}})
    messages = []
    study_dir = run_study(study, out=tmp_path / "study", workers=2, log=messages.append)
    runs = {r["run_id"]: r for r in rows(study_dir / "runs.csv")}
    failed = [r for r in runs.values() if r["status"] == "failed"]
    assert {r["agent"] for r in failed} == {"ppo-mlp@batch_size=1"} and len(failed) == 2
    assert all(r["attempts"] == "2" and "batch_size" in r["error"] for r in failed)  # first try + 1 retry
    assert sum(r["status"] == "finished" for r in runs.values()) == 4
    assert any("failed]" in m and "batch_size" in m for m in messages)  # the progress line shows the error


@pytest.mark.parametrize(("patch", "message"), [
    ({"colour": "red"}, "unknown key"),
    ({"envs": []}, "expected non-empty envs"),
    ({"agents": ["ppo-quantum"]}, "ppo-quantum"),
    ({"grid": {"dqn-vqc": {"learning_rate": [0.1]}}}, "grid.dqn-vqc"),
    ({"name": "/tmp/elsewhere"}, "expected `name`"),
    ({"name": "../up"}, "expected `name`"),
    ({"name": ".hidden"}, "expected `name`"),
    ({"seeds": -2}, "expected `seeds`"),
    ({"seeds": "3"}, "expected `seeds`"),
    ({"seeds": [0, 0]}, "expected `seeds`"),
    ({"seeds": [1, -1]}, "expected `seeds`"),
    ({"steps": "many"}, "expected `steps`"),
    ({"steps": 0}, "expected `steps`"),
    ({"steps": {"CartPole-v1": 0}}, r"steps: expected each key an env of the study \(CartPole-v1\) and each value"),
    ({"steps": {"CartPole-v1": 100, "Acrobot-v1": 100}}, "expected each key an env of the study"),
    ({"envs": ["CartPole-v1", "Acrobot-v1"], "steps": {"CartPole-v1": 100}},
     "expected steps for every env of the study; Acrobot-v1 missing"),
    ({"tune": {"trials": 2, "steps": {"CartPole-v1": "many"}}}, r"tune: steps: expected each key an env"),
    ({"eval_freq": 1.5}, "expected `eval_freq`"),
    ({"eval_episodes": True}, "expected `eval_episodes`"),
    ({"retries": -1}, "expected `retries`"),
    ({"retries": "once"}, "expected `retries`"),
    ({"final_evals": 0}, "expected `final_evals`"),
    ({"final_evals": "last"}, "expected `final_evals`"),
    ({"tune": 5}, "expected `tune` to be a mapping"),
    ({"device": 3}, "expected `device` to be a circuit backend name"),
    ({"device": ""}, "expected `device` to be a circuit backend name"),
    ({"tune": {"trials": 0}}, r"tune\.trials: expected an integer >= 1"),
    ({"tune": {"trials": 2, "budget": 3}}, r"tune\.budget: expected a budget key"),
    ({"tune": {"ppo-vqc": {"trials": 2, "epochs": 3}}}, r"tune\.ppo-vqc: unknown key\(s\) epochs"),
    ({"tune": {"seeds": 2}}, "expected trials in the budget of ppo-vqc"),
    ({"tune": {"trials": 2}, "steps": None}, "expected steps in the budget"),
    ({"tune": {"trials": 2}, "grid": {"ppo-vqc": {"learning_rate": [0.1]}}}, "both a `grid` and a `tune`"),
    ({"tune": {"trials": 2}, "seeds": [0, 85000]}, "come near the tuning seeds"),
    ({"agents": ["agents/nothing/ppo-x.yaml"]}, "agent file agents/nothing/ppo-x.yaml not found"),
])
def test_bad_study_files_are_refused_before_anything_runs(tmp_path, patch, message):
    path = tiny_study(tmp_path)
    data = {**yaml.safe_load(path.read_text()), **patch}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(QRLError, match=message):
        load_study(path)


def mlp_study(tmp_path: Path, **extra) -> Path:
    return tiny_study(tmp_path, **{"steps": 256, "agents": ["ppo-mlp"], **extra})


def test_damaged_run_is_reported_and_not_retrained(tmp_path):
    study = mlp_study(tmp_path, seeds=3)
    study_dir = run_study(study, out=tmp_path / "study", log=lambda _: None)
    damaged = study_dir / "runs" / "CartPole-v1__ppo-mlp__1" / "results.json"
    damaged.write_text("{not json")
    messages = []
    run_study(study, out=study_dir, log=messages.append)
    assert "2 finished before, 0 to run" in messages[0]
    lines = [m for m in messages[1:] if "damaged, not retrained" in m]
    assert len(lines) == 1 and "CartPole-v1__ppo-mlp__1" in lines[0] and "deleting" in lines[0], messages
    assert damaged.read_text() == "{not json"  # not trained again over it
    runs = {r["run_id"]: r for r in rows(study_dir / "runs.csv")}
    assert runs["CartPole-v1__ppo-mlp__1"]["status"] == "damaged" and "not JSON" in runs[
        "CartPole-v1__ppo-mlp__1"]["error"]
    assert [r["status"] for r in runs.values()].count("finished") == 2
    from qrl.cli import main

    assert main(["report", str(study_dir), "--reps", "50"]) == 0
    report = (study_dir / "report" / "report.md").read_text()
    assert "2 finished, 1 failed" in report and "`CartPole-v1__ppo-mlp__1`" in report


def test_killed_worker_is_a_failed_attempt_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("QRL_TEST_KILL_RUN", "CartPole-v1__ppo-mlp__1")  # that worker SIGKILLs itself
    messages = []
    study_dir = run_study(mlp_study(tmp_path, seeds=3, retries=1), out=tmp_path / "study", workers=2,
                          log=messages.append)
    runs = {r["run_id"]: r for r in rows(study_dir / "runs.csv")}
    killed = runs.pop("CartPole-v1__ppo-mlp__1")
    assert killed["status"] == "failed" and killed["attempts"] == "2" and "SIGKILL" in killed["error"]
    assert sorted(runs) == ["CartPole-v1__ppo-mlp__0", "CartPole-v1__ppo-mlp__2"]
    assert all(r["status"] == "finished" and r["attempts"] == "1" for r in runs.values()), runs  # each once
    assert sorted(p.name for p in (study_dir / "runs").iterdir() if p.name != ".partial") == sorted(runs)
    assert not any((study_dir / "runs" / ".partial").glob("*"))


def test_a_second_process_on_a_study_folder_is_refused(tmp_path):
    study, study_dir = mlp_study(tmp_path, seeds=1), tmp_path / "study"
    study_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (study_dir / "study.lock").write_text(f"{holder.pid}\n")
        with pytest.raises(QRLError, match=rf"in use by qrl study \(PID {holder.pid}\)"):
            run_study(study, out=study_dir, log=lambda _: None)
        assert sorted(p.name for p in study_dir.iterdir()) == ["study.lock"]  # nothing touched
        (study_dir / "study.lock").write_text(f"{holder.pid} 1\n")  # the PID of a process started at time 1
        run_study(study, out=study_dir, log=lambda _: None)  # reused by another process since: taken over
    finally:
        holder.kill()
        holder.wait()
    assert not (study_dir / "study.lock").exists()  # and released
    check_complete(study_dir, 1)
    (study_dir / "study.lock").write_text(f"{holder.pid}\n")
    run_study(study, out=study_dir, log=lambda _: None)  # the holder is gone: its stale lock is taken over
    assert not (study_dir / "study.lock").exists()
    with pytest.raises(QRLError, match="holds another study definition"):
        run_study(mlp_study(tmp_path, seeds=1, steps=512), out=study_dir, log=lambda _: None)
    assert not (study_dir / "study.lock").exists()  # released on errors too


def test_resuming_into_a_folder_of_another_study_is_refused(tmp_path):
    study_dir = run_study(tiny_study(tmp_path, steps=256), out=tmp_path / "study", log=lambda _: None)
    with pytest.raises(QRLError, match="holds another study definition"):
        run_study(tiny_study(tmp_path, steps=512), out=study_dir, log=lambda _: None)


def test_ray_executor(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'qrl[ray]'); the Ray executor is not tested")
    study_dir = run_study(tiny_study(tmp_path), out=tmp_path / "study", workers=2, executor="ray", log=lambda _: None)
    check_complete(study_dir, 6)
    check_report(study_dir)


def test_shipped_study_by_name():
    study = load_study("cartpole-ppo")
    assert study.agents == AGENTS and study.seeds == list(range(10)) and study.steps == 100_000
    assert len(study.runs()) == 30


def test_killed_study_resumes_its_run_from_the_checkpoint(tmp_path, subprocess_env):
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "one", "envs": ["CartPole-v1"], "agents": ["ppo-mlp"], "seeds": [0],
                                    "steps": 30000, "eval_freq": 1024, "eval_episodes": 2}))
    study_dir = tmp_path / "study"
    cmd = [sys.executable, "-m", "qrl.cli", "study", str(path), "--out", str(study_dir)]
    proc = subprocess.Popen(cmd, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, before = time.time() + 240, None
    while time.time() < deadline and before is None:
        for partial in (study_dir / "runs" / ".partial").glob("*"):
            csv_path = partial / "evaluations.csv"
            if (partial / "checkpoint" / "latest").is_file() and csv_path.is_file() and \
                    len(csv_path.read_text().splitlines()) > 3:
                before = csv_path.read_text().splitlines()[:3]  # header and two evaluations, checkpointed
        time.sleep(0.1)
    registered = [int(p.name) for p in (study_dir / "workers").glob("*")]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert before is not None, "no checkpoint before the kill"
    assert len(registered) == 1 and registered[0] != proc.pid  # the worker, registered while it trains
    # at once: the worker lives on until its watcher sees the parent gone; the new study waits for it to exit
    subprocess.run(cmd, env=subprocess_env, check=True, capture_output=True, timeout=600)
    check_complete(study_dir, 1)
    after = (study_dir / "runs" / "CartPole-v1__ppo-mlp__0" / "evaluations.csv").read_text().splitlines()
    assert after[:3] == before  # the same evaluations, wall-clock included: resumed, not started over
    assert not list((study_dir / "runs" / ".partial").glob("*"))
    assert not (study_dir / "workers").exists()  # every worker gone, its registration cleared


def register_worker(study_dir: Path, seconds: float) -> subprocess.Popen:
    """A process that sleeps ``seconds``, registered as a worker of the study folder (as ``watch_parent`` does)."""
    from qrl.processes import process_start

    proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])
    (study_dir / "workers").mkdir(parents=True, exist_ok=True)
    (study_dir / "workers" / str(proc.pid)).write_text(f"{proc.pid} {process_start(proc.pid)}\n")
    return proc


def test_a_study_waits_for_the_workers_a_killed_invocation_left(tmp_path, monkeypatch):
    import qrl.study

    study, study_dir = mlp_study(tmp_path, seeds=1), tmp_path / "study"
    orphan = register_worker(study_dir, 60)
    try:
        monkeypatch.setattr(qrl.study, "ORPHAN_WAIT_S", 0.5)
        with pytest.raises(QRLError, match=rf"still running after 0.5 s \(PIDs {orphan.pid},.*try `kill {orphan.pid}`"):
            run_study(study, out=study_dir, log=lambda _: None)
        assert sorted(p.name for p in study_dir.iterdir()) == ["workers"]  # nothing touched, the lock released
    finally:
        orphan.kill()
        orphan.wait()
    dying = register_worker(study_dir, 1.5)  # next to the dead orphan's stale registration
    try:
        monkeypatch.setattr(qrl.study, "ORPHAN_WAIT_S", 60)
        messages = []
        run_study(study, out=study_dir, log=messages.append)
        assert dying.poll() is not None  # it had exited (a zombie: its parent is this test) before the study began
        assert "waiting for 1 worker process(es) of an earlier invocation to exit" in messages[0]
    finally:
        dying.kill()
        dying.wait()
    check_complete(study_dir, 1)
    assert not (study_dir / "workers").exists()


def test_changing_final_evals_needs_no_rerun_and_path_agents_are_named_by_file(tmp_path):
    preset = tmp_path / "ppo-small.yaml"
    preset.write_text((Path(__file__).resolve().parents[1] / "agents" / "ppo-mlp.yaml").read_text())
    study = mlp_study(tmp_path, agents=[str(preset)], seeds=1)
    assert [k.run_id for k in load_study(study).runs()] == ["CartPole-v1__ppo-small__0"]
    study_dir = run_study(study, out=tmp_path / "study", log=lambda _: None)
    messages = []
    run_study(mlp_study(tmp_path, agents=[str(preset)], seeds=1, final_evals=1), out=study_dir, log=messages.append)
    assert "1 finished before, 0 to run" in messages[0]  # a report-only key: no "another study definition"
    assert yaml.safe_load((study_dir / "study.yaml").read_text())["final_evals"] == 1
    assert rows(study_dir / "runs.csv")[0]["agent"] == "ppo-small"


def test_best_model_study_reports_each_runs_best_model_evaluated_afresh(tmp_path):
    from qrl.evaluate import FRESH_SEED_OFFSET, evaluate_run
    from qrl.study import STUDY_FILE

    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"name": "best", "envs": ["CartPole-v1"], "agents": ["ppo-vqc", "ppo-mlp"],
                                    "seeds": 1, "steps": 1024, "eval_freq": 256, "eval_episodes": 3,
                                    "best_model": True}))
    study_dir = run_study(path, out=tmp_path / "study", workers=1, log=lambda _: None)
    check_complete(study_dir, 2)
    for row in rows(study_dir / "runs.csv"):
        run_dir = study_dir / "runs" / row["run_id"]
        record = json.loads((run_dir / "results.json").read_text())["best_model"]
        evals = rows(run_dir / "evaluations.csv")
        best = max(float(r["mean_return"]) for r in evals)
        assert record["chosen_by"] == best and record["episodes"] == 3
        assert record["timesteps"] == max(int(r["timesteps"]) for r in evals if float(r["mean_return"]) == best)
        assert int(row["best_model_timesteps"]) == record["timesteps"]
        assert float(row["best_model_eval_mean"]) == record["eval_mean"]
        again, _, _, _ = evaluate_run(run_dir, episodes=3, best=True, seed=int(row["seed"]) + FRESH_SEED_OFFSET)
        assert again == record["eval_mean"]  # the same model, normaliser and fresh episodes
    from qrl.report import write_report

    report = write_report(study_dir, reps=50).read_text()
    assert "Final return: each run's best model" in report and "best model re-evaluated on fresh episodes" in report
    saved = yaml.safe_load((study_dir / STUDY_FILE).read_text())
    del saved["best_model"]  # a study folder written before best models: the key's default, false
    (study_dir / STUDY_FILE).write_text(yaml.safe_dump(saved))
    path.write_text(path.read_text().replace("best_model: true", "best_model: false"))
    messages = []
    run_study(path, out=study_dir, workers=1, log=messages.append)
    assert "2 finished before, 0 to run" in messages[0]


def test_best_model_must_be_a_boolean(tmp_path):
    with pytest.raises(QRLError, match="expected `best_model` to be true or false; got 'yes'"):
        load_study(tiny_study(tmp_path, best_model="yes"))


def test_steps_per_env_reach_each_run_and_each_tuning(tmp_path):
    path = tiny_study(tmp_path, envs=["CartPole-v1", "Acrobot-v1"], agents=["ppo-mlp"],
                      steps={"Acrobot-v1": 300, "CartPole-v1": 200},
                      tune={"trials": 2, "seeds": 1, "steps": {"CartPole-v1": 64, "Acrobot-v1": 96}})
    study = load_study(path)
    assert study.steps == {"CartPole-v1": 200, "Acrobot-v1": 300}  # in the study's env order
    assert {k.env: study.config(k).n_timesteps for k in study.runs()} == {"CartPole-v1": 200, "Acrobot-v1": 300}
    assert study.tune_budget("ppo-mlp", "Acrobot-v1")["steps"] == 96
    assert study.tune_budget("ppo-mlp")["steps"] == {"CartPole-v1": 64, "Acrobot-v1": 96}


def test_a_study_device_reaches_every_agent_with_circuits_that_names_none(tmp_path, monkeypatch):
    """``device:`` pins the circuit backend of a study's runs and of its tuning trials (so that a committed study
    keeps reproducing when ``device="auto"`` changes); a device the agent's preset or grid names wins, and agents
    without circuits get none."""
    native = tmp_path / "ppo-vqc-native.yaml"
    native.write_text("CartPole-v1:\n  policy: 'qrl.sb3.VQCActorCriticPolicy'\n  n_envs: 8\n"
                      "  policy_kwargs: \"dict(n_layers=2, device='torch:native')\"\n")
    path = tiny_study(tmp_path, agents=["ppo-vqc", str(native), "ppo-mlp"], device="torch",
                      grid={"ppo-vqc": {"policy_kwargs.device": ["lightning.qubit", "torch:wires"]}})
    study = load_study(path)
    devices = {k.label: study.config(k).policy_kwargs.get("device") for k in study.runs()}
    assert devices == {"ppo-vqc@policy_kwargs.device=lightning.qubit": "lightning.qubit",
                       "ppo-vqc@policy_kwargs.device=torch:wires": "torch:wires", "ppo-vqc-native": "torch:native",
                       "ppo-mlp": None}
    plain = tiny_study(tmp_path, device="torch")
    assert {study.config(k).policy_kwargs.get("device") for k in load_study(plain).runs()
            if k.agent == "ppo-vqc"} == {"torch"}
    assert {load_study(tiny_study(tmp_path)).config(k).policy_kwargs.get("device") for k in
            load_study(tiny_study(tmp_path)).runs()} == {None}  # no device: the agent's own (auto)

    import qrl.tune

    requests = []
    monkeypatch.setattr(qrl.tune, "run_tune", lambda request, log: requests.append(request))
    for agent in ("ppo-vqc", "ppo-mlp"):  # the fake tuning writes no preset, which ends each study
        tuned = tiny_study(tmp_path, agents=[agent], device="torch", tune={"trials": 1, "seeds": 1})
        with pytest.raises(QRLError, match="no tuned preset"):
            run_study(tuned, out=tmp_path / agent, workers=1, log=lambda _: None)
    assert [(r.agent, r.device) for r in requests] == [("ppo-vqc", "torch"), ("ppo-mlp", None)]
