"""What `qrl tune` leaves: the best hyperparameters as an rl-zoo3 preset, ``summary.md`` (printed too),
``trials.csv``, and Optuna's history and importance plots (PNG), each written atomically."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import yaml

from qrl.io import atomic_write, write_text
from qrl.runs import table_csv

TRIAL_FIELDS = ("number", "state", "objective", "seconds", "seed_auc", "final_return", "overrides", "error")
"""Columns of ``trials.csv``: one row per trial (failed ones too, with their error)."""
IMPORTANCE_TRIALS = 4
# Classes rl-zoo3's and qrl's policy_kwargs readers both know, by module.
_CLASS_PREFIX = {"torch.nn.modules.activation": "nn", "torch.optim": "th.optim"}


def render_kwargs(value: Any) -> str:
    """``policy_kwargs`` as the ``"dict(...)"`` string rl-zoo3 presets hold (read back by
    :func:`qrl.config.parse_policy_kwargs`, evaluated by rl-zoo3)."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return "dict(" + ", ".join(f"{k}={render_kwargs(v)}" for k, v in value.items()) + ")"
        return "{" + ", ".join(f"{render_kwargs(k)}: {render_kwargs(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render_kwargs(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(render_kwargs(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, type):
        module = value.__module__
        prefix = next((p for m, p in _CLASS_PREFIX.items() if module.startswith(m)), None)
        if value.__name__ == "RMSpropTFLike":
            return "RMSpropTFLike"
        return f"{prefix or module}.{value.__name__}"
    return repr(value)


def preset_section(agent: str, env: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The agent's section for ``env`` with ``overrides`` (``key`` or ``policy_kwargs.key``) applied, in
    rl-zoo3 format (``policy_kwargs`` as a string)."""
    from qrl.config import load_agent, parse_policy_kwargs

    section = copy.deepcopy(load_agent(agent)[env])
    policy_kwargs = parse_policy_kwargs(section.pop("policy_kwargs", None))
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head == "policy_kwargs" and rest:
            policy_kwargs[rest] = value
        elif head == "policy_kwargs":
            policy_kwargs = parse_policy_kwargs(value)
        else:
            section[head] = value
    if policy_kwargs:
        section["policy_kwargs"] = render_kwargs(policy_kwargs)
    if isinstance(section.get("n_timesteps"), float) and section["n_timesteps"].is_integer():
        section["n_timesteps"] = int(section["n_timesteps"])  # rl-zoo3's 1e5 as 100000, not 100000.0
    return section


def write_preset(settings: dict[str, Any], best, path: Path) -> None:
    """The best trial's hyperparameters as a preset with only the tuned environment's section."""
    section = preset_section(settings["agent"], settings["env"],
                             {**settings["overrides"], **best.user_attrs.get("overrides", {})})
    header = (f"# {settings['agent']} on {settings['env']}, tuned by `qrl tune` (Optuna TPE): trial {best.number} of "
              f"study {settings['name']},\n# objective {best.value:.4f} (mean normalised area under the evaluation "
              f"curve over seeds {seeds_text(settings['seeds'])},\n# {settings['steps']} steps each). rl-zoo3 format: "
              f"`qrl train --agent {path}` or rl_zoo3.train -conf.\n")
    write_text(path, header + yaml.safe_dump({settings["env"]: section}, sort_keys=False))


def seeds_text(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 else ", ".join(map(str, seeds))


def trial_rows(trials) -> list[dict[str, Any]]:
    """Rows of :data:`TRIAL_FIELDS`, best complete trial first, then the others by number."""
    rows = [{"number": t.number, "state": t.state.name, "objective": t.value,
             "seconds": t.user_attrs.get("seconds"), "seed_auc": _numbers(t.user_attrs.get("seed_auc")),
             "final_return": _numbers(t.user_attrs.get("final_return")),
             "overrides": ", ".join(f"{k}={_short(v)}" for k, v in t.user_attrs.get("overrides", {}).items()),
             "error": t.user_attrs.get("error", "")} for t in trials]
    return sorted(rows, key=lambda r: (r["state"] != "COMPLETE", -(r["objective"] or 0), r["number"]))


def _numbers(values) -> str:
    return " ".join(f"{v:.3f}" for v in values) if values else ""


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_text(settings: dict[str, Any], trials, preset: Path | None, plots: list[Path]) -> str:
    """The markdown summary: the budget, the seeds, the objective, and a table of the best trials."""
    by_state = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    bounds = settings["bounds"]
    scale = (f"returns mapped to [0, 1] between a random policy's mean return ({bounds[0]:.4g}) and the reward "
             f"threshold ({bounds[1]:.4g}), clipped" if bounds else "raw returns (the environment has no reward "
                                                                    "threshold above a random policy's return)")
    lines = [f"# qrl tune: {settings['agent']} on {settings['env']}", "",
             f"Study `{settings['name']}` in `{settings['storage']}`: {by_state['COMPLETE']} complete, "
             f"{by_state['PRUNED']} pruned ({settings['trials']} asked for), {by_state['FAIL']} failed (not counted)"
             + (f", {by_state['RUNNING']} still running" if by_state["RUNNING"] else "") + ".",
             f"Objective: the mean over {len(settings['seeds'])} seeds of the normalised area under the evaluation "
             f"curve ({scale}; each evaluation stands for the steps since the previous one).",
             f"Budget per trial: {len(settings['seeds'])} seeds x {settings['steps']} steps, an evaluation of "
             f"{settings['eval_episodes']} episodes every {settings['eval_freq']} steps; TPE sampler, "
             f"{settings['pruner']} pruner.",
             f"Seeds: tuning runs used seeds {', '.join(map(str, settings['seeds']))} (their evaluation episodes "
             f"seed + 10000); studies use seeds below 10000, so no study run shares a seed with tuning.", ""]
    rows = trial_rows(trials)
    lines += ["| rank | trial | state | objective | per-seed area | final return | seconds | hyperparameters |",
              "|---|---|---|---|---|---|---|---|"]
    for rank, r in enumerate(rows[:10], 1):
        value = "-" if r["objective"] is None else f"{r['objective']:.4f}"
        lines.append(f"| {rank} | {r['number']} | {r['state']} | {value} | {r['seed_auc']} | {r['final_return']} | "
                     f"{r['seconds'] or '-'} | {r['overrides'] or r['error']} |")
    lines += ["", f"Preset: {preset}" if preset else "No complete trial yet: no preset written."]
    lines += [f"Plot: {p}" for p in plots]
    return "\n".join(lines) + "\n"


def write_plots(study, folder: Path, log) -> list[Path]:
    """Optuna's optimisation history (one complete trial or more) and parameter importances (from
    :data:`IMPORTANCE_TRIALS` complete trials: fewer say nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    made = []
    for name, plot, least in (("history.png", ovm.plot_optimization_history, 1),
                              ("importance.png", ovm.plot_param_importances, IMPORTANCE_TRIALS)):
        if len(complete) < least:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
                figure = plot(study).figure
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log(f"qrl tune: no {name} ({type(exc).__name__}: {exc})")
            continue
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        atomic_write(folder / name, lambda p, f=figure: f.savefig(p, dpi=110, format="png"))
        plt.close(figure)
        made.append(folder / name)
    return made


def write_outputs(study, settings: dict[str, Any], log) -> str:
    """Preset (if a trial completed), plots, ``trials.csv`` and ``summary.md``; returns the summary."""
    folder = Path(settings["folder"])
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    preset = None
    if complete:
        preset = Path(settings["preset"])
        write_preset(settings, max(complete, key=lambda t: t.value), preset)
    plots = write_plots(study, folder, log)
    write_text(folder / "trials.csv", table_csv(TRIAL_FIELDS, trial_rows(trials)))
    summary = summary_text(settings, trials, preset, plots)
    write_text(folder / "summary.md", summary)
    return summary
