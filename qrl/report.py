"""The report of a convergence-comparison study: ``qrl report STUDY_DIR`` -> ``STUDY_DIR/report/report.md``.

Owns reading a study folder (``study.yaml``, ``records.csv``, ``runs.csv``), running :mod:`qrl.stats` per
environment on the finished runs, the figures, and all the prose: numbers for people, verdict sentences and the
markdown.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qrl import stats
from qrl.config import agent_name
from qrl.errors import QRLError
from qrl.io import atomic_write, write_text
from qrl.runs import OPTIONAL_RUN_FIELDS, RECORD_FIELDS, RUN_FIELDS, TRAINING_WINDOW, steps_to_threshold
from qrl.study import read_definition, tuned_preset, tuning_seed_use

REQUIRED_RUN_FIELDS = tuple(f for f in RUN_FIELDS if f not in OPTIONAL_RUN_FIELDS)
STATUSES = ("finished", "failed", "damaged")  # damaged: a run folder qrl study cannot read
_FIX = "try `qrl study STUDY.yaml --out STUDY_DIR` again (it rebuilds the tables of a study folder)"


@dataclass
class _Run:
    """One row of runs.csv, with its evaluation curve from records.csv."""

    run_id: str
    env: str
    agent: str
    seed: str
    status: str
    attempts: str
    error: str
    numbers: dict[str, float]  # numeric columns of runs.csv, nan where empty
    timesteps: np.ndarray  # (num_evals,)
    returns: np.ndarray  # (num_evals,)

    def final(self, k: int, best_model: bool = False) -> float:
        """The run's final return: the mean of its last ``k`` evaluations, the last being the evaluation after
        training (``final_eval_mean``; the last record's when runs.csv leaves it empty); with ``best_model``, its
        best model's fresh evaluation (``best_model_eval_mean``)."""
        if best_model:
            return self.numbers["best_model_eval_mean"]
        return stats.final_performance(self.returns, k, self.numbers["final_eval_mean"])


@dataclass
class _EnvResult:
    """Everything the report says about one environment."""

    env: str
    threshold: float | None
    agents: list[str]
    runs: dict[str, list[_Run]]  # finished runs per agent
    results: dict[str, stats.AgentResult]
    comparisons: list[stats.Comparison]
    efficiency: dict[str, dict[float, stats.SampleEfficiency]]  # agent -> eps -> curve
    bounds: tuple[float, float] | None
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # agent -> grid, iqm, low, high
    final_evals: int = 1
    budgets: dict[str, dict[str, Any] | None] | None = None  # agent label -> tuning budget (None: not tuned)
    tuning: dict[str, dict[str, Any] | None] | None = None  # agent label -> trials.csv summary of its tuning
    best_model: bool = False  # final return: each run's best model re-evaluated (the study's best_model)
    censored: dict[str, stats.Estimate] | None = None  # other agent -> steps ratio, its "never" at its budget


def write_report(study_dir: str | Path, out: str | Path | None = None, reps: int = 2000, seed: int = 0) -> Path:
    """Write the report of a study folder written by ``qrl study``.

    Args:
        study_dir: the study folder (``study.yaml``, ``records.csv``, ``runs.csv``).
        out: the report folder (default ``STUDY_DIR/report``); created if missing.
        reps: bootstrap resamples for 95% intervals (S(eps, delta) bands use ``min(reps, 1000)``, Meyer et al.'s
            1000 by default).
        seed: seeds every resampling; the same seed gives the same report (each statistic draws from its own
            stream, derived from the seed and what it is about: :func:`qrl.stats.child_seed`).

    Returns:
        The path of ``report.md``.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise QRLError(f"expected a study folder written by `qrl study`; got {study_dir}, which is not a folder; "
                       f"try `qrl study STUDY.yaml` first")
    if int(reps) < 1:
        raise QRLError(f"expected reps >= 1 bootstrap resamples; got {reps}; try the default 2000")
    study = _read_study(study_dir)
    runs = _read_runs(study_dir)
    _attach_records(study_dir, runs)
    out = Path(out) if out is not None else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    envs = list(study["envs"]) + sorted({r.env for r in runs} - set(study["envs"]))
    results = [_analyse_env(env, study, runs, int(reps), int(seed)) for env in envs]
    figures = {r.env: _draw_env(r, out) for r in results}
    path = out / "report.md"
    write_text(path, _markdown(study, runs, results, figures, int(reps), int(seed)))
    return path


# ---------------------------------------------------------------------------------------------------
# Reading the study folder


def _read_study(study_dir: Path) -> dict[str, Any]:
    """The definition as a mapping (agents by name), with thresholds, tuning budgets and the seeds' use."""
    definition, thresholds = read_definition(study_dir, _FIX)
    budgets = {agent_name(a): definition.tune_budget(a) for a in definition.agents}
    env_budgets = {(agent_name(a), env): definition.tune_budget(a, env) for a in definition.agents
                   for env in definition.envs}
    tuning = {(agent_name(a), env): _tuning_trials(study_dir, a, env) for a in definition.agents
              for env in definition.envs if budgets[agent_name(a)] is not None}
    return asdict(definition) | {"thresholds": thresholds, "agents": [agent_name(a) for a in definition.agents],
                                 "budgets": budgets, "env_budgets": env_budgets, "tuning": tuning,
                                 "seed_use": tuning_seed_use(definition)}


def _tuning_trials(study_dir: Path, agent: str, env: str) -> dict[str, Any] | None:
    """What ``tune/<agent>__<env>/trials.csv`` (``qrl tune``'s) holds: trials per state and the best objective."""
    path = tuned_preset(study_dir, agent, env).parent / "trials.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    states = {state: sum(r.get("state") == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL")}
    values = [float(r["objective"]) for r in rows if r.get("state") == "COMPLETE" and r.get("objective")]
    return {"states": states, "best": max(values) if values else None}


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise QRLError(f"expected {path} written by `qrl study`; got no such file; {_FIX}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise QRLError(f"expected {path} with columns {', '.join(columns)}; got columns "
                           f"{', '.join(reader.fieldnames or []) or 'none'} (missing {', '.join(missing)}); {_FIX}")
        return list(reader)


def _number(row: dict[str, str], key: str, path: Path, line: int) -> float:
    text = (row.get(key) or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise QRLError(f"expected a number in column {key} of {path} line {line}; got {text!r}; {_FIX}") from None


def _read_runs(study_dir: Path) -> list[_Run]:
    path = study_dir / "runs.csv"
    runs, seen = [], set()
    for line, row in enumerate(_read_csv(path, REQUIRED_RUN_FIELDS), start=2):
        if row["status"] not in STATUSES:
            raise QRLError(f"expected status {', '.join(STATUSES)} in {path} line {line}; got {row['status']!r}; "
                           f"{_FIX}")
        if row["run_id"] in seen:
            raise QRLError(f"expected one row per run in {path}; got run {row['run_id']} twice (line {line}); {_FIX}")
        seen.add(row["run_id"])
        numbers = {key: _number(row, key, path, line) for key in REQUIRED_RUN_FIELDS[7:] + OPTIONAL_RUN_FIELDS}
        runs.append(_Run(row["run_id"], row["env"], row["agent"], row["seed"], row["status"], row["attempts"],
                         row["error"] or "", numbers, np.empty(0), np.empty(0)))
    return runs


def _attach_records(study_dir: Path, runs: list[_Run]) -> None:
    path = study_dir / "records.csv"
    curves: dict[str, list[tuple[float, float]]] = {}
    for line, row in enumerate(_read_csv(path, RECORD_FIELDS), start=2):
        t, r = _number(row, "timesteps", path, line), _number(row, "mean_return", path, line)
        if not (math.isfinite(t) and math.isfinite(r)):
            raise QRLError(f"expected numbers in timesteps and mean_return of {path} line {line}; "
                           f"got {row['timesteps']!r} and {row['mean_return']!r}; {_FIX}")
        curves.setdefault(row["run_id"], []).append((t, r))
    for run in runs:
        if run.status != "finished":
            continue
        points = sorted(curves.get(run.run_id, []))
        if not points:
            raise QRLError(f"expected evaluations of finished run {run.run_id} in {path}; got none; {_FIX}")
        t = np.array([p[0] for p in points])
        if np.any(np.diff(t) <= 0):
            raise QRLError(f"expected one evaluation per timestep for run {run.run_id} in {path}; got repeated "
                           f"timesteps; {_FIX}")
        run.timesteps, run.returns = t, np.array([p[1] for p in points])
        if math.isnan(run.numbers["final_eval_mean"]):
            run.numbers["final_eval_mean"] = float(run.returns[-1])


# ---------------------------------------------------------------------------------------------------
# Statistics per environment


def _base(label: str) -> str:
    """The agent of a label: ``ppo-vqc@learning_rate=0.01`` (a grid variant) -> ``ppo-vqc``."""
    return label.split("@", 1)[0]


def _agent_order(study: dict[str, Any], runs: list[_Run]) -> list[str]:
    """Agent labels in the study's order (grid variants after their agent), agents without runs included."""
    agents = list(study["agents"])
    labels: list[str] = []
    for run in runs:
        if run.agent not in labels:
            labels.append(run.agent)
    for agent in agents:
        if not any(_base(label) == agent for label in labels):
            labels.append(agent)
    rank = {agent: i for i, agent in enumerate(agents)}
    return sorted(labels, key=lambda label: (rank.get(_base(label), len(agents)), labels.index(label)))


def _focus(study: dict[str, Any], label: str) -> bool:
    return _base(label) == study["agents"][0]


def _threshold(study: dict[str, Any], env: str, runs: list[_Run]) -> float | None:
    """The return to reach on ``env``: study.yaml ``thresholds``, else the lowest ``reward_threshold`` of its runs."""
    value = study["thresholds"].get(env)
    if value is None:
        given = {r.numbers["reward_threshold"] for r in runs if not math.isnan(r.numbers["reward_threshold"])}
        value = min(given) if given else None
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise QRLError(f"expected a number or null as study.yaml threshold of {env}; got {value!r}; {_FIX}") from None


def _analyse_env(env: str, study: dict[str, Any], all_runs: list[_Run], reps: int, seed: int) -> _EnvResult:
    """The statistics of one environment, on finished runs only (failed runs are listed, never counted).

    Final performance is the mean of a run's last ``final_evals`` evaluations (:meth:`_Run.final`). Steps to
    threshold are recomputed from ``records.csv`` (the timestep of a run's first evaluation at or above the
    threshold). Learning curves and S(eps, delta) use each
    agent's runs aligned by step interpolation (:func:`qrl.stats.align_curves`), which handles final evaluations
    that differ slightly between agents. S(eps, delta) normalises returns with the lowest and highest evaluation
    return of any finished run of the environment in the study (1 = the best any agent got), not with the
    environment's theoretical bounds.
    """
    env_runs = [r for r in all_runs if r.env == env]
    agents = _agent_order(study, env_runs)
    threshold = _threshold(study, env, env_runs)
    finished = {a: [r for r in env_runs if r.agent == a and r.status == "finished"] for a in agents}
    env_seed = stats.child_seed(seed, env)

    k, best_model = int(study.get("final_evals") or 1), bool(study.get("best_model"))
    missing = [r.run_id for a in agents for r in finished[a] if best_model and math.isnan(r.final(k, True))]
    if missing:
        raise QRLError(f"study {study['name']} has best_model: true but run {missing[0]} has no best_model_eval_mean "
                       f"in runs.csv; expected every finished run re-evaluated; try `qrl study` again")
    results = {}
    for agent in agents:
        runs = finished[agent]
        steps = None
        if threshold is not None:
            steps = np.array([steps_to_threshold(r.timesteps, r.returns, threshold) for r in runs])
        results[agent] = stats.summarise_agent(agent, [r.final(k, best_model) for r in runs], steps, reps=reps,
                                               seed=env_seed, threshold=threshold)

    focus = [a for a in agents if _focus(study, a)]
    comparisons = [stats.compare(results[f], results[o], reps=reps, seed=env_seed)
                   for f in focus for o in agents if not _focus(study, o)]

    curves, aligned = {}, {}
    for agent in agents:
        if finished[agent]:
            grid, values = stats.align_curves([(r.timesteps, r.returns) for r in finished[agent]])
            aligned[agent] = (grid, values)
            band = stats.curve_band(values, reps=reps, seed=stats.child_seed(env_seed, agent, "curve"))
            curves[agent] = (grid, *band)

    bounds = stats.study_bounds(*(v for _, v in aligned.values())) if aligned else None
    efficiency: dict[str, dict[float, stats.SampleEfficiency]] = {}
    if bounds is not None and bounds[1] > bounds[0]:
        for agent, (grid, values) in aligned.items():
            normalised = stats.normalise(values, *bounds)
            efficiency[agent] = {
                eps: stats.sample_efficiency(grid, normalised, eps, reps=min(reps, stats.SAMPLE_COMPLEXITY_REPS),
                                             seed=stats.child_seed(env_seed, agent, f"efficiency-{eps}"))
                for eps in stats.EPSILONS}
    budgets = {a: study.get("env_budgets", {}).get((_base(a), env)) for a in agents}
    tuning = {a: study.get("tuning", {}).get((_base(a), env)) for a in agents}
    return _EnvResult(env, threshold, agents, finished, results, comparisons, efficiency, bounds, curves, k, budgets,
                      tuning, best_model, _censored_ratios(comparisons, finished, reps, env_seed))


def _censored_ratios(comparisons: list[stats.Comparison], finished: dict[str, list[_Run]], reps: int,
                     seed: int) -> dict[str, stats.Estimate]:
    """The steps ratio (focus / other) with the other agent's "never" counted as reached at its run's last step:
    a lower bound on its steps, so the ratio is an upper bound and "3x faster: yes" cannot come from a short budget.
    Resampled with the comparison's own seed, so it equals the verdict's ratio where the other agent always got
    there."""
    out = {}
    for c in comparisons:
        if c.focus.steps is None or c.other.steps is None or not finished[c.other.agent]:
            continue
        budget = min(float(r.timesteps[-1]) for r in finished[c.other.agent])
        other = np.where(np.isinf(c.other.steps), budget, c.other.steps)
        out[c.other.agent] = stats.ratio_estimate(c.focus.steps, other, reps,
                                                  stats.child_seed(seed, c.focus.agent, c.other.agent, "ratio"))
    return out


# ---------------------------------------------------------------------------------------------------
# Figures


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png", metadata={"Software": None}))
    _pyplot().close(fig)
    return path.name


def _draw_env(result: _EnvResult, out: Path) -> dict[str, str]:
    """The figures of one environment: kind -> file name inside ``out``."""
    if not result.curves:
        return {}
    slug = _slug(result.env)
    figures = {"curves": _save(_learning_curves(result), out / f"{slug}_learning_curves.png"),
               "final": _save(_final_performance(result), out / f"{slug}_final_performance.png")}
    if result.efficiency:
        figures["efficiency"] = _save(_sample_efficiency(result), out / f"{slug}_sample_efficiency.png")
    if result.threshold is not None:
        figures["steps"] = _save(_steps_distribution(result), out / f"{slug}_steps_to_threshold.png")
    return figures


def _colors(agents: list[str]) -> dict[str, Any]:
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {agent: cycle[i % len(cycle)] for i, agent in enumerate(agents)}


def _learning_curves(result: _EnvResult):
    plt = _pyplot()
    colors = _colors(result.agents)
    fig, ax = plt.subplots(figsize=(7, 4))
    for agent, (grid, point, low, high) in result.curves.items():
        n = len(result.runs[agent])
        ax.plot(grid, point, color=colors[agent], drawstyle="steps-post", label=f"{agent} (IQM of {n} runs)")
        ax.fill_between(grid, low, high, color=colors[agent], alpha=0.2, step="post")
    if result.threshold is not None:
        ax.axhline(result.threshold, color="gray", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("evaluation return (IQM, 95% CI band)")
    ax.set_title(f"{result.env}: learning curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _sample_efficiency(result: _EnvResult):
    plt = _pyplot()
    colors = _colors(result.agents)
    fig, axes = plt.subplots(1, len(stats.EPSILONS), figsize=(11, 4), sharey=True)
    for ax, eps in zip(np.atleast_1d(axes), stats.EPSILONS, strict=True):
        for agent, curves in result.efficiency.items():
            curve = curves[eps]
            ax.plot(curve.timesteps, curve.fraction, color=colors[agent], drawstyle="steps-post", label=agent)
            ax.fill_between(curve.timesteps, curve.low, curve.high, color=colors[agent], alpha=0.2, step="post")
        for delta in stats.DELTAS:
            ax.axhline(delta, color="gray", linestyle=":", linewidth=0.8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("timesteps")
        ax.set_title(f"eps = {eps}: runs at or above {1 - eps:.0%} of the best")
    np.atleast_1d(axes)[0].set_ylabel("fraction of runs (5th-95th percentile band)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"{result.env}: sample efficiency (dotted: delta = {', '.join(map(str, stats.DELTAS))})")
    fig.tight_layout()
    return fig


def _steps_distribution(result: _EnvResult):
    plt = _pyplot()
    colors = _colors(result.agents)
    fig, ax = plt.subplots(figsize=(7, 4))
    finite_all = [s for a in result.agents if result.results[a].steps is not None
                  for s in result.results[a].steps if math.isfinite(s)]
    budget = max([max(r.timesteps) for runs in result.runs.values() for r in runs] + finite_all)
    never_y = budget * 1.08
    for i, agent in enumerate(result.agents):
        steps = result.results[agent].steps
        if steps is None or steps.size == 0:
            continue
        finite = steps[np.isfinite(steps)]
        if finite.size:
            ax.boxplot([finite], positions=[i], widths=0.5, showfliers=False)
        jitter = np.linspace(-0.15, 0.15, steps.size) if steps.size > 1 else np.zeros(1)
        ax.scatter(i + jitter[np.isfinite(steps)], finite, color=colors[agent], zorder=3, s=18)
        never = int((~np.isfinite(steps)).sum())
        if never:
            ax.scatter(i + jitter[~np.isfinite(steps)], np.full(never, never_y), color=colors[agent], marker="x",
                       zorder=3, s=24)
    if any(r.steps is not None and not np.isfinite(r.steps).all() for r in result.results.values()):
        ax.axhline(never_y, color="gray", linestyle=":", linewidth=0.8)
        ax.text(len(result.agents) - 0.5, never_y, " never", va="center", fontsize=8, color="gray")
    ax.set_xticks(range(len(result.agents)), result.agents, rotation=15, fontsize=8)
    ax.set_xlim(-0.6, len(result.agents) - 0.4)
    ax.set_ylim(0, budget * 1.15)
    ax.set_ylabel("steps to threshold (one point per run; x: never)")
    ax.set_title(f"{result.env}: steps to reach {format_value(result.threshold or 0.0)}")
    fig.tight_layout()
    return fig


def _final_performance(result: _EnvResult):
    plt = _pyplot()
    colors = _colors(result.agents)
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(result.agents) + 1.6))
    for i, agent in enumerate(result.agents):
        res = result.results[agent]
        if res.num_runs == 0:
            continue
        e = res.final_estimates["iqm"]
        ax.errorbar([e.point], [i], xerr=[[e.point - e.low], [e.high - e.point]], fmt="o", color=colors[agent],
                    capsize=4, markersize=7)
        ax.scatter(res.final, np.full(res.num_runs, i + 0.2), color=colors[agent], alpha=0.4, s=12)
    ax.set_yticks(range(len(result.agents)), result.agents, fontsize=8)
    ax.set_ylim(-0.6, len(result.agents) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"final return ({_final_words(result.final_evals, result.best_model)}): IQM with 95% CI "
                  f"(dots: runs)")
    ax.set_title(f"{result.env}: final performance")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# Numbers and verdicts in words


def format_steps(x: float) -> str:
    """A step count for people: ``38.4k``, ``1.2M``, ``never`` for ``inf``."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never"
    if abs(x) < 1000:
        return f"{x:.0f}"
    if abs(x) < 1e6:
        return f"{x / 1e3:.3g}k"
    return f"{x / 1e6:.3g}M"


def format_value(x: float, digits: int = 3) -> str:
    """A return or probability for people, about ``digits`` significant digits without exponent notation."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    text = f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _digits_apart(a: float, b: float) -> int:
    """Significant digits that show two different numbers differently (3 at least, 8 at most): an interval
    ending at 499.9 is not printed as 500 beside one starting at 500."""
    digits = 3
    while digits < 8 and a != b and format_value(a, digits) == format_value(b, digits):
        digits += 1
    return digits


def format_ratio(x: float) -> str:
    """A ratio for people: ``0.62x``; ``inf`` and ``n/a`` spelled out."""
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.2f}x")


def format_p(p: float | None) -> str:
    """A p-value for people, two significant digits; ``n/a`` when the test does not apply (``None``)."""
    return "n/a" if p is None else f"{p:.2g}"


def _claim(focus: stats.Estimate, other: stats.Estimate, better: str, worse: str, focus_better_if_lower: bool,
           p: float | None) -> str:
    """The decision rule: a difference is claimed only when the two intervals are disjoint."""
    if focus.overlaps(other):
        tail = "" if p is None else f"; Mann-Whitney p = {format_p(p)}"
        return f"no difference can be claimed (intervals overlap{tail})"
    lower = focus.high < other.low
    return f"{better if lower == focus_better_if_lower else worse}, the intervals do not overlap"


CLAIMED_SPEEDUP = 3.0
"""The claim a benchmark study tests: "converged to optimal policies 3x faster than its classical counterpart"."""
EFFICIENCY_POINT = (0.1, 0.5)
"""The (eps, delta) of the S(eps, delta) ratio in the summary: the step at which half the runs are within 10%."""


def speedup_answer(ratio: stats.Estimate | None, factor: float = CLAIMED_SPEEDUP) -> str:
    """Is the focus agent ``factor`` times faster? ``ratio`` is focus steps / other steps with its interval:
    ``yes`` when the whole interval is at or below ``1 / factor``, ``no`` when it is all above, else ``cannot
    tell``; a ratio with no interval (neither agent got there) is ``cannot tell``."""
    if ratio is None or math.isnan(ratio.low) or math.isnan(ratio.high):
        return "cannot tell (no ratio)"
    bound = 1.0 / factor
    if ratio.high <= bound:
        return "yes"
    if ratio.low > bound:
        return "no"
    return f"cannot tell (interval includes {format_ratio(bound)})"


def efficiency_ratio(result: _EnvResult, focus: str, other: str, eps: float = EFFICIENCY_POINT[0],
                     delta: float = EFFICIENCY_POINT[1]) -> stats.Estimate | None:
    """S(eps, delta) of ``focus`` over ``other``: the point ratio and the widest ratio of their 5th-95th percentile
    bands (a conservative interval); the other's "never" counts as its last evaluation step (so the ratio is an
    upper bound there); ``None`` without both curves, ``nan`` where the focus agent's is never too."""
    curves = [result.efficiency.get(a, {}).get(eps) for a in (focus, other)]
    if None in curves:
        return None
    f, o = (c.complexity[delta] for c in curves)
    cap = float(curves[1].timesteps[-1])

    def divide(a: float, b: float) -> float:
        if math.isinf(a):
            return math.nan if math.isinf(b) else math.inf
        return a / min(b, cap)

    return stats.Estimate(divide(f.point, o.point), divide(f.low, o.high), divide(f.high, o.low))


def summary_rows(result: _EnvResult) -> list[list[str]]:
    """One row per comparison of the focus agent on one env: the columns of :data:`SUMMARY_HEADER`."""
    rows = []
    for comparison in result.comparisons:
        f, o = comparison.focus, comparison.other
        if f.num_runs == 0 or o.num_runs == 0:
            continue
        ratio, fs, os_ = (result.censored or {}).get(o.agent), f.median_steps, o.median_steps
        faster = "n/a" if fs is None or os_ is None else _short(fs, os_, "faster", "slower", True)
        s_ratio = efficiency_ratio(result, f.agent, o.agent)
        fe, oe = f.final_estimates["iqm"], o.final_estimates["iqm"]
        ended = "n/a" if f.ended_above is None or o.ended_above is None else \
            f"{f.ended_above_count}/{f.num_runs} vs {o.ended_above_count}/{o.num_runs}"
        rows.append([result.env, o.agent, _ratio_ci(ratio), _ratio_ci(s_ratio), faster,
                     f"{format_value(fe.point)} vs {format_value(oe.point)}", _short(fe, oe, "higher", "lower", False),
                     ended, speedup_answer(ratio), speedup_answer(s_ratio)])
    return rows


SUMMARY_HEADER = ["env", "vs", "steps to threshold, ratio (95% CI)", "S(0.1, 0.5) ratio (band)", "faster?",
                  "final IQM", "better at the end?", "runs ending >= threshold", "3x faster (steps)?",
                  "3x faster (S)?"]


def _ratio_ci(ratio: stats.Estimate | None) -> str:
    if ratio is None or math.isnan(ratio.point):
        return "n/a"
    return f"{format_ratio(ratio.point)} ({format_ratio(ratio.low)}-{format_ratio(ratio.high)})"


def _short(focus: stats.Estimate, other: stats.Estimate, better: str, worse: str, focus_better_if_lower: bool) -> str:
    """:func:`_claim` in a word: ``better``, ``worse`` or ``no claim``."""
    if focus.overlaps(other):
        return "no claim"
    return better if (focus.high < other.low) == focus_better_if_lower else worse


def verdict(comparison: stats.Comparison, threshold: float | None = None, final_evals: int | None = None,
            best_model: bool = False) -> list[str]:
    """Plain-language sentences comparing the focus agent with another on one environment.

    Decision rule: a difference ("faster"/"slower", "higher"/"lower") is claimed only when the two agents'
    95% intervals (median steps to threshold; IQM of final return) do not overlap; otherwise the sentence
    says "no difference can be claimed" with the Mann-Whitney p-value. Disjoint 95% intervals are a strict
    criterion (stricter than a 5% test), chosen so that a claim survives a skeptical reader.

    Returns:
        One sentence on steps to ``threshold`` (when given and both agents have runs) and one on final return
        (named the mean of the last ``final_evals`` evaluations when given, or the best model's fresh evaluation
        with ``best_model``; with the runs ending at or above the threshold when the agents' results have them).
    """
    f, o = comparison.focus, comparison.other
    if f.num_runs == 0 or o.num_runs == 0:
        missing = f.agent if f.num_runs == 0 else o.agent
        return [f"No comparison of {f.agent} with {o.agent}: {missing} has no finished runs."]
    sentences = []
    if threshold is not None and f.median_steps is not None and o.median_steps is not None:
        sentences.append(_steps_sentence(comparison, threshold))
    fe, oe = f.final_estimates["iqm"], o.final_estimates["iqm"]
    claim = _claim(fe, oe, "higher", "lower", False, comparison.final_p)
    digits = max(_digits_apart(fe.high, oe.low), _digits_apart(fe.low, oe.high))
    imp = comparison.improvement
    name = "Final return" if final_evals is None and not best_model else \
        f"Final return ({_final_words(final_evals or 1, best_model)})"
    ended = ""
    if threshold is not None and f.ended_above is not None and o.ended_above is not None:
        ended = (f"; runs ending at or above {format_value(float(threshold))}: {f.ended_above_count}/{f.num_runs} vs "
                 f"{o.ended_above_count}/{o.num_runs}")
    sentences.append(
        f"{name}: {f.agent} IQM {format_value(fe.point)} (95% CI {format_value(fe.low, digits)} to "
        f"{format_value(fe.high, digits)}) vs {format_value(oe.point)} ({format_value(oe.low, digits)} to "
        f"{format_value(oe.high, digits)}) "
        f"for {o.agent}: {claim}; probability of improvement P({f.agent} > {o.agent}) = {imp.point:.2f} "
        f"(95% CI {imp.low:.2f}-{imp.high:.2f}){ended}."
    )
    return sentences


def _final_words(k: int, best_model: bool = False) -> str:
    if best_model:
        return "best model re-evaluated on fresh episodes"
    return "the last evaluation" if k == 1 else f"mean of the last {k} evaluations"


def budget_text(budget: dict[str, Any] | None) -> str:
    """A tuning budget for people: ``tuned: 20 trials x 3 seeds x 20k steps`` or ``not tuned (...)``."""
    if budget is None:
        return "not tuned (its preset's hyperparameters)"
    space = budget.get("space") or {}
    changed = f" (search space: {', '.join(f'{k}={v}' for k, v in space.items())})" if space else ""
    trials, seeds = budget["trials"], budget["seeds"]
    return (f"tuned: {trials} trial{'s' * (trials != 1)} x {seeds} seed{'s' * (seeds != 1)} x "
            f"{steps_text(budget['steps'])} steps{changed}")


def steps_text(steps: int | dict[str, int]) -> str:
    """``20k``, or per env ``20k on CartPole-v1, 50k on Acrobot-v1``."""
    if isinstance(steps, dict):
        return "(" + ", ".join(f"{format_steps(float(v))} on {env}" for env, v in steps.items()) + ")"
    return format_steps(float(steps))


def _steps_sentence(comparison: stats.Comparison, threshold: float) -> str:
    """The verdict on steps to ``threshold``: medians with intervals, runs reaching it, claim and ratio."""
    f, o = comparison.focus, comparison.other
    fs, os_ = f.median_steps, o.median_steps
    if fs is None or os_ is None:
        raise QRLError("expected steps to threshold for both agents; got none; try summarise_agent(..., steps=...)")
    target = format_value(float(threshold))

    def ci(e: stats.Estimate) -> str:
        return f"{format_steps(e.low)}-{format_steps(e.high)}"

    def reached(a: stats.AgentResult) -> str:
        hits = 0 if a.steps is None else int(np.isfinite(a.steps).sum())
        return f"{hits}/{a.num_runs} runs reached it"

    if math.isfinite(fs.point):
        head = f"{f.agent} reached {target} in {format_steps(fs.point)} steps (median; 95% CI {ci(fs)}; {reached(f)})"
    else:
        head = f"{f.agent}'s median run did not reach {target} (95% CI {ci(fs)}; {reached(f)})"
    if math.isfinite(os_.point):
        tail = f"{format_steps(os_.point)} ({ci(os_)}; {reached(o)}) for {o.agent}"
    else:
        tail = f"a median run that never reached it ({ci(os_)}; {reached(o)}) for {o.agent}"
    claim = _claim(fs, os_, "faster", "slower", True, comparison.steps_p)
    sentence = f"{head} vs {tail}: {claim}"
    ratio = comparison.steps_ratio
    if ratio is not None and math.isfinite(ratio.point) and ratio.point > 0:
        sentence += f"; ratio {format_ratio(ratio.point)} ({format_ratio(ratio.low)}-{format_ratio(ratio.high)})"
    return sentence + "."


# ---------------------------------------------------------------------------------------------------
# Markdown


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _ci(e: stats.Estimate, fmt=format_value) -> str:
    return f"{fmt(e.point)} ({fmt(e.low)} to {fmt(e.high)})"


def _steps_ci(e: stats.Estimate) -> str:
    return f"{format_steps(e.point)} ({format_steps(e.low)}-{format_steps(e.high)})"


def _span(values: list[float], fmt=lambda x: f"{x:.0f}") -> str:
    """One number when all runs agree, ``low-high`` when not, ``n/a`` when none report it."""
    known = sorted({v for v in values if not math.isnan(v)})
    if not known:
        return "n/a"
    return fmt(known[0]) if len(known) == 1 else f"{fmt(known[0])}-{fmt(known[-1])}"


def _median(values: list[float], fmt) -> str:
    known = [v for v in values if not math.isnan(v)]
    return fmt(float(np.median(known))) if known else "n/a"


HOW_TO_READ = """\
## How to read this

- **Final return**: a run's mean over its last few evaluations (the study's `final_evals`; the last one is the
  evaluation after training), so a run that drifts down late is not judged by one good evaluation. "Runs ending
  at or above" the threshold counts runs whose final return is there (95% CI: Wilson score interval).
- **IQM** (interquartile mean): the mean of the middle 50% of runs (25% cut from each end). It is robust to a
  few diverged or lucky runs, and uses more of the data than the median. With fewer than 4 runs it is the mean.
- **95% CI** (stratified bootstrap): resample the runs of each agent with replacement many times, recompute the
  statistic, and take the 2.5th-97.5th percentiles of the results (Agarwal et al. 2021, rliable). It says how
  much the number would move with other seeds; with few runs the intervals are wide, as they should be.
- **Probability of improvement** P(A > B): the chance that a random run of A ends with a higher return than a
  random run of B (ties count one half). 0.5 means no tendency either way.
- **Steps to threshold**: the timestep of a run's first evaluation at or above the threshold. A run that never
  got there counts as "never" (censored at its budget): the median is "never" when half or more of the runs did
  not reach it, and a CI bound of "never" means some resamples had such a median.
- **S(eps, delta)** (Meyer et al. 2025): normalise every evaluation to [0, 1] with the lowest and highest return
  any run of the study got on that environment; S(eps, delta) is the first timestep at which a fraction delta of
  an agent's runs score at least 1 - eps. The band (5th-95th percentile) comes from resampling whole runs
  {cluster_reps} times (cluster bootstrap). The sample-efficiency figure shows that fraction against timesteps.
- **Verdicts** claim a difference only when the two 95% intervals do not overlap (median steps to threshold;
  IQM of final return). Otherwise they say that no difference can be claimed, with the two-sided Mann-Whitney
  U test's p-value on the per-run values for reference. Disjoint 95% intervals are a stricter test than p < 0.05.
"""


def _markdown(study: dict[str, Any], runs: list[_Run], results: list[_EnvResult], figures: dict[str, dict[str, str]],
              reps: int, seed: int) -> str:
    agents = list(study["agents"])
    failed = [r for r in runs if r.status != "finished"]  # failed or damaged: listed, never counted
    steps = study.get("steps")
    thresholds = {r.env: r.threshold for r in results}
    lines = [f"# Study report: {study['name']}", "", "## Definition", ""]
    lines += [
        f"- Agents: **{agents[0]}** (focus), " + ", ".join(agents[1:]) if len(agents) > 1 else
        f"- Agents: **{agents[0]}** (focus)",
        f"- Environments: {', '.join(str(e) for e in study['envs'])}",
        f"- Seeds: {', '.join(str(s) for s in study['seeds'])} ({len(study['seeds'])} per agent and environment)",
        f"- Steps per run: {steps_text(steps) if steps is not None else 'each agent default (n_timesteps)'}",
        "- Thresholds: " + ", ".join(f"{env} {format_value(t) if t is not None else 'none'}"
                                     for env, t in thresholds.items()),
    ]
    for key in ("eval_freq", "eval_episodes"):
        if study.get(key) is not None:
            lines.append(f"- {key}: {study[key]}")
    if study.get("grid"):
        lines.append(f"- Grid: {study['grid']}")
    lines += _tuning_lines(study)
    lines += [f"- Runs: {len(runs)} in runs.csv, {len(runs) - len(failed)} finished, {len(failed)} failed "
              f"(failed runs are left out of every statistic)",
              f"- Bootstrap: {reps} resamples for 95% CIs, {min(reps, stats.SAMPLE_COMPLEXITY_REPS)} for S(eps, delta) "
              f"bands, seed {seed}", ""]
    lines += _summary_section(results)
    lines.append(HOW_TO_READ.format(cluster_reps=min(reps, stats.SAMPLE_COMPLEXITY_REPS)))
    for result in results:
        lines += _env_section(result, figures.get(result.env, {}), reps, seed)
    lines += ["## Failed runs", ""]
    if not failed:
        lines += ["None.", ""]
    for run in failed:
        state = "" if run.status == "failed" else f", {run.status}"
        lines.append(f"- `{run.run_id}` ({run.env}, {run.agent}, seed {run.seed}, {run.attempts or '?'} attempts"
                     f"{state}):")
        error = (run.error or "(no error recorded)").splitlines()
        lines += ["", "  ```", *("  " + line for line in error), "  ```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _summary_section(results: list[_EnvResult]) -> list[str]:
    """The verdicts of every environment in one table (the focus agent against each other agent)."""
    rows = [row for result in results for row in summary_rows(result)]
    if not rows:
        return []
    warnings = [f"- {w}" for result in results for w in tuning_warnings(result)]
    lines = ["## Summary", "", f"The focus agent against each other agent. Ratios are the focus agent's steps over the "
             f"other's (below 1: the focus agent is faster); where the other agent never got there, its steps count "
             f"as its budget (a lower bound), so the ratio is an upper bound; where the focus agent never did, "
             f"the ratio is inf. \"faster?\" and \"better at the end?\" "
             f"claim a difference only when the 95% intervals do not overlap. \"{CLAIMED_SPEEDUP:g}x "
             f"faster\": yes when the whole interval of the ratio is at or below {format_ratio(1 / CLAIMED_SPEEDUP)}, "
             f"no when it is all above, else cannot tell. S(0.1, 0.5): the first step at which half of the runs are "
             f"within 10% of the best return on the env (Meyer et al. 2025); its interval is the widest ratio of the "
             f"two agents' 5th-95th percentile bands.", ""]
    return lines + _table(SUMMARY_HEADER, rows) + ([*warnings, ""] if warnings else [])


def _tuning_lines(study: dict[str, Any]) -> list[str]:
    """Definition lines: the final-return statistic, each agent's tuning budget and which seeds did what."""
    k = int(study.get("final_evals") or 1)
    lines = [f"- Final return: {_final_words(k)} of each run (`final_evals: {k}`; the last is the evaluation "
             f"after training)"]
    if study.get("best_model"):
        episodes = study.get("eval_episodes") or "the environment's evaluation"
        lines = ["- Final return: each run's best model (the model of its best evaluation during training, kept with "
                 f"its normaliser) evaluated again on {episodes} episodes that no evaluation during training ran "
                 "(`best_model: true`); the return that chose it is a maximum over noisy evaluations, so it is not "
                 "used"]
    budgets = study.get("budgets") or {}
    if not any(budgets.values()):
        return [*lines, "- Tuning: none in this study; every agent ran its preset's hyperparameters, chosen outside "
                        "the study (a preset tuned for one agent and not for another favours it; `tune:` in the study "
                        "file gives every agent the same budget)"]
    equal = len({str(b) for b in budgets.values()}) == 1
    lines.append("- Tuning budgets (`qrl tune` per environment before the evaluation runs; Optuna TPE; objective: "
                 "mean normalised area under the evaluation curve): "
                 + "; ".join(f"{agent} {budget_text(b)}" for agent, b in budgets.items())
                 + (" (equal)" if equal else " (**unequal**: comparisons between agents with different budgets "
                                             "are flagged)"))
    use = study.get("seed_use")
    if use:
        from qrl.envs import EVAL_SEED_OFFSET

        evaluation, tuning = use
        lines.append(f"- Seed use: evaluation runs seeds {_seed_range(evaluation)} (evaluation episodes from "
                     f"{min(evaluation) + EVAL_SEED_OFFSET}); tuning runs seeds {_seed_range(tuning)} (evaluation "
                     f"episodes from {min(tuning) + EVAL_SEED_OFFSET}): disjoint, no evaluation run shares a seed "
                     f"with tuning")
    return lines


def _seed_range(seeds: list[int]) -> str:
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def _env_section(result: _EnvResult, figures: dict[str, str], reps: int, seed: int) -> list[str]:
    """The markdown of one environment: verdicts, tables and figures."""
    lines = [f"## {result.env}", ""]
    if not result.curves:
        return [*lines, "No finished runs on this environment.", ""]
    by_other = {c.other.agent: c for c in result.comparisons}
    focus = result.comparisons[0].focus.agent if result.comparisons else "focus"
    lines += _verdict_section(result)
    lines += _tuning_section(result)
    lines += _final_section(result, figures, by_other, focus)
    lines += _steps_section(result, figures, by_other, focus)
    lines += _training_section(result, reps, stats.child_seed(seed, result.env))
    lines += _complexity_section(result, figures)
    lines += ["### Learning curves", ""]
    if "curves" in figures:
        lines += [f"![learning curves on {result.env}]({figures['curves']})", ""]
    return lines + _cost_section(result)


def _verdict_section(result: _EnvResult) -> list[str]:
    """The verdict sentences of every comparison, and a warning when too few runs make a rank test powerless."""
    lines = ["### Verdict", ""]
    budgets = result.budgets or {}
    for comparison in result.comparisons:
        lines += [f"- {sentence}" for sentence in verdict(comparison, result.threshold, result.final_evals,
                                                          result.best_model)]
        f, o = comparison.focus.agent, comparison.other.agent
        lines += _speedup_sentence(result, f, o)
        if budgets.get(f) != budgets.get(o):
            lines.append(f"- **Unequal tuning budgets**: {f} {budget_text(budgets.get(f))} vs {o} "
                         f"{budget_text(budgets.get(o))}; this comparison can favour the agent tuned more; give "
                         f"both the same `tune` budget in the study file for a fair one.")
    if not result.comparisons:
        lines.append("- No comparison: the study has no agent besides the focus agent on this environment.")
    lines += [f"- {warning}" for warning in tuning_warnings(result)]
    floors = [(c, stats.min_mann_whitney_p(c.focus.num_runs, c.other.num_runs)) for c in result.comparisons
              if c.focus.num_runs and c.other.num_runs]
    floors = [(c, p) for c, p in floors if p > 0.05]
    if floors:
        pairs = ", ".join(f"{format_p(p)} for {c.focus.agent} vs {c.other.agent} ({c.focus.num_runs} vs "
                          f"{c.other.num_runs} runs)" for c, p in floors)
        lines.append(f"- Few runs: the exact Mann-Whitney p-value cannot go below {pairs}; a rank test cannot reject "
                     f"at 0.05 with so few seeds.")
    return [*lines, ""]


NOTHING_LEARNED = 0.05
"""A tuning whose best objective (normalised area under the evaluation curve: 0 = a random policy throughout, 1 =
at the threshold from the first evaluation) is below this found no setting that learned: flagged in the report."""


def tuning_warnings(result: _EnvResult) -> list[str]:
    """A sentence per agent whose tuning on this env found nothing that learned (:data:`NOTHING_LEARNED`)."""
    out = []
    for agent in result.agents:
        done = (result.tuning or {}).get(agent)
        if done and done["best"] is not None and done["best"] < NOTHING_LEARNED:
            trials = done["states"]["COMPLETE"] + done["states"]["PRUNED"]
            out.append(f"**Tuning found nothing that learned** for {agent} on {result.env}: the best of its {trials} "
                       f"trials scored {done['best']:.3f} (0: a random policy's return throughout; 1: at the "
                       f"threshold from the first evaluation), so its evaluation runs use a setting that did not "
                       f"learn on the tuning seeds, and comparisons with it here measure the tuning budget more than "
                       f"the agent; try a larger budget (trials or steps).")
    return out


def _speedup_sentence(result: _EnvResult, focus: str, other: str) -> list[str]:
    """Whether ``focus`` is :data:`CLAIMED_SPEEDUP` times faster than ``other``, by steps to threshold and by S."""
    ratio, s_ratio = (result.censored or {}).get(other), efficiency_ratio(result, focus, other)
    if ratio is None and s_ratio is None:
        return []
    parts = []
    for name, r in (("median steps to threshold", ratio), ("S(0.1, 0.5)", s_ratio)):
        answer = speedup_answer(r)
        word = {"yes": "supported", "no": "not supported"}.get(answer, answer)
        parts.append(f"by {name}, ratio {_ratio_ci(r)}: {word}")
    return [f"- Is {focus} {CLAIMED_SPEEDUP:g}x faster than {other} (ratio <= {format_ratio(1 / CLAIMED_SPEEDUP)})? "
            + "; ".join(parts) + "."]


def _tuning_section(result: _EnvResult) -> list[str]:
    """Each tuned agent's budget, the trials its tuning recorded and where its preset is (nothing if none tuned)."""
    budgets, tuning = result.budgets or {}, result.tuning or {}
    if not any(budgets.values()):
        return []
    rows = []
    for agent in result.agents:
        done = tuning.get(agent)
        states = (f"{done['states']['COMPLETE']} / {done['states']['PRUNED']} / {done['states']['FAIL']}"
                  if done else ("n/a" if budgets.get(agent) is None else "no trials.csv"))
        best = f"{done['best']:.3f}" if done and done["best"] is not None else ""
        preset = f"`{tuned_preset('', _base(agent), result.env)}`" if budgets.get(agent) else ""  # in the study folder
        rows.append([agent, budget_text(budgets.get(agent)), states, best, preset])
    return ["### Tuning", "", *_table(["agent", "budget", "trials complete / pruned / failed", "best objective",
                                       "preset used by the evaluation runs"], rows)]


def _final_section(result: _EnvResult, figures: dict[str, str], by_other: dict[str, stats.Comparison],
                   focus: str) -> list[str]:
    """Final performance per agent: IQM, mean and median with CIs, runs ending at or above the threshold,
    improvement over each agent, Mann-Whitney p."""
    lines = ["### Final performance", "",
             f"Final return: {_final_words(result.final_evals, result.best_model)} of each run.", ""]
    rows = []
    for agent in result.agents:
        res = result.results[agent]
        ended = [] if result.threshold is None else [_ended(res)]
        if res.num_runs == 0:
            rows.append([agent, 0, "n/a", "n/a", "n/a", *ended, "", ""])
            continue
        est = res.final_estimates
        c = by_other.get(agent)
        rows.append([agent, res.num_runs, _ci(est["iqm"]), _ci(est["mean"]), _ci(est["median"]), *ended,
                     _ci(c.improvement, lambda x: f"{x:.2f}") if c else "(focus)",
                     format_p(c.final_p) if c else ""])
    ended_head = [] if result.threshold is None else [
        f"runs ending at or above {format_value(result.threshold)} (95% CI)"]
    lines += _table(["agent", "finished runs", "IQM (95% CI)", "mean (95% CI)", "median (95% CI)", *ended_head,
                     f"P({focus} > agent) (95% CI)", "Mann-Whitney p"], rows)
    if "final" in figures:
        lines += [f"![final performance of {result.env}]({figures['final']})", ""]
    return lines


def _ended(res: stats.AgentResult) -> str:
    """``9/10 = 0.90 (0.60 to 0.98)``: runs whose final return is at or above the threshold, with the interval."""
    e = res.ended_above
    if e is None or res.num_runs == 0:
        return "n/a"
    return f"{res.ended_above_count}/{res.num_runs} = {e.point:.2f} ({e.low:.2f} to {e.high:.2f})"


def _steps_section(result: _EnvResult, figures: dict[str, str], by_other: dict[str, stats.Comparison],
                   focus: str) -> list[str]:
    """Steps to threshold per agent: runs reaching it, median steps with CI, ratio to the focus agent."""
    if result.threshold is None:
        return ["No reward threshold for this environment: steps to threshold are not computed.", ""]
    lines = [f"### Steps to threshold ({format_value(result.threshold)})", ""]
    rows = []
    for agent in result.agents:
        res = result.results[agent]
        if res.num_runs == 0 or res.median_steps is None:
            rows.append([agent, "0/0", "n/a", "", ""])
            continue
        c = by_other.get(agent)
        reached = int(np.isfinite(res.steps).sum()) if res.steps is not None else 0
        ratio = c.steps_ratio if c else None
        if ratio is None:
            ratio_text = "(focus)"
        elif math.isfinite(ratio.point) and ratio.point > 0:
            ratio_text = _ci(ratio, format_ratio)
        else:
            ratio_text = "n/a (a median run never reached it)"
        rows.append([agent, f"{reached}/{res.num_runs}", _steps_ci(res.median_steps), ratio_text,
                     format_p(c.steps_p) if c else ""])
    lines += _table(["agent", "runs reaching it", "median steps (95% CI)", f"ratio {focus} / agent (95% CI)",
                     "Mann-Whitney p"], rows)
    if "steps" in figures:
        lines += [f"![steps to threshold on {result.env}]({figures['steps']})", ""]
    return lines


def _training_section(result: _EnvResult, reps: int, seed: int) -> list[str]:
    """Training episodes until the mean of 10 consecutive ones reached the threshold (REINFORCE's usual criterion;
    runs.csv ``episodes_to_threshold``), per agent, for runs that logged their training episodes."""
    if result.threshold is None:
        return []
    rows = []
    for agent in result.agents:
        logged = [r for r in result.runs.get(agent, []) if not math.isnan(r.numbers.get("training_episodes", math.nan))]
        if not logged:
            continue
        episodes = np.array([r.numbers["episodes_to_threshold"] for r in logged])
        episodes = np.where(np.isnan(episodes), math.inf, episodes)  # logged, never reached: censored
        median = stats.median_steps(episodes, reps, stats.child_seed(seed, agent, "training-episodes"))
        totals = [r.numbers["training_episodes"] for r in logged]
        rows.append([agent, f"{int(np.isfinite(episodes).sum())}/{len(logged)}",
                     _ci(median, lambda x: "never" if math.isinf(x) else f"{x:.0f}"), _span(totals)])
    if not rows:
        return []
    return [f"### Training episodes to {format_value(result.threshold)} (mean of {TRAINING_WINDOW} consecutive)", "",
            f"From each run's training episodes (`training_episodes.csv`; returns before any normalising): after "
            f"how many episodes the mean of the last {TRAINING_WINDOW} first reached the threshold.", "",
            *_table(["agent", "runs reaching it", "median episodes (95% CI)", "training episodes per run"], rows)]


def _complexity_section(result: _EnvResult, figures: dict[str, str]) -> list[str]:
    """S(eps, delta) per agent and eps, with the normalisation bounds it was computed with."""
    lines = ["### Sample complexity S(eps, delta)", ""]
    if not result.efficiency:
        return [*lines, "Not computed: every evaluation return on this environment is the same, so there is "
                "nothing to normalise.", ""]
    low, high = result.bounds or (math.nan, math.nan)
    lines += [f"Normalised with the study's lowest and highest evaluation return on {result.env}: "
              f"{format_value(low)} -> 0, {format_value(high)} -> 1. Steps, with the 5th-95th "
              f"percentile band; never = the fraction was not reached.", ""]
    rows = []
    for agent in result.agents:
        for eps in stats.EPSILONS:
            curve = result.efficiency.get(agent, {}).get(eps)
            rows.append([agent, eps, *(_steps_ci(curve.complexity[d]) if curve else "n/a" for d in stats.DELTAS)])
    lines += _table(["agent", "eps", *(f"S(eps, {d})" for d in stats.DELTAS)], rows)
    if "efficiency" in figures:
        lines += [f"![sample efficiency on {result.env}]({figures['efficiency']})", ""]
    return lines


def _cost_section(result: _EnvResult) -> list[str]:
    """Parameters, wall-clock, throughput and circuit executions per agent."""
    rows = []
    for agent in result.agents:
        runs = result.runs[agent]

        def column(key: str, runs: list[_Run] = runs) -> list[float]:
            return [r.numbers[key] for r in runs]

        rows.append([agent, _span(column("params_total")), _span(column("params_quantum")),
                     _span(column("params_classical")), _median(column("wall_clock_s"), lambda x: f"{x:.0f}"),
                     f"{sum(v for v in column('wall_clock_s') if not math.isnan(v)):.0f}",
                     _median(column("steps_per_s"), lambda x: f"{x:.0f}"),
                     _median(column("circuit_executions"), lambda x: f"{x:.0f}"),
                     _median(column("hardware_circuits"), lambda x: f"{x:.3g}")])
    lines = ["### Cost", ""]
    lines += _table(["agent", "params total", "params quantum", "params classical", "wall-clock per run, median (s)",
                     "wall-clock, all runs (s)", "steps/s, median", "circuit executions per run, median",
                     "on hardware with parameter-shift gradients, median"], rows)
    lines += ["", "Circuit executions: one per sample of every circuit forward pass. On hardware each differentiated "
              "sample also runs 2 circuits per trainable gate angle (parameter-shift rule); "
              "`qrl eval RUN --device D --shots N --dry-run` turns these counts into QPU time and price.", ""]
    return lines
