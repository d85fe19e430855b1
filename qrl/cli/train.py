"""`qrl train` and `qrl compare`: train agents into run folders and print their results."""

from __future__ import annotations

from pathlib import Path

from qrl.cli.options import add_train_options, log
from qrl.errors import QRLError


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train one agent on one environment; writes runs/<run>/")
    p.add_argument("--agent", help="agent preset, e.g. ppo-vqc or ppo-mlp (see `qrl list`), or a preset file's "
                        "path such as runs/tune/ppo-vqc__CartPole-v1/ppo-vqc-tuned.yaml (algorithm from its name); "
                        "required unless --resume")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue an interrupted or killed run folder from its checkpoint to its step count")
    add_train_options(p, env_required=False)
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from qrl.runs import read_results

    if args.resume is not None:
        if args.agent or args.env:
            raise QRLError("--resume continues a run as it was configured; expected no --agent or --env with it; "
                           f"try qrl train --resume {args.resume}")
        from qrl.train import resume

        run_dir = resume(Path(args.resume), progress=args.progress, announce=log)
    else:
        if not args.agent or not args.env:
            missing = "--agent" if not args.agent else "--env"
            raise QRLError(f"expected --agent and --env (or --resume RUN); got no {missing}; "
                           f"try qrl train --agent ppo-vqc --env CartPole-v1")
        run_dir = _train(_resolve(args.agent, args), args)
    results = read_results(run_dir)
    print(f"{run_dir}")
    print(f"final eval return {results['final_eval_mean']:.1f} +- {results['final_eval_std']:.1f}; "
          f"{results['timesteps']} steps in {results['wall_clock_s']:.0f} s ({results['steps_per_s']:.0f} steps/s); "
          f"{results['parameters']['total']} parameters")
    return _interrupted(run_dir, results)


def _interrupted(run_dir: Path, results: dict) -> int:
    """0 for a finished run; for an interrupted one a line saying how to continue it, and 130."""
    if results["status"] == "finished":
        return 0
    log(f"qrl: training was interrupted at step {results['timesteps']}; the model so far is saved; "
        f"continue with: qrl train --resume {run_dir}")
    return 130


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="train several agents on one environment and print a table")
    p.add_argument("--agents", nargs="+", required=True, help="agent presets, e.g. ppo-vqc ppo-mlp")
    add_train_options(p)
    p.set_defaults(run=run_compare)


def run_compare(args) -> int:
    from qrl.runs import read_results

    configs = [_resolve(agent, args) for agent in args.agents]  # validate every agent before training any
    rows = []
    for config in configs:
        run_dir = _train(config, args)
        rows.append(read_results(run_dir) | {"run_dir": str(run_dir)})
        if rows[-1]["status"] != "finished":  # the agents after it are not trained
            break
    print(format_comparison(rows))
    return _interrupted(Path(rows[-1]["run_dir"]), rows[-1])


def format_comparison(rows: list[dict]) -> str:
    """A markdown table of run results (one row per run)."""
    head = ("| agent | params (quantum) | final return | best eval | steps | wall-clock | steps/s |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        p = r["parameters"]
        best = "-" if r["best_eval_mean"] is None else f"{r['best_eval_mean']:.1f}"
        lines.append(f"| {r['agent']} | {p['total']} ({p['quantum']}) | {r['final_eval_mean']:.1f} +- "
                     f"{r['final_eval_std']:.1f} | {best} | {r['timesteps']} | {r['wall_clock_s']:.0f} s | "
                     f"{r['steps_per_s']:.0f} |")
    return "\n".join(lines)


def _resolve(agent: str, args):
    from qrl.config import parse_set, resolve

    return resolve(agent, args.env, seed=args.seed, steps=args.steps, device=args.device,
                   overrides=parse_set(args.overrides))


def _train(config, args) -> Path:
    from qrl.train import train

    return train(config, out=args.out, progress=args.progress, announce=log)
