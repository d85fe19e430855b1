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


CALLBACKS = {cls.__name__: cls for cls in (FreezeNormalization,)}
"""The classes a preset may name, by class name (``qrl.sb3.callbacks.<name>``)."""
