"""Benchmarks (``qrl bench``): policy updates per backend, end-to-end training steps/s, time per batch
against the number of qubits, and users' own circuits against the built-in program and PennyLane; paths are
timed side by side in one process, results written as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from qrl.errors import QRLError
from qrl.io import write_json

BATCHES = (1, 8, 64, 256)


def _median_time(fn: Callable[[], None], min_repeats: int = 5, budget_s: float = 1.0) -> float:
    """Median wall time of ``fn()`` in seconds, over ``min_repeats`` calls or ``budget_s``, whichever is more.

    One warm-up call first; callers interleave the paths they compare, so machine noise hits them alike.
    """
    fn()  # warm-up (compilation of programs, caches)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _median_times(fns: dict[str, Callable[[], None]], min_repeats: int = 5, budget_s: float = 1.0) -> dict[str, float]:
    """Median wall time of each ``fns[name]()`` in seconds, the calls interleaved round by round.

    One warm-up call each; then every round calls each path that still has fewer than ``min_repeats``
    calls or less than ``budget_s`` seconds of calls (at most 1000), so machine noise hits them alike.
    """
    for fn in fns.values():
        fn()  # warm-up (compilation of programs, caches)
    times: dict[str, list[float]] = {name: [] for name in fns}
    while due := [name for name, ts in times.items()
                  if len(ts) < min_repeats or (sum(ts) < budget_s and len(ts) < 1000)]:
        for name in due:
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


# -- networks under test ------------------------------------------------------------------------------

CARTPOLE_OBS = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
CARTPOLE_ACT = spaces.Discrete(2)


def _sb3_policy(policy_cls, **kwargs):
    return policy_cls(CARTPOLE_OBS, CARTPOLE_ACT, lr_schedule=lambda _: 1e-3, **kwargs)


def _status_quo_layer(device: str, diff_method: str, n_layers: int, n_outputs: int, **qnode_kwargs) -> nn.Module:
    """The circuit as users write it today: a PennyLane QNode wrapped in ``qml.qnn.TorchLayer``.

    Same gates as qrl's default circuit (RX(lambda * arctan x) encoding, RY-RZ, CZ ring, Z readout),
    with the encoding computed inside the QNode.
    """
    import pennylane as qml

    n = 4
    dev = qml.device(device, wires=n)

    @qml.qnode(dev, interface="torch", diff_method=diff_method, **qnode_kwargs)
    def circuit(inputs, weights, scaling):
        for layer in range(n_layers):
            for i in range(n):
                qml.RX(scaling[layer, i] * inputs[..., i], wires=i)
            for i in range(n):
                qml.RY(weights[layer, i, 0], wires=i)
                qml.RZ(weights[layer, i, 1], wires=i)
            for i in range(n):
                qml.CZ(wires=[i, (i + 1) % n])
        return [qml.expval(qml.PauliZ(i)) for i in range(n_outputs)]

    layer = qml.qnn.TorchLayer(circuit, {"weights": (n_layers, n, 2), "scaling": (n_layers, n)})

    class StatusQuo(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer
            self.out = nn.Parameter(torch.ones(n_outputs))

        def forward(self, x):
            return self.layer(torch.atan(x)) * self.out

    return StatusQuo()


def policy_paths(n_layers: int = 5, include_slow: bool = True) -> dict[str, Callable[[], Any]]:
    """Constructors of the paths compared by :func:`bench_policy`.

    Each returns ``(update, rollout)``: ``update(obs)`` is a PPO-style actor + critic forward and
    backward; ``rollout(obs)`` is the forward pass SB3 makes at every environment step, under
    ``torch.no_grad()``.
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    from qrl.sb3 import VQCActorCriticPolicy

    def sb3_paths(policy):
        def update(obs: torch.Tensor) -> None:
            actions = torch.zeros(obs.shape[0], dtype=torch.long)
            values, log_prob, entropy = policy.evaluate_actions(obs, actions)
            (values.sum() + log_prob.sum() + entropy.sum()).backward()

        def rollout(obs: torch.Tensor) -> None:
            with torch.no_grad():
                policy(obs)

        return update, rollout

    def pair_paths(actor: nn.Module, critic: nn.Module):
        def update(obs: torch.Tensor) -> None:
            logits = actor(obs)
            value = critic(obs)
            (torch.log_softmax(logits, -1)[:, 0].sum() + value.sum()).backward()

        def rollout(obs: torch.Tensor) -> None:
            with torch.no_grad():
                actor(obs)
                critic(obs)

        return update, rollout

    paths: dict[str, Callable[[], Any]] = {
        "mlp (SB3 MlpPolicy 64x64)": lambda: sb3_paths(_sb3_policy(ActorCriticPolicy)),
        "qrl auto": lambda: sb3_paths(_sb3_policy(VQCActorCriticPolicy, n_layers=n_layers)),  # the default device
        "qrl torch": lambda: sb3_paths(_sb3_policy(VQCActorCriticPolicy, n_layers=n_layers, device="torch")),
        "qrl torch:native": lambda: sb3_paths(_sb3_policy(VQCActorCriticPolicy, n_layers=n_layers,
                                                          device="torch:native")),
        "qrl lightning.qubit": lambda: sb3_paths(
            _sb3_policy(VQCActorCriticPolicy, n_layers=n_layers, device="lightning.qubit")),
        "TorchLayer default.qubit backprop": lambda: pair_paths(
            _status_quo_layer("default.qubit", "backprop", n_layers, 2),
            _status_quo_layer("default.qubit", "backprop", n_layers, 1)),
    }
    if include_slow:
        paths["TorchLayer lightning.qubit adjoint"] = lambda: pair_paths(
            _status_quo_layer("lightning.qubit", "adjoint", n_layers, 2),
            _status_quo_layer("lightning.qubit", "adjoint", n_layers, 1))
    return paths


def bench_policy(batches: tuple[int, ...] = BATCHES, n_layers: int = 5, budget_s: float = 1.0,
                 include_slow: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Update (forward + backward) and rollout (no-grad forward) times per path and batch size.

    The paths (:func:`policy_paths`): SB3's MLP policy, qrl's VQC policy on the torch backend and on
    ``lightning.qubit``, and the status-quo PennyLane paths (``TorchLayer`` on ``default.qubit`` with
    backprop, on ``lightning.qubit`` with adjoint). CartPole shapes: 4 features, 2 actions, 4 qubits.
    Result: ``seconds[mode][path][batch]``.
    """
    constructors = policy_paths(n_layers, include_slow)
    fns = {name: make() for name, make in constructors.items()}
    gen = torch.Generator().manual_seed(0)
    times: dict[str, dict[str, dict[str, float]]] = {"update": {}, "rollout": {}}
    for batch in batches:
        obs = torch.randn(batch, 4, generator=gen)
        for name, (update, rollout) in fns.items():  # interleaved: all paths at one batch size
            for mode, fn in (("update", update), ("rollout", rollout)):
                t = _median_time(lambda f=fn, o=obs: f(o), budget_s=budget_s)
                times[mode].setdefault(name, {})[str(batch)] = t
                if log:
                    log(f"B={batch:<4} {mode:<7} {name}: {t * 1e3:.2f} ms")
    return {"kind": "policy", "n_qubits": 4, "n_layers": n_layers, "batches": list(batches), "seconds": times}


# -- end to end -----------------------------------------------------------------------------------------


_TRAIN_VQC_POLICY = {"ppo": "qrl.sb3.VQCActorCriticPolicy", "dqn": "qrl.sb3.VQCDQNPolicy"}


def bench_train(env: str = "CartPole-v1", steps: int = 10_000, seed: int = 0, algo: str = "ppo",
                log: Callable[[str], None] | None = None, sb3_device: str = "cpu",
                n_qubits: int | None = None, vqc_device: str = "auto", repeats: int = 1) -> dict[str, Any]:
    """Steps/s of ``algo`` with the VQC policy and with ``MlpPolicy``, same (rl-zoo3) hyperparameters.

    Both runs take every hyperparameter from the rl-zoo3 preset ``<algo>-mlp``; only the policy
    differs (the VQC policy with its defaults on the backend ``vqc_device``, ``n_qubits`` if given). No evaluation
    callbacks. ``sb3_device``: SB3's torch device for both (``"cuda"``: the circuits run on the GPU). With
    ``repeats`` > 1 the pair is trained that many times, MLP and VQC alternating (so that a change in the
    machine's speed reaches both), and the medians are reported: steps/s per policy and the ratio of the pairs.
    """
    from qrl.config import resolve

    if algo not in _TRAIN_VQC_POLICY:
        raise QRLError(f"unknown algorithm {algo!r} for bench train; expected one of {', '.join(_TRAIN_VQC_POLICY)}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise QRLError(f"expected repeats as a positive integer; got {repeats!r}; try --repeats 3")
    base = resolve(f"{algo}-mlp", env, seed=seed, steps=steps)
    _check_sb3_device(sb3_device)
    if n_qubits is not None and (isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 1):
        raise QRLError(f"expected --n-qubits as a positive integer; got {n_qubits!r}; try --n-qubits 8")
    vqc_kwargs = {"device": vqc_device, **({} if n_qubits is None else {"n_qubits": n_qubits})}
    runs: dict[str, list[dict[str, float]]] = {"mlp": [], "vqc": []}
    for _ in range(repeats):
        for name, policy, policy_kwargs in (("mlp", "MlpPolicy", base.policy_kwargs),
                                            ("vqc", _TRAIN_VQC_POLICY[algo], vqc_kwargs)):
            runs[name].append(_train_run(dataclasses.replace(
                base, policy=policy, policy_kwargs=policy_kwargs, hyperparams={**base.hyperparams,
                                                                               "device": sb3_device}), steps))
            if log:
                log(f"{algo} {name}: {runs[name][-1]['steps_per_s']:.0f} steps/s")
    ratios = [v["steps_per_s"] / m["steps_per_s"] for m, v in zip(runs["mlp"], runs["vqc"], strict=True)]
    results = {name: {"steps": rs[0]["steps"], "seconds": statistics.median(r["seconds"] for r in rs),
                      "steps_per_s": statistics.median(r["steps_per_s"] for r in rs),
                      **({"runs": rs} if repeats > 1 else {})} for name, rs in runs.items()}
    return {"kind": "train", "algo": algo, "env": env, "hyperparams": base.hyperparams, "n_envs": base.n_envs,
            "sb3_device": sb3_device, "n_qubits": n_qubits, "vqc_device": vqc_device, "repeats": repeats,
            **({"gpu": torch.cuda.get_device_name(sb3_device)} if sb3_device != "cpu" else {}),
            "results": results, "vqc_over_mlp": statistics.median(ratios),
            **({"ratios": ratios} if repeats > 1 else {})}


def _train_run(config, steps: int) -> dict[str, float]:
    """One timed ``learn(steps)`` of a fresh model for ``config``: steps, seconds, steps/s."""
    from qrl.train import build_model

    model, vec_env = build_model(config)
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    vec_env.close()
    return {"steps": int(model.num_timesteps), "seconds": wall, "steps_per_s": model.num_timesteps / wall}


def _check_sb3_device(device: str) -> None:
    """``--sb3-device``: checked as ``--set device=...`` is (cpu, cuda or cuda:N, with a GPU there), in the words
    of this flag; not ``auto``: a benchmark names the device it measures."""
    from qrl.config import check_sb3_device

    try:
        check_sb3_device(device)
        named = device != "auto"
    except QRLError:
        named = False
    if not named:
        raise QRLError(f"expected --sb3-device cpu, or cuda on a machine with a CUDA GPU; got {device} (torch "
                       f"{torch.__version__} sees {torch.cuda.device_count()} GPUs); try --sb3-device cpu")


# -- scaling --------------------------------------------------------------------------------------------


PASSES_PER_FORWARD_PASS = 4
"""Passes over the state per forward pass in forward + backward: the forward one, and in the backward three (the
adjoint method undoes the step on the state and on its gradient and takes their overlap; autograd reads the
kept state and the incoming gradient and writes the outgoing one)."""


def bench_scaling(qubits: tuple[int, ...] = (4, 6, 8, 10, 12, 14, 16), batch: int = 8, n_layers: int = 5,
                  backends: tuple[str, ...] = ("torch", "lightning.qubit", "default.qubit"),
                  budget_s: float = 0.5, max_call_s: float = 20.0,
                  log: Callable[[str], None] | None = None, ansatz: str = "hea",
                  circuit: str | None = None, no_grad: bool = False) -> dict[str, Any]:
    """Forward + backward (with ``no_grad``, a forward under :func:`torch.no_grad`: a rollout's) of one circuit
    (built-in ``ansatz``, Z on every qubit; or ``circuit``, a circuit of the library such as ``meyer_iqp``, one
    feature per qubit, as :func:`meyer_paths` builds it) per qubit count and backend.

    A backend is a device name (``"torch"``, ``"lightning.qubit"`` ...) or ``"torch:dense"`` /
    ``"torch:wires"`` for one of the torch backend's two programs (this is how
    :data:`qrl.backends.torch.DENSE_MAX_QUBITS` is measured); ``@cuda`` after a torch backend runs it on the GPU
    (module and inputs moved there, as SB3's ``device="cuda"`` does; each call timed to its end on the GPU, and
    ``peak_gpu_gb`` is the GPU memory a point took, from ``torch.cuda.max_memory_allocated``).

    A backend whose first call took longer than ``max_call_s`` is timed by that call alone (the first call
    of a torch program includes no compilation: that happens when the module is built) and not run at larger
    sizes; the others are timed again at each size with their calls interleaved (:func:`_median_times`, so that
    noise, and what one left in the allocator, hits them alike; until 2026-12-05 one backend after another). Memory:
    ``peak_rss_gb`` is this process's peak resident memory after each point (it only grows, so a
    jump shows what that point needed); ``state_mb`` is one batch of complex64 state vectors. For the torch
    backend's per-wire programs, ``passes`` counts the passes over the state batch of forward + backward
    (:data:`PASSES_PER_FORWARD_PASS` per forward pass) and ``copy_s`` is the time of one copy of the state
    batch measured in the same run: ``passes * copy_s / seconds`` is the fraction of the copy-bandwidth bound.
    ``skipped`` (where any) names the backends not run from a size on because their estimated peak exceeded the
    memory available (:func:`_over_memory`), with the bytes they would have needed.
    """
    import resource

    seconds: dict[str, dict[str, float]] = {b: {} for b in backends}
    places = {b: _torch_place(b) for b in backends}
    peak_rss_gb: dict[str, dict[str, float]] = {b: {} for b in backends}
    peak_gpu_gb: dict[str, dict[str, float]] = {b: {} for b in backends if places[b] != "cpu"}
    passes: dict[str, dict[str, int]] = {b: {} for b in backends}  # torch per-wire programs, forward + backward
    copy_s: dict[str, float] = {}  # one copy of the state batch (read + write), measured in this run
    dropped: set[str] = set()
    skipped: dict[str, dict[str, int]] = {}  # backend -> qubits -> bytes a call would need, over what was available
    say = log or _silent
    for n in qubits:
        spec = _named_spec(circuit or ansatz, n, n_layers)  # a circuit of the library, or the ansatz
        x = torch.randn(batch, n, generator=torch.Generator().manual_seed(n))
        steps = {}  # the backends to time again, interleaved: those whose first call was short
        for backend in backends:
            if backend in dropped or backend in skipped:
                continue
            point = _scaling_point(spec, backend, places[backend], x, max_call_s, no_grad)
            if "needs" in point:  # would not fit in memory now: not run, here nor at larger sizes
                skipped[backend] = {str(n): point["needs"]}
                say(f"n={n:<3} {backend}: not run: {point['why']}")
                continue
            seconds[backend][str(n)] = point["seconds"]
            if point["seconds"] > max_call_s:  # timed once, and not run at larger sizes
                dropped.add(backend)
            else:
                steps[backend] = point["step"]
            peak_rss_gb[backend][str(n)] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
            if "peak_gpu_gb" in point:
                peak_gpu_gb[backend][str(n)] = point["peak_gpu_gb"]
            if point["passes"] and not no_grad:  # (passes count forward + backward)
                passes[backend][str(n)] = PASSES_PER_FORWARD_PASS * point["passes"]
            gpu = f", peak GPU {point['peak_gpu_gb']:.2f} GiB" if "peak_gpu_gb" in point else ""
            say(f"n={n:<3} {backend}: first call {point['seconds'] * 1e3:.2f} ms, "  # as each first call ends
                f"peak RSS {peak_rss_gb[backend][str(n)]:.2f} GiB{gpu}")
        for backend, s in (_median_times(steps, min_repeats=3, budget_s=budget_s) if steps else {}).items():
            seconds[backend][str(n)] = s
            say(f"n={n:<3} {backend}: {s * 1e3:.2f} ms (median, calls interleaved)")
        del steps  # the programs timed, freed before the copy below allocates two state batches
        for place in sorted({places[b] for b in backends if str(n) in passes[b]}):
            copy_s[_copy_key(n, place)] = _copy_time(batch, n, place, budget_s)
    best = {str(n): min((b for b in backends if str(n) in seconds[b]), key=lambda b: seconds[b][str(n)])
            for n in qubits if any(str(n) in seconds[b] for b in backends)}
    return {"kind": "scaling", "batch": batch, "n_layers": n_layers, "ansatz": ansatz, "qubits": list(qubits),
            "backends": list(backends),  # in the order they ran
            **({"circuit": circuit} if circuit else {}), **({"no_grad": True} if no_grad else {}),
            "seconds": seconds, "fastest": best, "peak_rss_gb": peak_rss_gb,
            "state_mb": {str(n): batch * 8 * 2**n / 2**20 for n in qubits}, "passes": passes, "copy_s": copy_s,
            **({"peak_gpu_gb": peak_gpu_gb, "gpu": torch.cuda.get_device_name()} if peak_gpu_gb else {}),
            **({"skipped": skipped} if skipped else {})}


def _scaling_point(spec, backend: str, place: str, x: torch.Tensor, max_call_s: float,
                   no_grad: bool = False) -> dict[str, Any]:
    """One point of :func:`bench_scaling`: the first forward + backward's time (and, where it took at most
    ``max_call_s``, the ``step`` to time again with the other backends, interleaved), the forward passes over the state,
    and on a GPU its peak memory. Each first call starts with the torch programs' buffer pool empty: until 2026-12-06
    a backend's first call took the state batches that the backend before had left there, so that of two backends
    timed by one call each, the first paid for mapping its buffers and the second did not (Meyer et al.'s circuit at 24
    qubits and 11 samples: auto, run first, 102.0 s against the torch program's 86.9; in a process of its own, auto's
    first call 96.1 s and its second 83.5, README). A CPU point whose program would not fit the memory available now is
    not run: ``needs`` and ``why`` instead (:func:`_over_memory`)."""
    from qrl.simulator import release_buffers

    vqc = _scaling_vqc(spec, backend.partition("@")[0]).to(place)
    x = x.to(place)
    if place != "cpu":
        torch.cuda.reset_peak_memory_stats(place)
    release_buffers()  # each backend's first call from an empty pool, not with the buffers the one before left there
    if place == "cpu":
        over = _over_memory(vqc.backend, x.shape[0], no_grad)
        if over is not None:
            return over
    step = _forward(vqc, x, place) if no_grad else _step(vqc, x, place)
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    point = {"seconds": first, "step": step if first <= max_call_s else None,
             "passes": vqc.backend.passes() if hasattr(vqc.backend, "passes") else None}
    if place != "cpu":
        point["peak_gpu_gb"] = torch.cuda.max_memory_allocated(place) / 2**30
    return point


def _silent(line: str) -> None:
    """A log that drops its lines."""


def _over_memory(backend, batch: int, no_grad: bool) -> dict[str, Any] | None:
    """Where the program that would run a CPU call of ``batch`` samples on ``backend`` holds its state batch and its
    estimated peak (:meth:`~qrl.backends.torch.TorchStatevector.gradient_bytes`, with ``no_grad``
    :meth:`~qrl.backends.torch.TorchStatevector.forward_bytes`) exceeds the memory available now, what it needs and
    why it is not run (else ``None``): a named program is run on the whole batch, and such a call was killed by
    Linux's out-of-memory killer, with the points timed before it (the native kernel at 24 qubits and 64 samples,
    after 10 minutes of auto's call, 2026-12-06). ``device="auto"`` runs it in chunks that fit (its calls are
    :class:`~qrl.backends.chunks.Chunks` there, not checked here); Lightning and PennyLane devices give no
    estimate."""
    from qrl.backends.dispatch import cpu_backend
    from qrl.backends.memory import available_memory, format_bytes
    from qrl.backends.torch import TorchStatevector

    program = cpu_backend(backend, batch)
    if not isinstance(program, TorchStatevector):
        return None
    needs = program.forward_bytes(batch) if no_grad else program.gradient_bytes(batch)
    have = available_memory()
    if needs <= have:
        return None
    call = "forward" if no_grad else "forward + backward"
    return {"needs": needs, "why": f"one {call} of {batch} samples needs about {format_bytes(needs)}; "
                                   f"{format_bytes(have)} available; try a smaller --batch, or --backends auto "
                                   f"(which runs such a call in chunks that fit)"}


def _torch_place(backend: str) -> str:
    """The torch device a scaling backend runs on: ``"torch@cuda"`` (or ``"torch:adjoint@cuda:1"``) runs the torch
    path on that GPU, with its tensors there, ``"auto@cuda"`` auto's choice there (the torch program, in chunks where a
    call exceeds its share of the GPU's memory); anything else runs on the CPU."""
    name, at, place = backend.partition("@")
    if not at:
        return "cpu"
    if name.partition(":")[0] not in ("torch", "auto") or not place.startswith("cuda"):
        raise QRLError(f"expected @cuda (or @cuda:N) after a torch backend or auto; got {backend}; try torch@cuda")
    if not torch.cuda.is_available():
        raise QRLError(f"{backend} needs a CUDA GPU, and torch sees none here (torch {torch.__version__}); "
                       f"try the backend without @{place}")
    return place


def _finish_work(place: str) -> None:
    """Wait for a GPU's queued work (a timed call ends when the GPU is done, not when its kernels are launched)."""
    if place != "cpu":
        torch.cuda.synchronize(place)


def _copy_key(n: int, place: str) -> str:
    return str(n) if place == "cpu" else f"{n}@{place}"


def _copy_time(batch: int, n: int, place: str, budget_s: float) -> float:
    """One copy of a batch of complex64 states (read + write) on ``place``: the bandwidth bound of a pass. Into a
    tensor written before: until 2026-12-06 each copy went into a new one (``clone``), which from 32 MiB glibc maps
    afresh, so the copy was timed with its page faults or not, by the process's history (the fraction of the bound
    printed for Meyer et al.'s circuit at 22 qubits and 8 samples read 114% and 15% in two runs of one command)."""
    state = torch.randn(batch, 2**n, dtype=torch.complex64, device=place)
    out = torch.zeros_like(state)

    def copy():
        out.copy_(state)
        _finish_work(place)

    return _median_time(copy, min_repeats=3, budget_s=budget_s)


def _scaling_vqc(spec, backend: str):
    from qrl.backends.torch import TorchStatevector
    from qrl.nn import VQC

    device, _, program = backend.partition(":")
    if program and device.startswith("lightning."):  # "lightning.qubit:qnode": PennyLane's QNode
        return VQC(spec, device=backend, seed=0)
    if program and device != "torch":
        raise QRLError(f"a program can be chosen for the torch backend only (torch:dense, torch:wires, torch:adjoint, "
                       f"torch:fused, torch:fused-adjoint); got {backend}")
    vqc = VQC(spec, device=device, seed=0)
    if program:
        vqc.use_backend(TorchStatevector(spec, program))
    return vqc


# -- calls: the cost model of rollout-sized calls ---------------------------------------------------------

CALL_CIRCUITS = ("hea", "strongly_entangling", "meyer_iqp", "chen_vqdqn", "lockwood_si", "hsiao", "born_parity",
                 "jerbi_skolik")
"""The circuits ``qrl bench calls`` measures by default: the built-in ansatze and the circuit library."""


CALL_QUBITS = (12, 13, 14, 15, 16)
CALL_BATCHES = (1, 4, 8, 16)
CALL_LAYERS = 5
"""The qubit counts, batch sizes and layers ``qrl bench calls`` measures by default (the calls the model was fit to)."""


def bench_calls(circuits: tuple[str, ...] = CALL_CIRCUITS, qubits: tuple[int, ...] = CALL_QUBITS,
                batches: tuple[int, ...] = CALL_BATCHES, n_layers: int = CALL_LAYERS, budget_s: float = 0.5,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Forward + backward of each circuit (a built-in ansatz's name, or a circuit of the library as
    :func:`bench_scaling` builds it) on the torch program and on the native kernel, side by side, per qubit count and
    batch; with the structure the cost model reads (:class:`qrl.backends.calls.CallModel`), the model fitted to these
    calls, and the choice of the model ``device="auto"`` uses now (:func:`qrl.backends.select.call_model`)."""
    from qrl.backends.select import NATIVE, call_model

    model, rows = call_model(), []
    for name in circuits:  # every name resolved before any timing: a typo fails at once
        _named_spec(name, min(qubits), n_layers)
    for name in circuits:
        for n in qubits:
            spec = _named_spec(name, n, n_layers)
            torch_vqc, kernel_vqc = _scaling_vqc(spec, "torch"), _scaling_vqc(spec, NATIVE)
            shape = {"circuit": name, "qubits": n, "nodes": torch_vqc.backend.autograd_nodes(),
                     "torch_passes": torch_vqc.backend.passes(),
                     "kernel_passes": kernel_vqc.backend.native_passes(merge_diagonals=True),
                     "kernel_pass_counts": kernel_vqc.backend.native_pass_counts(),
                     "rotations": kernel_vqc.backend.native_rotations()}
            if shape["torch_passes"] is None:
                raise QRLError(f"{name} at {n} qubits runs the dense torch program, which the model does not "
                               f"describe; try 12 qubits or more")
            for batch in batches:
                x = torch.randn(batch, n, generator=torch.Generator().manual_seed(n))
                times = _median_times({"torch": _step(torch_vqc, x), "kernel": _step(kernel_vqc, x)},
                                      min_repeats=3, budget_s=budget_s)
                row = {**shape, "batch": batch, "torch_s": times["torch"], "kernel_s": times["kernel"]}
                row["model_choice"] = _model_choice(model, row)
                rows.append(row)
                if log:
                    log(f"{name} n={n} batch={batch}: torch {times['torch'] * 1e3:.2f} ms, kernel "
                        f"{times['kernel'] * 1e3:.2f} ms, model {row['model_choice']}")
    return _calls_result(rows, model, {"circuits": list(circuits), "qubits": list(qubits), "batches": list(batches),
                                       "n_layers": n_layers})


def calls_again(results: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """``qrl bench calls`` results (one or several: the same calls timed on several days, whose VM builds cost the torch
    program's operations differently) as one, with their timings kept and the rest computed again by the model as it
    is now: its choice for each call (:func:`qrl.backends.select.call_model`, the stored fit) and the fit, to all the
    calls at once (to refit after a change of the model's form without timing again, or across days); ``sources``
    (the files they were read from) and the machines that timed them kept as ``calls_from`` and ``calls_machine`` (a
    list for several)."""
    from qrl.backends.select import call_model

    model, keys, rows, setup = call_model(), ("circuits", "qubits", "batches"), [], {}
    try:
        for result in results:
            rows += [{**r, "model_choice": _model_choice(model, r)} for r in result["rows"]]
            for k in keys:
                setup[k] = setup.get(k, []) + [x for x in result[k] if x not in setup.get(k, [])]
        layers = {result["n_layers"] for result in results}
    except (KeyError, TypeError, ValueError) as exc:
        raise QRLError(f"expected a result of qrl bench calls (rows with nodes, torch_passes, kernel_pass_counts, "
                       f"rotations, qubits, batch and times); got one without {exc}; try a calls-*.json of "
                       f"runs/reference/bench/") from None
    if len(layers) != 1:
        raise QRLError(f"expected results of qrl bench calls with the same --layers; got {sorted(layers)}; try the "
                       f"files of one command")
    machines = [result.get("machine") for result in results]
    one = len(results) == 1
    return {**_calls_result(rows, model, {**setup, "n_layers": layers.pop()}),
            "calls_from": sources[0] if one else list(sources), "calls_machine": machines[0] if one else machines}


def _calls_result(rows: list[dict[str, Any]], model, setup: dict[str, Any]) -> dict[str, Any]:
    from qrl.backends.calls import fit_call_model

    try:
        fit = fit_call_model(rows).to_json()
    except QRLError as exc:  # calls that cannot tell the constants apart (one batch class only): timed, not fitted
        fit = {"error": str(exc)}
    return {"kind": "calls", **setup, "rows": rows, "model": model.to_json(), "fit": fit}


def model_ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each call of a :func:`bench_scaling` result that timed the torch program and the kernel, measured over the cost
    model's estimate (:func:`qrl.backends.select.call_model`; a forward + backward's estimate, also for a result timed
    ``--no-grad``): how :data:`qrl.backends.calls.FORWARD_STATE_FACTOR` was fitted. Builds each circuit once more."""
    from qrl.backends.select import NATIVE, call_model

    model, rows = call_model(), []
    name = result.get("circuit") or result.get("ansatz")
    seconds = result["seconds"]
    if "torch" not in seconds or NATIVE not in seconds:
        raise QRLError(f"expected a qrl bench scaling result that timed torch and {NATIVE}; got backends "
                       f"{sorted(seconds)}; try --backends torch {NATIVE}")
    for n in result["qubits"]:
        spec = _named_spec(name, n, result["n_layers"])
        torch_vqc, kernel_vqc = _scaling_vqc(spec, "torch"), _scaling_vqc(spec, NATIVE)
        if torch_vqc.backend.passes() is None:
            continue  # the dense program: not described by the model
        batch = result["batch"]
        torch_s = model.torch_seconds(torch_vqc.backend.autograd_nodes(), torch_vqc.backend.passes(), n, batch)
        kernel_s = model.kernel_seconds(kernel_vqc.backend.native_pass_counts(), kernel_vqc.backend.native_rotations(),
                                        n, batch)
        rows.append({"circuit": name, "qubits": n, "batch": batch, "gradient": not result.get("no_grad", False),
                     "torch": seconds["torch"][str(n)] / torch_s, "kernel": seconds[NATIVE][str(n)] / kernel_s})
    return rows


def _named_spec(name: str, n: int, n_layers: int):
    from qrl.circuits import ANSATZE, CircuitSpec, custom_circuit

    if name in ANSATZE:
        return CircuitSpec(n_qubits=n, n_layers=n_layers, n_inputs=n, n_outputs=n, ansatz=name)
    return custom_circuit(name, n_qubits=n, n_inputs=n, n_layers=n_layers, obs_map="identity", output_scaling=False)


def _step(vqc: nn.Module, x: torch.Tensor, place: str = "cpu") -> Callable[[], None]:
    """One forward + backward of ``vqc`` on ``x``, ended when the work on ``place`` is done (a GPU's too)."""
    def step():
        vqc.zero_grad(set_to_none=True)
        vqc(x).sum().backward()
        _finish_work(place)

    return step


def _forward(vqc: nn.Module, x: torch.Tensor, place: str = "cpu") -> Callable[[], None]:
    """One forward of ``vqc`` on ``x`` without a gradient (a rollout's), ended when the work on ``place`` is done."""
    def forward():
        with torch.no_grad():
            vqc(x)
        _finish_work(place)

    return forward


def _model_choice(model, row: dict[str, Any]) -> str:
    """``"kernel"`` or ``"torch"``: the program ``model`` estimates the faster for the call of ``row``."""
    faster = model.kernel_faster(row["nodes"], row["torch_passes"], row["kernel_pass_counts"], row["rotations"],
                                 row["qubits"], row["batch"])
    return "kernel" if faster else "torch"


def _chosen_by(model, rows: list[dict[str, Any]]) -> list[float] | None:
    """For each call, the time of the program ``model`` estimates the faster over the faster one's (``None`` without a
    model: calls that were not fitted)."""
    if model is None:
        return None
    return [r[f"{_model_choice(model, r)}_s"] / min(r["torch_s"], r["kernel_s"]) for r in rows]


def _rules_before_the_model(row: dict[str, Any]) -> str:
    """The program auto ran a call of ``row`` on before the cost model, at 12-26 qubits where the tables name the
    kernel: the tiny-batch table's torch program for 1-2 samples, the kernel for 3-16 within the pass ratio (which
    still decides above 18 qubits), and for more within the work ratio (which still decides them)."""
    from qrl.backends.dispatch import SMALL_BATCH_MAX, TINY_BATCH_MAX
    from qrl.backends.select import kernel_pays_by_passes, kernel_pays_by_work

    if row["batch"] <= TINY_BATCH_MAX:
        return "torch"
    if row["batch"] <= SMALL_BATCH_MAX:
        pays = kernel_pays_by_passes(row["kernel_passes"], row["torch_passes"])
    else:
        pays = kernel_pays_by_work(row["kernel_passes"], row["rotations"], row["torch_passes"], row["qubits"])
    return "kernel" if pays else "torch"


def format_calls(result: dict[str, Any], slower: float = 1.2) -> str:
    """Markdown, a row per circuit, qubit count and batch: both programs' times and the model's choice over the
    faster; then how many choices were within ``slower`` of the faster (the model's in use, the rules' before it, and
    the fit's own), and the fitted constants."""
    from qrl.backends.calls import CallModel

    lines = ["| circuit | qubits | batch | torch (ms) | kernel (ms) | model's choice | choice / faster |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    for r in result["rows"]:
        ratio = r[f"{r['model_choice']}_s"] / min(r["torch_s"], r["kernel_s"])
        ratios.append(ratio)
        lines.append(f"| {r['circuit']} | {r['qubits']} | {r['batch']} | {_ms(r['torch_s'])} | {_ms(r['kernel_s'])} | "
                     f"{r['model_choice']} | {ratio:.2f}x |")
    fit, before = result["fit"], [r[f"{_rules_before_the_model(r)}_s"] / min(r["torch_s"], r["kernel_s"])
                                  for r in result["rows"]]
    own = _chosen_by(CallModel.from_json(fit), result["rows"]) if "kernel_pass_counts" in result["rows"][0] else None
    lines += ["", f"model's choice within {slower}x of the faster program in {sum(x <= slower for x in ratios)} of "
              f"{len(ratios)} calls (worst {max(ratios):.2f}x); the rules before it (the torch program for 1-2 "
              f"samples, the kernel for 3-16 within the pass ratio, for more within the work ratio) in "
              f"{sum(x <= slower for x in before)} (worst {max(before):.2f}x)",
              *([f"the fit's own choice within {slower}x in {sum(x <= slower for x in own)} (worst {max(own):.2f}x)"]
                if own else []),
              f"not fitted: {fit['error']}" if "error" in fit else
              f"fitted to these calls: torch {fit['node_s'] * 1e6:.2f} us per node, {fit['torch_pass_s'][0] * 1e9:.2f} "
              f"ns per amplitude and pass in the cache, {fit['torch_pass_s'][1] * 1e9:.2f} beyond; kernel "
              + ", ".join(f"{s * 1e9:.2f} ns per amplitude and pass of a vector of {w}"
                          for w, s in sorted(fit["kernel_pass_s"].items(), key=lambda ws: int(ws[0])))]
    return "\n".join(lines)


# -- circuits -------------------------------------------------------------------------------------------

FLEXIBILITY_GOAL = 1.3
"""The issue's goal: a user's copy of the default circuit at most this much slower than the built-in program."""


def flexibility_pair(n_qubits: int = 4, n_layers: int = 5, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """``(built-in, user)``: qrl's default circuit as the built-in program (``CircuitSpec``) and as the
    library's ``jerbi_skolik`` (a user's circuit), both ``VQC`` modules on the torch backend, same weights."""
    from qrl.circuits import CircuitSpec, custom_circuit
    from qrl.nn import VQC

    builtin = VQC(CircuitSpec(n_qubits=n_qubits, n_layers=n_layers, n_inputs=n_qubits, n_outputs=n_qubits),
                  device="torch", seed=seed)
    user = VQC(custom_circuit("jerbi_skolik", n_qubits=n_qubits, n_inputs=n_qubits, n_layers=n_layers),
               device="torch", seed=seed)
    with torch.no_grad():
        user.circuit_weights["weights"].copy_(builtin.weights)
        user.circuit_weights["input_scaling"].copy_(builtin.input_scaling)
        user.output_scaling.copy_(builtin.output_scaling)
    return builtin, user


def _modes(module: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], None]]:
    """``rollout``: a forward under ``torch.no_grad()`` (weights unchanged between calls, as in SB3's
    rollouts); ``update``: forward and backward of a scalar loss."""

    def rollout() -> None:
        with torch.no_grad():
            module(x)

    return {"rollout": rollout, "update": _step(module, x)}


def bench_flexibility(batches: tuple[int, ...] = (1, 64, 256), n_layers: int = 5, budget_s: float = 1.0,
                      min_repeats: int = 5, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rollout and update times of the default circuit written as a user's circuit vs the built-in program.

    Both are ``VQC`` modules on the torch backend, float32, 4 qubits, with the same weights
    (:func:`flexibility_pair`); the two are timed interleaved. Rows: batch, mode, seconds of each and
    ``ratio`` = user / built-in, against :data:`FLEXIBILITY_GOAL`.
    """
    builtin, user = flexibility_pair(n_layers=n_layers)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch in batches:
        x = torch.randn(batch, builtin.spec.n_inputs, generator=gen)
        paths = {"builtin": _modes(builtin, x), "user": _modes(user, x)}
        for mode in ("rollout", "update"):
            secs = _median_times({name: fns[mode] for name, fns in paths.items()}, min_repeats, budget_s)
            ratio = secs["user"] / secs["builtin"]
            rows.append({"batch": batch, "mode": mode, "builtin_s": secs["builtin"], "user_s": secs["user"],
                         "ratio": ratio, "meets_goal": ratio <= FLEXIBILITY_GOAL})
            if log:
                log(f"B={batch:<4} {mode:<7} built-in {secs['builtin'] * 1e3:.3f} ms, user {secs['user'] * 1e3:.3f} "
                    f"ms, user / built-in {ratio:.2f}")
    return {"n_qubits": builtin.spec.n_qubits, "n_layers": n_layers, "batches": list(batches),
            "goal_ratio": FLEXIBILITY_GOAL, "rows": rows}


MEYER_PATHS = {"qrl": "qrl torch", "qrl-pairs": "qrl torch, blocks one by one", "qrl-native": "qrl torch:native",
               "qrl-lightning": "qrl lightning.qubit (native)",
               "default.qubit": "TorchLayer default.qubit backprop",
               "lightning.qubit": "TorchLayer lightning.qubit adjoint"}
PENNYLANE_PATHS = ("default.qubit", "lightning.qubit")
NATIVE_RATIO = "lightning.qubit_over_qrl-lightning"
"""Row key of the Lightning goal: PennyLane's TorchLayer on lightning.qubit over qrl's native Lightning path."""


def meyer_paths(n_qubits: int, n_layers: int = 4, include_slow: bool = True, seed: int = 0) -> dict[str, nn.Module]:
    """Meyer et al.'s circuit (the library's ``meyer_iqp``) as qrl's ``VQC`` on the torch backend and as
    ``qml.qnn.TorchLayer`` around the same function: on ``default.qubit`` with backprop (the authors'
    choice) and, unless ``include_slow`` is false, on ``lightning.qubit`` with adjoint. Same weights; the
    VQC maps no features and scales no outputs, so all compute ``f(x, scaling, weights)``. ``qrl-pairs``: the
    torch path with each two-qubit block one pass, as before groups of blocks (``torch:fused-pairs``);
    ``qrl-native``: the compiled kernel (``torch:native``)."""
    import pennylane as qml

    from qrl.circuits import custom_circuit, find_circuit
    from qrl.nn import VQC

    spec = custom_circuit("meyer_iqp", n_qubits=n_qubits, n_inputs=n_qubits, n_layers=n_layers,
                          obs_map="identity", output_scaling=False)
    vqc = VQC(spec, device="torch", seed=seed)
    function = find_circuit("meyer_iqp").function  # (inputs, scaling, weights): TorchLayer's names
    paths: dict[str, nn.Module] = {"qrl": vqc, "qrl-pairs": VQC(spec, device="torch:fused-pairs", seed=seed),
                                   "qrl-native": VQC(spec, device="torch:native", seed=seed),
                                   "qrl-lightning": VQC(spec, device="lightning.qubit", seed=seed)}
    for device, diff_method in (("default.qubit", "backprop"), ("lightning.qubit", "adjoint")):
        if device == "lightning.qubit" and not include_slow:
            continue
        qnode = qml.QNode(function, qml.device(device, wires=n_qubits), interface="torch", diff_method=diff_method)
        layer = qml.qnn.TorchLayer(qnode, spec.weight_shapes)
        with torch.no_grad():
            for name, value in vqc.circuit_weights.items():
                getattr(layer, name).copy_(value)
        paths[device] = layer
    return paths


def bench_meyer(qubits: tuple[int, ...] = (10, 14), batch: int = 64, n_layers: int = 4, budget_s: float = 1.0,
                min_repeats: int = 3, include_slow: bool = True,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Forward + backward (w.r.t. inputs and weights) of Meyer et al.'s circuit per qubit count: qrl's
    torch path vs PennyLane's ``TorchLayer`` (:func:`meyer_paths`), timed interleaved. Rows: qubits,
    seconds per path, and each PennyLane path's time over qrl's (``<device>_over_qrl``)."""
    rows = []
    for n in qubits:
        x = torch.randn(batch, n, generator=torch.Generator().manual_seed(n)).requires_grad_(True)
        fns = {}
        for name, module in meyer_paths(n, n_layers, include_slow).items():
            def step(m=module, x=x):
                m.zero_grad(set_to_none=True)
                x.grad = None
                m(x).sum().backward()

            fns[name] = step
        secs = _median_times(fns, min_repeats, budget_s)
        row: dict[str, Any] = {"qubits": n, "seconds": secs}
        row.update({f"{name}_over_qrl": secs[name] / secs["qrl"] for name in secs if name != "qrl"})
        row.update({f"{name}_over_qrl-native": secs[name] / secs["qrl-native"] for name in PENNYLANE_PATHS
                    if name in secs})
        if "lightning.qubit" in secs:
            row[NATIVE_RATIO] = secs["lightning.qubit"] / secs["qrl-lightning"]
        rows.append(row)
        if log:
            log(f"n={n:<3} " + ", ".join(f"{MEYER_PATHS[name]} {t * 1e3:.1f} ms" for name, t in secs.items()))
    return {"batch": batch, "n_layers": n_layers, "qubits": list(qubits), "paths": MEYER_PATHS, "rows": rows}


def bench_circuits(batches: tuple[int, ...] = (1, 64, 256), meyer_qubits: tuple[int, ...] = (10, 14),
                   batch: int = 64, budget_s: float = 1.0, min_repeats: int = 5, include_slow: bool = True,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Users' circuits: :func:`bench_flexibility` (a user's copy of the default circuit vs the built-in
    program) and :func:`bench_meyer` (Meyer et al.'s circuit, qrl vs PennyLane's TorchLayer)."""
    return {"kind": "circuits",
            "flexibility": bench_flexibility(batches, budget_s=budget_s, min_repeats=min_repeats, log=log),
            "meyer": bench_meyer(meyer_qubits, batch, budget_s=budget_s, min_repeats=min(min_repeats, 3),
                                 include_slow=include_slow, log=log)}


# -- reporting ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def save(result: dict[str, Any], out: str | Path = "runs/bench") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['kind']}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, {**result, "machine": machine()})
    return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 1 else f"{seconds * 1e3:.0f}"


_PATH_ORDER = ("mlp", "qrl auto", "qrl torch", "qrl lightning", "TorchLayer default", "TorchLayer lightning")


def _ordered(names) -> list[str]:
    return sorted(names, key=lambda n: next((i for i, p in enumerate(_PATH_ORDER) if n.startswith(p)), 99))


def format_policy(result: dict[str, Any]) -> str:
    """Markdown: absolute times per mode, then ratios against the MLP and against qrl's torch path."""
    batches = [str(b) for b in result["batches"]]
    lines: list[str] = []
    for mode, title in (("update", "update: actor + critic, fwd + bwd"), ("rollout", "rollout: no-grad fwd")):
        secs = result["seconds"][mode]
        lines += [f"| {title} | " + " | ".join(f"B={b} (ms)" for b in batches) + " |",
                  "|---|" + "---|" * len(batches)]
        lines += [f"| {name} | " + " | ".join(_ms(secs[name][b]) for b in batches) + " |" for name in _ordered(secs)]
        lines.append("")
    lines += ["| ratio | " + " | ".join(f"B={b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for mode in ("update", "rollout"):
        secs = result["seconds"][mode]
        mlp = next(name for name in secs if name.startswith("mlp"))
        goal = " (issue 3's goal <= 5)" if mode == "update" else ""
        lines.append(f"| {mode}: qrl torch / MLP{goal} | " +
                     " | ".join(f"{secs['qrl torch'][b] / secs[mlp][b]:.1f}x" for b in batches) + " |")
        for path in ("qrl torch:native", "qrl auto"):  # (older results have neither)
            if path in secs:
                goal = " (issue 15's goal <= 1.5 at B=64)" if mode == "update" else ""
                lines.append(f"| {mode}: {path} / MLP{goal} | " +
                             " | ".join(f"{secs[path][b] / secs[mlp][b]:.2f}x" for b in batches) + " |")
        for name in _ordered(secs):
            if name.startswith("TorchLayer") or name == "qrl lightning.qubit":
                lines.append(f"| {mode}: {name} / qrl torch | " +
                             " | ".join(f"{secs[name][b] / secs['qrl torch'][b]:.1f}x" for b in batches) + " |")
    return "\n".join(lines)


def format_train(results: list[dict[str, Any]] | dict[str, Any]) -> str:
    """Markdown: steps/s of MLP and VQC per algorithm (one result or a list of them)."""
    results = [results] if isinstance(results, dict) else results
    lines = ["| algorithm, env (steps; rl-zoo3 hyperparameters) | MlpPolicy (steps/s) | VQC policy "
             "(steps/s) | VQC / MLP |", "|---|---|---|---|"]
    for result in results:
        r = result["results"]
        goal = {"ppo": " (goal >= 0.9)", "dqn": " (goal >= 1.0)"}.get(result.get("algo", "ppo"), "")  # issue 15's
        device = result.get("gpu") or ("" if result.get("sb3_device", "cpu") == "cpu" else result["sb3_device"])
        qubits = f"{result['n_qubits']} qubits" if result.get("n_qubits") else ""
        program = "" if result.get("vqc_device", "torch") == "torch" else result["vqc_device"]
        where = "".join(f"; {w}" for w in (device, qubits, program) if w)  # when not torch (older results' default)
        repeats = result.get("repeats", 1)
        where += f"; median of {repeats}" if repeats > 1 else ""
        lines.append(f"| {result.get('algo', 'ppo').upper()}, {result['env']} ({r['mlp']['steps']}{where}) | "
                     f"{r['mlp']['steps_per_s']:.0f} | {r['vqc']['steps_per_s']:.0f} | "
                     f"{result['vqc_over_mlp']:.2f}x{goal} |")
    return "\n".join(lines)


def format_scaling(result: dict[str, Any], baseline: str | None = None) -> str:
    """Markdown, a row per qubit count: each backend's time, the fastest, memory, the torch programs' passes and
    share of the copy bound; with ``baseline``, how many times faster than it every other backend ran."""
    backends = list(result["seconds"])
    rss = result.get("peak_rss_gb", {})
    passes, copy_s = result.get("passes", {}), result.get("copy_s", {})
    timed = [b for b in backends if passes.get(b)]  # torch programs: passes and the share of the copy bound
    others = [b for b in backends if baseline and b != baseline]
    gpu = result.get("peak_gpu_gb", {})
    unit = "ms, forward without gradient" if result.get("no_grad") else "ms"
    lines = ["| qubits | " + " | ".join(f"{b} ({unit})" for b in backends)
             + " | fastest | state (MiB) | peak RSS (GiB) |"
             + "".join(f" {b} peak GPU (GiB) |" for b in gpu)
             + "".join(f" {b} passes | of copy bound |" for b in timed)
             + "".join(f" {baseline} / {b} |" for b in others),
             "|---|" + "---|" * (len(backends) + 3 + len(gpu) + 2 * len(timed) + len(others))]
    for n in result["qubits"]:
        key = str(n)
        cells = [_ms(result["seconds"][b][key]) if key in result["seconds"][b] else "-" for b in backends]
        peak = max((rss[b][key] for b in rss if key in rss[b]), default=None)
        state = result.get("state_mb", {}).get(key)
        extra = "".join(f" {gpu[b][key]:.2f} |" if key in gpu[b] else " - |" for b in gpu)
        for b in timed:
            p = passes[b].get(key)
            copy_key = key + b[b.index("@"):] if "@" in b else key
            share = p * copy_s[copy_key] / result["seconds"][b][key] if p and copy_key in copy_s else None
            extra += f" {p or '-'} | " + ("-" if share is None else f"{share:.0%}") + " |"
        for b in others:
            base, mine = result["seconds"][baseline].get(key), result["seconds"][b].get(key)
            extra += " - |" if base is None or mine is None else f" {base / mine:.2f}x |"
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {result['fastest'].get(key, '-')} | "
                     + ("-" if state is None else f"{state:.3g}") + " | "
                     + ("-" if peak is None else f"{peak:.2f}") + " |" + extra)
    return "\n".join(lines)


def format_circuits(result: dict[str, Any]) -> str:
    """Markdown: the user's copy of the default circuit vs the built-in program (with the goal), then
    Meyer et al.'s circuit on qrl's torch path vs PennyLane's TorchLayer."""
    flex, meyer = result["flexibility"], result["meyer"]
    goal = flex["goal_ratio"]
    lines = [f"flexibility costs nothing: default circuit ({flex['n_qubits']} qubits x {flex['n_layers']} layers) "
             f"as a user's circuit (jerbi_skolik) vs the built-in program; VQC, torch, float32",
             f"goal: user / built-in <= {goal} in every row",
             "| batch | mode | built-in (ms) | user (ms) | user / built-in | meets goal |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['mode']} | {_ms(r['builtin_s'])} | {_ms(r['user_s'])} | {r['ratio']:.2f} | "
              f"{'yes' if r['ratio'] <= goal else 'no'} |" for r in flex["rows"]]
    met = sum(r["ratio"] <= goal for r in flex["rows"])
    lines += [f"goal met in {met} of {len(flex['rows'])} rows", "",
              f"Meyer et al.'s circuit ({meyer['n_layers']} layers, batch {meyer['batch']}): forward + backward "
              f"w.r.t. inputs and weights"]
    others = [name for name in meyer["paths"] if name != "qrl"]
    native = any(NATIVE_RATIO in r for r in meyer["rows"])
    kernel = [f"{name}_over_qrl-native" for name in PENNYLANE_PATHS
              if any(f"{name}_over_qrl-native" in r for r in meyer["rows"])]  # (older results: none)
    lines += ["| qubits | " + " | ".join(f"{meyer['paths'][name]} (ms)" for name in meyer["paths"])
              + " | " + " | ".join(f"{name} / qrl" for name in others)
              + (" | lightning.qubit / qrl-lightning" if native else "")
              + "".join(f" | {key.replace('_over_', ' / ')}" for key in kernel) + " |",
              "|---|" + "---|" * (len(meyer["paths"]) + len(others) + native + len(kernel))]
    for r in meyer["rows"]:
        cells = [_ms(r["seconds"][name]) if name in r["seconds"] else "-" for name in meyer["paths"]]
        ratios = [f"{r[f'{name}_over_qrl']:.2f}x" if f"{name}_over_qrl" in r else "-" for name in others]
        ratios += [f"{r[NATIVE_RATIO]:.1f}x" if NATIVE_RATIO in r else "-"] if native else []
        ratios += [f"{r[key]:.1f}x" if key in r else "-" for key in kernel]
        lines.append(f"| {r['qubits']} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def load(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise QRLError(f"cannot read benchmark result {path}: {exc}") from exc
