"""Who is using Flightdeck. For now only development mode; login and roles come with promotion."""

from __future__ import annotations

from dataclasses import dataclass

from services.settings import Settings


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind the current session."""

    name: str
    """A user name or email; untrusted text."""
    authenticated: bool
    """False in development mode, where anyone may claim any name."""


def current_identity(settings: Settings) -> Identity:
    """The current user: in development mode, the configured development user."""
    return Identity(name=settings.dev_user, authenticated=False)
