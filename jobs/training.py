"""What demo seeding and retraining share: the demo projects, their data, scores and model files.

:mod:`jobs.seed_demo` trains many models per project to fill the demo; :mod:`jobs.train` retrains
one. Both read the same bundled dataset, split it the same way, score on the same held-out rows,
and log the same reference sample and model files, so their runs and versions compare.
"""

from __future__ import annotations

import posixpath
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split

from services.core.conventions import REFERENCE_PATH

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

REFERENCE_ARTIFACT_DIR = posixpath.dirname(REFERENCE_PATH)
"""The artifact folder a training run logs its reference sample in."""
REFERENCE_FILE = posixpath.basename(REFERENCE_PATH)
"""The reference sample's file name in that folder."""
REFERENCE_ROWS = 500
"""Rows in a reference sample, drawn from the training rows."""
SITE_COLUMN = "site"
"""The demo's one categorical column: where a row was collected (not a model input)."""
SITES = ("north", "south", "east", "west")
SITE_MIX = (0.4, 0.3, 0.2, 0.1)
"""How often each of :data:`SITES` occurs in the training data."""
TEST_SIZE = 0.25
"""Share of the rows held out for evaluation."""
SPLIT_SEED = 7
"""The held-out rows' random state: the same rows for every run of a project."""
PIP_REQUIREMENTS = ["scikit-learn", "pandas"]
"""What a logged model needs; given so MLflow does not spend 6-10 s inferring it."""


class BundledDataset(Protocol):
    """One of scikit-learn's ``load_*`` functions for a dataset it bundles (nothing downloads)."""

    def __call__(self, *, as_frame: bool) -> Any: ...


@dataclass(frozen=True, slots=True)
class DemoProject:
    """One demo experiment and the registered model trained in it."""

    experiment: str
    """The experiment its runs are logged in."""
    model: str
    """The registered model its versions go to."""
    task: str
    """"classification" or "regression"."""
    load: BundledDataset
    """Loads its dataset."""
    description: str
    """One sentence on what the model predicts."""
    team: str
    """The team that owns it (a tag on the experiment and the model)."""

    @property
    def classification(self) -> bool:
        """True for a classifier, False for a regressor."""
        return self.task == "classification"

    @property
    def primary_metric(self) -> str:
        """The held-out metric its versions are compared by, unless the model's tag says other."""
        return "eval_f1" if self.classification else "eval_rmse"

    @property
    def model_description(self) -> str:
        """The registered model's description."""
        return f"{self.description} Trained on scikit-learn's bundled data."

    def model_tags(self, primary_metric: str) -> dict[str, str]:
        """The registered model's tags."""
        return {"team": self.team, "task": self.task, "primary_metric": primary_metric}


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


@dataclass(frozen=True, slots=True)
class Split:
    """A project's rows, split into training and held-out rows."""

    x_train: pd.DataFrame
    """Training features."""
    x_test: pd.DataFrame
    """Held-out features."""
    y_train: pd.Series
    """Training labels."""
    y_test: pd.Series
    """Held-out labels."""

    def training_frame(self) -> pd.DataFrame:
        """The training features with the label as a last column, ``target``."""
        return self.x_train.assign(target=self.y_train.values)

    def params(self) -> dict[str, str]:
        """How the rows were split, as run parameters."""
        return {
            "test_size": str(TEST_SIZE),
            "random_state": str(SPLIT_SEED),
            "n_features": str(self.x_train.shape[1]),
        }


def load_features(project: DemoProject) -> tuple[pd.DataFrame, pd.Series]:
    """The project's features (column names without spaces or slashes) and its label, ``target``."""
    bunch = project.load(as_frame=True)
    features = bunch.data.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_"))
    return features, bunch.target.rename("target")


def load_split(project: DemoProject) -> Split:
    """The project's rows split into training and held-out rows, the same way every time."""
    features, target = load_features(project)
    stratify = target if project.classification else None
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=stratify
    )
    return Split(x_train, x_test, y_train, y_test)


def evaluate(model: Any, split: Split, classification: bool) -> dict[str, float]:
    """The model's ``eval_*`` metrics on the held-out rows."""
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


def staged_history(booster: Any, split: Split, classification: bool) -> dict[str, list[float]]:
    """A boosting model's training loss and held-out scores after each stage."""
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


def with_sites(
    frame: pd.DataFrame, rng: np.random.Generator, mix: tuple[float, ...]
) -> pd.DataFrame:
    """The frame with a :data:`SITE_COLUMN` drawn from ``mix``, just before the target."""
    position = list(frame.columns).index("target") if "target" in frame else len(frame.columns)
    sites = rng.choice(SITES, size=len(frame), p=mix)
    return frame.reset_index(drop=True).assign(**{SITE_COLUMN: sites})[
        [*frame.columns[:position], SITE_COLUMN, *frame.columns[position:]]
    ]


def reference_sample(training_frame: pd.DataFrame) -> pd.DataFrame:
    """The reference sample a training run logs: up to :data:`REFERENCE_ROWS` training rows,
    with sites, the same rows for the same training data."""
    return with_sites(
        training_frame.sample(min(REFERENCE_ROWS, len(training_frame)), random_state=0),
        np.random.default_rng(0),
        SITE_MIX,
    )


def log_model(run_id: str, estimator: Any, input_example: pd.DataFrame) -> ModelInfo:
    """Log a fitted scikit-learn model as the run's MLflow 3 logged model, ``model``.

    Uses MLflow's fluent API (the gateway has no model logging), so ``mlflow.set_tracking_uri``
    must point at the server. Resuming the run ends it FINISHED, at the time this returns.
    """
    import mlflow
    import mlflow.sklearn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(run_id=run_id):
            info: ModelInfo = mlflow.sklearn.log_model(
                estimator,
                name="model",
                serialization_format="cloudpickle",  # skops refuses tree models by default
                pip_requirements=PIP_REQUIREMENTS,
                input_example=input_example,
            )
    return info
