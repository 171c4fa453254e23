"""The names every app shares for the two arms of an experiment and for the one serving slot they belong to."""

CONTROL = "control"
TREATMENT = "treatment"
VARIANTS = (CONTROL, TREATMENT)
# The serving state's slot and the experiment it runs; one slot today, named in every record it touches.
DEFAULT_EXPERIMENT = "rec-engine"
