"""What the Dagster instance knows about stored partitions: their latest materializations.

Shared by the asset checks (which materialization a day's check result judged) and the
`energy-assets` planner (which partitions are up to date, which are provisional).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, EventLogRecord

BATCH = 500


def latest_materializations(
    instance: Any, asset_key: AssetKey, days: Iterable[str] | None = None
) -> dict[str, EventLogRecord]:
    """The latest materialization record of each partition (of `days`, or all), in 2 queries
    per batch of partitions whatever their number."""
    wanted = None if days is None else set(days)
    storage_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION, partitions=wanted
    )
    ids = sorted(storage_ids.values())
    records: dict[str, EventLogRecord] = {}
    for i in range(0, len(ids), BATCH):
        chunk = ids[i : i + BATCH]
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
        )
        for record in result.records:
            if record.partition_key is not None:
                records[record.partition_key] = record
    return records


def metadata_value(record: EventLogRecord, name: str, default: Any = None) -> Any:
    """A materialization's metadata value (plain Python), or `default`."""
    materialization = record.asset_materialization
    entry: Mapping[str, Any] = materialization.metadata if materialization else {}
    value = entry.get(name)
    return default if value is None else getattr(value, "value", value)
