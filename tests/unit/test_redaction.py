"""One redaction helper: secrets and URL passwords never leave in text, URLs or engine params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.core.redaction import (
    MASK,
    Redactor,
    engine_environment,
    mask_url_passwords,
    without_password,
    without_userinfo,
)
from services.core.settings import load_settings
from services.retraining.engines import job_environment, training_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://ada:pw@host:5000/x", "http://ada:***@host:5000/x"),
        ("at https://u:p@ss@host/api, retrying", "at https://u:***@host/api, retrying"),
        ("postgresql+psycopg://fd:pa:ss@db/fd", "postgresql+psycopg://fd:***@db/fd"),
        ("redis://:only-password@cache", "redis://:***@cache"),
        ("two: http://a:1234@h and http://b:5678@k", "two: http://a:***@h and http://b:***@k"),
        ("no password: http://host:5000/a@b", "no password: http://host:5000/a@b"),
        ("a user only: http://ada@host/", "a user only: http://ada@host/"),
        ("mail ada@example.com", "mail ada@example.com"),
    ],
)
def test_url_passwords_are_masked_wherever_they_appear(text: str, expected: str) -> None:
    assert mask_url_passwords(text) == expected
    assert without_password(text) == expected


def test_without_userinfo_drops_user_and_password() -> None:
    assert without_userinfo("https://ada:pw@host:8443/x?q=1") == "https://host:8443/x?q=1"
    assert without_userinfo("http://ada@host") == "http://host"
    assert without_userinfo("http://host:5000") == "http://host:5000"


def test_secret_values_are_masked_also_url_encoded() -> None:
    redactor = Redactor.of(["p@ss/w0rd!", None, "", "ab"])
    text = "raw p@ss/w0rd! encoded p%40ss%2Fw0rd%21 short ab"
    assert redactor.text(text) == f"raw {MASK} encoded {MASK} short ab"


def test_a_secret_containing_another_is_masked_whole() -> None:
    redactor = Redactor.of(["abcd", "abcdefgh"])
    assert redactor.text("x abcdefgh y") == f"x {MASK} y"


def test_nested_values_are_redacted_keys_included() -> None:
    redactor = Redactor.of(["t0ken-value"])
    value = {"t0ken-value": ["t0ken-value", 3, {"u": "http://a:b1@h"}], "n": None}
    assert redactor.value(value) == {MASK: [MASK, 3, {"u": "http://a:***@h"}], "n": None}


def test_engine_environment_carries_no_credentials() -> None:
    env = engine_environment(
        {
            "MLFLOW_TRACKING_URI": "https://ada:hunter2@mlflow.example.com",
            "MLFLOW_TRACKING_PASSWORD": "hunter2",
            "MLFLOW_TRACKING_USERNAME": "ada",
            "MLFLOW_TRACKING_TOKEN": "tok",
            "FLIGHTDECK_AUDIT_KEY": "k" * 40,
            "FLIGHTDECK_JOB_ID": "abc",
        }
    )
    assert env == {
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "FLIGHTDECK_JOB_ID": "abc",
    }


def test_jobs_are_sent_the_tracking_uri_without_credentials(tmp_path: Path) -> None:
    settings = load_settings(
        {"MLFLOW_TRACKING_URI": "https://ada:hunter2@mlflow.example.com"},
        secrets_path=tmp_path / "x.toml",
    )
    env = job_environment(settings)
    command = training_command("wine", "manual", "ada")("job-1")
    sent = json.dumps({"env": env, "train_args": command})
    assert env == {"MLFLOW_TRACKING_URI": "https://mlflow.example.com"}
    assert "hunter2" not in sent
    assert "ada@" not in sent
