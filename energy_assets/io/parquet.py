"""The one IO manager: exactly one parquet file per asset partition, written atomically.

Layout: `<base>/<asset key path>/<YYYY-MM-DD>.parquet`, where base is a local directory or an
fsspec URL (`s3://bucket/prefix`, `gs://...`; the matching fsspec package must be installed).

- The frame written is the asset's declared contract (`contracts/tables.py`): columns in order,
  dtypes as declared, no silent casts. A frame that breaks its contract raises before anything is
  written, so what was stored stays intact.
- Local writes go to a hidden temporary file beside the target and are renamed over it
  (`os.replace`), so a crash or kill mid-write never leaves a partial file at the final path;
  object stores only make an object visible once its upload completes.
- A run over a partition range (`BackfillPolicy.single_run`) hands over one frame for the whole
  range (split here by the contract's partition column) or a mapping of partition key to frame;
  either way one file per day is written, empty days included, so "materialized" always means
  "the file exists".
- Inputs always arrive as one frame, whether the partition mapping selected one upstream
  partition or many: the days are concatenated in key order.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl
from dagster import (
    ConfigurableIOManagerFactory,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
    UPathIOManager,
)
from pydantic import Field
from upath import UPath

from energy_assets.contracts.core import Contract
from energy_assets.contracts.tables import contract_for


@dataclass(frozen=True)
class FrameWithMetadata:
    """A frame plus JSON-ready key-value metadata stored in the parquet footer (ML assets)."""

    frame: pl.DataFrame
    file_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartitionLoader:
    """Lazy access to an input's partitions, one day at a time (bounded memory for long ranges).

    Annotate an asset input with this type to get it instead of one concatenated frame.
    """

    keys: list[str]
    _load: Any = field(repr=False)

    def load(self, key: str) -> pl.DataFrame:
        return self._load(key)


class PartitionMismatch(ValueError):
    """An asset returned rows that belong to no partition of its run."""


def _asset_path(context: InputContext | OutputContext) -> str:
    return "/".join(context.asset_key.path)


def column_schema(contract: Contract) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=str(c.polars_dtype),
                description=c.description + (f" [{c.unit}]" if c.unit else ""),
            )
            for c in contract.columns
        ]
    )


def split_by_day(frame: pl.DataFrame, column: str, keys: list[str]) -> dict[str, pl.DataFrame]:
    """Rows per partition key (YYYY-MM-DD), every key present; rows outside the keys raise."""
    day = pl.col(column) if frame.schema[column] == pl.Date else pl.col(column).dt.date()
    tagged = frame.with_columns(day.dt.strftime("%Y-%m-%d").alias("__day"))
    outside = tagged.filter(pl.col("__day").is_null() | ~pl.col("__day").is_in(keys))
    if outside.height:
        seen = outside["__day"].unique().sort().to_list()[:5]
        raise PartitionMismatch(
            f"{outside.height} rows fall on days {seen} outside the run's partitions "
            f"{keys[0]}..{keys[-1]}; the asset must return only rows of the requested days"
        )
    parts = {k: g.drop("__day") for (k,), g in tagged.group_by("__day")}
    empty = frame.clear()
    return {k: parts.get(k, empty) for k in keys}


class ParquetPartitionIOManager(UPathIOManager):
    extension = ".parquet"

    def __init__(self, base_path: UPath) -> None:
        super().__init__(base_path=base_path)
        self._local = base_path.protocol in ("", "file", "local")

    # --- writing -------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        contract = contract_for(_asset_path(context))
        file_metadata: dict[str, str] = {}
        if isinstance(obj, FrameWithMetadata):
            file_metadata, obj = obj.file_metadata, obj.frame
        if not context.has_asset_partitions:
            frames = {None: contract.conform(obj)}
            paths = {None: self._get_path(context)}
        else:
            paths = self._get_paths_for_partitions(context)
            keys = sorted(paths)
            if isinstance(obj, Mapping):
                unknown = set(obj) - set(keys)
                if unknown:
                    raise PartitionMismatch(
                        f"asset returned frames for {sorted(unknown)}, not partitions of this run"
                    )
                frames = {
                    k: split_by_day(
                        contract.conform(obj.get(k, contract.empty())),
                        contract.partition_column,
                        [k],
                    )[k]
                    for k in keys
                }
            else:
                frames = split_by_day(contract.conform(obj), contract.partition_column, keys)
        written = {
            key: self._write(paths[key], frame, file_metadata) for key, frame in frames.items()
        }
        rows = sum(f.height for f in frames.values())
        metadata: dict[str, Any] = {
            "dagster/row_count": MetadataValue.int(rows),
            "dagster/column_schema": column_schema(contract),
            "bytes_written": MetadataValue.int(sum(written.values())),
            "files_written": MetadataValue.int(len(written)),
            "contract": MetadataValue.text(contract.name),
        }
        first = paths[next(iter(sorted(paths, key=str)))]
        metadata["path"] = MetadataValue.path(str(first if len(paths) == 1 else first.parent))
        context.add_output_metadata(metadata)

    def _write(self, path: UPath, frame: pl.DataFrame, file_metadata: dict[str, str]) -> int:
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True, metadata=file_metadata)
        data = buffer.getvalue()
        if self._local:
            target = os.fspath(path.path if hasattr(path, "path") else path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = os.path.join(
                os.path.dirname(target), f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp"
            )
            try:
                with open(temporary, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # one PUT: an object store publishes the object only when the upload completes
            path.fs.pipe_file(path.path, data)
        return len(data)

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        raise NotImplementedError("handle_output writes directly")  # pragma: no cover

    # --- reading -------------------------------------------------------------------------
    def load_from_path(self, context: InputContext, path: UPath) -> pl.DataFrame:
        with path.open("rb") as handle:
            return pl.read_parquet(handle)

    def load_input(
        self, context: InputContext
    ) -> pl.DataFrame | FrameWithMetadata | PartitionLoader:
        """One frame for every mapped partition; with a `FrameWithMetadata` annotation the
        parquet key-value metadata comes too (it must agree across the loaded days)."""
        contract = contract_for(_asset_path(context))
        wants_metadata = context.dagster_type.typing_type is FrameWithMetadata
        if not context.has_asset_partitions:
            frame = self.load_from_path(context, self._get_path(context))
            if wants_metadata:
                return FrameWithMetadata(frame, self._file_metadata(self._get_path(context)))
            return frame
        paths = self._get_paths_for_partitions(context)
        if context.dagster_type.typing_type is PartitionLoader:

            def load(key: str) -> pl.DataFrame:
                if not self.path_exists(paths[key]):
                    raise FileNotFoundError(
                        f"{_asset_path(context)} has no stored partition {key} under "
                        f"{self._base_path}; materialize it first, then re-run."
                    )
                return self.load_from_path(context, paths[key])

            return PartitionLoader(sorted(paths), load)
        allow_missing = bool(context.definition_metadata.get("allow_missing_partitions", False))
        frames, missing, metadata = [], [], []
        for key in sorted(paths):
            if self.path_exists(paths[key]):
                frames.append(self.load_from_path(context, paths[key]))
                if wants_metadata:
                    metadata.append((key, self._file_metadata(paths[key])))
            else:
                missing.append(key)
        own = _run_partition_keys(context, sorted(paths))
        if missing and (not allow_missing or set(missing) & own):
            # context days may be absent; the run's own days never are
            missing = sorted(set(missing) & own) if allow_missing else missing
            raise FileNotFoundError(
                f"{_asset_path(context)} has no stored partition(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} under {self._base_path}; materialize them "
                "first (or backfill the range), then re-run."
            )
        if missing:
            context.log.info(
                f"{_asset_path(context)}: {len(missing)} upstream partition(s) not materialized "
                "yet, loaded without them"
            )
        frame = pl.concat(frames, how="vertical") if frames else contract.empty()
        if not wants_metadata:
            return frame
        distinct = {tuple(sorted(m.items())) for _, m in metadata}
        if len(distinct) > 1:
            raise ValueError(
                f"{_asset_path(context)} partitions {metadata[0][0]}..{metadata[-1][0]} were "
                "written by different runs (their file metadata differ); re-materialize the "
                "whole range in one run (single-run backfill) before using them together"
            )
        return FrameWithMetadata(frame, metadata[0][1] if metadata else {})

    def _file_metadata(self, path: UPath) -> dict[str, str]:
        with path.open("rb") as handle:
            return pl.read_parquet_metadata(handle)


def _run_partition_keys(context: InputContext, candidates: list[str]) -> set[str]:
    """The keys among `candidates` that are partitions of the running step itself."""
    try:
        window = context.step_context.partition_key_range
    except Exception:  # no run partitions known (direct invocation): treat all as own
        return set(candidates)
    return {k for k in candidates if window.start <= k <= window.end}


def read_file_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Key-value metadata of a stored partition file (see FrameWithMetadata)."""
    return pl.read_parquet_metadata(path)


def partition_path(base: str, asset_key_path: str, day: date | str) -> UPath:
    """Where a partition lives; the single definition of the layout outside the IO manager."""
    key = day if isinstance(day, str) else day.isoformat()
    return UPath(base) / asset_key_path / f"{key}.parquet"


class ParquetIOManager(ConfigurableIOManagerFactory):
    """Config: `base_dir` is a local directory or an fsspec URL; `storage_options` go to fsspec."""

    base_dir: str = Field(description="Local directory or fsspec URL (s3://..., gs://...).")
    storage_options: dict[str, Any] = Field(default_factory=dict)

    def create_io_manager(self, context) -> ParquetPartitionIOManager:
        return ParquetPartitionIOManager(UPath(self.base_dir, **self.storage_options))
