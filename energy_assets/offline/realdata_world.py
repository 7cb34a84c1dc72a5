"""Worlds backed by real published data files, read at run time from a folder the user names.

What belongs here: `World` implementations that serve real EIA-930 numbers through the offline
stand-ins, so the real client, parser and cleaning code paths run on real quirks. The files are
never packaged: callers pass the folder (tests use `../shared/realdata`).

- `RugglesWorld(folder)`: the Ruggles et al. (2020) release, one `<BA>.csv` per balancing
  authority (`date_time, raw demand (MW), category, cleaned demand (MW), forecast demand (MW)`),
  served as EIA `region-data` types D (raw demand) and DF (forecast demand).

  `date_time` is UTC and marks the END of the hour, so interval_start_utc = date_time - 1 h.
  Evidence: (1) The shared notes `docs/eia930_cleaning.md` do not state the release's convention
  in so many words, but they record that EIA-930 API periods are "UTC hour-ending" (sect. 3,
  gridemissions), describe the release as the raw EIA demand pull with the API's "EMPTY" vs
  "MISSING" tokens (sects. 3 and 6), and advise keeping such data "in UTC hour-ending" (sect. 7).
  (2) The release's own query code (truggles/EIA_Cleaned_Hourly_Electricity_Demand_Code,
  `get_eia_demand_data.ipynb` and `distribute_MICE_results.ipynb`) writes `date_time` as the API
  period `YYYYMMDDTHHZ` parsed without any shift, beside a comment quoting the EIA-930
  instructions ("hourly integrated values ... by hour ending time") and the example
  "20150702T00Z, which is the EIA integrated value between July 1, 23:00 and July 2 00:00".
  (3) The release README dates the first EIA entries at 2015-07-01 05:00 UTC: the hour ENDING at
  01:00 EDT on 1 July 2015, the first reporting day (hour-beginning stamps would start at 04:00).

  Tokens: `MISSING` (the API skipped the hour) becomes an absent row; `EMPTY` (the API answered
  null) becomes a row with a null value. That is exactly what the API returned to Ruggles et al.

- `GridEmissionsWorld(folder)`: the gridemissions `E_raw_*.csv` scrape of EIA API v2 (wide, one
  column per series: `E_<BA>_D`, `_NG`, `_TI`, `E_<BA>_<FUEL>`, `E_<A>-<B>_ID`; `period` is UTC
  hour-ending `YYYY-MM-DDTHH`), served as region data (D, NG, TI and DF when present), fuel-type
  data and interchange data. gridemissions renamed the natural-gas fuel `NG` to `GAS` (to keep it
  apart from net generation); it is served under EIA's own code `NG` again. Empty cells are absent
  rows (a wide table cannot tell a skipped row from a null value).

Methods for data a world does not have return empty frames with the right schema; CAISO and
weather delegate to `fallback` (by default a clean `SyntheticWorld`).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from energy_assets.offline.generator import (
    FUEL_NAMES,
    REGION_TYPES,
    GeneratorConfig,
    SyntheticWorld,
    frame_schema,
)
from energy_assets.offline.world import TIME, World
from energy_assets.sources.balancing_authorities import load_balancing_authorities

__all__ = ["GridEmissionsWorld", "RugglesWorld"]

RUGGLES_COLUMNS = (
    "date_time",
    "raw demand (MW)",
    "category",
    "cleaned demand (MW)",
    "forecast demand (MW)",
)
_MISSING, _EMPTY = "MISSING", "EMPTY"


def _names() -> dict[str, str]:
    table = load_balancing_authorities()
    return dict(zip(table["code"], table["name"], strict=True))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(
        pl.col("interval_start_utc").is_between(_utc(start), _utc(end), closed="left")
    )


def _parse_numbers(frame: pl.DataFrame, column: str, origin: str) -> pl.Series:
    """Numeric text to Float64, failing with the file, column and offending values."""
    text = frame[column]
    numbers = text.cast(pl.Float64, strict=False)
    bad = text.filter(numbers.is_null() & text.is_not_null() & ~text.is_in([_MISSING, _EMPTY]))
    if bad.len():
        raise ValueError(
            f"{origin}: column {column!r} has values that are neither numbers nor "
            f"MISSING/EMPTY: {bad.unique().head(5).to_list()}"
        )
    return pl.Series(column, numbers)


class _DelegatingWorld:
    """CAISO and weather from a fallback world; EIA routes empty unless a subclass serves them."""

    def __init__(self, fallback: World | None) -> None:
        self.fallback: World = fallback or SyntheticWorld(GeneratorConfig.clean())
        self._lock = threading.Lock()
        self._names = _names()

    def _name(self, codes: pl.Expr) -> pl.Expr:
        return codes.replace_strict(self._names, default=codes, return_dtype=pl.String)

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return pl.DataFrame(schema=frame_schema("region"))

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return pl.DataFrame(schema=frame_schema("fuel"))

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return pl.DataFrame(schema=frame_schema("interchange"))

    def eia_recorded(self) -> pl.DataFrame:
        """The (region, series, day) groups of region-data this recording holds a value for.

        A real data set is a recording of part of EIA-930 (the Ruggles release has demand and
        its forecast only), with upstream's gaps of the time, so a complete day of the stand-in
        that replays it holds these groups, not every series EIA publishes every day
        (contracts: the `complete_day` check)."""
        from energy_assets.sources.eia import REGION_TYPE_SERIES

        region = self._region_frame()
        return (
            region.filter(pl.col("value").is_not_null())
            .select(
                pl.col("respondent").alias("region"),
                pl.col("type").replace_strict(REGION_TYPE_SERIES, default=None).alias("series"),
                pl.col("interval_start_utc").dt.date().alias("day"),
            )
            .drop_nulls()
            .unique()
            .sort("day", "region", "series")
        )

    def _region_frame(self) -> pl.DataFrame:
        return pl.DataFrame(schema=frame_schema("region"))

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self.fallback.caiso_load(start, end)

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self.fallback.caiso_lmp(start, end)

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        return self.fallback.weather(start, end, points)


class RugglesWorld(_DelegatingWorld):
    """EIA region-data D and DF from the Ruggles et al. release (see the module docstring)."""

    def __init__(self, folder: str | Path, fallback: World | None = None) -> None:
        super().__init__(fallback)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"Ruggles data folder {self.folder} does not exist; pass the folder holding "
                "<BA>.csv files of the 2019 release (e.g. ../shared/realdata/ruggles_2019_release)"
            )
        self._files = {
            path.stem: path
            for path in sorted(self.folder.glob("*.csv"))
            if _header(path)[: len(RUGGLES_COLUMNS)] == list(RUGGLES_COLUMNS)
        }
        if not self._files:
            raise ValueError(
                f"{self.folder} holds no Ruggles <BA>.csv file (header {list(RUGGLES_COLUMNS)})"
            )
        self._region: pl.DataFrame | None = None
        self._labels: pl.DataFrame | None = None

    def respondents(self) -> list[str]:
        return sorted(self._files)

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """D and DF rows; MISSING hours absent, EMPTY hours null."""
        return _window(self._load()[0], start, end)

    def _region_frame(self) -> pl.DataFrame:
        return self._load()[0]

    def ruggles_labels(self) -> pl.DataFrame:
        """The release's own annotations per hour: interval_start_utc, respondent, raw_token
        (MISSING, EMPTY or null when numeric), category (Ruggles' screening label),
        cleaned_demand (their MICE-imputed value). Ground truth for screening and imputation."""
        return self._load()[1]

    def _load(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        with self._lock:
            if self._region is None or self._labels is None:
                parts = [self._read(code, path) for code, path in self._files.items()]
                region = pl.concat([p[0] for p in parts]).sort(
                    "interval_start_utc", "respondent", "type"
                )
                self._region = region.select(list(frame_schema("region")))
                self._labels = pl.concat([p[1] for p in parts]).sort(
                    "interval_start_utc", "respondent"
                )
            return self._region, self._labels

    def _read(self, code: str, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
        raw = pl.read_csv(path, infer_schema=False)
        start = raw["date_time"].str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False)
        if start.null_count():
            bad = raw["date_time"].filter(start.is_null()).head(3).to_list()
            raise ValueError(f"{path}: column 'date_time' has unparsable values {bad}")
        # Hour-ending UTC stamps -> interval start (see the module docstring for the evidence).
        start = (start.dt.cast_time_unit("us") - pl.duration(hours=1)).cast(TIME)
        frame = raw.with_columns(interval_start_utc=start)
        longs = []
        for type_code, column in (("D", "raw demand (MW)"), ("DF", "forecast demand (MW)")):
            values = _parse_numbers(frame, column, str(path))
            longs.append(
                frame.select(
                    "interval_start_utc",
                    respondent=pl.lit(code),
                    respondent_name=pl.lit(self._names.get(code, code)),
                    type=pl.lit(type_code),
                    type_name=pl.lit(REGION_TYPES[type_code]),
                    value=values,
                    token=pl.col(column),
                )
                .filter(pl.col("token") != _MISSING)
                .drop("token")
            )
        labels = frame.select(
            "interval_start_utc",
            respondent=pl.lit(code),
            raw_token=pl.when(pl.col("raw demand (MW)").is_in([_MISSING, _EMPTY])).then(
                pl.col("raw demand (MW)")
            ),
            category=pl.col("category"),
            cleaned_demand=_parse_numbers(frame, "cleaned demand (MW)", str(path)),
        )
        return pl.concat(longs), labels


_REGION_COLUMN = re.compile(r"^E_([A-Z0-9]+)_(D|DF|NG|TI)$")
_INTERCHANGE_COLUMN = re.compile(r"^E_([A-Z0-9]+)-([A-Z0-9]+)_ID$")
_FUEL_COLUMN = re.compile(r"^E_([A-Z0-9]+)_([A-Z0-9]+)$")
_GRIDEMISSIONS_FUELS = {"GAS": "NG"}  # gridemissions' rename, undone to EIA's code


class GridEmissionsWorld(_DelegatingWorld):
    """Region, fuel-type and interchange data from gridemissions `E_raw_*.csv` files."""

    def __init__(
        self, folder: str | Path, fallback: World | None = None, pattern: str = "E_raw_*.csv"
    ) -> None:
        super().__init__(fallback)
        self.folder = Path(folder)
        self._paths = sorted(self.folder.glob(pattern)) if self.folder.is_dir() else []
        if not self._paths:
            raise FileNotFoundError(
                f"no {pattern} file in {self.folder}; pass the folder holding the gridemissions "
                "raw scrape (e.g. ../shared/realdata/gridemissions)"
            )
        self._frames: dict[str, pl.DataFrame] | None = None

    def respondents(self) -> list[str]:
        frames = self._load()
        return sorted(set(frames["region"]["respondent"]) | set(frames["fuel"]["respondent"]))

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return _window(self._load()["region"], start, end)

    def _region_frame(self) -> pl.DataFrame:
        return self._load()["region"]

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return _window(self._load()["fuel"], start, end)

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return _window(self._load()["interchange"], start, end)

    def series_long(self) -> pl.DataFrame:
        """Every cell as a pipeline long row (interval_start_utc, region, series, value) with
        the parser's series names: demand, net_generation, total_interchange, demand_forecast_da,
        generation_<fuel> (EIA's code, lower case), interchange_to_<BA> (region = from BA).
        With `pattern="E_rolling_*.csv"` or `"E_weights_*.csv"` it reads gridemissions' cleaned
        values or their weights in the same shape (the reconciliation benchmark and tests)."""
        from energy_assets.sources.eia import REGION_TYPE_SERIES

        frames = self._load()
        key = ["interval_start_utc", "region", "series", "value"]
        return pl.concat(
            [
                frames["region"].select(
                    "interval_start_utc",
                    region=pl.col("respondent"),
                    series=pl.col("type").replace_strict(REGION_TYPE_SERIES),
                    value=pl.col("value"),
                ),
                frames["fuel"].select(
                    "interval_start_utc",
                    region=pl.col("respondent"),
                    series=pl.lit("generation_") + pl.col("fueltype").str.to_lowercase(),
                    value=pl.col("value"),
                ),
                frames["interchange"].select(
                    "interval_start_utc",
                    region=pl.col("fromba"),
                    series=pl.lit("interchange_to_") + pl.col("toba"),
                    value=pl.col("value"),
                ),
            ]
        ).select(key)

    def _load(self) -> dict[str, pl.DataFrame]:
        with self._lock:
            if self._frames is None:
                self._frames = self._read()
            return self._frames

    def _read(self) -> dict[str, pl.DataFrame]:
        wide = pl.concat(
            [pl.read_csv(p, infer_schema_length=None) for p in self._paths], how="diagonal"
        )
        period = wide["period"].cast(pl.String)
        # E_raw: "2023-06-10T00"; the cleaned stages and weights: "2023-06-10 00:00:00", the
        # same hour (gridemissions writes its parsed index back; rows align one to one)
        end = pl.select(
            pl.coalesce(
                (period + ":00").str.to_datetime("%Y-%m-%dT%H:%M", time_zone="UTC", strict=False),
                period.str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False),
            )
        ).to_series()
        if end.null_count():
            bad = period.filter(end.is_null()).head(3).to_list()
            raise ValueError(f"{self._paths}: column 'period' has unparsable values {bad}")
        start = (end.dt.cast_time_unit("us") - pl.duration(hours=1)).cast(TIME)
        long = (
            wide.drop("period")
            .select(pl.all().cast(pl.Float64))
            .with_columns(interval_start_utc=start)
            .unique(subset="interval_start_utc", keep="last", maintain_order=True)
            .unpivot(index="interval_start_utc", variable_name="column", value_name="value")
            .drop_nulls("value")
        )
        columns = long["column"].unique().to_list()
        kinds: dict[str, tuple[str, str, str]] = {}
        for name in columns:
            if m := _INTERCHANGE_COLUMN.match(name):
                kinds[name] = ("interchange", m[1], m[2])
            elif m := _REGION_COLUMN.match(name):
                kinds[name] = ("region", m[1], m[2])
            elif m := _FUEL_COLUMN.match(name):
                kinds[name] = ("fuel", m[1], _GRIDEMISSIONS_FUELS.get(m[2], m[2]))
            else:
                raise ValueError(
                    f"{self._paths}: column {name!r} is not E_<BA>_<SERIES> or E_<A>-<B>_ID"
                )
        lookup = pl.DataFrame(
            {
                "column": list(kinds),
                "kind": [k[0] for k in kinds.values()],
                "entity": [k[1] for k in kinds.values()],
                "code": [k[2] for k in kinds.values()],
            }
        )
        long = long.join(lookup, on="column")

        region = long.filter(pl.col("kind") == "region").select(
            "interval_start_utc",
            respondent=pl.col("entity"),
            respondent_name=self._name(pl.col("entity")),
            type=pl.col("code"),
            type_name=pl.col("code").replace_strict(REGION_TYPES, return_dtype=pl.String),
            value=pl.col("value"),
        )
        fuel = long.filter(pl.col("kind") == "fuel").select(
            "interval_start_utc",
            respondent=pl.col("entity"),
            respondent_name=self._name(pl.col("entity")),
            fueltype=pl.col("code"),
            type_name=pl.col("code").replace_strict(
                FUEL_NAMES, default=pl.col("code"), return_dtype=pl.String
            ),
            value=pl.col("value"),
        )
        interchange = long.filter(pl.col("kind") == "interchange").select(
            "interval_start_utc",
            fromba=pl.col("entity"),
            fromba_name=self._name(pl.col("entity")),
            toba=pl.col("code"),
            toba_name=self._name(pl.col("code")),
            value=pl.col("value"),
        )
        return {
            "region": region.sort("interval_start_utc", "respondent", "type"),
            "fuel": fuel.sort("interval_start_utc", "respondent", "fueltype"),
            "interchange": interchange.sort("interval_start_utc", "fromba", "toba"),
        }


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig") as handle:
        return [c.strip() for c in handle.readline().rstrip("\r\n").split(",")]
