"""DDPG with a VQC actor (SB3's DDPG with qrl.sb3.VQCTD3Policy): the presets train, save and load."""

from __future__ import annotations

import dataclasses

from stable_baselines3 import DDPG

from qrl.cli import main
from qrl.config import resolve
from qrl.train import preset_parameters


def test_qrl_train_and_eval_ddpg_vqc(train_cli, capsys):
    run_dir = train_cli("ddpg-vqc", "Pendulum-v1", 0, "learning_starts=100")
    model = DDPG.load(run_dir / "model.zip", device="cpu")
    assert type(model.policy).__name__ == "VQCTD3Policy" and len(model.policy.critic.q_networks) == 1
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    assert "ddpg-vqc on Pendulum-v1: return" in capsys.readouterr().out


def test_ddpg_matched_actor_has_the_closest_parameter_count():
    """Only the actor is matched (the MLP critic is shared): the actor is the policy minus its critic."""

    def actor_parameters(config):
        from qrl.train import build_model

        model, env = build_model(config)
        env.close()
        return sum(p.numel() for p in model.policy.actor.parameters())

    target = actor_parameters(resolve("ddpg-vqc", "Pendulum-v1"))
    config = resolve("ddpg-mlp-matched", "Pendulum-v1")
    got = actor_parameters(config)
    arch = config.policy_kwargs["net_arch"]
    for k in (-1, 1):
        wider = {**config.policy_kwargs, "net_arch": {**arch, "pi": [w + k for w in arch["pi"]]}}
        other = actor_parameters(dataclasses.replace(config, policy_kwargs=wider))
        assert abs(got - target) <= abs(other - target), (got, other, target)
    assert preset_parameters(config)["quantum"] == 0
