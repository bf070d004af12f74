"""Outgoing notifications: Slack-compatible JSON on each step of a promotion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from services.promotion import PromotionRequest

WEBHOOK_TIMEOUT_S = 5


def post_webhook(url: str, event: str, request: PromotionRequest, actor: str) -> bool:
    """Post a Slack-compatible message; True when it was accepted. Never raises: a notification
    must not undo or block a promotion."""
    text = (
        f"{actor} {event} the promotion of {request.model} v{request.version} to "
        f"{request.target} (request {request.request_id[:8]}, status {request.status})."
    )
    payload = {
        "text": text,
        "flightdeck": {
            "event": event,
            "request_id": request.request_id,
            "model": request.model,
            "version": request.version,
            "target": request.target,
            "status": request.status,
            "actor": actor,
        },
    }
    try:
        return requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S).ok
    except requests.RequestException:
        return False
