"""grid: long table <-> hours x series matrices, and the key encoding both paths share."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from energy_assets.transform import grid
from energy_assets.transform.grid import key_columns, matrix_to_long, to_matrix
from energy_assets_tests.transform.synth import START, hours


def _table(keys: list[tuple[str, str]], n_hours: int = 5, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = [
        pl.DataFrame(
            {
                "interval_start_utc": hours(START, n_hours),
                "region": region,
                "series": series,
                "value": rng.normal(size=n_hours),
                "units": "MW",
                "source": f"src_{region}",
            }
        )
        for region, series in keys
    ]
    return pl.concat(frames)


def _general(long: pl.DataFrame, key_cols, key_attrs=()):
    """key_columns with the grouped fast path switched off."""
    original = grid._grouped_keys
    grid._grouped_keys = lambda *a: None
    try:
        return key_columns(long, key_cols, key_attrs)
    finally:
        grid._grouped_keys = original


KEYS = [("AAA", "demand"), ("AAA", "net_generation"), ("BBB", "demand"), ("CCC", "a")]


@pytest.mark.parametrize(
    "order",
    ["grouped", "shuffled", "time_major", "key_returns", "descending"],
)
def test_key_columns_fast_path_equals_the_general_encoding(order: str) -> None:
    long = _table(KEYS)
    if order == "shuffled":
        long = long.sample(fraction=1.0, shuffle=True, seed=3)
    elif order == "time_major":
        long = long.sort("interval_start_utc", "region", "series")
    elif order == "key_returns":  # AAA/demand again after BBB: not grouped
        long = pl.concat([long, long.head(2).with_columns(pl.col("value") + 1)]).slice(2)
    elif order == "descending":
        long = long.reverse()
    fast = grid._grouped_keys(long, ("region", "series"), ("units", "source"))
    assert (fast is not None) == (order == "grouped")
    keys, col = key_columns(long, ("region", "series"), ("units", "source"))
    want_keys, want_col = _general(long, ("region", "series"), ("units", "source"))
    assert keys.equals(want_keys)
    assert np.array_equal(col, want_col)
    assert keys.select("region", "series").rows() == sorted(KEYS)
    names = keys.select("region", "series").rows()
    got = [names[c] for c in col]
    assert got == list(zip(long["region"], long["series"], strict=True))


def test_key_attrs_take_the_smallest_non_null_value_when_they_vary_within_a_key() -> None:
    long = _table(KEYS).with_columns(
        pl.when(pl.col("interval_start_utc") == START)
        .then(pl.lit(None, pl.Utf8))
        .otherwise(pl.col("source"))
        .alias("source"),
        pl.when((pl.col("region") == "BBB") & (pl.col("interval_start_utc") > START))
        .then(pl.lit("GW"))
        .otherwise(pl.col("units"))
        .alias("units"),
    )
    keys, _ = key_columns(long, ("region", "series"), ("units", "source"))
    assert keys.equals(_general(long, ("region", "series"), ("units", "source"))[0])
    assert keys.filter(pl.col("region") == "BBB")["units"].to_list() == ["GW"]
    assert keys["source"].to_list() == ["src_AAA", "src_AAA", "src_BBB", "src_CCC"]


def test_to_matrix_round_trips_through_matrix_to_long() -> None:
    long = _table(KEYS, n_hours=30).sample(fraction=0.8, seed=1).sort("region", "series")
    keys, t0, n, mats = to_matrix(
        long, ["value"], span=(START - timedelta(hours=2), START + timedelta(hours=40))
    )
    assert n == 42 and mats["value"].shape == (42, 4)
    back = matrix_to_long(keys, t0, mats).drop_nulls("value")
    want = long.select(back.columns).sort("region", "series", "interval_start_utc")
    assert back.equals(want)


def test_to_matrix_refuses_duplicated_rows_whatever_the_order() -> None:
    long = _table(KEYS)
    for table in (pl.concat([long, long.head(1)]), pl.concat([long.head(1), long])):
        with pytest.raises(ValueError, match="duplicated"):
            to_matrix(table, ["value"])
