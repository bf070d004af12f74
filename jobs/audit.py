"""Check and read the audit log from a shell: ``python -m jobs.audit verify|show|anchor``.

``verify`` walks the whole hash chain of the application store's audit log, then compares its
end with the head anchored in MLflow (see ``services/governance/audit_anchor.py``)::

    python -m jobs.audit verify
    Audit log intact: 42 events checked. Anchor: event 42 matches the anchor of ...  (exit 0)
    Audit log broken at event 17: event 17 was changed after it was recorded. 17 events checked.
                                                                                     (exit 1)
    Audit log broken: the log ends at event 40 but event 42 was anchored on ...: events
    41..42 were removed.                                                             (exit 1)
    Audit log chain intact: 42 events checked. Anchor not checked: ...               (exit 3)

Exit status: 0 when the chain is intact and matches its anchor; 1 when tampering was found or
an event cannot be verified (keyed, and no key or another key is configured here); 3 when the
chain is intact but the anchor could not be checked (MLflow unreachable, or no anchor yet), so
removed newest events cannot be ruled out; 2 when the settings or the store cannot be used.

``anchor`` moves the anchor to the newest event now (the scheduler does this every pass; it
never moves the anchor back, nor past a log that no longer matches it).

``show`` prints the newest events as a plain table (oldest of them first, like ``tail``)::

    python -m jobs.audit show --model "wine quality" --limit 20

The store is the one the dashboard uses: ``FLIGHTDECK_STORE_URL``, or the SQLite file in the
data folder; MLflow is the one the dashboard uses. Only ``anchor`` writes (to MLflow, never to
the store), so ``verify`` and ``show`` are safe to run against production from a cron job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.core.errors import AuditError, FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.settings import load_settings
from services.core.store import Store
from services.governance import admin
from services.governance.audit_anchor import AuditAnchor, anchor_audit_head, open_audited_store

SHOW_DEFAULT_LIMIT = 50
EXIT_OK, EXIT_BROKEN, EXIT_UNUSABLE, EXIT_ANCHOR_NOT_CHECKED = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.audit",
        description="Verify the audit log's hash chain and its anchor in MLflow, anchor its "
        "newest event, or show its newest events.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "verify", help="check the hash chain of the whole audit log and its anchor in MLflow"
    )
    commands.add_parser("anchor", help="anchor the newest event in MLflow now")
    show = commands.add_parser("show", help="print the newest audit events")
    show.add_argument("--model", help="only events about this registered model (exact name)")
    show.add_argument(
        "--limit",
        type=_positive,
        default=SHOW_DEFAULT_LIMIT,
        help=f"how many of the newest events (default {SHOW_DEFAULT_LIMIT})",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        store = open_audited_store(settings, anchor=None)
        if args.command == "show":
            return _show(store, args.model, args.limit)
        anchor = AuditAnchor(TrackingGateway(settings), settings.audit_anchor_experiment)
        if args.command == "anchor":
            return _anchor(store, anchor)
        return _verify(store, anchor)
    except FlightdeckError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNUSABLE


def _verify(store: Store, anchor: AuditAnchor) -> int:
    result = admin.verify_audit(store, anchor)
    chain, anchored = result.chain, result.anchor
    # Problems quote the store and MLflow (a scheme, an error): keep them from driving the terminal.
    problem, found = printable(chain.problem), printable(anchored.message)
    keyed = f" ({chain.keyed} keyed)" if chain.keyed else ""
    if not chain.intact:
        state = "cannot be verified" if chain.unverifiable else "broken"
        print(
            f"Audit log {state} at event {chain.first_broken}: {problem}. "
            f"{chain.events} events checked{keyed}."
        )
    if anchored.broken:
        print(f"Audit log broken: {found}.")
    if result.broken:
        return EXIT_BROKEN
    if not anchored.checked:
        print(
            f"Audit log chain intact: {chain.events} events checked{keyed}. Anchor not checked: "
            f"{found}. Events removed from the end cannot be ruled out."
        )
        return EXIT_ANCHOR_NOT_CHECKED
    print(f"Audit log intact: {chain.events} events checked{keyed}. Anchor: {found}.")
    return EXIT_OK


def _anchor(store: Store, anchor: AuditAnchor) -> int:
    try:
        result = anchor_audit_head(store, anchor)
    except AuditError as exc:
        print(printable(str(exc)))
        return EXIT_BROKEN
    if result.head is None:
        print("The audit log is empty: nothing to anchor.")
    elif result.moved:
        print(f"Anchored the audit log at event {result.head.seq}.")
    else:
        print(f"The anchor already holds event {result.head.seq}: nothing newer to anchor.")
    return EXIT_OK


def _show(store: Store, model: str | None, limit: int) -> int:
    events = admin.audit_log(store, model=model, limit=limit)
    if not events:
        print("No audit events" + (f" about model {printable(model)}." if model else "."))
        return 0
    rows = [[printable(cell) for cell in admin.event_row(e).values()] for e in events]
    print(format_table(list(admin.AUDIT_COLUMNS), rows))
    return 0


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, ["-" * width for width in widths], *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def printable(text: str) -> str:
    """Untrusted text with control characters escaped, so it cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


if __name__ == "__main__":
    sys.exit(main())
