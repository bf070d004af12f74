"""Keeping credentials out of what Flightdeck stores, shows and sends.

One helper for every place text leaves a process or lands in the store: job failure reasons,
log tails, audit details, the parameters a remote engine is sent, and URLs in messages.

- :class:`Redactor` replaces the values of configured secrets (``Settings.secret_values``) and
  the password of any ``scheme://user:password@`` URL with :data:`MASK`.
- :func:`without_password` shows a URL with its password masked (the user stays, for context).
- :func:`without_userinfo` drops ``user:password@`` entirely, for URLs sent elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
"""What a redacted secret reads as."""
MIN_SECRET_CHARS = 4
"""Secrets shorter than this are not searched for: masking every ``ab`` in a log would make it
unreadable, and a secret that short protects nothing anyway."""
CREDENTIAL_ENV_NAMES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "FLIGHTDECK_AUDIT_KEY",
    "FLIGHTDECK_AIRFLOW_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
"""Environment variables that hold credentials: never sent to a remote engine."""

# scheme://user:password@ — the password runs to the last "@" before the path, so a password
# with an unescaped "@" is still masked whole.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):(?P<password>[^\s/]*)@")


@dataclass(frozen=True, slots=True)
class Redactor:
    """Masks configured secret values and URL passwords in text. Never shows them in ``repr``."""

    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The secret values to mask (each also in its URL-encoded forms)."""

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Redactor:
        """A redactor for these values; empty, blank and very short ones are left out."""
        found: set[str] = set()
        for value in values:
            if not value or not value.strip() or len(value) < MIN_SECRET_CHARS:
                continue
            found.update({value, quote(value, safe=""), quote_plus(value)})
        # Longest first, so a secret that contains another is masked whole.
        return cls(tuple(sorted(found, key=lambda s: (-len(s), s))))

    def text(self, text: str) -> str:
        """``text`` with every configured secret and every URL password masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return mask_url_passwords(text)

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (keys too) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


NO_SECRETS = Redactor()
"""A redactor that knows no secret values: it still masks URL passwords."""


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` masked."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def without_password(url: str) -> str:
    """``url`` to show a person: ``user:password@`` becomes ``user:***@``; else unchanged."""
    return mask_url_passwords(url)


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for sending it elsewhere."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_url_passwords(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def engine_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` as it may be sent to a remote engine: credential variables left out, and URLs
    without their ``user:password@`` (the worker's own environment carries credentials)."""
    return {
        name: without_userinfo(value) if "://" in value else value
        for name, value in env.items()
        if name not in CREDENTIAL_ENV_NAMES
    }
