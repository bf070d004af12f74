"""Who is using Flightdeck, and what they may do. Identity fails closed.

The dashboard takes identities from exactly one source (:func:`identity_source`):

1. Streamlit's OIDC login (``st.login``), when ``[auth]`` is configured in the secrets;
2. a login proxy's header (``FLIGHTDECK_AUTH_HEADER``), trusted only on requests that also carry
   the proxy's shared secret (``FLIGHTDECK_AUTH_SECRET``) in a second header;
3. development mode (``FLIGHTDECK_DEV_MODE``, which ``make run`` turns on for the embedded demo):
   anyone picks any configured user. Only when the dashboard listens on loopback.

With none of them the dashboard serves no page. A visitor without a trusted identity (not
logged in, or a request that did not come through the proxy) sees only the login screen or an
explanation: :func:`resolve_identity` raises :class:`~services.core.errors.NotSignedIn`, and
:meth:`Identity.may` refuses everything, viewing included, to an unauthenticated identity
outside development mode.

Roles come from ``flightdeck.toml`` (:mod:`services.governance.config`); people not listed are
viewers.
From OIDC, roles match the verified email, the subject or the groups claim, never the display
name, which people can edit at most providers. Every write in ``services/`` calls
:func:`require` before it does anything.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from services.core.errors import NotSignedIn, PermissionDenied
from services.core.settings import Settings
from services.governance.config import GROUP_PREFIX, ROLES, Governance

VIEWER, OPERATOR, APPROVER, ADMIN = ROLES
OIDC, PROXY, DEVELOPMENT = "oidc", "proxy", "development"
"""Where an identity can come from (:attr:`IdentitySource.kind`, :attr:`Identity.source`)."""
POLICY_SOURCE = "policy"
"""The identity source of Flightdeck's own automation (the scheduler, retraining policies)."""
MIN_PROXY_SECRET_LENGTH = 16
"""Shorter proxy secrets are refused: they could be guessed."""
LOOPBACK_NAMES = ("localhost",)

HOW_TO_CONFIGURE = (
    "Configure one of these:\n\n"
    "- **OIDC login**: an `[auth]` section in `.streamlit/secrets.toml` with `redirect_uri`, "
    "`cookie_secret`, `client_id`, `client_secret` and `server_metadata_url`;\n"
    "- **a login proxy** (oauth2-proxy, nginx, ...): `FLIGHTDECK_AUTH_HEADER` (e.g. "
    "`X-Forwarded-Email`) and `FLIGHTDECK_AUTH_SECRET`, a shared secret the proxy sends in "
    "`FLIGHTDECK_AUTH_SECRET_HEADER` (default `X-Flightdeck-Proxy-Secret`);\n"
    "- **development mode**, on your own machine only: `FLIGHTDECK_DEV_MODE=1` with the "
    "dashboard listening on loopback (`--server.address 127.0.0.1`, as `make run` does).\n\n"
    "The README's *Who you are* section has examples."
)


class Action(Enum):
    """What a person can ask Flightdeck to do, with the least role that may do it."""

    VIEW = ("view models, runs and the audit log", VIEWER)
    REQUEST_PROMOTION = ("request a promotion", OPERATOR)
    TRIGGER_RETRAINING = ("trigger retraining", OPERATOR)
    CHECK_DRIFT = ("check data for drift and save the result", OPERATOR)
    DECIDE_PROMOTION = ("approve or reject a promotion", APPROVER)
    OVERRIDE_GATE = ("override a failing gate", ADMIN)
    EXECUTE_DIRECTLY = ("move an alias without approval (rollback)", ADMIN)
    ADMINISTER = ("administer Flightdeck", ADMIN)

    def __init__(self, label: str, role: str) -> None:
        self.label = label
        self.role = role


def person_key(name: str) -> str:
    """The one spelling of a person's name or email: stripped and case-folded, so "Ben" and
    "BEN" are one person wherever people are compared, counted or stored."""
    return name.strip().casefold()


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind the current session."""

    name: str
    """A user name or email in its :func:`person_key` form (set on construction)."""
    authenticated: bool
    """True when a login, a proxy or Flightdeck itself vouches for the name; False in
    development mode (anyone may claim any name)."""
    role: str = VIEWER
    """The most trusted role this person holds (one of
    :data:`~services.governance.config.ROLES`)."""
    source: str = DEVELOPMENT
    """Where the identity came from: ``oidc``, ``proxy`` or ``development`` (or a job's name)."""
    groups: tuple[str, ...] = ()
    """Groups the login provider reported; used for role mapping."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", person_key(self.name))

    def may(self, action: Action) -> bool:
        """True when this person's role allows ``action``. Outside development mode an
        unauthenticated identity may do nothing, not even view."""
        if not self.authenticated and self.source != DEVELOPMENT:
            return False
        return ROLES.index(self.role) >= ROLES.index(action.role)


@dataclass(frozen=True, slots=True)
class IdentitySource:
    """Where this dashboard takes identities from, or why it must serve no page at all."""

    kind: str | None
    """``oidc``, ``proxy`` or ``development``; None when no page may be served."""
    refusal: str = ""
    """What is wrong and what to configure, when ``kind`` is None (Markdown we wrote)."""


def is_loopback(address: str | None) -> bool:
    """True when a server bound to ``address`` is reachable from this machine only.

    Unset or empty means every interface (Streamlit's default), so it is not loopback.
    """
    if not address or not address.strip():
        return False
    host = address.strip().strip("[]")
    if host.casefold() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def identity_source(
    settings: Settings, *, oidc_configured: bool, listen_address: str | None
) -> IdentitySource:
    """Decide where identities come from; anything not explicitly safe serves nothing.

    Args:
        settings: The proxy header and secret, and whether development mode is enabled.
        oidc_configured: True when ``[auth]`` is in the secrets (``st.login`` works).
        listen_address: Streamlit's ``server.address``; None when unset (every interface).

    Returns:
        The source, or a refusal that says what to configure. OIDC wins over a proxy, and
        both win over development mode.
    """
    if oidc_configured:
        return IdentitySource(OIDC)
    if settings.auth_header or settings.auth_secret:
        problem = _proxy_configuration_problem(settings)
        if problem:
            return IdentitySource(None, f"{problem}\n\n{HOW_TO_CONFIGURE}")
        return IdentitySource(PROXY)
    if settings.dev_mode:
        if is_loopback(listen_address):
            return IdentitySource(DEVELOPMENT)
        where = f"`{listen_address}`" if listen_address else "every network interface"
        return IdentitySource(
            None,
            f"Development mode is enabled, but the dashboard listens on {where}, so anyone who "
            "can reach it could act as any user. Flightdeck serves no page. Serve it on "
            f"loopback only, or set up a login.\n\n{HOW_TO_CONFIGURE}",
        )
    return IdentitySource(
        None,
        "Flightdeck has no login configured, so it cannot know who you are and serves no "
        f"page.\n\n{HOW_TO_CONFIGURE}",
    )


def _proxy_configuration_problem(settings: Settings) -> str:
    if not settings.auth_header:
        return (
            "`FLIGHTDECK_AUTH_SECRET` is set but `FLIGHTDECK_AUTH_HEADER` is not: name the "
            "header in which the proxy sends the signed-in user."
        )
    if not settings.auth_secret:
        return (
            f"`FLIGHTDECK_AUTH_HEADER` ({settings.auth_header}) is set without "
            "`FLIGHTDECK_AUTH_SECRET`: anyone who reaches the dashboard could send that header "
            "and be anyone. Set a long random secret (in `.streamlit/secrets.toml` or the "
            f"environment) that the proxy sends in `{settings.auth_secret_header}`."
        )
    if len(settings.auth_secret) < MIN_PROXY_SECRET_LENGTH:
        return (
            f"`FLIGHTDECK_AUTH_SECRET` is shorter than {MIN_PROXY_SECRET_LENGTH} characters: "
            "use a long random one, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`."
        )
    if person_key(settings.auth_header) == person_key(settings.auth_secret_header):
        return "The proxy's identity header and secret header must be two different headers."
    return ""


def role_for(governance: Governance, names: Sequence[str], groups: Sequence[str] = ()) -> str:
    """The most trusted role held by any of ``names`` (user, email) or ``groups``."""
    keys = {person_key(n) for n in names if n.strip()}
    keys |= {person_key(f"{GROUP_PREFIX}{g.strip()}") for g in groups if g.strip()}
    held = [
        role
        for role, members in governance.role_members.items()
        if keys & {person_key(m) for m in members}
    ]
    return max(held, key=ROLES.index, default=VIEWER)


def resolve_identity(
    settings: Settings,
    governance: Governance,
    *,
    source: str,
    oidc_user: Mapping[str, object] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    dev_choice: str | None = None,
) -> Identity:
    """The current person, from the one source :func:`identity_source` chose.

    Args:
        settings: The proxy's header and secret, and the default development user.
        governance: Maps the person to a role.
        source: ``oidc``, ``proxy`` or ``development``.
        oidc_user: The logged-in user's claims (``st.user``); None when nobody is logged in.
        headers: The request's headers as (name, value) pairs, repeats kept.
        dev_choice: The user picked in development mode's sidebar.

    Raises:
        NotSignedIn: Nobody is logged in, or the request did not prove it came through the
            proxy; the message says what happened, never the header values.
    """
    if source == OIDC:
        return oidc_identity(governance, oidc_user)
    if source == PROXY:
        user = proxy_user(settings, headers)
        return Identity(user, True, role_for(governance, [user]), source=PROXY)
    if source == DEVELOPMENT:
        name = (dev_choice or settings.dev_user).strip() or settings.dev_user
        return Identity(name, authenticated=False, role=role_for(governance, [name]))
    raise NotSignedIn(f"Unknown identity source {source!r}: Flightdeck serves nothing.")


def oidc_identity(governance: Governance, claims: Mapping[str, object] | None) -> Identity:
    """The logged-in person from their OIDC claims.

    The name is the verified email, else the subject (``sub``). Roles match the verified email,
    the subject or the ``groups`` claim; the display ``name`` is ignored. An email counts as
    verified unless the provider sends ``email_verified`` other than true.

    Raises:
        NotSignedIn: Nobody is logged in, or the claims name nobody.
    """
    claims = claims or {}
    subject = _claim_text(claims.get("sub"))
    email = _claim_text(claims.get("email"))
    if "email_verified" in claims and not _is_true(claims["email_verified"]):
        email = ""  # the provider says the address is not proven to be theirs
    if not (email or subject):
        raise NotSignedIn("Log in to use Flightdeck.")
    raw_groups = claims.get("groups")
    groups = (
        tuple(g.strip() for g in raw_groups if isinstance(g, str) and g.strip())
        if isinstance(raw_groups, list | tuple)
        else ()
    )
    return Identity(
        name=email or subject,
        authenticated=True,
        role=role_for(governance, [email, subject], groups),
        source=OIDC,
        groups=groups,
    )


def proxy_user(settings: Settings, headers: Sequence[tuple[str, str]]) -> str:
    """The user the login proxy vouches for, after it proved itself with the shared secret.

    Raises:
        NotSignedIn: The secret header is missing, repeated or wrong (compared in constant
            time), or the identity header is missing, empty, repeated or holds a list.
    """
    if not settings.auth_header or not settings.auth_secret:
        raise NotSignedIn("The login proxy is not configured: Flightdeck serves nothing.")
    not_through_proxy = (
        "This request did not come through Flightdeck's login proxy ({why}), so Flightdeck "
        "shows nothing. Open Flightdeck at its usual address; if that is what you did, ask "
        "whoever runs it to check the proxy's configuration."
    )
    secrets = _values(headers, settings.auth_secret_header)
    if len(secrets) != 1:
        why = "its secret header is missing" if not secrets else "its secret header is repeated"
        raise NotSignedIn(not_through_proxy.format(why=why))
    if not hmac.compare_digest(secrets[0].encode(), settings.auth_secret.encode()):
        raise NotSignedIn(not_through_proxy.format(why="its secret is wrong"))
    users = _values(headers, settings.auth_header)
    if len(users) > 1:
        raise NotSignedIn(
            f"The request names its user more than once ({settings.auth_header} is repeated), "
            "so Flightdeck trusts none of them. The proxy must replace the header a client "
            "sends, not add to it."
        )
    user = users[0].strip() if users else ""
    if not user:
        raise NotSignedIn(
            f"The login proxy sent no user ({settings.auth_header} is missing or empty): sign "
            "in through the proxy."
        )
    if "," in user or not user.isprintable():
        raise NotSignedIn(
            f"{settings.auth_header} holds a list or unprintable characters, not one user, so "
            "Flightdeck trusts none of it."
        )
    return user


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    wanted = name.strip().casefold()
    return [value for key, value in headers if key.strip().casefold() == wanted]


def _claim_text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _is_true(value: object) -> bool:
    # Some providers (Amazon Cognito, for one) send booleans as strings.
    return value is True or (isinstance(value, str) and value.strip().casefold() == "true")


def role_phrase(role: str) -> str:
    """The role with its article, for messages: "an operator", "a viewer"."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def require(identity: Identity, action: Action) -> None:
    """Raise unless ``identity`` may do ``action``.

    Raises:
        NotSignedIn: Nobody trusted is signed in (outside development mode).
        PermissionDenied: The role is too weak; the message names the role needed.
    """
    if identity.may(action):
        return
    if not identity.authenticated and identity.source != DEVELOPMENT:
        raise NotSignedIn(f"Log in to {action.label}.", missing_role=action.role)
    raise PermissionDenied(
        f"{identity.name} is {role_phrase(identity.role)} and cannot {action.label}: that "
        f"needs the {action.role} role. An admin can grant it in flightdeck.toml ([roles]).",
        missing_role=action.role,
    )
