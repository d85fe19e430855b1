"""Gradient variance at initialisation: barren-plateau diagnostics (``qrl diagnose gradients``).

A circuit whose gradients vanish at initialisation cannot be trained by gradient descent from there:
for random circuits that form 2-designs, ``Var[dL/dtheta]`` decays exponentially in the number of qubits
``n``, with slope about ``-ln 2`` per qubit on a log scale (McClean et al. 2018,
https://arxiv.org/abs/1803.11173); a global cost decays exponentially even in shallow circuits, a local
one at worst polynomially at depth ``O(log n)`` (Cerezo et al. 2021, https://arxiv.org/abs/2001.00550).

Two studies, both over random initialisations drawn as the policies draw them:

- :func:`circuit_gradient_study`: the circuit alone. The cost is ``L = <O_0>``, the expectation value of
  the readout's first observable (``z``: ``Z0``, local; ``zz``: the product of Z over the first of two
  groups of qubits; ``parity``: ``Z0 Z1 ... Z_{n-1}``, global), without the output weight. The weights
  are drawn as :class:`qrl.nn.VQC` draws them, i.i.d. ``U[-pi, pi]``, and the input scaling is 1 (its
  initial value). The encoding input (``inputs``): ``"random"`` (default) gives every sample its own
  observation, angles ``u_i ~ U[-pi/2, pi/2]`` (the range of ``arctan`` and of ``obs_map="bounds"``),
  re-uploaded unchanged in every layer as ``lambda = 1`` does at initialisation; ``"zeros"`` makes every
  encoding gate the identity, leaving the bare ansatz (McClean et al.'s setting).
- :func:`policy_gradient_study`: an agent preset's actual policy at initialisation on an environment's
  observations (see its docstring for the loss).

Per setting it reports ``Var[dL/dtheta_k]`` averaged over the ansatz weights ``k`` and for the first
weight (``weights[0, 0, 0]``: the first rotation on qubit 0), each with its standard error, and per
``(layers, readout)`` the least-squares fit ``ln Var = a + b n`` with the decay rate ``-b`` compared with
``ln 2``. Gradients with respect to weights no observable can see (e.g. a final ``RZ`` before a Z readout,
or weights outside a local observable's light cone) are exactly 0 and are part of the average.

The circuit study simulates all ``S`` initialisations at once (:class:`BatchedStatevector`: state
``(S, 2**n)``, each sample with its own weights) and gets every ``dL/dtheta`` of every sample from one
adjoint sweep (Jones & Gacon 2020, https://arxiv.org/abs/2009.02823) rather than autograd: autograd keeps
every intermediate state for its backward pass, ``S * 2**n * 16`` bytes per gate (about 30 GB for 200
samples of 12 qubits x 50 layers), where the adjoint sweep keeps two states and two temporaries.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qrl.backends.torch import _PAULI_K, _as_rotations, _schedule, _z_diagonal, trace_gates
from qrl.circuits.readouts import READOUTS
from qrl.circuits.spec import CircuitSpec
from qrl.errors import QRLError
from qrl.io import atomic_write, write_json

WEIGHT_RANGE = math.pi
"""Initial ansatz weights are i.i.d. ``U[-WEIGHT_RANGE, WEIGHT_RANGE]``, as :class:`qrl.nn.VQC` draws them."""

INPUT_RANGE = math.pi / 2
"""Random encoding angles are ``U[-INPUT_RANGE, INPUT_RANGE]``: the range of ``arctan`` and of ``bounds``."""

INPUTS = ("random", "zeros")

STATES_IN_FLIGHT = 4
"""Batched states held at once by the adjoint sweep (state, adjoint state, two temporaries)."""

Log = Callable[[str], None]


# -- the batched simulator ---------------------------------------------------------------------------


class BatchedStatevector:
    """``S`` copies of one circuit, each with its own weights and inputs, simulated as one batch.

    The value is ``L = <O_0>``, the expectation value of the spec's first readout observable (before the
    output weight); :meth:`gradients` also returns ``dL/dweights`` for every sample from one adjoint
    sweep (Jones & Gacon 2020): with ``psi_k`` the state after gate ``k = exp(-i t P / 2)`` and ``lam_k``
    the state ``O psi`` carried back through the later gates, ``dL/dt = Re <lam_k| (-i P) |psi_k>``.

    The single-qubit gates between two-qubit gates are fused per wire into one 2x2 matrix per sample (a
    *block*; with :func:`qrl.backends.torch._schedule`, which also fuses a CZ ring into one diagonal). The
    sweep applies each block's inverse to both states and takes the 2x2 reduced overlap ``R_ij = sum
    conj(lam)_{..i..} psi_{..j..}`` on the block's wire once; every gate of the block then gets its
    derivative from ``R`` and 2x2 products, ``Re tr((G_m .. K G_j .. G_1)^T R)``. Four passes over the
    batch per block, whatever its number of gates.

    :param spec: the circuit (any ansatz and readout of :class:`CircuitSpec`).

    Call :meth:`values` / :meth:`gradients` with ``angles`` of shape ``(S, n_encoding_layers, n_inputs)``
    (already scaled and mapped, as :class:`qrl.backends.torch.TorchStatevector` takes them) and
    ``weights`` of shape ``(S, *spec.weight_shape)``; computed in float64.

    **Example**

    >>> sim = BatchedStatevector(CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1))
    >>> value, grad = sim.gradients(torch.zeros(1, 1, 1, dtype=torch.float64),
    ...                             torch.tensor([[[[0.5, 0.3]]]], dtype=torch.float64))
    >>> round(float(value[0]), 6), round(float(grad[0, 0, 0, 0]), 6)  # cos(0.5), -sin(0.5)
    (0.877583, -0.479426)
    """

    def __init__(self, spec: CircuitSpec):
        self.spec = spec
        self.n = spec.n_qubits
        gates, obs = trace_gates(spec)
        self._readout = torch.as_tensor(_z_diagonal(obs[0], self.n), dtype=torch.float64)
        self._steps = self._compile(gates)
        self._eye = torch.eye(2, dtype=torch.complex128)
        self._k = {axis: torch.as_tensor(k, dtype=torch.complex128) for axis, k in _PAULI_K.items()}

    def _compile(self, gates) -> list[tuple]:
        """Steps in time order: ``("block", wire, items)`` with items ``("rot", axis, kind, index_or_value)``
        or ``("const", M)``; ``("diag", d)`` (a ``2**n`` diagonal); ``("2q", wires, M)``."""
        entries: list[tuple[int, Any]] = []
        for g in gates:
            if len(g.wires) == 2:
                entries.append((-1, g))
            elif g.name == "const":
                entries.append((g.wires[0], ("const", torch.as_tensor(g.matrix, dtype=torch.complex128))))
            else:
                entries.extend((g.wires[0], ("rot", axis, src.kind, src.value if src.kind == "const" else src.index))
                               for axis, src in _as_rotations(g))
        steps: list[tuple] = []
        for step in _schedule(entries, self.n):
            if step[0] == "1q":
                steps.extend(("block", w, tuple(items)) for w, items in sorted(step[1].items()))
            elif step[0] == "diag":
                steps.append(("diag", torch.as_tensor(step[1], dtype=torch.complex128)))
            else:
                steps.append(("2q", tuple(step[1]), torch.as_tensor(step[2], dtype=torch.complex128)))
        return steps

    def _check(self, angles: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = weights.shape[0]
        if tuple(weights.shape[1:]) != tuple(self.spec.weight_shape):
            raise QRLError(f"expected weights of shape (S, {', '.join(map(str, self.spec.weight_shape))}); "
                           f"got {tuple(weights.shape)}")
        want = (s, self.spec.n_encoding_layers, self.spec.n_inputs)
        if tuple(angles.shape) != want:
            raise QRLError(f"expected angles of shape {want}; got {tuple(angles.shape)}")
        return angles.reshape(s, -1).to(torch.float64), weights.reshape(s, -1).to(torch.float64)

    def _forward(self, flat_a: torch.Tensor, flat_w: torch.Tensor) -> torch.Tensor:
        psi = torch.zeros(flat_w.shape[0], 2**self.n, dtype=torch.complex128)
        psi[:, 0] = 1
        for step in self._steps:
            if step[0] == "block":
                psi = self._apply_1q(psi, step[1], _product(self._matrices(step[2], flat_a, flat_w)))
            elif step[0] == "diag":
                psi = psi * step[1]
            else:
                psi = self._apply_2q(psi, step[1], step[2])
        return psi

    @torch.no_grad()
    def values(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``L = <O_0>`` per sample, shape ``(S,)``."""
        psi = self._forward(*self._check(angles, weights))
        return (psi.real**2 + psi.imag**2) @ self._readout

    @torch.no_grad()
    def gradients(self, angles: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``L`` per sample, shape ``(S,)``, and ``dL/dweights``, shape ``(S, *spec.weight_shape)``."""
        flat_a, flat_w = self._check(angles, weights)
        psi = self._forward(flat_a, flat_w)
        value = (psi.real**2 + psi.imag**2) @ self._readout
        lam = psi * self._readout
        grads = torch.zeros_like(flat_w)
        for step in reversed(self._steps):
            if step[0] == "diag":
                psi, lam = psi * step[1].conj(), lam * step[1].conj()
                continue
            if step[0] == "2q":
                inv = step[2].conj().T
                psi, lam = self._apply_2q(psi, step[1], inv), self._apply_2q(lam, step[1], inv)
                continue
            _, wire, items = step
            mats = self._matrices(items, flat_a, flat_w)
            inv = _product(mats).conj().transpose(-2, -1)
            psi = self._apply_1q(psi, wire, inv)  # the state before the block
            weighted = [j for j, item in enumerate(items) if item[0] == "rot" and item[2] == "weight"]
            if weighted:
                r = torch.einsum("saib,sajb->sij", self._view(lam, wire).conj(), self._view(psi, wire))
                for j in weighted:
                    deriv = _product([*mats[:j], self._k[items[j][1]], *mats[j:]])  # G_m .. G_j+1 K G_j .. G_1
                    grads[:, items[j][3]] += (deriv * r).sum((-2, -1)).real
            lam = self._apply_1q(lam, wire, inv)
        return value, grads.reshape(weights.shape)

    def _matrices(self, items: tuple, flat_a: torch.Tensor, flat_w: torch.Tensor) -> list[torch.Tensor]:
        """Each item's 2x2 matrix in time order: ``(S, 2, 2)``, or ``(2, 2)`` for a constant."""
        out = []
        for item in items:
            if item[0] == "const":
                out.append(item[1])
                continue
            _, axis, kind, src = item
            if kind == "const":
                half = torch.tensor(0.5 * float(src), dtype=torch.float64)
            else:
                half = 0.5 * (flat_w[:, src] if kind == "weight" else flat_a[:, src])
            out.append(torch.cos(half)[..., None, None] * self._eye + torch.sin(half)[..., None, None] * self._k[axis])
        return out

    def _view(self, psi: torch.Tensor, wire: int) -> torch.Tensor:
        return psi.view(psi.shape[0], 2**wire, 2, 2 ** (self.n - wire - 1))

    def _apply_1q(self, psi: torch.Tensor, wire: int, m: torch.Tensor) -> torch.Tensor:
        m = m[:, None] if m.dim() == 3 else m
        return (m @ self._view(psi, wire)).reshape(psi.shape)

    def _apply_2q(self, psi: torch.Tensor, wires: tuple[int, ...], m: torch.Tensor) -> torch.Tensor:
        s, n = psi.shape[0], self.n
        w0, w1 = wires
        lo, hi = min(w0, w1), max(w0, w1)
        view = psi.view(s, 2**lo, 2, 2 ** (hi - lo - 1), 2, 2 ** (n - hi - 1))
        mat = m.view(2, 2, 2, 2)
        out = torch.einsum("ijkl,bakcld->baicjd", mat, view) if w0 < w1 else \
            torch.einsum("ijkl,balckd->bajcid", mat, view)
        return out.reshape(psi.shape)


def _product(mats: list[torch.Tensor]) -> torch.Tensor:
    """``M_m @ ... @ M_1`` of matrices in time order."""
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


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


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; physical memory where that cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_memory(n_qubits: int, n_samples: int, available: int | None = None) -> None:
    """Refuse a study whose batched states (``S * 2**n * 16`` bytes each) do not fit in memory."""
    available = available_memory() if available is None else available
    need = STATES_IN_FLIGHT * n_samples * 16 * 2**n_qubits
    if need > available:
        fit = max(0, math.floor(math.log2(max(1, available // (STATES_IN_FLIGHT * n_samples * 16)))))
        raise QRLError(f"{n_qubits} qubits with {n_samples} samples need {_bytes(need)} ({STATES_IN_FLIGHT} batched "
                       f"states of {n_samples} x 2**{n_qubits} complex numbers); expected at most {_bytes(available)} "
                       f"(available memory); got --qubits {n_qubits}; try --qubits {fit} or fewer, or fewer --samples")


def _bytes(n: int) -> str:
    for unit, size in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


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

    Args:
        ansatz: ``"hea"``, ``"strongly_entangling"`` or ``"unentangled"``.
        qubits: qubit counts ``n``.
        layers: circuit depths ``L``.
        readouts: ``"z"`` (cost ``Z0``), ``"zz"`` (Z over the first half of the qubits), ``"parity"``
            (``Z0 ... Z_{n-1}``).
        samples: initialisations ``S`` per setting.
        seed: the weights and inputs of setting ``(n, L)`` come from ``numpy.random.default_rng([seed, n,
            L])``: reproducible, independent of the other settings, and the same for every readout (the
            readouts are compared on the same circuits).
        inputs: ``"random"`` or ``"zeros"`` (see the module docstring).
        log: called with a progress line per setting.

    Returns:
        ``{"kind": "circuit", ..., "rows": [...], "fits": [...]}``: one row per setting with the fields of
        :func:`variance_stats` and ``qubits``, ``layers``, ``readout``, ``observable``, ``n_params``,
        ``seconds``; one fit per ``(layers, readout)`` and statistic (``mean`` or ``first``) with the fields
        of :func:`fit_decay`.
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
    fits = []
    for L in layers:
        for r in readouts:
            pts = [row for row in rows if row["layers"] == L and row["readout"] == r]
            for stat in ("mean", "first"):
                fit = fit_decay([p["qubits"] for p in pts], [p[f"var_{stat}"] for p in pts],
                                [p[f"var_{stat}_se"] for p in pts])
                if fit is not None:
                    fits.append({"layers": L, "readout": r, "statistic": stat, **fit})
    return {"kind": "circuit", "ansatz": ansatz, "qubits": qubits, "layers": layers, "readouts": readouts,
            "samples": samples, "seed": seed, "inputs": inputs, "weight_init": f"U[-{WEIGHT_RANGE:.6f}, "
            f"{WEIGHT_RANGE:.6f}]", "cost": "L = <O_0>, the readout's first observable", "ln2": math.log(2),
            "rows": rows, "fits": fits}


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

    from qrl.envs import make_vec
    from qrl.train import _normalizes_observations

    env = make_vec(config.env_spec, config.n_envs, seed)
    normalizer = None
    if config.normalize and _normalizes_observations(config, env):
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


def policy_score_gradients(policy, weights: torch.Tensor, observations: np.ndarray) -> np.ndarray:
    """``d l_s / d weights`` for each observation ``s``, with ``l_s = -log pi(a_s | s)``, ``a_s ~ pi(. | s)``.

    ``l_s`` is one term of the policy-gradient surrogate ``-mean_s A_s log pi(a_s | s)`` (PPO's at ratio 1,
    A2C's, REINFORCE's) with unit advantage, the action drawn from the policy itself (torch's global
    generator; SB3 seeds it when it builds the model), as in a rollout.

    Args:
        policy: an SB3 ``ActorCriticPolicy``.
        weights: the parameter to differentiate (e.g. the actor circuit's ansatz weights).
        observations: ``(B, *observation_shape)``.

    Returns:
        ``(B, weights.numel())``, float64.
    """
    obs_t, _ = policy.obs_to_tensor(observations)
    with torch.no_grad():  # SB3 samples Gaussian actions with rsample: the action must not carry the gradient
        actions = policy.get_distribution(obs_t).sample()
    _, log_prob, _ = policy.evaluate_actions(obs_t, actions)
    eye = torch.eye(len(log_prob), dtype=log_prob.dtype)
    (grads,) = torch.autograd.grad(-log_prob, weights, grad_outputs=eye, is_grads_batched=True)
    return grads.reshape(len(log_prob), -1).double().numpy()


def _actor_vqc(policy):
    extractor = getattr(policy, "mlp_extractor", None)
    net = getattr(extractor, "policy_net", None)
    return getattr(net, "vqc", None)


def policy_gradient_study(agent: str, env: str, layers: Sequence[int] | None = None,
                          readouts: Sequence[str | None] = (None,), ansatz: str | None = None,
                          samples: int = 50, seed: int = 0, n_obs: int = 64,
                          log: Log | None = None) -> dict[str, Any]:
    """``Var[dl/dtheta]`` of an on-policy VQC agent's policy-gradient term over initialisations.

    For every setting, the preset's model is built (:func:`qrl.config.resolve` and
    :func:`qrl.train.build_model`) with seeds ``seed .. seed + samples - 1``, so each has the initial
    weights training would start from; ``theta`` are the actor circuit's ansatz weights and ``l_s`` the
    per-observation surrogate of :func:`policy_score_gradients` on one batch of ``n_obs`` observations
    (:func:`collect_observations`, seed ``seed``). The variance is over initialisations (and the action
    each initial policy draws), per observation and weight, then averaged over both (:func:`variance_stats`).
    Per observation rather than of the batch mean: the mean of ``B`` terms with mean zero (``E_a[d log
    pi(a|s)] = 0``) has ``1/B`` their variance, which would make the number a property of ``B``.

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

    Returns:
        ``{"kind": "policy", ..., "rows": [...]}`` with one row per (layers, readout): the fields of
        :func:`variance_stats` and ``layers``, ``readout``, ``observable``, ``qubits``, ``ansatz``,
        ``n_params``, ``seconds``.
    """
    from qrl.config import agent_algo, is_vqc_policy, resolve
    from qrl.train import build_model

    _check_samples(samples, seed)
    if not isinstance(n_obs, int) or isinstance(n_obs, bool) or n_obs < 1:
        raise QRLError(f"expected a positive number of observations; got --obs {n_obs}; try --obs 64")
    if agent_algo(agent) not in ("ppo", "a2c"):
        raise QRLError(f"the policy loss is that of an actor-critic policy; expected a PPO or A2C agent; "
                       f"got {agent!r}; try --agent ppo-vqc")
    base_overrides: dict[str, Any] = {} if ansatz is None else {"policy_kwargs.ansatz": ansatz}
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
            overrides = {**base_overrides, "policy_kwargs.n_layers": L}
            if r is not None:
                overrides["policy_kwargs.readout"] = r
            started = time.perf_counter()
            grads, spec = [], None
            for s in range(seed, seed + samples):
                model, venv = build_model(resolve(agent, env, seed=s, overrides=overrides))
                venv.close()
                vqc = _actor_vqc(model.policy)
                if vqc is None:
                    raise QRLError(f"agent {agent!r}'s actor is not a circuit; expected VQCActorCriticPolicy; "
                                   f"try --agent ppo-vqc")
                spec = vqc.spec
                grads.append(policy_score_gradients(model.policy, vqc.weights, observations))
            stats = variance_stats(np.stack(grads))
            row = {"layers": L, "readout": spec.readout, "observable": spec.observable_labels()[0],
                   "qubits": spec.n_qubits, "ansatz": spec.ansatz, "n_params": math.prod(spec.weight_shape),
                   **stats, "seconds": round(time.perf_counter() - started, 3)}
            rows.append(row)
            if log:
                log(f"diagnose: {agent} on {env}, {L} layers, readout {spec.readout}: Var mean "
                    f"{stats['var_mean']:.3e}, first {stats['var_first']:.3e} ({row['seconds']:.1f} s)")
    return {"kind": "policy", "agent": agent, "env": env, "layers": layer_values, "samples": samples, "seed": seed,
            "n_obs": n_obs, "loss": "l_s = -log pi(a_s | s), a_s ~ pi(. | s), per observation s (observations "
            "from random actions)", "parameters": "the actor circuit's ansatz weights", "rows": rows}


# -- output ------------------------------------------------------------------------------------------


def command_line(result: dict[str, Any]) -> str:
    """The ``qrl diagnose gradients`` command that reproduces ``result``, with every option spelled out."""
    if result["kind"] == "circuit":
        parts = ["--ansatz", result["ansatz"], "--qubits", *map(str, result["qubits"]), "--layers",
                 *map(str, result["layers"]), "--readout", *result["readouts"], "--inputs", result["inputs"]]
    else:
        parts = ["--agent", result["agent"], "--env", result["env"], "--layers", *map(str, result["layers"])]
        readouts = list(dict.fromkeys(r["readout"] for r in result["rows"]))
        ansatze = list(dict.fromkeys(r["ansatz"] for r in result["rows"]))
        parts += ["--readout", *readouts, "--ansatz", *ansatze, "--obs", str(result["n_obs"])]
    return " ".join(["qrl diagnose gradients", *parts, "--samples", str(result["samples"]),
                     "--seed", str(result["seed"])])


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
    lines = [f"| agent | env | qubits | layers | ansatz | readout | params | {var_head} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {result['agent']} | {result['env']} | {r['qubits']} | {r['layers']} | {r['ansatz']} | "
                     f"{r['readout']} | {r['n_params']} | {r['var_mean']:.3e} ± {r['var_mean_se']:.1e} | "
                     f"{r['var_first']:.3e} ± {r['var_first_se']:.1e} |")
    return "\n".join(lines)


def result_stem(result: dict[str, Any]) -> str:
    """File name stem: ``gradients_<ansatz>`` or ``gradients_<agent>_<env>``."""
    if result["kind"] == "circuit":
        return f"gradients_{result['ansatz']}"
    return f"gradients_{result['agent']}_{result['env']}"


def plot_gradients(result: dict[str, Any], out: Path) -> Path:
    """``Var[dL/dθ]`` on a log scale (bars: +- one standard error), averaged over θ (left) and for θ_0 (right).

    Circuit study: against qubits, one line per (layers, readout), the fitted line dashed, and a dotted
    ``2**-n`` line for the slope ``-ln 2``. Policy study: against layers, one line per readout.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rows = result["rows"]
    for ax, stat, what in zip(axes, ("mean", "first"), ("mean over θ", "θ_0 (first rotation on qubit 0)"),
                              strict=True):
        if result["kind"] == "circuit":
            for L in result["layers"]:
                for ro in result["readouts"]:
                    pts = sorted((r for r in rows if r["layers"] == L and r["readout"] == ro),
                                 key=lambda r: r["qubits"])
                    x = np.array([p["qubits"] for p in pts], dtype=float)
                    fit = find_fit(result, L, ro, stat)
                    label = f"{L} layers, {ro} ({_READOUT_LABELS.get(ro, ro)})"
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
        else:
            for ro in dict.fromkeys(r["readout"] for r in rows):
                pts = sorted((r for r in rows if r["readout"] == ro), key=lambda r: r["layers"])
                ax.errorbar([p["layers"] for p in pts], [p[f"var_{stat}"] for p in pts],
                            yerr=[p[f"var_{stat}_se"] for p in pts], marker="o", capsize=3,
                            label=f"readout {ro} ({pts[0]['qubits']} qubits)")
            ax.set_xlabel("layers")
            ax.set_xticks(result["layers"])
            ax.legend(fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"Var[dL/dθ], {what}", fontsize=10)
    if result["kind"] == "circuit":
        fig.suptitle(f"gradient variance at initialisation: {result['ansatz']} ansatz, {result['samples']} "
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
                    seed: int = 0) -> str:
    """``qrl diagnose circuit AGENT_OR_RUN``: every circuit of a policy, drawn, with its qubits, depth,
    gate counts and trainable parameters, and what one action costs on hardware.

    ``target`` is a run folder (its trained weights) or an agent preset with ``env`` (weights at
    initialisation, ``seed``). The drawing shows one sample's circuit: encoding angles for an observation
    drawn from the observation space. With ``device`` (a hardware name, see :mod:`qrl.devices`) each
    circuit is also compiled for that device offline.
    """
    from pathlib import Path

    import numpy as np
    import pennylane as qml

    from qrl import devices
    from qrl.config import resolve
    from qrl.sb3.networks import count_parameters, policy_circuits
    from qrl.train import build_model, load_model

    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QRLError(f"expected --shots N with N >= 1; got {shots!r}")
    run_dir = Path(target)
    if (run_dir / "config.yaml").is_file():
        model, config = load_model(run_dir)
        title = f"run {run_dir}: {config.agent} on {config.env}, trained weights"
    elif run_dir.exists():
        raise QRLError(f"{target} is not a run folder (no config.yaml); expected a folder written by `qrl train` "
                       f"or an agent preset such as ppo-vqc with --env")
    else:
        if env is None:
            raise QRLError(f"an agent preset needs an environment; got {target!r} without --env; "
                           f"try qrl diagnose circuit {target} --env CartPole-v1")
        config = resolve(target, env, seed=seed)
        model, vec_env = build_model(config)
        vec_env.close()
        title = f"agent {config.agent} on {config.env}, weights at initialisation (seed {seed})"
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
    lines = [title,
             f"parameters: {counts['total']} trainable = {counts['quantum']} in circuits (rotations, input and "
             f"output scaling) + {counts['classical']} classical",
             f"one action on hardware: {sum(acting.values())} circuit{'s' if sum(acting.values()) != 1 else ''} "
             f"({', '.join(n for n, k in acting.items() if k) or 'none'}) x {shots} shots = "
             f"{sum(acting.values()) * shots} shots"]
    rng = np.random.default_rng(seed)
    for name, vqc in circuits.items():
        spec = vqc.spec
        c = spec.parameter_counts()
        angles = rng.uniform(-np.pi, np.pi, (spec.n_encoding_layers, spec.n_inputs))
        weights = vqc.weights.detach().double().numpy()
        tape = qml.tape.make_qscript(spec.qfunc())(angles, weights)
        resources = tape.specs["resources"]
        shift = devices.shift_parameters(spec)
        lines += ["", f"circuit {name}:",
                  f"  {spec.n_qubits} qubits, {spec.n_layers} layers of {spec.ansatz}, {spec.encoding} encoding"
                  f"{' in every layer' if spec.data_reuploading else ''}, readout {spec.readout} "
                  f"({', '.join(spec.observable_labels())})",
                  f"  depth {resources.depth}, {resources.num_gates} gates: "
                  f"{devices.format_gate_counts(resources.gate_types)}",
                  f"  parameters: {c['rotations']} rotations + {c['input_scaling']} input scaling + "
                  f"{c['output_weights']} output weights = {c['total']}",
                  f"  on hardware: {acting[name]} circuit{'s' if acting[name] != 1 else ''} per action; a gradient "
                  f"adds 2 x {shift} = {2 * shift} shifted circuits per sample (parameter-shift) or 2 (SPSA)"]
        if device is not None:
            t = devices.transpile_for(spec, device, angles, weights)
            lines.append(f"  on {device}: depth {t.depth}, {t.two_qubit_gates} two-qubit gates; "
                         f"{devices.per_circuit(t.seconds_per_shot, shots)}")
        lines.append(qml.drawer.tape_text(tape, decimals=2, max_length=100))
    return "\n".join(lines)
