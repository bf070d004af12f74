"""Flightdeck's exception tree: the only errors pages need to catch.

    FlightdeckError                 anything Flightdeck can explain to a person
    ├── ConfigurationError          a setting is invalid (wrong URI scheme, bad number)
    ├── TrackingError               the MLflow tracking server could not answer as asked
    │   ├── ServerUnreachable       no answer at all: refused, timed out, DNS, TLS
    │   ├── AuthenticationFailed    401: missing or wrong credentials
    │   ├── PermissionDenied        403: the credentials may not do this
    │   ├── NotFound                the experiment, run or model does not exist
    │   └── InvalidRequest          MLflow rejected the request (e.g. a bad filter)
    └── SeedError                   demo data could not be written

Every message says what failed, where, and what to do next.
"""

from __future__ import annotations


class FlightdeckError(Exception):
    """Base class: the message is meant to be shown to a person as is."""


class ConfigurationError(FlightdeckError):
    """A setting has a value Flightdeck cannot use."""


class TrackingError(FlightdeckError):
    """The MLflow tracking server could not do what was asked."""


class ServerUnreachable(TrackingError):
    """The tracking server did not answer: connection refused, timeout, DNS or TLS failure."""


class AuthenticationFailed(TrackingError):
    """The tracking server answered 401: credentials are missing or wrong."""


class PermissionDenied(TrackingError):
    """The tracking server answered 403: the credentials may not perform this action."""


class NotFound(TrackingError):
    """The requested experiment, run or model does not exist (or was deleted for good)."""


class InvalidRequest(TrackingError):
    """MLflow rejected the request's content, for example a filter it cannot parse."""


class SeedError(FlightdeckError):
    """Demo data could not be written."""
