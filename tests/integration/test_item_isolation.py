"""One entity that cannot be read degrades only its own part of a page.

A named fake at the network boundary: :class:`OneBrokenEntity` is a real HTTP proxy in front of
the session's real MLflow server that forwards every request, but answers HTTP 500 to any
request naming one registered model, as a server does for one corrupt row. Bulk reads (which
name no model) pass, so the pages list the broken model and then fail to read it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
import streamlit as st
from mlflow import MlflowClient

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port
from services.core.settings import load_settings
from services.monitoring.drift import compute_drift
from services.monitoring.runs import log_monitoring_run
from tests.conftest import monitoring_frame, own_mlflow_server
from tests.integration.conftest import app_as

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server: its models (odd names, red drift) stay out of the shared one."""
    yield from own_mlflow_server(tmp_path_factory)


class OneBrokenEntity:
    """Forwards everything to ``upstream``; a request naming ``broken`` gets a 500."""

    def __init__(self, upstream: str, broken: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                asked = unquote_plus(self.path) + body.decode("utf-8", "replace")
                if broken in asked or json.dumps(broken)[1:-1] in asked:
                    proxy.refused += 1
                    content = json.dumps(
                        {"error_code": "INTERNAL_ERROR", "message": "corrupt row"}
                    ).encode()
                    status = 500
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    answer = requests.request(
                        self.command, upstream + self.path, data=body, headers=headers, timeout=30
                    )
                    content, status = answer.content, answer.status_code
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.refused = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def two_models(mlflow_server: ServerProcess) -> tuple[str, str]:
    """Two registered models, both with a champion and red drift: (broken, healthy)."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"broken-{suffix}", f"healthy-{suffix}")
    client = MlflowClient(mlflow_server.url)
    gateway = TrackingGateway(load_settings({"MLFLOW_TRACKING_URI": mlflow_server.url}))
    drift = compute_drift(monitoring_frame(300, seed=1), monitoring_frame(300, seed=2, shift=3.0))
    experiment_id = client.create_experiment(f"isolation-{suffix}")
    end = datetime.now(UTC)
    for name in names:
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        client.log_metric(run_id, "eval_f1", 0.8)
        client.set_terminated(run_id)
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run_id}/model", run_id)
        client.set_registered_model_alias(name, "champion", "1")
        for days in (3, 2):
            start = end - timedelta(days=days)
            log_monitoring_run(
                gateway,
                model=name,
                version=1,
                alias="champion",
                window_start=start,
                window_end=start + timedelta(days=1),
                result=drift,
            )
    return names


@pytest.fixture
def broken_server(
    mlflow_server: ServerProcess, two_models: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[OneBrokenEntity]:
    proxy = OneBrokenEntity(mlflow_server.url, two_models[0])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    st.cache_data.clear()
    yield proxy
    proxy.close()


def texts(at: Any) -> str:
    """Every alert and Markdown text on the page, for finding what it says."""
    parts = [e.value for kind in ("markdown", "error", "warning", "info") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts).replace("\\", "").replace("\u2060", "")


def test_retraining_suggests_the_healthy_model_and_degrades_only_the_broken_ones_backtest(
    broken_server: OneBrokenEntity, two_models: tuple[str, str]
) -> None:
    broken, healthy = two_models
    at = app_as("vic", "pages/retraining.py")

    at.selectbox(key="retraining.policy_model").set_value(broken).run()

    assert not at.exception, at.exception
    said = texts(at)
    assert f"Retraining suggested for {healthy}" in said
    assert f"No backtest: the drift history of {broken} could not be read" in said
    assert "Scheduler decisions" in said  # the rest of the page is there
    assert broken_server.refused > 0


def test_monitoring_and_overview_show_the_broken_model_as_one_item_with_its_error(
    broken_server: OneBrokenEntity, two_models: tuple[str, str]
) -> None:
    broken, healthy = two_models
    overview = app_as("vic")
    assert not overview.exception, overview.exception
    said = texts(overview)
    assert healthy in said and broken in said  # both cards: the bulk reads name no model

    monitoring = app_as("vic", "pages/monitoring.py", model=broken)
    assert not monitoring.exception, monitoring.exception
    assert "kept answering" in texts(monitoring)

    model = app_as("vic", "pages/model.py", name=broken)
    assert not model.exception, model.exception
    assert "server error (HTTP 500)" in texts(model)
    assert broken_server.refused > 0
