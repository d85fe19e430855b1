"""The native program (``device="torch:native"``): a compiled C kernel with an adjoint backward.

Values and gradients against Lightning and default.qubit are checked where the other torch programs are
(test_backends.py: random built-ins, 12 qubits; test_custom_circuits.py: 200 random user circuits). Here: what
is particular to it: the compiler, its cache, second backward passes, no-grad calls, refusals, training.
"""

from __future__ import annotations

import json
import platform
import subprocess

import numpy as np
import pennylane as qml
import pytest
import torch
from stable_baselines3 import PPO

from qrl.backends import TorchStatevector
from qrl.circuits import CircuitSpec
from qrl.circuits.custom import custom_circuit, register_circuit
from qrl.errors import QRLError
from qrl.sb3 import VQCActorCriticPolicy
from qrl.simulator import native

SPEC = CircuitSpec(n_qubits=4, n_layers=3, n_inputs=4, n_outputs=2)


def _inputs(spec: CircuitSpec, batch: int, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand(batch, spec.n_encoding_layers, spec.n_inputs, generator=gen, dtype=torch.float64) * 4 - 2)
    weights = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 4 - 2
    return angles.to(dtype).requires_grad_(True), weights.to(dtype).requires_grad_(True)


def test_a_missing_compiler_is_named_with_the_fix_and_leaves_no_file(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_library", {})
    monkeypatch.setenv("QRL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(QRLError, match=r"needs a C compiler.*try device='torch'"):
        native.kernel()
    assert list(tmp_path.iterdir()) == []


def test_a_failing_compile_says_why_and_leaves_no_file(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_library", {})
    monkeypatch.setenv("QRL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    with pytest.raises(QRLError, match=r"compiling the native kernel.*failed"):
        native.kernel()
    assert list(tmp_path.iterdir()) == []


def test_a_failing_compiler_is_run_once_per_process_for_auto(monkeypatch, tmp_path):
    """``device="auto"`` asks :func:`native.available` for every circuit it builds: a compiler that fails is not run
    again each time (auto then warns and runs the torch program)."""
    monkeypatch.setattr(native, "_library", {})
    monkeypatch.setattr(native, "_unavailable", [])
    monkeypatch.setenv("QRL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    runs = []
    real = native.subprocess.run
    monkeypatch.setattr(native.subprocess, "run", lambda *a, **k: runs.append(a) or real(*a, **k))
    assert not native.available() and not native.available() and len(runs) == 1
    assert "compiling the native kernel" in native._unavailable[0] and list(tmp_path.iterdir()) == []


def test_the_kernel_is_compiled_once_into_the_cache(monkeypatch, tmp_path, python, subprocess_env):
    monkeypatch.setattr(native, "_library", {})
    monkeypatch.setenv("QRL_CACHE", str(tmp_path))
    native.kernel()
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("native-") and built[0].endswith(".so")
    mtime = (tmp_path / built[0]).stat().st_mtime_ns
    script = "from qrl.simulator import native; native.kernel(); print('ok')"
    env = {**subprocess_env, "QRL_CACHE": str(tmp_path)}
    out = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == built and (tmp_path / built[0]).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("readout", ["z", "state"])
def test_a_second_backward_gives_the_same_gradients(readout):
    """The backward works on a copy of the forward's state: ``retain_graph`` twice gives the same gradients
    (``state``: a readout the kernel cannot do itself, so the state leaves it)."""
    spec = SPEC if readout == "z" else _x_readout_spec()
    backend = TorchStatevector(spec, "native")
    angles, weights = _inputs(spec, 7) if readout == "z" else _custom_inputs()
    out = backend(angles, weights)
    first = torch.autograd.grad(out.square().sum(), (angles, weights), retain_graph=True)
    second = torch.autograd.grad(out.square().sum(), (angles, weights))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b) and a.abs().sum() > 0


def _x_readout(inputs, weights):
    for w in range(3):
        qml.RY(inputs[..., w] * weights[w], wires=w)
        qml.CNOT(wires=[w, (w + 1) % 3])
    return [qml.expval(qml.PauliX(0) @ qml.PauliY(2)), qml.probs(wires=[1])]


def _x_readout_spec():
    register_circuit("native_x_readout", replace=True)(_x_readout)
    return custom_circuit("native_x_readout", n_qubits=3, n_inputs=3, weight_shapes={"weights": (3,)})


def _custom_inputs():
    gen = torch.Generator().manual_seed(1)
    return (torch.rand(6, 3, generator=gen, dtype=torch.float64).requires_grad_(True),
            (torch.rand(3, generator=gen, dtype=torch.float64) * 3).requires_grad_(True))


def test_a_readout_with_x_and_y_runs_through_the_state_and_matches_default_qubit():
    spec = _x_readout_spec()
    backend = TorchStatevector(spec, "native")
    assert backend._kernel_readout is None  # X and Y words: the state leaves the kernel
    x, w = _custom_inputs()
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=3), interface="torch", diff_method="backprop")
    ref = torch.stack([torch.cat([torch.as_tensor(r).reshape(-1) for r in qnode(xi, w)]) for xi in x])
    got = backend(x, w)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    g_ref = torch.autograd.grad(ref.sum(), (x, w))
    g_got = torch.autograd.grad(got.sum(), (x, w))
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def _cz_layers(inputs, weights):
    for layer in range(2):
        for w in range(5):
            qml.RY(inputs[..., w % 3] * weights[layer, w], wires=w)
            qml.RX(weights[layer, w], wires=w)
        for a, b in ((0, 3), (4, 1), (2, 0), (1, 4), (3, 2), (0, 3), (1, 4)):  # CZs on any pairs, repeated ones too
            qml.CZ(wires=[a, b])
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(2)), qml.expval(qml.PauliZ(4))]


def test_czs_on_any_pairs_in_one_pass_match_default_qubit():
    register_circuit("native_cz_layers", replace=True)(_cz_layers)
    spec = custom_circuit("native_cz_layers", n_qubits=5, n_inputs=3, weight_shapes={"weights": (2, 5)})
    backend = TorchStatevector(spec, "native")
    assert (backend._impl.ops[:, 0] == 7).sum() == 2  # each layer's CZs: one product of CZs
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(6, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    w = (torch.rand(2, 5, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=5), interface="torch", diff_method="backprop")
    ref = torch.stack([torch.stack([torch.as_tensor(r) for r in qnode(xi, w)]) for xi in x])
    got = backend(x, w)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(got.sum(), (x, w)), torch.autograd.grad(ref.sum(), (x, w)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def _mixed_runs(inputs, weights):
    for layer in range(2):
        for w in range(5):  # runs mixing rotations, constants, per-sample and shared angles
            qml.RX(inputs[..., w], wires=w)
            qml.Hadamard(wires=w)
            qml.Rot(*weights[layer, w], wires=w)
            qml.S(wires=w)
        for w in range(9):  # nine rotations on wire 2: two runs on one wire, which no pass takes together
            qml.RY(weights[layer, w % 5, 0] * (w + 1), wires=2)
        qml.CZ(wires=[0, 1])  # (every run is emitted before a diagonal gate: runs 0 1 2 2 3 4 in a row)
        for w in range(5):
            qml.CNOT(wires=[w, (w + 1) % 5])
        qml.RZ(inputs[..., 1], wires=1)
        qml.CZ(wires=[1, 3])
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(4)), qml.probs(wires=[2])]


@pytest.mark.parametrize("batch", [6, 17])
def test_runs_grouped_in_one_pass_match_default_qubit_and_the_forward_is_the_same_to_the_bit(batch):
    """Up to three runs on distinct wires share a pass (forward from 12 qubits, backward from 20; forced here on five
    wires): values and gradients equal default.qubit's in float64 whatever the grouping (runs with constants, runs
    cut at MAX_RUN, shared and per-sample angles), and the forward's values are the same to the bit as one run per
    pass (the same arithmetic in the same order)."""
    register_circuit("native_mixed_runs", replace=True)(_mixed_runs)
    spec = custom_circuit("native_mixed_runs", n_qubits=5, n_inputs=5, weight_shapes={"weights": (2, 5, 3)})
    backend = TorchStatevector(spec, "native")
    gen = torch.Generator().manual_seed(batch)
    x = (torch.rand(batch, 5, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    w = (torch.rand(2, 5, 3, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=5), interface="torch", diff_method="backprop")
    ref = torch.stack([torch.cat([torch.as_tensor(r).reshape(-1) for r in qnode(xi, w)]) for xi in x])
    g_ref = torch.autograd.grad((ref * torch.linspace(-1, 1, ref.numel()).reshape(ref.shape)).sum(), (x, w))
    values = []
    for fused in ((1, 1), (2, 2), (3, 3), (3, 2), (2, 3)):
        backend._impl.fused_runs = fused
        got = backend(x, w)
        torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
        cot = torch.linspace(-1, 1, got.numel()).reshape(got.shape)
        for a, b in zip(torch.autograd.grad((got * cot).sum(), (x, w)), g_ref, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
        values.append(got.detach())
    assert all(torch.equal(v, values[0]) for v in values[1:])


def test_a_layers_runs_stand_together_from_12_qubits_and_are_grouped_there():
    """From FUSED_RUNS_MIN_QUBITS, every pending run is emitted before a multi-qubit gate, so that a CNOT ring's layer
    of ``Rot``s makes consecutive runs (three to a forward pass); below, runs wait for their own wire's gate."""
    def first_monomial_after_runs(n):
        spec = CircuitSpec(n_qubits=n, n_layers=1, n_inputs=n, n_outputs=2, ansatz="strongly_entangling")
        program = TorchStatevector(spec, "native")._impl
        kinds, starts = program.ops[:, 0], program.ops[:, 3] > 0
        first_monomial = int(np.argmax(kinds == 5))
        return program.fused_runs, int(np.sum(starts[:first_monomial] & (kinds[:first_monomial] <= 3)))

    assert first_monomial_after_runs(native.FUSED_RUNS_MIN_QUBITS) == ((3, 1), native.FUSED_RUNS_MIN_QUBITS)
    assert first_monomial_after_runs(native.FUSED_RUNS_MIN_QUBITS - 1) == ((1, 1), 2)
    spec = CircuitSpec(n_qubits=native.FUSED_ADJOINT_MIN_QUBITS, n_layers=1, n_inputs=4, n_outputs=2)
    assert TorchStatevector(spec, "native")._impl.fused_runs == (3, 2)


def test_pass_counts_group_runs_as_the_kernel_does():
    """The forward's and the backward's passes (the cost model's kernel work): hea's layer of runs on every wire and
    its ring of CZs, as one diagonal, makes n + 1 passes ungrouped; from FUSED_RUNS_MIN_QUBITS the forward applies
    three runs per pass, from FUSED_ADJOINT_MIN_QUBITS the backward two; a run next to one on the same wire starts a
    new pass. Meyer et al.'s circuit: each controlled rotation one pass (a controlled run), its Hadamard layers 3 runs
    per pass forward."""
    def counts(n, layers=2):
        program = TorchStatevector(CircuitSpec(n_qubits=n, n_layers=layers, n_inputs=4, n_outputs=2), "native")._impl
        return program.passes(merge_diagonals=True), program.pass_counts()

    below = native.FUSED_RUNS_MIN_QUBITS - 1
    assert counts(below) == (2 * (below + 1), (2 * (below + 1),) * 2)  # nothing grouped
    assert counts(12) == (26, (2 * (4 + 1), 26))  # 12 runs: 4 forward passes per layer
    assert counts(native.FUSED_ADJOINT_MIN_QUBITS, layers=1) == (21, (7 + 1, 10 + 1))
    meyer = TorchStatevector(custom_circuit("meyer_iqp", n_qubits=12, n_layers=2, n_inputs=12), "native")._impl
    assert meyer.passes(merge_diagonals=True) == 2 * 12 + 2 * 12  # 24 controlled rotations, two Hadamard layers
    assert meyer.pass_counts() == (2 * 12 / 2 + 2 * 4, 2 * 12 / 2 + 24)  # a controlled run: half the state


def _sparse_cnots(inputs, weights):
    for layer in range(weights.shape[0]):
        for w in range(weights.shape[1]):
            qml.RY(inputs[..., w] + weights[layer, w, 0], wires=w)
        qml.CNOT(wires=[layer, layer + 1])
        for w in range(weights.shape[1]):
            qml.RZ(weights[layer, w, 1], wires=w)
    return [qml.expval(qml.PauliZ(w)) for w in range(weights.shape[1])]


def test_runs_are_not_brought_together_where_that_would_cut_them(monkeypatch):
    """A layer of RY on every wire, one CNOT, RZ on every wire: emitting every wire's run before each two-qubit gate
    would cut the other wires' runs in two (more passes backward), so the gate list keeps one run per wire between
    its own gates, as the ungrouped program's."""
    n = native.FUSED_RUNS_MIN_QUBITS
    register_circuit("native_sparse_cnots", replace=True)(_sparse_cnots)
    spec = custom_circuit("native_sparse_cnots", n_qubits=n, n_inputs=n, weight_shapes={"weights": (2, n, 2)})
    counts, runs = {}, native._runs
    monkeypatch.setattr(native, "_runs", lambda ops, diagonals, together=False: counts.setdefault(
        together, runs(ops, diagonals, together)))
    grouped = TorchStatevector(spec, "native")._impl
    # apart: a run per wire, and four more where the two CNOTs cut their wires; together: more runs
    assert native._run_count(counts[True]) > native._run_count(counts[False]) == n + 4
    apart = TorchStatevector(spec, "native-runs")._impl
    assert grouped.fused_runs == (3, 1) and apart.fused_runs == (1, 1) and np.array_equal(grouped.ops, apart.ops)


def _eighteen_wires(inputs, weights):
    for w in range(18):
        qml.RY(inputs[..., w % 4] * weights[w], wires=w)
    for w in range(0, 17, 3):
        qml.CNOT(wires=[w, w + 1])
    qml.RX(weights[0], wires=17)


def _z_words(inputs, weights):
    _eighteen_wires(inputs, weights)
    return [qml.expval(0.5 * qml.PauliZ(0) @ qml.PauliZ(3) - 1.5 * qml.PauliZ(17)), qml.expval(qml.PauliZ(5)),
            qml.expval(qml.PauliZ(1) @ qml.PauliZ(2) @ qml.PauliZ(16) + 0.25 * qml.PauliZ(1))]


def _probs_18(inputs, weights):
    _eighteen_wires(inputs, weights)
    return [qml.expval(qml.PauliZ(5)), qml.probs(wires=[0, 1])]


def test_z_words_from_18_qubits_are_read_out_in_the_kernel_by_their_masks():
    """From LAZY_MIN_QUBITS the readout has no (2**n, width) matrix; the kernel reads Z-word sums out by their masks
    (ZTerms: no state leaves it, three state batches instead of five): values and gradients as the torch program's
    adjoint in float64, and as ``torch:native-plain``, which reads out through the state. ``qml.probs`` there still
    leaves the kernel as the state."""
    from qrl.simulator.native import ZTerms
    from qrl.simulator.readout import LAZY_MIN_QUBITS

    register_circuit("native_z_words", replace=True)(_z_words)
    spec = custom_circuit("native_z_words", n_qubits=LAZY_MIN_QUBITS, n_inputs=4, weight_shapes={"weights": (18,)})
    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(3, 4, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    w = (torch.rand(18, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    results = []
    for program in ("native", "native-plain", "adjoint"):
        backend = TorchStatevector(spec, program)
        assert isinstance(backend._kernel_readout, ZTerms) == (program == "native")
        out = backend(x, w)
        cot = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
        results.append([out, *torch.autograd.grad((out * cot).sum(), (x, w))])
    for got in results[:2]:
        for a, b in zip(got, results[2], strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    hea = CircuitSpec(n_qubits=LAZY_MIN_QUBITS, n_layers=1, n_inputs=4, n_outputs=2)
    assert isinstance(TorchStatevector(hea, "native")._kernel_readout, ZTerms)
    register_circuit("native_probs_18", replace=True)(_probs_18)
    probs = custom_circuit("native_probs_18", n_qubits=LAZY_MIN_QUBITS, n_inputs=4, weight_shapes={"weights": (18,)})
    assert TorchStatevector(probs, "native")._kernel_readout is None  # through the state


def test_no_grad_calls_build_no_graph_and_give_the_same_values():
    backend = TorchStatevector(SPEC, "native")
    angles, weights = _inputs(SPEC, 9, torch.float32)
    with torch.no_grad():
        quiet = backend(angles, weights)
    loud = backend(angles, weights)
    assert quiet.grad_fn is None and loud.grad_fn is not None
    assert torch.equal(quiet, loud.detach())


def _wide(inputs, weights):
    qml.RX(inputs[..., 0] * weights[0], wires=0)
    qml.QubitUnitary(np.eye(16)[::-1], wires=[0, 1, 2, 3])
    return [qml.expval(qml.PauliZ(0))]


def test_constant_gates_on_more_than_three_wires_are_refused_with_the_fix():
    register_circuit("native_wide", replace=True)(_wide)
    spec = custom_circuit("native_wide", n_qubits=4, n_inputs=1, weight_shapes={"weights": (1,)})
    with pytest.raises(QRLError, match=r"at most 3 wires.*try device='torch'"):
        TorchStatevector(spec, "native")


def test_ppo_on_the_native_program_is_deterministic_and_loads_in_a_fresh_process(tmp_path, python, subprocess_env):
    def train() -> PPO:
        model = PPO(VQCActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=2, seed=3,
                    device="cpu", policy_kwargs={"n_layers": 2, "device": "torch:native"})
        model.learn(64)
        return model

    first, second = train(), train()
    params = [p.detach() for p in first.policy.parameters()]
    assert all(torch.equal(a, b.detach()) for a, b in zip(params, second.policy.parameters(), strict=True))
    dense = PPO(VQCActorCriticPolicy, "CartPole-v1", seed=3, device="cpu",
                policy_kwargs={"n_layers": 2, "device": "torch"})
    dense.policy.load_state_dict(first.policy.state_dict())
    obs = torch.as_tensor(np.stack([first.observation_space.sample() for _ in range(50)]))
    with torch.no_grad():  # the native program computes what the dense one does, to float32 rounding
        torch.testing.assert_close(first.policy.predict_values(obs), dense.policy.predict_values(obs),
                                   atol=1e-5, rtol=0)
    first.save(tmp_path / "model.zip")
    np.save(tmp_path / "obs.npy", obs.numpy())
    expected, _ = first.predict(obs.numpy(), deterministic=True)
    script = ("import json, sys, numpy as np\nfrom stable_baselines3 import PPO\n"
              "m = PPO.load(sys.argv[1], device='cpu')\n"
              "print(json.dumps(m.predict(np.load(sys.argv[2]), deterministic=True)[0].tolist()))")
    out = subprocess.run([python, "-c", script, str(tmp_path / "model.zip"), str(tmp_path / "obs.npy")],
                         env=subprocess_env, capture_output=True, text=True, timeout=300, check=True)
    np.testing.assert_array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected)


def test_the_native_program_runs_on_the_cpu_only():
    backend = TorchStatevector(SPEC, "native")
    angles, weights = _inputs(SPEC, 2)
    with pytest.raises(QRLError, match="runs on the CPU"):
        backend(angles.detach().to("meta"), weights.detach().to("meta"))


def test_the_memory_estimate_counts_the_batch_padded_to_whole_registers():
    """The kernel pads a batch to whole vectors of its width (4, 8 or a multiple of 16 samples): a batch of 2 takes
    the memory of 4, and the training's memory check must see that."""
    from qrl.simulator.programs import KEPT_OVERHEAD, state_bytes

    backend = TorchStatevector(SPEC, "native")
    assert [native.padded(b) for b in (1, 4, 5, 8, 9, 16, 17)] == [4, 4, 8, 8, 16, 16, 32]
    assert backend.gradient_bytes(1) == backend.gradient_bytes(4) < backend.gradient_bytes(5)
    assert backend.gradient_bytes(9) == backend.gradient_bytes(16) < backend.gradient_bytes(17)
    assert backend.gradient_bytes(2) == int(KEPT_OVERHEAD * (1 + 2) * state_bytes(SPEC.n_qubits, 4, 8))


PEAK_SCRIPT = """
import sys, threading, time, torch
from qrl.backends import TorchStatevector
from qrl.circuits import CircuitSpec
torch.set_num_threads(1)
def anon():  # anonymous resident memory, bytes (file-backed pages, such as libraries' code, left out)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon:")) * 1024
spec = CircuitSpec(n_qubits=18, n_layers=1, n_inputs=18, n_outputs=2)
backend = TorchStatevector(spec, sys.argv[1])
x, w = torch.rand(64, *spec.input_shape), torch.rand(spec.weight_shape, requires_grad=True)
before, peak, done = anon(), [0], threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], anon())
        time.sleep(0.0005)
watcher = threading.Thread(target=watch)
watcher.start()
backend(x, w).sum().backward()
done.set()
watcher.join()
print(max(peak[0], anon()) - before, backend.gradient_bytes(64))
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/status (Linux)")
@pytest.mark.parametrize("program", ["native", "native-plain"])
def test_the_memory_estimate_covers_the_measured_peak(program, python, subprocess_env):
    """The estimate auto and the training's memory check use, against the peak a forward + backward adds to a fresh
    process's anonymous resident memory (sampled while it runs; 18 qubits, batch 64: 128 MiB a state batch): three
    state batches where the kernel reads out itself, more than four where the state leaves it (``native-plain`` from
    18 qubits: 4.25 since its Z words are read by WireZ, five before, when the readout made a copy per wire); the
    estimate above each, by at most 2x."""
    out = subprocess.run([python, "-c", PEAK_SCRIPT, program], env=subprocess_env, capture_output=True, text=True,
                         timeout=300, check=True)
    peak, estimate = map(int, out.stdout.split())
    state = 2**18 * 64 * 8
    assert (2.5 if program == "native" else 4) * state < peak <= estimate < 2 * peak, (peak / state, estimate / state)


@pytest.mark.parametrize("batch", [1, 3, 5, 8])
def test_a_small_batch_in_a_narrow_width_computes_what_the_wide_one_does_to_the_bit(batch):
    """Batches of at most 4 or 8 samples run in narrower vectors; a sample's values and gradients are those it gets
    in a batch of 16 (the extra samples' cotangent zero), bit for bit, so seeded runs do not depend on the width."""
    spec = CircuitSpec(n_qubits=9, n_layers=2, n_inputs=9, n_outputs=9, ansatz="strongly_entangling")
    backend = TorchStatevector(spec, "native")
    gen = torch.Generator().manual_seed(batch)
    x = torch.rand(17, *spec.input_shape, generator=gen)
    weights = [torch.rand(*shape, generator=gen) for shape in spec.weight_shapes.values()]
    results = []
    for size in (batch, 17):
        xs, ws = x[:size].clone().requires_grad_(), [w.clone().requires_grad_() for w in weights]
        out = backend(xs, *ws)
        cot = torch.zeros_like(out)
        cot[:batch] = torch.linspace(-1, 1, batch * out.shape[1]).reshape(batch, -1)
        grads = torch.autograd.grad((out * cot).sum(), [xs, *ws])
        results.append([out[:batch], grads[0][:batch], *grads[1:]])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_a_ring_of_czs_is_one_pass_at_every_size_and_computes_what_the_other_forms_do(monkeypatch):
    """A ring of CZs runs as one product of CZs (signs from the amplitude's bits, no table); as other diagonal gates it
    is one diagonal of the whole state up to MERGED_DIAGONAL_MAX_QUBITS (stored once for the layers' equal rings) and
    runs gate by gate above (a merged diagonal of 26 qubits took 2 GiB per layer). Values and gradients are the same
    to the bit in all three forms."""
    spec = CircuitSpec(n_qubits=8, n_layers=2, n_inputs=8, n_outputs=8)
    product = TorchStatevector(spec, "native")
    monkeypatch.setattr(native, "CZ_PRODUCTS", False)
    merged = TorchStatevector(spec, "native")
    monkeypatch.setattr(native, "MERGED_DIAGONAL_MAX_QUBITS", 7)
    apart = TorchStatevector(spec, "native")
    full, cz = 6, 7  # the kernel's kinds for a diagonal of the whole state and for a product of CZs
    kinds = [set(b._impl.ops[:, 0].tolist()) for b in (product, merged, apart)]
    assert cz in kinds[0] and full not in kinds[0] and full in kinds[1] and not {full, cz} & kinds[2]
    rings = merged._impl.ops[merged._impl.ops[:, 0] == full]
    assert len(rings) == 2 and rings[0, 7] == rings[1, 7]  # the two layers' rings: one diagonal stored, read twice
    assert merged._impl.mat_re.size == 2 * 2**8 + apart._impl.mat_re.size  # its phases and their conjugates, once
    assert apart.native_passes() == merged.native_passes() + 2 * (8 - 1) == product.native_passes() + 2 * (8 - 1)
    assert apart.native_passes(merge_diagonals=True) == merged.native_passes() == product.native_passes(True)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(5, *spec.input_shape, generator=gen, dtype=torch.float64)
    w = torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64)
    results = []
    for backend in (product, merged, apart):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = backend(xs, ws)
        results.append([out, *torch.autograd.grad(out.sum(), [xs, ws])])
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(*results, strict=True))


def test_cz_terms_give_the_sign_of_any_set_of_czs():
    """The product of CZs on any pairs (repeated ones cancel) against the product of their diagonals."""
    gen = np.random.default_rng(0)
    for n in (2, 3, 5, 9):
        pairs = [tuple(int(w) for w in gen.choice(n, 2, replace=False)) for _ in range(3 * n)]
        terms = native._cz_terms(pairs, n)
        j = np.arange(2**n)
        counts = [np.bitwise_count(j & (j >> s) & m).astype(int) for s, m in zip(terms[::2], terms[1::2], strict=True)]
        odd = sum(counts) % 2
        bits = (j[:, None] >> (n - 1 - np.arange(n))) & 1
        expected = np.prod([1 - 2 * (bits[:, a] & bits[:, b]) for a, b in pairs], axis=0)
        np.testing.assert_array_equal(1 - 2 * odd, expected)
    assert native._cz_terms([(0, 1), (1, 0)], 4).size == 0  # a CZ twice: nothing


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="builds for an x86-64 baseline")
def test_a_build_for_a_cpu_without_fma_computes_the_same_to_the_bit(monkeypatch, tmp_path):
    """The kernel is built for this CPU (-march=native) with no contracted multiply-adds, so a seeded run computes
    the same on a machine without FMA or AVX-512: here, a build for the baseline x86-64-v2 gives the same bits."""
    spec = CircuitSpec(n_qubits=6, n_layers=3, n_inputs=6, n_outputs=6, ansatz="strongly_entangling")
    results = []
    baseline = (*(f for f in native.FLAGS if not f.startswith("-march")), "-march=x86-64-v2")
    for flags in (native.FLAGS, baseline):
        monkeypatch.setattr(native, "_library", {})
        monkeypatch.setattr(native, "FLAGS", flags)
        monkeypatch.setattr(native, "X86_FLAGS", native.X86_FLAGS if flags is native.FLAGS else ())
        monkeypatch.setenv("QRL_CACHE", str(tmp_path / str(len(results))))
        backend = TorchStatevector(spec, "native")
        for dtype, batch in ((torch.float32, 19), (torch.float64, 3)):
            x, w = _inputs(spec, batch, dtype, seed=batch)
            out = backend(x, w)
            results.append([out, *torch.autograd.grad((out * out).sum(), [x, w])])
    assert len(list((tmp_path / "2").iterdir())) == 1  # the second build is its own library
    pairs = [pair for here, base in zip(results[:2], results[2:], strict=True) for pair in zip(here, base, strict=True)]
    assert all(torch.equal(a, b) for a, b in pairs)


def _controlled_rotations(inputs, weights):
    n = weights.shape[1]
    for w in range(n):
        qml.RY(inputs[..., w], wires=w)
    for layer in range(weights.shape[0]):
        qml.CRX(weights[layer, 0, 0] * inputs[..., 0], wires=[0, 1])
        qml.CRY(weights[layer, 1, 0], wires=[3, 1])  # the control after the target
        qml.CRZ(inputs[..., 2] + weights[layer, 2, 0], wires=[2, n - 1])  # far apart
        qml.CRot(*(weights[layer, 3, k] + inputs[..., 3] for k in range(3)), wires=[n - 1, 0])
        qml.ControlledPhaseShift(weights[layer, 4, 0], wires=[1, 4])  # a gate on the control: not a controlled run
        qml.Hadamard(wires=layer % n)
    return [qml.expval(qml.PauliZ(w)) for w in range(n)] + [qml.expval(qml.PauliX(0) @ qml.PauliY(3))]


class _NotControlled(qml.operation.Operation):
    """A gate named as a controlled rotation whose decomposition does not leave the control's 0 half alone:
    RY(a) on the target on both sides of two CNOTs (RY(2a) there)."""

    num_wires, num_params = 2, 1

    @staticmethod
    def compute_decomposition(angle, wires):
        return [qml.RY(angle, wires=wires[1]), qml.CNOT(wires=wires), qml.RY(angle, wires=wires[1]),
                qml.CNOT(wires=wires)]


def _not_controlled(inputs, weights):
    qml.Hadamard(wires=0)
    _NotControlled(inputs[..., 0] * weights[0], wires=[0, 1])
    qml.CRY(weights[1], wires=[1, 2])
    return [qml.expval(qml.PauliZ(w)) for w in range(3)]


def _kernel_against_default_qubit(spec, batch: int, dtype=torch.float64, atol: float = 1e-12):
    """The kernel's values and gradients (inputs and weights) against default.qubit's with backprop, in float64."""
    gen = torch.Generator().manual_seed(batch)
    shape = spec.weight_shapes["weights"]
    x = (torch.rand(batch, spec.n_inputs, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=spec.n_qubits), interface="torch",
                      diff_method="backprop")
    ref = torch.stack([torch.cat([torch.as_tensor(r).reshape(-1) for r in qnode(xi, w)]) for xi in x])
    cot = torch.linspace(-1, 1, ref.numel(), dtype=torch.float64).reshape(ref.shape)
    g_ref = torch.autograd.grad((ref * cot).sum(), (x, w))
    backend = TorchStatevector(spec, "native")
    xd, wd = x.detach().to(dtype).requires_grad_(True), w.detach().to(dtype).requires_grad_(True)
    got = backend(xd, wd)
    torch.testing.assert_close(got.double(), ref, atol=atol, rtol=0)
    for a, b in zip(torch.autograd.grad((got * cot.to(dtype)).sum(), (xd, wd)), g_ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=atol * 10, rtol=0)
    return backend._impl


@pytest.mark.parametrize("batch", [3, 17])
def test_controlled_rotations_run_as_controlled_runs_with_default_qubits_values_and_gradients(batch):
    """CRX, CRY, CRZ and CRot (PennyLane's decompositions: gates on the target between two CNOTs) run as controlled
    runs, over the half of the state where the control is 1 (a control after its target, wires far apart, angles of
    inputs and weights); ControlledPhaseShift, whose decomposition turns the control too, as its gates: values and
    gradients equal default.qubit's to 1e-12 in float64 and 1e-5 in float32."""
    register_circuit("native_controlled", replace=True)(_controlled_rotations)
    spec = custom_circuit("native_controlled", n_qubits=6, n_inputs=6, weight_shapes={"weights": (2, 6, 3)})
    program = _kernel_against_default_qubit(spec, batch)
    _kernel_against_default_qubit(spec, batch, torch.float32, atol=1e-5)
    heads = program.ops[program.ops[:, 0] == 8]
    assert [tuple(h[2:4]) for h in heads] == [(0, 1), (3, 1), (2, 5), (5, 0)] * 2  # (control, target); no (1, 4)
    assert np.array_equal(heads[:, 4], [4, 2, 2, 5] * 2)  # CRX: 2 rotations and 2 constants; CRot: 5 rotations
    assert int(np.sum(program.ops[:, 0] == 9)) == len(heads) and int(np.sum(program.ops[:, 0] == 5)) == 2 * 2


def test_a_decomposition_that_turns_the_controls_zero_half_is_not_a_controlled_run(monkeypatch):
    """The tracer tags a controlled rotation's gates only where they multiply to the identity where the control is
    0 (checked on the recorded angles): a gate named as one whose decomposition turns that half too runs as its
    gates, with default.qubit's values; a CRY beside it is still a controlled run."""
    from qrl.simulator import trace

    monkeypatch.setattr(trace, "CONTROLLED_ROTATIONS", trace.CONTROLLED_ROTATIONS | {"_NotControlled"})
    register_circuit("native_not_controlled", replace=True)(_not_controlled)
    spec = custom_circuit("native_not_controlled", n_qubits=3, n_inputs=1, weight_shapes={"weights": (2,)})
    gates = trace.trace_circuit(spec).gates
    assert [g.controlled for g in gates[1:5]] == [None] * 4 and gates[5].controlled == (5, 1, 2)
    program = _kernel_against_default_qubit(spec, 5)
    assert program.ops[:, 0].tolist().count(8) == 1 and program.ops[:, 0].tolist().count(5) == 2
