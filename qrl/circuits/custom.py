"""A researcher's own circuit: a PennyLane quantum function in ``TorchLayer``'s convention, named by a plain value.

``f(inputs, **weights) -> list of measurements``; the function is found by name (a registered name, an
entry point of the group ``qrl.circuits``, or ``"module:function"``), so ``policy_kwargs`` stay plain
values and a saved model reloads in a fresh process.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import torch

from qrl.errors import QRLError

ENTRY_POINT_GROUP = "qrl.circuits"
DEFAULT_INIT = "uniform(-pi, pi)"
INITS = ("uniform(a, b)", "normal(mean, std)", "constant(v)", "ones", "zeros")


@dataclass(frozen=True)
class CircuitEntry:
    """A named circuit: the function, and what a user need not repeat (see :func:`register_circuit`)."""

    name: str
    function: Callable
    weight_shapes: Callable[[int, int], dict] | dict | None = None
    init: dict = field(default_factory=dict)
    description: str = ""
    citation: str = ""

    def shapes(self, n_qubits: int, n_layers: int) -> dict | None:
        """The default ``weight_shapes`` for this size (``None``: the user must give them)."""
        if callable(self.weight_shapes):
            return self.weight_shapes(n_qubits, n_layers)
        return self.weight_shapes


_REGISTRY: dict[str, CircuitEntry] = {}


def register_circuit(name: str | None = None, *, weight_shapes=None, init: dict | None = None,
                     description: str = "", citation: str = "", replace: bool = False):
    """Decorator: make a quantum function a qrl circuit, named ``name`` (default: the function's name).

    :param weight_shapes: the default shapes, a dict or ``f(n_qubits, n_layers) -> dict``; a user's
        ``weight_shapes`` policy keyword overrides them.
    :param init: per weight, how to initialise it (see :func:`initial_weights`); the rest get
        :data:`DEFAULT_INIT`.
    :param replace: allow a second function under a name already taken.

    **Example**

    >>> import pennylane as qml
    >>> @register_circuit("one_rx", weight_shapes={"w": (1,)}, replace=True)
    ... def one_rx(inputs, w):
    ...     qml.RX(inputs[..., 0] + w[0], wires=0)
    ...     return [qml.expval(qml.PauliZ(0))]
    >>> find_circuit("one_rx").function is one_rx
    True
    """

    def decorate(function: Callable) -> Callable:
        key = name or function.__name__
        if key in _REGISTRY and not replace and _REGISTRY[key].function is not function:
            raise QRLError(f"a circuit named {key!r} is already registered; pick another name or pass replace=True")
        _REGISTRY[key] = CircuitEntry(key, function, weight_shapes, dict(init or {}), description, citation)
        return function

    return decorate


def registered_circuits() -> dict[str, CircuitEntry]:
    """Every circuit registered so far (the library's, and any a user registered), by name."""
    return dict(_REGISTRY)


def find_circuit(name: str) -> CircuitEntry:
    """The circuit called ``name``: registered, an entry point, or ``"module:function"`` (imported)."""
    if not isinstance(name, str) or not name:
        raise QRLError(f"circuit must be a name: a registered circuit, an entry point or 'module:function'; "
                       f"got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _entry(name, _load(name, ep.load))
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise QRLError(f"unknown circuit {name!r}; expected a registered name ({known}), an entry point of "
                       f"{ENTRY_POINT_GROUP!r} or 'module:function' (e.g. 'mypkg.circuits:my_circuit')")

    def load():
        target = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target

    return _entry(name, _load(name, load))


def _load(name: str, load: Callable):
    try:
        return load()
    except ModuleNotFoundError as exc:
        raise QRLError(f"circuit {name!r}: no module named {exc.name!r}; install it or put its folder on "
                       f"PYTHONPATH") from None
    except AttributeError as exc:
        raise QRLError(f"circuit {name!r}: {exc}; check the name after ':'") from None


def _entry(name: str, target) -> CircuitEntry:
    if isinstance(target, CircuitEntry):
        return target
    registered = next((e for e in _REGISTRY.values() if e.function is target), None)
    if registered is not None:
        return registered
    if not callable(target):
        raise QRLError(f"circuit {name!r} is a {type(target).__name__}; expected a quantum function "
                       f"f(inputs, **weights)")
    return CircuitEntry(name, target)


def _number(text: str) -> float:
    """A number written with digits, ``pi``, ``+ - * /`` and parentheses (never evaluated as Python)."""
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def value(node) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id == "pi":
            return math.pi
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](value(node.left), value(node.right))
        raise ValueError(text)

    return value(ast.parse(text.strip(), mode="eval").body)


def parse_init(text: str) -> tuple[str, tuple[float, ...]]:
    """``"uniform(0, 2*pi)"`` -> ``("uniform", (0.0, 6.28...))``; refused with the forms it takes."""
    t = str(text).strip()
    kind, _, rest = t.partition("(")
    kind = kind.strip()
    want = {"uniform": 2, "normal": 2, "constant": 1, "ones": 0, "zeros": 0}
    try:
        if kind not in want or bool(rest) != bool(want[kind]) or (rest and not rest.endswith(")")):
            raise ValueError(t)
        args = tuple(_number(a) for a in rest[:-1].split(",")) if rest else ()
        if len(args) != want[kind] or (kind == "normal" and args[1] < 0) or (kind == "uniform" and args[0] > args[1]):
            raise ValueError(t)
    except (ValueError, SyntaxError, ZeroDivisionError):
        raise QRLError(f"unknown weight init {text!r}; expected one of {', '.join(INITS)} (numbers may use pi, "
                       f"e.g. 'uniform(0, 2*pi)')") from None
    return kind, args


def initial_weights(shape: tuple[int, ...], init: str, generator: torch.Generator | None) -> torch.Tensor:
    """A weight tensor initialised as ``init`` says (see :func:`parse_init`), float32."""
    kind, args = parse_init(init)
    if kind == "uniform":
        return torch.rand(shape, generator=generator) * (args[1] - args[0]) + args[0]
    if kind == "normal":
        return torch.randn(shape, generator=generator) * args[1] + args[0]
    value = {"ones": 1.0, "zeros": 0.0}.get(kind, args[0] if args else 0.0)
    return torch.full(shape, float(value))


def check_signature(name: str, function: Callable, weight_names: list[str]) -> None:
    """The function takes ``inputs`` first and every weight by name, as ``TorchLayer`` requires."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return
    names = list(params)
    if not names or names[0] != "inputs":
        raise QRLError(f"circuit {name!r} must take 'inputs' as its first argument (TorchLayer's convention); "
                       f"got ({', '.join(names)})")
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    missing = [w for w in weight_names if w not in params and not takes_any]
    extra = [p for p in names[1:] if p not in weight_names and params[p].default is inspect.Parameter.empty
             and params[p].kind not in (params[p].VAR_KEYWORD, params[p].VAR_POSITIONAL)]
    if missing or extra:
        raise QRLError(f"circuit {name!r} takes ({', '.join(names)}) but weight_shapes names "
                       f"({', '.join(weight_names)}); expected weight_shapes with one entry per argument after "
                       f"'inputs'")


@dataclass(frozen=True)
class CustomCircuit:
    """A user's circuit as plain values: which function, its weights' shapes and inits, and its size.

    Made by :func:`custom_circuit`, which resolves defaults and checks everything; the fields mirror the
    policy keywords (``circuit``, ``weight_shapes``, ``init``, ``n_qubits``, ``obs_map``, ...).
    ``weights`` (the shapes) and ``init`` are tuples of ``(name, value)`` pairs in :meth:`qfunc`'s order.
    The circuit's inputs are the features after ``obs_map`` (``(B, n_inputs)``); its outputs are its
    measurements, concatenated, times a trainable weight each when ``output_scaling``.
    """

    circuit: str
    n_qubits: int
    n_inputs: int
    weights: tuple = ()
    init: tuple = ()
    n_layers: int | None = None
    obs_map: str = "arctan"
    output_scaling: bool = True
    output_scale_init: float = 1.0

    @property
    def input_shape(self) -> tuple[int]:
        return (self.n_inputs,)

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The weights by name, in :meth:`qfunc`'s argument order (TorchLayer's ``weight_shapes``)."""
        return dict(self.weights)

    def qfunc(self) -> Callable:
        """``f(inputs, *weights)``: the function with its weights passed by name, in :attr:`weight_shapes` order."""
        function, names = find_circuit(self.circuit).function, [n for n, _ in self.weights]

        def circuit(inputs, *weights):
            return function(inputs, **dict(zip(names, weights, strict=True)))

        return circuit

    @functools.cached_property
    def n_outputs(self) -> int:
        """Values the measurements give: one per ``expval``, ``2**k`` per ``probs`` on ``k`` wires."""
        return measurement_width(self)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters by kind, as :meth:`CircuitSpec.parameter_counts` names them: the circuit's
        weights count as ``rotations`` (a user's circuit scales its inputs with its own weights)."""
        weights = sum(math.prod(s) for _, s in self.weights)
        outputs = self.n_outputs if self.output_scaling else 0
        return {"rotations": weights, "input_scaling": 0, "output_weights": outputs, "total": weights + outputs}

    def n_parameters(self) -> int:
        return self.parameter_counts()["total"]

    @functools.cached_property
    def trainable_gate_angles(self) -> int:
        """Gate parameters computed from the inputs or weights (each needs two shifted circuits per sample
        for a parameter-shift gradient); constants do not count."""
        return sum(isinstance(p, torch.Tensor) for op in zero_tape(self).operations for p in op.data)

    def replace(self, **changes) -> CustomCircuit:
        import dataclasses

        return dataclasses.replace(self, **changes)


def custom_circuit(circuit: str, n_qubits: int, n_inputs: int, weight_shapes: dict | None = None,
                   init: dict | str | None = None, n_layers: int | None = None, **options) -> CustomCircuit:
    """Resolve and check a user's circuit: its function, shapes (given, or the registered defaults), inits.

    ``init`` is one init for every weight, or a dict by weight name (the others get the registered init,
    else :data:`DEFAULT_INIT`). The function is run once on zeros to check its wires and measurements.
    """
    entry = find_circuit(circuit)
    for key, value in (("n_qubits", n_qubits), ("n_inputs", n_inputs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise QRLError(f"{key} must be a positive integer; got {value!r}")
    shapes = weight_shapes if weight_shapes is not None else entry.shapes(n_qubits, n_layers or 1)
    if shapes is None:
        raise QRLError(f"circuit {circuit!r} needs weight_shapes: a dict from each weight argument to its shape, "
                       f"e.g. weight_shapes={{'weights': (4, {n_qubits}, 3)}}")
    if not isinstance(shapes, dict):
        raise QRLError(f"weight_shapes must be a dict from weight name to shape; got {shapes!r}")
    pairs = []
    for name, shape in shapes.items():
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not str(name).isidentifier() or name == "inputs" or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise QRLError(f"weight_shapes: expected identifier -> tuple of positive integers (not 'inputs'); "
                           f"got {name!r}: {shape!r}")
        pairs.append((str(name), shape))
    check_signature(circuit, entry.function, [n for n, _ in pairs])
    per_weight = init if isinstance(init, dict) else {n: init for n, _ in pairs} if init is not None else {}
    unknown = sorted(set(per_weight) - {n for n, _ in pairs})
    if unknown:
        raise QRLError(f"init names weights {', '.join(unknown)} that weight_shapes does not have")
    inits = tuple((n, str(per_weight.get(n) or entry.init.get(n) or DEFAULT_INIT)) for n, _ in pairs)
    for _, text in inits:
        parse_init(text)
    spec = CustomCircuit(circuit, n_qubits, n_inputs, tuple(pairs), inits, n_layers, **options)
    spec.n_outputs  # noqa: B018 -- run the function once now: a broken circuit fails before training
    return spec


def one_line(item) -> str:
    """A measurement or observable as PennyLane prints it, on one line (for messages and tables)."""
    return " ".join(str(item).split())


def zero_tape(spec):
    """The tape of ``spec``'s qfunc run once on zeros (no device): its gates and measurements."""
    import pennylane as qml

    zeros = [torch.zeros(s, dtype=torch.float64) for s in spec.weight_shapes.values()]
    try:
        return qml.tape.make_qscript(spec.qfunc())(torch.zeros((2, *spec.input_shape), dtype=torch.float64), *zeros)
    except QRLError:
        raise
    except Exception as exc:
        name = getattr(spec, "circuit", "the circuit")
        raise QRLError(f"circuit {name!r} failed on inputs of shape (2, {', '.join(map(str, spec.input_shape))}) "
                       f"and weight_shapes {spec.weight_shapes}: {type(exc).__name__}: {exc}") from None


def measures_probabilities(spec) -> bool:
    """Whether the circuit returns ``qml.probs`` (Lightning's adjoint method cannot differentiate it)."""
    from pennylane.measurements import ProbabilityMP

    return any(isinstance(mp, ProbabilityMP) for mp in zero_tape(spec).measurements)


def measurement_width(spec) -> int:
    """Run ``spec``'s qfunc once on zeros (no device) and count its measured values; check its wires."""
    from pennylane.measurements import ExpectationMP, ProbabilityMP

    tape = zero_tape(spec)
    name = getattr(spec, "circuit", "")
    outside = [w for w in tape.wires.tolist() if not (isinstance(w, int) and 0 <= w < spec.n_qubits)]
    if outside:
        raise QRLError(f"circuit {name!r} uses wires {outside}, outside 0..{spec.n_qubits - 1}; expected "
                       f"integer wires below n_qubits; try a larger n_qubits")
    width = 0
    for mp in tape.measurements:
        if isinstance(mp, ProbabilityMP) and mp.obs is None:
            width += 2 ** len(mp.wires or range(spec.n_qubits))
        elif isinstance(mp, ExpectationMP):
            width += 1
        else:
            raise QRLError(f"circuit {name!r} returns {one_line(mp)}; expected a list of qml.expval(...) and "
                           f"qml.probs(wires=...)")
    if width == 0:
        raise QRLError(f"circuit {name!r} measures nothing; expected it to return a list of measurements")
    return width
