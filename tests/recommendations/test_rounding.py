"""Scores and latencies in answers and traces are rounded without round()'s decimal-string round trip."""

import numpy as np

from recommendations.services import rounded


def test_rounded_agrees_with_round_on_float32_scores_of_every_magnitude() -> None:
    rng = np.random.default_rng(7)
    values = (rng.random(200_000) * rng.choice([1e-4, 1e-2, 1.0, 10.0, 1000.0], 200_000)).astype(np.float32)
    for value in values.tolist():
        assert rounded(value, 6) == round(value, 6), value


def test_rounded_values_print_with_at_most_the_decimals_kept() -> None:
    for value, places, printed in [(0.12345678, 6, "0.123457"), (12.34449, 3, "12.344"), (-0.98765432, 6, "-0.987654")]:
        assert repr(rounded(value, places)) == printed
