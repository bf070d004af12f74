"""The application store: what MLflow cannot hold safely (promotion requests, decisions, audit).

SQLAlchemy Core over any database URL; a SQLite file in the data folder by default, PostgreSQL
in production. The schema is versioned with Alembic (``services/migrations``) and brought up
to date when the store is opened.

Every write runs in :meth:`Store.write`, which serialises writers (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a table lock on the audit log), so that reading the last audit hash and appending
the next event, or checking a request's status and changing it, cannot interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from services.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for another to finish before failing."""

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


class Store:
    """A connection pool to the application store.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.flightdeck/flightdeck.db``.

    Raises:
        StoreError: The URL is malformed or names a database driver that is not installed.
    """

    def __init__(self, url: str) -> None:
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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self._translated("read"), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that holds the store's write lock; commits on success."""
        with self._translated("write"), self.engine.connect() as connection, connection.begin():
            if self.dialect == "postgresql":
                connection.execute(sa.text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))
            yield connection

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


def open_store(url: str) -> Store:
    """A :class:`Store` with its schema up to date.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """
    store = Store(url)
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
