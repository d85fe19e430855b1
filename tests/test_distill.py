"""qrl distill: a classical SB3 teacher -> a VQC student by behaviour cloning -> a run folder like train's."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from qrl.cli import main
from qrl.config import resolve
from qrl.distill import BehaviourCloning, DistillSettings, detect_algo, distill, load_teacher
from qrl.train import build_model

RESULT_KEYS = {"status", "agent", "env", "seed", "timesteps", "wall_clock_s", "steps_per_s", "final_eval_mean",
               "final_eval_std", "best_eval_mean", "reward_threshold", "steps_to_threshold", "parameters",
               "circuit_executions", "cost"}  # what `qrl train` writes


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def teacher_zip(tmp_path_factory):
    """A classical PPO teacher trained for a few hundred steps (weak, but a fixed deterministic policy)."""
    path = tmp_path_factory.mktemp("teacher") / "model.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu").learn(256).save(path)
    return path


@pytest.fixture(scope="module")
def distilled(teacher_zip, tmp_path_factory):
    """``qrl distill`` on a tiny budget: the run folder and what the command printed."""
    out = tmp_path_factory.mktemp("runs")
    code = run_cli("distill", "--teacher", str(teacher_zip), "--student", "ppo-vqc", "--env", "CartPole-v1",
                   "--samples", "400", "--epochs", "3", "--eval-episodes", "3", "--out", str(out), "--no-progress")
    assert code == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_distill_writes_a_run_folder_like_train(distilled):
    assert distilled.name.startswith("CartPole-v1__ppo-vqc-distill__0__")
    names = {p.name for p in distilled.iterdir()}
    assert {"config.yaml", "model.zip", "results.json", "evaluations.csv", "evaluations.npz",
            "vecnormalize.pkl"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    results = json.loads((distilled / "results.json").read_text())
    assert RESULT_KEYS <= set(results)
    assert results["status"] == "finished" and results["agent"] == "ppo-vqc" and results["method"] == "distill"
    assert results["teacher"]["algo"] == "ppo" and results["teacher"]["vecnormalize"] is None
    assert results["teacher"]["parameters"]["quantum"] == 0 and results["parameters"]["total"] == 123
    for key in ("teacher_eval_mean", "teacher_eval_std", "student_eval_mean", "student_eval_std"):
        assert isinstance(results[key], float)
    assert results["student_eval_mean"] == results["final_eval_mean"] >= 8
    assert results["samples"] >= 400 and results["timesteps"] == results["samples"]
    assert results["circuit_executions"] > results["samples"]  # BC passes, held-out checks and evaluations
    assert [r["epoch"] for r in results["bc_history"]] == [0, 1, 2, 3]
    lines = (distilled / "evaluations.csv").read_text().splitlines()
    assert lines[0] == "timesteps,mean_return,std_return,wall_clock_s"
    assert int(lines[-1].split(",")[0]) == results["timesteps"]


def test_student_loads_in_a_fresh_process_with_the_same_actions(distilled, python, subprocess_env, tmp_path):
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = (
        "import numpy as np\n"
        "from stable_baselines3 import PPO\n"
        f"model = PPO.load({str(distilled / 'model.zip')!r}, device='cpu')\n"
        f"obs = np.load({str(tmp_path / 'obs.npy')!r})\n"
        "print(type(model.policy).__name__)\n"
        "print(' '.join(map(str, model.predict(obs, deterministic=True)[0])))\n"
    )
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, actions = proc.stdout.strip().splitlines()[-2:]
    from qrl.sb3.algorithms import PPO as QrlPPO

    here = QrlPPO.load(distilled / "model.zip", device="cpu").predict(obs, deterministic=True)[0]
    assert name == "VQCActorCriticPolicy"
    assert [int(a) for a in actions.split()] == here.tolist()


def test_qrl_eval_reproduces_the_students_evaluation(distilled, capsys, tmp_path):
    # Same evaluation seeds and the saved observation statistics: exactly the return distill measured.
    results = json.loads((distilled / "results.json").read_text())
    assert run_cli("eval", str(distilled), "--episodes", "3") == 0
    out = capsys.readouterr().out
    assert out.startswith("ppo-vqc on CartPole-v1: return ")
    assert f"return {results['student_eval_mean']:.1f} +- {results['student_eval_std']:.1f} over 3" in out
    assert run_cli("plot", str(distilled), "--out", str(tmp_path / "curve.png")) == 0
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_cli_prints_teacher_and_student(teacher_zip, tmp_path, capsys):
    code = run_cli("distill", "--teacher", str(teacher_zip), "--student", "ppo-vqc", "--env", "CartPole-v1",
                   "--samples", "100", "--epochs", "1", "--eval-episodes", "1", "--out", str(tmp_path), "--no-progress",
                   "--set", "policy_kwargs.n_layers=2")
    assert code == 0
    captured = capsys.readouterr()
    run_line, summary = captured.out.strip().splitlines()
    assert run_line.startswith(str(tmp_path / "CartPole-v1__ppo-vqc-distill__0__"))
    results = json.loads((tmp_path / run_line.rpartition("/")[2] / "results.json").read_text())
    assert summary.startswith(f"teacher {results['teacher_eval_mean']:.1f} +- {results['teacher_eval_std']:.1f}, "
                              f"student {results['student_eval_mean']:.1f} +- {results['student_eval_std']:.1f} "
                              f"(ppo-vqc, {results['parameters']['total']} parameters)")
    assert "bc round 1 epoch 1/1" in captured.err


def test_behaviour_cloning_agrees_with_the_teacher_better_than_at_initialisation(teacher_zip, tmp_path):
    config = resolve("ppo-vqc", "CartPole-v1", seed=1)
    run_dir = distill(config, load_teacher(teacher_zip, config),
                      DistillSettings(samples=2000, epochs=8, eval_episodes=1), out=tmp_path)
    history = json.loads((run_dir / "results.json").read_text())["bc_history"]
    before, after = history[0], history[-1]
    assert before["epoch"] == 0 and after["epoch"] == 8
    # Held-out states: never trained on. A random circuit agrees about half the time.
    assert after["heldout_accuracy"] >= max(0.85, before["heldout_accuracy"] + 0.15), history
    assert after["heldout_loss"] < before["heldout_loss"] - 0.1
    assert history[-1]["train_loss"] < history[1]["train_loss"]


def test_finetuning_continues_with_the_students_algorithm(teacher_zip, tmp_path):
    config = resolve("ppo-vqc", "CartPole-v1", seed=0, overrides={"policy_kwargs.n_layers": 2})
    config.env_spec = dataclasses.replace(config.env_spec, eval_freq=128)  # evaluations during fine-tuning
    settings = DistillSettings(samples=100, epochs=1, finetune_steps=256, critic_warmup=256, eval_episodes=1)
    run_dir = distill(config, load_teacher(teacher_zip, config), settings, out=tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    n = results["samples"]
    assert results["critic_warmup_timesteps"] == results["finetune_timesteps"] == 256
    assert results["timesteps"] == n + 512
    # after the rounds; then fine-tuning's evaluations, counted after the labelled states and the warm-up
    expected = [n, n + 256 + 128, n + 256 + 256]
    rows = (run_dir / "evaluations.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == expected
    with np.load(run_dir / "evaluations.npz") as npz:
        assert npz["timesteps"].tolist() == expected and npz["results"].shape == (3, 1)
    assert (run_dir / "tb").is_dir()
    assert PPO.load(run_dir / "model.zip", device="cpu").num_timesteps == 256


class Killed(Exception):
    """Stands in for SIGTERM's default action (the process ends) where the lesson would not catch SIGTERM."""


def kill(signum, frame):
    raise Killed


def test_sigterm_ends_the_lesson_like_ctrl_c(teacher_zip, tmp_path, monkeypatch):
    """SIGTERM (a scheduler's stop) after DAgger's second round: the run saves what it learnt and writes
    results.json with "interrupted", as `qrl train` does; before, the process ended with nothing written."""
    import signal

    import qrl.distill

    evaluate, rounds = qrl.distill._Evaluations.evaluate, []

    def sigterm_before_the_second_evaluation(self, timesteps, record=True):
        rounds.append(timesteps)
        if len(rounds) == 2:
            signal.raise_signal(signal.SIGTERM)
        return evaluate(self, timesteps, record)

    monkeypatch.setattr(qrl.distill._Evaluations, "evaluate", sigterm_before_the_second_evaluation)
    config = resolve("ppo-vqc", "CartPole-v1", seed=0, overrides={"policy_kwargs.n_layers": 2})
    previous = signal.signal(signal.SIGTERM, kill)
    try:
        run_dir = distill(config, load_teacher(teacher_zip, config),
                          DistillSettings(samples=100, epochs=1, dagger=3, eval_episodes=1), out=tmp_path)
        assert signal.getsignal(signal.SIGTERM) is kill  # put back after the lesson
    finally:
        signal.signal(signal.SIGTERM, previous)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "interrupted" and len(rounds) == 3  # the third: the final evaluation
    assert results["samples"] == results["timesteps"] and 200 <= results["samples"] < 300  # two rounds' states
    assert [r["round"] for r in results["bc_history"]] == [0, 1, 2]
    assert PPO.load(run_dir / "model.zip", device="cpu").policy is not None


def test_ctrl_c_inside_the_final_save_leaves_a_whole_model(teacher_zip, tmp_path, monkeypatch, request):
    """A second Ctrl-C while the model is written: the write finishes, then the KeyboardInterrupt (before, torch's
    zip writer turned it into a RuntimeError in the middle of the write). Python's own SIGINT handler is put in place
    first: in CI a test run before in the same worker had left SIGINT ignored (SIG_IGN), so the deferred interrupt,
    raised again to that disposition, did nothing (2026-12-06)."""
    import signal
    import zipfile

    import qrl.distill

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    write, armed, torch_writes = zipfile._ZipWriteFile.write, [False], []

    def write_then_interrupt(self, data):
        written = write(self, data)
        if armed[0] and self._zinfo.filename.endswith(".pth"):
            torch_writes.append(self._zinfo.filename)
            if len(torch_writes) == 2:  # inside torch's writer, as the first tensor is written
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        return written

    def run_then_arm(self, run_dir, progress, run=qrl.distill._Lesson.run):
        run(self, run_dir, progress)
        armed[0] = True

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", write_then_interrupt)
    monkeypatch.setattr(qrl.distill._Lesson, "run", run_then_arm)
    config = resolve("ppo-vqc", "CartPole-v1", seed=0, overrides={"policy_kwargs.n_layers": 2})
    with pytest.raises(KeyboardInterrupt):
        distill(config, load_teacher(teacher_zip, config), DistillSettings(samples=100, epochs=1, eval_episodes=1),
                out=tmp_path)
    assert len(torch_writes) >= 2
    (run_dir,) = tmp_path.iterdir()
    assert PPO.load(run_dir / "model.zip", device="cpu").policy is not None
    assert (run_dir / "vecnormalize.pkl").is_file()  # written before the interrupt took effect
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_critic_warmup_trains_the_critic_alone():
    config = resolve("ppo-vqc", "CartPole-v1", seed=0, overrides={"policy_kwargs.n_layers": 2})
    model, env = build_model(config)
    cloner = BehaviourCloning(model, "ppo", "mse")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with cloner.frozen_actor():
        model.learn(512)  # two rollouts: the learning rate decays to 0 at the end of the budget
    after = model.policy.state_dict()
    env.close()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("mlp_extractor.value_net.") for k in changed), changed
    assert all(p.requires_grad for p in model.policy.parameters())


@pytest.mark.parametrize(("algo", "cls", "env_id"), [
    ("ppo", PPO, "CartPole-v1"), ("a2c", A2C, "CartPole-v1"), ("dqn", DQN, "CartPole-v1"),
    ("sac", SAC, "Pendulum-v1"), ("td3", TD3, "Pendulum-v1"),
])
def test_teacher_algorithm_is_read_from_the_zip(tmp_path, algo, cls, env_id):
    kwargs = {"buffer_size": 100} if algo in ("dqn", "sac", "td3") else {}
    cls("MlpPolicy", env_id, device="cpu", **kwargs).save(tmp_path / "m.zip")
    assert detect_algo(tmp_path / "m.zip") == algo


def test_teacher_is_a_zip_a_name_without_zip_or_a_run_folder(teacher_zip):
    config = resolve("ppo-vqc", "CartPole-v1")
    for given in (teacher_zip, teacher_zip.with_suffix(""), teacher_zip.parent):
        assert load_teacher(given, config).path == teacher_zip


def test_teacher_vecnormalize_is_found_and_applied(tmp_path):
    # rl-zoo3 layout: logs/ppo/CartPole-v1_1/CartPole-v1.zip and .../CartPole-v1/vecnormalize.pkl
    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0).learn(64)
    model.save(tmp_path / "CartPole-v1.zip")
    (tmp_path / "CartPole-v1").mkdir()
    venv.save(tmp_path / "CartPole-v1" / "vecnormalize.pkl")
    config = resolve("ppo-vqc", "CartPole-v1")
    teacher = load_teacher(tmp_path / "CartPole-v1.zip", config)
    assert teacher.vecnormalize == tmp_path / "CartPole-v1" / "vecnormalize.pkl"
    with open(teacher.vecnormalize, "rb") as f:
        stats = pickle.load(f).obs_rms
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    normalised = np.clip((obs - stats.mean) / np.sqrt(stats.var + 1e-8), -10, 10).astype(np.float32)
    np.testing.assert_array_equal(teacher.act(obs), model.predict(normalised, deterministic=True)[0])
    assert load_teacher(tmp_path / "CartPole-v1.zip", config, vecnormalize="none").vecnormalize is None


class ThreeActionCartPole(gym.Wrapper):
    """CartPole's observations with a third action: the same observation space, another action space."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.action_space = spaces.Discrete(3)

    def step(self, action):
        return self.env.step(min(int(action), 1))


@pytest.fixture
def bad_teachers(tmp_path):
    paths = {"acrobot": tmp_path / "acrobot.zip", "three": tmp_path / "three.zip", "junk": tmp_path / "junk.zip"}
    PPO("MlpPolicy", "Acrobot-v1", device="cpu").save(paths["acrobot"])
    PPO("MlpPolicy", ThreeActionCartPole(), device="cpu").save(paths["three"])
    paths["junk"].write_text("not a model")
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--teacher", "{tmp}/nowhere/model.zip"),
         "teacher model {tmp}/nowhere/model.zip does not exist; expected an SB3"),
        (("--teacher", "{acrobot}"), "was trained on observations Box(6,) in [-28.3, 28.3] but CartPole-v1 has "
                                     "Box(4,) in [-inf, inf]; pass the teacher's environment with --env"),
        (("--teacher", "{three}"), "was trained on actions Discrete(3) but CartPole-v1 has Discrete(2); pass the "
                                   "teacher's environment with --env"),
        (("--teacher", "{junk}"), "is not a model saved by Stable-Baselines3"),
        (("--teacher", "{teacher}", "--teacher-algo", "dqn"), "cannot load teacher"),
        (("--teacher", "{teacher}", "--teacher-vecnormalize", "{tmp}/missing.pkl"),
         "--teacher-vecnormalize {tmp}/missing.pkl does not exist"),
        (("--teacher", "{teacher}", "--teacher-vecnormalize", "{junk}"),
         "cannot use {junk} as the teacher's VecNormalize"),
        (("--teacher", "{teacher}", "--student", "ppo-mlp"),
         "student 'ppo-mlp' is not a VQC agent (its policy on CartPole-v1 is MlpPolicy); distillation trains a "
         "circuit; try --student"),
        (("--teacher", "{teacher}", "--student", "a2c-vqc", "--env", "LunarLander-v3"),
         "agent 'a2c-vqc' has no section for 'LunarLander-v3'"),
        (("--teacher", "{teacher}", "--student", "nope-vqc"), "unknown agent 'nope-vqc'"),
        (("--teacher", "{teacher}", "--samples", "0"), "--samples must be positive; got 0"),
        (("--teacher", "{teacher}", "--random-actions", "1.5"), "--random-actions is a probability; got 1.5"),
        (("--teacher", "{teacher}", "--student", "sac-vqc", "--env", "Pendulum-v1"), "was trained on observations"),
    ],
)
def test_bad_input_one_line_error_no_folder(tmp_path, capsys, teacher_zip, bad_teachers, args, message):
    names = {"tmp": str(tmp_path), "teacher": str(teacher_zip), **{k: str(v) for k, v in bad_teachers.items()}}
    args = [a.format(**names) for a in args]
    defaults = {"--student": "ppo-vqc", "--env": "CartPole-v1"}
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    out = tmp_path / "runs"
    code = run_cli("distill", *args, "--out", str(out), "--no-progress")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("qrl: error:")]
    assert len(lines) == 1 and message.format(**names) in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.expensive
def test_distilled_student_solves_cartpole(tmp_path, capsys):
    """An MLP PPO teacher trained by `qrl train` (100k steps) distilled into ppo-vqc with the defaults."""
    assert run_cli("train", "--agent", "ppo-mlp", "--env", "CartPole-v1", "--seed", "0", "--out",
                   str(tmp_path / "teachers"), "--no-progress") == 0
    (teacher,) = (tmp_path / "teachers").iterdir()
    capsys.readouterr()
    assert run_cli("distill", "--teacher", str(teacher / "model.zip"), "--student", "ppo-vqc", "--env", "CartPole-v1",
                   "--seed", "0", "--out", str(tmp_path / "runs"), "--no-progress") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["teacher_eval_mean"] >= 475, results
    assert results["student_eval_mean"] >= 450, results
    capsys.readouterr()
    assert run_cli("eval", str(run_dir), "--episodes", "20") == 0
    mean = float(capsys.readouterr().out.split("return ")[1].split(" +-")[0])
    assert mean >= 450
