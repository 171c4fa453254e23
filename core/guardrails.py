"""Guardrails, secondary metrics with their multiplicity adjustment, and CUPED (pure Python; no Django).

Guardrails are one-sided: each asks whether the treatment is worse than control by more than its threshold, at any
look, and fails when an always-valid lower confidence bound of the degradation exceeds the threshold. Each uses alpha
on its own (guardrails are left out of the multiplicity adjustment, as GrowthBook does).

- Rates (error_rate, fallback_rate), per request: the primary's normal-mixture confidence sequence
  (`core.statistics.sequential_half_width`, tuned at alpha) on the difference, two-sided at 2 alpha: at a crossing the
  mixture's other half is negligible, so each side is crossed with probability about alpha. Each arm's variance is
  taken at its rate with one event and one non-event added (Agresti-Caffo): never below the raw p (1 - p), and not 0
  for an arm with no event yet, where the raw variance would let a handful of requests fail a guardrail. A relative
  threshold is tested by Fieller's method (the contrast t - (1 + r) c has a known mean, 0, at the true ratio r), not
  the delta method: the two agree once the control's rate is well measured, and Fieller's bound stays defined when the
  control has had no event yet; then a clear treatment rate bounds the ratio far above 1 and the guardrail can still
  fail.
- Latency quantiles, from fixed log-spaced histograms: for the single point x_q (the control's true q-quantile) the
  share of answers at or below it is one proportion with variance q (1 - q) / n, so the same confidence sequence
  for one proportion (two-sided at alpha, alpha / 2 per side) bounds it at every look with no multiplicity over
  buckets. The control's empirical quantile at level q + eps, read at its bucket's upper edge, is then an upper bound
  of x_q; the treatment's at q - eps, read at the lower edge, a lower bound of its own quantile. Answers are taken
  as independent: many answers of one user are not.

Secondary metrics: means per exposed user from per-arm sums, the same confidence sequence and always-valid p-value as
the primary, adjusted together by Holm or Benjamini-Hochberg. Moments are population (1 / n) ones, the primary's
p (1 - p) / n, so a 0/1 metric gets exactly the primary's figures.

CUPED: theta is the slope of Y on X pooled within the arms (each arm centred on its own means, as GrowthBook and Statsig
do); that is the covariate's coefficient of an OLS of Y on the arm and X, whose arm coefficient equals the adjusted
difference.
"""

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate

import numpy as np

from core.metrics import BENJAMINI_HOCHBERG, ERROR_RATE, FALLBACK_RATE, HOLM, LATENCY_P95, LATENCY_P99
from core.statistics import Cuped as Cuped  # re-exported: built here, read by `core.statistics.analyse`
from core.statistics import always_valid_p_value, sequential_half_width

GUARDRAIL_OK, GUARDRAIL_FAILING, GUARDRAIL_NO_DATA = "ok", "failing", "insufficient"

# --- the latency histogram --------------------------------------------------------------------------------------------

# Upper edges 10^(k / 100) ms from 0.01 ms to just past two minutes: a ratio of 10^(1/100) between edges, powers of
# ten among them. Bucket i holds (edge[i - 1], edge[i]]; the last bucket, past every edge, is the overflow.
_PER_DECADE = 100
_FIRST_EXPONENT = -2  # 0.01 ms
_LAST_EDGE_MS = 120_000.0
_EDGE_COUNT = math.ceil((math.log10(_LAST_EDGE_MS) - _FIRST_EXPONENT) * _PER_DECADE) + 1
LATENCY_EDGES_MS: tuple[float, ...] = tuple(10.0 ** (_FIRST_EXPONENT + k / _PER_DECADE) for k in range(_EDGE_COUNT))
LATENCY_BUCKETS = len(LATENCY_EDGES_MS) + 1
_EDGES = np.array(LATENCY_EDGES_MS)


def latency_bucket(ms: float) -> int:
    """The bucket of a latency: the first i with ms <= LATENCY_EDGES_MS[i], or the overflow bucket."""
    if math.isnan(ms):
        raise ValueError("a latency cannot be NaN")
    if ms <= LATENCY_EDGES_MS[0]:
        return 0
    if ms > LATENCY_EDGES_MS[-1]:
        return LATENCY_BUCKETS - 1
    # The logarithm lands on the bucket or next to it (rounding at an edge); the edges themselves decide.
    index = min(max(math.ceil((math.log10(ms) - _FIRST_EXPONENT) * _PER_DECADE), 1), len(LATENCY_EDGES_MS) - 1)
    while ms <= LATENCY_EDGES_MS[index - 1]:
        index -= 1
    while ms > LATENCY_EDGES_MS[index]:
        index += 1
    return index


def latency_histogram(latencies_ms: Iterable[float]) -> tuple[int, ...]:
    """Counts per bucket of many latencies at once (the buckets of `latency_bucket`)."""
    values = np.fromiter(latencies_ms, dtype=float)
    if np.isnan(values).any():
        raise ValueError("a latency cannot be NaN")
    indices = np.searchsorted(_EDGES, values, side="left")
    return tuple(int(count) for count in np.bincount(indices, minlength=LATENCY_BUCKETS))


def _bucket_lower(index: int) -> float:
    return 0.0 if index == 0 else LATENCY_EDGES_MS[index - 1]


def _bucket_upper(index: int) -> float:
    return LATENCY_EDGES_MS[index] if index < len(LATENCY_EDGES_MS) else math.inf


def _bucket_value(index: int) -> float:
    """A bucket's representative latency: its geometric midpoint (the first bucket's and the overflow's inner edge)."""
    if index == 0:
        return LATENCY_EDGES_MS[0]
    if index >= len(LATENCY_EDGES_MS):
        return LATENCY_EDGES_MS[-1]
    return math.sqrt(LATENCY_EDGES_MS[index - 1] * LATENCY_EDGES_MS[index])


# --- guardrails -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestStats:
    """One arm's answers in a phase: counts, and latencies per histogram bucket (merged by adding)."""

    requests: int
    errors: int
    fallbacks: int
    latency: tuple[int, ...]

    @classmethod
    def empty(cls) -> "RequestStats":
        return cls(0, 0, 0, (0,) * LATENCY_BUCKETS)

    @classmethod
    def of(cls, latencies_ms: Iterable[float], *, errors: int = 0, fallbacks: int = 0) -> "RequestStats":
        """One answer per latency, `errors` and `fallbacks` of them failed or fell back."""
        latency = latency_histogram(latencies_ms)
        return cls(sum(latency), errors, fallbacks, latency)

    def merged(self, other: "RequestStats") -> "RequestStats":
        return RequestStats(
            self.requests + other.requests,
            self.errors + other.errors,
            self.fallbacks + other.fallbacks,
            tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
        )


@dataclass(frozen=True)
class GuardrailResult:
    metric: str
    threshold: float
    relative: bool
    control: float | None  # ms for a latency quantile, else a rate
    treatment: float | None
    degradation: float | None  # treatment worse by: t / c - 1 (relative) or t - c (absolute)
    lower: float | None  # its always-valid one-sided lower bound
    status: str  # GUARDRAIL_OK, GUARDRAIL_FAILING (lower > threshold) or GUARDRAIL_NO_DATA


_QUANTILES = {LATENCY_P95: 0.95, LATENCY_P99: 0.99}


def _guardrail_spec(guardrail: Mapping[str, object]) -> tuple[str, float, bool]:
    metric, threshold, relative = guardrail.get("metric"), guardrail.get("threshold"), guardrail.get("relative")
    if metric not in (*_QUANTILES, ERROR_RATE, FALLBACK_RATE):
        raise ValueError(f"unknown guardrail metric {metric!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not isinstance(relative, bool):
        raise ValueError(f"guardrail {metric}: threshold must be a number and relative a boolean")
    return str(metric), float(threshold), relative


def _status(lower: float, threshold: float) -> str:
    return GUARDRAIL_FAILING if lower > threshold else GUARDRAIL_OK


def _smoothed_variance(events: int, n: int) -> float:
    """Variance of an arm's rate, at the rate with one event and one non-event added."""
    rate = (events + 1) / (n + 2)
    return rate * (1 - rate) / n


def _ratio_lower(t: float, var_t: float, c: float, var_c: float, width: float) -> float:
    """Fieller's lower bound of t_true / c_true >= 0: the smallest r with t - r c <= width sqrt(var_t + r^2 var_c).

    t - r c - width sqrt(...) is concave in r and falls below 0 eventually (var_c > 0), so the bound is 0 or its first
    root: the smaller root of the squared equation, written to stay accurate (and defined when c is 0).
    """
    free = t * t - width * width * var_t
    if free <= 0 or t <= 0:
        return 0.0
    square = c * c - width * width * var_c
    discriminant = max(t * t * c * c - square * free, 0.0)
    return free / (t * c + math.sqrt(discriminant))


def _rate_check(
    metric: str, threshold: float, relative: bool, arms: tuple[RequestStats, RequestStats], width: float
) -> GuardrailResult:
    """One rate guardrail; `width` is the one-sided sequence's half-width per standard error."""
    counts = [(arm.errors if metric == ERROR_RATE else arm.fallbacks, arm.requests) for arm in arms]
    (c_events, c_n), (t_events, t_n) = counts
    c = c_events / c_n if c_n else None
    t = t_events / t_n if t_n else None
    if c is None or t is None:
        return GuardrailResult(metric, threshold, relative, c, t, None, None, GUARDRAIL_NO_DATA)
    var_c, var_t = _smoothed_variance(c_events, c_n), _smoothed_variance(t_events, t_n)
    if relative:
        degradation = t / c - 1 if c > 0 else None  # no control event yet: the ratio is unbounded, its bound is not
        lower = _ratio_lower(t, var_t, c, var_c, width) - 1
    else:
        degradation = t - c
        lower = degradation - width * math.sqrt(var_t + var_c)
    return GuardrailResult(metric, threshold, relative, c, t, degradation, lower, _status(lower, threshold))


class _Latencies:
    """One arm's latency histogram, its cumulative counts built once for every quantile asked."""

    def __init__(self, counts: Sequence[int]) -> None:
        self.cumulative = list(accumulate(counts))
        self.n = self.cumulative[-1] if self.cumulative else 0

    def bucket_at(self, level: float) -> int:
        """The bucket of the empirical quantile at `level` in (0, 1]: the ceil(level n)-th smallest answer."""
        rank = max(1, math.ceil(level * self.n))
        return bisect.bisect_left(self.cumulative, rank)

    def epsilon(self, q: float, alpha: float, n_star: float) -> float:
        """The confidence sequence's half-width for the share of answers below a fixed point, two-sided at alpha."""
        return sequential_half_width(q * (1 - q) / self.n, self.n, alpha, n_star)


def _quantile_check(
    metric: str,
    threshold: float,
    relative: bool,
    arms: tuple[_Latencies, _Latencies],
    *,
    alpha: float,
    n_star: float,
) -> GuardrailResult:
    q = _QUANTILES[metric]
    control, treatment = arms
    c = _bucket_value(control.bucket_at(q)) if control.n else None
    t = _bucket_value(treatment.bucket_at(q)) if treatment.n else None
    degradation = None if c is None or t is None else (t / c - 1 if relative else t - c)
    no_data = GuardrailResult(metric, threshold, relative, c, t, degradation, None, GUARDRAIL_NO_DATA)
    if not control.n or not treatment.n:
        return no_data
    upper_level = q + control.epsilon(q, alpha, n_star)
    lower_level = q - treatment.epsilon(q, alpha, n_star)
    if upper_level >= 1 or lower_level <= 0:
        return no_data  # too few answers to bound the quantile at all
    control_upper = _bucket_upper(control.bucket_at(upper_level))
    treatment_lower = _bucket_lower(treatment.bucket_at(lower_level))
    if math.isinf(control_upper):
        return no_data  # the bound lies in the overflow bucket
    lower = treatment_lower / control_upper - 1 if relative else treatment_lower - control_upper
    return replace(no_data, lower=lower, status=_status(lower, threshold))


def guardrails_check(
    guardrails: Sequence[Mapping[str, object]],
    control: RequestStats,
    treatment: RequestStats,
    *,
    alpha: float,
    n_star: float,
) -> list[GuardrailResult]:
    """Each configured guardrail ({metric, threshold, relative}) tested one-sided at level alpha, valid at any look."""
    if not 0.0 < alpha <= 0.5:
        raise ValueError(f"alpha must be in (0, 0.5], got {alpha!r}")
    latencies = (_Latencies(control.latency), _Latencies(treatment.latency))
    n = control.requests + treatment.requests
    # The rates' half-width per standard error (it is proportional to the standard error at a given n); the mixture
    # tuned at alpha, as the primary's, which keeps it defined up to alpha = 0.5 (2 alpha = 1).
    width = sequential_half_width(1.0, n, 2 * alpha, n_star, rho_alpha=alpha) if n else math.nan
    results = []
    for guardrail in guardrails:
        metric, threshold, relative = _guardrail_spec(guardrail)
        if metric in _QUANTILES:
            results.append(_quantile_check(metric, threshold, relative, latencies, alpha=alpha, n_star=n_star))
        else:
            results.append(_rate_check(metric, threshold, relative, (control, treatment), width))
    return results


# --- secondary metrics ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """One arm's per-user sums: the metric y and, for CUPED, its pre-period covariate x."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.n

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n

    @property
    def var_y(self) -> float:
        """Population variance (1 / n); never below 0 for rounding."""
        return max(self.sum_y2 / self.n - self.mean_y**2, 0.0)

    @property
    def var_x(self) -> float:
        return max(self.sum_x2 / self.n - self.mean_x**2, 0.0)

    @property
    def cov_xy(self) -> float:
        return self.sum_xy / self.n - self.mean_x * self.mean_y


@dataclass(frozen=True)
class MetricResult:
    name: str
    control: float | None  # mean per exposed user
    treatment: float | None
    difference: float | None
    relative_lift: float | None
    ci_lower: float | None  # always-valid interval of the difference, two-sided at alpha
    ci_upper: float | None
    p_value: float | None  # always-valid
    adjusted_p_value: float | None
    significant: bool
    variance: float | None = None  # of the difference
    lift_ci_lower: float | None = None  # the relative lift's interval (delta method), for reporting
    lift_ci_upper: float | None = None


def mean_metric(name: str, control: Moments, treatment: Moments, *, alpha: float, n_star: float) -> MetricResult:
    """Difference of the arms' means with the primary's confidence sequence and always-valid p-value."""
    c = control.mean_y if control.n else None
    t = treatment.mean_y if treatment.n else None
    empty = MetricResult(name, c, t, None, None, None, None, None, None, False)
    if c is None or t is None:
        return empty
    difference = t - c
    lift = t / c - 1 if c != 0 else None
    variance = control.var_y / control.n + treatment.var_y / treatment.n
    result = replace(empty, difference=difference, relative_lift=lift, variance=variance)
    if variance <= 0:
        return result  # every user has the same value: no interval
    n = control.n + treatment.n
    half = sequential_half_width(variance, n, alpha, n_star)
    p_value = always_valid_p_value(difference, variance, n, alpha, n_star)
    result = replace(
        result, ci_lower=difference - half, ci_upper=difference + half, p_value=p_value, significant=p_value < alpha
    )
    if lift is None:
        return result
    # Delta method for t / c: d(t/c) = dt / c - t dc / c^2.
    lift_half = sequential_half_width(
        control.var_y / control.n * t * t / c**4 + treatment.var_y / treatment.n / c**2, n, alpha, n_star
    )
    return replace(result, lift_ci_lower=lift - lift_half, lift_ci_upper=lift + lift_half)


def p_values_adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Holm's (family-wise) or Benjamini-Hochberg's (false discovery rate) adjusted p-values, in the input's order."""
    if method not in (HOLM, BENJAMINI_HOCHBERG):
        raise ValueError(f"method must be {HOLM!r} or {BENJAMINI_HOCHBERG!r}, got {method!r}")
    if any(not 0.0 <= p <= 1.0 for p in p_values):
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == HOLM:
        # Step down: p_(i) (m - i + 1), made non-decreasing from the smallest.
        running = 0.0
        for rank, index in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[index]))
            adjusted[index] = running
    else:
        # Step up: p_(i) m / i, made non-increasing from the largest.
        running = 1.0
        for rank in range(m - 1, -1, -1):
            index = order[rank]
            running = min(running, m * p_values[index] / (rank + 1))
            adjusted[index] = running
    return adjusted


def metrics_adjusted(results: list[MetricResult], method: str, alpha: float) -> list[MetricResult]:
    """The results with p-values adjusted together and significance at the adjusted p < alpha.

    Metrics without a p-value (an empty arm, no variance) are not tested and stay out of the family.
    """
    tested = [index for index, result in enumerate(results) if result.p_value is not None]
    adjusted = p_values_adjust([results[index].p_value or 0.0 for index in tested], method)
    by_index = dict(zip(tested, adjusted, strict=True))
    return [
        replace(result, adjusted_p_value=by_index.get(index), significant=by_index.get(index, 1.0) < alpha)
        for index, result in enumerate(results)
    ]


# --- CUPED ------------------------------------------------------------------------------------------------------------


def cuped(control: Moments, treatment: Moments) -> Cuped | None:
    """The difference of means adjusted by the covariate x (None when x does not vary or an arm has < 2 users)."""
    if control.n < 2 or treatment.n < 2:
        return None
    # Pooled within the arms: the sums of squares and products about each arm's own means.
    sxx = control.n * control.var_x + treatment.n * treatment.var_x
    sxy = control.n * control.cov_xy + treatment.n * treatment.cov_xy
    raw_variance = control.var_y / control.n + treatment.var_y / treatment.n
    if sxx <= 0 or raw_variance <= 0:
        return None
    theta = sxy / sxx
    # Each arm's mean of y - theta (x - pooled mean of x): the pooled mean cancels in the difference.
    difference = (treatment.mean_y - control.mean_y) - theta * (treatment.mean_x - control.mean_x)
    variance = sum(
        max(arm.var_y - 2 * theta * arm.cov_xy + theta * theta * arm.var_x, 0.0) / arm.n for arm in (control, treatment)
    )
    return Cuped(theta, difference, variance, raw_variance, 1 - variance / raw_variance)
