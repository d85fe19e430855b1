"""The ``qrl`` command: the top-level parser, dispatch, and the error contract.

Each module here owns one command group: its flags (``add_*``) and what it prints (``run_*``).
Bad input is one line, ``qrl: error: ...``, exit status 2, no traceback; Ctrl-C is ``qrl: interrupted``, 130.
"""

from __future__ import annotations

import argparse
import sys

from qrl.cli import bench, diagnose, distill, evaluate, info, study, train, tune
from qrl.errors import QRLError

__all__ = ["build_parser", "main"]

# Subcommand order in `qrl --help`.
_ADD = (train.add_train, evaluate.add_eval, train.add_compare, distill.add_distill, info.add_list, info.add_plot,
        info.add_circuit, study.add_study, study.add_report, tune.add_tune, bench.add_bench, diagnose.add_diagnose)


class _Parser(argparse.ArgumentParser):
    """argparse with qrl's error contract: one ``qrl: error:`` line naming the fix, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"qrl: error: {message}; try {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qrl", description="Reinforcement learning with variational quantum circuit policies.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _ADD:
        add(sub)
    return parser


def _check_outputs(args) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    from qrl.io import check_image_path, check_output_folder

    if args.command == "plot":
        check_image_path(args.out)
    elif getattr(args, "out", None) is not None:
        check_output_folder(args.out)
    if getattr(args, "plot", None):
        check_image_path(args.plot, "--plot")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    try:
        _check_outputs(args)
        return args.run(args)
    except QRLError as exc:
        print(f"qrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrl: interrupted", file=sys.stderr)
        return 130
