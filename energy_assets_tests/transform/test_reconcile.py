"""Physical reconciliation (transform/reconcile.py): identities, weights, floors, the vectorised
solve against a plain per-hour reference, the spike screen, and the real gridemissions week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from energy_assets.transform.reconcile import (
    GRIDEMISSIONS_FLOORS,
    ReconcileConfig,
    ReconcileError,
    balance_system,
    identity_residuals,
    reconcile,
    solve,
    solve_reference,
)

T0 = datetime(2024, 3, 10, tzinfo=UTC)

# Two BAs trading with each other, A with a fuel mix (one storage, one solar) and a third
# neighbour C that reports only its side of the pair with A.
REGIONS = ["A"] * 7 + ["B"] * 4 + ["C"]
SERIES = [
    "demand",
    "net_generation",
    "total_interchange",
    "interchange_to_B",
    "generation_col",
    "generation_ng",
    "generation_bat",
    "demand",
    "net_generation",
    "total_interchange",
    "interchange_to_A",
    "interchange_to_A",
]
CONSISTENT = np.array([900.0, 1000, 100, 100, 600, 380, 20, 1100, 1000, -100, -100, 0])


def system(config: ReconcileConfig | None = None):
    cfg = config or ReconcileConfig()
    return balance_system(REGIONS, SERIES, cfg.floor_of(SERIES))


def long_frame(x: np.ndarray, observed: np.ndarray, regions=REGIONS, series=SERIES):
    """A reconcile input: hours x columns values and observed masks as imputed/series rows."""
    hours, n = x.shape
    times = [T0 + timedelta(hours=h) for h in range(hours)]
    return pl.DataFrame(
        {
            "interval_start_utc": [t for _ in range(n) for t in times],
            "region": [r for r in regions for _ in range(hours)],
            "series": [s for s in series for _ in range(hours)],
            "value": x.T.reshape(-1),
            "flag": ["OKAY" if o else "SINGLE_DELTA" for o in observed.T.reshape(-1)],
            "method": ["observed" if o else "blend" for o in observed.T.reshape(-1)],
            "is_observed": observed.T.reshape(-1),
            "units": "MW",
            "source": "eia930",
        },
        schema_overrides={"interval_start_utc": pl.Datetime("us", "UTC")},
    ).with_columns(pl.col("value").fill_nan(None))


def test_the_structure_has_the_identities_the_series_imply():
    s = system()
    assert s.names == [
        "balance:A",
        "interchange_sum:A",
        "fuel_sum:A",
        "balance:B",
        "interchange_sum:B",
    ]
    assert s.pairs.tolist() == [[3, 10]]  # A->B with B->A; C->A has no partner
    assert s.nz == s.n - 1


def test_consistent_values_are_left_alone():
    x = CONSISTENT[None].repeat(3, 0)
    result = solve(system(), x, np.ones_like(x))
    assert np.abs(result.adjustment).max() < 1e-9
    assert set(result.moved_by.ravel()) == {0}


def test_identities_hold_within_1e_6_mw_after_reconciling_noisy_values():
    rng = np.random.default_rng(1)
    x = CONSISTENT + rng.normal(0, 40, (48, len(SERIES)))
    frame = long_frame(x, np.ones(x.shape, dtype=bool))
    before = identity_residuals(frame)
    assert before["residual_mw"].abs().max() > 10  # the input really is inconsistent
    out = reconcile(frame)
    after = identity_residuals(out)
    assert after.height == before.height == 48 * 6
    assert after["residual_mw"].abs().max() < 1e-6


def test_an_observed_value_moves_less_than_a_flagged_one_in_inverse_proportion_to_its_cost():
    # B alone: D 1100 (flagged), NG 1000, TI -50 (both observed): residual NG - D - TI = -50.
    regions, series = ["B"] * 3, ["demand", "net_generation", "total_interchange"]
    x = np.full((24, 3), np.nan)
    x[:] = [1100.0, 1000.0, -50.0]
    observed = np.ones(x.shape, dtype=bool)
    observed[:, 0] = False
    cfg = ReconcileConfig(gamma_mw=1e4)  # one scale for all three: cost alone sets the weights
    out = reconcile(long_frame(x, observed, regions, series), cfg)
    adj = out.pivot(on="series", index="interval_start_utc", values="adjustment_mw")
    # closed form for one constraint: adjustment_i = -c_i r / w_i / sum_j(c_j^2 / w_j)
    inv = np.array([1 / cfg.imputed_cost, 1 / cfg.observed_cost, 1 / cfg.observed_cost])
    coef = np.array([-1.0, 1.0, -1.0])
    expected = -coef * -50.0 * inv / (coef**2 * inv).sum()
    got = adj.select("demand", "net_generation", "total_interchange").to_numpy()
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), atol=1e-9)
    assert abs(expected[0]) == pytest.approx(100 * abs(expected[1]))
    assert set(out["moved_by"]) == {"balance"}


def test_floors_hold_and_storage_may_stay_negative():
    # A's fuels sum to 25 against an expensive NG of 10: the unconstrained projection would put
    # gas at 0 MW, below its 1 MW floor; storage has no floor.
    x = CONSISTENT.copy()
    x[[1, 4, 5, 6]] = [10.0, 40.0, 5.0, -20.0]
    x[0], x[2], x[3] = -90.0, 100.0, 100.0
    x = x[None]
    w = np.ones_like(x)
    w[0, [0, 1]] = 1e6
    s = system()
    result = solve(s, x, w)
    gas, bat = result.value[0, 5], result.value[0, 6]
    assert gas == pytest.approx(1.0, abs=1e-9)
    assert result.moved_by[0, 5] == 5  # "floor"
    assert bat < 0
    assert (result.value[0, np.isfinite(s.floor)] >= s.floor[np.isfinite(s.floor)] - 1e-9).all()
    reference = solve_reference(s, x, w, result.active)
    np.testing.assert_allclose(result.value, reference, atol=1e-6)


def test_the_vectorised_solve_equals_a_per_hour_reference_solve():
    rng = np.random.default_rng(7)
    hours = 40
    x = CONSISTENT + rng.normal(0, 60, (hours, len(SERIES)))
    x[::7, 5] = rng.uniform(-50, 5, len(x[::7]))  # gas below its floor every 7th hour
    x[3, 0] = np.nan  # a null demand: filled by the balance
    x[5, 10] = np.nan  # a null direction of the pair: filled by antisymmetry
    w = rng.uniform(0.2, 5.0, x.shape)
    w[10:20] = w[10]  # ten hours sharing one matrix: factored once
    s = system()
    result = solve(s, x, w)
    reference = solve_reference(s, x, w, result.active)
    np.testing.assert_allclose(result.value, reference, atol=1e-6)
    assert result.value[3, 0] == pytest.approx(result.value[3, 1] - result.value[3, 2])
    assert result.value[5, 10] == pytest.approx(-result.value[5, 3])
    assert np.isnan(result.adjustment[3, 0])


def test_a_null_that_no_identity_determines_stays_null():
    x = CONSISTENT[None].copy()
    x[0, [7, 8]] = np.nan  # B's demand and net generation: balance has one value, inactive
    x[0, 10] = np.nan
    result = solve(system(), x, np.ones_like(x))
    assert np.isnan(result.value[0, [7, 8]]).all()
    assert not result.active[0, 3]


def test_a_fuel_spike_is_flagged_and_absorbs_the_imbalance():
    rng = np.random.default_rng(3)
    x = CONSISTENT + rng.normal(0, 2, (24, len(SERIES)))
    x[:, 11] = 0.0
    x[9, 4] = 5 * CONSISTENT[4]  # coal reported 5x at 09:00
    out = reconcile(long_frame(x, np.ones(x.shape, dtype=bool)))
    spikes = out.filter("is_spike")
    assert spikes.select("region", "series", "interval_start_utc").rows() == [
        ("A", "generation_col", T0 + timedelta(hours=9))
    ]
    coal = out.filter(pl.col("is_spike")).row(0, named=True)
    excess = 4 * CONSISTENT[4]
    assert coal["adjustment_mw"] == pytest.approx(-excess, rel=0.02)
    others = out.filter(
        (pl.col("interval_start_utc") == T0 + timedelta(hours=9)) & ~pl.col("is_spike")
    )
    assert others["adjustment_mw"].abs().max() < 0.02 * excess
    assert identity_residuals(out)["residual_mw"].abs().max() < 1e-6


def test_demand_is_not_spike_screened():
    x = CONSISTENT[None].repeat(24, 0).copy()
    x[9, 0] = 5 * CONSISTENT[0]
    out = reconcile(long_frame(x, np.ones(x.shape, dtype=bool)))
    assert not out.filter(pl.col("series") == "demand")["is_spike"].any()


def test_bad_input_gets_an_error_that_says_what_to_pass():
    with pytest.raises(ReconcileError, match="not in the balance"):
        balance_system(["A"], ["temperature_2m"])
    with pytest.raises(ReconcileError, match="weights must be finite"):
        solve(system(), CONSISTENT[None], np.zeros((1, len(SERIES))))
    with pytest.raises(ReconcileError, match=r"\(hours, 12\)"):
        solve(system(), CONSISTENT[None, :5], np.ones((1, 5)))


def test_other_series_pass_through_untouched_and_are_left_out():
    frame = long_frame(CONSISTENT[None], np.ones((1, len(SERIES)), dtype=bool))
    weather = frame.head(1).with_columns(series=pl.lit("temperature_2m"), value=pl.lit(20.0))
    out = reconcile(pl.concat([frame, weather]))
    assert "temperature_2m" not in out["series"].to_list()
    assert out.height == len(SERIES)


def test_regions_reporting_demand_only_come_through_unmoved():
    """No identity applies to a region with demand alone (the Ruggles release): its values,
    nulls included, come through, nothing is moved (found on `world: ruggles`)."""
    x = np.array([[1000.0, 1100.0], [np.nan, 1050.0], [990.0, np.nan]])
    frame = long_frame(
        x, np.isfinite(x), regions=["TEPC", "TEPC"], series=["demand", "demand_forecast_da"]
    )
    out = reconcile(frame).sort("interval_start_utc")
    assert out["series"].to_list() == ["demand"] * 3  # the forecast is not a balance series
    assert set(out["moved_by"]) == {"none"}
    assert out["value"].to_list() == [1000.0, None, 990.0]


# ------------------------------------------------------------------------- real data


def gridemissions_stage(folder: Path, name: str) -> pl.DataFrame:
    from energy_assets.offline.realdata_world import GridEmissionsWorld

    return GridEmissionsWorld(folder, pattern=f"E_{name}_*.csv").series_long()


def test_gridemissions_week_reconciles_within_1_mw_and_matches_e_opt(realdata: Path):
    """gridemissions' own inputs and weights (E_rolling, E_weights) and floors: every identity
    holds within 1 MW on all 241 hours, and the first 20 hours equal its reconciled E_opt."""
    from energy_assets.transform.grid import matrix_to_long, to_matrix

    folder = realdata / "gridemissions"
    weights = gridemissions_stage(folder, "weights").rename({"value": "weight"})
    rolling = gridemissions_stage(folder, "rolling")
    frame = weights.join(rolling, on=["interval_start_utc", "region", "series"], how="left")
    frame = frame.filter(
        ~pl.col("series").is_in(["demand_forecast_da"])  # not in the balance
    )
    keys, t0, _, mats = to_matrix(frame, ["value", "weight"])
    cfg = ReconcileConfig(floors=GRIDEMISSIONS_FLOORS)
    series = keys["series"].to_list()
    s = balance_system(keys["region"].to_list(), series, cfg.floor_of(series))
    result = solve(s, np.nan_to_num(mats["value"]), mats["weight"])
    out = matrix_to_long(keys, t0, {"value": result.value})
    residuals = identity_residuals(out)
    assert residuals.height > 80_000
    assert residuals["residual_mw"].abs().max() < 1.0
    opt = gridemissions_stage(folder, "opt").rename({"value": "opt"})
    joined = out.join(opt, on=["interval_start_utc", "region", "series"], how="inner")
    assert joined["interval_start_utc"].n_unique() == 20
    gap = (joined["value"] - joined["opt"]).abs() / joined["opt"].abs().clip(lower_bound=1.0)
    assert gap.max() < 1e-3


def test_reported_eia930_week_through_the_pipeline_path_holds_the_identities(realdata: Path):
    """The raw scrape (every BA, 241 h, nulls included) as imputed/series rows, all observed,
    through `reconcile` with the pipeline's weights and floors."""
    from energy_assets.offline.realdata_world import GridEmissionsWorld

    raw = GridEmissionsWorld(realdata / "gridemissions").series_long()
    frame = raw.with_columns(
        flag=pl.lit("OKAY"),
        method=pl.lit("observed"),
        is_observed=pl.lit(True),
        units=pl.lit("MW"),
        source=pl.lit("eia930"),
    )
    before = identity_residuals(frame)
    assert before["residual_mw"].abs().max() > 1000
    out = reconcile(frame)
    after = identity_residuals(out)
    assert after.height >= before.height
    assert after["residual_mw"].abs().max() < 1.0
    floors = out.filter(pl.col("series").is_in(["demand", "net_generation"]))
    assert floors["value"].min() >= 1.0 - 1e-6


def test_solving_in_chunks_of_hours_gives_the_same_values(monkeypatch):
    import energy_assets.transform.reconcile as module

    rng = np.random.default_rng(11)
    x = CONSISTENT + rng.normal(0, 60, (30, len(SERIES)))
    x[::4, 5] = -20.0  # floors bind in some chunks
    w = rng.uniform(0.2, 5.0, x.shape)
    whole = solve(system(), x, w)
    monkeypatch.setattr(module, "CHUNK_HOURS", 7)
    chunked = solve(system(), x, w)
    np.testing.assert_allclose(chunked.value, whole.value, atol=1e-9)
    assert (chunked.moved_by == whole.moved_by).all()


def test_block_elimination_equals_the_full_schur_solve(monkeypatch):
    import energy_assets.transform.reconcile as module

    assert module._block_plan(system()) is not None  # this structure takes the block path
    rng = np.random.default_rng(5)
    x = CONSISTENT + rng.normal(0, 80, (25, len(SERIES)))
    x[2, 4] = np.nan
    w = rng.uniform(0.2, 5.0, x.shape)
    blocked = solve(system(), x, w)
    monkeypatch.setattr(module, "_block_plan", lambda system: None)
    full = solve(system(), x, w)
    np.testing.assert_allclose(blocked.value, full.value, atol=1e-8)


def test_a_day_reconciled_alone_equals_the_same_day_of_a_longer_run():
    """Weights, spike statistics and the spike screen's neighbours all stay within the UTC
    day, so a daily partition's result does not depend on how a range is cut into runs."""
    rng = np.random.default_rng(9)
    x = CONSISTENT + rng.normal(0, 30, (72, len(SERIES)))
    x[30, 4] = 5 * CONSISTENT[4]  # a spike on the second day
    x[47, 5] = -30.0  # a floor at the second day's last hour
    x[24, 8] = np.nan
    observed = rng.uniform(size=x.shape) > 0.1
    frame = long_frame(x, observed)
    whole = reconcile(frame).sort("interval_start_utc", "region", "series")
    day = (pl.col("interval_start_utc") >= T0 + timedelta(days=1)) & (
        pl.col("interval_start_utc") < T0 + timedelta(days=2)
    )
    alone = reconcile(frame.filter(day)).sort("interval_start_utc", "region", "series")
    same_day = whole.filter(day)
    assert alone.height == same_day.height == 24 * len(SERIES)
    assert alone.drop("value", "adjustment_mw").equals(same_day.drop("value", "adjustment_mw"))
    np.testing.assert_allclose(alone["value"].to_numpy(), same_day["value"].to_numpy(), atol=1e-9)
    assert alone["is_spike"].any()
