"""policy_kwargs strings are parsed, never evaluated: rl-zoo3's own strings and the shipped presets read as
eval read them; anything else (attribute chains, calls, subscripts, ...) is one QRLError and runs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from torch import nn

from qrl.cli import main
from qrl.config import list_agents, load_agent, parse_policy_kwargs, resolve
from qrl.errors import QRLError

ZOO_ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")


def zoo_strings() -> list[tuple[str, str, str]]:
    """``(file, env, policy_kwargs)`` for every policy_kwargs string of rl-zoo3's hyperparams files."""
    rl_zoo3 = pytest.importorskip("rl_zoo3")
    folder = Path(rl_zoo3.__file__).parent / "hyperparams"
    found = []
    for algo in ZOO_ALGOS:
        for env, section in yaml.safe_load((folder / f"{algo}.yml").read_text()).items():
            if isinstance(section, dict) and isinstance(section.get("policy_kwargs"), str):
                found.append((f"{algo}.yml", env, section["policy_kwargs"]))
    return found


def trusted_eval(value: str):
    """What eval gave (the namespace rl-zoo3 evaluates in); only ever run on rl-zoo3's own files here."""
    return eval(value, {"__builtins__": {}},  # trusted input: the reference result
                {"dict": dict, "nn": nn, "th": torch, "torch": torch, "RMSpropTFLike": RMSpropTFLike})


def test_every_rl_zoo3_policy_kwargs_string_reads_as_eval_read_it():
    strings = zoo_strings()
    assert len(strings) >= 30, "rl-zoo3's hyperparams files should hold dozens of policy_kwargs strings"
    for name, env, value in strings:
        assert parse_policy_kwargs(value) == trusted_eval(value), (name, env, value)
    names = {type(v) for _, _, s in strings for v in parse_policy_kwargs(s).values()}
    assert type in names  # nn.ReLU, nn.GELU, RMSpropTFLike really resolve to classes


@pytest.mark.parametrize("value", [
    "dict(net_arch=[64, 64], activation_fn=nn.ReLU, ortho_init=False)",
    "dict(activation_fn=th.nn.Tanh, optimizer_class=torch.optim.AdamW, optimizer_kwargs=dict(eps=1e-5))",
    "dict(a=2 * 64, b=-3.5, c=+1, d=2 ** 10, e=7 // 2, f=7 % 3, g=1 / 4, h=1 - 2, i=1e-3)",
    "{'net_arch': {'pi': [64], 'vf': [64]}, 1: (True, None, 'x')}",
    "dict(optimizer_class=th.optim.RMSprop, activation_fn=torch.nn.LeakyReLU, x=nn.SiLU, y=nn.ELU)",
    "\n dict(net_arch=[8],\n   activation_fn=nn.GELU, )\n",
])
def test_legitimate_strings_read_as_eval_read_them(value):
    assert parse_policy_kwargs(value) == trusted_eval(value.strip())


@pytest.mark.parametrize("agent", list_agents())
def test_every_shipped_preset_parses(agent):
    for env, section in load_agent(agent).items():
        value = section.get("policy_kwargs")
        if value is not None:
            assert isinstance(parse_policy_kwargs(value), dict), (agent, env)


# (string, file it would create if evaluated, token the error must name)
HOSTILE = [
    ("dict(x=th.os.system('touch PWNED'))", "PWNED", "th.os"),
    ("th.os.system('touch PWNED')", "PWNED", "th.os"),
    ("torch.os.system('touch PWNED')", "PWNED", "torch.os"),
    ("dict(x=nn.modules.module.sys.modules['os'].system('touch PWNED'))", "PWNED", "nn.modules"),
    ("nn.Module.__subclasses__()", None, "nn.Module"),
    ("dict(x=().__class__.__bases__[0].__subclasses__())", None, "attribute access .__subclasses__"),
    ("().__class__.__bases__[0]", None, "a subscript"),
    ("dict(x=().__class__)", None, "attribute access .__class__"),
    ("__import__('os').system('touch PWNED')", "PWNED", "__import__"),
    ("dict(x=open('PWNED', 'w'))", "PWNED", "open"),
    ("dict(**{'x': 1})", None, "unpacking (**)"),
    ("{**{'x': 1}}", None, "unpacking (**)"),
    ("dict(x=lambda: 0)", None, "a lambda"),
    ("dict(x=[c for c in 'ab'])", None, "a comprehension"),
    ("dict(x={c: 1 for c in 'ab'})", None, "a comprehension"),
    ("dict(x=(c for c in 'ab'))", None, "a generator"),
    ("exec(\"open('PWNED', 'w')\")", "PWNED", "exec"),
    ("eval(\"open('PWNED', 'w')\")", "PWNED", "eval"),
    ("dict(x=getattr(th, 'os'))", None, "getattr"),
    ("dict(x=th.load('PWNED'))", None, "th.load"),
    ("dict(x=th.save(1, 'PWNED'))", "PWNED", "th.save"),
    ("dict(x=nn.ReLU.__init__)", None, "nn.ReLU.__init__"),
    ("dict(x=nn.ReLU.__init__.__globals__)", None, "nn.ReLU.__init__"),
    ("dict(x=nn.ReLU())", None, "a call to nn.ReLU"),
    ("dict(x=(y := 1))", None, "an assignment (:=)"),
    ("dict(x=f'{th.os}')", None, "an f-string"),
    ("dict(*[('x', 1)])", None, "a positional argument"),
    ("dict([('x', 1)])", None, "a positional argument"),
    ("dict(x=[*range(3)])", None, "an unpacking (*)"),
    ("dict(x=9 ** 9 ** 9)", None, "a power this large"),
    ("dict(x='a' * 10)", None, "arithmetic on non-numbers"),
    ("dict(x=1 if th else 0)", None, "an if-else"),
    ("dict(x=b'bytes')", None, "a bytes literal"),
    ("dict(x=dict)", None, "dict"),
    ("dict(x=th)", None, "th is not allowed"),
    ("dict(x={1, 2})", None, "a set"),
    ("dict(x=1); import os", None, "not a Python expression"),
    ("dict(x=", None, "not a Python expression"),
    ("dict(x=1)" + " " * 10_001, None, "too long"),
]


@pytest.mark.parametrize(("value", "creates", "token"), HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_strings_are_refused_and_run_nothing(tmp_path, monkeypatch, value, creates, token):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QRLError) as info:
        parse_policy_kwargs(value)
    message = str(info.value)
    assert "\n" not in message and token in message
    assert message.startswith("could not read policy_kwargs: ") and "; expected " in message and "; got " in message
    if creates:
        assert not (tmp_path / creates).exists()
    assert list(tmp_path.iterdir()) == []


def test_not_a_dict_is_refused():
    with pytest.raises(QRLError, match="must evaluate to a dict; got list"):
        parse_policy_kwargs("[nn.ReLU]")


def test_every_override_path_goes_through_the_parser(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --set policy_kwargs=... and a study grid's policy_kwargs both reach resolve's overrides
    with pytest.raises(QRLError, match=r"th\.os is not allowed"):
        resolve("ppo-vqc", "CartPole-v1", overrides={"policy_kwargs": "dict(x=th.os.system('touch PWNED'))"})
    # --set policy_kwargs.<name>=... keeps the value as YAML gave it: a string is never evaluated
    config = resolve("ppo-vqc", "CartPole-v1", overrides={"policy_kwargs.x": "th.os.system('touch PWNED')"})
    assert config.policy_kwargs["x"] == "th.os.system('touch PWNED')"
    assert not (tmp_path / "PWNED").exists()


def test_cli_refuses_a_hostile_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "64", "--out",
                 str(tmp_path / "runs"), "--set", "policy_kwargs=dict(x=th.os.system('touch PWNED'))"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qrl: error: ") and "th.os is not allowed" in lines[0]
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "runs").exists()
