"""Offline stand-in for the Open-Meteo historical archive (`/v1/archive`), backed by a World.

What belongs here: the archive's wire format only, as recorded in `shared/realdata/api` and
described in `docs/api_formats.md` section 4:

- Compact JSON, keys in the real order: latitude, longitude, generationtime_ms,
  utc_offset_seconds, timezone, timezone_abbreviation, elevation, hourly_units, hourly.
- One object for one location; a JSON list, in request order, for comma-separated coordinates.
- `hourly.time` as `YYYY-MM-DDTHH:MM` without offset, local to `timezone` (GMT by default). A
  named zone gets its offset *at request time* applied to the whole series, as the real API does
  (no DST switch, open-meteo/open-meteo#1255).
- Coordinates snapped to a 0.1 degree grid with float32-style noise (-15.8 -> -15.799995), so a
  client can never match locations by coordinate equality.
- Units with the real symbols (°C, %, km/h, W/m²); missing values as null.
- Errors: HTTP 400 `{"error":true,"reason":...}`. The unknown-variable reason is the real text;
  the other reasons follow its style. Rate limits are injected with FaultPlan (429).

Values come from `World.weather` at the requested (not the snapped) coordinates, so tests can
compare a round trip with the world directly.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from energy_assets.offline.server import Handler, StandInRequest, StandInResponse
from energy_assets.offline.world import World

PATH = "/v1/archive"
JSON_TYPE = "application/json; charset=utf-8"

HOURLY_UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "dew_point_2m": "°C",
    "apparent_temperature": "°C",
    "precipitation": "mm",
    "rain": "mm",
    "snowfall": "cm",
    "pressure_msl": "hPa",
    "surface_pressure": "hPa",
    "cloud_cover": "%",
    "wind_speed_10m": "km/h",
    "wind_speed_100m": "km/h",
    "wind_direction_10m": "°",
    "wind_gusts_10m": "km/h",
    "shortwave_radiation": "W/m²",
    "direct_radiation": "W/m²",
    "diffuse_radiation": "W/m²",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GRID_DEG = 0.1


def _error(reason: str, status: int = 400) -> StandInResponse:
    body = json.dumps({"error": True, "reason": reason}, separators=(",", ":")).encode()
    return StandInResponse(status, body, {"Content-Type": JSON_TYPE})


def snap(value: float) -> float:
    """The grid-cell coordinate the archive reports for a requested one."""
    cell = math.floor(value / GRID_DEG + 0.5) * GRID_DEG
    # The real service computes cells in float32 and prints the error, e.g. -15.799995.
    return round(cell - math.copysign(5e-6, cell), 6) if cell else 0.0


def elevation(lat: float, lon: float) -> float:
    return float(round(abs(lat * 37.0 + lon * 11.0) % 1500.0))


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]


class ArchiveStandIn:
    """The `/v1/archive` handler over one World."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, request: StandInRequest) -> StandInResponse:
        started = time.perf_counter()
        if request.path.rstrip("/") != PATH:
            return _error("Not Found", 404)
        try:
            lats = [float(x) for x in _split(request.query.get("latitude", []))]
            lons = [float(x) for x in _split(request.query.get("longitude", []))]
        except ValueError as exc:
            return _error(f"Cannot initialize Float from invalid String value ({exc})")
        if not lats or len(lats) != len(lons):
            return _error(
                "Parameter 'latitude' and 'longitude' must have the same number of elements"
            )
        for lat, lon in zip(lats, lons, strict=True):
            if not -90 <= lat <= 90:
                return _error(f"Latitude must be in range of -90 to 90°. Given: {lat}.")
            if not -180 <= lon <= 180:
                return _error(f"Longitude must be in range of -180 to 180°. Given: {lon}.")
        first_text, last_text = request.one("start_date"), request.one("end_date")
        if not first_text or not last_text:
            return _error("Parameter 'start_date' and 'end_date' must be set")
        if not (_DATE.match(first_text) and _DATE.match(last_text)):
            return _error(
                f"Invalid date format. Expected yyyy-MM-dd, got {first_text} / {last_text}"
            )
        first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
        if last < first:
            return _error("End-date must be larger or equals than start-date")
        variables = _split(request.query.get("hourly", []))
        for name in variables:
            if name not in HOURLY_UNITS:
                return _error(
                    "Cannot initialize WeatherVariable from invalid String value "
                    f"{name} for key hourly"
                )
        zone_name = request.one("timezone", "GMT") or "GMT"
        if zone_name.upper() in ("GMT", "UTC"):
            zone_name, offset_s, abbreviation = "GMT", 0, "GMT"
        else:
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                return _error(f"Invalid timezone '{zone_name}'")
            now = datetime.now(zone)  # the offset in force today, as the real API uses
            offset_s = int(now.utcoffset().total_seconds())  # type: ignore[union-attr]
            abbreviation = now.tzname() or zone_name
        local_start = datetime(first.year, first.month, first.day)
        local_end = datetime(last.year, last.month, last.day) + timedelta(days=1)
        utc_start = (local_start - timedelta(seconds=offset_s)).replace(tzinfo=UTC)
        utc_end = (local_end - timedelta(seconds=offset_s)).replace(tzinfo=UTC)
        hours = pl.datetime_range(
            utc_start, utc_end, "1h", closed="left", time_unit="us", time_zone="UTC", eager=True
        )
        times = (
            (hours.dt.replace_time_zone(None) + timedelta(seconds=offset_s))
            .dt.strftime("%Y-%m-%dT%H:%M")
            .to_list()
        )
        points = list(zip(lats, lons, strict=True))
        values = self._values(utc_start, utc_end, points, variables, hours)
        locations = []
        generation_ms = (time.perf_counter() - started) * 1000
        for i, (lat, lon) in enumerate(points):
            hourly: dict[str, list] = {"time": times}
            for name in variables:
                hourly[name] = values[(i, name)]
            locations.append(
                {
                    "latitude": snap(lat),
                    "longitude": snap(lon),
                    "generationtime_ms": generation_ms,
                    "utc_offset_seconds": offset_s,
                    "timezone": zone_name,
                    "timezone_abbreviation": abbreviation,
                    "elevation": elevation(lat, lon),
                    "hourly_units": {"time": "iso8601", **{v: HOURLY_UNITS[v] for v in variables}},
                    "hourly": hourly,
                }
            )
        payload: object = locations if len(locations) > 1 else locations[0]
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return StandInResponse(200, body, {"Content-Type": JSON_TYPE})

    def _values(
        self,
        start: datetime,
        end: datetime,
        points: list[tuple[float, float]],
        variables: list[str],
        hours: pl.Series,
    ) -> dict[tuple[int, str], list[float | None]]:
        """Per (location index, variable): the values on `hours`, null where the world has none."""
        key = ["interval_start_utc", "latitude", "longitude"]
        truth = self.world.weather(start, end, list(dict.fromkeys(points)))
        wide = truth.filter(pl.col("variable").is_in(variables)).pivot(
            on="variable", index=key, values="value"
        )
        located = pl.DataFrame(
            {
                "i": range(len(points)),
                "latitude": [float(p[0]) for p in points],
                "longitude": [float(p[1]) for p in points],
            }
        )
        full = (
            pl.DataFrame({"interval_start_utc": hours})
            .join(located, how="cross")
            .join(wide, on=key, how="left")
            .sort("i", "interval_start_utc")
        )
        by_location = full.partition_by("i", as_dict=True)
        out: dict[tuple[int, str], list[float | None]] = {}
        for i in range(len(points)):
            part = by_location[(i,)]
            for name in variables:
                out[(i, name)] = (
                    part[name].cast(pl.Float64).to_list()
                    if name in part.columns
                    else [None] * part.height
                )
        return out


def openmeteo_handlers(world: World) -> dict[str, Handler]:
    """Handlers for a StandInServer: the archive under `/v1/archive`."""
    return {PATH: ArchiveStandIn(world)}
