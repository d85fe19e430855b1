"""`qrl eval`: parse a run's evaluation flags (shots and noise lists, a sweep, a dry run) and print the result."""

from __future__ import annotations

from pathlib import Path

from qrl.cli.options import add_deprecated_alias, log
from qrl.errors import QRLError
from qrl.runs import VECNORMALIZE, best_checkpoint


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run: mean +- std return")
    p.add_argument("run_dir", help="a run folder written by `qrl train`")
    p.add_argument("--episodes", type=int, default=20, help="episodes (default 20)")
    p.add_argument("--device", default=None, help="run the circuits on another backend")
    p.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's)")
    p.add_argument("--shots", default=None, metavar="N[,N...]",
                   help="estimate every expectation value from N shots (with --device, a PennyLane device); "
                        "several comma-separated counts sweep it")
    p.add_argument("--noise", action="append", default=[], metavar="CHANNEL=P[,P...]",
                   help="noise after every gate, e.g. depolarizing=0.01, amplitude_damping=0.01, readout_bit_flip=0.02 "
                        "(repeatable; with --device default.mixed); several comma-separated strengths sweep it")
    p.add_argument("--n-envs", type=int, default=1, metavar="N",
                   help="episodes run side by side, one batched circuit call per step (default 1: one after another)")
    add_deprecated_alias(p, "--envs", "--n-envs", type=int)
    p.add_argument("--without-normalizer", action="store_true",
                   help="evaluate a run trained with normalize: true whose vecnormalize.pkl is missing, without it "
                        "(its returns are then not the trained policy's; the result says so)")
    p.add_argument("--best", action="store_true",
                   help="evaluate the model of the run's best evaluation during training (kept in best/ with its "
                        "normaliser) instead of the model at the end")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="with a sweep: plot return against the swept value (the table goes to the same name .csv)")
    p.add_argument("--dry-run", action="store_true",
                   help="with a hardware --device (e.g. qiskit.remote@ibm_brisbane, ionq.qpu@aria-1) and --shots: "
                        "print the compiled circuit, depth, two-qubit gates and the cost of evaluating and training "
                        "this run there; nothing is submitted, no credentials needed")
    p.set_defaults(run=run_eval)


def run_eval(args) -> int:
    from qrl.evaluate import dry_run, sweep_points

    shots, noise = _parse_shots_and_noise(args)
    swept, points = sweep_points(shots, noise)  # raises when several quantities have several values
    if args.plot and swept is None:
        raise QRLError("--plot draws a sweep; expected several values, e.g. --noise depolarizing=0,0.01,0.03")
    run_dir = Path(args.run_dir)
    if args.dry_run:
        if args.device is None or len(shots) != 1 or noise:
            raise QRLError("--dry-run prices one hardware device; expected --device NAME --shots N without --noise; "
                           "try --device qiskit.remote@ibm_brisbane --shots 1024 --dry-run")
        if args.best:
            raise QRLError("--dry-run prices the run's circuits, which --best does not change; drop --best")
        print(dry_run(run_dir, args.device, shots[0], episodes=args.episodes, seed=args.seed))
        return 0
    if swept is not None:
        return _run_sweep(args, run_dir, swept, points)
    return _run_one(args, run_dir, shots[0] if shots else None, {k: v[0] for k, v in noise.items()})


def _parse_shots_and_noise(args) -> tuple[list[int], dict[str, list[float]]]:
    shots, noise = _sweep_values("--shots", [args.shots] if args.shots else []), {}
    for item in args.noise:
        channel, sep, raw = item.partition("=")
        if not sep or not channel.strip():
            raise QRLError(f"malformed --noise {item!r}; expected CHANNEL=P[,P...], e.g. --noise depolarizing=0.01")
        noise[channel.strip()] = _sweep_values(f"--noise {channel.strip()}", [raw], float)
    return shots, noise


def _sweep_values(flag: str, raws: list[str], kind=int) -> list:
    values = []
    for raw in raws:
        for part in str(raw).split(","):
            try:
                values.append(kind(part.strip()))
            except ValueError:
                raise QRLError(f"malformed {flag} {raw!r}; expected {'integers' if kind is int else 'numbers'} "
                               f"separated by commas, e.g. {'16,256,1024' if kind is int else '0,0.01,0.03'}") from None
    return values


def _run_sweep(args, run_dir: Path, swept: str, points) -> int:
    from qrl.evaluate import sweep

    rows = sweep(run_dir, points, device=args.device, episodes=args.episodes, seed=args.seed, n_envs=args.n_envs,
                 log=log, best=args.best)
    print(_format_sweep(rows, swept))
    if args.plot:
        from qrl.evaluate import load_run_config
        from qrl.plots import plot_sweep

        threshold = load_run_config(run_dir).env_spec.reward_threshold
        print(plot_sweep(rows, swept, Path(args.plot), device=args.device, threshold=threshold))
    return 0


def _format_sweep(rows, swept: str) -> str:
    lines = [f"| {swept} | return | circuits | shots |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.value:g} | {r.mean:.1f} +- {r.std:.1f} | {r.executions} | "
                     f"{r.executions * r.point.shots if r.point.shots else '-'} |")
    return "\n".join(lines)


def _run_one(args, run_dir: Path, shots: int | None, noise: dict[str, float]) -> int:
    from qrl.evaluate import evaluate_run

    mean, std, config, executions = evaluate_run(run_dir, episodes=args.episodes, device=args.device,
                                                 seed=args.seed, shots=shots, noise=noise or None,
                                                 n_envs=args.n_envs, without_normalizer=args.without_normalizer,
                                                 best=args.best)
    where = (f" on {args.device}" if args.device else "") + (f" with {shots} shots" if shots else "")
    where += "".join(f", {k} {v}" for k, v in noise.items())
    folder, which = run_dir, ""
    if args.best:
        folder, chosen = best_checkpoint(run_dir)
        which = (f" (best model: step {chosen['timesteps']}, chosen by return {chosen['mean_return']:.1f} over "
                 f"{chosen['episodes']} episodes)")
    print(f"{config.agent} on {config.env}{where}{which}: return {mean:.1f} +- {std:.1f} over {args.episodes} episodes")
    if config.normalize and not (folder / VECNORMALIZE).is_file():
        print(f"WARNING: evaluated without the normaliser this run was trained with ({VECNORMALIZE} is missing): "
              f"these returns are not the trained policy's")
    if executions:
        print(f"cost: {executions} circuit executions" + (f", {executions * shots} shots" if shots else ""))
    return 0
