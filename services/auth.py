"""Who is using Flightdeck, and what they may do.

The identity comes from, in this order:

1. Streamlit's OIDC login (``st.user``), when ``[auth]`` is configured in the secrets;
2. a trusted reverse proxy's header (``FLIGHTDECK_AUTH_HEADER``, off unless set);
3. development mode (the default for ``make run``): anyone may pick any configured user.

Roles come from ``flightdeck.toml`` (:mod:`services.governance`); people not listed are viewers.
Every write in ``services/`` calls :func:`require` before it does anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from services.errors import PermissionDenied
from services.governance import GROUP_PREFIX, ROLES, Governance
from services.settings import Settings

VIEWER, OPERATOR, APPROVER, ADMIN = ROLES
ANONYMOUS = "anonymous"
"""The name of a visitor a configured login or proxy did not identify."""
POLICY_SOURCE = "policy"
"""The identity source of Flightdeck's own automation (the scheduler, retraining policies)."""


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
    """A user name or email in its :func:`person_key` form (set on construction); untrusted."""
    authenticated: bool
    """False in development mode (anyone may claim any name) and for anonymous visitors."""
    role: str = VIEWER
    """The most trusted role this person holds (one of :data:`~services.governance.ROLES`)."""
    source: str = "development"
    """Where the identity came from: ``oidc``, ``proxy`` or ``development``."""
    groups: tuple[str, ...] = ()
    """Groups the login provider reported; used for role mapping."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", person_key(self.name))

    def may(self, action: Action) -> bool:
        """True when this person's role allows ``action``."""
        return ROLES.index(self.role) >= ROLES.index(action.role)


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
    oidc_user: Mapping[str, object] | None = None,
    oidc_configured: bool = False,
    headers: Mapping[str, str] | None = None,
    dev_choice: str | None = None,
) -> Identity:
    """The current person, from the first configured source (see the module docstring).

    Args:
        settings: Says whether a proxy header is trusted, and the default development user.
        governance: Maps the person to a role.
        oidc_user: The logged-in user's claims (``st.user``) when OIDC is configured.
        oidc_configured: True when ``[auth]`` is set up; a visitor not logged in is anonymous.
        headers: The request's headers, for the proxy header.
        dev_choice: The user picked in development mode's sidebar.
    """
    if oidc_configured:
        claims = oidc_user or {}
        email, name = str(claims.get("email") or ""), str(claims.get("name") or "")
        if not (email or name):
            return Identity(ANONYMOUS, authenticated=False, source="oidc")
        raw_groups = claims.get("groups")
        groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        return Identity(
            name=email or name,
            authenticated=True,
            role=role_for(governance, [email, name], groups),
            source="oidc",
            groups=groups,
        )
    if settings.auth_header:
        lowered = {k.casefold(): v for k, v in (headers or {}).items()}
        user = lowered.get(settings.auth_header.casefold(), "").strip()
        if not user:
            return Identity(ANONYMOUS, authenticated=False, source="proxy")
        return Identity(user, True, role_for(governance, [user]), source="proxy")
    name = (dev_choice or settings.dev_user).strip() or settings.dev_user
    return Identity(name, authenticated=False, role=role_for(governance, [name]))


def role_phrase(role: str) -> str:
    """The role with its article, for messages: "an operator", "a viewer"."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def require(identity: Identity, action: Action) -> None:
    """Raise unless ``identity`` may do ``action``.

    Raises:
        PermissionDenied: The role is too weak; the message names the role needed.
    """
    if not identity.may(action):
        raise PermissionDenied(
            f"{identity.name} is {role_phrase(identity.role)} and cannot {action.label}: that "
            f"needs the {action.role} role. An admin can grant it in flightdeck.toml ([roles]).",
            missing_role=action.role,
        )
