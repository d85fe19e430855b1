"""Distillation (``qrl distill``): a classical SB3 policy taught to a VQC student by behaviour cloning,
optional DAgger rounds and fine-tuning, written as a run folder like ``qrl train``'s."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from qrl import runs
from qrl.config import ALGOS, RunConfig, algo_class, is_vqc_policy, list_agents, load_agent
from qrl.envs import EVAL_SEED_OFFSET, load_frozen_normalizer, make_eval_env, make_vec
from qrl.errors import QRLError
from qrl.io import atomic_write, write_yaml
from qrl.sb3.networks import count_parameters
from qrl.train import EvalLog, build_model, grad_mode_kept, interrupted_by_sigterm, interrupts_deferred, run_results

BOX_LOSSES = ("mse", "nll")
LABELS = ("soft", "hard")
HELDOUT_FRACTION = 0.1  # of every round's samples, kept out of training to measure agreement
_EVAL_BATCH = 1024


# -- settings ----------------------------------------------------------------------------------------


@dataclass
class DistillSettings:
    """How the student is taught (saved in the run's ``results.json`` under ``distill``).

    :param samples: labelled environment steps per round (the teacher's round, then each DAgger round).
    :param dagger: DAgger rounds after the first (0: plain behaviour cloning).
    :param epochs: passes over the (aggregated) data set per round.
    :param batch_size: minibatch size.
    :param lr: Adam learning rate.
    :param labels: ``"soft"`` (the teacher's action probabilities, where it has a distribution over
        discrete actions; otherwise its actions) or ``"hard"`` (its deterministic actions).
    :param random_actions: probability of a uniformly random action at each step of every data rollout
        (teacher and DAgger; the labels stay the teacher's). A good teacher's states lie on a narrow path
        (CartPole: the cart position varies by 0.02), and a student that drifts off it has never been shown
        what to do there (Laskey et al. 2017, DART, https://arxiv.org/abs/1703.09327). Results with and
        without it are in the README. Saved as ``noise`` in run folders made before it was renamed.
    :param box_loss: ``"mse"`` (Gaussian mean) or ``"nll"`` (Gaussian log-likelihood) for Box actions.
    :param finetune_steps: environment steps of fine-tuning with the student's algorithm afterwards.
    :param critic_warmup: before fine-tuning a PPO or A2C student, environment steps in which its algorithm
        trains the critic alone (the cloned actor frozen), so that fine-tuning starts from meaningful
        advantages (BC leaves the critic untrained).
    :param eval_episodes: episodes per evaluation (``None``: the environment spec's).
    """

    samples: int = 10_000
    dagger: int = 0
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.02
    labels: str = "hard"
    random_actions: float = 0.2
    box_loss: str = "mse"
    finetune_steps: int = 0
    critic_warmup: int = 10_000
    eval_episodes: int | None = None

    def validate(self) -> None:
        for name in ("samples", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise QRLError(f"--{name.replace('_', '-')} must be positive; got {getattr(self, name)}")
        for name in ("dagger", "finetune_steps", "critic_warmup"):
            if getattr(self, name) < 0:
                raise QRLError(f"--{name.replace('_', '-')} must be 0 or more; got {getattr(self, name)}")
        if not 0 <= self.random_actions <= 1:
            raise QRLError(f"--random-actions is a probability; got {self.random_actions}; try 0.1")
        if not self.lr > 0:
            raise QRLError(f"--lr must be positive; got {self.lr}")
        if self.labels not in LABELS:
            raise QRLError(f"unknown --labels {self.labels!r}; expected one of {', '.join(LABELS)}")
        if self.box_loss not in BOX_LOSSES:
            raise QRLError(f"unknown --box-loss {self.box_loss!r}; expected one of {', '.join(BOX_LOSSES)}")
        if self.eval_episodes is not None and self.eval_episodes < 1:
            raise QRLError(f"--eval-episodes must be positive; got {self.eval_episodes}")
        if self.samples * HELDOUT_FRACTION < 1:
            raise QRLError(f"--samples {self.samples} leaves no held-out states (a {HELDOUT_FRACTION:.0%} share); "
                           f"try --samples {int(np.ceil(1 / HELDOUT_FRACTION))} or more")


# -- the teacher -------------------------------------------------------------------------------------


@dataclass
class Teacher:
    """A loaded SB3 model with the observation normalisation it was trained with.

    :param model: the SB3 algorithm (its policy acts; nothing of it is trained).
    :param algo: ``"ppo"``, ``"a2c"``, ``"dqn"``, ``"sac"`` or ``"td3"``.
    :param path: the model zip.
    :param vecnormalize: the ``VecNormalize`` file applied to its observations, if any.
    :param env: one evaluation environment (evaluation seeds), wrapped in those statistics if any.
    """

    model: BaseAlgorithm
    algo: str
    path: Path
    vecnormalize: Path | None
    env: VecEnv

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of raw observations ``(n, *obs_shape)``, in the env's units."""
        obs = self.env.normalize_obs(raw_obs) if isinstance(self.env, VecNormalize) else raw_obs
        return self.model.predict(obs, deterministic=True)[0]

    @property
    def has_probabilities(self) -> bool:
        """Whether the teacher has a distribution over discrete actions (PPO, A2C), not only a greedy action."""
        return isinstance(self.model.action_space, spaces.Discrete) and hasattr(self.model.policy, "get_distribution")

    def probabilities(self, raw_obs: np.ndarray) -> np.ndarray:
        """Action probabilities ``(n, n_actions)`` for raw observations ``(n, *obs_shape)``."""
        obs = self.env.normalize_obs(raw_obs) if isinstance(self.env, VecNormalize) else raw_obs
        with torch.no_grad():
            dist = self.model.policy.get_distribution(self.model.policy.obs_to_tensor(obs)[0])
            return dist.distribution.probs.numpy()

    def evaluate(self, episodes: int) -> list[float]:
        """Returns of ``episodes`` deterministic episodes (the same seeds as the student's evaluations)."""
        returns, _ = evaluate_policy(self.model, self.env, n_eval_episodes=episodes, deterministic=True,
                                     return_episode_rewards=True)
        return list(map(float, returns))


def teacher_zip(path: str | Path) -> Path:
    """The model file: ``path`` itself, ``path.zip`` (as SB3's ``load`` accepts) or a run folder's ``model.zip``."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".zip"), path / runs.MODEL):
        if candidate.is_file():
            return candidate
    raise QRLError(f"teacher model {path} does not exist; expected an SB3 model zip, e.g. runs/<run>/model.zip "
                   f"from `qrl train --agent ppo-mlp --env <env>` or rl-zoo3's logs/<algo>/<env>_1/<env>.zip")


def detect_algo(path: Path) -> str:
    """The algorithm that saved an SB3 zip, from the attributes it stored (``data``; nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QRLError(f"{path} is not a model saved by Stable-Baselines3 ({exc}); expected the zip written by "
                       f"model.save(...)") from exc
    keys = set(data)
    if {"target_policy_noise", "policy_delay"} <= keys:
        return "td3"
    if "target_entropy" in keys:
        return "sac"
    if "exploration_rate" in keys:
        return "dqn"
    if {"clip_range", "n_epochs"} <= keys:
        return "ppo"
    if "rollout_buffer_class" in keys or "vf_coef" in keys:
        return "a2c"
    raise QRLError(f"cannot tell which algorithm saved {path}; pass --teacher-algo (one of {', '.join(ALGOS)})")


def find_teacher_vecnormalize(path: Path) -> Path | None:
    """``vecnormalize.pkl`` beside the zip (a ``qrl train`` run folder), in ``<zip stem>/`` (rl-zoo3:
    ``logs/ppo/CartPole-v1_1/CartPole-v1.zip`` and ``.../CartPole-v1/vecnormalize.pkl``) or, for rl-zoo3's
    ``best_model.zip``, the one ``*/vecnormalize.pkl`` of the folder."""
    for candidate in (path.parent / runs.VECNORMALIZE, path.parent / path.stem / runs.VECNORMALIZE):
        if candidate.is_file():
            return candidate
    found = sorted(path.parent.glob("*/vecnormalize.pkl"))
    return found[0] if len(found) == 1 else None


def load_teacher(path: str | Path, config: RunConfig, algo: str | None = None,
                 vecnormalize: str | Path | None = None) -> Teacher:
    """Load and check a teacher for ``config``'s environment.

    :param algo: the algorithm that saved it (default: detected from the zip).
    :param vecnormalize: its ``VecNormalize`` file; ``None``: found next to the zip if there is one;
        ``"none"``: use raw observations even if there is one.
    """
    path = teacher_zip(path)
    if algo is not None and algo not in ALGOS:
        raise QRLError(f"unknown --teacher-algo {algo!r}; expected one of {', '.join(ALGOS)}")
    algo = algo or detect_algo(path)
    try:
        model = algo_class(algo).load(path, device="cpu")
    except Exception as exc:  # SB3 raises anything from KeyError to pickle errors for a wrong class or file
        raise QRLError(f"cannot load teacher {path} as {algo.upper()}: {type(exc).__name__}: {exc}; "
                       f"try --teacher-algo with the algorithm that trained it") from exc
    env = make_vec(config.env_spec, 1, config.seed + EVAL_SEED_OFFSET)
    try:
        _check_spaces(model, env, path, config.env)
    except QRLError:
        env.close()
        raise
    if vecnormalize is None:
        norm_path = find_teacher_vecnormalize(path)
    elif str(vecnormalize).lower() == "none":
        norm_path = None
    else:
        norm_path = Path(vecnormalize)
        if not norm_path.is_file():
            env.close()
            raise QRLError(f"--teacher-vecnormalize {norm_path} does not exist; expected the vecnormalize.pkl saved "
                           f"with the teacher, or 'none' for raw observations")
    if norm_path is not None:
        env = _load_vecnormalize(norm_path, env)
    return Teacher(model=model, algo=algo, path=path, vecnormalize=norm_path, env=env)


def _check_spaces(model: BaseAlgorithm, env: VecEnv, path: Path, env_id: str) -> None:
    for what, theirs, ours in (("observation", model.observation_space, env.observation_space),
                               ("action", model.action_space, env.action_space)):
        if not _same_space(theirs, ours, bounds=what == "action"):
            raise QRLError(f"teacher {path} was trained on {what}s {_describe_space(theirs)} but {env_id} has "
                           f"{_describe_space(ours)}; "
                           f"pass the teacher's environment with --env, or a teacher trained on {env_id}")


def _describe_space(space: spaces.Space) -> str:
    if isinstance(space, spaces.Box):
        return f"Box{space.shape} in [{float(np.min(space.low)):.3g}, {float(np.max(space.high)):.3g}]"
    return str(space)


def _same_space(a: spaces.Space, b: spaces.Space, bounds: bool) -> bool:
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    if isinstance(a, spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    if isinstance(a, spaces.MultiDiscrete):
        return np.array_equal(a.nvec, b.nvec)
    if isinstance(a, spaces.Box) and bounds:
        return np.allclose(a.low, b.low) and np.allclose(a.high, b.high)
    return True


def _load_vecnormalize(path: Path, venv: VecEnv) -> VecNormalize:
    return load_frozen_normalizer(path, venv, lambda reason: (
        f"cannot use {path} as the teacher's VecNormalize statistics: {reason}; pass the right file with "
        f"--teacher-vecnormalize, or --teacher-vecnormalize none"))


# -- the student -------------------------------------------------------------------------------------


def check_student(config: RunConfig) -> None:
    """Refuse a student preset without a circuit, naming the VQC agents that have a section for the env."""
    if is_vqc_policy(config.policy):
        return
    fits = [a for a in list_agents() if a.endswith("-vqc") and config.env in load_agent(a)]
    hint = f"try --student {fits[0]} (VQC agents with a {config.env} section: {', '.join(fits)})" if fits else \
        "pick a VQC agent (see `qrl list`)"
    raise QRLError(f"student {config.agent!r} is not a VQC agent (its policy on {config.env} is {config.policy}); "
                   f"distillation trains a circuit; {hint}")


class BehaviourCloning:
    """The BC loss and greedy action of a student's policy, whatever its algorithm.

    Losses: cross-entropy on the action logits for discrete actions (the policy's distribution for
    PPO/A2C students, the Q-values taken as logits for DQN students), against the teacher's greedy action
    (``-log pi(a_teacher | s)``) or, with ``soft`` (a PPO or A2C teacher), its action probabilities (the
    loss is then ``KL(teacher || student)``); for Box actions the squared error of the Gaussian mean
    (``box_loss="mse"``; the log-std is left for fine-tuning to explore with) or its negative
    log-likelihood (``"nll"``, PPO/A2C only); SAC and TD3 students regress the actor's deterministic
    action onto the teacher's (scaled to ``[-1, 1]``, as SB3 stores them).

    Tensors: ``obs`` ``(B, *obs_shape)`` as the student reads them; ``actions`` ``(B,)`` (Discrete),
    ``(B, k)`` (MultiDiscrete, MultiBinary) or ``(B, action_dim)`` (Box; SAC/TD3: scaled to ``[-1, 1]``);
    with ``soft``, the teacher's probabilities ``(B, n_actions)`` (Discrete).
    """

    def __init__(self, model: BaseAlgorithm, algo: str, box_loss: str, soft: bool = False):
        self.model, self.algo, self.policy, self.soft = model, algo, model.policy, soft
        self.box = isinstance(model.action_space, spaces.Box)
        if box_loss == "nll" and algo in ("sac", "td3"):
            raise QRLError(f"--box-loss nll needs a Gaussian policy (PPO or A2C student); {algo.upper()} students "
                           f"regress the actor's action onto the teacher's; use --box-loss mse")
        self.box_loss = box_loss
        # The part of the policy that acts; critics are left to fine-tuning.
        if algo == "dqn":
            self.trained = self.policy.q_net
        elif algo in ("sac", "td3"):
            self.trained = self.policy.actor
        else:  # PPO, A2C: the BC loss reaches the actor (and, with nll, the log-std) only
            self.trained = self.policy

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.trained.parameters() if p.requires_grad]

    def targets(self, teacher_actions: np.ndarray) -> torch.Tensor:
        """Teacher actions (env units) or probabilities as the loss compares them."""
        if self.soft:
            return torch.as_tensor(np.asarray(teacher_actions), dtype=torch.float32)
        if not self.box:  # Bernoulli (MultiBinary) log-probabilities take float actions
            dtype = torch.float32 if isinstance(self.model.action_space, spaces.MultiBinary) else torch.long
            return torch.as_tensor(np.asarray(teacher_actions), dtype=dtype)
        actions = np.asarray(teacher_actions, dtype=np.float32).reshape(len(teacher_actions), -1)
        if self.algo in ("sac", "td3"):
            actions = self.policy.scale_action(actions)
        return torch.as_tensor(actions, dtype=torch.float32)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``(B,)``; with soft labels ``KL(teacher || student)``."""
        if self.soft:
            log_q = (torch.log_softmax(self.policy.q_net(obs), dim=1) if self.algo == "dqn"
                     else self.policy.get_distribution(obs).distribution.logits)  # normalised log-probabilities
            return (torch.special.xlogy(actions, actions) - actions * log_q).sum(dim=1)
        if self.algo == "dqn":
            return torch.nn.functional.cross_entropy(self.policy.q_net(obs), actions, reduction="none")
        if self.algo in ("sac", "td3"):
            predicted = self.policy.actor(obs, deterministic=True) if self.algo == "sac" else self.policy.actor(obs)
            return ((predicted - actions) ** 2).sum(dim=1)
        dist = self.policy.get_distribution(obs)
        if self.box and self.box_loss == "mse":
            return ((dist.distribution.mean - actions) ** 2).sum(dim=1)
        return -dist.log_prob(actions)

    def accuracy(self, obs: torch.Tensor, actions: torch.Tensor) -> float | None:
        """Share of states where the greedy action equals the teacher's (discrete actions; ``None`` for Box)."""
        if self.box:
            return None
        if self.soft:
            actions = actions.argmax(dim=1)
        predicted = self.policy._predict(obs, deterministic=True).reshape(actions.shape).to(actions.dtype)
        same = predicted == actions
        return float((same if same.dim() == 1 else same.all(dim=1)).float().mean())

    @contextlib.contextmanager
    def frozen_actor(self) -> Iterator[None]:
        """PPO/A2C: everything but the critic is left out of the algorithm's updates (no gradients)."""
        critic = ("mlp_extractor.value_net.", "value_net.", "vf_features_extractor.")
        frozen = [p for name, p in self.policy.named_parameters() if p.requires_grad and not name.startswith(critic)]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def finish(self) -> None:
        """Copy the cloned network into the target network an off-policy algorithm keeps."""
        if self.algo == "dqn":
            self.policy.q_net_target.load_state_dict(self.policy.q_net.state_dict())
        elif self.algo == "td3":
            self.policy.actor_target.load_state_dict(self.policy.actor.state_dict())


# -- data --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Raw observations ``(N, *obs_shape)`` and teacher actions ``(N, *action_shape)``, each round split
    into a training part and a held-out part (``HELDOUT_FRACTION``)."""

    obs: list[np.ndarray] = dataclasses.field(default_factory=list)
    actions: list[np.ndarray] = dataclasses.field(default_factory=list)
    heldout_obs: list[np.ndarray] = dataclasses.field(default_factory=list)
    heldout_actions: list[np.ndarray] = dataclasses.field(default_factory=list)

    def add(self, obs: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> None:
        heldout = np.zeros(len(obs), dtype=bool)
        heldout[rng.permutation(len(obs))[:max(1, round(len(obs) * HELDOUT_FRACTION))]] = True
        self.obs.append(obs[~heldout])
        self.actions.append(actions[~heldout])
        self.heldout_obs.append(obs[heldout])
        self.heldout_actions.append(actions[heldout])

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.obs), np.concatenate(self.actions)

    def heldout(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.heldout_obs), np.concatenate(self.heldout_actions)

    def __len__(self) -> int:
        return sum(map(len, self.obs)) + sum(map(len, self.heldout_obs))


class Rollouts:
    """States visited in a vectorised environment, labelled by the teacher; episodes continue from one
    call to the next."""

    def __init__(self, env: VecEnv, teacher: Teacher, soft: bool, random_actions: float, seed: int):
        self.env, self.teacher, self.soft, self.random_actions = env, teacher, soft, random_actions
        self.env.action_space.seed(seed)
        self.rng = np.random.default_rng(seed)
        self.obs = env.reset()

    def collect(self, n: int, actor: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """At least ``n`` states (whole vector steps) visited by ``actor`` (default: the teacher, greedy)
        and the teacher's labels there: raw observations ``(N, *obs_shape)``, and deterministic actions
        ``(N, *action_shape)`` or, if ``soft``, action probabilities ``(N, n_actions)``."""
        observations, labels = [], []
        while sum(map(len, observations)) < n:
            greedy = self.teacher.act(self.obs)
            observations.append(np.array(self.obs))
            labels.append(self.teacher.probabilities(self.obs) if self.soft else np.array(greedy))
            actions = np.array(greedy if actor is None else actor(self.obs))
            for i in np.flatnonzero(self.rng.random(len(actions)) < self.random_actions):
                actions[i] = self.env.action_space.sample()
            self.obs, _, _, _ = self.env.step(actions)
        return np.concatenate(observations), np.concatenate(labels)


# -- the flow ----------------------------------------------------------------------------------------


def distill(config: RunConfig, teacher: Teacher, settings: DistillSettings, out: str | Path = "runs",
            progress: bool = False, announce: Callable[[str], None] | None = None) -> Path:
    """Teach ``config``'s VQC student the teacher's actions; returns the run folder.

    Flow: teacher rollouts, every state labelled with the teacher's action -> behaviour cloning ->
    optional DAgger rounds (the student drives, the teacher labels the states it visits; Ross et al. 2011,
    https://arxiv.org/abs/1011.0686) -> optional fine-tuning with the student's own algorithm and preset.
    Fine-tuning a PPO or A2C student starts with a critic warm-up (the actor frozen): BC leaves the critic
    untrained, and advantages from an untrained critic pull the cloned policy down in the first updates.

    Observations: the teacher reads raw observations, normalised with its own ``VecNormalize`` statistics
    if it has them; the student reads what its preset's training environment gives it (with
    ``normalize: true``, statistics set from the first round's states and saved with the run). Timesteps
    count environment steps: labelled samples, then the critic warm-up, then fine-tuning. Everything is
    validated and built before the folder is created, so bad input leaves nothing behind.

    :param config: the student, from :func:`qrl.config.resolve` (a VQC agent preset).
    :param teacher: from :func:`load_teacher` for the same environment.
    :param out: folder for the run folder (``{env}__{agent}-distill__{seed}__{time}``).
    :param progress: a progress bar while fine-tuning.
    :param announce: called with one line per stage (each round, some epochs, evaluations).
    """
    say = announce or (lambda msg: None)
    settings.validate()
    check_student(config)
    model, env = build_model(config)
    soft = settings.labels == "soft" and teacher.has_probabilities
    episodes = settings.eval_episodes or config.env_spec.eval_episodes
    run_dir = runs.new_run_dir(Path(out), config.env, f"{config.agent}-distill", config.seed)
    say(f"distilling {teacher.algo.upper()} teacher {teacher.path} into {config.agent} on {config.env}, "
        f"seed {config.seed} -> {run_dir}")
    write_yaml(run_dir / runs.CONFIG, config.to_dict())
    started = time.perf_counter()
    if settings.labels == "soft" and not soft:
        say(f"labels: hard (a {teacher.algo.upper()} teacher on {type(teacher.model.action_space).__name__} actions "
            f"has no action probabilities)")
    teacher_returns = teacher.evaluate(episodes)
    say(f"teacher: return {np.mean(teacher_returns):.1f} +- {np.std(teacher_returns):.1f} over {episodes} episodes")
    eval_env = make_eval_env(config, env)  # shares the student's observation statistics
    lesson = _Lesson(config, model, env, teacher, settings, soft, say)
    lesson.log = _Evaluations(run_dir, started, model, eval_env, episodes)
    with interrupted_by_sigterm(), grad_mode_kept():  # SIGTERM ends the lesson like Ctrl-C: saved, "interrupted"
        lesson.run(run_dir, progress)
    wall = time.perf_counter() - started
    timesteps = lesson.samples + lesson.warmup_steps + lesson.finetune_steps

    with interrupts_deferred():  # an interrupt inside torch's zip writer would surface as a RuntimeError
        atomic_write(run_dir / runs.MODEL, lambda p: model.save(p))
        if isinstance(env, VecNormalize):
            atomic_write(run_dir / runs.VECNORMALIZE, lambda p: env.save(p))
    final = lesson.final_evaluation(timesteps)
    results = run_results(config, model, lesson.status, timesteps, wall, final, lesson.log.rows) | {
        "method": "distill",
        "teacher": {"path": str(teacher.path), "algo": teacher.algo,
                    "vecnormalize": None if teacher.vecnormalize is None else str(teacher.vecnormalize),
                    "policy": type(teacher.model.policy).__name__,
                    "parameters": count_parameters(teacher.model.policy)},
        "teacher_eval_mean": float(np.mean(teacher_returns)),
        "teacher_eval_std": float(np.std(teacher_returns)),
        "student_eval_mean": float(np.mean(final)),
        "student_eval_std": float(np.std(final)),
        "samples": lesson.samples,
        "critic_warmup_timesteps": lesson.warmup_steps,
        "finetune_timesteps": lesson.finetune_steps,
        "distill": dataclasses.asdict(settings) | {"eval_episodes": episodes, "labels": "soft" if soft else "hard"},
        "bc_history": lesson.history,
    }
    runs.write_results(run_dir, results)
    env.close()
    eval_env.close()
    return run_dir


class _Lesson:
    """The teaching of one student: rounds of labelled data and cloning, then the critic warm-up and
    fine-tuning; a Ctrl-C ends it with ``status`` ``"interrupted"`` and what was done so far."""

    def __init__(self, config: RunConfig, model: BaseAlgorithm, env: VecEnv, teacher: Teacher,
                 settings: DistillSettings, soft: bool, say: Callable[[str], None]):
        self.config, self.model, self.env, self.settings, self.say = config, model, env, settings, say
        self.cloner = BehaviourCloning(model, config.algo, settings.box_loss, soft=soft)
        self.rollouts = Rollouts(make_vec(config.env_spec, config.n_envs, config.seed), teacher, soft,
                                 settings.random_actions, config.seed)
        self.rng, self.generator = np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed)
        self.data, self.history = Dataset(), []
        self.log: _Evaluations
        self.status, self.in_warmup, self.warmup_steps, self.finetune_steps = "finished", False, 0, 0

    @property
    def samples(self) -> int:
        return len(self.data)

    def run(self, run_dir: Path, progress: bool) -> None:
        try:
            for round_ in range(1, self.settings.dagger + 2):
                self.round(round_)
            self.finetune(run_dir, progress)
        except KeyboardInterrupt:
            self.status = "interrupted"
        self.rollouts.env.close()
        if self.in_warmup:  # interrupted there
            self.warmup_steps = int(self.model.num_timesteps)
        self.finetune_steps = 0 if self.in_warmup else int(self.model.num_timesteps)  # learn() starts from 0

    def round(self, round_: int) -> None:
        """One round: label ``samples`` states (the teacher's rollouts, then the student's), clone, evaluate."""
        settings, env, say = self.settings, self.env, self.say
        if round_ == 1:
            obs, labels = self.rollouts.collect(settings.samples)
            if isinstance(env, VecNormalize) and env.norm_obs:
                env.obs_rms.update(obs)  # the student's inputs, standardised over these states
            self.data.add(obs, labels, self.rng)
            self.history.append(_heldout_metrics(self.cloner, env, *self.data.heldout(), round_=0, epoch=0))
            say(_describe(self.history[-1], settings))
        else:
            self.data.add(*self.rollouts.collect(settings.samples, actor=_student_actor(self.model, env)), self.rng)
        say(f"round {round_}/{settings.dagger + 1}: {len(self.data)} labelled states "
            f"(this round: {'teacher' if round_ == 1 else 'student'} rollouts)")
        self.history += _clone(self.cloner, env, self.data, settings, self.generator, round_, say)
        self.cloner.finish()
        returns = self.log.evaluate(len(self.data))
        say(f"student after round {round_}: return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

    def finetune(self, run_dir: Path, progress: bool) -> None:
        """The critic warm-up (PPO/A2C), then fine-tuning with the student's algorithm."""
        settings, config, model = self.settings, self.config, self.model
        if settings.finetune_steps and settings.critic_warmup and config.algo in ("ppo", "a2c"):
            self.say(f"critic warm-up: {config.algo.upper()} trains the critic alone for {settings.critic_warmup} "
                     f"steps")
            model.tensorboard_log = str(run_dir / runs.TENSORBOARD)
            self.in_warmup = True
            with self.cloner.frozen_actor():
                model.learn(settings.critic_warmup, progress_bar=progress, tb_log_name=runs.TENSORBOARD)
            self.warmup_steps, self.in_warmup = int(model.num_timesteps), False
        if settings.finetune_steps:
            self.say(f"fine-tuning with {config.algo.upper()} for {settings.finetune_steps} steps")
            model.tensorboard_log = str(run_dir / runs.TENSORBOARD)
            evaluator = self.log.during_finetuning(offset=len(self.data) + self.warmup_steps,
                                                   freq=max(config.env_spec.eval_freq // config.n_envs, 1))
            model.learn(settings.finetune_steps, callback=evaluator, progress_bar=progress,
                        tb_log_name=runs.TENSORBOARD)

    def final_evaluation(self, timesteps: int) -> list[float]:
        """Returns of the final model (saved with the episodes of every evaluation to evaluations.npz)."""
        log = self.log
        if log.episodes and log.episodes[-1][0] == timesteps and not self.warmup_steps + self.finetune_steps:
            final = log.episodes[-1][1]  # the last round's evaluation is of the final model
        else:  # as `qrl train`: a separate final evaluation, a row of its own unless one has these timesteps
            final = log.evaluate(timesteps, record=not log.episodes or log.episodes[-1][0] != timesteps)
        log.save_npz()
        return final


def _student_actor(model: BaseAlgorithm, env: VecEnv) -> Callable[[np.ndarray], np.ndarray]:
    """The student's deterministic actions for raw observations (DAgger rounds)."""

    def act(raw_obs: np.ndarray) -> np.ndarray:
        obs = env.normalize_obs(raw_obs) if isinstance(env, VecNormalize) else raw_obs
        return model.predict(obs, deterministic=True)[0]

    return act


def _student_obs(env: VecEnv, policy, raw_obs: np.ndarray) -> torch.Tensor:
    """Raw observations ``(n, *obs_shape)`` as the student's policy reads them (normalised if its env is)."""
    obs = env.normalize_obs(raw_obs) if isinstance(env, VecNormalize) else raw_obs
    return policy.obs_to_tensor(obs)[0]


def _heldout_metrics(cloner: BehaviourCloning, env: VecEnv, obs: np.ndarray, labels: np.ndarray, *,
                     round_: int, epoch: int, train_loss: float | None = None) -> dict[str, Any]:
    """Held-out BC loss and accuracy, evaluated in batches without gradients."""
    losses, correct = [], []
    cloner.policy.set_training_mode(False)
    with torch.no_grad():
        for i in range(0, len(obs), _EVAL_BATCH):
            x = _student_obs(env, cloner.policy, obs[i:i + _EVAL_BATCH])
            y = cloner.targets(labels[i:i + _EVAL_BATCH])
            losses.append(cloner.loss(x, y))
            acc = cloner.accuracy(x, y)
            if acc is not None:
                correct.append(acc * len(y))
    return {"round": round_, "epoch": epoch, "train_loss": train_loss,
            "heldout_loss": float(torch.cat(losses).mean()),
            "heldout_accuracy": float(sum(correct) / len(obs)) if correct else None}


def _clone(cloner: BehaviourCloning, env: VecEnv, data: Dataset, settings: DistillSettings,
           generator: torch.Generator, round_: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """``settings.epochs`` epochs of Adam on the aggregated data; one history row per epoch."""
    obs, labels = data.train()
    heldout = data.heldout()
    x, y = _student_obs(env, cloner.policy, obs), cloner.targets(labels)
    optimizer = torch.optim.Adam(cloner.parameters(), lr=settings.lr)
    history = []
    report_every = max(settings.epochs // 5, 1)
    for epoch in range(1, settings.epochs + 1):
        cloner.policy.set_training_mode(True)
        total = 0.0
        for idx in torch.randperm(len(x), generator=generator).split(settings.batch_size):
            loss = cloner.loss(x[idx], y[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        history.append(_heldout_metrics(cloner, env, *heldout, round_=round_, epoch=epoch,
                                        train_loss=total / len(x)))
        if epoch % report_every == 0 or epoch == settings.epochs:
            say(_describe(history[-1], settings))
    cloner.policy.set_training_mode(False)
    return history


def _describe(row: dict[str, Any], settings: DistillSettings) -> str:
    where = "before training" if row["epoch"] == 0 else f"round {row['round']} epoch {row['epoch']}/{settings.epochs}"
    train = "" if row["train_loss"] is None else f"train loss {row['train_loss']:.4f}, "
    acc = "" if row["heldout_accuracy"] is None else f", held-out accuracy {row['heldout_accuracy']:.3f}"
    return f"bc {where}: {train}held-out loss {row['heldout_loss']:.4f}{acc}"


class _Evaluations(EvalLog):
    """The student's evaluations: after each round, every ``freq`` steps of fine-tuning (as its callback)
    and at the end. Each is a row of ``evaluations.csv`` and, episode by episode, of ``evaluations.npz``;
    timesteps count the labelled samples, then fine-tuning steps."""

    def __init__(self, run_dir: Path, started: float, student: BaseAlgorithm, env: VecEnv, episodes: int):
        super().__init__(run_dir, started)
        self.student, self.env, self.n_episodes = student, env, episodes
        self.episodes: list[tuple[int, list[float], list[int]]] = []
        self.offset, self.freq = 0, 1

    def evaluate(self, timesteps: int, record: bool = True) -> list[float]:
        """Returns of ``n_episodes`` deterministic episodes, recorded at ``timesteps``."""
        returns, lengths = evaluate_policy(self.student, self.env, n_eval_episodes=self.n_episodes, deterministic=True,
                                           return_episode_rewards=True)
        returns = list(map(float, returns))
        if record:
            self.episodes.append((timesteps, returns, list(map(int, lengths))))
            self.add(timesteps, returns)
        return returns

    def during_finetuning(self, offset: int, freq: int) -> _Evaluations:
        """Evaluate every ``freq`` callback calls, at ``offset`` + the algorithm's timesteps."""
        self.offset, self.freq = offset, freq
        return self

    def _on_step(self) -> bool:
        if self.n_calls % self.freq == 0:
            self.evaluate(self.offset + self.num_timesteps)
        return True

    def save_npz(self) -> None:
        """Every recorded evaluation's episodes to ``evaluations.npz`` (SB3's ``EvalCallback`` layout)."""
        runs.write_evaluation_episodes(self.run_dir, [e[0] for e in self.episodes], [e[1] for e in self.episodes],
                                       [e[2] for e in self.episodes])
