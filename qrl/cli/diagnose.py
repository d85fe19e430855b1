"""`qrl diagnose gradients|circuit`: the flags of circuit diagnostics, their checks, and the printed tables."""

from __future__ import annotations

from qrl.cli.options import add_set, log
from qrl.errors import QRLError


def add_diagnose(sub) -> None:
    p = sub.add_parser("diagnose", help="diagnostics of circuits at initialisation (gradients: barren plateaus)")
    sub_diag = p.add_subparsers(dest="diagnose_command", required=True)
    _add_gradients(sub_diag)
    _add_circuit(sub_diag)


def _add_gradients(sub_diag) -> None:
    p = sub_diag.add_parser(
        "gradients", help="Var[dL/dtheta] over random initialisations per qubit count and depth, its decay rate "
                          "in qubits, and a log-scale plot; with --agent/--env, of an agent's policy loss")
    p.add_argument("--ansatz", default=None, help="hea, strongly_entangling or unentangled (default hea; "
                                                  "with --agent: the preset's)")
    p.add_argument("--circuit", default=None, help="instead of --ansatz: a library or user circuit (a registered "
                                                   "name, an entry point or module:function) with its registered "
                                                   "weight shapes; the cost is its first measured value")
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
    add_set(p, "with --agent: override a preset value, e.g. --set policy_kwargs.circuit=hsiao "
               "--set policy_kwargs.post_layer=true (repeatable)")
    p.add_argument("--out", default="runs/diagnostics", help="folder for the JSON and PNG (default runs/diagnostics/)")
    p.set_defaults(run=run_gradients)


def run_gradients(args) -> int:
    from qrl import diagnostics
    from qrl.config import parse_set

    if (args.agent is None) != (args.env is None):
        raise QRLError("--agent and --env go together (the policy loss of an agent on an environment); "
                       f"got only {'--agent' if args.agent else '--env'}; try --agent ppo-vqc --env CartPole-v1")
    _check_circuit_flags(args)
    if args.agent is not None:
        if args.qubits is not None or args.inputs is not None:
            raise QRLError(f"with --agent the environment sets the qubit count and the inputs; got "
                           f"{'--qubits' if args.qubits is not None else '--inputs'}; try without it")
        result = diagnostics.policy_gradient_study(
            args.agent, args.env, layers=args.layers, readouts=args.readout or [None], ansatz=args.ansatz,
            samples=50 if args.samples is None else args.samples, seed=args.seed,
            n_obs=64 if args.obs is None else args.obs, log=log, overrides=parse_set(args.overrides))
    elif args.circuit is not None:
        result = diagnostics.custom_circuit_gradient_study(
            args.circuit, qubits=args.qubits or [2, 4, 6, 8, 10], layers=args.layers or [2, 50],
            samples=200 if args.samples is None else args.samples, seed=args.seed, inputs=args.inputs or "random",
            log=log)
    else:
        result = diagnostics.circuit_gradient_study(
            args.ansatz or "hea", qubits=args.qubits or [2, 4, 6, 8, 10], layers=args.layers or [2, 50],
            readouts=args.readout or ["z", "parity"], samples=200 if args.samples is None else args.samples,
            seed=args.seed, inputs=args.inputs or "random", log=log)
    json_path, png_path = diagnostics.save(result, args.out)
    print(diagnostics.format_table(result))
    print(f"\n(written to {json_path} and {png_path})")
    return 0


def _check_circuit_flags(args) -> None:
    """Refuse flags that do not go together: --circuit with --ansatz, --readout or --agent; --set or --obs
    without --agent."""
    if args.circuit is not None:
        if args.ansatz is not None:
            raise QRLError(f"expected --ansatz (a built-in ansatz) or --circuit (a library or user circuit); got both "
                           f"(--ansatz {args.ansatz} --circuit {args.circuit}); try one of them")
        if args.readout is not None:
            raise QRLError(f"expected --circuit without --readout (the circuit's first measured value is the cost); "
                           f"got --readout {' '.join(args.readout)}; try without --readout")
        if args.agent is not None:
            raise QRLError(f"expected --circuit without --agent (with --agent the preset sets the circuit); got "
                           f"--circuit {args.circuit}; try --set policy_kwargs.circuit={args.circuit}")
    if args.agent is None and args.overrides:
        raise QRLError(f"--set overrides an agent preset; expected it with --agent and --env; got --set "
                       f"{args.overrides[0]} without --agent; try --agent ppo-vqc --env CartPole-v1")
    if args.agent is None and args.obs is not None:
        raise QRLError("--obs sets the observations of the policy loss; expected it with --agent and --env; "
                       "got it without; try --agent ppo-vqc --env CartPole-v1")


def _add_circuit(sub_diag) -> None:
    p = sub_diag.add_parser("circuit", help="a policy's circuits: drawing, qubits, depth, gate counts, parameters "
                                            "and the hardware cost of one action")
    p.add_argument("target", metavar="AGENT_OR_RUN", help="a run folder (trained weights) or an agent preset such "
                                                          "as ppo-vqc (with --env)")
    p.add_argument("--env", default=None, help="environment of an agent preset, e.g. CartPole-v1")
    p.add_argument("--shots", type=int, default=1024, help="shots per circuit on hardware (default 1024)")
    p.add_argument("--device", default=None, help="also compile each circuit for a hardware device offline, e.g. "
                                                  "qiskit.remote@ibm_brisbane or ionq.qpu@aria-1")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of a preset (default 0)")
    add_set(p, "override a preset value, e.g. --set policy_kwargs.circuit=meyer_iqp --set policy_kwargs.n_qubits=4 "
               "(repeatable; not with a run folder)")
    p.set_defaults(run=run_circuit)


def run_circuit(args) -> int:
    from qrl.config import parse_set
    from qrl.diagnostics import describe_policy

    print(describe_policy(args.target, env=args.env, shots=args.shots, device=args.device, seed=args.seed,
                          overrides=parse_set(args.overrides)))
    return 0
