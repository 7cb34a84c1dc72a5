"""The one IO manager: exactly one parquet file per asset partition, written atomically.

Layout: `<base>/<asset key path>/<YYYY-MM-DD>.parquet`, where base is a local directory or an
fsspec URL (`s3://bucket/prefix`, `gs://...`; the matching fsspec package must be installed).

- The frame written is the asset's declared contract (`contracts/tables.py`): columns in order,
  dtypes as declared, no silent casts. A frame that breaks its contract raises before anything is
  written, so what was stored stays intact.
- Local writes go to a hidden temporary file beside the target, are fsynced and renamed over it
  (`os.replace`), and the folder is fsynced after the rename, so a crash or kill mid-write never
  leaves a partial file at the final path and a completed write survives a power cut. A temporary
  file is named for its writer (`.<file>.<host>.<pid>.<random>.tmp`), so the next write to the
  folder can sweep those of killed writers (see `sweep_stale_temp_files`). Object stores only
  make an object visible once its upload completes.
- A run over a partition range (`BackfillPolicy.single_run`) hands over one frame for the whole
  range (split here by the contract's partition column) or a mapping of partition key to frame;
  either way one file per day is written, empty days included, so "materialized" always means
  "the file exists".
- Inputs always arrive as one frame, whether the partition mapping selected one upstream
  partition or many: the days are concatenated in key order.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl
from dagster import (
    ConfigurableIOManagerFactory,
    DataVersion,
    Failure,
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
from energy_assets.partitions import FIRST_DAY
from energy_assets.versions import combined, content_hash, input_fingerprint


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
    _load: Any = field(repr=False)  # key -> (frame, the file's own key-value metadata)
    _exists: Any = field(default=None, repr=False)

    def load(self, key: str) -> pl.DataFrame:
        return self._load(key)[0]

    def load_with_metadata(self, key: str) -> FrameWithMetadata:
        frame, footer = self._load(key)
        return FrameWithMetadata(frame, footer)

    def stored(self, key: str) -> bool:
        """Whether the partition is in the store (loading an absent one raises)."""
        return True if self._exists is None else bool(self._exists(key))


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


WINDOW_KEY = "window_days"
"""Input metadata `{"window_days": (before, after)}`: the asset reads day D's input over
[D - before, D + after]. Dagster sees a same-day dependency (so a backfill of A..B targets exactly
A..B); the IO manager loads the context days from the store. See `window()`."""

FOOTER_CONTENT_HASH = "energy_assets.content_hash"
FOOTER_PROVISIONAL = "energy_assets.provisional"
OWN_FOOTER_KEYS = (FOOTER_CONTENT_HASH, FOOTER_PROVISIONAL)
"""Footer keys the IO manager writes itself; an asset's own file metadata never contains them."""

PROVISIONAL_RUN_TAG = "energy_assets/provisional_days"
WHOLE = "-"
"""The lineage key of an unpartitioned asset (whole-range artifacts: statistics, sequences)."""


def window(before: int, after: int) -> dict[str, Any]:
    """Input metadata for a context window of `before` days back and `after` days ahead."""
    if before < 0 or after < 0:
        raise ValueError(f"window days must be >= 0, got ({before}, {after})")
    return {WINDOW_KEY: [before, after]}


@dataclass
class _InputRecord:
    """What one input of a step read: every day's content hash (None = not stored), whether a
    stored day is provisional, and the window it was read with (None = whole range)."""

    window: tuple[int, int] | None
    hashes: dict[str, str | None] = field(default_factory=dict)
    provisional: set[str] = field(default_factory=set)


def _shift(key: str, days: int) -> str:
    return (date.fromisoformat(key) + timedelta(days=days)).isoformat()


def _days(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def day_lineage(
    day: str, inputs: Mapping[str, _InputRecord]
) -> tuple[dict[str, dict[str, str | None]], list[str], list[str]]:
    """For output day `day`: the input days it depends on (with their hashes), the right-hand
    context days that were missing, and the stored input days that were provisional."""
    read: dict[str, dict[str, str | None]] = {}
    missing_right: list[str] = []
    provisional: list[str] = []
    for asset, record in inputs.items():
        if record.window is None:
            days = dict(record.hashes)
        else:
            before, after = record.window
            span = set(_days(_shift(day, -before), _shift(day, after)))
            days = {d: h for d, h in record.hashes.items() if d in span}
            missing_right += [f"{asset}@{d}" for d, h in days.items() if h is None and d > day]
        read[asset] = days
        provisional += [f"{asset}@{d}" for d in sorted(record.provisional & set(days))]
    return read, sorted(missing_right), provisional


class ParquetPartitionIOManager(UPathIOManager):
    extension = ".parquet"

    def __init__(self, base_path: UPath) -> None:
        super().__init__(base_path=base_path)
        self._local = base_path.protocol in ("", "file", "local")
        # Inputs read by the step now running in this process, for the lineage of its outputs.
        self._reads: dict[tuple[str, str], dict[str, _InputRecord]] = {}

    def day_path(self, asset_key_path: Sequence[str], key: str) -> UPath:
        return self._base_path.joinpath(*asset_key_path, f"{key}{self.extension}")

    # --- writing -------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        contract = contract_for(_asset_path(context))
        file_metadata: dict[str, str] = {}
        if isinstance(obj, FrameWithMetadata):
            file_metadata, obj = obj.file_metadata, obj.frame
        clash = set(file_metadata) & set(OWN_FOOTER_KEYS)
        if clash:
            raise ValueError(f"file metadata keys {sorted(clash)} are reserved for the IO manager")
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
        inputs = self._reads.pop((context.run_id, context.step_key), {})
        step = dict(context.output_metadata or {})
        seconds = float(getattr(step.get("step_duration_s"), "value", 0.0) or 0.0)
        total_rows = sum(f.height for f in frames.values())
        hashes: dict[Any, str] = {}
        provisional_days: list[str] = []
        for key, frame in frames.items():
            digest = content_hash(
                frame, file_metadata, contract.volatile_columns, contract.primary_key
            )
            hashes[key] = digest
            per_day: dict[str, Any] = {
                "rows": MetadataValue.int(frame.height),
                "dagster/row_count": MetadataValue.int(frame.height),
                "content_hash": MetadataValue.text(digest),
            }
            provisional = False
            if key is None and inputs:
                read = {asset: dict(record.hashes) for asset, record in inputs.items()}
                per_day["input_fingerprint"] = MetadataValue.text(input_fingerprint(read))
                # the days read, so a planner can tell later whether they changed
                per_day["input_days"] = MetadataValue.json(
                    {asset: sorted(hashes) for asset, hashes in read.items()}
                )
            if key is not None:
                read, missing_right, upstream_provisional = day_lineage(key, inputs)
                provisional = bool(missing_right or upstream_provisional)
                per_day["input_fingerprint"] = MetadataValue.text(input_fingerprint(read))
                per_day["provisional"] = MetadataValue.bool(provisional)
                if provisional:
                    provisional_days.append(key)
                    per_day["provisional_because"] = MetadataValue.json(
                        {
                            "missing": missing_right[:20],
                            "provisional_inputs": upstream_provisional[:20],
                        }
                    )
                share = frame.height / total_rows if total_rows else 1 / len(frames)
                per_day["duration_s"] = MetadataValue.float(round(seconds * share, 4))
            footer = {
                **file_metadata,
                FOOTER_CONTENT_HASH: digest,
                FOOTER_PROVISIONAL: "true" if provisional else "false",
            }
            per_day["bytes_written"] = MetadataValue.int(self._write(paths[key], frame, footer))
            per_day["path"] = MetadataValue.path(str(paths[key]))
            if key is None:
                context.add_output_metadata(per_day)
            else:
                context.step_context.add_asset_metadata(
                    per_day, asset_key=context.asset_key, partition_key=key
                )
        context.add_output_metadata(
            {
                "dagster/column_schema": column_schema(contract),
                "contract": MetadataValue.text(contract.name),
            }
        )
        # Dagster keeps one data version per materialization event set: exact for one day,
        # a combination of the days' content hashes for a ranged run.
        version = next(iter(hashes.values())) if len(hashes) == 1 else combined(hashes.values())
        context.step_context.set_data_version(context.asset_key, DataVersion(version))
        if provisional_days:
            context.step_context.instance.add_run_tags(
                context.run_id,
                {
                    f"{PROVISIONAL_RUN_TAG}/{'.'.join(context.asset_key.path)}": _span(
                        provisional_days
                    )
                },
            )
            context.log.info(
                f"{_asset_path(context)}: {len(provisional_days)} provisional day(s) "
                f"({_span(provisional_days)}): context days after them are not stored yet; "
                "re-materialize with `energy-assets backfill --refresh-provisional` once they are"
            )

    def _write(self, path: UPath, frame: pl.DataFrame, file_metadata: dict[str, str]) -> int:
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True, metadata=file_metadata)
        data = buffer.getvalue()
        if self._local:
            target = os.fspath(path.path if hasattr(path, "path") else path)
            try:
                write_atomically(target, data)
            except OSError as exc:
                # Not retried (a Failure with allow_retries=False overrides any RetryPolicy):
                # storage that refuses a write now refuses it in 30 s too.
                raise Failure(
                    description=f"cannot write partition file {target}: {exc}. The storage is "
                    "not writable (permissions, a read-only or full disk, a file where a folder "
                    "should be): fix it, or point the io_manager's base_dir elsewhere, then "
                    "re-run the partitions.",
                    allow_retries=False,
                ) from exc
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

    def _record(self, context: InputContext) -> _InputRecord | None:
        """The lineage record of this input, when it feeds an asset step (not a check)."""
        try:
            step_key = context.step_context.step.key
            run_id = context.step_context.run_id
        except Exception:  # direct invocation: no step, no lineage
            return None
        window_days = context.definition_metadata.get(WINDOW_KEY)
        record = _InputRecord(window=tuple(window_days) if window_days is not None else None)
        reads = self._reads.get((run_id, step_key))
        if reads is None:
            # one step at a time per process: forget steps that wrote nothing (checks)
            self._reads = {(run_id, step_key): {}}
            reads = self._reads[(run_id, step_key)]
        reads[_asset_path(context)] = record
        return record

    def _read_day(self, context, path: UPath, record: _InputRecord | None, key: str):
        """(frame, user file metadata) of one stored day; notes its hash and status."""
        frame = self.load_from_path(context, path)
        footer = self._file_metadata(path)
        if record is not None:
            record.hashes[key] = footer.get(FOOTER_CONTENT_HASH) or "unversioned"
            if footer.get(FOOTER_PROVISIONAL) == "true":
                record.provisional.add(key)
        return frame, {k: v for k, v in footer.items() if k not in OWN_FOOTER_KEYS}

    def load_input(
        self, context: InputContext
    ) -> pl.DataFrame | FrameWithMetadata | PartitionLoader:
        """One frame for the input's days, widened by the input's context window when it has
        one; with a `FrameWithMetadata` annotation the parquet key-value metadata comes too (it
        must agree across the loaded days); with `PartitionLoader`, one day at a time."""
        contract = contract_for(_asset_path(context))
        wants_metadata = context.dagster_type.typing_type is FrameWithMetadata
        record = self._record(context)
        if not context.has_asset_partitions:
            path = self._get_path(context)
            if not self.path_exists(path):
                raise FileNotFoundError(
                    f"{_asset_path(context)} is not stored under {self._base_path}; "
                    "materialize it first, then re-run."
                )
            frame, footer = self._read_day(context, path, record, WHOLE)
            return FrameWithMetadata(frame, footer) if wants_metadata else frame
        own = sorted(context.asset_partition_keys)
        path_of = functools.partial(self.day_path, context.asset_key.path)
        if context.dagster_type.typing_type is PartitionLoader:

            def load(key: str) -> tuple[pl.DataFrame, dict[str, str]]:
                path = path_of(key)
                if not self.path_exists(path):
                    raise FileNotFoundError(
                        f"{_asset_path(context)} has no stored partition {key} under "
                        f"{self._base_path}; materialize it first, then re-run."
                    )
                return self._read_day(context, path, record, key)

            return PartitionLoader(own, load, lambda key: self.path_exists(path_of(key)))
        before, after = context.definition_metadata.get(WINDOW_KEY, (0, 0))
        first = max(_shift(own[0], -before), FIRST_DAY)
        keys = _days(first, _shift(own[-1], after))
        frames, missing, metadata = [], [], []
        for key in keys:
            path = path_of(key)
            if self.path_exists(path):
                frame, footer = self._read_day(context, path, record, key)
                frames.append(frame)
                metadata.append((key, footer))
            else:
                missing.append(key)
                if record is not None:
                    record.hashes[key] = None
        absent_own = sorted(set(missing) & set(own))
        if absent_own:
            raise FileNotFoundError(
                f"{_asset_path(context)} has no stored partition(s) {absent_own[:5]}"
                f"{' ...' if len(absent_own) > 5 else ''} under {self._base_path}; materialize "
                "them first (or backfill the range), then re-run."
            )
        if missing:
            context.log.info(
                f"{_asset_path(context)}: {len(missing)} context day(s) not stored "
                f"({_span(missing)}), loaded without them"
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

    def stored_partition(self, asset_key_path: Sequence[str], key: str) -> pl.DataFrame | None:
        """A partition as it is stored now (None: not stored), read outside the step's inputs
        and its lineage: for an asset that compares what it is about to write with what its
        previous run wrote (the raw revisions), while that file is still in place."""
        path = self.day_path(asset_key_path, key)
        return self.load_from_path(None, path) if self.path_exists(path) else None  # type: ignore[arg-type]

    def _file_metadata(self, path: UPath) -> dict[str, str]:
        with path.open("rb") as handle:
            return pl.read_parquet_metadata(handle)


# --- the local write path ------------------------------------------------------------------------

STALE_TEMP_AGE_S = 3600.0
"""A temporary file older than this is swept even if a process with its writer's pid runs (pids
are reused; no write of one partition file takes an hour)."""
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$"
)
_OLD_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")  # before the pid was in the name


def temp_path_for(target: str) -> str:
    """Where the writer of `target` puts its bytes first: beside it, named for this process."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    except (OverflowError, ValueError):
        return False
    return True


def sweep_stale_temp_files(folder: str, max_age_s: float = STALE_TEMP_AGE_S) -> list[str]:
    """Delete the temporary files of writers that died mid-write; returns the names deleted.

    Stale means: written on this host by a pid that no longer runs, or older than `max_age_s`
    (another host's writer, a reused pid, a name from before pids were recorded). A live
    writer's fresh file is left alone. Other files in the folder are never touched.
    """
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        match = _TEMP_NAME.match(name)
        if match is None and not _OLD_TEMP_NAME.match(name):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
        dead = match is not None and match["host"] == _HOST and not _pid_alive(int(match["pid"]))
        if dead or age > max_age_s:
            try:
                os.unlink(entry.path)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


def _fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (POSIX: the directory entry lives in the folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms where a folder cannot be opened (Windows) have no such fsync
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems without folder fsync
            raise
    finally:
        os.close(fd)


def write_atomically(target: str, data: bytes) -> None:
    """`data` at `target`, all or nothing, durable once this returns.

    Sweeps the folder's stale temporary files first, so killed writers leave nothing behind
    for longer than the next write to the same folder.
    """
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    sweep_stale_temp_files(folder)
    temporary = temp_path_for(target)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _span(days: Sequence[str]) -> str:
    ordered = sorted(days)
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]}..{ordered[-1]} ({len(ordered)})"


def read_file_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Key-value metadata of a stored partition file (see FrameWithMetadata)."""
    return pl.read_parquet_metadata(path)


def partition_path(base: str, asset_key_path: str, day: date | str) -> UPath:
    """Where a partition lives; the single definition of the layout outside the IO manager."""
    key = day if isinstance(day, str) else day.isoformat()
    return UPath(base) / asset_key_path / f"{key}.parquet"


class ParquetIOManager(ConfigurableIOManagerFactory):
    """Config: `base_dir` is a local directory or an fsspec URL; `storage_options` go to fsspec,
    and so do `storage_options_env` (option name -> environment variable), read when a step
    starts so that credentials never enter the resource config Dagster stores and shows."""

    base_dir: str = Field(description="Local directory or fsspec URL (s3://..., gs://...).")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    storage_options_env: dict[str, str] = Field(
        default_factory=dict, description="fsspec option -> environment variable holding it."
    )

    def create_io_manager(self, context) -> ParquetPartitionIOManager:
        options = dict(self.storage_options)
        for option, variable in self.storage_options_env.items():
            if variable not in os.environ:
                raise ValueError(
                    f"the data store option {option!r} comes from ${variable}, which is not set "
                    "in this process: export it where steps run (the Celery workers too)"
                )
            options[option] = os.environ[variable]
        return ParquetPartitionIOManager(UPath(self.base_dir, **options))
