"""MLflow entities converted into Flightdeck records (:mod:`services.core.records`).

Everything MLflow accepts converts: a missing field becomes a blank or None, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from mlflow.entities import Experiment as MlflowExperiment
from mlflow.entities import Run as MlflowRun

from services.core.conventions import (
    DESCRIPTION_TAG,
    RUN_NAME_TAG,
    SYSTEM_TAG_PREFIXES,
    USER_TAG,
)
from services.core.records import (
    DatasetSummary,
    Experiment,
    ModelSignature,
    ModelVersionSummary,
    RegisteredModel,
    Run,
    SignatureColumn,
    from_epoch_ms,
)


def experiment_record(experiment: MlflowExperiment) -> Experiment:
    tags = dict(experiment.tags or {})
    return Experiment(
        experiment_id=str(experiment.experiment_id),
        name=experiment.name,
        deleted=experiment.lifecycle_stage == "deleted",
        created_at=from_epoch_ms(experiment.creation_time),
        last_updated_at=from_epoch_ms(experiment.last_update_time),
        description=tags.get(DESCRIPTION_TAG, ""),
        tags={k: v for k, v in tags.items() if not k.startswith(SYSTEM_TAG_PREFIXES)},
    )


def run_record(run: MlflowRun) -> Run:
    info, data = run.info, run.data
    return Run(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        name=info.run_name or data.tags.get(RUN_NAME_TAG, ""),
        status=info.status,
        start_time=from_epoch_ms(info.start_time),
        end_time=from_epoch_ms(info.end_time),
        user=data.tags.get(USER_TAG, info.user_id or ""),
        deleted=info.lifecycle_stage == "deleted",
        metrics=dict(data.metrics),
        params=dict(data.params),
        tags=dict(data.tags),
        datasets=tuple(
            _dataset_record(d) for d in (run.inputs.dataset_inputs if run.inputs else ())
        ),
    )


def run_record_from_json(run: Mapping[str, Any]) -> Run:
    """A run from the JSON MLflow's REST API returns (``runs/search``), as :func:`run_record`
    makes it from the client's entity: without building the protobuf message and the entity on
    the way, which cost the client about a millisecond a run."""
    info, data = run.get("info") or {}, run.get("data") or {}
    tags = {t["key"]: t.get("value", "") for t in data.get("tags") or () if "key" in t}
    return Run(
        run_id=info.get("run_id") or info.get("run_uuid", ""),
        experiment_id=str(info.get("experiment_id", "")),
        name=info.get("run_name") or tags.get(RUN_NAME_TAG, ""),
        status=info.get("status", ""),
        start_time=from_epoch_ms(_int_or_none(info.get("start_time"))),
        end_time=from_epoch_ms(_int_or_none(info.get("end_time"))),
        user=tags.get(USER_TAG, info.get("user_id") or ""),
        deleted=info.get("lifecycle_stage") == "deleted",
        metrics={
            m["key"]: float(m.get("value", "nan")) for m in data.get("metrics") or () if "key" in m
        },
        params={p["key"]: p.get("value", "") for p in data.get("params") or () if "key" in p},
        tags=tags,
        datasets=tuple(
            _dataset_from_json(d) for d in (run.get("inputs") or {}).get("dataset_inputs") or ()
        ),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)  # int64 may come as a JSON string


def _dataset_from_json(dataset_input: Mapping[str, Any]) -> DatasetSummary:
    dataset = dataset_input.get("dataset") or {}
    context = next(
        (
            t.get("value", "")
            for t in dataset_input.get("tags") or ()
            if t.get("key") == "mlflow.data.context"
        ),
        "",
    )
    return DatasetSummary(
        dataset.get("name", ""),
        dataset.get("digest", ""),
        dataset.get("source_type", ""),
        context,
        _profile_rows(dataset.get("profile")),
    )


def _profile_rows(profile: str | None) -> int | None:
    try:
        return int(json.loads(profile or "{}").get("num_rows"))
    except (TypeError, ValueError, AttributeError):
        return None


def _dataset_record(dataset_input: Any) -> DatasetSummary:
    dataset = dataset_input.dataset
    context = next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), "")
    rows = _profile_rows(dataset.profile)
    return DatasetSummary(dataset.name, dataset.digest, dataset.source_type, context, rows)


def version_record(version: Any) -> ModelVersionSummary:
    return ModelVersionSummary(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or "",
        created_at=from_epoch_ms(version.creation_timestamp),
        status=str(version.status),
        description=version.description or "",
        aliases=tuple(sorted(version.aliases or ())),
        tags=dict(version.tags or {}),
        stage=str(version.current_stage or "None"),
        source=str(version.source or ""),
    )


def model_record(model: Any) -> RegisteredModel:
    latest = [int(v.version) for v in (model.latest_versions or ())]
    return RegisteredModel(
        name=model.name,
        description=model.description or "",
        tags=dict(model.tags or {}),
        aliases={alias: int(version) for alias, version in (model.aliases or {}).items()},
        latest_version=max(latest, default=None),
        created_at=from_epoch_ms(model.creation_timestamp),
        updated_at=from_epoch_ms(model.last_updated_timestamp),
    )


def signature_record(mlmodel_text: str) -> ModelSignature | None:
    """The signature in an ``MLmodel`` file; None when it has none or it cannot be read.

    MLflow stores each side as a JSON string: a list of column specs (``{"name", "type",
    "required"}``) or of tensor specs (``{"type": "tensor", "tensor-spec": {dtype, shape}}``).
    """
    try:
        document = yaml.safe_load(mlmodel_text)
    except yaml.YAMLError:
        return None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(signature, dict):
        return None
    inputs = _signature_columns(signature.get("inputs"))
    outputs = _signature_columns(signature.get("outputs"))
    if not inputs and not outputs:
        return None
    return ModelSignature(inputs, outputs)


def _signature_columns(side: object) -> tuple[SignatureColumn, ...]:
    try:
        specs = json.loads(side) if isinstance(side, str) else side
    except ValueError:
        return ()
    if not isinstance(specs, list):
        return ()
    columns: list[SignatureColumn] = []
    for spec in specs:
        if not isinstance(spec, dict):
            continue
        kind = str(spec.get("type", ""))
        tensor = spec.get("tensor-spec")
        if kind == "tensor" and isinstance(tensor, dict):
            kind = f"tensor({tensor.get('dtype', '?')}, {tensor.get('shape', '?')})"
        elif kind in {"array", "object", "map"}:
            kind = json.dumps({k: v for k, v in spec.items() if k not in {"name", "required"}})
        columns.append(
            SignatureColumn(str(spec.get("name", "")), kind, bool(spec.get("required", True)))
        )
    return tuple(columns)
