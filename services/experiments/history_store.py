"""Metric histories fetched once: a finished run's history is kept for good in the application
store, shared by every session, process and replica; a running run's for a minute in memory.

A run that has ended does not log any more, in practice, so its sampled history is stored the
first time anyone charts it (or when the control loop prefetches it) and never asked of MLflow
again. The stored copy is checked against the run's latest value of the metric, which MLflow
reports with every run: a history that no longer ends at that value was logged to after it was
stored, and is fetched again.

Histories that must come from MLflow are fetched a few runs per request, two requests at a time,
metric after metric, and handed over as each metric is complete, so a page draws the first
chart while the second is still on its way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.core.errors import FlightdeckError, StoreError
from services.core.gateway import HISTORY_POINTS, TrackingGateway
from services.core.records import MetricPoint, Run
from services.core.settings import READ_CACHE_TTL_S
from services.core.store import Store, metric_histories

logger = logging.getLogger(__name__)

ENDED_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
"""Run statuses after which MLflow's own clients log nothing more."""
RUNS_PER_REQUEST = 10
"""Runs in one history request. MLflow's server spends about 0.15-0.25 s per run and metric on
the bench store (SQLite scans the metric's rows of every run), so 50 runs in one request can
outlast the 10 s HTTP timeout; 10 stay well inside it."""
FETCH_THREADS = 2
"""History requests in flight at once for this process (all sessions). A single-worker server
answers them one after another anyway: on the bench store, 20 runs as 1, 2, 4 and 10 concurrent
requests took 5.7, 5.4, 7.5 and 8.8 s (medians of 3), and every request in flight waits."""
_SAVE_FAILED = "Could not keep metric histories in the application store; charts still work"

Histories = dict[str, list[MetricPoint]]
FetchHistories = Callable[[Sequence[str], str, int], Histories]
"""The gateway's ``metric_histories(run_ids, key, max_points)``."""


def encode_points(points: Sequence[MetricPoint]) -> bytes:
    """Steps, timestamps and values as packed 64-bit arrays, compressed."""
    steps = array("q", (p.step for p in points))
    stamps = array("q", (p.timestamp_ms for p in points))
    values = array("d", (p.value for p in points))
    return zlib.compress(steps.tobytes() + stamps.tobytes() + values.tobytes())


def decode_points(blob: bytes) -> list[MetricPoint]:
    """The inverse of :func:`encode_points`."""
    raw = zlib.decompress(blob)
    count = len(raw) // 24
    steps, stamps, values = array("q"), array("q"), array("d")
    steps.frombytes(raw[: 8 * count])
    stamps.frombytes(raw[8 * count : 16 * count])
    values.frombytes(raw[16 * count :])
    return [MetricPoint(s, t, v) for s, t, v in zip(steps, stamps, values, strict=True)]


def still_current(points: Sequence[MetricPoint], latest: float | None) -> bool:
    """Whether a stored history still ends at the run's latest value of its metric."""
    if not points or latest is None:
        return False
    last = points[-1].value
    return last == latest or (math.isnan(last) and math.isnan(latest))


@dataclass(frozen=True, slots=True)
class StoredSize:
    """What the kept histories cost."""

    histories: int
    runs: int
    bytes: int


class HistoryStore:
    """Finished runs' sampled histories in the application store's ``metric_histories``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self, run_ids: Sequence[str], key: str, max_points: int) -> Histories:
        """The stored histories of ``key`` among ``run_ids`` (absent ids were never stored)."""
        if not run_ids:
            return {}
        table = metric_histories
        query = sa.select(table.c.run_id, table.c.points).where(
            table.c.metric_key == key,
            table.c.max_points == max_points,
            table.c.run_id.in_(list(run_ids)),
        )
        with self._store.read() as connection:
            rows = connection.execute(query).all()
        return {row.run_id: decode_points(row.points) for row in rows}

    def save(
        self, key: str, max_points: int, histories: Mapping[str, Sequence[MetricPoint]]
    ) -> None:
        """Keep these histories, replacing older copies of the same ones."""
        if not histories:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "run_id": run_id,
                "metric_key": key,
                "max_points": max_points,
                "points": encode_points(points),
                "stored_at": now,
            }
            for run_id, points in histories.items()
        ]
        with self._store.cache_write() as connection:
            connection.execute(self._upsert(), rows)

    def size(self) -> StoredSize:
        """How many histories are kept, for how many runs, in how many bytes of points."""
        table = metric_histories
        query = sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(table.c.run_id)),
            sa.func.coalesce(sa.func.sum(sa.func.length(table.c.points)), 0),
        )
        with self._store.read() as connection:
            histories, runs, size = connection.execute(query).one()
        return StoredSize(int(histories), int(runs), int(size))

    def _upsert(self) -> sa.Insert:
        table = metric_histories
        keys = [table.c.run_id, table.c.metric_key, table.c.max_points]
        if self._store.dialect == "sqlite":
            lite = sqlite.insert(table)
            return lite.on_conflict_do_update(
                index_elements=keys,
                set_={"points": lite.excluded.points, "stored_at": lite.excluded.stored_at},
            )
        if self._store.dialect == "postgresql":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(
                index_elements=keys,
                set_={"points": pg.excluded.points, "stored_at": pg.excluded.stored_at},
            )
        raise StoreError(
            f"Metric histories are kept only in SQLite or PostgreSQL, not {self._store.dialect}."
        )


class RecentHistories:
    """Running runs' histories for a short while, in this process's memory."""

    def __init__(self, ttl_s: float = READ_CACHE_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, int], tuple[float, list[MetricPoint]]] = {}

    def get(self, run_id: str, key: str, max_points: int) -> list[MetricPoint] | None:
        with self._lock:
            entry = self._entries.get((run_id, key, max_points))
        if entry is None or time.monotonic() - entry[0] > self._ttl_s:
            return None
        return entry[1]

    def put(self, key: str, max_points: int, histories: Mapping[str, list[MetricPoint]]) -> None:
        now = time.monotonic()
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] <= self._ttl_s}
            for run_id, points in histories.items():
                self._entries[(run_id, key, max_points)] = (now, points)


class HistoryReader:
    """Sampled metric histories of many runs: kept, remembered, or fetched concurrently.

    Args:
        fetch: The gateway's ``metric_histories``.
        kept: Finished runs' histories, for good (None: fetch them every time).
        recent: Running runs' histories, for a minute.
    """

    def __init__(
        self,
        fetch: FetchHistories,
        kept: HistoryStore | None,
        recent: RecentHistories | None = None,
        threads: int = FETCH_THREADS,
    ) -> None:
        self._fetch = fetch
        self._kept = kept
        self._recent = recent or RecentHistories()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="flightdeck-history")

    def close(self) -> None:
        """Stop the fetching threads once what was asked for has arrived."""
        self._pool.shutdown(wait=True)

    def histories(
        self, runs: Sequence[Run], key: str, max_points: int = HISTORY_POINTS
    ) -> Histories:
        """One metric's histories for ``runs``, every run present (empty when it has none).

        Raises:
            FlightdeckError: MLflow refused or could not be reached.
        """
        for _, result in self.as_ready(runs, (key,), max_points):
            if isinstance(result, FlightdeckError):
                raise result
            return result
        return {}  # no keys asked for: unreachable

    def as_ready(
        self, runs: Sequence[Run], keys: Sequence[str], max_points: int = HISTORY_POINTS
    ) -> Iterator[tuple[str, Histories | FlightdeckError]]:
        """Each metric's histories for ``runs`` as soon as they are all in, fastest first; a
        metric MLflow refused comes with its error instead, and the others still arrive."""
        pending: dict[Future[Histories], str] = {}
        partial: dict[str, Histories] = {}
        outstanding: dict[str, int] = {}
        failed: dict[str, FlightdeckError] = {}
        for key in keys:
            found, missing = self._known(runs, key, max_points)
            partial[key] = found
            step = RUNS_PER_REQUEST
            chunks = [missing[i : i + step] for i in range(0, len(missing), step)]
            outstanding[key] = len(chunks)
            for chunk in chunks:
                pending[self._pool.submit(self._fetch_and_keep, chunk, key, max_points)] = key
        ready = [key for key in keys if outstanding[key] == 0]
        yield from ((key, _complete(partial[key], runs)) for key in ready)
        for future in as_completed(pending):
            key = pending[future]
            try:
                partial[key].update(future.result())
            except FlightdeckError as exc:
                failed.setdefault(key, exc)
            outstanding[key] -= 1
            if outstanding[key] == 0:
                yield key, failed.get(key) or _complete(partial[key], runs)

    def _known(self, runs: Sequence[Run], key: str, max_points: int) -> tuple[Histories, list[Run]]:
        """The histories already at hand, and the runs whose history must be fetched."""
        found: Histories = {}
        ended = [r for r in runs if r.status in ENDED_STATUSES and key in r.metrics]
        kept = self._load_kept([r.run_id for r in ended], key, max_points)
        missing: list[Run] = []
        for run in runs:
            if key not in run.metrics:
                found[run.run_id] = []  # never logged: nothing to ask for
            elif run.status in ENDED_STATUSES and still_current(
                kept.get(run.run_id, []), run.metrics[key]
            ):
                found[run.run_id] = kept[run.run_id]
            elif (recent := self._recent.get(run.run_id, key, max_points)) is not None:
                found[run.run_id] = recent
            else:
                missing.append(run)
        return found, missing

    def _load_kept(self, run_ids: list[str], key: str, max_points: int) -> Histories:
        if self._kept is None:
            return {}
        try:
            return self._kept.load(run_ids, key, max_points)
        except StoreError:
            logger.warning("Could not read kept metric histories; asking MLflow", exc_info=True)
            return {}

    def _fetch_and_keep(self, runs: list[Run], key: str, max_points: int) -> Histories:
        """Fetch one chunk and keep what it brought, even if no page waits for it any more."""
        fetched = self._fetch([r.run_id for r in runs], key, max_points)
        ended = {r.run_id for r in runs if r.status in ENDED_STATUSES}
        done = {run_id: p for run_id, p in fetched.items() if run_id in ended and p}
        self._recent.put(key, max_points, {k: v for k, v in fetched.items() if k not in ended})
        if self._kept is not None and done:
            try:
                self._kept.save(key, max_points, done)
            except StoreError:
                logger.warning(_SAVE_FAILED, exc_info=True)
        return fetched


def _complete(histories: Histories, runs: Sequence[Run]) -> Histories:
    """Every run present, in the runs' order."""
    return {run.run_id: histories.get(run.run_id, []) for run in runs}


PREFETCH_RUNS_PER_PASS = 500
"""Newest ended runs whose histories one control-loop pass keeps, at most."""
PREFETCH_SEARCH_EXPERIMENTS = 100
"""Experiments per run search while prefetching."""


def prefetch_ended_runs(
    gateway: TrackingGateway,
    kept: HistoryStore,
    ended_since: datetime,
    experiment_ids: Sequence[str] | None = None,
) -> int:
    """Keep the histories of runs that ended since ``ended_since`` (newest first, at most
    :data:`PREFETCH_RUNS_PER_PASS`) in ``experiment_ids`` (all by default), so their first
    chart needs nothing from MLflow; returns how many runs that was.

    Raises:
        FlightdeckError: MLflow could not be searched or refused a history.
    """
    since_ms = int(ended_since.timestamp() * 1000)
    ids = list(experiment_ids or [e.experiment_id for e in gateway.list_experiments()])
    runs: list[Run] = []
    for start in range(0, len(ids), PREFETCH_SEARCH_EXPERIMENTS):
        page = gateway.search_runs(
            ids[start : start + PREFETCH_SEARCH_EXPERIMENTS],
            f"attributes.end_time >= {since_ms} AND attributes.status != 'RUNNING'",
            order_by=("attributes.end_time DESC",),
            max_results=PREFETCH_RUNS_PER_PASS,
        )
        runs += [r for r in page.runs if r.status in ENDED_STATUSES]
    runs = sorted(runs, key=lambda r: r.end_time or ended_since, reverse=True)
    runs = runs[:PREFETCH_RUNS_PER_PASS]
    reader = HistoryReader(gateway.metric_histories, kept)
    try:
        for _, result in reader.as_ready(runs, sorted({k for run in runs for k in run.metrics})):
            if isinstance(result, FlightdeckError):
                raise result
    finally:
        reader.close()
    return len(runs)
