"""The gateway's model registry reads and writes against a real MLflow server."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from jobs.seed_demo import PROJECTS
from services.core.errors import NotFound
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.records import ModelSignature

WINE = PROJECTS[0].model


@pytest.fixture
def client(seeded_server: ServerProcess) -> MlflowClient:
    return MlflowClient(seeded_server.url)


@pytest.fixture
def gateway(seeded_server: ServerProcess, settings_for: Any) -> TrackingGateway:
    return TrackingGateway(settings_for(seeded_server.url))


@pytest.fixture
def odd_model(client: MlflowClient, unique_name: str) -> str:
    """A model with spaces, Unicode, a quote and URL-special characters in its name.

    MLflow 3 refuses "/" and ":" in new model names, so those cannot be tested; the gateway
    never builds a URI from a name, so a name registered before that rule works the same.

    Version 1 points at a path with no model files; version 2 reuses the files of the demo
    wine classifier's fourth version, so it has a real ``MLmodel`` with a signature.
    """
    name = f"fraud model v2 — ünï's #1 ?a=b&c%20+d {unique_name}"
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id, run_name="source").info.run_id
    client.create_registered_model(name, tags={"team": "risk"}, description="Odd name.")
    client.create_model_version(name, source=f"runs:/{run_id}/nothing-here", run_id=run_id)
    wine = client.get_model_version(WINE, "4")
    assert wine.source.startswith("models:/m-")  # an MLflow 3 logged model
    client.create_model_version(
        name, source=wine.source, run_id=wine.run_id, model_id=wine.source.removeprefix("models:/")
    )
    return name


def test_registered_models_lists_the_seeded_and_odd_models_with_aliases_and_latest_version(
    gateway: TrackingGateway, odd_model: str
) -> None:
    models = {m.name: m for m in gateway.registered_models()}

    assert {p.model for p in PROJECTS} <= set(models)
    wine = models[WINE]
    assert wine.aliases == {"champion": 3, "challenger": 4}
    assert wine.latest_version == 4
    assert wine.tags["team"] == "quality"
    assert wine.description
    assert wine.created_at is not None and wine.created_at.tzinfo is not None
    assert models[odd_model].latest_version == 2
    assert models[odd_model].tags == {"team": "risk"}


def test_get_registered_model_reads_an_odd_name_and_names_a_missing_one(
    gateway: TrackingGateway, odd_model: str
) -> None:
    model = gateway.get_registered_model(odd_model)
    assert model.name == odd_model
    assert model.description == "Odd name."
    with pytest.raises(NotFound, match="no registered model named"):
        gateway.get_registered_model(f"{odd_model} missing")
    with pytest.raises(NotFound, match="no registered model named"):
        gateway.get_registered_model("a/b")  # MLflow refuses "/" in names: none can exist


def test_get_model_version_has_stage_and_source_and_is_not_found_after_deletion(
    gateway: TrackingGateway, client: MlflowClient, odd_model: str
) -> None:
    version = gateway.get_model_version(odd_model, 1)
    assert (version.name, version.version, version.stage) == (odd_model, 1, "None")
    assert version.source.endswith("/nothing-here")
    assert version.run_id

    client.delete_model_version(odd_model, "1")

    with pytest.raises(NotFound, match="has no version 1"):
        gateway.get_model_version(odd_model, 1)
    with pytest.raises(NotFound, match="no registered model named"):
        gateway.get_model_version(f"{odd_model} missing", 1)


def test_alias_holder_is_none_for_an_unset_alias_and_not_found_for_a_missing_model(
    gateway: TrackingGateway, odd_model: str
) -> None:
    assert gateway.alias_holder(WINE, "champion") == 3
    assert gateway.alias_holder(odd_model, "champion") is None
    with pytest.raises(NotFound, match="no registered model named"):
        gateway.alias_holder(f"{odd_model} missing", "champion")


def test_set_and_delete_alias_on_an_odd_name(gateway: TrackingGateway, odd_model: str) -> None:
    gateway.set_alias(odd_model, "champion", 1)
    gateway.set_alias(odd_model, "challenger", 2)
    assert gateway.alias_holder(odd_model, "champion") == 1

    gateway.set_alias(odd_model, "champion", 2)  # overwrites silently
    assert gateway.get_registered_model(odd_model).aliases == {"champion": 2, "challenger": 2}
    assert gateway.get_model_version(odd_model, 2).aliases == ("challenger", "champion")

    gateway.delete_alias(odd_model, "champion")
    gateway.delete_alias(odd_model, "champion")  # removing an unset alias does nothing
    assert gateway.alias_holder(odd_model, "champion") is None
    assert gateway.alias_holder(odd_model, "challenger") == 2
    with pytest.raises(NotFound):
        gateway.set_alias(odd_model, "champion", 99)
    with pytest.raises(NotFound, match="no registered model named"):
        gateway.delete_alias(f"{odd_model} missing", "champion")


def test_set_stage_moves_one_version_and_archives_the_one_it_replaces(
    gateway: TrackingGateway, odd_model: str, recwarn: pytest.WarningsRecorder
) -> None:
    """A serving stage holds one version, like an alias: the previous holder is archived."""
    gateway.set_stage(odd_model, 1, "Production")
    gateway.set_stage(odd_model, 2, "Staging")
    assert gateway.get_model_version(odd_model, 1).stage == "Production"  # another stage

    gateway.set_stage(odd_model, 2, "Production")

    assert gateway.get_model_version(odd_model, 1).stage == "Archived"
    assert gateway.get_model_version(odd_model, 2).stage == "Production"
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    with pytest.raises(NotFound, match="has no version 7"):
        gateway.set_stage(odd_model, 7, "Staging")


def test_set_model_version_tags_adds_and_overwrites(
    gateway: TrackingGateway, odd_model: str
) -> None:
    gateway.set_model_version_tags(odd_model, 2, {"flightdeck.request_id": "r-1", "note": "ü/ñ"})
    gateway.set_model_version_tags(odd_model, 2, {"flightdeck.request_id": "r-2"})

    tags = gateway.get_model_version(odd_model, 2).tags
    assert tags == {"flightdeck.request_id": "r-2", "note": "ü/ñ"}


def test_signature_of_a_seeded_version_lists_its_13_wine_features(
    gateway: TrackingGateway,
) -> None:
    signature = gateway.model_version_signature(WINE, 4)

    assert isinstance(signature, ModelSignature)
    assert len(signature.inputs) == 13
    assert signature.inputs[0].name == "alcohol"
    assert {column.type for column in signature.inputs} == {"double"}
    assert len(signature.outputs) == 1


def test_signature_reads_through_an_odd_name_and_is_none_without_model_files(
    gateway: TrackingGateway, odd_model: str
) -> None:
    assert gateway.model_version_signature(odd_model, 2) == gateway.model_version_signature(WINE, 4)
    assert gateway.model_version_signature(odd_model, 1) is None
    with pytest.raises(NotFound):
        gateway.model_version_signature(odd_model, 5)


def test_model_versions_carry_stage_source_and_aliases(gateway: TrackingGateway) -> None:
    versions = gateway.model_versions(f"name = '{WINE}'")
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert all(v.source and v.stage == "None" for v in versions)
