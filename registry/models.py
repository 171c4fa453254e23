"""Model versions, the serving state and its append-only history."""

from django.db import models


class ModelStatus(models.TextChoices):
    READY = "ready", "ready"
    ARCHIVED = "archived", "archived"


class ModelVersion(models.Model):
    """One published model version (`models` collection); its files live in the artifact store."""

    model_name = models.CharField(max_length=64, db_column="modelName")
    version = models.CharField(max_length=32, unique=True)
    # major * 10^12 + minor * 10^6 + patch, so "newest first" sorts numerically (v1.10.0 after v1.9.0).
    version_key = models.BigIntegerField(db_column="versionKey")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.READY)
    algorithm = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    data_snapshot_id = models.CharField(max_length=128, db_column="dataSnapshotId")
    pipeline_git_sha = models.CharField(max_length=64, db_column="pipelineGitSha")
    container_image_digest = models.CharField(max_length=128, db_column="containerImageDigest")
    artifact_uri = models.CharField(max_length=512, db_column="artifactUri")
    # {file name: sha256 hex} for every artifact file, verified before a version is served.
    artifact_sha256 = models.JSONField(default=dict, db_column="artifactSha256")
    # {start, end, lookbackDays, testDays, cutoff}: the events this version learned from and was evaluated on.
    training_window = models.JSONField(default=dict, db_column="trainingWindow")
    # {events, users, items, trainEvents, testEvents, ...}
    counts = models.JSONField(default=dict)
    # Where each provenance value came from: {"dataSnapshotId": "computed", "pipelineGitSha": "git", ...}
    provenance_sources = models.JSONField(default=dict, db_column="provenanceSources")
    trained_at = models.DateTimeField(db_column="trainedAt")
    created_at = models.DateTimeField(db_column="createdAt")

    class Meta:
        db_table = "models"
        ordering = ["-version_key"]
        indexes = [models.Index(fields=["-version_key"], name="models_version_key")]

    def __str__(self) -> str:
        return f"{self.model_name} {self.version}"


class ServingState(models.Model):
    """The one serving state: which version each variant serves and the treatment's share of users."""

    experiment = models.CharField(max_length=64, unique=True, default="rec-engine")
    control_version = models.CharField(max_length=32, db_column="controlVersion")
    # null, not "": no treatment is configured, so every user gets the control version.
    treatment_version = models.CharField(max_length=32, null=True, blank=True, db_column="treatmentVersion")  # noqa: DJ001
    treatment_share = models.FloatField(default=0.5, db_column="treatmentShare")
    # Incremented by every accepted change; a change is a conditional write on the revision it read.
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(db_column="updatedAt")
    updated_by = models.CharField(max_length=150, db_column="updatedBy")
    # The assignment salt; "" means the EXPERIMENT_SALT setting. An experiment sets its own, so its split is
    # independent of the experiments before it.
    salt = models.CharField(max_length=64, blank=True, default="")
    # The experiment running on this slot and its phase, stamped on every exposure served under this state.
    running_experiment = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, default=None, db_column="runningExperiment"
    )
    phase = models.PositiveIntegerField(null=True, blank=True, default=None)

    class Meta:
        db_table = "model_serving_state"

    def __str__(self) -> str:
        return f"{self.experiment} r{self.revision}: control={self.control_version} treatment={self.treatment_version}"


class ServingStateChange(models.Model):
    """An append-only record of one accepted serving-state change: who, when, from, to and why."""

    experiment = models.CharField(max_length=64, default="rec-engine")
    revision = models.PositiveIntegerField()
    changed_at = models.DateTimeField(db_column="changedAt")
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32)
    target = models.CharField(max_length=16)
    # {"control", "treatment", "treatmentShare"} before and after the change.
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    reason = models.TextField(blank=True, default="")

    class Meta:
        db_table = "serving_state_changes"
        ordering = ["-revision"]
        # Unique (experiment, revision) is created by migration 0002 with pymongo: the backend's UniqueConstraint
        # adds a partial filter ($type "long") that small integers, stored as int32, never match.

    def __str__(self) -> str:
        return f"r{self.revision} {self.action} {self.target} by {self.actor}"


class VersionReservation(models.Model):
    """A version number taken by a training run that is still publishing, so two runs never pick the same one.

    Deleted when the run registers its version or fails; the unique index on `version` does the arbitration.
    """

    version = models.CharField(max_length=32, unique=True)
    version_key = models.BigIntegerField(db_column="versionKey")
    owner = models.CharField(max_length=200)
    reserved_at = models.DateTimeField(db_column="reservedAt")

    class Meta:
        db_table = "model_version_reservations"
        indexes = [models.Index(fields=["-version_key"], name="reservations_version_key")]

    def __str__(self) -> str:
        return f"{self.version} reserved by {self.owner}"
