"""Writes of the registry, as the other apps call them: publishing versions and changing the serving state."""

from registry.services.publishing import (
    Provenance,
    PublishedVersion,
    VersionDraft,
    model_version_create,
    model_version_publish,
    model_version_release,
    model_version_reserve,
)
from registry.services.switching import (
    NEW_PHASE,
    SHARE_CLOSED,
    TREATMENT_CHANGED,
    ServingChange,
    serving_change_listener_register,
    serving_state_experiment_set,
    serving_state_rollback,
    serving_state_switch,
)

__all__ = [
    "NEW_PHASE",
    "SHARE_CLOSED",
    "TREATMENT_CHANGED",
    "ServingChange",
    "serving_change_listener_register",
    "serving_state_experiment_set",
    "Provenance",
    "PublishedVersion",
    "VersionDraft",
    "model_version_create",
    "model_version_publish",
    "model_version_release",
    "model_version_reserve",
    "serving_state_rollback",
    "serving_state_switch",
]
