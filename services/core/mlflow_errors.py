"""MLflow and HTTP failures translated into Flightdeck errors whose message says what to do."""

from __future__ import annotations

import re

import requests
from mlflow.exceptions import MlflowException

from services.core import errors

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST"}


_INVALID_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "MALFORMED_REQUEST"}


def translate_mlflow(exc: MlflowException, what: str, uri: str) -> errors.TrackingError:
    code = str(getattr(exc, "error_code", ""))
    cause = network_cause(exc)
    if cause is not None and (status := _server_error(cause)):
        return errors.TrackingError(
            f"MLflow at {uri} kept answering {what} with a server error ({status}). The server's "
            "log says why; what else it serves may still work."
        )
    if cause is not None:
        return errors.ServerUnreachable(
            f"Cannot reach MLflow at {uri}: {unreachable_reason(cause)}. Check that the server "
            "is running and the URL is right, then retry."
        )
    message = _short_message(exc)
    if code == "UNAUTHENTICATED":
        return errors.AuthenticationFailed(
            f"MLflow at {uri} rejected Flightdeck's credentials (HTTP 401) during {what}. Set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)."
        )
    if code == "PERMISSION_DENIED":
        return errors.ServerPermissionDenied(
            f"MLflow at {uri} denied {what} (HTTP 403). Ask the server's admin for permission."
        )
    if code in _NOT_FOUND_CODES:
        return errors.NotFound(f"Not found: {message}")
    if code in _INVALID_CODES:
        return errors.InvalidRequest(message)
    if code == "ENDPOINT_NOT_FOUND":
        return errors.ServerUnreachable(
            f"{uri} answered 404 to {what}: it does not look like an MLflow tracking server."
        )
    return errors.TrackingError(f"MLflow at {uri} failed during {what}: {message}")


def network_cause(exc: BaseException) -> requests.RequestException | None:
    """The requests error MLflow wrapped (it raises from inside ``except``, so look at context)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.RequestException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_SERVER_ERRORS = re.compile(r"too many (5\d\d) error responses")


def _server_error(exc: requests.RequestException) -> str | None:
    """The status (e.g. "HTTP 500") when only errors came back until the retries ran out."""
    found = _SERVER_ERRORS.search(str(exc))
    return f"HTTP {found.group(1)}" if found else None


def unreachable_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    text = str(exc)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host name"),
        ("nodename nor servname", "unknown host name"),
        ("Temporary failure in name resolution", "unknown host name"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
        ("timed out", "no answer within the timeout"),
        ("Max retries exceeded", "no answer"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__


def _short_message(exc: MlflowException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    code = str(getattr(exc, "error_code", ""))
    prefix = f"{code}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
