"""AppTest: the Monitoring page on the seeded demo server, and the on-demand check."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from services.monitoring import runs as monitoring
from services.monitoring.drift import compute_drift
from services.monitoring.drift_check import DriftCheck

WINE = PROJECTS[0].model
CHECK_TIMEOUT_S = 180


@pytest.fixture(autouse=True)
def fresh_caches(tracking_env: str) -> None:
    st.cache_data.clear()


@pytest.fixture
def gateway(seeded_server: ServerProcess, settings_for) -> TrackingGateway:  # type: ignore[no-untyped-def]
    return TrackingGateway(settings_for(seeded_server.url))


def shifted(frame: pd.DataFrame, columns: int, factor: float = 1.8) -> pd.DataFrame:
    """The frame with its first ``columns`` numeric columns scaled: they drift."""
    numeric = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])][:columns]
    return frame.assign(**{c: frame[c] * factor for c in numeric})


def ensure_batches(gateway: TrackingGateway, model: str, shifts: tuple[int, ...]) -> None:
    """Monitoring batches for ``model`` unless it has some (the demo seed logs its own)."""
    if monitoring.monitoring_runs(gateway, model):
        return
    version, reference = monitoring.reference_for(gateway, model, "champion")
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for index, columns in enumerate(shifts):
        start = end - timedelta(days=len(shifts) - index)
        monitoring.log_monitoring_run(
            gateway,
            model=model,
            version=version,
            alias="champion",
            window_start=start,
            window_end=start + timedelta(days=1),
            result=compute_drift(reference, shifted(reference, columns)),
        )


def monitored_copy(client: MlflowClient, name: str) -> None:
    """A new model whose champion is the wine champion's source (so it has a reference)."""
    champion = client.get_model_version_by_alias(WINE, "champion")
    client.create_registered_model(name)
    client.create_model_version(
        name,
        champion.source,
        champion.run_id,
        model_id=champion.source.removeprefix("models:/"),
    )
    client.set_registered_model_alias(name, "champion", "1")


def monitoring_page(user: str, **query: str) -> AppTest:
    """A new session as ``user`` (development mode) on the Monitoring page.

    AppTest reruns a page without ``app.py``, so the identity is set before the first run.
    """
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.session_state["dev_user"] = user
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/monitoring.py").run()
    assert not at.exception, at.exception
    return at


def chart_specs(at: AppTest) -> list[str]:
    return [chart.proto.spec for chart in at.get("vega_lite_chart")]


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def test_page_shows_status_both_charts_and_drifted_columns_first(
    gateway: TrackingGateway,
) -> None:
    ensure_batches(gateway, WINE, (0, 2, 6, 8))

    at = monitoring_page("vic", model=WINE)

    assert not at.error, [e.value for e in at.error]
    assert any("-badge[" in m.value for m in at.markdown), "no status badge"
    assert any(c.value.startswith("Latest batches") for c in at.caption)
    specs = chart_specs(at)
    assert any("Share of drifted columns" in spec for spec in specs)
    assert any("Drift score per column and batch" in spec for spec in specs)
    assert any("reference vs current" in spec for spec in specs)
    (table,) = [d.value for d in at.dataframe if "Drifted" in d.value.columns]
    drifted = list(table["Drifted"])
    assert drifted == sorted(drifted, reverse=True)  # drifted columns first
    assert at.query_params["model"] == WINE


def test_a_linked_batch_and_column_are_shown(gateway: TrackingGateway) -> None:
    ensure_batches(gateway, WINE, (0, 2, 6, 8))
    oldest = monitoring.monitoring_runs(gateway, WINE)[0]
    column = monitoring.load_summary(gateway, oldest.run_id).features[-1].column

    at = monitoring_page("vic", model=WINE, batch=oldest.run_id, feature=column)

    assert at.selectbox(key="monitoring.batch").value == oldest.run_id
    assert at.selectbox(key="monitoring.feature").value == column
    assert at.query_params["batch"] == oldest.run_id


def test_a_viewer_sees_the_check_disabled_with_the_reason(gateway: TrackingGateway) -> None:
    at = monitoring_page("vic", model=WINE)

    assert at.file_uploader(key="monitoring.upload").disabled
    assert any("checking a batch needs the operator role" in i.value for i in at.info)


def test_an_upload_without_a_column_lists_the_missing_column(
    gateway: TrackingGateway,
) -> None:
    _, reference = monitoring.reference_for(gateway, WINE, "champion")
    dropped = str(reference.columns[0])

    at = monitoring_page("omar", model=WINE)
    upload = csv_bytes(reference.drop(columns=[dropped]))
    at.file_uploader(key="monitoring.upload").set_value(("batch.csv", upload, "text/csv")).run()

    assert not at.exception, at.exception
    assert any(dropped in e.value for e in at.error), [e.value for e in at.error]
    listed = [d.value for d in at.dataframe if "Why" in d.value.columns]
    assert listed and dropped in list(listed[0]["Column"])


def test_an_operator_checks_a_batch_in_the_background_and_saves_it(
    gateway: TrackingGateway, seeded_server: ServerProcess, unique_name: str
) -> None:
    monitored_copy(MlflowClient(seeded_server.url), unique_name)
    _, reference = monitoring.reference_for(gateway, unique_name, "champion")

    at = monitoring_page("omar", model=unique_name)
    assert any("no monitoring batches yet" in i.value for i in at.info)
    upload = csv_bytes(shifted(reference, 5))
    at.file_uploader(key="monitoring.upload").set_value(("batch.csv", upload, "text/csv")).run()
    check = at.session_state["monitoring.check"]
    assert isinstance(check, DriftCheck) and check.error is None
    assert check.wait(CHECK_TIMEOUT_S), "the check did not finish"
    at.run()

    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(c.value.startswith("This batch") for c in at.caption)
    (table,) = [d.value for d in at.dataframe if "Drifted" in d.value.columns]
    assert table["Drifted"].iloc[0]
    save = at.button(key="monitoring.save_check")
    save.click().run()

    assert not at.exception, at.exception
    assert any("Saved as monitoring run" in s.value for s in at.success)
    (saved,) = monitoring.monitoring_runs(gateway, unique_name)
    assert saved.alias == "champion" and saved.drifted_columns >= 5
    assert at.query_params["batch"] == saved.run_id
    assert at.button(key="monitoring.save_check").disabled  # once only
