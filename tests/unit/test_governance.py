"""flightdeck.toml: defaults, validation with readable messages, and gate inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.errors import ConfigurationError
from services.governance.config import (
    DriftSource,
    DriftThresholds,
    Gates,
    Governance,
    load_governance,
    parse_governance,
)

EXAMPLE = """
[roles]
admin = ["ada"]
approver = ["ben", "group:ml-leads", "Ben@Example.com"]
operator = ["omar", "ben"]

[promotion]
target = "stage"
approvals_required = 2
request_ttl_hours = 12.5
webhook_url = "https://hooks.example.com/x"

[gates.default]
primary_metric = "eval_accuracy"
min_improvement = 0.01
block_on_drift_alarm = false

[gates.models."wine quality"]
primary_metric = "eval_rmse"
min_improvement = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flightdeck.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_gives_defaults_where_everyone_is_a_viewer(tmp_path: Path) -> None:
    governance = load_governance(tmp_path / "absent.toml")
    assert governance == Governance()
    assert governance.role_members == {}
    assert governance.target == "alias"
    assert governance.approvals_required == 1
    assert governance.request_ttl_hours == 72.0
    assert governance.gates_for("any model") == Gates()


def test_example_file_is_read_in_full(tmp_path: Path) -> None:
    governance = load_governance(write(tmp_path, EXAMPLE))
    assert governance.role_members["approver"] == ("ben", "group:ml-leads", "Ben@Example.com")
    assert governance.target == "stage"
    assert governance.approvals_required == 2
    assert governance.request_ttl_hours == 12.5
    assert governance.webhook_url == "https://hooks.example.com/x"
    assert governance.default_gates.primary_metric == "eval_accuracy"
    assert governance.default_gates.min_improvement == 0.01
    assert governance.default_gates.block_on_drift_alarm is False


def test_model_gates_inherit_the_defaults_not_the_built_in_gates(tmp_path: Path) -> None:
    governance = load_governance(write(tmp_path, EXAMPLE))
    wine = governance.gates_for("wine quality")
    assert wine.primary_metric == "eval_rmse"
    assert wine.min_improvement == 1.0 and isinstance(wine.min_improvement, float)
    # Not set for the model: comes from [gates.default], which differs from Gates().
    assert wine.block_on_drift_alarm is False
    assert wine.require_evaluation is True
    assert governance.gates_for("another model") == governance.default_gates


def test_configured_users_lists_people_not_groups_once_in_file_order(tmp_path: Path) -> None:
    governance = load_governance(write(tmp_path, EXAMPLE))
    assert governance.configured_users == ("ada", "ben", "Ben@Example.com", "omar")


def test_blank_members_are_dropped_and_names_trimmed() -> None:
    governance = parse_governance({"roles": {"operator": [" omar ", "", "  "]}})
    assert governance.role_members["operator"] == ("omar",)


def test_unknown_role_is_named_with_the_valid_roles() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_governance({"roles": {"superuser": ["eve"]}}, "my.toml")
    message = str(caught.value)
    assert "my.toml" in message
    assert "unknown role superuser" in message
    assert "viewer, operator, approver, admin" in message


def test_unknown_gate_key_is_named_with_its_section() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown gate min_improvment") as caught:
        parse_governance({"gates": {"models": {"m": {"min_improvment": 0.1}}}})
    assert 'gates.models."m"' in str(caught.value)
    assert "primary_metric" in str(caught.value)  # lists the valid gates


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"roles": ["ada"]}, "[roles] must be a table"),
        ({"roles": {"admin": "ada"}}, "roles.admin must be a list of strings"),
        ({"roles": {"admin": ["ada", 3]}}, "roles.admin must be a list of strings"),
        ({"promotion": {"target": "tag"}}, "promotion.target must be 'alias' or 'stage'"),
        ({"promotion": {"approvals_required": 0}}, "approvals_required must be 1 or more"),
        ({"promotion": {"approvals_required": "2"}}, "approvals_required must be 1 or more"),
        ({"promotion": {"approvals_required": 1.5}}, "approvals_required must be 1 or more"),
        ({"promotion": {"request_ttl_hours": 0}}, "request_ttl_hours must be positive"),
        ({"promotion": {"request_ttl_hours": "72"}}, "request_ttl_hours must be positive"),
        ({"gates": {"default": {"primary_metric": 1}}}, "primary_metric has the wrong type"),
        ({"gates": {"default": {"min_improvement": "0.1"}}}, "min_improvement has the wrong"),
        ({"gates": {"default": {"min_improvement": True}}}, "min_improvement has the wrong"),
        ({"gates": {"default": {"require_evaluation": "yes"}}}, "require_evaluation has the"),
        ({"gates": {"default": {"block_on_drift_alarm": 1}}}, "block_on_drift_alarm has the"),
        ({"gates": {"models": {"m": "eval_f1"}}}, 'gates.models."m"] must be a table'),
        ({"gates": "strict"}, "[gates] must be a table"),
    ],
)
def test_wrong_types_and_ranges_are_rejected_with_the_key(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_governance(data)
    assert fragment in str(caught.value)


def test_invalid_toml_names_the_file_and_says_to_fix_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[roles\nadmin = ['ada']\n")
    with pytest.raises(ConfigurationError) as caught:
        load_governance(path)
    message = str(caught.value)
    assert str(path) in message
    assert "is not valid TOML" in message
    assert "Fix the file" in message


def test_non_utf8_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "flightdeck.toml"
    path.write_bytes(b"[roles]\nadmin = ['\xff\xfe']\n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        load_governance(path)


def test_the_projects_own_flightdeck_toml_is_valid() -> None:
    governance = load_governance(Path(__file__).resolve().parents[2] / "flightdeck.toml")
    assert "ada" in governance.role_members["admin"]
    assert governance.gates_for("diabetes-regressor").primary_metric == "eval_rmse"


def test_drift_thresholds_default_and_are_checked() -> None:
    assert parse_governance({}).drift == DriftThresholds(0.2, 0.3, 2)
    custom = parse_governance({"monitoring": {"alarm_share": 0.5, "consecutive": 3}}).drift
    assert (custom.warning_share, custom.alarm_share, custom.consecutive) == (0.2, 0.5, 3)
    for bad in ({"warning_share": 0.6, "alarm_share": 0.5}, {"consecutive": 0}, {"alarm": 1}):
        with pytest.raises(ConfigurationError, match="monitoring"):
            parse_governance({"monitoring": bad})


def test_drift_sources_are_read_with_defaults_and_checked() -> None:
    sources = parse_governance(
        {"monitoring": {"sources": {'it\'s "x"': {"path": "/data/*.csv", "every_minutes": 5}}}}
    ).drift_sources
    assert sources == {'it\'s "x"': DriftSource("/data/*.csv", "champion", "", 5)}
    shipped = load_governance(Path(__file__).resolve().parents[2] / "flightdeck.toml")
    assert shipped.drift_sources["wine-classifier"].path == "{data_dir}/traffic/wine-classifier"
    for bad in ({"path": ""}, {"path": "x", "every_minutes": -1}, {"path": "x", "folder": "y"}):
        with pytest.raises(ConfigurationError, match=r"monitoring\.sources"):
            parse_governance({"monitoring": {"sources": {"m": bad}}})
