"""Resident memory of a process and all its descendants, read from ``/proc`` (Linux only)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def tree_rss_mb(root_pid: int) -> float:
    """RSS in MB (2**20 bytes) of ``root_pid`` plus every process descended from it."""
    return sum(_rss_kb(pid) for pid in process_tree(root_pid)) / 1024


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def _parent_pid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields after it are fixed.
    return int(stat.rpartition(")")[2].split()[1])


def _rss_kb(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
