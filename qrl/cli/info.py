"""`qrl list`, `qrl circuit` and `qrl plot`: what is available, what a circuit is, and curves of runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from qrl.errors import QRLError


def add_list(sub) -> None:
    p = sub.add_parser("list", help="available agents, environments, circuits and devices")
    p.set_defaults(run=run_list)


def run_list(args) -> int:
    from qrl.backends.select import installed_devices
    from qrl.config import list_envs, load_env_spec

    print("agents (agents/*.yaml), with the trainable parameters of the policy on each environment:")
    _print_agents()
    print("environments (envs/*.yaml):")
    for env_id in list_envs():
        spec = load_env_spec(env_id)
        print(f"  {env_id:<28} threshold {spec.reward_threshold}, budget {spec.budget} steps")
    _print_circuits()
    print("devices:")
    print("  auto           the fastest exact backend for the circuit size (torch for small circuits)")
    print("  torch          the circuit compiled to batched torch statevector ops (exact, autograd)")
    for name in installed_devices():
        print(f"  {name}")
    print("  <device>@<machine>  hardware, with --shots: qiskit.aer@FakeManilaV2 (an IBM snapshot, offline), "
          "qiskit.remote@ibm_brisbane, ionq.qpu@aria-1, braket.aws.qubit@<ARN>; credentials from environment "
          "variables (README: Real hardware)")
    return 0


def _print_circuits() -> None:
    from qrl.circuits import registered_circuits

    print("circuits (policy_kwargs circuit=NAME, or your own 'module:function'; README: Your own circuit):")
    for name, entry in sorted(registered_circuits().items()):
        if entry.citation:  # the library; circuits a user registered in this process are theirs to know
            print(f"  {name:<14} {entry.description}\n  {'':<14} {entry.citation}")


def _print_agents() -> None:
    from qrl.config import agent_algo, list_agents, load_agent, resolve
    from qrl.train import preset_parameters

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
        print(f"  {name:<21} {agent_algo(name).upper():<9} {', '.join(sorted(policy)):<22} {', '.join(counts)}")


def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot evaluation curves of run folders to a PNG")
    p.add_argument("run_dirs", nargs="+", help="run folders written by `qrl train`")
    p.add_argument("--out", required=True, help="image file to write, e.g. curves.png")
    p.add_argument("--title", default=None)
    p.set_defaults(run=run_plot)


def run_plot(args) -> int:
    from qrl.plots import plot_runs

    print(plot_runs([Path(d) for d in args.run_dirs], Path(args.out), title=args.title))
    return 0


def add_circuit(sub) -> None:
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
    p.set_defaults(run=run_circuit)


def run_circuit(args) -> int:
    from qrl.circuits import CircuitSpec, summary

    spec = CircuitSpec(
        n_qubits=args.n_qubits, n_layers=args.n_layers,
        n_inputs=args.n_inputs if args.n_inputs is not None else args.n_qubits, n_outputs=args.n_outputs,
        encoding=args.encoding, ansatz=args.ansatz, readout=args.readout, obs_map=args.obs_map,
        input_scaling=args.input_scaling, output_scaling=args.output_scaling, data_reuploading=args.reuploading,
    )
    print(summary(spec))
    return 0
