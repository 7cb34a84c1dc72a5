"""Benchmark: align + screen + impute + features for a year of every balancing authority.

Input: the offline synthetic world (`energy_assets.offline.generator.SyntheticWorld`, default
defect rates) for --days days of EIA region data (D, DF, NG, TI for ~65 BAs) plus each BA's
temperature; a small built-in generator stands in when that module is absent. The raw rows are
written to parquet once; each variant then runs in a fresh subprocess (so its peak RSS is its
own) that reads them and runs the whole chain:

- ours:   `align` -> `clean` (Ruggles screens + blend imputation) -> `build_features` (polars and
          numpy, vectorised over hours and series);
- pandas: the same computation written plainly in pandas: groupby/unstack alignment, the Ruggles
          screens as in the reference implementation (rolling statistics on the wide frame,
          per-series concat-of-shifts medians, a Python loop for the sequential single-delta
          screen), the same blend imputation with DataFrame shift/rolling/ffill, and
          groupby-shift/rolling features with pandas' own federal-holiday calendar.

Both variants' outputs are compared (flag agreement, imputed-value and feature differences) so
the baseline is known to compute the same thing. Prints rows/s, wall time per stage, peak RSS and
the ratios, and writes perf_transform.json + .png to --out. Usage:

    python benchmarks/perf_transform.py                    # a year x all BAs, 3 repeats
    python benchmarks/perf_transform.py --days 30 --regions 4 --out /tmp/p   # smoke
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = datetime(2023, 1, 1, tzinfo=UTC)
TYPE_TO_SERIES = {
    "D": "demand",
    "DF": "demand_forecast_da",
    "NG": "net_generation",
    "TI": "total_interchange",
}
STAGES = ("align", "clean", "features")


# --------------------------------------------------------------------------------- input data


def build_inputs(days: int, regions: int, seed: int, folder: Path) -> dict:
    """Raw long rows and weather for the run, written as parquet; returns a description."""
    import polars as pl

    start, end = START, START + timedelta(days=days)
    try:
        from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
    except ImportError:
        raw, weather = _fallback_world(days, regions, seed)
        origin = "built-in fallback generator"
    else:
        codes = None
        if regions:
            codes = SyntheticWorld(GeneratorConfig(seed=seed)).respondents()[:regions]
        world = SyntheticWorld(GeneratorConfig(seed=seed, respondents=codes))
        region_data = world.eia_region_data(start, end)
        raw = region_data.select(
            "interval_start_utc",
            pl.col("respondent").alias("region"),
            pl.col("type").replace_strict(TYPE_TO_SERIES).alias("series"),
            "value",
            pl.lit("MW").alias("units"),
            pl.lit("eia930").alias("source"),
        )
        weather = world.truth_drivers(start, end).select(
            "interval_start_utc",
            pl.col("respondent").alias("region"),
            pl.lit("temperature_2m").alias("series"),
            pl.col("temperature_2m").alias("value"),
            pl.lit("degC").alias("units"),
            pl.lit("open_meteo").alias("source"),
        )
        origin = "energy_assets.offline.generator.SyntheticWorld (default defect rates)"
    raw.write_parquet(folder / "raw.parquet")
    weather.write_parquet(folder / "weather.parquet")
    return {
        "origin": origin,
        "days": days,
        "regions": int(raw.get_column("region").n_unique()),
        "raw_rows": raw.height,
        "weather_rows": weather.height,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def _fallback_world(days: int, regions: int, seed: int):
    import polars as pl

    rng = np.random.default_rng(seed)
    n, k = 24 * days, regions or 65
    t = pl.datetime_range(
        START, START + timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC"
    ).cast(pl.Datetime("us", "UTC"))
    h = np.arange(n)
    frames, wx = [], []
    for r in range(k):
        code = f"R{r:02d}"
        temp = 12 + 10 * np.sin(2 * np.pi * (h / 8760 - 0.3)) + 6 * np.sin(2 * np.pi * h / 24)
        temp = temp + np.convolve(rng.normal(0, 1, n), np.ones(48) / 8, "same")
        peak = rng.uniform(500, 80_000)
        d = peak * (0.6 + 0.15 * np.sin(2 * np.pi * (h % 24 - 8) / 24) + 0.01 * np.abs(temp - 18))
        d = np.round(d * (1 + rng.normal(0, 0.01, n)))
        d[rng.random(n) < 0.003] = np.nan
        d[rng.random(n) < 0.0005] *= 8
        ti = np.round(rng.normal(0, 0.05, n) * peak)
        series = {"demand": d, "demand_forecast_da": np.round(d * 1.02), "net_generation": d + ti}
        series["total_interchange"] = ti
        for name, v in series.items():
            frames.append(
                pl.DataFrame(
                    {"interval_start_utc": t, "region": code, "series": name}
                ).with_columns(pl.Series("value", v).fill_nan(None))
            )
        wx.append(pl.DataFrame({"interval_start_utc": t, "region": code, "value": temp}))
    raw = pl.concat(frames).with_columns(
        pl.lit("MW").alias("units"), pl.lit("eia930").alias("source")
    )
    weather = pl.concat(wx).with_columns(
        pl.lit("temperature_2m").alias("series"),
        pl.lit("degC").alias("units"),
        pl.lit("open_meteo").alias("source"),
    )
    return raw, weather.select(raw.columns)


# --------------------------------------------------------------------------------- ours


def run_ours(folder: Path, start: datetime, end: datetime, repeats: int) -> dict:
    import polars as pl

    from energy_assets.transform.align import align
    from energy_assets.transform.clean import clean
    from energy_assets.transform.features import build_features

    raw = pl.read_parquet(folder / "raw.parquet")
    weather = pl.read_parquet(folder / "weather.parquet")
    times: dict[str, list[float]] = {s: [] for s in STAGES}

    def once() -> tuple:
        t0 = time.perf_counter()
        aligned = align(raw, start, end)
        t1 = time.perf_counter()
        cleaned = clean(aligned, start, end)
        t2 = time.perf_counter()
        features = build_features(cleaned, weather, start, end)
        t3 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[stage].append(dt)
        return aligned, cleaned, features

    outputs = None
    for _ in range(repeats):
        outputs = None  # one repeat's results alive at a time, as in a single run
        outputs = once()
    aligned, cleaned, features = outputs
    cleaned.select("interval_start_utc", "region", "series", "value", "flag").write_parquet(
        folder / "ours_clean.parquet"
    )
    features.write_parquet(folder / "ours_features.parquet")
    return {
        "times": times,
        "rows_out": {
            "aligned": aligned.height,
            "clean": cleaned.height,
            "features": features.height,
        },
        "daily_partition_s": _daily_partitions(aligned, weather, start, end),
    }


def _daily_partitions(aligned, weather, start: datetime, end: datetime, sample: int = 3) -> dict:
    """How the daily assets call the core: one day's clean on its +-context_days window and one
    day's features on its 8 days of history; median seconds over a few mid-run days."""
    import polars as pl

    from energy_assets.transform.clean import CleaningConfig, clean
    from energy_assets.transform.features import FeatureConfig, build_features

    ctx = timedelta(days=CleaningConfig().context_days)
    hist = timedelta(days=FeatureConfig().context_days)
    day = timedelta(days=1)
    days = (end - start).days
    if days < 2 * ctx.days + 1:
        return {}
    first = start + ctx + timedelta(days=(days - 2 * ctx.days - sample) // 2)
    clean_s, feat_s = [], []
    for k in range(sample):
        d = first + k * day
        window = aligned.filter(
            pl.col("interval_start_utc").is_between(d - ctx, d + day + ctx, closed="left")
        )
        t0 = time.perf_counter()
        clean(window, d, d + day)
        clean_s.append(time.perf_counter() - t0)
        history = clean(window, d - hist, d + day)
        t0 = time.perf_counter()
        build_features(history, weather, d, d + day)
        feat_s.append(time.perf_counter() - t0)
    return {
        "clean_median_s": float(np.median(clean_s)),
        "features_median_s": float(np.median(feat_s)),
        "days": sample,
        "context_days": ctx.days,
    }


# --------------------------------------------------------------------------------- pandas


def run_pandas(folder: Path, start: datetime, end: datetime, repeats: int) -> dict:
    import pandas as pd

    raw = pd.read_parquet(folder / "raw.parquet")
    weather = pd.read_parquet(folder / "weather.parquet")
    times: dict[str, list[float]] = {s: [] for s in STAGES}

    def once() -> tuple:
        t0 = time.perf_counter()
        wide = pd_align(raw, start, end)
        t1 = time.perf_counter()
        values, flags = pd_clean(wide)
        t2 = time.perf_counter()
        features = pd_features(values, flags, weather)
        t3 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[stage].append(dt)
        return wide, values, flags, features

    outputs = None
    for _ in range(repeats):
        outputs = None
        outputs = once()
    wide, values, flags, features = outputs
    long = values.stack(["region", "series"], future_stack=True).rename("value").reset_index()
    fl = flags.stack(["region", "series"], future_stack=True).rename("flag").reset_index()
    long["flag"] = fl["flag"].to_numpy()
    long.to_parquet(folder / "pandas_clean.parquet")
    features.to_parquet(folder / "pandas_features.parquet")
    return {
        "times": times,
        "rows_out": {"aligned": int(wide.size), "clean": len(long), "features": len(features)},
    }


def _glob(pattern: str) -> str:
    return "|".join(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in alt)
        for alt in pattern.split("|")
    )


def pd_align(raw, start, end):
    """Quirks, duplicates, hourly mean, complete grid: a wide hours x (region, series) frame."""
    import pandas as pd

    from energy_assets.transform.quirks import load_quirks

    df = raw.copy()
    shift_h = np.zeros(len(df), dtype=np.int64)
    factor = np.ones(len(df))
    moved = np.zeros(len(df), dtype=bool)
    for rule in load_quirks().to_pandas().itertuples():
        m = df["region"].str.fullmatch(_glob(rule.region)) & df["series"].str.fullmatch(
            _glob(rule.series)
        )
        if pd.notna(rule.start_utc):
            m &= df["interval_start_utc"] >= rule.start_utc
        if pd.notna(rule.end_utc):
            m &= df["interval_start_utc"] < rule.end_utc
        m = m.to_numpy()
        if rule.action == "shift_hours":
            hours = np.full(m.sum(), int(rule.amount))
            if rule.timezone:
                ends = (df.loc[m, "interval_start_utc"] + pd.Timedelta(hours=1)).dt.tz_convert(
                    rule.timezone
                )
                dst = ends.apply(lambda t: t.dst() // pd.Timedelta(hours=1))
                hours = hours + np.asarray(dst, dtype=np.int64)
            shift_h[m] += hours
        elif rule.action == "flip_sign":
            factor[m] *= -1
        else:
            factor[m] *= rule.amount
        moved |= m
    df["interval_start_utc"] = df["interval_start_utc"] + pd.to_timedelta(shift_h, unit="h")
    df["value"] = df["value"] * factor
    df["moved"] = moved
    df = df[(df["interval_start_utc"] >= start) & (df["interval_start_utc"] < end)]
    keys = ["region", "series", "interval_start_utc"]
    best = df.groupby(keys)["moved"].transform("min")
    df = df[df["moved"] == best]
    intervals = df.groupby(keys)["value"].mean().reset_index()
    intervals["hour"] = intervals["interval_start_utc"].dt.floor("h")
    hourly = intervals.groupby(["region", "series", "hour"])["value"].mean()
    wide = hourly.unstack(["region", "series"])
    grid = pd.date_range(start, end, freq="h", inclusive="left", name="interval_start_utc")
    return wide.reindex(grid).sort_index(axis=1)


RUGGLES = ("demand", "demand_forecast_da", "net_generation")
COVARIATE = {
    "demand": "demand_forecast_da",
    "demand_forecast_da": "demand",
    "net_generation": "demand",
}


def pd_clean(wide):
    """Ruggles screens on demand-like columns, bounds elsewhere, then the blend imputation."""
    import pandas as pd

    from energy_assets.transform.clean import CleaningConfig

    cfg = CleaningConfig()
    flags = pd.DataFrame("OKAY", index=wide.index, columns=wide.columns)
    flags[wide.isna()] = "MISSING"
    series = wide.columns.get_level_values("series")
    rug = wide.columns[np.isin(series, RUGGLES)]
    other = wide.columns[~np.isin(series, RUGGLES)]
    flags[rug] = pd_ruggles(wide[rug])
    bad = (wide[other] < -100_000) | (wide[other] > 100_000)
    flags[other] = flags[other].mask(bad, "OUT_OF_BOUNDS")
    y = wide.where(flags == "OKAY")
    filled = pd_impute(y, cfg)
    return filled, flags


def pd_day_reference(frame, per_day):
    """A per-UTC-day statistic broadcast to the day's hours: `per_day` gets the frame padded to
    whole days (rows 24 d .. 24 d + 23 = day d) and returns one row per day."""
    import pandas as pd

    first = frame.index[0].floor("D")
    hours = pd.date_range(first, frame.index[-1].floor("D") + pd.Timedelta(hours=23), freq="h")
    days = per_day(frame.reindex(hours).reset_index(drop=True))
    return pd.DataFrame(
        np.repeat(days.to_numpy(), 24, axis=0), index=hours, columns=frame.columns
    ).reindex(frame.index)


def pd_ruggles(df):
    import pandas as pd

    x = df.copy()
    flags = pd.DataFrame(np.where(x.isna(), "MISSING", "OKAY"), index=x.index, columns=x.columns)

    def mark(mask, name):
        hit = mask & x.notna()
        flags[hit] = name
        x[hit] = np.nan

    mark(x <= 0, "NEG_OR_ZERO")
    mark((x.diff(1) == 0) & (x.diff(2) == 0), "IDENTICAL_RUN")

    def daily_median(d):
        days = d.groupby(np.arange(len(d)) // 24).median()
        return days.rolling(3, center=True, min_periods=1).median()

    mark(~(x < 10 * pd_day_reference(x, daily_median)), "GLOBAL_DEM")
    g = flags == "GLOBAL_DEM"
    mark(
        (g.shift(1, fill_value=False) | g.shift(-1, fill_value=False)) & (flags == "OKAY"),
        "GLOBAL_DEM_PLUS_MINUS",
    )

    m48 = x.rolling(48, min_periods=1, center=True).median()
    m480 = x.rolling(480, min_periods=1, center=True).median()
    off = x - m48
    roll = off.rolling(240, min_periods=1, center=True)
    iqr_off = roll.quantile(0.75) - roll.quantile(0.25)
    pre, post = x.diff(1), x.diff(-1)
    roll = pre.rolling(240, min_periods=1, center=True)
    iqr_d = roll.quantile(0.75) - roll.quantile(0.25)
    template = pd.DataFrame(index=x.index, columns=x.columns, dtype=float)
    for col in x.columns:  # as in Ruggles' code: a frame of shifted copies, median across
        shifted = pd.concat([off[col].shift(24 * k) for k in range(-10, 11)], axis=1)
        template[col] = shifted.median(axis=1)
    hmd = 1 + template / m480
    pred = m48 * hmd
    rel = x / pred
    rel_long = x / (m480 * hmd)
    step = rel.diff()

    def daily_iqr(d):
        days = d.groupby(np.arange(len(d)) // 24)
        iqr = (days.quantile(0.75) - days.quantile(0.25)).where(days.count() >= 12)
        return iqr.rolling(11, center=True, min_periods=1).median()

    iqr_rel = pd_day_reference(step, daily_iqr)

    mark(~(x < pred + 3.5 * iqr_off), "LOCAL_DEM_UP")
    mark(~(x > pred - 2.5 * iqr_off), "LOCAL_DEM_DOWN")
    lim = 2 * iqr_d
    mark(((pre > lim) & (post > lim)) | ((pre < -lim) & (post < -lim)), "DELTA")
    for col in x.columns:  # sequential by nature: a loop, as in the reference implementation
        v = x[col].to_numpy().copy()
        r, rl = rel[col].to_numpy(), rel_long[col].to_numpy()
        lim1, lim2 = 5 * iqr_d[col].to_numpy(), 15 * iqr_rel[col].to_numpy()
        hit = np.zeros(len(v), dtype=bool)
        for order, check in ((range(len(v)), True), (range(len(v) - 1, -1, -1), False)):
            prev = -1
            for i in order:
                if np.isnan(v[i]):
                    continue
                if prev < 0 or abs(i - prev) > 24:  # no reference older than 24 h
                    prev = i
                if abs(v[prev] - v[i]) > lim1[i] and abs(r[prev] - r[i]) > lim2[i]:
                    if check and max(abs(1 - r[i]), abs(1 - rl[i])) < max(
                        abs(1 - r[prev]), abs(1 - rl[prev])
                    ):
                        prev = i
                    else:
                        hit[i] = True
                        v[i] = np.nan
                else:
                    prev = i
        flags.loc[hit, col] = "SINGLE_DELTA"
        x.loc[hit, col] = np.nan
    good = flags.isin(["OKAY", "MISSING"]).astype(float)
    trig = (good.rolling(49, center=True, min_periods=1).mean() <= 0.85).astype(float)
    near = trig[::-1].rolling(24, min_periods=1).max()[::-1].shift(-1).fillna(0) > 0
    near |= trig.rolling(24, min_periods=1).max() > 0
    pre_ok = good.rolling(25, min_periods=1).mean() >= 1
    post_ok = good[::-1].rolling(25, min_periods=1).mean()[::-1] >= 1
    run = good.apply(lambda s: s.groupby((s != s.shift()).cumsum()).transform("size"))
    mark(
        (flags == "OKAY") & near & ~pre_ok & ~post_ok & (run <= 24),
        "ANOMALOUS_REGION",
    )
    return flags


def pd_impute(y, cfg):
    """The blend imputation of `impute.py`, written with whole-frame pandas operations."""
    import pandas as pd

    n = len(y)
    pos = pd.DataFrame(
        np.arange(n)[:, None].repeat(y.shape[1], 1), index=y.index, columns=y.columns
    )
    known = y.notna()
    # edges further than the reach are none; a gap without an edge is longer than any bucket
    reach = cfg.impute.edge_reach_hours
    left = pos.where(known).ffill()
    left = left.where(pos - left <= reach)
    right = pos.where(known).bfill()
    right = right.where(right - pos <= reach)
    both = left.notna() & right.notna()
    gap_len = (right - left - 1).where(both, 2.0**60).where(~known)
    out = y.copy()
    lin = y.interpolate(limit_area="inside").where(both | known)
    series = y.columns.get_level_values("series")
    short = np.where(np.isin(series, RUGGLES), 0, 3)
    is_lin = ~known & (gap_len <= short) & left.notna() & right.notna()
    out = out.mask(is_lin, lin)

    def nanmean(frames):
        return pd.concat(frames, keys=range(len(frames))).groupby(level=1).mean()

    # each candidate: its parts (the candidate is their mean where present) and whether they
    # are analogs of the series itself
    cands = [
        ([y.shift(24), y.shift(-24)], True),
        ([y.shift(168), y.shift(-168), y.shift(336), y.shift(-336)], True),
    ]
    cov = pd.DataFrame(np.nan, index=y.index, columns=y.columns)
    for col in y.columns:
        other = (col[0], COVARIATE.get(col[1], ""))
        if other in y.columns:
            cov[col] = y[other]
    ratio = y / cov.where(cov > 0)
    same_hour = (
        pd.concat([ratio.shift(24 * k) for k in range(-7, 8)], keys=range(15))
        .groupby(level=1)
        .median()
    )
    level = ratio.rolling(336, center=True, min_periods=1).median()
    cands += [([cov * same_hour], False), ([cov * level], False)]
    buckets = np.where(
        gap_len > 12,
        5,
        np.abs(np.ceil(gap_len / 2).to_numpy()[..., None] - np.array([1, 2, 3, 4, 6])).argmin(-1),
    )

    def at_edge(frame, fill):
        """The frame's value at each cell's last known row before (ffill) or after (bfill),
        NaN where it is NaN there (a sentinel keeps the fill from reaching further)."""
        sentinel = frame.where(known).mask(known & frame.isna(), np.inf)
        edge = left if fill == "ffill" else right
        return getattr(sentinel, fill)().replace(np.inf, np.nan).where(edge.notna())

    y_l, y_r = at_edge(y, "ffill"), at_edge(y, "bfill")
    blend_vals = pd.DataFrame(np.nan, index=y.index, columns=y.columns)
    for b, half in enumerate((1, 2, 3, 4, 6, None)):
        cells = ~known & ~is_lin & (buckets == b) & (left.notna() | right.notna())
        if not cells.to_numpy().any():
            continue
        acc = {k: 0 for k in ("num", "den", "num_l", "den_l", "num_r", "den_r")}
        has_analog = pd.DataFrame(False, index=y.index, columns=y.columns)
        for parts, analog in cands:
            p = nanmean(parts)
            r = y - p
            if half is not None:
                r = r - (r.shift(half) + r.shift(-half)) / 2
            local = r.abs().rolling(168, center=True, min_periods=1).mean()
            err_l, err_r = at_edge(local, "ffill"), at_edge(local, "bfill")
            err = pd.concat([err_l, err_r], keys=[0, 1]).groupby(level=1).mean()
            # the edges' values of the candidate: the mean of the parts the gap cell has
            at_gap = [q.notna() for q in parts]
            if analog:
                has_analog |= pd.concat(at_gap, keys=range(len(parts))).groupby(level=1).any()
            edge_val = {}
            for side, fill in (("_l", "ffill"), ("_r", "bfill")):
                vals = [at_edge(q, fill).where(g) for q, g in zip(parts, at_gap, strict=True)]
                edge_val[side] = nanmean(vals)
            for key, val, e in (("", p, err), ("_l", edge_val["_l"], err_l),
                                ("_r", edge_val["_r"], err_r)):  # fmt: skip
                w = 1 / (e**2 + 1e-12)
                ok = val.notna() & w.notna()
                acc["num" + key] = acc["num" + key] + (w * val).where(ok, 0)
                acc["den" + key] = acc["den" + key] + w.where(ok, 0)
        pb, bl, br = (
            acc["num" + k] / acc["den" + k].where(acc["den" + k] > 0) for k in ("", "_l", "_r")
        )
        rl, rr = y_l - bl, y_r - br
        dl, dr = pos - left, right - pos
        span = (dl + dr).where(left.notna() & right.notna(), 1)
        wl = (dr / span).where(right.notna(), 1)
        wr = (dl / span).where(left.notna(), 1)
        fade = gap_len > 6
        wl = wl.mask(fade, wl * np.exp(-dl / 24))
        wr = wr.mask(fade, wr * np.exp(-dr / 24))
        val = pb + (wl * rl).fillna(0) + (wr * rr).fillna(0)
        if half is not None:  # a short gap most of whose hours have no analog: linear
            gap_of = left.fillna(-1)
            for col in y.columns:
                sel = cells[col].to_numpy()
                if not sel.any():
                    continue
                share = (
                    has_analog[col][sel].astype(float).groupby(gap_of[col][sel]).transform("mean")
                )
                both_sides = (left[col].notna() & right[col].notna())[sel]
                drop = share.index[(share < 0.5).to_numpy() & both_sides.to_numpy()]
                val.loc[drop, col] = np.nan
        blend_vals = blend_vals.mask(cells, val)
    out = out.mask(~known & ~is_lin, blend_vals)
    out = out.mask(out.isna() & ~known, lin)
    return out.mask(out.isna() & ~known, y_l.fillna(y_r))  # hold the one edge in reach


def pd_features(values, flags, weather):
    import pandas as pd
    from pandas.tseries.holiday import USFederalHolidayCalendar

    from energy_assets.transform.calendar import region_timezones

    demand = values.xs("demand", axis=1, level="series")
    df = demand.stack(future_stack=True).rename("demand_mw").reset_index()
    df = df.rename(columns={"level_1": "region"}).sort_values(["region", "interval_start_utc"])
    obs = (flags.xs("demand", axis=1, level="series") == "OKAY").stack(future_stack=True)
    df["is_observed"] = obs.reindex(
        pd.MultiIndex.from_frame(df[["interval_start_utc", "region"]])
    ).to_numpy()
    fc = values.xs("demand_forecast_da", axis=1, level="series").stack(future_stack=True)
    df["demand_forecast_da_mw"] = fc.reindex(
        pd.MultiIndex.from_frame(df[["interval_start_utc", "region"]])
    ).to_numpy()
    wx = weather[weather["series"] == "temperature_2m"][["interval_start_utc", "region", "value"]]
    df = df.merge(
        wx.rename(columns={"value": "temperature_c"}),
        on=["interval_start_utc", "region"],
        how="left",
    )
    df["heating_degree_hours_c"] = (18 - df["temperature_c"]).clip(lower=0)
    df["cooling_degree_hours_c"] = (df["temperature_c"] - 18).clip(lower=0)
    g = df.groupby("region")
    for lag in (1, 24, 168):
        df[f"demand_mw_lag_{lag}h"] = g["demand_mw"].shift(lag)
    for w in (24, 168):
        df[f"demand_mw_mean_{w}h"] = g["demand_mw"].transform(
            lambda s, w=w: s.shift(1).rolling(w, min_periods=w // 2).mean()
        )
        df[f"demand_mw_std_{w}h"] = g["demand_mw"].transform(
            lambda s, w=w: s.shift(1).rolling(w, min_periods=w // 2).std()
        )
    for lag in (1, 24):
        for name in ("temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c"):
            df[f"{name}_lag_{lag}h"] = g[name].shift(lag)
    zones = region_timezones(sorted(df["region"].unique()))
    local = g["interval_start_utc"].transform(
        lambda s: s.dt.tz_convert(zones[s.name]).dt.tz_localize(None)
    )
    df["hour_of_day"] = local.dt.hour
    df["day_of_week"] = local.dt.dayofweek + 1
    df["month"] = local.dt.month
    df["day_of_year"] = local.dt.dayofyear
    for name, v, period in (
        ("hour", df["hour_of_day"], 24),
        ("day_of_week", df["day_of_week"] - 1, 7),
        ("day_of_year", df["day_of_year"] - 1, 365.25),
    ):
        df[f"{name}_sin"] = np.sin(2 * np.pi * v / period)
        df[f"{name}_cos"] = np.cos(2 * np.pi * v / period)
    df["is_weekend"] = df["day_of_week"] >= 6
    days = local.dt.normalize()
    holidays = USFederalHolidayCalendar().holidays(days.min(), days.max())
    df["is_us_federal_holiday"] = days.isin(holidays)
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------- driver


def worker(variant: str, folder: Path, start: datetime, end: datetime, repeats: int) -> None:
    import psutil

    run = run_ours if variant == "ours" else run_pandas
    result = run(folder, start, end, repeats)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["final_rss_mib"] = psutil.Process().memory_info().rss / 2**20
    print(json.dumps(result))


def compare(folder: Path) -> dict:
    """How close the two variants' outputs are (they implement the same method)."""
    import polars as pl

    ours = pl.read_parquet(folder / "ours_clean.parquet")
    theirs = pl.read_parquet(folder / "pandas_clean.parquet").with_columns(
        pl.col("interval_start_utc").cast(pl.Datetime("us", "UTC"))
    )
    j = ours.join(theirs, on=["interval_start_utc", "region", "series"], suffix="_pd")
    agree = float((j["flag"] == j["flag_pd"]).mean())
    both = j.filter(pl.col("value").is_not_null() & pl.col("value_pd").is_not_null())
    rel = (both["value"] - both["value_pd"]).abs() / both["value_pd"].abs().clip(lower_bound=1.0)
    imputed = both.filter(pl.col("flag") != "OKAY")
    rel_imp = (imputed["value"] - imputed["value_pd"]).abs() / imputed["value_pd"].abs().clip(
        lower_bound=1.0
    )
    fo = pl.read_parquet(folder / "ours_features.parquet")
    fp = pl.read_parquet(folder / "pandas_features.parquet").with_columns(
        pl.col("interval_start_utc").cast(pl.Datetime("us", "UTC"))
    )
    fj = fo.join(fp, on=["interval_start_utc", "region"], suffix="_pd")
    feat = {}
    for col in ("demand_mw_lag_24h", "demand_mw_mean_168h", "hour_of_day", "is_us_federal_holiday"):
        a, b = fj[col].cast(pl.Float64), fj[f"{col}_pd"].cast(pl.Float64)
        ok = a.is_not_null() & b.is_not_null()
        feat[col] = float(((a - b).abs() / b.abs().clip(lower_bound=1.0)).filter(ok).max() or 0.0)
    return {
        "rows_compared": j.height,
        "flag_agreement": agree,
        "value_max_rel_diff": float(rel.max() or 0.0),
        "imputed_cells": imputed.height,
        "imputed_median_rel_diff": float(rel_imp.median() or 0.0) if imputed.height else 0.0,
        "imputed_p99_rel_diff": float(rel_imp.quantile(0.99) or 0.0) if imputed.height else 0.0,
        "feature_max_rel_diff": feat,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = ("pandas", "ours")
    bottom = np.zeros(2)
    for stage in STAGES:
        vals = np.array([result["variants"][v]["median_s"][stage] for v in names])
        ax1.bar(names, vals, bottom=bottom, label=stage)
        bottom += vals
    ax1.set_ylabel("wall time (s)")
    ax1.set_title(
        f"{result['input']['regions']} BAs x {result['input']['days']} days "
        f"({result['ratio_total']:.1f}x)"
    )
    ax1.legend()
    ax2.bar(names, [result["variants"][v]["peak_rss_mib"] for v in names], color=["C7", "C0"])
    ax2.set_ylabel("peak RSS (MiB)")
    ax2.set_title("peak RSS, each variant in its own process")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--regions", type=int, default=0, help="0 = every BA of the world")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--skip-pandas", action="store_true", help="ours only (no ratio)")
    p.add_argument("--worker", choices=("ours", "pandas"), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    start, end = START, START + timedelta(days=args.days)
    if args.worker:
        worker(args.worker, args.data, start, end, args.repeats)
        return {}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = build_inputs(args.days, args.regions, args.seed, folder)
        print(
            f"input: {info['origin']}: {info['regions']} regions x {args.days} days, "
            f"{info['raw_rows']:,} raw rows + {info['weather_rows']:,} weather rows"
        )
        variants = {}
        for variant in ("ours",) if args.skip_pandas else ("pandas", "ours"):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                variant,
                "--data",
                str(folder),
                "--days",
                str(args.days),
                "--repeats",
                str(args.repeats),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"{variant} worker failed:\n{done.stderr[-4000:]}")
            res = json.loads(done.stdout.strip().splitlines()[-1])
            res["median_s"] = {s: float(np.median(res["times"][s])) for s in STAGES}
            res["total_s"] = float(sum(res["median_s"].values()))
            res["rows_per_s"] = info["raw_rows"] / res["total_s"]
            variants[variant] = res
        result = {"input": info, "variants": variants, "repeats": args.repeats}
        if "pandas" in variants:
            result["ratio_total"] = variants["pandas"]["total_s"] / variants["ours"]["total_s"]
            result["ratio_by_stage"] = {
                s: variants["pandas"]["median_s"][s] / variants["ours"]["median_s"][s]
                for s in STAGES
            }
            result["ratio_peak_rss"] = (
                variants["pandas"]["peak_rss_mib"] / variants["ours"]["peak_rss_mib"]
            )
            result["agreement"] = compare(folder)
    _print(result)
    args.out.mkdir(parents=True, exist_ok=True)
    small = args.days < 365 or args.regions
    stem = "perf_transform_small" if small else "perf_transform"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    if "pandas" in result["variants"]:
        plot(result, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json/.png")
    return result


def _print(result: dict) -> None:
    head = ("variant", "align", "clean", "features", "total", "rows/s", "peak RSS")
    print("\n{:8} {:>7} {:>7} {:>8} {:>7} {:>10} {:>9}".format(*head))
    for name, v in result["variants"].items():
        m = v["median_s"]
        print(
            f"{name:8} {m['align']:7.2f} {m['clean']:7.2f} {m['features']:8.2f} "
            f"{v['total_s']:7.2f} {v['rows_per_s']:10,.0f} {v['peak_rss_mib']:7.0f} MiB"
        )
    daily = result["variants"]["ours"].get("daily_partition_s") or {}
    if daily:
        print(
            f"ours, one daily partition (all regions): clean {daily['clean_median_s']:.2f} s on "
            f"its +-{daily.get('context_days')}-day window, "
            f"features {daily['features_median_s']:.2f} s "
            f"(median of {daily['days']} days)"
        )
    if "ratio_total" in result:
        r = result["ratio_by_stage"]
        print(
            f"ratio pandas/ours: total {result['ratio_total']:.1f}x (align {r['align']:.1f}x, "
            f"clean {r['clean']:.1f}x, features {r['features']:.1f}x); peak RSS "
            f"{result['ratio_peak_rss']:.1f}x"
        )
        a = result["agreement"]
        print(
            f"outputs agree: flags {a['flag_agreement']:.5f} of {a['rows_compared']:,} cells; "
            f"values max rel diff {a['value_max_rel_diff']:.1e}; "
            f"imputed values median rel diff {a['imputed_median_rel_diff']:.2e} "
            f"(p99 {a['imputed_p99_rel_diff']:.2e}); features max rel diff "
            + ", ".join(f"{k} {v:.1e}" for k, v in a["feature_max_rel_diff"].items())
        )


if __name__ == "__main__":
    main()
