"""Maintenance windows: is an instant inside ``policy.maintenance_windows``? (pure)

Rules (also in ``docs/watch.md``):

* ``days`` names the weekday on which a window **starts**, in the window's
  ``timezone`` (IANA name, resolved with :mod:`zoneinfo`; default ``UTC``).
* ``start`` is inclusive, ``end`` exclusive, both local wall-clock ``HH:MM``;
  ``end`` may be ``24:00`` (end of the day).
* ``end < start`` spans midnight: ``fri 22:00-02:00`` is Friday 22:00 to
  Saturday 02:00 (the Saturday part belongs to the Friday window).
* ``end == start`` is an empty window (the spec loader rejects it; here it never
  contains anything). A whole day is ``00:00-24:00``.
* Wall-clock comparison: on a spring-forward day a window covering the skipped
  hour is one hour shorter; on a fall-back day the repeated hour is inside
  the window both times. No window is ever skipped or doubled.
* No windows configured means no restriction (:func:`destructive_allowed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reconciler.spec.model import MaintenanceWindow

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _local(window: MaintenanceWindow, at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("maintenance windows need a time-zone-aware datetime")
    return at.astimezone(ZoneInfo(window.timezone))


def _span(window: MaintenanceWindow) -> tuple[int, int]:
    """(start, end) in minutes from the start day's midnight; end may exceed one day."""
    start = _minutes(window.start)
    end = _minutes(window.end)
    if end < start:
        end += _MINUTES_PER_DAY
    return start, end


def window_contains(window: MaintenanceWindow, at: datetime) -> bool:
    """True when ``at`` (aware) falls inside ``window``."""
    local = _local(window, at)
    now = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    start, end = _span(window)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    if today in window.days and start <= now < end:
        return True
    # The part after midnight of a window that started yesterday.
    return yesterday in window.days and end > _MINUTES_PER_DAY and now < end - _MINUTES_PER_DAY


def in_maintenance_window(windows: Sequence[MaintenanceWindow], at: datetime) -> bool:
    """True when ``at`` falls inside any of ``windows`` (False for no windows)."""
    return any(window_contains(w, at) for w in windows)


def destructive_allowed(windows: Sequence[MaintenanceWindow], at: datetime) -> bool:
    """Destructive steps may run: no windows configured, or ``at`` is inside one."""
    return not windows or in_maintenance_window(windows, at)


def _wall_to_instant(zone: ZoneInfo, day: datetime, minutes: int) -> datetime:
    """The instant (in UTC) of local wall time ``day 00:00 + minutes`` (fold=0)."""
    wall = datetime.combine(day.date(), time(0, 0)) + timedelta(minutes=minutes)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def next_window_opening(windows: Sequence[MaintenanceWindow], at: datetime) -> datetime | None:
    """The next instant (UTC, after ``at``) at which a window opens; None without windows.

    Used to tell the operator when pending destructive steps will be applied.
    A start time that does not exist on a spring-forward day resolves to the
    equivalent instant after the jump (``zoneinfo``'s fold=0 rule).
    """
    best: datetime | None = None
    for window in windows:
        zone = ZoneInfo(window.timezone)
        local = _local(window, at)
        start, end = _span(window)
        if start == end:
            continue
        for offset in range(8):
            day = local + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in window.days:
                continue
            opening = _wall_to_instant(zone, day, start)
            if opening > at:
                if best is None or opening < best:
                    best = opening
                break
    return best
