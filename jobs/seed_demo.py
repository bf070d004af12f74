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
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jobs.training import (
    PROJECTS,
    REFERENCE_ARTIFACT_DIR,
    REFERENCE_FILE,
    SITE_COLUMN,
    SITE_MIX,
    DemoProject,
    Split,
    evaluate,
    load_features,
    load_split,
    log_model,
    reference_sample,
    staged_history,
    with_sites,
)
from services.core import filters
from services.core.conventions import (
    CHALLENGER,
    CHAMPION,
    DESCRIPTION_TAG,
    JOB_ID_TAG,
    MODEL_TAG,
    MONITORING_EXPERIMENT,
    REQUESTED_BY_TAG,
    RUN_NAME_TAG,
    TRIGGER_TAG,
    USER_TAG,
)
from services.core.gateway import TrackingGateway
from services.core.records import MetricPoint, Run
from services.core.settings import load_settings
from services.monitoring.drift import DriftResult, compute_drift
from services.monitoring.runs import log_monitoring_run, reference_for_version

SEED_TAG = "flightdeck.demo_seed"
SEED_COMPLETE = "complete"
DEMO_USERS = ("alice", "bob", "carol")
HISTORY_STEPS = 60
"""Boosting stages per sweep run: each logs one point of its metric histories."""
DAY_MS = 86_400_000
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
SEARCH_PAGE = 1000
"""Runs per page when listing the runs to clear."""

log = logging.getLogger("flightdeck.seed")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", module="mlflow")
    gateway = TrackingGateway(load_settings())  # exports MLflow's timeouts and credentials
    started = time.monotonic()
    seed(gateway)
    log.info("Demo data ready at %s in %.0f s.", gateway.uri, time.monotonic() - started)
    return 0


def seed(gateway: TrackingGateway) -> None:
    """Seed every demo project that is not complete yet on the gateway's server."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow sets its own
    mlflow.set_tracking_uri(gateway.uri)  # for log_model, which uses MLflow's fluent API
    now_ms = int(time.time() * 1000)
    for project in PROJECTS:
        _seed_project(gateway, project, now_ms)
    _seed_monitoring(gateway, datetime.now(UTC))


def _seed_project(gateway: TrackingGateway, project: DemoProject, now_ms: int) -> None:
    experiment_id = gateway.experiment_id(project.experiment)
    model = gateway.find_registered_model(project.model)
    if (
        experiment_id is not None
        and gateway.experiment_tags(experiment_id).get(SEED_TAG) == SEED_COMPLETE
        and model is not None
        and model.tags.get(SEED_TAG) == SEED_COMPLETE
    ):
        log.info("%s: already seeded, skipped.", project.experiment)
        return
    started = time.monotonic()
    if experiment_id is None:
        experiment_id = gateway.experiment_id(project.experiment, create=True)
        assert experiment_id is not None  # create=True returns an id or raises
    else:
        _clear_runs(gateway, experiment_id)
    if model is not None:
        gateway.delete_registered_model(project.model)
    gateway.set_experiment_tags(
        experiment_id,
        {DESCRIPTION_TAG: project.description, "team": project.team, "task": project.task},
    )

    split = load_split(project)
    trained = list(_train_all(project, split))
    logged = _log_runs(gateway, experiment_id, project, split, trained, now_ms)
    _register_versions(gateway, project, trained, logged, split)
    gateway.set_experiment_tags(experiment_id, {SEED_TAG: SEED_COMPLETE})
    log.info(
        "%s: %d training runs and model %s with 4 versions in %.0f s.",
        project.experiment,
        len(logged),
        project.model,
        time.monotonic() - started,
    )


# -- training ------------------------------------------------------------------------------------


def _train_all(project: DemoProject, split: Split) -> Iterator[TrainedRun]:
    classification = project.classification
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
            metrics=evaluate(booster, split, classification),
            history=staged_history(booster, split, classification),
            parent="gbm-sweep",
        )
    for trees, max_depth in itertools.product((50, 100, 200), (5, None)):
        forest_class = RandomForestClassifier if classification else RandomForestRegressor
        forest = forest_class(n_estimators=trees, max_depth=max_depth, random_state=0, n_jobs=1)
        forest.fit(split.x_train, split.y_train)
        yield TrainedRun(
            name=f"rf-{trees}-d{max_depth or 'max'}",
            family="random_forest",
            estimator=forest,
            params={"n_estimators": str(trees), "max_depth": str(max_depth)},
            metrics=evaluate(forest, split, classification),
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
            metrics=evaluate(pipeline, split, classification),
        )


# -- logging -------------------------------------------------------------------------------------


def _log_runs(
    gateway: TrackingGateway,
    experiment_id: str,
    project: DemoProject,
    split: Split,
    trained: list[TrainedRun],
    now_ms: int,
) -> list[tuple[str, int]]:
    """Log every trained run, spread over the last 30 days, oldest first.

    Returns each run's id and end time (milliseconds since the Unix epoch), in order.
    """
    training_frame = split.training_frame()
    reference = reference_sample(training_frame)

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
                RUN_NAME_TAG: run.name,
                USER_TAG: user,
                "model_family": run.family,
                "dataset": project.experiment,
                TRIGGER_TAG: "manual",
                REQUESTED_BY_TAG: user,
            }
            if run.parent:
                if run.parent not in parents:
                    parents[run.parent] = _log_parent(
                        gateway, experiment_id, run.parent, start_ms, user
                    )
                tags["mlflow.parentRunId"] = parents[run.parent]
            run_id = gateway.create_run(experiment_id, tags, start_time=_at(start_ms))
            histories = {k: [MetricPoint(0, start_ms + 60_000, v)] for k, v in run.metrics.items()}
            for key, values in run.history.items():
                histories.setdefault(key, []).extend(
                    MetricPoint(step, start_ms + step * 500, value)
                    for step, value in enumerate(values)
                )
            gateway.log_metric_histories(run_id, histories)
            gateway.log_params(run_id, {**run.params, "model_family": run.family, **split.params()})
            gateway.set_run_tags(run_id, {JOB_ID_TAG: f"seed-{run_id[:8]}"})
            gateway.log_dataset(
                run_id,
                training_frame,
                name=f"{project.experiment}-train",
                targets="target",
                context="training",
            )
            gateway.log_artifact_file(run_id, reference_path, REFERENCE_ARTIFACT_DIR)
            end_ms = start_ms + 90_000 + index * 1000
            gateway.end_run_at(run_id, "FINISHED", _at(end_ms))
            logged.append((run_id, end_ms))
        for parent_id in parents.values():
            gateway.end_run_at(parent_id, "FINISHED", _at(first_ms + 29 * DAY_MS))
    return logged


def _log_parent(
    gateway: TrackingGateway, experiment_id: str, name: str, start_ms: int, user: str
) -> str:
    parent_id = gateway.create_run(
        experiment_id,
        {
            RUN_NAME_TAG: name,
            USER_TAG: user,
            "model_family": "gradient_boosting",
            TRIGGER_TAG: "manual",
        },
        start_time=_at(start_ms),
    )
    gateway.log_params(parent_id, {"search": "grid", "grid_size": "18"})
    return parent_id


def _register_versions(
    gateway: TrackingGateway,
    project: DemoProject,
    trained: list[TrainedRun],
    logged: list[tuple[str, int]],
    split: Split,
) -> None:
    """Register four versions, from a weaker early run to the best one, and set the aliases.

    The third version is the ``champion``; the fourth, newest and best, the ``challenger``.
    """
    primary = project.primary_metric
    higher_is_better = project.classification
    ranked = sorted(
        range(len(trained)), key=lambda i: trained[i].metrics[primary], reverse=higher_is_better
    )
    # Worst, middling, second best, best: versions improve as a team would hope.
    chosen = [ranked[-1], ranked[len(ranked) // 2], ranked[1], ranked[0]]
    gateway.create_registered_model(
        project.model, project.model_description, project.model_tags(primary)
    )
    example = split.x_test.head(3)
    for number, index in enumerate(chosen, start=1):
        run = trained[index]
        run_id, end_ms = logged[index]
        info = log_model(run_id, run.estimator, example)
        gateway.end_run_at(run_id, "FINISHED", _at(end_ms))  # logging the model reset it
        gateway.create_model_version(
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
    gateway.set_alias(project.model, CHAMPION, 3)
    gateway.set_alias(project.model, CHALLENGER, 4)
    gateway.set_registered_model_tags(project.model, {SEED_TAG: SEED_COMPLETE})


def _at(epoch_ms: int) -> datetime:
    """Milliseconds since the Unix epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


# -- monitoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoBatch:
    """One day of a model's current data, and what it is monitored against."""

    project: DemoProject
    version: int
    window_start: datetime
    frame: pd.DataFrame
    reference: pd.DataFrame


def _seed_monitoring(gateway: TrackingGateway, now: datetime) -> None:
    """Log the daily monitoring batches of every model that does not have them yet.

    Drift is computed in :data:`DRIFT_WORKERS` processes (Evidently costs about 1 s a batch) and
    logged in order from this one, with the same functions ``python -m jobs.monitor`` uses.
    """
    pending: list[DemoProject] = []
    for project in PROJECTS:
        model = gateway.find_registered_model(project.model)
        if model is not None and model.tags.get(MONITORING_TAG) != SEED_COMPLETE:
            pending.append(project)
    if not pending:
        log.info("Monitoring batches: already seeded, skipped.")
        return
    started = time.monotonic()
    batches: list[DemoBatch] = []
    for project in pending:
        _clear_monitoring(gateway, project.model)
        batches.extend(demo_batches(gateway, project, now))
    context = multiprocessing.get_context("spawn")  # no fork of a process holding clients
    with ProcessPoolExecutor(max_workers=DRIFT_WORKERS, mp_context=context) as workers:
        futures: list[Future[DriftResult]] = [
            workers.submit(compute_drift, b.reference, b.frame, target="target") for b in batches
        ]
        try:
            log_demo_batches(gateway, batches, futures, now)
        except BaseException:
            workers.shutdown(cancel_futures=True)  # do not compute what will not be logged
            raise
    log.info(
        "Monitoring: %d daily batches for %d models in %.0f s.",
        len(batches),
        len(pending),
        time.monotonic() - started,
    )


def log_demo_batches(
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
            gateway.set_registered_model_tags(batch.project.model, {MONITORING_TAG: SEED_COMPLETE})


def demo_batches(
    gateway: TrackingGateway, project: DemoProject, now: datetime, days: int = MONITORING_BATCHES
) -> list[DemoBatch]:
    """The model's daily batches, the last one covering yesterday (UTC).

    More ``days`` than the demo's add quiet days before the same drift and retraining story
    (the benchmark's 90-day model).
    """
    references = {v: reference_for_version(gateway, project.model, v) for v in (2, 3)}
    features, target = load_features(project)
    pool = features.assign(target=target.values)
    rng = np.random.default_rng(zlib.crc32(project.model.encode()))
    numeric = [c for c in pool.columns if c != "target"]
    drift_order = list(rng.permutation(numeric))
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    quiet_days = days - MONITORING_BATCHES
    drifting_batches = MONITORING_BATCHES - DRIFT_FROM_BATCH
    batches = []
    for index in range(days):
        version = 2 if index < quiet_days + RETRAINED_AT_BATCH else 3
        reference = references[version]
        frame = pool.sample(
            int(rng.integers(BATCH_ROWS[0], BATCH_ROWS[1] + 1)),
            replace=True,
            random_state=int(rng.integers(2**31)),
        ).reset_index(drop=True)
        progress = index - quiet_days - DRIFT_FROM_BATCH + 1
        if progress > 0:
            shifted = round(len(numeric) * DRIFTED_SHARE_AT_END * progress / drifting_batches)
            for column in drift_order[: max(2, shifted)]:
                frame[column] = frame[column] + SHIFT_SD * pool[column].std()
        if SITE_COLUMN in reference.columns:
            mix = DRIFTED_SITE_MIX if progress > 2 else SITE_MIX
            frame = with_sites(frame, rng, mix)
        batches.append(
            DemoBatch(
                project=project,
                version=version,
                window_start=today - timedelta(days=days - index),
                frame=frame[list(reference.columns)],
                reference=reference,
            )
        )
    return batches


def _clear_monitoring(gateway: TrackingGateway, model: str) -> None:
    """Delete the demo monitoring runs of a model left by an interrupted seed."""
    experiment_id = gateway.experiment_id(MONITORING_EXPERIMENT)
    if experiment_id is None:
        return
    query = filters.all_of(filters.tag_equals(MODEL_TAG, model), filters.tag_equals(SEED_TAG, "v1"))
    for run in _active_runs(gateway, experiment_id, query):
        if run.tags.get(MODEL_TAG) == model:  # the filter may match more (see filters)
            gateway.delete_run(run.run_id)


def _clear_runs(gateway: TrackingGateway, experiment_id: str) -> None:
    """Delete every run of an experiment left by an interrupted seed."""
    for run in _active_runs(gateway, experiment_id):
        gateway.delete_run(run.run_id)


def _active_runs(gateway: TrackingGateway, experiment_id: str, query: str = "") -> list[Run]:
    """Every active run of an experiment that matches ``query``, all pages read before any is
    deleted (deleting shifts the pages that follow)."""
    found: list[Run] = []
    token: str | None = None
    while True:
        page = gateway.search_runs(
            [experiment_id], query, max_results=SEARCH_PAGE, page_token=token
        )
        found.extend(page.runs)
        token = page.next_page_token
        if token is None:
            return found


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
