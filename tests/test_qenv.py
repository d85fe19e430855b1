"""QubitTarget-v0: the physics against closed forms, the reward and episode rules, the threshold."""

from __future__ import annotations

import importlib
import math
import warnings

import gymnasium as gym
import numpy as np
import pennylane as qml
import pytest
from gymnasium.utils.env_checker import check_env

import qrl
from qrl.config import load_env_spec, resolve
from qrl.errors import QRLError
from qrl.qenv import (
    ENV_ID,
    MAX_EPISODE_STEPS,
    REWARD_THRESHOLD,
    QubitTargetEnv,
    bloch_vector,
    fidelity,
    greedy_action,
    greedy_policy_return,
    haar_state,
    policy_returns,
    random_action,
    random_policy_return,
    rotation,
)

TOL = 1e-12
D = math.pi / 8
S2 = 1 / math.sqrt(2)
ZERO, ONE = np.array([1, 0], complex), np.array([0, 1], complex)
PLUS, MINUS = np.array([S2, S2], complex), np.array([S2, -S2], complex)
PLUS_I, MINUS_I = np.array([S2, 1j * S2], complex), np.array([S2, -1j * S2], complex)
RX, RY, RZ = 0, 2, 4  # the +d actions; each -d action is the next index
GATES = [(qml.RX, 1), (qml.RX, -1), (qml.RY, 1), (qml.RY, -1), (qml.RZ, 1), (qml.RZ, -1)]
AXES = [np.array(v, float) for v in ((1, 0, 0), (1, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1))]


def started(state, target, **kwargs) -> QubitTargetEnv:
    env = QubitTargetEnv(**kwargs)
    env.reset(seed=0, options={"state": state, "target": target})
    return env


def rodrigues(r: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``r`` rotated by ``angle`` about the unit ``axis`` (right-handed)."""
    return r * math.cos(angle) + np.cross(axis, r) * math.sin(angle) + axis * (axis @ r) * (1 - math.cos(angle))


# -- states and gates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [(ZERO, (0, 0, 1)), (ONE, (0, 0, -1)), (PLUS, (1, 0, 0)), (MINUS, (-1, 0, 0)), (PLUS_I, (0, 1, 0)),
     (MINUS_I, (0, -1, 0)), (np.exp(0.7j) * PLUS, (1, 0, 0))],  # a global phase changes nothing
)
def test_bloch_vectors_of_known_states(state, expected):
    np.testing.assert_allclose(bloch_vector(state), expected, atol=TOL, rtol=0)
    env = started(state, ZERO)
    np.testing.assert_allclose(env._obs()[:3], expected, atol=1e-7, rtol=0)  # float32 observation


def test_fidelity_is_the_bloch_overlap():
    rng = np.random.default_rng(0)
    for _ in range(100):
        psi, phi = haar_state(rng), haar_state(rng)
        assert np.linalg.norm(psi) == pytest.approx(1, abs=TOL)
        assert fidelity(psi, phi) == pytest.approx((1 + bloch_vector(psi) @ bloch_vector(phi)) / 2, abs=TOL)
    assert fidelity(ZERO, ONE) == 0 and fidelity(PLUS, ZERO) == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("angle", [0.0, D, -D, 1.234, -2.9, math.pi])
@pytest.mark.parametrize(("axis", "op"), [("x", qml.RX), ("y", qml.RY), ("z", qml.RZ)])
def test_rotation_is_pennylanes(axis, op, angle):
    np.testing.assert_allclose(rotation(axis, angle), qml.matrix(op(angle, wires=0)), atol=TOL, rtol=0)


@pytest.mark.parametrize("action", range(6))
def test_each_action_applies_pennylanes_gate(action):
    op, sign = GATES[action]
    rng = np.random.default_rng(action)
    for step_angle in (D, 0.3):
        psi = haar_state(rng)
        env = started(psi, haar_state(rng), step_angle=step_angle, fidelity_tol=1e-9)
        env.step(action)
        expected = qml.matrix(op(sign * step_angle, wires=0)) @ psi
        np.testing.assert_allclose(env.state, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("action", range(6))
def test_each_action_rotates_the_bloch_vector_by_d_about_its_axis(action):
    rng = np.random.default_rng(10 + action)
    psi = haar_state(rng)
    env = started(psi, haar_state(rng), fidelity_tol=1e-9)
    env.step(action)
    expected = rodrigues(bloch_vector(psi), AXES[action], GATES[action][1] * D)
    np.testing.assert_allclose(bloch_vector(env.state), expected, atol=TOL, rtol=0)


def test_norm_is_preserved_over_many_steps():
    env = QubitTargetEnv(fidelity_tol=1e-15)  # raw env: no TimeLimit, keep stepping
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(20_000):
        env.step(int(rng.integers(6)))
    assert abs(np.linalg.norm(env.state) - 1) < TOL


# -- known trajectories ------------------------------------------------------------------------------


def test_rx_steps_take_zero_to_one():
    # RX(t)|0> = cos(t/2)|0> - i sin(t/2)|1>: F with |1> is sin^2(k d / 2); 8 steps of pi/8 make pi.
    env = started(ZERO, ONE, fidelity_tol=1e-9)
    for k in range(1, 9):
        _, _, terminated, _, info = env.step(RX)
        assert info["fidelity"] == pytest.approx(math.sin(k * D / 2) ** 2, abs=TOL)
        assert terminated == (k == 8)
    assert info["fidelity"] == pytest.approx(1, abs=TOL)
    np.testing.assert_allclose(env.state, -1j * ONE, atol=TOL, rtol=0)  # RX(pi)|0> = -i|1>


def test_ry_step_from_zero_towards_plus():
    # RY(+-d)|0> = cos(d/2)|0> +- sin(d/2)|1>, so F with |+> = (cos(d/2) +- sin(d/2))^2 / 2 = (1 +- sin d) / 2.
    for action, sign in ((RY, 1), (RY + 1, -1)):
        env = started(ZERO, PLUS)
        _, reward, *_, info = env.step(action)
        assert info["fidelity"] == pytest.approx((1 + sign * math.sin(D)) / 2, abs=TOL)
        assert info["fidelity"] == pytest.approx(math.cos((math.pi / 2 - sign * D) / 2) ** 2, abs=TOL)
        assert reward == pytest.approx(sign * math.sin(D) / 2 - env.step_cost, abs=TOL)


def test_rz_steps_turn_plus_around_the_equator():
    # RZ(t)|+> has Bloch vector (cos t, sin t, 0): F with |+i> = (1 + sin t) / 2; 4 steps reach |+i>.
    env = started(PLUS, PLUS_I, fidelity_tol=1e-9)
    for k in range(1, 5):
        obs, *_, info = env.step(RZ)
        np.testing.assert_allclose(obs[:3], (math.cos(k * D), math.sin(k * D), 0), atol=1e-7, rtol=0)
        assert info["fidelity"] == pytest.approx((1 + math.sin(k * D)) / 2, abs=TOL)
    assert info["fidelity"] == pytest.approx(1, abs=TOL)


def test_rz_on_a_pole_changes_only_the_phase():
    env = started(ZERO, PLUS)
    _, reward, terminated, truncated, info = env.step(RZ)
    assert info["fidelity"] == pytest.approx(0.5, abs=TOL)
    assert reward == pytest.approx(-env.step_cost, abs=TOL)
    assert not terminated and not truncated


# -- reward and episode rules ------------------------------------------------------------------------


def test_reward_is_the_fidelity_gain_minus_cost_plus_bonus():
    env = QubitTargetEnv(step_cost=0.03, success_bonus=2.0)
    rng = np.random.default_rng(2)
    _, info = env.reset(seed=2)
    for _ in range(200):
        before = fidelity(env.state, env.target)
        assert info["fidelity"] == pytest.approx(before, abs=TOL)
        _, reward, terminated, _, info = env.step(int(rng.integers(6)))
        after = fidelity(env.state, env.target)
        assert terminated == (after >= 0.99)
        assert info.get("is_success", False) == terminated
        assert reward == pytest.approx(after - before - 0.03 + (2.0 if terminated else 0.0), abs=TOL)
        if terminated:
            _, info = env.reset()


def test_return_telescopes_to_the_fidelity_change():
    env = QubitTargetEnv(step_cost=0.0, success_bonus=0.0, fidelity_tol=1e-9)
    _, info = env.reset(seed=3)
    f0, total = info["fidelity"], 0.0
    rng = np.random.default_rng(3)
    for _ in range(100):
        _, reward, *_, info = env.step(int(rng.integers(6)))
        total += reward
    assert total == pytest.approx(info["fidelity"] - f0, abs=TOL)


def test_default_episode_terminates_with_the_bonus():
    env = gym.make(ENV_ID)
    env.reset(seed=0, options={"state": ZERO, "target": ONE})
    rewards = [env.step(RX)[1] for _ in range(7)]
    _, reward, terminated, truncated, info = env.step(RX)
    # sin^2(7 pi / 16) = 0.962 < 0.99: the 8th step (F = 1) solves it.
    assert terminated and not truncated and info["is_success"]
    assert reward == pytest.approx(1 - math.sin(7 * D / 2) ** 2 - 0.01 + 1.0, abs=TOL)
    assert sum(rewards) + reward == pytest.approx(1 - 8 * 0.01 + 1.0, abs=TOL)


def test_truncation_at_the_step_limit():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS == 50
    env.reset(seed=0, options={"state": ZERO, "target": ONE})
    for t in range(1, MAX_EPISODE_STEPS + 1):
        _, reward, terminated, truncated, info = env.step(RZ)  # |0> only picks up a phase: F stays 0
        assert reward == pytest.approx(-0.01, abs=TOL)
        assert not terminated and truncated == (t == MAX_EPISODE_STEPS)
    assert info["is_success"] is False


def test_evaluation_callback_records_successes_of_truncated_episodes(tmp_path):
    """SB3's EvalCallback saves one is_success per episode; truncated episodes must be failures, not gaps."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    model = PPO("MlpPolicy", ENV_ID, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    callback = EvalCallback(Monitor(gym.make(ENV_ID)), n_eval_episodes=4, eval_freq=64, log_path=str(tmp_path),
                            verbose=0)
    model.learn(192, callback=callback)
    successes = np.load(tmp_path / "evaluations.npz")["successes"]
    assert successes.shape == (3, 4)


def test_random_starts_are_haar_and_never_solved():
    # For independent Haar states F is uniform on [0, 1]; the redraw leaves it uniform on [0, 0.99).
    env = QubitTargetEnv()
    env.reset(seed=4)
    f0 = np.array([env.reset()[1]["fidelity"] for _ in range(4000)])
    assert f0.max() < 0.99
    assert f0.mean() == pytest.approx(0.495, abs=0.02)
    assert np.mean(f0 < 0.5) == pytest.approx(0.5 / 0.99, abs=0.03)


def test_seeding_reproduces_episodes():
    def rollout(seed):
        env = gym.make(ENV_ID)
        obs, _ = env.reset(seed=seed)
        trajectory = [obs]
        for action in [0, 3, 5, 1, 2, 4] * 3:
            obs, *_ = env.step(action)
            trajectory.append(obs)
        obs, _ = env.reset()  # the next episode follows from the seed too
        return np.array([*trajectory, obs])

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.allclose(rollout(7), rollout(8))
    np.testing.assert_array_equal(policy_returns(random_action, 5, seed=1), policy_returns(random_action, 5, seed=1))


def test_gymnasium_env_checker_passes():
    # Made through gym.make so the checker can also try the render modes (it needs the spec for that).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID).unwrapped)
        check_env(gym.make(ENV_ID, step_angle=0.3, render_mode="ansi").unwrapped)


def test_render_ansi():
    env = started(ZERO, PLUS, render_mode="ansi")
    assert env.render() == "psi bloch (+0.000, +0.000, +1.000)  target (+1.000, +0.000, +0.000)  fidelity 0.5000"
    assert QubitTargetEnv().render() is None


def test_render_rgb_array_draws_state_and_target_where_their_bloch_vectors_point():
    env = started(ZERO, PLUS, render_mode="rgb_array")  # state at +Z (top centre), target at +X (right middle)
    image = env.render()
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    blue, red = np.array([40, 80, 220]), np.array([220, 40, 40])
    by, bx = np.argwhere((image == blue).all(-1)).mean(0)
    ry, rx = np.argwhere((image == red).all(-1)).mean(0)
    assert by < 15 and abs(bx - 47.5) < 2  # top, centred
    assert rx > 80 and abs(ry - 47.5) < 2  # right, centred


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: QubitTargetEnv(step_angle=0), r"expected step_angle in \(0, 2 pi\); got 0"),
        (lambda: QubitTargetEnv(fidelity_tol=1.5), r"expected fidelity_tol in \(0, 1\)"),
        (lambda: QubitTargetEnv(render_mode="human"), r"expected render_mode None, 'ansi' or 'rgb_array'"),
        (lambda: QubitTargetEnv().reset(options={"state": [1, 1]}), r"normalised state; got norm 1.41421; try"),
        (lambda: QubitTargetEnv().reset(options={"target": [1, 0, 0]}), r"shape \(2,\)"),
        (lambda: QubitTargetEnv().reset(options={"start": ZERO}), r"unknown reset option\(s\) start"),
        (lambda: started(ZERO, ONE).step(6), r"expected an action in 0..5; got 6"),
        (lambda: rotation("w", 1.0), r"expected a rotation axis"),
    ],
)
def test_errors_say_what_was_expected(call, message):
    with pytest.raises(QRLError, match=message):
        call()


# -- registration and threshold ----------------------------------------------------------------------


def test_registered_on_import_qrl():
    assert qrl.qenv.ENV_ID in gym.registry
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, QubitTargetEnv)
    assert env.spec.reward_threshold == REWARD_THRESHOLD
    assert env.observation_space == gym.spaces.Box(-1, 1, (6,), np.float32) and env.action_space.n == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gym.register would warn "Overriding environment"
        importlib.reload(qrl.qenv)


def test_suite_entry_matches_the_registration():
    spec = load_env_spec(ENV_ID)
    assert spec.reward_threshold == REWARD_THRESHOLD and spec.obs_map == "identity"
    assert resolve("ppo-vqc", ENV_ID).policy_kwargs["obs_map"] == "identity"


def test_threshold_is_reached_by_greedy_and_not_by_chance():
    greedy = greedy_policy_return(300, seed=0)
    random = random_policy_return(300, seed=0)
    assert greedy >= REWARD_THRESHOLD + 0.05  # documented: 1.436 over 1000 episodes; threshold 0.1 below
    assert random <= REWARD_THRESHOLD - 1.0  # documented: -0.117


def test_greedy_picks_the_best_next_fidelity():
    env = started(ZERO, ONE)
    np.testing.assert_allclose(env.lookahead_fidelities(), [math.sin(D / 2) ** 2] * 4 + [0, 0], atol=TOL, rtol=0)
    assert greedy_action(env) == RX  # ties go to the first action
