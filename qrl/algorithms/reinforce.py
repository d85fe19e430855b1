"""``REINFORCE``: Monte-Carlo policy gradient over batches of complete episodes, as an SB3 algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from qrl.algorithms.policies import ActorPolicy, VQCActorPolicy
from qrl.errors import QRLError

BASELINES = ("episode", "batch", "none")
SelfREINFORCE = TypeVar("SelfREINFORCE", bound="REINFORCE")


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Returns-to-go of one episode: ``G_t = sum_{k >= t} gamma^(k - t) r_k``, shape ``(T,)`` like ``rewards``."""
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


def standardize(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / (std + 1e-8)``, as the TensorFlow Quantum tutorial normalises returns."""
    return (x - x.mean()) / (x.std() + 1e-8)


def returns_with_baseline(episodes: list[np.ndarray], gamma: float, baseline: str) -> list[np.ndarray]:
    """The weights of ``log pi(a_t|s_t)`` for each episode's rewards ``(T_i,)``: returns-to-go, then the baseline.

    ``"episode"``: standardised within each episode (the TensorFlow Quantum tutorial); ``"batch"``: standardised
    over the whole batch (the batch mean is the baseline); ``"none"``: the plain returns.
    """
    if baseline not in BASELINES:
        raise QRLError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")
    returns = [discounted_returns(r, gamma) for r in episodes]
    if baseline == "episode":
        return [standardize(g) for g in returns]
    if baseline == "batch":
        flat = standardize(np.concatenate(returns))
        return np.split(flat, np.cumsum([len(g) for g in returns])[:-1])
    return returns


@dataclass
class EpisodeBatch:
    """The last batch of complete episodes: ``observations (N, *obs_shape)``, ``actions (N, *action_shape)``,
    ``weights (N,)`` (returns after the baseline), ``n_episodes`` and their ``returns`` (undiscounted)."""

    observations: np.ndarray | None = None
    actions: np.ndarray | None = None
    weights: np.ndarray | None = None
    n_episodes: int = 0
    returns: tuple[float, ...] = ()

    def reset(self) -> None:
        self.__init__()


def reinforce_loss(policy: ActorCriticPolicy, observations: torch.Tensor, actions: torch.Tensor,
                   weights: torch.Tensor, n_episodes: int, n_samples: int, ent_coef: float = 0.0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The REINFORCE loss of a (part of a) batch: ``-sum_t w_t log pi(a_t|s_t) / n_episodes`` (the TensorFlow
    Quantum tutorial's loss) minus ``ent_coef`` times the mean entropy over the batch's ``n_samples`` steps.

    Sums, so the losses of the parts of a batch add up to the loss of the batch. Returns ``(loss, policy loss,
    entropy sum)``; ``observations (B, ...)``, ``actions (B, ...)``, ``weights (B,)``.
    """
    _, log_prob, entropy = policy.evaluate_actions(observations, actions)
    if entropy is None:  # no closed form (squashed Gaussian): the sample estimate
        entropy = -log_prob
    policy_loss = -(weights * log_prob).sum() / n_episodes
    entropy_sum = entropy.sum()
    return policy_loss - ent_coef * entropy_sum / n_samples, policy_loss, entropy_sum


class REINFORCE(OnPolicyAlgorithm):
    """REINFORCE (Williams 1992) with a return baseline: one gradient step per batch of complete episodes.

    The algorithm of Jerbi et al. 2021 (https://arxiv.org/abs/2103.05577) and of the TensorFlow Quantum tutorial
    "Parametrized quantum circuits for reinforcement learning": sample ``n_episodes`` episodes with the current
    policy, weight ``log pi(a_t|s_t)`` by the discounted return-to-go after a baseline, and take one optimizer
    step on ``-sum_t w_t log pi(a_t|s_t) / n_episodes``. Episodes end at termination or truncation (no critic
    to bootstrap from). With ``n_envs`` environments each contributes ``ceil(n_episodes / n_envs)`` whole
    episodes per batch; steps an environment takes after its share are not trained on, and every environment is
    reset before the next batch, so the batch is an unbiased sample of episodes (``n_envs=1`` wastes no step).

    Policies: ``"MlpPolicy"`` (:class:`ActorPolicy`), ``"VQCPolicy"`` (:class:`VQCActorPolicy`: softmax-VQC with
    an inverse temperature, or the Born-rule policy), or any ``ActorCriticPolicy`` (its critic is not trained).

    :param policy: the policy class or alias.
    :param env: the environment (Gymnasium id, ``gym.Env`` or ``VecEnv``).
    :param learning_rate: learning rate (or schedule of the remaining progress); ``lr_multipliers`` in
        ``policy_kwargs`` scales it per parameter group.
    :param n_episodes: complete episodes per gradient step.
    :param gamma: discount factor.
    :param baseline: ``"episode"`` (returns standardised within each episode, the tutorial's), ``"batch"``
        (standardised over the batch) or ``"none"``.
    :param ent_coef: entropy bonus coefficient.
    :param max_grad_norm: clip the gradient's norm to this (``None``: no clipping).
    :param batch_size: samples per forward and backward pass; gradients accumulate over the batch (memory only:
        the step is the same for any value).
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: TensorBoard log folder.
    :param policy_kwargs: keyword arguments of the policy.
    :param verbose: 0 silent, 1 training logs.
    :param seed: random seed.
    :param device: torch device (``"cpu"`` suits circuits this small).
    :param _init_setup_model: build the policy now (SB3's ``load`` builds it later).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": ActorPolicy, "VQCPolicy": VQCActorPolicy}
    rollout_buffer: EpisodeBatch  # type: ignore[assignment]

    def __init__(self, policy: str | type[ActorCriticPolicy], env: GymEnv | str, learning_rate: float | Schedule = 0.01,
                 n_episodes: int = 10, gamma: float = 0.99, baseline: str = "episode", ent_coef: float = 0.0,
                 max_grad_norm: float | None = None, batch_size: int = 256, stats_window_size: int = 100,
                 tensorboard_log: str | None = None, policy_kwargs: dict[str, Any] | None = None,
                 verbose: int = 0, seed: int | None = None, device: torch.device | str = "auto",
                 _init_setup_model: bool = True):
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=1, gamma=gamma, gae_lambda=1.0,
                         ent_coef=ent_coef, vf_coef=0.0, max_grad_norm=max_grad_norm, use_sde=False,
                         sde_sample_freq=-1, stats_window_size=stats_window_size, tensorboard_log=tensorboard_log,
                         policy_kwargs=policy_kwargs, verbose=verbose, seed=seed, device=device,
                         _init_setup_model=False, supported_action_spaces=(spaces.Box, spaces.Discrete,
                                                                           spaces.MultiDiscrete, spaces.MultiBinary))
        self.n_episodes, self.baseline, self.batch_size = n_episodes, baseline, batch_size
        self._check()
        if _init_setup_model:
            self._setup_model()

    def _check(self) -> None:
        if self.baseline not in BASELINES:
            raise QRLError(f"unknown baseline {self.baseline!r}; expected one of {', '.join(BASELINES)}")
        if isinstance(self.n_episodes, bool) or not isinstance(self.n_episodes, int) or self.n_episodes < 1:
            raise QRLError(f"n_episodes must be a positive integer; got {self.n_episodes!r}; try n_episodes=10")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise QRLError(f"batch_size must be a positive integer; got {self.batch_size!r}; try batch_size=256")

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.rollout_buffer = EpisodeBatch()
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        **self.policy_kwargs)
        self.policy = self.policy.to(self.device)

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        """SB3's schedule, times each parameter group's ``lr_multiplier``."""
        rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = rate * group.get("lr_multiplier", 1.0)

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer,
                         n_rollout_steps: int) -> bool:
        """Run the policy until every environment has finished its share of ``n_episodes`` episodes, then store
        the batch in ``rollout_buffer`` (an :class:`EpisodeBatch`). ``False`` if a callback stopped training."""
        batch: EpisodeBatch = rollout_buffer  # type: ignore[assignment]
        self.policy.set_training_mode(False)
        share = -(-self.n_episodes // env.num_envs)  # whole episodes from each environment
        current: list[list[tuple[Any, Any, float]]] = [[] for _ in range(env.num_envs)]
        finished: list[list[list[tuple[Any, Any, float]]]] = [[] for _ in range(env.num_envs)]
        callback.on_rollout_start()
        while any(len(done) < share for done in finished):
            with torch.no_grad():
                actions, _, _ = self.policy(obs_as_tensor(self._last_obs, self.device))
            actions = actions.cpu().numpy()
            clipped = actions
            if isinstance(self.action_space, spaces.Box):
                clipped = (self.policy.unscale_action(actions) if self.policy.squash_output
                           else np.clip(actions, self.action_space.low, self.action_space.high))
            new_obs, rewards, dones, infos = env.step(clipped)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            for i in range(env.num_envs):
                if len(finished[i]) < share:
                    current[i].append((self._last_obs[i], actions[i], float(rewards[i])))
                    if dones[i]:
                        finished[i].append(current[i])
                        current[i] = []
            self._last_obs = new_obs
        if env.num_envs > 1:  # the others are in an episode past their share: every environment starts afresh
            self._last_obs = env.reset()
        self._store(batch, [episode for done in finished for episode in done])
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _store(self, batch: EpisodeBatch, episodes: list[list[tuple[Any, Any, float]]]) -> None:
        rewards = [np.array([step[2] for step in episode]) for episode in episodes]
        weights = returns_with_baseline(rewards, self.gamma, self.baseline)
        batch.observations = np.stack([step[0] for episode in episodes for step in episode])
        batch.actions = np.stack([step[1] for episode in episodes for step in episode])
        batch.weights = np.concatenate(weights).astype(np.float32)
        batch.n_episodes = len(episodes)
        batch.returns = tuple(float(r.sum()) for r in rewards)

    def train(self) -> None:
        """One optimizer step on the REINFORCE loss of the stored batch (gradients accumulated in parts of
        ``batch_size`` samples)."""
        batch = self.rollout_buffer
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        n = len(batch.weights)
        self.policy.optimizer.zero_grad()
        policy_loss, entropy_sum = 0.0, 0.0
        for start in range(0, n, self.batch_size):
            part = slice(start, start + self.batch_size)
            obs = obs_as_tensor(batch.observations[part], self.device)
            actions = torch.as_tensor(batch.actions[part], device=self.device)
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            weights = torch.as_tensor(batch.weights[part], device=self.device)
            loss, part_loss, part_entropy = reinforce_loss(self.policy, obs, actions, weights, batch.n_episodes, n,
                                                           self.ent_coef)
            loss.backward()
            policy_loss += part_loss.item()
            entropy_sum += part_entropy.item()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self._n_updates += 1
        self.logger.record("train/policy_loss", policy_loss)
        self.logger.record("train/entropy", entropy_sum / n)
        self.logger.record("train/batch_return", float(np.mean(batch.returns)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())

    def learn(self: SelfREINFORCE, total_timesteps: int, callback: MaybeCallback = None, log_interval: int = 1,
              tb_log_name: str = "REINFORCE", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> SelfREINFORCE:
        """Train for at least ``total_timesteps`` environment steps (the last batch of episodes is completed)."""
        return super().learn(total_timesteps=total_timesteps, callback=callback, log_interval=log_interval,
                             tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                             progress_bar=progress_bar)
