"""Parquet / polars -> MLX tensors with at most one copy, and safetensors export with metadata.

What belongs here: moving stored frames into `mx.array`s (and back out to safetensors), the
JSON metadata blob carried in parquet key-value metadata, and batch gathering by window index.

Parquet metadata: one JSON blob under the key `energy_assets.ml` in the file's key-value
metadata (footer). `write_parquet` puts it there through polars; a pyarrow writer puts schema
metadata there too (`table.replace_schema_metadata(encode_parquet_metadata(meta))`). Read it
with `read_parquet_metadata(path)` (= `pl.read_parquet_metadata`, or
`pq.read_metadata(path).metadata`) without reading any data.

The one-copy route (shared/docs/ring_attention_mlx.md section 4): numpy -> `mx.array` always
copies, but the numpy view of an evaluated `mx.array` is writable and shares its memory (MLX
documents this in "Conversion to NumPy"). So the destination tensor is allocated in MLX and
every arrow chunk (a zero-copy numpy view for primitive columns without nulls) is written into
it once, with dtype conversion in the same pass. Scattering rows to (region, hour) order uses
numpy fancy assignment, still one write per value. Two exceptions, both decoding rather than
copying: booleans are bit-packed in arrow and are unpacked, and a column with nulls is
materialised with NaN before the write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import polars as pl
import pyarrow as pa

PARQUET_METADATA_KEY = "energy_assets.ml"
SAFETENSORS_METADATA_KEY = "energy_assets"
VALID_PREFIX = "valid__"  # = dataset.VALID_PREFIX (not imported: the loader stands alone)
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_NP_DTYPE = {mx.float32: np.float32, mx.int32: np.int32, mx.int64: np.int64, mx.bool_: np.bool_}

# --------------------------------------------------------------------------- parquet metadata


def encode_parquet_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The key-value pair to put into a parquet schema's metadata (JSON under one key)."""
    return {PARQUET_METADATA_KEY: json.dumps(metadata, sort_keys=True, default=str)}


def decode_parquet_metadata(kv: Mapping[str | bytes, str | bytes] | None) -> dict[str, Any]:
    """Inverse of `encode_parquet_metadata`; raises when the key is absent."""
    kv = kv or {}
    for key, value in kv.items():
        name = key.decode() if isinstance(key, bytes) else key
        if name == PARQUET_METADATA_KEY:
            return json.loads(value.decode() if isinstance(value, bytes) else value)
    raise KeyError(
        f"parquet metadata has no {PARQUET_METADATA_KEY!r} key (keys: {sorted(map(str, kv))}); "
        "was the file written with energy_assets.ml.loader.write_parquet?"
    )


def write_parquet(frame: pl.DataFrame, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Write `frame` with `metadata` as a JSON blob in the parquet key-value metadata."""
    frame.write_parquet(path, metadata=encode_parquet_metadata(metadata))


def read_parquet_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata blob of a parquet file, without reading its data."""
    return decode_parquet_metadata(pl.read_parquet_metadata(path))


# --------------------------------------------------------------------------- one-copy fill


def _mx_buffer(shape: tuple[int, ...], dtype: mx.Dtype) -> tuple[mx.array, np.ndarray]:
    """An evaluated MLX array and a writable numpy view of the same memory."""
    arr = mx.zeros(shape, dtype=dtype)
    mx.eval(arr)
    view = np.array(arr, copy=False)
    if not (view.flags.c_contiguous and view.flags.writeable) or (
        view.size and view.strides[-1] == 0
    ):
        raise RuntimeError(
            "MLX did not hand out a writable contiguous buffer; cannot fill in place"
        )
    return arr, view


def _chunk_numpy(chunk: pa.Array) -> np.ndarray:
    """A zero-copy view of a primitive chunk without nulls; otherwise a decoded array.

    Booleans are bit-packed in arrow, so they are always unpacked; nulls become NaN (floats).
    """
    primitive = pa.types.is_primitive(chunk.type) and not pa.types.is_boolean(chunk.type)
    return chunk.to_numpy(zero_copy_only=primitive and chunk.null_count == 0)


def _as_table(source: pl.DataFrame | pa.Table) -> pa.Table:
    return source.to_arrow() if isinstance(source, pl.DataFrame) else source


def columns_to_mx(
    source: pl.DataFrame | pa.Table,
    columns: Sequence[str],
    *,
    dtype: mx.Dtype = mx.float32,
    rows: np.ndarray | None = None,
    n_rows: int | None = None,
) -> mx.array:
    """Columns -> one [n_rows, len(columns)] MLX tensor, writing every value exactly once.

    `rows[i]` is the destination row of source row i (None: identity); `n_rows` defaults to the
    source height. Destination rows not written stay 0.
    """
    table = _as_table(source)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise KeyError(f"columns {missing} not in the frame (has {table.column_names})")
    n_rows = table.num_rows if n_rows is None else n_rows
    arr, view = _mx_buffer((n_rows, len(columns)), dtype)
    for j, name in enumerate(columns):
        offset = 0
        for chunk in table.column(name).chunks:
            n = len(chunk)
            if n == 0:
                continue
            src = _chunk_numpy(chunk)
            if rows is None:
                view[offset : offset + n, j] = src
            else:
                view[rows[offset : offset + n], j] = src
            offset += n
    return arr


# --------------------------------------------------------------------------- dataset tensors


@dataclass
class DatasetTensors:
    """The dataset as MLX tensors on the (region, hour) grid, plus the window index.

    target/target_raw/is_observed/is_pad/loss_weight: [R, T]; known: [R, T, Fk]; past:
    [R, T, Fp]; window_region/window_origin: [W] int32; window_split: [W] int32 codes
    (train 0, val 1, test 2); valid_known / valid_past: [R, T, Fk] / [R, T, Fp] bool, the
    `valid__<name>` masks of the covariates in the same order (1 = the covariate had a value).
    """

    target: mx.array
    target_raw: mx.array
    known: mx.array
    past: mx.array
    is_observed: mx.array
    is_pad: mx.array
    loss_weight: mx.array
    window_region: mx.array
    window_origin: mx.array
    window_split: mx.array
    metadata: dict[str, Any]
    valid_known: mx.array | None = None
    valid_past: mx.array | None = None

    def arrays(self) -> dict[str, mx.array]:
        """Named tensors for `export_safetensors`."""
        return {
            "target": self.target,
            "target_raw": self.target_raw,
            "known": self.known,
            "past": self.past,
            "is_observed": self.is_observed,
            "is_pad": self.is_pad,
            "loss_weight": self.loss_weight,
            "windows.region_index": self.window_region,
            "windows.origin_t": self.window_origin,
            "windows.split": self.window_split,
        } | {
            name: value
            for name, value in (("valid_known", self.valid_known), ("valid_past", self.valid_past))
            if value is not None
        }

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))


def _read_tables(
    source: pl.DataFrame | str | Path | Sequence[str | Path], metadata: dict[str, Any] | None
) -> tuple[pa.Table, dict[str, Any]]:
    if isinstance(source, pl.DataFrame):
        if metadata is None:
            raise ValueError("pass the dataset metadata together with an in-memory frame")
        return source.to_arrow(), metadata
    paths = [source] if isinstance(source, str | Path) else list(source)
    if not paths:
        raise ValueError("no parquet files given")
    # Same run -> byte-identical metadata blobs: compare strings, decode JSON only when needed.
    blobs = [pl.read_parquet_metadata(p).get(PARQUET_METADATA_KEY) for p in paths]
    if blobs.count(blobs[0]) != len(blobs):
        fingerprints = {
            str(p): decode_parquet_metadata({PARQUET_METADATA_KEY: b}).get("statistics_fingerprint")
            for p, b in zip(paths, blobs, strict=True)
            if b is not None
        }
        if len(set(fingerprints.values())) != 1 or None in blobs:
            raise ValueError(
                f"partitions were normalised with different statistics or settings "
                f"(statistics_fingerprint differs or is missing among {len(paths)} files, e.g. "
                f"{paths[0]}): re-materialize the stale ml/dataset days (the UI marks them "
                "stale) so they share the current ml/normalization"
            )
    first = decode_parquet_metadata({PARQUET_METADATA_KEY: blobs[0]} if blobs[0] else None)
    # polars reads the files in parallel and keeps one chunk per file: no concatenation copy.
    table = pl.read_parquet(paths).to_arrow()
    return table, metadata or first


def load_dataset_tensors(
    source: pl.DataFrame | str | Path | Sequence[str | Path],
    metadata: dict[str, Any] | None = None,
) -> DatasetTensors:
    """`ml/dataset` partitions (or the in-memory `MLDataset.to_frame()`) -> `DatasetTensors`.

    Rows may come in any order (e.g. day partitions): each row is written to position
    region_index * T + (t - first t) of the [R, T] grid, T spanning the loaded hours. Missing
    hours stay 0 with is_pad = 0, so load a contiguous range of days for complete tensors.
    `window_origin` is relative to the first loaded hour (metadata `first_t`).
    """
    table, meta = _read_tables(source, metadata)
    cols = meta["feature_columns"]
    region_index = table.column("region_index").to_numpy().astype(np.int64, copy=False)
    # `t` is a position on the global grid: the tensors start at the first loaded hour.
    t_global = table.column("t").to_numpy().astype(np.int64, copy=False)
    first_t = int(t_global.min()) if t_global.size else 0
    n_regions = len(meta["regions"])
    n_steps = int(t_global.max()) - first_t + 1 if t_global.size else 0
    t = t_global - first_t
    meta = {**meta, "first_t": first_t, "n_steps": n_steps}
    if region_index.size and region_index.max() >= n_regions:
        raise ValueError(
            f"rows address region_index up to {region_index.max()}, beyond the metadata's "
            f"{n_regions} regions"
        )
    rows = region_index * n_steps + t
    if rows.size == n_regions * n_steps and np.array_equal(rows, np.arange(rows.size)):
        rows = None  # already in grid order: contiguous writes
    grid = n_regions * n_steps

    def fill(names: Sequence[str], dtype: mx.Dtype = mx.float32) -> mx.array:
        return columns_to_mx(table, names, dtype=dtype, rows=rows, n_rows=grid)

    def plane(name: str, dtype: mx.Dtype = mx.float32) -> mx.array:
        return fill([name], dtype).reshape(n_regions, n_steps)

    windows = (
        pl.from_arrow(table.select(["region_index", "t", "window_split"]))
        .filter(  # type: ignore[union-attr]
            pl.col("window_split").is_not_null()
        )
        .sort("region_index", "t")
    )
    split_codes = windows["window_split"].cast(pl.Utf8).replace_strict(SPLIT_CODES)
    names = cols["source_names"]

    def validity(group: Sequence[str]) -> mx.array:
        masks = [VALID_PREFIX + names[c] for c in group]
        if not masks:
            return mx.zeros((n_regions, n_steps, 0), dtype=mx.bool_)
        return fill(masks, mx.bool_).reshape(n_regions, n_steps, len(masks))

    return DatasetTensors(
        target=plane(cols["target"]),
        target_raw=plane(cols["raw_target"]),
        known=fill(cols["known"]).reshape(n_regions, n_steps, len(cols["known"])),
        past=fill(cols["past"]).reshape(n_regions, n_steps, len(cols["past"])),
        is_observed=plane("is_observed", mx.bool_),
        is_pad=plane("is_pad", mx.bool_),
        loss_weight=plane("loss_weight"),
        window_region=mx.array(windows["region_index"].to_numpy().astype(np.int32)),
        window_origin=mx.array((windows["t"].to_numpy() - first_t).astype(np.int32)),
        window_split=mx.array(split_codes.to_numpy().astype(np.int32)),
        metadata=meta,
        valid_known=validity(cols["known"]),
        valid_past=validity(cols["past"]),
    )


def gather_windows(
    tensors: DatasetTensors, window_ids: mx.array | np.ndarray
) -> dict[str, mx.array]:
    """A batch gathered on the fly from the series by window index (nothing materialised).

    Past-only covariates are returned for the context only; known covariates for context and
    horizon; targets of the horizon with their loss weights.
    """
    cfg = tensors.metadata["config"]
    ctx, h = int(cfg["context_length"]), int(cfg["horizon"])
    ids = mx.array(window_ids)
    region = tensors.window_region[ids][:, None]
    origin = tensors.window_origin[ids][:, None]
    past_t = origin + mx.arange(-ctx, 0)[None, :]
    future_t = origin + mx.arange(0, h)[None, :]
    return {
        "past_target": tensors.target[region, past_t],
        "past_is_observed": tensors.is_observed[region, past_t],
        "past_is_pad": tensors.is_pad[region, past_t],
        "past_known": tensors.known[region, past_t],
        "past_covariates": tensors.past[region, past_t],
        "future_known": tensors.known[region, future_t],
        "future_target": tensors.target[region, future_t],
        "future_target_raw": tensors.target_raw[region, future_t],
        "future_loss_weight": tensors.loss_weight[region, future_t],
        "region_index": region[:, 0],
        "origin_t": origin[:, 0],
    }


# --------------------------------------------------------------------------- ring tensors


def ring_segments_to_arrays(
    tokens: pl.DataFrame, metadata: Mapping[str, Any]
) -> dict[str, mx.array]:
    """Ring tokens -> `rank{r}.<field>` tensors of shape [S, L(, F)] plus perm/inverse_perm.

    Stored under per-rank keys so that each rank's `mx.load` evaluates only its own slice.
    """
    p, block = int(metadata["world_size"]), int(metadata["block_size"])
    n_seq = int(metadata["n_sequences"])
    features = list(metadata["feature_columns"])
    table = tokens.select(
        "rank",
        "sequence_id",
        "local_index",
        "position_id",
        "segment_id",
        "position_in_segment",
        "is_pad",
        "is_observed",
        "loss_weight",
        pl.col("interval_start_utc").dt.epoch("us").alias("timestamp_us"),
        *features,
    ).to_arrow()
    rows = (
        table.column("rank").to_numpy().astype(np.int64) * n_seq
        + table.column("sequence_id").to_numpy()
    ) * block + table.column("local_index").to_numpy()
    total = p * n_seq * block
    if rows.size != total:
        raise ValueError(f"expected {total} tokens (P x S x L), got {rows.size}")

    def grid(names: Sequence[str], dtype: mx.Dtype, trailing: bool = False) -> mx.array:
        out = columns_to_mx(table, names, dtype=dtype, rows=rows, n_rows=total)
        shape = (p, n_seq, block, len(names)) if trailing else (p, n_seq, block)
        return out.reshape(shape)

    fields = {
        "values": grid(features, mx.float32, trailing=True),
        "position_ids": grid(["position_id"], mx.int32),
        "segment_ids": grid(["segment_id"], mx.int32),
        "position_in_segment": grid(["position_in_segment"], mx.int32),
        "is_pad": grid(["is_pad"], mx.bool_),
        "is_observed": grid(["is_observed"], mx.bool_),
        "loss_weight": grid(["loss_weight"], mx.float32),
        "timestamps_us": grid(["timestamp_us"], mx.int64),
    }
    arrays = {f"rank{r}.{name}": value[r] for name, value in fields.items() for r in range(p)}
    arrays["perm"] = mx.array(np.asarray(metadata["perm"], dtype=np.int32))
    arrays["inverse_perm"] = mx.array(np.asarray(metadata["inverse_perm"], dtype=np.int32))
    return arrays


# --------------------------------------------------------------------------- safetensors


def export_safetensors(
    path: str | Path, arrays: Mapping[str, mx.array], metadata: Mapping[str, Any]
) -> None:
    """Save tensors with the JSON metadata in the safetensors header (`__metadata__`)."""
    mx.save_safetensors(
        str(path),
        dict(arrays),
        metadata={SAFETENSORS_METADATA_KEY: json.dumps(metadata, sort_keys=True, default=str)},
    )


def load_safetensors(path: str | Path) -> tuple[dict[str, mx.array], dict[str, Any]]:
    """Lazy load (each tensor is read when first evaluated) plus the decoded metadata."""
    arrays, meta = mx.load(str(path), return_metadata=True)
    if SAFETENSORS_METADATA_KEY not in meta:
        raise KeyError(
            f"{path} has no {SAFETENSORS_METADATA_KEY!r} metadata (keys {sorted(meta)}); "
            "export it with energy_assets.ml.loader.export_safetensors"
        )
    return arrays, json.loads(meta[SAFETENSORS_METADATA_KEY])
