"""Check a model's inputs for drift and log the result to MLflow: ``python -m jobs.monitor``.

The current data is compared with the reference sample logged by the training run of the version
an alias points at (``@champion`` by default), with Evidently's ``DataDriftPreset``; each batch
becomes a run of the ``flightdeck-monitoring`` experiment (see :mod:`services.monitoring.runs`)::

    python -m jobs.monitor --model wine-classifier --data batch.parquet
    python -m jobs.monitor --model wine-classifier --data batches/          # a run per file
    python -m jobs.monitor --model wine-classifier --alias challenger --target target \\
        --sql "select * from scored where day = '2026-11-02'" --sql-url sqlite:///scored.db

A batch's time window is ``--window-start``/``--window-end`` (ISO 8601, UTC when no zone is
given); by default the UTC day of the file's modification time, or for a query today until now.

Exit status: 0 when every batch was logged (each run id and drift share is printed); 2 when the
input cannot be used (missing file, empty data, columns that differ from the reference or of a
type drift cannot compare, no reference sample), with a message naming the columns; 1 when MLflow
could not be reached or refused a request. A run that fails half-way is ended FAILED with the
reason in its ``flightdeck.failure`` tag.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pandas as pd

from services.core.conventions import CHAMPION
from services.core.errors import ConfigurationError, DriftError, FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.settings import load_settings
from services.monitoring.drift import DEFAULT_MAX_ROWS, DriftResult, compute_drift
from services.monitoring.readers import TABLE_SUFFIXES, read_sql, read_table
from services.monitoring.runs import log_monitoring_run, reference_for

EXIT_OK, EXIT_TRACKING, EXIT_INPUT = 0, 1, 2
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Batch:
    """One batch of current data to monitor, not read yet."""

    label: str
    """What to call it in messages: the file's name, or "query"."""
    read: Callable[[], pd.DataFrame]
    window_start: datetime
    window_end: datetime


def main(argv: Sequence[str] | None = None) -> int:
    """Monitor every batch; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", module="mlflow")
    try:
        batches = _batches(args)
        gateway = TrackingGateway(load_settings())
        version, reference = reference_for(gateway, args.model, args.alias)
    except (DriftError, ConfigurationError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except FlightdeckError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_TRACKING
    status = EXIT_OK
    for batch in batches:
        try:
            result = compute_drift(
                reference,
                batch.read(),
                max_rows=args.max_rows,
                target=args.target,
                prediction=args.prediction,
            )
            run_id = log_monitoring_run(
                gateway,
                model=args.model,
                version=version,
                alias=args.alias,
                window_start=batch.window_start,
                window_end=batch.window_end,
                result=result,
            )
        except DriftError as exc:
            print(f"{batch.label}: {exc}", file=sys.stderr)
            status = max(status, EXIT_INPUT)
            continue
        except FlightdeckError as exc:
            print(f"{batch.label}: {exc}", file=sys.stderr)
            status = max(status, EXIT_TRACKING)
            continue
        print(_outcome(batch.label, run_id, version, result))
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.monitor",
        description="Compare current data with a model version's reference sample (Evidently) "
        "and log the drift to MLflow, one run per batch.",
    )
    parser.add_argument("--model", required=True, help="the registered model's name")
    parser.add_argument(
        "--alias",
        default=CHAMPION,
        help=f"the alias whose version's reference sample is compared (default {CHAMPION})",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        type=Path,
        help="a CSV or Parquet file, or a folder of them (one run per file, by name)",
    )
    source.add_argument("--sql", help="a select statement giving the current data")
    parser.add_argument("--sql-url", help="the SQLAlchemy URL --sql runs on")
    parser.add_argument("--target", help="the label column: compared when the data has it")
    parser.add_argument("--prediction", help="the model's output column, compared when present")
    parser.add_argument(
        "--max-rows",
        type=_positive,
        default=DEFAULT_MAX_ROWS,
        help=f"sample each side to at most this many rows (default {DEFAULT_MAX_ROWS:,})",
    )
    parser.add_argument("--window-start", type=_moment, help="start of the batch (ISO 8601)")
    parser.add_argument("--window-end", type=_moment, help="end of the batch (ISO 8601)")
    return parser


def _batches(args: argparse.Namespace) -> list[Batch]:
    """The batches to monitor, with their windows.

    Raises:
        DriftError: The input cannot be used as given.
    """
    explicit = args.window_start is not None or args.window_end is not None
    if args.sql is not None:
        if not args.sql_url:
            raise DriftError("--sql needs --sql-url, the SQLAlchemy URL to run the query on.")
        now = datetime.now(UTC)
        start, end = _window(args.window_start, args.window_end, _day_start(now), now)
        query, url = args.sql, args.sql_url
        return [Batch("query", lambda: read_sql(query, url), start, end)]
    if args.sql_url:
        raise DriftError("--sql-url goes with --sql; for files, give --data only.")
    path: Path = args.data
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise DriftError(
                f"The folder {path} holds no CSV or Parquet files "
                f"({', '.join(TABLE_SUFFIXES)}): there is nothing to monitor."
            )
        if explicit and len(files) > 1:
            raise DriftError(
                "--window-start and --window-end apply to one batch; for a folder, each file's "
                "window is the day it was last modified. Monitor the files one by one instead."
            )
    elif path.exists():
        files = [path]
    else:
        raise DriftError(f"There is no file or folder {path}.")
    batches = []
    for file in files:
        day = _day_start(datetime.fromtimestamp(file.stat().st_mtime, tz=UTC))
        start, end = _window(args.window_start, args.window_end, day, day + DAY)
        batches.append(Batch(file.name, partial(read_table, file), start, end))
    return batches


def _window(
    start: datetime | None, end: datetime | None, default_start: datetime, default_end: datetime
) -> tuple[datetime, datetime]:
    if start is None and end is None:
        start, end = default_start, default_end
    elif start is None:
        assert end is not None
        start = end - DAY
    elif end is None:
        end = start + DAY
    if end < start:
        raise DriftError(f"--window-end ({end.isoformat()}) is before --window-start.")
    return start, end


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _moment(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-02 or 2026-11-02T06:00Z"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _outcome(label: str, run_id: str, version: int, result: DriftResult) -> str:
    summary = result.summary
    verdict = "dataset drift" if summary.dataset_drift else "no dataset drift"
    return (
        f"{label}: run {run_id} (version {version}): drift share {summary.drift_share:.2f}, "
        f"{summary.drifted_columns} of {len(summary.features)} columns drifted, {verdict}."
    )


if __name__ == "__main__":
    sys.exit(main())
