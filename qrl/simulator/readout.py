"""Measurements on a batch of state vectors: expectation values of Pauli sums, and probabilities."""

from __future__ import annotations

import functools

import numpy as np
import torch
from pennylane.measurements import ExpectationMP, ProbabilityMP
from torch.autograd.function import once_differentiable

from qrl.circuits.custom import one_line
from qrl.errors import QRLError
from qrl.simulator.angles import TensorCache
from qrl.simulator.gates import basis_bit, local_index, wires_view_shape, z_expectation


def pauli_word(word, coeff, n: int) -> tuple[int, np.ndarray]:
    """A Pauli word (``{wire: "X" | "Y" | "Z"}``) times ``coeff`` as ``P psi = c * psi[j ^ mask]`` on ``n``
    qubits: ``(mask, c)``, ``c`` over the basis states."""
    mask, phase = 0, np.full(2**n, complex(coeff))
    for wire, letter in word.items():
        b = basis_bit(n, wire)
        if letter in "XY":
            mask |= 1 << (n - 1 - int(wire))
        if letter == "Z":
            phase = phase * (1 - 2 * b)
        elif letter == "Y":  # Y|b> = i (-1)^b |1-b>: (P psi)_j = i (-1)^(1 - b_j) psi_{j^mask}
            phase = phase * 1j * (2 * b - 1)
    return mask, phase


def z_diagonal(obs, n_qubits: int) -> np.ndarray:
    """Eigenvalues of a sum of Z-strings over the computational basis, shape ``(2**n,)`` (an observable
    with X or Y is refused: this is for simulators that read out diagonals only)."""
    if obs.pauli_rep is None:
        raise QRLError(f"observable {obs} has no Pauli form; the torch backend reads out Z-type observables "
                       f"only; try device='lightning.qubit'")
    diag = np.zeros(2**n_qubits)
    for word, coeff in obs.pauli_rep.items():
        mask, phase = pauli_word(word, coeff, n_qubits)
        if mask:
            letter = next(letter for letter in word.values() if letter != "Z")
            raise QRLError(f"observable {obs} contains Pauli {letter}; the torch backend reads out "
                           f"Z-type observables only; try device='lightning.qubit'")
        diag += phase.real
    return diag


class Readout:
    """The values of a tape's measurements, concatenated: ``(B, width)`` from states ``(B, 2**n)``.

    ``qml.expval`` of any sum of Pauli words (products on any wires) gives one column, ``qml.probs(wires)``
    ``2**len(wires)`` columns (wire order as given, the first most significant, as in PennyLane). Terms made
    of Z and I only, and probabilities, are ``|psi|^2 @ D`` for one fixed matrix ``D``; a word with X or Y
    flips the bits of its X/Y wires: ``P psi = c * psi[j ^ mask]``, so ``<P> = Re sum_j conj(psi_j) c_j
    psi_{j ^ mask}`` (one gather per distinct mask, and a ``(2**n, width)`` matrix of ``c``). Large readouts are read
    lazily instead (:data:`LAZY_MIN_QUBITS`, :data:`MATRIX_MAX_ENTRIES`; with an X or a Y word from
    :data:`FLIPS_LAZY_MIN_QUBITS`): Z words and probabilities from views of ``|psi|^2``, words with an X or a Y by
    :class:`PauliFlips`.
    """

    def __init__(self, measurements: list, n: int):
        self.n = n
        width, lazy = _width(measurements, n), _lazy_columns(measurements, n)
        masks = len({tuple(w for w, letter in word if letter in "XY")
                     for column in lazy or () if column[0] == "pauli" for _, word in column[2]})
        self._lazy = lazy if (n >= LAZY_MIN_QUBITS or (masks and n >= FLIPS_LAZY_MIN_QUBITS)
                              or 2**n * width * (1 + masks) > MATRIX_MAX_ENTRIES) else None
        if self._lazy is not None:
            self.width, self._const = width, TensorCache()
            return
        dim = 2**n
        columns: list[np.ndarray] = []
        flips: dict[int, np.ndarray] = {}  # mask -> (2**n, width) complex coefficients
        pending = []
        for mp in measurements:
            if isinstance(mp, ProbabilityMP) and mp.obs is None:
                wires = mp.wires if len(mp.wires) else range(n)
                onehot = np.zeros((dim, 2 ** len(wires)))
                onehot[np.arange(dim), local_index(wires, n)] = 1.0
                columns.extend(onehot.T)
            elif isinstance(mp, ExpectationMP) and mp.obs is not None and mp.obs.pauli_rep is not None:
                diag = np.zeros(dim)
                for word, coeff in mp.obs.pauli_rep.items():
                    mask, phase = pauli_word(word, coeff, n)
                    if mask == 0:
                        diag = diag + phase.real
                    else:
                        pending.append((mask, len(columns), phase))
                columns.append(diag)
            else:
                raise QRLError(f"measurement {one_line(mp)} is not supported by the torch backend; expected "
                               f"qml.expval of Pauli words (and sums and products of them) or qml.probs; try "
                               f"device='lightning.qubit'")
        self.width = len(columns)
        self._diag = np.stack(columns, axis=1) if columns else np.zeros((dim, 0))
        for mask, col, phase in pending:
            flips.setdefault(mask, np.zeros((dim, self.width), dtype=complex))[:, col] += phase
        self._flips = [(np.arange(dim) ^ mask, c) for mask, c in sorted(flips.items())]
        self._const = TensorCache()

    def diagonals(self) -> np.ndarray | None:
        """``D`` with values ``= |psi|^2 @ D`` ``(2**n, width)`` where every column is Z-type or a probability (no
        X or Y word), else ``None``."""
        return None if self._lazy is not None or self._flips else self._diag

    def z_terms(self) -> np.ndarray | None:
        """The columns as Z-word terms ``(T, 3)`` float64 rows ``(column, mask, coefficient)`` (bit ``n - 1 - w`` of the
        mask for wire ``w``), where the readout is lazy (from :data:`LAZY_MIN_QUBITS`) and every column is a Z-type
        expectation value (no ``qml.probs``), else ``None``: the native kernel reads them out without the matrix."""
        if self._lazy is None or any(column[0] != "z" for column in self._lazy):
            return None
        rows = [(k, sum(1 << (self.n - 1 - w) for w in wires), coeff)
                for k, (_, words) in enumerate(self._lazy) for coeff, wires in words]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3) if rows else None  # (none: the state path)

    def __call__(self, state: torch.Tensor, rdtype: torch.dtype) -> torch.Tensor:
        dev = state.device
        if self._lazy is not None:
            return self._lazy_values(state)
        out = z_expectation(state, self._const("diag", self._diag, rdtype, dev))
        for k, (perm, coeffs) in enumerate(self._flips):
            flipped = state[:, self._const(("perm", k), perm, torch.int64, dev)]
            out = out + ((state.conj() * flipped) @ self._const(("flip", k), coeffs, state.dtype, dev)).real
        return out

    def _lazy_values(self, state: torch.Tensor) -> torch.Tensor:
        """The columns from ``|psi|^2`` without a ``(2**n, width)`` matrix: one-wire Z words from :class:`WireZ` (every
        wire's in a few passes), longer words by sums over views, ``qml.probs`` by one scatter-add each."""
        batch, n, out = state.shape[0], self.n, []
        p = state.real**2 + state.imag**2 if self._needs_probabilities else None
        wire_z = WireZ.apply(state) if self._reads_wires else None
        words = self._flip_columns
        flipped = PauliFlips.apply(state, tuple(words)) if words else None
        for column in self._lazy:
            if column[0] == "probs":
                wires = column[1]
                idx = self._const(("probs", wires), local_index(wires, n), torch.int64, p.device)
                out.append(torch.zeros(batch, 2 ** len(wires), dtype=p.dtype, device=p.device).index_add(1, idx, p))
                continue
            value = torch.zeros(batch, dtype=state.real.dtype, device=state.device)
            for coeff, wires in column[1]:
                if len(wires) == 1:
                    value = value + coeff * wire_z[:, wires[0]]
                    continue
                value = value + coeff * self._word_z(p, wires)
            for coeff, word in column[2] if column[0] == "pauli" else ():
                value = value + coeff * flipped[:, words[word]]
            out.append(value[:, None])
        return torch.cat(out, 1)

    def _word_z(self, p: torch.Tensor, wires: list[int]) -> torch.Tensor:
        """``<Z_w1 Z_w2 ...>`` from the probabilities ``p`` ``(B, 2**n)``: the marginal over the word's wires (one sum
        over a view: a read of ``p``) times the signs of its ``2**k`` entries. Until 2026-12-05 a signed copy of ``p``
        per wire of the word, forward and backward."""
        shape, k = wires_view_shape(wires, self.n, p.shape[0]), len(wires)
        marginal = p.view(shape).sum(list(range(1, len(shape), 2)))  # the wires' axes are 2, 4, ..., 2k
        return marginal.reshape(p.shape[0], -1) @ self._const(("word", k), word_signs(k), p.dtype, p.device)

    @functools.cached_property
    def _reads_wires(self) -> bool:  # (cached: computed once, also for a readout pickled before it was)
        return any(len(wires) == 1 for column in self._lazy if column[0] != "probs" for _, wires in column[1])

    @functools.cached_property
    def _flip_columns(self) -> dict:
        """Each distinct word with an X or a Y (in the order first read) -> its column of :class:`PauliFlips`'
        values."""
        words = dict.fromkeys(word for column in self._lazy if column[0] == "pauli" for _, word in column[2])
        return {word: k for k, word in enumerate(words)}

    @functools.cached_property
    def _needs_probabilities(self) -> bool:
        return any(column[0] == "probs" or any(len(wires) != 1 for _, wires in column[1]) for column in self._lazy)


@functools.cache
def word_signs(k: int) -> np.ndarray:
    """``(2**k,)``: the eigenvalue of a Z word of ``k`` wires on each of their basis states (``-1`` to the parity)."""
    parity = ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1).sum(1) % 2
    return (1 - 2 * parity).astype(float)


class WireZ(torch.autograd.Function):
    """``<Z_w>`` on every wire ``w`` of a batch of states, ``(B, 2**n)`` -> ``(B, n)``, in about two passes over the
    state and two of its probabilities forward, and as many backward, whatever ``n``.

    Forward: ``|psi|^2``, then wire by wire from the first (the most significant bit) its two halves' sums (the
    difference is ``<Z_w>``) and their sum, half as long, for the next wire. Backward: the cotangent of ``|psi|^2`` is
    ``sum_w g_w z_w(j)``, built by doubling (``2**(w + 1)`` entries after wire ``w``), times ``2 psi``. Until
    2026-12-05 each wire's value took a signed copy of the probabilities and its backward as many: from 18 qubits (where
    the readout is not a matrix product, :data:`LAZY_MIN_QUBITS`) ``hsiao``'s forward + backward at 64 samples spent
    2.5 s of 3.7 in the readout, 0.2 s now (README, "The readout from 18 qubits"). Both read the states in chunks of
    samples (:func:`sample_chunks`)."""

    @staticmethod
    def forward(ctx, state: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(state)
        n = state.shape[1].bit_length() - 1
        values = state.real.new_empty(state.shape[0], n)
        for rows in sample_chunks(state):
            level = state[rows].real.square()
            level.addcmul_(state[rows].imag, state[rows].imag)
            for w in range(n):
                halves = level.view(level.shape[0], 2, -1)
                sums = halves.sum(2)
                values[rows, w] = sums[:, 0] - sums[:, 1]
                if w < n - 1:
                    level = halves[:, 0] + halves[:, 1]
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (state,) = ctx.saved_tensors
        n = grad.shape[1]
        signs = torch.tensor([2.0, -2.0], dtype=grad.dtype, device=grad.device)  # d|psi|^2/dpsi = 2 psi, times z_w
        out = torch.empty_like(state)
        for rows in sample_chunks(state):
            g = grad[rows]
            cotangent = g.new_zeros(g.shape[0], 1)
            for w in range(n):
                cotangent = (cotangent[:, :, None] + g[:, w, None, None] * signs).reshape(g.shape[0], -1)
            torch.mul(torch.view_as_real(state[rows]), cotangent[..., None], out=torch.view_as_real(out[rows]))
        return out


WIRE_Z_CHUNK_ELEMENTS = 2**22
""":class:`WireZ` reads its states in chunks of samples of at most this many amplitudes (one sample where a sample
has more): its temporaries (``|psi|^2``, the halves' sums, the cotangent) are then at most 16 MiB in float32, or one
sample's, and come from the heap (:mod:`qrl.malloc`) instead of state-sized blocks mapped afresh on every call (at 24
qubits and 8 samples, 512 MiB, 256 MiB, ... forward and backward)."""


def sample_chunks(state: torch.Tensor) -> list[slice]:
    """The slices of samples :class:`WireZ` reads at once (:data:`WIRE_Z_CHUNK_ELEMENTS`; on a GPU all at once: its
    caching allocator keeps the temporaries, and each chunk would be kernel launches)."""
    if state.device.type != "cpu":
        return [slice(0, state.shape[0])]
    rows = max(1, WIRE_Z_CHUNK_ELEMENTS // state.shape[1])
    return [slice(s, s + rows) for s in range(0, state.shape[0], rows)]


LAZY_MIN_QUBITS = 18
"""From this many qubits, Z-type expectation values and probabilities are sums over views of ``|psi|^2`` instead of
one product with a ``(2**n, width)`` matrix (26 outputs at 26 qubits: a 14 GiB matrix), and words with an X or a Y are
read by :class:`PauliFlips` (since 2026-12-06; before, they kept the matrix form, a matrix per flip mask)."""
FLIPS_LAZY_MIN_QUBITS = 11
"""From this many qubits, a readout with a word with an X or a Y is read lazily (:class:`PauliFlips`, and its Z words
and probabilities from views): the matrix form's gather and ``(B, 2**n) x (2**n, width)`` product per flip mask cost
more than the flipped views. Forward + backward on the torch program, X on every wire (``phase_gates``) and Y
(``toffoli_rot``), lazily over the matrix form (``qrl bench scaling`` on the commit before and after, alternated): at
11 qubits 1.23x-1.35x faster at 64 samples, 0.98x-0.99x at 1; at 10, 1.11x-1.14x and 0.87x-0.89x (so not from 10); at
12, 1.27x-1.45x and 1.11x-1.19x; at 14, 1.25x-1.64x (README, "X and Y read out lazily from 11 qubits"). Until
2026-12-06 only from :data:`LAZY_MIN_QUBITS` or :data:`MATRIX_MAX_ENTRIES`."""
MATRIX_MAX_ENTRIES = 2**22
"""Below :data:`LAZY_MIN_QUBITS` too, readouts whose matrices would have more entries than this (32 MiB in float64:
``(2**n, width)`` for the diagonal and once more per flip mask) are read lazily: ``qml.probs`` over many wires (over
all 16 wires of 16 qubits, 65536 columns, the matrix took 32 GiB and failed); X on every wire from 15 qubits."""


def _width(measurements: list, n: int) -> int:
    """The columns of a tape's measurements: ``2**k`` for ``qml.probs`` over ``k`` wires (all ``n`` without any), one
    for anything else."""
    return sum(2 ** (len(mp.wires) or n) if isinstance(mp, ProbabilityMP) else 1 for mp in measurements)


def _lazy_columns(measurements: list, n: int) -> list[tuple] | None:
    """Per measurement ``("z", [(coeff, wires), ...])`` (one column of Z words), ``("pauli", z_words, [(coeff,
    word), ...])`` (one column with words that have an X or a Y: ``word`` is ``((wire, letter), ...)`` by wire, read by
    :class:`PauliFlips`) or ``("probs", wires)`` (``2**len(wires)`` columns); ``None`` when a measurement is not
    supported here (the matrix form then says why)."""
    columns: list[tuple] = []
    for mp in measurements:
        if isinstance(mp, ProbabilityMP) and mp.obs is None:
            columns.append(("probs", tuple(int(w) for w in (mp.wires if len(mp.wires) else range(n)))))
        elif isinstance(mp, ExpectationMP) and mp.obs is not None and mp.obs.pauli_rep is not None:
            z_words, flip_words = [], []
            for word, c in mp.obs.pauli_rep.items():
                if all(letter == "Z" for letter in word.values()):
                    z_words.append((float(np.real(c)), sorted(int(w) for w in word)))
                else:
                    letters = tuple(sorted((int(w), str(letter)) for w, letter in word.items()))
                    flip_words.append((float(np.real(c)), letters))
            columns.append(("pauli", z_words, flip_words) if flip_words else ("z", z_words))
        else:
            return None
    return columns


class PauliFlips(torch.autograd.Function):
    """``<psi| P_k |psi>`` for Pauli words ``P_k`` with an X or a Y, ``(B, 2**n)`` -> ``(B, K)``, without the ``(2**n,
    width)`` matrices of the matrix form (one per word's flip mask: at 20 qubits, X on every wire, 6.25 GiB; from 18
    qubits a call of such a readout took 5-22 GiB until 2026-12-06, README "X and Y read out from 18 qubits").

    ``P psi`` at basis state ``j`` is ``c(j ^ m) psi[j ^ m]`` (``m`` the word's X and Y wires, ``c`` its Y and Z
    signs): a view with an axis per word wire, flipped along the X and Y axes, times a phase over those axes. A word
    of one X or Y reads the pairs of halves directly (``2 Re`` or ``2 Im`` of ``sum conj(a) b``). Backward:
    ``2 g P psi`` per word (the state's cotangent for a real ``g <P>``). Both read the states in chunks of samples."""

    @staticmethod
    def forward(ctx, state: torch.Tensor, words: tuple) -> torch.Tensor:
        ctx.save_for_backward(state)
        ctx.words = words
        n = state.shape[1].bit_length() - 1
        values = state.real.new_empty(state.shape[0], len(words))
        for rows in sample_chunks(state):
            for k, word in enumerate(words):
                view, pair = _word_view(state[rows], word, n)
                if pair is not None:
                    s = (view.select(2, 0).conj() * view.select(2, 1)).sum((1, 2))
                    values[rows, k] = 2 * (s.real if pair == "X" else s.imag)
                else:
                    applied = _flip_apply(view, word)
                    values[rows, k] = (view.conj() * applied).sum(tuple(range(1, view.dim()))).real
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (state,) = ctx.saved_tensors
        n = state.shape[1].bit_length() - 1
        out = torch.zeros_like(state)
        for rows in sample_chunks(state):
            for k, word in enumerate(ctx.words):
                view, pair = _word_view(state[rows], word, n)
                target, _ = _word_view(out[rows], word, n)
                g = 2 * grad[rows, k].to(state.dtype).view([-1] + [1] * (view.dim() - 1))
                if pair is not None:
                    phase = 1 if pair == "X" else 1j  # Y|0> = i|1>, Y|1> = -i|0>
                    target.select(2, 0).add_(g.squeeze(2) * view.select(2, 1) * phase.conjugate())
                    target.select(2, 1).add_(g.squeeze(2) * view.select(2, 0) * phase)
                else:
                    target.add_(g * _flip_apply(view, word))
        return out, None


def _word_view(state: torch.Tensor, word: tuple, n: int) -> tuple[torch.Tensor, str | None]:
    """``state`` ``(b, 2**n)`` viewed with an axis of 2 per wire of ``word`` (:func:`wires_view_shape`), and the letter
    where the word is one X or Y (read by pairs), else ``None``."""
    view = state.view(wires_view_shape([w for w, _ in word], n, state.shape[0]))
    return view, (word[0][1] if len(word) == 1 else None)


def _flip_apply(view: torch.Tensor, word: tuple) -> torch.Tensor:
    """``P psi`` on the view of :func:`_word_view`: flipped along the X and Y wires' axes, times ``c(j ^ m)``, each Y
    wire's ``i (-1)**(1 - b)`` and each Z wire's ``(-1)**b`` over the bits ``b`` of ``j``."""
    flips = [2 + 2 * j for j, (_, letter) in enumerate(word) if letter in "XY"]
    phase = torch.ones([1] * view.dim(), dtype=view.dtype, device=view.device)
    for j, (_, letter) in enumerate(word):
        if letter == "X":
            continue
        signs = (-1j, 1j) if letter == "Y" else (1, -1)
        shape = [1] * view.dim()
        shape[2 + 2 * j] = 2
        phase = phase * torch.tensor(signs, dtype=view.dtype, device=view.device).view(shape)
    return view.flip(flips) * phase
