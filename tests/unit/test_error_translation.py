"""MLflow raises its own exceptions; the gateway must turn each into a clear FlightdeckError."""

from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from services.core import errors
from services.core.gateway import offset_page_token, page_token_offset
from services.core.mlflow_errors import translate_mlflow

URI = "http://mlflow.example:5000"


def wrapped_network_error() -> MlflowException:
    try:
        try:
            raise requests.ConnectionError("Max retries exceeded ... Connection refused")
        except requests.ConnectionError as exc:
            raise MlflowException(f"API request failed with exception {exc}") from None
    except MlflowException as outer:
        return outer


@pytest.mark.parametrize(
    ("exception", "expected", "text"),
    [
        (
            RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No run x"}),
            errors.NotFound,
            "No run x",
        ),
        (
            RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad filter"}),
            errors.InvalidRequest,
            "bad filter",
        ),
        (
            MlflowException("401", error_code=UNAUTHENTICATED),
            errors.AuthenticationFailed,
            "MLFLOW_TRACKING_USERNAME",
        ),
        (
            MlflowException("403", error_code=PERMISSION_DENIED),
            errors.ServerPermissionDenied,
            "permission",
        ),
    ],
)
def test_mlflow_errors_become_typed_errors_with_advice(
    exception: MlflowException, expected: type[errors.FlightdeckError], text: str
) -> None:
    translated = translate_mlflow(exception, "a read", URI)
    assert type(translated) is expected
    assert text in str(translated)


def test_a_wrapped_connection_error_is_unreachable_even_without_a_cause() -> None:
    # MLflow raises its exception inside `except`, so the requests error is only the context.
    translated = translate_mlflow(wrapped_network_error(), "a read", URI)
    assert isinstance(translated, errors.ServerUnreachable)
    assert str(translated).startswith(f"Cannot reach MLflow at {URI}: connection refused")


def test_offset_tokens_round_trip_and_foreign_tokens_are_not_offsets() -> None:
    assert page_token_offset(offset_page_token(37)) == 37
    assert page_token_offset("not-base64!") is None
    assert page_token_offset("eyJwYWdlIjogM30=") is None  # {"page": 3}
