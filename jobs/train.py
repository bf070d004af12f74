"""Train a demo model again and register a new version: ``python -m jobs.train``.

Real scikit-learn training on the bundled dataset of the model's demo project (see
:data:`jobs.seed_demo.PROJECTS`): a gradient-boosting model whose settings are chosen by
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
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.model_selection import GridSearchCV

from jobs.seed_demo import (
    PROJECTS,
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_FILE,
    REFERENCE_ROWS,
    SITE_MIX,
    DemoProject,
    _evaluate,
    _load_split,
    _staged_history,
    _with_sites,
    log_batches,
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
    TRAINING_PROJECT_TAG,
    TRIGGER_TAG,
)
from services.core.errors import FlightdeckError
from services.core.settings import apply_mlflow_environment, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TRIGGERS = ("manual", "schedule", "drift", "decay")
SEARCH_SPACE = {"learning_rate": [0.03, 0.1], "max_depth": [2, 3], "n_estimators": [60, 150]}
"""Settings the retraining chooses from by cross-validation on the training rows alone."""
CV_FOLDS = 5
FIXED_SETTINGS = {"subsample": 0.7}
PIP_REQUIREMENTS = ["scikit-learn", "pandas"]


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
    except FlightdeckError as exc:
        return _fail(EXIT_USAGE, f"Cannot start training: {exc}")
    apply_mlflow_environment(settings)
    projects = {p.model: p for p in PROJECTS}
    try:
        project = projects.get(args.model) or _project_of(settings.tracking_uri, args.model)
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
        train(settings.tracking_uri, request)
    except TrainingFailed as exc:
        return _fail(EXIT_FAILED, str(exc))
    return EXIT_OK


def train(tracking_uri: str, request: Request) -> tuple[str, int]:
    """Train the request's model, log one run, register a new version.

    Returns:
        The run's id and the new version's number.

    Raises:
        TrainingFailed: MLflow could not be reached or refused a request, or training failed.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow sets its own
    project = request.project
    started = time.monotonic()
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    _say(f"Training {project.model} ({project.task}) for job {request.lineage[JOB_ID_TAG]}…")
    try:
        experiment = client.get_experiment_by_name(request.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(request.experiment)
        )
        run = client.create_run(
            experiment_id,
            run_name=f"retrain-{request.lineage[TRIGGER_TAG]}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={
                **request.lineage,
                "model_family": "gradient_boosting",
                "dataset": project.experiment,
            },
        )
    except (MlflowException, OSError) as exc:
        raise TrainingFailed(
            f"MLflow at {tracking_uri} could not be reached or refused the run: {_reason(exc)}"
        ) from exc
    run_id = str(run.info.run_id)
    _say(f"Run {run_id} started in experiment {request.experiment}.")
    try:
        version, summary = _train_and_register(client, run_id, request)
    except Exception as exc:
        reason = _reason(exc)
        try:
            client.set_tag(run_id, FAILURE_TAG, reason[:5000])
            client.set_terminated(run_id, "FAILED")
        except (MlflowException, OSError):
            pass  # the reason below is what matters; the server may be the thing that failed
        raise TrainingFailed(f"Training run {run_id} failed: {reason}") from exc
    _say(f"Done in {time.monotonic() - started:.1f} s.")
    _say(f"Registered {request.register_as} version {version} from run {run_id} ({summary}).")
    return run_id, version


def _train_and_register(client: Any, run_id: str, request: Request) -> tuple[int, str]:
    """Everything after the run exists. Returns the version number and its primary metric."""
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    from mlflow.entities import Metric

    project = request.project
    classification = project.task == "classification"
    split = _load_split(project)
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
    metrics = _evaluate(booster, split, classification)
    history = _staged_history(booster, split, classification)
    _say(
        f"Trained {chosen['n_estimators']} boosting stages: "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        + " on the held-out rows."
    )

    now_ms = int(time.time() * 1000)
    entries = [Metric(k, v, now_ms, 0) for k, v in metrics.items()]
    for key, values in history.items():
        entries.extend(Metric(key, value, now_ms, step) for step, value in enumerate(values))
    params = {
        **{k: str(v) for k, v in {**FIXED_SETTINGS, **chosen}.items()},
        "cv_folds": str(CV_FOLDS),
        "current_rows": str(0 if request.current is None else len(request.current)),
        "model_family": "gradient_boosting",
        "test_size": "0.25",
        "random_state": "7",
        "n_features": str(split.x_train.shape[1]),
    }
    log_batches(client, run_id, entries, params)
    _say(f"Logged {len(params)} params, {len(metrics)} metrics and {len(history)} histories.")

    training_frame = split.x_train.assign(target=split.y_train.values)
    reference = _with_sites(
        training_frame.sample(min(REFERENCE_ROWS, len(training_frame)), random_state=0),
        np.random.default_rng(0),
        SITE_MIX,
    )
    with tempfile.TemporaryDirectory() as scratch:
        reference_path = Path(scratch) / REFERENCE_FILE
        reference.to_parquet(reference_path, index=False)
        client.log_artifact(run_id, str(reference_path), REFERENCE_ARTIFACT_DIR)
    dataset = mlflow.data.from_pandas(
        training_frame, targets="target", name=f"{project.experiment}-train"
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(dataset, context="training")
        _say(f"Logged the input dataset and {REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}.")
        info = mlflow.sklearn.log_model(
            booster,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=PIP_REQUIREMENTS,
            input_example=split.x_test.head(3),
        )
    _say(f"Logged the model {info.model_id}.")
    _compare_with_champion(client, run_id, request.register_as, split, classification, metrics)

    primary = _primary_metric(client, request.register_as, classification)
    summary = f"{primary} {metrics[primary]:.3f}" if primary in metrics else "no primary metric"
    _ensure_registered_model(client, request.register_as, project, primary)
    version = client.create_model_version(
        request.register_as,
        source=info.model_uri,
        run_id=run_id,
        model_id=info.model_id,
        description=f"Retrained gradient boosting ({request.lineage[TRIGGER_TAG]}): "
        f"{summary} on the held-out set.",
        tags={**request.lineage, "model_family": "gradient_boosting"},
    )
    return int(version.version), summary


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
    wanted = [*_load_split(project).x_train.columns, "target"]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"--current: {path} lacks the column(s) {', '.join(missing)}; it needs every "
            f"feature of {project.model} and the label `target`."
        )
    return frame[wanted]


def _project_of(tracking_uri: str, model: str) -> DemoProject | None:
    """The demo project a registered model is trained by, from its training-project tag."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        registered = _registered_model(MlflowClient(tracking_uri), model)
    except (MlflowException, OSError) as exc:
        raise TrainingFailed(
            f"MLflow at {tracking_uri} could not be reached: {_reason(exc)}"
        ) from exc
    name = registered.tags.get(TRAINING_PROJECT_TAG) if registered is not None else None
    return next((p for p in PROJECTS if p.model == name), None)


def _compare_with_champion(
    client: Any,
    run_id: str,
    model: str,
    split: Any,
    classification: bool,
    metrics: dict[str, float],
) -> None:
    """Score the current champion on this run's held-out rows and log both side by side."""
    import mlflow.sklearn
    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException:
        _say(f"No @{CHAMPION} of {model} to compare with: the new version stands alone.")
        return
    champion_model = mlflow.sklearn.load_model(f"models:/{model}/{champion.version}")
    scores = _evaluate(champion_model, split, classification)
    comparison = {
        "champion_version": int(champion.version),
        "held_out_rows": len(split.x_test),
        "metrics": {
            key: {"challenger": metrics[key], "champion": scores[key]}
            for key in metrics
            if key in scores
        },
    }
    client.log_batch(
        run_id,
        metrics=[
            Metric(f"{CHAMPION_METRIC_PREFIX}{key}", value, int(time.time() * 1000), 0)
            for key, value in scores.items()
        ],
        tags=[RunTag(COMPARED_WITH_TAG, str(champion.version))],
    )
    client.log_dict(run_id, comparison, COMPARISON_ARTIFACT)
    _say(
        f"Compared with @{CHAMPION} (version {champion.version}) on the same "
        f"{len(split.x_test)} held-out rows: "
        + ", ".join(
            f"{key} {row['champion']:.3f} → {row['challenger']:.3f}"
            for key, row in comparison["metrics"].items()
        )
        + "."
    )


def _primary_metric(client: Any, model: str, classification: bool) -> str:
    """The registered model's ``primary_metric`` tag, or the demo's default for its task."""
    default = "eval_f1" if classification else "eval_rmse"
    registered = _registered_model(client, model)
    if registered is None:
        return default
    return str(registered.tags.get("primary_metric") or default)


def _ensure_registered_model(client: Any, model: str, project: DemoProject, primary: str) -> None:
    from mlflow.exceptions import MlflowException

    if _registered_model(client, model) is not None:
        return
    try:
        client.create_registered_model(
            model,
            description=f"{project.description} Trained on scikit-learn's bundled data.",
            tags={
                "team": project.team,
                "task": project.task,
                "primary_metric": primary,
                TRAINING_PROJECT_TAG: project.model,
            },
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another job created it meanwhile
            raise


def _registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _reason(exc: BaseException) -> str:
    """The exception's message on one line, without MLflow's long retry preamble."""
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
