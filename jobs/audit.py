"""Check and read the audit log from a shell: ``python -m jobs.audit verify|show``.

``verify`` walks the whole hash chain of the application store's audit log::

    python -m jobs.audit verify
    Audit log intact: 42 events checked.                                   (exit 0)
    Audit log broken at event 17: event 17 was changed after it was recorded. 17 events checked.
                                                                           (exit 1)

``show`` prints the newest events as a plain table (oldest of them first, like ``tail``)::

    python -m jobs.audit show --model "wine quality" --limit 20

The store is the one the dashboard uses: ``FLIGHTDECK_STORE_URL``, or the SQLite file in the
data folder. Exit status 2 means the settings or the store could not be used; the message says
why. Nothing here writes, so it is safe to run against production from a cron job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services import admin
from services.errors import FlightdeckError
from services.settings import load_settings
from services.store import Store, open_store

SHOW_DEFAULT_LIMIT = 50


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 broken chain, 2 cannot read)."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.audit",
        description="Verify the audit log's hash chain, or show its newest events.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="check the hash chain of the whole audit log")
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
        store = open_store(load_settings().store_url)
        if args.command == "verify":
            return _verify(store)
        return _show(store, args.model, args.limit)
    except FlightdeckError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _verify(store: Store) -> int:
    check = admin.verify_audit(store)
    if check.intact:
        print(f"Audit log intact: {check.events} events checked.")
        return 0
    print(
        f"Audit log broken at event {check.first_broken}: {check.problem}. "
        f"{check.events} events checked."
    )
    return 1


def _show(store: Store, model: str | None, limit: int) -> int:
    events = admin.audit_log(store, model=model, limit=limit)
    if not events:
        print("No audit events" + (f" about model {_printable(model)}." if model else "."))
        return 0
    rows = [[_printable(cell) for cell in admin.event_row(e).values()] for e in events]
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


def _printable(text: str) -> str:
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
