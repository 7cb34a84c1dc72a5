"""clean(): screening + imputation of a window, provenance, and daily-partition semantics."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_assets.transform.clean import CLEAN_SCHEMA, CleaningConfig, SeriesRule, clean
from energy_assets.transform.impute import ImputeConfig, impute_matrix, reach_hours
from energy_assets_tests.transform.synth import START, demand_matrix, long_table

DAY = timedelta(days=1)
N_DAYS = 50
TARGET = START + timedelta(days=25)


def _window(values: dict[tuple[str, str], np.ndarray]) -> pl.DataFrame:
    return long_table(values)


def _demand_and_forecast(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = demand_matrix(24 * N_DAYS, 2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    level = 1 + 0.08 * np.repeat(rng.normal(size=N_DAYS), 24)  # day-to-day weather swings
    demand = x[:, 0] * level
    forecast = demand * (1.02 + rng.normal(0, 0.01, size=demand.size))
    return demand, forecast


def _rows(out: pl.DataFrame, series: str) -> pl.DataFrame:
    return out.filter(pl.col("series") == series).sort("interval_start_utc")


def test_clean_returns_only_the_target_rows_with_the_contract_schema() -> None:
    d, f = _demand_and_forecast()
    out = clean(
        _window({("AAA", "demand"): d, ("AAA", "demand_forecast_da"): f}), TARGET, TARGET + DAY
    )
    assert out.schema == pl.Schema(CLEAN_SCHEMA)
    assert out.height == 2 * 24
    assert out.get_column("interval_start_utc").min() == TARGET
    assert out.get_column("interval_start_utc").max() == TARGET + timedelta(hours=23)
    assert (out.get_column("method") == "observed").all()
    assert out.get_column("value").equals(out.get_column("value_reported"))
    assert set(out.get_column("units")) == {"MW"} and set(out.get_column("source")) == {"eia930"}


def test_clean_fills_gaps_and_keeps_the_reported_value_and_flag() -> None:
    d, f = _demand_and_forecast()
    t0 = 24 * 25
    d[t0 + 2 : t0 + 12] = np.nan  # a 10 h gap
    d[t0 + 15] = 0.0  # NEG_OR_ZERO
    out = _rows(
        clean(
            _window({("AAA", "demand"): d, ("AAA", "demand_forecast_da"): f}), TARGET, TARGET + DAY
        ),
        "demand",
    )
    assert out.get_column("value").null_count() == 0
    gap = out.slice(2, 10)
    assert set(gap.get_column("flag")) == {"MISSING"}
    assert set(gap.get_column("method")) == {"blend"}
    assert gap.get_column("value_reported").null_count() == 10
    assert not gap.get_column("is_observed").any()
    bad = out.row(15, named=True)
    assert bad["flag"] == "NEG_OR_ZERO" and bad["value_reported"] == 0.0
    assert bad["value"] > 0 and not bad["is_observed"] and bad["method"] == "blend"
    ok = out.filter(pl.col("is_observed"))
    assert (ok.get_column("method") == "observed").all()
    assert ok.get_column("value").equals(ok.get_column("value_reported"))


def test_clean_short_gaps_linear_long_gaps_blend_when_configured() -> None:
    d, _ = _demand_and_forecast()
    t0 = 24 * 25
    d[t0 + 3 : t0 + 6] = np.nan  # 3 h
    d[t0 + 10 : t0 + 14] = np.nan  # 4 h
    rule = SeriesRule(pattern="demand", screen="ruggles", positive=True, linear_max_gap_hours=3)
    cfg = CleaningConfig(rules=(rule,))
    out = _rows(clean(_window({("AAA", "demand"): d}), TARGET, TARGET + DAY, cfg), "demand")
    methods = out.get_column("method").to_list()
    assert methods[3:6] == ["linear"] * 3
    assert methods[10:14] == ["blend"] * 4
    lin = out.get_column("value").to_numpy()[2:7]
    assert np.allclose(np.diff(lin), (lin[-1] - lin[0]) / 4)  # straight line between the edges


def test_clean_series_without_any_value_stays_null_and_says_unfilled() -> None:
    d, _ = _demand_and_forecast()
    empty = np.full_like(d, np.nan)
    out = clean(_window({("AAA", "demand"): d, ("BBB", "demand"): empty}), TARGET, TARGET + DAY)
    bbb = out.filter(pl.col("region") == "BBB")
    assert bbb.get_column("value").null_count() == 24
    assert set(bbb.get_column("method")) == {"unfilled"}
    assert set(bbb.get_column("flag")) == {"MISSING"}


def test_clean_signed_series_get_bounds_only() -> None:
    rng = np.random.default_rng(3)
    ti = rng.normal(0, 500, 24 * N_DAYS)
    ti[24 * 25 : 24 * 25 + 4] = ti[24 * 25]  # a flat schedule is legitimate here
    ti[24 * 25 + 10] = 0.0
    ti[24 * 25 + 12] = 5e6  # beyond any physical interchange
    out = clean(_window({("AAA", "total_interchange"): ti}), TARGET, TARGET + DAY)
    flags = out.sort("interval_start_utc").get_column("flag").to_list()
    assert flags[12] == "OUT_OF_BOUNDS"
    assert flags[:12] == ["OKAY"] * 12 and flags[13:] == ["OKAY"] * 11


def test_clean_forecast_covariate_improves_a_day_long_gap() -> None:
    d, f = _demand_and_forecast(seed=5)
    truth = d.copy()
    t0 = 24 * 25
    d[t0 : t0 + 24] = np.nan
    values = {("AAA", "demand"): d, ("AAA", "demand_forecast_da"): f}
    with_cov = _rows(clean(_window(values), TARGET, TARGET + DAY), "demand")
    without = _rows(clean(_window({("AAA", "demand"): d}), TARGET, TARGET + DAY), "demand")
    target = truth[t0 : t0 + 24]
    err_with = np.mean(np.abs(with_cov.get_column("value").to_numpy() - target) / target)
    err_without = np.mean(np.abs(without.get_column("value").to_numpy() - target) / target)
    assert err_with < 0.5 * err_without
    assert err_with < 0.03


def test_impute_temperature_driver_improves_a_week_long_gap() -> None:
    rng = np.random.default_rng(1)
    n, h = 24 * 60, np.arange(24 * 60)
    front = np.convolve(np.cumsum(rng.normal(0, 0.6, n)), np.ones(48) / 48, "same")
    temp = 15 + 8 * np.sin(2 * np.pi * h / 24 - 2) + 2 * front
    y = 1000 + 200 * np.sin(2 * np.pi * (h % 24) / 24) + 25 * np.abs(temp - 18)
    y = (y + rng.normal(0, 5, n))[:, None]
    gap = y.copy()
    gap[700:868] = np.nan
    args = ([], np.array([True]), np.array([0]), ImputeConfig())
    plain, _ = impute_matrix(gap, *args)
    driven, _ = impute_matrix(gap, *args, drivers=[np.abs(temp - 18)[:, None]])
    mape = lambda v: np.mean(np.abs(v[700:868] - y[700:868]) / y[700:868])  # noqa: E731
    assert mape(driven) < 0.5 * mape(plain)


def test_impute_blend_beats_linear_on_long_gaps() -> None:
    y = demand_matrix(24 * 60, 4, seed=7)
    gap = y.copy()
    for j, s in enumerate([300, 500, 700, 900]):
        gap[s : s + 48, j] = np.nan
    mask = np.isnan(gap)
    blend, methods = impute_matrix(gap, [], np.ones(4, bool), np.zeros(4, int))
    linear, _ = impute_matrix(gap, [], np.ones(4, bool), np.full(4, 10**6))
    assert (methods[mask] == 2).all()
    err = lambda v: np.mean(np.abs(v[mask] - y[mask]) / y[mask])  # noqa: E731
    assert err(blend) < 0.25 * err(linear)


def test_clean_target_rows_match_a_much_longer_window() -> None:
    # A daily partition loads +-context_days; the result must equal cleaning everything.
    n_days = 120
    x = demand_matrix(24 * n_days, 3, seed=11)
    x[24 * 60 + 5, 0] = 0.0
    x[24 * 60 + 9 : 24 * 60 + 20, 1] = np.nan
    x[24 * 59 + 20, 2] *= 2.5
    long = long_table(
        {("R0", "demand"): x[:, 0], ("R1", "demand"): x[:, 1], ("R2", "demand"): x[:, 2]}
    )
    for day in (START + timedelta(days=59), START + timedelta(days=60)):
        a = clean(_partition_window(long, day), day, day + DAY)
        b = clean(long, day, day + DAY)
        assert_frame_equal(a, b, check_exact=True)
    assert set(b.get_column("flag")) >= {"NEG_OR_ZERO", "MISSING"}


def _partition_window(long: pl.DataFrame, day) -> pl.DataFrame:
    """The frame the IO manager hands a daily partition: the day +- context_days."""
    ctx = timedelta(days=CleaningConfig().context_days)
    t = pl.col("interval_start_utc")
    return long.filter(t.is_between(day - ctx, day + DAY + ctx, closed="left"))


def test_a_days_flags_and_fills_are_those_of_the_whole_series_with_drivers_and_long_gaps():
    """Demand with its forecast and temperature (the pipeline's covariate and driver), gaps
    of 3 h to 110 days (longer than any partition's window): every day cleaned on its
    partition's window equals the same day of one run over the whole series, bit for bit (the
    driver's slope sums are exact, a gap edge beyond `edge_reach_hours` is not read). Hours
    further than that from any observation stay unfilled in both."""
    n_days, rng = 240, np.random.default_rng(5)
    demand, forecast = demand_matrix(24 * n_days, 2, seed=3).T
    h = np.arange(24 * n_days)
    temperature = 12 + 10 * np.sin(2 * np.pi * h / (24 * 60)) + 6 * np.sin(2 * np.pi * h / 24)
    demand = demand * (1 + 0.01 * np.abs(temperature - 18)) + rng.normal(0, 5, h.size)
    for start, length in ((24 * 40 + 5, 24 * 110), (24 * 170 + 3, 100), (24 * 165 + 9, 3)):
        demand[start : start + length] = np.nan
    forecast[24 * 160 : 24 * 162] = np.nan
    demand[24 * 168 + 12] *= 3.0  # a spike the screens take out
    long = long_table(
        {
            ("AAA", "demand"): demand,
            ("AAA", "demand_forecast_da"): forecast,
            ("AAA", "temperature_2m"): temperature,
        }
    )
    edges_and_middle = [*range(36, 50), *range(92, 97), *range(145, 175)]
    days = [START + timedelta(days=d) for d in edges_and_middle]
    whole = clean(long, START, START + timedelta(days=n_days))
    for day in days:
        part = clean(_partition_window(long, day), day, day + DAY)
        t = pl.col("interval_start_utc")
        assert_frame_equal(part, whole.filter(t.is_between(day, day + DAY, closed="left")))
    rows = whole.filter(pl.col("series") == "demand")
    assert {"blend", "unfilled"} <= set(rows.get_column("method"))
    assert set(rows.get_column("flag")) - {"OKAY", "MISSING"}


def test_clean_newest_partition_without_right_context_still_fills() -> None:
    d, f = _demand_and_forecast()
    end = 24 * 30
    d[end - 5 : end] = np.nan  # the last hours have not arrived yet
    values = {("AAA", "demand"): d[:end], ("AAA", "demand_forecast_da"): f[:end]}
    day = START + timedelta(days=29)
    out = _rows(clean(_window(values), day, day + DAY), "demand")
    assert out.height == 24 and out.get_column("value").null_count() == 0
    tail = out.tail(5)
    assert set(tail.get_column("method")) == {"blend"}
    rel = np.abs(tail.get_column("value").to_numpy() / d[end - 6] - 1)
    assert (rel < 0.5).all()


def test_clean_target_outside_the_window_yields_missing_rows() -> None:
    d, _ = _demand_and_forecast()
    later = START + timedelta(days=N_DAYS + 3)
    out = clean(_window({("AAA", "demand"): d}), later, later + DAY)
    assert out.height == 24
    assert set(out.get_column("flag")) == {"MISSING"}


def test_clean_validates_its_input() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        clean(pl.DataFrame({"region": ["A"]}), TARGET, TARGET + DAY)
    d, _ = _demand_and_forecast()
    with pytest.raises(ValueError, match="must be after"):
        clean(_window({("AAA", "demand"): d}), TARGET, TARGET)


def test_clean_output_is_sorted_by_region_series_time() -> None:
    d, f = _demand_and_forecast()
    window = _window({("ZZZ", "demand"): d, ("AAA", "demand_forecast_da"): f, ("AAA", "demand"): d})
    out = clean(window, TARGET, TARGET + 2 * DAY)
    assert out.equals(out.sort("region", "series", "interval_start_utc"))


def test_clean_weather_gets_physical_bounds_and_short_gaps_linear() -> None:
    h = np.arange(24 * N_DAYS)
    temp = 10 + 8 * np.sin(2 * np.pi * h / 24)
    t0 = 24 * 25
    temp[t0 + 3] = 75.0  # not a temperature on Earth
    temp[t0 + 6 : t0 + 8] = np.nan
    window = long_table({("PJM", "temperature_2m"): temp}, units="degC", source="open_meteo")
    out = clean(window, TARGET, TARGET + DAY).sort("interval_start_utc")
    assert out.row(3, named=True)["flag"] == "OUT_OF_BOUNDS"
    assert out.get_column("method").to_list()[6:8] == ["linear", "linear"]
    assert out.get_column("method").to_list()[3] == "linear"
    assert set(out.get_column("units")) == {"degC"}


def test_clean_caiso_load_uses_its_day_ahead_forecast() -> None:
    d, f = _demand_and_forecast(seed=8)
    t0 = 24 * 25
    d[t0 : t0 + 24] *= 1.15  # a heat wave: the neighbouring days under-predict it
    f[t0 : t0 + 24] *= 1.15
    truth = d.copy()
    d[t0 : t0 + 24] = np.nan
    values = {("CA ISO-TAC", "caiso_load_actual"): d, ("CA ISO-TAC", "caiso_load_forecast_dam"): f}
    with_fc = _rows(clean(_window(values), TARGET, TARGET + DAY), "caiso_load_actual")
    alone = _rows(
        clean(_window({("CA ISO-TAC", "caiso_load_actual"): d}), TARGET, TARGET + DAY),
        "caiso_load_actual",
    )
    target = truth[t0 : t0 + 24]
    mape = lambda s: np.mean(np.abs(s.get_column("value").to_numpy() - target) / target)  # noqa: E731
    assert mape(with_fc) < 0.5 * mape(alone)


def test_clean_region_specific_rule_overrides_the_general_one() -> None:
    d, _ = _demand_and_forecast()
    small = np.round(d / 100)  # a tiny BA in whole MW: identical runs are ordinary
    small[24 * 25 + 4] = 0.0
    window = _window({("TINY", "demand"): small, ("BIG", "demand"): small})
    rules = (SeriesRule(pattern="demand", regions="TINY", screen="bounds", lower=0.0),)
    cfg = CleaningConfig(rules=rules + CleaningConfig().rules)
    out = clean(window, TARGET, TARGET + DAY, cfg)
    tiny = out.filter(pl.col("region") == "TINY")
    big = out.filter(pl.col("region") == "BIG")
    assert set(tiny.get_column("flag")) == {"OKAY"}  # 0 is within [0, inf) here
    assert "IDENTICAL_RUN" in set(big.get_column("flag"))
    assert "NEG_OR_ZERO" in set(big.get_column("flag"))


def test_impute_never_fills_a_positive_series_below_zero() -> None:
    h = np.arange(24 * 30)
    y = (100 + 90 * np.sin(2 * np.pi * h / 24))[:, None]
    y[300:310] = np.nan
    steep = y.copy()
    steep[310] = 1.0  # an edge right at the bottom drags a linear-ish fill down
    steep[299] = 1.0
    out, _ = impute_matrix(steep, [], np.array([True]), np.array([0]))
    assert np.nanmin(out[300:310]) >= 0.0


def test_empty_inputs_give_empty_outputs_with_their_schemas() -> None:
    from energy_assets.transform.align import ALIGNED_SCHEMA, align
    from energy_assets.transform.features import FEATURE_COLUMNS, build_features

    raw = pl.DataFrame(schema=ALIGNED_SCHEMA).select(
        "interval_start_utc", "region", "series", "value", "units", "source"
    )
    aligned = align(raw, TARGET, TARGET + DAY)
    cleaned = clean(aligned, TARGET, TARGET + DAY)
    features = build_features(cleaned, None, TARGET, TARGET + DAY)
    assert aligned.height == cleaned.height == features.height == 0
    assert cleaned.schema == pl.Schema(CLEAN_SCHEMA)
    assert features.columns == list(FEATURE_COLUMNS)


def test_clean_on_region_blocks_in_threads_equals_one_block(monkeypatch) -> None:
    """The parallel path (whole regions per thread) gives exactly the single-block result."""
    import energy_assets.transform.clean as clean_module

    rng = np.random.default_rng(7)
    values = {}
    for r in range(40):  # 80 columns: enough for two blocks
        d, f = _demand_and_forecast(seed=r)
        d[rng.random(d.size) < 0.02] = np.nan
        d[24 * (10 + r % 20) : 24 * (10 + r % 20) + 30] = np.nan  # long gaps use the forecast
        d[rng.integers(0, d.size, 3)] *= 6  # spikes for the screens
        values[(f"R{r:02d}", "demand")] = d
        values[(f"R{r:02d}", "demand_forecast_da")] = f
    window = _window(values)
    blocks = clean_module._region_blocks(pl.Series([region for region, _ in sorted(values)]), 2)
    assert len(blocks) == 2 and blocks[0].stop % 2 == 0  # a region is never split
    monkeypatch.setattr(clean_module, "_workers", lambda: 1)
    one = clean(window, START, START + N_DAYS * DAY)
    monkeypatch.setattr(clean_module, "_workers", lambda: 2)
    monkeypatch.setattr(clean_module, "MIN_BLOCK_CELLS", 1)  # blocks even for this small window
    calls = []
    real_block = clean_module._clean_block
    monkeypatch.setattr(
        clean_module, "_clean_block", lambda *a: calls.append(a[1].shape) or real_block(*a)
    )
    two = clean(window, START, START + N_DAYS * DAY)
    assert len(calls) == 8 and sum(shape[1] for shape in calls) == 80
    assert (one.get_column("flag") != "OKAY").sum() > 100
    assert (one.get_column("method") == "blend").sum() > 1000
    assert one.equals(two, null_equal=True)


@pytest.mark.parametrize("window", [1, 7, 24, 168])
def test_imputation_local_error_is_the_centred_window_mean_of_each_cell(window: int) -> None:
    """Each cell's window alone: an inf or a 1e17 spike elsewhere in the column cannot leak in."""
    from energy_assets.transform.impute import _CentredMean

    rng = np.random.default_rng(window)
    a = np.abs(rng.normal(100, 30, (300, 4)))
    a[rng.random(a.shape) < 0.2] = np.nan
    a[20:120, 2] = np.nan  # windows with nothing in them
    a[3, 0], a[5, 1] = np.inf, 1e17
    rows, cols = np.nonzero(np.ones_like(a, dtype=bool))
    got = _CentredMean(a, window).at(rows, cols)
    before, after = window // 2, window - window // 2 - 1
    want = []
    for r, c in zip(rows, cols, strict=True):
        cell = a[max(r - before, 0) : r + after + 1, c]
        cell = cell[~np.isnan(cell)]
        want.append(cell.sum() / cell.size if cell.size else np.nan)
    assert np.allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isinf(got).sum() == np.isinf(want).sum() > 0


def _tables(peaks: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"code": list(peaks), "typical_peak_mw": list(peaks.values())})


def test_cleaning_config_screens_small_ba_demand_and_bounds_it_by_the_peak() -> None:
    from energy_assets.transform.clean import BA_PEAK_FACTOR, cleaning_config

    d, f = _demand_and_forecast()
    tiny, tiny_fc = np.round(d / d.max() * 50), np.round(f / d.max() * 50)  # whole MW, 50 MW
    hour = 24 * 25 + 14
    tiny[hour] = 290.0  # one hour of 290 MW between 30-50 MW neighbours: inside 3 x a 100 MW peak
    tiny[hour + 30] = 400.0  # above 3 x the typical peak
    values = {("TINY", "demand"): tiny, ("TINY", "demand_forecast_da"): tiny_fc}
    cfg = cleaning_config(_tables({"TINY": 100.0, "BIG": 5000.0}))
    out = _rows(clean(_window(values), TARGET, TARGET + 2 * DAY, cfg), "demand")
    flags = out.get_column("flag").to_list()
    assert flags[14] not in ("OKAY", "OUT_OF_BOUNDS")  # a Ruggles screen caught it
    assert flags[14 + 30] != "OKAY"
    rules = cfg.rules[
        : cfg.rule_index(pl.DataFrame({"region": ["TINY"], "series": ["demand"]}))[0] + 1
    ]
    assert rules[-1].screen == "ruggles" and rules[-1].upper == BA_PEAK_FACTOR * 100.0
    keys = pl.DataFrame({"region": ["BIG", "BIG"], "series": ["demand", "net_generation"]})
    assert [cfg.rules[i] for i in cfg.rule_index(keys)] == [
        r for r in CleaningConfig().rules if r.pattern in ("demand", "net_generation")
    ]


def test_cleaning_config_never_bounds_net_generation_by_demand() -> None:
    from energy_assets.transform.clean import cleaning_config

    # A generation-only BA: nominal 50 MW demand peak, GW of generation, zero and flat hours.
    ng = np.round(_demand_and_forecast()[0] / 3)
    ng[24 * 25 : 24 * 25 + 6] = 0.0  # a plant offline
    ng[24 * 25 + 10 : 24 * 25 + 16] = 1200.0  # on a flat schedule
    cfg = cleaning_config(_tables({"GENO": 50.0}))
    out = _rows(
        clean(_window({("GENO", "net_generation"): ng}), TARGET, TARGET + DAY, cfg),
        "net_generation",
    )
    assert set(out.get_column("flag")) == {"OKAY"}
    assert out.get_column("value").equals(out.get_column("value_reported"))


def test_impute_anchors_a_gap_with_the_analogs_the_gap_itself_has() -> None:
    # Weekly-periodic demand whose days differ: the same hour is missing every day for four
    # weeks, so the gap hours have weekly analogs only while their edges also have daily ones.
    # The edges' residuals must be those of the weekly analog, which fills the gap exactly.
    week = demand_matrix(168, 1, seed=3)[:, 0] * (1 + 0.2 * np.repeat(np.arange(7) % 3, 24))
    y = np.tile(week, 10)[:, None]
    gap = y.copy()
    hidden = 24 * 21 + 7 + 24 * np.arange(28)
    gap[hidden] = np.nan
    filled, methods = impute_matrix(gap, [], np.array([True]), np.array([0]))
    assert (methods[hidden, 0] == 2).all()  # blend
    assert np.allclose(filled[hidden, 0], y[hidden, 0], rtol=1e-12)


def test_impute_short_gaps_without_any_analog_are_linear() -> None:
    # A BA empty at 07 UTC every day for two months: in the middle of the stretch no analog a
    # day or two weeks away exists, and the forecast alone does worse than linear there (on
    # the Ruggles BAs). Near the stretch's ends a two-week analog remains and the blend fills.
    d, f = _demand_and_forecast(seed=4)
    y = np.r_[d, d][:, None]  # 100 days
    hidden = 24 * 20 + 7 + 24 * np.arange(60)
    gap = y.copy()
    gap[hidden] = np.nan
    cov = [np.r_[f, f][:, None]]
    filled, methods = impute_matrix(gap, cov, np.array([True]), np.array([0]))
    middle = hidden[15:45]  # no analog within +-14 days
    assert (methods[middle, 0] == 1).all()  # linear
    assert (methods[hidden[:10], 0] == 2).all()  # the stretch's first days still have analogs
    linear, _ = impute_matrix(gap, [], np.array([True]), np.array([10**6]))
    assert np.array_equal(filled[middle], linear[middle])


def test_a_fill_reads_nothing_further_than_reach_hours() -> None:
    """Values further than `reach_hours` from every hour of a day, changed or removed, leave the
    day's fills bit for bit as they were (proxy, driver, gaps of 2 h to 30 days around it)."""
    cfg = ImputeConfig()
    reach = reach_hours(cfg)
    n, rng = 24 * 150, np.random.default_rng(8)
    y = demand_matrix(n, 2, seed=9)
    proxy = y * (1.02 + rng.normal(0, 0.01, y.shape))
    h = np.arange(n)[:, None]
    driver = np.abs(12 + 10 * np.sin(2 * np.pi * h / (24 * 50)) - 18) * np.ones((1, 2))
    day = slice(24 * 75, 24 * 76)
    y[24 * 75 + 5 : 24 * 75 + 7, 0] = np.nan  # a short gap in the day
    y[24 * 60 : 24 * 90, 1] = np.nan  # the day deep inside a 30-day gap
    y[24 * 69 + 3 : 24 * 69 + 30, 1] = demand_matrix(27, 1, seed=2)[:, 0]  # an island in reach

    def fill(values: np.ndarray) -> np.ndarray:
        out, _ = impute_matrix(values, [proxy], np.ones(2, bool), np.zeros(2, int), cfg, [driver])
        return out[day]

    far = np.ones(n, dtype=bool)
    far[day.start - reach : day.stop + reach] = False
    scrambled = y.copy()
    scrambled[far] = rng.uniform(100, 9000, size=(far.sum(), 2))
    removed = np.where(far[:, None], np.nan, y)
    base = fill(y)
    assert np.isnan(y[day]).any(axis=0).all() and not np.isnan(base[:, 0]).any()
    np.testing.assert_array_equal(fill(scrambled), base)
    np.testing.assert_array_equal(fill(removed), base)
    near = y.copy()  # and something within reach does count
    near[day.start - 30 : day.start - 24] *= 1.5
    assert not np.array_equal(fill(near), base)


def test_filling_only_some_rows_gives_those_rows_the_same_fills() -> None:
    y = demand_matrix(24 * 40, 3, seed=4)
    for col, (a, b) in enumerate(((200, 203), (450, 520), (600, 601))):
        y[a:b, col] = np.nan
    y[455:470, 0] = np.nan
    args = ([y * 1.01], np.ones(3, bool), np.zeros(3, int))
    every, every_methods = impute_matrix(y, *args)
    rows = slice(440, 480)
    some, methods = impute_matrix(y, *args, rows=rows)
    np.testing.assert_array_equal(some[rows], every[rows])
    np.testing.assert_array_equal(methods[rows], every_methods[rows])
    outside = np.ones(y.shape[0], dtype=bool)
    outside[rows] = False
    assert np.isnan(some[outside]).sum() == np.isnan(y[outside]).sum() > 0
