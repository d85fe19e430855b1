"""Every gate angle of a traced circuit, recomputed from new inputs and weights in a few batched torch calls.

The recorded expression of each angle is split into a *template* (the elementwise calls, e.g. ``s * x + w``)
and its *holes* (numbers, and single elements picked out of the inputs, the weights or any other recorded
tensor). Angles with the same template are computed together: each hole becomes one gather over all of them.
"""

from __future__ import annotations

import math

import torch
from torch.utils import _pytree as pytree

from qrl.errors import QRLError
from qrl.simulator.record import Node, Ref, replay

# Calls applied elementwise: a template applies them to whole vectors of angles at once.
ELEMENTWISE = frozenset({
    "mul", "add", "sub", "div", "true_divide", "neg", "negative", "multiply", "subtract", "divide", "rsub",
    "sin", "cos", "tan", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "atan2", "arctan2", "sinh",
    "cosh", "tanh", "asinh", "acosh", "atanh", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "pow", "square", "abs", "absolute", "sigmoid", "reciprocal", "clamp", "clip", "remainder", "fmod", "erf",
    "deg2rad", "rad2deg", "sinc", "float", "double", "to", "type_as", "clone", "positive",
    "__mul__", "__rmul__", "__add__", "__radd__", "__sub__", "__rsub__", "__truediv__", "__rtruediv__",
    "__neg__", "__pos__", "__pow__", "__rpow__", "__abs__", "__mod__",
})
# Calls that pick elements without computing: followed back to the tensor they pick from.
VIEWS = frozenset({"__getitem__", "select", "reshape", "view", "flatten", "ravel", "squeeze", "unsqueeze", "unbind",
                   "permute", "transpose", "t", "narrow", "split", "chunk", "movedim", "contiguous", "view_as",
                   "reshape_as", "index_select", "take", "diagonal"})


class TensorCache:
    """Constants of a program as tensors, converted once per dtype and device."""

    def __init__(self) -> None:
        self._cache: dict = {}

    def __call__(self, key, value, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        k = (key, dtype, device)
        if k not in self._cache:
            self._cache[k] = torch.as_tensor(value, dtype=dtype, device=device)
        return self._cache[k]


class AngleProgram:
    """The angles of a circuit's gates as a program: ``(inputs, weights) -> (per_sample, shared)``.

    ``per_sample`` (``(B, P)``) holds the angles that depend on the inputs, ``shared`` (``(Q,)``) those
    that depend on the weights only; :attr:`kinds` and :attr:`index` say where each traced parameter went.

    :param nodes: the recording (:class:`qrl.simulator.record.Recorder`).
    :param params: the distinct gate parameters, each a value of shape ``(batch,)`` (batched) or ``()``.
    :param batch: the batch size of the recording.
    """

    def __init__(self, nodes: list[Node], params: list[Ref], batch: int):
        self.nodes, self.batch = nodes, batch
        groups: dict = {}
        self._direct: list = []
        for k, ref in enumerate(params):
            shape = self._shape(ref)
            batched = nodes[ref.node].batched
            if shape != ((batch,) if batched else ()):
                raise QRLError(f"a gate parameter has shape {shape}; expected one number per circuit "
                               f"({'(batch,)' if batched else '()'}); index the inputs as inputs[..., i]")
            holes: list = []
            signature = self._template(ref, holes)
            leaf = signature[0] == "sel" and nodes[holes[0][1].node].func is None
            self._direct.append((nodes[holes[0][1].node].name, holes[0][2]) if leaf else None)
            groups.setdefault((batched, signature), []).append((k, holes))
        self.kinds: list[str] = [""] * len(params)
        self.index: list[int] = [0] * len(params)
        self._groups, counts = [], {True: 0, False: 0}
        for (batched, signature), members in groups.items():
            for j, (k, _) in enumerate(members):
                self.kinds[k], self.index[k] = ("angle" if batched else "weight"), counts[batched] + j
            counts[batched] += len(members)
            self._groups.append((batched, signature, self._hole_columns([h for _, h in members])))
        self.n_per_sample, self.n_shared = counts[True], counts[False]
        self._bases = sorted({h[1] for *_, cols in self._groups for h in cols if h[0] == "sel"},
                             key=lambda r: (r.node, r.item or 0))
        self._leaf_bases = all(nodes[r.node].func is None for r in self._bases)
        self._whole = {r: list(range(math.prod(self._shape(r)[1:] if nodes[r.node].batched else self._shape(r))))
                       for r in self._bases}
        self._const = TensorCache()

    # -- compile -----------------------------------------------------------------------------------
    def _shape(self, ref: Ref) -> tuple:
        shapes = self.nodes[ref.node].shapes
        return tuple(shapes if ref.item is None else shapes[ref.item])

    def _lane(self, ref: Ref) -> bool:
        return self._shape(ref) == ((self.batch,) if self.nodes[ref.node].batched else ())

    def _template(self, ref: Ref, holes: list):
        """The signature of ``ref``'s expression; its holes are appended to ``holes`` in order."""
        node = self.nodes[ref.node]
        if (ref.item is None and node.func is not None and node.label in ELEMENTWISE
                and not any(isinstance(x, Ref) for x in pytree.tree_leaves(node.kwargs))):
            parts, start = [], len(holes)
            for a in node.args:
                if isinstance(a, Ref) and self._lane(a):
                    parts.append(self._template(a, holes))
                elif (isinstance(a, (int, float)) and not isinstance(a, bool)) or \
                        (isinstance(a, torch.Tensor) and a.dim() == 0 and not a.is_complex()):
                    holes.append(("const", float(a)))
                    parts.append("c")
                else:
                    break
            else:
                kwargs = tuple(sorted(node.kwargs.items()))
                try:
                    hash(kwargs)
                    return (node.func, tuple(parts), kwargs)
                except TypeError:
                    pass
            del holes[start:]
        base, index = self._selection(ref)
        holes.append(("sel", base, index))
        return ("sel", base)

    def _selection(self, ref: Ref) -> tuple[Ref, int]:
        """``(base, i)``: ``ref`` is element ``i`` (per sample) of the recorded tensor ``base``.

        Followed back through :data:`VIEWS` by replaying them on tensors of element numbers; a value that
        cannot be followed is its own base (computed as recorded at every call: correct, just not merged).
        """
        chain, r = [], ref
        while True:
            node = self.nodes[r.node]
            refs = [x for x in pytree.tree_leaves((node.args, node.kwargs)) if isinstance(x, Ref)]
            if node.func is None or node.label not in VIEWS or len(refs) != 1 or node.args[:1] != (refs[0],):
                break
            chain.append(r)
            r = refs[0]
        if not chain:
            return ref, 0
        shape, batched = self._shape(r), self.nodes[r.node].batched
        try:
            if batched:
                per = torch.arange(math.prod(shape[1:])).reshape(shape[1:]).expand(shape)
                rows = torch.arange(shape[0]).reshape(-1, *[1] * (len(shape) - 1)).expand(shape)
                per, rows = self._follow(chain, per), self._follow(chain, rows)
                if (shape[0] == self.batch and torch.equal(rows, torch.arange(self.batch))
                        and bool((per == per[0]).all())):
                    return r, int(per[0])
            else:
                return r, int(self._follow(chain, torch.arange(math.prod(shape)).reshape(shape)))
        except (RuntimeError, IndexError, TypeError, ValueError):
            pass
        return ref, 0

    def _follow(self, chain: list[Ref], value: torch.Tensor) -> torch.Tensor:
        for r in reversed(chain):
            node = self.nodes[r.node]
            args, kwargs = pytree.tree_map(lambda x, v=value: v if isinstance(x, Ref) else x,
                                           (node.args, node.kwargs), is_leaf=lambda x: isinstance(x, Ref))
            value = node.func(*args, **kwargs)
            if r.item is not None:
                value = value[r.item]
        return value

    @staticmethod
    def _hole_columns(members: list[list]) -> list:
        """Per hole position, the values of all members: ``("const", [v...])`` or ``("sel", base, [i...])``."""
        cols = []
        for pos in range(len(members[0])):
            first = members[0][pos]
            if first[0] == "const":
                cols.append(("const", [m[pos][1] for m in members]))
            else:
                cols.append(("sel", first[1], [m[pos][2] for m in members]))
        return cols

    def direct(self, k: int) -> tuple[str, int] | None:
        """``(leaf name, flat index)`` when parameter ``k`` is one element of an input or weight, else None."""
        return self._direct[k]

    # -- run ---------------------------------------------------------------------------------------
    def __call__(self, leaves: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(per_sample (B, P), shared (Q,))`` for these leaves (``"inputs"`` of shape ``(B, ...)``)."""
        inputs = leaves["inputs"]
        batch = inputs.shape[0]
        dtype = next((v.dtype for k, v in leaves.items() if k != "inputs"), inputs.dtype)
        if self._leaf_bases:
            values = {r: leaves[self.nodes[r.node].name] for r in self._bases}
        else:
            values = dict(zip(self._bases, replay(self.nodes, self._bases, leaves), strict=True))
        outs: dict[bool, list] = {True: [], False: []}
        for batched, signature, cols in self._groups:
            holes = []
            for col in cols:
                if col[0] == "const":
                    holes.append(self._const(("c", id(col)), col[1], dtype, inputs.device))
                    continue
                v = values[col[1]]
                flat = v.reshape(batch, -1) if self.nodes[col[1].node].batched else v.reshape(-1)
                if col[2] != self._whole.get(col[1]):  # the whole tensor in order needs no gather
                    flat = flat[..., self._const(("i", id(col)), col[2], torch.int64, inputs.device)]
                holes.append(flat)
            out = _evaluate(signature, iter(holes))
            if out.dtype != dtype:
                out = out.to(dtype)
            if batched and out.dim() == 1:
                out = out.expand(batch, -1)
            outs[batched].append(out)
        per_sample = _join(outs[True]) if outs[True] else inputs.new_zeros((batch, 0), dtype=dtype)
        return per_sample, _join(outs[False]) if outs[False] else inputs.new_zeros((0,), dtype=dtype)


def _join(parts: list) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _evaluate(signature, holes):
    if signature == "c" or signature[0] == "sel":
        return next(holes)
    func, parts, kwargs = signature
    return func(*[_evaluate(p, holes) for p in parts], **dict(kwargs))
