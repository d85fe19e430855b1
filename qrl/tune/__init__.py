"""Hyperparameter tuning with Optuna (`qrl tune`): search spaces per algorithm, a multi-seed objective,
resumable studies in SQLite or any SQLAlchemy database, and the best result as an rl-zoo3 preset."""

from qrl.tune.objective import TUNING_SEED_BASE, normalised_auc, tuning_seeds
from qrl.tune.runner import TuneRequest, prepare, run_tune
from qrl.tune.space import SPACES, default_space, resolve_space

__all__ = ["SPACES", "TUNING_SEED_BASE", "TuneRequest", "default_space", "normalised_auc", "prepare",
           "resolve_space", "run_tune", "tuning_seeds"]
