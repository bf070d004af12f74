"""AppTest: an operator requests a promotion, an approver approves it, in the real app."""

from __future__ import annotations

import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT, load_settings
from services.core.store import open_store
from services.core.wiring import Wiring
from services.governance.alias_history import detect_external_changes
from services.governance.config import load_governance
from tests.integration.test_promotion import make_model


@pytest.fixture(autouse=True)
def fresh_caches(tracking_env: str) -> None:
    st.cache_data.clear()


def promotions_page(user: str, **query: str) -> AppTest:
    """A new session of the app, as ``user`` (development mode), on the Promotions page.

    One session per person: AppTest reruns a page without ``app.py`` (old-style multipage
    mode), so the identity is the one the session's first run resolved.
    """
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.session_state["dev_user"] = user
    at.query_params.update(query)
    at.run()
    assert any(f"{user} ·" in t.value for t in at.sidebar.text)
    at.switch_page("pages/promotions.py").run()
    assert not at.exception, at.exception
    return at


def test_operator_requests_and_another_person_approves_and_the_alias_moves(
    mlflow_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(mlflow_server.url)
    make_model(client, unique_name, [0.80, 0.85])

    at = promotions_page("omar")  # an operator in flightdeck.toml
    at.selectbox(key="promotions.model").set_value(unique_name).run()
    at.selectbox(key="promotions.version").set_value(2)
    at.text_area(key="promotions.reason").input("f1 0.80 → 0.85 on the same holdout")
    next(b for b in at.button if b.label == "Request promotion").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Request: done" in at.success[0].value
    request_id = at.query_params["request"]
    approve = next(b for b in at.button if b.label == "Approve and promote")
    assert approve.disabled  # four-eyes: omar cannot approve his own request
    assert any("four-eyes" in i.value for i in at.info)

    viewer = promotions_page("vic", request=request_id)
    assert next(b for b in viewer.button if b.label == "Approve and promote").disabled
    assert any("needs the approver role" in i.value for i in viewer.info)

    approver = promotions_page("ben", request=request_id)
    gates = [m.value for m in approver.markdown if "**" in m.value and "material/c" in m.value]
    assert gates and all("check_circle" in g for g in gates), gates
    approver.text_area(key="promotions.comment").input("Looks good")
    next(b for b in approver.button if b.label == "Approve and promote").click().run()

    assert not approver.exception and not approver.error, [e.value for e in approver.error]
    assert "Approve: done" in approver.success[0].value
    assert client.get_model_version_by_alias(unique_name, "champion").version == "2"
    assert any(t.value.startswith("ben approved") for t in approver.text)
    assert any("requested by omar" in c.value for c in approver.caption)


def test_a_viewer_sees_why_they_cannot_request(mlflow_server: ServerProcess) -> None:
    at = promotions_page("vic")
    assert any("requesting a promotion needs the operator role" in i.value for i in at.info)


def test_a_linked_model_registered_after_the_list_was_cached_is_preselected(
    mlflow_server: ServerProcess, unique_name: str
) -> None:
    promotions_page("omar")  # caches the list of registered models
    make_model(MlflowClient(mlflow_server.url), unique_name, [0.80, 0.85])
    at = promotions_page("omar", model=unique_name, version="2")
    assert at.selectbox(key="promotions.model").value == unique_name
    assert at.selectbox(key="promotions.version").value == 2


def test_rolling_back_staging_from_the_model_page_prefills_staging_not_champion(
    mlflow_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(mlflow_server.url)
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    settings = load_settings()
    services = Wiring(
        open_store(settings.store_url),
        TrackingGateway(settings),
        load_governance(settings.governance_path),
    )
    client.set_registered_model_alias(unique_name, "staging", "2")
    detect_external_changes(services, unique_name)  # a control loop pass: where @staging starts
    client.set_registered_model_alias(unique_name, "staging", "3")  # moved since
    detect_external_changes(services, unique_name)  # the next pass
    services.store.engine.dispose()
    model_page = promotions_page("ada", name=unique_name)
    model_page.switch_page("pages/model.py").run()
    assert not model_page.exception, model_page.exception
    links = [link for link in model_page.get("page_link") if "Roll back" in link.proto.label]
    assert [link.proto.label for link in links] == ["Roll back @staging to v2"]

    form = promotions_page("ada", model=unique_name, version="2", target="staging", kind="rollback")

    assert form.selectbox(key="promotions.target").value == "staging"
    assert "champion" in form.selectbox(key="promotions.target").options
    assert form.selectbox(key="promotions.version").value == 2
