"""The per-worker serving runtime: the current serving state and its loaded models, refreshed in the background.

Requests read an immutable `ServingSnapshot` through one attribute access: no database read on the request path. A
background thread compares the state's revision every SERVING_REFRESH_SECONDS and, on a change, loads and verifies
the new versions first, then swaps the snapshot in one assignment, so no request ever sees a half-loaded model and a
request in flight finishes on the snapshot it started with.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.assignment import DEFAULT_SALT
from core.variants import TREATMENT
from registry.loading import LoadedModel
from registry.state import ServingStateInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingSnapshot:
    revision: int
    treatment_share: float
    control: LoadedModel | None
    treatment: LoadedModel | None
    # Why the treatment's own version is not served (its requests then get control), if it is not.
    treatment_fallback: str | None
    # Why nothing can be served, if so.
    unavailable: str | None
    loaded_at: datetime | None = None
    # The assignment salt, and the running experiment and phase its exposures are tagged with.
    salt: str = DEFAULT_SALT
    experiment: str | None = None
    phase: int | None = None

    def model_for(self, variant: str) -> tuple[LoadedModel, str | None]:
        """The model that serves `variant`, and the fallback reason when it is control standing in."""
        assert self.control is not None
        if variant == TREATMENT:
            if self.treatment is not None:
                return self.treatment, None
            return self.control, self.treatment_fallback or "treatment_unset"
        return self.control, None


UNLOADED = ServingSnapshot(0, 0.0, None, None, None, "the serving state has not been loaded yet")

ReadState = Callable[[], ServingStateInfo | None]
LoadModel = Callable[[str], LoadedModel]
Clock = Callable[[], datetime]
# Told (old snapshot, new snapshot) after each swap, and the stage name of each failure; for metrics.
OnSwap = Callable[[ServingSnapshot, ServingSnapshot], None]
OnError = Callable[[str], None]


def _ignore_swap(old: ServingSnapshot, new: ServingSnapshot) -> None:
    return None


def _ignore_error(stage: str) -> None:
    return None


class ServingRuntime:
    """Holds the current snapshot for this process and keeps it in step with the database."""

    def __init__(
        self,
        read_state: ReadState,
        load_model: LoadModel,
        clock: Clock,
        refresh_seconds: float,
        on_swap: OnSwap = _ignore_swap,
        on_error: OnError = _ignore_error,
    ) -> None:
        self._on_swap = on_swap
        self._on_error = on_error
        self._read_state = read_state
        self._load_model = load_model
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._snapshot = UNLOADED
        self._models: dict[str, LoadedModel] = {}
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def snapshot(self) -> ServingSnapshot:
        return self._snapshot

    def start(self) -> None:
        """Load the state now, then keep refreshing it in a background thread (call once per worker process)."""
        try:
            snapshot = self.refresh()
            logger.info("Serving revision %s (%s)", snapshot.revision, snapshot.unavailable or "models loaded")
        except Exception:  # the database may be down at start: the thread keeps trying, /readyz says why
            logger.exception("Serving state could not be loaded at start; retrying in the background")
            self._snapshot = ServingSnapshot(0, 0.0, None, None, None, "the serving state could not be read yet")
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="serving-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                self.refresh()
            except Exception:  # a refresh must never kill the thread; the last good snapshot keeps serving
                self._on_error("state_refresh")
                logger.exception("Serving refresh failed; keeping revision %s", self._snapshot.revision)

    def _model(self, version: str) -> LoadedModel:
        if version not in self._models:
            self._models[version] = self._load_model(version)
        return self._models[version]

    def refresh(self) -> ServingSnapshot:
        """Re-read the state; on a new revision load its models, then swap the snapshot. Returns the current one."""
        with self._refresh_lock:
            state = self._read_state()
            if state is None:
                if self._snapshot.control is None:
                    self._snapshot = ServingSnapshot(0, 0.0, None, None, None, "no serving state: train and promote")
                return self._snapshot
            if state.revision == self._snapshot.revision and self._snapshot.control is not None:
                return self._snapshot
            previous, self._snapshot = self._snapshot, self._build(state)
            if self._snapshot is not previous:
                self._on_swap(previous, self._snapshot)
            self._models = {
                model.version: model for model in (self._snapshot.control, self._snapshot.treatment) if model
            }
            return self._snapshot

    def _build(self, state: ServingStateInfo) -> ServingSnapshot:
        try:
            control = self._model(state.control_version)
        except Exception as exc:  # any load failure means the same thing: not servable
            reason = f"control version {state.control_version} cannot be loaded: {_describe(exc)}"
            self._on_error("model_load")
            logger.error(reason)
            if self._snapshot.control is not None:
                # Keep serving the last good snapshot rather than going dark.
                return self._snapshot
            return ServingSnapshot(state.revision, state.treatment_share, None, None, None, reason)
        treatment: LoadedModel | None = None
        fallback: str | None = None
        if state.treatment_version is None:
            fallback = "treatment_unset"
        else:
            try:
                treatment = self._model(state.treatment_version)
            except Exception as exc:
                fallback = "treatment_unloadable"
                self._on_error("model_load")
                logger.error("treatment version %s cannot be loaded: %s", state.treatment_version, _describe(exc))
        return ServingSnapshot(
            state.revision,
            state.treatment_share,
            control,
            treatment,
            fallback,
            None,
            loaded_at=self._clock(),
            salt=state.salt,
            experiment=state.running_experiment,
            phase=state.phase,
        )


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"
