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


def scan(
    asset: str,
    start: date | str | None = None,
    end: date | str | None = None,
    *,
    regions: Sequence[str] | None = None,
    series: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    missing: str = "error",
) -> pl.LazyFrame:
    """`load` without the collect: a lazy scan of the same files, with the same checks, for
    queries that polars should optimise as a whole (joins, aggregations over a year)."""
    if asset not in CONTRACTS:
        raise ValueError(f"unknown asset {asset!r}; stored assets: {', '.join(CONTRACTS)}")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    contract = CONTRACTS[asset]
    settings = load_settings(config, for_reading=True)
    root = _root(settings)
    paths = _stored_paths(asset, root, start, end, missing)
    names = list(contract.schema)
    unknown = sorted(set(columns or ()) - set(names)) if columns is not None else []
    open_prefixes = tuple(o.prefix for o in contract.open_columns)
    unknown = [c for c in unknown if not c.startswith(open_prefixes)]
    if unknown:
        raise ValueError(f"{asset} has no columns {unknown}; its columns: {', '.join(names)}")
    if series is not None and "series" not in names:
        raise ValueError(f"{asset} has no series column; filter it by columns instead")
    if not paths:
        frame = contract.empty().lazy()
    else:
        options = getattr(root, "storage_options", None) or None
        sources = [p.as_uri() if isinstance(p, Path) else str(p) for p in paths]
        frame = pl.scan_parquet(sources, storage_options=options)
    if regions is not None:
        frame = frame.filter(pl.col("region").is_in(list(regions)))
    if series is not None:
        frame = frame.filter(pl.col("series").is_in(list(series)))
    if columns is not None:
        frame = frame.select(list(columns))
    return frame


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
    return scan(
        asset, start, end, regions=regions, series=series, columns=columns, config=config,
        missing=missing,
    ).collect()  # fmt: skip


def table_name(asset: str) -> str:
    """The SQL table name of an asset: its key with "_" for "/" (imputed/series: imputed_series)."""
    return asset.replace("/", "_")


def sql(
    query: str,
    start: date | str | None = None,
    end: date | str | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Run a SQL query over the stored assets, each a table named by `table_name`
    (`imputed_series`, `features_hourly`, `raw_eia930`, `ml_normalization`...).

    Daily assets hold the days start..end (both included) that are stored, or every stored day
    when no dates are given; days that are not stored are simply absent. The tables are lazy
    scans of the same parquet files `load` reads, so a query's filters and columns are pushed
    into the scan and only the tables it names are opened. The SQL dialect is polars'
    (PostgreSQL-like: SELECT, JOIN, GROUP BY, window functions, date_trunc...).
    """
    if (start is None) != (end is None):
        raise ValueError("give both start and end, or neither (every stored day)")
    settings = load_settings(config, for_reading=True)
    root = _root(settings)
    tables: dict[str, pl.LazyFrame] = {}
    for asset, contract in CONTRACTS.items():
        if not contract.partitioned and not root.joinpath(f"{asset}.parquet").exists():
            continue
        if contract.partitioned and not root.joinpath(*asset.split("/")).exists():
            continue
        tables[table_name(asset)] = scan(
            asset, *((start, end) if contract.partitioned else (None, None)),
            config=config, missing="skip",
        )  # fmt: skip
    context = pl.SQLContext(frames=tables)
    try:
        return context.execute(query, eager=True)
    except pl.exceptions.SQLInterfaceError as error:
        names = ", ".join(sorted(tables)) or "none (nothing is stored)"
        raise ValueError(f"{error}; the stored tables: {names}") from None


def _stored_paths(asset, root, start, end, missing: str) -> list:
    """The files of `asset`'s asked days that are stored (all stored days when both dates are
    None and the asset is daily with missing="skip"); `DataNotStored` for absent ones."""
    contract = CONTRACTS[asset]
    if not contract.partitioned:
        if start is not None or end is not None:
            raise ValueError(f"{asset} is one whole-range artifact: call load({asset!r})")
        path = root.joinpath(f"{asset}.parquet")
        absent, paths = ([], [path]) if path.exists() else (["(whole range)"], [])
    else:
        folder = root.joinpath(*asset.split("/"))
        stored = {p.name for p in folder.iterdir()} if folder.exists() else set()
        if start is None and end is None and missing == "skip":
            return [folder / name for name in sorted(stored) if name.endswith(".parquet")]
        if start is None or end is None:
            raise ValueError(f"{asset} is daily: give start and end (YYYY-MM-DD)")
        first, last = _day(start, "start"), _day(end, "end")
        if last < first:
            raise ValueError(f"end {last} is before start {first}")
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
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
    return paths


def balancing_authorities() -> pl.DataFrame:
    """The balancing authorities the platform knows (code, name, time zone, typical peak...)."""
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    return load_balancing_authorities()
