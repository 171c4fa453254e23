"""The serving state as every reader sees it: the admin API, the web admin, the commands and the serving workers."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from core.assignment import DEFAULT_SALT
from core.errors import ApplicationError
from core.variants import CONTROL, DEFAULT_EXPERIMENT, TREATMENT
from registry.models import ServingState

ALL = "all"
# What a switch can put a version on: one variant, or both at once.
TARGETS = (CONTROL, TREATMENT, ALL)
# Why a change was made, as kept in the history; the same bound for the API, the web admin and the commands.
REASON_MAX_LENGTH = 500


@dataclass(frozen=True)
class ServingStateInfo:
    """Which version each variant serves, the treatment's share of users and the revision of that state."""

    revision: int
    control_version: str
    treatment_version: str | None
    treatment_share: float
    experiment: str = DEFAULT_EXPERIMENT
    # When and by whom the state was last changed; unknown for a state a worker saved before it kept these.
    updated_at: datetime | None = None
    updated_by: str = ""
    # The assignment salt in force, and the experiment running on this slot with its phase (None when none runs).
    salt: str = DEFAULT_SALT
    running_experiment: str | None = None
    phase: int | None = None


def serving_state_info(state: ServingState) -> ServingStateInfo:
    """The stored state as the shared type."""
    return ServingStateInfo(
        revision=state.revision,
        control_version=state.control_version,
        treatment_version=state.treatment_version,
        treatment_share=state.treatment_share,
        experiment=state.experiment,
        updated_at=state.updated_at,
        updated_by=state.updated_by,
        salt=state.salt or settings.EXPERIMENT_SALT,
        running_experiment=state.running_experiment,
        phase=state.phase,
    )


def reason_check(reason: object) -> str:
    """The reason a change gives, trimmed; refused when it is not a string of at most REASON_MAX_LENGTH characters."""
    if not isinstance(reason, str) or len(reason) > REASON_MAX_LENGTH:
        raise ApplicationError(
            "validation_error", f"reason must be a string of at most {REASON_MAX_LENGTH} characters."
        )
    return reason.strip()
