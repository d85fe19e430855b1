"""The ``qrl`` command: train, eval, compare, list, plot, bench, circuit, diagnose, distill.

Bad input is reported as one line, ``qrl: error: ...``, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qrl.errors import QRLError


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="environment id, e.g. CartPole-v1 (see `qrl list`)")
    p.add_argument("--steps", type=int, default=None, help="training timesteps (default: the agent's n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None,
                   help="circuit backend: auto, torch or a PennyLane device such as lightning.qubit")
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter, e.g. --set learning_rate=0.005 "
                        "--set policy_kwargs.n_layers=3 (repeatable)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar (default: when the terminal is interactive)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qrl", description="Reinforcement learning with variational quantum circuit policies.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one agent on one environment; writes runs/<run>/")
    p.add_argument("--agent", required=True, help="agent preset, e.g. ppo-vqc or ppo-mlp (see `qrl list`)")
    _add_train_options(p)

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
    p.add_argument("--envs", type=int, default=1,
                   help="episodes run side by side, one batched circuit call per step (default 1: one after another)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="with a sweep: plot return against the swept value (the table goes to the same name .csv)")
    p.add_argument("--dry-run", action="store_true",
                   help="with a hardware --device (e.g. qiskit.remote@ibm_brisbane, ionq.qpu@aria-1) and --shots: "
                        "print the compiled circuit, depth, two-qubit gates and the cost of evaluating and training "
                        "this run there; nothing is submitted, no credentials needed")

    p = sub.add_parser("compare", help="train several agents on one environment and print a table")
    p.add_argument("--agents", nargs="+", required=True, help="agent presets, e.g. ppo-vqc ppo-mlp")
    _add_train_options(p)

    p = sub.add_parser("distill", help="teach a VQC agent a classical SB3 policy (behaviour cloning, DAgger); "
                                       "writes runs/<run>/")
    p.add_argument("--teacher", required=True,
                   help="the teacher: an SB3 model zip (PPO, A2C, DQN, SAC, TD3) or a run folder holding model.zip")
    p.add_argument("--student", required=True, help="a VQC agent preset, e.g. ppo-vqc (see `qrl list`)")
    p.add_argument("--env", required=True, help="environment id the teacher was trained on, e.g. CartPole-v1")
    p.add_argument("--teacher-algo", default=None, choices=("ppo", "a2c", "dqn", "sac", "td3"),
                   help="the teacher's algorithm (default: read from the zip)")
    p.add_argument("--teacher-vecnormalize", default=None, metavar="PATH",
                   help="the teacher's VecNormalize statistics (default: vecnormalize.pkl next to the zip, or in "
                        "<zip name>/ as rl-zoo3 saves it; 'none': raw observations)")
    p.add_argument("--samples", type=int, default=10_000, help="labelled env steps per round (default 10000)")
    p.add_argument("--noise", type=float, default=0.2,
                   help="probability of a random action at each rollout step, to label states off the teacher's "
                        "path (default 0.2)")
    p.add_argument("--dagger", type=int, default=0,
                   help="DAgger rounds after the first: the student drives, the teacher labels (default 0)")
    p.add_argument("--labels", choices=("hard", "soft"), default="hard",
                   help="discrete actions: the teacher's greedy action, or its action probabilities (PPO/A2C "
                        "teachers; default hard)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs per round (default 20)")
    p.add_argument("--batch-size", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default 0.02)")
    p.add_argument("--box-loss", choices=("mse", "nll"), default="mse",
                   help="Box actions: squared error of the mean, or Gaussian log-likelihood (default mse)")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="then train this many env steps with the student's algorithm and preset (default 0)")
    p.add_argument("--critic-warmup", type=int, default=10_000,
                   help="with --finetune-steps, PPO/A2C students: env steps training the critic alone first "
                        "(default 10000)")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="episodes per evaluation (default: the environment's, 10 for CartPole-v1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="the student's circuit backend: auto, torch or a PennyLane device")
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a student hyperparameter, e.g. --set policy_kwargs.n_layers=3 (repeatable)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="progress bar while fine-tuning (default: when the terminal is interactive)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")

    sub.add_parser("list", help="available agents, environments and devices")

    p = sub.add_parser("plot", help="plot evaluation curves of run folders to a PNG")
    p.add_argument("run_dirs", nargs="+", help="run folders written by `qrl train`")
    p.add_argument("--out", required=True, help="image file to write, e.g. curves.png")
    p.add_argument("--title", default=None)

    p = sub.add_parser("circuit", help="describe a circuit: gates, observables, weight shape, parameter counts")
    p.add_argument("--n-qubits", type=int, default=4, help="qubits (default 4)")
    p.add_argument("--n-layers", type=int, default=5, help="layers (default 5)")
    p.add_argument("--n-inputs", type=int, default=None, help="encoded features (default: one per qubit)")
    p.add_argument("--n-outputs", type=int, default=1, help="readout values (default 1)")
    p.add_argument("--encoding", default="rx", help="rx, ry or rz (default rx)")
    p.add_argument("--ansatz", default="hea", help="hea, strongly_entangling or unentangled (default hea)")
    p.add_argument("--readout", default="z", help="z, zz or parity (default z)")
    p.add_argument("--obs-map", default="arctan", help="arctan, tanh, identity, bounds or basis (default arctan)")
    p.add_argument("--input-scaling", action=argparse.BooleanOptionalAction, default=None,
                   help="trainable input scaling lambda (default: yes, except with --obs-map basis)")
    p.add_argument("--output-scaling", action=argparse.BooleanOptionalAction, default=True,
                   help="trainable output weights (default: yes)")
    p.add_argument("--reuploading", action=argparse.BooleanOptionalAction, default=True,
                   help="encode in every layer (default: yes)")

    p = sub.add_parser("study", help="run (or resume) a study: agents x envs x seeds; writes runs/studies/<name>/")
    p.add_argument("study_file", help="a study YAML file, e.g. agents/studies/cartpole-ppo.yaml")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1; one thread each)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool; ray: one Ray task per run (pip install 'qrl[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster address (ray executor; default: a local instance)")
    p.add_argument("--out", default=None, help="study folder (default runs/studies/<name>/)")

    p = sub.add_parser("report", help="statistics and plots of a study: writes STUDY_DIR/report/report.md")
    p.add_argument("study_dir", help="a folder written by `qrl study`")
    p.add_argument("--out", default=None, help="report folder (default STUDY_DIR/report/)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")

    p = sub.add_parser("bench", help="benchmarks: policy update, end-to-end training, scaling in qubits")
    p.add_argument("what", choices=("policy", "train", "scaling"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 256], help="batch sizes (policy)")
    p.add_argument("--steps", type=int, default=10_000, help="training steps per policy (train)")
    p.add_argument("--env", default="CartPole-v1", help="environment (train)")
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=("ppo", "dqn"),
                   help="algorithms (train; default: ppo dqn)")
    p.add_argument("--qubits", type=int, nargs="+", default=[4, 6, 8, 10, 12, 14, 16], help="qubit counts (scaling)")
    p.add_argument("--batch", type=int, default=8, help="batch size (scaling)")
    p.add_argument("--backends", nargs="+", default=["torch", "lightning.qubit", "default.qubit"],
                   help="backends (scaling); torch:dense and torch:wires time the torch backend's two programs")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per measurement (default 1)")
    p.add_argument("--skip-slow", action="store_true",
                   help="leave out the status-quo Lightning TorchLayer path (policy; it takes minutes at B=256)")
    p.add_argument("--update-auto", action="store_true",
                   help="store the measured fastest backend per size for device='auto' (scaling)")
    p.add_argument("--out", default="runs/bench", help="folder for the JSON result (default runs/bench/)")

    p = sub.add_parser("diagnose", help="diagnostics of circuits at initialisation (gradients: barren plateaus)")
    sub_diag = p.add_subparsers(dest="diagnose_command", required=True)
    p = sub_diag.add_parser(
        "gradients", help="Var[dL/dtheta] over random initialisations per qubit count and depth, its decay rate "
                          "in qubits, and a log-scale plot; with --agent/--env, of an agent's policy loss")
    p.add_argument("--ansatz", default=None, help="hea, strongly_entangling or unentangled (default hea; "
                                                  "with --agent: the preset's)")
    p.add_argument("--qubits", type=int, nargs="+", default=None,
                   help="qubit counts (default 2 4 6 8 10; not with --agent: the environment sets them)")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="circuit depths (default 2 50; with --agent: the preset's n_layers)")
    p.add_argument("--readout", nargs="+", default=None,
                   help="z (cost Z0, local), zz, parity (Z0...Z(n-1), global) (default z parity; with --agent: "
                        "the preset's)")
    p.add_argument("--inputs", default=None,
                   help="encoding input: random (an angle in [-pi/2, pi/2] per qubit and sample, default) or zeros")
    p.add_argument("--samples", type=int, default=None,
                   help="random initialisations per setting (default 200; with --agent: 50 model seeds)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--agent", default=None, help="a PPO/A2C VQC preset, e.g. ppo-vqc: study its policy loss")
    p.add_argument("--env", default=None, help="environment of --agent, e.g. CartPole-v1")
    p.add_argument("--obs", type=int, default=None, help="observations for the policy loss (with --agent; default 64)")
    p.add_argument("--out", default="runs/diagnostics", help="folder for the JSON and PNG (default runs/diagnostics/)")
    p = sub_diag.add_parser("circuit", help="a policy's circuits: drawing, qubits, depth, gate counts, parameters "
                                            "and the hardware cost of one action")
    p.add_argument("target", metavar="AGENT_OR_RUN", help="a run folder (trained weights) or an agent preset such "
                                                          "as ppo-vqc (with --env)")
    p.add_argument("--env", default=None, help="environment of an agent preset, e.g. CartPole-v1")
    p.add_argument("--shots", type=int, default=1024, help="shots per circuit on hardware (default 1024)")
    p.add_argument("--device", default=None, help="also compile each circuit for a hardware device offline, e.g. "
                                                  "qiskit.remote@ibm_brisbane or ionq.qpu@aria-1")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of a preset (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    try:
        return _COMMANDS[args.command](args)
    except QRLError as exc:
        print(f"qrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrl: interrupted", file=sys.stderr)
        return 130


def _resolve(agent: str, args):
    from qrl.config import parse_set, resolve

    return resolve(agent, args.env, seed=args.seed, steps=args.steps, device=args.device,
                   overrides=parse_set(args.overrides))


def _train(config, args) -> Path:
    from qrl.train import train

    return train(config, out=args.out, progress=args.progress, announce=lambda msg: print(msg, file=sys.stderr))


def cmd_train(args) -> int:
    import json

    run_dir = _train(_resolve(args.agent, args), args)
    results = json.loads((run_dir / "results.json").read_text())
    print(f"{run_dir}")
    print(f"final eval return {results['final_eval_mean']:.1f} +- {results['final_eval_std']:.1f}; "
          f"{results['timesteps']} steps in {results['wall_clock_s']:.0f} s ({results['steps_per_s']:.0f} steps/s); "
          f"{results['parameters']['total']} parameters")
    return 0


def cmd_eval(args) -> int:
    from qrl.devices import SweepPoint, dry_run, sweep
    from qrl.train import evaluate_run

    shots, noise = _sweep_values("--shots", [args.shots] if args.shots else []), {}
    for item in args.noise:
        channel, sep, raw = item.partition("=")
        if not sep or not channel.strip():
            raise QRLError(f"malformed --noise {item!r}; expected CHANNEL=P[,P...], e.g. --noise depolarizing=0.01")
        noise[channel.strip()] = _sweep_values(f"--noise {channel.strip()}", [raw], float)
    swept = [k for k, v in {"shots": shots, **noise}.items() if len(v) > 1]
    if len(swept) > 1:
        raise QRLError(f"a sweep varies one quantity; got several values for {' and '.join(swept)}; "
                       f"try one list, e.g. --noise depolarizing=0,0.01,0.03")
    if args.plot and not swept:
        raise QRLError("--plot draws a sweep; expected several values, e.g. --noise depolarizing=0,0.01,0.03")
    run_dir = Path(args.run_dir)
    if args.dry_run:
        if args.device is None or len(shots) != 1 or noise:
            raise QRLError("--dry-run prices one hardware device; expected --device NAME --shots N without --noise; "
                           "try --device qiskit.remote@ibm_brisbane --shots 1024 --dry-run")
        print(dry_run(run_dir, args.device, shots[0], episodes=args.episodes, seed=args.seed))
        return 0
    if swept:
        points = [SweepPoint(shots=s, noise=n) for s, n in _grid(shots, noise)]
        rows = sweep(run_dir, points, device=args.device, episodes=args.episodes, seed=args.seed, n_envs=args.envs,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
        print(_format_sweep(rows, swept[0]))
        if args.plot:
            from qrl.plots import plot_sweep
            from qrl.train import load_run_config

            threshold = load_run_config(run_dir).env_spec.reward_threshold
            print(plot_sweep(rows, swept[0], Path(args.plot), device=args.device, threshold=threshold))
        return 0
    one_shots = shots[0] if shots else None
    one_noise = {k: v[0] for k, v in noise.items()}
    mean, std, config, executions = evaluate_run(run_dir, episodes=args.episodes, device=args.device,
                                                 seed=args.seed, shots=one_shots, noise=one_noise or None,
                                                 n_envs=args.envs)
    where = (f" on {args.device}" if args.device else "") + (f" with {one_shots} shots" if one_shots else "")
    where += "".join(f", {k} {v}" for k, v in one_noise.items())
    print(f"{config.agent} on {config.env}{where}: return {mean:.1f} +- {std:.1f} over {args.episodes} episodes")
    if executions:
        print(f"cost: {executions} circuit executions" + (f", {executions * one_shots} shots" if one_shots else ""))
    return 0


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


def _grid(shots: list, noise: dict[str, list]) -> list[tuple]:
    """One (shots, noise) point per value of the swept quantity (the others are single values)."""
    n = max([len(shots), *map(len, noise.values()), 1])
    return [(shots[i if len(shots) > 1 else 0] if shots else None,
             {k: v[i if len(v) > 1 else 0] for k, v in noise.items()} or None) for i in range(n)]


def _format_sweep(rows, swept: str) -> str:
    lines = [f"| {swept} | return | circuits | shots |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.value:g} | {r.mean:.1f} +- {r.std:.1f} | {r.executions} | "
                     f"{r.executions * r.point.shots if r.point.shots else '-'} |")
    return "\n".join(lines)


def cmd_compare(args) -> int:
    import json

    configs = [_resolve(agent, args) for agent in args.agents]  # validate every agent before training any
    rows = []
    for config in configs:
        run_dir = _train(config, args)
        rows.append(json.loads((run_dir / "results.json").read_text()) | {"run_dir": str(run_dir)})
    print(format_comparison(rows))
    return 0


def cmd_distill(args) -> int:
    import json

    from qrl.config import parse_set, resolve
    from qrl.distill import DistillSettings, check_student, distill, load_teacher

    settings = DistillSettings(samples=args.samples, dagger=args.dagger, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, labels=args.labels, noise=args.noise,
                               box_loss=args.box_loss,
                               finetune_steps=args.finetune_steps, critic_warmup=args.critic_warmup,
                               eval_episodes=args.eval_episodes)
    settings.validate()
    config = resolve(args.student, args.env, seed=args.seed, device=args.device, overrides=parse_set(args.overrides))
    check_student(config)
    teacher = load_teacher(args.teacher, config, algo=args.teacher_algo, vecnormalize=args.teacher_vecnormalize)
    run_dir = distill(config, teacher, settings, out=args.out, progress=args.progress,
                      announce=lambda msg: print(msg, file=sys.stderr, flush=True))
    r = json.loads((run_dir / "results.json").read_text())
    steps = [f"{r['samples']} labelled states"]
    if r["critic_warmup_timesteps"]:
        steps.append(f"{r['critic_warmup_timesteps']} critic warm-up steps")
    steps.append(f"{r['finetune_timesteps']} fine-tuning steps")
    print(run_dir)
    print(f"teacher {r['teacher_eval_mean']:.1f} +- {r['teacher_eval_std']:.1f}, student {r['student_eval_mean']:.1f} "
          f"+- {r['student_eval_std']:.1f} ({r['agent']}, {r['parameters']['total']} parameters); "
          f"{', '.join(steps)}, {r['wall_clock_s']:.0f} s")
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


def cmd_list(args) -> int:
    from qrl.backends.select import installed_devices
    from qrl.config import agent_algo, list_agents, list_envs, load_agent, load_env_spec, resolve
    from qrl.train import preset_parameters

    print("agents (agents/*.yaml), with the trainable parameters of the policy on each environment:")
    for name in list_agents():
        sections = load_agent(name)
        policy = {str(s.get("policy", "MlpPolicy")).rpartition(".")[2] for s in sections.values()}
        counts = []
        for env_id in sections:
            try:
                n = preset_parameters(resolve(name, env_id))
                mixed = n["quantum"] and n["classical"]
                counts.append(f"{env_id} ({n['total']}" + (f", {n['quantum']} in circuits)" if mixed else ")"))
            except QRLError:  # e.g. an environment whose extra is not installed
                counts.append(f"{env_id} (-)")
        print(f"  {name:<16} {agent_algo(name).upper():<4} {', '.join(sorted(policy)):<22} {', '.join(counts)}")
    print("environments (envs/*.yaml):")
    for env_id in list_envs():
        spec = load_env_spec(env_id)
        print(f"  {env_id:<28} threshold {spec.reward_threshold}, budget {spec.budget} steps")
    print("devices:")
    print("  auto           the fastest exact backend for the circuit size (torch for small circuits)")
    print("  torch          the circuit compiled to batched torch statevector ops (exact, autograd)")
    for name in installed_devices():
        print(f"  {name}")
    print("  <device>@<machine>  hardware, with --shots: qiskit.aer@FakeManilaV2 (an IBM snapshot, offline), "
          "qiskit.remote@ibm_brisbane, ionq.qpu@aria-1, braket.aws.qubit@<ARN>; credentials from environment "
          "variables (README: Real hardware)")
    return 0


def cmd_study(args) -> int:
    from qrl.study import run_study

    study_dir = run_study(args.study_file, out=args.out, workers=args.workers, executor=args.executor,
                          address=args.address)
    print(study_dir)
    return 0


def cmd_report(args) -> int:
    from qrl.report import write_report

    print(write_report(Path(args.study_dir), out=args.out, reps=args.reps, seed=args.seed))
    return 0


def cmd_plot(args) -> int:
    from qrl.plots import plot_runs

    print(plot_runs([Path(d) for d in args.run_dirs], Path(args.out), title=args.title))
    return 0


def cmd_circuit(args) -> int:
    from qrl.circuits import CircuitSpec, summary

    spec = CircuitSpec(
        n_qubits=args.n_qubits, n_layers=args.n_layers,
        n_inputs=args.n_inputs if args.n_inputs is not None else args.n_qubits, n_outputs=args.n_outputs,
        encoding=args.encoding, ansatz=args.ansatz, readout=args.readout, obs_map=args.obs_map,
        input_scaling=args.input_scaling, output_scaling=args.output_scaling, data_reuploading=args.reuploading,
    )
    print(summary(spec))
    return 0


def cmd_bench(args) -> int:
    from qrl import bench

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.what == "policy":
        if any(b < 1 for b in args.batches):
            raise QRLError(f"batch sizes must be positive; got {args.batches}")
        result = bench.bench_policy(tuple(args.batches), budget_s=args.budget, include_slow=not args.skip_slow,
                                    log=log)
        table = bench.format_policy(result)
    elif args.what == "train":
        runs = [bench.bench_train(args.env, steps=args.steps, algo=algo, log=log) for algo in args.algos]
        result = {"kind": "train", "env": args.env, "runs": runs}
        table = bench.format_train(runs)
    else:
        if any(n < 1 for n in args.qubits) or args.batch < 1:
            raise QRLError(f"qubit counts and batch must be positive; got {args.qubits} and {args.batch}")
        if args.update_auto and any(":" in b for b in args.backends):
            raise QRLError(f"--update-auto stores device names for device='auto'; got {' '.join(args.backends)}; "
                           f"leave out torch:dense / torch:wires or --update-auto")
        result = bench.bench_scaling(tuple(args.qubits), batch=args.batch, backends=tuple(args.backends),
                                     budget_s=args.budget, log=log)
        table = bench.format_scaling(result)
        if args.update_auto:
            from qrl.backends import select
            from qrl.io import write_json

            write_json(select.CROSSOVERS, {"command": "qrl bench scaling " + " ".join(
                ["--qubits", *map(str, args.qubits), "--batch", str(args.batch), "--backends", *args.backends,
                 "--update-auto"]),
                "batch": args.batch, "fastest": result["fastest"], "machine": bench.machine()})
            select.auto_table.cache_clear()
            table += f"\n\n(device='auto' now follows the 'fastest' column: {select.CROSSOVERS})"
    path = bench.save(result, args.out)
    print(table)
    print(f"\n(written to {path})")
    return 0


def cmd_diagnose_gradients(args) -> int:
    from qrl import diagnostics

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if (args.agent is None) != (args.env is None):
        raise QRLError("--agent and --env go together (the policy loss of an agent on an environment); "
                       f"got only {'--agent' if args.agent else '--env'}; try --agent ppo-vqc --env CartPole-v1")
    if args.agent is not None:
        if args.qubits is not None or args.inputs is not None:
            raise QRLError(f"with --agent the environment sets the qubit count and the inputs; got "
                           f"{'--qubits' if args.qubits is not None else '--inputs'}; try without it")
        result = diagnostics.policy_gradient_study(
            args.agent, args.env, layers=args.layers, readouts=args.readout or [None], ansatz=args.ansatz,
            samples=50 if args.samples is None else args.samples, seed=args.seed,
            n_obs=64 if args.obs is None else args.obs, log=log)
    else:
        if args.obs is not None:
            raise QRLError("--obs sets the observations of the policy loss; expected it with --agent and --env; "
                           "got it without; try --agent ppo-vqc --env CartPole-v1")
        result = diagnostics.circuit_gradient_study(
            args.ansatz or "hea", qubits=args.qubits or [2, 4, 6, 8, 10], layers=args.layers or [2, 50],
            readouts=args.readout or ["z", "parity"], samples=200 if args.samples is None else args.samples,
            seed=args.seed, inputs=args.inputs or "random", log=log)
    json_path, png_path = diagnostics.save(result, args.out)
    print(diagnostics.format_table(result))
    print(f"\n(written to {json_path} and {png_path})")
    return 0


def cmd_diagnose_circuit(args) -> int:
    from qrl.diagnostics import describe_policy

    print(describe_policy(args.target, env=args.env, shots=args.shots, device=args.device, seed=args.seed))
    return 0


def cmd_diagnose(args) -> int:
    return {"gradients": cmd_diagnose_gradients, "circuit": cmd_diagnose_circuit}[args.diagnose_command](args)


_COMMANDS = {"train": cmd_train, "eval": cmd_eval, "compare": cmd_compare, "list": cmd_list, "bench": cmd_bench,
             "plot": cmd_plot, "circuit": cmd_circuit, "study": cmd_study, "report": cmd_report,
             "distill": cmd_distill, "diagnose": cmd_diagnose}


if __name__ == "__main__":
    sys.exit(main())
