"""The ground truth the offline stand-ins serve: one interface, several worlds.

A world answers "what would the upstream API hold for these hours?" as polars frames on the
platform's time convention (`interval_start_utc`, UTC, hour-beginning; `end` exclusive). The
stand-in HTTP servers translate these frames into each API's own wire format and time convention,
so the real client code path (and its conversions) runs against them.

Every world is deterministic: the value of an hour never depends on the window that asked for it, so
pages, chunks and partitions agree with each other.
"""

from __future__ import annotations

from datetime import datetime
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
