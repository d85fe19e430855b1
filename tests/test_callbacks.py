"""Callbacks a preset names with rl-zoo3's ``callback:`` key (FreezeNormalization, SettleWhenSolved, AnnealEntropy)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from qrl.config import resolve
from qrl.errors import QRLError
from qrl.sb3.callbacks import FreezeNormalization
from qrl.train import preset_callbacks, train

FREEZE = "qrl.sb3.callbacks.FreezeNormalization"


@pytest.mark.parametrize("value", [FREEZE + "_x", [{FREEZE: {"after_steps": 8}}], {FREEZE: {"after_steps": 8}}])
def test_callback_forms_of_rl_zoo3_are_read(value):
    config = resolve("ppo-vqc", "CartPole-v1", overrides={"callback": value})
    if isinstance(value, str):  # a name only: checked against the module's classes when training starts
        with pytest.raises(QRLError, match=r"unknown callback qrl.sb3.callbacks.FreezeNormalization_x; expected one "
                                           r"of qrl.sb3.callbacks.FreezeNormalization"):
            preset_callbacks(config)
        return
    assert config.hyperparams["callback"] == [{FREEZE: {"after_steps": 8}}]
    (built,) = preset_callbacks(config)
    assert isinstance(built, FreezeNormalization) and built.after_steps == 8


@pytest.mark.parametrize("value", ["os.system", [{"stable_baselines3.common.callbacks.CheckpointCallback": {}}],
                                   {FREEZE: 5}, [{FREEZE: {}, "other": {}}], 3])
def test_callbacks_outside_qrl_or_malformed_are_refused(value):
    with pytest.raises(QRLError, match=r"expected callback: a class of qrl.sb3.callbacks"):
        resolve("ppo-vqc", "CartPole-v1", overrides={"callback": value})


@pytest.mark.parametrize(("kwargs", "message"), [({"after_step": 8}, "unexpected keyword argument 'after_step'"),
                                                 ({"after_steps": -1}, "expected after_steps, an integer >= 0")])
def test_bad_callback_arguments_fail_before_the_run_folder_exists(tmp_path, kwargs, message):
    config = resolve("ppo-vqc", "CartPole-v1", steps=64, overrides={"callback": [{FREEZE: kwargs}]})
    with pytest.raises(QRLError, match=message):
        train(config, out=tmp_path / "runs", tensorboard=False)
    assert not (tmp_path / "runs").exists()


def test_set_callback_null_drops_the_presets_callbacks():
    from qrl.config import parse_set

    config = resolve("ppo-vqc", "CartPole-v1", overrides=parse_set(["callback=null"]))
    assert config.hyperparams["callback"] == [] and preset_callbacks(config) == []


def test_rl_zoo3_builds_the_same_callback():
    from rl_zoo3.utils import get_callback_list

    (built,) = get_callback_list({"callback": [{FREEZE: {"after_steps": 8}}]})
    assert isinstance(built, FreezeNormalization) and built.after_steps == 8


def test_freeze_normalization_stops_the_statistics_at_its_step(tmp_path):
    config = resolve("ppo-vqc", "CartPole-v1", steps=512, overrides={
        "policy_kwargs.n_layers": 1, "callback": [{FREEZE: {"after_steps": 192}}]})
    config = dataclasses.replace(config, env_spec=dataclasses.replace(config.env_spec, eval_freq=256,
                                                                      eval_episodes=1))
    run = train(config, out=tmp_path, tensorboard=False)
    with open(run / "vecnormalize.pkl", "rb") as f:
        norm = pickle.load(f)
    assert norm.training is False  # saved frozen: a resumed run stays frozen
    # 192 transitions (24 steps of 8 environments) updated the returns' statistics, then none of the 512
    assert norm.ret_rms.count == pytest.approx(192, abs=1e-3)
    assert norm.obs_rms.count == pytest.approx(192 + 8, abs=1e-3)  # and the observations, with the first reset's


SETTLE = "qrl.sb3.callbacks.SettleWhenSolved"


def _small_ppo():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from qrl.sb3 import VQCActorCriticPolicy

    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=4, seed=0))
    return PPO(VQCActorCriticPolicy, env, n_steps=32, batch_size=64, n_epochs=1, learning_rate=0.01, seed=0,
               policy_kwargs={"n_layers": 1}, device="cpu")


@pytest.mark.parametrize("lr_factor", [0.0, 0.1])
def test_settle_when_solved_scales_the_learning_rate_and_freezes_the_normaliser(lr_factor):
    from qrl.sb3.callbacks import SettleWhenSolved

    model = _small_ppo()
    callback = SettleWhenSolved(threshold=1.0, lr_factor=lr_factor, episodes=5)  # any 5 CartPole episodes
    model.learn(256, callback=callback)
    assert callback.settled_at is not None and 0 < callback.settled_at <= 256
    assert model.lr_schedule(1.0) == pytest.approx(lr_factor * 0.01)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(lr_factor * 0.01)
    assert model.get_vec_normalize_env().training is False
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(128, callback=callback, reset_num_timesteps=False)
    after = list(model.policy.parameters())
    moved = any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert moved == (lr_factor > 0)  # a factor of 0 stops learning; 0.1 keeps it going, slower


def test_settle_when_solved_waits_for_the_threshold():
    from qrl.sb3.callbacks import SettleWhenSolved

    model = _small_ppo()
    callback = SettleWhenSolved(threshold=475, episodes=5)  # a random CartPole policy scores about 20
    model.learn(256, callback=callback)
    assert callback.settled_at is None and model.lr_schedule(1.0) == pytest.approx(0.01)
    assert model.get_vec_normalize_env().training is True


def test_settle_when_solved_from_a_preset_saves_the_model(tmp_path):
    config = resolve("ppo-vqc", "CartPole-v1", steps=256, overrides={
        "policy_kwargs.n_layers": 1, "callback": [{SETTLE: {"threshold": 1, "episodes": 2}}]})
    config = dataclasses.replace(config, env_spec=dataclasses.replace(config.env_spec, eval_freq=128,
                                                                      eval_episodes=1))
    run = train(config, out=tmp_path, tensorboard=False)
    with open(run / "vecnormalize.pkl", "rb") as f:
        assert pickle.load(f).training is False
    assert (run / "model.zip").is_file()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "missing 1 required positional argument: 'threshold'"),
    ({"threshold": "high"}, "expected threshold, a number"),
    ({"threshold": 475, "lr_factor": 2}, "expected lr_factor, a number in"),
    ({"threshold": 475, "episodes": 0}, "expected episodes, an integer >= 1")])
def test_bad_settle_arguments_fail_before_the_run_folder_exists(tmp_path, kwargs, message):
    config = resolve("ppo-vqc", "CartPole-v1", steps=64, overrides={"callback": [{SETTLE: kwargs}]})
    with pytest.raises(QRLError, match=message):
        train(config, out=tmp_path / "runs", tensorboard=False)
    assert not (tmp_path / "runs").exists()


ANNEAL = "qrl.sb3.callbacks.AnnealEntropy"


def _record_ent_coef(model) -> list[float]:
    """The entropy coefficient each update of ``model`` uses (its ``train`` wrapped)."""
    used, train_once = [], model.train

    def train():
        used.append(model.ent_coef)
        train_once()

    model.train = train
    return used


@pytest.mark.parametrize(("end_fraction", "expected"), [(1.0, [0.06, 0.04, 0.02, 0.0]), (0.5, [0.04, 0.0, 0.0, 0.0])])
def test_anneal_entropy_follows_its_line_to_final(end_fraction, expected):
    from qrl.sb3.callbacks import AnnealEntropy

    model = _small_ppo()  # 4 environments x 32 steps: updates at steps 128, 256, 384, 512
    model.ent_coef = 0.08
    used = _record_ent_coef(model)
    model.learn(512, callback=AnnealEntropy(final=0.0, end_fraction=end_fraction))
    assert used == pytest.approx(expected, abs=1e-12)  # 0.08 * (1 - step / end), then final
    assert model.ent_coef == 0.0  # saved with the model


def test_anneal_entropy_continues_a_resumed_run_on_the_same_line():
    from qrl.sb3.callbacks import AnnealEntropy

    model = _small_ppo()
    model.learn(256)
    model.ent_coef = 0.04  # where the line from 0.08 at step 0 to 0 at step 512 is at step 256
    used = _record_ent_coef(model)
    model.learn(256, callback=AnnealEntropy(final=0.0), reset_num_timesteps=False)
    assert used == pytest.approx([0.02, 0.0], abs=1e-12)


def test_anneal_entropy_from_a_preset_anneals_reinforce(tmp_path):
    config = resolve("reinforce-vqc", "CartPole-v1", steps=300, overrides={
        "policy_kwargs.n_layers": 1, "ent_coef": 0.1, "callback": [{ANNEAL: {"final": 0.02}}]})
    config = dataclasses.replace(config, env_spec=dataclasses.replace(config.env_spec, eval_freq=1000,
                                                                      eval_episodes=1))
    run = train(config, out=tmp_path, tensorboard=False)
    from qrl.algorithms import REINFORCE

    assert REINFORCE.load(run / "model.zip", device="cpu").ent_coef == pytest.approx(0.02)


@pytest.mark.parametrize(("agent", "kwargs", "message"), [
    ("ppo-vqc", {"final": -0.1}, "expected final, a number >= 0"),
    ("ppo-vqc", {"end_fraction": 0}, r"expected end_fraction, a number in \(0, 1\]"),
    ("ppo-vqc", {"ent_coef": 0.1}, "unexpected keyword argument 'ent_coef'"),
    ("dqn-vqc", {}, "AnnealEntropy: DQN has no numeric ent_coef"),
    ("sac-vqc", {}, r"AnnealEntropy: SAC has no numeric ent_coef \(got 'auto'\)")])
def test_bad_anneal_entropy_fails_before_the_run_folder_exists(tmp_path, agent, kwargs, message):
    env = "Pendulum-v1" if agent == "sac-vqc" else "CartPole-v1"
    config = resolve(agent, env, steps=64, overrides={"policy_kwargs.n_layers": 1, "callback": [{ANNEAL: kwargs}]})
    with pytest.raises(QRLError, match=message):
        train(config, out=tmp_path / "runs", tensorboard=False)
    assert not (tmp_path / "runs").exists()


def test_rl_zoo3_builds_anneal_entropy():
    from rl_zoo3.utils import get_callback_list

    from qrl.sb3.callbacks import AnnealEntropy

    (built,) = get_callback_list({"callback": [{ANNEAL: {"final": 0.01, "end_fraction": 0.75}}]})
    assert isinstance(built, AnnealEntropy) and (built.final, built.end_fraction) == (0.01, 0.75)
