"""Maintenance windows: days, midnight spans, 24:00, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.spec.model import MaintenanceWindow
from reconciler.watch.windows import (
    WEEKDAYS,
    destructive_allowed,
    in_maintenance_window,
    next_window_opening,
    window_contains,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def win(days: str, start: str, end: str, tz: str = "UTC") -> MaintenanceWindow:
    return MaintenanceWindow(days=tuple(days.split(",")), start=start, end=end, timezone=tz)  # type: ignore[arg-type]


# 2026-11-20 is a Friday.
FRI = (2026, 11, 20)


def test_plain_window_start_inclusive_end_exclusive() -> None:
    w = win("fri", "09:00", "17:00")
    assert not window_contains(w, utc(*FRI, 8, 59, 59))
    assert window_contains(w, utc(*FRI, 9, 0))
    assert window_contains(w, utc(*FRI, 16, 59, 59))
    assert not window_contains(w, utc(*FRI, 17, 0))
    # Same hours on a day not listed.
    assert not window_contains(w, utc(2026, 11, 19, 12, 0))


def test_window_spanning_midnight_belongs_to_its_start_day() -> None:
    w = win("fri", "22:00", "02:00")
    assert window_contains(w, utc(*FRI, 22, 0))
    assert window_contains(w, utc(*FRI, 23, 30))
    assert window_contains(w, utc(2026, 11, 21, 0, 0))  # Saturday morning, Friday's window
    assert window_contains(w, utc(2026, 11, 21, 1, 59))
    assert not window_contains(w, utc(2026, 11, 21, 2, 0))
    assert not window_contains(w, utc(2026, 11, 21, 22, 30))  # Saturday evening: not listed
    assert not window_contains(w, utc(*FRI, 1, 0))  # Friday morning = Thursday's window: none


def test_end_2400_is_end_of_day() -> None:
    w = win("sun", "20:00", "24:00")
    assert window_contains(w, utc(2026, 11, 22, 23, 59, 59))
    assert not window_contains(w, utc(2026, 11, 23, 0, 0))


def test_whole_day_and_empty_windows() -> None:
    day = win("mon", "00:00", "24:00")
    assert window_contains(day, utc(2026, 11, 23, 0, 0))
    assert window_contains(day, utc(2026, 11, 23, 23, 59))
    assert not window_contains(day, utc(2026, 11, 24, 0, 0))
    assert not window_contains(day, utc(2026, 11, 22, 23, 59))
    # start == end is empty (the spec loader rejects it with a diagnostic).
    empty = win("mon", "02:00", "02:00")
    assert not any(
        window_contains(empty, utc(2026, 11, 23, h, m)) for h in range(24) for m in (0, 30)
    )
    assert next_window_opening((empty,), utc(2026, 11, 23, 0, 0)) is None


def test_time_zone_is_applied_before_the_weekday() -> None:
    # Monday 01:00-03:00 in Tokyo (UTC+9) is Sunday 16:00-18:00 UTC.
    w = win("mon", "01:00", "03:00", "Asia/Tokyo")
    assert window_contains(w, utc(2026, 11, 22, 16, 30))
    assert not window_contains(w, utc(2026, 11, 23, 1, 30))


def test_spring_forward_skipped_hour_shortens_the_window() -> None:
    # Europe/London 2026-03-29: 01:00 GMT jumps to 02:00 BST.
    w = win("sun", "00:30", "01:30", "Europe/London")
    assert window_contains(w, utc(2026, 3, 29, 0, 45))  # 00:45 GMT
    assert not window_contains(w, utc(2026, 3, 29, 1, 15))  # 02:15 BST: past the end


def test_fall_back_repeated_hour_is_inside_both_times() -> None:
    # Europe/London 2026-10-25: 02:00 BST goes back to 01:00 GMT.
    w = win("sun", "01:00", "02:00", "Europe/London")
    assert window_contains(w, utc(2026, 10, 25, 0, 30))  # 01:30 BST
    assert window_contains(w, utc(2026, 10, 25, 1, 30))  # 01:30 GMT
    assert not window_contains(w, utc(2026, 10, 25, 2, 0))  # 02:00 GMT


def test_new_york_after_dst_end() -> None:
    # 2026-11-02 is the first Monday after DST ended (EST = UTC-5).
    w = win("mon", "09:00", "17:00", "America/New_York")
    assert not window_contains(w, utc(2026, 11, 2, 13, 30))  # 08:30 EST
    assert window_contains(w, utc(2026, 11, 2, 14, 0))  # 09:00 EST


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_contains(win("mon", "00:00", "01:00"), datetime(2026, 11, 23, 0, 30))


def test_any_of_several_windows() -> None:
    windows = (win("mon", "01:00", "02:00"), win("fri", "22:00", "02:00"))
    assert in_maintenance_window(windows, utc(2026, 11, 21, 1, 0))
    assert in_maintenance_window(windows, utc(2026, 11, 23, 1, 30))
    assert not in_maintenance_window(windows, utc(2026, 11, 23, 3, 0))
    assert not in_maintenance_window((), utc(2026, 11, 23, 3, 0))


def test_destructive_allowed_without_windows_or_inside_one() -> None:
    at = utc(2026, 11, 23, 3, 0)
    assert destructive_allowed((), at)
    assert not destructive_allowed((win("mon", "01:00", "02:00"),), at)
    assert destructive_allowed((win("mon", "02:30", "03:30"),), at)


def test_next_window_opening() -> None:
    windows = (win("fri", "22:00", "02:00"), win("tue", "03:00", "04:00"))
    # Thursday noon -> Friday 22:00.
    assert next_window_opening(windows, utc(2026, 11, 19, 12, 0)) == utc(*FRI, 22, 0)
    # Saturday 01:00 (inside Friday's window) -> Tuesday 03:00.
    assert next_window_opening(windows, utc(2026, 11, 21, 1, 0)) == utc(2026, 11, 24, 3, 0)
    assert next_window_opening((), utc(2026, 11, 21, 1, 0)) is None


def test_next_window_opening_in_another_zone_and_a_dst_gap() -> None:
    # 01:30 does not exist in London on 2026-03-29: it resolves to 02:30 BST = 01:30 UTC.
    w = win("sun", "01:30", "03:00", "Europe/London")
    assert next_window_opening((w,), utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 30)
    ny = win("mon", "09:00", "10:00", "America/New_York")
    assert next_window_opening((ny,), utc(2026, 11, 1, 0, 0)) == utc(2026, 11, 2, 14, 0)


def _oracle(days: set[str], start: int, end: int, at: datetime) -> bool:
    """Brute force for UTC windows: enumerate the openings of the surrounding days."""
    length = (end - start) % (24 * 60) if end != 24 * 60 else end - start
    for back in (0, 1):
        day = (at - timedelta(days=back)).replace(hour=0, minute=0, second=0, microsecond=0)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        opening = day + timedelta(minutes=start)
        if opening <= at < opening + timedelta(minutes=length):
            return True
    return False


@given(
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    start=st.integers(0, 24 * 60 - 1),
    end=st.integers(0, 24 * 60),
    offset_minutes=st.integers(0, 14 * 24 * 60),
)
def test_utc_windows_match_a_brute_force_oracle(
    days: set[str], start: int, end: int, offset_minutes: int
) -> None:
    w = win(
        ",".join(sorted(days)),
        f"{start // 60:02d}:{start % 60:02d}",
        f"{end // 60:02d}:{end % 60:02d}",
    )
    at = utc(2026, 11, 16) + timedelta(minutes=offset_minutes)
    assert window_contains(w, at) == _oracle(days, start, end, at)
