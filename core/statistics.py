"""Experiment statistics and the decision rule (pure Python over statsmodels and scipy).

- Test: the score test for the difference of two independent proportions (statsmodels
  `score_test_proportions_2indep`, compare="diff", correction=False). At a difference of zero it is exactly the
  textbook pooled two-proportion z-test.
- Interval: the inversion of that same score test (the Mee interval): every difference the test does not reject at
  alpha. So the interval excludes zero exactly when the test rejects. statsmodels' own inversion fails on small or
  extreme counts (its root finder gets no sign change), so the inversion is done here by bisection.
- Sample-ratio mismatch: a chi-square goodness-of-fit test of the observed split against the configured share;
  p < 0.001 makes the result invalid.
- Minimum sample per variant: two-sided z-test power for the minimum detectable effect (relative MDE on the control
  rate), via Cohen's h (`proportion_effectsize`) and `NormalIndPower`; the achieved power at the observed sample sizes
  is reported with it.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from scipy.stats import chisquare, norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize, score_test_proportions_2indep

METHOD = "score test for the difference (Mee interval by test inversion; pooled z-test at zero)"
_BISECTIONS = 60
SRM_ALPHA = 0.001
SHIP, ROLLBACK, KEEP_RUNNING = "ship", "rollback", "keep-running"


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


@dataclass(frozen=True)
class Result:
    difference: float | None
    relative_lift: float | None
    ci_lower: float | None
    ci_upper: float | None
    level: float
    method: str
    z: float | None
    p_value: float | None
    alpha: float
    srm_p_value: float | None
    srm_ok: bool
    min_sample_per_variant: int | None
    power: float | None
    decision: str
    reasons: list[str] = field(default_factory=list)


def score_statistic(treatment: Arm, control: Arm, difference: float) -> float:
    """The score statistic for H0: p_treatment - p_control = difference (NaN where undefined)."""
    with warnings.catch_warnings():
        # At the edges of [-1, 1] statsmodels divides by zero and says so; NaN is the answer we handle.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = score_test_proportions_2indep(
            treatment.converted,
            treatment.exposed,
            control.converted,
            control.exposed,
            value=difference,
            compare="diff",
            correction=False,
        )
    return float(result.statistic)


def score_test(treatment: Arm, control: Arm) -> tuple[float, float]:
    """(z, two-sided p-value) of the score test of no difference."""
    z = score_statistic(treatment, control, 0.0)
    return z, float(2 * norm.sf(abs(z)))


def score_interval(treatment: Arm, control: Arm, *, alpha: float) -> tuple[float, float]:
    """The differences the score test does not reject at `alpha`, found by bisection on each side of the estimate.

    The statistic falls as the hypothesised difference rises; where it is undefined (at the -1/+1 edges) the
    difference counts as rejected, which keeps the bound inside the open interval.
    """
    critical = float(norm.isf(alpha / 2))
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
    """Chi-square p-value of the observed split against the configured share (None without users or a split)."""
    total = control + treatment
    if total == 0 or not 0.0 < treatment_share < 1.0:
        return None
    expected = [total * (1 - treatment_share), total * treatment_share]
    return float(chisquare([control, treatment], f_exp=expected).pvalue)


def min_sample_per_variant(baseline_rate: float, settings: Settings) -> int | None:
    """Users per variant to detect a relative change of `relative_mde` on the baseline with the wanted power."""
    target = baseline_rate * (1 + settings.relative_mde)
    if not 0.0 < baseline_rate < 1.0 or not 0.0 < target < 1.0:
        return None
    effect = abs(float(proportion_effectsize(target, baseline_rate)))
    ratio = settings.treatment_share / (1 - settings.treatment_share)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=settings.alpha, power=settings.power, ratio=ratio)
    return math.ceil(float(n) * max(1.0, ratio))


def achieved_power(baseline_rate: float, control: int, treatment: int, settings: Settings) -> float | None:
    """Power of the test at these sample sizes to detect the configured MDE."""
    target = baseline_rate * (1 + settings.relative_mde)
    if control == 0 or treatment == 0 or not 0.0 < baseline_rate < 1.0 or not 0.0 < target < 1.0:
        return None
    effect = abs(float(proportion_effectsize(target, baseline_rate)))
    return float(
        NormalIndPower().power(effect_size=effect, nobs1=control, alpha=settings.alpha, ratio=treatment / control)
    )


def _decide(significant: bool, difference: float, enough: bool, srm_ok: bool) -> tuple[str, list[str]]:
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


def analyse(control: Arm, treatment: Arm, settings: Settings) -> Result:
    """Compare treatment against control and decide: ship, rollback or keep-running, with the reasons."""
    srm = srm_p_value(control.exposed, treatment.exposed, settings.treatment_share)
    srm_ok = srm is None or srm >= SRM_ALPHA
    needed = min_sample_per_variant(control.rate, settings)
    power = achieved_power(control.rate, control.exposed, treatment.exposed, settings)
    level = 1 - settings.alpha
    base = Result(
        None, None, None, None, level, METHOD, None, None, settings.alpha, srm, srm_ok, needed, power, KEEP_RUNNING, []
    )
    if control.exposed == 0 or treatment.exposed == 0:
        return replace(base, reasons=["no_exposures"])
    difference = treatment.rate - control.rate
    lift = difference / control.rate if control.rate > 0 else None
    if control.converted + treatment.converted in (0, control.exposed + treatment.exposed):
        # Every user converted, or none did: the rates are equal at the boundary and no test is defined.
        return replace(base, difference=difference, relative_lift=lift, reasons=["no_variance"])
    z, p_value = score_test(treatment, control)
    lower, upper = score_interval(treatment, control, alpha=settings.alpha)
    enough = needed is not None and min(control.exposed, treatment.exposed) >= needed
    decision, reasons = _decide(p_value < settings.alpha, difference, enough, srm_ok)
    return replace(
        base,
        difference=difference,
        relative_lift=lift,
        ci_lower=lower,
        ci_upper=upper,
        z=z,
        p_value=p_value,
        decision=decision,
        reasons=reasons,
    )
