"""The training-episode log of a run (``training_episodes.csv`` and ``results.json``'s ``training``): every
training episode's return before normalising, the episodes a REINFORCE run trained on, and the tutorial's
"solved in training" criterion (the mean of 10 consecutive episodes)."""

from __future__ import annotations

import json

import pytest

from qrl import runs


@pytest.mark.parametrize("returns, target, expected", [
    ([0.0] * 5 + [500.0] * 10, 500, 15),  # the first 10 at 500 end at episode 15
    ([500.0] * 9, 500, None),  # fewer than 10 episodes: never
    ([400.0, 600.0] * 5, 500, 10),  # a mean of 500 reaches 500
    ([400.0, 600.0] * 4 + [400.0, 599.0], 500, None),
    ([10.0] * 12 + [20.0], 11, 13),  # (9 * 10 + 20) / 10 = 11
])
def test_episodes_to_mean(returns, target, expected):
    assert runs.episodes_to_mean(returns, target) == expected


def test_training_summary():
    rows = [{"timesteps": 10 * (i + 1), "return": float(r), "length": 10} for i, r in enumerate([1, 2, 3] * 4)]
    summary = runs.training_summary(rows, 2.0)
    assert summary == {"episodes": 12, "window": 10, "best_window_mean": pytest.approx(2.1),
                       "episodes_to_threshold": 11}  # means of episodes 1-10, 2-11, 3-12: 1.9, 2.0, 2.1
    assert runs.training_summary(rows[:3], None) == {"episodes": 3, "window": 10, "best_window_mean": None,
                                                     "episodes_to_threshold": None}


@pytest.mark.parametrize("agent, sets", [("reinforce-vqc", ()), ("ppo-vqc", ("normalize=true",))])
def test_a_run_logs_every_training_episode(train_cli, agent, sets):
    """CartPole pays +1 per step, so each episode's logged return equals its length (rewards before VecNormalize);
    a REINFORCE run with one environment trains on exactly n_episodes (10) episodes per update."""
    run = train_cli(agent, "CartPole-v1", 0, *sets)
    episodes = runs.read_training_episodes(run)
    results = json.loads((run / "results.json").read_text())
    steps = [e["timesteps"] for e in episodes]
    assert episodes and steps == sorted(steps) and steps[-1] <= results["timesteps"]
    assert all(e["return"] == e["length"] for e in episodes)
    assert sum(e["length"] for e in episodes) <= results["timesteps"]
    assert results["training"]["episodes"] == len(episodes)
    assert results["training"]["episodes_to_threshold"] == runs.episodes_to_mean([e["return"] for e in episodes], 475)
    if agent == "reinforce-vqc":
        assert len(episodes) % 10 == 0 and sum(e["length"] for e in episodes) == results["timesteps"]
    assert runs.read_training_episodes(run, steps[0]) == [e for e in episodes if e["timesteps"] <= steps[0]]
