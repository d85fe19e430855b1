"""The README's Python examples run as written (the training budget shrunk to keep CI fast)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").symlink_to(README.parent / "runs")  # examples run from the checkout, reading runs/reference
    for block in python_blocks():
        code = block.replace("total_timesteps=20_000", "total_timesteps=64")
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "torch.Size([8, 2])" in out
    assert (tmp_path / "vqc_ppo_cartpole.zip").is_file()
    assert out.count("cart off the track") == 10  # how the committed seed-0 run fails (Agents that stay solved)
    # the preset's runs of seeds 20-29 that end short of 475: how their evaluation episodes end (issue 17)
    short = "episodes of the runs that end short, ended by:"
    assert f"ppo-vqc-base: {short} {{'cart': 42, 'pole': 1, 'time limit': 7}}" in out
    assert f"dqn-vqc: {short} {{'cart': 64, 'pole': 10, 'time limit': 16}}" in out  # the preset's seeds 50-59
    assert "4/10 within 500 episodes" in out and "\n46 1520\n" in out  # REINFORCE's ten seeds, as the README says
    r2 = [float(v) for v in re.findall(r": R\^2 (-?[\d.]+)\n", out)]  # Pendulum critics fitted to a solved Q (issue 17)
    assert len(r2) == 4 and r2 == sorted(r2) and r2[0] < 0.75 and r2[-1] > 0.95, r2
    # MountainCar's first push (issue 17): the optimal policy, pushing along the velocity, the preset's actor cloned
    car = [float(re.search(rf"^{label}: (-[\d.]+)$", out, re.M).group(1)) for label in (
        r"optimal \(value iteration\)", "push along the velocity", r"the preset's actor \(43 parameters\), cloned")]
    assert car[0] > -99 and car[1] < -115 and car[2] > -101, car
    assert out.count("first push LLLLLLLLLLL") == 7  # the preset's runs that push left first from every start
    assert len(re.findall(r"^ppo-vqc-critic, seed \d+: first push RR", out, re.M)) == 10  # the critic's: right first
    assert "from -0.55: 151 steps; pushing right first for 1 step 154, for 10 steps 105" in out
    # FrozenLake (issue 17): what the committed runs end on, printed as the README says it prints
    printed = re.search(r"It prints\n\n```\n(optimal 0\.740.*?)```", README.read_text(), flags=re.S).group(1)
    assert len(printed.splitlines()) == 10 and all(line in out.splitlines() for line in printed.splitlines())


def cli_lines() -> list[list[str]]:
    """``qrl ...`` lines of the README's bash blocks, split into arguments (comments dropped)."""
    import shlex

    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("qrl "):
                lines.append(shlex.split(line, comments=True)[1:])
    return lines


def test_readme_cli_lines_parse_and_resolve(monkeypatch, capsys, tmp_path):
    from qrl.cli import build_parser, main
    from qrl.config import parse_set, resolve

    monkeypatch.chdir(README.parent)
    lines = cli_lines()
    assert {args[0] for args in lines} >= {"list", "train", "eval", "compare", "bench", "plot"}
    for args in lines:
        parsed = build_parser().parse_args(args)
        if parsed.command == "bench":  # minutes of timing: parsing is what can rot here
            continue
        if parsed.command == "diagnose" and parsed.diagnose_command == "gradients":  # minutes; see test_diagnostics
            continue
        if parsed.command == "study":  # a study is many trainings: validate its file, as for train
            from qrl.study import load_study

            load_study(parsed.study_file)
            continue
        if parsed.command == "tune":  # many trainings: validate the request (agent, env, space, storage)
            from qrl.cli.tune import request_from_args
            from qrl.tune import prepare

            prepare(request_from_args(parsed))
            continue
        if parsed.command == "report":
            if not Path(parsed.study_dir).is_dir():  # made by the `qrl study` line before it
                continue
            args = [*args, "--out", str(tmp_path / "report"), "--reps", "50"]  # not over the committed one
        if parsed.command in ("train", "compare"):  # validate fully, without the minutes of training
            for agent in getattr(parsed, "agents", None) or [parsed.agent]:
                resolve(agent, parsed.env, seed=parsed.seed, steps=parsed.steps, device=parsed.device,
                        overrides=parse_set(parsed.overrides))
        else:
            if parsed.command == "eval" and parsed.plot:  # a sweep is many evaluations: tests/test_devices.py
                assert (Path(parsed.run_dir) / "model.zip").is_file(), args
                continue
            if (getattr(parsed, "device", None) or "").startswith("qiskit.") and \
                    importlib.util.find_spec("qiskit_ibm_runtime") is None:  # needs the qrl[hardware] extra
                continue
            if parsed.command == "eval":
                args = [*args, "--episodes", "1"]
            if parsed.command == "distill":  # the whole pipeline on a small budget, written elsewhere
                args = [*args, "--samples", "300", "--epochs", "1", "--eval-episodes", "1", "--out",
                        str(tmp_path / "distill")]
            if parsed.command == "plot":  # write the image elsewhere, not over committed files
                args = [*args, "--out", str(tmp_path / "plot.png")]
            assert main(args) == 0, args
    out = capsys.readouterr().out
    assert out.count("ppo-vqc on CartPole-v1") >= 3 and "on lightning.qubit: return" in out
