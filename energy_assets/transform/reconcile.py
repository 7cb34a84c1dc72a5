"""Physical reconciliation of a BA's EIA-930 series, then a spike screen on what it had to move.

Belongs here: the identities EIA-930 series must satisfy, the weighted least-squares projection
that makes them hold (numpy only, no Dagster), per-value provenance, the spike screen for the
non-demand series that `clean.py` leaves to this step, and `identity_residuals`, the identities
measured on a long table with `balance.py`'s polars tables, independently of the solver (what the
blocking contract check runs).

The problem (de Chalendar and Benson, Applied Energy 304 (2021) 117761; ../shared/docs/
eia930_cleaning.md section 9), for every hour, over every BA r, pair (r, s) and fuel f of r:

    minimise    sum_i w_i (x_i - x0_i)^2                   x0: the imputed values
    subject to  NG_r - D_r - TI_r = 0                      "balance" (EIA: TI > 0 = net export)
                TI_r - sum_s ID_rs = 0                     "interchange_sum"
                ID_rs + ID_sr = 0                          "antisymmetry" (pairs reported both ways)
                NG_r - sum_f NG_rf = 0                     "fuel_sum" (where the mix is reported)
                x_i >= floor_i                             "floor" (D, NG, fuels: 1 MW by default)

Series names are the pipeline's: `demand`, `net_generation`, `total_interchange`,
`interchange_to_<BA>` (region = the reporting BA) and `generation_<fuel>`.

How it is solved, for all hours of a window at once:
- antisymmetry is eliminated exactly: the two directions of a pair become one unknown z (ID_rs =
  z, ID_sr = -z) whose weight is the sum of both weights and whose target is their weighted mean,
  so the pair's disagreement is split by confidence before anything else;
- the remaining equalities A z = 0 are solved through the KKT system's Schur complement:
  z = z0 - W^-1 A^T lam with (A W^-1 A^T) lam = A z0. The structure A is built once per window;
  the nonzeros of S = A W^-1 A^T are computed for all hours from A's few nonzeros per column. A
  BA's balance and fuel_sum rows couple only with each other and its interchange_sum row, so
  they are eliminated in 2 x 2 blocks and only the interchange_sum rows (a third of S) are
  factored (the full S is the fallback for any other structure);
  hours with the same weights and active set share one factorization (a daily partition's hours
  mostly do), the others are solved in one batched LAPACK call; one step of iterative
  refinement follows where round-off left more than 1e-9 MW;
- floors by a vectorised primal active-set loop: in every hour that violates a floor the
  violating values are fixed at it (infinite weight), only those hours are solved again, and a
  fixed value whose multiplier turns negative is released (one per hour and pass). There is no
  per-hour loop in Python (hours go in chunks of CHUNK_HOURS to bound memory);
  `solve_reference` is the plain per-hour solver the tests compare with.

Which constraints apply: a constraint exists when its series exist in the window (balance: D, NG
and TI of the BA; sums: the total and at least one part). In an hour it is active when enough of
its values are reported to determine the rest: balance with two of its three values, a sum with at
least one part; antisymmetry always (one direction fills the other). A value that was null stays
null unless an active constraint determines it.

Weights (what "confidence" means here): w = cost / max(gamma, scale), where scale is the series'
mean |value| over the UTC day (a value is moved in proportion to its size, as in gridemissions,
whose weights are A / max(gamma, |240 h rolling mean|)), and cost is `observed_cost` for a value
the screens passed, `imputed_cost` for one they flagged and `impute` filled (100x cheaper to move
by default), `unfilled_cost` for a null. The scale depends only on the day, so a day's result does
not depend on how a range is cut into runs.

Provenance: `adjustment_mw` (reconciled - imputed) and `moved_by`, the constraint whose multiplier
contributes most to the adjustment (or "floor" for a value held at its floor; "none" when it did
not move).

Spike screen (non-demand series: net generation, interchange, fuel; demand has Ruggles' screens):
a value the screens passed is a SPIKE when it steps away from its neighbouring hours and the
first solve moves it back, both by more than `spike_factor` x max(the day's median absolute
deviation of that figure for the series, `spike_floor_share` x scale, `spike_floor_mw`): the
balance with the other series says that hour is off, and the series' own hours say which series.
The first solve spreads one bad value's imbalance over every series of its BA, so per BA and hour
only the series with the highest score is flagged; it becomes cheap (imputed cost), the window is
solved again and screened again, up to `spike_passes` rounds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from energy_assets.transform.balance import (
    BALANCE_SERIES,
    FUEL_PREFIX,
    INTERCHANGE_PREFIX,
    antisymmetry_table,
    balance_table,
    fuel_sum_table,
    interchange_sum_table,
)
from energy_assets.transform.grid import (
    HOUR_US,
    TIME,
    TIME_COL,
    check_time_column,
    matrix_to_long,
    require_columns,
    to_matrix,
)
from energy_assets.transform.quirks import glob_to_regex

KINDS = ("D", "NG", "TI", "ID", "fuel")
"""Series kinds in the balance: demand, net generation, total interchange, pairwise interchange
(`interchange_to_<BA>`), generation by fuel (`generation_<fuel>`)."""
_NAMED = dict(zip(BALANCE_SERIES, ("D", "NG", "TI"), strict=True))
ID_PREFIX = INTERCHANGE_PREFIX

CONSTRAINTS = ("none", "balance", "interchange_sum", "fuel_sum", "antisymmetry", "floor")
"""`moved_by` values: the constraint that moved a value most."""
_BALANCE, _SUM_ID, _SUM_FUEL, _ANTI, _FLOOR = 1, 2, 3, 4, 5

RECONCILED_SCHEMA = {
    TIME_COL: TIME,
    "region": pl.Utf8,
    "series": pl.Utf8,
    "value": pl.Float64,
    "value_imputed": pl.Float64,
    "adjustment_mw": pl.Float64,
    "moved_by": pl.Utf8,
    "is_spike": pl.Boolean,
    "flag": pl.Utf8,
    "method": pl.Utf8,
    "is_observed": pl.Boolean,
    "units": pl.Utf8,
    "source": pl.Utf8,
}


class ReconcileError(ValueError):
    """The reconciliation could not run on this input; the message says what to change."""


class FloorRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    pattern: str = Field(description="series-name glob; `|` separates alternatives")
    floor_mw: float | None = Field(description="lower bound in MW; None: no floor")


DEFAULT_FLOORS: tuple[FloorRule, ...] = (
    FloorRule(pattern="demand|net_generation", floor_mw=1.0),
    # storage charges from the grid (negative for hours: physical); solar reports its plants'
    # night-time station load as small negative generation (-50 MW is common in CISO), so a
    # 1 MW floor would push that load into the other fuels every night
    FloorRule(pattern="generation_bat|generation_ps|generation_sun", floor_mw=None),
    FloorRule(pattern="generation_*", floor_mw=1.0),
)
GRIDEMISSIONS_FLOORS: tuple[FloorRule, ...] = (
    FloorRule(pattern="demand|net_generation|generation_*", floor_mw=1.0),
)
"""gridemissions' CvxCleaner: D, NG and every fuel >= 1 MW (its basic cleaner clips solar to 0)."""


class ReconcileConfig(BaseModel):
    """Weights, floors and spike-screen thresholds of `reconcile` (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observed_cost: float = Field(1.0, gt=0, description="cost of moving a screened-good value")
    imputed_cost: float = Field(0.01, gt=0, description="cost of moving a flagged/filled value")
    unfilled_cost: float = Field(1e-6, gt=0, description="cost of a null (free to fill)")
    gamma_mw: float = Field(10.0, gt=0, description="scale floor (gridemissions' GAMMA)")
    floors: tuple[FloorRule, ...] = DEFAULT_FLOORS
    spike_factor: float = Field(5.0, gt=0)
    spike_floor_share: float = Field(0.05, ge=0, description="of the series' daily scale")
    spike_floor_mw: float = Field(10.0, ge=0)
    spike_screen: bool = True
    spike_passes: int = Field(
        3, ge=1, description="screen/solve rounds (one spike per BA-hour each)"
    )
    max_active_set_passes: int = Field(100, ge=1)

    def floor_of(self, series: list[str]) -> np.ndarray:
        out = np.full(len(series), -np.inf)
        done = np.zeros(len(series), dtype=bool)
        for rule in self.floors:
            rx = re.compile(glob_to_regex(rule.pattern))
            hit = np.array([not d and bool(rx.match(s)) for s, d in zip(series, done, strict=True)])
            if hit.any():
                out[hit] = -np.inf if rule.floor_mw is None else rule.floor_mw
                done |= hit
        return out


def series_kind(series: str) -> str | None:
    """The balance kind of a pipeline series name, None when it is not in the balance."""
    if series in _NAMED:
        return _NAMED[series]
    if series.startswith(ID_PREFIX) and len(series) > len(ID_PREFIX):
        return "ID"
    if series.startswith(FUEL_PREFIX) and len(series) > len(FUEL_PREFIX):
        return "fuel"
    return None


# --------------------------------------------------------------------------- the structure


@dataclass(frozen=True)
class BalanceSystem:
    """The identities of one window's variables, built once and shared by all its hours.

    Variables x (n) are (region, series) columns; unknowns z (nz) are x with the two directions
    of each reported pair merged (x_i = sign_i * z[z_of_i]). A (m, nz) holds the balance and sum
    constraints over z; a constraint is active in an hour when at least `min_present[k]` of its
    `terms[k]` variables have a value."""

    regions: list[str]
    series: list[str]
    kind: list[str]
    names: list[str]  # constraint k: "balance:CISO", "interchange_sum:CISO", "fuel_sum:CISO"
    constraint_kind: np.ndarray  # (m,) codes into CONSTRAINTS
    C: np.ndarray  # (m, n) coefficients over x (the constraints as written)
    T: np.ndarray  # (n, nz) x = T z (one +-1 per row)
    A: np.ndarray  # (m, nz) the same over z: C with each pair's columns merged
    terms: np.ndarray  # (m, n) bool
    min_present: np.ndarray  # (m,)
    z_of: np.ndarray  # (n,)
    sign: np.ndarray  # (n,)
    merged: np.ndarray  # (n,) bool: part of an antisymmetric pair
    pairs: np.ndarray  # (p, 2) variable indices of the pairs
    floor: np.ndarray  # (n,) -inf = none
    floor_z: np.ndarray  # (nz,)

    @property
    def n(self) -> int:
        return len(self.series)

    @property
    def nz(self) -> int:
        return self.A.shape[1]

    @property
    def m(self) -> int:
        return self.A.shape[0]


def balance_system(
    regions: list[str], series: list[str], floors: np.ndarray | None = None
) -> BalanceSystem:
    """The constraints among the given (region, series) variables (non-balance series refused)."""
    kind = [series_kind(s) for s in series]
    bad = [f"{r}/{s}" for r, s, k in zip(regions, series, kind, strict=True) if k is None]
    if bad:
        raise ReconcileError(
            f"series {bad[:5]} are not in the balance; pass only demand, net_generation, "
            "total_interchange, interchange_to_<BA> and generation_<fuel> rows"
        )
    n = len(series)
    index: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(regions, series, strict=True)):
        if key in index:
            raise ReconcileError(f"variable {key} appears twice; pass one column per series")
        index[key] = i
    # merge the two directions of each reported pair
    z_of = np.arange(n)
    sign = np.ones(n)
    merged = np.zeros(n, dtype=bool)
    pairs = []
    for i in range(n):
        if kind[i] != "ID" or merged[i]:
            continue
        other = index.get((series[i][len(ID_PREFIX) :], ID_PREFIX + regions[i]))
        if other is not None and other != i:
            z_of[other], sign[other] = i, -1.0
            merged[[i, other]] = True
            pairs.append((i, other))
    used = np.unique(z_of)
    renumber = np.full(n, -1)
    renumber[used] = np.arange(len(used))
    z_of = renumber[z_of]
    nz = len(used)

    names, ckind, rows, min_present = [], [], [], []

    def add(name: str, code: int, coef: dict[int, float], need: int) -> None:
        names.append(name)
        ckind.append(code)
        rows.append(coef)
        min_present.append(need)

    for region in sorted(set(regions)):
        own = {series[i]: i for i in range(n) if regions[i] == region}
        d, ng, ti = own.get("demand"), own.get("net_generation"), own.get("total_interchange")
        if d is not None and ng is not None and ti is not None:
            add(f"balance:{region}", _BALANCE, {ng: 1.0, d: -1.0, ti: -1.0}, 2)
        ids = [i for s, i in own.items() if kind[i] == "ID"]
        if ti is not None and ids:
            add(f"interchange_sum:{region}", _SUM_ID, {ti: 1.0, **dict.fromkeys(ids, -1.0)}, 1)
        fuels = [i for s, i in own.items() if kind[i] == "fuel"]
        if ng is not None and fuels:
            add(f"fuel_sum:{region}", _SUM_FUEL, {ng: 1.0, **dict.fromkeys(fuels, -1.0)}, 1)
    m = len(rows)
    C = np.zeros((m, n))
    terms = np.zeros((m, n), dtype=bool)
    for k, coef in enumerate(rows):
        for i, c in coef.items():
            C[k, i] = c
            terms[k, i] = True
        if ckind[k] in (_SUM_ID, _SUM_FUEL):  # the sums need a part present, not the total
            total = next(i for i, c in coef.items() if c > 0)
            terms[k, total] = False
    T = np.zeros((n, nz))  # x = T z
    T[np.arange(n), z_of] = sign
    A = C @ T
    floor = np.full(n, -np.inf) if floors is None else np.asarray(floors, dtype=float)
    if np.isfinite(floor[merged]).any():
        raise ReconcileError("a floor on pairwise interchange is not supported (it has a sign)")
    floor_z = np.full(nz, -np.inf)
    floor_z[z_of[~merged]] = floor[~merged]
    return BalanceSystem(
        regions=list(regions),
        series=list(series),
        kind=[k or "" for k in kind],
        names=names,
        constraint_kind=np.array(ckind, dtype=np.int8),
        C=C,
        T=T,
        A=A,
        terms=terms,
        min_present=np.array(min_present),
        z_of=z_of,
        sign=sign,
        merged=merged,
        pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
        floor=floor,
        floor_z=floor_z,
    )


# ------------------------------------------------------------------------------ the solver


@dataclass(frozen=True)
class Solution:
    value: np.ndarray  # (H, n) reconciled; NaN where the input was null and nothing determined it
    adjustment: np.ndarray  # (H, n) value - input (NaN where the input was null)
    moved_by: np.ndarray  # (H, n) int8 codes into CONSTRAINTS
    active: np.ndarray  # (H, m) bool
    at_floor: np.ndarray  # (H, n) bool
    passes: int  # active-set passes


def solve(system: BalanceSystem, x0: np.ndarray, w: np.ndarray, max_passes: int = 100) -> Solution:
    """Reconcile every hour (row) of `x0` (H, n) with weights `w` (H, n, > 0); NaN = null."""
    with _one_blas_thread():
        return _solve(system, x0, w, max_passes)


def _solve(system: BalanceSystem, x0: np.ndarray, w: np.ndarray, max_passes: int) -> Solution:
    x0 = np.asarray(x0, dtype=float)
    w = np.asarray(w, dtype=float)
    if x0.shape != w.shape or x0.ndim != 2 or x0.shape[1] != system.n:
        raise ReconcileError(
            f"values {x0.shape} and weights {w.shape} must both be (hours, {system.n})"
        )
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ReconcileError("weights must be finite and > 0 (a null value gets a small weight)")
    present = ~np.isnan(x0)
    base = np.where(present, x0, 0.0)
    # a direction of a pair counts as reported when either direction is (antisymmetry fills it)
    merge = np.abs(system.T)  # (n, nz): sums the two directions of a pair
    reported = (present.astype(float) @ merge)[:, system.z_of] > 0
    active = (reported.astype(float) @ system.terms.T) >= system.min_present  # float: BLAS
    # merge pairs: z-space weights and targets
    hours = x0.shape[0]
    wz = w @ merge
    z0 = ((w * base) @ system.T) / wz
    z, lam = np.empty_like(z0), np.zeros((hours, system.m))
    fixed, passes = np.zeros(z0.shape, dtype=bool), 0
    for c in range(0, hours, CHUNK_HOURS):  # bounds memory: one matrix per distinct hour
        rows = slice(c, c + CHUNK_HOURS)
        z[rows], lam[rows], fixed[rows], p = _active_set(
            system, z0[rows], wz[rows], active[rows], max_passes
        )
        passes = max(passes, p)

    value = z[:, system.z_of] * system.sign
    determined = reported | ((active.astype(float) @ (system.C != 0)) > 0)
    value = np.where(determined, value, np.nan)
    adjustment = np.where(present, value - base, np.nan)
    moved_by = _provenance(system, z0, wz, lam, fixed, base, value, present)
    return Solution(
        value=value,
        adjustment=adjustment,
        moved_by=moved_by,
        active=active,
        at_floor=fixed[:, system.z_of],
        passes=passes,
    )


CHUNK_HOURS = 240
"""Hours solved together: a year in one ranged run would otherwise hold thousands of m x m
matrices at once (m ~ 210 for every US BA: 350 kB each)."""
REFINE_ABOVE_MW = 1e-9
"""An hour whose identities are off by more than this after the solve is refined once."""


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """The batched solves factor hundreds of ~70-200 wide matrices, one LAPACK call each. A
    threaded BLAS splits each call over its threads, which for matrices this small is pure
    overhead: on the 2-core machine under load, (241, 210, 210) took 3.6 s CPU (12 s wall) with
    2 threads and 0.1 s (0.6 s) with one. threadpoolctl limits whichever BLAS numpy loaded and
    restores it afterwards."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _schur_entries(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """S = A diag(v) A^T as a gather: S.flat[pos[u]] = sum over entries e in group u of
    coef[e] * v[col[e]]. Each column of A has at most a few nonzeros (a value is in one or two
    constraints), so this is O(nonzeros) per hour instead of O(m^2 nz)."""
    m = A.shape[0]
    pos, col, coef = [], [], []
    for j in range(A.shape[1]):
        rows = np.flatnonzero(A[:, j])
        for a in rows:
            for b in rows:
                pos.append(a * m + b)
                col.append(j)
                coef.append(A[a, j] * A[b, j])
    pos_a, col_a, coef_a = np.array(pos, dtype=np.int64), np.array(col), np.array(coef)
    order = np.argsort(pos_a, kind="stable")
    pos_a, col_a, coef_a = pos_a[order], col_a[order], coef_a[order]
    starts = np.flatnonzero(np.r_[True, pos_a[1:] != pos_a[:-1]]) if len(pos_a) else pos_a
    return pos_a[starts], starts, col_a, coef_a


def _solve_equalities(
    system: BalanceSystem,
    target: np.ndarray,
    winv: np.ndarray,
    active: np.ndarray,
    entries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """min sum (z - target)^2 / winv s.t. the active rows of A z = 0, for every hour at once."""
    A, m = system.A, system.m
    hours = target.shape[0]
    if m == 0:
        return target.copy(), np.zeros((hours, 0))
    # hours with identical weights and active rows share one matrix (and one factorization)
    pattern = np.concatenate([winv, active.astype(float)], axis=1)
    unique, first, inverse = np.unique(pattern, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    upos, starts, col, coef = entries
    values = np.zeros((len(unique), len(upos)))  # S's nonzeros, per distinct hour
    if len(col):
        values = np.add.reduceat(winv[first][:, col] * coef, starts, axis=1)
    act = active[first]
    plan = _block_plan(system)
    if plan is None:
        S = np.zeros((len(unique), m * m))
        S[:, upos] = values
        S = _fix_rows(S.reshape(-1, m, m), act)

        def lam_for(rhs: np.ndarray, matrix_of: np.ndarray) -> np.ndarray:
            """Solve S[matrix_of[h]] lam_h = rhs_h for every row h."""
            return _solve_shared(S, rhs, matrix_of)

    else:
        # Block elimination: the local rows (balance, fuel_sum) of a BA couple only with each
        # other and with that BA's interchange_sum row, so S_LL is block diagonal with 2 x 2
        # blocks; eliminating them leaves a system over the interchange_sum rows alone
        # (a third of m, so the LU costs 1/27 of the full one). S is never formed: its
        # nonzeros go straight to the blocks.
        blocks, glob = plan
        pad = blocks < 0
        safe = np.where(pad, 0, blocks)
        nb, bs = blocks.shape
        n_g = len(glob)
        where_bb, where_bg, where_gg = _block_positions(plan, upos, m)
        S_bb = np.zeros((len(unique), nb * bs * bs))
        S_bb[:, where_bb[1]] = values[:, where_bb[0]]
        S_bg = np.zeros((len(unique), nb * bs * n_g))
        S_bg[:, where_bg[1]] = values[:, where_bg[0]]
        S_gg = np.zeros((len(unique), n_g * n_g))
        S_gg[:, where_gg[1]] = values[:, where_gg[0]]
        act_b = act[:, safe] & ~pad  # padding slots behave as inactive rows: identity
        act_g = act[:, glob]
        S_bb = _fix_rows(S_bb.reshape(-1, bs, bs), act_b.reshape(-1, bs)).reshape(-1, nb, bs, bs)
        S_gg = _fix_rows(S_gg.reshape(-1, n_g, n_g), act_g)
        S_bg = S_bg.reshape(-1, nb, bs, n_g) * (act_b[..., None] & act_g[:, None, None, :])
        B_inv = np.linalg.inv(S_bb)
        K = B_inv @ S_bg  # (P, nb, b, mG)
        flat_bg = S_bg.reshape(len(unique), -1, n_g)  # (P, nb*b, mG)
        flat_k = K.reshape(len(unique), -1, n_g)
        S_red = S_gg - flat_bg.transpose(0, 2, 1) @ flat_k

        def lam_for(rhs: np.ndarray, matrix_of: np.ndarray) -> np.ndarray:
            r_b = np.where(pad, 0.0, rhs[:, safe])  # (H, nb, b)
            flat_r = r_b.reshape(len(rhs), -1, 1)
            reduced = rhs[:, glob] - (flat_k[matrix_of].transpose(0, 2, 1) @ flat_r)[..., 0]
            lam_g = _solve_shared(S_red, reduced, matrix_of)
            back = r_b - (flat_bg[matrix_of] @ lam_g[..., None]).reshape(r_b.shape)
            lam_b = (B_inv[matrix_of] @ back[..., None])[..., 0]
            out = np.empty_like(rhs)
            out[:, glob] = lam_g
            out[:, blocks[~pad]] = lam_b[:, ~pad]
            return out

    def residual(z: np.ndarray) -> np.ndarray:
        return (z @ A.T) * active

    lam = lam_for(residual(target), inverse)
    z = target - winv * (lam @ A)
    left = residual(z)
    loose = np.abs(left).max(axis=1, initial=0.0) > REFINE_ABOVE_MW
    if loose.any():  # one step of iterative refinement where round-off left > 1e-9 MW
        lam_fix = lam_for(left[loose], inverse[loose])
        lam[loose] += lam_fix
        z[loose] -= winv[loose] * (lam_fix @ A)
    return z, lam


def _fix_rows(S: np.ndarray, act: np.ndarray) -> np.ndarray:
    """Rows of (P, k, k) matrices: an inactive row becomes an identity row (its multiplier is
    0), and an active row whose values are all fixed at a floor gets a unit diagonal (it has
    no lever; its residual is then left to the other rows)."""
    k = S.shape[-1]
    diag = np.arange(k)
    if not act.all():
        S *= act[:, :, None] & act[:, None, :]
        S[:, diag, diag] += ~act
    empty = np.abs(S[:, diag, diag]) < 1e-300
    if empty.any():
        S[:, diag, diag] = np.where(empty, 1.0, S[:, diag, diag])
    return S


@functools.lru_cache(maxsize=8)
def _block_positions_cached(
    plan_key: bytes, shape: tuple[int, int], glob_key: bytes, upos_key: bytes, m: int
):
    blocks = np.frombuffer(plan_key, dtype=np.int64).reshape(shape)
    glob = np.frombuffer(glob_key, dtype=np.int64)
    upos = np.frombuffer(upos_key, dtype=np.int64)
    nb, bs = shape
    n_g = len(glob)
    block_of = np.full(m, -1)
    slot_of = np.full(m, -1)
    for i in range(nb):
        for u in range(bs):
            if blocks[i, u] >= 0:
                block_of[blocks[i, u]], slot_of[blocks[i, u]] = i, u
    g_of = np.full(m, -1)
    g_of[glob] = np.arange(n_g)
    a, b = upos // m, upos % m
    u = np.arange(len(upos))
    bb = (block_of[a] >= 0) & (block_of[b] >= 0)
    if (block_of[a][bb] != block_of[b][bb]).any():
        raise AssertionError("local rows of different blocks share an unknown")
    bg = (block_of[a] >= 0) & (g_of[b] >= 0)
    gg = (g_of[a] >= 0) & (g_of[b] >= 0)
    return (
        (u[bb], (block_of[a][bb] * bs + slot_of[a][bb]) * bs + slot_of[b][bb]),
        (u[bg], (block_of[a][bg] * bs + slot_of[a][bg]) * n_g + g_of[b][bg]),
        (u[gg], g_of[a][gg] * n_g + g_of[b][gg]),
    )


def _block_positions(plan, upos: np.ndarray, m: int):
    """For S's nonzero positions `upos` (row * m + col): (entry, flat index) into the local
    blocks (nb, b, b), the local-to-global coupling (nb, b, mG) and the global block (mG, mG)."""
    blocks, glob = plan
    return _block_positions_cached(
        np.ascontiguousarray(blocks, dtype=np.int64).tobytes(),
        blocks.shape,
        np.ascontiguousarray(glob, dtype=np.int64).tobytes(),
        np.ascontiguousarray(upos, dtype=np.int64).tobytes(),
        m,
    )


def _solve_shared(mats: np.ndarray, rhs: np.ndarray, matrix_of: np.ndarray) -> np.ndarray:
    """Solve mats[matrix_of[h]] x_h = rhs_h for every row h: hours with a matrix of their own
    in one batched LAPACK call, hours sharing a matrix with one factorization each."""
    out = np.empty_like(rhs)
    if rhs.shape[1] == 0:
        return out
    counts = np.bincount(matrix_of, minlength=len(mats))
    single = np.flatnonzero(counts[matrix_of] == 1)
    if len(single):
        out[single] = np.linalg.solve(mats[matrix_of[single]], rhs[single][..., None])[..., 0]
    for p in np.flatnonzero(counts > 1):
        rows = np.flatnonzero(matrix_of == p)
        out[rows] = np.linalg.solve(mats[p], rhs[rows].T).T
    return out


@functools.lru_cache(maxsize=8)
def _block_plan_cached(key: bytes, shape: tuple[int, int], kinds: bytes):
    A = np.frombuffer(key).reshape(shape)
    ckind = np.frombuffer(kinds, dtype=np.int8)
    glob = np.flatnonzero(ckind == _SUM_ID)
    local = np.flatnonzero(ckind != _SUM_ID)
    coupled = (np.abs(A) @ np.abs(A).T) > 0  # rows sharing an unknown
    # connected components of the local rows
    label = {int(k): int(k) for k in local}

    def root(k: int) -> int:
        while label[k] != k:
            label[k] = label[label[k]]
            k = label[k]
        return k

    for a in local:
        for b in local[coupled[a, local]]:
            ra, rb = root(int(a)), root(int(b))
            if ra != rb:
                label[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for k in local:
        groups.setdefault(root(int(k)), []).append(int(k))
    size = max((len(g) for g in groups.values()), default=0)
    if size == 0 or size > 3 or len(glob) == 0:
        return None
    blocks = np.full((len(groups), size), -1)
    for i, g in enumerate(groups.values()):
        blocks[i, : len(g)] = g
    return blocks, glob


def _block_plan(system: BalanceSystem) -> tuple[np.ndarray, np.ndarray] | None:
    """(local row blocks (nb, b) padded with -1, interchange_sum rows) when the local rows
    fall into small independent blocks; None: solve the full matrix."""
    return _block_plan_cached(
        np.ascontiguousarray(system.A).tobytes(),
        system.A.shape,
        np.ascontiguousarray(system.constraint_kind).tobytes(),
    )


def _active_set(
    system: BalanceSystem, z0: np.ndarray, wz: np.ndarray, active: np.ndarray, max_passes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    hours = z0.shape[0]
    floor = system.floor_z
    bounded = np.isfinite(floor)
    fixed = np.zeros(z0.shape, dtype=bool)
    z = np.empty_like(z0)
    lam = np.zeros((hours, system.m))
    entries = _schur_entries(system.A)
    todo = np.arange(hours)
    tol = 1e-7
    passes = 0
    while len(todo):
        passes += 1
        if passes > max_passes:
            raise ReconcileError(
                f"the floors' active set did not settle in {max_passes} passes for "
                f"{len(todo)} hours; raise ReconcileConfig.max_active_set_passes or check the "
                "floors (a reported value far below its floor in every series of a BA)"
            )
        f = fixed[todo]
        target = np.where(f, floor, z0[todo])
        winv = np.where(f, 0.0, 1.0 / wz[todo])
        z[todo], lam[todo] = _solve_equalities(system, target, winv, active[todo], entries)
        sub = z[todo]
        violated = bounded & ~f & (sub < floor - tol)
        # multiplier of a fixed floor, per unit weight (MW): negative = it wants to move up
        mu = (floor - z0[todo]) + (lam[todo] @ system.A) / wz[todo]
        mu = np.where(f, mu, np.inf)
        new_todo = []
        grow = violated.any(axis=1)
        fixed[todo[grow]] |= violated[grow]
        new_todo.append(todo[grow])
        settled = ~grow
        release = settled & (mu.min(axis=1) < -tol)
        if release.any():
            worst = mu[release].argmin(axis=1)
            fixed[todo[release], worst] = False
            new_todo.append(todo[release])
        todo = np.sort(np.concatenate(new_todo))
    return z, lam, fixed, passes


def _provenance(
    system: BalanceSystem,
    z0: np.ndarray,
    wz: np.ndarray,
    lam: np.ndarray,
    fixed: np.ndarray,
    base: np.ndarray,
    value: np.ndarray,
    present: np.ndarray,
) -> np.ndarray:
    """Per value, the constraint contributing most to its adjustment (CONSTRAINTS codes)."""
    if system.m == 0:  # no identity applies (e.g. a region reporting demand only): none moved
        return np.zeros(base.shape, dtype=np.int8)
    n = base.shape[1]
    A, z_of, sign = system.A, system.z_of, system.sign
    degree = (A != 0).sum(axis=0)
    dmax = int(degree.max()) if A.size else 0
    touch = np.full((system.nz, max(dmax, 1)), -1)
    for j in range(system.nz):
        rows = np.flatnonzero(A[:, j])
        touch[j, : len(rows)] = rows
    valid = touch >= 0
    safe = np.where(valid, touch, 0)
    coef = np.where(valid, A[safe, np.arange(system.nz)[:, None]], 0.0)
    # contribution of constraint touch[j, d] to z_j: -winv_j * A[k, j] * lam_k
    contrib_z = -(coef[None] * lam[:, safe]) / wz[:, :, None]  # (H, nz, d)
    contrib = contrib_z[:, z_of, :] * sign[None, :, None]  # (H, n, d)
    anti = np.where(system.merged, z0[:, z_of] * sign - base, 0.0)  # the pair's own split
    options = np.concatenate([np.abs(contrib), np.abs(anti)[..., None]], axis=2)
    codes = np.concatenate(
        [np.where(valid, system.constraint_kind[safe], 0)[z_of], np.full((n, 1), _ANTI)], axis=1
    )
    best = options.argmax(axis=2)
    moved = np.take_along_axis(np.broadcast_to(codes, options.shape), best[..., None], 2)[..., 0]
    moved = moved.astype(np.int8)
    moved = np.where(fixed[:, z_of], _FLOOR, moved)
    still = np.abs(np.where(present, value - base, np.where(np.isnan(value), 0.0, 1.0))) < 1e-6
    return np.where(still, 0, moved).astype(np.int8)


def solve_reference(
    system: BalanceSystem, x0: np.ndarray, w: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """The plain per-hour solver the tests compare `solve` with: for each hour, the full KKT
    system over x (every antisymmetry row explicit, no merging), with floors by enumerating
    which bounded values sit at their floor and keeping the cheapest feasible point
    (exponential: for small hand-built cases only). Returns x (H, n)."""
    from itertools import product

    n = system.n
    anti = []
    for i, j in system.pairs:
        row = np.zeros(n)
        row[[i, j]] = 1.0
        anti.append(row)
    bounded = np.flatnonzero(np.isfinite(system.floor))
    out = np.empty_like(x0)
    for h in range(x0.shape[0]):
        base = np.where(np.isnan(x0[h]), 0.0, x0[h])
        eqs = [system.C[k] for k in range(system.m) if active[h, k]] + anti
        best, best_cost = None, np.inf
        for at in product([False, True], repeat=len(bounded)):
            rows, rhs = list(eqs), [0.0] * len(eqs)
            for i in bounded[np.array(at, dtype=bool)]:
                rows.append(np.eye(n)[i])
                rhs.append(system.floor[i])
            E = np.array(rows).reshape(-1, n)
            kkt = np.block([[np.diag(2 * w[h]), E.T], [E, np.zeros((len(rows), len(rows)))]])
            sol = np.linalg.lstsq(kkt, np.r_[2 * w[h] * base, rhs], rcond=None)[0][:n]
            feasible = (sol[bounded] >= system.floor[bounded] - 1e-6).all()
            if not feasible or np.abs(E @ sol - np.array(rhs)).max(initial=0) > 1e-6:
                continue
            cost = float(np.sum(w[h] * (sol - base) ** 2))
            if cost < best_cost:
                best, best_cost = sol, cost
        if best is None:
            raise ReconcileError(f"hour {h}: no feasible point")
        out[h] = best
    return out


# ------------------------------------------------------------------ the long-table entry point


def value_weights(
    values: np.ndarray, observed: np.ndarray, day_of_row: np.ndarray, config: ReconcileConfig
) -> np.ndarray:
    """w = cost / max(gamma, scale): scale = mean |value| of the column over its UTC day."""
    scale = _daily(np.abs(values), day_of_row, np.nanmean)
    scale = np.where(np.isnan(scale), config.gamma_mw, np.maximum(scale, config.gamma_mw))
    cost = np.where(
        np.isnan(values),
        config.unfilled_cost,
        np.where(observed, config.observed_cost, config.imputed_cost),
    )
    return cost / scale


def _daily(x: np.ndarray, day_of_row: np.ndarray, stat) -> np.ndarray:
    """stat over each column's rows of the same day, broadcast back to the rows (nan-aware)."""
    out = np.full(x.shape, np.nan)
    for day in np.unique(day_of_row):  # a window holds a handful of days
        rows = day_of_row == day
        block = x[rows]
        with np.errstate(all="ignore"):
            has = ~np.isnan(block).all(axis=0)
            values = np.full(block.shape[1], np.nan)
            if has.any():
                values[has] = stat(block[:, has], axis=0)
        out[rows] = values
    return out


def _step_from_neighbours(values: np.ndarray, day_of_row: np.ndarray) -> np.ndarray:
    """x_t minus the mean of its neighbours t-1 and t+1 of the same UTC day (one neighbour at
    the day's edges), so a day's result does not depend on which days a run loads."""
    prev = np.vstack([np.full((1, values.shape[1]), np.nan), values[:-1]])
    nxt = np.vstack([values[1:], np.full((1, values.shape[1]), np.nan)])
    same_prev = np.r_[False, day_of_row[1:] == day_of_row[:-1]][:, None]
    same_next = np.r_[day_of_row[1:] == day_of_row[:-1], False][:, None]
    prev = np.where(same_prev, prev, np.nan)
    nxt = np.where(same_next, nxt, np.nan)
    both = np.stack([prev, nxt])
    count = (~np.isnan(both)).sum(axis=0)
    with np.errstate(all="ignore"):
        return values - np.where(count > 0, np.nansum(both, axis=0) / count, np.nan)


def spike_screen(
    adjustment: np.ndarray,
    values: np.ndarray,
    observed: np.ndarray,
    screened: np.ndarray,
    day_of_row: np.ndarray,
    config: ReconcileConfig,
) -> np.ndarray:
    """(H, n) spike score (> 1: a candidate); 0 for columns not `screened`, values not observed
    and nulls. Both must stand out of the day's figures of the same series, by more than
    `spike_factor` x max(the day's median absolute deviation, `spike_floor_share` x the day's
    mean |value|, `spike_floor_mw`): the value's step from its neighbouring hours, and its
    adjustment (from the day's median adjustment) in the opposite direction. The balance alone
    cannot tell which term of an identity is wrong (the first solve spreads one bad value over
    them all); the series' own hours can."""
    scale = _daily(np.abs(values), day_of_row, np.nanmean)

    def standing_out(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centre = _daily(x, day_of_row, np.nanmedian)
        deviation = x - centre
        spread = _daily(np.abs(deviation), day_of_row, np.nanmedian)
        limit = config.spike_factor * np.fmax(
            np.fmax(spread, config.spike_floor_share * scale), config.spike_floor_mw
        )
        return deviation, limit

    moved, moved_limit = standing_out(adjustment)
    step, step_limit = standing_out(_step_from_neighbours(values, day_of_row))
    opposite = np.sign(moved) == -np.sign(step)
    score = np.fmin(np.abs(moved) / moved_limit, np.abs(step) / step_limit)
    score = np.where(observed & screened[None, :] & opposite, score, 0.0)
    return np.nan_to_num(score, nan=0.0)


def _worst_per_region(ratio: np.ndarray, region_starts: np.ndarray) -> np.ndarray:
    """True where a column holds its region's largest ratio in that hour, and it exceeds 1.
    One imbalance spreads over every series of the BA in the first solve; only the series
    that stands out most is the spike (after it is made cheap the others barely move)."""
    if ratio.shape[1] == 0:
        return np.zeros(ratio.shape, dtype=bool)
    region_max = np.maximum.reduceat(ratio, region_starts, axis=1)
    width = np.diff(np.r_[region_starts, ratio.shape[1]])
    return (ratio > 1.0) & (ratio >= np.repeat(region_max, width, axis=1))


def reconcile(imputed: pl.DataFrame, config: ReconcileConfig | None = None) -> pl.DataFrame:
    """Reconcile the balance series of a window of `imputed/series` rows, all hours at once.

    `imputed`: rows with interval_start_utc, region, series, value, flag, method, is_observed,
    units, source (other series than the balance's are ignored). Returns one row per balance
    series and hour, columns RECONCILED_SCHEMA, sorted by (region, series, time).
    """
    cfg = config or ReconcileConfig()
    needed = [TIME_COL, "region", "series", "value", "flag", "method", "is_observed"]
    require_columns(imputed, needed, "reconcile input")
    frame = check_time_column(imputed, "reconcile input")
    for col in ("units", "source"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(col))
    kinds = frame.get_column("series").map_elements(series_kind, return_dtype=pl.Utf8)
    frame = frame.filter(kinds.is_not_null())
    if frame.height == 0:
        return pl.DataFrame(schema=RECONCILED_SCHEMA)
    frame = frame.with_columns(pl.col("is_observed").cast(pl.Float64).alias("_observed"))
    keys, t0_us, n_hours, mats = to_matrix(
        frame, ["value", "_observed"], key_attrs=("units", "source")
    )
    x0, observed = mats["value"], mats["_observed"] == 1.0
    regions = keys.get_column("region").to_list()
    series = keys.get_column("series").to_list()
    system = balance_system(regions, series, cfg.floor_of(series))
    day_of_row = (t0_us // HOUR_US + np.arange(n_hours)) // 24
    weights = value_weights(x0, observed, day_of_row, cfg)
    result = solve(system, x0, weights, cfg.max_active_set_passes)
    spikes = np.zeros(x0.shape, dtype=bool)
    screened = np.array([k != "D" for k in system.kind])
    region_codes = np.array(regions)
    starts = np.flatnonzero(np.r_[True, region_codes[1:] != region_codes[:-1]])
    for _ in range(cfg.spike_passes if cfg.spike_screen else 0):
        ratio = spike_screen(result.adjustment, x0, observed & ~spikes, screened, day_of_row, cfg)
        new = _worst_per_region(ratio, starts)
        if not new.any():
            break
        spikes |= new  # solve again with the spikes cheap to move
        cheap = value_weights(x0, observed & ~spikes, day_of_row, cfg)
        result = solve(system, x0, cheap, cfg.max_active_set_passes)
    frame_rows = frame.select(TIME_COL, "region", "series", "flag", "method", "is_observed")
    out = matrix_to_long(
        keys,
        t0_us,
        {
            "value": result.value,
            "value_imputed": x0,
            "adjustment_mw": result.adjustment,
            "_moved": result.moved_by.astype(np.int64),
            "is_spike": spikes,
        },
    )
    out = out.with_columns(
        pl.Series(CONSTRAINTS).gather(out.get_column("_moved")).alias("moved_by")
    ).join(frame_rows, on=[TIME_COL, "region", "series"], how="left", maintain_order="left")
    out = out.with_columns(  # hours the input did not have (imputed/series is hourly complete)
        pl.col("flag").fill_null("MISSING"),
        pl.col("method").fill_null("unfilled"),
        pl.col("is_observed").fill_null(False),
    )
    return out.select(list(RECONCILED_SCHEMA)).cast(RECONCILED_SCHEMA)


# ------------------------------------------------------------- the identities, independently


def identity_residuals(frame: pl.DataFrame, value: str = "value") -> pl.DataFrame:
    """Residual (MW) of every identity a long table's rows determine, per hour: `balance.py`'s
    tables (polars over the rows alone, no solver structure), so the contract check judges the
    solver independently. balance D - (NG - TI) where the BA reports all three; interchange_sum
    TI - sum of its reported interchange_to_*; fuel_sum NG - sum of its reported generation_*;
    antisymmetry ID_rs + ID_sr where both directions are reported (once per pair). Columns:
    interval_start_utc, identity, region, counterpart (the pair's other BA, else null),
    residual_mw. `value`: the column to judge (`value_imputed` for the input)."""
    rows = frame.select(TIME_COL, "region", "series", pl.col(value).alias("value"))

    def shaped(table: pl.DataFrame, identity: str, counterpart: pl.Expr) -> pl.DataFrame:
        return table.select(
            TIME_COL,
            pl.lit(identity).alias("identity"),
            "region",
            counterpart.alias("counterpart"),
            "residual_mw",
        ).drop_nulls("residual_mw")

    none = pl.lit(None, pl.Utf8)
    pairs = antisymmetry_table(rows).filter(pl.col("region") < pl.col("partner"))
    return pl.concat(
        [
            shaped(balance_table(rows), "balance", none),
            shaped(interchange_sum_table(rows), "interchange_sum", none),
            shaped(fuel_sum_table(rows), "fuel_sum", none),
            shaped(pairs, "antisymmetry", pl.col("partner")),
        ],
        how="vertical",
    ).sort(TIME_COL, "identity", "region", "counterpart")


def daily_reconcile_metrics(result: pl.DataFrame, days: list[str]) -> dict[str, dict[str, float]]:
    """Per UTC day of a `reconcile` result: the largest identity residual before (the imputed
    values) and after, the mean absolute adjustment per series kind, and the spike count."""
    metrics: dict[str, dict[str, float]] = {day: {} for day in days}
    if not result.height:
        return metrics
    day = pl.col(TIME_COL).dt.strftime("%Y-%m-%d").alias("day")
    for label, column in (("before", "value_imputed"), ("after", "value")):
        residuals = (
            identity_residuals(result, column)
            .group_by(day)
            .agg(pl.col("residual_mw").abs().max().alias("max"))
        )
        for d, worst in residuals.iter_rows():
            if d in metrics:
                metrics[d][f"max_residual_{label}_mw"] = float(worst)
    kinds = result.get_column("series").map_elements(series_kind, return_dtype=pl.Utf8)
    per_kind = (
        result.with_columns(kinds.alias("kind"))
        .group_by(day, "kind")
        .agg(pl.col("adjustment_mw").abs().mean().alias("mean"))
    )
    for d, kind, mean in per_kind.iter_rows():
        if d in metrics and mean is not None:
            metrics[d][f"mean_abs_adjustment_{kind}_mw"] = float(mean)
    spikes = result.group_by(day).agg(pl.col("is_spike").sum().alias("n"))
    for d, n in spikes.iter_rows():
        if d in metrics:
            metrics[d]["spikes"] = float(n)
    return metrics
