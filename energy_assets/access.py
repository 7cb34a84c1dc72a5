"""Reading the stored data back: `energy_assets.load(...)` and `balancing_authorities()`.

What belongs here: the typed read path over the files the IO manager writes, for people who
use the data (notebooks, training scripts), with no Dagster import. The layout is the IO
manager's: `<data_dir>/<asset key>/<YYYY-MM-DD>.parquet` for daily assets and
`<data_dir>/<asset key>.parquet` for whole-range ones (io/parquet.py `partition_path`).

`load` scans lazily: only the files of the requested days are opened, and the region/series
filters and the column projection are pushed into the parquet scan, so a year of one region's
demand reads a fraction of the bytes. The data folder (and, on an object store, its endpoint
and credentials from the environment variables the config names) comes from the same run
config file the assets use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from energy_assets.contracts.tables import CONTRACTS
from energy_assets.settings import Settings, load_settings


class DataNotStored(FileNotFoundError):
    """The asked days of an asset are not in the store; the message says how to make them."""


def _day(value: date | str, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def _root(settings: Settings):
    """`data_dir` as a path object with its storage options (object stores included)."""
    from upath import UPath

    if settings.data_dir.startswith(("s3://", "gs://", "gcs://")):
        from energy_assets.deployment import data_root

        return data_root(settings)
    return UPath(settings.data_dir)


def load(
    asset: str,
    start: date | str | None = None,
    end: date | str | None = None,
    *,
    regions: Sequence[str] | None = None,
    series: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    missing: str = "error",
) -> pl.DataFrame:
    """The stored rows of `asset` (e.g. "imputed/series") for the UTC days start..end (both
    included), optionally only some regions (balancing authorities), series and columns.

    `config`: the run config file (default: $ENERGY_ASSETS_CONFIG, else configs/main.yaml).
    `missing`: "error" (default) raises `DataNotStored` naming the days that are not stored;
    "skip" returns what is stored. Whole-range assets (ml/normalization, ml/ring_segments) take
    no dates. Columns and dtypes are the asset's contract (README, Data dictionary).
    """
    if asset not in CONTRACTS:
        raise ValueError(f"unknown asset {asset!r}; stored assets: {', '.join(CONTRACTS)}")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    contract = CONTRACTS[asset]
    settings = load_settings(config, for_reading=True)
    root = _root(settings)
    if not contract.partitioned:
        if start is not None or end is not None:
            raise ValueError(f"{asset} is one whole-range artifact: call load({asset!r})")
        paths = [root.joinpath(f"{asset}.parquet")]
        absent = [] if paths[0].exists() else ["(whole range)"]
    else:
        if start is None or end is None:
            raise ValueError(f"{asset} is daily: give start and end (YYYY-MM-DD)")
        first, last = _day(start, "start"), _day(end, "end")
        if last < first:
            raise ValueError(f"end {last} is before start {first}")
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        folder = root.joinpath(*asset.split("/"))
        stored = {p.name for p in folder.iterdir()} if folder.exists() else set()
        paths = [folder / f"{d.isoformat()}.parquet" for d in days]
        absent = [d.isoformat() for d, p in zip(days, paths, strict=True) if p.name not in stored]
        paths = [p for p in paths if p.name in stored]
    if absent and missing == "error":
        span = absent[0] if len(absent) == 1 else f"{absent[0]}..{absent[-1]} ({len(absent)})"
        hint = (
            f"energy-assets backfill --from {absent[0]} --to {absent[-1]}"
            if contract.partitioned
            else "energy-assets backfill --select ml"
        )
        raise DataNotStored(f"{asset} is not stored for {span} under {root}; run: {hint}")
    names = list(contract.schema)
    unknown = sorted(set(columns or ()) - set(names)) if columns is not None else []
    open_prefixes = tuple(o.prefix for o in contract.open_columns)
    unknown = [c for c in unknown if not c.startswith(open_prefixes)]
    if unknown:
        raise ValueError(f"{asset} has no columns {unknown}; its columns: {', '.join(names)}")
    if not paths:
        frame = contract.empty()
        return frame.select(columns) if columns is not None else frame
    options = getattr(root, "storage_options", None) or None
    sources = [p.as_uri() if isinstance(p, Path) else str(p) for p in paths]
    scan = pl.scan_parquet(sources, storage_options=options)
    if regions is not None:
        scan = scan.filter(pl.col("region").is_in(list(regions)))
    if series is not None:
        if "series" not in names:
            raise ValueError(f"{asset} has no series column; filter it by columns instead")
        scan = scan.filter(pl.col("series").is_in(list(series)))
    if columns is not None:
        scan = scan.select(list(columns))
    return scan.collect()


def balancing_authorities() -> pl.DataFrame:
    """The balancing authorities the platform knows (code, name, time zone, typical peak...)."""
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    return load_balancing_authorities()
