"""Train a demo model again and register a new version: ``python -m jobs.train``.

Real scikit-learn training on the bundled dataset of the model's demo project (see
:data:`jobs.training.PROJECTS`): a gradient-boosting model whose settings are chosen by
cross-validation on the training rows, logged as one run of the model's experiment::

    python -m jobs.train --model wine-classifier
    python -m jobs.train --model wine-classifier --trigger drift --cause-run-id <monitoring run> \\
        --policy nightly-drift --job-id 42 --requested-by scheduler
    python -m jobs.train --model wine-classifier --experiment scratch --register-as wine-copy
    python -m jobs.train --model wine-copy      # a model created by --register-as, by its tag

The run logs its parameters, held-out metrics (``eval_*``), per-stage histories (``train_loss``,
``val_*``), its input dataset (``mlflow.log_input``) and its reference sample
(``reference/reference.parquet``: the features, the categorical ``site`` column and the target,
as the demo's runs have), then the model, which becomes a new version of the registered model.
Before registering, the current ``@champion`` is scored on the same held-out rows: its metrics
are logged on the run as ``champion_eval_*`` (with ``flightdeck.compared_with_version``) and the
side-by-side table as ``evaluation/comparison.json``, which the promotion gates read.
The run and the version carry the lineage tags ``flightdeck.trigger``, ``flightdeck.job_id``,
``flightdeck.requested_by`` and, when given, ``flightdeck.cause_run_id`` and
``flightdeck.policy``. Aliases are never changed: promotion is a separate, governed step.
``--experiment`` and ``--register-as`` send the run and the version elsewhere (tests use them to
leave the demo as seeded); both are created when missing, and a model created this way is tagged
``flightdeck.training_project``, so ``--model <that name>`` retrains it again.

``--current PATH`` adds labelled current rows (a CSV or Parquet file, or a folder of them, with
every feature column and ``target``; other columns such as ``site`` are ignored) to the training
rows, never to the held-out rows, so the comparison with the champion stays on the same data.
Monitoring runs keep drift summaries, not rows: point it at the batches themselves.

Progress goes to stdout, one line per step; the last line names the new version.

Exit status: 0 when the version was registered; 2 for an unknown model or bad arguments; 1 when
MLflow could not be reached or training failed (a started run is ended FAILED, with the reason
in its ``flightdeck.failure`` tag). The reason is the last line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.model_selection import GridSearchCV

from jobs.training import (
    PROJECTS,
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_FILE,
    DemoProject,
    Split,
    evaluate,
    load_split,
    log_model,
    reference_sample,
    staged_history,
)
from services.core.conventions import (
    CAUSE_RUN_ID_TAG,
    CHAMPION,
    CHAMPION_METRIC_PREFIX,
    COMPARED_WITH_TAG,
    COMPARISON_ARTIFACT,
    FAILURE_TAG,
    JOB_ID_TAG,
    POLICY_TAG,
    REQUESTED_BY_TAG,
    RUN_NAME_TAG,
    TRAINING_PROJECT_TAG,
    TRIGGER_TAG,
)
from services.core.errors import FlightdeckError, NotFound, TrackingError
from services.core.gateway import TrackingGateway
from services.core.records import MetricPoint
from services.core.settings import load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TRIGGERS = ("manual", "schedule", "drift", "decay")
SEARCH_SPACE = {"learning_rate": [0.03, 0.1], "max_depth": [2, 3], "n_estimators": [60, 150]}
"""Settings the retraining chooses from by cross-validation on the training rows alone."""
CV_FOLDS = 5
FIXED_SETTINGS = {"subsample": 0.7}


class TrainingFailed(Exception):
    """Training or logging failed; the message says what and why."""


@dataclass(frozen=True)
class Request:
    """What to train, where to register it, and the lineage to record."""

    project: DemoProject
    register_as: str
    """The registered model that receives the new version (the project's model by default)."""
    experiment: str
    """The experiment the run is logged in (the project's experiment by default)."""
    lineage: dict[str, str]
    """The ``flightdeck.*`` lineage tags, set on the run and on the version."""
    current: pd.DataFrame | None = None
    """Labelled current rows added to the training rows (``--current``)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Train, log and register; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore")
    np.seterr(all="ignore")
    try:
        settings = load_settings()
        gateway = TrackingGateway(settings)  # exports MLflow's timeouts and credentials
    except FlightdeckError as exc:
        return _fail(EXIT_USAGE, f"Cannot start training: {exc}")
    projects = {p.model: p for p in PROJECTS}
    try:
        project = projects.get(args.model) or _project_of(gateway, args.model)
    except TrainingFailed as exc:
        return _fail(EXIT_FAILED, str(exc))
    if project is None:
        return _fail(
            EXIT_USAGE,
            f"No demo model named {args.model!r}, and no registered model of that name with a "
            f"{TRAINING_PROJECT_TAG} tag: choose one of {', '.join(projects)}.",
        )
    try:
        current = _read_current(args.current, project) if args.current else None
    except ValueError as exc:
        return _fail(EXIT_USAGE, str(exc))
    lineage = {
        TRIGGER_TAG: args.trigger,
        JOB_ID_TAG: args.job_id or f"cli-{uuid.uuid4().hex[:8]}",
        REQUESTED_BY_TAG: args.requested_by or settings.dev_user,
    }
    if args.cause_run_id:
        lineage[CAUSE_RUN_ID_TAG] = args.cause_run_id
    if args.policy:
        lineage[POLICY_TAG] = args.policy
    request = Request(
        project,
        register_as=args.register_as or args.model,
        # A copy found by its tag trains in its own experiment, away from the demo's runs.
        experiment=args.experiment
        or (project.experiment if args.model == project.model else args.model),
        lineage=lineage,
        current=current,
    )
    try:
        train(gateway, request)
    except TrainingFailed as exc:
        return _fail(EXIT_FAILED, str(exc))
    return EXIT_OK


def train(gateway: TrackingGateway, request: Request) -> tuple[str, int]:
    """Train the request's model, log one run, register a new version.

    Returns:
        The run's id and the new version's number.

    Raises:
        TrainingFailed: MLflow could not be reached or refused a request, or training failed.
    """
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow sets its own
    project = request.project
    started = time.monotonic()
    mlflow.set_tracking_uri(gateway.uri)  # for the model files: MLflow's fluent API
    _say(f"Training {project.model} ({project.task}) for job {request.lineage[JOB_ID_TAG]}…")
    try:
        experiment_id = gateway.experiment_id(request.experiment, create=True)
        assert experiment_id is not None  # create=True returns an id or raises
        run_id = gateway.create_run(
            experiment_id,
            {
                RUN_NAME_TAG: f"retrain-{request.lineage[TRIGGER_TAG]}-"
                f"{time.strftime('%Y%m%d-%H%M%S')}",
                **request.lineage,
                "model_family": "gradient_boosting",
                "dataset": project.experiment,
            },
        )
    except (TrackingError, OSError) as exc:
        raise TrainingFailed(
            f"MLflow at {gateway.uri} could not be reached or refused the run: {_reason(exc)}"
        ) from exc
    _say(f"Run {run_id} started in experiment {request.experiment}.")
    try:
        version, summary = _train_and_register(gateway, run_id, request)
    except Exception as exc:
        reason = _reason(exc)
        try:
            gateway.set_run_tags(run_id, {FAILURE_TAG: reason[:5000]})
            gateway.end_run(run_id, "FAILED")
        except (TrackingError, OSError):
            pass  # the reason below is what matters; the server may be the thing that failed
        raise TrainingFailed(f"Training run {run_id} failed: {reason}") from exc
    _say(f"Done in {time.monotonic() - started:.1f} s.")
    _say(f"Registered {request.register_as} version {version} from run {run_id} ({summary}).")
    return run_id, version


def _train_and_register(gateway: TrackingGateway, run_id: str, request: Request) -> tuple[int, str]:
    """Everything after the run exists. Returns the version number and its primary metric."""
    project = request.project
    classification = project.classification
    split = load_split(project)
    _say(
        f"Loaded {project.experiment}: {len(split.x_train)} training and {len(split.x_test)} "
        f"held-out rows, {split.x_train.shape[1]} features."
    )
    if request.current is not None:
        split = replace(
            split,
            x_train=pd.concat([split.x_train, request.current[split.x_train.columns]]),
            y_train=pd.concat([split.y_train, request.current["target"]]),
        )
        _say(f"Added {len(request.current)} labelled current rows to the training rows.")
    booster_class = GradientBoostingClassifier if classification else GradientBoostingRegressor
    fit_started = time.monotonic()
    search = GridSearchCV(
        booster_class(random_state=0, **FIXED_SETTINGS),
        SEARCH_SPACE,
        cv=CV_FOLDS,
        scoring="neg_log_loss" if classification else "neg_root_mean_squared_error",
    )
    search.fit(split.x_train, split.y_train)
    booster = search.best_estimator_
    chosen = dict(search.best_params_)
    _say(
        f"Chose {chosen} by {CV_FOLDS}-fold cross-validation on the training rows "
        f"({len(search.cv_results_['params'])} settings, {time.monotonic() - fit_started:.1f} s)."
    )
    metrics = evaluate(booster, split, classification)
    history = staged_history(booster, split, classification)
    _say(
        f"Trained {chosen['n_estimators']} boosting stages: "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        + " on the held-out rows."
    )

    now_ms = int(time.time() * 1000)
    histories = {k: [MetricPoint(0, now_ms, v)] for k, v in metrics.items()}
    for key, values in history.items():
        histories.setdefault(key, []).extend(
            MetricPoint(step, now_ms, value) for step, value in enumerate(values)
        )
    params = {
        **{k: str(v) for k, v in {**FIXED_SETTINGS, **chosen}.items()},
        "cv_folds": str(CV_FOLDS),
        "current_rows": str(0 if request.current is None else len(request.current)),
        "model_family": "gradient_boosting",
        **split.params(),
    }
    gateway.log_metric_histories(run_id, histories)
    gateway.log_params(run_id, params)
    _say(f"Logged {len(params)} params, {len(metrics)} metrics and {len(history)} histories.")

    training_frame = split.training_frame()
    reference = reference_sample(training_frame)
    with tempfile.TemporaryDirectory() as scratch:
        reference_path = Path(scratch) / REFERENCE_FILE
        reference.to_parquet(reference_path, index=False)
        gateway.log_artifact_file(run_id, reference_path, REFERENCE_ARTIFACT_DIR)
    gateway.log_dataset(
        run_id,
        training_frame,
        name=f"{project.experiment}-train",
        targets="target",
        context="training",
    )
    _say(f"Logged the input dataset and {REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}.")
    info = log_model(run_id, booster, split.x_test.head(3))
    _say(f"Logged the model {info.model_id}.")
    _compare_with_champion(gateway, run_id, request.register_as, split, classification, metrics)

    primary = _primary_metric(gateway, request.register_as, project)
    summary = f"{primary} {metrics[primary]:.3f}" if primary in metrics else "no primary metric"
    _ensure_registered_model(gateway, request.register_as, project, primary)
    version = gateway.create_model_version(
        request.register_as,
        source=info.model_uri,
        run_id=run_id,
        model_id=info.model_id,
        description=f"Retrained gradient boosting ({request.lineage[TRIGGER_TAG]}): "
        f"{summary} on the held-out set.",
        tags={**request.lineage, "model_family": "gradient_boosting"},
    )
    return version.version, summary


def _read_current(path: Path, project: DemoProject) -> pd.DataFrame:
    """Labelled current rows from a CSV or Parquet file or a folder of them.

    Raises:
        ValueError: Unreadable, empty, or missing a feature column or ``target``.
    """
    from services.core.errors import DriftError
    from services.monitoring.readers import read_table

    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    try:
        frame = pd.concat([read_table(f) for f in files], ignore_index=True) if files else None
    except DriftError as exc:
        raise ValueError(f"--current: {exc}") from exc
    if frame is None or frame.empty:
        raise ValueError(f"--current: {path} holds no rows.")
    wanted = [*load_split(project).x_train.columns, "target"]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"--current: {path} lacks the column(s) {', '.join(missing)}; it needs every "
            f"feature of {project.model} and the label `target`."
        )
    return frame[wanted]


def _project_of(gateway: TrackingGateway, model: str) -> DemoProject | None:
    """The demo project a registered model is trained by, from its training-project tag."""
    try:
        registered = gateway.find_registered_model(model)
    except (TrackingError, OSError) as exc:
        raise TrainingFailed(
            f"MLflow at {gateway.uri} could not be reached: {_reason(exc)}"
        ) from exc
    name = registered.tags.get(TRAINING_PROJECT_TAG) if registered is not None else None
    return next((p for p in PROJECTS if p.model == name), None)


def _compare_with_champion(
    gateway: TrackingGateway,
    run_id: str,
    model: str,
    split: Split,
    classification: bool,
    metrics: dict[str, float],
) -> None:
    """Score the current champion on this run's held-out rows and log both side by side."""
    import mlflow.sklearn

    try:
        champion = gateway.alias_holder(model, CHAMPION)
    except NotFound:  # no such model yet, or a name MLflow refuses
        champion = None
    if champion is None:
        _say(f"No @{CHAMPION} of {model} to compare with: the new version stands alone.")
        return
    champion_model = mlflow.sklearn.load_model(f"models:/{model}/{champion}")
    scores = evaluate(champion_model, split, classification)
    rows = {
        key: {"challenger": metrics[key], "champion": scores[key]}
        for key in metrics
        if key in scores
    }
    comparison = {"champion_version": champion, "held_out_rows": len(split.x_test), "metrics": rows}
    gateway.log_metrics(
        run_id, {f"{CHAMPION_METRIC_PREFIX}{key}": value for key, value in scores.items()}
    )
    gateway.set_run_tags(run_id, {COMPARED_WITH_TAG: str(champion)})
    gateway.log_artifact_text(
        run_id, COMPARISON_ARTIFACT, json.dumps(comparison, indent=2, default=str)
    )
    _say(
        f"Compared with @{CHAMPION} (version {champion}) on the same "
        f"{len(split.x_test)} held-out rows: "
        + ", ".join(
            f"{key} {row['champion']:.3f} → {row['challenger']:.3f}" for key, row in rows.items()
        )
        + "."
    )


def _primary_metric(gateway: TrackingGateway, model: str, project: DemoProject) -> str:
    """The registered model's ``primary_metric`` tag, or the demo's default for its task."""
    registered = gateway.find_registered_model(model)
    if registered is None:
        return project.primary_metric
    return str(registered.tags.get("primary_metric") or project.primary_metric)


def _ensure_registered_model(
    gateway: TrackingGateway, model: str, project: DemoProject, primary: str
) -> None:
    """Create the registered model when it is missing (one another job created meanwhile is
    kept as it is)."""
    if gateway.find_registered_model(model) is not None:
        return
    gateway.create_registered_model(
        model,
        project.model_description,
        {**project.model_tags(primary), TRAINING_PROJECT_TAG: project.model},
    )


def _reason(exc: BaseException) -> str:
    """The exception's message on one line, at most 400 characters.

    For an MLflow failure the gateway translated, MLflow's own message: it names the endpoint
    and the low-level cause (e.g. "Connection refused"), as this job has always reported.
    """
    while isinstance(exc, TrackingError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(status: int, message: str) -> int:
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr, flush=True)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.train",
        description="Train a demo model on its bundled dataset, log the run to MLflow and "
        "register a new version (aliases are not changed).",
    )
    parser.add_argument(
        "--model", required=True, help=f"the demo model: {', '.join(p.model for p in PROJECTS)}"
    )
    parser.add_argument(
        "--trigger", choices=TRIGGERS, default="manual", help="why it runs (default manual)"
    )
    parser.add_argument("--job-id", help="the retraining job's id (default: a new cli-… id)")
    parser.add_argument("--requested-by", help="who asked for it (default: the current user)")
    parser.add_argument("--cause-run-id", help="the run that caused it, e.g. a monitoring run")
    parser.add_argument("--policy", help="the retraining policy that started it, if any")
    parser.add_argument(
        "--current",
        type=Path,
        help="labelled current rows (CSV or Parquet file, or a folder) to train on as well",
    )
    parser.add_argument(
        "--register-as",
        help="register the version under this model name instead (created when missing)",
    )
    parser.add_argument(
        "--experiment",
        help="log the run in this experiment instead of the model's own (created when missing)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
