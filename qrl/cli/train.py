"""`qrl train` and `qrl compare`: train agents into run folders and print their results."""

from __future__ import annotations

from pathlib import Path

from qrl.cli.options import add_train_options, log


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train one agent on one environment; writes runs/<run>/")
    p.add_argument("--agent", required=True, help="agent preset, e.g. ppo-vqc or ppo-mlp (see `qrl list`)")
    add_train_options(p)
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from qrl.runs import read_results

    run_dir = _train(_resolve(args.agent, args), args)
    results = read_results(run_dir)
    print(f"{run_dir}")
    print(f"final eval return {results['final_eval_mean']:.1f} +- {results['final_eval_std']:.1f}; "
          f"{results['timesteps']} steps in {results['wall_clock_s']:.0f} s ({results['steps_per_s']:.0f} steps/s); "
          f"{results['parameters']['total']} parameters")
    return 0


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
    print(format_comparison(rows))
    return 0


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
