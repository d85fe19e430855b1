"""Recording what a quantum function computes from its inputs and weights: the torch calls behind every angle.

A circuit in the TorchLayer convention is run once on real tensors while a torch function mode writes down
every torch call that touches them; the gate parameters of the tape are then expressions (a graph of
recorded calls) over the inputs and the weights, which :mod:`qrl.simulator.angles` compiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

# Calls that turn a tensor into a Python value: an angle computed from one is no longer followed.
_ESCAPES = frozenset({"item", "tolist", "numpy", "__array__", "__float__", "__int__", "__bool__", "__index__",
                      "__complex__", "__format__", "__reduce_ex__"})
# Calls that never make new values (metadata, views for printing): not recorded.
_SKIP = frozenset({"__get__", "dim", "size", "numel", "ndimension", "is_complex", "is_floating_point", "__len__",
                   "__repr__", "__str__", "__hash__", "element_size", "stride", "data_ptr", "is_contiguous",
                   "get_device", "__iter__", "__contains__", "requires_grad_", "retain_grad"})
_IN_PLACE = frozenset({"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__", "__imatmul__",
                       "__ifloordiv__", "__imod__"})
_DETACH = frozenset({"detach", "detach_", "__deepcopy__"})


@dataclass(frozen=True)
class Ref:
    """A recorded value: output ``item`` of node ``node`` (``item`` is ``None`` for a single tensor)."""

    node: int
    item: int | None = None


@dataclass
class Node:
    """One recorded torch call, or a leaf (``func is None``, ``name`` the argument it stands for).

    ``args`` and ``kwargs`` hold :class:`Ref` where the call read a recorded value. ``batched``: the value
    depends on the inputs (whose first axis is the batch).
    """

    func: Any
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    name: str = ""
    batched: bool = False
    shapes: Any = None  # output shape, or a tuple of shapes for calls that return several tensors

    @property
    def label(self) -> str:
        return self.name or getattr(self.func, "__name__", str(self.func))


class Recorder(TorchFunctionMode):
    """A torch function mode that records every call reading a tracked tensor (see :class:`Node`).

    Tensors are tracked by identity and kept alive for the recording, so identities are never reused.
    A call that reads a tracked value into Python (``float(x)``, ``x.item()``) or writes into it in place is
    noted in :attr:`problems`: what follows from it can no longer be recomputed from new inputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.problems: list[str] = []
        self._refs: dict[int, Ref] = {}
        self._alive: list = []

    def leaf(self, tensor: torch.Tensor, name: str, batched: bool) -> None:
        self.nodes.append(Node(None, name=name, batched=batched, shapes=tuple(tensor.shape)))
        self._track(tensor, Ref(len(self.nodes) - 1))

    def ref(self, value) -> Ref | None:
        """The :class:`Ref` of a tracked tensor, else ``None``."""
        return self._refs.get(id(value)) if isinstance(value, torch.Tensor) else None

    def _track(self, tensor: torch.Tensor, ref: Ref) -> None:
        self._alive.append(tensor)
        self._refs[id(tensor)] = ref

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _SKIP:
            return out
        refs = [r for r in map(self.ref, pytree.tree_leaves((args, kwargs))) if r is not None]
        if not refs:
            return out
        if name in _ESCAPES:
            self.problems.append(f"{name}() reads a value of the inputs or weights into Python")
            return out
        if name in _DETACH:
            self.problems.append(f"{name}() cuts the gradient of a value computed from the inputs or weights")
            return out
        if (name.endswith("_") and not name.endswith("__")) or name in _IN_PLACE:
            self.problems.append(f"{name} writes into a value computed from the inputs or weights in place")
            return out
        rec_args, rec_kwargs = pytree.tree_map(lambda x: self.ref(x) or x, (args, kwargs))
        batched = any(self.nodes[r.node].batched for r in refs)
        index = len(self.nodes)
        if isinstance(out, torch.Tensor):
            self.nodes.append(Node(func, tuple(rec_args), dict(rec_kwargs), batched=batched, shapes=tuple(out.shape)))
            self._track(out, Ref(index))
        elif isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
            self.nodes.append(Node(func, tuple(rec_args), dict(rec_kwargs), batched=batched,
                                   shapes=tuple(tuple(o.shape) for o in out)))
            for k, o in enumerate(out):
                self._track(o, Ref(index, k))
        return out


def replay(nodes: list[Node], wanted: list[Ref], leaves: dict[str, torch.Tensor]) -> list:
    """The values of ``wanted`` recomputed from new ``leaves`` (by name), each node once.

    Constant tensors captured by a call move to the device of the leaves, and floating ones to their dtype.
    """
    memo: dict = {}
    some = next(iter(leaves.values()))

    def value(ref: Ref):
        if ref.node not in memo:
            memo[ref.node] = compute(nodes[ref.node])
        out = memo[ref.node]
        return out if ref.item is None else out[ref.item]

    def arg(x):
        if isinstance(x, Ref):
            return value(x)
        moved = isinstance(x, torch.Tensor) and x.device != some.device
        if isinstance(x, torch.Tensor) and (moved or (x.is_floating_point() and x.dtype != some.dtype)):
            return x.to(device=some.device, dtype=some.dtype if x.is_floating_point() else x.dtype)
        return x

    def compute(node: Node):
        if node.func is None:
            return leaves[node.name]
        args, kwargs = pytree.tree_map(arg, (node.args, node.kwargs), is_leaf=lambda x: isinstance(x, Ref))
        return node.func(*args, **kwargs)

    return [value(r) for r in wanted]
