"""Screen and impute a window of aligned series; return only the target hours.

Belongs here: the long-table entry point `clean`, its configuration (`CleaningConfig`: which
series get which screens, their covariates, the thresholds) and the rules that tie `screen` and
`impute` together. The numeric work is in those two modules.

Which series get which screens (first matching rule wins, `DEFAULT_RULES`):

- demand-like, strictly positive series (`demand`, `demand_forecast_da`, `net_generation`,
  `caiso_load_*`): every Ruggles et al. (2020) screen, as in `screen.py`;
- series that may legitimately be negative, zero or flat for hours (`generation_<fuel>`: solar
  at night, nuclear outages; `total_interchange`, `interchange_to_*`: fixed schedules; `lmp*`:
  negative prices and real spikes; weather): MISSING and physical bounds only (OUT_OF_BOUNDS).
  Their bounds are sanity limits: EIA-930 ranges as in gridemissions' BasicCleaner
  (generation >= -1000 MW, |interchange| <= 100 GW), LMP far outside the FERC Order 831 offer
  caps, weather physically possible values. Their spike screen runs with the balance
  reconciliation (`transform/reconcile.py`, asset `reconciled/series`), where the other series
  of the BA say which value is off.

A rule can be limited to regions (`SeriesRule.regions`), placed before the general one.
`cleaning_config()` is the pipeline's configuration: the rules below plus the small-BA rules
(demand: Ruggles' screens and a per-BA upper bound; net generation: sanity bounds only).

Partition semantics. `clean(window, target_start, target_end)` screens the whole window, fills
the gaps of the target hours (a fill reads observations, never other fills) and returns the
target hours only. A daily partition loads `CleaningConfig.context_days`
(46) days on each side, so that a day's flags and values are those of a run over the whole
series, by construction (tested on the Ruggles BAs, flags and values bit for bit):
- the flags of a day read raw values up to SCREEN_CONTEXT_DAYS (21) days away (480 h medians,
  the +-10-day template, and per-day references in place of Ruggles' whole-series statistics;
  see `screen.py`);
- the fill of an hour reads values and flags up to `impute.reach_hours` (594 h, 25 days) away:
  gap edges up to `edge_reach_hours` (168 h), the errors of the candidates around them, and
  the candidates' own analogs and ratio windows. A gap edge further away is not used (an hour
  further than that from any observation stays unfilled, in every path), and the driver slopes
  are exact integer window sums, so nothing depends on where the window starts;
- so the window holds every hour a day's fill reads, each with its own screen context:
  21 + 25 = 46 days. The cost: a partition reads and screens 93 days instead of 43 (it fills
  one), and a day is final (not provisional) once 46 later days are stored.
The newest partitions have no right-hand context: they still compute (centred windows shrink to
the rows present, gaps at the end are filled from the left edge and the candidates that need no
future data), and their values can change when later days arrive and the partition is
re-materialized.

Threads. Every column is screened and imputed on its own (its covariates and drivers are series
of the same region), so the matrix is cut into blocks of whole regions that a thread pool
(`POLARS_MAX_THREADS` caps it) works through; the result does not depend on the cut (tested).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import pairwise
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.transform.grid import (
    HOUR_US,
    TIME,
    TIME_COL,
    as_utc,
    check_time_column,
    matrix_to_long,
    release_freed_memory,
    require_columns,
    to_matrix,
)
from energy_assets.transform.impute import METHODS, ImputeConfig, impute_matrix, reach_hours
from energy_assets.transform.quirks import glob_to_regex
from energy_assets.transform.screen import (
    FLAGS,
    OKAY,
    SCREEN_CONTEXT_DAYS,
    RugglesThresholds,
    screen_bounds,
)
from energy_assets.transform.screen import screen_ruggles as _screen_ruggles

CLEAN_SCHEMA = {
    TIME_COL: TIME,
    "region": pl.Utf8,
    "series": pl.Utf8,
    "value": pl.Float64,
    "value_reported": pl.Float64,
    "flag": pl.Utf8,
    "method": pl.Utf8,
    "is_observed": pl.Boolean,
    "units": pl.Utf8,
    "source": pl.Utf8,
}


class SeriesRule(BaseModel):
    """How one family of series is screened and imputed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str = Field(description="series-name glob; `|` separates alternatives")
    regions: str = Field(
        "*", description="region glob: put region-specific exceptions before the general rule"
    )
    screen: Literal["ruggles", "bounds"] = Field(description="Ruggles screens or bounds only")
    lower: float | None = Field(
        None, description="OUT_OF_BOUNDS below this (with Ruggles: of what its screens passed)"
    )
    upper: float | None = Field(
        None, description="OUT_OF_BOUNDS above this (with Ruggles: of what its screens passed)"
    )
    identical_run: int = Field(0, ge=0, description="bounds screen: flag n-th+ equal value")
    positive: bool = Field(False, description="strictly positive: ratio covariate models")
    covariates: tuple[str, ...] = Field(
        (), description="same-region proxies (same quantity, e.g. the forecast) for imputing"
    )
    drivers: tuple[str, ...] = Field(
        (), description="same-region drivers (e.g. temperature) correcting the analogs"
    )
    driver_base: float | None = Field(
        18.0, description="drivers enter as |driver - base| (None: as they are)"
    )
    linear_max_gap_hours: int = Field(3, ge=0, description="gaps up to this: linear")


DEFAULT_RULES: tuple[SeriesRule, ...] = (
    SeriesRule(
        pattern="demand",
        screen="ruggles",
        positive=True,
        covariates=("demand_forecast_da",),
        drivers=("temperature_2m",),
        linear_max_gap_hours=0,
    ),
    SeriesRule(
        pattern="demand_forecast_da",
        screen="ruggles",
        positive=True,
        covariates=("demand",),
        linear_max_gap_hours=0,
    ),
    SeriesRule(
        pattern="net_generation",
        screen="ruggles",
        positive=True,
        covariates=("demand",),
        linear_max_gap_hours=0,
    ),
    SeriesRule(
        pattern="caiso_load_actual",
        screen="ruggles",
        positive=True,
        covariates=("caiso_load_forecast_dam",),
        linear_max_gap_hours=0,
    ),
    SeriesRule(
        pattern="caiso_load_forecast_*",
        screen="ruggles",
        positive=True,
        covariates=("caiso_load_actual",),
        linear_max_gap_hours=0,
    ),
    # storage charges from the grid: CAISO batteries alone draw several GW in the afternoon
    SeriesRule(
        pattern="generation_bat|generation_ps", screen="bounds", lower=-50_000.0, upper=50_000.0
    ),
    SeriesRule(pattern="generation_*", screen="bounds", lower=-1000.0, upper=200_000.0),
    SeriesRule(
        pattern="total_interchange|interchange_to_*",
        screen="bounds",
        lower=-100_000.0,
        upper=100_000.0,
    ),
    SeriesRule(pattern="lmp|lmp_*", screen="bounds", lower=-5000.0, upper=20_000.0),
    SeriesRule(
        pattern="temperature_*|dew_point_*|apparent_temperature",
        screen="bounds",
        lower=-90.0,
        upper=60.0,
    ),
    SeriesRule(pattern="relative_humidity_*|cloud_cover*", screen="bounds", lower=0.0, upper=100.0),
    SeriesRule(pattern="wind_speed_*|wind_gusts_*", screen="bounds", lower=0.0, upper=500.0),
    SeriesRule(
        pattern="shortwave_radiation|direct_*|diffuse_*|global_tilted_*",
        screen="bounds",
        lower=0.0,
        upper=1500.0,
    ),
    SeriesRule(pattern="*", screen="bounds"),
)


class CleaningConfig(BaseModel):
    """Screening and imputation settings for `clean` (defaults: Ruggles et al. 2020)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[SeriesRule, ...] = Field(
        DEFAULT_RULES, description="first rule whose pattern matches a series applies"
    )
    ruggles: RugglesThresholds = Field(default_factory=RugglesThresholds)
    impute: ImputeConfig = Field(default_factory=ImputeConfig)

    @property
    def context_days(self) -> int:
        """Days of context each side a daily partition loads so that its flags and values are
        those of the whole series: the days its fill reads (`impute.reach_hours`), each with
        the screens' own context (SCREEN_CONTEXT_DAYS)."""
        return SCREEN_CONTEXT_DAYS + -(-reach_hours(self.impute) // 24)

    def rule_index(self, keys: pl.DataFrame) -> pl.Series:
        """Index of the first rule matching each (region, series) row (-1 if none matches)."""
        out = pl.Series("rule", [-1] * keys.height, dtype=pl.Int32)
        for i in reversed(range(len(self.rules))):  # a dozen rules over the distinct keys
            rule = self.rules[i]
            hit = keys.get_column("series").str.contains(glob_to_regex(rule.pattern))
            hit &= keys.get_column("region").str.contains(glob_to_regex(rule.regions))
            out = pl.select(pl.when(hit).then(pl.lit(i, pl.Int32)).otherwise(out)).to_series()
        return out


BA_PEAK_FACTOR = 3.0
"""Demand above this multiple of a BA's typical peak is implausible (`features/hourly` checks)."""
SMALL_BA_PEAK_MW = 200.0
"""Balancing authorities whose typical peak is below this get `cleaning_config`'s small-BA rules."""
NET_GENERATION_BOUNDS = (-1000.0, 200_000.0)
"""Sanity bounds of small BAs' net generation: those of generation by fuel (gridemissions)."""


def cleaning_config(balancing_authorities: pl.DataFrame | None = None) -> CleaningConfig:
    """The pipeline's configuration (`imputed/series` and the quality benchmark both call this).

    `balancing_authorities`: a table with `code` and `typical_peak_mw` (default: the packaged
    sources/data/balancing_authorities.csv). Balancing authorities whose typical peak is below
    SMALL_BA_PEAK_MW get, before the general rules:

    - demand and its day-ahead forecast: the Ruggles screens like every BA, then OUT_OF_BOUNDS
      above BA_PEAK_FACTOR x the typical peak (the bound `features/hourly` checks), on what the
      screens passed. Ruggles' screens work at this size: on real small BAs they find the
      labelled anomalies (precision and recall 1.000) and flag 0.8-2.8 % of hours, while bounds
      alone find almost none (recall 0.002-0.039: a 290 MW hour between 30-60 MW neighbours is
      inside 3x a 100 MW peak), as the team measured on four real small BAs (issue 13); on
      the 2023-06 gridemissions week they flag 1-7 of 241 demand hours of HST, SPA and WAUW;
    - net generation: sanity bounds only, as for generation by fuel. Many small BAs are
      generation-only (a nominal demand peak of tens of MW beside GW of generation), and their
      generation is zero or flat for hours for real (wind, hydro, a plant offline), which the
      demand screens reject: on the 2023-06 gridemissions week they reject 1,202 of the small
      BAs' 2,892 net-generation hours (YAD 236 of 241, HST all), bounds none. A bound derived
      from demand never applies to it.
    """
    if balancing_authorities is None:
        from energy_assets.sources.balancing_authorities import load_balancing_authorities

        balancing_authorities = load_balancing_authorities()
    general = {rule.pattern: rule for rule in DEFAULT_RULES}
    small = balancing_authorities.filter(pl.col("typical_peak_mw") < SMALL_BA_PEAK_MW)
    rules: list[SeriesRule] = []
    for code, peak in small.select("code", "typical_peak_mw").iter_rows():
        for pattern in ("demand", "demand_forecast_da"):
            rules.append(
                general[pattern].model_copy(
                    update={"regions": code, "upper": BA_PEAK_FACTOR * peak}
                )
            )
        rules.append(
            SeriesRule(
                pattern="net_generation",
                regions=code,
                screen="bounds",
                lower=NET_GENERATION_BOUNDS[0],
                upper=NET_GENERATION_BOUNDS[1],
            )
        )
    return CleaningConfig(rules=(*rules, *DEFAULT_RULES))


def clean(
    aligned_window: pl.DataFrame,
    target_start: datetime,
    target_end: datetime,
    config: CleaningConfig | None = None,
) -> pl.DataFrame:
    """Screen + impute the whole window; return rows for [target_start, target_end) only.

    `aligned_window`: output of `align` for the target and its neighbouring days (columns
    interval_start_utc, region, series, value, units, source; extra columns are ignored).
    Returns one row per (region, series, hour) of the target range for every (region, series)
    in the window, columns `CLEAN_SCHEMA`: `value` (filled, null only where unfillable),
    `value_reported` (the aligned value), `flag` (OKAY, MISSING or the screen that rejected it),
    `method` (observed, linear, blend, hold, unfilled), `is_observed` (flag == OKAY).
    """
    cfg = config or CleaningConfig()
    target_start, target_end = (
        as_utc(target_start, "target_start"),
        as_utc(target_end, "target_end"),
    )
    if target_end <= target_start:
        raise ValueError(
            f"clean: target_end {target_end.isoformat()} must be after {target_start.isoformat()}"
        )
    require_columns(aligned_window, [TIME_COL, "region", "series", "value"], "clean input")
    window = check_time_column(aligned_window, "clean input")
    for col in ("units", "source"):
        if col not in window.columns:
            window = window.with_columns(pl.lit(None, pl.Utf8).alias(col))
    keys, t0_us, _, mats = to_matrix(
        window, ["value"], span=(target_start, target_end), key_attrs=("units", "source")
    )
    x = mats["value"]
    if keys.height == 0:
        return pl.DataFrame(schema=CLEAN_SCHEMA)

    rule_of = cfg.rule_index(keys).to_numpy()
    r0 = (int(target_start.timestamp() * 1_000_000) - t0_us) // HOUR_US
    r1 = (int(target_end.timestamp() * 1_000_000) - t0_us) // HOUR_US
    target = slice(r0, r1)  # only these rows are returned: only their gaps are filled
    first_hour = (t0_us // HOUR_US) % 24  # the screens' per-day references follow UTC days
    workers = _workers()
    n_blocks = min(BLOCKS_PER_WORKER * workers, x.size // MIN_BLOCK_CELLS)
    blocks = _region_blocks(keys.get_column("region"), n_blocks)
    if workers == 1 or len(blocks) == 1:
        flags, filled, methods = _clean_block(keys, x, rule_of, cfg, first_hour, target)
    else:  # numpy, bottleneck and polars release the GIL: the blocks run on separate cores
        with ThreadPoolExecutor(min(workers, len(blocks))) as pool:
            parts = list(
                pool.map(
                    lambda b: _clean_block(keys[b], x[:, b], rule_of[b], cfg, first_hour, target),
                    blocks,
                )
            )
        release_freed_memory()
        flags, filled, methods = (np.hstack(p) for p in zip(*parts, strict=True))

    out = matrix_to_long(
        keys,
        t0_us,
        {"value": filled, "value_reported": x, "_flag": flags, "_method": methods},
        rows=target,
    )
    out = out.with_columns(
        pl.Series(FLAGS).gather(out.get_column("_flag")).alias("flag"),
        pl.Series(METHODS).gather(out.get_column("_method")).alias("method"),
        (pl.col("_flag") == int(OKAY)).alias("is_observed"),
    )
    # to_matrix sorts keys and matrix_to_long emits key-major, time-minor: already sorted.
    return out.select(list(CLEAN_SCHEMA)).cast(CLEAN_SCHEMA)


BLOCKS_PER_WORKER = 4
"""Smaller blocks than one per core: fewer intermediates alive at once, steadier balance."""
MIN_BLOCK_CELLS = 200_000
"""Below this many hours x series a block's numpy calls are too short to gain from a thread
(a daily partition's +-46-day window of ~270 series, 600 k cells, is cut into 3 blocks)."""


def _workers() -> int:
    """Threads for the column blocks: polars' pool size (the cores this process may use,
    container CPU quotas included; `POLARS_MAX_THREADS` lowers it for both)."""
    return max(pl.thread_pool_size(), 1)


def _region_blocks(regions: pl.Series, blocks: int) -> list[slice]:
    """Split the (region-sorted) columns into up to `blocks` contiguous runs of whole regions.
    A series and its covariates and drivers always share a block, and every column is screened
    and imputed on its own, so the blocks' results are the whole matrix's."""
    n = regions.len()
    if blocks < 2 or n < 2:
        return [slice(0, n)]
    starts = np.flatnonzero(np.r_[True, (regions[1:] != regions[:-1]).to_numpy()])
    bounds = [0]
    for k in range(1, blocks):  # the region start nearest to an even share
        cut = int(starts[np.abs(starts - k * n / blocks).argmin()])
        if bounds[-1] < cut < n:
            bounds.append(cut)
    bounds.append(n)
    return [slice(a, b) for a, b in pairwise(bounds)]


def _clean_block(
    keys: pl.DataFrame,
    x: np.ndarray,
    rule_of: np.ndarray,
    cfg: CleaningConfig,
    first_hour: int,
    target: slice,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen and impute columns `x` (whole regions): (flags, filled values, method codes);
    gaps are filled in the `target` rows only (a fill reads observations, never other fills)."""
    flags = _screen(x, rule_of, cfg, first_hour)
    y = np.where(flags == OKAY, x, np.nan)

    rules = cfg.rules
    positive = np.array([rules[r].positive if r >= 0 else False for r in rule_of])
    linear_max = np.array([rules[r].linear_max_gap_hours if r >= 0 else 3 for r in rule_of])
    covariates = _related(keys, y, rule_of, cfg, "covariates")
    drivers = _related(keys, y, rule_of, cfg, "drivers")
    bases = np.array(
        [np.nan if r < 0 or rules[r].driver_base is None else rules[r].driver_base for r in rule_of]
    )
    drivers = [np.where(np.isnan(bases), z, np.abs(z - bases)) for z in drivers]
    filled, methods = impute_matrix(
        y, covariates, positive, linear_max, cfg.impute, drivers, rows=target
    )
    return flags, filled, methods


def _screen(
    x: np.ndarray, rule_of: np.ndarray, cfg: CleaningConfig, first_hour: int = 0
) -> np.ndarray:
    flags = np.zeros(x.shape, dtype=np.int8)
    ruggles = np.array([r >= 0 and cfg.rules[r].screen == "ruggles" for r in rule_of], dtype=bool)
    if ruggles.any():
        flags[:, ruggles] = _screen_ruggles(x[:, ruggles], cfg.ruggles, first_hour)
    for r in np.unique(rule_of):  # one call per bounds rule, not per series
        rule = cfg.rules[r] if r >= 0 else SeriesRule(pattern="*", screen="bounds")
        cols = rule_of == r
        if rule.screen == "bounds":
            flags[:, cols] = screen_bounds(x[:, cols], rule.lower, rule.upper, rule.identical_run)
        elif rule.lower is not None or rule.upper is not None:  # after Ruggles' screens
            sub = flags[:, cols]
            bounds = screen_bounds(
                np.where(sub == OKAY, x[:, cols], np.nan), rule.lower, rule.upper
            )
            flags[:, cols] = np.where(sub == OKAY, bounds, sub)
    return flags


def _related(
    keys: pl.DataFrame,
    y: np.ndarray,
    rule_of: np.ndarray,
    cfg: CleaningConfig,
    field: Literal["covariates", "drivers"],
) -> list[np.ndarray]:
    """out[k][:, j]: screened values of the k-th `field` series of series j (same region)."""
    regions = keys.get_column("region").to_list()
    series = keys.get_column("series").to_list()
    column_of = {(reg, ser): j for j, (reg, ser) in enumerate(zip(regions, series, strict=True))}
    names = [getattr(cfg.rules[r], field) if r >= 0 else () for r in rule_of]
    out = []
    for k in range(max((len(n) for n in names), default=0)):  # one slot per position: a few
        src = np.array(
            [
                column_of.get((regions[j], names[j][k]), -1) if k < len(names[j]) else -1
                for j in range(len(names))
            ]
        )
        cov = np.full_like(y, np.nan)
        has = src >= 0
        cov[:, has] = y[:, src[has]]
        out.append(cov)
    return out


def daily_quality(result: pl.DataFrame, days: list[str]) -> dict[str, dict]:
    """Per UTC day of a `clean` result: the imputed share and the count of each flag."""
    quality: dict[str, dict] = {day: {"imputed_share": 0.0, "flags": {}} for day in days}
    if not result.height:
        return quality
    tagged = result.select(
        pl.col("interval_start_utc").dt.strftime("%Y-%m-%d").alias("day"), "flag", "is_observed"
    )
    shares = tagged.group_by("day").agg((1.0 - pl.col("is_observed").mean()).alias("share"))
    for day, share in shares.iter_rows():
        if day in quality:
            quality[day]["imputed_share"] = round(float(share), 5)
    counts = tagged.group_by("day", "flag").len().sort("day", "len", descending=[False, True])
    for day, flag, n in counts.iter_rows():
        if day in quality:
            quality[day]["flags"][flag] = n
    return quality
