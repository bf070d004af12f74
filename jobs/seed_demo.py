"""Seed the tracking server with realistic demo data: ``python -m jobs.seed_demo``.

Real scikit-learn training on datasets bundled with scikit-learn (nothing is downloaded):
three experiments, 87 runs in all, among them a gradient-boosting sweep whose child runs log
per-stage metric histories, and three registered models with four versions each plus the
``champion`` and ``challenger`` aliases.

Then 30 daily monitoring batches per model (:mod:`jobs.monitor`'s own code path: ``compute_drift``
and ``log_monitoring_run``), drifting from batch 20 on, monitored against version 2 until the
retraining at batch 24 and against version 3 (today's champion) after it.

Idempotent: an experiment or model that was seeded completely carries a completion tag and is
skipped; a partial one (an interrupted seed) is cleared and seeded again. Monitoring batches carry
their own completion tag on the registered model.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.core import filters
from services.core.conventions import CHALLENGER, CHAMPION, MODEL_TAG, MONITORING_EXPERIMENT
from services.core.gateway import TrackingGateway
from services.core.settings import apply_mlflow_environment, load_settings
from services.monitoring.drift import DriftResult, compute_drift
from services.monitoring.runs import log_monitoring_run, reference_for_version

SEED_TAG = "flightdeck.demo_seed"
SEED_COMPLETE = "complete"
DEMO_USERS = ("alice", "bob", "carol")
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference.parquet"
REFERENCE_ROWS = 500
HISTORY_STEPS = 60
"""Boosting stages per sweep run: each logs one point of its metric histories."""
DAY_MS = 86_400_000
SITE_COLUMN = "site"
"""The demo's one categorical column: where a row was collected (not a model input)."""
SITES = ("north", "south", "east", "west")
SITE_MIX = (0.4, 0.3, 0.2, 0.1)
DRIFTED_SITE_MIX = (0.1, 0.2, 0.2, 0.5)
MONITORING_TAG = "flightdeck.demo_monitoring"
"""On a registered model once its monitoring batches are all logged."""
MONITORING_BATCHES = 30
DRIFT_FROM_BATCH = 20
"""The first batch whose numeric features shift; the site mix follows two batches later."""
RETRAINED_AT_BATCH = 24
"""Batches from here on are monitored against version 3 (retrained), earlier ones version 2."""
DRIFTED_SHARE_AT_END = 0.4
"""Share of numeric features shifted in the last batch; it grows from batch 20 on."""
SHIFT_SD = 1.0
"""How far a drifting feature moves, in standard deviations."""
BATCH_ROWS = (150, 250)
DRIFT_WORKERS = 2

log = logging.getLogger("flightdeck.seed")


@dataclass(frozen=True)
class DemoProject:
    """One demo experiment and the registered model trained in it."""

    experiment: str
    model: str
    task: str  # "classification" | "regression"
    load: Callable[[], Any]
    description: str
    team: str


PROJECTS = (
    DemoProject(
        "wine-classification",
        "wine-classifier",
        "classification",
        datasets.load_wine,
        "Cultivar of Italian wines from 13 chemical measurements.",
        "quality",
    ),
    DemoProject(
        "breast-cancer-classification",
        "breast-cancer-classifier",
        "classification",
        datasets.load_breast_cancer,
        "Malignant or benign tumour from 30 features of cell nuclei.",
        "health",
    ),
    DemoProject(
        "diabetes-regression",
        "diabetes-regressor",
        "regression",
        datasets.load_diabetes,
        "Disease progression one year after baseline, from 10 measurements.",
        "health",
    ),
)


@dataclass
class TrainedRun:
    """What one training produced, ready to log."""

    name: str
    family: str
    estimator: BaseEstimator
    params: dict[str, str]
    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    parent: str | None = None


@dataclass
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", module="mlflow")
    settings = load_settings()
    apply_mlflow_environment(settings)
    started = time.monotonic()
    seed(settings.tracking_uri)
    log.info("Demo data ready at %s in %.0f s.", settings.tracking_uri, time.monotonic() - started)
    return 0


def seed(tracking_uri: str) -> None:
    """Seed every demo project that is not complete yet on this server."""
    import mlflow  # imported late: 2-3 s, and only the seed needs it at module level

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow sets its own
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    now_ms = int(time.time() * 1000)
    for project in PROJECTS:
        _seed_project(client, project, now_ms)
    gateway = TrackingGateway(load_settings({**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}))
    _seed_monitoring(client, gateway, datetime.now(UTC))


def _seed_project(client: Any, project: DemoProject, now_ms: int) -> None:
    experiment = client.get_experiment_by_name(project.experiment)
    model = _registered_model(client, project.model)
    if (
        experiment is not None
        and experiment.tags.get(SEED_TAG) == SEED_COMPLETE
        and model is not None
        and model.tags.get(SEED_TAG) == SEED_COMPLETE
    ):
        log.info("%s: already seeded, skipped.", project.experiment)
        return
    started = time.monotonic()
    if experiment is None:
        experiment_id = client.create_experiment(project.experiment)
    else:
        experiment_id = experiment.experiment_id
        _clear_runs(client, experiment_id)
    if model is not None:
        client.delete_registered_model(project.model)
    client.set_experiment_tag(experiment_id, "mlflow.note.content", project.description)
    client.set_experiment_tag(experiment_id, "team", project.team)
    client.set_experiment_tag(experiment_id, "task", project.task)

    split = _load_split(project)
    trained = list(_train_all(project, split))
    logged = _log_runs(client, experiment_id, project, split, trained, now_ms)
    _register_versions(client, project, trained, logged, split)
    client.set_experiment_tag(experiment_id, SEED_TAG, SEED_COMPLETE)
    log.info(
        "%s: %d training runs and model %s with 4 versions in %.0f s.",
        project.experiment,
        len(logged),
        project.model,
        time.monotonic() - started,
    )


# -- training ------------------------------------------------------------------------------------


def _load_split(project: DemoProject) -> Split:
    bunch = project.load(as_frame=True)
    features = bunch.data.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_"))
    target = bunch.target.rename("target")
    stratify = target if project.task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.25, random_state=7, stratify=stratify
    )
    return Split(x_train, x_test, y_train, y_test)


def _train_all(project: DemoProject, split: Split) -> Iterator[TrainedRun]:
    classification = project.task == "classification"
    for rate, depth, subsample in itertools.product((0.03, 0.1, 0.3), (2, 3, 4), (0.7, 1.0)):
        booster_class = GradientBoostingClassifier if classification else GradientBoostingRegressor
        booster = booster_class(
            n_estimators=HISTORY_STEPS,
            learning_rate=rate,
            max_depth=depth,
            subsample=subsample,
            random_state=0,
        )
        booster.fit(split.x_train, split.y_train)
        yield TrainedRun(
            name=f"gbm-lr{rate}-d{depth}-s{subsample}",
            family="gradient_boosting",
            estimator=booster,
            params={
                "learning_rate": str(rate),
                "max_depth": str(depth),
                "subsample": str(subsample),
                "n_estimators": str(HISTORY_STEPS),
            },
            metrics=_evaluate(booster, split, classification),
            history=_staged_history(booster, split, classification),
            parent="gbm-sweep",
        )
    for trees, depth in itertools.product((50, 100, 200), (5, None)):
        forest_class = RandomForestClassifier if classification else RandomForestRegressor
        forest = forest_class(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=1)
        forest.fit(split.x_train, split.y_train)
        yield TrainedRun(
            name=f"rf-{trees}-d{depth or 'max'}",
            family="random_forest",
            estimator=forest,
            params={"n_estimators": str(trees), "max_depth": str(depth)},
            metrics=_evaluate(forest, split, classification),
        )
    for strength in (0.01, 0.1, 1.0, 10.0):
        linear = (
            LogisticRegression(C=strength, max_iter=2000)
            if classification
            else Ridge(alpha=1 / strength)
        )
        pipeline = make_pipeline(StandardScaler(), linear)
        pipeline.fit(split.x_train, split.y_train)
        key = "C" if classification else "alpha"
        yield TrainedRun(
            name=f"linear-{key}{strength}",
            family="linear",
            estimator=pipeline,
            params={key: str(strength if classification else 1 / strength), "scaler": "standard"},
            metrics=_evaluate(pipeline, split, classification),
        )


def _evaluate(model: Any, split: Split, classification: bool) -> dict[str, float]:
    predicted = model.predict(split.x_test)
    if classification:
        probabilities = model.predict_proba(split.x_test)
        return {
            "eval_accuracy": float(accuracy_score(split.y_test, predicted)),
            "eval_f1": float(f1_score(split.y_test, predicted, average="macro")),
            "eval_log_loss": float(log_loss(split.y_test, probabilities, labels=model.classes_)),
        }
    return {
        "eval_rmse": float(root_mean_squared_error(split.y_test, predicted)),
        "eval_mae": float(mean_absolute_error(split.y_test, predicted)),
        "eval_r2": float(r2_score(split.y_test, predicted)),
    }


def _staged_history(booster: Any, split: Split, classification: bool) -> dict[str, list[float]]:
    history: dict[str, list[float]] = {"train_loss": [float(v) for v in booster.train_score_]}
    if classification:
        history["val_accuracy"] = [
            float(accuracy_score(split.y_test, p)) for p in booster.staged_predict(split.x_test)
        ]
        history["val_log_loss"] = [
            float(log_loss(split.y_test, p, labels=booster.classes_))
            for p in booster.staged_predict_proba(split.x_test)
        ]
    else:
        history["val_rmse"] = [
            float(root_mean_squared_error(split.y_test, p))
            for p in booster.staged_predict(split.x_test)
        ]
    return history


# -- logging -------------------------------------------------------------------------------------


def _log_runs(
    client: Any,
    experiment_id: str,
    project: DemoProject,
    split: Split,
    trained: list[TrainedRun],
    now_ms: int,
) -> list[tuple[str, int]]:
    """Log every trained run, spread over the last 30 days, oldest first.

    Returns each run's id and end time (milliseconds since the Unix epoch), in order.
    """
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag, Metric

    training_frame = split.x_train.assign(target=split.y_train.values)
    dataset = mlflow.data.from_pandas(
        training_frame, targets="target", name=f"{project.experiment}-train"
    )
    dataset_input = DatasetInput(
        dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", "training")]
    )
    reference = _with_sites(
        training_frame.sample(min(REFERENCE_ROWS, len(training_frame)), random_state=0),
        np.random.default_rng(0),
        SITE_MIX,
    )

    with tempfile.TemporaryDirectory() as scratch:
        reference_path = Path(scratch) / REFERENCE_FILE
        reference.to_parquet(reference_path, index=False)
        first_ms = now_ms - 30 * DAY_MS
        step_ms = (29 * DAY_MS) // len(trained)
        parents: dict[str, str] = {}
        logged: list[tuple[str, int]] = []
        for index, run in enumerate(trained):
            start_ms = first_ms + index * step_ms
            user = DEMO_USERS[index % len(DEMO_USERS)]
            tags = {
                "mlflow.user": user,
                "model_family": run.family,
                "dataset": project.experiment,
                "flightdeck.trigger": "manual",
                "flightdeck.requested_by": user,
            }
            if run.parent:
                if run.parent not in parents:
                    parents[run.parent] = _log_parent(
                        client, experiment_id, run.parent, start_ms, user
                    )
                tags["mlflow.parentRunId"] = parents[run.parent]
            created = client.create_run(
                experiment_id, start_time=start_ms, tags=tags, run_name=run.name
            )
            run_id = created.info.run_id
            metrics = [Metric(k, v, start_ms + 60_000, 0) for k, v in run.metrics.items()]
            for key, values in run.history.items():
                metrics.extend(
                    Metric(key, value, start_ms + step * 500, step)
                    for step, value in enumerate(values)
                )
            params = {
                **run.params,
                "model_family": run.family,
                "test_size": "0.25",
                "random_state": "7",
                "n_features": str(split.x_train.shape[1]),
            }
            log_batches(
                client, run_id, metrics, params, {"flightdeck.job_id": f"seed-{run_id[:8]}"}
            )
            client.log_inputs(run_id, [dataset_input])
            client.log_artifact(run_id, str(reference_path), REFERENCE_ARTIFACT_DIR)
            end_ms = start_ms + 90_000 + index * 1000
            client.set_terminated(run_id, "FINISHED", end_time=end_ms)
            logged.append((run_id, end_ms))
        for parent_id in parents.values():
            client.set_terminated(parent_id, "FINISHED", end_time=first_ms + 29 * DAY_MS)
    return logged


def _log_parent(client: Any, experiment_id: str, name: str, start_ms: int, user: str) -> str:
    from mlflow.entities import Param

    parent = client.create_run(
        experiment_id,
        start_time=start_ms,
        run_name=name,
        tags={
            "mlflow.user": user,
            "model_family": "gradient_boosting",
            "flightdeck.trigger": "manual",
        },
    )
    client.log_batch(parent.info.run_id, params=[Param("search", "grid"), Param("grid_size", "18")])
    return str(parent.info.run_id)


def _register_versions(
    client: Any,
    project: DemoProject,
    trained: list[TrainedRun],
    logged: list[tuple[str, int]],
    split: Split,
) -> None:
    """Register four versions, from a weaker early run to the best one, and set the aliases.

    The third version is the ``champion``; the fourth, newest and best, the ``challenger``.
    """
    import mlflow
    import mlflow.sklearn

    primary = "eval_f1" if project.task == "classification" else "eval_rmse"
    higher_is_better = project.task == "classification"
    ranked = sorted(
        range(len(trained)), key=lambda i: trained[i].metrics[primary], reverse=higher_is_better
    )
    # Worst, middling, second best, best: versions improve as a team would hope.
    chosen = [ranked[-1], ranked[len(ranked) // 2], ranked[1], ranked[0]]
    client.create_registered_model(
        project.model,
        description=f"{project.description} Trained on scikit-learn's bundled data.",
        tags={"team": project.team, "task": project.task, "primary_metric": primary},
    )
    example = split.x_test.head(3)
    for number, index in enumerate(chosen, start=1):
        run = trained[index]
        run_id, end_ms = logged[index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mlflow.start_run(run_id=run_id):
                info = mlflow.sklearn.log_model(
                    run.estimator,
                    name="model",
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn", "pandas"],
                    input_example=example,
                )
        client.set_terminated(run_id, "FINISHED", end_time=end_ms)  # start_run reset it
        client.create_model_version(
            project.model,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,
            description=f"{run.name}: {primary} {run.metrics[primary]:.3f} on the held-out set.",
            tags={
                "model_family": run.family,
                "validation": "passed" if number > 1 else "failed",
                SEED_TAG: "v1",
            },
        )
    client.set_registered_model_alias(project.model, CHAMPION, "3")
    client.set_registered_model_alias(project.model, CHALLENGER, "4")
    client.set_registered_model_tag(project.model, SEED_TAG, SEED_COMPLETE)


def _with_sites(
    frame: pd.DataFrame, rng: np.random.Generator, mix: tuple[float, ...]
) -> pd.DataFrame:
    """The frame with a :data:`SITE_COLUMN` drawn from ``mix``, just before the target."""
    position = list(frame.columns).index("target") if "target" in frame else len(frame.columns)
    sites = rng.choice(SITES, size=len(frame), p=mix)
    return frame.reset_index(drop=True).assign(**{SITE_COLUMN: sites})[
        [*frame.columns[:position], SITE_COLUMN, *frame.columns[position:]]
    ]


# -- monitoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoBatch:
    """One day of a model's current data, and what it is monitored against."""

    project: DemoProject
    version: int
    window_start: datetime
    frame: pd.DataFrame
    reference: pd.DataFrame


def _seed_monitoring(client: Any, gateway: TrackingGateway, now: datetime) -> None:
    """Log the daily monitoring batches of every model that does not have them yet.

    Drift is computed in :data:`DRIFT_WORKERS` processes (Evidently costs about 1 s a batch) and
    logged in order from this one, with the same functions ``python -m jobs.monitor`` uses.
    """
    models = {p.model: _registered_model(client, p.model) for p in PROJECTS}
    pending = [
        p
        for p in PROJECTS
        if models[p.model] is not None and models[p.model].tags.get(MONITORING_TAG) != SEED_COMPLETE
    ]
    if not pending:
        log.info("Monitoring batches: already seeded, skipped.")
        return
    started = time.monotonic()
    batches: list[DemoBatch] = []
    for project in pending:
        _clear_monitoring(client, project.model)
        batches.extend(_demo_batches(gateway, project, now))
    context = multiprocessing.get_context("spawn")  # no fork of a process holding clients
    with ProcessPoolExecutor(max_workers=DRIFT_WORKERS, mp_context=context) as workers:
        futures: list[Future[DriftResult]] = [
            workers.submit(compute_drift, b.reference, b.frame, target="target") for b in batches
        ]
        try:
            _log_demo_batches(client, gateway, batches, futures, now)
        except BaseException:
            workers.shutdown(cancel_futures=True)  # do not compute what will not be logged
            raise
    log.info(
        "Monitoring: %d daily batches for %d models in %.0f s.",
        len(batches),
        len(pending),
        time.monotonic() - started,
    )


def _log_demo_batches(
    client: Any,
    gateway: TrackingGateway,
    batches: list[DemoBatch],
    futures: list[Future[DriftResult]],
    now: datetime,
) -> None:
    """Log each batch's result in order; tag a model complete after its last batch."""
    for index, (batch, future) in enumerate(zip(batches, futures, strict=True)):
        window_end = batch.window_start + timedelta(days=1)
        log_monitoring_run(
            gateway,
            model=batch.project.model,
            version=batch.version,
            alias=CHAMPION,
            window_start=batch.window_start,
            window_end=window_end,
            result=future.result(),
            started_at=min(window_end + timedelta(minutes=30), now),
            extra_tags={SEED_TAG: "v1"},
        )
        last_of_model = index + 1 == len(batches) or batches[index + 1].project != batch.project
        if last_of_model:
            client.set_registered_model_tag(batch.project.model, MONITORING_TAG, SEED_COMPLETE)


def _demo_batches(gateway: TrackingGateway, project: DemoProject, now: datetime) -> list[DemoBatch]:
    """The model's daily batches, the last one covering yesterday (UTC)."""
    references = {v: reference_for_version(gateway, project.model, v) for v in (2, 3)}
    bunch = project.load(as_frame=True)
    pool = bunch.data.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_"))
    pool = pool.assign(target=bunch.target.values)
    rng = np.random.default_rng(zlib.crc32(project.model.encode()))
    numeric = [c for c in pool.columns if c != "target"]
    drift_order = list(rng.permutation(numeric))
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    drifting_batches = MONITORING_BATCHES - DRIFT_FROM_BATCH
    batches = []
    for index in range(MONITORING_BATCHES):
        version = 2 if index < RETRAINED_AT_BATCH else 3
        reference = references[version]
        frame = pool.sample(
            int(rng.integers(BATCH_ROWS[0], BATCH_ROWS[1] + 1)),
            replace=True,
            random_state=int(rng.integers(2**31)),
        ).reset_index(drop=True)
        progress = index - DRIFT_FROM_BATCH + 1
        if progress > 0:
            shifted = round(len(numeric) * DRIFTED_SHARE_AT_END * progress / drifting_batches)
            for column in drift_order[: max(2, shifted)]:
                frame[column] = frame[column] + SHIFT_SD * pool[column].std()
        if SITE_COLUMN in reference.columns:
            mix = DRIFTED_SITE_MIX if progress > 2 else SITE_MIX
            frame = _with_sites(frame, rng, mix)
        batches.append(
            DemoBatch(
                project=project,
                version=version,
                window_start=today - timedelta(days=MONITORING_BATCHES - index),
                frame=frame[list(reference.columns)],
                reference=reference,
            )
        )
    return batches


def _clear_monitoring(client: Any, model: str) -> None:
    """Delete the demo monitoring runs of a model left by an interrupted seed."""
    from mlflow.entities import ViewType

    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    if experiment is None:
        return
    query = filters.all_of(filters.tag_equals(MODEL_TAG, model), filters.tag_equals(SEED_TAG, "v1"))
    for run in client.search_runs(
        [experiment.experiment_id], query, run_view_type=ViewType.ACTIVE_ONLY, max_results=5000
    ):
        if run.data.tags.get(MODEL_TAG) == model:  # the filter may match more (see filters)
            client.delete_run(run.info.run_id)


def log_batches(
    client: Any,
    run_id: str,
    metrics: list[Any],
    params: dict[str, str],
    tags: dict[str, str] | None = None,
) -> None:
    """Log metrics in chunks of 1,000 (``log_batch``'s limit), params and tags with the first."""
    from mlflow.entities import Param, RunTag

    for start in range(0, max(len(metrics), 1), 1000):
        client.log_batch(
            run_id,
            metrics=metrics[start : start + 1000],
            params=[Param(k, v) for k, v in params.items()] if start == 0 else [],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()] if start == 0 else [],
        )


def _registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _clear_runs(client: Any, experiment_id: str) -> None:
    from mlflow.entities import ViewType

    for run in client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=5000):
        client.delete_run(run.info.run_id)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
