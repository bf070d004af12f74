"""Who may do what: the role × action matrix, role mapping and where the identity comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.errors import FlightdeckError, NotSignedIn, PermissionDenied
from services.core.settings import Settings, load_settings
from services.governance.auth import (
    DEVELOPMENT,
    OIDC,
    PROXY,
    Action,
    Identity,
    identity_source,
    is_loopback,
    require,
    resolve_identity,
    role_for,
)
from services.governance.config import ROLES, Governance, parse_governance

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


SECRET = "s3cret-shared-with-the-proxy"
PROXY_ENV = {"FLIGHTDECK_AUTH_HEADER": "X-Forwarded-Email", "FLIGHTDECK_AUTH_SECRET": SECRET}
PROOF = ("X-Flightdeck-Proxy-Secret", SECRET)


# --- Where identities come from: anything not explicitly safe serves no page ---


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_loopback(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address", [None, "", "  ", "0.0.0.0", "::", "192.0.2.2", "10.0.0.1", "example.com"]
)
def test_unset_wildcard_and_other_addresses_are_not_loopback(address: str | None) -> None:
    assert not is_loopback(address)


def test_development_mode_needs_the_setting_and_loopback(tmp_path: Path) -> None:
    enabled = settings(tmp_path, FLIGHTDECK_DEV_MODE="1")
    assert identity_source(enabled, oidc_configured=False, listen_address="127.0.0.1").kind == (
        DEVELOPMENT
    )


@pytest.mark.parametrize("address", [None, "0.0.0.0", "192.0.2.2"])
def test_development_mode_off_loopback_serves_nothing(tmp_path: Path, address: str | None) -> None:
    source = identity_source(
        settings(tmp_path, FLIGHTDECK_DEV_MODE="1"), oidc_configured=False, listen_address=address
    )
    assert source.kind is None
    assert "Development mode is enabled, but the dashboard listens on" in source.refusal
    assert ("every network interface" if address is None else f"`{address}`") in source.refusal
    assert "[auth]" in source.refusal and "FLIGHTDECK_AUTH_HEADER" in source.refusal


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", None])
def test_no_login_no_proxy_and_no_development_mode_serves_nothing(
    tmp_path: Path, address: str | None
) -> None:
    source = identity_source(settings(tmp_path), oidc_configured=False, listen_address=address)
    assert source.kind is None
    assert "no login configured" in source.refusal
    for how in (
        "[auth]",
        "FLIGHTDECK_AUTH_HEADER",
        "FLIGHTDECK_AUTH_SECRET",
        "FLIGHTDECK_DEV_MODE",
    ):
        assert how in source.refusal


@pytest.mark.parametrize("address", ["0.0.0.0", None])
def test_oidc_wins_over_a_proxy_and_development_mode(tmp_path: Path, address: str | None) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_MODE="1", **PROXY_ENV)
    assert identity_source(config, oidc_configured=True, listen_address=address).kind == OIDC


def test_a_proxy_with_its_secret_wins_over_development_mode_on_any_address(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_MODE="1", **PROXY_ENV)
    assert identity_source(config, oidc_configured=False, listen_address="0.0.0.0").kind == PROXY


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLIGHTDECK_AUTH_HEADER": "X-Forwarded-Email"}, "without `FLIGHTDECK_AUTH_SECRET`"),
        ({"FLIGHTDECK_AUTH_SECRET": SECRET}, "`FLIGHTDECK_AUTH_HEADER` is not"),
        ({**PROXY_ENV, "FLIGHTDECK_AUTH_SECRET": "short"}, "shorter than 16 characters"),
        (
            {**PROXY_ENV, "FLIGHTDECK_AUTH_SECRET_HEADER": "x-forwarded-EMAIL"},
            "two different headers",
        ),
    ],
)
def test_an_incomplete_proxy_configuration_serves_nothing_even_in_development_mode(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_MODE="1", **env)
    source = identity_source(config, oidc_configured=False, listen_address="127.0.0.1")
    assert source.kind is None
    assert says in source.refusal


def test_the_proxy_secret_never_appears_in_settings_repr(tmp_path: Path) -> None:
    assert SECRET not in repr(settings(tmp_path, **PROXY_ENV))


# --- OIDC: roles from the verified email, the subject or groups, never the display name ---


def oidc(claims: dict[str, object] | None, tmp_path: Path) -> Identity:
    return resolve_identity(settings(tmp_path), GOVERNANCE, source=OIDC, oidc_user=claims)


def test_oidc_verified_email_names_the_person_and_groups_map_roles(tmp_path: Path) -> None:
    identity = oidc(
        {
            "sub": "u-1",
            "email": "Carol@Example.com",
            "email_verified": True,
            "name": "Carol",
            "groups": ["ml-leads"],
        },
        tmp_path,
    )
    assert identity == Identity(
        "carol@example.com", True, "approver", source="oidc", groups=("ml-leads",)
    )


def test_oidc_email_counts_when_the_provider_does_not_say_whether_it_is_verified(
    tmp_path: Path,
) -> None:
    identity = oidc({"sub": "u-2", "email": "ben@example.com"}, tmp_path)
    assert (identity.name, identity.role) == ("ben@example.com", "approver")


@pytest.mark.parametrize("verified", [False, "false", None, 0, "no"])
def test_oidc_unverified_email_is_ignored_the_subject_names_the_person(
    tmp_path: Path, verified: object
) -> None:
    identity = oidc(
        {"sub": "u-3", "email": "ben@example.com", "email_verified": verified}, tmp_path
    )
    assert (identity.name, identity.role, identity.authenticated) == ("u-3", "viewer", True)


def test_oidc_verified_email_sent_as_a_string_counts(tmp_path: Path) -> None:
    identity = oidc({"sub": "u-4", "email": "ben@example.com", "email_verified": "true"}, tmp_path)
    assert identity.role == "approver"


@pytest.mark.parametrize("name_claim", ["name", "preferred_username", "nickname", "given_name"])
def test_oidc_display_names_never_grant_a_role(tmp_path: Path, name_claim: str) -> None:
    identity = oidc({"sub": "u-5", name_claim: "ada"}, tmp_path)
    assert (identity.name, identity.role) == ("u-5", "viewer")
    identity = oidc({"sub": "u-6", name_claim: "ben@example.com"}, tmp_path)
    assert identity.role == "viewer"


def test_oidc_subject_maps_a_role(tmp_path: Path) -> None:
    assert oidc({"sub": "omar"}, tmp_path).role == "operator"


def test_oidc_groups_that_are_not_a_list_of_strings_are_ignored(tmp_path: Path) -> None:
    assert oidc({"sub": "x", "groups": "ml-leads"}, tmp_path).role == "viewer"
    identity = oidc({"sub": "x", "groups": [["ml-leads"], 3, " ml-leads "]}, tmp_path)
    assert (identity.groups, identity.role) == (("ml-leads",), "approver")


@pytest.mark.parametrize(
    "claims",
    [None, {}, {"email": "", "sub": ""}, {"name": "ada"}, {"email": "a@x.io", "email_verified": 0}],
)
def test_oidc_without_a_login_is_not_signed_in(
    tmp_path: Path, claims: dict[str, object] | None
) -> None:
    with pytest.raises(NotSignedIn, match="Log in"):
        resolve_identity(
            settings(tmp_path, FLIGHTDECK_DEV_USER="ada"),
            GOVERNANCE,
            source=OIDC,
            oidc_user=claims,
            dev_choice="ada",  # development mode's choice must not leak into an OIDC setup
        )


# --- Proxy: the header counts only with the proxy's secret, once ---


def proxy(headers: list[tuple[str, str]], tmp_path: Path) -> Identity:
    return resolve_identity(
        settings(tmp_path, **PROXY_ENV), GOVERNANCE, source=PROXY, headers=headers, dev_choice="ada"
    )


def test_proxy_header_with_the_secret_names_the_person_case_insensitively(tmp_path: Path) -> None:
    identity = proxy([("x-forwarded-email", " Ben@Example.com "), PROOF], tmp_path)
    assert identity == Identity("ben@example.com", True, "approver", source="proxy")


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([("X-Forwarded-Email", "ada")], "secret header is missing"),
        ([("X-Forwarded-Email", "ada"), ("X-Flightdeck-Proxy-Secret", "")], "secret is wrong"),
        (
            [("X-Forwarded-Email", "ada"), ("X-Flightdeck-Proxy-Secret", SECRET + "x")],
            "secret is wrong",
        ),
        (
            [("X-Forwarded-Email", "ada"), ("X-Flightdeck-Proxy-Secret", SECRET[:-1])],
            "secret is wrong",
        ),
        ([("X-Forwarded-Email", "ada"), PROOF, PROOF], "secret header is repeated"),
        ([("X-Forwarded-Email", "ada"), ("X-Secret", SECRET)], "secret header is missing"),
    ],
)
def test_proxy_header_without_the_right_secret_is_refused(
    tmp_path: Path, headers: list[tuple[str, str]], says: str
) -> None:
    with pytest.raises(NotSignedIn, match=says) as caught:
        proxy(headers, tmp_path)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-Email", "vic"), ("X-Forwarded-Email", "ada"), PROOF],
        [("X-Forwarded-Email", "ada"), ("x-forwarded-email", "ada"), PROOF],
    ],
)
def test_proxy_identity_header_sent_twice_is_refused(
    tmp_path: Path, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(NotSignedIn, match="more than once"):
        proxy(headers, tmp_path)


@pytest.mark.parametrize("value", ["vic, ada", "ada\x00", "ada\nX-Evil: 1"])
def test_proxy_identity_header_holding_a_list_or_control_characters_is_refused(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(NotSignedIn, match="not one user"):
        proxy([("X-Forwarded-Email", value), PROOF], tmp_path)


@pytest.mark.parametrize("headers", [[PROOF], [("X-Forwarded-Email", "  "), PROOF]])
def test_proxy_without_a_user_is_not_signed_in(
    tmp_path: Path, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(NotSignedIn, match="sent no user"):
        proxy(headers, tmp_path)


# --- Development mode, and what an unauthenticated identity may do ---


def test_development_mode_uses_the_chosen_user_unauthenticated(tmp_path: Path) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_USER="vic", **PROXY_ENV)
    identity = resolve_identity(
        config,
        GOVERNANCE,
        source=DEVELOPMENT,
        headers=[("X-Forwarded-Email", "omar"), PROOF],
        dev_choice="ada",
    )
    assert identity == Identity("ada", False, "admin", source="development")
    assert identity.may(Action.ADMINISTER)


@pytest.mark.parametrize("choice", [None, "", "   "])
def test_development_mode_falls_back_to_the_dev_user(tmp_path: Path, choice: str | None) -> None:
    config = settings(tmp_path, FLIGHTDECK_DEV_USER="omar")
    identity = resolve_identity(config, GOVERNANCE, source=DEVELOPMENT, dev_choice=choice)
    assert identity == Identity("omar", False, "operator", source="development")


@pytest.mark.parametrize("source", [OIDC, PROXY, "something-else"])
@pytest.mark.parametrize("action", list(Action))
def test_an_unauthenticated_identity_outside_development_mode_may_do_nothing(
    source: str, action: Action
) -> None:
    nobody = Identity("ada", authenticated=False, role="admin", source=source)
    assert not nobody.may(action)
    with pytest.raises(NotSignedIn, match="Log in"):
        require(nobody, action)


def test_an_unknown_source_resolves_no_identity(tmp_path: Path) -> None:
    with pytest.raises(NotSignedIn):
        resolve_identity(settings(tmp_path), GOVERNANCE, source="", dev_choice="ada")
