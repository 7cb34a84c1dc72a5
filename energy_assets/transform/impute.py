"""Gap filling on hours x series matrices: a locally weighted blend of seasonal and covariate
predictions, anchored to the observed values at each gap's edges.

Belongs here: the numeric imputation core and its configuration. Which cells are gaps (missing
or flagged by `screen`), which covariates a series has, and the long-table entry point live in
`clean`.

Method ("blend"), per series, vectorised over hours and series:

1. Candidate predictions, each defined wherever its inputs are:
   - daily analog: mean of the same hour on the neighbouring days (t +- 24 h);
   - weekly analog: mean of the same hour of the week, one and two weeks away;
   - per proxy covariate (a series measuring nearly the same thing in the same region, e.g. the
     day-ahead forecast for demand): the proxy times the median ratio series/proxy of the same
     hour over +-7 days, and times the rolling median ratio over +-7 days (differences instead
     of ratios for series that may be negative);
   - per driver (e.g. the region's temperature, entering as |T - 18 degC|): the daily and the
     weekly analog corrected by the driver's change since that day or week, times the local
     least-squares slope of the series' changes on the driver's changes.
2. Each candidate's local error is measured on the observed hours at the gap's two edges
   (centred rolling mean over `error_window_hours`). For short gaps the error that matters is
   how smooth the candidate's residual is across the gap (step 3 removes its level error), so
   gaps of up to 12 h use |r(t) - (r(t-h) + r(t+h))/2| with h about half the gap length; longer
   gaps use |r(t)|. Candidates are averaged with weights 1 / error^2.
3. Anchoring: the blend's residuals at the last observed hour before and the first after the
   gap are carried into it, linearly interpolated between the edges; in gaps longer than
   `anchor_full_max_gap_hours` they also fade with distance (`anchor_decay_hours`), as an edge
   says little about the middle of a long gap. The filled curve meets the observations at both
   edges. An edge's blend uses, of each candidate, only the parts the gap cell has (e.g. of
   the analogs at t +- 24 h and t +- 1-2 weeks, those not missing at the gap), so the residual
   carried in is that of the prediction being corrected: when the same hour is missing on the
   neighbouring days too, the gap has no daily analog while its edges do.

Gaps up to `linear_max_gap_hours` (per series rule) use linear interpolation instead; a gap with
no usable candidate falls back to linear interpolation between its edges, or to holding the
single edge value when the gap touches the matrix edge; a short gap (up to 12 h) most of whose
hours have no analog at all (no value a day or one or two weeks away: a BA empty at the same
hour every day for weeks) is interpolated linearly too, as a proxy alone fills those worse. On
the Ruggles et al. (2020) BAs the blend beats linear interpolation at every gap length, 1 h
included, and on recurring one-hour gaps (numbers: benchmarks/quality_ruggles.py), which is
why demand-like series default to 0 here.

Gaps at the matrix edge (the newest hours of the newest partition) have only a left anchor:
their fill uses the candidates that need no future data and is revised when later days arrive.

Bounded reach. The fill of an hour reads nothing further than `reach_hours` from it, so a daily
partition whose window holds that much context (with the screens' own) fills its day exactly as
a run over the whole series does, whatever the range and however long the gaps:
- a gap edge further than `edge_reach_hours` (168 h) is not used: that side counts as open, as at
  the matrix edge, and a gap without one of its edges counts as longer than the reach (its true
  length is not visible from the hour). An hour with no observation within the reach on either
  side stays unfilled: a month-long gap's middle is left null rather than drawn as a line between
  edges weeks away (the anchors' weight there was below exp(-7) anyway);
- the driver slopes are exact integer sums over their window (`_exact_window_sum`): a float
  running sum carries rounding from the first row, which differs between a partition's window
  and the whole series;
- where no pair of driver and series changes lies within the slope window, the driver-corrected
  analog is absent (it used to borrow the nearest slope, however far).
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from energy_assets.transform.grid import rolling, same_hour_median, shift_rows

METHODS: tuple[str, ...] = ("observed", "linear", "blend", "hold", "unfilled")
"""Provenance of a value; a method matrix holds their index (int8)."""
M_OBSERVED, M_LINEAR, M_BLEND, M_HOLD, M_UNFILLED = (np.int8(i) for i in range(5))

SHORT_GAP_HALF_WIDTHS = (1, 2, 3, 4, 6)
"""Half-widths h for the short-gap smoothness error; longer gaps use the plain error."""
LONG_GAP_HOURS = 12


class ImputeConfig(BaseModel):
    """Parameters of the blend imputation (defaults measured on the Ruggles BAs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_lags: int = Field(1, ge=0, description="daily analog uses t +- 24 k for k <= this")
    weekly_lags: int = Field(2, ge=0, description="weekly analog uses t +- 168 k for k <= this")
    ratio_days: int = Field(7, ge=1, description="covariate same-hour ratio over +- days")
    ratio_window_hours: int = Field(336, ge=24, description="covariate level-ratio window")
    error_window_hours: int = Field(168, ge=24, description="window of local candidate errors")
    anchor_decay_hours: float = Field(24.0, gt=0, description="e-folding of edge residuals")
    anchor_full_max_gap_hours: int = Field(
        6, ge=0, description="gaps up to this keep undecayed edge residuals"
    )
    edge_reach_hours: int = Field(
        168,
        ge=LONG_GAP_HOURS,
        description="a gap edge further than this from a cell does not enter its fill; a cell "
        "with no observation this close stays unfilled",
    )
    max_gap_hours: int | None = Field(
        None, ge=1, description="gaps longer than this stay null (None: fill all fillable)"
    )

    @model_validator(mode="after")
    def _max_gap_within_reach(self) -> ImputeConfig:
        if self.max_gap_hours is not None and self.max_gap_hours > self.edge_reach_hours:
            raise ValueError(
                f"max_gap_hours {self.max_gap_hours} exceeds edge_reach_hours "
                f"{self.edge_reach_hours}: a fill cannot see whether a gap is longer than its "
                "edge reach; lower max_gap_hours or raise edge_reach_hours"
            )
        return self


DRIVER_LAGS = (24, 168)
"""Lags (h) of the driver-corrected analogs."""


def reach_hours(cfg: ImputeConfig) -> int:
    """Hours from a filled cell to the farthest value (observed or flagged) its fill reads.

    A cell reads its gap's edges up to `edge_reach_hours` away; each edge's candidate errors
    average `error_window_hours` around it (short gaps: residuals up to the largest half-width
    further); each candidate reads the series and its covariates up to the farthest of its lags
    and windows (analogs 24 k and 168 k h; ratios +-`ratio_days` days and half the ratio window;
    driven analogs their lag plus half the slope window). Whatever lies further cannot change
    the fill, so a window holding every hour within reach of a day, each with its screens' own
    context, fills that day as the whole series does (`CleaningConfig.context_days`).
    """
    half = cfg.ratio_window_hours // 2
    candidate = max(
        24 * cfg.daily_lags,
        168 * cfg.weekly_lags,
        24 * cfg.ratio_days,
        half,
        max(DRIVER_LAGS) + half,
    )
    edges = cfg.edge_reach_hours + cfg.error_window_hours // 2 + max(SHORT_GAP_HALF_WIDTHS)
    return edges + candidate


def method_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(METHODS, dtype=object)[codes]


def impute_matrix(
    y: np.ndarray,
    covariates: list[np.ndarray],
    positive: np.ndarray,
    linear_max_gap: np.ndarray,
    config: ImputeConfig | None = None,
    drivers: list[np.ndarray] | None = None,
    rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the NaN cells of `y` (hours x series). Returns (filled values, method codes).

    `covariates[k][:, j]` is the k-th proxy of series j: a series measuring nearly the same
    quantity (the forecast of demand); all-NaN when j has none.
    `drivers[k][:, j]`: the k-th driver of series j, already transformed so that y grows with it
    (e.g. |temperature - 18 degC|); it corrects the daily and weekly analogs by the local
    regression slope of y's change on the driver's change over the same lag.
    `positive[j]`: series j is strictly positive (ratio models) rather than signed (differences).
    `linear_max_gap[j]`: gaps of series j up to this many hours are linearly interpolated.
    `rows`: fill only the gaps in these rows (elsewhere they stay NaN, method unfilled); a fill
    reads observations only, never other fills, so the filled rows do not change.
    """
    cfg = config or ImputeConfig()
    y = np.asarray(y, dtype=np.float64)
    n, m = y.shape
    known = ~np.isnan(y)
    methods = np.where(known, M_OBSERVED, M_UNFILLED).astype(np.int8)
    out = y.copy()
    if n == 0 or m == 0 or known.all():
        return out, methods

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        left, right, gap_len = _gap_geometry(known, cfg.edge_reach_hours)
        gap = ~known & ((left >= 0) | (right < n))  # fillable: some observed anchor
        if rows is not None:
            wanted = np.zeros(n, dtype=bool)
            wanted[rows] = True
            gap &= wanted[:, None]
        if cfg.max_gap_hours is not None:
            gap &= gap_len <= cfg.max_gap_hours
        both = gap & (left >= 0) & (right < n)
        linear = both & (gap_len <= np.asarray(linear_max_gap)[None, :])
        blendable = gap & ~linear

        cols = np.broadcast_to(np.arange(m), (n, m))
        lin_values = _linear_fill(y, left, right, cols)
        out[linear] = lin_values[linear]
        methods[linear] = M_LINEAR

        if blendable.any():
            rows, cols_b, values, linear_better = _blend_gaps(
                y, blendable, left, right, gap_len, covariates, drivers or [], positive, cfg
            )
            # A short gap without analogs (the same hours missing on the neighbouring days
            # and weeks too) is interpolated: a proxy alone does worse there.
            values[linear_better & both[rows, cols_b]] = np.nan
            ok = ~np.isnan(values)
            out[rows[ok], cols_b[ok]] = values[ok]
            methods[rows[ok], cols_b[ok]] = M_BLEND
            # No usable candidate: linear between two edges, else hold the one edge.
            rest = blendable.copy()
            rest[rows[ok], cols_b[ok]] = False
            lin = rest & both
            out[lin] = lin_values[lin]
            methods[lin] = M_LINEAR
            hold = rest & ~both
            edge = np.where(left >= 0, left, right)
            out[hold] = y[edge[hold], cols[hold]]
            methods[hold] = M_HOLD
        # A fill of a strictly positive series stays >= 0 even where a candidate overshoots.
        filled = ~known & np.asarray(positive, dtype=bool)[None, :]
        out[filled] = np.maximum(out[filled], 0.0)  # NaN (unfilled) stays NaN
    return out, methods


# ---------------------------------------------------------------------------- pieces


BEYOND_REACH = np.iinfo(np.int64).max // 4
"""Gap length of a cell one of whose edges is out of reach: longer than any bucket."""


def _gap_geometry(
    known: np.ndarray, reach: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: row of the last known value at or before it (-1 if none), of the first at or
    after it (n if none), and the length of the gap it is in (0 for known cells).

    `reach`: an edge more than this many rows away counts as none (-1 or n), and the gap of a
    cell without an edge is BEYOND_REACH long, so that what a cell's fill reads never depends
    on where the matrix starts or ends beyond its reach."""
    n = known.shape[0]
    rows = np.arange(n)[:, None]
    left = np.maximum.accumulate(np.where(known, rows, -1), axis=0)
    right = np.minimum.accumulate(np.where(known, rows, n)[::-1], axis=0)[::-1]
    gap_len = np.where(known, 0, right - left - 1)
    if reach is not None:
        far_l = (left >= 0) & (rows - left > reach)
        far_r = (right < n) & (right - rows > reach)
        left = np.where(far_l, -1, left)
        right = np.where(far_r, n, right)
        # without one of its edges (out of reach, or before the first row or after the last)
        # a gap's length is unknown: it counts as longer than the reach, wherever rows start
        gap_len = np.where(~known & ((left < 0) | (right >= n)), BEYOND_REACH, gap_len)
    return left, right, gap_len


def _linear_fill(y: np.ndarray, left: np.ndarray, right: np.ndarray, cols: np.ndarray):
    n = y.shape[0]
    rows = np.arange(n)[:, None]
    lv = y[np.clip(left, 0, n - 1), cols]
    rv = y[np.clip(right, 0, n - 1), cols]
    frac = (rows - left) / np.maximum(right - left, 1)
    return lv + (rv - lv) * frac


def _nanmean_stack(arrays: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(arrays[0])
    count = np.zeros_like(arrays[0])
    for a in arrays:
        ok = ~np.isnan(a)
        total += np.where(ok, a, 0.0)
        count += ok
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class _Candidate:
    """A candidate prediction: the mean of its parts where they are present. Parts are lagged
    copies of the series (`lags`: part = y[t - lag], read in place) or matrices (`parts`)."""

    def __init__(
        self,
        y: np.ndarray,
        lags: tuple[int, ...] = (),
        parts: tuple[np.ndarray, ...] = (),
        analog: bool = True,
    ) -> None:
        self.y, self.lags, self.parts, self.analog = y, lags, parts, analog
        self.full = _nanmean_stack([*(shift_rows(y, lag) for lag in lags), *parts])

    def part_values(self, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
        """Each part's values at cells (rows, cols)."""
        n = self.y.shape[0]
        out = []
        for lag in self.lags:
            src = rows - lag
            inside = (src >= 0) & (src < n)
            out.append(np.where(inside, self.y[np.clip(src, 0, n - 1), cols], np.nan))
        out.extend(part[rows, cols] for part in self.parts)
        return out


def _candidates(
    y: np.ndarray,
    covariates: list[np.ndarray],
    positive: np.ndarray,
    cfg: ImputeConfig,
    drivers: list[np.ndarray],
) -> list[_Candidate]:
    out = []
    if cfg.daily_lags:
        lags = tuple(s * 24 * k for k in range(1, cfg.daily_lags + 1) for s in (1, -1))
        out.append(_Candidate(y, lags))
    if cfg.weekly_lags:
        lags = tuple(s * 168 * k for k in range(1, cfg.weekly_lags + 1) for s in (1, -1))
        out.append(_Candidate(y, lags))
    pos = np.asarray(positive, dtype=bool)[None, :]
    for cov in covariates:
        if np.isnan(cov).all():
            continue
        usable = pos & (cov > 0)
        link = np.where(pos, y / np.where(usable, cov, np.nan), y - cov)
        same_hour = same_hour_median(link, cfg.ratio_days)
        level = rolling(link, "median", cfg.ratio_window_hours)
        for k in (same_hour, level):
            out.append(_Candidate(y, parts=(np.where(pos, cov * k, cov + k),), analog=False))
    for z in drivers:
        if np.isnan(z).all():
            continue
        for lag in DRIVER_LAGS:
            parts = tuple(_driven_analog(y, z, s * lag, cfg) for s in (1, -1))
            out.append(_Candidate(y, parts=parts))
    return out


def _driven_analog(y: np.ndarray, z: np.ndarray, lag: int, cfg: ImputeConfig) -> np.ndarray:
    """y[t - lag] + b (z[t] - z[t - lag]), b the local least-squares slope of the lagged
    changes of y on those of z (centred window of `ratio_window_hours`, through the origin;
    NaN where the window holds no pair, so the candidate is absent there)."""
    dy = y - shift_rows(y, lag)
    dz = z - shift_rows(z, lag)
    both = ~np.isnan(dy) & ~np.isnan(dz)
    sxy = _exact_window_sum(np.where(both, dy * dz, np.nan), cfg.ratio_window_hours)
    sxx = _exact_window_sum(np.where(both, dz * dz, np.nan), cfg.ratio_window_hours)
    slope = np.where(sxx > 0, sxy / sxx, np.nan)
    return shift_rows(y, lag) + slope * dz


SUM_QUANTUM = 2.0**-16
"""Resolution of `_exact_window_sum`'s terms."""
SUM_TERM_LIMIT = 2.0**30
"""Terms are clipped to +-this (products of MW and kelvin changes stay far below)."""


def _exact_window_sum(a: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling sum of `a` (NaN skipped; rows t - w // 2 .. t + (w - 1) // 2) that does
    not depend on where the matrix starts: the terms are quantised to SUM_QUANTUM and summed as
    integers, which is exact (a float running sum carries rounding from row 0, so a day's fill
    would differ in the last bits between a partition's window and the whole series). A window
    sum stays below 2^55; a wrapped int64 cumulative sum still differences exactly."""
    n = a.shape[0]
    terms = np.clip(np.nan_to_num(a, nan=0.0), -SUM_TERM_LIMIT, SUM_TERM_LIMIT)
    q = np.rint(terms / SUM_QUANTUM).astype(np.int64)
    cs = np.zeros((n + 1, a.shape[1]), dtype=np.int64)
    with np.errstate(over="ignore"):
        np.cumsum(q, axis=0, out=cs[1:])
        t = np.arange(n)
        lo = np.clip(t - window // 2, 0, n)
        hi = np.clip(t + (window - 1) // 2 + 1, 0, n)
        total = cs[hi] - cs[lo]
    return total.astype(np.float64) * SUM_QUANTUM


def _bucket_of(gap_len: np.ndarray) -> np.ndarray:
    """Index into (*SHORT_GAP_HALF_WIDTHS, long): the half-width nearest to half the gap."""
    half = np.ceil(gap_len / 2.0)
    widths = np.asarray(SHORT_GAP_HALF_WIDTHS)
    nearest = np.abs(half[..., None] - widths).argmin(axis=-1)
    return np.where(gap_len > LONG_GAP_HOURS, len(widths), nearest)


def _blend_gaps(
    y: np.ndarray,
    blendable: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    gap_len: np.ndarray,
    covariates: list[np.ndarray],
    drivers: list[np.ndarray],
    positive: np.ndarray,
    cfg: ImputeConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blend + anchor for every blendable cell: (rows, columns, values, linear_better), value
    NaN = no candidate; linear_better: a short gap (up to LONG_GAP_HOURS) most of whose hours
    have no analog (the same hours a day and a week away are missing too, e.g. a BA empty at
    the same hour every day): a proxy alone, anchored, fills such hours worse than linear
    interpolation on the Ruggles BAs (benchmarks/quality_ruggles.py, recurring gaps).

    Whole-matrix work (candidates, rolling errors) runs only on the columns that have such
    gaps; the blend itself is evaluated at the gap cells and their two anchors only.
    """
    n = y.shape[0]
    cols_any = np.flatnonzero(blendable.any(axis=0))
    sub = y[:, cols_any]
    candidates = _candidates(
        sub,
        [c[:, cols_any] for c in covariates],
        np.asarray(positive, dtype=bool)[cols_any],
        cfg,
        [d[:, cols_any] for d in drivers],
    )
    r, c = np.nonzero(blendable[:, cols_any])
    lo, hi = left[r, cols_any[c]], right[r, cols_any[c]]
    length = gap_len[r, cols_any[c]]
    bucket = _bucket_of(length)
    values = np.full(len(r), np.nan)
    linear_better = np.zeros(len(r), dtype=bool)
    for b, half in enumerate((*SHORT_GAP_HALF_WIDTHS, None)):
        sel = np.flatnonzero(bucket == b)
        if not sel.size:
            continue
        used, pos = np.unique(c[sel], return_inverse=True)
        rs, ls, hs = r[sel], lo[sel], hi[sel]
        has_l, has_r = ls >= 0, hs < n
        li, hi_ = np.clip(ls, 0, n - 1), np.clip(hs, 0, n - 1)
        acc = {k: np.zeros(sel.size) for k in ("num", "den", "num_l", "den_l", "num_r", "den_r")}
        edge_l, edge_r = (
            _distinct_cells(li, pos, n),
            _distinct_cells(hi_, pos, n),
        )  # once per bucket
        has_analog = np.zeros(sel.size, dtype=bool)
        for cand in candidates:
            p = cand.full[:, used]
            resid = sub[:, used] - p
            if half is not None:  # short gaps: how smooth the residual is across the gap
                resid = resid - (shift_rows(resid, half) + shift_rows(resid, -half)) / 2
            local = _CentredMean(np.abs(resid), cfg.error_window_hours)
            err_l = np.where(has_l, local.at(li, pos, edge_l), np.nan)
            err_r = np.where(has_r, local.at(hi_, pos, edge_r), np.nan)
            err = np.where(
                np.isnan(err_l), err_r, np.where(np.isnan(err_r), err_l, (err_l + err_r) / 2)
            )
            # The gap's weights come from its two edges; each edge's blend uses its own. An
            # edge's value of a candidate is the mean of the parts the gap cell has, and no
            # other: the anchoring carries the edges' residuals of the same prediction into the
            # gap. (When the same hour is missing on the neighbouring days too, the gap has no
            # daily analog and only some weekly ones, while its edges have them all.)
            weights = {"": err, "_l": err_l, "_r": err_r}
            col_sub = used[pos]
            at_gap = [~np.isnan(v) for v in cand.part_values(rs, col_sub)]
            if cand.analog:
                has_analog |= np.any(at_gap, axis=0)
            some = np.flatnonzero(~np.all(at_gap, axis=0))  # cells lacking some part
            for key, at in (("", rs), ("_l", li), ("_r", hi_)):
                val = p[at, pos]  # the mean of all parts present (at the gap: the same set)
                if key and some.size:
                    total, count = np.zeros(some.size), np.zeros(some.size)
                    parts = cand.part_values(at[some], col_sub[some])
                    for v, has in zip(parts, at_gap, strict=True):
                        ok = has[some] & ~np.isnan(v)
                        total += np.where(ok, v, 0.0)
                        count += ok
                    val[some] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
                weight = 1.0 / (weights[key] ** 2 + 1e-12)
                ok = ~np.isnan(val) & ~np.isnan(weight)
                acc["num" + key] += np.where(ok, weight * val, 0.0)
                acc["den" + key] += np.where(ok, weight, 0.0)
        blend = {
            k: np.where(
                acc["den" + k] > 0, acc["num" + k] / np.maximum(acc["den" + k], 1e-300), np.nan
            )
            for k in ("", "_l", "_r")
        }
        if half is not None:  # a short gap most of whose hours have no analog: linear
            linear_better[sel] = _per_gap_mean(has_analog.astype(float), c[sel], ls) < 0.5
        col_y = cols_any[c[sel]]
        res_l = np.where(has_l, y[li, col_y] - blend["_l"], np.nan)
        res_r = np.where(has_r, y[hi_, col_y] - blend["_r"], np.nan)
        values[sel] = blend[""] + _edge_correction(
            rs, ls, hs, has_l, has_r, res_l, res_r, length[sel], cfg
        )
    return r, cols_any[c], values, linear_better


def _per_gap_mean(a: np.ndarray, col: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Mean of `a` over the cells of each gap (same column and left edge), per cell."""
    _, gap_id = np.unique(col.astype(np.int64) * (left.max() + 2) + left + 1, return_inverse=True)
    ok = ~np.isnan(a)
    total = np.bincount(gap_id, weights=np.where(ok, a, 0.0))
    count = np.bincount(gap_id, weights=ok.astype(np.float64))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)[gap_id]


def _distinct_cells(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct flat cells, index of each asked cell among them) of cells (rows, cols)."""
    return np.unique(cols * n + rows, return_inverse=True)


class _CentredMean:
    """`rolling(a, "mean", window)` (centred, NaN skipped, edges truncated) read at chosen
    cells only: each distinct cell's own window is summed, so nothing outside it (an inf, a
    huge spike) can leak in. Only the gap edges are asked for: a few cells per gap instead of
    the whole matrix. The errors only weight the candidates; the summation order (an ulp or so
    against polars) does not matter."""

    def __init__(self, a: np.ndarray, window: int) -> None:
        n, m = a.shape
        before = window // 2  # rows t - w // 2 .. t + (w - 1) // 2, as polars centres
        padded = np.full((m, before + n + window - before - 1), np.nan)
        padded[:, before : before + n] = a.T
        self.n = n
        self.windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)

    def at(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        distinct: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The mean at cells (rows, cols); `distinct`: `_distinct_cells(rows, cols, n)` when
        the caller asks for the same cells of several matrices."""
        cells, where = distinct or _distinct_cells(rows, cols, self.n)
        values = self.windows[cells // self.n, cells % self.n]  # distinct cells x window
        count = (~np.isnan(values)).sum(axis=1)
        total = np.nansum(values, axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)[where]


def _edge_correction(
    rows: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    has_l: np.ndarray,
    has_r: np.ndarray,
    res_l: np.ndarray,
    res_r: np.ndarray,
    length: np.ndarray,
    cfg: ImputeConfig,
) -> np.ndarray:
    """The blend's residuals at the gap edges, interpolated across the gap; faded with
    distance in long gaps."""
    dl = (rows - left).astype(np.float64)
    dr = (right - rows).astype(np.float64)
    span = np.where(has_l & has_r, dl + dr, 1.0)
    wl = np.where(has_r, dr / span, 1.0)
    wr = np.where(has_l, dl / span, 1.0)
    # Short gaps keep the full edge residuals (the blend's level error is what they remove);
    # long ones let them fade, as the edges say little about the middle of a long gap.
    fade = length > cfg.anchor_full_max_gap_hours
    wl = np.where(fade, wl * np.exp(-dl / cfg.anchor_decay_hours), wl)
    wr = np.where(fade, wr * np.exp(-dr / cfg.anchor_decay_hours), wr)
    wl = np.where(np.isnan(res_l), 0.0, wl)
    wr = np.where(np.isnan(res_r), 0.0, wr)
    return wl * np.nan_to_num(res_l) + wr * np.nan_to_num(res_r)
