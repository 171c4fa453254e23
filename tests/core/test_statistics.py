"""Experiment statistics against independently computed references, and decisions on simulated experiments."""

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy.stats import binom, chisquare, norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
    score_test_proportions_2indep,
)

from core.statistics import (
    FIXED_HORIZON,
    KEEP_RUNNING,
    ROLLBACK,
    RULES,
    SHIP,
    Arm,
    Settings,
    achieved_power,
    analyse,
    min_sample_per_variant,
    score_interval,
    score_statistic,
    score_test,
    srm_p_value,
)


def test_the_test_is_the_textbook_pooled_z_test_at_zero() -> None:
    # Worked example: 20 of 300 against 21 of 298 gives z = -0.18401, p = 0.85401.
    z, p = score_test(Arm(300, 20), Arm(298, 21))
    assert z == pytest.approx(-0.18401, abs=1e-5)
    assert p == pytest.approx(0.85401, abs=1e-5)
    # ... and by the formula, independently.
    pooled = 41 / 598
    z_formula = (20 / 300 - 21 / 298) / math.sqrt(pooled * (1 - pooled) * (1 / 300 + 1 / 298))
    assert z == pytest.approx(z_formula, rel=1e-9)


@pytest.mark.parametrize("counts", [(120, 1000, 100, 1000), (56, 70, 48, 80), (5, 400, 15, 380), (900, 1000, 880, 990)])
def test_the_test_matches_statsmodels_proportions_ztest(counts: tuple[int, int, int, int]) -> None:
    c1, n1, c2, n2 = counts
    z, p = score_test(Arm(n1, c1), Arm(n2, c2))
    z_ref, p_ref = proportions_ztest([c1, c2], [n1, n2])
    assert (z, p) == pytest.approx((float(z_ref), float(p_ref)), rel=1e-9)


def test_the_statistic_is_statsmodels_score_test_at_any_hypothesised_difference() -> None:
    rng = np.random.default_rng(5)
    for _ in range(2000):
        n1, n0 = (int(x) for x in rng.integers(1, 3000, size=2))
        c1, c0 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n0 + 1))
        value = float(rng.choice([0.0, rng.uniform(-1, 1), rng.uniform(-0.05, 0.05)]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # statsmodels' NaN at undefined points says so
            ref = score_test_proportions_2indep(c1, n1, c0, n0, value=value, compare="diff", correction=False)
        expected, got = float(ref.statistic), score_statistic(Arm(n1, c1), Arm(n0, c0), value)
        if math.isnan(expected):
            assert math.isnan(got), (c1, n1, c0, n0, value)
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (c1, n1, c0, n0, value)


def test_the_interval_matches_statsmodels_score_interval_where_that_converges() -> None:
    lower, upper = score_interval(Arm(70, 56), Arm(80, 48), alpha=0.05)
    ref = confint_proportions_2indep(56, 70, 48, 80, method="score", compare="diff", correction=False)
    assert (lower, upper) == pytest.approx((float(ref[0]), float(ref[1])), abs=1e-9)


def test_the_interval_bounds_are_where_the_test_is_exactly_at_alpha() -> None:
    treatment, control = Arm(10, 9), Arm(10, 3)  # statsmodels' own inversion fails on these counts
    lower, upper = score_interval(treatment, control, alpha=0.05)
    assert abs(score_statistic(treatment, control, lower)) == pytest.approx(norm.isf(0.025), abs=1e-6)
    assert abs(score_statistic(treatment, control, upper)) == pytest.approx(norm.isf(0.025), abs=1e-6)
    assert -1 < lower < 0.6 < upper < 1


def test_interval_and_test_always_agree() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n1, n2 = (int(x) for x in rng.integers(20, 3000, size=2))
        c1, c2 = int(rng.integers(1, n1)), int(rng.integers(1, n2))
        treatment, control = Arm(n1, c1), Arm(n2, c2)
        _, p = score_test(treatment, control)
        lower, upper = score_interval(treatment, control, alpha=0.05)
        if abs(p - 0.05) > 1e-6:
            assert (p < 0.05) == (not lower <= 0 <= upper), (treatment, control, p, lower, upper)


def test_srm_is_a_chi_square_test_against_the_configured_share() -> None:
    assert srm_p_value(4900, 5100, 0.5) == pytest.approx(float(chisquare([4900, 5100]).pvalue))
    assert srm_p_value(8950, 1050, 0.1) == pytest.approx(float(chisquare([8950, 1050], [9000, 1000]).pvalue))
    assert srm_p_value(0, 0, 0.5) is None


def test_the_minimum_sample_follows_the_power_analysis() -> None:
    effect = abs(float(proportion_effectsize(0.11, 0.10)))
    expected = math.ceil(float(NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)))
    assert min_sample_per_variant(0.10, Settings()) == expected
    # The classic rule of thumb n ~ 16 p (1 - p) / delta^2 lands close to it.
    assert expected == pytest.approx(16 * 0.1 * 0.9 / 0.01**2, rel=0.03)


def test_the_minimum_sample_and_power_match_statsmodels_normal_ind_power() -> None:
    grid = itertools.product([0.02, 0.1, 0.35], [0.05, -0.1], [0.01, 0.05], [0.5, 0.8, 0.95], [0.2, 0.5, 0.7])
    for base, mde, alpha, power, share in grid:
        settings = Settings(alpha=alpha, relative_mde=mde, power=power, treatment_share=share)
        effect = abs(float(proportion_effectsize(base * (1 + mde), base)))
        ratio = share / (1 - share)
        n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio)
        assert min_sample_per_variant(base, settings) == math.ceil(float(n) * max(1.0, ratio))
        reference = NormalIndPower().power(effect_size=effect, nobs1=1234, alpha=alpha, ratio=777 / 1234)
        assert achieved_power(base, 1234, 777, settings) == pytest.approx(float(reference), rel=1e-9)


def simulate(rng: np.random.Generator, n: int, base: float, lift: float, share: float = 0.5) -> tuple[Arm, Arm]:
    n_treatment = int(rng.binomial(2 * n, share))
    n_control = 2 * n - n_treatment
    return (
        Arm(n_control, int(rng.binomial(n_control, base))),
        Arm(n_treatment, int(rng.binomial(n_treatment, base * (1 + lift)))),
    )


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(("lift", "decision"), [(0.20, SHIP), (-0.20, ROLLBACK), (0.0, KEEP_RUNNING)])
def test_planted_effects_with_ample_users_are_decided_right(lift: float, decision: str, rule: str) -> None:
    rng = np.random.default_rng(42)
    control, treatment = simulate(rng, 40_000, 0.10, lift)
    result = analyse(control, treatment, Settings(rule=rule), look=14)
    assert result.decision == decision, result.reasons


@pytest.mark.parametrize("rule", RULES)
def test_a_broken_split_is_flagged_and_never_shipped(rule: str) -> None:
    result = analyse(Arm(12_000, 1200), Arm(8_000, 1000), Settings(treatment_share=0.5, rule=rule), look=14)
    assert "srm_detected" in result.reasons
    assert "significant_improvement" in result.reasons
    assert result.decision == KEEP_RUNNING


def test_a_small_fixed_horizon_experiment_keeps_running_even_when_it_looks_good() -> None:
    result = analyse(Arm(500, 50), Arm(500, 75), Settings(rule=FIXED_HORIZON))
    assert result.p_value is not None and result.p_value < 0.05
    assert result.decision == KEEP_RUNNING
    assert "insufficient_sample" in result.reasons


@pytest.mark.parametrize("rule", RULES)
def test_no_exposures_is_not_an_error(rule: str) -> None:
    result = analyse(Arm(0, 0), Arm(0, 0), Settings(rule=rule), look=1)
    assert (result.decision, result.reasons) == (KEEP_RUNNING, ["no_exposures"])


def test_a_a_experiments_read_once_decide_wrongly_about_alpha_of_the_time() -> None:
    rng = np.random.default_rng(7)
    runs = 200
    settings = Settings(rule=FIXED_HORIZON)
    wrong = sum(analyse(*simulate(rng, 20_000, 0.10, 0.0), settings).decision != KEEP_RUNNING for _ in range(runs))
    # Under no effect, ship + rollback happen with probability at most alpha; 99.9% binomial bounds.
    assert binom.ppf(0.0005, runs, 0.05) <= wrong <= binom.ppf(0.9995, runs, 0.05)
