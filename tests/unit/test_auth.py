"""Who may do what: the role × action matrix, role mapping and where the identity comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.auth import ANONYMOUS, Action, Identity, require, resolve_identity, role_for
from services.errors import FlightdeckError, PermissionDenied
from services.governance import ROLES, Governance, parse_governance
from services.settings import Settings, load_settings

# Written out by hand on purpose: a change to a role's powers must change this table too.
ALLOWED: dict[str, set[Action]] = {
    "viewer": {Action.VIEW},
    "operator": {
        Action.VIEW,
        Action.REQUEST_PROMOTION,
        Action.TRIGGER_RETRAINING,
        Action.CHECK_DRIFT,
    },
    "approver": {
        Action.VIEW,
        Action.REQUEST_PROMOTION,
        Action.TRIGGER_RETRAINING,
        Action.CHECK_DRIFT,
        Action.DECIDE_PROMOTION,
    },
    "admin": {
        Action.VIEW,
        Action.REQUEST_PROMOTION,
        Action.TRIGGER_RETRAINING,
        Action.CHECK_DRIFT,
        Action.DECIDE_PROMOTION,
        Action.OVERRIDE_GATE,
        Action.EXECUTE_DIRECTLY,
        Action.ADMINISTER,
    },
}
LEAST_ROLE = {
    Action.VIEW: "viewer",
    Action.REQUEST_PROMOTION: "operator",
    Action.TRIGGER_RETRAINING: "operator",
    Action.CHECK_DRIFT: "operator",
    Action.DECIDE_PROMOTION: "approver",
    Action.OVERRIDE_GATE: "admin",
    Action.EXECUTE_DIRECTLY: "admin",
    Action.ADMINISTER: "admin",
}

GOVERNANCE = parse_governance(
    {
        "roles": {
            "admin": ["ada"],
            "approver": ["Ben@Example.com", "group:ml-leads"],
            "operator": ["omar", "ada", "group:Data-Eng"],
            "viewer": ["vic"],
        }
    }
)


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", **env},
        secrets_path=tmp_path / "none.toml",
    )


def test_the_matrix_covers_every_role_and_every_action() -> None:
    assert set(ALLOWED) == set(ROLES)
    assert set(LEAST_ROLE) == set(Action)
    assert ALLOWED["admin"] == set(Action)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(Action))
def test_require_passes_exactly_for_the_roles_allowed(role: str, action: Action) -> None:
    identity = Identity("someone", authenticated=True, role=role)
    if action in ALLOWED[role]:
        require(identity, action)
        assert identity.may(action)
    else:
        with pytest.raises(PermissionDenied) as caught:
            require(identity, action)
        assert caught.value.missing_role == LEAST_ROLE[action]
        assert not identity.may(action)


def test_permission_denied_says_who_what_and_which_role_is_needed() -> None:
    with pytest.raises(PermissionDenied) as caught:
        require(Identity("omar", True, "operator"), Action.DECIDE_PROMOTION)
    message = str(caught.value)
    assert message.startswith("omar is a")
    assert "operator" in message
    assert "approve or reject a promotion" in message
    assert "needs the approver role" in message
    assert "flightdeck.toml" in message
    assert isinstance(caught.value, FlightdeckError)  # pages catch only the tree


def test_role_for_user_name() -> None:
    assert role_for(GOVERNANCE, ["omar"]) == "operator"
    assert role_for(GOVERNANCE, ["vic"]) == "viewer"


def test_role_for_email_ignores_case_and_whitespace() -> None:
    assert role_for(GOVERNANCE, [" ben@example.COM "]) == "approver"


def test_role_for_group_membership() -> None:
    assert role_for(GOVERNANCE, ["nobody"], groups=["ml-leads"]) == "approver"
    assert role_for(GOVERNANCE, ["nobody"], groups=["data-eng"]) == "operator"


def test_a_group_name_is_not_a_user_name() -> None:
    assert role_for(GOVERNANCE, ["ml-leads"]) == "viewer"
    assert role_for(GOVERNANCE, ["group:ml-leads"], groups=[]) == "approver"  # literal entry


def test_unknown_people_and_empty_names_are_viewers() -> None:
    assert role_for(GOVERNANCE, ["mallory"]) == "viewer"
    assert role_for(GOVERNANCE, ["", "  "]) == "viewer"
    assert role_for(Governance(), ["ada"]) == "viewer"


def test_the_most_trusted_of_several_roles_wins() -> None:
    assert role_for(GOVERNANCE, ["ada"]) == "admin"  # listed as operator and admin
    assert role_for(GOVERNANCE, ["omar"], groups=["ml-leads"]) == "approver"
    assert role_for(GOVERNANCE, ["vic", "ben@example.com"], groups=["data-eng"]) == "approver"


def test_oidc_claims_give_an_authenticated_identity_with_groups(tmp_path: Path) -> None:
    identity = resolve_identity(
        settings(tmp_path),
        GOVERNANCE,
        oidc_configured=True,
        oidc_user={"email": "carol@example.com", "name": "Carol", "groups": ["ml-leads"]},
    )
    assert identity == Identity(
        "carol@example.com", True, "approver", source="oidc", groups=("ml-leads",)
    )


def test_oidc_name_is_used_when_there_is_no_email(tmp_path: Path) -> None:
    identity = resolve_identity(
        settings(tmp_path), GOVERNANCE, oidc_configured=True, oidc_user={"name": "omar"}
    )
    assert (identity.name, identity.role, identity.authenticated) == ("omar", "operator", True)


def test_oidc_groups_that_are_not_a_list_are_ignored(tmp_path: Path) -> None:
    identity = resolve_identity(
        settings(tmp_path),
        GOVERNANCE,
        oidc_configured=True,
        oidc_user={"email": "x@example.com", "groups": "ml-leads"},
    )
    assert identity.groups == ()
    assert identity.role == "viewer"


@pytest.mark.parametrize("claims", [None, {}, {"email": "", "name": ""}])
def test_oidc_configured_but_not_logged_in_is_an_anonymous_viewer(
    tmp_path: Path, claims: dict[str, object] | None
) -> None:
    identity = resolve_identity(
        settings(tmp_path, FLIGHTDECK_DEV_USER="ada"),
        GOVERNANCE,
        oidc_configured=True,
        oidc_user=claims,
        dev_choice="ada",  # development mode's choice must not leak into an OIDC setup
    )
    assert identity == Identity(ANONYMOUS, False, "viewer", source="oidc")


def test_proxy_header_is_read_case_insensitively(tmp_path: Path) -> None:
    config = settings(tmp_path, FLIGHTDECK_AUTH_HEADER="X-Forwarded-Email")
    identity = resolve_identity(
        config, GOVERNANCE, headers={"x-forwarded-email": " Ben@Example.com "}, dev_choice="ada"
    )
    assert identity == Identity("Ben@Example.com", True, "approver", source="proxy")


@pytest.mark.parametrize("headers", [None, {}, {"X-Forwarded-Email": "  "}, {"X-User": "ada"}])
def test_proxy_without_its_header_is_an_anonymous_viewer(
    tmp_path: Path, headers: dict[str, str] | None
) -> None:
    config = settings(tmp_path, FLIGHTDECK_AUTH_HEADER="X-Forwarded-Email")
    identity = resolve_identity(config, GOVERNANCE, headers=headers, dev_choice="ada")
    assert identity == Identity(ANONYMOUS, False, "viewer", source="proxy")


def test_development_mode_uses_the_chosen_user_unauthenticated(tmp_path: Path) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_USER="vic")
    identity = resolve_identity(
        config, GOVERNANCE, headers={"X-Forwarded-Email": "ada"}, dev_choice="ada"
    )
    assert identity == Identity("ada", False, "admin", source="development")


@pytest.mark.parametrize("choice", [None, "", "   "])
def test_development_mode_falls_back_to_the_dev_user(tmp_path: Path, choice: str | None) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_USER="omar")
    identity = resolve_identity(config, GOVERNANCE, dev_choice=choice)
    assert identity == Identity("omar", False, "operator", source="development")
