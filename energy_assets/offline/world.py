"""The ground truth the offline stand-ins serve: one interface, several worlds.

A world answers "what would the upstream API hold for these hours?" as polars frames on the
platform's time convention (`interval_start_utc`, UTC, hour-beginning; `end` exclusive). The
stand-in HTTP servers translate these frames into each API's own wire format and time convention,
so the real client code path (and its conversions) runs against them.

Every world is deterministic: the value of an hour never depends on the window that asked for it, so
pages, chunks and partitions agree with each other.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

import polars as pl

TIME = pl.Datetime("us", "UTC")


class World(Protocol):
    """What every stand-in world provides. Column lists are the contract with the servers."""

    def respondents(self) -> list[str]:
        """Balancing-authority codes this world has data for."""
        ...

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """EIA `region-data` rows with defects included (duplicates allowed, nulls allowed).

        Columns: interval_start_utc (TIME), respondent, respondent_name, type (D, DF, NG, TI),
        type_name, value (Float64, nullable).
        """
        ...

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Columns: interval_start_utc, respondent, respondent_name, fueltype, type_name, value."""
        ...

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Columns: interval_start_utc, fromba, fromba_name, toba, toba_name, value."""
        ...

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        """OASIS SLD_FCST. Columns: interval_start_utc, tac_area_name, market_run_id
        (ACTUAL, DAM, 2DA, 7DA), mw (Float64)."""
        ...

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        """OASIS PRC_LMP DAM. Columns: interval_start_utc, node, lmp_type (LMP, MCE, MCC, MCL),
        mw (Float64, $/MWh)."""
        ...

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        """Open-Meteo hourly archive at the given (latitude, longitude) points. Columns:
        interval_start_utc, latitude, longitude, variable, value (Float64, nullable)."""
        ...


def eia_long(world: World, start: datetime, end: datetime) -> pl.DataFrame:
    """A world's EIA-930 region, fuel-type and interchange data as the long table `raw/eia930`
    stores (the parser's series names: demand, net_generation, total_interchange,
    generation_<fuel>, interchange_to_<BA>), without the HTTP round trip: for measurements on a
    world's data that need no client, such as the quirk table's balance audit."""
    from energy_assets.sources.base import LONG_SCHEMA
    from energy_assets.sources.eia import REGION_TYPE_SERIES, SOURCE

    region = world.eia_region_data(start, end)
    fuel = world.eia_fuel_type_data(start, end)
    flows = world.eia_interchange_data(start, end)
    code = pl.col("type")
    parts = [
        region.select(
            "interval_start_utc",
            region=pl.col("respondent"),
            series=code.replace_strict(
                REGION_TYPE_SERIES, default=pl.lit("type_") + code.str.to_lowercase()
            ),
            value="value",
        ),
        fuel.select(
            "interval_start_utc",
            region=pl.col("respondent"),
            series=pl.lit("generation_") + pl.col("fueltype").str.to_lowercase(),
            value="value",
        ),
        flows.select(
            "interval_start_utc",
            region=pl.col("fromba"),
            series=pl.lit("interchange_to_") + pl.col("toba"),
            value="value",
        ),
    ]
    return (
        pl.concat([p.cast({"value": pl.Float64}) for p in parts])
        .with_columns(units=pl.lit("MW"), source=pl.lit(SOURCE))
        .select(list(LONG_SCHEMA))
        .cast(LONG_SCHEMA)  # type: ignore[arg-type]
    )


class NoDataDays:
    """A world with nothing on some UTC days: every stand-in then answers as upstream does when
    it has no data (EIA `total: 0`, OASIS error 1000, Open-Meteo hours of nulls).

    `SourcesResource(no_data_days=[...])` wraps its world in this to rehearse an outage offline.
    Any other attribute is the wrapped world's.
    """

    def __init__(self, world: World, days) -> None:
        self.world = world
        self.days = sorted({d if isinstance(d, date) else date.fromisoformat(str(d)) for d in days})

    def __getattr__(self, name: str):
        return getattr(self.world, name)

    def _on_days(self) -> pl.Expr:
        return pl.col("interval_start_utc").dt.date().is_in(self.days)

    def _without(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(~self._on_days())

    def respondents(self) -> list[str]:
        return self.world.respondents()

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._without(self.world.eia_region_data(start, end))

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._without(self.world.eia_fuel_type_data(start, end))

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._without(self.world.eia_interchange_data(start, end))

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._without(self.world.caiso_load(start, end))

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._without(self.world.caiso_lmp(start, end))

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        frame = self.world.weather(start, end, points)
        return frame.with_columns(
            pl.when(self._on_days()).then(None).otherwise(pl.col("value")).alias("value")
        )
