"""The torch path on a CUDA GPU: values and gradients against the CPU and PennyLane, ``auto``, SB3 with
``device="cuda"``. Skipped where torch sees no GPU (CI); run on one by ``tests/gpu/check.sh``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from qrl.circuits import CircuitSpec
from qrl.nn import VQC

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the GPU path is checked on one")

TOL = {torch.float64: 1e-6, torch.float32: 1e-4}  # the tolerances against lightning / default.qubit


def values_and_grads(module: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Outputs, and the gradients of a fixed random projection of them, for inputs and every parameter."""
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = module(x)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype).to(out.device)
    (out * cot).sum().backward()
    return [t.detach().cpu().numpy() for t in (out, x.grad, *(p.grad for p in module.parameters()))]


def assert_same(got: list[np.ndarray], want: list[np.ndarray], tol: float) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=tol, rtol=0)


def on_cuda(module: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    module = module.to("cuda")
    result = values_and_grads(module, x.to("cuda"))
    assert all(p.device.type == "cuda" for p in module.parameters())
    return result


@pytest.mark.parametrize("n, program, ansatz", [
    (4, None, "hea"), (8, None, "hea"), (12, None, "strongly_entangling"), (12, "fused", "hea"),
    (14, "adjoint", "hea"), (16, None, "hea"), (16, "adjoint", "strongly_entangling"), (16, "fused-adjoint", "hea")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_torch_programs_on_cuda_equal_the_cpu(n, program, ansatz, dtype):
    from qrl.backends.torch import TorchStatevector

    spec = CircuitSpec(n_qubits=n, n_layers=3, n_inputs=n, n_outputs=n, ansatz=ansatz)
    vqc = VQC(spec, device="torch", seed=n).to(dtype)
    if program:
        vqc.use_backend(TorchStatevector(spec, program))
    x = torch.randn(16, n, generator=torch.Generator().manual_seed(n), dtype=dtype)
    want = values_and_grads(vqc, x)
    assert_same(on_cuda(vqc, x), want, TOL[dtype])


@pytest.mark.parametrize("n", [4, 12])
def test_the_gpu_path_equals_lightning(n):
    spec = CircuitSpec(n_qubits=n, n_layers=3, n_inputs=n, n_outputs=n, ansatz="strongly_entangling")
    lightning = VQC(spec, device="lightning.qubit", seed=3).double()
    x = torch.randn(8, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = values_and_grads(lightning, x)
    gpu = VQC(spec, device="torch", seed=3).double()
    gpu.load_state_dict(lightning.state_dict())
    assert_same(on_cuda(gpu, x), want, TOL[torch.float64])


def test_a_users_circuit_on_cuda_equals_default_qubit():
    from qrl.bench import meyer_paths

    paths = meyer_paths(10, n_layers=2, include_slow=False, seed=1)
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want = values_and_grads(paths["default.qubit"].double(), x)
    assert_same(on_cuda(paths["qrl"].double(), x), want, TOL[torch.float64])


def test_auto_runs_the_torch_program_on_the_gpu_where_the_cpu_choice_is_lightning(monkeypatch):
    from qrl.backends import select
    from qrl.backends.torch import TorchStatevector

    monkeypatch.setattr(select, "auto_table", lambda: {4: "lightning.qubit", 12: "lightning.qubit"})
    spec = CircuitSpec(n_qubits=10, n_layers=3, n_inputs=10, n_outputs=10)
    vqc = VQC(spec, device="auto", seed=5).double()
    x = torch.randn(32, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    want = values_and_grads(vqc, x)  # on the CPU: Lightning
    assert_same(on_cuda(vqc, x), want, TOL[torch.float64])
    assert isinstance(vqc.backend.accelerated, TorchStatevector)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_auto_on_the_gpu_runs_a_call_over_its_memory_share_in_chunks(monkeypatch, dtype):
    """A call whose forward + backward would exceed auto's share of the GPU's memory runs there in chunks that fit,
    each computed again in its backward (the GPU's memory made small, so a 12-qubit batch of 40 is such a call):
    values and gradients as the whole call on the CPU, and the GPU's peak below the whole call's."""
    from qrl.backends import dispatch, select
    from qrl.backends.chunks import Chunks
    from qrl.backends.torch import TorchStatevector

    spec = CircuitSpec(n_qubits=12, n_layers=3, n_inputs=12, n_outputs=12)
    share = TorchStatevector(spec).gradient_bytes(16, 16 if dtype == torch.float64 else 8)
    monkeypatch.setattr(dispatch, "accelerator_memory", lambda device: int(share / select.AUTO_MEMORY_FRACTION) + 1)
    vqc = VQC(spec, device="auto", seed=9).to(dtype)
    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(9), dtype=dtype)
    reference = VQC(spec, device="torch", seed=9).to(dtype)
    reference.load_state_dict(vqc.state_dict())
    want = values_and_grads(reference, x)  # the whole call, on the CPU
    got = on_cuda(vqc, x)
    on_gpu = x.to("cuda")
    chosen = vqc.backend.for_inputs(on_gpu)
    assert isinstance(chosen, Chunks) and chosen.size < 40 and not chosen.keeps(40)
    assert_same(got, want, TOL[dtype])
    whole = reference.to("cuda")
    assert 0 < gpu_peak(lambda: values_and_grads(vqc, on_gpu)) < gpu_peak(lambda: values_and_grads(whole, on_gpu))


def gpu_peak(call) -> int:
    """The GPU's peak allocated bytes during ``call()``."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


SB3_SCRIPT = """
import sys, torch
from stable_baselines3 import PPO, DQN
algo, path, device = sys.argv[1], sys.argv[2], sys.argv[3]
model = {"ppo": PPO, "dqn": DQN}[algo].load(path, device=device)
obs = torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(10, 4).numpy()
actions, _ = model.predict(obs, deterministic=True)
print(" ".join(map(str, actions)))
"""


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_trains_on_cuda_and_loads_in_a_fresh_process(tmp_path, subprocess_env, algo):
    from stable_baselines3 import DQN, PPO

    from qrl.sb3 import VQCActorCriticPolicy, VQCDQNPolicy

    cls, policy = {"ppo": (PPO, VQCActorCriticPolicy), "dqn": (DQN, VQCDQNPolicy)}[algo]
    kwargs = {"n_steps": 64, "batch_size": 64} if algo == "ppo" else {"learning_starts": 64, "batch_size": 64}
    model = cls(policy, "CartPole-v1", seed=0, device="cuda", policy_kwargs={"device": "torch"}, **kwargs)
    model.learn(256)
    assert all(p.device.type == "cuda" for p in model.policy.parameters())
    model.save(tmp_path / "model.zip")
    predictions = {}
    for device in ("cuda", "cpu"):
        out = subprocess.run([sys.executable, "-c", SB3_SCRIPT, algo, str(tmp_path / "model.zip"), device],
                             env=subprocess_env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        predictions[device] = out.stdout.split()
    assert len(predictions["cuda"]) == 10 and predictions["cuda"] == predictions["cpu"]


def test_qrl_train_on_cuda_then_eval_on_the_cpu(tmp_path):
    from qrl import runs
    from qrl.cli import main
    from qrl.evaluate import read_model

    args = ["train", "--agent", "ppo-vqc", "--env", "CartPole-v1", "--steps", "512", "--out", str(tmp_path),
            "--no-progress", "--set", "device=cuda", "--set", "policy_kwargs.n_qubits=8"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    assert runs.read_results(run)["status"] == "finished"
    assert runs.read_config(run).hyperparams["device"] == "cuda"
    assert main(["eval", str(run), "--episodes", "2"]) == 0  # a GPU-trained model, evaluated on the CPU
    model = read_model(run, runs.read_config(run))
    assert all(p.device.type == "cpu" for p in model.policy.parameters())
