"""The audit log's anchor: its head, recorded outside the application store, in MLflow.

The hash chain (:mod:`services.governance.audit`) catches an edited, removed or reordered event,
but not
the newest events being deleted: what is left is still a valid chain. So Flightdeck records the
head of the log (sequence number, hash, scheme) as tags on one run it owns in MLflow::

    experiment  flightdeck-audit              (Settings.audit_anchor_experiment)
    run         audit-anchor                  tag flightdeck.audit_anchor = head
    tags        flightdeck.audit_head_seq     e.g. 42
                flightdeck.audit_head_hash    the hash of event 42
                flightdeck.audit_head_scheme  sha256 or hmac-sha256
                flightdeck.audit_first_hash   the hash of event 1: which log this anchors
                flightdeck.audit_anchor_at    when it was anchored (ISO 8601, UTC)

The anchor is written after every write that appended events (in the background, so a write
never waits for MLflow and MLflow being down loses nothing), and on every scheduler pass. It is
a high-water mark: it only moves forward, and it does not move at all when the event it holds no
longer matches the store (that would launder the tampering). :func:`check_anchor` compares the
log with it: a log that ends before the anchored event lost its newest events, and a different
hash at the anchored event means the log was rewritten up to there. The anchor also names its
log by the hash of event 1, so a second deployment anchoring in the same experiment is refused
and reported, rather than mistaken for a truncation or allowed to move another log's anchor.

Several processes may anchor at once; MLflow has no compare-and-set, so at worst the anchor
briefly trails the log by a few events. It never runs ahead of what was committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.core.conventions import RUN_NAME_TAG
from services.core.errors import AuditError, FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.records import Run
from services.core.settings import Settings
from services.core.store import Store, open_store
from services.governance import audit

ANCHOR_TAG = "flightdeck.audit_anchor"
"""Marks the anchor run; its value is :data:`ANCHOR_VALUE`."""
ANCHOR_VALUE = "head"
HEAD_SEQ_TAG = "flightdeck.audit_head_seq"
HEAD_HASH_TAG = "flightdeck.audit_head_hash"
HEAD_SCHEME_TAG = "flightdeck.audit_head_scheme"
FIRST_HASH_TAG = "flightdeck.audit_first_hash"
ANCHORED_AT_TAG = "flightdeck.audit_anchor_at"
ANCHOR_RUN_NAME = "audit-anchor"
ANCHOR_RUNS_MAX = 50
"""Anchor runs read at most: normally one (two processes may each create one at first)."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"

MATCHES, NOTHING_ANCHORED, NOT_CHECKED, TRUNCATED, REWRITTEN, OTHER_LOG = (
    "matches",
    "nothing_anchored",
    "not_checked",
    "truncated",
    "rewritten",
    "other_log",
)
"""What :func:`check_anchor` found."""

log = logging.getLogger("flightdeck.audit")


@dataclass(frozen=True, slots=True)
class AnchoredHead:
    """The head of the audit log as the anchor recorded it."""

    seq: int
    """The anchored event's sequence number."""
    hash: str
    """Its hash when it was anchored."""
    scheme: str
    """Its hash scheme (``sha256`` or ``hmac-sha256``)."""
    anchored_at: datetime
    """When it was anchored (aware, UTC)."""
    run_id: str
    """The MLflow run that holds the anchor."""
    first_hash: str | None = None
    """The hash of the anchored log's event 1, which names the log."""


@dataclass(frozen=True, slots=True)
class AnchorResult:
    """What :func:`anchor_audit_head` did."""

    head: AnchoredHead | None
    """The anchor after the call; None when the log is empty and nothing was anchored."""
    moved: bool
    """True when this call moved the anchor forward."""


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    """The log compared with its anchor."""

    outcome: str
    """One of ``matches``, ``nothing_anchored``, ``not_checked``, ``truncated``, ``rewritten``,
    ``other_log``."""
    message: str
    """What was found, for a person."""
    anchored: AnchoredHead | None = None
    """The anchor, when it could be read."""

    @property
    def broken(self) -> bool:
        """True when the log lost events from its end, or was rewritten up to the anchor."""
        return self.outcome in (TRUNCATED, REWRITTEN, OTHER_LOG)

    @property
    def checked(self) -> bool:
        """True when the log was compared with an anchor (or is empty with none)."""
        return self.outcome != NOT_CHECKED


class AuditAnchor:
    """Reads and moves the anchor run in MLflow.

    Args:
        gateway: The MLflow gateway.
        experiment: The experiment that holds the anchor run (one per deployment).
    """

    def __init__(self, gateway: TrackingGateway, experiment: str) -> None:
        self.gateway = gateway
        self.experiment = experiment
        self._lock = threading.Lock()
        self._known: AnchoredHead | None = None

    def read(self) -> AnchoredHead | None:
        """The highest head anchored; None when nothing was anchored yet.

        Raises:
            TrackingError: MLflow cannot be reached or refused the read.
        """
        heads = [h for h in (_head_of(run) for run in self._runs()) if h is not None]
        return max(heads, key=lambda h: h.seq, default=None)

    def advance(self, store: Store) -> AnchorResult:
        """Anchor the store's newest committed event, if it is past the anchor.

        Raises:
            AuditError: The event at the anchor no longer matches the store; it stays put.
            TrackingError: MLflow cannot be reached or refused the write.
            StoreError: The store cannot be read.
        """
        with self._lock:
            with store.read() as connection:
                current = audit.head(connection)
                first = audit.hash_at(connection, 1)
            if current is None:
                return AnchorResult(self._known, False)
            if self._known is not None and current.seq <= self._known.seq:
                return AnchorResult(self._known, False)
            runs = self._runs()
            heads = [h for h in (_head_of(run) for run in runs) if h is not None]
            anchored = max(heads, key=lambda h: h.seq, default=None)
            if anchored is not None and anchored.first_hash not in (None, first):
                raise AuditError(f"The audit anchor was not moved: {self.other_log_problem()}.")
            if anchored is not None and current.seq <= anchored.seq:
                self._known = anchored
                return AnchorResult(anchored, False)
            if anchored is not None:
                with store.read() as connection:
                    stored = audit.hash_at(connection, anchored.seq)
                if stored != anchored.hash:
                    raise AuditError(
                        f"The audit anchor was not moved: event {anchored.seq}, anchored on "
                        f"{anchored.anchored_at:{TIME_FORMAT}}, "
                        + ("is gone" if stored is None else "no longer has its anchored hash")
                        + " in the store. Run `python -m jobs.audit verify` and investigate."
                    )
            run_id = runs[0].run_id if runs else self._create_run()
            now = datetime.now(UTC)
            self.gateway.set_run_tags(
                run_id,
                {
                    HEAD_SEQ_TAG: str(current.seq),
                    HEAD_HASH_TAG: current.hash,
                    HEAD_SCHEME_TAG: current.scheme,
                    FIRST_HASH_TAG: first or "",
                    ANCHORED_AT_TAG: now.isoformat(timespec="seconds"),
                },
            )
            self._known = AnchoredHead(
                current.seq, current.hash, current.scheme, now, run_id, first
            )
            return AnchorResult(self._known, True)

    def other_log_problem(self) -> str:
        """What to say when the anchor names another log than the store's."""
        return (
            f"the anchor in MLflow experiment {self.experiment!r} names a log whose first event "
            "differs from this one's: another deployment anchors there (give each its own "
            "FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT), or this log was rewritten from its first event"
        )

    def _runs(self) -> Sequence[Run]:
        """The anchor runs, oldest first (the one every writer writes to is the first)."""
        experiment_id = self.gateway.experiment_id(self.experiment)
        if experiment_id is None:
            return ()
        page = self.gateway.search_runs(
            [experiment_id],
            filter_string=f"tags.`{ANCHOR_TAG}` = '{ANCHOR_VALUE}'",
            order_by=("attributes.start_time ASC",),
            max_results=ANCHOR_RUNS_MAX,
        )
        return sorted(
            page.runs, key=lambda r: (r.start_time or datetime.min.replace(tzinfo=UTC), r.run_id)
        )

    def _create_run(self) -> str:
        experiment_id = self.gateway.experiment_id(self.experiment, create=True)
        assert experiment_id is not None  # created when missing
        run_id = self.gateway.create_run(
            experiment_id, {RUN_NAME_TAG: ANCHOR_RUN_NAME, ANCHOR_TAG: ANCHOR_VALUE}
        )
        self.gateway.end_run(run_id, "FINISHED")  # tags still change; it is not a live run
        return run_id


def anchor_audit_head(store: Store, anchor: AuditAnchor) -> AnchorResult:
    """Move the anchor to the store's newest event (a scheduler step; idempotent).

    Raises:
        AuditError: The log no longer matches the anchor; the anchor stays put.
        TrackingError: MLflow cannot be reached.
        StoreError: The store cannot be read.
    """
    return anchor.advance(store)


def check_anchor(store: Store, anchor: AuditAnchor) -> AnchorCheck:
    """Compare the log with its anchor: events missing from the end, or a rewritten log.

    MLflow being unreachable is reported as ``not_checked``, never as a match.

    Raises:
        StoreError: The store cannot be read.
    """
    try:
        anchored = anchor.read()
    except FlightdeckError as exc:
        return AnchorCheck(NOT_CHECKED, f"the anchor in MLflow could not be read: {exc}")
    with store.read() as connection:
        current = audit.head(connection)
        first = audit.hash_at(connection, 1)
        stored = audit.hash_at(connection, anchored.seq) if anchored else None
    where = f"MLflow experiment {anchor.experiment!r}"
    if anchored is None:
        if current is None:
            return AnchorCheck(
                NOTHING_ANCHORED, f"the log is empty and nothing is anchored in {where}"
            )
        return AnchorCheck(
            NOT_CHECKED,
            f"no anchor for the log was found in {where}: it is written after each audited "
            "write and on every scheduler pass; until then removed events cannot be detected",
        )
    on = f"{anchored.anchored_at:{TIME_FORMAT}}"
    end = current.seq if current else 0
    if first is not None and anchored.first_hash not in (None, first):
        return AnchorCheck(OTHER_LOG, anchor.other_log_problem(), anchored)
    if end < anchored.seq:
        removed = (
            f"event {anchored.seq} was"
            if end + 1 == anchored.seq
            else f"events {end + 1}..{anchored.seq} were"
        )
        return AnchorCheck(
            TRUNCATED,
            f"the log ends at event {end} but event {anchored.seq} was anchored on {on}: "
            f"{removed} removed",
            anchored,
        )
    if stored != anchored.hash:
        return AnchorCheck(
            REWRITTEN,
            f"event {anchored.seq} does not have the hash anchored on {on}: the log was rewritten "
            f"up to event {anchored.seq}",
            anchored,
        )
    return AnchorCheck(MATCHES, f"event {anchored.seq} matches the anchor of {on}", anchored)


class BackgroundAnchoring:
    """The store's ``after_audit_commit`` hook: anchors in a worker thread.

    A write never waits for MLflow; bursts of writes are coalesced into one anchoring of the
    newest head. Failures are logged (the scheduler's next pass tries again).
    """

    def __init__(self, anchor: AuditAnchor) -> None:
        self.anchor = anchor
        self._lock = threading.Lock()
        self._pending: Store | None = None
        self._worker: threading.Thread | None = None

    def __call__(self, store: Store) -> None:
        with self._lock:
            self._pending = store
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._drain, name="flightdeck-audit-anchor", daemon=True
                )
                self._worker.start()

    def wait(self, timeout_s: float) -> bool:
        """Wait until nothing is pending (for tests and clean exits); True when idle."""
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
        with self._lock:
            return self._worker is None

    def _drain(self) -> None:
        while True:
            with self._lock:
                store, self._pending = self._pending, None
                if store is None:
                    self._worker = None
                    return
            try:
                self.anchor.advance(store)
            except FlightdeckError as exc:
                log.warning("audit anchor not written: %s", exc)


def open_audited_store(settings: Settings, anchor: AuditAnchor | None) -> Store:
    """The application store with the audit key, credential redaction and, when ``anchor`` is
    given, anchoring after every audited write: what the dashboard and the scheduler use.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """
    return open_store(
        settings.store_url,
        audit_key=settings.audit_key,
        redactor=settings.redactor,
        after_audit_commit=BackgroundAnchoring(anchor) if anchor is not None else None,
    )


def _head_of(run: Run) -> AnchoredHead | None:
    """The head an anchor run holds; None before its first anchoring or when unreadable."""
    try:
        seq = int(run.tags[HEAD_SEQ_TAG])
        anchored_at = datetime.fromisoformat(run.tags[ANCHORED_AT_TAG])
        hash_ = run.tags[HEAD_HASH_TAG]
    except (KeyError, ValueError):
        return None
    scheme = run.tags.get(HEAD_SCHEME_TAG, audit.PLAIN)
    first_hash = run.tags.get(FIRST_HASH_TAG) or None
    at = anchored_at if anchored_at.tzinfo else anchored_at.replace(tzinfo=UTC)
    return AnchoredHead(seq, hash_, scheme, at.astimezone(UTC), run.run_id, first_hash)
