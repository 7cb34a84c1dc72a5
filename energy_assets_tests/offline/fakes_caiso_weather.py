"""A tiny deterministic World for the OASIS and Open-Meteo stand-in and client tests.

Values are a pure function of (hour, region, code), so any window, chunk or batch agrees with any
other, and they are already at the wire precision (MW to 2 decimals, prices to 5, weather to 1)
so a round trip through the stand-in is exact. Hours outside [first, last) have no data at all,
which makes OASIS answer ERR_CODE 1000. Weather has a null every NULL_EVERY hours per variable.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

TIME = pl.Datetime("us", "UTC")
TAC_AREAS = ["CA ISO-TAC", "PGE-TAC", "SCE-TAC", "SDGE-TAC", "PACE"]
HUBS = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND"]
NODES = [*HUBS, "AFPR_1_TOT_GEN-APND"]  # one node the client never asks for
RUNS = ["ACTUAL", "DAM", "2DA", "7DA"]
VARIABLES = [
    "temperature_2m",
    "relative_humidity_2m",
    "dew_point_2m",
    "wind_speed_10m",
    "shortwave_radiation",
    "cloud_cover",
]
NULL_EVERY = 23


class CaisoWeatherWorld:
    def __init__(
        self,
        first: datetime = datetime(2019, 1, 1, tzinfo=UTC),
        last: datetime = datetime(2027, 1, 1, tzinfo=UTC),
    ) -> None:
        self.first, self.last = first, last

    def respondents(self) -> list[str]:
        return ["CISO"]

    def _hours(self, start: datetime, end: datetime) -> pl.DataFrame:
        lo, hi = max(start, self.first), min(end, self.last)
        if hi <= lo:
            return pl.DataFrame(schema={"interval_start_utc": TIME, "h": pl.Int64})
        return pl.DataFrame(
            {
                "interval_start_utc": pl.datetime_range(
                    lo, hi, "1h", closed="left", time_unit="us", time_zone="UTC", eager=True
                )
            }
        ).with_columns(h=pl.col("interval_start_utc").dt.epoch("s") // 3600)

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        areas = pl.DataFrame({"tac_area_name": TAC_AREAS, "a": range(len(TAC_AREAS))})
        runs = pl.DataFrame({"market_run_id": RUNS, "m": range(len(RUNS))})
        grid = self._hours(start, end).join(areas, how="cross").join(runs, how="cross")
        raw = (pl.col("h") * 7919 + pl.col("a") * 104729 + pl.col("m") * 1299709) % 2_000_000
        return grid.select(
            "interval_start_utc",
            "tac_area_name",
            "market_run_id",
            ((raw + 100_000).cast(pl.Float64) / 100).round(2).alias("mw"),
        )

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        nodes = pl.DataFrame({"node": NODES, "n": range(len(NODES))})
        grid = self._hours(start, end).join(nodes, how="cross")
        energy = ((pl.col("h") * 7919) % 6_000_000 + 1_000_000).cast(pl.Float64) / 100_000
        congestion = ((pl.col("h") * 31 + pl.col("n") * 997) % 400_000 - 200_000).cast(
            pl.Float64
        ) / 100_000
        loss = ((pl.col("h") * 13 + pl.col("n") * 101) % 100_000 - 50_000).cast(
            pl.Float64
        ) / 100_000
        # round(): a polars quotient can sit one ulp off the decimal OASIS would print
        parts = grid.with_columns(
            energy.round(5).alias("MCE"),
            congestion.round(5).alias("MCC"),
            loss.round(5).alias("MCL"),
        ).with_columns((pl.col("MCE") + pl.col("MCC") + pl.col("MCL")).round(5).alias("LMP"))
        return parts.unpivot(
            on=["LMP", "MCE", "MCC", "MCL"],
            index=["interval_start_utc", "node"],
            variable_name="lmp_type",
            value_name="mw",
        )

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        where = pl.DataFrame(
            {
                "latitude": [float(p[0]) for p in points],
                "longitude": [float(p[1]) for p in points],
            }
        ).with_columns(
            p=((pl.col("latitude") * 1000).round() * 7 + (pl.col("longitude") * 1000).round())
            .cast(pl.Int64)
            .abs()
        )
        variables = pl.DataFrame({"variable": VARIABLES, "v": range(len(VARIABLES))})
        grid = self._hours(start, end).join(where, how="cross").join(variables, how="cross")
        raw = (pl.col("h") * 37 + pl.col("p") * 11 + pl.col("v") * 271) % 1000
        return grid.select(
            "interval_start_utc",
            "latitude",
            "longitude",
            "variable",
            pl.when((pl.col("h") + pl.col("v")) % NULL_EVERY == 0)
            .then(None)
            .otherwise((raw.cast(pl.Float64) / 10).round(1))
            .alias("value"),
        )
