"""Experiment statistics and the decision rules (pure Python over numpy, statsmodels and scipy; no Django).

Three rules, chosen by `Settings.rule`:

- `sequential` (the default): the asymptotic normal-mixture confidence sequence (Howard, Ramdas, McAuliffe, Sekhon;
  Waudby-Smith et al. 2023, eq. 9 and 161), as GrowthBook and Eppo ship it. N = n_control + n_treatment, `var` the
  unpooled variance of the estimated difference, s2 = var * N, rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / N*, and
  half-width = sqrt(2 s2 (N rho^2 + 1) / (N^2 rho^2) * ln(sqrt(N rho^2 + 1) / alpha)). The interval
  difference +- half-width covers the true difference at every look simultaneously (asymptotically), so the experiment
  may be read daily, or hourly, and stopped at the first decision.
  Its p-value is always valid: the smallest alpha' at which the confidence sequence excludes 0, with rho held at the
  configured alpha's value (as GrowthBook and Eppo do). Then half-width(alpha') falls strictly as alpha' rises, so the
  levels that exclude 0 form the interval (p, 1] and p = min(1, sqrt(1 + N rho^2) exp(-z^2 N rho^2 / (2 (1 + N rho^2))))
  with z = difference / sqrt(var): the reciprocal of the normal-mixture likelihood ratio (Johari et al.'s mSPRT
  p-value). It is below alpha exactly when the interval excludes 0, and never below the fixed-horizon Wald p-value
  (Markov's inequality on the likelihood ratio).
- `group_sequential`: Lan-DeMets alpha spending with the O'Brien-Fleming-like function over `planned_looks` equally
  spaced looks, bounds c_1..c_K by recursive numerical integration over the Brownian motion of the score (Armitage,
  McPherson and Rowe; Jennison and Turnbull ch. 19). Two-sided and symmetric, alpha / 2 spent on each side with
  alpha_side(t) = 2 - 2 Phi(z_{alpha_side / 2} / sqrt(t)), the convention of R's ldbounds (sides = 2), gsDesign
  (test.type = 2, sfLDOF) and rpact: K = 5 at alpha 0.05 gives 4.877, 3.357, 2.680, 2.290, 2.031. The interval at
  look k is difference +- c_k * SE (unpooled SE): a repeated confidence interval, valid at the planned looks. Its
  p-value is the nominal fixed-horizon (score test) p-value; compare it with the look's nominal level 2 (1 - Phi(c_k)).
- `fixed_horizon`: the score test for the difference of two independent proportions (the formula of statsmodels
  `score_test_proportions_2indep`, compare="diff", correction=False; at a difference of zero exactly the pooled
  two-proportion z-test), with the Mee interval: every difference the test does not reject at alpha, found by
  bisection (statsmodels' own inversion fails on small or extreme counts). The interval excludes zero exactly when the
  test rejects. Valid only when read once, at the planned sample: shipping needs the minimum sample in both arms.

Shared by all three:
- Sample-ratio mismatch: a chi-square goodness-of-fit test of the observed split against the configured share;
  p < 0.001 makes the result invalid (keep running, never ship).
- Minimum sample per variant: two-sided z-test power for the minimum detectable effect (relative MDE on the control
  rate) via Cohen's h, solved in closed form (the normal power equation of statsmodels' `NormalIndPower`, refined by
  Newton's method on its two-tailed form); the achieved power at the observed sample sizes is reported with it. Only
  the fixed-horizon rule requires it; the sequential rules report `insufficient_sample` as information.

CUPED (`analyse(..., adjusted=core.guardrails.cuped(...))`): the two sequential rules take the adjusted difference and
its variance in place of the raw ones (interval difference +- c sqrt(variance), p-values from the same formulas); the
fixed-horizon rule keeps its exact score test on the counts.

`analyse` is a cheap, pure function of the counts: for the sequential rules one closed-form score test (the fixed
p-value, for information) and no bisection; the group-sequential bounds are cached per (alpha, looks).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

METHOD = "score test for the difference (Mee interval by test inversion; pooled z-test at zero)"
_BISECTIONS = 60
# Spacing of the group-sequential integration grid on the score scale: bounds to ~1e-8 at 0.05, ~1e-5 at 0.25. Wider
# beyond 60 looks (up to 0.25) so the cost stays under a second up to a year of daily looks.
_GRID_STEP, _GRID_LOOKS = 0.05, 60
_Z_CAP = 9.0  # the grid spans at most +-9 standard deviations of the score
_TINY_SPEND = 1e-18  # a look spending less has a bound beyond 8.8: found from the tail alone
_SQRT2 = math.sqrt(2.0)
SRM_ALPHA = 0.001
SHIP, ROLLBACK, KEEP_RUNNING = "ship", "rollback", "keep-running"
SEQUENTIAL, GROUP_SEQUENTIAL, FIXED_HORIZON = "sequential", "group_sequential", "fixed_horizon"
RULES = (SEQUENTIAL, GROUP_SEQUENTIAL, FIXED_HORIZON)


@dataclass(frozen=True)
class Arm:
    exposed: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.exposed if self.exposed else 0.0


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    relative_mde: float = 0.10
    power: float = 0.80
    treatment_share: float = 0.5
    rule: str = SEQUENTIAL
    n_star: int = 5000  # tuning sample size of the mixture boundary (total users; narrowest there)
    planned_looks: int = 14  # equally spaced looks of the group-sequential rule

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 0.5:
            raise ValueError(f"alpha must be in (0, 0.5], got {self.alpha!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.n_star < 1:
            raise ValueError(f"n_star (the mixture's tuning sample size, users) must be at least 1, got {self.n_star}")
        if self.planned_looks < 1:
            raise ValueError(f"planned_looks must be at least 1, got {self.planned_looks}")
        if not 0.0 <= self.treatment_share <= 1.0:
            raise ValueError(f"treatment_share must be in [0, 1], got {self.treatment_share!r}")


@dataclass(frozen=True)
class Result:
    difference: float | None
    relative_lift: float | None
    ci_lower: float | None
    ci_upper: float | None
    level: float
    method: str
    z: float | None  # the score test's z (pooled at zero), whatever the rule
    p_value: float | None  # the rule's p-value: always-valid (sequential), nominal fixed (group sequential), fixed
    alpha: float
    srm_p_value: float | None
    srm_ok: bool
    min_sample_per_variant: int | None
    power: float | None  # the fixed-horizon test's power at these sample sizes
    decision: str
    reasons: list[str] = field(default_factory=list)
    rule: str = SEQUENTIAL
    fixed_horizon_p_value: float | None = None  # the score test's p-value
    critical_z: float | None = None  # the group-sequential bound used at this look
    look: int | None = None  # the look analysed (group sequential: clamped to the planned looks)
    valid_at_any_look: bool = True
    cuped_applied: bool = False  # the difference, interval and p-value are CUPED-adjusted
    variance_reduction: float | None = None  # CUPED: 1 - adjusted / unadjusted variance of the difference


@dataclass(frozen=True)
class Cuped:
    """The primary's difference adjusted with a pre-period covariate (built by `core.guardrails.cuped`)."""

    theta: float
    difference: float  # adjusted treatment mean - adjusted control mean
    variance: float  # of `difference`
    raw_variance: float  # of the unadjusted difference
    variance_reduction: float  # 1 - variance / raw_variance


# --- the normal distribution, without scipy's per-call overhead -------------------------------------------------------


def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / _SQRT2)


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@lru_cache(maxsize=64)
def _norm_isf(p: float) -> float:
    """The upper-tail quantile (cached on the exact value: the same number scipy returns)."""
    return float(norm.isf(p))


# --- fixed horizon: the score test and its inversion ------------------------------------------------------------------


def score_statistic(treatment: Arm, control: Arm, difference: float) -> float:
    """The score statistic for H0: p_treatment - p_control = difference (NaN where undefined).

    The formula of statsmodels `score_test_proportions_2indep(compare="diff", correction=False)` (Miettinen-Nurminen
    restricted estimate, Farrington-Manning's closed-form cubic root), in plain floats: the bisection calls it 120
    times per interval. Where statsmodels gets NaN (with a RuntimeWarning), this returns NaN.
    """
    count1, nobs1, count0, nobs0 = treatment.converted, treatment.exposed, control.converted, control.exposed
    if nobs1 == 0 or nobs0 == 0:
        return math.nan
    nobs, count = nobs1 + nobs0, count1 + count0
    p1, p0 = count1 / nobs1, count0 / nobs0
    try:
        if difference == 0:
            prop0 = prop1 = count / nobs
        else:
            tmp3 = nobs
            tmp2 = (nobs1 + 2 * nobs0) * difference - nobs - count
            tmp1 = (count0 * difference - nobs - 2 * count0) * difference + count
            tmp0 = count0 * difference * (1 - difference)
            q = (tmp2 / (3 * tmp3)) ** 3 - tmp1 * tmp2 / (6 * tmp3**2) + tmp0 / (2 * tmp3)
            sign = (q > 0) - (q < 0)
            p = sign * math.sqrt((tmp2 / (3 * tmp3)) ** 2 - tmp1 / (3 * tmp3))
            a = (math.pi + math.acos(q / p**3)) / 3
            prop0 = 2 * p * math.cos(a) - tmp2 / (3 * tmp3)
            prop1 = prop0 + difference
        std = math.sqrt(prop1 * (1 - prop1) / nobs1 + prop0 * (1 - prop0) / nobs0)
    except (ValueError, ZeroDivisionError):
        return math.nan
    diff_stat = p1 - p0 - difference
    if std == 0:
        return math.nan if diff_stat == 0 else math.copysign(math.inf, diff_stat)
    return diff_stat / std


def score_test(treatment: Arm, control: Arm) -> tuple[float, float]:
    """(z, two-sided p-value) of the score test of no difference."""
    z = score_statistic(treatment, control, 0.0)
    return z, 2 * _norm_sf(abs(z))


def score_interval(treatment: Arm, control: Arm, *, alpha: float) -> tuple[float, float]:
    """The differences the score test does not reject at `alpha`, found by bisection on each side of the estimate.

    The statistic falls as the hypothesised difference rises; where it is undefined (at the -1/+1 edges) the
    difference counts as rejected, which keeps the bound inside the open interval.
    """
    critical = _norm_isf(alpha / 2)
    estimate = treatment.rate - control.rate

    def bound(outside: float, inside: float, rejected: Callable[[float], bool]) -> float:
        for _ in range(_BISECTIONS):
            middle = (outside + inside) / 2
            if rejected(middle):
                outside = middle
            else:
                inside = middle
        return inside

    def too_low(delta: float) -> bool:
        z = score_statistic(treatment, control, delta)
        return math.isnan(z) or z > critical

    def too_high(delta: float) -> bool:
        z = score_statistic(treatment, control, delta)
        return math.isnan(z) or z < -critical

    return bound(-1.0, estimate, too_low), bound(1.0, estimate, too_high)


def rate_interval(arm: Arm, *, alpha: float) -> tuple[float, float] | None:
    """Wilson interval of one arm's conversion rate (for display; the decision uses the difference's interval)."""
    if arm.exposed == 0:
        return None
    lower, upper = proportion_confint(arm.converted, arm.exposed, alpha=alpha, method="wilson")
    return float(lower), float(upper)


def srm_p_value(control: int, treatment: int, treatment_share: float) -> float | None:
    """Chi-square p-value of the observed split against the configured share (None without users or a split).

    One degree of freedom: the chi-square survival function is erfc(sqrt(x / 2)).
    """
    total = control + treatment
    if total == 0 or not 0.0 < treatment_share < 1.0:
        return None
    expected_control, expected_treatment = total * (1 - treatment_share), total * treatment_share
    statistic = (control - expected_control) ** 2 / expected_control
    statistic += (treatment - expected_treatment) ** 2 / expected_treatment
    return math.erfc(math.sqrt(statistic / 2))


# --- power and the planned sample -------------------------------------------------------------------------------------


def _cohens_h(baseline_rate: float, relative_mde: float) -> float | None:
    """|Cohen's h| between the baseline and the baseline moved by the relative MDE (None where undefined)."""
    target = baseline_rate * (1 + relative_mde)
    if not 0.0 < baseline_rate < 1.0 or not 0.0 < target < 1.0:
        return None
    return abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline_rate)))


def _two_sided_power(shift: float, critical: float) -> float:
    """statsmodels' `normal_power`, two-sided: both tails of a z-test whose statistic has mean `shift`."""
    return _norm_sf(critical - shift) + _norm_cdf(-critical - shift)


def min_sample_per_variant(baseline_rate: float, settings: Settings) -> int | None:
    """Users per variant to detect a relative change of `relative_mde` on the baseline with the wanted power.

    What `NormalIndPower().solve_power` returns, solved directly: the shift d sqrt(n_eff) of the z statistic that gives
    the power (Newton from the one-tailed closed form z_{alpha/2} + z_power), n_eff = n1 r / (1 + r).
    """
    effect = _cohens_h(baseline_rate, settings.relative_mde)
    share = settings.treatment_share
    if not effect or not 0.0 < share < 1.0 or not settings.alpha < settings.power < 1.0:
        return None
    ratio = share / (1 - share)
    critical = _norm_isf(settings.alpha / 2)
    shift = critical + _norm_isf(1 - settings.power)
    for _ in range(50):
        step = (_two_sided_power(shift, critical) - settings.power) / (
            _norm_pdf(critical - shift) - _norm_pdf(critical + shift)
        )
        shift -= step
        if abs(step) < 1e-13 * shift:
            break
    n = (shift / effect) ** 2 * (1 + ratio) / ratio * max(1.0, ratio)
    return math.ceil(n) if math.isfinite(n) else None


def achieved_power(baseline_rate: float, control: int, treatment: int, settings: Settings) -> float | None:
    """Power of the fixed-horizon test at these sample sizes to detect the configured MDE."""
    effect = _cohens_h(baseline_rate, settings.relative_mde)
    if control == 0 or treatment == 0 or effect is None:
        return None
    n_effective = 1.0 / (1.0 / control + 1.0 / treatment)
    return _two_sided_power(effect * math.sqrt(n_effective), _norm_isf(settings.alpha / 2))


# --- sequential: the normal-mixture confidence sequence ---------------------------------------------------------------


def _rho_squared(alpha: float, n_star: float) -> float:
    return (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star


def sequential_half_width(
    variance: float, n: int, alpha: float, n_star: float, *, rho_alpha: float | None = None
) -> float:
    """Half-width of the asymptotic normal-mixture confidence sequence at level 1 - alpha.

    `variance` is the variance of the estimated difference, `n` the total sample (both arms), `n_star` the tuning
    sample size; rho is tuned for `rho_alpha` (by default `alpha` itself).
    """
    if n < 1 or variance < 0:
        raise ValueError("n must be at least 1 and the variance non-negative")
    rho2 = _rho_squared(alpha if rho_alpha is None else rho_alpha, n_star)
    s2 = variance * n
    spread = n * rho2 + 1
    return math.sqrt(2 * s2 * spread / (n * n * rho2) * math.log(math.sqrt(spread) / alpha))


def always_valid_p_value(difference: float, variance: float, n: int, alpha: float, n_star: float) -> float:
    """The smallest alpha' at which the confidence sequence (rho tuned at `alpha`) excludes 0.

    Solving half-width(alpha') = |difference| with rho fixed: sqrt(1 + N rho^2) exp(-z^2 N rho^2 / (2 (1 + N rho^2))),
    z^2 = difference^2 / variance; capped at 1.
    """
    if n < 1 or variance <= 0:
        raise ValueError("n must be at least 1 and the variance positive")
    spread = n * _rho_squared(alpha, n_star)
    log_p = 0.5 * math.log1p(spread) - difference * difference / variance * spread / (2 * (1 + spread))
    return min(1.0, math.exp(log_p))


# --- group sequential: Lan-DeMets O'Brien-Fleming-like bounds ---------------------------------------------------------


def _spent(alpha: float, fraction: float) -> float:
    """Two-sided alpha spent by information `fraction`: alpha / 2 on each side, O'Brien-Fleming-like on each."""
    return 4 * float(ndtr(-_norm_isf(alpha / 4) / math.sqrt(fraction)))  # 2 (2 - 2 Phi(x)), kept accurate in the tail


def _simpson(lower: float, upper: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and Simpson weights on [lower, upper], spaced about `step`."""
    intervals = 2 * max(1, math.ceil((upper - lower) / (2 * step)))
    nodes = np.linspace(lower, upper, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return nodes, weights * (upper - lower) / (3 * intervals)


def _tail_bound(spend: float, alpha: float, fraction: float) -> float:
    """The bound of a look that spends almost nothing: 2 (1 - Phi(c)) = spend, as if no earlier look could stop.

    Exact for a first look; for later looks whose earlier bounds are as extreme, off by far less than the grid error.
    Where the spend underflows to 0 (hundreds of looks), the per-side boundary z_{alpha/4} / sqrt(t) itself.
    """
    return float(norm.isf(spend / 2)) if spend > 0 else _norm_isf(alpha / 4) / math.sqrt(fraction)


@lru_cache(maxsize=128)
def spending_bounds(alpha: float, looks: int) -> tuple[float, ...]:
    """Critical |z| at each of `looks` equally spaced looks (Lan-DeMets, O'Brien-Fleming-like, two-sided alpha).

    The score S_k (a sum of k independent N(0, 1) increments, Z_k = S_k / sqrt(k)) continues while |Z_k| < c_k; its
    sub-density over the continuation region is carried from look to look by Simpson integration (over at most
    +-_Z_CAP standard deviations: what lies beyond is below 1e-18), and c_k solves
    P(first crossing at look k) = alpha(t_k) - alpha(t_{k-1}).
    """
    if not 0.0 < alpha < 1.0 or looks < 1:
        raise ValueError("alpha must be in (0, 1) and looks at least 1")
    spent = [0.0] + [_spent(alpha, k / looks) for k in range(1, looks + 1)]
    step = min(_GRID_STEP * max(1.0, looks / _GRID_LOOKS), 0.25)
    bounds = [_tail_bound(spent[1], alpha, 1 / looks)]
    edge = min(bounds[0], _Z_CAP)
    nodes, weights = _simpson(-edge, edge, step)
    mass = weights * np.exp(-0.5 * nodes**2) / math.sqrt(2 * math.pi)  # sub-density times weight, look 1
    for k in range(2, looks + 1):
        target, root_k = spent[k] - spent[k - 1], math.sqrt(k)
        if target < _TINY_SPEND:
            c_k = _tail_bound(target, alpha, k / looks)
        else:

            def excess(
                c: float, mass: np.ndarray = mass, nodes: np.ndarray = nodes, k: int = k, target: float = target
            ) -> float:
                """P(first crossing at look k | bound c) / target - 1: falls from ~1 / target - 1 at 0 to -1."""
                edge = c * math.sqrt(k)
                return float(mass @ (ndtr(nodes - edge) + ndtr(-edge - nodes))) / target - 1

            c_k = float(brentq(excess, 0.0, 40.0, xtol=1e-12, rtol=1e-12))
        bounds.append(c_k)
        if k < looks:
            edge = min(c_k, _Z_CAP) * root_k
            new_nodes, new_weights = _simpson(-edge, edge, step)
            kernel = np.exp(-0.5 * (new_nodes[:, None] - nodes[None, :]) ** 2) / math.sqrt(2 * math.pi)
            mass, nodes = new_weights * (kernel @ mass), new_nodes
    return tuple(bounds)


# --- the decision -----------------------------------------------------------------------------------------------------


def _decide_fixed(significant: bool, difference: float, enough: bool, srm_ok: bool) -> tuple[str, list[str]]:
    reasons: list[str] = []
    if not srm_ok:
        reasons.append("srm_detected")
    if not enough:
        reasons.append("insufficient_sample")
    if not significant:
        reasons.append("not_significant")
        return KEEP_RUNNING, reasons
    if difference < 0:
        # Significant harm is acted on even before the planned sample: stopping a loss early is cheap.
        reasons.append("significant_harm")
        return (ROLLBACK if srm_ok else KEEP_RUNNING), reasons
    reasons.append("significant_improvement")
    return (SHIP if srm_ok and enough else KEEP_RUNNING), reasons


def _decide_sequential(lower: float, upper: float, below_plan: bool, srm_ok: bool) -> tuple[str, list[str]]:
    """Act on the interval alone; the planned sample is information, the SRM check a veto."""
    reasons: list[str] = []
    if not srm_ok:
        reasons.append("srm_detected")
    if below_plan:
        reasons.append("insufficient_sample")
    if lower > 0:
        reasons.append("significant_improvement")
        return (SHIP if srm_ok else KEEP_RUNNING), reasons
    if upper < 0:
        reasons.append("significant_harm")
        return (ROLLBACK if srm_ok else KEEP_RUNNING), reasons
    reasons.append("not_significant")
    return KEEP_RUNNING, reasons


def _method(settings: Settings, look: int | None) -> str:
    if settings.rule == SEQUENTIAL:
        return (
            f"confidence sequence (asymptotic normal mixture, tuned at N* = {settings.n_star} users; unpooled "
            "variance): valid at any number of looks; always-valid p-value"
        )
    if settings.rule == GROUP_SEQUENTIAL:
        return (
            "group sequential repeated confidence interval (Lan-DeMets O'Brien-Fleming-like alpha spending over "
            f"{settings.planned_looks} equally spaced planned looks; this is look {look}): valid only at the planned "
            "looks; nominal fixed-horizon p-value"
        )
    return f"{METHOD}: valid only when read once, at the planned sample"


def _look(settings: Settings, look: int | None) -> int | None:
    if settings.rule != GROUP_SEQUENTIAL:
        return look
    if look is None:
        raise ValueError("the group-sequential rule needs the look (1-based index of the planned look)")
    if look < 1:
        raise ValueError(f"look must be at least 1, got {look}")
    return min(look, settings.planned_looks)


def analyse(
    control: Arm, treatment: Arm, settings: Settings, look: int | None = None, adjusted: Cuped | None = None
) -> Result:
    """Compare treatment against control under the settings' rule and decide: ship, rollback or keep-running.

    `look` is the 1-based index of the planned look; only the group-sequential rule uses it (and requires it). Past
    the last planned look it shows the last bound's interval but no longer decides (`beyond_planned_looks`).
    `adjusted` (CUPED) replaces the difference and its variance in the two sequential rules; the fixed-horizon rule's
    exact score test on the counts ignores it. `z` and `fixed_horizon_p_value` stay the unadjusted score test's.
    """
    beyond_plan = settings.rule == GROUP_SEQUENTIAL and look is not None and look > settings.planned_looks
    look = _look(settings, look)
    srm = srm_p_value(control.exposed, treatment.exposed, settings.treatment_share)
    srm_ok = srm is None or srm >= SRM_ALPHA
    needed = min_sample_per_variant(control.rate, settings)
    power = achieved_power(control.rate, control.exposed, treatment.exposed, settings)
    base = Result(
        difference=None,
        relative_lift=None,
        ci_lower=None,
        ci_upper=None,
        level=1 - settings.alpha,
        method=_method(settings, look),
        z=None,
        p_value=None,
        alpha=settings.alpha,
        srm_p_value=srm,
        srm_ok=srm_ok,
        min_sample_per_variant=needed,
        power=power,
        decision=KEEP_RUNNING,
        reasons=[],
        rule=settings.rule,
        look=look,
        valid_at_any_look=settings.rule == SEQUENTIAL,
    )
    if control.exposed == 0 or treatment.exposed == 0:
        return replace(base, reasons=["no_exposures"])
    difference = treatment.rate - control.rate
    lift = difference / control.rate if control.rate > 0 else None
    if control.converted + treatment.converted in (0, control.exposed + treatment.exposed):
        # Every user converted, or none did: the rates are equal at the boundary and no test is defined.
        return replace(base, difference=difference, relative_lift=lift, reasons=["no_variance"])
    z, fixed_p = score_test(treatment, control)
    base = replace(base, difference=difference, relative_lift=lift, z=z, fixed_horizon_p_value=fixed_p)
    if settings.rule == FIXED_HORIZON:
        lower, upper = score_interval(treatment, control, alpha=settings.alpha)
        enough = needed is not None and min(control.exposed, treatment.exposed) >= needed
        decision, reasons = _decide_fixed(fixed_p < settings.alpha, difference, enough, srm_ok)
        return replace(base, ci_lower=lower, ci_upper=upper, p_value=fixed_p, decision=decision, reasons=reasons)
    p_c, p_t = control.rate, treatment.rate
    variance = p_c * (1 - p_c) / control.exposed + p_t * (1 - p_t) / treatment.exposed
    if adjusted is not None:
        difference, variance = adjusted.difference, adjusted.variance
        base = replace(
            base,
            difference=difference,
            relative_lift=difference / control.rate if control.rate > 0 else None,
            method=f"{base.method}; CUPED-adjusted with a pre-period covariate",
            cuped_applied=True,
            variance_reduction=adjusted.variance_reduction,
        )
    if variance <= 0:
        # Each arm all-or-nothing (0% against 100%): the unpooled variance is 0 and the interval is not defined.
        return replace(base, p_value=fixed_p if settings.rule == GROUP_SEQUENTIAL else None, reasons=["no_variance"])
    critical: float | None = None
    if settings.rule == SEQUENTIAL:
        n = control.exposed + treatment.exposed
        half = sequential_half_width(variance, n, settings.alpha, settings.n_star)
        p_value = always_valid_p_value(difference, variance, n, settings.alpha, settings.n_star)
    else:
        assert look is not None  # _look() requires it for this rule
        critical = spending_bounds(settings.alpha, settings.planned_looks)[look - 1]
        half = critical * math.sqrt(variance)
        # The nominal p-value: the score test's on the counts, or the Wald test's on the adjusted difference.
        p_value = fixed_p if adjusted is None else 2 * _norm_sf(abs(difference) / math.sqrt(variance))
    below_plan = needed is not None and min(control.exposed, treatment.exposed) < needed
    decision, reasons = _decide_sequential(difference - half, difference + half, below_plan, srm_ok)
    if beyond_plan:
        # The planned looks have spent all of alpha: looking on at the last bound would spend it again.
        decision, reasons = KEEP_RUNNING, [*reasons, "beyond_planned_looks"]
    return replace(
        base,
        ci_lower=difference - half,
        ci_upper=difference + half,
        p_value=p_value,
        critical_z=critical,
        decision=decision,
        reasons=reasons,
    )
