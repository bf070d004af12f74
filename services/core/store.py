"""The application store: what MLflow cannot hold safely (promotion requests, decisions, audit).

SQLAlchemy Core over any database URL; a SQLite file in the data folder by default, PostgreSQL
in production. The schema is versioned with Alembic (``services/migrations``) and brought up
to date when the store is opened.

Every write runs in :meth:`Store.write`, which serialises writers (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a table lock on the audit log), so that reading the last audit hash and appending
the next event, or checking a request's status and changing it, cannot interleave.

A store carries what the audit log needs on every connection it hands out (in
``connection.info``): the audit key, when one is configured, and the redactor that keeps
credentials out of audit details. So every ``audit.append(connection, ...)`` chains with the
key and redacts, without module state and without each caller passing them. After a write that
appended events commits, the store calls its ``after_audit_commit`` hook (the audit anchor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from services.core.errors import StoreError
from services.core.redaction import NO_SECRETS, Redactor

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for another to finish before failing."""

AUDIT_KEY_INFO = "flightdeck.audit_key"
"""``connection.info`` key: the audit key (bytes), or None for plain SHA-256."""
REDACTOR_INFO = "flightdeck.redactor"
"""``connection.info`` key: the :class:`~services.core.redaction.Redactor` for audit details."""
AUDIT_APPENDED_INFO = "flightdeck.audit_appended"
"""``connection.info`` key: set by ``audit.append``, so the store knows to call its hook."""

METADATA = sa.MetaData()
"""The schema as the code sees it; ``migrations/versions`` creates it in the database."""

promotion_requests = sa.Table(
    "promotion_requests",
    METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("target_kind", sa.String(8), nullable=False),
    sa.Column("target", sa.String(256), nullable=False),
    sa.Column("expected_holder", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("rollback_plan", sa.Text, nullable=False),
    sa.Column("requested_by", sa.String(320), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("override_by", sa.String(320), nullable=True),
    sa.Column("override_reason", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
)

policy_decisions = sa.Table(
    "policy_decisions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("cause", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("job_id", sa.String(32), nullable=True),
    sa.UniqueConstraint("model", "trigger", "cause", name="uq_policy_decision_cause"),
)

promotion_decisions = sa.Table(
    "promotion_decisions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(32), sa.ForeignKey("promotion_requests.id"), nullable=False),
    sa.Column("decided_by", sa.String(320), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("request_id", "decided_by", name="uq_one_decision_per_person"),
)

audit_events = sa.Table(
    "audit_events",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(1024), nullable=False),
    sa.Column("request_id", sa.String(32), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256"),
    sa.Column("key_id", sa.String(16), nullable=True),
)

retraining_jobs = sa.Table(
    "retraining_jobs",
    METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("engine", sa.String(32), nullable=False),
    sa.Column("engine_ref", sa.String(256), nullable=True),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("requested_by", sa.String(320), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("mlflow_run_id", sa.String(64), nullable=True),
    sa.Column("new_version", sa.Integer, nullable=True),
    sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("promotion_request_id", sa.String(32), nullable=True),
)


loop_passes = sa.Table(
    "loop_passes",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_s", sa.Float, nullable=False),
    sa.Column("steps", sa.Text, nullable=False),
)


drift_watermarks = sa.Table(
    "drift_watermarks",
    METADATA,
    sa.Column("model", sa.String(512), primary_key=True),
    sa.Column("last_batch", sa.String(1024), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)


drift_backfills = sa.Table(
    "drift_backfills",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("first_batch", sa.String(1024), nullable=False),
    sa.Column("end_batch", sa.String(1024), nullable=False),
    sa.Column("requested_by", sa.String(256), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


metric_histories = sa.Table(
    "metric_histories",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("metric_key", sa.String(250), primary_key=True),
    sa.Column("max_points", sa.Integer, primary_key=True),
    sa.Column("points", sa.LargeBinary, nullable=False),
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
)

CACHE_TABLES = frozenset({metric_histories.name})
"""Copies of what MLflow already holds, which reads may fill: nothing else depends on them."""

notifications = sa.Table(
    "notifications",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("given_up_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
)


def aware(moment: datetime) -> datetime:
    """A time read from the store, in UTC: SQLite hands back naive datetimes."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Store:
    """A connection pool to the application store.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.flightdeck/flightdeck.db``.
        audit_key: The key audit events are chained with (HMAC-SHA256); None for plain SHA-256.
        redactor: Masks credentials in audit details before they are stored.
        after_audit_commit: Called with the store after a write that appended audit events has
            committed (the anchor); it must not block or raise.

    Raises:
        StoreError: The URL is malformed or names a database driver that is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        audit_key: str | None = None,
        redactor: Redactor = NO_SECRETS,
        after_audit_commit: Callable[[Store], None] | None = None,
    ) -> None:
        self._audit_key = audit_key.encode("utf-8") if audit_key else None
        self.redactor = redactor
        self.after_audit_commit = after_audit_commit
        try:
            parsed = make_url(url)
            self.dialect = parsed.get_backend_name()
            if self.dialect == "sqlite" and parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                parsed,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S} if self.dialect == "sqlite" else {},
            )
        except (ArgumentError, ImportError, OSError) as exc:
            raise StoreError(
                f"Cannot open the application store ({_safe(url)}): {exc}. Check "
                "FLIGHTDECK_STORE_URL."
            ) from exc
        self.where = _safe(url)
        if self.dialect == "sqlite":
            _take_over_sqlite_transactions(self.engine)

    def migrate(self) -> None:
        """Bring the schema up to the newest Alembic revision (a no-op when it is)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._translated("update the schema"), self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @property
    def audit_keyed(self) -> bool:
        """True when audit events are chained with a key."""
        return self._audit_key is not None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self._translated("read"), self.engine.connect() as connection:
            self._equip(connection)
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that holds the store's write lock; commits on success."""
        with self._translated("write"), self.engine.connect() as connection:
            self._equip(connection)
            with connection.begin():
                if self.dialect == "postgresql":
                    connection.execute(
                        sa.text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
                    )
                yield connection
            appended = connection.info.pop(AUDIT_APPENDED_INFO, False)
        if appended and self.after_audit_commit is not None:
            self.after_audit_commit(self)

    @contextmanager
    def cache_write(self) -> Iterator[Connection]:
        """A transaction for a cache no audited write depends on (metric histories): it takes
        SQLite's write lock like any transaction but not the audit log's lock."""
        with self._translated("write"), self.engine.begin() as connection:
            yield connection

    def _equip(self, connection: Connection) -> None:
        """Give the connection what ``services.governance.audit`` needs (its info outlives a
        checkout)."""
        connection.info[AUDIT_KEY_INFO] = self._audit_key
        connection.info[REDACTOR_INFO] = self.redactor
        connection.info.pop(AUDIT_APPENDED_INFO, None)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (DBAPIError, SQLAlchemyError) as exc:
            if isinstance(exc, sa.exc.IntegrityError):
                raise
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StoreError(
                f"The application store ({self.where}) could not {what}: {reason}. Nothing was "
                "changed in MLflow. Check that the database is reachable, then retry."
            ) from exc


def open_store(
    url: str,
    *,
    audit_key: str | None = None,
    redactor: Redactor = NO_SECRETS,
    after_audit_commit: Callable[[Store], None] | None = None,
) -> Store:
    """A :class:`Store` with its schema up to date (arguments as for :class:`Store`).

    Raises:
        StoreError: The database cannot be reached or migrated.
    """
    store = Store(
        url, audit_key=audit_key, redactor=redactor, after_audit_commit=after_audit_commit
    )
    store.migrate()
    return store


def _take_over_sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions, and begin them IMMEDIATE.

    A deferred SQLite transaction that reads and then writes can fail at once when another
    writer got there first; IMMEDIATE takes the write lock up front and waits for it instead.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "an unreadable URL"
