"""Each Ruggles screen catches the anomaly it is for and leaves clean data alone."""

from __future__ import annotations

import numpy as np
import pytest

from energy_assets.transform.screen import (
    RugglesThresholds,
    flag_names,
    screen_bounds,
    screen_ruggles,
)
from energy_assets_tests.transform.synth import demand_matrix

N_HOURS = 24 * 40
T = 24 * 20 + 13  # an hour in the middle, early afternoon


def _flags(x: np.ndarray) -> np.ndarray:
    return flag_names(screen_ruggles(x))[:, 0]


def _flagged(names: np.ndarray) -> dict[int, str]:
    return {int(i): str(names[i]) for i in np.flatnonzero(names != "OKAY")}


@pytest.fixture
def clean_series() -> np.ndarray:
    return demand_matrix(N_HOURS, 1, seed=1)


def test_screen_ruggles_leaves_clean_demand_alone() -> None:
    x = demand_matrix(N_HOURS, 8, seed=2)
    assert (screen_ruggles(x) == 0).all()


def test_screen_missing_is_missing_not_anomalous(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T : T + 5] = np.nan
    assert _flagged(_flags(x)) == {T + i: "MISSING" for i in range(5)}


def test_screen_neg_or_zero(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T] = 0.0
    x[T + 30] = -50.0
    assert _flagged(_flags(x)) == {T: "NEG_OR_ZERO", T + 30: "NEG_OR_ZERO"}


def test_screen_identical_run_flags_third_and_later(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T : T + 5] = x[T]
    assert _flagged(_flags(x)) == {
        T + 2: "IDENTICAL_RUN",
        T + 3: "IDENTICAL_RUN",
        T + 4: "IDENTICAL_RUN",
    }


def test_screen_global_dem_and_its_neighbours(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T] = 20 * np.median(x)
    flagged = _flagged(_flags(x))
    # PUDL's port never fires the neighbour screen (case mismatch); Ruggles' does.
    assert flagged == {
        T - 1: "GLOBAL_DEM_PLUS_MINUS",
        T: "GLOBAL_DEM",
        T + 1: "GLOBAL_DEM_PLUS_MINUS",
    }


def test_screen_local_dem_up_and_down(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T] *= 2.5  # far above the local prediction, still below 10 x median
    x[T + 100] = 0.05 * np.median(x)  # far below it, still positive
    assert _flagged(_flags(x)) == {T: "LOCAL_DEM_UP", T + 100: "LOCAL_DEM_DOWN"}


def test_screen_delta_catches_a_one_hour_spike_below_the_local_cut(
    clean_series: np.ndarray,
) -> None:
    x = clean_series.copy()
    step = np.abs(np.diff(x[:, 0]))
    x[T] += 6 * np.percentile(step, 75)  # far beyond 2 delta-IQRs, far below 3.5 offset-IQRs
    assert _flagged(_flags(x)) == {T: "DELTA"}


def test_screen_single_delta_catches_a_short_level_shift(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T : T + 4] += 0.5 * np.median(x)  # one-sided steps: no double delta, no local outlier
    flagged = _flagged(_flags(x))
    assert flagged == {T + i: "SINGLE_DELTA" for i in range(4)}


def test_screen_anomalous_region_flags_okay_hours_among_many_anomalies(
    clean_series: np.ndarray,
) -> None:
    x = clean_series.copy()
    bad = np.arange(T, T + 24, 3)
    x[bad] = 0.0
    names = _flags(x)
    assert set(np.flatnonzero(names == "NEG_OR_ZERO")) == set(bad)
    region = np.flatnonzero(names == "ANOMALOUS_REGION")
    assert len(region) > 0
    assert region.min() > T - 24 and region.max() < T + 48
    # the hours far away stay OKAY
    assert (names[: T - 48] == "OKAY").all() and (names[T + 72 :] == "OKAY").all()


def test_screen_anomalous_region_counts_missing_as_good(clean_series: np.ndarray) -> None:
    # PUDL's port counts missing values as flagged; Ruggles (and we) do not.
    x = clean_series.copy()
    x[np.arange(T, T + 24, 3)] = np.nan
    names = _flags(x)
    assert set(names) == {"OKAY", "MISSING"}


def test_screen_thresholds_are_configurable(clean_series: np.ndarray) -> None:
    x = clean_series.copy()
    x[T] = 20 * np.median(x)
    lax = RugglesThresholds(global_multiplier=30.0)
    names = flag_names(screen_ruggles(x, lax))[:, 0]
    assert names[T] != "GLOBAL_DEM"


def test_screen_columns_are_independent() -> None:
    x = demand_matrix(N_HOURS, 3, seed=4)
    x[T, 1] = 0.0
    flags = flag_names(screen_ruggles(x))
    assert flags[T, 1] == "NEG_OR_ZERO"
    assert (flags[:, [0, 2]] == "OKAY").all()


def test_screen_bounds_flags_out_of_range_only() -> None:
    x = np.array([[-5.0], [0.0], [np.nan], [120.0], [50.0]])
    names = flag_names(screen_bounds(x, lower=-1.0, upper=100.0))[:, 0].tolist()
    assert names == ["OUT_OF_BOUNDS", "OKAY", "MISSING", "OUT_OF_BOUNDS", "OKAY"]


def test_screen_bounds_optional_identical_run() -> None:
    x = np.array([[1.0], [1.0], [1.0], [2.0]])
    assert flag_names(screen_bounds(x))[:, 0].tolist() == ["OKAY"] * 4
    run = flag_names(screen_bounds(x, identical_run=3))[:, 0].tolist()
    assert run == ["OKAY", "OKAY", "IDENTICAL_RUN", "OKAY"]


def test_screen_handles_empty_and_all_missing() -> None:
    assert screen_ruggles(np.empty((0, 2))).shape == (0, 2)
    names = flag_names(screen_ruggles(np.full((50, 1), np.nan)))
    assert set(names[:, 0]) == {"MISSING"}


def test_iqr_bounds_shortcut_flags_exactly_what_the_exact_iqr_flags(monkeypatch):
    """The screens settle most cells at cheap IQR bounds; the result must equal the exact path."""
    import numpy as np

    from energy_assets.transform import screen

    rng = np.random.default_rng(7)
    hours = np.arange(24 * 40)
    cases = []
    for _ in range(6):
        base = (
            1000
            + 300 * np.sin(2 * np.pi * hours / 24)[:, None]
            + rng.normal(0, 20, (hours.size, 4))
        )
        x = base.copy()
        x[rng.random(x.shape) < 0.05] = np.nan  # gaps
        spikes = rng.random(x.shape) < 0.01
        x[spikes] *= rng.uniform(1.5, 4, spikes.sum())  # anomalies for the IQR screens
        x[rng.random(x.shape) < 0.005] = 0.0
        cases.append(x)
    gappy = cases[0].copy()
    gappy[100:400, 1] = np.nan  # windows with few or no present values
    gappy[rng.random(gappy.shape) < 0.3] = np.nan
    cases += [gappy, cases[1][:30], cases[2][:5]]  # and series shorter than a block
    settings = [screen.RugglesThresholds()] + [
        screen.RugglesThresholds(iqr_window_hours=w) for w in (7, 51, 100)
    ]
    runs = [(x, th) for x in cases for th in settings]
    shortcut = [screen.screen_ruggles(x, th) for x, th in runs]
    monkeypatch.setattr(screen, "_RollingIqr", screen._ExactIqr)
    exact = [screen.screen_ruggles(x, th) for x, th in runs]
    for got, want in zip(shortcut, exact, strict=True):
        assert np.array_equal(got, want)
    assert any((f != screen.OKAY).sum() > 0 for f in exact)
    local = {screen.CODE[name] for name in ("LOCAL_DEM_UP", "LOCAL_DEM_DOWN", "DELTA")}
    assert local <= {int(c) for f in exact for c in np.unique(f)}  # the IQR screens fired


def _anomalous_series(n_days: int, first_hour: int) -> np.ndarray:
    """Six series with every kind of anomaly scattered over the days, row 0 at `first_hour`."""
    x = demand_matrix(24 * n_days, 6, seed=5)
    rng = np.random.default_rng(6)
    for col in range(6):
        for row in rng.choice(np.arange(24, x.shape[0] - 24), size=40, replace=False):
            kind = rng.integers(5)
            if kind == 0:
                x[row, col] *= rng.choice([1.6, 0.5])  # spike or dip
            elif kind == 1:
                x[row : row + 6, col] *= 1.3  # short level shift
            elif kind == 2:
                x[row : row + 4, col] = x[row, col]  # stuck value
            elif kind == 3:
                x[row : row + int(rng.integers(1, 200)), col] = np.nan
            else:
                x[row, col] *= 12.0  # global outlier
    return x[first_hour:]


@pytest.mark.parametrize("first_hour", [0, 7])
def test_a_days_flags_do_not_depend_on_how_the_range_was_cut(first_hour: int) -> None:
    # The "global" statistics are per-day references, so screening a daily partition's
    # +-21-day window flags its day exactly as screening the whole range does.
    n_days, context = 90, 21
    x = _anomalous_series(n_days, first_hour)
    whole = screen_ruggles(x, first_hour=first_hour)
    assert len(set(flag_names(whole).ravel())) >= 8
    for day in (21, 30, 44, 45, 60, 68):
        lo = max(24 * (day - context) - first_hour, 0)
        hi = 24 * (day + 1 + context) - first_hour
        window = screen_ruggles(x[lo:hi], first_hour=(first_hour + lo) % 24)
        rows = slice(24 * day - first_hour, 24 * (day + 1) - first_hour)
        assert (window[rows.start - lo : rows.stop - lo] == whole[rows]).all(), day


def test_single_delta_reference_does_not_reach_across_a_long_gap() -> None:
    # A value is compared with the last unflagged value at most 24 h before it: after two
    # missing days the series starts afresh instead of being judged against the old level
    # (Ruggles' unbounded reference, which would also reach past any partition's window).
    from energy_assets.transform.screen import _single_delta_pass

    x = np.r_[np.full(24, 100.0), np.full(48, np.nan), np.full(24, 200.0)][:, None]
    lim = np.full(x.shape, 10.0)
    rel_lim = (np.full((4, 1), 0.1), 0)  # per day
    args = (x, x / 100.0, None, (lim, lim, lambda r, c: lim[r, c]), rel_lim)
    assert not _single_delta_pass(*args, reverse=False, max_age=24).any()
    flagged = _single_delta_pass(*args, reverse=False, max_age=24 * 30)
    assert flagged[72:, 0].all()  # every later value against the stale reference
