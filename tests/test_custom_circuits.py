"""Users' own circuits: random circuits over the whole gate set against PennyLane's simulators, the
library, naming (registered, entry point, module:function), refusals, and save/load of policies."""

from __future__ import annotations

import json
import math
import random
import subprocess

import numpy as np
import pennylane as qml
import pytest
import torch

from qrl.backends import TorchStatevector, make_backend
from qrl.circuits import custom_circuit, register_circuit, registered_circuits
from qrl.circuits.custom import measures_probabilities
from qrl.errors import QRLError
from qrl.nn import VQC

TOL = 1e-6  # the acceptance bound, float64; measured errors are ~1e-13

# (name, wires, number of angles); angles are random expressions of inputs and weights
PARAMETRIC = [("RX", 1, 1), ("RY", 1, 1), ("RZ", 1, 1), ("PhaseShift", 1, 1), ("Rot", 1, 3), ("U1", 1, 1),
              ("U2", 1, 2), ("U3", 1, 3), ("CRX", 2, 1), ("CRY", 2, 1), ("CRZ", 2, 1), ("CRot", 2, 3),
              ("ControlledPhaseShift", 2, 1), ("IsingXX", 2, 1), ("IsingYY", 2, 1), ("IsingZZ", 2, 1),
              ("IsingXY", 2, 1), ("MultiRZ", 0, 1), ("PauliRot", 0, 1)]
FIXED = [("Hadamard", 1), ("PauliX", 1), ("PauliY", 1), ("PauliZ", 1), ("S", 1), ("T", 1), ("SX", 1), ("CNOT", 2),
         ("CY", 2), ("CZ", 2), ("SWAP", 2), ("Toffoli", 3), ("CSWAP", 3)]
TEMPLATES = ["AngleEmbedding", "IQPEmbedding", "BasicEntanglerLayers", "StronglyEntanglingLayers", "QubitUnitary"]


def _expression(rng: random.Random, n_inputs: int, n_weights: int):
    """A random differentiable expression ``f(x, w)`` of one input feature and one or two weights."""
    i, j, k = rng.randrange(n_inputs), rng.randrange(n_weights), rng.randrange(n_weights)
    c = rng.choice([0.5, -1.3, 2.0, math.pi / 3])
    forms = [
        lambda x, w: w[j],
        lambda x, w: x[..., i],
        lambda x, w: w[j] * x[..., i] + w[k],
        lambda x, w: torch.sin(w[j]) * x[..., i] - c,
        lambda x, w: x[..., i] * x[..., i] + c * w[k],
        lambda x, w: torch.cos(x[..., i]) * w[j] / (1 + w[k] ** 2),
        lambda x, w: torch.arctan(x[..., i] + w[j]) * 2,
        lambda x, w: c - w[j] * torch.tanh(x[..., i]),
        lambda x, w: torch.exp(-x[..., i] ** 2) + torch.sum(w[:2]) * 0.3,  # a reduction over weights
    ]
    return rng.choice(forms)


def _random_circuit(seed: int):
    """``(function, n_qubits, n_inputs, n_weights)``: a random circuit drawn from the whole gate set."""
    rng = random.Random(seed)
    n = 1 + seed % 8
    n_inputs, n_weights = rng.randint(1, 4), rng.randint(2, 6)
    steps = []
    for _ in range(rng.randint(6, 14)):
        roll = rng.random()
        if roll < 0.55:
            name, width, n_angles = rng.choice([g for g in PARAMETRIC if g[1] <= n])
            width = width or rng.randint(1, n)
            wires = rng.sample(range(n), width)
            steps.append(("param", name, wires, [_expression(rng, n_inputs, n_weights) for _ in range(n_angles)],
                          "".join(rng.choice("XYZ") for _ in wires)))
        elif roll < 0.85:
            name, width = rng.choice([g for g in FIXED if g[1] <= n])
            steps.append(("fixed", name, rng.sample(range(n), width), None, None))
        else:
            steps.append(("template", rng.choice(TEMPLATES), list(range(n)), rng.randrange(10**6), None))
    measurements = []
    for _ in range(rng.randint(1, 3)):
        wires = rng.sample(range(n), rng.randint(1, min(n, 3)))
        kind = rng.random()
        if kind < 0.2:
            measurements.append(("probs", wires))
        else:
            measurements.append(("pauli", [(w, rng.choice("XYZ")) for w in wires], rng.choice([1.0, -0.7])))

    def circuit(inputs, weights):
        for kind, name, wires, payload, word in steps:
            if kind == "param":
                angles = [f(inputs, weights) for f in payload]
                if name == "PauliRot":
                    qml.PauliRot(angles[0], word, wires=wires)
                else:
                    getattr(qml, name)(*angles, wires=wires)
            elif kind == "fixed":
                getattr(qml, name)(wires=wires)
            else:
                _template(name, wires, inputs, weights, payload)
        out = []
        for m in measurements:
            if m[0] == "probs":
                out.append(qml.probs(wires=m[1]))
            else:
                word = qml.prod(*[getattr(qml, "Pauli" + p)(w) for w, p in m[1]])
                out.append(qml.expval(m[2] * word if m[2] != 1.0 else word))
        return out

    return circuit, n, n_inputs, n_weights


def _template(name, wires, inputs, weights, seed):
    n = len(wires)
    if name == "AngleEmbedding":
        qml.AngleEmbedding(inputs[..., :n] * weights[0], wires=wires[: inputs.shape[-1]], rotation="Y")
    elif name == "IQPEmbedding":
        feats = torch.stack([inputs[..., i % inputs.shape[-1]] for i in range(n)], -1)
        qml.IQPEmbedding(feats, wires=wires)
    elif name == "BasicEntanglerLayers":
        qml.BasicEntanglerLayers(torch.stack([weights[i % weights.shape[0]] for i in range(n)]).reshape(1, n),
                                 wires=wires)
    elif name == "StronglyEntanglingLayers":
        w = torch.stack([weights[i % weights.shape[0]] * (i + 1) for i in range(3 * n)]).reshape(1, n, 3)
        qml.StronglyEntanglingLayers(w, wires=wires)
    else:
        k = min(n, 2)
        unitary = qml.matrix(qml.RandomLayers(np.random.default_rng(seed).uniform(0, 6, (1, 3)), wires=range(k)))
        qml.QubitUnitary(unitary, wires=wires[:k])


def _outputs_and_grads(backend, inputs, weights, cotangent):
    """Values, d/dinputs and d/dweights of ``sum(out * cotangent)``."""
    x, w = inputs.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    out = backend(x, w)
    gx, gw = torch.autograd.grad((out * cotangent).sum(), (x, w))
    return out.detach(), gx, gw


def _unbroadcast(qnode):
    """PennyLane's QNode called once per sample, without broadcasting: the reference. (Its broadcasting has
    bugs of its own: lightning.qubit's adjoint Jacobian of a broadcast MultiRZ comes back ``(B, B)``, and
    ``broadcast_expand`` leaves MultiRZ broadcast for the parameter-shift rule.)"""

    def run(inputs, *weights):
        return torch.stack([torch.cat([torch.as_tensor(r).reshape(-1) for r in qnode(x, *weights)]) for x in inputs])

    return run


def _spec_of(seed: int):
    circuit, n, n_inputs, n_weights = _random_circuit(seed)
    name = f"random_{seed}"
    register_circuit(name, replace=True)(circuit)
    return custom_circuit(name, n_qubits=n, n_inputs=n_inputs, weight_shapes={"weights": (n_weights,)})


@pytest.mark.parametrize("chunk", range(10))
def test_random_circuits_match_default_qubit_and_lightning(chunk):
    """200 random circuits (1-8 qubits, 20 per chunk), batch 1 and 17, float64: values and gradients with
    respect to the inputs and the weights, on the torch path's default program, its adjoint-gradient
    program, the programs on fused two-qubit blocks (autograd and adjoint; at up to 8 qubits these run
    every branch of ``apply_block``) and the native kernel, equal default.qubit (backprop) and, for circuits without
    ``qml.probs``, lightning.qubit (adjoint). (Lightning's parameter-shift gradients of probabilities were
    measured off by up to 1.5e-6, where default.qubit and the torch path agree to 1e-13.)"""
    for seed in range(20 * chunk, 20 * chunk + 20):
        spec = _spec_of(seed)
        paths = {"torch": TorchStatevector(spec), **{f"torch:{p}": TorchStatevector(spec, p)
                                                     for p in ("adjoint", "fused", "fused-adjoint", "native")}}
        default = _unbroadcast(qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=spec.n_qubits),
                                         interface="torch", diff_method="backprop"))
        references = [default]
        if not measures_probabilities(spec):  # Lightning's adjoint method differentiates expectation values only
            references.append(_unbroadcast(qml.QNode(spec.qfunc(), qml.device("lightning.qubit", wires=spec.n_qubits),
                                                     interface="torch", diff_method="adjoint")))
        gen = torch.Generator().manual_seed(seed)
        weights = torch.rand(spec.weight_shapes["weights"], generator=gen, dtype=torch.float64) * 4 - 2
        for batch in (1, 17):
            inputs = torch.rand(batch, spec.n_inputs, generator=gen, dtype=torch.float64) * 4 - 2
            cot = torch.randn(batch, paths["torch"].n_outputs, generator=gen, dtype=torch.float64)
            got = {path: _outputs_and_grads(backend, inputs, weights, cot) for path, backend in paths.items()}
            for ref_backend in references:
                ref = _outputs_and_grads(ref_backend, inputs, weights, cot)
                for path, values in got.items():
                    for value, r, what in zip(values, ref, ("values", "d/dinputs", "d/dweights"), strict=True):
                        np.testing.assert_allclose(value.numpy(), r.numpy(), atol=TOL, rtol=0,
                                                   err_msg=f"{path}, seed {seed}, batch {batch}, {what}")


@pytest.mark.parametrize("chunk", range(2))
def test_runs_into_reused_buffers_match_default_qubit(chunk, monkeypatch):
    """With every state batch written into reused buffers (``REUSE_MIN_BYTES`` lowered to 0; runs of permutation gates
    copied from 3 qubits, so they share them), 20 random circuits per chunk at batch 5: values without a gradient
    (the per-wire and fused programs) and the adjoint method's gradients (its forward and its backward, three buffers
    for two states) equal default.qubit, and the programs writing new tensors, to 1e-6 in float64. Every broadcast
    product of a matrix per sample without autograd runs one sample at a time (``PER_SAMPLE_MIN_EXPANDED`` lowered), in
    blocks of rows (``PER_SAMPLE_BLOCK_ELEMENTS`` of 40: ten rows of a 2x2, two of a 4x4, one of larger ones)."""
    from qrl.simulator import gates, programs

    monkeypatch.setattr(programs, "PERMUTE_MAX_QUBITS", 2)
    monkeypatch.setattr(gates, "PER_SAMPLE_MIN_EXPANDED", 0)
    monkeypatch.setattr(gates, "PER_SAMPLE_MIN_AMPLITUDES", 0)
    monkeypatch.setattr(gates, "PER_SAMPLE_BLOCK_ELEMENTS", 40)
    for seed in range(200 + 20 * chunk, 220 + 20 * chunk):
        spec = _spec_of(seed)
        default = _unbroadcast(qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=spec.n_qubits),
                                         interface="torch", diff_method="backprop"))
        gen = torch.Generator().manual_seed(seed)
        weights = torch.rand(spec.weight_shapes["weights"], generator=gen, dtype=torch.float64) * 4 - 2
        inputs = torch.rand(5, spec.n_inputs, generator=gen, dtype=torch.float64) * 4 - 2
        cot = torch.randn(5, TorchStatevector(spec, "wires").n_outputs, generator=gen, dtype=torch.float64)
        ref = _outputs_and_grads(default, inputs, weights, cot)
        for min_bytes in (programs.REUSE_MIN_BYTES, 0):
            monkeypatch.setattr(programs, "REUSE_MIN_BYTES", min_bytes)
            for program in ("wires", "fused"):
                with torch.no_grad():
                    value = TorchStatevector(spec, program)(inputs, weights)
                np.testing.assert_allclose(value.numpy(), ref[0].numpy(), atol=TOL, rtol=0,
                                           err_msg=f"{program} without a gradient, seed {seed}, {min_bytes}")
            for program in ("adjoint", "fused-adjoint"):
                got = _outputs_and_grads(TorchStatevector(spec, program), inputs, weights, cot)
                for value, r, what in zip(got, ref, ("values", "d/dinputs", "d/dweights"), strict=True):
                    np.testing.assert_allclose(value.numpy(), r.numpy(), atol=TOL, rtol=0,
                                               err_msg=f"{program}, seed {seed}, {min_bytes}, {what}")


USER_MODULE = '''
import pennylane as qml


def ring(inputs, scaling, weights):
    """A user's circuit: RY(s * x + w) and RZ(w) on every wire, then a CNOT ring; Z0Z1 and X2Z3."""
    n = weights.shape[1]
    for layer in range(weights.shape[0]):
        for q in range(n):
            qml.RY(scaling[layer, q] * inputs[..., q] + weights[layer, q, 0], wires=q)
            qml.RZ(weights[layer, q, 1], wires=q)
        for q in range(n):
            qml.CNOT(wires=[q, (q + 1) % n])
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(1)), qml.expval(qml.PauliX(2) @ qml.PauliZ(3))]
'''
RING_SHAPES = {"scaling": (2, 4), "weights": (2, 4, 2)}


@pytest.fixture
def user_site(tmp_path, monkeypatch):
    """A folder on sys.path with a user's module ``user_circuits`` and an installed distribution whose entry
    point ``qrl.circuits`` names its circuit ``user_ring``."""
    site = tmp_path / "site"
    (site / "user_circuits_dist-0.1.dist-info").mkdir(parents=True)
    (site / "user_circuits.py").write_text(USER_MODULE)
    (site / "user_circuits_dist-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: user-circuits-dist\nVersion: 0.1\n")
    (site / "user_circuits_dist-0.1.dist-info" / "entry_points.txt").write_text(
        "[qrl.circuits]\nuser_ring = user_circuits:ring\n")
    monkeypatch.syspath_prepend(str(site))
    return site


LOAD_SCRIPT = """
import json, sys
import numpy as np
import stable_baselines3 as sb3
model = getattr(sb3, sys.argv[1]).load(sys.argv[2], device="cpu")
actions, _ = model.predict(np.load(sys.argv[3]), deterministic=True)
print(json.dumps(actions.tolist()))
"""

NAMED = {
    "dotted path": dict(circuit="user_circuits:ring", weight_shapes=RING_SHAPES),
    "registered": dict(circuit="hsiao", n_layers=2, post_layer=True),
    "entry point": dict(circuit="user_ring", weight_shapes=RING_SHAPES),
}


@pytest.mark.parametrize("how", NAMED)
@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_save_then_load_in_fresh_process_by_name(algo, how, user_site, tmp_path, python, subprocess_env):
    import stable_baselines3 as sb3

    from qrl.sb3 import VQCActorCriticPolicy, VQCDQNPolicy

    kwargs = dict(n_steps=32, batch_size=32, n_epochs=1) if algo == "PPO" else dict(learning_starts=16,
                                                                                    train_freq=4, buffer_size=200)
    policy = VQCActorCriticPolicy if algo == "PPO" else VQCDQNPolicy
    policy_kwargs = dict(n_qubits=4, **NAMED[how])
    if algo == "PPO":
        policy_kwargs["critic"] = dict(post_layer=True)  # the value is one number; the circuit measures two
    model = getattr(sb3, algo)(policy, "CartPole-v1", policy_kwargs=policy_kwargs, seed=0, device="cpu", **kwargs)
    model.learn(64)
    path = tmp_path / "model.zip"
    model.save(path)
    obs = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    expected, _ = model.predict(obs, deterministic=True)
    env = dict(subprocess_env, PYTHONPATH=f"{user_site}{__import__('os').pathsep}{subprocess_env['PYTHONPATH']}")
    out = subprocess.run([python, "-c", LOAD_SCRIPT, algo, str(path), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, env=env, timeout=300, check=True)
    np.testing.assert_array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected)


def test_missing_module_is_one_line_naming_it():
    with pytest.raises(QRLError, match=r"no module named 'nowhere_pkg'") as info:
        custom_circuit("nowhere_pkg.circuits:ring", n_qubits=2, n_inputs=2, weight_shapes={"w": (2,)})
    assert "\n" not in str(info.value)
    with pytest.raises(QRLError, match="unknown circuit 'no_such_name'"):
        custom_circuit("no_such_name", n_qubits=2, n_inputs=2)


def test_user_circuit_needs_weight_shapes_matching_its_arguments(user_site):
    with pytest.raises(QRLError, match="needs weight_shapes"):
        custom_circuit("user_circuits:ring", n_qubits=4, n_inputs=4)
    with pytest.raises(QRLError, match="takes \\(inputs, scaling, weights\\)"):
        custom_circuit("user_circuits:ring", n_qubits=4, n_inputs=4, weight_shapes={"weights": (2, 4, 2)})
    with pytest.raises(QRLError, match="uses wires \\[2, 3\\]"):
        custom_circuit("user_circuits:ring", n_qubits=2, n_inputs=4, weight_shapes={"scaling": (1, 4),
                                                                                      "weights": (1, 4, 2)})


def _phase_ring(inputs, weights):
    """Rings of constant two-qubit diagonal gates with complex phases (a diagonal step that is not its own
    conjugate), between trainable rotations."""
    n = weights.shape[-1]
    for w in range(n):
        qml.RX(inputs[..., w % inputs.shape[-1]], wires=w)
    for layer in range(weights.shape[0]):
        for w in range(n):
            qml.RY(weights[layer, w], wires=w)
        for w in range(n):
            qml.ControlledPhaseShift(0.7 + 0.1 * w, wires=[w, (w + 1) % n])
        qml.IsingZZ(0.3, wires=[0, n - 1])
        qml.CZ(wires=[1, 2])
    return [qml.expval(qml.PauliX(w)) for w in range(n)]


@pytest.mark.parametrize("program", ["wires", "adjoint"])
def test_constant_complex_diagonals_match_default_qubit(program):
    """A ring of ControlledPhaseShift and an IsingZZ with constant angles fuse into a complex diagonal (the CZ rings of
    the built-ins are real, their own conjugate, which the adjoint backward uses as it is): values and gradients at 8
    qubits, batch 3, float64, against default.qubit."""
    from qrl.circuits import CircuitSpec

    register_circuit("phase_ring", replace=True)(_phase_ring)
    spec = custom_circuit("phase_ring", n_qubits=8, n_inputs=3, weight_shapes={"weights": (2, 8)})
    backend = TorchStatevector(spec, program)
    assert any(step[0] == "diag" and not step[3] for step in backend._impl._program)  # a complex diagonal
    hea = TorchStatevector(CircuitSpec(n_qubits=8, n_inputs=8), program)
    assert all(step[3] for step in hea._impl._program if step[0] == "diag")  # CZ rings: real, used as they are
    gen = torch.Generator().manual_seed(374)
    weights = torch.rand(2, 8, generator=gen, dtype=torch.float64) * 4 - 2
    inputs = torch.rand(3, 3, generator=gen, dtype=torch.float64) * 2 - 1
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=8), interface="torch", diff_method="backprop")
    cot = torch.arange(1.0, 9.0, dtype=torch.float64)
    want = _outputs_and_grads(_unbroadcast(qnode), inputs, weights, cot)
    for g, w in zip(_outputs_and_grads(backend, inputs, weights, cot), want, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=TOL, rtol=0)


LIBRARY = ["jerbi_skolik", "hsiao", "meyer_iqp", "chen_vqdqn", "lockwood_si", "born_parity"]


@pytest.mark.parametrize("name", LIBRARY)
def test_library_circuit_matches_default_qubit(name):
    """Each published circuit of the library, 3 layers on 4 qubits (3 features), batch 5, float64, against
    default.qubit (backprop) and, without qml.probs, lightning.qubit (adjoint)."""
    entry = registered_circuits()[name]
    assert entry.citation and entry.description
    spec = custom_circuit(name, n_qubits=4, n_inputs=3, n_layers=3)
    gen = torch.Generator().manual_seed(7)
    weights = [torch.rand(s, generator=gen, dtype=torch.float64) * 4 - 2 for s in spec.weight_shapes.values()]
    inputs = torch.rand(5, 3, generator=gen, dtype=torch.float64) * 2 - 1
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=4), interface="torch", diff_method="backprop")

    def both(f):
        x, ws = inputs.clone().requires_grad_(True), [w.clone().requires_grad_(True) for w in weights]
        out = f(x, *ws)
        grads = torch.autograd.grad((out * torch.arange(1.0, out.shape[1] + 1, dtype=out.dtype)).sum(), (x, *ws))
        return [out.detach(), *grads]

    got = both(TorchStatevector(spec))
    references = [qnode]
    if not measures_probabilities(spec):  # Lightning's adjoint method differentiates expectation values only
        references.append(qml.QNode(spec.qfunc(), qml.device("lightning.qubit", wires=4), interface="torch",
                                    diff_method="adjoint"))
    for ref in references:
        want = both(_unbroadcast(ref))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.numpy(), w.numpy(), atol=TOL, rtol=0)


def test_user_copy_of_the_default_circuit_equals_the_built_in():
    """``jerbi_skolik`` is qrl's default circuit written as a user would: same values, same parameters."""
    from qrl.circuits import CircuitSpec

    builtin = VQC(CircuitSpec(n_qubits=4, n_layers=5, n_inputs=4, n_outputs=4), seed=3).double()
    user = VQC(custom_circuit("jerbi_skolik", n_qubits=4, n_inputs=4, n_layers=5), seed=3).double()
    assert sum(p.numel() for p in builtin.parameters()) == sum(p.numel() for p in user.parameters())
    with torch.no_grad():
        user.circuit_weights["weights"].copy_(builtin.weights)
        user.circuit_weights["input_scaling"].copy_(builtin.input_scaling * 1.3)
        builtin.input_scaling.mul_(1.3)
    x = torch.rand(9, 4, dtype=torch.float64) * 4 - 2
    torch.testing.assert_close(user(x), builtin(x), atol=1e-12, rtol=0)


class _NoMatrixGate(qml.operation.Operation):
    """A parametrised gate with neither a matrix nor a decomposition."""

    num_wires = 1
    num_params = 1


@pytest.mark.parametrize(("body", "message"), [
    (lambda x, w: _NoMatrixGate(w[0] * x[..., 0], wires=0), "_NoMatrixGate on wires \\[0\\] is not supported"),
    (lambda x, w: qml.var(qml.PauliZ(0)), "returns var\\(Z\\(0\\)\\); expected a list of qml.expval"),
    (lambda x, w: qml.expval(qml.Hermitian(np.eye(2), wires=0)), "is not supported by the torch backend"),
])
def test_unsupported_operations_are_refused_in_one_line(body, message):
    def circuit(inputs, w):
        out = body(inputs, w)
        return [out] if out is not None and not isinstance(out, qml.operation.Operator) else \
            [qml.expval(qml.PauliZ(0))]

    register_circuit("unsupported", replace=True)(circuit)
    with pytest.raises(QRLError, match=message) as info:
        make_backend(custom_circuit("unsupported", n_qubits=1, n_inputs=1, weight_shapes={"w": (1,)}), "torch")
    text = str(info.value)
    assert "\n" not in text and ("expected" in text or "try device=" in text)


def test_weight_init_is_declared_and_seeded():
    spec = custom_circuit("meyer_iqp", n_qubits=3, n_inputs=3, n_layers=2,
                          init={"weights": "uniform(0, 2*pi)"})
    a, b = VQC(spec, seed=5), VQC(spec, seed=5)
    torch.testing.assert_close(a.circuit_weights["weights"], b.circuit_weights["weights"])
    assert torch.equal(a.circuit_weights["scaling"], torch.ones(2, 3, 3))  # the library's declared init
    w = a.circuit_weights["weights"].detach()
    assert 0 <= float(w.min()) and float(w.max()) <= 2 * math.pi and float(w.std()) > 0.5
    small = VQC(custom_circuit("meyer_iqp", n_qubits=3, n_inputs=3, n_layers=2, init="normal(0, 0.01)"), seed=1)
    assert float(small.circuit_weights["weights"].detach().abs().max()) < 0.1
    with pytest.raises(QRLError, match="unknown weight init 'gauss\\(1\\)'"):
        custom_circuit("meyer_iqp", n_qubits=3, n_inputs=3, init="gauss(1)")
    with pytest.raises(QRLError, match="unknown weight init"):
        custom_circuit("meyer_iqp", n_qubits=3, n_inputs=3, init="uniform(__import__('os'), 1)")


def test_large_circuit_readout_equals_the_matrix_readout(monkeypatch):
    """The readout of large circuits (sums over views of ``|psi|^2``, and for words with an X or a Y flipped views,
    :class:`~qrl.simulator.readout.PauliFlips`; no ``(2**n, width)`` matrix; from ``LAZY_MIN_QUBITS``) forced on 40
    random circuits and the built-in readouts, their states read in chunks of two samples: values and gradients equal
    the matrix readout's, for Z, X and Y words, sums of them with constants, and probabilities."""
    from qrl.circuits import READOUTS, CircuitSpec
    from qrl.simulator import readout

    lazy_seen, flips_seen = 0, 0
    builtins = [CircuitSpec(n_qubits=5, n_inputs=3, n_outputs=2, readout=r) for r in sorted(READOUTS)]
    for seed, spec in [*((s, _spec_of(s)) for s in range(40)), *enumerate(builtins)]:
        gen = torch.Generator().manual_seed(seed)
        weights = torch.rand(next(iter(spec.weight_shapes.values())), generator=gen, dtype=torch.float64) * 4 - 2
        inputs = torch.rand(5, *spec.input_shape, generator=gen, dtype=torch.float64) * 4 - 2
        matrix = TorchStatevector(spec)
        cot = torch.randn(5, matrix.n_outputs, generator=gen, dtype=torch.float64)
        monkeypatch.setattr(readout, "LAZY_MIN_QUBITS", 0)
        lazy = TorchStatevector(spec)
        monkeypatch.undo()
        lazy_seen += lazy._readout._lazy is not None
        flips_seen += any(column[0] == "pauli" for column in lazy._readout._lazy)
        monkeypatch.setattr(readout, "WIRE_Z_CHUNK_ELEMENTS", 2 * 2**spec.n_qubits)
        for got, ref in zip(_outputs_and_grads(lazy, inputs, weights, cot),
                            _outputs_and_grads(matrix, inputs, weights, cot), strict=True):
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-12, rtol=0, err_msg=f"seed {seed}")
        monkeypatch.undo()
    assert lazy_seen == 40 + len(builtins) and flips_seen >= 10  # every readout; X or Y words in some


def test_x_and_y_words_need_no_readout_matrix(monkeypatch):
    """X on every wire: the matrix form holds a ``(2**n, width)`` matrix per flip mask, slower than the flipped views
    from ``FLIPS_LAZY_MIN_QUBITS`` (11), where a readout with an X or a Y word is read lazily (Z words alone keep the
    matrix below ``LAZY_MIN_QUBITS``); without that rule, from ``MATRIX_MAX_ENTRIES`` (at 14 qubits 3.4 M entries: the
    matrix; at 15, 7.9 M: lazy); at 20 qubits (the matrix form: 6.7 GiB) lazily, Y words and mixed words too."""
    from qrl.simulator import readout
    from qrl.simulator.readout import Readout

    def x_on_every_wire(n):
        return [qml.expval(qml.PauliX(i)) for i in range(n)]

    assert Readout(x_on_every_wire(10), 10)._lazy is None
    assert Readout(x_on_every_wire(11), 11)._lazy is not None
    assert Readout([qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliY(9) @ qml.PauliZ(1))], 11)._lazy is not None
    assert Readout([qml.expval(qml.PauliZ(i)) for i in range(17)], 17)._lazy is None
    monkeypatch.setattr(readout, "FLIPS_LAZY_MIN_QUBITS", 99)
    assert Readout(x_on_every_wire(14), 14)._lazy is None
    assert Readout(x_on_every_wire(15), 15)._lazy is not None
    monkeypatch.undo()
    large = Readout([*x_on_every_wire(19), qml.expval(qml.PauliY(19) @ qml.PauliZ(0) + 0.5 * qml.PauliZ(3))], 20)
    assert large.width == 20 and [column[0] for column in large._lazy] == ["pauli"] * 20
    assert large._lazy[19] == ("pauli", [(0.5, [3])], [(1.0, ((0, "Z"), (19, "Y")))])


@pytest.mark.parametrize("program", [None, "native"])
def test_probabilities_over_many_wires_need_no_readout_matrix(monkeypatch, program):
    """``qml.probs`` over all 12 wires (4096 columns: a 128 MiB matrix) is read lazily, with the matrix readout's values
    and gradients and default.qubit's values; over all 16 wires (its matrix: 32 GiB) the circuit builds and its
    probabilities sum to one."""
    from qrl.simulator import readout

    spec = custom_circuit("born_parity", n_qubits=12, n_inputs=3, n_layers=2)
    lazy = TorchStatevector(spec, program)
    assert lazy._readout._lazy is not None and lazy.n_outputs == 2**12
    monkeypatch.setattr(readout, "MATRIX_MAX_ENTRIES", 2**30)
    matrix = TorchStatevector(spec, program)
    assert matrix._readout._lazy is None
    monkeypatch.undo()
    inputs, weights = _assert_same_values_and_gradients(lazy, matrix, spec, batch=3, seed=0, atol=1e-12)
    qnode = qml.QNode(spec.qfunc(), qml.device("default.qubit", wires=12), interface="torch")
    reference = torch.stack([torch.as_tensor(qnode(x, *weights)[0]) for x in inputs])
    np.testing.assert_allclose(lazy(inputs, *weights).numpy(), reference.numpy(), atol=1e-12, rtol=0)
    wide = custom_circuit("born_parity", n_qubits=16, n_inputs=3, n_layers=1)
    probs = TorchStatevector(wide, program)(torch.rand(1, 3, dtype=torch.float64),
                                            *[torch.rand(s, dtype=torch.float64) for s in wide.weight_shapes.values()])
    assert probs.shape == (1, 2**16) and abs(float(probs.sum()) - 1) < 1e-12


def test_wide_readouts_leave_the_kernel_as_the_state():
    """The kernel reads out at most READOUT_MAX_COLUMNS columns itself; ``qml.probs`` over 6 wires (64 columns) is
    read from the state by the torch readout, with the torch program's values and gradients."""
    from qrl.simulator.native import READOUT_MAX_COLUMNS

    for n in (4, 6):
        spec = custom_circuit("born_parity", n_qubits=n, n_inputs=3, n_layers=2)
        kernel = TorchStatevector(spec, "native")
        assert (kernel._kernel_readout is None) == (2**n > READOUT_MAX_COLUMNS)
        _assert_same_values_and_gradients(kernel, TorchStatevector(spec), spec, batch=5, seed=n, atol=1e-9)


def _assert_same_values_and_gradients(backend, reference, spec, batch: int, seed: int, atol: float):
    """Values and gradients (inputs and every weight, for a random cotangent) of two backends of ``spec`` agree to
    ``atol`` in float64; returns the random inputs and weights."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch, *spec.input_shape, generator=gen, dtype=torch.float64)
    weights = [torch.rand(shape, generator=gen, dtype=torch.float64) for shape in spec.weight_shapes.values()]
    cot = torch.randn(batch, backend.n_outputs, generator=gen, dtype=torch.float64)
    results = []
    for b in (backend, reference):
        leaves = [t.clone().requires_grad_(True) for t in (inputs, *weights)]
        out = b(*leaves)
        results.append([out.detach(), *torch.autograd.grad((out * cot).sum(), leaves)])
    for got, ref in zip(*results, strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=atol, rtol=0)
    return inputs, weights
