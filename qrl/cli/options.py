"""Flag groups shared by several commands, the deprecated-alias action, and the stderr logger."""

from __future__ import annotations

import argparse
import sys


class DeprecatedAlias(argparse.Action):
    """An old flag name kept for one release: it stores like ``new`` and prints one warning line on stderr."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"qrl: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, type=None) -> None:
    """``old`` as a hidden alias of the flag ``new`` (same destination; give the same ``type``)."""
    p.add_argument(old, dest=new.lstrip("-").replace("-", "_"), type=type, default=argparse.SUPPRESS,
                   action=DeprecatedAlias, new=new, help=argparse.SUPPRESS)


def add_progress(p: argparse.ArgumentParser, help: str) -> None:
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help=help)
    bar.add_argument("--no-progress", dest="progress", action="store_false")


def add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_train_options(p: argparse.ArgumentParser, env_required: bool = True) -> None:
    """The flags of `qrl train` and `qrl compare` besides the agent(s)."""
    p.add_argument("--env", required=env_required, help="environment id, e.g. CartPole-v1 (see `qrl list`)")
    p.add_argument("--steps", type=int, default=None, help="training timesteps (default: the agent's n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None,
                   help="circuit backend: auto, torch or a PennyLane device such as lightning.qubit")
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    add_set(p, "override a hyperparameter, e.g. --set learning_rate=0.005 --set policy_kwargs.n_layers=3 "
               "(repeatable)")
    add_progress(p, "show a progress bar (default: when the terminal is interactive)")


def log(msg: str) -> None:
    """Progress messages go to stderr, so stdout holds only the result."""
    print(msg, file=sys.stderr, flush=True)
