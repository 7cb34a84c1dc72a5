"""A tiny deterministic World for stand-in and client tests that must not depend on the generator.

Values are a pure function of (hour, region, code), so any window, page or chunk agrees with any
other. Thirds (x / 3) make the values non-terminating decimals, so a round trip through the wire
format is only exact if the stand-in writes and the client reads shortest round-trip floats.
Known defects are included on fixed hours: nulls, a duplicated key with a different value,
negative interchange.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

TIME = pl.Datetime("us", "UTC")
REGION_TYPES = {
    "D": "Demand",
    "DF": "Day-ahead demand forecast",
    "NG": "Net generation",
    "TI": "Total interchange",
}
FUEL_TYPES = {"COL": "Coal", "NG": "Natural gas", "SUN": "Solar", "WND": "Wind", "BAT": "Battery"}
NULL_EVERY = 29  # hours: NG of some respondent is null
DUPLICATE_EVERY = 31  # hours: the first respondent's D appears twice, the copy 1 MW higher


class TinyWorld:
    def __init__(
        self,
        respondents: tuple[str, ...] = ("AEC", "BPAT", "CISO"),
        fuel_types: tuple[str, ...] = tuple(FUEL_TYPES),
        external: str = "MISO",
    ) -> None:
        self._respondents = list(respondents)
        self.fuel_types = list(fuel_types)
        self.external = external

    def respondents(self) -> list[str]:
        return list(self._respondents)

    def _grid(self, start: datetime, end: datetime, codes: pl.DataFrame) -> pl.DataFrame:
        hours = pl.DataFrame(
            {
                "interval_start_utc": pl.datetime_range(
                    start, end, "1h", closed="left", time_unit="us", time_zone="UTC", eager=True
                )
            }
        ).with_columns(h=pl.col("interval_start_utc").dt.epoch("s") // 3600)
        regions = pl.DataFrame(
            {"respondent": self._respondents, "r": range(len(self._respondents))}
        ).with_columns(respondent_name=pl.col("respondent") + " Test Authority")
        return hours.join(regions, how="cross").join(codes, how="cross")

    @staticmethod
    def _value(offset: int = 0) -> pl.Expr:
        raw = (pl.col("h") * 37 + pl.col("r") * 1009 + pl.col("c") * 271) % 3000
        return (raw + offset).cast(pl.Float64()) / 3

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        codes = pl.DataFrame(
            {"type": list(REGION_TYPES), "type_name": list(REGION_TYPES.values()), "c": range(4)}
        )
        grid = self._grid(start, end, codes)
        value = (
            pl.when((pl.col("type") == "NG") & ((pl.col("h") + pl.col("r")) % NULL_EVERY == 0))
            .then(None)
            .when(pl.col("type") == "TI")
            .then(self._value(-1500))
            .otherwise(self._value(1000))
        )
        frame = grid.with_columns(value=value)
        duplicate = frame.filter(
            (pl.col("h") % DUPLICATE_EVERY == 0) & (pl.col("r") == 0) & (pl.col("type") == "D")
        ).with_columns(value=pl.col("value") + 1)
        return pl.concat([frame, duplicate]).select(
            "interval_start_utc", "respondent", "respondent_name", "type", "type_name", "value"
        )

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        codes = pl.DataFrame(
            {
                "fueltype": self.fuel_types,
                "type_name": [FUEL_TYPES.get(f, f) for f in self.fuel_types],
                "c": range(len(self.fuel_types)),
            }
        )
        # Coal can be slightly negative (station service), as in the recorded AEC value "-3".
        value = pl.when(pl.col("fueltype") == "COL").then(self._value(-10)).otherwise(self._value())
        return (
            self._grid(start, end, codes)
            .with_columns(value=value)
            .select(
                "interval_start_utc",
                "respondent",
                "respondent_name",
                "fueltype",
                "type_name",
                "value",
            )
        )

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        n = len(self._respondents)
        pairs = pl.DataFrame(
            {
                "respondent": self._respondents * 2,
                "toba": [self._respondents[(i + 1) % n] for i in range(n)] + [self.external] * n,
                "c": range(2 * n),
            }
        )
        grid = self._grid(start, end, pl.DataFrame({"k": [0]}))
        return (
            grid.join(pairs, on="respondent")
            .with_columns(
                value=self._value(-1500),
                toba_name=pl.col("toba") + " Test Authority",
            )
            .select(
                "interval_start_utc",
                fromba="respondent",
                fromba_name="respondent_name",
                toba="toba",
                toba_name="toba_name",
                value="value",
            )
        )

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        raise NotImplementedError("TinyWorld serves EIA only")

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        raise NotImplementedError("TinyWorld serves EIA only")

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        raise NotImplementedError("TinyWorld serves EIA only")
