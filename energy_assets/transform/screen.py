"""Anomaly screens on hours x series matrices: Ruggles et al. (2020) and simple bounds.

Belongs here: the screening algorithms (numpy/polars, vectorised over hours and series) and
their thresholds. Choosing which series get which screens, and the long-table entry point, live
in `clean`.

Ruggles, Farnham, Tong & Caldeira, "Developing reliable hourly electricity demand data through
screening and imputation", Sci Data 7, 155 (2020), doi:10.1038/s41597-020-0483-x; reference code
truggles/EIA_Cleaned_Hourly_Electricity_Demand_Code (`step2_anomaly_screening.ipynb`). Same
screens, thresholds and order, labels named as in the published data:

Step 1, each on the values left by the previous screen:
  MISSING (null), NEG_OR_ZERO (x <= 0), IDENTICAL_RUN (3rd+ equal value in a row),
  GLOBAL_DEM (x >= 10 x median), GLOBAL_DEM_PLUS_MINUS (OKAY hours next to a GLOBAL_DEM hour).
Statistics, computed ONCE on the values left after step 1 (as in the original): centred rolling
  medians M48 and M480, the diurnal template h = 1 + median_k(x - M48)[t + 24k] / M480 for
  k = -10..10, prediction p = M48 * h, 240 h rolling IQRs of (x - M48) and of hourly deltas,
  r = x / p, r_long = x / (M480 * h) and the window-wide IQR of hour-to-hour changes of r.
Step 2:
  LOCAL_DEM_UP (x >= p + 3.5 IQR), LOCAL_DEM_DOWN (x <= p - 2.5 IQR),
  DELTA (both neighbour deltas beyond 2 x delta IQR, same sign),
  SINGLE_DELTA (a forward then a backward pass against the last unflagged value: step
  > 5 x delta IQR and change in r > 15 x IQR_r; the forward pass spares a value that is closer to
  its prediction than its reference is),
  ANOMALOUS_REGION (OKAY hours in short good runs inside 49 h windows with <= 85 % good hours).

Deliberately NOT copied from PUDL's port (catalyst-cooperative/pudl timeseries_cleaning.py,
@002776d; see ../docs/eia930_cleaning.md section 2): there, the neighbour screen compares against
"GLOBAL_OUTLIER" while flags are stored lower-case (so it never fires), and missing values count
as flagged in the anomalous-region screen. Here GLOBAL_DEM_PLUS_MINUS fires, and MISSING hours
count as good in ANOMALOUS_REGION, as in Ruggles' code and paper.

"Global" statistics (the median of the 10x cut, IQR_r) are taken over the matrix the caller
passes: for a daily partition, its +-context window. Rolling windows near the matrix edges use the
rows available (pandas `min_periods=1` semantics); ANOMALOUS_REGION's fractions and run lengths
are likewise truncated at the edges (Ruggles' loop instead leaves the first and last 24 h at a
"0 % good" that triggers the screen), so only the newest partition's last day differs, and
only by not flagging there.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.transform.grid import rolling, same_hour_median, shift_rows

FLAGS: tuple[str, ...] = (
    "OKAY",
    "MISSING",
    "NEG_OR_ZERO",
    "IDENTICAL_RUN",
    "GLOBAL_DEM",
    "GLOBAL_DEM_PLUS_MINUS",
    "LOCAL_DEM_UP",
    "LOCAL_DEM_DOWN",
    "DELTA",
    "SINGLE_DELTA",
    "ANOMALOUS_REGION",
    "OUT_OF_BOUNDS",
)
"""Flag names; a flag matrix holds their index (int8). The last one is for non-demand series."""

CODE = {name: np.int8(i) for i, name in enumerate(FLAGS)}
OKAY, MISSING = CODE["OKAY"], CODE["MISSING"]


class RugglesThresholds(BaseModel):
    """Ruggles et al. (2020) parameters, defaults as published (screening notebook, cell 5)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    short_window_hours: int = Field(48, description="M_t,48h: short centred rolling median")
    long_window_hours: int = Field(480, description="M_t,480h: long centred rolling median")
    template_days: int = Field(10, description="days each side for the diurnal template")
    iqr_window_hours: int = Field(240, description="centred window of the rolling IQRs")
    global_multiplier: float = Field(10.0, description="GLOBAL_DEM: x >= this x median")
    identical_run_length: int = Field(3, ge=2, description="flag the n-th+ identical value")
    local_up: float = Field(3.5, description="LOCAL_DEM_UP: IQRs above the prediction")
    local_down: float = Field(2.5, description="LOCAL_DEM_DOWN: IQRs below the prediction")
    delta_multiplier: float = Field(2.0, description="DELTA: delta IQRs on both sides")
    single_delta_multiplier: float = Field(5.0, description="SINGLE_DELTA: delta IQRs")
    single_delta_rel_multiplier: float = Field(15.0, description="SINGLE_DELTA: IQR_r multiple")
    anomalous_width_hours: int = Field(24, description="ANOMALOUS_REGION half width")
    anomalous_good_fraction: float = Field(
        0.85, description="ANOMALOUS_REGION: windows with at most this good fraction"
    )


def flag_names(codes: np.ndarray) -> np.ndarray:
    """Flag codes -> names (object array of str)."""
    return np.asarray(FLAGS, dtype=object)[codes]


class _Screen:
    """Values and flags being screened: flagging a value nulls it for later screens."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.array(x, dtype=np.float64, copy=True)
        self.flags = np.where(np.isnan(self.x), MISSING, OKAY).astype(np.int8)

    def mark(self, mask: np.ndarray, name: str) -> None:
        hit = mask & ~np.isnan(self.x)
        self.flags[hit] = CODE[name]
        self.x[hit] = np.nan


def screen_ruggles(x: np.ndarray, th: RugglesThresholds | None = None) -> np.ndarray:
    """Ruggles screens on an hours x series matrix (NaN = missing); returns int8 flag codes."""
    th = th or RugglesThresholds()
    s = _Screen(x)
    n_hours = s.x.shape[0]
    if n_hours == 0 or s.x.shape[1] == 0:
        return s.flags
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # ---- step 1 ----
        s.mark(s.x <= 0, "NEG_OR_ZERO")
        run = np.ones_like(s.x, dtype=bool)
        run[: th.identical_run_length - 1] = False
        for lag in range(1, th.identical_run_length):
            run[lag:] &= s.x[lag:] == s.x[:-lag]
        s.mark(run, "IDENTICAL_RUN")
        median = np.nanmedian(s.x, axis=0)
        s.mark(~(s.x < th.global_multiplier * median), "GLOBAL_DEM")
        is_global = s.flags == CODE["GLOBAL_DEM"]
        beside = np.zeros_like(is_global)
        beside[1:] |= is_global[:-1]
        beside[:-1] |= is_global[1:]
        s.mark(beside & (s.flags == OKAY), "GLOBAL_DEM_PLUS_MINUS")

        # ---- statistics, once, on what step 1 left ----
        x1 = s.x.copy()
        m_short = rolling(x1, "median", th.short_window_hours)
        m_long = rolling(x1, "median", th.long_window_hours)
        offset = x1 - m_short
        iqr_offset = _rolling_iqr(offset, th.iqr_window_hours)
        delta_pre = x1 - shift_rows(x1, 1)
        delta_post = x1 - shift_rows(x1, -1)
        iqr_delta = _rolling_iqr(delta_pre, th.iqr_window_hours)
        template = 1.0 + same_hour_median(offset, th.template_days) / m_long
        prediction = m_short * template
        rel = x1 / prediction
        rel_long = x1 / (m_long * template)
        rel_step = rel - shift_rows(rel, 1)
        iqr_rel = np.nanpercentile(rel_step, 75, axis=0) - np.nanpercentile(rel_step, 25, axis=0)

        # ---- step 2 ----
        s.mark(~(s.x < prediction + th.local_up * iqr_offset), "LOCAL_DEM_UP")
        s.mark(~(s.x > prediction - th.local_down * iqr_offset), "LOCAL_DEM_DOWN")
        lim = th.delta_multiplier * iqr_delta
        s.mark(
            ((delta_pre > lim) & (delta_post > lim)) | ((delta_pre < -lim) & (delta_post < -lim)),
            "DELTA",
        )
        abs_lim = th.single_delta_multiplier * iqr_delta
        rel_lim = th.single_delta_rel_multiplier * iqr_rel
        closeness = np.fmax(np.abs(1.0 - rel), np.abs(1.0 - rel_long))
        fwd = _single_delta_pass(s.x, rel, closeness, abs_lim, rel_lim, reverse=False)
        s.mark(fwd, "SINGLE_DELTA")
        bwd = _single_delta_pass(s.x, rel, None, abs_lim, rel_lim, reverse=True)
        s.mark(bwd, "SINGLE_DELTA")
        s.mark(_anomalous_region(s.flags, th), "ANOMALOUS_REGION")
    return s.flags


def screen_bounds(
    x: np.ndarray, lower: float | None = None, upper: float | None = None, identical_run: int = 0
) -> np.ndarray:
    """MISSING, optional IDENTICAL_RUN (n-th+ equal value, 0 = off) and OUT_OF_BOUNDS."""
    s = _Screen(x)
    with np.errstate(invalid="ignore"):
        if identical_run >= 2:
            run = np.ones_like(s.x, dtype=bool)
            run[: identical_run - 1] = False
            for lag in range(1, identical_run):
                run[lag:] &= s.x[lag:] == s.x[:-lag]
            s.mark(run, "IDENTICAL_RUN")
        bad = np.zeros_like(s.x, dtype=bool)
        if lower is not None:
            bad |= s.x < lower
        if upper is not None:
            bad |= s.x > upper
        s.mark(bad, "OUT_OF_BOUNDS")
    return s.flags


# ---------------------------------------------------------------------------- helpers


def _rolling_iqr(x: np.ndarray, window: int) -> np.ndarray:
    q75 = rolling(x, "quantile", window, quantile=0.75)
    q25 = rolling(x, "quantile", window, quantile=0.25)
    return q75 - q25


def _single_delta_pass(
    x: np.ndarray,
    rel: np.ndarray,
    closeness: np.ndarray | None,
    abs_lim: np.ndarray,
    rel_lim: np.ndarray,
    reverse: bool,
) -> np.ndarray:
    """One SINGLE_DELTA pass: each value is compared with the last UNFLAGGED value before it.

    Sequential by definition (a flag changes the next value's reference), but only the value
    right after a new flag changes reference, so each iteration settles the next flag of every
    series at once: iterations = the largest number of flags in one series, each O(series).
    """
    if reverse:
        x, rel, abs_lim = x[::-1], rel[::-1], abs_lim[::-1]
        closeness = None if closeness is None else closeness[::-1]
    n_hours, n_series = x.shape
    cols, rows = np.nonzero(~np.isnan(x).T)  # column-major: each series' hours ascending
    n = len(rows)
    out = np.zeros((n_hours, n_series), dtype=bool)
    if n == 0:
        return out
    xv, rv, lv = x[rows, cols], rel[rows, cols], abs_lim[rows, cols]
    cv = None if closeness is None else closeness[rows, cols]
    rl = rel_lim[cols]
    idx = np.arange(n)
    ref = np.where(np.r_[False, cols[1:] == cols[:-1]], idx - 1, -1)

    def candidate(i: np.ndarray, r: np.ndarray) -> np.ndarray:
        ok = r >= 0
        rr = np.where(ok, r, i)
        hit = ok & (np.abs(xv[i] - xv[rr]) > lv[i]) & (np.abs(rv[i] - rv[rr]) > rl[i])
        if cv is not None:
            hit &= ~(cv[i] < cv[rr])  # spared: closer to its prediction than the reference
        return hit

    cand_idx = np.flatnonzero(candidate(idx, ref))
    col_end = np.searchsorted(cols, np.arange(n_series), side="right")
    frontier = np.searchsorted(cols, np.arange(n_series), side="left")
    active = np.flatnonzero(col_end > frontier)
    flagged = np.zeros(n, dtype=bool)
    while active.size and cand_idx.size:
        pos = np.searchsorted(cand_idx, frontier[active])
        found = pos < cand_idx.size
        g = np.where(found, cand_idx[np.minimum(pos, cand_idx.size - 1)], -1)
        found &= (g >= 0) & (g < col_end[active])
        active, g = active[found], g[found]
        if not active.size:
            break
        flagged[g] = True
        h = g + 1
        has_next = h < col_end[active]
        hn = h[has_next]
        ref[hn] = ref[g[has_next]]
        now = candidate(hn, ref[hn])
        cand_idx = np.union1d(np.setdiff1d(cand_idx, hn[~now]), hn[now])
        frontier[active] = h
        active = active[has_next]
    out[rows[flagged], cols[flagged]] = True
    return out[::-1] if reverse else out


def _window_mean(good: np.ndarray, before: int, after: int) -> np.ndarray:
    """Mean of good[t - before .. t + after] per column, truncated at the edges."""
    n = good.shape[0]
    cs = np.vstack([np.zeros((1, good.shape[1])), np.cumsum(good, axis=0)])
    t = np.arange(n)
    lo = np.clip(t - before, 0, n)
    hi = np.clip(t + after + 1, 0, n)
    return (cs[hi] - cs[lo]) / (hi - lo)[:, None]


def _anomalous_region(flags: np.ndarray, th: RugglesThresholds) -> np.ndarray:
    """Ruggles' anomalous-region screen, vectorised (MISSING counts as good, as in Ruggles)."""
    w = th.anomalous_width_hours
    good = ((flags == OKAY) | (flags == MISSING)).astype(np.float64)
    n = good.shape[0]
    # A centre c triggers when its +-w window is too bad; it marks hours j in [c - w, c + w - 1].
    trigger = (_window_mean(good, w, w) <= th.anomalous_good_fraction).astype(np.float64)
    near = _window_mean(trigger, w - 1, w) > 0
    # Spared: the start or end of w+1 good hours in a row ...
    pre = _window_mean(good, w, 0)
    post = _window_mean(good, 0, w)
    spared = (pre >= 1.0 - 1e-12) | (post >= 1.0 - 1e-12)
    # ... or any hour of a good run longer than w.
    run_len = _run_lengths(good > 0)
    return (flags == OKAY) & near & ~spared & (run_len <= w) & (n > 0)


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True each True cell belongs to (0 for False), per column."""
    n, m = mask.shape
    if n == 0:
        return np.zeros_like(mask, dtype=np.int64)
    flat = mask.T.reshape(-1)
    starts = np.r_[True, flat[1:] != flat[:-1]]
    starts[np.arange(0, n * m, n)] = True  # a new series always starts a run
    run_id = np.cumsum(starts) - 1
    sizes = np.bincount(run_id)
    lengths = np.where(flat, sizes[run_id], 0)
    return lengths.reshape(m, n).T
