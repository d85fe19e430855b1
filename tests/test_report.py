"""qrl.report: verdict sentences, and the report of a synthetic study (3 agents x 3 seeds x 1 env, one failed run):
final return as the mean of the last k evaluations, runs ending at or above the threshold, tuning budgets."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest
import yaml

from qrl import stats
from qrl.errors import QRLError
from qrl.report import REQUIRED_RUN_FIELDS as RUN_COLUMNS  # a study made before cost accounting
from qrl.report import speedup_answer, verdict, write_report
from qrl.runs import RECORD_FIELDS as RECORD_COLUMNS

AGENTS = ("ppo-vqc", "ppo-mlp-matched", "ppo-mlp")
PARAMS = {"ppo-vqc": (123, 60, 63), "ppo-mlp-matched": (120, 0, 120), "ppo-mlp": (9155, 0, 9155)}
WALL = {"ppo-vqc": 400.0, "ppo-mlp-matched": 20.0, "ppo-mlp": 25.0}
ERROR = "RuntimeError: worker 3 ran out of memory"
PNG = b"\x89PNG\r\n\x1a\n"


def _curve(agent: str, seed: int) -> list[tuple[int, float]]:
    """Evaluations every 1000 steps to 10000; ppo-mlp's last one is at 10240 (a longer final rollout).

    ppo-vqc jumps from 20 to 500 at (3 + seed) * 1000 steps, ppo-mlp-matched at (7 + seed) * 1000 and
    ppo-mlp climbs linearly to about 307 and never reaches 475.
    """
    steps = [*range(1000, 10001, 1000)]
    if agent == "ppo-mlp":
        return [(t, 300 * t / 10000) for t in [*steps[:-1], 10240]]
    jump = (3 if agent == "ppo-vqc" else 7) + seed
    return [(t, 500.0 if t >= jump * 1000 else 20.0) for t in steps]


def make_study(root: Path, failed: tuple[tuple[str, int], ...] = (("ppo-mlp", 2),),
               threshold: float | None = 475.0, **keys) -> Path:
    """A study folder as `qrl study` leaves it; ``keys`` go into its study.yaml (``final_evals``, ``tune``)."""
    study_dir = root / "study"
    study_dir.mkdir()
    definition = {"name": "synthetic", "envs": ["CartPole-v1"], "agents": list(AGENTS), "seeds": [0, 1, 2],
                  "steps": 10000, "eval_freq": 1000, "thresholds": {"CartPole-v1": threshold}, **keys}
    (study_dir / "study.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
    records, runs = [], []
    for agent in AGENTS:
        for seed in range(3):
            run_id = f"CartPole-v1__{agent}__{seed}"
            base = {"run_id": run_id, "env": "CartPole-v1", "agent": agent, "seed": seed}
            if (agent, seed) in failed:
                runs.append({**base, "status": "failed", "attempts": 2, "error": ERROR})
                continue
            curve = _curve(agent, seed)
            records += [{**base, "timesteps": t, "mean_return": r, "std_return": 1.0, "wall_clock_s": t / 25}
                        for t, r in curve]
            total, quantum, classical = PARAMS[agent]
            runs.append({**base, "status": "finished", "attempts": 1, "error": "", "reward_threshold": threshold,
                         "timesteps": curve[-1][0], "wall_clock_s": WALL[agent], "steps_per_s": 25.0,
                         "final_eval_mean": curve[-1][1], "final_eval_std": 1.0, "best_eval_mean": curve[-1][1],
                         "steps_to_threshold": "", "params_total": total, "params_quantum": quantum,
                         "params_classical": classical, "circuit_executions": 1000 if quantum else 0})
    for name, columns, rows in (("records.csv", RECORD_COLUMNS, records), ("runs.csv", RUN_COLUMNS, runs)):
        with open(study_dir / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
    return study_dir


@pytest.fixture
def report(tmp_path) -> tuple[Path, str]:
    path = write_report(make_study(tmp_path), reps=200, seed=0)
    return path, path.read_text()


def test_report_verdicts(report):
    path, text = report
    assert path == path.parent.parent / "report" / "report.md"
    # medians 4000 (3000-5000) vs 8000 (7000-9000): disjoint; ratio 4000 / 8000
    assert ("- ppo-vqc reached 475 in 4k steps (median; 95% CI 3k-5k; 3/3 runs reached it) vs 8k (7k-9k; "
            "3/3 runs reached it) for ppo-mlp-matched: faster, the intervals do not overlap; ratio 0.50x") in text
    assert ("vs a median run that never reached it (never-never; 0/2 runs reached it) for ppo-mlp: faster, "
            "the intervals do not overlap") in text
    # final return = mean of the last 3 evaluations (the default): ppo-vqc 500 in every run; ppo-mlp-matched's
    # seed 2 jumps at 9000, so its last three are 20, 500, 500 (340); ppo-mlp's are 240, 270, 307.2 (272.4)
    assert ("Final return (mean of the last 3 evaluations): ppo-vqc IQM 500 (95% CI 500 to 500) vs 447 (392 to 500) "
            "for ppo-mlp-matched: no difference can be claimed (intervals overlap; Mann-Whitney p = 1)") in text
    assert "runs ending at or above 475: 3/3 vs 2/3." in text
    assert "vs 272 (272 to 272) for ppo-mlp: higher, the intervals do not overlap" in text
    assert "runs ending at or above 475: 3/3 vs 0/2." in text
    assert ("cannot go below 0.1 for ppo-vqc vs ppo-mlp-matched (3 vs 3 runs), 0.2 for ppo-vqc vs ppo-mlp (3 vs 2 "
            "runs)") in text
    assert "| ppo-mlp | 2 | 272 (272 to 272) | " in text and "| 1.00 (1.00 to 1.00) | 0.2 |" in text
    assert ("| ppo-mlp-matched | 3 | 447 (392 to 500) | 447 (392 to 500) | 500 (340 to 500) | "
            "2/3 = 0.67 (0.21 to 0.94)") in text


def test_report_tables(report):
    _, text = report
    assert "| ppo-vqc | 123 | 60 | 63 | 400 | 1200 | 25 | 1000 |" in text
    assert "| ppo-mlp-matched | 120 | 0 | 120 | 20 | 60 | 25 | 0 |" in text
    assert "| ppo-mlp | 9155 | 0 | 9155 | 25 | 50 | 25 | 0 |" in text  # two finished runs
    assert "| ppo-vqc | 3/3 | 4k (3k-5k) | (focus) |" in text
    assert "| ppo-mlp | 0/2 | never (never-never) | n/a (a median run never reached it) | 0.2 |" in text
    assert "| ppo-vqc | 3 | 500 (500 to 500) |" in text
    # S(0.1, 0.5): normalised with 20 -> 0 and 500 -> 1; ppo-vqc's 2nd of 3 runs is at 500 from 4000 steps
    assert "20 -> 0, 500 -> 1" in text
    assert "| ppo-vqc | 0.2 | 4k (3k-5k) | 3k (3k-4k) | 3k (3k-4k) |" in text
    assert "| ppo-vqc | 0.1 | 4k (" in text and "| ppo-mlp | 0.1 | never (never-never) |" in text
    assert "- Seeds: 0, 1, 2 (3 per agent and environment)" in text
    assert "- Runs: 9 in runs.csv, 8 finished, 1 failed" in text


def test_report_lists_the_failure(report):
    _, text = report
    failures = text.split("## Failed runs", 1)[1]
    assert "`CartPole-v1__ppo-mlp__2` (CartPole-v1, ppo-mlp, seed 2, 2 attempts)" in failures
    assert ERROR in failures


def test_report_images_exist(report):
    path, text = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 4  # final performance, steps to threshold, sample efficiency, learning curves
    for link in links:
        image = path.parent / link
        assert image.is_file() and image.stat().st_size > 1000, link
        assert image.read_bytes()[:8] == PNG


def test_report_is_deterministic(tmp_path):
    study = make_study(tmp_path, failed=())
    first = write_report(study, out=tmp_path / "a", reps=100, seed=3).read_text()
    assert write_report(study, out=tmp_path / "b", reps=100, seed=3).read_text() == first
    for image in (tmp_path / "a").glob("*.png"):
        assert (tmp_path / "b" / image.name).read_bytes() == image.read_bytes(), image.name
    assert "None." in first.split("## Failed runs", 1)[1]
    assert write_report(study, out=tmp_path / "c", reps=100, seed=4).read_text() != first


def test_report_of_an_agent_without_finished_runs_and_no_threshold(tmp_path):
    study = make_study(tmp_path, failed=tuple(("ppo-mlp", s) for s in range(3)), threshold=None)
    path = write_report(study, reps=50)
    text = path.read_text()
    assert "- No comparison of ppo-vqc with ppo-mlp: ppo-mlp has no finished runs." in text
    assert "No reward threshold for this environment: steps to threshold are not computed." in text
    assert "| ppo-mlp | 0 | n/a | n/a | n/a |" in text
    assert text.count("`CartPole-v1__ppo-mlp__") == 3
    assert sorted(p.name for p in path.parent.glob("*.png")) == [
        "CartPole-v1_final_performance.png", "CartPole-v1_learning_curves.png", "CartPole-v1_sample_efficiency.png"]


def test_missing_runs_csv_says_what_to_do(tmp_path):
    study = make_study(tmp_path)
    (study / "runs.csv").unlink()
    expected = r"expected .*/study/runs\.csv written by `qrl study`; got no such file; try `qrl study"
    with pytest.raises(QRLError, match=expected):
        write_report(study, reps=10)


def test_malformed_tables_are_errors(tmp_path):
    study = make_study(tmp_path)
    runs = (study / "runs.csv").read_text()
    (study / "runs.csv").write_text(runs.replace("final_eval_mean", "final_mean", 1))
    with pytest.raises(QRLError, match="missing final_eval_mean"):
        write_report(study, reps=10)
    (study / "runs.csv").write_text(runs)
    records = (study / "records.csv").read_text().splitlines()
    (study / "records.csv").write_text("\n".join(r for r in records if "ppo-vqc__1" not in r) + "\n")
    with pytest.raises(QRLError, match="evaluations of finished run CartPole-v1__ppo-vqc__1"):
        write_report(study, reps=10)
    with pytest.raises(QRLError, match="not a folder"):
        write_report(tmp_path / "nothing", reps=10)


def _agents(focus_steps, other_steps, focus_final, other_final, reps=500):
    focus = stats.summarise_agent("vqc", focus_final, focus_steps, reps=reps, seed=0)
    other = stats.summarise_agent("mlp", other_final, other_steps, reps=reps, seed=0)
    return stats.compare(focus, other, reps=reps, seed=0)


def test_verdict_faster_for_separated_agents():
    comparison = _agents([10_000, 11_000, 12_000, 13_000, 14_000], [50_000, 52_000, 55_000, 58_000, 60_000],
                         [500, 500, 498, 499, 500], [200, 250, 300, 220, 260])
    steps, final = verdict(comparison, threshold=475)
    assert steps.startswith("vqc reached 475 in 12k steps (median; 95% CI ")
    assert "for mlp: faster, the intervals do not overlap; ratio 0.22x" in steps
    assert "higher, the intervals do not overlap" in final and "P(vqc > mlp) = 1.00" in final
    reverse = stats.compare(comparison.other, comparison.focus, reps=500, seed=0)
    steps, final = verdict(reverse, threshold=475)
    assert "slower, the intervals do not overlap" in steps and "lower, the intervals do not overlap" in final


def test_verdict_no_difference_for_identical_agents():
    runs = [20_000, 30_000, 40_000, 35_000]
    comparison = _agents(runs, runs, [400, 450, 500, 480], [400, 450, 500, 480])
    steps, final = verdict(comparison, threshold=475)
    assert "no difference can be claimed (intervals overlap; Mann-Whitney p = 1)" in steps
    assert "no difference can be claimed (intervals overlap; Mann-Whitney p = 1)" in final
    assert "P(vqc > mlp) = 0.50" in final


def test_verdict_with_runs_that_never_reach():
    comparison = _agents([10_000, 12_000, 14_000], [math.inf] * 3, [500, 500, 500], [100, 120, 90])
    steps, _ = verdict(comparison, threshold=475)
    assert "a median run that never reached it (never-never; 0/3 runs reached it) for mlp: faster" in steps
    assert verdict(comparison)[0].startswith("Final return:")  # no threshold: no steps sentence
    empty = stats.compare(comparison.focus, stats.summarise_agent("dead", [], [], reps=10), reps=10)
    assert verdict(empty, 475) == ["No comparison of vqc with dead: dead has no finished runs."]


def test_final_evals_one_is_the_last_evaluation(tmp_path):
    text = write_report(make_study(tmp_path, final_evals=1), reps=200, seed=0).read_text()
    assert ("Final return (the last evaluation): ppo-vqc IQM 500 (95% CI 500 to 500) vs 500 (500 to 500) for "
            "ppo-mlp-matched: no difference can be claimed") in text
    assert "vs 307 (307 to 307) for ppo-mlp: higher" in text and "runs ending at or above 475: 3/3 vs 3/3." in text
    assert "- Final return: the last evaluation of each run (`final_evals: 1`" in text


def test_drift_at_the_end_is_not_flattered(tmp_path):
    """A run at 500 in its last evaluation only, after two at 100, ends at 233: below the threshold."""
    study = make_study(tmp_path, failed=())
    records = (study / "records.csv").read_text().splitlines()
    drifted = [r.replace(",500.0,", ",100.0,") if r.startswith("CartPole-v1__ppo-vqc__0,") and
               (",8000," in r or ",9000," in r) else r for r in records]
    (study / "records.csv").write_text("\n".join(drifted) + "\n")
    text = write_report(study, reps=200, seed=0).read_text()
    assert "| ppo-vqc | 3 | 411 (233 to 500) | 411 (233 to 500) | 500 (233 to 500) | 2/3 = 0.67" in text


def test_report_states_budgets_and_flags_unequal_ones(tmp_path):
    tune = {"trials": 4, "steps": 384, "seeds": 2, "ppo-mlp": None}
    text = write_report(make_study(tmp_path, tune=tune), reps=50).read_text()
    assert ("ppo-vqc tuned: 4 trials x 2 seeds x 384 steps; ppo-mlp-matched tuned: 4 trials x 2 seeds x 384 steps; "
            "ppo-mlp not tuned (its preset's hyperparameters) (**unequal**") in text
    assert ("- Seed use: evaluation runs seeds 0-2 (evaluation episodes from 10000); tuning runs seeds 100000, "
            "100001 (evaluation episodes from 110000): disjoint") in text
    verdicts = text.split("### Verdict", 1)[1].split("###", 1)[0]
    assert verdicts.count("**Unequal tuning budgets**") == 1
    assert ("- **Unequal tuning budgets**: ppo-vqc tuned: 4 trials x 2 seeds x 384 steps vs ppo-mlp not tuned") \
        in verdicts
    assert "| ppo-vqc | tuned: 4 trials x 2 seeds x 384 steps | no trials.csv |" in text


def test_report_of_equal_budgets_and_of_no_tuning(tmp_path):
    equal = write_report(make_study(tmp_path, tune={"trials": 4, "steps": 384}), out=tmp_path / "a", reps=50)
    text = equal.read_text()
    assert "3 seeds x 384 steps (equal)" in text and "Unequal" not in text
    (tmp_path / "untuned").mkdir()
    text = write_report(make_study(tmp_path / "untuned"), reps=50).read_text()
    assert "- Tuning: none in this study; every agent ran its preset's hyperparameters" in text
    assert "Unequal" not in text and "### Tuning" not in text


def test_verdict_shows_the_digits_that_separate_touching_intervals():
    comparison = _agents(None, None, [499.9, 499.9, 499.9, 499.9], [500, 500, 500, 500])
    _, final = verdict(comparison, final_evals=3)[0], verdict(comparison, final_evals=3)[-1]
    assert final.startswith("Final return (mean of the last 3 evaluations): vqc IQM 500 (95% CI 499.9 to 499.9) vs "
                            "500 (500 to 500) for mlp: lower, the intervals do not overlap")


@pytest.mark.parametrize("low, high, answer", [
    (0.1, 0.3, "yes"), (0.2, 1 / 3, "yes"), (0.34, 0.9, "no"), (0.2, 0.5, "cannot tell (interval includes 0.33x)"),
    (math.nan, math.nan, "cannot tell (no ratio)"), (math.inf, math.inf, "no")])
def test_speedup_answer_needs_the_whole_interval_on_one_side_of_one_third(low, high, answer):
    assert speedup_answer(stats.Estimate((low + high) / 2, low, high)) == answer
    assert speedup_answer(None) == "cannot tell (no ratio)"


def test_summary_table_and_3x_sentences(report):
    """ppo-vqc needs 4k steps (median) against 8k (ppo-mlp-matched) and never within ppo-mlp's 10240 steps, so the
    ratios are 0.50x and at most 4000 / 10240 = 0.39x: both intervals include 1/3, so 3x cannot be told."""
    _, text = report
    summary = text.split("## Summary", 1)[1].split("## How to read", 1)[0]
    assert ("| CartPole-v1 | ppo-mlp-matched | 0.50x (0.33x-0.71x) | 0.50x (0.33x-0.71x) | faster | 500 vs 447 | "
            "no claim | 3/3 vs 2/3 | cannot tell (interval includes 0.33x) |") in summary
    assert "| CartPole-v1 | ppo-mlp | 0.39x (0.29x-0.49x) | 0.39x (0.29x-0.49x) | faster | 500 vs 272 | higher |" \
        in summary
    assert ("- Is ppo-vqc 3x faster than ppo-mlp (ratio <= 0.33x)? by median steps to threshold, ratio 0.39x "
            "(0.29x-0.49x): cannot tell (interval includes 0.33x)") in text


def test_report_of_steps_per_env(tmp_path):
    steps = {"CartPole-v1": 10000}
    tune = {"trials": 4, "seeds": 2, "steps": {"CartPole-v1": 384}}
    text = write_report(make_study(tmp_path, steps=steps, tune=tune), reps=50).read_text()
    assert "- Steps per run: (10k on CartPole-v1)" in text
    assert "ppo-vqc tuned: 4 trials x 2 seeds x (384 on CartPole-v1) steps" in text
    assert "| ppo-vqc | tuned: 4 trials x 2 seeds x 384 steps |" in text  # the env's own budget in its section


def test_training_episodes_to_threshold_per_agent(tmp_path):
    """Runs that logged their training episodes: ppo-vqc's reached the 10-episode mean after 30, never and 50
    episodes (median 50; 2/3), the other agents logged none and get no row; the committed REINFORCE study too."""
    study = make_study(tmp_path, failed=())
    with open(study / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        logged = row["agent"] == "ppo-vqc"
        row["training_episodes"] = {0: 100, 1: 120, 2: 90}[int(row["seed"])] if logged else ""
        row["episodes_to_threshold"] = {0: 30, 1: "", 2: 50}[int(row["seed"])] if logged else ""
    with open(study / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = write_report(study, reps=200, seed=0).read_text()
    section = text.split("### Training episodes to 475 (mean of 10 consecutive)", 1)[1].split("###", 1)[0]
    assert "| ppo-vqc | 2/3 | 50 (30 to never) | 90-120 |" in section and "ppo-mlp" not in section
    plain = tmp_path / "plain"  # a study made before training-episode logs
    plain.mkdir()
    assert "### Training episodes" not in write_report(make_study(plain), reps=50).read_text()


def test_committed_reinforce_study_reports_its_training_episodes(tmp_path):
    import shutil

    study = shutil.copytree(Path(__file__).resolve().parents[1] / "runs/reference/cartpole-reinforce-vqc",
                            tmp_path / "study", ignore=shutil.ignore_patterns("report"))
    text = write_report(study, reps=2000, seed=0).read_text()
    assert "| reinforce-vqc | 10/10 | 524 (347 to 892) | 750-1650 |" in text


def test_a_tuning_that_found_nothing_that_learned_is_flagged(tmp_path):
    study = make_study(tmp_path, tune={"trials": 3, "steps": 384})
    for agent, best in (("ppo-vqc", "0.0031"), ("ppo-mlp", "0.4")):
        folder = study / "tune" / f"{agent}__CartPole-v1"
        folder.mkdir(parents=True)
        (folder / "trials.csv").write_text(f"number,state,objective\n0,COMPLETE,{best}\n1,COMPLETE,0\n2,PRUNED,\n")
    text = write_report(study, reps=50).read_text()
    warning = ("**Tuning found nothing that learned** for ppo-vqc on CartPole-v1: the best of its 3 trials scored "
               "0.003 (0: a random policy's return throughout")
    assert text.count(warning) == 2  # under the summary table and in the env's verdicts
    assert "for ppo-mlp on" not in text and "for ppo-mlp-matched on" not in text


def test_readme_benchmark_table_is_the_committed_studys_report(tmp_path):
    """The README's benchmark verdict table, row by row, is what `qrl report` makes of the committed study's
    tables (runs.csv, records.csv, the tunings' trials.csv) today."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    source, study = root / "runs/reference/benchmark", tmp_path / "benchmark"
    study.mkdir()
    for name in ("study.yaml", "runs.csv", "records.csv"):
        shutil.copy(source / name, study / name)
    for trials in source.glob("tune/*/trials.csv"):
        (study / trials.parent.relative_to(source)).mkdir(parents=True)
        shutil.copy(trials, study / trials.relative_to(source))
    text = write_report(study, reps=2000, seed=0).read_text()
    readme = (root / "README.md").read_text().split("### Benchmark: three tasks", 1)[1].split("What it says", 1)[0]
    rows = [line for line in readme.splitlines() if line.startswith(("| CartPole-v1", "| FrozenLake", "| Acrobot"))]
    assert len(rows) == 6 and all(row in text for row in rows)


def _readme(flat: bool = True) -> str:
    """The README's text; ``flat``: with every run of whitespace made one space (sentences wrap across lines)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return " ".join(text.split()) if flat else text


def _runs_ending(report: str, agent: str, runs: int) -> str:
    """``"k/runs"`` from an agent's row of a report's final-return table: its runs ending at or above the threshold."""
    match = re.search(rf"^\| {re.escape(agent)} \| {runs} \| .* \| (\d+/{runs}) = ", report, re.M)
    assert match, agent
    return match.group(1)


def _study_table_row(report: str, agent: str, label: str, seeds: str, runs: int) -> str:
    """A README table row ``| label | seeds | reaching | ending at or above | IQM (95% CI) |`` from an agent's rows of a
    report: runs reaching the threshold, runs whose final return ends at or above it, the final return's IQM."""
    reached = re.search(rf"^\| {re.escape(agent)} \| (\d+/{runs}) \| ", report.split("### Steps to threshold")[1], re.M)
    iqm = re.search(rf"^\| {re.escape(agent)} \| {runs} \| ([^|]+) \|", report, re.M).group(1).strip()
    return f"| {label} | {seeds} | {reached.group(1)} | {_runs_ending(report, agent, runs)} | {iqm} |"


def _episodes_to_500(study: str, agent: str) -> list[int | None]:
    """Per run of a committed study's agent (in folder order): the training episode at which the mean of 10
    consecutive ones first reached 500, the TensorFlow Quantum tutorial's criterion (``None``: never)."""
    from qrl import runs

    root = Path(__file__).resolve().parents[1] / "runs/reference" / study / "runs"
    return [runs.episodes_to_mean([e["return"] for e in runs.read_training_episodes(run)], 500)
            for run in sorted(root.glob(f"CartPole-v1__{agent}__*"))]


def _within_500(eps: list) -> list[int]:
    """The episodes of :func:`_episodes_to_500` at or below 500 (the criterion met within 500 episodes)."""
    return [e for e in eps if e is not None and e <= 500]


def _committed_study_report(tmp_path, name: str) -> str:
    """`qrl report` today of a committed study's tables (study.yaml, runs.csv, records.csv), 2000 resamples."""
    import shutil

    source, study = Path(__file__).resolve().parents[1] / "runs/reference" / name, tmp_path / name
    study.mkdir()
    for table in ("study.yaml", "runs.csv", "records.csv"):
        shutil.copy(source / table, study / table)
    return write_report(study, reps=2000, seed=0).read_text()


def _committed_finals(name: str) -> list[float]:
    """The final returns (mean of the last 3 evaluations) of a committed study's run folders, in folder order."""
    from qrl import runs
    from qrl.stats import final_performance

    root = Path(__file__).resolve().parents[1] / "runs/reference" / name / "runs"
    return [final_performance(runs.read_evaluations(run)["mean_return"], 3) for run in sorted(root.iterdir())]


def _finals_below(name: str, threshold: float) -> list[float]:
    """The final returns of a committed study's runs that end below ``threshold``, sorted."""
    return sorted(f for f in _committed_finals(name) if f < threshold)


def _assert_rows_in_readme(rows: list[str]) -> None:
    """Every table row (as :func:`_study_table_row` makes them) is a line of the README."""
    readme = _readme(flat=False)
    assert all(row in readme for row in rows), [row for row in rows if row not in readme]


def test_readme_ten_seed_acrobot_result_is_the_committed_studys_report(tmp_path):
    """Issue 17's Acrobot row in the README (10/10 at or above -100, the IQM and its CI, the median steps) is
    what `qrl report` makes of the committed study's tables today."""
    text = _committed_study_report(tmp_path, "acrobot-ppo-vqc")
    assert "| ppo-vqc | 10 | -83.1 (-86.3 to -80.8) |" in text and "| 10/10 = 1.00 (0.72 to 1.00) |" in text
    assert "| ppo-vqc | 10/10 | 162k (75k-200k) |" in text
    readme = _readme()
    assert "10/10 end at or above -100" in readme and "IQM -83.1 (95% CI -86.3 to -80.8)" in readme
    assert "median 162k steps (95% CI 75k-200k)" in readme


def test_readme_ten_seed_frozenlake_result_is_the_committed_studys_report(tmp_path):
    """Issue 17's FrozenLake row in the README (5/10 at or above 0.70, the IQM and its CI) is what `qrl report`
    makes of the committed study's tables today."""
    text = _committed_study_report(tmp_path, "frozenlake-ppo-vqc")
    assert "| ppo-vqc | 10 | 0.695 (0.528 to 0.726) |" in text and "| 5/10 = 0.50 (0.24 to 0.76) |" in text
    readme = _readme()
    assert "5/10 end at or above a success rate of 0.70" in readme
    assert "IQM 0.695 (95% CI 0.528 to 0.726)" in readme


def test_readme_ten_seed_mountaincar_result_is_the_committed_studys_report(tmp_path):
    """Issue 17's MountainCar row in the README (0/10 at or above -110, the IQM and its CI, 6/10 reaching it)
    is what `qrl report` makes of the committed study's tables today."""
    text = _committed_study_report(tmp_path, "mountaincar-ppo-vqc")
    assert "| ppo-vqc | 10 | -127 (-133 to -119) |" in text and "| 0/10 = 0.00 (0.00 to 0.28) |" in text
    assert "| ppo-vqc | 6/10 | 875k (550k-never) |" in text
    readme = _readme()
    assert "0/10 end at or above -110" in readme and "IQM -127 (95% CI -133 to -119)" in readme


def test_readme_settle_when_solved_results_are_the_committed_studies_reports(tmp_path):
    """The README's table of SettleWhenSolved (issue 17) is what `qrl report` makes of the two committed studies'
    tables today: 7/10 and 7/10 against 3/10 on seeds 10-19, 6/10 against 6/10 on seeds 90-99."""
    tuned = _committed_study_report(tmp_path, "cartpole-ppo-vqc-settle")
    assert "| ppo-vqc-settle-lr01 | 10 | 477 (357 to 497) |" in tuned and "| 7/10 = 0.70 (0.40 to 0.89) |" in tuned
    assert "| ppo-vqc-settle-stop | 10 | 478 (354 to 497) |" in tuned
    assert "| ppo-vqc-base | 10 | 444 (342 to 473) |" in tuned and "| 3/10 = 0.30 (0.11 to 0.60) |" in tuned
    fresh = _committed_study_report(tmp_path, "cartpole-ppo-vqc-settled")
    assert "| ppo-vqc-settle-lr01 | 10 | 423 (279 to 500) |" in fresh
    assert "| ppo-vqc-base | 10 | 422 (283 to 500) |" in fresh
    assert fresh.count("| 6/10 = 0.60 (0.31 to 0.83) |") == 2
    readme = _readme(flat=False)
    for row in ("| settle, learning rate x0.1 | 10-19 | 7/10 | 477 (357 to 497) |",
                "| settle, learning rate x0 (stop) | 10-19 | 7/10 | 478 (354 to 497) |",
                "| the preset without it | 10-19 | 3/10 | 444 (342 to 473) |",
                "| settle, learning rate x0.1 | 90-99 | 6/10 | 423 (279 to 500) |",
                "| the preset without it | 90-99 | 6/10 | 422 (283 to 500) |"):
        assert row in readme


def test_readme_dqn_settle_results_are_the_committed_studies_reports(tmp_path):
    """The README's DQN SettleWhenSolved sentence (issue 17): 3/5 tuning seeds, 3/10 fresh seeds and the IQM."""
    tuned = _committed_study_report(tmp_path, "cartpole-dqn-vqc-settle")
    assert "| dqn-vqc-settle-stop | 5 | 416 (166 to 500) |" in tuned and "| 3/5 = 0.60 (0.23 to 0.88) |" in tuned
    fresh = _committed_study_report(tmp_path, "cartpole-dqn-vqc-settled")
    assert "| dqn-vqc-settle-stop | 10 | 366 (265 to 460) |" in fresh and "| 3/10 = 0.30 (0.11 to 0.60) |" in fresh
    readme = _readme()
    assert "3 of 5 tuning seeds (100-104) ended at 500" in readme
    assert "3/10 ended at or above 475 (IQM 366, 95% CI 265 to 460)" in readme


def test_readme_frozenlake_tuning_is_the_committed_studies_reports(tmp_path):
    """Issue 17's FrozenLake tuning table and fresh-seed sentence in the README are what `qrl report` makes of the
    three committed studies' tables today (runs ending at or above 0.70 per variant)."""
    first = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-tune")
    first_variants = ("ppo-vqc-base", "ppo-vqc-lin", "ppo-vqc-lin-long")
    assert [_runs_ending(first, a, 5) for a in first_variants] == ["2/5", "2/5", "3/5"]
    second = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-tune2")
    assert [_runs_ending(second, a, 10) for a in ("ppo-vqc-lin-long", "ppo-vqc-lin-long-400k", "ppo-vqc-lin-long-ent05")
            ] == ["6/10", "6/10", "7/10"]
    fresh = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-ent05")
    assert _runs_ending(fresh, "ppo-vqc-lin-long-ent05", 10) == "6/10"
    anneal = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-anneal")
    assert [_runs_ending(anneal, f"ppo-vqc-{a}", 10) for a in ("anneal05", "anneal10", "anneal05-const")
            ] == ["8/10", "6/10", "8/10"]
    layers = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-layers")
    assert _runs_ending(layers, "ppo-vqc-anneal05-l8", 10) == "9/10"
    _assert_rows_in_readme([
        "| the preset (constant learning rate 1e-2, 8 x 128 steps per rollout) | 2/5 | - |",
        "| learning rate lin_0.01 | 2/5 | - |", "| lin_0.01, 8 x 256 steps per rollout | 3/5 | 6/10 |",
        "| the same, 400k steps | - | 6/10 |",
        "| lin_0.01, 8 x 256 steps, entropy bonus 0.05 (preset: 0.01) | - | 7/10 |",
        "| the same, the entropy bonus annealed linearly to 0 over the run (`AnnealEntropy`) | - | 8/10 |",
        "| the same, 0.1 annealed to 0 | - | 6/10 |",
        "| the same, 0.05 annealed to 0 by 3/4 of the run, constant learning rate 1e-2 | - | 8/10 |",
        "| 0.05 annealed to 0, 8 circuit layers (preset: 5; 133 parameters instead of 85) | - | 9/10 |"])
    assert "The fifth ended at or above 0.70 on 6 of 10 fresh seeds (180-189" in _readme()


def test_readme_frozenlake_row_met_is_the_committed_studys_report(tmp_path):
    """Issue 17's FrozenLake row (met): 8 layers and the entropy bonus annealed, 9/10 fresh seeds at or above 0.70,
    the IQM and its CI, 133 parameters; the one run short ends at 0.693."""
    text = _committed_study_report(tmp_path, "frozenlake-ppo-vqc-l8")
    assert "| ppo-vqc-anneal05-l8 | 10 | 0.718 (0.704 to 0.738) |" in text and "| 9/10 = 0.90 (0.60 to 0.98) |" in text
    assert "| ppo-vqc-anneal05-l8 | 133 | 133 | 0 |" in text
    assert [round(f, 3) for f in _finals_below("frozenlake-ppo-vqc-l8", 0.70)] == [0.693]
    readme = _readme()
    assert "| FrozenLake-v1 (slippery) | ppo-vqc, 8 circuit layers, entropy bonus 0.05 annealed to 0 (133 " \
           "parameters; the preset: 85) | 350-359 | final success rate >= 0.70 on 9/10 | 9/10 (IQM 0.718;" in readme
    assert "ends at or above 0.70 on 9 of 10; final success rate IQM 0.718 (95% CI 0.704 to 0.738); the tenth ends " \
           "at 0.693" in readme


def test_readme_reinforce_learning_rates_result_is_the_committed_runs(tmp_path):
    """Issue 17's REINFORCE tuning sentences: the tutorial's criterion within 500 episodes on 2/5, 3/5 and 4/5
    tuning seeds, 1/10 fresh seeds at twice the learning rates, and the final evaluations' 4/5, 2/5 and 0/5."""
    tuned = [_episodes_to_500("cartpole-reinforce-vqc-tune", f"reinforce-vqc-{v}") for v in ("base", "ep5", "lr02")]
    assert [len(e) for e in tuned] == [5, 5, 5] and [len(_within_500(e)) for e in tuned] == [2, 3, 4]
    fresh = _episodes_to_500("cartpole-reinforce-vqc-lr02", "reinforce-vqc-lr02")
    assert len(fresh) == 10 and _within_500(fresh) == [463] and fresh.count(None) == 3
    assert sorted(e for e in fresh if e is not None and e > 500) == [517, 520, 538, 569, 904, 1553]
    report = _committed_study_report(tmp_path, "cartpole-reinforce-vqc-tune")
    assert [_runs_ending(report, f"reinforce-vqc-{v}", 5) for v in ("base", "ep5", "lr02")] == ["4/5", "2/5", "0/5"]
    readme = _readme()
    assert "the criterion within 500 episodes on 2/5 with the preset, 3/5 with 5 episodes per step, and 4/5" in readme
    assert "at or above 475 on 4/5 with the preset, 2/5 with 5 episodes per step, 0/5 with twice the" in readme
    assert "within 500 episodes on **1 of 10** (episode 463); six more got there at 517-1,553 episodes" in readme


def test_readme_reinforce_observation_map_results_are_the_committed_studies(tmp_path):
    """Issue 17's REINFORCE row: the tutorial's criterion within 500 episodes on 5/10 and 7/10 tuning seeds (the map
    alone, with the batch baseline) and on 7/10 fresh seeds; final evaluations at or above 475 as the README says."""
    alone, batch = (_episodes_to_500("cartpole-reinforce-vqc-scale", f"reinforce-vqc-{v}")
                    for v in ("scale", "scale-batch"))
    assert len(alone) == len(batch) == 10 and len(_within_500(alone)) == 5 and len(_within_500(batch)) == 7
    assert (min(_within_500(batch)), max(_within_500(batch))) == (193, 487)
    fresh = _episodes_to_500("cartpole-reinforce-vqc-scale-fresh", "reinforce-vqc-scale-batch")
    assert fresh == [340, 898, 214, 385, 288, 370, 522, 540, 236, 192] and len(_within_500(fresh)) == 7
    tuned = _committed_study_report(tmp_path, "cartpole-reinforce-vqc-scale")
    assert [_runs_ending(tuned, f"reinforce-vqc-{v}", 10) for v in ("scale", "scale-batch")] == ["5/10", "10/10"]
    report = _committed_study_report(tmp_path, "cartpole-reinforce-vqc-scale-fresh")
    assert _runs_ending(report, "reinforce-vqc-scale-batch", 10) == "8/10"
    assert re.search(r"^\| reinforce-vqc-scale-batch \| 10 \| 499 ", report, re.M)
    readme = _readme()
    assert "held on **5/10 with the map alone and 7/10 with the batch baseline** (episodes 193-487" in readme
    assert "It prints `[340, 898, 214, 385, 288, 370, 522, 540, 236, 192] 7/10 within 500 episodes`" in readme
    assert ("| 340-349 | 10-episode mean 500 within 500 episodes on 7/10 | 7/10 (the map alone: 5/10 on tuning seeds "
            "140-149;") in readme


def test_readme_lunarlander_seeds_are_the_committed_studys_report(tmp_path):
    """Issue 17's LunarLander row: the committed ten-seed study, seven at or above 200."""
    report = _committed_study_report(tmp_path, "lunarlander-ppo-vqc")
    assert "| ppo-vqc | 10 | 228 (201 to 245) |" in report and "| 7/10 = 0.70 (0.40 to 0.89) |" in report
    assert "| ppo-vqc | 10/10 | 500k (300k-640k) |" in report
    finals = _committed_finals("lunarlander-ppo-vqc")
    readme = _readme()
    assert ", ".join(f"{f:.0f}" for f in finals) == "249, 206, 183, 183, 246, 240, 258, 237, 198, 238"
    assert "Finals 249, 206, 183, 183, 246, 240, 258, 237, 198 and 238 (IQM 228, 95% CI 201 to 245; 7/10 at or " \
           "above 200;" in readme
    assert "every run reached 200 in some evaluation, median 500k steps" in readme
    assert "7/10 (IQM 228; finals 249, 206, 183, 183, 246, 240, 258, 237, 198, 238;" in readme


def test_readme_pendulum_critic_tuning_is_the_committed_runs():
    """Issue 17's Pendulum tuning table in the README: each row's evaluations at 10k, 20k and 30k steps and its
    steps/s are those of the committed run of that variant (seed 200), and the variant's seed-201 sentence."""
    from qrl import runs

    root = Path(__file__).resolve().parents[1] / "runs/reference/pendulum-sac-vqc-tune"

    def evaluations(variant: str, seed: int = 200) -> list[str]:
        run = root / variant / f"Pendulum-v1__sac-vqc__{seed}"
        values = [*runs.read_evaluations(run)["mean_return"], runs.read_results(run)["steps_per_s"]]
        return [f"{v:.0f}" for v in values]

    added = "+ rewards normalised, learning rate"
    rows = {"post": "a linear layer after the readouts (`post_layer=true`)", "post-normreward": "+ rewards normalised",
            "post-normreward-lr3e-3": f"{added} 3e-3", "post-normreward-lr1e-2": f"{added} 1e-2",
            "bounds-post-normreward-lr3e-3": f"{added} 3e-3, `obs_map=bounds`",
            "bounds-post-normreward-lr1e-3": f"{added} 1e-3, `obs_map=bounds`",
            "pre6-post-normreward-lr3e-3": f"{added} 3e-3, a linear layer before the circuit (`pre_layer=true`), "
                                           "6 qubits",
            "pre5-post-normreward-lr3e-3": f"{added} 3e-3, `pre_layer=true`, 5 qubits (the variant)"}
    assert sorted(p.name for p in root.iterdir()) == sorted(rows)
    readme = _readme(flat=False)
    for variant, label in rows.items():
        assert f"| {label} | {' | '.join(evaluations(variant))} |" in readme, variant
    assert evaluations("pre5-post-normreward-lr3e-3", 201)[:2] == ["-123", "-187"]
    assert "The variant on seed 201 (20k steps): -123 and -187 at 10k and 20k." in _readme()


def test_readme_ten_seed_pendulum_result_is_the_committed_studys_report(tmp_path):
    """Issue 17's Pendulum row in the README (10/10 at or above -250 with VQC critics, the IQM and its CI, the median
    steps) is what `qrl report` makes of the committed study's tables today."""
    text = _committed_study_report(tmp_path, "pendulum-sac-vqc")
    assert "| sac-vqc-critics | 10 | -144 (-158 to -130) |" in text and "| 10/10 = 1.00 (0.72 to 1.00) |" in text
    assert "| sac-vqc-critics | 10/10 | 5k (5k-7.5k) |" in text
    readme = _readme()
    assert "10/10 end at or above -250; issue 17's row (9 of 10) is met." in readme
    assert "IQM -144 (95% CI -158 to -130)" in readme and "median 5k steps (95% CI 5k-7.5k)" in readme
    assert "| 10/10 (IQM -144;" in readme


def test_readme_critic_capacity_results_are_the_committed_studies_reports(tmp_path):
    """The README's table of ppo-vqc with linear layers around the critic (issue 17) is what `qrl report` makes of
    the two committed studies' tables today: 7/10, 8/10 and 7/10 on seeds 220-229, 6/10 and 6/10 on 230-239."""
    tuned = _committed_study_report(tmp_path, "cartpole-ppo-vqc-critic")
    assert [_runs_ending(tuned, a, 10) for a in ("ppo-vqc-critic-post", "ppo-vqc-critic-prepost", "ppo-vqc-base")
            ] == ["7/10", "8/10", "7/10"]
    fresh = _committed_study_report(tmp_path, "cartpole-ppo-vqc-critic-fresh")
    assert [_runs_ending(fresh, a, 10) for a in ("ppo-vqc-critic-prepost", "ppo-vqc-base")] == ["6/10", "6/10"]
    rows = [_study_table_row(report, agent, label, seeds, 10) for report, agent, label, seeds in (
            (tuned, "ppo-vqc-critic-post", "critic: a linear layer after the readouts", "220-229"),
            (tuned, "ppo-vqc-critic-prepost", "critic: linear layers before and after", "220-229"),
            (tuned, "ppo-vqc-base", "the preset", "220-229"),
            (fresh, "ppo-vqc-critic-prepost", "critic: linear layers before and after", "230-239"),
            (fresh, "ppo-vqc-base", "the preset", "230-239"))]
    _assert_rows_in_readme(rows)


def test_readme_horizon_results_are_the_committed_studies_reports(tmp_path):
    """The README's table of ppo-vqc with a longer horizon on CartPole-v1 (issue 17) is what `qrl report` makes of the
    two committed studies' tables today: 10/10, 9/10 and 10/10 on the tuning seeds 280-289; on the fresh seeds
    290-299 10/10 for both horizon arms (the row is met) and 2/10 for the preset; and the median steps to 475."""
    tuned = _committed_study_report(tmp_path, "cartpole-ppo-vqc-horizon")
    assert [_runs_ending(tuned, a, 10) for a in ("ppo-vqc-gamma99", "ppo-vqc-lambda95", "ppo-vqc-gamma99-prepost")
            ] == ["10/10", "9/10", "10/10"]
    fresh = _committed_study_report(tmp_path, "cartpole-ppo-vqc-horizon-fresh")
    assert [_runs_ending(fresh, a, 10) for a in ("ppo-vqc-gamma99-prepost", "ppo-vqc-gamma99", "ppo-vqc-base")
            ] == ["10/10", "10/10", "2/10"]  # the row: 9 of 10
    horizon, critic = "gamma 0.99, GAE lambda 0.95", "critic: linear layers before and after"
    rows = [_study_table_row(*row) for row in (
            (tuned, "ppo-vqc-gamma99", horizon, "280-289", 10),
            (tuned, "ppo-vqc-lambda95", "GAE lambda 0.95", "280-289", 10),
            (tuned, "ppo-vqc-gamma99-prepost", f"{horizon}, {critic}", "280-289", 10),
            (fresh, "ppo-vqc-gamma99-prepost", f"{horizon}, {critic}", "290-299", 10),
            (fresh, "ppo-vqc-gamma99", horizon, "290-299", 10),
            (fresh, "ppo-vqc-base", "the preset", "290-299", 10))]
    _assert_rows_in_readme(rows)
    for agent, median in (("ppo-vqc-gamma99", "10/10 | 17.5k (7.5k-27.5k)"), ("ppo-vqc-gamma99-prepost", "10/10 | 7.5k "
                          "(5k-10k)"), ("ppo-vqc-base", "9/10 | 37.5k (15k-40k)")):  # reached 475, median steps
        assert f"| {agent} | {median} |" in fresh, agent
    with open(Path(__file__).resolve().parents[1] / "runs/reference/cartpole-ppo-vqc-horizon-fresh/runs.csv") as f:
        params = {(row["agent"], row["params_total"]) for row in csv.DictReader(f)}
    assert params == {("ppo-vqc-gamma99-prepost", "151"), ("ppo-vqc-gamma99", "123"), ("ppo-vqc-base", "123")}
    readme = _readme()
    assert "17.5k steps to 475 with the preset's critic (95% CI 7.5k-27.5k) and 7.5k (5k-10k) with the" in readme
    assert "against the preset's 37.5k (15k-40k)" in readme
    assert "| 10/10 (IQM 500; with linear layers around the critic too, 151 parameters: 10/10; the preset: 2/10" in (
        readme)


def test_readme_dqn_horizon_results_are_the_committed_studies_reports(tmp_path):
    """The README's table of dqn-vqc with a longer horizon on CartPole-v1 (issue 17) is what `qrl report` makes of the
    two committed studies' tables today: 3/5 and 4/5 on the tuning seeds 300-304, 6/10 on the fresh seeds 310-319."""
    tuned = _committed_study_report(tmp_path, "cartpole-dqn-vqc-horizon")
    assert [_runs_ending(tuned, a, 5) for a in ("dqn-vqc-n5", "dqn-vqc-g995-n5")] == ["3/5", "4/5"]
    fresh = _committed_study_report(tmp_path, "cartpole-dqn-vqc-horizon-fresh")
    assert _runs_ending(fresh, "dqn-vqc-g995-n5", 10) == "6/10"  # the row asks 7 of 10
    variant = "5-step returns, gamma 0.995, output weights 200"
    rows = [_study_table_row(*row) for row in (
            (tuned, "dqn-vqc-n5", "5-step returns", "300-304", 5),
            (tuned, "dqn-vqc-g995-n5", variant, "300-304", 5),
            (fresh, "dqn-vqc-g995-n5", variant, "310-319", 10))]
    _assert_rows_in_readme(rows)
    assert "| dqn-vqc-g995-n5 | 10/10 | 50k (20k-110k) |" in fresh
    short = _finals_below("cartpole-dqn-vqc-horizon-fresh", 475)
    assert f"{short[0]:.0f}-{short[-1]:.0f}" == "261-439" and len(short) == 4
    readme = _readme()
    assert "Every fresh run reached 475 (median 50k steps, 95% CI 20k-110k), and the four that end short" in readme
    assert "the four that end short end at 261-439" in readme


def test_readme_dqn_annealed_results_are_the_committed_studies_reports(tmp_path):
    """The README's table of dqn-vqc with its learning rate annealed on CartPole-v1 (issue 17's row, met) is what
    `qrl report` makes of the two committed studies' tables today: 4/5 and 0/3 on the tuning seeds 320-324 (the
    second arm stopped after 3 runs), 7/10 on the fresh seeds 330-339."""
    tuned = _committed_study_report(tmp_path, "cartpole-dqn-vqc-stable")
    assert _runs_ending(tuned, "dqn-vqc-lin", 5) == "4/5" and _runs_ending(tuned, "dqn-vqc-lin-eps10", 3) == "0/3"
    fresh = _committed_study_report(tmp_path, "cartpole-dqn-vqc-stable-fresh")
    assert _runs_ending(fresh, "dqn-vqc-lin", 10) == "7/10"  # the row asks 7 of 10
    rows = [_study_table_row(*row) for row in (
            (tuned, "dqn-vqc-lin", "learning rate annealed", "320-324", 5),
            (tuned, "dqn-vqc-lin-eps10", "learning rate annealed, 10% random actions", "320-322", 3),
            (fresh, "dqn-vqc-lin", "learning rate annealed", "330-339", 10))]
    _assert_rows_in_readme(rows)
    assert "| dqn-vqc-lin | 8/10 | 100k (20k-never) |" in fresh
    short = _finals_below("cartpole-dqn-vqc-stable-fresh", 475)
    assert f"{short[0]:.0f}-{short[-1]:.0f}" == "181-368" and len(short) == 3
    readme = _readme()
    assert ("On the fresh seeds 8 runs reached 475 (median 100k steps) and the three that end short end at 181-368"
            in readme)
    assert "| 330-339 | final >= 475 on 7/10 within 200k steps | 7/10 (IQM 471;" in readme


def test_readme_hybrid_dqn_result_is_the_committed_studys_report(tmp_path):
    """The README's sentence on dqn-vqc with linear layers around its circuit (issue 17): 0/5 tuning seeds ending at
    or above 475, the IQM and its CI, 4/5 reaching it, as `qrl report` makes of the committed study's tables."""
    report = _committed_study_report(tmp_path, "cartpole-dqn-vqc-hybrid")
    assert "| dqn-vqc-prepost | 5 | 146 (85.1 to 339) |" in report and "| 0/5 = 0.00 (0.00 to 0.43) |" in report
    assert "| dqn-vqc-prepost | 4/5 | " in report
    readme = _readme()
    assert "475 on **0 of 5** tuning seeds (240-244; finals 82-389, IQM 146, 95% CI 85.1 to 339)" in readme
    assert "though 4 of 5 reached 475 in some evaluation" in readme


def test_readme_mountaincar_critic_results_are_the_committed_studies_reports(tmp_path):
    """The README's MountainCar table (issue 17) is what `qrl report` makes of the committed studies' tables today:
    0/4 with an entropy bonus or an annealed learning rate, 3/4 with linear layers around the critic on the tuning
    seeds 250-253; that critic 8/10 on the fresh seeds 260-269; with the learning rate annealed too, 4/4 on 250-253
    and 9/10 on the fresh seeds 270-279 (the row is met); the preset 0/10 on 80-89."""
    tuned = _committed_study_report(tmp_path, "mountaincar-ppo-vqc-tune")
    assert [_runs_ending(tuned, a, 4) for a in ("ppo-vqc-ent01", "ppo-vqc-ent05", "ppo-vqc-lin", "ppo-vqc-critic")
            ] == ["0/4", "0/4", "0/4", "3/4"]
    fresh = _committed_study_report(tmp_path, "mountaincar-ppo-vqc-critic")
    assert _runs_ending(fresh, "ppo-vqc-critic", 10) == "8/10"
    tuned2 = _committed_study_report(tmp_path, "mountaincar-ppo-vqc-tune2")
    assert _runs_ending(tuned2, "ppo-vqc-critic-lin", 4) == "4/4"
    met = _committed_study_report(tmp_path, "mountaincar-ppo-vqc-critic-lin")
    assert _runs_ending(met, "ppo-vqc-critic-lin", 10) == "9/10"  # the row: 9 of 10
    preset = _committed_study_report(tmp_path, "mountaincar-ppo-vqc")
    critic = "critic: linear layers before and after its circuit (4 qubits)"
    rows = [_study_table_row(*row) for row in (
            (tuned, "ppo-vqc-ent01", "entropy bonus 0.01", "250-253", 4),
            (tuned, "ppo-vqc-ent05", "entropy bonus 0.05", "250-253", 4),
            (tuned, "ppo-vqc-lin", "learning rate annealed to 0 (lin_0.005)", "250-253", 4),
            (tuned, "ppo-vqc-critic", critic, "250-253", 4),
            (fresh, "ppo-vqc-critic", critic, "260-269", 10),
            (tuned2, "ppo-vqc-critic-lin", "that critic and the learning rate annealed to 0", "250-253", 4),
            (met, "ppo-vqc-critic-lin", "that critic and the learning rate annealed to 0", "270-279", 10),
            (preset, "ppo-vqc", "none (the preset)", "80-89", 10))]
    _assert_rows_in_readme(rows)


def test_readme_native_kernel_learning_result_is_the_committed_studys_report(tmp_path):
    """The README's check that the native kernel learns what the torch path learns (issue 15): ppo-vqc with gamma
    0.99 and GAE lambda 0.95 on seeds 290-299, 10/10 on `torch:native` (the kernel without contracted multiply-adds)
    and on `torch`, no claimable difference; the torch arm's runs equal the committed horizon study's runs of that agent
    (same seeds, same code path)."""
    report = _committed_study_report(tmp_path, "cartpole-ppo-vqc-native")
    label = "gamma 0.99, GAE lambda 0.95"
    _assert_rows_in_readme([_study_table_row(report, agent, f"{label}, `{device}`", "290-299", 10) for agent, device in
                            (("ppo-vqc-gamma99-native", "torch:native"), ("ppo-vqc-gamma99", "torch"))])
    assert "Mann-Whitney p = 0.93); probability of improvement P(ppo-vqc-gamma99-native > ppo-vqc-gamma99) = 0.52" in (
        report)
    assert "(median; 95% CI 10k-40k; 10/10 runs reached it) vs 17.5k" in report and "p = 0.65" in report
    readme = _readme()
    assert "Mann-Whitney p = 0.93, probability of improvement 0.52" in readme and "median 17.5k against 17.5k" in readme
    with open(Path(__file__).resolve().parents[1] / "runs/reference/cartpole-ppo-vqc-native/runs.csv") as f:
        assert {row["agent"] for row in csv.DictReader(f)} == {"ppo-vqc-gamma99-native", "ppo-vqc-gamma99"}
    native = _committed_finals("cartpole-ppo-vqc-native")
    horizon = _committed_finals("cartpole-ppo-vqc-horizon-fresh")
    torch_arm = [f for f, run in zip(native, sorted((Path(__file__).resolve().parents[1] /
                 "runs/reference/cartpole-ppo-vqc-native/runs").iterdir()), strict=True) if "native" not in run.name]
    reference = [f for f, run in zip(horizon, sorted((Path(__file__).resolve().parents[1] /
                 "runs/reference/cartpole-ppo-vqc-horizon-fresh/runs").iterdir()), strict=True)
                 if run.name.startswith("CartPole-v1__ppo-vqc-gamma99__")]
    assert torch_arm == reference


def _assert_torch_arm_copied(study: str, source: str) -> None:
    """A native-kernel study's torch arm is the committed ``source`` study's runs, copied: the same run folders, with
    byte-equal evaluations and results."""
    root = Path(__file__).resolve().parents[1] / "runs/reference"
    copies = sorted(p.name for p in (root / study / "runs").iterdir() if "native" not in p.name)
    assert copies == sorted(p.name for p in (root / source / "runs").iterdir())
    for name in copies:
        for table in ("evaluations.csv", "results.json"):
            assert (root / study / "runs" / name / table).read_bytes() == (
                root / source / "runs" / name / table).read_bytes()


def test_readme_native_kernel_dqn_result_is_the_committed_studys_report(tmp_path):
    """The README's check that DQN learns on the native kernel what it learns on the torch path (issue 15): issue
    17's dqn-vqc-lin on seeds 330-339, 6/10 ending solved on `torch:native` against 7/10 on `torch`, no claimable
    difference; the torch arm's runs are the committed stable-fresh study's, copied (same finals, same folders)."""
    report = _committed_study_report(tmp_path, "cartpole-dqn-vqc-native")
    _assert_rows_in_readme([_study_table_row(report, agent, f"dqn-vqc-lin, `{device}`", "330-339", 10)
                            for agent, device in (("dqn-vqc-lin-native", "torch:native"), ("dqn-vqc-lin", "torch"))])
    assert ("Mann-Whitney p = 1); probability of improvement P(dqn-vqc-lin-native > dqn-vqc-lin) = 0.50" in report
            and "in 90k steps (median; 95% CI 20k-never; 8/10 runs reached it) vs 100k" in report
            and "p = 0.97" in report)
    readme = " ".join(_readme().split())
    assert "Mann-Whitney p = 1, probability of improvement 0.50; steps to 475: median 90k against 100k, p = 0.97" in (
        readme)
    _assert_torch_arm_copied("cartpole-dqn-vqc-native", "cartpole-dqn-vqc-stable-fresh")


# Paired studies of issue 15 (does an agent learn on the native kernel what it learns on the torch programs?): study,
# agent (its kernel arm is "<agent>-native"), the README rows' label, seeds, runs per arm; the final-return verdict
# (Mann-Whitney p, probability of improvement) and steps to the threshold (threshold, the two medians, p) as the
# README words them; the committed study whose runs the torch arm copies (None: both arms run in the study).
NATIVE_STUDIES = [
    ("acrobot-ppo-vqc-native", "ppo-vqc", "60-69", 10, ("0.79", "0.46"), ("-100", "150k", "162k", "1"),
     "acrobot-ppo-vqc"),
    ("pendulum-sac-vqc-native", "sac-vqc-critics", "210-219", 10, ("0.79", "0.54"), ("-250", "5k", "5k", "1"),
     "pendulum-sac-vqc"),
    ("frozenlake-ppo-vqc-native", "ppo-vqc", "70-79", 10, ("0.82", "0.47"), ("0.7", "135k", "125k", "0.76"),
     "frozenlake-ppo-vqc"),
    ("frozenlake-ppo-vqc-l8-native", "ppo-vqc-anneal05-l8", "350-359", 10, ("0.43", "0.61"),
     ("0.7", "55k", "45k", "0.48"), "frozenlake-ppo-vqc-l8"),
    ("cartpole-reinforce-vqc-native", "reinforce-vqc-scale-batch", "340-349", 10, ("1", "0.50"),
     ("475", "50k", "50k", "0.61"), "cartpole-reinforce-vqc-scale-fresh"),
    ("mountaincar-ppo-vqc-native", "ppo-vqc-critic-lin", "270-279", 10, ("0.62", "0.43"),
     ("-110", "400k", "400k", "0.76"), "mountaincar-ppo-vqc-critic-lin"),
    ("pendulum-td3-vqc-native", "td3-vqc", "0-4", 5, ("0.84", "0.44"), ("-250", "17.5k", "17.5k", "1"), None),
    ("qubittarget-ppo-vqc-native", "ppo-vqc", "360-369", 10, ("0.57", "0.58"), ("1.33", "218k", "175k", "0.34"), None),
]


@pytest.mark.parametrize(("study", "agent", "seeds", "runs", "final", "steps", "source"), NATIVE_STUDIES,
                         ids=[row[0] for row in NATIVE_STUDIES])
def test_readme_native_kernel_study_is_the_committed_studys_report(tmp_path, study, agent, seeds, runs, final, steps,
                                                                   source):
    """Each README table of a paired study on the native kernel (issue 15): both arms' rows (runs reaching and
    ending at or above the threshold, the final return's IQM), the verdicts as `qrl report` makes them of the
    committed tables today, and, where the torch arm was copied from a committed study, the copy."""
    report = _committed_study_report(tmp_path, study)
    _assert_rows_in_readme([_study_table_row(report, name, f"{agent}, `{device}`", seeds, runs)
                            for name, device in ((f"{agent}-native", "torch:native"), (agent, "torch"))])
    (p, improvement), (threshold, kernel, torch_path, p_steps) = final, steps
    assert f"Mann-Whitney p = {p}); probability of improvement P({agent}-native > {agent}) = {improvement}" in report
    assert (f"Mann-Whitney p = {p}, probability of improvement {improvement}; steps to {threshold}: median {kernel} "
            f"against {torch_path}, p = {p_steps}") in " ".join(_readme().split())
    if source is not None:
        _assert_torch_arm_copied(study, source)


def test_readme_native_kernel_reinforce_criterion_is_the_committed_runs():
    """REINFORCE on the native kernel (cartpole-reinforce-vqc-native): the TensorFlow Quantum tutorial's criterion
    within 500 episodes on 7/10 on `torch:native`, as on `torch`, whose runs are the committed fresh study's."""
    kernel = _episodes_to_500("cartpole-reinforce-vqc-native", "reinforce-vqc-scale-batch-native")
    assert kernel == [362, 811, 214, 483, 749, 370, None, 331, 236, 187] and len(_within_500(kernel)) == 7
    assert _episodes_to_500("cartpole-reinforce-vqc-native", "reinforce-vqc-scale-batch") == _episodes_to_500(
        "cartpole-reinforce-vqc-scale-fresh", "reinforce-vqc-scale-batch")
    assert "`[362, 811, 214, 483, 749, 370, None, 331, 236, 187]`, **7/10 within 500 episodes" in " ".join(
        _readme().split())
