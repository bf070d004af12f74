"""The model registry pages' logic: registered models and their versions as tables and checks.

Pure functions from Flightdeck's records to what the Models and Model pages show. Nothing here
reads MLflow: pages pass in records from the cached reads, tests pass in records they build.
:func:`signature_comparison` is also the promotion gates' signature check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from services.core.conventions import CHAMPION, EVAL_PREFIX, SYSTEM_TAG_PREFIXES
from services.core.records import (
    CURRENT_HOLDER,
    AliasMove,
    ModelSignature,
    ModelVersionSummary,
    RegisteredModel,
    Run,
    SignatureColumn,
)

PRIMARY_METRIC_TAG = "primary_metric"
"""A registered model tag naming the metric its versions are judged by, when set."""

MODEL_COLUMN = "Model"
VERSION_COLUMN = "Version"
PARAM_COLUMN = "Param"
METRIC_COLUMN = "Metric"
DELTA_COLUMN = "Δ (B − A)"

MODEL_COLUMNS = (MODEL_COLUMN, "Aliases", "Latest version", "Tags", "Description", "Updated")
"""The models list's columns, in order."""


# -- the models list ------------------------------------------------------------------------------


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags without MLflow's and Flightdeck's own (``mlflow.*``, ``flightdeck.*``), by key."""
    return {k: tags[k] for k in sorted(tags) if not k.startswith(SYSTEM_TAG_PREFIXES)}


def tags_text(tags: Mapping[str, str]) -> str:
    """Tags as "key=value, key=value", sorted by key."""
    return ", ".join(f"{key}={tags[key]}" for key in sorted(tags))


def aliases_text(aliases: Mapping[str, int]) -> str:
    """Aliases as "champion → v3, challenger → v4", in version order, then by name."""
    ordered = sorted(aliases.items(), key=lambda item: (item[1], item[0]))
    return ", ".join(f"{alias} → v{version}" for alias, version in ordered)


def filter_models(models: Sequence[RegisteredModel], text: str) -> list[RegisteredModel]:
    """The models whose name contains ``text``, ignoring case and surrounding spaces."""
    needle = text.strip().casefold()
    return [m for m in models if needle in m.name.casefold()]


def models_table(models: Sequence[RegisteredModel], text: str = "") -> pd.DataFrame:
    """One row per registered model whose name contains ``text`` (case-insensitive), by name.

    Columns: Model, Aliases ("champion → v3, …"), Latest version, Tags (user tags as sorted
    ``key=value``), Description and Updated (aware UTC datetime).
    """
    rows = [
        {
            MODEL_COLUMN: m.name,
            "Aliases": aliases_text(m.aliases),
            "Latest version": m.latest_version,
            "Tags": tags_text(user_tags(m.tags)),
            "Description": m.description,
            "Updated": m.updated_at,
        }
        for m in sorted(filter_models(models, text), key=lambda m: m.name.casefold())
    ]
    table = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    table["Latest version"] = table["Latest version"].astype("Int64")
    return table


def selected_model(table: pd.DataFrame, rows: Sequence[int]) -> str | None:
    """The model name in the first selected row of :func:`models_table`, if any."""
    if not rows or rows[0] >= len(table):
        return None
    return str(table.iloc[rows[0]][MODEL_COLUMN])


# -- versions -------------------------------------------------------------------------------------


def version_number(text: str | None) -> int | None:
    """A version number from a URL value such as "3" or "v3"; None when it is not one."""
    cleaned = (text or "").strip().removeprefix("v")
    return int(cleaned) if cleaned.isdigit() and int(cleaned) > 0 else None


def with_aliases(
    versions: Iterable[ModelVersionSummary], aliases: Mapping[str, int]
) -> list[ModelVersionSummary]:
    """The versions, each carrying the aliases the registered model says point at it.

    MLflow's version search may leave a version's aliases empty; the registered model's own
    alias map is the authority, so it replaces whatever the versions carry.
    """
    holders: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        holders.setdefault(number, []).append(alias)
    return [
        _replace_aliases(version, tuple(sorted(holders.get(version.version, ()))))
        for version in versions
    ]


def _replace_aliases(version: ModelVersionSummary, aliases: tuple[str, ...]) -> ModelVersionSummary:
    if version.aliases == aliases:
        return version
    return ModelVersionSummary(
        name=version.name,
        version=version.version,
        run_id=version.run_id,
        created_at=version.created_at,
        status=version.status,
        description=version.description,
        aliases=aliases,
        tags=version.tags,
        stage=version.stage,
        source=version.source,
    )


def newest_first(versions: Iterable[ModelVersionSummary]) -> list[ModelVersionSummary]:
    """The versions by number, highest first."""
    return sorted(versions, key=lambda v: v.version, reverse=True)


def source_run_ids(versions: Iterable[ModelVersionSummary]) -> tuple[str, ...]:
    """The distinct source runs of the versions, in version order (for one bulk read)."""
    ordered = sorted(versions, key=lambda v: v.version)
    return tuple(dict.fromkeys(v.run_id for v in ordered if v.run_id))


def key_metrics(runs: Iterable[Run], limit: int = 4) -> list[str]:
    """The metrics worth a column: ``eval_*`` first (sorted), then the others (sorted).

    Args:
        runs: The versions' source runs.
        limit: At most this many metrics.
    """
    return _metric_order({key for run in runs for key in run.metrics})[: max(limit, 0)]


def _metric_order(names: Iterable[str]) -> list[str]:
    """``eval_*`` metrics first, then the others, each group sorted."""
    return sorted(names, key=lambda name: (not name.startswith(EVAL_PREFIX), name))


def versions_table(
    versions: Sequence[ModelVersionSummary],
    source_runs: Mapping[str, Run],
    metrics: Sequence[str],
) -> pd.DataFrame:
    """One row per version, newest first, with its source run's value of each key metric.

    Columns: Version, Created, Source run (the run's name), Run ID, one column per metric,
    Aliases, Stage, Tags and Status. A version whose source run is gone (or that has none) has
    an empty run name and empty metric cells.

    Args:
        versions: The model's versions.
        source_runs: Run id → run, e.g. from the gateway's ``runs_by_id``.
        metrics: The metric columns, e.g. from :func:`key_metrics`.
    """
    rows = []
    for version in newest_first(versions):
        run = source_runs.get(version.run_id)
        row: dict[str, object] = {
            VERSION_COLUMN: version.version,
            "Created": version.created_at,
            "Source run": run.name if run is not None else "",
            "Run ID": version.run_id,
        }
        for metric in metrics:
            row[metric] = run.metrics.get(metric) if run is not None else None
        row["Aliases"] = ", ".join(version.aliases)
        row["Stage"] = version.stage
        row["Tags"] = tags_text(version.tags)
        row["Status"] = version.status
        rows.append(row)
    columns = [VERSION_COLUMN, "Created", "Source run", "Run ID", *metrics]
    columns += ["Aliases", "Stage", "Tags", "Status"]
    table = pd.DataFrame(rows, columns=columns)
    for metric in metrics:
        table[metric] = pd.to_numeric(table[metric], errors="coerce").astype("float64")
    return table


def default_metric(model: RegisteredModel, runs: Iterable[Run], wanted: str = "") -> str:
    """The metric a chart across versions starts on.

    ``wanted`` (from the URL) when a source run logged it, else the model's ``primary_metric``
    tag when one did, else the first of :func:`key_metrics`; "" when the runs logged none.
    """
    names = metric_names(runs)
    for metric in (wanted, model.tags.get(PRIMARY_METRIC_TAG, "")):
        if metric and metric in names:
            return metric
    return names[0] if names else ""


def metric_names(runs: Iterable[Run]) -> list[str]:
    """Every metric any run logged, ``eval_*`` first, each group sorted."""
    return _metric_order({key for run in runs for key in run.metrics})


def metric_points(
    versions: Iterable[ModelVersionSummary], source_runs: Mapping[str, Run], metric: str
) -> list[tuple[int, float]]:
    """(version, value) for each version whose source run logged ``metric``, oldest first."""
    points: list[tuple[int, float]] = []
    for version in sorted(versions, key=lambda v: v.version):
        run = source_runs.get(version.run_id)
        if run is not None and metric in run.metrics:
            points.append((version.version, run.metrics[metric]))
    return points


def default_baseline(
    versions: Sequence[ModelVersionSummary], candidate: int, aliases: Mapping[str, int]
) -> int | None:
    """The version to compare ``candidate`` with when the URL names none.

    The champion when it is another version; else the newest version older than the
    candidate; else the oldest other version; None when the model has one version.
    """
    numbers = sorted({v.version for v in versions})
    champion = aliases.get(CHAMPION)
    if champion is not None and champion != candidate and champion in numbers:
        return champion
    older = [n for n in numbers if n < candidate]
    if older:
        return older[-1]
    others = [n for n in numbers if n != candidate]
    return others[0] if others else None


def version_label(version: ModelVersionSummary) -> str:
    """A version for a picker: "v4 · @challenger", or "v2"."""
    aliases = " ".join(f"@{alias}" for alias in version.aliases)
    return f"v{version.version} · {aliases}" if aliases else f"v{version.version}"


def signature_table(signature: ModelSignature) -> pd.DataFrame:
    """One row per input and output column: Side, Column, Type and Required."""
    rows = [
        {
            "Side": side,
            "Column": column.name or f"[{index}]",
            "Type": column.type,
            "Required": column.required,
        }
        for side, columns in (("Input", signature.inputs), ("Output", signature.outputs))
        for index, column in enumerate(columns)
    ]
    return pd.DataFrame(rows, columns=["Side", "Column", "Type", "Required"])


# -- comparing two versions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionComparison:
    """Two versions' source runs side by side: A is the baseline, B the candidate."""

    params: pd.DataFrame
    """One row per param: Param, A's value, B's value (None when not logged)."""
    metrics: pd.DataFrame
    """One row per metric: Metric, A's value, B's value and B − A (NaN when either is missing)."""
    differing_params: int
    """How many params differ, a param only one run logged included."""
    total_params: int
    """How many params either run logged."""


def version_comparison(
    a: Run,
    b: Run,
    only_differences: bool = True,
    labels: tuple[str, str] = ("A", "B"),
) -> VersionComparison:
    """The params and metrics of two versions' source runs, with B − A for each metric.

    Args:
        a: The baseline's source run.
        b: The candidate's source run.
        only_differences: Keep only the params whose values differ.
        labels: Column titles for A and B, e.g. ("v3", "v4"); they must differ.
    """
    label_a, label_b = labels
    keys = sorted(set(a.params) | set(b.params))
    differing = [k for k in keys if a.params.get(k) != b.params.get(k)]
    params = pd.DataFrame(
        [
            {PARAM_COLUMN: k, label_a: a.params.get(k), label_b: b.params.get(k)}
            for k in (differing if only_differences else keys)
        ],
        columns=[PARAM_COLUMN, label_a, label_b],
    )
    metric_keys = _metric_order(set(a.metrics) | set(b.metrics))
    rows = []
    for key in metric_keys:
        value_a, value_b = a.metrics.get(key), b.metrics.get(key)
        rows.append(
            {
                METRIC_COLUMN: key,
                label_a: value_a,
                label_b: value_b,
                DELTA_COLUMN: _delta(value_a, value_b),
            }
        )
    metrics = pd.DataFrame(rows, columns=[METRIC_COLUMN, label_a, label_b, DELTA_COLUMN])
    for column in (label_a, label_b, DELTA_COLUMN):
        metrics[column] = pd.to_numeric(metrics[column], errors="coerce").astype("float64")
    return VersionComparison(params, metrics, len(differing), len(keys))


def _delta(a: float | None, b: float | None) -> float:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return b - a


# -- signatures -----------------------------------------------------------------------------------

SAME = "same"
TYPE_CHANGED = "type changed"
MISSING_IN_B = "missing in B"
ADDED_OPTIONAL = "added in B (optional)"
ADDED_REQUIRED = "added in B (required)"
SIGNATURE_COLUMNS = ("Side", "Column", "Type in A", "Type in B", "Status")


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Whether B accepts every input A accepts, and the column-by-column detail."""

    compatible: bool
    """True when every input column of A exists in B with the same type, and B needs no more."""
    reason: str
    """One sentence for a person: why it is (in)compatible."""
    table: pd.DataFrame
    """One row per input and output column: Side, Column, Type in A, Type in B, Status."""


def signature_comparison(
    a: ModelSignature | None,
    b: ModelSignature | None,
    labels: tuple[str, str] = ("the baseline", "the candidate"),
) -> SignatureCheck:
    """Whether B can replace A for A's callers, judged on the input signature.

    Compatible means every input column of A exists in B with the same type; B may add optional
    columns, but a new required column breaks callers that send A's inputs. Outputs are listed
    in the table for a person to judge, but do not decide compatibility. Columns are matched by
    name, or by position when unnamed (tensors).

    Args:
        a: The baseline's signature (e.g. the champion's); None when it declares none.
        b: The candidate's signature; None when it declares none.
        labels: How the reason names A and B, e.g. ("v3", "v4").

    Returns:
        The verdict, a lower-case reason such as "the candidate lacks input “x”", and the
        column-by-column table (Type in A, Type in B).
    """
    name_a, name_b = labels
    empty = pd.DataFrame(columns=list(SIGNATURE_COLUMNS))
    if a is None and b is None:
        return SignatureCheck(True, "neither version has a signature", empty)
    if a is None or b is None:
        table = _signature_table(a or ModelSignature((), ()), b or ModelSignature((), ()))
        missing, other = (name_a, name_b) if a is None else (name_b, name_a)
        return SignatureCheck(
            False,
            f"{missing} has no signature, so its inputs cannot be checked against {other}'s",
            table,
        )
    table = _signature_table(a, b)
    inputs = table[table["Side"] == "Input"]

    def columns_with(status: str) -> list[str]:
        return [str(c) for c in inputs[inputs["Status"] == status]["Column"]]

    reasons = []
    if lacking := columns_with(MISSING_IN_B):
        reasons.append(f"{name_b} lacks input {_names(lacking)}")
    if changed := columns_with(TYPE_CHANGED):
        reasons.append(f"{name_b} changes the type of {_names(changed)}")
    if required := columns_with(ADDED_REQUIRED):
        reasons.append(f"{name_b} requires new input {_names(required)}")
    if reasons:
        return SignatureCheck(False, "; ".join(reasons), table)
    reason = (
        f"{name_b} accepts every input of {name_a} with the same type ({len(a.inputs)} columns)"
    )
    if added := columns_with(ADDED_OPTIONAL):
        reason += f", and adds optional {_names(added)}"
    return SignatureCheck(True, reason, table)


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(f"“{c}”" for c in columns[:5])
    more = f" and {len(columns) - 5} more" if len(columns) > 5 else ""
    return shown + more


def _signature_table(a: ModelSignature, b: ModelSignature) -> pd.DataFrame:
    rows = [
        *_side_rows("Input", a.inputs, b.inputs),
        *_side_rows("Output", a.outputs, b.outputs),
    ]
    return pd.DataFrame(rows, columns=list(SIGNATURE_COLUMNS))


def _side_rows(
    side: str, a: Sequence[SignatureColumn], b: Sequence[SignatureColumn]
) -> list[dict[str, object]]:
    keyed_a = _keyed(a)
    keyed_b = _keyed(b)
    rows: list[dict[str, object]] = []
    for key, column in keyed_a.items():
        other = keyed_b.get(key)
        if other is None:
            status = MISSING_IN_B
        elif other.type != column.type:
            status = TYPE_CHANGED
        else:
            status = SAME
        rows.append(
            {
                "Side": side,
                "Column": key,
                "Type in A": column.type,
                "Type in B": other.type if other else None,
                "Status": status,
            }
        )
    for key, column in keyed_b.items():
        if key not in keyed_a:
            rows.append(
                {
                    "Side": side,
                    "Column": key,
                    "Type in A": None,
                    "Type in B": column.type,
                    "Status": ADDED_REQUIRED if column.required else ADDED_OPTIONAL,
                }
            )
    return rows


def _keyed(columns: Sequence[SignatureColumn]) -> dict[str, SignatureColumn]:
    """Columns by name; an unnamed column (a tensor) by its position, as "[0]", "[1]", …"""
    return {column.name or f"[{index}]": column for index, column in enumerate(columns)}


# -- alias moves ----------------------------------------------------------------------------------


def alias_moves_from_versions(aliases: Mapping[str, int], read_at: datetime) -> list[AliasMove]:
    """The alias moves the registry alone can tell: each alias's current holder, "current".

    MLflow keeps no alias history (the audit log does: :mod:`services.governance.alias_history`);
    these
    mark where each alias points now, read at ``read_at``.

    Args:
        aliases: Alias → version, as the registered model holds them.
        read_at: When they were read (aware, UTC).
    """
    return [
        AliasMove(alias, version, None, read_at, "", CURRENT_HOLDER, False)
        for alias, version in sorted(aliases.items(), key=lambda item: (item[1], item[0]))
    ]
