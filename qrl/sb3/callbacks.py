"""Training callbacks a preset can name with rl-zoo3's ``callback:`` key (qrl and rl-zoo3 both build them)."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from qrl.errors import QRLError


class FreezeNormalization(BaseCallback):
    """Stop updating the ``VecNormalize`` statistics (observations and returns) once ``after_steps`` steps are done.

    A policy reading normalised observations sees its inputs move while the statistics move: once a CartPole
    agent balances, its observations' spread shrinks and the same state maps to larger circuit angles, so a
    solved policy drifts (README, "Agents that stay solved"). Frozen statistics keep its inputs where they were
    learned. The frozen state is saved with the normaliser, so a resumed run stays frozen. Without a normaliser
    it does nothing.
    """

    def __init__(self, after_steps: int, verbose: int = 0):
        if isinstance(after_steps, bool) or not isinstance(after_steps, int) or after_steps < 0:
            raise QRLError(f"FreezeNormalization: expected after_steps, an integer >= 0; got {after_steps!r}; "
                           f"try after_steps: 30000")
        super().__init__(verbose)
        self.after_steps = after_steps

    def _on_step(self) -> bool:
        norm = self.model.get_vec_normalize_env()
        if norm is not None and norm.training and self.num_timesteps >= self.after_steps:
            norm.training = False
            if self.verbose:
                print(f"FreezeNormalization: normaliser statistics frozen at step {self.num_timesteps}")
        return True


class SettleWhenSolved(BaseCallback):
    """Once the agent's recent training episodes average at least ``threshold``, scale the learning rate by
    ``lr_factor`` and freeze the ``VecNormalize`` statistics, for the rest of the run.

    PPO keeps taking full steps after a task is solved, so a solved CartPole agent can drift off again (README,
    "Agents that stay solved"); freezing the normaliser at a fixed step helped on some seeds and hurt on others,
    because seeds solve at different steps. This waits for each run's own solve. The signal is the mean return of
    the last ``episodes`` finished training episodes (SB3's ``Monitor`` buffer: raw returns of the stochastic
    policy, no extra evaluation). Triggers once; ``lr_factor=0`` stops learning (early stopping that keeps the
    run's length). SB3 rebuilds the schedule when it loads a model, so a resumed run settles again once its new
    episodes average the threshold (its normaliser stays frozen: that is saved with it).
    """

    def __init__(self, threshold: float, lr_factor: float = 0.1, episodes: int = 20, freeze_normalization: bool = True,
                 verbose: int = 0):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise QRLError(f"SettleWhenSolved: expected threshold, a number (a return); got {threshold!r}; "
                           f"try threshold: 475")
        if isinstance(lr_factor, bool) or not isinstance(lr_factor, (int, float)) or not 0 <= lr_factor <= 1:
            raise QRLError(f"SettleWhenSolved: expected lr_factor, a number in [0, 1]; got {lr_factor!r}; "
                           f"try lr_factor: 0.1")
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise QRLError(f"SettleWhenSolved: expected episodes, an integer >= 1; got {episodes!r}; try episodes: 20")
        super().__init__(verbose)
        self.threshold, self.lr_factor, self.episodes = float(threshold), float(lr_factor), episodes
        self.freeze_normalization = bool(freeze_normalization)
        self.settled_at: int | None = None

    def _on_step(self) -> bool:
        if self.settled_at is not None:
            return True
        buffer = self.model.ep_info_buffer
        if buffer is None or len(buffer) < self.episodes:
            return True
        recent = [info["r"] for info in list(buffer)[-self.episodes:]]
        if sum(recent) / len(recent) >= self.threshold:
            self._settle()
        return True

    def _settle(self) -> None:
        self.settled_at = self.num_timesteps
        schedule, factor = self.model.lr_schedule, self.lr_factor
        self.model.lr_schedule = _ScaledSchedule(schedule, factor)
        norm = self.model.get_vec_normalize_env()
        if self.freeze_normalization and norm is not None:
            norm.training = False
        if self.verbose:
            print(f"SettleWhenSolved: solved at step {self.num_timesteps}; learning rate x{factor:g}"
                  f"{', normaliser frozen' if self.freeze_normalization and norm is not None else ''}")


class AnnealEntropy(BaseCallback):
    """Anneal the entropy bonus ``ent_coef`` of PPO, A2C or REINFORCE linearly to ``final`` by ``end_fraction`` of
    the run's steps (then hold it there).

    A large bonus early keeps a policy from committing before its critic and the rest of its policy are
    learned; the same bonus at the end keeps the policy soft, and what is best next to a soft policy can differ
    from what is best next to a sharp one (README, FrozenLake-v1). SB3 takes ``ent_coef`` as a number only; this
    sets ``model.ent_coef`` before each update. The line runs from the value at the start of ``learn`` (the
    preset's ``ent_coef``) to ``final`` at step ``end_fraction * total``: a resumed run starts from its saved
    coefficient on the same line, so it continues where it stopped.
    """

    def __init__(self, final: float = 0.0, end_fraction: float = 1.0, verbose: int = 0):
        if isinstance(final, bool) or not isinstance(final, (int, float)) or not 0 <= final < float("inf"):
            raise QRLError(f"AnnealEntropy: expected final, a number >= 0 (the last entropy coefficient); got "
                           f"{final!r}; try final: 0.0")
        if isinstance(end_fraction, bool) or not isinstance(end_fraction, (int, float)) or not 0 < end_fraction <= 1:
            raise QRLError(f"AnnealEntropy: expected end_fraction, a number in (0, 1] (the fraction of the run's steps "
                           f"at which the coefficient reaches final); got {end_fraction!r}; try end_fraction: 1.0")
        super().__init__(verbose)
        self.final, self.end_fraction = float(final), float(end_fraction)
        self.start: tuple[int, float] | None = None
        self.end_step = 0

    def check_model(self, model) -> None:
        """Refuse an algorithm without a numeric entropy coefficient (before any run folder exists)."""
        coef = getattr(model, "ent_coef", None)
        if isinstance(coef, bool) or not isinstance(coef, (int, float)):
            raise QRLError(f"AnnealEntropy: {type(model).__name__} has no numeric ent_coef (got {coef!r}); it anneals "
                           f"the entropy bonus of PPO, A2C and REINFORCE; try removing the callback")

    def _on_training_start(self) -> None:
        self.check_model(self.model)
        self.start = (int(self.model.num_timesteps), float(self.model.ent_coef))
        self.end_step = round(self.end_fraction * self.locals["total_timesteps"])
        self._set(self.model.num_timesteps)

    def _on_rollout_end(self) -> None:
        self._set(self.model.num_timesteps)

    def _set(self, step: int) -> None:
        step0, coef0 = self.start
        if step >= self.end_step or self.end_step <= step0:
            self.model.ent_coef = self.final
        else:
            self.model.ent_coef = coef0 + (self.final - coef0) * (step - step0) / (self.end_step - step0)

    def _on_step(self) -> bool:
        return True


class _ScaledSchedule:
    """A learning-rate schedule times a factor (a class, not a lambda, so SB3 can save the model)."""

    def __init__(self, schedule, factor: float):
        self.schedule, self.factor = schedule, factor

    def __call__(self, progress_remaining: float) -> float:
        return self.factor * self.schedule(progress_remaining)


CALLBACKS = {cls.__name__: cls for cls in (FreezeNormalization, SettleWhenSolved, AnnealEntropy)}
"""The classes a preset may name, by class name (``qrl.sb3.callbacks.<name>``)."""
