"""Repeat an action, time each repetition, and summarise: median, min and max wall-clock seconds."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "5"))
"""Timed repetitions of each measurement (``BENCH_REPETITIONS`` for a quick look)."""


@dataclass(frozen=True)
class Timing:
    """The wall-clock seconds of every timed repetition of one measured action."""

    label: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def minimum(self) -> float:
        return min(self.seconds)

    @property
    def maximum(self) -> float:
        return max(self.seconds)


def time_repeatedly(
    label: str,
    action: Callable[[], T],
    check: Callable[[T], None],
    repetitions: int = REPETITIONS,
    warm_up: bool = True,
    before_each: Callable[[], None] | None = None,
) -> Timing:
    """Time ``repetitions`` calls of ``action``; every result must pass ``check``.

    Args:
        label: What is measured, for the table and the progress line.
        action: The work to time.
        check: Raises when a result is wrong, so a fast but broken answer is never recorded.
        repetitions: How many timed calls.
        warm_up: Make one untimed call first (connections, imports), as a long-running
            dashboard would already have done.
        before_each: Untimed preparation before every call, e.g. clearing caches.
    """
    if warm_up:
        if before_each:
            before_each()
        check(action())
    seconds = []
    for _ in range(repetitions):
        if before_each:
            before_each()
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
        check(result)
    timing = Timing(label, tuple(seconds))
    print(
        f"  {label}: median {timing.median:.3f} s "
        f"(min {timing.minimum:.3f}, max {timing.maximum:.3f})",
        flush=True,
    )
    return timing


@dataclass(frozen=True)
class Action(Generic[T]):
    """Something to time, and the check its result must pass."""

    label: str
    run: Callable[[], T]
    check: Callable[[T], None]


def time_alternately(
    first: Action[Any], second: Action[Any], repetitions: int = REPETITIONS
) -> tuple[Timing, Timing]:
    """Time two actions in turns (first, second, first, ...), after one warm-up call each.

    Taking turns spreads the server's slow and fast spells over both, so that their ratio is
    not decided by which one happened to run during a busy moment.
    """
    for action in (first, second):
        action.check(action.run())
    seconds: tuple[list[float], list[float]] = ([], [])
    for _ in range(repetitions):
        for action, times in zip((first, second), seconds, strict=True):
            started = time.perf_counter()
            result = action.run()
            times.append(time.perf_counter() - started)
            action.check(result)
    timings = (Timing(first.label, tuple(seconds[0])), Timing(second.label, tuple(seconds[1])))
    for timing in timings:
        print(
            f"  {timing.label}: median {timing.median:.3f} s "
            f"(min {timing.minimum:.3f}, max {timing.maximum:.3f}, n={repetitions})",
            flush=True,
        )
    return timings
