"""Where a tuning study lives: an Optuna study in SQLite (default) or any SQLAlchemy database, its settings
kept with it, the count of finished trials, and trials whose process died (failed, never counted).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from qrl.errors import QRLError
from qrl.processes import process_alive

COUNTED = ("COMPLETE", "PRUNED")
"""Trial states that count toward ``--trials``; failed trials (errors, killed processes) do not."""
SETTING_KEYS = ("agent", "env", "steps", "seeds", "eval_freq", "eval_episodes", "overrides", "space", "bounds")
"""Settings a resumed study must share with the one that made it (kept as the study's ``qrl`` attribute)."""
STARTUP_TRIALS = 10  # random trials before TPE models the results (Optuna's and rl-zoo3's default)


def optuna_module():
    """Optuna, or a :class:`QRLError` with the install hint (it is an optional dependency)."""
    try:
        import optuna
    except ImportError as exc:
        raise QRLError("qrl tune needs Optuna; try pip install 'qrl[tune]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_storage(folder: Path) -> str:
    """``sqlite:///<out>/<name>.db`` (absolute, so pool workers find the same file)."""
    return f"sqlite:///{Path(str(folder) + '.db').resolve()}"


def check_storage_url(url: str, folder_made: bool = False) -> str:
    """Refuse a storage URL SQLAlchemy cannot use (malformed, unknown database, missing driver, an SQLite
    file in a folder that does not exist, unless ``folder_made``), without connecting or creating anything."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    expected = ("expected an SQLAlchemy URL such as sqlite:///runs/tune/study.db or "
                "postgresql://user:password@host/database")
    try:
        parsed = make_url(url)
        sqlalchemy.create_engine(parsed)  # loads the dialect and its driver; connects only on first use
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError) as exc:
        raise QRLError(f"malformed --storage {url!r}; {expected}; got {type(exc).__name__}: {exc}") from None
    except ImportError as exc:
        raise QRLError(f"--storage {url!r} needs a database driver that is not installed ({exc}); {expected}") \
            from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise QRLError(f"--storage {url!r} is an in-memory database (lost when the command ends); {expected}")
        if not folder_made and not Path(database).parent.resolve().is_dir():
            raise QRLError(f"--storage {url!r}: folder {Path(database).parent} does not exist; expected an SQLite "
                           f"file in an existing folder; try creating it first")
    return url


def make_storage(url: str, attempts: int = 5):
    """An Optuna RDB storage; SQLite waits up to a minute for a lock (workers share the file). Two commands
    creating one new SQLite file at once can collide on Optuna's schema version row (``UNIQUE constraint
    failed: alembic_version``): the loser tries again once the winner has made the schema."""
    import time

    import sqlalchemy

    optuna = optuna_module()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts - 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except sqlalchemy.exc.SQLAlchemyError:
            if not url.startswith("sqlite"):
                raise
            time.sleep(0.2 * (attempt + 1))
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def stored_settings(url: str, name: str) -> dict[str, Any] | None:
    """The settings of study ``name`` in the storage, or ``None`` if there is none (nothing is created
    for an SQLite file that does not exist yet)."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return None
    optuna = optuna_module()
    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        return None
    except Exception as exc:  # a file that is not an Optuna database, a server that refuses, ...
        raise QRLError(f"cannot open --storage {url!r}: {type(exc).__name__}: {exc}; expected an Optuna "
                       f"database; try another --storage or --name") from None
    return _settings_of(study)


def _settings_of(study, wait_s: float = 30.0) -> dict[str, Any] | None:
    """The study's settings; a study that has none yet is being created by another command (Optuna makes the
    study and its attribute in two steps), so wait for them; ``None`` if they never come (a crashed command:
    :func:`create_study` then keeps ours)."""
    deadline = time.monotonic() + wait_s
    while True:
        settings = study.user_attrs.get("qrl")
        if settings is not None or time.monotonic() > deadline:
            return settings
        time.sleep(0.2)  # user_attrs reads the database each time


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed study must share, as JSON stores them."""
    return json.loads(json.dumps({k: settings[k] for k in SETTING_KEYS}))


def make_pruner(name: str, evaluations_per_seed: int):
    """rl-zoo3's median pruner: no pruning in the first 5 trials or the first third of a seed's evaluations."""
    optuna = optuna_module()
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(evaluations_per_seed // 3, 0))


def open_study(settings: dict[str, Any], sampler_seed: int):
    """The study with a TPE sampler (multivariate; ``constant_liar`` so concurrent trials spread out)."""
    optuna = optuna_module()
    sampler = optuna.samplers.TPESampler(n_startup_trials=STARTUP_TRIALS, seed=sampler_seed, multivariate=True,
                                         constant_liar=True)
    pruner = make_pruner(settings["pruner"], settings["evaluations_per_seed"])
    return optuna.load_study(study_name=settings["name"], storage=make_storage(settings["storage"]),
                             sampler=sampler, pruner=pruner)


def create_study(settings: dict[str, Any]):
    """Create the study (or load it) and keep its settings with it."""
    optuna = optuna_module()
    study = optuna.create_study(study_name=settings["name"], storage=make_storage(settings["storage"]),
                                direction="maximize", load_if_exists=True)
    if "qrl" not in study.user_attrs:
        study.set_user_attr("qrl", comparable(settings))
    check_same_settings(settings, study.user_attrs["qrl"])  # another command may have made it meanwhile
    return study


def check_same_settings(settings: dict[str, Any], stored: dict[str, Any]) -> None:
    """Raise unless ``settings`` and the study's stored ones agree on every key of :data:`SETTING_KEYS`."""
    ours = comparable(settings)
    differ = [k for k in SETTING_KEYS if ours.get(k) != stored.get(k)]
    if differ:
        name = settings["name"]
        raise QRLError(f"study {name!r} in {settings['storage']} was made with other settings ({', '.join(differ)} "
                       f"differ); expected the same command to resume it; try --name {name}-2 for a new study")


def states(study) -> dict[int, str]:
    """Each trial's state by number (``COMPLETE``, ``PRUNED``, ``RUNNING``, ``FAIL``, ``WAITING``)."""
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


def is_surplus(study, number: int, trials: int) -> bool:
    """Whether ``trials`` trials that may still count were asked for before trial ``number`` (another
    command sharing the storage got there first)."""
    ahead = [n for n, s in states(study).items() if n < number and s in (*COUNTED, "RUNNING", "WAITING")]
    return len(ahead) >= trials


def fail_stale(study, log, folder: Path | None = None) -> None:
    """Fail the running trials of this host whose process is gone (killed): they are never counted, and the
    trial is run again with new hyperparameters. With ``folder`` (the study's), the files the killed process was
    writing when it died are removed from its trial's folder."""
    from qrl.io import remove_unfinished_writes

    optuna = optuna_module()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") == socket.gethostname() and isinstance(attrs.get("pid"), int) \
                and not process_alive(attrs["pid"], attrs.get("pid_start", "")):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            if folder is not None:
                remove_unfinished_writes(Path(folder) / "trials" / str(trial.number))
            log(f"trial {trial.number}: its process (PID {attrs['pid']}) is gone (killed?); marked failed, "
                f"not counted")


def counts(study, mine: set[str]) -> tuple[int, int]:
    """Trials that count (complete or pruned), and running trials of other commands (not in ``mine``)."""
    done = running = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in COUNTED:
            done += 1
        elif trial.state.name in ("RUNNING", "WAITING") and trial.user_attrs.get("job") not in mine:
            running += 1
    return done, running
