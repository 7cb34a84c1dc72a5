"""What the synthetic world promises: determinism, window independence, identities, physics and
defects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_assets.offline.generator import (
    CAISO_TAC_SHARES,
    CAISO_TOTAL_TAC,
    INTERCHANGE_PAIRS,
    WEATHER_VARIABLES,
    GeneratorConfig,
    SyntheticWorld,
)
from energy_assets.sources.balancing_authorities import load_balancing_authorities

JULY = datetime(2024, 7, 1, tzinfo=UTC)
DAY = timedelta(days=1)
POINTS = [(25.77, -80.19), (44.98, -93.27), (33.45, -112.07), (47.61, -122.33), (-33.9, 151.2)]

# Rates high enough that a few days hold every kind of defect.
DEFECTIVE = GeneratorConfig(
    seed=3,
    missing_hour_rate=0.01,
    null_rate=0.01,
    zero_rate=0.01,
    negative_rate=0.01,
    spike_rate=0.01,
    identical_run_rate=0.01,
    duplicate_rate=0.01,
    revision_rate=0.02,
    vintage=1,
)


@pytest.fixture(scope="module")
def clean_world() -> SyntheticWorld:
    return SyntheticWorld(GeneratorConfig.clean(seed=7))


@pytest.fixture(scope="module")
def clean_fortnight(clean_world: SyntheticWorld) -> dict[str, pl.DataFrame]:
    start, end = JULY, JULY + 14 * DAY
    return {
        "region": clean_world.eia_region_data(start, end),
        "fuel": clean_world.eia_fuel_type_data(start, end),
        "interchange": clean_world.eia_interchange_data(start, end),
    }


def _all_methods(world: SyntheticWorld, start: datetime, end: datetime) -> dict[str, pl.DataFrame]:
    return {
        "region": world.eia_region_data(start, end),
        "fuel": world.eia_fuel_type_data(start, end),
        "interchange": world.eia_interchange_data(start, end),
        "caiso_load": world.caiso_load(start, end),
        "caiso_lmp": world.caiso_lmp(start, end),
        "weather": world.weather(start, end, POINTS),
    }


def _in_window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(pl.col("interval_start_utc").is_between(start, end, closed="left"))


# -- determinism and window independence --------------------------------------------------------


def test_same_config_gives_identical_frames_in_fresh_worlds() -> None:
    start, end = JULY, JULY + DAY
    first = _all_methods(SyntheticWorld(DEFECTIVE), start, end)
    second = _all_methods(SyntheticWorld(DEFECTIVE), start, end)
    for name, frame in first.items():
        assert frame.height > 0, name
        assert_frame_equal(frame, second[name])


def test_different_seeds_give_different_demand() -> None:
    start, end = JULY, JULY + DAY
    one = SyntheticWorld(GeneratorConfig.clean(seed=1)).eia_region_data(start, end)
    two = SyntheticWorld(GeneratorConfig.clean(seed=2)).eia_region_data(start, end)
    assert (one["value"] != two["value"]).mean() > 0.5


@pytest.mark.parametrize("offset_days", [0, 13, 29])
def test_day_alone_equals_same_day_inside_a_month_with_defects(offset_days: int) -> None:
    month_start, month_end = JULY, JULY + 30 * DAY
    day_start = JULY + offset_days * DAY
    alone = _all_methods(SyntheticWorld(DEFECTIVE), day_start, day_start + DAY)
    month = _all_methods(SyntheticWorld(DEFECTIVE), month_start, month_end)
    for name, frame in alone.items():
        inside = _in_window(month[name], day_start, day_start + DAY)
        assert_frame_equal(frame, inside)


def test_odd_windows_agree_with_whole_days() -> None:
    world = SyntheticWorld(DEFECTIVE)
    start, end = JULY + timedelta(hours=5), JULY + timedelta(hours=29)
    odd = SyntheticWorld(DEFECTIVE).eia_region_data(start, end)
    whole = _in_window(world.eia_region_data(JULY, JULY + 2 * DAY), start, end)
    assert_frame_equal(odd, whole)


def test_subset_of_respondents_serves_the_same_values(clean_world: SyntheticWorld) -> None:
    subset = SyntheticWorld(GeneratorConfig.clean(seed=7, respondents=["BANC", "CISO"]))
    start, end = JULY, JULY + DAY
    assert subset.respondents() == ["BANC", "CISO"]
    full = clean_world.eia_region_data(start, end).filter(
        pl.col("respondent").is_in(["BANC", "CISO"])
    )
    assert_frame_equal(subset.eia_region_data(start, end), full)
    flows = subset.eia_interchange_data(start, end)
    assert set(flows["fromba"]) == {"BANC", "CISO"}
    assert {"BPAT", "TIDC", "LDWP"} <= set(flows["toba"])  # neighbours outside the subset


def test_empty_and_naive_windows() -> None:
    world = SyntheticWorld(GeneratorConfig.clean())
    empty = world.eia_region_data(JULY, JULY)
    assert empty.height == 0
    assert empty.schema["interval_start_utc"] == pl.Datetime("us", "UTC")
    naive = world.eia_region_data(datetime(2024, 7, 1), datetime(2024, 7, 1, 3))
    assert_frame_equal(naive, world.eia_region_data(JULY, JULY + timedelta(hours=3)))
    assert naive["interval_start_utc"].n_unique() == 3


# -- identities on the clean world ----------------------------------------------------------------


def _wide_region(region: pl.DataFrame) -> pl.DataFrame:
    return region.pivot(on="type", index=["interval_start_utc", "respondent"], values="value")


def test_clean_world_has_every_row_once(clean_fortnight: dict[str, pl.DataFrame]) -> None:
    region = clean_fortnight["region"]
    assert region.height == 14 * 24 * len(load_balancing_authorities()) * 4
    assert region.null_count().sum_horizontal().item() == 0
    assert not region.select(pl.exclude("value")).is_duplicated().any()


def test_demand_equals_net_generation_minus_total_interchange(
    clean_fortnight: dict[str, pl.DataFrame],
) -> None:
    wide = _wide_region(clean_fortnight["region"])
    assert (wide["D"] == wide["NG"] - wide["TI"]).all()
    assert (wide["NG"] > 0).all()


def test_fuels_sum_exactly_to_net_generation(clean_fortnight: dict[str, pl.DataFrame]) -> None:
    fuels = (
        clean_fortnight["fuel"]
        .group_by("interval_start_utc", "respondent")
        .agg(pl.col("value").sum().alias("fuel_sum"))
    )
    ng = clean_fortnight["region"].filter(pl.col("type") == "NG")
    joined = ng.join(fuels, on=["interval_start_utc", "respondent"], how="left")
    assert joined["fuel_sum"].null_count() == 0
    assert (joined["fuel_sum"] == joined["value"]).all()


def test_fuel_values_are_non_negative_except_batteries_and_rounding(
    clean_fortnight: dict[str, pl.DataFrame],
) -> None:
    fuel = clean_fortnight["fuel"]
    assert fuel.filter(pl.col("fueltype") != "BAT")["value"].min() >= -5
    battery = fuel.filter(pl.col("fueltype") == "BAT")["value"]
    assert battery.min() < 0 < battery.max()  # charging and discharging


def test_interchange_is_antisymmetric_and_sums_to_total_interchange(
    clean_fortnight: dict[str, pl.DataFrame],
) -> None:
    flows = clean_fortnight["interchange"]
    key = ["interval_start_utc", "fromba", "toba"]
    mirrored = flows.select(
        "interval_start_utc",
        pl.col("toba").alias("fromba"),
        pl.col("fromba").alias("toba"),
        (-pl.col("value")).alias("mirror"),
    )
    joined = flows.join(mirrored, on=key, how="left")
    assert joined["mirror"].null_count() == 0
    assert (joined["value"] == joined["mirror"]).all()
    ti = flows.group_by("interval_start_utc", pl.col("fromba").alias("respondent")).agg(
        pl.col("value").sum().alias("flow_sum")
    )
    region = clean_fortnight["region"].filter(pl.col("type") == "TI")
    both = region.join(ti, on=["interval_start_utc", "respondent"], how="left")
    assert (both["flow_sum"] == both["value"]).all()


def test_neighbour_graph_has_one_to_four_neighbours_per_ba() -> None:
    codes = set(load_balancing_authorities()["code"])
    assert len(set(INTERCHANGE_PAIRS)) == len(INTERCHANGE_PAIRS)
    degree: dict[str, int] = {}
    for a, b in INTERCHANGE_PAIRS:
        assert a < b and a in codes and b in codes, (a, b)
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    assert set(degree) == codes
    assert min(degree.values()) >= 1 and max(degree.values()) <= 4


def test_caiso_total_equals_ciso_demand_and_tacs_sum_to_total(clean_world: SyntheticWorld) -> None:
    start, end = JULY, JULY + 7 * DAY
    load = clean_world.caiso_load(start, end)
    actual = load.filter(
        (pl.col("tac_area_name") == CAISO_TOTAL_TAC) & (pl.col("market_run_id") == "ACTUAL")
    )
    demand = clean_world.eia_region_data(start, end).filter(
        (pl.col("respondent") == "CISO") & (pl.col("type") == "D")
    )
    joined = actual.join(demand, on="interval_start_utc")
    assert joined.height == 7 * 24
    assert (joined["mw"] == joined["value"]).all()
    parts = (
        load.filter(pl.col("tac_area_name").is_in(list(CAISO_TAC_SHARES)))
        .group_by("interval_start_utc", "market_run_id")
        .agg(pl.col("mw").sum().alias("parts"), pl.len().alias("n"))
    )
    totals = load.filter(pl.col("tac_area_name") == CAISO_TOTAL_TAC)
    check = totals.join(parts, on=["interval_start_utc", "market_run_id"])
    assert check.height == 7 * 24 * 4 and (check["n"] == len(CAISO_TAC_SHARES)).all()
    assert ((check["parts"] - check["mw"]).abs() < 1e-6).all()


def test_caiso_forecast_error_grows_with_horizon() -> None:
    world = SyntheticWorld(GeneratorConfig.clean(seed=7, respondents=["CISO"]))
    load = world.caiso_load(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))
    wide = load.filter(pl.col("tac_area_name") == CAISO_TOTAL_TAC).pivot(
        on="market_run_id", index="interval_start_utc", values="mw"
    )
    errors = {m: (wide[m] / wide["ACTUAL"] - 1.0).std() for m in ("DAM", "2DA", "7DA")}
    assert 0.005 < errors["DAM"] < errors["2DA"] < errors["7DA"] < 0.1, errors


def test_lmp_is_sum_of_components_and_rises_with_load(clean_world: SyntheticWorld) -> None:
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)
    lmp = clean_world.caiso_lmp(start, end).pivot(
        on="lmp_type", index=["interval_start_utc", "node"], values="mw"
    )
    assert lmp["node"].n_unique() == 3
    assert (lmp["LMP"] == lmp["MCE"] + lmp["MCC"] + lmp["MCL"]).all()
    load = clean_world.caiso_load(start, end).filter(
        (pl.col("tac_area_name") == CAISO_TOTAL_TAC) & (pl.col("market_run_id") == "ACTUAL")
    )
    joined = lmp.join(load, on="interval_start_utc")
    assert np.corrcoef(joined["LMP"], joined["mw"])[0, 1] > 0.3
    assert joined["LMP"].min() > -100 and joined["LMP"].max() < 1000


# -- physics --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weather_year() -> pl.DataFrame:
    world = SyntheticWorld(GeneratorConfig.clean(seed=7))
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    wide = world.weather(start, end, POINTS).pivot(
        on="variable", index=["interval_start_utc", "latitude", "longitude"], values="value"
    )
    return wide.with_columns(month=pl.col("interval_start_utc").dt.month())


def test_weather_variables_stay_in_physical_ranges(weather_year: pl.DataFrame) -> None:
    w = weather_year
    assert set(WEATHER_VARIABLES) <= set(w.columns)
    assert w.height == 8760 * len(POINTS)
    assert (w["dew_point_2m"] <= w["temperature_2m"]).all()
    assert w["relative_humidity_2m"].is_between(0, 100).all()
    assert w["cloud_cover"].is_between(0, 100).all()
    assert w["shortwave_radiation"].is_between(0, 1100).all()
    assert (w["wind_speed_10m"] >= 0).all()
    assert w["temperature_2m"].is_between(-50, 55).all()


def test_radiation_is_zero_at_night_and_positive_at_noon(weather_year: pl.DataFrame) -> None:
    solar = weather_year.with_columns(
        solar_hour=(
            pl.col("interval_start_utc").dt.hour().cast(pl.Float64) + pl.col("longitude") / 15.0
        )
        % 24.0
    )
    night = solar.filter(pl.col("solar_hour").is_between(0.5, 3.5))
    assert night.height > 1000 and (night["shortwave_radiation"] == 0).all()
    noon = solar.filter(pl.col("solar_hour").is_between(12.5, 13.5))
    assert (noon["shortwave_radiation"] > 0).mean() > 0.99


def test_climate_follows_latitude_and_season(weather_year: pl.DataFrame) -> None:
    means = weather_year.group_by("latitude", "month").agg(pl.col("temperature_2m").mean())

    def mean(lat: float, month: int) -> float:
        row = means.filter((pl.col("latitude") == lat) & (pl.col("month") == month))
        return row["temperature_2m"].item()

    assert mean(25.77, 1) > mean(44.98, 1) + 20  # Miami vs Minneapolis in January
    assert mean(44.98, 7) > mean(44.98, 1) + 25  # continental summer vs winter
    assert mean(-33.9, 1) > mean(-33.9, 7) + 8  # southern hemisphere seasons flip
    dry = weather_year.filter(pl.col("latitude") == 33.45)["relative_humidity_2m"].mean()
    humid = weather_year.filter(pl.col("latitude") == 25.77)["relative_humidity_2m"].mean()
    assert dry < humid - 25  # Phoenix vs Miami


def test_demand_is_driven_by_the_weather_served_at_the_ba_point(
    clean_world: SyntheticWorld,
) -> None:
    start, end = JULY, JULY + 3 * DAY
    drivers = clean_world.truth_drivers(start, end)
    table = load_balancing_authorities()
    for code in ("CISO", "ERCO", "PJM", "TEPC"):
        row = table.filter(pl.col("code") == code)
        point = (row["latitude"].item(), row["longitude"].item())
        served = (
            clean_world.weather(start, end + timedelta(hours=1), [point])
            .pivot(on="variable", index="interval_start_utc", values="value")
            .sort("interval_start_utc")
        )
        mine = drivers.filter(pl.col("respondent") == code).sort("interval_start_utc")
        assert (mine["temperature_2m"] == served["temperature_2m"].head(72)).all()
        assert (mine["wind_speed_10m"] == served["wind_speed_10m"].head(72)).all()
        # Radiation is the mean of the preceding hour: the interval's is stamped one hour later.
        assert (mine["shortwave_radiation_next"] == served["shortwave_radiation"].tail(72)).all()


def test_demand_responds_to_heat_and_cold_and_dips_on_weekends() -> None:
    world = SyntheticWorld(GeneratorConfig.clean(seed=7, respondents=["ERCO", "MISO", "PJM"]))
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    demand = world.eia_region_data(start, end).filter(pl.col("type") == "D")
    joined = demand.join(world.truth_drivers(start, end), on=["interval_start_utc", "respondent"])
    daily = (
        joined.group_by("respondent", day=pl.col("interval_start_utc").dt.date())
        .agg(
            pl.col("value").mean().alias("demand"),
            (pl.col("temperature_2m") - 18).clip(0).mean().alias("cdd"),
            (18 - pl.col("temperature_2m")).clip(0).mean().alias("hdd"),
        )
        .with_columns(month=pl.col("day").dt.month(), weekend=pl.col("day").dt.weekday() >= 6)
    )
    summer = daily.filter((pl.col("respondent") == "ERCO") & pl.col("month").is_in([6, 7, 8]))
    assert np.corrcoef(summer["demand"], summer["cdd"])[0, 1] > 0.6
    winter = daily.filter((pl.col("respondent") == "MISO") & pl.col("month").is_in([12, 1, 2]))
    assert np.corrcoef(winter["demand"], winter["hdd"])[0, 1] > 0.6
    by_week = daily.group_by("respondent", "weekend").agg(pl.col("demand").mean())
    for code in ("ERCO", "MISO", "PJM"):
        rows = by_week.filter(pl.col("respondent") == code).sort("weekend")
        weekday, weekend = rows["demand"].to_list()
        assert weekend < 0.97 * weekday


def test_demand_magnitudes_follow_typical_peaks(clean_world: SyntheticWorld) -> None:
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    demand = clean_world.truth_region_data(start, end).filter(pl.col("type") == "D")
    peaks = load_balancing_authorities().select(
        pl.col("code").alias("respondent"), "typical_peak_mw"
    )
    stats = (
        demand.group_by("respondent")
        .agg(pl.col("value").max().alias("hi"), pl.col("value").min().alias("lo"))
        .join(peaks, on="respondent")
    )
    assert (stats["hi"] / stats["typical_peak_mw"]).is_between(0.75, 1.25).all()
    assert (stats["lo"] / stats["typical_peak_mw"]).is_between(0.25, 0.7).all()


def test_solar_follows_radiation_and_wind_needs_wind(clean_world: SyntheticWorld) -> None:
    start, end = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)
    fuel = clean_world.eia_fuel_type_data(start, end).filter(pl.col("respondent") == "CISO")
    drivers = clean_world.truth_drivers(start, end).filter(pl.col("respondent") == "CISO")
    sun = fuel.filter(pl.col("fueltype") == "SUN").join(drivers, on="interval_start_utc")
    assert (sun.filter(pl.col("shortwave_radiation_next") == 0)["value"] == 0).all()
    assert np.corrcoef(sun["value"], sun["shortwave_radiation_next"])[0, 1] > 0.95
    wind = fuel.filter(pl.col("fueltype") == "WND").join(drivers, on="interval_start_utc")
    calm = wind.filter(pl.col("wind_speed_10m") < 6.0)  # below cut-in at hub height
    assert calm.height > 0 and (calm["value"] == 0).all()
    assert np.corrcoef(wind["value"], wind["wind_speed_10m"])[0, 1] > 0.7


# -- defects --------------------------------------------------------------------------------------


def _served_and_truth(config: GeneratorConfig, days: int = 14) -> tuple[pl.DataFrame, pl.DataFrame]:
    world = SyntheticWorld(config)
    start, end = JULY, JULY + days * DAY
    demand = pl.col("type") == "D"
    return (
        world.eia_region_data(start, end).filter(demand),
        world.truth_region_data(start, end).filter(demand),
    )


def _only(**rates: float) -> GeneratorConfig:
    return GeneratorConfig.clean(seed=11).model_copy(update=rates)


def _observed_rate(config: GeneratorConfig, condition: pl.Expr) -> float:
    served, truth = _served_and_truth(config)
    joined = served.join(
        truth.select("interval_start_utc", "respondent", pl.col("value").alias("truth")),
        on=["interval_start_utc", "respondent"],
    )
    return joined.select(condition.mean()).item()


RATE = 0.02  # 14 days x 67 BAs x 24 h = 22,512 demand rows: ~450 expected, sd ~21


@pytest.mark.parametrize(
    ("field", "condition"),
    [
        ("null_rate", pl.col("value").is_null()),
        ("zero_rate", pl.col("value") == 0),
        ("negative_rate", pl.col("value") < 0),
        ("spike_rate", (pl.col("value") / pl.col("truth")).is_between(2.9, 10.1)),
    ],
)
def test_point_defect_rates_are_as_configured(field: str, condition: pl.Expr) -> None:
    observed = _observed_rate(_only(**{field: RATE}), condition)
    assert abs(observed - RATE) < 0.25 * RATE, observed


def test_missing_and_duplicate_rates_are_as_configured() -> None:
    served, truth = _served_and_truth(_only(missing_hour_rate=RATE, duplicate_rate=RATE))
    key = ["interval_start_utc", "respondent", "type"]
    unique = served.unique(subset=key)
    missing = 1.0 - unique.height / truth.height
    duplicated = (served.height - unique.height) / unique.height
    assert abs(missing - RATE) < 0.25 * RATE, missing
    assert abs(duplicated - RATE) < 0.25 * RATE, duplicated
    assert served.is_duplicated().sum() == 2 * (served.height - unique.height)  # exact copies
    # Duplicates are adjacent: each duplicated row sits next to its copy.
    dup_positions = served.with_row_index("i").filter(served.is_duplicated())["i"].to_numpy()
    assert (np.diff(dup_positions)[::2] == 1).all()


def test_identical_runs_repeat_the_previous_value() -> None:
    served, truth = _served_and_truth(_only(identical_run_rate=RATE))
    both = (
        served.join(
            truth.select("interval_start_utc", "respondent", pl.col("value").alias("truth")),
            on=["interval_start_utc", "respondent"],
        )
        .sort("respondent", "interval_start_utc")
        .with_columns(previous=pl.col("value").shift(1).over("respondent"))
    )
    changed = both.filter(pl.col("value") != pl.col("truth"))
    assert changed.height > 0
    assert (changed["value"] == changed["previous"]).all()
    # Runs have 3-8 hours, so 2-7 (mean 4.5) changed hours follow each start; a start is dropped
    # when another was drawn in the 7 hours before it.
    expected = 4.5 * RATE * (1 - RATE) ** 7
    fraction = changed.height / both.height
    assert abs(fraction - expected) < 0.3 * expected, fraction


def test_revisions_change_a_subset_between_vintages_and_accumulate() -> None:
    config = _only(revision_rate=RATE)
    key = ["interval_start_utc", "respondent"]
    first, _ = _served_and_truth(config.model_copy(update={"vintage": 0}))
    second, _ = _served_and_truth(config.model_copy(update={"vintage": 1}))
    third, _ = _served_and_truth(config.model_copy(update={"vintage": 2}))
    big = pl.col("value") >= 500  # 1 % of a small BA's load can round away
    joined = (
        first.filter(big)
        .select(*key, "value")
        .join(second.select(*key, pl.col("value").alias("v1")), on=key)
        .join(third.select(*key, pl.col("value").alias("v2")), on=key)
    )
    revised_once = joined.filter(pl.col("value") != pl.col("v1"))
    fraction = revised_once.height / joined.height
    assert abs(fraction - RATE) < 0.3 * RATE, fraction
    assert (revised_once["v2"] == revised_once["v1"]).all()  # a revision stays
    revised_twice = joined.filter(pl.col("value") != pl.col("v2")).height / joined.height
    assert abs(revised_twice - 2 * RATE) < 0.3 * 2 * RATE, revised_twice
    ratio = revised_once["v1"] / revised_once["value"]
    assert ((ratio - 1).abs().is_between(0.005, 0.07)).all()


def test_zero_rate_config_serves_the_truth_exactly(clean_world: SyntheticWorld) -> None:
    start, end = JULY, JULY + 2 * DAY
    world = SyntheticWorld(GeneratorConfig.clean(seed=7).model_copy(update={"vintage": 3}))
    assert_frame_equal(world.eia_region_data(start, end), world.truth_region_data(start, end))
    assert_frame_equal(world.eia_fuel_type_data(start, end), world.truth_fuel_type_data(start, end))
    assert_frame_equal(
        world.eia_interchange_data(start, end), world.truth_interchange_data(start, end)
    )
    assert_frame_equal(world.caiso_load(start, end), world.truth_caiso_load(start, end))
    assert_frame_equal(world.caiso_lmp(start, end), world.truth_caiso_lmp(start, end))
    weather = world.weather(start, end, POINTS)
    assert weather["value"].null_count() == 0
    assert_frame_equal(weather, world.truth_weather(start, end, POINTS))


def test_default_config_has_defects_on_every_eia_route() -> None:
    world = SyntheticWorld(GeneratorConfig(seed=5))
    start, end = JULY, JULY + 7 * DAY
    for served, truth in (
        (world.eia_region_data(start, end), world.truth_region_data(start, end)),
        (world.eia_fuel_type_data(start, end), world.truth_fuel_type_data(start, end)),
        (world.eia_interchange_data(start, end), world.truth_interchange_data(start, end)),
    ):
        assert served.height != truth.height or not served.equals(truth)
        assert served["value"].null_count() > 0


def test_weather_nulls_follow_null_rate() -> None:
    world = SyntheticWorld(_only(null_rate=RATE))
    weather = world.weather(JULY, JULY + 14 * DAY, POINTS)
    observed = weather["value"].null_count() / weather.height
    assert abs(observed - RATE) < 0.25 * RATE, observed


def test_config_rejects_unknown_codes_and_impossible_rates() -> None:
    with pytest.raises(ValueError, match="XYZ"):
        SyntheticWorld(GeneratorConfig(respondents=["CISO", "XYZ"]))
    with pytest.raises(ValueError):
        GeneratorConfig(null_rate=1.5)
    with pytest.raises(ValueError, match="share one draw"):
        GeneratorConfig(null_rate=0.6, zero_rate=0.6)
    config = GeneratorConfig()
    with pytest.raises(ValueError):
        config.seed = 3  # type: ignore[misc]  # frozen
    assert not GeneratorConfig.clean().has_defects() and config.has_defects()
