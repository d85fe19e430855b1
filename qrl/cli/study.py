"""`qrl study` and `qrl report`: run a study file's grid of runs, and write its statistics report."""

from __future__ import annotations

from pathlib import Path


def add_study(sub) -> None:
    p = sub.add_parser("study", help="run (or resume) a study: agents x envs x seeds (agents with a `tune` budget "
                                      "are tuned first); writes runs/studies/<name>/")
    p.add_argument("study_file", help="a study YAML file, e.g. agents/studies/cartpole-ppo.yaml")
    p.add_argument("--workers", type=int, default=1,
                   help="runs (and tuning trials) at a time (default 1; one thread each)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool; ray: one Ray task per run (pip install 'qrl[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster address (ray executor; default: a local instance)")
    p.add_argument("--out", default=None, help="study folder (default runs/studies/<name>/)")
    p.set_defaults(run=run_study)


def run_study(args) -> int:
    from qrl.study import run_study as run

    print(run(args.study_file, out=args.out, workers=args.workers, executor=args.executor, address=args.address))
    return 0


def add_report(sub) -> None:
    p = sub.add_parser("report", help="statistics and plots of a study: writes STUDY_DIR/report/report.md")
    p.add_argument("study_dir", help="a folder written by `qrl study`")
    p.add_argument("--out", default=None, help="report folder (default STUDY_DIR/report/)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(run=run_report)


def run_report(args) -> int:
    from qrl.report import write_report

    print(write_report(Path(args.study_dir), out=args.out, reps=args.reps, seed=args.seed))
    return 0
