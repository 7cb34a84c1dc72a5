"""The one partitions definition: UTC calendar days, shared by every partitioned asset.

Keys are `YYYY-MM-DD`; a key covers [day 00:00 UTC, next day 00:00 UTC). The newest key is the
last complete UTC day. Every source converts its own time convention to UTC before rows are
assigned to a day, so a Pacific DST day is still exactly 24 hourly rows per series here. The day
arithmetic itself is core (`days.py`, no Dagster) and re-exported here.
"""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from energy_assets.days import FIRST_DAY, day_window, days_between

__all__ = ["DAILY", "FIRST_DAY", "day_window", "days_between"]

DAILY = DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")
