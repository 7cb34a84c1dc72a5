"""The hourly UTC grid shared by every transform: time checks, long <-> matrix conversion.

Belongs here: helpers that turn a long table (one row per key and hour) into a dense
hours x series float matrix and back, and the checks on the platform's time column. The numeric
cores (screens, imputation) work on these matrices because their statistics are column-wise
rolling windows; the entry points in `align`, `clean` and `features` stay long-table in and out.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import polars as pl

try:  # C double-heap moving median: 4-7x faster than polars' centred/null-aware path
    import bottleneck as _bn
except ImportError:  # pragma: no cover - same results through polars, only slower
    _bn = None

try:  # glibc: return freed heap memory to the OS after threaded work
    _libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
    _libc.malloc_trim  # noqa: B018 - absent on musl
except (OSError, AttributeError):  # pragma: no cover - other C libraries
    _libc = None

TIME = pl.Datetime("us", "UTC")
TIME_COL = "interval_start_utc"
HOUR = timedelta(hours=1)
HOUR_US = 3_600_000_000


def as_utc(value: datetime, name: str) -> datetime:
    """A timezone-aware UTC datetime on the hour (partition bounds are whole hours)."""
    if value.tzinfo is None:
        raise ValueError(
            f"{name}={value!r} is timezone-naive; pass an aware UTC datetime, "
            f"e.g. datetime(2024, 1, 1, tzinfo=timezone.utc)"
        )
    if value.utcoffset() != timedelta(0):
        raise ValueError(f"{name}={value.isoformat()} is not UTC; convert it with .astimezone(UTC)")
    if value.minute or value.second or value.microsecond:
        raise ValueError(
            f"{name}={value.isoformat()} is not on the hour; partitions are whole hours"
        )
    return value


def check_time_column(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Cast `interval_start_utc` to Datetime(us, UTC); refuse naive or non-UTC timestamps."""
    if TIME_COL not in df.columns:
        raise ValueError(f"{what} has no `{TIME_COL}` column (columns: {df.columns})")
    dtype = df.schema[TIME_COL]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"{what}.{TIME_COL} has dtype {dtype}; expected Datetime('us', 'UTC')")
    if dtype.time_zone != "UTC":
        raise ValueError(
            f"{what}.{TIME_COL} has time zone {dtype.time_zone!r}; the platform is UTC: convert "
            f"once in the parser (dt.convert_time_zone('UTC'))"
        )
    if dtype != TIME:
        df = df.with_columns(pl.col(TIME_COL).cast(TIME))
    return df


def require_columns(df: pl.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (has {df.columns})")


def hour_grid(start: datetime, end: datetime) -> pl.Series:
    """Every hour in [start, end) as a TIME series."""
    if end <= start:
        return pl.Series(TIME_COL, [], dtype=TIME)
    return (
        pl.datetime_range(start, end - HOUR, interval="1h", eager=True, time_zone="UTC")
        .alias(TIME_COL)
        .cast(TIME)
    )


def encode(column: pl.Series) -> tuple[list[str], np.ndarray]:
    """(sorted distinct non-null values, code per row); nulls get code len(values)."""
    values = column.unique().drop_nulls().sort()
    codes = column.cast(pl.Enum(values)).to_physical().fill_null(values.len())
    return values.to_list(), codes.to_numpy().astype(np.int64)


def key_columns(
    long: pl.DataFrame, key_cols: tuple[str, ...], key_attrs: tuple[str, ...] = ()
) -> tuple[pl.DataFrame, np.ndarray]:
    """(distinct keys in sorted order with their `key_attrs`, key index of every row).

    Tables already grouped by key in sorted order (what `align` and `clean` emit) take a fast
    path: key changes between neighbouring rows, verified sorted on the few change rows only.
    Anything else is encoded column by column.
    """
    keys = _grouped_keys(long, key_cols, key_attrs)
    if keys is not None:
        return keys
    names, codes = [], []
    for col in key_cols:
        values, code = encode(long.get_column(col).cast(pl.Utf8))
        names.append([*values, None])
        codes.append(code)
    sizes = [len(n) for n in names]
    combo = np.zeros(long.height, dtype=np.int64)
    for code, size in zip(codes, sizes, strict=True):
        combo = combo * size + code
    present = (
        np.flatnonzero(np.bincount(combo, minlength=int(np.prod(sizes))))
        if long.height
        else np.array([], dtype=np.int64)
    )
    col_of = np.full(int(np.prod(sizes)), -1, dtype=np.int64)
    col_of[present] = np.arange(len(present))
    col = col_of[combo]
    key_data, rest = {}, present.copy()
    for name, size, labels in reversed(list(zip(key_cols, sizes, names, strict=True))):
        key_data[name] = [labels[c] for c in (rest % size)]
        rest //= size
    table = pl.DataFrame({k: key_data[k] for k in key_cols}, schema={k: pl.Utf8 for k in key_cols})
    if key_attrs:
        attrs = (
            long.select(*key_attrs)
            .with_columns(pl.Series("_col", col))
            .group_by("_col")
            .agg(pl.col(a).drop_nulls().min() for a in key_attrs)
            .sort("_col")
        )
        table = table.with_columns(attrs.select(key_attrs))
    return table, col


def _grouped_keys(
    long: pl.DataFrame, key_cols: tuple[str, ...], key_attrs: tuple[str, ...]
) -> tuple[pl.DataFrame, np.ndarray] | None:
    """`key_columns` for a table whose rows come key by key in ascending key order, else None."""
    if long.height == 0:
        return None
    columns = [long.get_column(c).cast(pl.Utf8) for c in key_cols]
    if any(c.null_count() for c in columns):
        return None
    change = np.zeros(long.height, dtype=bool)
    change[0] = True
    for c in columns:
        change[1:] |= c.ne_missing(c.shift(1)).to_numpy()[1:]
    starts = np.flatnonzero(change)
    if len(starts) > long.height // 2:
        return None  # hardly grouped: nothing to gain
    firsts = [c.gather(starts) for c in columns]
    ascending = pl.Series(np.zeros(len(starts) - 1, dtype=bool))  # key i+1 > key i
    equal = pl.Series(np.ones(len(starts) - 1, dtype=bool))
    for c in firsts:
        now, before = c.slice(1), c.slice(0, len(starts) - 1)
        ascending = ascending | (equal & (now > before))
        equal = equal & (now == before)
    if not ascending.all():
        return None  # not ascending, or a key comes back later
    table = pl.DataFrame([c.alias(k) for k, c in zip(key_cols, firsts, strict=True)])
    for name in key_attrs:
        attr = long.get_column(name)
        if attr.null_count() or attr.ne_missing(attr.shift(1)).to_numpy()[1:][~change[1:]].any():
            return None  # varies within a key: let the general path take the minimum
        table = table.with_columns(attr.gather(starts).alias(name))
    return table, np.cumsum(change) - 1


def to_matrix(
    long: pl.DataFrame,
    value_cols: list[str],
    key_cols: tuple[str, ...] = ("region", "series"),
    span: tuple[datetime, datetime] | None = None,
    key_attrs: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, int, int, dict[str, np.ndarray]]:
    """Scatter a long table onto a dense grid: (keys, t0_us, n_hours, {value_col: matrix}).

    The grid covers every hour from the earliest to the latest row, widened to `span` when given.
    `keys` holds the distinct key tuples in sorted order, one per matrix column, plus one column
    per `key_attrs` name: the smallest non-null value of that column over the key's rows (e.g.
    units, source). Nulls and absent hours become NaN. Duplicated (key, hour) rows are refused:
    `align` makes them unique, so a duplicate here means the caller skipped it. Key strings are
    encoded to integer codes (no string join or hash over the rows).
    """
    if long.height == 0 and span is None:
        empty = long.select(*key_cols, *key_attrs).head(0)
        return empty, 0, 0, {c: np.empty((0, 0)) for c in value_cols}
    keys, col = key_columns(long, key_cols, key_attrs)

    us = long.get_column(TIME_COL).dt.epoch("us")
    lo = us.min() if long.height else None
    hi = us.max() if long.height else None
    if span is not None:
        s0 = int(span[0].timestamp() * 1_000_000)
        s1 = int(span[1].timestamp() * 1_000_000) - HOUR_US
        lo = s0 if lo is None else min(lo, s0)
        hi = s1 if hi is None else max(hi, s1)
    n_hours = int((hi - lo) // HOUR_US + 1) if lo is not None and hi >= lo else 0
    if long.height and ((us - lo) % HOUR_US != 0).any():
        raise ValueError(
            "timestamps are not on whole hours; run `align` first (it averages sub-hourly rows)"
        )
    row = ((us - (lo or 0)) // HOUR_US).to_numpy().astype(np.int64)
    flat = row * max(keys.height, 1) + col
    if len(flat) and np.bincount(flat, minlength=1).max() > 1:
        raise ValueError(
            "the table has duplicated (region, series, interval_start_utc) rows; pass it through "
            "`align` (which resolves duplicates) before screening"
        )
    out = {}
    for name in value_cols:
        m = np.full((n_hours, keys.height), np.nan)
        m[row, col] = long.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
        out[name] = m
    return keys, int(lo) if lo is not None else 0, n_hours, out


def matrix_to_long(
    keys: pl.DataFrame,
    t0_us: int,
    columns: dict[str, np.ndarray | pl.Series],
    rows: slice | None = None,
) -> pl.DataFrame:
    """Gather matrices back into a long table: one row per (key, hour) in `rows`.

    Values are column-major (all hours of key 0, then key 1, ...), so sorting by key then time
    is free. NaN in float matrices become null.
    """
    first = next(iter(columns.values()))
    n_hours = first.shape[0]
    r0, r1 = (0, n_hours) if rows is None else (rows.start or 0, rows.stop or n_hours)
    r0, r1 = max(r0, 0), min(r1, n_hours)
    n = max(r1 - r0, 0)
    n_keys = keys.height
    us = t0_us + np.arange(r0, r1, dtype=np.int64) * HOUR_US
    data: dict[str, pl.Series] = {}
    for name in keys.columns:
        data[name] = keys.get_column(name).gather(np.repeat(np.arange(n_keys), n))
    data[TIME_COL] = pl.Series(TIME_COL, np.tile(us, n_keys)).cast(TIME)
    for name, m in columns.items():
        block = m[r0:r1]
        flat = block.T.reshape(-1)
        s = pl.Series(name, flat)
        if s.dtype.is_float():
            s = s.fill_nan(None)
        data[name] = s
    return pl.DataFrame(data).select([TIME_COL, *keys.columns, *columns.keys()])


def rolling(
    x: np.ndarray,
    how: str,
    window: int,
    *,
    center: bool = True,
    min_samples: int = 1,
    quantile: float | None = None,
) -> np.ndarray:
    """Column-wise rolling statistic of a float matrix with NaN as missing (pandas semantics).

    Polars skips nulls inside the window and, for an even window centred, covers
    [t - w/2, t + w/2 - 1], the same rows as pandas' `rolling(w, center=True)`.
    """
    if x.size == 0:
        return x.copy()
    if how == "median" and _bn is not None:
        return _moving_median(x, window, center=center, min_samples=min_samples)
    cols = np.asfortranarray(x, dtype=np.float64)  # column slices become zero-copy Series
    frame = pl.DataFrame([pl.Series(f"c{i}", cols[:, i]) for i in range(cols.shape[1])])
    frame = frame.fill_nan(None)
    if how == "median":
        expr = pl.all().rolling_median(window, min_samples=min_samples, center=center)
    elif how == "mean":
        expr = pl.all().rolling_mean(window, min_samples=min_samples, center=center)
    elif how == "std":
        expr = pl.all().rolling_std(window, min_samples=min_samples, center=center)
    elif how == "sum":
        expr = pl.all().rolling_sum(window, min_samples=min_samples, center=center)
    elif how == "max":
        expr = pl.all().rolling_max(window, min_samples=min_samples, center=center)
    elif how == "quantile":
        assert quantile is not None
        expr = pl.all().rolling_quantile(
            quantile, "linear", window, min_samples=min_samples, center=center
        )
    else:
        raise ValueError(f"unknown rolling statistic {how!r}")
    out = frame.select(expr).to_numpy()
    return np.asarray(out, dtype=np.float64)


def _moving_median(x: np.ndarray, window: int, *, center: bool, min_samples: int) -> np.ndarray:
    """`rolling(x, "median", ...)` through bottleneck: NaN skipped, same windows as polars.

    bottleneck's window trails (rows t - w + 1 .. t); a centred window is the trailing one that
    ends at t + w // 2 (odd w) or t + w // 2 - 1 (even w, as polars and pandas), so the rows are
    padded with that many NaN at the end (a NaN is skipped, so windows truncated at the last row
    keep the rows present) and the result is read that many rows later; a window longer than
    the rows also gets NaN rows in front. Equal to polars bit for
    bit: both average the two middle values of an even count as (a + b) / 2.
    """
    n, m = x.shape
    lead = (window // 2 if window % 2 else window // 2 - 1) if center else 0
    front = max(window - n - lead, 0)  # bottleneck wants window <= length; NaN rows are skipped
    padded = np.full((m, front + n + lead), np.nan)  # series along the contiguous axis
    padded[:, front : front + n] = x.T

    def run(block: np.ndarray) -> np.ndarray:
        return _bn.move_median(block, window, min_count=min_samples, axis=1)

    # bottleneck releases the GIL: two column halves on two cores, unless the caller already
    # runs in a worker thread (clean's blocks) or polars was limited to one thread
    if (
        m >= 32
        and pl.thread_pool_size() > 1
        and threading.current_thread() is threading.main_thread()
    ):
        half = m // 2
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(run, (padded[:half], padded[half:])))
        med = np.vstack(parts)
    else:
        med = run(padded)
    return np.ascontiguousarray(med[:, front + lead :].T)


def release_freed_memory() -> None:
    """Hand memory freed by worker threads back to the OS (glibc keeps it in per-thread arenas,
    where the main thread cannot reuse it: the process's peak RSS then grows by what the
    threads once held). A no-op where the C library has no `malloc_trim`."""
    if _libc is not None:
        _libc.malloc_trim(0)


def shift_rows(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted down by k rows (row t holds x[t - k]); vacated rows are NaN."""
    out = np.full_like(x, np.nan, dtype=np.float64)
    if k == 0:
        out[:] = x
    elif 0 < k < len(x):
        out[k:] = x[:-k]
    elif -len(x) < k < 0:
        out[:k] = x[-k:]
    return out


def same_hour_median(x: np.ndarray, days: int) -> np.ndarray:
    """Median of x[t + 24 k] for k = -days..days (NaN skipped, out of range ignored).

    Equal to a centred rolling median over days of each hour-of-window series, so it is one
    rolling call on an (n_days, 24 * n_series) reshape instead of 2 * days + 1 shifted copies.
    """
    n, m = x.shape
    n_days = -(-n // 24)
    padded = np.full((n_days * 24, m), np.nan)
    padded[:n] = x
    by_day = padded.reshape(n_days, 24 * m)
    med = rolling(by_day, "median", 2 * days + 1)
    return med.reshape(n_days * 24, m)[:n]
