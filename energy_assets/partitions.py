"""The one partitions definition: UTC calendar days, shared by every partitioned asset.

Keys are `YYYY-MM-DD`; a key covers [day 00:00 UTC, next day 00:00 UTC). The newest key is the
last complete UTC day. Every source converts its own time convention to UTC before rows are
assigned to a day, so a Pacific DST day is still exactly 24 hourly rows per series here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dagster import DailyPartitionsDefinition

FIRST_DAY = "2015-07-01"  # EIA-930 begins on 2015-07-01

DAILY = DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")


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
