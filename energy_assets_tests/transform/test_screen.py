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
