"""``flightdeck.toml``: who holds which role, the promotion policy, and each model's gates.

The file is configuration, not a secret: credentials never go here. Example::

    [roles]                       # role -> emails, "group:<name>" or user names
    admin = ["ada@example.com"]   # OIDC: a verified email, the subject or a group; never the
    approver = ["ben@example.com", "group:ml-leads"]  # display name. Bare names ("ada") match
    operator = ["group:data-eng"] # development mode's users and proxy user names.
                                  # Everyone not listed is a viewer.

    [promotion]
    target = "alias"              # or "stage", for servers that still use legacy stages
    approvals_required = 1
    request_ttl_hours = 72
    webhook_url = ""              # Slack-compatible JSON on request, decision and execution

    [gates.default]
    primary_metric = "eval_f1"
    min_improvement = 0.0
    require_evaluation = true
    require_compatible_signature = true
    block_on_drift_alarm = true

    [gates.models."wine quality"] # any key of [gates.default], for one model
    primary_metric = "eval_accuracy"

    [monitoring]                  # drift status: amber at the warning share, red when the
    warning_share = 0.2           # last `consecutive` batches reach the alarm share
    alarm_share = 0.3
    consecutive = 2

    [monitoring.sources."wine quality"]  # the control loop monitors each new batch file once
    path = "/data/wine/*.parquet" # a folder, or a glob of CSV or Parquet files (name order)
    alias = "champion"            # compared with this alias's reference sample
    every_minutes = 60            # how often to look; 0: every pass

    [retraining.default]          # when the scheduler retrains a model (manual always works)
    schedule = ""                 # cron, e.g. "0 3 * * 1"; empty: off
    drift_red_batches = 3         # batches in a row at the alarm share; 0: off
    decay_threshold = 0.0         # primary-metric loss on labelled batches; 0: off
    cooldown_hours = 24           # no automatic retrain this soon after the last one
    max_per_week = 3              # automatic retrains per model in any 7 days
    promote_to = "champion"       # the alias a better version is proposed for
    auto_approve = false          # only for an alias other than the production one
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from services.core.conventions import CHAMPION, PRODUCTION_TARGETS
from services.core.errors import ConfigurationError

ROLES = ("viewer", "operator", "approver", "admin")
"""Every role, least to most trusted. Each role may do what the roles before it may."""
PROMOTION_TARGETS = ("alias", "stage")
GROUP_PREFIX = "group:"


@dataclass(frozen=True, slots=True)
class Gates:
    """The checks a promotion must pass before it can be approved."""

    primary_metric: str = "eval_f1"
    """The metric the challenger must improve on, as logged by its source run."""
    min_improvement: float = 0.0
    """Smallest acceptable improvement of the primary metric (in its own units)."""
    higher_is_better: bool | None = None
    """Direction of the primary metric; None infers it from the name (loss, error: lower)."""
    require_evaluation: bool = True
    """The challenger's source run must have logged the primary metric."""
    require_compatible_signature: bool = True
    """The challenger's input signature must accept what the champion's accepts."""
    block_on_drift_alarm: bool = True
    """An open drift alarm on the model blocks approval."""


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a model's drift turns amber or red (``[monitoring]`` in ``flightdeck.toml``)."""

    warning_share: float = 0.2
    """Share of drifted columns (0 to 1) at which the latest batch turns the status amber."""
    alarm_share: float = 0.3
    """Share of drifted columns at which batches count towards red."""
    consecutive: int = 2
    """How many latest batches in a row must reach ``alarm_share`` for red."""


@dataclass(frozen=True, slots=True)
class DriftSource:
    """Where the control loop finds a model's new batches (``[monitoring.sources."model"]``).

    Either ``path`` (files) or ``url`` and ``query`` (a database) is set.
    """

    path: str = ""
    """A folder, or a glob of CSV or Parquet files; a file is a batch, taken in name order."""
    alias: str = "champion"
    """Each batch is compared with the reference of the version this alias points at."""
    target: str = ""
    """The label column, compared when a batch has it; empty for none."""
    every_minutes: float = 0.0
    """How often to look for new batches; 0: on every pass."""
    url: str = ""
    """A SQLAlchemy URL; ``${NAME}`` in it is read from the environment (keep passwords there)."""
    query: str = ""
    """A select statement giving the scored rows; each closed window of its time is a batch."""
    time_column: str = ""
    """The column of ``query`` that says when a row happened (UTC)."""
    window_hours: float = 24.0
    """The length of a database batch, aligned on midnight UTC."""

    @property
    def is_sql(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True, slots=True)
class RetrainingPolicy:
    """When the scheduler retrains a model, what guards it, and where a better version goes."""

    schedule: str = ""
    """A cron expression (minute hour day month weekday, UTC); empty for no schedule."""
    drift_red_batches: int = 0
    """Retrain after this many monitoring batches in a row at the alarm share; 0 for never."""
    decay_threshold: float = 0.0
    """Retrain when a labelled batch's primary metric is this much worse than the champion's
    held-out score (in the metric's units); 0 for never."""
    cooldown_hours: float = 24.0
    """No automatic retrain within this many hours of the model's last retrain."""
    max_per_week: int = 3
    """At most this many automatic retrains of the model in any 7 days."""
    promote_to: str = CHAMPION
    """The alias a retrained version that passes the gates is proposed for."""
    auto_approve: bool = False
    """Approve that proposal without a person; allowed only when ``promote_to`` is not the
    production alias."""

    @property
    def automatic(self) -> bool:
        """True when any trigger besides manual is on."""
        return bool(self.schedule or self.drift_red_batches or self.decay_threshold)


@dataclass(frozen=True, slots=True)
class Governance:
    """Roles, the promotion policy and the gates, as configured."""

    role_members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Role name -> users, emails or ``group:<name>`` entries holding it."""
    target: str = "alias"
    """Promote by moving an ``alias`` (default) or a legacy ``stage``."""
    approvals_required: int = 1
    """Distinct approvers a request needs before it is executed."""
    request_ttl_hours: float = 72.0
    """A request not decided within this many hours expires."""
    webhook_url: str = ""
    """Where notifications are posted; empty for none."""
    default_gates: Gates = field(default_factory=Gates)
    """Gates for models without their own section."""
    model_gates: Mapping[str, Gates] = field(default_factory=dict)
    """Gates per registered model name."""
    drift: DriftThresholds = field(default_factory=DriftThresholds)
    """Drift status thresholds, for every model."""
    drift_sources: Mapping[str, DriftSource] = field(default_factory=dict)
    """Scheduled drift monitoring: each model's source of batches, by model name."""
    default_retraining: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    """Retraining policy for models without their own section."""
    model_retraining: Mapping[str, RetrainingPolicy] = field(default_factory=dict)
    """Retraining policy per registered model name."""

    def gates_for(self, model: str) -> Gates:
        """The gates that apply to ``model``."""
        return self.model_gates.get(model, self.default_gates)

    def retraining_for(self, model: str) -> RetrainingPolicy:
        """The retraining policy that applies to ``model``."""
        return self.model_retraining.get(model, self.default_retraining)

    @property
    def configured_users(self) -> tuple[str, ...]:
        """Every user named in the roles (not groups), in file order, for development mode."""
        names = (m for members in self.role_members.values() for m in members)
        return tuple(dict.fromkeys(n for n in names if not n.startswith(GROUP_PREFIX)))


def load_governance(path: Path) -> Governance:
    """Read ``flightdeck.toml``; a missing file gives the defaults (everyone a viewer).

    Raises:
        ConfigurationError: The file is not TOML, or a value has the wrong type or range.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Governance()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}. Fix the file.") from exc
    return parse_governance(data, str(path))


def parse_governance(data: Mapping[str, Any], where: str = "flightdeck.toml") -> Governance:
    """Build :class:`Governance` from parsed TOML, checking every value."""
    roles = _table(data, "roles", where)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown role {', '.join(unknown)} in [roles]; roles are {', '.join(ROLES)}."
        )
    role_members = {
        role: tuple(_strings(members, f"roles.{role}", where)) for role, members in roles.items()
    }
    promotion = _table(data, "promotion", where)
    target = str(promotion.get("target", "alias"))
    if target not in PROMOTION_TARGETS:
        raise ConfigurationError(f"{where}: promotion.target must be 'alias' or 'stage'.")
    approvals = promotion.get("approvals_required", 1)
    if not isinstance(approvals, int) or approvals < 1:
        raise ConfigurationError(f"{where}: promotion.approvals_required must be 1 or more.")
    ttl = promotion.get("request_ttl_hours", 72)
    if not isinstance(ttl, int | float) or ttl <= 0:
        raise ConfigurationError(f"{where}: promotion.request_ttl_hours must be positive.")
    gates = _table(data, "gates", where)
    default_gates = _gates(_table(gates, "default", where), Gates(), "gates.default", where)
    model_gates = {
        name: _gates(section, default_gates, f'gates.models."{name}"', where)
        for name, section in _table(gates, "models", where).items()
    }
    monitoring = _table(data, "monitoring", where)
    drift_sources = {
        name: _drift_source(section, f'monitoring.sources."{name}"', where)
        for name, section in _table(monitoring, "sources", where).items()
    }
    monitoring = {k: v for k, v in monitoring.items() if k != "sources"}
    unknown_keys = sorted(set(monitoring) - {f.name for f in fields(DriftThresholds)})
    if unknown_keys:
        raise ConfigurationError(f"{where}: unknown key {', '.join(unknown_keys)} in [monitoring].")
    defaults = DriftThresholds()
    warning = monitoring.get("warning_share", defaults.warning_share)
    alarm = monitoring.get("alarm_share", defaults.alarm_share)
    consecutive = monitoring.get("consecutive", defaults.consecutive)
    shares_ok = all(isinstance(v, int | float) and 0 <= v <= 1 for v in (warning, alarm))
    if not shares_ok or warning > alarm:
        raise ConfigurationError(
            f"{where}: monitoring.warning_share and alarm_share must be between 0 and 1, the "
            "warning no higher than the alarm."
        )
    if not isinstance(consecutive, int) or consecutive < 1:
        raise ConfigurationError(f"{where}: monitoring.consecutive must be 1 or more.")
    retraining = _table(data, "retraining", where)
    default_retraining = parse_policy(
        _table(retraining, "default", where), RetrainingPolicy(), "retraining.default", where
    )
    return Governance(
        default_retraining=default_retraining,
        model_retraining={
            name: parse_policy(section, default_retraining, f'retraining.models."{name}"', where)
            for name, section in _table(retraining, "models", where).items()
        },
        drift=DriftThresholds(float(warning), float(alarm), consecutive),
        drift_sources=drift_sources,
        role_members=role_members,
        target=target,
        approvals_required=approvals,
        request_ttl_hours=float(ttl),
        webhook_url=str(promotion.get("webhook_url", "")),
        default_gates=default_gates,
        model_gates=model_gates,
    )


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: [{key}] must be a table.")
    return value


def _strings(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {key} must be a list of strings.")
    return [v.strip() for v in value if v.strip()]


def _gates(section: Any, base: Gates, key: str, where: str) -> Gates:
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{where}: [{key}] must be a table.")
    known = {f.name: f for f in fields(Gates)}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown gate {', '.join(unknown)} in [{key}]; gates are {', '.join(known)}."
        )
    for name, value in section.items():
        expected = {"primary_metric": str, "min_improvement": int | float}.get(name, bool)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ConfigurationError(f"{where}: {key}.{name} has the wrong type.")
    values = dict(section)
    if "min_improvement" in values:
        values["min_improvement"] = float(values["min_improvement"])
    return replace(base, **values)


_POLICY_TYPES: Mapping[str, Any] = {
    "schedule": str,
    "drift_red_batches": int,
    "decay_threshold": int | float,
    "cooldown_hours": int | float,
    "max_per_week": int,
    "promote_to": str,
    "auto_approve": bool,
}


def _drift_source(section: Any, key: str, where: str) -> DriftSource:
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{where}: [{key}] must be a table.")
    unknown = sorted(set(section) - {f.name for f in fields(DriftSource)})
    if unknown:
        raise ConfigurationError(f"{where}: unknown setting {', '.join(unknown)} in [{key}].")
    texts = {
        name: section.get(name, "")
        for name in ("path", "alias", "target", "url", "query", "time_column")
    }
    if not all(isinstance(value, str) for value in texts.values()):
        raise ConfigurationError(f"{where}: {key}: {', '.join(texts)} must be text.")
    numbers = {name: section.get(name, default) for name, default in _SOURCE_NUMBERS.items()}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigurationError(f"{where}: {key}.{name} must be 0 or more.")
    files, database = texts["path"].strip(), texts["url"].strip()
    if bool(files) == bool(database):
        raise ConfigurationError(
            f"{where}: [{key}] needs either a path (a folder or a glob of files) or a url "
            "with a query and a time_column, not both."
        )
    if database and not (texts["query"].strip() and texts["time_column"].strip()):
        raise ConfigurationError(f"{where}: [{key}] has a url: it needs a query and a time_column.")
    if database and numbers["window_hours"] <= 0:
        raise ConfigurationError(f"{where}: {key}.window_hours must be more than 0.")
    return DriftSource(
        path=files,
        alias=texts["alias"] or "champion",
        target=texts["target"],
        every_minutes=float(numbers["every_minutes"]),
        url=database,
        query=texts["query"].strip(),
        time_column=texts["time_column"].strip(),
        window_hours=float(numbers["window_hours"]),
    )


_SOURCE_NUMBERS: Mapping[str, float] = {"every_minutes": 0.0, "window_hours": 24.0}


def parse_policy(
    section: Any, base: RetrainingPolicy, key: str, where: str = "flightdeck.toml"
) -> RetrainingPolicy:
    """``base`` with the keys of one ``[retraining...]`` table applied, each one checked.

    Raises:
        ConfigurationError: An unknown key, a wrong type, a negative number, an invalid cron
            expression, or auto-approval into the production alias.
    """
    from services.retraining.cron import CronSchedule  # cron is pure; imported late

    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{where}: [{key}] must be a table.")
    unknown = sorted(set(section) - set(_POLICY_TYPES))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown setting {', '.join(unknown)} in [{key}]; settings are "
            f"{', '.join(_POLICY_TYPES)}."
        )
    values: dict[str, Any] = {}
    for name, value in section.items():
        expected = _POLICY_TYPES[name]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ConfigurationError(f"{where}: {key}.{name} has the wrong type.")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigurationError(f"{where}: {key}.{name} cannot be negative.")
        values[name] = float(value) if expected == int | float else value
    policy = replace(base, **values)
    if policy.schedule.strip():
        CronSchedule.parse(policy.schedule, f"{where}: {key}.schedule")
    if not policy.promote_to.strip():
        raise ConfigurationError(f"{where}: {key}.promote_to must name an alias.")
    if policy.auto_approve and policy.promote_to in PRODUCTION_TARGETS:
        raise ConfigurationError(
            f"{where}: {key}.auto_approve may only be on for a target other than "
            f"{' or '.join(PRODUCTION_TARGETS)}: production always needs a person's approval."
        )
    return policy
