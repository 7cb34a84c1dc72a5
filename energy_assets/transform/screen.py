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
  GLOBAL_DEM (x >= 10 x the day's reference median, below), GLOBAL_DEM_PLUS_MINUS (OKAY hours
  next to a GLOBAL_DEM hour).
Statistics, computed ONCE on the values left after step 1 (as in the original): centred rolling
  medians M48 and M480, the diurnal template h = 1 + median_k(x - M48)[t + 24k] / M480 for
  k = -10..10, prediction p = M48 * h, 240 h rolling IQRs of (x - M48) and of hourly deltas,
  r = x / p, r_long = x / (M480 * h) and IQR_r, the day's reference IQR of hour-to-hour changes
  of r (below).
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

Per-day references instead of whole-series statistics. Ruggles et al. take the median of the 10x
cut and IQR_r over the whole series. A daily partition sees only its window (+-46 days), so
whole-matrix statistics would make a day's flags depend on how a range was cut into runs. Here
each is a per-day reference, a function of the UTC day and the data near it only:
  - the GLOBAL_DEM median of day d: the median of the daily medians of the values NEG_OR_ZERO
    and IDENTICAL_RUN left on days d - 1 .. d + 1 (`reference_median_days`);
  - IQR_r of day d: the median, over days d - 5 .. d + 5 (`reference_iqr_days`), of each day's
    IQR of the hour-to-hour changes of r (days with at least 12 of them).
Flags of day d read step-1 values up to 13 days away (480 h medians, the +-10-day template,
ANOMALOUS_REGION's +-48 h) and IQR_r of days d - 2 .. d + 2, so they read raw values up to
15 + 1 + 5 = 21 days away: SCREEN_CONTEXT_DAYS. Within that budget a day's
flags are the same whether its run covers one day or years (tested on the Ruggles BAs). The
SINGLE_DELTA passes compare a value with the last unflagged value at most 24 h before it
(`single_delta_max_age_hours`; Ruggles: any age): after a longer gap a series starts afresh,
as a step across days of missing data is no single-hour delta, and an unbounded reference would
reach past any window (SC, 2017-12-31: 24 good hours after a 4-day gap were flagged against the
value before it when the whole series was screened, not in a daily partition).

Rolling windows near the matrix edges use the rows available (pandas `min_periods=1`
semantics); ANOMALOUS_REGION's fractions and run lengths are likewise truncated at the edges
(Ruggles' loop instead leaves the first and last 24 h at a "0 % good" that triggers the
screen), so only the newest partition's last day differs, and only by not flagging there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.transform.grid import rolling, same_hour_median, shift_rows

try:  # several times faster than numpy's, same values
    from bottleneck import nanmedian as _bn_nanmedian
except ImportError:  # pragma: no cover
    _bn_nanmedian = np.nanmedian

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
SCREEN_CONTEXT_DAYS = 21
"""Days each side of a UTC day whose raw values its flags read (module docstring), with the
default thresholds."""
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
    single_delta_max_age_hours: int = Field(
        24, ge=1, description="SINGLE_DELTA: no reference older than this (a gap resets it)"
    )
    reference_median_days: int = Field(
        1, ge=0, description="GLOBAL_DEM median of day d: of the daily medians of days d +- this"
    )
    reference_iqr_days: int = Field(
        5, ge=0, description="IQR_r of day d: median of the daily IQRs of days d +- this"
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


def screen_ruggles(
    x: np.ndarray, th: RugglesThresholds | None = None, first_hour: int = 0
) -> np.ndarray:
    """Ruggles screens on an hours x series matrix (NaN = missing); returns int8 flag codes.

    `first_hour`: the UTC hour of day of row 0, so that the per-day references follow UTC days
    (the partitions' days).
    """
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
        median = _reference_median(s.x, first_hour, th.reference_median_days)
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
        iqr_offset = _iqr(offset, th, (th.local_up, th.local_down))
        delta_pre = x1 - shift_rows(x1, 1)
        delta_post = x1 - shift_rows(x1, -1)
        iqr_delta = _iqr(delta_pre, th, (th.delta_multiplier, th.single_delta_multiplier))
        template = 1.0 + same_hour_median(offset, th.template_days) / m_long
        prediction = m_short * template
        rel = x1 / prediction
        rel_long = x1 / (m_long * template)
        rel_step = rel - shift_rows(rel, 1)
        iqr_rel = _reference_iqr(rel_step, first_hour, th.reference_iqr_days)

        # ---- step 2 ----
        # Each screen is settled at the IQR's bounds; the exact IQR only where they disagree.
        s.mark(
            iqr_offset.settle(lambda iqr: ~(s.x < prediction + th.local_up * iqr), ~np.isnan(s.x)),
            "LOCAL_DEM_UP",
        )
        s.mark(
            iqr_offset.settle(
                lambda iqr: ~(s.x > prediction - th.local_down * iqr), ~np.isnan(s.x)
            ),
            "LOCAL_DEM_DOWN",
        )

        def delta(iqr: np.ndarray) -> np.ndarray:
            lim = th.delta_multiplier * iqr
            return ((delta_pre > lim) & (delta_post > lim)) | (
                (delta_pre < -lim) & (delta_post < -lim)
            )

        both = ~np.isnan(delta_pre) & ~np.isnan(delta_post)  # else no limit can flag
        s.mark(iqr_delta.settle(delta, both & ~np.isnan(s.x)), "DELTA")
        abs_lim = (
            th.single_delta_multiplier * iqr_delta.lo,
            th.single_delta_multiplier * iqr_delta.hi,
            lambda r, c: th.single_delta_multiplier * iqr_delta.exact(r, c),
        )
        rel_lim = (th.single_delta_rel_multiplier * iqr_rel, first_hour)  # per UTC day
        closeness = np.fmax(np.abs(1.0 - rel), np.abs(1.0 - rel_long))
        age = th.single_delta_max_age_hours
        fwd = _single_delta_pass(s.x, rel, closeness, abs_lim, rel_lim, False, age)
        s.mark(fwd, "SINGLE_DELTA")
        bwd = _single_delta_pass(s.x, rel, None, abs_lim, rel_lim, True, age)
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


MIN_DAILY_STEPS = 12
"""A day's IQR of the changes of r counts towards IQR_r when it has at least this many."""


def _day_blocks(x: np.ndarray, first_hour: int) -> np.ndarray:
    """x on whole UTC days: (days, 24, series), NaN before row 0 and after the last row."""
    n, m = x.shape
    days = -(-(first_hour + n) // 24)
    padded = np.full((days * 24, m), np.nan)
    padded[first_hour : first_hour + n] = x
    return padded.reshape(days, 24, m)


def _day_rows(per_day: np.ndarray, first_hour: int, n: int) -> np.ndarray:
    """(days, series) -> (hours, series): every hour takes its day's value."""
    return np.repeat(per_day, 24, axis=0)[first_hour : first_hour + n]


def _reference_median(x: np.ndarray, first_hour: int, half_days: int) -> np.ndarray:
    """Per hour: the median of the daily medians of its UTC day and `half_days` days each side
    (a robust level for a 10x cut, at a quarter of the pooled median's cost)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN days stay NaN
        daily = _bn_nanmedian(_day_blocks(x, first_hour), axis=1)
    return _day_rows(rolling(daily, "median", 2 * half_days + 1), first_hour, x.shape[0])


def _reference_iqr(step: np.ndarray, first_hour: int, half_days: int) -> np.ndarray:
    """Per UTC day (days x series, day 0 holds row 0): the median over the day +- `half_days`
    of each day's IQR of `step`."""
    blocks = np.sort(_day_blocks(step, first_hour).transpose(0, 2, 1), axis=2)  # NaN last
    count = (~np.isnan(blocks)).sum(axis=2)
    quartiles = []
    for q in (0.75, 0.25):  # linear interpolation between ranks, as numpy's default
        idx = np.maximum(count - 1, 0) * q
        low = np.floor(idx).astype(np.int64)
        frac = idx - low
        lo = np.take_along_axis(blocks, low[..., None], axis=2)[..., 0]
        hi = np.take_along_axis(blocks, np.ceil(idx).astype(np.int64)[..., None], axis=2)[..., 0]
        quartiles.append(lo + (hi - lo) * frac)
    daily = np.where(count >= MIN_DAILY_STEPS, quartiles[0] - quartiles[1], np.nan)
    return rolling(daily, "median", 2 * half_days + 1)


def _rolling_iqr(x: np.ndarray, window: int) -> np.ndarray:
    q75 = rolling(x, "quantile", window, quantile=0.75)
    q25 = rolling(x, "quantile", window, quantile=0.25)
    return q75 - q25


class _ExactIqr:
    """`_RollingIqr`'s interface over the exact values (when a multiplier is not >= 0)."""

    def __init__(self, x: np.ndarray, window: int) -> None:
        self.lo = self.hi = _rolling_iqr(x, window)

    def settle(
        self, decide: Callable[[np.ndarray], np.ndarray], relevant: np.ndarray
    ) -> np.ndarray:
        return decide(self.lo)

    def exact(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.lo[rows, cols]


def _iqr(x: np.ndarray, th: RugglesThresholds, multipliers: tuple[float, ...]):
    """The rolling IQR of x for screens comparing against these multiples of it."""
    if all(k >= 0 for k in multipliers):  # the screens are monotone in the IQR
        return _RollingIqr(x, th.iqr_window_hours)
    return _ExactIqr(x, th.iqr_window_hours)


class _RollingIqr:
    """Centred rolling IQR (`_rolling_iqr`'s values): cheap bounds everywhere, exact on demand.

    The screens only compare against multiples of the IQR, and those comparisons are monotone in
    it, so a cell whose decision is the same at both bounds is settled without the exact value.
    Bounds: the windows of `block` consecutive hours all contain the same core of
    window - block + 1 rows; one sort of each core serves the whole block. If a window holds k
    present values, e of them outside the core's s, its order statistic of rank r (0-based) lies
    between the core's ranks r - e and r (the e extra values can push a rank down by at most e,
    never up), so the linear interpolation polars makes between ranks floor((k - 1) q) and
    ceil((k - 1) q) lies between core ranks floor((k - 1) q) - e and ceil((k - 1) q). The exact
    value of a cell is that interpolation over its own sorted window (bit for bit as polars).
    """

    BLOCK_SHARE = 10  # a block is 1/10 of the window (24 h for 240 h): ranks move <= 10 %
    CHUNK_VALUES = 16_000_000  # sorted core values held at once (128 MB), columns per chunk

    def __init__(self, x: np.ndarray, window: int) -> None:
        self.x, self.window = x, window
        n, m = x.shape
        self.lead = window // 2 if window % 2 else window // 2 - 1  # rows after t
        before = window - 1 - self.lead
        block = max(1, window // self.BLOCK_SHARE)
        n_blocks, core_len = -(-n // block), window - block + 1
        chunk = int(np.clip(self.CHUNK_VALUES // (n_blocks * core_len), 1, 32))
        present = np.zeros((n + 1, m), dtype=np.int32)  # present[t]: count in rows < t
        np.cumsum(~np.isnan(x), axis=0, out=present[1:])
        t = np.arange(n)
        k = present[np.clip(t + self.lead + 1, 0, n)] - present[np.clip(t - before, 0, n)]
        first = np.arange(n_blocks) * block + block - 1 - before  # core rows of each block
        s = present[np.clip(first + core_len, 0, n)] - present[np.clip(first, 0, n)]
        of_block = t // block
        core_count = s[of_block]  # present values in each row's block core
        extra = k - core_count
        self.lo, self.hi = np.empty((n, m)), np.empty((n, m))
        padded = np.full((min(chunk, m), before + n_blocks * block + window), np.nan)
        for c0 in range(0, m, chunk):
            cols = slice(c0, min(c0 + chunk, m))
            width = cols.stop - c0
            buf = padded[:width]
            buf[:, before : before + n] = x[:, cols].T
            cores = np.lib.stride_tricks.sliding_window_view(buf, core_len, axis=1)
            core = cores[:, block - 1 :: block][:, :n_blocks].copy()
            core.sort(axis=2)  # NaN last: the s present values come first
            flat = core.reshape(width * n_blocks, core_len)
            row = of_block[:, None] + np.arange(width)[None, :] * n_blocks
            kc, ec, sc = k[:, cols], extra[:, cols], core_count[:, cols]
            bounds = []
            for q in (0.75, 0.25):
                idx = (kc - 1).astype(np.float64) * q
                low = np.floor(idx).astype(np.int64) - ec
                top = np.ceil(idx).astype(np.int64)
                below = flat[row, np.clip(low, 0, core_len - 1)]
                above = flat[row, np.clip(top, 0, core_len - 1)]
                bounds.append(
                    (np.where(low >= 0, below, -np.inf), np.where(top < sc, above, np.inf))
                )
            (lo75, hi75), (lo25, hi25) = bounds
            with np.errstate(invalid="ignore"):
                # Interpolating between two values can round past the upper one by a few ulps.
                margin75 = 1e-12 * (np.abs(lo75) + np.abs(hi75))
                margin25 = 1e-12 * (np.abs(lo25) + np.abs(hi25))
                self.lo[:, cols] = lo75 - (hi25 + margin25)
                self.hi[:, cols] = (hi75 + margin75) - lo25
        self.unbounded = ~(np.isfinite(self.lo) & np.isfinite(self.hi))
        self._known = np.zeros((n, m), dtype=bool)
        self._exact = np.empty((n, m))
        self._windows: np.ndarray | None = None

    def settle(
        self, decide: Callable[[np.ndarray], np.ndarray], relevant: np.ndarray
    ) -> np.ndarray:
        """`decide(iqr)`, a cell-wise test monotone in the IQR, as if given the exact IQR, at
        the `relevant` cells (elsewhere the test must not depend on the IQR, or not matter)."""
        settled = decide(self.lo)
        # An infinite bound (a window without enough values) times a zero multiplier is NaN,
        # which no comparison orders: such cells take the exact value too.
        rows, cols = np.nonzero(((settled != decide(self.hi)) | self.unbounded) & relevant)
        if rows.size:
            mixed = self.lo.copy()
            mixed[rows, cols] = self.exact(rows, cols)
            settled[rows, cols] = decide(mixed)[rows, cols]
        return settled

    def exact(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The IQR at cells (rows, cols), as polars' centred null-skipping rolling quantiles."""
        todo = ~self._known[rows, cols]
        if todo.any():
            r, c = rows[todo], cols[todo]
            self._exact[r, c] = self._compute(r, c)
            self._known[r, c] = True
        return self._exact[rows, cols]

    def _compute(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self._windows is None:  # series along rows, NaN-padded: window of t = [t, t + w)
            n, m = self.x.shape
            front = self.window - 1 - self.lead
            padded = np.full((m, front + n + self.lead), np.nan)
            padded[:, front : front + n] = self.x.T
            self._windows = np.lib.stride_tricks.sliding_window_view(padded, self.window, axis=1)
        vals = self._windows[cols, rows]
        vals.sort(axis=1)  # NaN last
        k = (~np.isnan(vals)).sum(axis=1)
        pick = np.arange(len(rows))
        out = []
        for q in (0.75, 0.25):
            idx = (k - 1).astype(np.float64) * q
            low = np.floor(idx).astype(np.int64)
            top = np.ceil(idx).astype(np.int64)
            lower = vals[pick, np.clip(low, 0, self.window - 1)]
            upper = vals[pick, np.clip(top, 0, self.window - 1)]
            value = np.where(top == low, lower, lower + (upper - lower) * (idx - low))
            out.append(np.where(k > 0, value, np.nan))
        return out[0] - out[1]


def _single_delta_pass(
    x: np.ndarray,
    rel: np.ndarray,
    closeness: np.ndarray | None,
    abs_lim: tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]],
    rel_lim: tuple[np.ndarray, int],
    reverse: bool,
    max_age: int,
) -> np.ndarray:
    """One SINGLE_DELTA pass: each value is compared with the last UNFLAGGED value before it,
    if that is at most `max_age` hours before it (else the value has no reference).

    Sequential by definition (a flag changes the next value's reference), but only the value
    right after a new flag changes reference, so each iteration settles the next flag of every
    series at once: iterations = the largest number of flags in one series, each O(series).
    `abs_lim` is (lower bound, upper bound, exact(rows, cols)) of the step limit: a test that
    both bounds settle needs no exact value.
    """
    lim_lo, lim_hi, lim_exact = abs_lim
    if reverse:
        x, rel, lim_lo, lim_hi = x[::-1], rel[::-1], lim_lo[::-1], lim_hi[::-1]
        closeness = None if closeness is None else closeness[::-1]
    n_hours, n_series = x.shape
    # Column-major (each series' hours ascending): transposed copies, then one boolean gather
    # each, which is far cheaper than fancy-indexing the row-major matrices.
    xt = np.ascontiguousarray(x.T)
    present = ~np.isnan(xt)
    per_col = present.sum(axis=1)
    n = int(per_col.sum())
    out = np.zeros((n_hours, n_series), dtype=bool)
    if n == 0:
        return out
    cols = np.repeat(np.arange(n_series), per_col)
    xv = xt[present]
    rv = np.ascontiguousarray(rel.T)[present]
    lv = np.ascontiguousarray(lim_lo.T)[present]
    lv_hi = np.ascontiguousarray(lim_hi.T)[present]
    exact = np.zeros(n, dtype=bool)  # lv holds the exact limit (else its lower bound)
    hour = np.broadcast_to(np.arange(n_hours, dtype=np.int32), xt.shape)[present]  # pass order
    row = n_hours - 1 - hour if reverse else hour  # in the caller's order

    def make_exact(i: np.ndarray) -> None:
        i = i[~exact[i]]
        if i.size:
            lv[i] = lim_exact(row[i], cols[i])
            exact[i] = True

    cv = None if closeness is None else np.ascontiguousarray(closeness.T)[present]
    lim_of_day, first_hour = rel_lim  # (days, series): the relative limit of each UTC day
    rl = lim_of_day[(row + first_hour) // 24, cols]
    idx = np.arange(n)
    # a value's first reference: the previous present value of its series, if recent enough
    same_col = np.r_[False, (cols[1:] == cols[:-1]) & (hour[1:] - hour[:-1] <= max_age)]
    ref = np.where(same_col, idx - 1, -1)

    def candidate(i: np.ndarray, r: np.ndarray) -> np.ndarray:
        rr = np.where(r >= 0, r, i)
        ok = (r >= 0) & (hour[i] - hour[rr] <= max_age)
        hit = ok & (np.abs(xv[i] - xv[rr]) > lv[i]) & (np.abs(rv[i] - rv[rr]) > rl[i])
        if cv is not None:
            hit &= ~(cv[i] < cv[rr])  # spared: closer to its prediction than the reference
        return hit

    # The first test (reference = previous present value) on contiguous slices, as `candidate`:
    # a hit at the upper bound is a hit, a miss at the lower bound a miss.
    def first_test(lim: np.ndarray) -> np.ndarray:
        first = np.zeros(n, dtype=bool)
        first[1:] = (
            same_col[1:]
            & (np.abs(xv[1:] - xv[:-1]) > lim[1:])
            & (np.abs(rv[1:] - rv[:-1]) > rl[1:])
        )
        if cv is not None:
            first[1:] &= ~(cv[1:] < cv[:-1])
        return first

    first = first_test(lv_hi)
    unsure = first != first_test(lv)
    unbounded = ~(np.isfinite(lv) & np.isfinite(lv_hi))
    if unbounded.any():  # an infinite bound can make the limit NaN: exact where it matters
        unsure |= unbounded & first_test(np.full(n, -np.inf))
    unsure = np.flatnonzero(unsure)
    if unsure.size:
        make_exact(unsure)
        first[unsure] = candidate(unsure, ref[unsure])
    cand_idx = np.flatnonzero(first)
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
        make_exact(hn)
        now = candidate(hn, ref[hn])
        cand_idx = np.union1d(np.setdiff1d(cand_idx, hn[~now]), hn[now])
        frontier[active] = h
        active = active[has_next]
    hit = np.flatnonzero(flagged)
    rows = hour[hit]  # position in the (possibly reversed) rows
    out[rows, cols[hit]] = True
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
