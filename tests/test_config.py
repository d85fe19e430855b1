"""Config resolution: presets in rl-zoo3 format, overrides, schedules, shipped data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qrl.config import (
    algo_kwargs,
    data_dir,
    linear_schedule,
    list_agents,
    list_envs,
    load_env_spec,
    parse_policy_kwargs,
    parse_set,
    resolve,
)
from qrl.errors import QRLError

REPO = Path(__file__).resolve().parents[1]


def test_suite_and_presets_exist():
    assert {"CartPole-v1", "Acrobot-v1", "Pendulum-v1"} <= set(list_envs())
    assert {"ppo-vqc", "ppo-mlp"} <= set(list_agents())
    assert load_env_spec("CartPole-v1").reward_threshold == 475


def test_ppo_mlp_preset_is_rl_zoo3_cartpole():
    config = resolve("ppo-mlp", "CartPole-v1")
    assert config.algo == "ppo" and config.policy == "MlpPolicy"
    assert (config.n_envs, config.n_timesteps) == (8, 100_000)
    assert config.hyperparams == {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98,
                                  "n_epochs": 20, "ent_coef": 0.0, "learning_rate": "lin_0.001",
                                  "clip_range": "lin_0.2"}


def test_vqc_preset_gets_env_obs_map_and_device():
    config = resolve("ppo-vqc", "CartPole-v1", device="lightning.qubit", seed=4, steps=1000)
    assert config.policy == "qrl.sb3.VQCActorCriticPolicy"
    assert config.policy_kwargs["obs_map"] == "arctan"
    assert config.policy_kwargs["device"] == "lightning.qubit"
    assert (config.seed, config.n_timesteps) == (4, 1000)


def test_overrides():
    overrides = parse_set(["learning_rate=0.005", "policy_kwargs.n_layers=3", "n_envs=2", "gamma=0.9"])
    config = resolve("ppo-vqc", "CartPole-v1", overrides=overrides)
    assert config.hyperparams["learning_rate"] == 0.005
    assert config.hyperparams["gamma"] == 0.9
    assert config.policy_kwargs["n_layers"] == 3
    assert config.n_envs == 2


def test_schedules():
    sched = algo_kwargs(resolve("ppo-mlp", "CartPole-v1"))["learning_rate"]
    assert sched(1.0) == pytest.approx(0.001) and sched(0.5) == pytest.approx(0.0005) and sched(0.0) == 0.0
    assert linear_schedule(2.0)(0.25) == 0.5


def test_policy_kwargs_strings_are_evaluated_without_builtins():
    assert parse_policy_kwargs("dict(n_layers=3, actor=dict(readout='zz'))") == {
        "n_layers": 3, "actor": {"readout": "zz"}}
    assert parse_policy_kwargs({"a": 1}) == {"a": 1}
    with pytest.raises(QRLError, match="could not read policy_kwargs"):
        parse_policy_kwargs("__import__('os').system('true')")
    with pytest.raises(QRLError, match="must evaluate to a dict"):
        parse_policy_kwargs("[1, 2]")


@pytest.mark.parametrize("item", ["learning_rate", "=3", "policy_kwargs.=3", "a..b=1", "x=[1,"])
def test_malformed_set(item):
    with pytest.raises(QRLError, match="malformed"):
        parse_set([item])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve("ppo-vqc", "CartPol-v1"), r"unknown environment 'CartPol-v1'; did you mean CartPole-v1\?"),
        (lambda: resolve("ppo-quantum", "CartPole-v1"), r"unknown agent 'ppo-quantum'; expected one of .*ppo-vqc"),
        (lambda: resolve("a2c-vqc", "LunarLander-v3"), r"agent 'a2c-vqc' has no section for 'LunarLander-v3'"),
        (lambda: resolve("ppo-vqc", "CartPole-v1", overrides={"lerning_rate": 1}),
         r"unknown hyperparameter\(s\) lerning_rate for PPO"),
        (lambda: resolve("ppo-mlp", "CartPole-v1", device="lightning.qubit"),
         r"--device lightning.qubit names a circuit backend but agent 'ppo-mlp' has no circuit"),
        (lambda: resolve("ppo-vqc", "CartPole-v1", overrides={"a.b": 1}), r"only policy_kwargs.<name>"),
        (lambda: resolve("ppo-vqc", "CartPole-v1", overrides={"policy": "os.system"}),
         r"policy 'os.system' is not an SB3 policy class"),
    ],
)
def test_resolve_errors(call, message):
    with pytest.raises(QRLError, match=message):
        call()


def test_data_dir_is_the_checkout_in_a_checkout():
    assert data_dir("envs") == REPO / "envs"
    assert data_dir("agents") == REPO / "agents"


def test_wheel_ships_envs_and_agents(tmp_path):
    # A non-editable install must find the suite and presets inside the package.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("qrl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, items in (("envs", list_envs()), ("agents", list_agents())):
        for item in items:
            assert f"qrl/data/{kind}/{item}.yaml" in names
    assert "qrl/cli/__init__.py" in names and "qrl/simulator/__init__.py" in names  # every subpackage ships
    assert "qrl/data/crossovers.json" in names  # device="auto" reads it
    assert "qrl/data/agents/studies/cartpole-ppo.yaml" in names  # `qrl study cartpole-ppo`
    # Installed without the checkout around it, qrl reads the copies inside the package.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = "import qrl.config as c; print(c.data_dir('envs')); print(c.list_envs()); print(c.list_agents())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True, timeout=300).stdout.splitlines()
    assert out[0] == str(target / "qrl" / "data" / "envs")
    assert eval(out[1]) == list_envs() and eval(out[2]) == list_agents()


def _preset_sections():
    from qrl.config import load_agent

    return [(agent, env) for agent in list_agents() for env in load_agent(agent)]


@pytest.mark.parametrize(("agent", "env"), _preset_sections())
def test_every_preset_section_builds(agent, env):
    from qrl.train import build_model

    config = resolve(agent, env)
    model, vec_env = build_model(config)
    assert model.n_envs == config.n_envs
    vec_env.close()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "sac", "td3"])
def test_matched_mlp_presets_have_the_closest_parameter_count(algo):
    """`<algo>-mlp-matched` on every env of `<algo>-vqc`: no other hidden width comes closer to the VQC's count.

    SAC and TD3 presets share their MLP critics; only the actor (``pi``) is matched and widened.
    """
    import dataclasses

    from qrl.config import load_agent, resolve
    from qrl.train import preset_parameters

    assert set(load_agent(f"{algo}-mlp-matched")) == set(load_agent(f"{algo}-vqc"))
    for env_id in load_agent(f"{algo}-mlp-matched"):
        target = preset_parameters(resolve(f"{algo}-vqc", env_id))["total"]
        config = resolve(f"{algo}-mlp-matched", env_id)
        got = preset_parameters(config)
        assert got["quantum"] == 0
        arch = config.policy_kwargs["net_arch"]
        for k in (-1, 1):
            if isinstance(arch, dict):
                wider = {key: [w + k for w in v] if key in ("pi", "vf") else v for key, v in arch.items()}
            else:
                wider = [w + k for w in arch]
            kwargs = {**config.policy_kwargs, "net_arch": wider}
            other = preset_parameters(dataclasses.replace(config, policy_kwargs=kwargs))
            assert abs(got["total"] - target) <= abs(other["total"] - target), (env_id, got, other, target)


@pytest.mark.parametrize(("agent", "obs_map", "norm_obs"), [
    ("ppo-vqc", "arctan", True), ("ppo-vqc", "bounds", False), ("ppo-vqc", "scale", False), ("ppo-mlp", None, True)])
def test_normalize_leaves_observations_raw_where_the_circuit_maps_them_by_bounds(agent, obs_map, norm_obs):
    from stable_baselines3.common.vec_env import VecNormalize

    from qrl.config import resolve
    from qrl.train import build_model

    overrides = {"normalize": True, **({"policy_kwargs.obs_map": obs_map} if obs_map else {})}
    if obs_map == "scale":
        overrides["policy_kwargs.obs_scale"] = [1.0, 1.0, 8.0]  # Pendulum: cos, sin, angular velocity
    _model, env = build_model(resolve(agent, "Pendulum-v1", overrides=overrides))
    assert isinstance(env, VecNormalize) and env.norm_reward and env.norm_obs == norm_obs
    env.close()


@pytest.mark.parametrize(("normalize", "norm_obs", "norm_reward"), [
    ("{'norm_obs': False, 'norm_reward': True}", False, True),  # rl-zoo3's string form
    ({"norm_reward": False}, True, False), ("dict(norm_obs=False)", False, True)])
def test_normalize_chooses_observations_and_rewards_as_rl_zoo3_does(normalize, norm_obs, norm_reward):
    import numpy as np
    from stable_baselines3.common.vec_env import VecNormalize

    from qrl.config import resolve
    from qrl.envs import make_eval_env
    from qrl.train import build_model

    config = resolve("ppo-vqc", "CartPole-v1", overrides={"normalize": normalize})
    assert config.normalize == {"norm_obs": norm_obs, "norm_reward": norm_reward}
    _model, env = build_model(config)
    assert isinstance(env, VecNormalize) and (env.norm_obs, env.norm_reward) == (norm_obs, norm_reward)
    env.reset()
    env.step_async(np.zeros(config.n_envs, dtype=int))
    obs = env.step_wait()[0]
    raw = env.get_original_obs()
    if not norm_obs:
        np.testing.assert_array_equal(obs, raw)  # the circuit sees the raw observation
    evaluation = make_eval_env(config, env)  # shares the training statistics when there are any
    assert evaluation.norm_obs == norm_obs and (not norm_obs or evaluation.obs_rms is env.obs_rms)
    env.close()
    evaluation.close()


@pytest.mark.parametrize("normalize", ["yes", "{'norm_obs': 1}", "{'clip_obs': 5.0}", "__import__('os')", [True]])
def test_bad_normalize_is_a_one_line_error(normalize):
    with pytest.raises(QRLError, match=r"expected normalize: true, false or a mapping of norm_obs and norm_reward"):
        resolve("ppo-vqc", "CartPole-v1", overrides={"normalize": normalize})


def test_agent_preset_by_path(tmp_path):
    """A preset file anywhere (rl-zoo3 format): algorithm from its file name, runs named by its stem."""
    preset = tmp_path / "dqn-vqc-tuned.yaml"
    preset.write_text((REPO / "agents" / "dqn-vqc.yaml").read_text())
    config = resolve(str(preset), "CartPole-v1", steps=100)
    assert (config.agent, config.algo) == ("dqn-vqc-tuned", "dqn")
    assert config.hyperparams == resolve("dqn-vqc", "CartPole-v1", steps=100).hyperparams
    zoo = tmp_path / "ppo.yml"  # rl-zoo3's own hyperparams/<algo>.yml naming
    zoo.write_text((REPO / "agents" / "ppo-mlp.yaml").read_text())
    assert resolve(str(zoo), "CartPole-v1").algo == "ppo"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("missing/ppo-x.yaml", None, r"^agent file .*missing/ppo-x\.yaml not found; expected a preset YAML file"),
    ("tuned.yaml", "CartPole-v1: {n_timesteps: 100}\n", r"^preset file .*tuned\.yaml: expected a file named "
                                                         r"<algo>-<variant>\.yaml"),
    ("ppo-bad.yaml", "CartPole-v1: 3\n", r"ppo-bad\.yaml: expected one mapping of hyperparameters per environment"),
    ("ppo-list.yaml", "- 1\n", "must hold a mapping"),
    ("ppo-other.yaml", "Acrobot-v1: {n_timesteps: 100}\n", r"has no section for 'CartPole-v1'; it has Acrobot-v1; "
                                                           r"add one to .*ppo-other\.yaml"),
    ("sub/ppo-vqc", None, "looks like a path but is not a YAML file"),
])
def test_bad_preset_paths_are_one_line_errors(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(QRLError, match=message) as info:
        resolve(str(path), "CartPole-v1")
    assert "\n" not in str(info.value)


def test_qrl_train_takes_a_preset_path(tmp_path, capsys):
    from qrl.cli import main

    preset = tmp_path / "ppo-mine.yaml"
    preset.write_text((REPO / "agents" / "ppo-mlp.yaml").read_text())
    assert main(["train", "--agent", str(preset), "--env", "CartPole-v1", "--steps", "256", "--out",
                 str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "final eval return" in capsys.readouterr().out
    assert [p.name.split("__")[:2] for p in (tmp_path / "runs").iterdir()] == [["CartPole-v1", "ppo-mine"]]
    assert main(["train", "--agent", str(tmp_path / "ppo-none.yaml"), "--env", "CartPole-v1"]) != 0
    assert "agent file" in capsys.readouterr().err and not list((tmp_path / "runs").glob("*ppo-none*"))


def test_the_sb3_device_hyperparameter_is_checked_and_used(tmp_path, monkeypatch):
    import torch

    from qrl.train import build_model, resume

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(QRLError, match=r"device=cuda needs a CUDA GPU, .* sees none here; try device=cpu"):
        resolve("ppo-vqc", "CartPole-v1", overrides={"device": "cuda"})
    for bad in ("tpu", "cuda:x", 3):
        with pytest.raises(QRLError, match=r"device \(SB3's torch device\) must be cpu, auto, cuda or cuda:N"):
            resolve("ppo-vqc", "CartPole-v1", overrides={"device": bad})
    config = resolve("ppo-vqc", "CartPole-v1", overrides={"device": "auto", "policy_kwargs.n_layers": 1}, steps=256)
    model, env = build_model(config)  # the key goes to SB3's device, once (not also as a keyword of its own)
    env.close()
    assert model.device.type == "cpu" and config.hyperparams["device"] == "auto"
    from stable_baselines3.common.callbacks import BaseCallback

    from qrl import runs
    from qrl.train import train

    class Interrupt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 128:
                raise KeyboardInterrupt
            return True

    run = train(config, out=tmp_path, tensorboard=False, callbacks=[Interrupt()])
    assert runs.read_results(run)["status"] == "interrupted"
    assert runs.read_config(run).hyperparams["device"] == "auto"  # saved with the run
    resume(run, tensorboard=False)  # loads the model on the run's device, and finishes
    assert runs.read_results(run)["status"] == "finished" and runs.read_results(run)["timesteps"] >= 256
