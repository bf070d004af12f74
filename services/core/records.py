"""Flightdeck's own typed records. The gateway returns these, never ``mlflow.entities``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


def from_epoch_ms(value: int | None) -> datetime | None:
    """An aware UTC datetime from MLflow's milliseconds since the Unix epoch (None stays None)."""
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """A tracking server that answered."""

    uri: str
    """The server's base URL."""
    version: str
    """The MLflow version the server reports, or "unknown"."""
    checked_at: datetime
    """When the check ran (aware, UTC)."""


@dataclass(frozen=True, slots=True)
class Experiment:
    """An MLflow experiment."""

    experiment_id: str
    """MLflow's id, a decimal string."""
    name: str
    """The experiment's name; untrusted text."""
    deleted: bool
    """True when the experiment is in MLflow's trash (lifecycle stage "deleted")."""
    created_at: datetime | None
    """Creation time (aware, UTC)."""
    last_updated_at: datetime | None
    """Last change to the experiment itself (aware, UTC)."""
    description: str
    """The experiment's note (``mlflow.note.content``); untrusted text."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """User tags, without the ``mlflow.*`` and ``flightdeck.*`` ones; untrusted text."""


@dataclass(frozen=True, slots=True)
class RunCount:
    """How many runs an experiment holds."""

    value: int
    """The count, or a lower bound when ``exact`` is False."""
    exact: bool
    """False when the server could not be asked for the exact number."""

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"{self.value:,}+"


@dataclass(frozen=True, slots=True)
class ExperimentActivity:
    """What has happened in an experiment's runs."""

    run_count: RunCount
    """How many active runs it holds."""
    last_run_at: datetime | None
    """Start of its newest run (aware, UTC); None when it has no runs."""


@dataclass(frozen=True, slots=True)
class Run:
    """An MLflow run, with its latest metric values."""

    run_id: str
    """MLflow's 32-character hex id."""
    experiment_id: str
    """The experiment the run belongs to."""
    name: str
    """The run's name; untrusted text."""
    status: str
    """RUNNING, SCHEDULED, FINISHED, FAILED or KILLED."""
    start_time: datetime | None
    """When the run started (aware, UTC)."""
    end_time: datetime | None
    """When the run ended (aware, UTC); None while it runs."""
    user: str
    """Who started the run (``mlflow.user``); untrusted text."""
    deleted: bool
    """True when the run is in MLflow's trash."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Latest value of each metric."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Parameters as logged (strings); untrusted text."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """All tags, MLflow's own included; untrusted text."""
    datasets: tuple[DatasetSummary, ...] = ()
    """Datasets logged as inputs."""

    @property
    def parent_run_id(self) -> str | None:
        """The parent run's id for a nested run, else None."""
        return self.tags.get("mlflow.parentRunId") or None

    @property
    def duration(self) -> timedelta | None:
        """Wall time from start to end, or None when either is unknown."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a run search."""

    runs: tuple[Run, ...]
    """The runs, in the order asked for."""
    next_page_token: str | None
    """Pass back to fetch the next page; None on the last page."""


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A value read from MLflow, with the time it was read, so pages can show freshness."""

    value: T
    """What was read."""
    fetched_at: datetime
    """When it was read from the server (aware, UTC)."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged value of a metric."""

    step: int
    """The step it was logged at."""
    timestamp_ms: int
    """Wall time, in milliseconds since the Unix epoch."""
    value: float
    """The value; may be NaN or ±inf."""


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """A dataset a run logged with ``mlflow.log_input``."""

    name: str
    """The dataset's name; untrusted text."""
    digest: str
    """MLflow's content digest."""
    source_type: str
    """Where it came from, e.g. "code" or "local"."""
    context: str
    """The ``mlflow.data.context`` input tag, e.g. "training"; empty when absent."""
    rows: int | None
    """Row count from the dataset's profile, when MLflow recorded one."""


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """A file or folder among a run's artifacts."""

    path: str
    """Path relative to the run's artifact root, with "/" separators."""
    is_dir: bool
    """True for a folder."""
    size_bytes: int | None
    """File size in bytes; None for folders."""


@dataclass(frozen=True, slots=True)
class ModelVersionSummary:
    """A registered model version."""

    name: str
    """The registered model's name."""
    version: int
    """The version number."""
    run_id: str
    """The run it was registered from; empty when unknown."""
    created_at: datetime | None
    """Registration time (aware, UTC)."""
    status: str
    """READY, PENDING_REGISTRATION or FAILED_REGISTRATION."""
    description: str
    """Free text; untrusted."""
    aliases: tuple[str, ...] = ()
    """Aliases pointing at this version, e.g. ("champion",)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Version tags; untrusted text."""
    stage: str = "None"
    """MLflow's legacy stage (``current_stage``): None, Staging, Production or Archived."""
    source: str = ""
    """Where the version's files come from, e.g. ``models:/m-…`` or ``runs:/…/model``."""


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A registered model in MLflow's model registry."""

    name: str
    """The model's name; untrusted text (may hold spaces, slashes and any Unicode)."""
    description: str
    """Free text; untrusted."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Every model tag, ``mlflow.*`` and ``flightdeck.*`` included; untrusted text."""
    aliases: Mapping[str, int] = field(default_factory=dict)
    """Alias name → the version number it points at, e.g. {"champion": 3}."""
    latest_version: int | None = None
    """The highest version number; None when the model has no versions."""
    created_at: datetime | None = None
    """Creation time (aware, UTC)."""
    updated_at: datetime | None = None
    """Last change to the model or one of its versions (aware, UTC)."""


@dataclass(frozen=True, slots=True)
class SignatureColumn:
    """One column (or tensor) of a model signature."""

    name: str
    """The column's name; empty for an unnamed column or tensor. Untrusted text."""
    type: str
    """MLflow's type, e.g. "double", "long", "string", or "tensor(float64, [-1, 4])"."""
    required: bool = True
    """False for a column the model accepts but does not need (MLflow's ``required: false``)."""


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """The inputs and outputs a model version declares in its ``MLmodel`` file."""

    inputs: tuple[SignatureColumn, ...]
    """Input columns, in the declared order."""
    outputs: tuple[SignatureColumn, ...]
    """Output columns, in the declared order; empty when only inputs were declared."""


CURRENT_HOLDER = "current"
"""The ``reason`` of an :class:`AliasMove` inferred from the registry's present state only."""


@dataclass(frozen=True, slots=True)
class AliasMove:
    """An alias pointed at a new version, or was removed."""

    alias: str
    """The alias, e.g. "champion"."""
    version: int | None
    """The version it points at after the move; None when the alias was removed."""
    previous: int | None
    """The version it pointed at before; None when it was not set."""
    at: datetime
    """When it moved (aware, UTC); for a :data:`CURRENT_HOLDER` move, when that was read."""
    actor: str
    """Who moved it; empty when unknown. Untrusted text."""
    reason: str
    """Why, as given by the actor; :data:`CURRENT_HOLDER` when only the present is known."""
    external: bool
    """True when it moved outside Flightdeck (seen in MLflow, not done by a promotion)."""
    requested_by: str = ""
    """Who requested the move, for a promotion; untrusted text."""
    approved_by: tuple[str, ...] = ()
    """Who approved it, for a promotion; untrusted text."""
    request_id: str | None = None
    """The promotion request behind it, if any."""
