"""The metrics an experiment reads besides its primary conversion: guardrails and a small catalogue of secondaries.

Names and defaults only here; the statistics over them live in core/guardrails.py.
"""

# Why an answer was not the assigned variant's own ranking for the rider, as serving records it on the exposure
# (besides the treatment stand-ins treatment_unset and treatment_unloadable): the model does not know the rider, or
# the treatment's model raised and control answered. A model error counts as an error, any other reason as a fallback.
COLD_START, MODEL_ERROR = "cold_start", "model_error"

# Guardrails: per answer, computed from the exposures the serving path records (latency, fallback, model error).
LATENCY_P95, LATENCY_P99, ERROR_RATE, FALLBACK_RATE = "latency_p95", "latency_p99", "error_rate", "fallback_rate"
GUARDRAIL_METRICS = (LATENCY_P95, LATENCY_P99, ERROR_RATE, FALLBACK_RATE)
# Fails when the treatment is worse than control by more than this: a relative margin on the control's value
# (latency: 20% slower) or an absolute one on a rate (error rate: 0.5 percentage points more).
DEFAULT_GUARDRAILS: tuple[dict[str, object], ...] = (
    {"metric": LATENCY_P95, "threshold": 0.20, "relative": True},
    {"metric": LATENCY_P99, "threshold": 0.30, "relative": True},
    {"metric": ERROR_RATE, "threshold": 0.005, "relative": False},
    {"metric": FALLBACK_RATE, "threshold": 0.02, "relative": False},
)

# Secondary metrics, per exposed user from their first exposure in the phase: reported, adjusted for multiplicity,
# never deciding alone. `event:<type>`: the share of users with at least one event of that type.
BOOKINGS_PER_USER, PLAYS_PER_USER, CONVERSION_24H = "bookings_per_user", "plays_per_user", "conversion_24h"
SECONDARY_METRICS = (BOOKINGS_PER_USER, PLAYS_PER_USER, CONVERSION_24H)
EVENT_METRIC_PREFIX = "event:"
HOLM, BENJAMINI_HOCHBERG = "holm", "bh"
ADJUSTMENTS = (HOLM, BENJAMINI_HOCHBERG)
# CUPED's covariate: each user's conversions in this many days before their first exposure in the phase.
CUPED_PRE_PERIOD_DAYS = 7
