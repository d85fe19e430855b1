"""`qrl tune`: tune an agent's hyperparameters on one environment with Optuna; prints the summary."""

from __future__ import annotations

from pathlib import Path

from qrl.cli.options import add_set, log
from qrl.errors import QRLError


def add_tune(sub) -> None:
    p = sub.add_parser("tune", help="tune an agent's hyperparameters with Optuna; writes a preset and a summary")
    p.add_argument("--agent", required=True, help="agent preset to tune, e.g. ppo-vqc (see `qrl list`)")
    p.add_argument("--env", required=True, help="environment id, e.g. CartPole-v1")
    p.add_argument("--trials", type=int, required=True,
                   help="trials the study ends with (complete or pruned; failed ones are not counted)")
    p.add_argument("--steps", type=int, default=None, help="training steps per seed (default: the agent's)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per trial (default 3): tuning seeds 100000, 100001, ...; the objective is their mean")
    p.add_argument("--workers", type=int, default=1, help="trials at a time on this machine (default 1)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL of the Optuna storage (default sqlite:///<out>/<name>.db)")
    p.add_argument("--name", default=None, help="study name (default <agent>__<env>)")
    p.add_argument("--out", default="runs/tune", help="folder for <name>/ and <name>.db (default runs/tune)")
    p.add_argument("--preset", default=None,
                   help="where to write the best preset (default <out>/<name>/<agent>-tuned.yaml)")
    p.add_argument("--space", action="append", default=[], metavar="KEY=SPEC",
                   help="change a search-space key: a list [a, b], float:LOW:HIGH[:log], int:LOW:HIGH[:log], a "
                        "fixed value, or preset (not searched) (repeatable)")
    p.add_argument("--space-file", default=None, help="a YAML mapping of search-space keys to SPECs")
    p.add_argument("--search", default=None, metavar="KEYS",
                   help="search only these comma-separated keys; the others keep the preset's values")
    add_set(p, "fix a hyperparameter for every trial, as qrl train --set (repeatable)")
    p.add_argument("--eval-freq", type=int, default=None, help="steps between evaluations (default: the env's)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (default: the env's)")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="median: stop a trial whose running score is below the median of earlier trials")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--device", default=None, help="circuit backend, as qrl train --device")
    p.set_defaults(run=run_tune)


def _space(args) -> dict:
    import yaml

    from qrl.tune.space import parse_space_items

    space = {}
    if args.space_file is not None:
        path = Path(args.space_file)
        try:
            space = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise QRLError(f"cannot read --space-file {path}: {exc}") from None
        if not isinstance(space, dict):
            raise QRLError(f"--space-file {path}: expected a mapping of search-space keys to specs; got "
                           f"{type(space).__name__}")
    return {**space, **parse_space_items(args.space)}


def request_from_args(args):
    """The :class:`qrl.tune.TuneRequest` of parsed `qrl tune` flags (``qrl.tune.prepare`` validates it)."""
    from qrl.config import parse_set
    from qrl.tune import TuneRequest

    search = [k.strip() for k in args.search.split(",") if k.strip()] if args.search else None
    return TuneRequest(agent=args.agent, env=args.env, trials=args.trials, steps=args.steps, seeds=args.seeds,
                       workers=args.workers, storage=args.storage, name=args.name, out=args.out, preset=args.preset,
                       space=_space(args), search=search, overrides=parse_set(args.overrides),
                       eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, pruner=args.pruner,
                       seed=args.seed, device=args.device)


def run_tune(args) -> int:
    from qrl.tune import run_tune as run

    print(run(request_from_args(args), log=log), end="")
    return 0
