"""Cron expressions for retraining schedules: five fields, in UTC.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range ``a-b``, a step
``*/n`` or ``a-b/n``, or a comma-separated list of those. Weekdays run 0-7 with Sunday as 0 or 7.
As in cron, when both day fields are restricted a day matching either one fires.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.core.errors import ConfigurationError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday (7 is folded into 0)."""
    any_day: bool
    """The day-of-month field is ``*``."""
    any_weekday: bool
    """The day-of-week field is ``*``."""

    @classmethod
    def parse(cls, expression: str, where: str = "schedule") -> CronSchedule:
        """Parse ``expression``.

        Raises:
            ConfigurationError: Not five fields, or a value out of range.
        """
        parts = expression.split()
        if len(parts) != len(_FIELDS):
            raise ConfigurationError(
                f"{where}: {expression!r} is not a cron expression: give five fields, "
                "minute hour day month weekday, e.g. '0 3 * * 1' for Mondays at 03:00 UTC."
            )
        sets = [_field(part, *spec, where) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(
            expression=" ".join(parts),
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            any_day=parts[2] == "*",
            any_weekday=parts[4] == "*",
        )

    def day_matches(self, moment: datetime) -> bool:
        """True when the schedule fires on ``moment``'s date (UTC)."""
        if moment.month not in self.months:
            return False
        in_days = moment.day in self.days
        in_weekdays = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def fire_times(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every minute the schedule fires in ``(after, until]``, oldest first (aware, UTC)."""
        after, until = after.astimezone(UTC), until.astimezone(UTC)
        day = after.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= until:
            if self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = day.replace(hour=hour, minute=minute)
                        if after < moment <= until:
                            yield moment
            day += timedelta(days=1)

    def last_fire(self, after: datetime, until: datetime) -> datetime | None:
        """The latest fire time in ``(after, until]``, or None."""
        latest = None
        for latest in self.fire_times(after, until):  # noqa: B007 - the last one is wanted
            pass
        return latest


def _field(text: str, name: str, low: int, high: int, where: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                start, end = low, high
            elif "-" in span:
                first, last = span.split("-", 1)
                start, end = int(first), int(last)
            else:
                start = end = int(span)
        except ValueError:
            raise ConfigurationError(f"{where}: {item!r} is not a valid {name} field.") from None
        if step < 1 or not low <= start <= end <= high:
            raise ConfigurationError(
                f"{where}: {item!r} is out of range for the {name} field ({low}-{high})."
            )
        values.update(range(start, end + 1, step))
    return frozenset(values)
