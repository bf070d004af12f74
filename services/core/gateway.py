"""The MLflow gateway: the only module that talks to the tracking server.

It returns Flightdeck's records (``services.core.records``) and turns every MLflow or HTTP failure
into a :class:`~services.core.errors.FlightdeckError` subclass whose message says what to do.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mlflow.artifacts
import requests
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

from services.core import errors, filters
from services.core.conventions import RUN_NAME_TAG, SERVING_STAGES
from services.core.entities import (
    experiment_record,
    model_record,
    run_record,
    run_record_from_json,
    signature_record,
    version_record,
)
from services.core.mlflow_errors import translate_mlflow, unreachable_reason
from services.core.records import (
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    MetricPoint,
    ModelSignature,
    ModelVersionSummary,
    RegisteredModel,
    Run,
    RunCount,
    RunPage,
    ServerInfo,
)
from services.core.settings import Settings, apply_mlflow_environment, validate_tracking_uri

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


NEWEST_FIRST = ("attributes.start_time DESC",)
MAX_SEARCH_PAGE = 50_000
"""MLflow's own ceiling on ``max_results`` for one run search."""
SEARCH_RUNS_PATH = "/api/2.0/mlflow/runs/search"
BULK_HISTORY_PATH = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
BULK_HISTORY_MAX_RUNS = 100
"""The bulk history endpoint's limit on runs per request."""
LOG_BATCH_LIMIT = 1000
"""MLflow's limit on metrics in one ``log_batch`` call."""
LOG_BATCH_TAG_LIMIT = 100
"""MLflow's limit on tags in one ``log_batch`` call."""
LOG_BATCH_PARAM_LIMIT = 100
"""MLflow's limit on params in one ``log_batch`` call."""
MAX_TAG_VALUE = 8000
"""MLflow's limit on the length of a run tag's value."""
HISTORY_POINTS = 320
"""Points per run and metric for charts; what MLflow's own UI asks for."""
HISTORY_THREADS = 8
"""Full metric histories of one run read at once."""
"""Points per run and metric for charts; what MLflow's own UI asks for."""
MLMODEL_FILE = "MLmodel"
"""The YAML file beside every MLflow model: flavors, signature, requirements."""
_RUN_ID = re.compile(r"[0-9a-f]{32}")


class TrackingGateway:
    """A thin facade over ``MlflowClient`` and the server's REST endpoints.

    Args:
        settings: Where the server is and how to reach it. The MLflow client's timeout and
            retry variables are exported from these before the client is created.
        session: An HTTP session for the endpoints the Python client lacks; injectable for tests.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        validate_tracking_uri(settings.tracking_uri)
        apply_mlflow_environment(settings)
        self.uri = settings.tracking_uri
        self._health_timeout_s = settings.health_timeout_s
        self._timeout_s = settings.http_timeout_s
        self._client = MlflowClient(tracking_uri=settings.tracking_uri)
        # Searches go through MLflow's request path without its client (see _post_json).
        self._host = get_default_host_creds(self.uri)  # type: ignore[no-untyped-call]
        self._http = session or requests.Session()
        if settings.mlflow_token:
            self._http.headers["Authorization"] = f"Bearer {settings.mlflow_token}"
        elif settings.mlflow_username and settings.mlflow_password:
            self._http.auth = (settings.mlflow_username, settings.mlflow_password)

    # -- server -------------------------------------------------------------------------------

    def check_server(self) -> ServerInfo:
        """Check that the server answers and accepts our credentials, within the health timeout.

        Raises:
            ServerUnreachable: No answer, or not an MLflow server.
            AuthenticationFailed: The server wants other credentials (401).
            ServerPermissionDenied: The credentials may not read experiments (403).
        """
        health = self._get("/health")
        if not health.ok:
            raise errors.ServerUnreachable(
                f"Cannot reach MLflow at {self.uri}: /health answered HTTP {health.status_code}. "
                "Check that the URL points at an MLflow tracking server."
            )
        # /health is public on auth-enabled servers; this read proves the credentials work.
        probe = self._get("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
        self._raise_for_auth(probe)
        version = self._get("/version")
        return ServerInfo(
            uri=self.uri,
            version=version.text.strip() if version.ok else "unknown",
            checked_at=datetime.now(UTC),
        )

    # -- experiments ----------------------------------------------------------------------------

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """All experiments, by name; deleted ones too when asked."""
        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        pages = self._every_page(
            "list experiments",
            self._client.search_experiments,
            view_type=view,
            order_by=["name ASC"],
        )
        return [experiment_record(e) for e in pages]

    def get_experiment(self, experiment_id: str) -> Experiment:
        """One experiment by id.

        Raises:
            NotFound: No experiment has this id.
        """
        if not experiment_id.isdigit():
            raise errors.NotFound(
                f"There is no experiment with id {experiment_id!r}: ids are numbers. "
                "Pick one from the Experiments page."
            )
        return experiment_record(
            self._call(f"experiment {experiment_id}", self._client.get_experiment, experiment_id)
        )

    def experiment_tags(self, experiment_id: str) -> dict[str, str]:
        """Every tag of an experiment, ``mlflow.*`` and ``flightdeck.*`` included.

        :meth:`get_experiment` hides those; jobs read their own markers here.

        Raises:
            NotFound: No experiment has this id.
        """
        found = self._call(
            f"experiment {experiment_id}", self._client.get_experiment, experiment_id
        )
        return dict(found.tags or {})

    def experiment_activity(self, experiment_id: str) -> ExperimentActivity:
        """How many active runs an experiment holds and when the newest started, cheaply.

        MLflow has no count call, and downloading 10,000 runs takes 15-30 s. Its page
        tokens are an offset on SQL stores, so we probe one-run pages at growing offsets
        (about 2·log2(n) tiny requests). If the server's token is not an offset, the count
        is a lower bound.
        """

        def exists_at(offset: int) -> bool:
            return bool(
                self._search_page(
                    [experiment_id], max_results=1, page_token=offset_page_token(offset)
                ).runs
            )

        newest = self._search_page([experiment_id], order_by=NEWEST_FIRST, max_results=1)
        last_run_at = newest.runs[0].start_time if newest.runs else None
        if newest.next_page_token is None:
            return ExperimentActivity(RunCount(len(newest.runs), exact=True), last_run_at)
        if page_token_offset(newest.next_page_token) != 1:
            return ExperimentActivity(RunCount(1, exact=False), last_run_at)
        present, absent = 0, 1  # invariants: a run exists at offset `present`, none at `absent`
        while exists_at(absent):
            present, absent = absent, absent * 2
        while absent - present > 1:
            middle = (present + absent) // 2
            present, absent = (middle, absent) if exists_at(middle) else (present, middle)
        return ExperimentActivity(RunCount(absent, exact=True), last_run_at)

    # -- runs -----------------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        order_by: Sequence[str] = NEWEST_FIRST,
        max_results: int = 200,
        page_token: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first by default.

        Raises:
            InvalidRequest: MLflow could not parse the filter; the message has its reason.
        """
        return self._search_page(experiment_ids, filter_string, order_by, max_results, page_token)

    def _search_page(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 200,
        page_token: str | None = None,
    ) -> RunPage:
        body: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": min(max_results, MAX_SEARCH_PAGE),
            "order_by": list(order_by),
        }
        if page_token:
            body["page_token"] = page_token
        payload = self._post_json("search runs", SEARCH_RUNS_PATH, body)
        runs = tuple(run_record_from_json(r) for r in payload.get("runs") or ())
        return RunPage(runs, payload.get("next_page_token") or None)

    def get_run(self, run_id: str) -> Run:
        """One run by id, deleted or not.

        Raises:
            NotFound: No run has this id.
        """
        if not _RUN_ID.fullmatch(run_id):
            raise errors.NotFound(f"There is no run with id {run_id!r}: run ids are 32 hex digits.")
        return run_record(self._call(f"run {run_id}", self._client.get_run, run_id))

    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, Run]:
        """Many runs, deleted ones included, in one search per 100 ids instead of a call each.

        Ids that match no run are absent from the result; ask :meth:`get_run` to tell why.
        """
        wanted = [r for r in dict.fromkeys(run_ids) if _RUN_ID.fullmatch(r)]
        if not wanted:
            return {}
        experiment_ids = [e.experiment_id for e in self.list_experiments(include_deleted=True)]
        found: dict[str, Run] = {}
        for start in range(0, len(wanted), BULK_HISTORY_MAX_RUNS):
            chunk = wanted[start : start + BULK_HISTORY_MAX_RUNS]
            quoted = ", ".join(f"'{run_id}'" for run_id in chunk)
            page = self._call(
                "read runs",
                self._client.search_runs,
                experiment_ids=experiment_ids,
                filter_string=f"attributes.run_id IN ({quoted})",
                run_view_type=ViewType.ALL,
                max_results=len(chunk),
            )
            found.update((run.info.run_id, run_record(run)) for run in page)
        return found

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of one metric of one run, by step."""
        history = self._call(f"history of {key}", self._client.get_metric_history, run_id, key)
        return [MetricPoint(m.step, m.timestamp, m.value) for m in history]

    def full_histories(self, run_id: str, keys: Sequence[str]) -> dict[str, list[MetricPoint]]:
        """Every logged value of several metrics of one run, read concurrently (MLflow has no
        bulk read of full histories)."""
        with ThreadPoolExecutor(HISTORY_THREADS, thread_name_prefix="flightdeck-history") as pool:
            futures = {key: pool.submit(self.metric_history, run_id, key) for key in keys}
            return {key: future.result() for key, future in futures.items()}

    def metric_histories(
        self, run_ids: Sequence[str], key: str, max_points: int = HISTORY_POINTS
    ) -> dict[str, list[MetricPoint]]:
        """Downsampled histories of one metric for many runs, through MLflow's bulk endpoint.

        One request per 100 runs (the server's limit), never one per run. The server keeps the
        first and last step of each run and samples evenly in between.
        """
        histories: dict[str, list[MetricPoint]] = {run_id: [] for run_id in run_ids}
        for start in range(0, len(run_ids), BULK_HISTORY_MAX_RUNS):
            chunk = list(run_ids[start : start + BULK_HISTORY_MAX_RUNS])
            params: list[tuple[str, str | int]] = [("run_ids", r) for r in chunk]
            params += [("metric_key", key), ("max_results", max_points)]
            response = self._get(BULK_HISTORY_PATH, params=params, timeout=self._timeout_s)
            self._raise_for_auth(response)
            if not response.ok:
                raise errors.InvalidRequest(
                    f"MLflow at {self.uri} refused the history of {key!r}: {_error_text(response)}"
                )
            for metric in response.json().get("metrics", []):
                histories.setdefault(metric["run_id"], []).append(
                    MetricPoint(
                        int(metric.get("step", 0)),
                        int(metric.get("timestamp", 0)),
                        float(metric.get("value", "nan")),
                    )
                )
        for points in histories.values():
            points.sort(key=lambda p: p.step)
        return histories

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactEntry]:
        """The files and folders directly under ``path`` in a run's artifacts."""
        listed = self._call("list artifacts", self._client.list_artifacts, run_id, path)
        return [ArtifactEntry(a.path, a.is_dir, a.file_size) for a in listed]

    def download_artifact(self, run_id: str, path: str, destination: str) -> str:
        """Download one artifact file into ``destination``; returns the local path."""
        return str(
            self._call(
                f"download {path}", self._client.download_artifacts, run_id, path, destination
            )
        )

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """One artifact file of a run, as bytes (through a temporary folder, removed after).

        Raises:
            NotFound: The run has no artifact at ``path``.
        """
        folder_path = path.rpartition("/")[0]
        listed = self._call(
            f"listing the artifacts of run {run_id}",
            self._client.list_artifacts,
            run_id,
            folder_path or None,
        )
        if not any(a.path == path and not a.is_dir for a in listed):
            raise errors.NotFound(
                f"Run {run_id} has no artifact {path!r} at {self.uri}: it was never logged, or "
                "the run failed before logging it."
            )
        with tempfile.TemporaryDirectory(prefix="flightdeck-artifact-") as folder:
            local = self._call(
                f"download {path} of run {run_id}",
                self._client.download_artifacts,
                run_id,
                path,
                folder,
            )
            return Path(local).read_bytes()

    # -- runs: writes (monitoring) ---------------------------------------------------------------

    def experiment_id(self, name: str, create: bool = False) -> str | None:
        """The id of the active experiment called ``name``; created when asked and missing.

        Returns None when it does not exist (or is deleted) and ``create`` is False.

        Raises:
            InvalidRequest: ``create`` is True but the experiment is in MLflow's trash; restore
                it (or delete it for good) first.
        """
        found = self._call(f"experiment {name!r}", self._client.get_experiment_by_name, name)
        if found is not None and found.lifecycle_stage != "deleted":
            return str(found.experiment_id)
        if not create:
            return None
        if found is not None:
            raise errors.InvalidRequest(
                f"Experiment {name!r} is in MLflow's trash at {self.uri}, so Flightdeck cannot "
                "log to it. Restore it (mlflow experiments restore) or delete it for good."
            )
        try:
            return str(
                self._call(f"creating experiment {name!r}", self._client.create_experiment, name)
            )
        except errors.TrackingError:
            # Another process may have created it in the meantime: use theirs.
            again = self._call(f"experiment {name!r}", self._client.get_experiment_by_name, name)
            if again is None or again.lifecycle_stage == "deleted":
                raise
            return str(again.experiment_id)

    def create_run(
        self,
        experiment_id: str,
        tags: Mapping[str, str],
        start_time: datetime | None = None,
    ) -> str:
        """Start a run (status RUNNING) with tags; returns its id.

        Args:
            experiment_id: Where the run goes.
            tags: Its tags; ``mlflow.runName`` names it.
            start_time: When it started (aware); now when None.
        """
        started_ms = None if start_time is None else int(start_time.timestamp() * 1000)
        run = self._call(
            f"creating a run in experiment {experiment_id}",
            self._client.create_run,
            experiment_id,
            start_time=started_ms,
            tags=dict(tags),
            run_name=tags.get(RUN_NAME_TAG),
        )
        return str(run.info.run_id)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Log one value (step 0, now) of each metric, in batches of 1,000 (MLflow's limit)."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        entries = [Metric(key, float(value), now_ms, 0) for key, value in metrics.items()]
        for start in range(0, len(entries), LOG_BATCH_LIMIT):
            self._call(
                f"logging metrics of run {run_id}",
                self._client.log_batch,
                run_id,
                metrics=entries[start : start + LOG_BATCH_LIMIT],
            )

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on a run in one call per 100 tags (values over MLflow's limit are cut)."""
        entries = [RunTag(key, value[:MAX_TAG_VALUE]) for key, value in tags.items()]
        for start in range(0, len(entries), LOG_BATCH_TAG_LIMIT):
            self._call(
                f"tagging run {run_id}",
                self._client.log_batch,
                run_id,
                tags=entries[start : start + LOG_BATCH_TAG_LIMIT],
            )

    def log_artifact_text(self, run_id: str, path: str, text: str) -> None:
        """Write ``text`` (UTF-8) as the run's artifact ``path``, e.g. ``drift/summary.json``."""
        self._call(f"logging {path} to run {run_id}", self._client.log_text, run_id, text, path)

    def end_run(self, run_id: str, status: str) -> None:
        """End a run with a terminal status: FINISHED, FAILED or KILLED."""
        self._call(f"ending run {run_id}", self._client.set_terminated, run_id, status)

    def end_run_at(self, run_id: str, status: str, end_time: datetime) -> None:
        """End a run with a terminal status and an end time of our choosing (aware), e.g. when
        logging runs that happened earlier."""
        self._call(
            f"ending run {run_id}",
            self._client.set_terminated,
            run_id,
            status,
            end_time=round(end_time.timestamp() * 1000),
        )

    def delete_run(self, run_id: str) -> None:
        """Move a run to MLflow's trash (it can be restored until the trash is emptied)."""
        self._call(f"deleting run {run_id}", self._client.delete_run, run_id)

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on an experiment (one call each; MLflow has no batch call for them)."""
        for key, value in tags.items():
            self._call(
                f"tagging experiment {experiment_id}",
                self._client.set_experiment_tag,
                experiment_id,
                key,
                value,
            )

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log a run's parameters, in one call per 100 (MLflow's limit)."""
        entries = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(entries), LOG_BATCH_PARAM_LIMIT):
            self._call(
                f"logging params of run {run_id}",
                self._client.log_batch,
                run_id,
                params=entries[start : start + LOG_BATCH_PARAM_LIMIT],
            )

    def log_metric_histories(
        self, run_id: str, histories: Mapping[str, Sequence[MetricPoint]]
    ) -> None:
        """Log metric values at given steps and times, in batches of 1,000 (MLflow's limit).

        Args:
            run_id: The run they belong to.
            histories: Each metric's points, e.g. one per boosting stage; a single point at step
                0 logs a plain metric.
        """
        entries = [
            Metric(key, float(point.value), point.timestamp_ms, point.step)
            for key, points in histories.items()
            for point in points
        ]
        for start in range(0, len(entries), LOG_BATCH_LIMIT):
            self._call(
                f"logging metrics of run {run_id}",
                self._client.log_batch,
                run_id,
                metrics=entries[start : start + LOG_BATCH_LIMIT],
            )

    def log_dataset(
        self, run_id: str, frame: pd.DataFrame, name: str, targets: str, context: str
    ) -> None:
        """Log a DataFrame as the run's input dataset (digest, schema and profile, not the rows).

        Args:
            run_id: The run that used it.
            frame: The rows, features and target.
            name: The dataset's name, as MLflow's UI shows it.
            targets: The target column.
            context: What the run used it for (``mlflow.data.context``), e.g. "training".
        """
        from mlflow.data.pandas_dataset import from_pandas  # imports pandas: only when needed

        dataset = from_pandas(frame, targets=targets, name=name)  # no source: see STACK.md
        entry = DatasetInput(
            dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)]
        )
        self._call(
            f"logging dataset {name!r} of run {run_id}", self._client.log_inputs, run_id, [entry]
        )

    def log_artifact_file(self, run_id: str, local_path: Path, folder: str) -> None:
        """Upload one local file into the run's artifact ``folder``, keeping its file name."""
        self._call(
            f"logging {folder}/{local_path.name} to run {run_id}",
            self._client.log_artifact,
            run_id,
            str(local_path),
            folder,
        )

    def model_versions(self, filter_string: str) -> list[ModelVersionSummary]:
        """Registered model versions matching an MLflow filter, e.g. ``name = 'x'``."""
        pages = self._every_page(
            "search model versions",
            self._client.search_model_versions,
            filter_string=filter_string,
        )
        return sorted((version_record(v) for v in pages), key=lambda v: (v.name, v.version))

    def versions_of(self, name: str) -> list[ModelVersionSummary]:
        """Every version of one registered model, whatever its name holds (see ``filters``)."""
        found = self.model_versions(filters.equals("name", name) or "")
        return [version for version in found if version.name == name]

    def model_aliases(self, name: str) -> dict[str, int]:
        """Each alias of a registered model and the version it points at.

        Raises:
            NotFound: No registered model has this name.
        """
        model = self._call(f"model {name}", self._client.get_registered_model, name)
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    # -- model registry: reads ---------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModel]:
        """Every registered model, by name (pages of 1,000 until the last)."""
        pages = self._every_page("list registered models", self._client.search_registered_models)
        return sorted((model_record(m) for m in pages), key=lambda m: m.name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """One registered model by name.

        Raises:
            NotFound: No registered model has this name, or MLflow refuses it as a name.
        """
        with self._model_missing(name):
            try:
                model = self._call(f"model {name!r}", self._client.get_registered_model, name)
            except errors.InvalidRequest as exc:  # e.g. a "/" in the name: no model can have it
                raise errors.NotFound(str(exc)) from exc
        return model_record(model)

    def find_registered_model(self, name: str) -> RegisteredModel | None:
        """One registered model by name; None when no model has this name.

        Raises:
            InvalidRequest: MLflow refuses ``name`` as a model name, e.g. it holds a "/".
        """
        try:
            model = self._call(f"model {name!r}", self._client.get_registered_model, name)
        except errors.NotFound:
            return None
        return model_record(model)

    def get_model_version(self, name: str, version: int) -> ModelVersionSummary:
        """One version of a registered model.

        Raises:
            NotFound: The model does not exist, or has no such version (never had, or deleted).
        """
        with self._version_missing(name, version):
            found = self._call(
                f"version {version} of {name!r}", self._client.get_model_version, name, str(version)
            )
        return version_record(found)

    def alias_holder(self, name: str, alias: str) -> int | None:
        """The version an alias of a registered model points at; None when the alias is not set.

        Raises:
            NotFound: No registered model has this name (a missing alias is not an error).
        """
        return self.get_registered_model(name).aliases.get(alias)

    def model_version_signature(self, name: str, version: int) -> ModelSignature | None:
        """The input and output signature a model version declares; None when it declares none.

        Reads only the version's ``MLmodel`` file (YAML, parsed safely): the model itself is
        never downloaded or loaded. Works for MLflow 3 logged models (``models:/m-…``) and for
        older run-relative sources alike, because the server resolves where the files are.

        Raises:
            NotFound: The model or the version does not exist.
        """
        with self._version_missing(name, version):
            location = self._call(
                f"files of version {version} of {name!r}",
                self._client.get_model_version_download_uri,
                name,
                str(version),
            )
        text = self._read_mlmodel(str(location), f"version {version} of {name!r}")
        return None if text is None else signature_record(text)

    def _read_mlmodel(self, location: str, what: str) -> str | None:
        """The ``MLmodel`` file under an artifact location as text; None when there is none.

        The folder is listed first: MLflow reports a missing file only as a generic download
        failure, which must not be mistaken for "no signature".
        """
        listed = self._call(
            f"listing the files of {what}",
            mlflow.artifacts.list_artifacts,
            artifact_uri=location,
            tracking_uri=self.uri,
        )
        if not any(not f.is_dir and posixpath.basename(f.path) == MLMODEL_FILE for f in listed):
            return None
        with tempfile.TemporaryDirectory(prefix="flightdeck-mlmodel-") as folder:
            path = self._call(
                f"reading the MLmodel file of {what}",
                mlflow.artifacts.download_artifacts,
                artifact_uri=f"{location.rstrip('/')}/{MLMODEL_FILE}",
                dst_path=folder,
                tracking_uri=self.uri,
            )
            return Path(path).read_text(encoding="utf-8")

    # -- model registry: writes --------------------------------------------------------------------

    def create_registered_model(
        self, name: str, description: str, tags: Mapping[str, str]
    ) -> RegisteredModel:
        """Create a registered model with a description and tags.

        If another process created it in the meantime, that model is returned as it is.

        Raises:
            InvalidRequest: MLflow refuses ``name`` as a model name, e.g. it holds a "/".
        """
        try:
            created = self._call(
                f"creating model {name!r}",
                self._client.create_registered_model,
                name,
                tags=dict(tags),
                description=description,
            )
        except errors.TrackingError:
            existing = self.find_registered_model(name)
            if existing is None:
                raise
            return existing
        return model_record(created)

    def delete_registered_model(self, name: str) -> None:
        """Delete a registered model with all its versions and aliases (there is no trash).

        Raises:
            NotFound: No registered model has this name.
        """
        with self._model_missing(name):
            self._call(f"deleting model {name!r}", self._client.delete_registered_model, name)

    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Set tags on a registered model (one call each; MLflow has no batch call for them).

        Raises:
            NotFound: No registered model has this name.
        """
        with self._model_missing(name):
            for key, value in tags.items():
                self._call(
                    f"tagging model {name!r}",
                    self._client.set_registered_model_tag,
                    name,
                    key,
                    value,
                )

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str,
        model_id: str | None,
        description: str,
        tags: Mapping[str, str],
    ) -> ModelVersionSummary:
        """Register a logged model as the next version of a registered model.

        Args:
            name: The registered model; it must exist.
            source: Where the files are, e.g. ``models:/m-…`` for an MLflow 3 logged model.
            run_id: The run that logged it.
            model_id: The logged model's id (``m-…``), when it is one.
            description: Free text shown with the version.
            tags: The version's tags.

        Raises:
            NotFound: No registered model has this name.
        """
        with self._model_missing(name):
            created = self._call(
                f"registering a version of {name!r}",
                self._client.create_model_version,
                name,
                source,
                run_id=run_id,
                tags=dict(tags),
                description=description,
                model_id=model_id,
            )
        return version_record(created)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point an alias at a version, replacing whatever it pointed at (no compare-and-set).

        Raises:
            NotFound: The model or the version does not exist.
        """
        with self._version_missing(name, version):
            self._call(
                f"setting @{alias} of {name!r} to version {version}",
                self._client.set_registered_model_alias,
                name,
                alias,
                str(version),
            )

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias from a registered model; removing an alias that is not set is a no-op.

        Raises:
            NotFound: No registered model has this name.
        """
        if self.alias_holder(name, alias) is None:
            return
        with self._model_missing(name):
            self._call(
                f"removing @{alias} of {name!r}",
                self._client.delete_registered_model_alias,
                name,
                alias,
            )

    def set_stage(self, name: str, version: int, stage: str) -> None:
        """Move a version to a legacy stage (None, Staging, Production, Archived).

        Moving into Staging or Production archives the versions that were there, so the stage
        names one version and ``models:/name/Production`` resolves to the promoted one. MLflow
        deprecated stages in 2.9 and warns on every call; the warning is silenced here only.

        Raises:
            NotFound: The model or the version does not exist.
            InvalidRequest: ``stage`` is not one of MLflow's stages.
        """
        with self._version_missing(name, version), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self._call(
                f"moving version {version} of {name!r} to stage {stage!r}",
                self._client.transition_model_version_stage,
                name,
                str(version),
                stage,
                archive_existing_versions=stage in SERVING_STAGES,
            )

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        """Set tags on a version (one call each; MLflow has no batch call for version tags).

        Raises:
            NotFound: The model or the version does not exist.
        """
        with self._version_missing(name, version):
            for key, value in tags.items():
                self._call(
                    f"tagging version {version} of {name!r}",
                    self._client.set_model_version_tag,
                    name,
                    str(version),
                    key,
                    value,
                )

    @contextmanager
    def _model_missing(self, name: str) -> Iterator[None]:
        """Say which model is missing, instead of MLflow's wording."""
        try:
            yield
        except errors.NotFound as exc:
            raise errors.NotFound(
                f"There is no registered model named {name!r} at {self.uri}. It may have been "
                "renamed or deleted; pick one from the Models page."
            ) from exc

    @contextmanager
    def _version_missing(self, name: str, version: int) -> Iterator[None]:
        """Say whether the model or only the version is missing."""
        try:
            yield
        except errors.NotFound as exc:
            self.get_registered_model(name)  # raises NotFound naming the model when it is gone
            raise errors.NotFound(
                f"Registered model {name!r} has no version {version}: it was deleted, or never "
                "existed. Pick a version from the model's page."
            ) from exc

    # -- plumbing ---------------------------------------------------------------------------------

    def _get(
        self, path: str, params: Any = None, timeout: float | None = None
    ) -> requests.Response:
        with self._translated(f"GET {path}"):
            return self._http.get(
                self.uri + path, params=params, timeout=timeout or self._health_timeout_s
            )

    def _post_json(self, what: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One REST call through MLflow's own request path (its retries, credentials and
        errors), its answer read as plain JSON: the client's protobuf messages and entities cost
        about 1 ms a run, half of a search."""
        with self._translated(what):
            response = http_request(self._host, path, "POST", json=body)  # type: ignore[no-untyped-call]
            payload = verify_rest_response(response, path).json()
        return payload if isinstance(payload, dict) else {}

    def _raise_for_auth(self, response: requests.Response) -> None:
        if response.status_code == 401:
            raise errors.AuthenticationFailed(
                f"MLflow at {self.uri} rejected Flightdeck's credentials (HTTP 401). Set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
                "to an account on that server."
            )
        if response.status_code == 403:
            raise errors.ServerPermissionDenied(
                f"MLflow at {self.uri} denied access (HTTP 403): the account in "
                "MLFLOW_TRACKING_USERNAME may not read experiments. Ask the server's admin for "
                "READ permission."
            )

    def replace_registry_webhook(
        self, name: str, url: str, secret: str, events: Sequence[str]
    ) -> str:
        """Subscribe ``url`` to registry ``events`` under ``name``, replacing webhooks of that
        name (their secret cannot be read back); returns the new webhook's id.

        Raises:
            TrackingError: The server has no webhooks (MLflow before 3.3, a file store), or
                refuses the URL (see ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``).
        """
        listed = self._call("listing webhooks", self._client.list_webhooks, max_results=1000)
        for webhook in listed:
            if webhook.name == name:
                self._call(
                    f"deleting webhook {name}", self._client.delete_webhook, webhook.webhook_id
                )
        created = self._call(
            f"creating webhook {name}",
            self._client.create_webhook,
            name=name,
            url=url,
            events=list(events),
            secret=secret,
        )
        return str(created.webhook_id)

    def _call(self, what: str, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one MLflow client call; ``what`` names it in error messages."""
        with self._translated(what):
            return action(*args, **kwargs)

    def _every_page(self, what: str, search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        """Every entity a paged MLflow search returns, 1,000 a page until the last."""
        token: str | None = None
        while True:
            page = self._call(what, search, max_results=1000, page_token=token, **kwargs)
            yield from page
            token = page.token
            if not token:
                return

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except MlflowException as exc:
            raise translate_mlflow(exc, what, self.uri) from exc
        except requests.RequestException as exc:
            raise errors.ServerUnreachable(
                f"Cannot reach MLflow at {self.uri}: {unreachable_reason(exc)}. Check that the "
                "server is running and the URL is right, then retry."
            ) from exc


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return f"HTTP {response.status_code}"


def offset_page_token(offset: int) -> str:
    """The page token a SQL-backed MLflow server gives for the page starting at ``offset``."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_token_offset(token: str) -> int | None:
    """The offset an MLflow page token stands for, or None when it is not an offset token."""
    try:
        decoded = json.loads(base64.b64decode(token))
    except (binascii.Error, ValueError):
        return None
    offset = decoded.get("offset") if isinstance(decoded, dict) else None
    return offset if isinstance(offset, int) else None
