"""Guards against silently wrong numbers and lost runs: the normaliser at evaluation, interrupted training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qrl.cli import main

REFERENCE = Path(__file__).resolve().parents[1] / "runs" / "reference"


@pytest.fixture
def run_copy(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(REFERENCE / "CartPole-v1__ppo-vqc__0", run, ignore=shutil.ignore_patterns("tb"))
    return run


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_missing_normalizer_is_an_error_not_a_wrong_return(run_copy, capsys):
    (run_copy / "vecnormalize.pkl").unlink()
    assert main(["eval", str(run_copy), "--episodes", "1"]) == 2
    assert "trained with normalize: true but has no vecnormalize.pkl" in one_error(capsys)


def test_missing_normalizer_with_the_flag_warns_in_the_result(run_copy, capsys):
    (run_copy / "vecnormalize.pkl").unlink()
    assert main(["eval", str(run_copy), "--episodes", "1", "--without-normalizer"]) == 0
    out = capsys.readouterr().out
    assert "return" in out and "WARNING: evaluated without the normaliser" in out


@pytest.mark.parametrize("replacement", ["other-env", "garbage"])
def test_normalizer_that_does_not_fit_is_an_error(run_copy, capsys, replacement):
    target = run_copy / "vecnormalize.pkl"
    if replacement == "other-env":  # Acrobot's statistics: 6 observation features, CartPole has 4
        shutil.copy(REFERENCE / "Acrobot-v1__ppo-vqc__0" / "vecnormalize.pkl", target)
    else:
        target.write_bytes(b"not a pickle")
    assert main(["eval", str(run_copy), "--episodes", "1"]) == 2
    assert "vecnormalize.pkl does not fit run" in one_error(capsys)


def test_the_normalizer_is_used_when_present(run_copy, capsys):
    assert main(["eval", str(run_copy), "--episodes", "1", "--seed", "5"]) == 0
    assert "WARNING" not in capsys.readouterr().out


TRAIN_SCRIPT = """
import dataclasses, sys
from qrl.config import resolve
from qrl.train import train
agent, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
overrides = {"policy_kwargs.n_layers": 2} if agent.endswith("-vqc") else {}
config = resolve(agent, "CartPole-v1", seed=0, steps=steps, overrides=overrides)
spec = dataclasses.replace(config.env_spec, eval_freq=1024, eval_episodes=2)
print(train(dataclasses.replace(config, env_spec=spec), out=out), flush=True)
"""


def start_training(tmp_path, agent: str, steps: int):
    import subprocess
    import sys

    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, agent, str(steps), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, out


def wait_for_checkpoints(proc, out: Path, n: int, timeout: float = 120.0) -> Path:
    """The run folder, once ``n`` evaluations (each followed by a checkpoint) are written."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in out.glob("*"):
            csv_path, latest = run / "evaluations.csv", run / "checkpoint" / "latest"
            if latest.is_file() and csv_path.is_file() and len(csv_path.read_text().splitlines()) > n:
                return run
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("no checkpoint in time")


def check_complete_after_resume(run: Path, steps: int) -> None:
    import numpy as np

    from qrl import runs

    results = runs.read_results(run)
    assert results["status"] == "finished" and results["timesteps"] >= steps
    rows = runs.read_evaluations(run)
    assert all(b > a for a, b in zip(rows["timesteps"], rows["timesteps"][1:], strict=False))  # one evaluation each
    assert rows["timesteps"][-1] == results["timesteps"]
    npz = np.load(run / "evaluations.npz")
    assert list(npz["timesteps"]) == [t for t in rows["timesteps"] if t in set(npz["timesteps"])]
    assert len(npz["timesteps"]) >= len(rows["timesteps"]) - 1  # all but the final evaluation after training
    assert not (run / "checkpoint").exists() and (run / "model.zip").is_file()
    best = max(rows["mean_return"])  # the best model survives the kill: the latest evaluation with the best return
    _, chosen = runs.best_checkpoint(run)
    assert chosen["mean_return"] == best
    pairs = zip(rows["timesteps"], rows["mean_return"], strict=True)
    assert chosen["timesteps"] == max(t for t, r in pairs if r == best)
    assert not list(run.glob("best/*/replay_buffer.pkl"))
    episodes = runs.read_training_episodes(run)  # the killed stretch after the checkpoint is not logged twice
    ends = [e["timesteps"] for e in episodes]
    assert episodes and ends == sorted(ends) and ends[-1] <= results["timesteps"]
    assert all(e["return"] == e["length"] for e in episodes)  # CartPole: +1 per step
    assert sum(e["length"] for e in episodes) <= results["timesteps"]
    assert results["training"]["episodes"] == len(episodes)


@pytest.mark.parametrize("agent", ["ppo-vqc", "dqn-mlp"])  # a normaliser; a replay buffer
def test_sigkill_then_resume_completes_the_run(tmp_path, capsys, agent):
    import signal

    steps = 8192
    proc, out = start_training(tmp_path, agent, steps)
    run = wait_for_checkpoints(proc, out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "results.json").exists()
    assert main(["eval", str(run)]) == 2 and "qrl train --resume" in one_error(capsys)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    check_complete_after_resume(run, steps)
    if agent == "dqn-mlp":
        assert not list(run.glob("checkpoint/*/replay_buffer.pkl"))  # removed with the finished run's checkpoint


def test_sigterm_saves_then_resume_finishes(tmp_path, capsys):
    import signal

    steps = 8192
    proc, out = start_training(tmp_path, "ppo-vqc", steps)
    run = wait_for_checkpoints(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-4000:]
    from qrl import runs

    results = runs.read_results(run)
    assert results["status"] == "interrupted" and results["timesteps"] < steps
    assert (run / "model.zip").is_file() and (run / "checkpoint" / "latest").is_file()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    check_complete_after_resume(run, steps)
    assert main(["train", "--resume", str(run)]) == 2 and "has finished" in one_error(capsys)


@pytest.mark.parametrize("during", ["evaluations.npz", "checkpoint"])
def test_sigterm_inside_a_write_leaves_a_whole_run(tmp_path, monkeypatch, during):
    """SIGTERM arriving while a zip is written: SB3's evaluations.npz (written in place: a half-written one broke
    the resume), or the checkpoint's model (torch's writer turned the KeyboardInterrupt raised in it into a
    RuntimeError and the run ended with no results.json, seen once in CI). Both now finish whole."""
    import dataclasses
    import signal
    import zipfile

    import qrl.train
    from qrl import runs
    from qrl.config import resolve

    write, armed, fired, torch_writes = zipfile._ZipWriteFile.write, [during == "evaluations.npz"], [], []

    def write_then_signal(self, data):
        # unarmed until the checkpoint: the first zip write is SB3's npz; armed: torch's second write of a model
        if armed[0] and self._zinfo.filename.endswith(".pth"):
            torch_writes.append(self._zinfo.filename)
        if armed[0] and not fired and (during == "evaluations.npz" or len(torch_writes) == 2):
            fired.append(True)
            written = write(self, data)
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # the handler runs as the write returns
            return written
        return write(self, data)

    def arm_then_save(run_dir, model, save=qrl.train.save_checkpoint):
        armed[0] = True
        save(run_dir, model)

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", write_then_signal)
    monkeypatch.setattr(qrl.train, "save_checkpoint", arm_then_save)
    config = resolve("ppo-mlp", "CartPole-v1", seed=0, steps=4096)
    config = dataclasses.replace(config, env_spec=dataclasses.replace(config.env_spec, eval_freq=1024,
                                                                      eval_episodes=2))
    handler = signal.getsignal(signal.SIGTERM)
    run = qrl.train.train(config, out=tmp_path, tensorboard=False)
    results = runs.read_results(run)
    assert fired and results["status"] == "interrupted" and results["timesteps"] == 1024
    assert runs.latest_checkpoint(run)[0] == 1024  # the checkpoint's evaluation is kept; an interrupted one is not
    assert runs.read_evaluation_episodes(run)[0] == ([1024] if during == "checkpoint" else [])
    assert signal.getsignal(signal.SIGTERM) is handler  # the handlers are put back
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    check_complete_after_resume(run, 4096)
    assert not (run / qrl.train.SB3_SCRATCH).exists()


def test_an_interrupt_inside_no_grad_exit_leaves_gradients_on(tmp_path, monkeypatch):
    """Ctrl-C landing in ``torch.no_grad().__exit__`` before it restores the mode (SB3 collects rollouts under it):
    the run ends "interrupted", and gradients are on again for whatever the process does next (before, they stayed
    off: a resumed run in the same process would have had no gradients)."""
    import torch

    import qrl.train
    from qrl import runs
    from qrl.config import resolve

    exit_, calls, fired = torch.no_grad.__exit__, [], []

    def interrupted_exit(self, *args):
        calls.append(1)
        if len(calls) >= 100 and self.prev and not fired:  # an outermost block (a nested one's outer block restores)
            fired.append(True)
            raise KeyboardInterrupt  # as if Ctrl-C arrived before the mode was put back
        return exit_(self, *args)

    monkeypatch.setattr(torch.no_grad, "__exit__", interrupted_exit)
    try:
        run = qrl.train.train(resolve("ppo-mlp", "CartPole-v1", seed=0, steps=4096), out=tmp_path, tensorboard=False)
        enabled = torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)
    results = runs.read_results(run)
    assert fired and results["status"] == "interrupted" and results["timesteps"] < 4096
    assert enabled


def test_interrupted_training_exits_non_zero(tmp_path, capsys, monkeypatch):
    import stable_baselines3

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stable_baselines3.PPO, "learn", interrupted)
    code = main(["train", "--agent", "ppo-mlp", "--env", "CartPole-v1", "--steps", "512", "--out",
                 str(tmp_path), "--no-progress"])
    assert code == 130
    err = capsys.readouterr().err
    assert "training was interrupted" in err and "qrl train --resume" in err


def test_resume_needs_a_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(REFERENCE / "CartPole-v1__ppo-vqc__0", run, ignore=shutil.ignore_patterns("tb"))
    (run / "results.json").unlink()  # as if killed, but made before checkpoints existed
    assert main(["train", "--resume", str(run)]) == 2
    assert "has no checkpoint to resume from" in one_error(capsys)
    assert main(["train", "--resume", str(run), "--agent", "ppo-vqc"]) == 2
    assert "expected no --agent or --env" in one_error(capsys)


def damaged_runs(root: Path) -> dict[str, Path]:
    """Copies of a reference run with one file damaged each."""
    made = {}
    for name, damage in {
        "garbage-model": lambda run: (run / "model.zip").write_bytes(b"garbage"),
        "empty-model": lambda run: (run / "model.zip").write_bytes(b""),
        "dqn-model": lambda run: shutil.copy(REFERENCE / "CartPole-v1__dqn-vqc__0" / "model.zip", run / "model.zip"),
        "truncated-config": lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text()[:100]),
        "damaged-results": lambda run: (run / "results.json").write_text("{"),
        "no-normalizer": lambda run: (run / "vecnormalize.pkl").unlink(),
        "foreign-normalizer": lambda run: shutil.copy(REFERENCE / "Acrobot-v1__ppo-vqc__0" / "vecnormalize.pkl",
                                                      run / "vecnormalize.pkl"),
    }.items():
        run = root / name
        shutil.copytree(REFERENCE / "CartPole-v1__ppo-vqc__0", run, ignore=shutil.ignore_patterns("tb"))
        damage(run)
        made[name] = run
    return made


TRAIN = "train --agent ppo-mlp --env CartPole-v1 --steps 256 --no-progress"
DISTILL = "distill --teacher {teacher} --student ppo-vqc --env CartPole-v1 --no-progress"
# (command line, a part of the one error line); {names} are filled in by the test
BAD_INPUT = [
    ("train --agent ppo-mlp --env CartPole-v1 --steps 1e23", "argument --steps: invalid int value: '1e23'"),
    ("bench policy --qubits 4", "unrecognized arguments: --qubits"),
    (f"{TRAIN} --set gamma=2", "gamma must be a number in (0, 1]; got 2"),
    (f"{TRAIN} --set gae_lambda=1.5", "gae_lambda must be a number in (0, 1]"),
    (f"{TRAIN} --set learning_rate=-0.1", "learning_rate must be positive"),
    (f"{TRAIN} --seed -1", "seed must be an integer in [0, 2**32); got -1"),
    ("train --agent ppo-mlp --env CartPole-v1 --set n_timesteps=1e23", "n_timesteps must be a whole number"),
    (f"{TRAIN} --set n_envs=2.5", "n_envs must be a whole number"),
    (f"{TRAIN} --set _init_setup_model=false", "_init_setup_model is not a hyperparameter"),
    (f"{TRAIN} --out afile", "--out afile: afile is a file"),
    (f"{TRAIN} --out afile/x", "--out afile/x: afile is a file"),
    ("train --agent nope-mlp --env CartPole-v1", "unknown agent 'nope-mlp'; expected one of a2c-mlp"),
    ("train --agent ppo-mlp --env Nope-v9", "unknown environment 'Nope-v9'"),
    (f"{TRAIN} --set x", "malformed --set 'x'"),
    (f"{TRAIN} --set policy_kwargs=dict(a=th.os.system)", "th.os is not allowed"),
    ("train --agent ppo-mlp --env CartPole-v1 --steps 0", "n_timesteps and n_envs must be positive"),
    ("train --resume {run} --agent ppo-mlp", "expected no --agent or --env"),
    ("train --resume nonexistent", "nonexistent is not a run folder"),
    ("train --agent ppo-mlp", "expected --agent and --env (or --resume RUN); got no --env"),
    (f"{TRAIN} --set colour=red", "unknown hyperparameter(s) colour for PPO"),
    (f"{TRAIN} --device lightning.qubit", "agent 'ppo-mlp' has no circuit"),
    ("train --agent ppo-vqc --env CartPole-v1 --device nope.device", "unknown device 'nope.device'"),
    ("train --agent ppo-vqc --env CartPole-v1 --set policy_kwargs.n_qubits=50", "n_qubits=50 needs 16 PiB"),
    ("compare --agents ppo-mlp nope-vqc --env CartPole-v1 --steps 256", "unknown agent 'nope-vqc'"),
    ("tune --agent nope-vqc --env CartPole-v1 --trials 2", "unknown agent 'nope-vqc'"),
    ("tune --agent ppo-vqc --env CartPole-v1 --trials 0", "--trials must be a whole number >= 1; got 0"),
    ("tune --agent ppo-vqc --env CartPole-v1 --trials 2 --storage nope://x", "malformed --storage 'nope://x'"),
    ("tune --agent ppo-vqc --env CartPole-v1 --trials 2 --space colour=1", "unknown search-space key 'colour'"),
    ("compare --agents ppo-mlp --env CartPole-v1 --steps 256 --out afile", "--out afile: afile is a file"),
    ("eval nonexistent", "nonexistent is not a finished run folder"),
    ("eval {run} --episodes 0", "expected episodes >= 1"),
    ("eval {run} --n-envs 0", "1 <= envs <= episodes; got 20 episodes, 0 envs"),
    ("eval {run} --shots abc", "malformed --shots 'abc'"),
    ("eval {run} --noise depolarizing", "malformed --noise 'depolarizing'"),
    ("eval {run} --noise depolarizing=0.01", "--noise needs a mixed-state simulator"),
    ("eval {run} --plot x.png", "--plot draws a sweep"),
    ("eval {run} --device default.mixed --noise depolarizing=0,0.1 --plot y.txt", "--plot y.txt: expected an image"),
    ("eval {run} --dry-run", "--dry-run prices one hardware device"),
    ("eval {run} --device nope.device", "unknown device 'nope.device'"),
    ("eval {run} --device lightning.qubit --shots 0", "shots must be a positive integer"),
    ("eval {run} --device default.mixed --noise colour=0.1", "got colour=0.1"),
    ("eval {run} --device default.mixed --noise depolarizing=2", "got depolarizing=2.0"),
    ("eval {run} --shots 1,2 --noise depolarizing=0,0.1 --device default.mixed", "a sweep varies one quantity"),
    ("eval {garbage-model}", "model.zip cannot be loaded as the PPO model"),
    ("eval {empty-model}", "model.zip cannot be loaded as the PPO model"),
    ("eval {dqn-model}", "model.zip cannot be loaded as the PPO model"),
    ("eval {truncated-config}", "config.yaml is damaged"),
    ("eval {damaged-results} --device ionq.qpu@aria-1 --shots 8 --dry-run", "results.json is damaged"),
    ("eval {no-normalizer}", "trained with normalize: true but has no vecnormalize.pkl"),
    ("eval {foreign-normalizer}", "vecnormalize.pkl does not fit run"),
    ("plot {run} --out x.unknownext", "--out x.unknownext: expected an image file"),
    ("plot nonexistent --out x.png", "nonexistent is not a finished run folder"),
    ("plot {run} --out afile/x.png", "--out afile: afile is a file"),
    ("circuit --n-qubits 0", "n_qubits must be a positive integer"),
    ("circuit --ansatz nope", "unknown ansatz 'nope'"),
    ("circuit --readout nope", "unknown readout 'nope'"),
    ("circuit --encoding nope", "unknown encoding 'nope'"),
    ("study nonexistent.yaml", "cannot read study nonexistent.yaml"),
    ("study bad-study.yaml", "unknown key(s) colour"),
    ("report nonexistent", "got nonexistent, which is not a folder"),
    ("report {run}", "study.yaml written by `qrl study`; got no such file"),
    ("bench policy --budget -1", "--budget is seconds of repeats per measurement"),
    ("bench policy --batches 0", "batch sizes must be positive"),
    ("bench scaling --qubits 0", "qubit counts and batch must be positive"),
    ("bench train --steps -5", "n_timesteps and n_envs must be positive"),
    ("bench scaling --update-auto --backends torch:dense", "--update-auto stores device names"),
    ("bench policy --out afile", "--out afile: afile is a file"),
    ("diagnose gradients --out afile", "--out afile: afile is a file"),
    ("diagnose gradients --agent ppo-vqc", "--agent and --env go together"),
    ("diagnose gradients --qubits 0", "expected positive qubit counts"),
    ("diagnose gradients --samples 1", "a variance needs at least 2 initialisations"),
    ("diagnose circuit ppo-vqc", "an agent preset needs an environment"),
    ("diagnose circuit {run} --shots 0", "expected --shots N with N >= 1"),
    ("diagnose circuit {garbage-model}", "model.zip cannot be loaded as the PPO model"),
    ("distill --teacher nonexistent.zip --student ppo-vqc --env CartPole-v1", "teacher model nonexistent.zip"),
    (f"{DISTILL} --random-actions 1.5", "--random-actions is a probability; got 1.5"),
    (f"{DISTILL} --out afile", "--out afile: afile is a file"),
    (f"{DISTILL} --samples 0", "--samples must be positive"),
    ("distill --teacher {teacher} --student ppo-mlp --env CartPole-v1", "student 'ppo-mlp' is not a VQC agent"),
    ("distill --teacher {run} --student ppo-vqc --env Acrobot-v1", "was trained on observations Box(4,)"),
]


@pytest.mark.parametrize(("line", "message"), BAD_INPUT, ids=[line for line, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, line, message):
    import shlex

    names = {k: str(v) for k, v in damaged_runs(tmp_path / "damaged").items()}
    names |= {"run": str(REFERENCE / "CartPole-v1__ppo-vqc__0"),
              "teacher": str(REFERENCE / "CartPole-v1__ppo-mlp__0" / "model.zip")}
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("")
    (work / "bad-study.yaml").write_text("name: x\nenvs: [CartPole-v1]\nagents: [ppo-mlp]\nseeds: 2\ncolour: red\n")
    monkeypatch.chdir(work)
    before = sorted(tmp_path.rglob("*"))
    try:
        code = main(shlex.split(line.format(**names)))
    except SystemExit as exc:  # argparse's own errors, in qrl's one-line form
        code = exc.code
    assert code == 2
    assert message in one_error(capsys)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, nothing half-written


def test_the_corpus_covers_every_command():
    from qrl.cli import build_parser

    commands = {line.split()[0] for line, _ in BAD_INPUT}
    every = set(build_parser()._subparsers._group_actions[0].choices) - {"list"}  # list takes no input
    assert len(BAD_INPUT) >= 60 and commands == every


class NaNAtStep3(__import__("gymnasium").Env):
    """CartPole-like observations, NaN in feature 2 from the third step on."""

    def __init__(self):
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        import numpy as np

        super().reset(seed=seed)
        self.t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        import numpy as np

        self.t += 1
        obs = np.zeros(4, np.float32)
        if self.t >= 3:
            obs[2] = np.nan
        return obs, 1.0, False, False, {}


def test_nan_observations_stop_training_with_the_step_and_feature():
    import gymnasium as gym

    from qrl.config import EnvSpec
    from qrl.envs import make_vec
    from qrl.errors import QRLError

    if "QrlNaNTest-v0" not in gym.registry:
        gym.register("QrlNaNTest-v0", entry_point=NaNAtStep3)
    env = make_vec(EnvSpec(id="QrlNaNTest-v0", reward_threshold=None, budget=100, eval_freq=10,
                           eval_episodes=1, obs_map="arctan"), 2, 0)
    env.reset()
    env.step([0, 0])
    env.step([0, 0])
    with pytest.raises(QRLError, match=r"QrlNaNTest-v0 returned a non-finite observation at step 3 \(environment 0, "
                                       r"feature 2: nan\)"):
        env.step([0, 0])


def test_memory_check_counts_the_batch_the_algorithm_differentiates(tmp_path, monkeypatch, capsys):
    from qrl import train as train_module
    from qrl.backends.torch import TorchStatevector
    from qrl.circuits import CircuitSpec
    from qrl.config import resolve

    # one gradient step keeps a state batch per program step: linear in the batch, 2**n in the qubits
    small, large = (TorchStatevector(CircuitSpec(n_qubits=n, n_layers=5), program="wires") for n in (8, 10))
    assert small.gradient_bytes(64) == 2 * small.gradient_bytes(32)
    assert large.gradient_bytes(8) > 4 * small.gradient_bytes(8)
    config = resolve("ppo-vqc", "CartPole-v1", overrides={"batch_size": 128})
    assert train_module.largest_gradient_batch(config) == 128
    assert train_module.largest_gradient_batch(resolve("a2c-vqc", "CartPole-v1")) == (
        resolve("a2c-vqc", "CartPole-v1").hyperparams.get("n_steps", 5) * resolve("a2c-vqc", "CartPole-v1").n_envs)
    # 12 qubits at batch 4096 do not fit in 1 GiB: refused before any folder exists
    monkeypatch.setattr("qrl.backends.memory.available_memory", lambda: 2**30)
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--device", "torch", "--set", "batch_size=4096",
                 "--set", "n_steps=512", "--set", "policy_kwargs.n_qubits=12", "--set", "policy_kwargs.pre_layer=true",
                 "--no-progress"])
    assert code == 2
    assert "for one gradient step (4096 samples through 2 circuit(s) of up to 12 qubits" in one_error(capsys)
    assert not list(tmp_path.iterdir())
    # the default device (auto) too: the backend that runs a call of that batch is counted
    code = main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--set", "batch_size=4096", "--set",
                 "n_steps=512", "--set", "policy_kwargs.n_qubits=12", "--set", "policy_kwargs.pre_layer=true",
                 "--no-progress"])
    assert code == 2
    assert "for one gradient step (4096 samples through 2 circuit(s) of up to 12 qubits" in one_error(capsys)
    assert not list(tmp_path.iterdir())


def test_memory_check_counts_one_chunk_of_the_chunked_circuits(monkeypatch):
    """On the default device a batch that does not fit at once runs in chunks, each circuit's backward one chunk at a
    time: the check counts the largest chunk's forward + backward once, not once per circuit."""
    from qrl import train as train_module
    from qrl.backends import select
    from qrl.backends.chunks import Chunks
    from qrl.backends.dispatch import cpu_backend
    from qrl.config import resolve
    from qrl.errors import QRLError
    from qrl.sb3.networks import policy_circuits

    def model_at(physical: int):
        monkeypatch.setattr(select, "physical_memory", lambda: physical)
        config = resolve("ppo-vqc", "CartPole-v1", overrides={"batch_size": 4096, "n_steps": 512,
                                                                "policy_kwargs.n_qubits": 12,
                                                                "policy_kwargs.pre_layer": True})
        model, env = train_module.build_model(config)
        env.close()
        return config, [cpu_backend(vqc.backend, 4096) for vqc in policy_circuits(model.policy).values()], model

    config, whole, _ = model_at(2**40)  # a machine where 4096 samples fit at once: counted whole, per circuit
    assert len(whole) == 2 and not any(isinstance(b, Chunks) for b in whole)
    chunk_peak = whole[0].gradient_bytes(512)
    config, chunked, model = model_at(int(chunk_peak / select.AUTO_MEMORY_FRACTION) + 1)
    assert all(isinstance(b, Chunks) and b.size == 512 for b in chunked)
    assert max(b.gradient_bytes(4096) for b in chunked) <= chunk_peak < sum(b.gradient_bytes(4096) for b in whole)
    train_module.check_training_memory(config, model, available=int(1.5 * chunk_peak))  # two chunks would not fit
    with pytest.raises(QRLError, match="for one gradient step"):
        train_module.check_training_memory(config, model, available=chunk_peak // 2)
    # a float64 policy: complex128 states, twice the bytes, chunked by their own size where complex64 ones fit whole
    whole_peak = whole[0].gradient_bytes(4096)
    config, fits, model = model_at(int(whole_peak / select.AUTO_MEMORY_FRACTION) + 1)
    assert not any(isinstance(b, Chunks) for b in fits)
    model.policy.double()
    wide = [cpu_backend(vqc.backend, 4096, 16) for vqc in policy_circuits(model.policy).values()]
    assert all(isinstance(b, Chunks) and b.size == 2048 for b in wide)
    train_module.check_training_memory(config, model, available=int(1.5 * whole_peak))  # one chunk of 2048
    with pytest.raises(QRLError, match="for one gradient step"):
        train_module.check_training_memory(config, model, available=whole_peak // 2)
