"""A model whose name MLflow's filter syntax cannot quote works like any other.

Each name below has a neighbour that its broad ``LIKE`` fallback also matches, so a missing
client-side narrowing would show the neighbour's versions, drift or runs as its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from mlflow import MlflowClient

from services.core import filters
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.store import Store
from services.core.wiring import Wiring
from services.governance import alias_history, promotion
from services.monitoring.drift import compute_drift
from services.monitoring.runs import log_monitoring_run, monitoring_runs
from tests.conftest import monitoring_frame, own_mlflow_server
from tests.integration.test_promotion import APPROVER, governance, make_model, open_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server: its models (odd names, red drift) stay out of the shared one."""
    yield from own_mlflow_server(tmp_path_factory)


UNQUOTABLE = {
    "both quotes": """it's a "{}" model""",
    "backslash": "back\\slash {} \\",
    "quotes only": """'"{}'\\""",
}


@pytest.fixture(params=list(UNQUOTABLE), ids=list(UNQUOTABLE))
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    """An unquotable name, and a neighbour that contains it (so it matches the same LIKE)."""
    name = UNQUOTABLE[request.param].format(uuid.uuid4().hex[:8])
    assert filters.literal(name) is None
    return name, f"{name} neighbour"


def test_versions_of_lists_only_the_models_own_versions(
    client: MlflowClient, gateway: TrackingGateway, names: tuple[str, str]
) -> None:
    name, neighbour = names
    make_model(client, name, [0.8, 0.85])
    make_model(client, neighbour, [0.7, 0.75, 0.9])

    assert [(v.name, v.version) for v in gateway.versions_of(name)] == [(name, 1), (name, 2)]
    assert len(gateway.versions_of(neighbour)) == 3


def test_promotion_executes_and_its_history_and_rollback_read_back(
    client: MlflowClient, gateway: TrackingGateway, store: Store, names: tuple[str, str]
) -> None:
    name, neighbour = names
    make_model(client, name, [0.8, 0.85])
    make_model(client, neighbour, [0.7, 0.75, 0.9])
    services = Wiring(store, gateway, governance())

    request = open_request(services, name)
    done = promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")

    assert done.status == "executed"
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version_by_alias(neighbour, "champion").version == "1"
    (move,) = alias_history.alias_history(store, name, "alias", "champion")
    assert (move.previous, move.version) == (1, 2)
    assert alias_history.rollback_targets(services, name) == {"champion": 1}


def test_monitoring_runs_are_the_models_own(
    client: MlflowClient, gateway: TrackingGateway, names: tuple[str, str]
) -> None:
    name, neighbour = names
    drift = compute_drift(monitoring_frame(200, seed=1), monitoring_frame(200, seed=2, shift=2.0))
    start = datetime.now(UTC) - timedelta(days=3)
    for model, batches in ((name, 1), (neighbour, 2)):
        make_model(client, model, [0.8])
        for day in range(batches):
            log_monitoring_run(
                gateway,
                model=model,
                version=1,
                alias="champion",
                window_start=start + timedelta(days=day),
                window_end=start + timedelta(days=day + 1),
                result=drift,
            )

    assert [r.model for r in monitoring_runs(gateway, name)] == [name]
    assert [r.model for r in monitoring_runs(gateway, neighbour)] == [neighbour, neighbour]
