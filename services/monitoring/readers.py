"""Reading batches: CSV or Parquet files (or uploads), and SQL queries through SQLAlchemy.

Every failure is a :class:`~services.core.errors.DriftError` that says what to fix.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from services.core.errors import DriftError

TABLE_SUFFIXES: Mapping[str, str] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File suffixes :func:`read_table` understands, and the format of each."""


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, by its suffix.

    Raises:
        DriftError: The file is missing, has another suffix, or cannot be parsed.
    """
    if path.is_dir():
        raise DriftError(f"{path} is a folder; give a CSV or Parquet file.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DriftError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return read_table_bytes(data, path.name)


def read_table_bytes(data: bytes, filename: str) -> pd.DataFrame:
    """Read CSV or Parquet content (e.g. an upload); ``filename``'s suffix says which.

    Raises:
        DriftError: The suffix is neither, or the content cannot be parsed.
    """
    suffix = Path(filename).suffix.lower()
    form = TABLE_SUFFIXES.get(suffix)
    if form is None:
        raise DriftError(
            f"{filename!r} is neither CSV nor Parquet; give a file ending in "
            f"{', '.join(TABLE_SUFFIXES)}."
        )
    if not data:
        raise DriftError(f"{filename!r} is empty: there is nothing to compare.")
    try:
        if form == "csv":
            return pd.read_csv(io.BytesIO(data))
        return pd.read_parquet(io.BytesIO(data))
    except (ValueError, OSError, NotImplementedError, TypeError) as exc:
        # pandas' parser errors and pyarrow's invalid-file errors are ValueErrors or OSErrors.
        raise DriftError(
            f"{filename!r} cannot be read as {form.upper()}: {_first_line(exc)}. Check that the "
            "file is complete and really is that format."
        ) from exc


def read_sql(
    query: str,
    url: str,
    window: tuple[str, datetime, datetime] | None = None,
) -> pd.DataFrame:
    """Run a query through SQLAlchemy and return its rows.

    Args:
        query: A ``select`` statement.
        url: A SQLAlchemy URL, e.g. ``sqlite:///batches.db`` or ``postgresql+psycopg://…``.
        window: (time column, start, end): only the query's rows with ``start <= column < end``
            (aware datetimes, compared in UTC).

    Raises:
        DriftError: The URL cannot be used (unknown dialect, missing driver) or the query failed.
            The password in the URL is never part of the message.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
        engine = create_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise DriftError(
            f"Cannot use the SQL URL: {_first_line(exc)}. Give a SQLAlchemy URL such as "
            "sqlite:///path/to/file.db, and install the database's driver."
        ) from exc
    params: dict[str, object] = {}
    if window is not None:
        column, start, end = window
        quoted = engine.dialect.identifier_preparer.quote(column)
        query = (
            f"SELECT * FROM ({query.strip().rstrip(';')}) AS flightdeck_batch "
            f"WHERE {quoted} >= :start AND {quoted} < :end"
        )
        params = {
            "start": _bound(start, engine.dialect.name),
            "end": _bound(end, engine.dialect.name),
        }
    try:
        with engine.connect() as connection:
            return pd.read_sql_query(text(query), connection, params=params or None)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, SQLAlchemyError) else exc
        reason = getattr(cause, "orig", None) or cause
        raise DriftError(f"The query failed on {shown}: {_first_line(reason)}.") from exc
    finally:
        engine.dispose()


def _bound(moment: datetime, dialect: str) -> object:
    """``moment`` as the database compares it: SQLite keeps times as text, so UTC text whose
    prefix order matches both ``2026-12-01 10:00:00`` and ``2026-12-01T10:00:00`` values."""
    if dialect == "sqlite":
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return moment


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
