"""MLflow registry webhooks: alias moves recorded within seconds; polling stays the guarantee.

MLflow 3.3+ with a SQL store posts registry events to subscribed URLs, signed with the webhook's
secret (HMAC-SHA256 over ``"<delivery id>.<timestamp>.<body>"``, sent as ``v1,<base64>``). The
control loop (``python -m jobs.scheduler`` with ``FLIGHTDECK_REGISTRY_WEBHOOK_PORT``) listens on
that port, registers its own webhook for alias events with a secret it makes at start-up, and
records each reported move with :func:`~services.governance.alias_history.record_reported_move`.

A delivery is refused (401) unless it is signed with that secret and its timestamp is within
:data:`MAX_SKEW_S` of now; a delivery id already recorded is ignored, so a replay records
nothing. Webhooks may arrive late or out of order (MLflow retries): the next pass's poll reads
the registry itself and records whatever the webhooks missed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.core.errors import FlightdeckError

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
PATH = "/mlflow-webhook"
ALIAS_ENTITY = "model_version_alias"
ALIAS_EVENTS = (f"{ALIAS_ENTITY}.created", f"{ALIAS_ENTITY}.deleted")
MAX_SKEW_S = 300.0
"""A delivery whose timestamp is further than this from now is refused (a replay, or a clock)."""
MAX_BODY_BYTES = 64 * 1024
WEBHOOK_NAME_PREFIX = "flightdeck-alias-moves"

log = logging.getLogger("flightdeck.webhooks")


class WebhookRejected(FlightdeckError):
    """A delivery that is not signed with the secret, too old, or not a webhook at all."""


@dataclass(frozen=True, slots=True)
class AliasReport:
    """What MLflow reported: ``alias`` of ``model`` now points at ``version`` (None: deleted)."""

    model: str
    alias: str
    version: int | None
    delivery_id: str


def webhook_name(url: str) -> str:
    """The name this receiver's subscription has in MLflow: one per receiving URL."""
    return f"{WEBHOOK_NAME_PREFIX}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature MLflow sends for ``body`` (``v1,<base64 HMAC-SHA256>``)."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any]:
    """The delivery's JSON, once its signature and timestamp check out.

    Raises:
        WebhookRejected: A header is missing, the timestamp is too far from ``now``, the
            signature does not match, or the body is not a JSON object.
    """
    delivery_id = headers.get(DELIVERY_ID_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not (secret and delivery_id and timestamp and signature):
        raise WebhookRejected("unsigned: the delivery id, timestamp and signature are required")
    try:
        sent = float(timestamp)
    except ValueError as exc:
        raise WebhookRejected("the timestamp is not a number") from exc
    if abs(now - sent) > MAX_SKEW_S:
        raise WebhookRejected(f"the timestamp is more than {MAX_SKEW_S:g} s from now")
    if not hmac.compare_digest(sign(secret, delivery_id, timestamp, body), signature):
        raise WebhookRejected("the signature does not match")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("the body is not a JSON object")
    return payload


def alias_report(payload: Mapping[str, Any], delivery_id: str) -> AliasReport | None:
    """The alias move in a verified delivery; None for another event or an unusable one."""
    data = payload.get("data")
    if payload.get("entity") != ALIAS_ENTITY or not isinstance(data, Mapping):
        return None
    model, alias = data.get("name"), data.get("alias")
    if not isinstance(model, str) or not isinstance(alias, str) or not model or not alias:
        return None
    if payload.get("action") == "deleted":
        return AliasReport(model, alias, None, delivery_id)
    try:
        version = int(str(data.get("version")))
    except ValueError:
        return None
    return (
        AliasReport(model, alias, version, delivery_id)
        if payload.get("action") == "created"
        else None
    )


class Receiver:
    """An HTTP server for MLflow's deliveries, in a thread of the control loop's process."""

    def __init__(
        self, host: str, port: int, secret: str, record: Callable[[AliasReport], bool]
    ) -> None:
        self.secret = secret
        self.server = ThreadingHTTPServer((host, port), _handler(self, record))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    receiver: Receiver, record: Callable[[AliasReport], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?")[0] != PATH:
                return self._answer(404, "not found")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._answer(413, "too large")
            body = self.rfile.read(length)
            try:
                headers = {k: v for k, v in self.headers.items()}
                payload = verify(receiver.secret, headers, body, time.time())
            except WebhookRejected as exc:
                log.warning("refused a webhook delivery: %s", exc)
                return self._answer(401, str(exc))
            report = alias_report(payload, headers.get(DELIVERY_ID_HEADER, ""))
            if report is None:
                return self._answer(204, "")
            try:
                recorded = record(report)
            except FlightdeckError as exc:  # the store is down: MLflow retries, polling follows
                log.warning("could not record a reported move: %s", exc)
                return self._answer(503, "not recorded, try again")
            if recorded:
                log.info("webhook: @%s of %s moved outside Flightdeck", report.alias, report.model)
            return self._answer(200, "recorded" if recorded else "already known")

        def _answer(self, status: int, text: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            if text:
                self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            return  # deliveries are logged above, not per request line

    return Handler
