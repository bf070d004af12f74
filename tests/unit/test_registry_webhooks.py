"""Registry webhook deliveries: MLflow's own signature is accepted, anything else refused."""

from __future__ import annotations

import json

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from services.control_loop.registry_webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AliasReport,
    WebhookRejected,
    alias_report,
    verify,
)

NOW = 1_800_000_000.0
BODY = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2027-01-15T08:00:00+00:00",
        "data": {"name": "wine", "alias": "champion", "version": "3"},
    }
)


def signed(secret: str = "s3cret", body: str = BODY, at: float = NOW) -> dict[str, str]:
    stamp = str(int(at))
    return {
        DELIVERY_ID_HEADER: "d-1",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: _generate_hmac_signature(secret, "d-1", stamp, body),  # MLflow's own
    }


def test_a_delivery_signed_by_mlflow_with_the_secret_is_accepted() -> None:
    payload = verify("s3cret", signed(), BODY.encode(), NOW + 2)
    assert alias_report(payload, "d-1") == AliasReport("wine", "champion", 3, "d-1")


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        (signed("another secret"), BODY, "signature"),
        (signed(), BODY.replace('"3"', '"1"'), "signature"),  # the body was changed
        (signed(at=NOW - 3600), BODY, "timestamp"),  # an old delivery replayed
        ({**signed(), SIGNATURE_HEADER: ""}, BODY, "unsigned"),
        ({k: v for k, v in signed().items() if k != TIMESTAMP_HEADER}, BODY, "unsigned"),
        (signed(body="[1]"), "[1]", "object"),
    ],
)
def test_a_delivery_without_the_right_signature_or_time_is_refused(
    headers: dict[str, str], body: str, why: str
) -> None:
    with pytest.raises(WebhookRejected, match=why):
        verify("s3cret", headers, body.encode(), NOW)


def test_an_empty_secret_refuses_everything() -> None:
    with pytest.raises(WebhookRejected, match="unsigned"):
        verify("", signed(""), BODY.encode(), NOW)


def alias_event(action: str, data: object) -> dict[str, object]:
    return {"entity": "model_version_alias", "action": action, "data": data}


def test_only_alias_events_with_usable_fields_are_reports() -> None:
    deleted = alias_event("deleted", {"name": "w", "alias": "a"})
    assert alias_report(deleted, "d") == AliasReport("w", "a", None, "d")
    for other in (
        {"entity": "model_version_tag", "action": "set", "data": {"name": "w"}},
        alias_event("created", {"name": "w", "alias": "a", "version": "x"}),
        alias_event("created", "nonsense"),
        alias_event("updated", {"name": "w", "alias": "a", "version": "1"}),
    ):
        assert alias_report(other, "d") is None
