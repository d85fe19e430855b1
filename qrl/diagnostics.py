"""Barren-plateau diagnostics: gradient variance at initialisation (``qrl diagnose gradients``), and
circuit summaries of a policy (``qrl diagnose circuit``).

Studies over random initialisations: :func:`circuit_gradient_study` (a built-in circuit alone, simulated
by :class:`qrl.simulator.BatchedStatevector`), :func:`custom_circuit_gradient_study` (a library or user
circuit, torch autograd) and :func:`policy_gradient_study` (an agent preset's policy); the statistics
(:func:`variance_stats`, :func:`fit_decay`), tables, plots and JSON output.
"""

from __future__ import annotations

import math
import re
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qrl.backends.memory import available_memory, format_bytes
from qrl.circuits.custom import CustomCircuit, custom_circuit, find_circuit, one_line, zero_tape
from qrl.circuits.readouts import READOUTS
from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError
from qrl.io import atomic_write, write_json
from qrl.simulator import BatchedStatevector

WEIGHT_RANGE = math.pi
"""Initial ansatz weights are i.i.d. ``U[-WEIGHT_RANGE, WEIGHT_RANGE]``, as :class:`qrl.nn.VQC` draws them."""

INPUT_RANGE = math.pi / 2
"""Random encoding angles are ``U[-INPUT_RANGE, INPUT_RANGE]``: the range of ``arctan`` and of ``bounds``."""

INPUTS = ("random", "zeros")

STATES_IN_FLIGHT = 4
"""Batched states held at once by the adjoint sweep (state, adjoint state, two temporaries)."""

Log = Callable[[str], None]


# -- statistics --------------------------------------------------------------------------------------


def variance_stats(grads: np.ndarray) -> dict[str, float]:
    """Gradient variance over initialisations, with standard errors.

    Args:
        grads: ``(S, ..., P)``: ``dL/dtheta_k`` of ``S >= 2`` independent initialisations; middle axes
            (e.g. observations) are averaged over like the ``P`` parameters.

    Returns:
        ``var_mean``: the unbiased variance over initialisations of each gradient entry, averaged over
        the entries; ``var_first``: the same for parameter 0 only; each with ``*_se``, its standard error
        ``std(h) / sqrt(S)`` from the per-initialisation terms ``h_i`` whose mean is the estimate (``h_i``
        averages over the entries, so correlations between them are accounted for); ``mean_abs_grad``:
        the mean of ``|dL/dtheta|``.
    """
    s = grads.shape[0]
    dev2 = (grads - grads.mean(0)) ** 2 * (s / (s - 1))  # its mean over initialisations: the unbiased variance
    per_init = dev2.reshape(s, -1).mean(1)
    first = dev2[..., 0].reshape(s, -1).mean(1)
    return {
        "var_mean": float(per_init.mean()),
        "var_mean_se": float(per_init.std(ddof=1) / math.sqrt(s)),
        "var_first": float(first.mean()),
        "var_first_se": float(first.std(ddof=1) / math.sqrt(s)),
        "mean_abs_grad": float(np.abs(grads).mean()),
    }


def fit_decay(x: Sequence[float], var: Sequence[float], se: Sequence[float] | None = None) -> dict[str, Any] | None:
    """Least-squares line ``ln var = a + b x`` (``x``: qubit counts).

    Args:
        x: ``(K,)`` qubit counts.
        var: ``(K,)`` variances; points with ``var <= 0`` are left out.
        se: ``(K,)`` standard errors of ``var``, propagated to ``slope_se`` (``se(ln var) = se / var``).

    Returns:
        ``slope`` ``b``, ``intercept`` ``a``, ``decay_rate`` ``-b``, ``decay_over_ln2`` ``-b / ln 2``,
        ``slope_se`` and ``points``; ``None`` when fewer than two distinct ``x`` remain. ``slope_se`` is
        the sampling error only: where ``ln var`` is not a straight line (a 2-design's ``1 / (2**n + 1)``
        bends at small ``n``), the slope also depends on which ``x`` are fitted.
    """
    x, var = np.asarray(x, dtype=float), np.asarray(var, dtype=float)
    keep = var > 0
    if len(set(x[keep].tolist())) < 2:
        return None
    xs, ys = x[keep], np.log(var[keep])
    b, a = np.polyfit(xs, ys, 1)
    slope_se = None
    if se is not None:
        c = (xs - xs.mean()) / ((xs - xs.mean()) ** 2).sum()
        slope_se = float(math.sqrt(float(((c * np.asarray(se, dtype=float)[keep] / var[keep]) ** 2).sum())))
    return {"slope": float(b), "intercept": float(a), "decay_rate": float(-b),
            "decay_over_ln2": float(-b / math.log(2)), "slope_se": slope_se, "points": int(keep.sum())}


# -- the circuit study -------------------------------------------------------------------------------


def study_spec(ansatz: str, n_qubits: int, n_layers: int, readout: str) -> CircuitSpec:
    """The circuit of the study: one input per qubit, data re-uploading, the readout's first observable
    as the cost (``zz`` with two outputs, so that its first is the product of Z over half the qubits)."""
    n_outputs = min(2, n_qubits) if readout == "zz" else 1
    return CircuitSpec(n_qubits=n_qubits, n_layers=n_layers, n_inputs=n_qubits, n_outputs=n_outputs,
                       ansatz=ansatz, readout=readout)


def check_memory(n_qubits: int, n_samples: int, available: int | None = None) -> None:
    """Refuse a study whose batched states (``S * 2**n * 16`` bytes each) do not fit in memory."""
    available = available_memory() if available is None else available
    need = STATES_IN_FLIGHT * n_samples * 16 * 2**n_qubits
    if need > available:
        fit = max(0, math.floor(math.log2(max(1, available // (STATES_IN_FLIGHT * n_samples * 16)))))
        raise QRLError(f"{n_qubits} qubits with {n_samples} samples need {format_bytes(need)} ({STATES_IN_FLIGHT} "
                       f"batched states of {n_samples} x 2**{n_qubits} complex numbers); expected at most "
                       f"{format_bytes(available)} (available memory); got --qubits {n_qubits}; try --qubits {fit} "
                       f"or fewer, or fewer --samples")


def _check_counts(name: str, values: Sequence[int], flag: str) -> list[int]:
    values = list(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise QRLError(f"expected positive {name} for {flag}; got {values}; try {flag} 2 4 6")
    return sorted(set(values))


def _check_samples(samples: int, seed: int) -> None:
    if not isinstance(samples, int) or samples < 2:
        raise QRLError(f"a variance needs at least 2 initialisations; got --samples {samples}; try --samples 200")
    if not isinstance(seed, int) or seed < 0:
        raise QRLError(f"expected a non-negative seed; got --seed {seed}; try --seed 0")


def sample_inputs(spec: CircuitSpec, n_samples: int, rng: np.random.Generator, inputs: str) -> np.ndarray:
    """Encoding angles ``(S, n_encoding_layers, n_inputs)``: one random observation per sample re-uploaded in
    every layer (``lambda = 1``), or zeros."""
    if inputs == "zeros":
        return np.zeros((n_samples, spec.n_encoding_layers, spec.n_inputs))
    u = rng.uniform(-INPUT_RANGE, INPUT_RANGE, size=(n_samples, 1, spec.n_inputs))
    return np.repeat(u, spec.n_encoding_layers, axis=1)


def circuit_gradient_study(ansatz: str = "hea", qubits: Sequence[int] = (2, 4, 6, 8, 10),
                           layers: Sequence[int] = (2, 50), readouts: Sequence[str] = ("z", "parity"),
                           samples: int = 200, seed: int = 0, inputs: str = "random",
                           log: Log | None = None) -> dict[str, Any]:
    """``Var[dL/dtheta]`` over ``samples`` random initialisations for every (qubits, layers, readout).

    For random circuits that form 2-designs, ``Var[dL/dtheta]`` decays exponentially in ``n``, slope about
    ``-ln 2`` per qubit on a log scale (McClean et al. 2018, https://arxiv.org/abs/1803.11173); a global
    cost decays exponentially even in shallow circuits, a local one at worst polynomially at depth
    ``O(log n)`` (Cerezo et al. 2021, https://arxiv.org/abs/2001.00550). The cost is ``L = <O_0>``, the
    readout's first observable without the output weight; weights are i.i.d. ``U[-pi, pi]`` as
    :class:`qrl.nn.VQC` draws them, input scaling 1. Weights no observable sees have gradient exactly 0
    and count in the average. All ``S`` samples run as one batch with adjoint gradients
    (:class:`qrl.simulator.BatchedStatevector`).

    Args:
        ansatz: ``"hea"``, ``"strongly_entangling"`` or ``"unentangled"``.
        qubits: qubit counts ``n``.
        layers: circuit depths ``L``.
        readouts: ``"z"`` (cost ``Z0``, local), ``"zz"`` (Z over the first half of the qubits), ``"parity"``
            (``Z0 ... Z_{n-1}``, global).
        samples: initialisations ``S`` per setting.
        seed: the weights and inputs of setting ``(n, L)`` come from ``numpy.random.default_rng([seed, n,
            L])``: reproducible, independent of the other settings, and the same for every readout (the
            readouts are compared on the same circuits).
        inputs: ``"random"``: one observation per sample, angles ``U[-pi/2, pi/2]`` (the range of
            ``arctan`` and ``bounds``) re-uploaded in every layer; ``"zeros"``: the bare ansatz (McClean's).
        log: called with a progress line per setting.

    Returns:
        ``{"kind": "circuit", ..., "rows": [...], "fits": [...]}``: one row per setting with the fields of
        :func:`variance_stats` (``Var`` averaged over the weights and for ``weights[0, 0, 0]``) and
        ``qubits``, ``layers``, ``readout``, ``observable``, ``n_params``, ``seconds``; one fit
        ``ln Var = a + b n`` per ``(layers, readout)`` and statistic (``mean`` or ``first``) with the
        fields of :func:`fit_decay`.
    """
    qubits = _check_counts("qubit counts", qubits, "--qubits")
    layers = _check_counts("layer counts", layers, "--layers")
    _check_samples(samples, seed)
    if inputs not in INPUTS:
        raise QRLError(f"unknown inputs {inputs!r}; expected one of {', '.join(INPUTS)}")
    readouts = list(dict.fromkeys(readouts))
    for r in readouts:
        if r not in READOUTS:
            raise QRLError(f"unknown readout {r!r}; expected one of {', '.join(READOUTS)}")
    check_memory(max(qubits), samples)
    specs = {(n, L, r): study_spec(ansatz, n, L, r) for n in qubits for L in layers for r in readouts}  # validate
    rows = []
    for n in qubits:
        for L in layers:
            rng = np.random.default_rng([seed, n, L])
            shape = specs[(n, L, readouts[0])].weight_shape
            weights = torch.as_tensor(rng.uniform(-WEIGHT_RANGE, WEIGHT_RANGE, size=(samples, *shape)))
            angles = torch.as_tensor(sample_inputs(specs[(n, L, readouts[0])], samples, rng, inputs))
            for r in readouts:
                spec = specs[(n, L, r)]
                started = time.perf_counter()
                _, grads = BatchedStatevector(spec).gradients(angles, weights)
                stats = variance_stats(grads.reshape(samples, -1).numpy())
                row = {"qubits": n, "layers": L, "readout": r, "observable": spec.observable_labels()[0],
                       "n_params": math.prod(shape), **stats, "seconds": round(time.perf_counter() - started, 3)}
                rows.append(row)
                if log:
                    log(f"diagnose: {n} qubits, {L} layers, readout {r}: Var mean {stats['var_mean']:.3e}, "
                        f"first {stats['var_first']:.3e} ({row['seconds']:.1f} s)")
    fits = decay_fits(rows, layers, readouts)
    return {"kind": "circuit", "ansatz": ansatz, "qubits": qubits, "layers": layers, "readouts": readouts,
            "samples": samples, "seed": seed, "inputs": inputs, "weight_init": f"U[-{WEIGHT_RANGE:.6f}, "
            f"{WEIGHT_RANGE:.6f}]", "cost": "L = <O_0>, the readout's first observable", "ln2": math.log(2),
            "rows": rows, "fits": fits}


def decay_fits(rows: list[dict[str, Any]], layers: Sequence[int], readouts: Sequence[str]) -> list[dict[str, Any]]:
    """One :func:`fit_decay` over the qubit counts per ``(layers, readout)`` and statistic (``mean``,
    ``first``) of a circuit study's rows; settings with fewer than two qubit counts have none."""
    fits = []
    for L in layers:
        for r in readouts:
            pts = [row for row in rows if row["layers"] == L and row["readout"] == r]
            for stat in ("mean", "first"):
                fit = fit_decay([p["qubits"] for p in pts], [p[f"var_{stat}"] for p in pts],
                                [p[f"var_{stat}_se"] for p in pts])
                if fit is not None:
                    fits.append({"layers": L, "readout": r, "statistic": stat, **fit})
    return fits


# -- a user's circuit --------------------------------------------------------------------------------


FIRST_VALUE = "first"
"""The readout name of a user's circuit in a study: its cost is its first measured value."""


def first_value_label(spec) -> str:
    """What a circuit's first measured value is: ``expval(Z(0))``, or ``probs(wires=[0, 1])[0]`` (the
    probability of all zeros on those wires)."""
    from pennylane.measurements import ProbabilityMP

    label = measurement_labels(spec)[0]
    return f"{label}[0]" if isinstance(zero_tape(spec).measurements[0], ProbabilityMP) else label


def custom_gradients(spec: CustomCircuit, inputs: np.ndarray, weights: Sequence[np.ndarray],
                     program=None) -> np.ndarray:
    """``d f_0 / d theta`` of a user's circuit for each of ``S`` initialisations, ``f_0`` its first
    measured value: torch autograd through :class:`qrl.backends.torch.TorchStatevector` in float64, one
    initialisation at a time (its weights are shared by a batch, so samples cannot be batched).

    Args:
        spec: the circuit.
        inputs: ``(S, *spec.input_shape)``.
        weights: one array ``(S, *shape)`` per entry of ``spec.weight_shapes``, in order.
        program: a compiled ``TorchStatevector(spec)`` (default: compiled here).

    Returns:
        ``(S, P)``: the gradients with respect to every weight, flattened and concatenated in order.
    """
    from qrl.backends.torch import TorchStatevector

    f = TorchStatevector(spec) if program is None else program
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float64)
    grads = []
    for i in range(len(x)):
        theta = [torch.tensor(np.asarray(w[i]), dtype=torch.float64, requires_grad=True) for w in weights]
        (value,) = f(x[i:i + 1], *theta)[:, 0]
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, theta, allow_unused=True,
                                                                           materialize_grads=True)]))
    return torch.stack(grads).numpy()


def custom_study_spec(circuit: str, n_qubits: int, n_layers: int) -> CustomCircuit:
    """The user's circuit of a study: one input per qubit, the registered weight shapes for this size."""
    return custom_circuit(circuit, n_qubits=n_qubits, n_inputs=n_qubits, n_layers=n_layers)


def check_program_memory(program, n_qubits: int, available: int | None = None) -> None:
    """Refuse a user's circuit whose forward and backward pass (one sample, complex128) do not fit."""
    available = available_memory() if available is None else available
    need = program.gradient_bytes(1, 16)
    if need > available:
        raise QRLError(f"{n_qubits} qubits need {format_bytes(need)} for one gradient of the circuit; expected at "
                       f"most {format_bytes(available)} (available memory); got --qubits {n_qubits}; try fewer "
                       f"--qubits or --layers")


def custom_circuit_gradient_study(circuit: str, qubits: Sequence[int] = (2, 4, 6, 8, 10),
                                  layers: Sequence[int] = (2, 50), samples: int = 200, seed: int = 0,
                                  inputs: str = "random", log: Log | None = None) -> dict[str, Any]:
    """:func:`circuit_gradient_study` for a user's or a library circuit (``qrl diagnose gradients --circuit``).

    The circuit is ``custom_circuit(circuit, n_qubits=n, n_inputs=n, n_layers=L)`` (its registered weight
    shapes); the cost is its first measured value (:func:`first_value_label`), ``theta`` every weight, all
    i.i.d. ``U[-pi, pi]`` (input scalings too, whatever the circuit's own init); inputs as there: one
    ``U[-pi/2, pi/2]`` feature per qubit and sample, or zeros. Setting ``(n, L)`` draws from
    ``numpy.random.default_rng([seed, n, L])``: each weight ``(S, *shape)`` in argument order, then the
    inputs ``(S, n)``. Gradients by :func:`custom_gradients`.

    Returns:
        as :func:`circuit_gradient_study`, with ``circuit``, ``description`` and ``citation`` instead of
        ``ansatz``, the one readout :data:`FIRST_VALUE`, and per row the ``weight_shapes``.
    """
    from qrl.backends.torch import TorchStatevector

    qubits = _check_counts("qubit counts", qubits, "--qubits")
    layers = _check_counts("layer counts", layers, "--layers")
    _check_samples(samples, seed)
    if inputs not in INPUTS:
        raise QRLError(f"unknown inputs {inputs!r}; expected one of {', '.join(INPUTS)}")
    entry = find_circuit(circuit)
    specs = {(n, L): custom_study_spec(circuit, n, L) for n in qubits for L in layers}  # validate first
    rows = []
    for (n, L), spec in specs.items():
        program = TorchStatevector(spec)
        check_program_memory(program, n)
        rng = np.random.default_rng([seed, n, L])
        weights = [rng.uniform(-WEIGHT_RANGE, WEIGHT_RANGE, size=(samples, *shape))
                   for shape in spec.weight_shapes.values()]
        x = (np.zeros((samples, *spec.input_shape)) if inputs == "zeros"
             else rng.uniform(-INPUT_RANGE, INPUT_RANGE, size=(samples, *spec.input_shape)))
        started = time.perf_counter()
        stats = variance_stats(custom_gradients(spec, x, weights, program))
        row = {"qubits": n, "layers": L, "readout": FIRST_VALUE, "observable": first_value_label(spec),
               "n_params": spec.parameter_counts()["rotations"], "weight_shapes": spec.weight_shapes, **stats,
               "seconds": round(time.perf_counter() - started, 3)}
        rows.append(row)
        if log:
            log(f"diagnose: {circuit}, {n} qubits, {L} layers: Var mean {stats['var_mean']:.3e}, "
                f"first {stats['var_first']:.3e} ({row['seconds']:.1f} s)")
    return {"kind": "circuit", "circuit": circuit, "description": entry.description, "citation": entry.citation,
            "qubits": qubits, "layers": layers, "readouts": [FIRST_VALUE], "samples": samples, "seed": seed,
            "inputs": inputs, "weight_init": f"U[-{WEIGHT_RANGE:.6f}, {WEIGHT_RANGE:.6f}]",
            "cost": "L = the circuit's first measured value", "ln2": math.log(2), "rows": rows,
            "fits": decay_fits(rows, layers, [FIRST_VALUE])}


def find_fit(result: dict[str, Any], layers: int, readout: str, statistic: str = "mean") -> dict[str, Any] | None:
    """The fit of one ``(layers, readout, statistic)`` of a circuit study, or ``None``."""
    return next((f for f in result["fits"] if f["layers"] == layers and f["readout"] == readout
                 and f["statistic"] == statistic), None)


# -- the policy study --------------------------------------------------------------------------------


def collect_observations(config, n_obs: int, seed: int) -> np.ndarray:
    """``n_obs`` observations of a preset's training environments under uniformly random actions.

    The environments are the preset's (``n_envs`` copies, seeded with ``seed``); with ``normalize: true``
    the raw observations are normalised at the end with the running statistics of the whole collection
    (what ``VecNormalize`` converges to), so every observation is normalised alike.

    Returns:
        observations, shape ``(n_obs, *observation_shape)``.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from qrl.envs import make_vec, normalizes_observations

    env = make_vec(config.env_spec, config.n_envs, seed)
    normalizer = None
    if config.normalize and normalizes_observations(config, env):
        env = normalizer = VecNormalize(env, norm_reward=False)
    env.action_space.seed(seed)
    collected: list[np.ndarray] = []
    try:
        obs = env.reset()
        while sum(len(o) for o in collected) < n_obs:
            collected.append(np.asarray(normalizer.get_original_obs() if normalizer is not None else obs))
            obs, _, _, _ = env.step(np.stack([env.action_space.sample() for _ in range(env.num_envs)]))
        observations = np.concatenate(collected)[:n_obs]
        if normalizer is not None:
            observations = normalizer.normalize_obs(observations)
    finally:
        env.close()
    return observations


def policy_score_gradients(policy, weights: torch.Tensor | Sequence[torch.Tensor],
                           observations: np.ndarray) -> np.ndarray:
    """``d l_s / d weights`` for each observation ``s``, with ``l_s = -log pi(a_s | s)``, ``a_s ~ pi(. | s)``.

    ``l_s`` is one term of the policy-gradient surrogate ``-mean_s A_s log pi(a_s | s)`` (PPO's at ratio 1,
    A2C's, REINFORCE's) with unit advantage, the action drawn from the policy itself (torch's global
    generator; SB3 seeds it when it builds the model), as in a rollout.

    Args:
        policy: an SB3 ``ActorCriticPolicy``.
        weights: the parameter to differentiate (e.g. the actor circuit's ansatz weights), or a list of
            them (e.g. ``vqc.circuit_parameters()``).
        observations: ``(B, *observation_shape)``.

    Returns:
        ``(B, P)``, float64: per observation, the gradients of the weights flattened and concatenated in
        order (``P``: their total size).
    """
    weights = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    obs_t, _ = policy.obs_to_tensor(observations)
    with torch.no_grad():  # SB3 samples Gaussian actions with rsample: the action must not carry the gradient
        actions = policy.get_distribution(obs_t).sample()
    _, log_prob, _ = policy.evaluate_actions(obs_t, actions)
    eye = torch.eye(len(log_prob), dtype=log_prob.dtype)
    try:
        grads = torch.autograd.grad(-log_prob, weights, grad_outputs=eye, is_grads_batched=True, allow_unused=True,
                                    materialize_grads=True, retain_graph=True)
    except RuntimeError:  # a backward that cannot be batched (the native kernel's C call): one row at a time
        rows = [torch.autograd.grad(-log_prob, weights, grad_outputs=row, allow_unused=True, materialize_grads=True,
                                    retain_graph=True) for row in eye]
        grads = [torch.stack(per_weight) for per_weight in zip(*rows, strict=True)]
    return torch.cat([g.reshape(len(log_prob), -1) for g in grads], dim=1).double().numpy()


def _actor_vqc(policy):
    extractor = getattr(policy, "mlp_extractor", None)
    net = getattr(extractor, "policy_net", None)
    return getattr(net, "vqc", None)


def circuit_fields(spec) -> dict[str, Any]:
    """A policy study row's description of a circuit: ``readout``, ``observable`` (of the cost), ``qubits``,
    ``ansatz``, ``n_params`` (its weights); a user's circuit has ``circuit`` and no ansatz or readout."""
    if isinstance(spec, CustomCircuit):
        return {"readout": None, "observable": first_value_label(spec), "qubits": spec.n_qubits, "ansatz": None,
                "circuit": spec.circuit, "n_params": spec.parameter_counts()["rotations"]}
    return {"readout": spec.readout, "observable": spec.observable_labels()[0], "qubits": spec.n_qubits,
            "ansatz": spec.ansatz, "n_params": math.prod(spec.weight_shape)}


def policy_gradient_study(agent: str, env: str, layers: Sequence[int] | None = None,
                          readouts: Sequence[str | None] = (None,), ansatz: str | None = None,
                          samples: int = 50, seed: int = 0, n_obs: int = 64,
                          log: Log | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``Var[dl/dtheta]`` of an on-policy VQC agent's policy-gradient term over initialisations.

    For every setting, the preset's model is built (:func:`qrl.config.resolve` with ``overrides``, e.g.
    ``{"policy_kwargs.circuit": "hsiao"}``, and :func:`qrl.train.build_model`) with seeds ``seed .. seed +
    samples - 1``, so each has the initial weights training would start from; ``theta`` are the actor
    circuit's weights (``vqc.circuit_parameters()``: a built-in circuit's ansatz weights, every weight of a
    user's circuit, flattened and concatenated) and ``l_s`` the per-observation surrogate of
    :func:`policy_score_gradients` on one batch of ``n_obs`` observations (:func:`collect_observations`,
    seed ``seed``). The variance is over initialisations (and the action each initial policy draws), per
    observation and weight, then averaged over both (:func:`variance_stats`). Per observation rather than
    of the batch mean: the mean of ``B`` terms with mean zero (``E_a[d log pi(a|s)] = 0``) has ``1/B``
    their variance, which would make the number a property of ``B``.

    Args:
        agent: a PPO or A2C VQC preset, e.g. ``"ppo-vqc"``.
        env: an environment the preset has a section for.
        layers: ``n_layers`` values (default: the preset's).
        readouts: readouts to set (``None``: the preset's).
        ansatz: ansatz to set (``None``: the preset's).
        samples: initialisations per setting.
        seed: first model seed, and the seed of the observation batch.
        n_obs: observations in the batch.
        log: called with a progress line per setting.
        overrides: preset overrides as ``qrl train --set`` gives them (:func:`qrl.config.parse_set`).

    Returns:
        ``{"kind": "policy", ..., "overrides": ..., "rows": [...]}`` with one row per (layers, readout): the
        fields of :func:`variance_stats` and of :func:`circuit_fields`, ``layers`` and ``seconds``.
    """
    from qrl.config import agent_algo, is_vqc_policy, resolve

    _check_samples(samples, seed)
    if not isinstance(n_obs, int) or isinstance(n_obs, bool) or n_obs < 1:
        raise QRLError(f"expected a positive number of observations; got --obs {n_obs}; try --obs 64")
    if agent_algo(agent) not in ("ppo", "a2c"):
        raise QRLError(f"the policy loss is that of an actor-critic policy; expected a PPO or A2C agent; "
                       f"got {agent!r}; try --agent ppo-vqc")
    base_overrides: dict[str, Any] = dict(overrides or {})
    if ansatz is not None:
        base_overrides["policy_kwargs.ansatz"] = ansatz
    base = resolve(agent, env, seed=seed, overrides=base_overrides)
    if not is_vqc_policy(base.policy):
        raise QRLError(f"agent {agent!r} has no circuit (policy {base.policy}); expected a VQC agent; "
                       f"try --agent ppo-vqc")
    layer_values = (_check_counts("layer counts", layers, "--layers") if layers
                    else [int(base.policy_kwargs.get("n_layers", 5))])
    for r in readouts:
        if r is not None and r not in READOUTS:
            raise QRLError(f"unknown readout {r!r}; expected one of {', '.join(READOUTS)}")
    observations = collect_observations(base, n_obs, seed)
    rows = []
    for L in layer_values:
        for r in readouts:
            setting = {**base_overrides, "policy_kwargs.n_layers": L}
            if r is not None:
                setting["policy_kwargs.readout"] = r
            started = time.perf_counter()
            grads, spec = _policy_gradients(agent, env, setting, range(seed, seed + samples), observations)
            stats = variance_stats(grads)
            row = {"layers": L, **circuit_fields(spec), **stats, "seconds": round(time.perf_counter() - started, 3)}
            rows.append(row)
            if log:
                what = f"circuit {row['circuit']}" if row.get("circuit") else f"readout {spec.readout}"
                log(f"diagnose: {agent} on {env}, {L} layers, {what}: Var mean "
                    f"{stats['var_mean']:.3e}, first {stats['var_first']:.3e} ({row['seconds']:.1f} s)")
    custom = any(r.get("circuit") for r in rows)
    return {"kind": "policy", "agent": agent, "env": env, "layers": layer_values, "samples": samples, "seed": seed,
            "n_obs": n_obs, "overrides": dict(overrides or {}), "loss": "l_s = -log pi(a_s | s), a_s ~ pi(. | s), "
            "per observation s (observations from random actions)",
            "parameters": ("the actor circuit's weights (every weight_shapes entry, flattened and concatenated)"
                           if custom else "the actor circuit's ansatz weights"), "rows": rows}


def _policy_gradients(agent: str, env: str, overrides: dict[str, Any], seeds: Sequence[int],
                      observations: np.ndarray):
    """``(S, B, P)`` score gradients of the actor circuit's weights, one model per seed, and its spec."""
    from qrl.config import resolve
    from qrl.train import build_model

    grads, spec = [], None
    for s in seeds:
        model, venv = build_model(resolve(agent, env, seed=s, overrides=overrides))
        venv.close()
        vqc = _actor_vqc(model.policy)
        if vqc is None:
            raise QRLError(f"agent {agent!r}'s actor is not a circuit; expected VQCActorCriticPolicy; "
                           f"try --agent ppo-vqc")
        spec = vqc.spec
        grads.append(policy_score_gradients(model.policy, vqc.circuit_parameters(), observations))
    return np.stack(grads), spec


# -- output ------------------------------------------------------------------------------------------


def command_line(result: dict[str, Any]) -> str:
    """The ``qrl diagnose gradients`` command that reproduces ``result``, with every option spelled out."""
    if result["kind"] == "circuit" and result.get("circuit") is not None:
        parts = ["--circuit", shlex.quote(result["circuit"]), "--qubits", *map(str, result["qubits"]), "--layers",
                 *map(str, result["layers"]), "--inputs", result["inputs"]]
    elif result["kind"] == "circuit":
        parts = ["--ansatz", result["ansatz"], "--qubits", *map(str, result["qubits"]), "--layers",
                 *map(str, result["layers"]), "--readout", *result["readouts"], "--inputs", result["inputs"]]
    else:
        parts = ["--agent", result["agent"], "--env", result["env"]]
        for key, value in (result.get("overrides") or {}).items():
            parts += ["--set", shlex.quote(f"{key}={set_value(value)}")]
        parts += ["--layers", *map(str, result["layers"])]
        readouts = [r for r in dict.fromkeys(r["readout"] for r in result["rows"]) if r is not None]
        ansatze = [a for a in dict.fromkeys(r["ansatz"] for r in result["rows"]) if a is not None]
        parts += [*(["--readout", *readouts] if readouts else []), *(["--ansatz", *ansatze] if ansatze else []),
                  "--obs", str(result["n_obs"])]
    return " ".join(["qrl diagnose gradients", *parts, "--samples", str(result["samples"]),
                     "--seed", str(result["seed"])])


def set_value(value: Any) -> str:
    """``value`` written so that ``--set KEY=VALUE`` reads it back (:func:`qrl.config.parse_set`, YAML)."""
    import json

    import yaml

    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


_READOUT_LABELS = {"z": "Z0", "zz": "Z0...Z(n/2-1)", "parity": "Z0...Z(n-1)"}


def _short(label: str) -> str:
    factors = label.split()
    return label if len(factors) <= 4 else f"{factors[0]} {factors[1]} ... {factors[-1]}"


def format_table(result: dict[str, Any]) -> str:
    """The result as markdown tables: variances per setting, then (circuit study) the decay fits."""
    var_head = "Var[dL/dθ], mean over θ | Var[dL/dθ_0]"
    if result["kind"] == "circuit":
        lines = [f"| qubits | layers | readout | observable | params | {var_head} |", "|---|---|---|---|---|---|---|"]
        for r in sorted(result["rows"], key=lambda r: (r["layers"], result["readouts"].index(r["readout"]),
                                                       r["qubits"])):
            lines.append(f"| {r['qubits']} | {r['layers']} | {r['readout']} | {_short(r['observable'])} | "
                         f"{r['n_params']} | {r['var_mean']:.3e} ± {r['var_mean_se']:.1e} | "
                         f"{r['var_first']:.3e} ± {r['var_first_se']:.1e} |")
        lines += ["", "Fit ln Var = a + b n over the qubit counts; decay rate -b (McClean et al.: ln 2 = "
                  f"{math.log(2):.3f} per qubit for deep random circuits):", "",
                  "| layers | readout | b (mean over θ) | -b / ln 2 | b (θ_0) | -b / ln 2 |",
                  "|---|---|---|---|---|---|"]
        for L in result["layers"]:
            for ro in result["readouts"]:
                fm, ff = find_fit(result, L, ro, "mean"), find_fit(result, L, ro, "first")
                if fm is None and ff is None:
                    continue
                cells = []
                for f in (fm, ff):
                    if f is None:
                        cells += ["-", "-"]
                    else:
                        err = f" ± {f['slope_se']:.3f}" if f["slope_se"] is not None else ""
                        cells += [f"{f['slope']:.3f}{err}", f"{f['decay_over_ln2']:.2f}"]
                lines.append(f"| {L} | {ro} | " + " | ".join(cells) + " |")
        if not result["fits"]:
            lines.append("(one qubit count: no fit)")
        return "\n".join(lines)
    custom = any(r.get("circuit") for r in result["rows"])
    lines = [f"| agent | env | qubits | layers | {'circuit' if custom else 'ansatz'} | readout | params | "
             f"{var_head} |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {result['agent']} | {result['env']} | {r['qubits']} | {r['layers']} | "
                     f"{r.get('circuit') or r['ansatz']} | {r['readout'] or '-'} | "
                     f"{r['n_params']} | {r['var_mean']:.3e} ± {r['var_mean_se']:.1e} | "
                     f"{r['var_first']:.3e} ± {r['var_first_se']:.1e} |")
    return "\n".join(lines)


def result_stem(result: dict[str, Any]) -> str:
    """File name stem: ``gradients_<ansatz>``, ``gradients_<circuit>`` (``--circuit``) or
    ``gradients_<agent>_<env>`` (``_<circuit>`` added when ``--set`` chose a user's circuit)."""
    if result["kind"] == "circuit":
        return f"gradients_{_file_safe(result.get('circuit') or result['ansatz'])}"
    circuit = (result.get("overrides") or {}).get("policy_kwargs.circuit")
    return f"gradients_{result['agent']}_{result['env']}" + (f"_{_file_safe(str(circuit))}" if circuit else "")


def _file_safe(name: str) -> str:
    """A circuit name as part of a file name (``mypkg.circuits:f`` -> ``mypkg.circuits_f``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_gradients(result: dict[str, Any], out: Path) -> Path:
    """``Var[dL/dθ]`` on a log scale (bars: +- one standard error), averaged over θ (left) and for θ_0 (right).

    Circuit study: against qubits, one line per (layers, readout), the fitted line dashed, and a dotted
    ``2**-n`` line for the slope ``-ln 2``. Policy study: against layers, one line per readout.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    custom = result.get("circuit") is not None or any(r.get("circuit") for r in result["rows"])
    first = "θ_0 (first entry of the first weight)" if custom else "θ_0 (first rotation on qubit 0)"
    for ax, stat, what in zip(axes, ("mean", "first"), ("mean over θ", first), strict=True):
        if result["kind"] == "circuit":
            _plot_circuit_study(ax, result, stat)
        else:
            _plot_policy_study(ax, result, stat)
        ax.set_yscale("log")
        ax.set_title(f"Var[dL/dθ], {what}", fontsize=10)
    if result["kind"] == "circuit":
        which = f"{result['circuit']} circuit" if result.get("circuit") else f"{result['ansatz']} ansatz"
        fig.suptitle(f"gradient variance at initialisation: {which}, {result['samples']} "
                     f"initialisations, inputs {result['inputs']}", fontsize=11)
    else:
        fig.suptitle(f"policy-loss gradient variance at initialisation: {result['agent']} on {result['env']}, "
                     f"{result['samples']} seeds", fontsize=11)
    axes[0].set_ylabel("variance over initialisations")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return out


def _plot_circuit_study(ax, result: dict[str, Any], stat: str) -> None:
    rows = result["rows"]
    for L in result["layers"]:
        for ro in result["readouts"]:
            pts = sorted((r for r in rows if r["layers"] == L and r["readout"] == ro), key=lambda r: r["qubits"])
            x = np.array([p["qubits"] for p in pts], dtype=float)
            fit = find_fit(result, L, ro, stat)
            label = (f"{L} layers, {pts[0]['observable']}" if result.get("circuit")
                     else f"{L} layers, {ro} ({_READOUT_LABELS.get(ro, ro)})")
            if fit is not None:
                label += f": slope {fit['slope']:.2f}"
            line = ax.errorbar(x, [p[f"var_{stat}"] for p in pts], yerr=[p[f"var_{stat}_se"] for p in pts],
                               marker="o", capsize=3, label=label)
            if fit is not None:
                ax.plot(x, np.exp(fit["intercept"] + fit["slope"] * x), linestyle="--", linewidth=1,
                        color=line[0].get_color())
    q = np.array(result["qubits"], dtype=float)
    top = max(r[f"var_{stat}"] for r in rows if r["qubits"] == q[0])
    ax.plot(q, top * 2.0 ** (q[0] - q), linestyle=":", color="gray", linewidth=1, label="slope -ln 2 (2^-n)")
    ax.set_xlabel("qubits n")
    ax.set_xticks(result["qubits"])
    ax.legend(fontsize=7, loc="lower left")


def _plot_policy_study(ax, result: dict[str, Any], stat: str) -> None:
    rows = result["rows"]
    for key in dict.fromkeys(r.get("circuit") or r["readout"] for r in rows):
        pts = sorted((r for r in rows if (r.get("circuit") or r["readout"]) == key), key=lambda r: r["layers"])
        what = key if pts[0].get("circuit") else f"readout {key}"
        ax.errorbar([p["layers"] for p in pts], [p[f"var_{stat}"] for p in pts],
                    yerr=[p[f"var_{stat}_se"] for p in pts], marker="o", capsize=3,
                    label=f"{what} ({pts[0]['qubits']} qubits)")
    ax.set_xlabel("layers")
    ax.set_xticks(result["layers"])
    ax.legend(fontsize=7)


def save(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``<out>/<stem>.json`` and ``<out>/<stem>.png`` (atomically); returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(result)
    data = {"command": command_line(result), **result}
    json_path = out / f"{stem}.json"
    write_json(json_path, data)
    return json_path, plot_gradients(result, out / f"{stem}.png")


# -- circuit summary ---------------------------------------------------------------------------------


def describe_policy(target: str, env: str | None = None, shots: int = 1024, device: str | None = None,
                    seed: int = 0, overrides: dict[str, Any] | None = None) -> str:
    """``qrl diagnose circuit AGENT_OR_RUN``: every circuit of a policy, drawn, with its qubits, depth,
    gate counts and trainable parameters, and what one action costs on hardware.

    ``target`` is a run folder (its trained weights) or an agent preset with ``env`` (weights at
    initialisation, ``seed``; ``overrides`` as ``qrl train --set`` takes them, e.g. a user's circuit). The
    drawing shows one sample's circuit: inputs drawn at random. With ``device`` (a hardware name, see
    :mod:`qrl.backends.hardware`) each circuit is also compiled for that device offline.
    """
    from qrl.sb3.networks import count_parameters, policy_circuits

    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QRLError(f"expected --shots N with N >= 1; got {shots!r}")
    model, config, title = _policy_to_describe(target, env, seed, overrides)
    policy = model.policy
    circuits = policy_circuits(policy)
    if not circuits:
        raise QRLError(f"{config.agent} has no circuit (policy {config.policy}); expected a VQC agent such as ppo-vqc")
    counts = count_parameters(policy)
    space = model.observation_space
    space.seed(seed)
    before = {name: m.n_executions for name, m in circuits.items()}
    model.predict(space.sample(), deterministic=True)
    acting = {name: m.n_executions - before[name] for name, m in circuits.items()}
    kinds = ("circuit weights and output scaling" if all(isinstance(m.spec, CustomCircuit) for m in circuits.values())
             else "rotations, input and output scaling")
    lines = [title,
             f"parameters: {counts['total']} trainable = {counts['quantum']} in circuits ({kinds}) + "
             f"{counts['classical']} classical",
             f"one action on hardware: {sum(acting.values())} circuit{'s' if sum(acting.values()) != 1 else ''} "
             f"({', '.join(n for n, k in acting.items() if k) or 'none'}) x {shots} shots = "
             f"{sum(acting.values()) * shots} shots"]
    rng = np.random.default_rng(seed)
    for name, vqc in circuits.items():
        lines += ["", *describe_circuit(name, vqc, acting[name], shots, device, rng)]
    return "\n".join(lines)


def _policy_to_describe(target: str, env: str | None, seed: int, overrides: dict[str, Any] | None):
    """The model, config and title line of ``qrl diagnose circuit``'s target: a run folder or a preset."""
    from qrl import runs
    from qrl.config import is_agent_file, resolve
    from qrl.evaluate import load_model
    from qrl.train import build_model

    run_dir = Path(target)
    if (run_dir / runs.CONFIG).is_file():
        if overrides:
            raise QRLError(f"--set changes a preset; expected an agent preset with --env; got run folder {target} "
                           f"(its config.yaml is fixed); try qrl diagnose circuit {target} without --set")
        model, config = load_model(run_dir)
        return model, config, f"run {run_dir}: {config.agent} on {config.env}, trained weights"
    if run_dir.exists() and not (run_dir.is_file() and is_agent_file(target)):
        raise QRLError(f"{target} is not a run folder (no config.yaml); expected a folder written by `qrl train` "
                       f"or an agent preset (a name such as ppo-vqc, or a preset file) with --env")
    if env is None:
        raise QRLError(f"an agent preset needs an environment; got {target!r} without --env; "
                       f"try qrl diagnose circuit {target} --env CartPole-v1")
    config = resolve(target, env, seed=seed, overrides=overrides or {})
    model, vec_env = build_model(config)
    vec_env.close()
    changed = f" ({', '.join(f'{k}={set_value(v)}' for k, v in overrides.items())})" if overrides else ""
    return model, config, f"agent {config.agent} on {config.env}{changed}, weights at initialisation (seed {seed})"


def measurement_labels(spec) -> list[str]:
    """What each measurement of a circuit reads, e.g. ``expval(Z(0))``, ``probs(wires=[0, 1])``: a user's
    circuit's measurements as PennyLane prints them, a built-in circuit's readout observables."""
    if not isinstance(spec, CustomCircuit):
        return list(spec.observable_labels())
    return [one_line(mp) for mp in zero_tape(spec).measurements]


def describe_circuit(name: str, vqc, acting: int, shots: int, device: str | None,
                     rng: np.random.Generator) -> list[str]:
    """The lines of one circuit of :func:`describe_policy`: what it is, its gates and parameters, its cost
    per action and per gradient, optionally compiled for ``device``, and its drawing (inputs ``U[-pi, pi)``
    from ``rng``, shape ``spec.input_shape``; the module's weights)."""
    import pennylane as qml

    from qrl import cost

    spec = vqc.spec
    c = spec.parameter_counts()
    inputs = rng.uniform(-np.pi, np.pi, tuple(spec.input_shape))
    weights = [w.detach().double().numpy() for w in vqc.circuit_parameters()]
    tape = qml.tape.make_qscript(spec.qfunc())(inputs, *weights)
    resources = tape.specs["resources"]
    shift = cost.shift_parameters(spec)
    if isinstance(spec, CustomCircuit):
        lines = [f"circuit {name}: {spec.circuit}", *_custom_circuit_lines(spec)]
        params = f"{c['rotations']} circuit weights + {c['output_weights']} output weights = {c['total']}"
    else:
        lines = [f"circuit {name}:",
                 f"  {spec.n_qubits} qubits, {spec.n_layers} layers of {spec.ansatz}, {spec.encoding} encoding"
                 f"{' in every layer' if spec.data_reuploading else ''}, readout {spec.readout} "
                 f"({', '.join(spec.observable_labels())})"]
        params = (f"{c['rotations']} rotations + {c['input_scaling']} input scaling + {c['output_weights']} output "
                  f"weights = {c['total']}")
    gates = cost.format_gate_counts(resources.gate_types)
    lines += [f"  depth {resources.depth}, {resources.num_gates} gates: {gates}",
              f"  parameters: {params}",
              f"  on hardware: {acting} circuit{'s' if acting != 1 else ''} per action; a gradient "
              f"adds 2 x {shift} = {2 * shift} shifted circuits per sample (parameter-shift) or 2 (SPSA)"]
    if device is not None:
        t = cost.transpile_for(spec, device, inputs, weights)
        groups = f" ({t.circuits} circuits per sample: measurements in {t.circuits} commuting groups)" \
            if t.circuits > 1 else ""
        lines.append(f"  on {device}: depth {t.depth}, {t.two_qubit_gates} two-qubit gates; "
                     f"{cost.per_circuit(t.seconds_per_shot, shots)}{groups}")
    lines.append(qml.drawer.tape_text(tape, decimals=2, max_length=100))
    return lines


def _custom_circuit_lines(spec: CustomCircuit) -> list[str]:
    """A user's circuit: its library description and citation (if it has them), inputs, weights and
    measurements."""
    entry = find_circuit(spec.circuit)
    lines = [f"  {entry.description}"] if entry.description else []
    if entry.citation:
        lines.append(f"  citation: {entry.citation}")
    shapes = ", ".join(f"{n} {tuple(shape)} init {init}" for (n, shape), (_, init) in zip(spec.weights, spec.init,
                                                                                          strict=True))
    labels = measurement_labels(spec)
    layers = f", {spec.n_layers} layer{'s' if spec.n_layers != 1 else ''}" if spec.n_layers is not None else ""
    lines += [f"  {spec.n_qubits} qubits, {spec.n_inputs} inputs ({spec.obs_map} of the features){layers}; "
              f"weights: {shapes}",
              f"  measurements: {', '.join(labels)} ({spec.n_outputs} value{'s' if spec.n_outputs != 1 else ''}"
              f"{', each times an output weight' if spec.output_scaling else ''})"]
    return lines
