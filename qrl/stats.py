"""Statistics of a convergence comparison: pure functions over per-run arrays, with bootstrap intervals across runs.

Owns the aggregates (IQM, probability of improvement, Mann-Whitney), steps to a threshold, learning-curve bands,
Meyer et al.'s S(eps, delta), and the data classes that hold them. Shapes, as in rliable: ``scores: (num_runs,)``,
``curves: (num_runs, num_evals)`` on ``timesteps: (num_evals,)``, ``steps: (num_runs,)`` with ``inf`` for a run that
never reached the threshold. Every resampling takes an explicit ``seed``. Wording belongs to :mod:`qrl.report`.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rliable import metrics
from scipy import stats as sps

from qrl.errors import QRLError

CONFIDENCE = 0.95
EPSILONS = (0.2, 0.1)  # Meyer et al. use {0.2, 0.15, 0.1}
DELTAS = (0.5, 0.3, 0.1)
SAMPLE_COMPLEXITY_REPS = 1000  # Meyer et al.'s cluster bootstrap
BAND_PERCENTILES = (5.0, 95.0)
_ROUNDING = 1e-12  # slack for comparisons of normalised scores and fractions against 1 - eps and delta
_EXACT_PERMUTATIONS = 20_000  # Mann-Whitney with ties: enumerate all splits up to this many


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an interval ``[low, high]``; ``inf`` stands for "never" in step counts."""

    point: float
    low: float
    high: float

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two closed intervals share a point. An undefined (nan) interval overlaps everything:
        nothing can be claimed from it."""
        if any(math.isnan(v) for v in (self.low, self.high, other.low, other.high)):
            return True
        return self.low <= other.high and other.low <= self.high


NAN_ESTIMATE = Estimate(math.nan, math.nan, math.nan)


def child_seed(seed: int, *labels: str) -> int:
    """A seed for one statistic, from the report's seed and labels (env, agent, what): the same labels give
    the same stream whatever else is computed, so a report is deterministic for a given seed."""
    words = [int(seed) & 0xFFFFFFFF, *(zlib.crc32(label.encode()) for label in labels)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _scores(x: Sequence[float] | np.ndarray, name: str = "scores", allow_inf: bool = False) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise QRLError(f"expected {name} of shape (num_runs,); got shape {arr.shape}")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad)[:3].tolist()
        raise QRLError(f"expected finite {name}; got {arr[bad][:3].tolist()} at runs {where}")
    return arr


def _check_reps(reps: int) -> int:
    if int(reps) < 1:
        raise QRLError(f"expected reps >= 1 bootstrap resamples; got {reps}")
    return int(reps)


def _interval(dist: np.ndarray, low_q: float, high_q: float, discrete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of a bootstrap distribution along axis 0; nan resamples are left out.

    Linear interpolation for continuous statistics; the outer order statistics (numpy's ``lower`` and
    ``higher``) for ``discrete`` ones (timesteps, fractions of runs), so bounds are values the statistic can
    take, and wherever ``inf`` occurs.
    """
    dist = np.asarray(dist, dtype=float)
    if not discrete and np.isfinite(dist).all():
        return np.percentile(dist, low_q, axis=0), np.percentile(dist, high_q, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-nan column gives nan, which is what we want
        return (np.nanpercentile(dist, low_q, axis=0, method="lower"),
                np.nanpercentile(dist, high_q, axis=0, method="higher"))


def _tails(confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise QRLError(f"expected a confidence level in (0, 1), e.g. 0.95; got {confidence}")
    return 50 * (1 - confidence), 50 * (1 + confidence)


# ---------------------------------------------------------------------------------------------------
# Aggregates of final performance


def iqm(x: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all values (25% trimmed from each end; with ``n``
    values, ``floor(n / 4)`` are cut from each end), via ``rliable.metrics.aggregate_iqm`` (Agarwal et al. 2021,
    "Deep RL at the Edge of the Statistical Precipice", NeurIPS).

    Args:
        x: scores of any shape, e.g. ``(num_runs,)``; pooled over all axes.

    Returns:
        The IQM, e.g. ``iqm([1, ..., 8]) == mean([3, 4, 5, 6]) == 4.5``.
    """
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        raise QRLError("expected at least one score for the IQM; got none")
    return float(metrics.aggregate_iqm(arr))


def stratified_bootstrap(scores: Sequence[float] | np.ndarray, func: Callable[[np.ndarray], np.ndarray],
                         reps: int = 2000, seed: int = 0,
                         confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified bootstrap percentile interval of ``func`` over runs, as ``rliable.library.get_interval_estimates``.

    Each resample draws ``num_runs`` runs with replacement independently within each task (column) and
    applies ``func``; the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of
    the resampled values (Agarwal et al. 2021). Reimplemented with a seeded ``numpy.random.Generator`` because
    rliable 1.2.0's ``library`` draws from numpy's global random state (it ignores ``random_state``) and cannot
    be imported with pandas 3 (its ``arch<8`` pin).

    Args:
        scores: ``(num_runs,)`` or ``(num_runs, num_tasks)``.
        func: maps an array of the shape of ``scores`` to a 1-D array of ``k`` aggregates.
        reps: number of resamples. seed: seeds the resampling. confidence: interval coverage.

    Returns:
        ``(point, low, high)``, each of shape ``(k,)``.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise QRLError(f"expected scores of shape (num_runs,) or (num_runs, num_tasks) with num_runs >= 1; "
                       f"got shape {arr.shape}")
    low_q, high_q = _tails(confidence)
    rng = np.random.default_rng(seed)
    table = arr.reshape(arr.shape[0], -1)
    columns = np.arange(table.shape[1])
    point = np.atleast_1d(np.asarray(func(arr), dtype=float))
    dist = np.empty((_check_reps(reps), point.size))
    for r in range(dist.shape[0]):
        rows = rng.integers(0, table.shape[0], size=table.shape)
        dist[r] = np.atleast_1d(func(table[rows, columns].reshape(arr.shape)))
    low, high = _interval(dist, low_q, high_q)
    return point, low, high


def aggregate_estimates(scores: Sequence[float] | np.ndarray, reps: int = 2000, seed: int = 0,
                        confidence: float = CONFIDENCE) -> dict[str, Estimate]:
    """IQM, mean and median of final performance across runs, each with a stratified bootstrap interval.

    Args:
        scores: ``(num_runs,)`` final evaluation returns of one agent on one environment.

    Returns:
        ``{"iqm": Estimate, "mean": Estimate, "median": Estimate}``; nan estimates when there are no runs.
    """
    arr = _scores(scores)
    if arr.size == 0:
        return {"iqm": NAN_ESTIMATE, "mean": NAN_ESTIMATE, "median": NAN_ESTIMATE}

    def aggregates(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), np.mean(x), np.median(x)])

    point, low, high = stratified_bootstrap(arr, aggregates, reps=reps, seed=seed, confidence=confidence)
    return {name: Estimate(float(point[i]), float(low[i]), float(high[i]))
            for i, name in enumerate(("iqm", "mean", "median"))}


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 for each row of ``x: (reps, n)`` against the same row of ``y: (reps, m)``.

    This is the Mann-Whitney U statistic of X over Y divided by ``n * m``, rliable's definition
    (``rliable.metrics.probability_of_improvement``), computed for many resamples at once.
    """
    greater = (x[:, :, None] > y[:, None, :]).mean(axis=(1, 2))
    equal = (x[:, :, None] == y[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * equal


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, reps: int = 2000,
                               seed: int = 0, confidence: float = CONFIDENCE) -> Estimate:
    """Probability of improvement of X over Y: the chance that a random run of X scores higher than a random
    run of Y, ties counting one half (``rliable.metrics.probability_of_improvement``), with a bootstrap
    interval that resamples the runs of X and of Y independently (rliable's independent stratified bootstrap).

    Args:
        x: ``(num_runs_x,)`` scores of X. y: ``(num_runs_y,)`` scores of Y.

    Returns:
        The estimate in ``[0, 1]``: about 1 when X is clearly better, 0.5 for identical distributions.
    """
    xs, ys = _scores(x, "x"), _scores(y, "y")
    if xs.size == 0 or ys.size == 0:
        return NAN_ESTIMATE
    point = float(metrics.probability_of_improvement(xs[:, None], ys[:, None]))
    rng = np.random.default_rng(seed)
    reps = _check_reps(reps)
    dist = []
    chunk = max(1, 2_000_000 // (xs.size * ys.size))
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        x_rows, y_rows = rng.integers(0, xs.size, (n, xs.size)), rng.integers(0, ys.size, (n, ys.size))
        dist.append(_improvement(xs[x_rows], ys[y_rows]))
    low, high = _interval(np.concatenate(dist), *_tails(confidence))
    return Estimate(point, float(low), float(high))


def mann_whitney(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Two-sided Mann-Whitney U test of two independent samples (``scipy.stats.mannwhitneyu``): the p-value of
    "neither tends to be larger". ``inf`` values (censored steps) rank as ties above every finite value.

    Exact where that is cheap: scipy's exact distribution without ties (up to 8 runs each), and with ties an
    enumeration of all splits of the pooled runs (up to 20,000 of them; e.g. 3 runs at 500 vs 2 at 307 gives
    p = 0.2, not the normal approximation's 0.1); otherwise the normal approximation with tie correction.

    Args:
        x: ``(num_runs_x,)``. y: ``(num_runs_y,)``.

    Returns:
        The p-value, ``1.0`` when all values are tied, ``None`` when a sample is empty (the test does not apply).
    """
    xs, ys = _scores(x, "x", allow_inf=True), _scores(y, "y", allow_inf=True)
    if xs.size == 0 or ys.size == 0:
        return None
    if np.unique(np.concatenate([xs, ys])).size == 1:
        return 1.0
    # scipy ranks inf fine, but its exact method needs finite values: map inf to one value above every other
    top = np.max(np.concatenate([xs[np.isfinite(xs)], ys[np.isfinite(ys)], [0.0]]))
    xs, ys = np.where(np.isinf(xs), 2 * top + 1, xs), np.where(np.isinf(ys), 2 * top + 1, ys)
    splits = math.comb(xs.size + ys.size, xs.size)
    if np.unique(np.concatenate([xs, ys])).size < xs.size + ys.size and splits <= _EXACT_PERMUTATIONS:
        method: Any = sps.PermutationMethod(n_resamples=splits)  # as many resamples as splits: exact enumeration
        return float(sps.mannwhitneyu(xs, ys, alternative="two-sided", method=method).pvalue)
    return float(sps.mannwhitneyu(xs, ys, alternative="two-sided").pvalue)


def min_mann_whitney_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney test can give with ``n`` and ``m`` runs and no ties:
    ``2 / C(n + m, n)``, e.g. 0.1 for 3 vs 3 runs; below 0.05 only from 4 vs 4 runs on."""
    if n < 1 or m < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n + m, n))


# ---------------------------------------------------------------------------------------------------
# Steps to a threshold


def final_performance(returns: Sequence[float] | np.ndarray, k: int, final: float | None = None) -> float:
    """A run's final return: the mean of its last ``k`` evaluation returns (all of them if it has fewer), so a
    run that drifts down at the end is not judged by one lucky (or unlucky) evaluation.

    Args:
        returns: ``(num_evals,)`` mean evaluation returns in time order. k: evaluations to average (>= 1).
        final: the evaluation after training (``final_eval_mean``), standing in for the last one.
    """
    values = _scores(returns, "evaluation returns").copy()
    if int(k) < 1 or values.size == 0:
        raise QRLError(f"expected k >= 1 and at least one evaluation for a final return; got k = {k} and "
                       f"{values.size} evaluations")
    if final is not None and not math.isnan(final):
        values[-1] = float(final)
    return float(np.mean(values[-int(k):]))


def fraction_at_or_above(scores: Sequence[float] | np.ndarray, threshold: float,
                         confidence: float = CONFIDENCE) -> Estimate:
    """The fraction of runs with a score at or above ``threshold``, with a Wilson score interval (exact enough
    for the few runs of a study, never outside [0, 1]). ``scores: (num_runs,)``; ``nan`` without runs."""
    x = _scores(scores)
    if x.size == 0:
        return NAN_ESTIMATE
    n, p = x.size, float(np.mean(x >= threshold))
    z = float(sps.norm.ppf(1 - (1 - confidence) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return Estimate(p, 0.0 if p == 0 else low, 1.0 if p == 1 else high)  # exact at the ends, not 1 - 1e-16


def fraction_reached(steps: Sequence[float] | np.ndarray) -> float:
    """Fraction of runs that reached the threshold (finite steps). ``steps: (num_runs,)``; nan without runs."""
    arr = _scores(steps, "steps", allow_inf=True)
    return float(np.isfinite(arr).mean()) if arr.size else math.nan


def median_steps(steps: Sequence[float] | np.ndarray, reps: int = 2000, seed: int = 0,
                 confidence: float = CONFIDENCE) -> Estimate:
    """Median steps to a threshold across runs, with a bootstrap percentile interval over runs.

    Runs that never reached the threshold are censored at their budget and enter as ``inf``: the median is
    finite exactly when more than half of the runs reached it (with an even count, when the upper middle
    run did), and an interval bound of ``inf`` means "not reached within the budget" in that share of
    resamples. Report it with :func:`fraction_reached`.

    Args:
        steps: ``(num_runs,)`` steps to threshold per run, ``inf`` for never.

    Returns:
        The median with its interval; nan without runs.
    """
    arr = _scores(steps, "steps", allow_inf=True)
    if arr.size == 0:
        return NAN_ESTIMATE
    rng = np.random.default_rng(seed)
    dist = np.median(arr[rng.integers(0, arr.size, (_check_reps(reps), arr.size))], axis=1)
    low, high = _interval(dist, *_tails(confidence), discrete=True)
    return Estimate(float(np.median(arr)), float(low), float(high))


def ratio_estimate(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, reps: int = 2000, seed: int = 0,
                   confidence: float = CONFIDENCE, statistic: Callable[..., np.ndarray] = np.median) -> Estimate:
    """The ratio ``statistic(a) / statistic(b)`` (default: median steps to threshold of agent A over agent B;
    below 1 means A needs fewer steps), with a bootstrap interval that resamples the runs of A and of B
    independently.

    ``inf`` (censored) values pass through: a ratio is ``inf`` when only A's median never got there, 0 when
    only B's did not; resamples where both medians are ``inf`` have no ratio and are left out of the interval.

    Args:
        a: ``(num_runs_a,)``. b: ``(num_runs_b,)``.
        statistic: reduces ``(reps, num_runs)`` along ``axis=1``.

    Returns:
        The ratio with its interval; nan when a sample is empty or neither median is finite.
    """
    xa, xb = _scores(a, "a", allow_inf=True), _scores(b, "b", allow_inf=True)
    if xa.size == 0 or xb.size == 0:
        return NAN_ESTIMATE
    rng = np.random.default_rng(seed)
    reps = _check_reps(reps)
    sa = statistic(xa[rng.integers(0, xa.size, (reps, xa.size))], axis=1)
    sb = statistic(xb[rng.integers(0, xb.size, (reps, xb.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(statistic(xa[None], axis=1)[0] / statistic(xb[None], axis=1)[0])
        dist = sa / sb
    low, high = _interval(dist, *_tails(confidence))
    return Estimate(point, float(low), float(high))


# ---------------------------------------------------------------------------------------------------
# Curves: alignment, bands, Meyer et al.'s sample complexity


def align_curves(runs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Put evaluation curves of several runs on one grid by step interpolation.

    Runs of an environment are evaluated every ``eval_freq`` steps plus once at their last timestep, which
    can differ a little between agents (rollout sizes). The grid is the union of all evaluation timesteps
    from the latest first evaluation on; a run's value at grid step ``t`` is its latest evaluation at or
    before ``t`` (last observation carried forward, also past the run's own end): what a user of the run
    would have had at ``t``. Runs evaluated at the same timesteps are unchanged.

    Args:
        runs: per run ``(timesteps (num_evals_i,), returns (num_evals_i,))``, timesteps increasing.

    Returns:
        ``(grid (num_grid,), curves (num_runs, num_grid))``.
    """
    if not runs:
        raise QRLError("expected at least one run's evaluation curve; got none")
    pairs = []
    for i, (t, r) in enumerate(runs):
        ts, rs = _scores(t, f"timesteps of run {i}"), _scores(r, f"returns of run {i}")
        if ts.size == 0 or ts.shape != rs.shape:
            raise QRLError(f"expected run {i} to have as many returns as timesteps (at least one); "
                           f"got {ts.size} timesteps and {rs.size} returns")
        if np.any(np.diff(ts) <= 0):
            raise QRLError(f"expected increasing evaluation timesteps in run {i}; got {ts.tolist()}")
        pairs.append((ts, rs))
    start = max(ts[0] for ts, _ in pairs)
    grid = np.unique(np.concatenate([ts for ts, _ in pairs]))
    grid = grid[grid >= start]
    curves = np.stack([rs[np.searchsorted(ts, grid, side="right") - 1] for ts, rs in pairs])
    return grid, curves


def curve_band(curves: np.ndarray, reps: int = 2000, seed: int = 0,
               confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learning curve: the IQM across runs at each timestep, with a pointwise bootstrap percentile band.

    The IQM (not the mean) because a few diverged or lucky runs should not move the curve; with fewer than
    four runs it equals the mean. Each resample draws whole runs (curves) with replacement.

    Args:
        curves: ``(num_runs, num_evals)`` on a common grid.

    Returns:
        ``(iqm, low, high)``, each ``(num_evals,)``.
    """
    arr = np.asarray(curves, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.isfinite(arr).all():
        raise QRLError(f"expected finite curves of shape (num_runs >= 1, num_evals); got shape {arr.shape}")
    rng = np.random.default_rng(seed)
    reps = _check_reps(reps)
    point = sps.trim_mean(arr, 0.25, axis=0)
    chunk = max(1, 4_000_000 // arr.size)
    dist = [sps.trim_mean(arr[rng.integers(0, arr.shape[0], (min(chunk, reps - s), arr.shape[0]))], 0.25, axis=1)
            for s in range(0, reps, chunk)]
    low, high = _interval(np.concatenate(dist), *_tails(confidence))
    return point, low, high


def normalise(curves: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map returns linearly to [0, 1]: ``(x - low) / (high - low)``, clipped (Meyer et al.'s normalised
    performance). Pass the environment's bounds, or those of the study (:func:`study_bounds`).

    Args:
        curves: any shape, e.g. ``(num_runs, num_evals)``.
    """
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise QRLError(f"expected finite normalisation bounds with high > low; got low={low}, high={high}; "
                       f"try bounds that span the returns (e.g. the environment's worst and best)")
    return np.clip((np.asarray(curves, dtype=float) - low) / (high - low), 0.0, 1.0)


def study_bounds(*curves: np.ndarray) -> tuple[float, float]:
    """The lowest and highest evaluation return over all given curves (all agents and runs of one environment):
    the bounds the report normalises with, so 1 is the best any run of the study got."""
    values = np.concatenate([np.asarray(c, dtype=float).ravel() for c in curves]) if curves else np.array([])
    if values.size == 0:
        raise QRLError("expected at least one evaluation return to normalise; got none")
    return float(values.min()), float(values.max())


def fraction_above(normalised: np.ndarray, eps: float) -> np.ndarray:
    """Fraction of runs whose normalised performance is at least ``1 - eps``, at each timestep.

    Args:
        normalised: ``(num_runs, num_evals)`` in [0, 1], each run's performance at that timestep (not its best).

    Returns:
        ``(num_evals,)``.
    """
    arr = np.asarray(normalised, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise QRLError(f"expected normalised curves of shape (num_runs >= 1, num_evals); got {arr.shape}")
    return (arr >= 1 - eps - _ROUNDING).mean(axis=0)


def _first_reaching(timesteps: np.ndarray, fractions: np.ndarray, delta: float) -> np.ndarray:
    """First timestep where each row of ``fractions: (k, num_evals)`` is at least ``delta``; inf if none."""
    hit = fractions >= delta - _ROUNDING
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), np.asarray(timesteps, dtype=float)[first], math.inf)


def sample_complexity(timesteps: np.ndarray, normalised: np.ndarray, eps: float, delta: float) -> float:
    """Meyer et al.'s sample complexity S(eps, delta): the first timestep at which the fraction of runs whose
    normalised performance is at least ``1 - eps`` reaches ``delta`` (Meyer et al. 2025, "Benchmarking Quantum
    Reinforcement Learning", ICML).

    Args:
        timesteps: ``(num_evals,)``. normalised: ``(num_runs, num_evals)`` in [0, 1].

    Returns:
        S(eps, delta) in environment steps, ``inf`` if the fraction never reaches ``delta``.
    """
    return float(_first_reaching(timesteps, fraction_above(normalised, eps)[None], delta)[0])


@dataclass(frozen=True)
class SampleEfficiency:
    """The sample-efficiency curve of one agent on one environment for one ``eps``.

    ``fraction``, ``low``, ``high``: ``(num_evals,)`` fraction of runs at or above ``1 - eps`` and its band;
    ``complexity``: S(eps, delta) with its band, per delta.
    """

    eps: float
    timesteps: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray
    complexity: dict[float, Estimate]


def sample_efficiency(timesteps: np.ndarray, normalised: np.ndarray, eps: float, deltas: Sequence[float] = DELTAS,
                      reps: int = SAMPLE_COMPLEXITY_REPS, seed: int = 0,
                      band: tuple[float, float] = BAND_PERCENTILES) -> SampleEfficiency:
    """The fraction of runs at or above ``1 - eps`` against timesteps and S(eps, delta) for each delta, with
    Meyer et al.'s cluster bootstrap: resample whole runs with replacement ``reps`` times (1000 in the paper),
    recompute the curve and S on each resample, and take the ``band`` percentiles (5th-95th).

    Args:
        timesteps: ``(num_evals,)``. normalised: ``(num_runs, num_evals)`` in [0, 1].

    Returns:
        A :class:`SampleEfficiency`.
    """
    t = _scores(timesteps, "timesteps")
    above = (np.asarray(normalised, dtype=float) >= 1 - eps - _ROUNDING).astype(float)
    if above.ndim != 2 or above.shape[0] == 0 or above.shape[1] != t.size:
        raise QRLError(f"expected normalised curves of shape (num_runs >= 1, {t.size}); got {above.shape}")
    n = above.shape[0]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=_check_reps(reps))  # resampling runs = drawing counts
    dist = counts @ above / n
    low, high = _interval(dist, *band, discrete=True)
    point = above.mean(axis=0)
    complexity = {}
    for delta in deltas:
        s_low, s_high = _interval(_first_reaching(t, dist, delta), *band, discrete=True)
        complexity[float(delta)] = Estimate(float(_first_reaching(t, point[None], delta)[0]), float(s_low),
                                            float(s_high))
    return SampleEfficiency(float(eps), t, point, low, high, complexity)


# ---------------------------------------------------------------------------------------------------
# One agent's summary and pairwise comparisons


@dataclass(frozen=True)
class AgentResult:
    """One agent on one environment: per-run data and its aggregates.

    ``final: (num_runs,)`` final returns (:func:`final_performance`); ``steps: (num_runs,)`` steps to the threshold
    (``inf``: never), ``None`` without a threshold; ``final_estimates``: IQM, mean, median with intervals;
    ``median_steps`` and ``fraction_reached``: ``None`` without a threshold; ``ended_above``: the fraction of runs
    whose final return is at or above the threshold (:func:`fraction_at_or_above`), ``None`` without one.
    """

    agent: str
    final: np.ndarray
    steps: np.ndarray | None
    final_estimates: dict[str, Estimate]
    median_steps: Estimate | None
    fraction_reached: float | None
    ended_above: Estimate | None = None

    @property
    def num_runs(self) -> int:
        return int(self.final.size)

    @property
    def ended_above_count(self) -> int:
        """Runs whose final return is at or above the threshold (0 without one)."""
        return 0 if self.ended_above is None or not self.num_runs else round(self.ended_above.point * self.num_runs)


def summarise_agent(agent: str, final: Sequence[float] | np.ndarray, steps: Sequence[float] | np.ndarray | None = None,
                    reps: int = 2000, seed: int = 0, confidence: float = CONFIDENCE,
                    threshold: float | None = None) -> AgentResult:
    """Aggregate one agent's runs on one environment: final-performance estimates and median steps to threshold.

    Args:
        final: ``(num_runs,)``. steps: ``(num_runs,)`` with ``inf`` for never, or ``None`` without a threshold.
        threshold: with it, the fraction of runs whose final return is at or above it (``ended_above``).
    """
    final_arr = _scores(final, "final returns")
    steps_arr = None if steps is None else _scores(steps, "steps", allow_inf=True)
    if steps_arr is not None and steps_arr.size != final_arr.size:
        raise QRLError(f"expected one steps-to-threshold per run; got {steps_arr.size} for {final_arr.size} runs")
    return AgentResult(
        agent=agent,
        final=final_arr,
        steps=steps_arr,
        final_estimates=aggregate_estimates(final_arr, reps, child_seed(seed, agent, "final"), confidence),
        median_steps=None if steps_arr is None else median_steps(steps_arr, reps, child_seed(seed, agent, "steps"),
                                                                 confidence),
        fraction_reached=None if steps_arr is None else fraction_reached(steps_arr),
        ended_above=None if threshold is None else fraction_at_or_above(final_arr, threshold, confidence),
    )


@dataclass(frozen=True)
class Comparison:
    """The focus agent against another on one environment.

    ``improvement``: P(focus's final return > other's); ``final_p``: Mann-Whitney p on final returns;
    ``steps_ratio``: median steps focus / other; ``steps_p``: Mann-Whitney p on steps (never = tied at the top).
    """

    focus: AgentResult
    other: AgentResult
    improvement: Estimate
    final_p: float | None
    steps_ratio: Estimate | None
    steps_p: float | None


def compare(focus: AgentResult, other: AgentResult, reps: int = 2000, seed: int = 0,
            confidence: float = CONFIDENCE) -> Comparison:
    """Pairwise statistics of ``focus`` against ``other`` (see :class:`Comparison`)."""
    with_steps = focus.steps is not None and other.steps is not None
    return Comparison(
        focus=focus,
        other=other,
        improvement=probability_of_improvement(focus.final, other.final, reps,
                                               child_seed(seed, focus.agent, other.agent, "improvement"), confidence),
        final_p=mann_whitney(focus.final, other.final),
        steps_ratio=ratio_estimate(focus.steps, other.steps, reps, child_seed(seed, focus.agent, other.agent, "ratio"),
                                   confidence) if with_steps else None,
        steps_p=mann_whitney(focus.steps, other.steps) if with_steps else None,
    )
