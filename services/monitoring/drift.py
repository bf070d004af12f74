"""Drift between a model's reference sample and a batch of current data, computed by Evidently.

Plain Python and pandas: no MLflow, no Streamlit. Evidently takes 4–6 s to import, so it is
imported inside :func:`compute_drift` only.

What a batch is compared on: every column of the reference sample, each either
:data:`NUMERIC` (numbers) or :data:`CATEGORICAL` (text, booleans, and integer class labels in the
target or prediction column). Datetimes, nested values (lists, dicts), binary values and columns
without any value cannot be compared and are refused by :func:`check_schema`.

The result keeps three forms: :class:`DriftSummary` (compact, what pages draw from, with a
histogram per column so no raw data is needed), Evidently's snapshot as JSON, and Evidently's HTML
report, which embeds data verbatim and must be treated as untrusted content.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from numbers import Number
from typing import Any

import numpy as np
import pandas as pd

from services.core.errors import DriftError

NUMERIC, CATEGORICAL = "numeric", "categorical"
"""The two kinds of column drift is computed on."""
FEATURE, TARGET, PREDICTION = "feature", "target", "prediction"
"""What a column is to the model."""
HISTOGRAM_BINS = 20
"""Bins of a numeric histogram, over the range of both sides together."""
TOP_CATEGORIES = 20
"""Categories shown by name in a categorical histogram; the rest count as :data:`OTHER_LABEL`."""
OTHER_LABEL = "(other)"
MISSING_LABEL = "(missing)"
DEFAULT_MAX_ROWS = 50_000
"""Each side is sampled down to this many rows (Evidently costs about 12–24 s per 100k × 30)."""
DEFAULT_SEED = 42
DATASET_DRIFT_SHARE = 0.5
"""Evidently's default: the dataset drifts when at least this share of its columns drift."""
CLASS_LABEL_LIMIT = 20
"""An integer target or prediction with at most this many values holds class labels."""
SUMMARY_FORMAT = 1
"""Version of the ``drift/summary.json`` layout."""
_LISTED_NAMES = 20
"""Column names spelled out in a message before "and N more"."""
_INSPECTED_VALUES = 1000
"""Values looked at to tell what an object column holds."""
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
)


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Histogram:
    """Both sides' distribution of one column, binned so a page can draw it without raw data."""

    labels: tuple[str, ...]
    """Numeric: one label per bin ("0.1–0.2"); categorical: category values (untrusted text),
    then :data:`OTHER_LABEL` when there are more than :data:`TOP_CATEGORIES`."""
    edges: tuple[float, ...]
    """Numeric: ``len(labels) + 1`` bin edges shared by both sides; categorical: ``()``."""
    reference: tuple[int, ...]
    """Rows of the reference sample per label."""
    current: tuple[int, ...]
    """Rows of the current data per label."""


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Drift of one column."""

    column: str
    """The column's name; untrusted text."""
    kind: str
    """:data:`NUMERIC` or :data:`CATEGORICAL`."""
    method: str
    """Evidently's test, e.g. "K-S p_value" or "Wasserstein distance (normed)"."""
    threshold: float
    """The test's threshold: below it for p-values, at or above it for distances, is drift."""
    score: float
    """The test's score (a p-value or a distance); NaN when Evidently could not score it."""
    drifted: bool
    """True when Evidently's test for the column failed."""
    histogram: Histogram
    """Both sides' distributions."""
    role: str = FEATURE
    """:data:`FEATURE`, :data:`TARGET` or :data:`PREDICTION`."""


@dataclass(frozen=True, slots=True)
class DriftSummary:
    """Flightdeck's compact form of one drift report (``drift/summary.json``)."""

    features: tuple[FeatureDrift, ...]
    """Every compared column, in the reference sample's order."""
    drift_share: float
    """Share of drifted columns, 0 to 1 (Evidently's ``DriftedColumnsCount``)."""
    drifted_columns: int
    """How many columns drifted."""
    dataset_drift: bool
    """True when ``drift_share`` reaches :data:`DATASET_DRIFT_SHARE`."""
    reference_rows: int
    """Rows of the reference sample compared (after sampling)."""
    current_rows: int
    """Rows of the current data compared (after sampling)."""

    @property
    def scores(self) -> dict[str, float]:
        """Column -> drift score."""
        return {f.column: f.score for f in self.features}


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """How the current data's columns differ from the reference sample's."""

    missing: tuple[str, ...]
    """Columns of the reference sample that the current data lacks."""
    extra: tuple[str, ...]
    """Columns of the current data that the reference sample lacks."""
    unsupported: tuple[str, ...]
    """Shared columns drift cannot compare (datetimes, nested values, no values, or a different
    kind on each side)."""
    reasons: tuple[str, ...] = ()
    """Why, for each of ``unsupported`` in the same order, e.g. "datetimes in the current data"."""

    @property
    def ok(self) -> bool:
        """True when drift can be computed on these columns."""
        return not (self.missing or self.extra or self.unsupported)

    def message(self) -> str:
        """What differs, naming the columns, and what to do; for a person."""
        if self.ok:
            return "The current data has the reference sample's columns, of types drift compares."
        parts = ["The current data does not match the model's reference sample."]
        if self.missing:
            parts.append(f"Missing from the current data: {_names(self.missing)}.")
        if self.extra:
            parts.append(f"Not in the reference sample: {_names(self.extra)}.")
        if self.unsupported:
            described = [
                f"{name!r} ({reason})" if reason else repr(name)
                for name, reason in zip(
                    self.unsupported,
                    self.reasons or ("",) * len(self.unsupported),
                    strict=False,
                )
            ]
            parts.append(
                f"Of a type drift cannot compare: {_joined(described)}. Drift compares numbers "
                "and categories (text, booleans): convert or drop these columns."
            )
        if self.missing or self.extra:
            parts.append(
                "Send exactly the columns the model was trained on (its reference sample), "
                "adding or dropping columns in the file or query."
            )
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Everything one drift computation produced."""

    summary: DriftSummary
    """The compact form pages draw from."""
    snapshot_json: str
    """Evidently's snapshot (metrics and tests) as JSON."""
    html: str
    """Evidently's self-contained HTML report: untrusted content, never render it in the app."""


# -- summary JSON ---------------------------------------------------------------------------------


def summary_to_json(summary: DriftSummary) -> str:
    """The summary as compact JSON (``drift/summary.json``); NaN scores become ``null``."""
    document = {
        "format": SUMMARY_FORMAT,
        "drift_share": summary.drift_share,
        "drifted_columns": summary.drifted_columns,
        "dataset_drift": summary.dataset_drift,
        "reference_rows": summary.reference_rows,
        "current_rows": summary.current_rows,
        "features": [
            {
                "column": f.column,
                "kind": f.kind,
                "role": f.role,
                "method": f.method,
                "threshold": _finite_or_none(f.threshold),
                "score": _finite_or_none(f.score),
                "drifted": f.drifted,
                "histogram": {
                    "labels": list(f.histogram.labels),
                    "edges": list(f.histogram.edges),
                    "reference": list(f.histogram.reference),
                    "current": list(f.histogram.current),
                },
            }
            for f in summary.features
        ],
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def summary_from_json(text: str) -> DriftSummary:
    """Read ``drift/summary.json`` back into records.

    Raises:
        DriftError: The text is not JSON or not in the summary's layout.
    """
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise TypeError("the document is not an object")
        if document.get("format") != SUMMARY_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        features = tuple(_feature_from_json(item) for item in _field(document, "features", list))
        return DriftSummary(
            features=features,
            drift_share=_number(document, "drift_share"),
            drifted_columns=_field(document, "drifted_columns", int),
            dataset_drift=_field(document, "dataset_drift", bool),
            reference_rows=_field(document, "reference_rows", int),
            current_rows=_field(document, "current_rows", int),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise DriftError(
            f"The drift summary cannot be read: {exc}. It was not written by this version of "
            "Flightdeck, or it is damaged; run the monitoring job again for this batch."
        ) from exc


def _feature_from_json(item: Any) -> FeatureDrift:
    if not isinstance(item, dict):
        raise TypeError("a feature is not an object")
    histogram = _field(item, "histogram", dict)
    labels = tuple(_strings(_field(histogram, "labels", list)))
    edges = tuple(float(_checked(v, (int, float))) for v in _field(histogram, "edges", list))
    reference = tuple(_checked(v, int) for v in _field(histogram, "reference", list))
    current = tuple(_checked(v, int) for v in _field(histogram, "current", list))
    if len(reference) != len(labels) or len(current) != len(labels):
        raise ValueError("a histogram's counts do not match its labels")
    if edges and len(edges) != len(labels) + 1:
        raise ValueError("a histogram's edges do not match its labels")
    kind = _field(item, "kind", str)
    if kind not in (NUMERIC, CATEGORICAL):
        raise ValueError(f"unknown column kind {kind!r}")
    return FeatureDrift(
        column=_field(item, "column", str),
        kind=kind,
        method=_field(item, "method", str),
        threshold=_number(item, "threshold"),
        score=_number(item, "score"),
        drifted=_field(item, "drifted", bool),
        histogram=Histogram(labels, edges, reference, current),
        role=str(item.get("role", FEATURE)),
    )


def _field(document: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in document:
        raise KeyError(f"{key!r} is missing")
    return _checked(document[key], kind, key)


def _checked(value: Any, kind: type | tuple[type, ...], key: str = "a value") -> Any:
    # bool is an int in Python, but not in this layout.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"{key} has the wrong type ({type(value).__name__})")
    return value


def _number(document: Mapping[str, Any], key: str) -> float:
    value = document.get(key, "missing")
    if value is None:
        return math.nan
    return float(_checked(value, (int, float), key))


def _strings(values: list[Any]) -> list[str]:
    return [_checked(v, str) for v in values]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# -- schema ---------------------------------------------------------------------------------------


def check_schema(reference: pd.DataFrame, current: pd.DataFrame) -> SchemaCheck:
    """Compare the current data's columns with the reference sample's, by name and kind."""
    reference_columns = [str(c) for c in reference.columns]
    current_columns = [str(c) for c in current.columns]
    missing = tuple(c for c in reference_columns if c not in set(current_columns))
    extra = tuple(c for c in current_columns if c not in set(reference_columns))
    unsupported: list[str] = []
    reasons: list[str] = []
    for column in reference_columns:
        if column in missing:
            continue
        reference_kind, reference_what = _kind(reference[_original(reference, column)])
        current_kind, current_what = _kind(current[_original(current, column)])
        reason = ""
        if reference_kind is None:
            reason = f"{reference_what} in the reference sample"
        elif current_kind is None:
            reason = f"{current_what} in the current data"
        elif reference_kind != current_kind:
            reason = f"{reference_what} in the reference sample, {current_what} in the current data"
        if reason:
            unsupported.append(column)
            reasons.append(reason)
    return SchemaCheck(missing, extra, tuple(unsupported), tuple(reasons))


def _original(frame: pd.DataFrame, column: str) -> Any:
    """The frame's own label for a column named ``column`` (labels need not be strings)."""
    if column in frame.columns:
        return column
    return next(c for c in frame.columns if str(c) == column)


def _kind(series: pd.Series) -> tuple[str | None, str]:
    """(kind, what it holds); the kind is None when drift cannot compare the column."""
    dtype = series.dtype
    if series.isna().all():
        return None, "no values"
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL, "booleans"
    if isinstance(dtype, pd.CategoricalDtype):
        return _object_kind(pd.Series(dtype.categories))
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        return None, "datetimes"
    if isinstance(dtype, pd.IntervalDtype) or pd.api.types.is_complex_dtype(dtype):
        return None, f"{dtype} values"
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC, "numbers"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return _object_kind(series)
    return None, f"{dtype} values"


def _object_kind(series: pd.Series) -> tuple[str | None, str]:
    values = series.dropna().iloc[:_INSPECTED_VALUES].tolist()
    if any(isinstance(v, list | tuple | dict | set | frozenset | np.ndarray) for v in values):
        return None, "nested values (lists or objects)"
    if any(isinstance(v, bytes | bytearray) for v in values):
        return None, "binary values"
    if any(isinstance(v, date | time | timedelta | np.datetime64) for v in values):
        return None, "datetimes"
    if values and all(isinstance(v, str) and _ISO_DATETIME.fullmatch(v) for v in values):
        return None, "dates written as text"
    if values and all(isinstance(v, Number | Decimal) and not isinstance(v, bool) for v in values):
        return NUMERIC, "numbers"
    return CATEGORICAL, "text"


# -- drift ----------------------------------------------------------------------------------------


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = DEFAULT_SEED,
    target: str | None = None,
    prediction: str | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` using Evidently's ``DataDriftPreset`` with tests.

    Each side is sampled to at most ``max_rows`` rows with a fixed seed. The target and
    prediction columns, when named, are compared when both sides have them and left out
    otherwise (labels often arrive later than the features); an integer one with at most
    :data:`CLASS_LABEL_LIMIT` values counts as categorical (class labels).

    Args:
        reference: The model's reference sample (logged by its training run).
        current: The batch to check.
        max_rows: The most rows of each side to compare.
        seed: Seed of the sampling.
        target: The label column, if any.
        prediction: The model's output column, if any.

    Raises:
        DriftError: Either side is empty, the columns differ from the reference sample or are of
            a type drift cannot compare, or Evidently failed.
    """
    if max_rows < 1:
        raise DriftError(f"max_rows must be at least 1, not {max_rows}.")
    roles = {name: role for role, name in ((TARGET, target), (PREDICTION, prediction)) if name}
    for name in roles:
        if name not in reference.columns or name not in current.columns:
            reference = reference.drop(columns=[name], errors="ignore")
            current = current.drop(columns=[name], errors="ignore")
    if current.empty or len(current.columns) == 0:
        raise DriftError(
            "The current data is empty (no rows or no columns): there is nothing to compare. "
            "Check the file or the query."
        )
    if reference.empty or len(reference.columns) == 0:
        raise DriftError(
            "The model's reference sample is empty, so drift cannot be computed. Log a "
            "reference sample with the training run (reference/reference.parquet)."
        )
    check = check_schema(reference, current)
    if not check.ok:
        raise DriftError(check.message())
    reference = _sample(_string_columns(reference), max_rows, seed)
    current = _sample(_string_columns(current), max_rows, seed)[list(reference.columns)]
    kinds = {
        column: _role_kind(reference[column], roles.get(column)) for column in reference.columns
    }
    reference = _prepared(reference, kinds)
    current = _prepared(current, kinds)
    snapshot = _evidently_report(reference, current, kinds)
    document = snapshot.dict()
    features, drifted_count, share = _read_snapshot(document, reference, current, kinds, roles)
    summary = DriftSummary(
        features=features,
        drift_share=share,
        drifted_columns=drifted_count,
        dataset_drift=share >= DATASET_DRIFT_SHARE,
        reference_rows=len(reference),
        current_rows=len(current),
    )
    return DriftResult(summary, snapshot.json(), snapshot.get_html_str(as_iframe=False))


def _string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    return frame.rename(columns=str)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame.reset_index(drop=True)


def _role_kind(series: pd.Series, role: str | None) -> str:
    kind, _ = _kind(series)
    if role is not None and kind == NUMERIC:
        values = pd.to_numeric(series, errors="coerce").dropna()
        whole = bool(np.all(np.mod(values, 1) == 0)) if len(values) else False
        if whole and values.nunique() <= CLASS_LABEL_LIMIT:
            return CATEGORICAL
    return kind or CATEGORICAL


def _prepared(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Numbers as floats and categories as text, so both sides agree on every value."""
    columns: dict[str, Any] = {}
    for column, kind in kinds.items():
        series = frame[column]
        if kind == NUMERIC:
            columns[column] = (
                series
                if pd.api.types.is_float_dtype(series.dtype)
                else pd.to_numeric(series, errors="coerce").astype(float)
            )
        elif pd.api.types.infer_dtype(series, skipna=True) == "string":
            columns[column] = series  # text already: nothing to convert
        else:
            # Each distinct value is converted once, not each row (50,000 rows cost 0.1 s each).
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            texts = np.array([_category_text(v) for v in uniques] + [None], dtype=object)
            columns[column] = texts[codes]  # code -1 (missing) picks the trailing None
    return pd.DataFrame(columns)


def _category_text(value: Any) -> str:
    """The same text for 1, 1.0 and "1", so labels read from CSV and Parquet agree."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def _evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str]
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == NUMERIC],
        categorical_columns=[c for c, k in kinds.items() if k == CATEGORICAL],
    )
    report = Report([DataDriftPreset(drift_share=DATASET_DRIFT_SHARE)], include_tests=True)
    try:
        with warnings.catch_warnings():
            # Constant columns make Evidently's correlations divide by zero; the result is fine.
            warnings.simplefilter("ignore", RuntimeWarning)
            return report.run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
    except Exception as exc:  # Evidently raises anything from pandas, scipy or its own code
        raise DriftError(
            f"Evidently could not compute drift: {type(exc).__name__}: {exc}. Check the "
            "columns' values (for example a column with a single value on one side)."
        ) from exc


def _read_snapshot(
    document: Mapping[str, Any],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    roles: Mapping[str, str],
) -> tuple[tuple[FeatureDrift, ...], int, float]:
    """Per-column results, the drifted count and share, from Evidently's snapshot dict.

    Evidently 0.7 has no per-column "drifted" flag: a column drifted when its ValueDrift test
    failed. Without a test result, the score is compared with the threshold instead.
    """
    count, share = 0, 0.0
    drift_metrics: dict[str, tuple[str, Mapping[str, Any], Any]] = {}
    for metric in document.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith(":DriftedColumnsCount"):
            count = int(metric["value"]["count"])
            share = float(metric["value"]["share"])
        elif kind.endswith(":ValueDrift"):
            drift_metrics[str(config["column"])] = (str(metric["id"]), config, metric["value"])
    statuses = {
        str(test.get("metric_config", {}).get("metric_id")): str(
            getattr(test.get("status"), "value", test.get("status"))
        )
        for test in document.get("tests", [])
    }
    features: list[FeatureDrift] = []
    for column, kind in kinds.items():
        if column not in drift_metrics:
            raise DriftError(f"Evidently returned no drift result for column {column!r}.")
        metric_id, config, value = drift_metrics[column]
        method = str(config.get("method") or "")
        threshold = float(config.get("threshold") or math.nan)
        score = float(value) if value is not None else math.nan
        status = statuses.get(metric_id)
        drifted = status == "FAIL" if status is not None else _beyond(method, score, threshold)
        features.append(
            FeatureDrift(
                column=column,
                kind=kind,
                method=method,
                threshold=threshold,
                score=score,
                drifted=drifted,
                histogram=_histogram(reference[column], current[column], kind),
                role=roles.get(column, FEATURE),
            )
        )
    return tuple(features), count, share


def _beyond(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule: a p-value below the threshold, or a distance at or above it."""
    if "p_value" in method:
        return score < threshold
    return score >= threshold


def _histogram(reference: pd.Series, current: pd.Series, kind: str) -> Histogram:
    if kind == NUMERIC:
        return _numeric_histogram(reference.to_numpy(float), current.to_numpy(float))
    return _categorical_histogram(reference, current)


def _numeric_histogram(reference: np.ndarray, current: np.ndarray) -> Histogram:
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    both = np.concatenate([reference, current])
    if both.size == 0:
        return Histogram((), (), (), ())
    low, high = float(both.min()), float(both.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    reference_counts, _ = np.histogram(reference, bins=edges)
    current_counts, _ = np.histogram(current, bins=edges)
    labels = tuple(f"{_short(edges[i])}–{_short(edges[i + 1])}" for i in range(HISTOGRAM_BINS))
    return Histogram(
        labels,
        tuple(float(e) for e in edges),
        tuple(int(c) for c in reference_counts),
        tuple(int(c) for c in current_counts),
    )


def _short(value: float) -> str:
    return f"{value:.3g}"


def _categorical_histogram(reference: pd.Series, current: pd.Series) -> Histogram:
    reference_counts = reference.fillna(MISSING_LABEL).value_counts()
    current_counts = current.fillna(MISSING_LABEL).value_counts()
    total = reference_counts.add(current_counts, fill_value=0)
    # Most frequent first; ties by name, so the order does not depend on the sample.
    ordered = sorted(total.items(), key=lambda item: (-item[1], str(item[0])))
    shown = [str(label) for label, _ in ordered[:TOP_CATEGORIES]]
    reference_shown = [int(reference_counts.get(label, 0)) for label in shown]
    current_shown = [int(current_counts.get(label, 0)) for label in shown]
    if len(ordered) > TOP_CATEGORIES:
        shown.append(OTHER_LABEL)
        reference_shown.append(int(reference_counts.sum()) - sum(reference_shown))
        current_shown.append(int(current_counts.sum()) - sum(current_shown))
    return Histogram(tuple(shown), (), tuple(reference_shown), tuple(current_shown))


def summary_table(summary: DriftSummary) -> pd.DataFrame:
    """One row per column for a table: drifted columns first, then by name.

    Columns: Column, Kind, Role, Drifted, Score, Threshold, Method.
    """
    rows = sorted(summary.features, key=lambda f: (not f.drifted, f.column))
    return pd.DataFrame(
        {
            "Column": [f.column for f in rows],
            "Kind": [f.kind for f in rows],
            "Role": [f.role for f in rows],
            "Drifted": [f.drifted for f in rows],
            "Score": [f.score for f in rows],
            "Threshold": [f.threshold for f in rows],
            "Method": [f.method for f in rows],
        }
    )


# -- messages -------------------------------------------------------------------------------------


def _names(columns: Sequence[str]) -> str:
    return _joined([repr(c) for c in columns])


def _joined(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED_NAMES])
    hidden = len(items) - _LISTED_NAMES
    return f"{shown} and {hidden} more" if hidden > 0 else shown
