"""Seed the tracking server with realistic demo data: ``python -m jobs.seed_demo``.

Real scikit-learn training on datasets bundled with scikit-learn (nothing is downloaded):
three experiments, 87 runs in all, among them a gradient-boosting sweep whose child runs log
per-stage metric histories, and three registered models with four versions each plus the
``champion`` and ``challenger`` aliases.

Idempotent: an experiment or model that was seeded completely carries a completion tag and is
skipped; a partial one (an interrupted seed) is cleared and seeded again.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

from services.aliases import CHALLENGER, CHAMPION
from services.settings import apply_mlflow_environment, load_settings

SEED_TAG = "flightdeck.demo_seed"
SEED_COMPLETE = "complete"
DEMO_USERS = ("alice", "bob", "carol")
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference.parquet"
REFERENCE_ROWS = 500
HISTORY_STEPS = 60
"""Boosting stages per sweep run: each logs one point of its metric histories."""
DAY_MS = 86_400_000

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
    from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

    training_frame = split.x_train.assign(target=split.y_train.values)
    dataset = mlflow.data.from_pandas(
        training_frame, targets="target", name=f"{project.experiment}-train"
    )
    dataset_input = DatasetInput(
        dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", "training")]
    )
    reference = training_frame.sample(min(REFERENCE_ROWS, len(training_frame)), random_state=0)

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
            for chunk_start in range(0, len(metrics), 1000):  # log_batch takes 1000 metrics
                client.log_batch(
                    run_id,
                    metrics=metrics[chunk_start : chunk_start + 1000],
                    params=[Param(k, v) for k, v in params.items()] if chunk_start == 0 else [],
                    tags=[RunTag("flightdeck.job_id", f"seed-{run_id[:8]}")]
                    if chunk_start == 0
                    else [],
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
