"""Flightdeck's exception tree: the only errors pages need to catch.

    FlightdeckError                 anything Flightdeck can explain to a person
    ├── ConfigurationError          a setting is invalid (wrong URI scheme, bad number)
    ├── PermissionDenied            the current person may not do this (a missing role)
    │   └── NotSignedIn             nobody is signed in: no login, or the proxy's proof is missing
    ├── TrackingError               the MLflow tracking server could not answer as asked
    │   ├── ServerUnreachable       no answer at all: refused, timed out, DNS, TLS
    │   ├── AuthenticationFailed    401: missing or wrong credentials
    │   ├── ServerPermissionDenied  403: the credentials may not do this (also a PermissionDenied)
    │   ├── NotFound                the experiment, run or model does not exist
    │   └── InvalidRequest          MLflow rejected the request (e.g. a bad filter)
    ├── StoreError                  the application store could not be read or written
    ├── AuditError                  the audit log no longer matches its anchor: not advanced
    ├── PromotionError              a promotion request cannot go on as asked
    │   └── PromotionConflict       the alias moved since the request, or it was already decided
    ├── DriftError                  drift cannot be computed: schema, empty input, no reference
    ├── RetrainingError             a retraining cannot start or be cancelled as asked
    └── SeedError                   demo data could not be written

Every message says what failed, where, and what to do next.
"""

from __future__ import annotations


class FlightdeckError(Exception):
    """Base class: the message is meant to be shown to a person as is."""


class ConfigurationError(FlightdeckError):
    """A setting has a value Flightdeck cannot use."""


class PermissionDenied(FlightdeckError):
    """The current person may not do this; ``missing_role`` names the role it needs, if any."""

    def __init__(self, message: str, missing_role: str | None = None) -> None:
        super().__init__(message)
        self.missing_role = missing_role


class NotSignedIn(PermissionDenied):
    """The visitor has no identity Flightdeck can trust: not logged in, or the request did not
    come through the configured login proxy. Nothing may be shown or done."""


class TrackingError(FlightdeckError):
    """The MLflow tracking server could not do what was asked."""


class ServerUnreachable(TrackingError):
    """The tracking server did not answer: connection refused, timeout, DNS or TLS failure."""


class AuthenticationFailed(TrackingError):
    """The tracking server answered 401: credentials are missing or wrong."""


class ServerPermissionDenied(TrackingError, PermissionDenied):
    """The tracking server answered 403: the credentials may not perform this action."""

    def __init__(self, message: str) -> None:
        PermissionDenied.__init__(self, message)


class NotFound(TrackingError):
    """The requested experiment, run or model does not exist (or was deleted for good)."""


class InvalidRequest(TrackingError):
    """MLflow rejected the request's content, for example a filter it cannot parse."""


class StoreError(FlightdeckError):
    """The application store (promotion requests, audit log) could not be read or written."""


class AuditError(FlightdeckError):
    """The audit log no longer matches its anchor, so the anchor is left where it is."""


class PromotionError(FlightdeckError):
    """A promotion request cannot go on as asked (expired, a gate fails, own request, ...)."""


class PromotionConflict(PromotionError):
    """The alias moved since the request was made, or the request was already decided."""


class DriftError(FlightdeckError):
    """Drift cannot be computed: columns differ from the reference, the input is empty or of
    an unsupported type, or the model's reference sample is missing."""


class RetrainingError(FlightdeckError):
    """A retraining cannot go on as asked: one is already running for the model, the
    parameters are invalid, or the engine could not start or cancel the job."""


class SeedError(FlightdeckError):
    """Demo data could not be written."""
