"""Run a command, wait for it, and write its exit code to a file atomically.

``python -m services.retraining.wrapper <exit_file> -- <command...>``: the local engine starts
every job through this, so an exit code exists on disk even though nobody waits on the job.
SIGTERM reaches the whole process group (this wrapper and the command); the wrapper ignores it
and outlives the command so it can still record how it ended. No file means it never ended
normally: the wrapper itself was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def write_exit_code(path: Path, code: int) -> None:
    """Write ``code`` to ``path`` so readers see the whole number or no file at all."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{code}\n", encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str]) -> int:
    """Entry point; returns the command's exit code (127 when it cannot be started)."""
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m services.retraining.wrapper EXIT_FILE -- COMMAND...", file=sys.stderr
        )
        return 2
    exit_file, command = Path(argv[0]), argv[2:]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        child = subprocess.Popen(command, preexec_fn=_default_sigterm)
    except OSError as exc:
        print(f"Cannot start {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        write_exit_code(exit_file, 127)
        return 127
    code = child.wait()
    write_exit_code(exit_file, code)
    return code if code >= 0 else 128 - code


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
