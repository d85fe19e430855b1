"""`qrl bench policy|train|scaling|calls|circuits`: each benchmark's own flags, its table and the JSON it writes."""

from __future__ import annotations

import argparse
import math

from qrl.circuits import ANSATZE
from qrl.cli.options import log
from qrl.errors import QRLError


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: policy update, end-to-end training, scaling in qubits, "
                                     "rollout-sized calls' cost model, users' circuits")
    what = p.add_subparsers(dest="what", required=True)
    for add in (_add_policy, _add_train, _add_scaling, _add_calls, _add_circuits):
        add(what)


def _seconds(text: str) -> float:
    """A ``--budget``: 0 (the minimum repeats only) or more seconds; negative and NaN are refused."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"--budget is seconds of repeats per measurement; expected a number >= 0; "
                                         f"got {text}; try --budget 1")
    return value


def _add_common(p: argparse.ArgumentParser, budget: bool) -> None:
    if budget:
        p.add_argument("--budget", type=_seconds, default=1.0, help="seconds of repeats per measurement (default 1)")
    p.add_argument("--out", default="runs/bench", help="folder for the JSON result (default runs/bench/)")


def _add_policy(what) -> None:
    p = what.add_parser("policy", help="policy update and rollout times per path and batch size")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 256], help="batch sizes (default 1 8 64 256)")
    p.add_argument("--skip-slow", action="store_true",
                   help="leave out the status-quo Lightning TorchLayer path (it takes minutes at B=256)")
    _add_common(p, budget=True)
    p.set_defaults(run=run_policy)


def run_policy(args) -> int:
    from qrl import bench

    if any(b < 1 for b in args.batches):
        raise QRLError(f"batch sizes must be positive; got {args.batches}")
    result = bench.bench_policy(tuple(args.batches), budget_s=args.budget, include_slow=not args.skip_slow, log=log)
    return _finish(result, bench.format_policy(result), args.out)


def _add_train(what) -> None:
    p = what.add_parser("train", help="end-to-end training steps/s, VQC vs MLP policy")
    p.add_argument("--steps", type=int, default=10_000, help="training steps per policy (default 10000)")
    p.add_argument("--env", default="CartPole-v1", help="environment (default CartPole-v1)")
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=("ppo", "dqn"),
                   help="algorithms (default: ppo dqn)")
    p.add_argument("--sb3-device", default="cpu", help="SB3's torch device for both policies: cpu (default) or "
                                                       "cuda (the circuits run on the GPU, batched)")
    p.add_argument("--n-qubits", type=int, default=None,
                   help="qubits of the VQC policy's circuits (default: the policy's, enough for the features)")
    p.add_argument("--vqc-device", default="auto",
                   help="the VQC policy's device (default auto, as the policy's; torch: the torch programs; "
                        "torch:native: the compiled C kernel)")
    p.add_argument("--repeats", type=int, default=1,
                   help="train each pair this many times, MLP and VQC alternating, and report medians (default 1)")
    _add_common(p, budget=False)
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from qrl import bench

    runs = [bench.bench_train(args.env, steps=args.steps, algo=algo, log=log, sb3_device=args.sb3_device,
                              n_qubits=args.n_qubits, vqc_device=args.vqc_device, repeats=args.repeats)
            for algo in args.algos]
    return _finish({"kind": "train", "env": args.env, "runs": runs}, bench.format_train(runs), args.out)


def _add_scaling(what) -> None:
    p = what.add_parser("scaling", help="one update's time and memory per backend and qubit count")
    p.add_argument("--qubits", type=int, nargs="+", default=[4, 6, 8, 10, 12, 14, 16],
                   help="qubit counts (default 4 6 8 10 12 14 16)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--backends", nargs="+", default=["torch", "lightning.qubit", "default.qubit"],
                   help="backends (default torch lightning.qubit default.qubit); torch:dense and torch:wires time "
                        "the torch backend's two programs, torch:native-runs the native kernel one run of gates per "
                        "pass (as before runs were grouped), torch:native-plain also with its readout through the "
                        "state from 18 qubits; torch@cuda runs the torch path on the GPU")
    p.add_argument("--update-auto", action="store_true",
                   help="store the measured fastest backend per size for device='auto' (added to the stored "
                        "sizes measured at the same batch; another batch replaces them)")
    p.add_argument("--ansatz", default="hea", choices=sorted(ANSATZE),
                   help="built-in ansatz of the circuit (default hea)")
    p.add_argument("--circuit", default=None,
                   help="a circuit of the library instead of --ansatz, one feature per qubit (e.g. meyer_iqp; "
                        "qrl list shows them)")
    p.add_argument("--layers", type=int, default=5, help="layers of the circuit (default 5)")
    p.add_argument("--no-grad", action="store_true",
                   help="time a forward without a gradient (a rollout's call) instead of forward + backward")
    p.add_argument("--baseline", default=None,
                   help="one of --backends: print how many times faster than it each other backend ran "
                        "(e.g. torch:plain, the per-wire program as before chunk products)")
    _add_common(p, budget=True)
    p.set_defaults(run=run_scaling)


def run_scaling(args) -> int:
    from qrl import bench

    if any(n < 1 for n in args.qubits) or args.batch < 1:
        raise QRLError(f"qubit counts and batch must be positive; got {args.qubits} and {args.batch}")
    if args.baseline is not None and args.baseline not in args.backends:
        raise QRLError(f"--baseline must be one of --backends ({' '.join(args.backends)}); got {args.baseline}; "
                       f"try --backends torch torch:plain --baseline torch:plain")
    if args.update_auto and (args.ansatz != "hea" or args.circuit or args.layers != 5):
        raise QRLError(f"--update-auto measures device='auto' on the hea circuit, 5 layers; got --ansatz {args.ansatz}"
                       f"{f' --circuit {args.circuit}' if args.circuit else ''} --layers {args.layers}; leave out "
                       f"--ansatz, --circuit and --layers, or --update-auto")
    if args.layers < 1:
        raise QRLError(f"--layers must be positive; got {args.layers}")
    if args.update_auto and args.no_grad:
        raise QRLError("--update-auto stores crossovers of forward + backward calls; got --no-grad; leave one out")
    from qrl.backends.select import NATIVE

    if args.update_auto and any((":" in b and b != NATIVE) or "@" in b for b in args.backends):
        raise QRLError(f"--update-auto stores device names for device='auto' (CPU calls; of the torch programs, "
                       f"{NATIVE}); got {' '.join(args.backends)}; leave out torch:dense / torch:wires / torch@cuda "
                       f"or --update-auto")
    result = bench.bench_scaling(tuple(args.qubits), batch=args.batch, backends=tuple(args.backends),
                                 budget_s=args.budget, log=log, ansatz=args.ansatz, circuit=args.circuit,
                                 n_layers=args.layers, no_grad=args.no_grad)
    table = bench.format_scaling(result, args.baseline)
    if args.update_auto:
        from qrl.backends.dispatch import SMALL_BATCH_MAX, TINY_BATCH_MAX
        from qrl.backends.select import auto_table, small_batch_table, tiny_batch_table, write_crossovers

        command = " ".join(["qrl bench scaling --qubits", *map(str, args.qubits), "--batch", str(args.batch),
                            "--backends", *args.backends, "--update-auto"])
        path = write_crossovers(result, command, machine=bench.machine())
        tiny, small = args.batch <= TINY_BATCH_MAX, args.batch <= SMALL_BATCH_MAX
        which = f" for calls of at most {TINY_BATCH_MAX if tiny else SMALL_BATCH_MAX} samples" if small else ""
        stored = sorted(tiny_batch_table() if tiny else small_batch_table() if small else auto_table())
        table += (f"\n\n(device='auto' now follows the 'fastest' column{which}: {path}; measured sizes of "
                  f"batch {args.batch} stored there: {' '.join(map(str, stored))})")
    return _finish(result, table, args.out)


def _add_calls(what) -> None:
    from qrl.bench import CALL_BATCHES, CALL_CIRCUITS, CALL_LAYERS, CALL_QUBITS

    p = what.add_parser("calls", help="rollout-sized calls on the torch program and the native kernel, and the cost "
                                      "model device='auto' chooses them by")
    p.add_argument("--circuits", nargs="+", help=f"built-in ansatze or circuits of the library (default "
                                                 f"{' '.join(CALL_CIRCUITS)})")
    p.add_argument("--qubits", type=int, nargs="+",
                   help=f"qubit counts, 12 or more (default {' '.join(map(str, CALL_QUBITS))})")
    p.add_argument("--batches", type=int, nargs="+", help=f"batch sizes (default {' '.join(map(str, CALL_BATCHES))})")
    p.add_argument("--layers", type=int, help=f"layers of every circuit (default {CALL_LAYERS})")
    p.add_argument("--update-auto", action="store_true",
                   help="store the model fitted to these calls for device='auto' on this machine")
    p.add_argument("--rows", metavar="JSON", nargs="+",
                   help="results of qrl bench calls: their timings again, no new ones (the choices and fit computed by "
                        "the model as it is now; several files are fitted together, e.g. the same calls timed on "
                        "several days); --circuits, --qubits, --batches and --layers are the files'")
    _add_common(p, budget=True)
    p.set_defaults(run=run_calls)


def run_calls(args) -> int:
    from qrl import bench
    from qrl.backends.select import NATIVE_PASS_RATIO_MIN_QUBITS, write_call_model

    setup = {"--circuits": args.circuits, "--qubits": args.qubits, "--batches": args.batches, "--layers": args.layers}
    if args.rows:
        given = [flag for flag, value in setup.items() if value is not None]
        if given:
            raise QRLError(f"--rows computes a result's calls again: its circuits, qubits, batches and layers are the "
                           f"file's; got {' '.join(given)} too; leave {'them' if len(given) > 1 else 'it'} out")
        return _calls_again(args)
    args.circuits = args.circuits or list(bench.CALL_CIRCUITS)
    args.qubits, args.batches = args.qubits or list(bench.CALL_QUBITS), args.batches or list(bench.CALL_BATCHES)
    args.layers = bench.CALL_LAYERS if args.layers is None else args.layers
    if any(n < NATIVE_PASS_RATIO_MIN_QUBITS for n in args.qubits) or any(b < 1 for b in args.batches) or \
            args.layers < 1:
        raise QRLError(f"expected qubit counts of {NATIVE_PASS_RATIO_MIN_QUBITS} or more (below, device='auto' runs "
                       f"the kernel whatever the circuit), positive batches and layers; got --qubits {args.qubits} "
                       f"--batches {args.batches} --layers {args.layers}; try --qubits 12 14 16")
    from qrl.simulator.native import available

    if not available():
        raise QRLError("qrl bench calls times the native kernel, which cannot be compiled here (no C compiler?); "
                       "try qrl bench scaling --backends torch")
    if args.update_auto:  # points that cannot be fitted: refused before any work
        from qrl.backends.calls import check_fit_points

        check_fit_points([(n, b) for n in args.qubits for b in args.batches])
    result = bench.bench_calls(tuple(args.circuits), tuple(args.qubits), tuple(args.batches), n_layers=args.layers,
                               budget_s=args.budget, log=log)
    table = bench.format_calls(result)
    if args.update_auto:
        from qrl.backends.calls import CallModel

        command = " ".join(["qrl bench calls --circuits", *args.circuits, "--qubits", *map(str, args.qubits),
                            "--batches", *map(str, args.batches), "--layers", str(args.layers), "--update-auto"])
        path = write_call_model(CallModel.from_json(result["fit"]), command, machine=bench.machine())
        table += f"\n\n(device='auto' now chooses rollout-sized calls by the fitted model: {path})"
    return _finish(result, table, args.out)


def _calls_again(args) -> int:
    """``qrl bench calls --rows JSON [JSON ...]``: the results' timings, choices and one fit by the model as it is
    now."""
    from qrl import bench
    from qrl.backends.calls import CallModel
    from qrl.backends.select import write_call_model

    sources = [str(path) for path in args.rows]
    files = " ".join(sources)
    result = bench.calls_again([bench.load(path) for path in args.rows], sources)
    table = bench.format_calls(result)
    if args.update_auto:
        if "error" in result["fit"]:
            raise QRLError(f"{files}: {result['fit']['error']}")
        path = write_call_model(CallModel.from_json(result["fit"]),
                                f"qrl bench calls --rows {files} --update-auto",
                                machine=result["calls_machine"])
        table += f"\n\n(device='auto' now chooses rollout-sized calls by the model fitted to {files}: {path})"
    return _finish(result, table, args.out)


def _add_circuits(what) -> None:
    p = what.add_parser("circuits", help="users' circuits: a user's copy of the default circuit vs the built-in "
                                         "program; Meyer et al.'s circuit, qrl vs PennyLane's TorchLayer")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256],
                   help="batch sizes of the user vs built-in table (default 1 64 256)")
    p.add_argument("--meyer-qubits", type=int, nargs="+", default=[10, 14],
                   help="qubit counts of Meyer et al.'s circuit (default 10 14)")
    p.add_argument("--batch", type=int, default=64, help="batch size of the Meyer et al. table (default 64)")
    p.add_argument("--min-repeats", type=int, default=5,
                   help="timed calls per measurement at least (default 5; at most 3 in the Meyer et al. table)")
    p.add_argument("--skip-slow", action="store_true",
                   help="leave out the Lightning TorchLayer path of the Meyer et al. table (seconds per call)")
    _add_common(p, budget=True)
    p.set_defaults(run=run_circuits)


def run_circuits(args) -> int:
    from qrl import bench

    if any(b < 1 for b in args.batches) or args.batch < 1 or any(n < 1 for n in args.meyer_qubits):
        raise QRLError(f"batch sizes and qubit counts must be positive; got --batches {args.batches}, --batch "
                       f"{args.batch} and --meyer-qubits {args.meyer_qubits}")
    if args.min_repeats < 1:
        raise QRLError(f"--min-repeats must be at least 1; got {args.min_repeats}")
    result = bench.bench_circuits(tuple(args.batches), tuple(args.meyer_qubits), batch=args.batch,
                                  budget_s=args.budget, min_repeats=args.min_repeats,
                                  include_slow=not args.skip_slow, log=log)
    return _finish(result, bench.format_circuits(result), args.out)


def _finish(result: dict, table: str, out: str) -> int:
    from qrl import bench

    path = bench.save(result, out)
    print(table)
    print(f"\n(written to {path})")
    return 0
