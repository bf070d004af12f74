"""Pages only read: rendering any page as a viewer writes nothing to the application store,
but for its caches of what MLflow already holds (finished runs' metric histories).

Background truth (job follow-up, external alias moves, expiry, reconciliation) belongs to the
control loop; a page's buttons are its only writes. The demo's data, plus an overdue request
and an alias moved outside Flightdeck, gives a page every reason it once had to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from services.core.processes import ServerProcess
from services.core.settings import load_settings
from services.core.store import CACHE_TABLES, METADATA, open_store, promotion_requests
from tests.integration.conftest import app_as

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_app")]

DEMO_MODEL = "wine-classifier"
PAGES: dict[str, dict[str, str]] = {
    "pages/overview.py": {},
    "pages/experiments.py": {},
    "pages/runs.py": {},
    "pages/compare.py": {},
    "pages/models.py": {},
    "pages/model.py": {"name": DEMO_MODEL},
    "pages/promotions.py": {},
    "pages/monitoring.py": {"model": DEMO_MODEL},
    "pages/retraining.py": {},
    "pages/admin.py": {},
}


def row_counts() -> dict[str, int]:
    store = open_store(load_settings().store_url)
    try:
        with store.read() as connection:
            return {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
                for table in METADATA.sorted_tables
                if table.name not in CACHE_TABLES
            }
    finally:
        store.engine.dispose()


@pytest.fixture
def work_for_the_loop(seeded_server: ServerProcess) -> Iterator[None]:
    """An overdue request and an alias moved outside Flightdeck: what a page used to write."""
    store = open_store(load_settings().store_url)
    pending = promotion_requests.c.status == "pending"
    with store.write() as connection:
        expiries = connection.execute(
            sa.select(promotion_requests.c.id, promotion_requests.c.expires_at).where(pending)
        ).all()
        connection.execute(
            promotion_requests.update()
            .where(pending)
            .values(expires_at=datetime.now(UTC) - timedelta(hours=1))
        )
    client = MlflowClient(seeded_server.url)
    champion = client.get_model_version_by_alias(DEMO_MODEL, "champion").version
    others = [v.version for v in client.search_model_versions(f"name = '{DEMO_MODEL}'")]
    client.set_registered_model_alias(
        DEMO_MODEL, "champion", next(v for v in others if v != champion)
    )
    yield
    client.set_registered_model_alias(DEMO_MODEL, "champion", champion)  # as the demo had it
    with store.write() as connection:
        for request_id, expires_at in expiries:
            connection.execute(
                promotion_requests.update()
                .where(promotion_requests.c.id == request_id)
                .values(expires_at=expires_at)
            )
    store.engine.dispose()


@pytest.mark.usefixtures("work_for_the_loop")
@pytest.mark.parametrize(("page", "query"), list(PAGES.items()), ids=list(PAGES))
def test_rendering_a_page_as_a_viewer_writes_nothing(page: str, query: dict[str, str]) -> None:
    before = row_counts()

    at = app_as("vic", page, **query)
    at.run()  # and once more, as a refresh would

    assert not at.exception, at.exception
    assert row_counts() == before
