"""Who runs the control loop: one leader among the replicas, taken over when it dies.

Every replica may start ``python -m jobs.scheduler``; each tries the lock before each pass and
only the holder acts. The operating system or the database frees the lock when its holder's
process dies, so another replica takes over on its next try, within one interval:

- on SQLite (one machine), an exclusive ``flock`` on a file beside the store;
- on PostgreSQL, a session advisory lock held on a connection of its own.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from services.core.store import Store

ADVISORY_LOCK_KEY = 0x666C6967  # "flig": one lock for every Flightdeck control loop on the database
LOCK_FILE = "control-loop.lock"


class LeaderLock(Protocol):
    """Held by at most one process at a time."""

    holder: str
    """Who this process is, e.g. ``host:pid``."""

    def try_acquire(self) -> bool:
        """True when this process holds the lock (now, or already); never waits."""
        ...

    def release(self) -> None: ...


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class FileLock:
    """An exclusive ``flock`` on a file: for a SQLite store, which lives on one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder = this_process()
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(self.holder)
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class AdvisoryLock:
    """A PostgreSQL session advisory lock, on a connection kept open while it is held."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.holder = this_process()
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            try:  # a connection the server dropped has lost the lock with it
                self._connection.execute(sa.text("SELECT 1"))
                return True
            except SQLAlchemyError:
                self._connection = None
        try:
            connection = self.engine.connect()
            held = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar_one()
            connection.commit()
        except SQLAlchemyError:
            return False
        if held:
            self._connection = connection
            return True
        connection.close()
        return False

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()  # ends the session, and the lock with it
            self._connection = None


def leader_lock(store: Store, data_dir: Path) -> LeaderLock:
    """The lock that fits the store: advisory on PostgreSQL; otherwise a file beside the SQLite
    database (so loops on different stores never wait for each other), or in ``data_dir``."""
    if store.engine.dialect.name == "postgresql":
        return AdvisoryLock(store)
    database = store.engine.url.database
    if database and database != ":memory:":
        return FileLock(Path(f"{database}.{LOCK_FILE}"))
    return FileLock(data_dir / LOCK_FILE)
