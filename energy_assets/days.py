"""UTC calendar days, the platform's partition grain, as plain functions (no Dagster).

A day `D` covers [D 00:00 UTC, D+1 00:00 UTC). The core (sources/, transform/, ml/) uses these;
`partitions.py` builds the one Dagster partitions definition on the same convention.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

FIRST_DAY = "2015-07-01"  # EIA-930 begins on 2015-07-01


def day_window(day: date | str) -> tuple[datetime, datetime]:
    """[start, end) in UTC for a partition key or date."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_between(first: date | str, last: date | str) -> list[date]:
    """Every day from first to last, both included."""
    a = date.fromisoformat(first) if isinstance(first, str) else first
    b = date.fromisoformat(last) if isinstance(last, str) else last
    if b < a:
        raise ValueError(f"date range ends ({b}) before it starts ({a})")
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]
