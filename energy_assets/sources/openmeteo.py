"""Open-Meteo historical archive: the hourly weather client and its JSON parser.

What belongs here: batching balancing-authority points into weighted archive calls, pacing them
under Open-Meteo's weighted-call budget, and turning the JSON (one object, or a list of objects
for several locations) into the platform's long table. No Dagster here; the raw assets call
`OpenMeteoClient.fetch(points, start, end)` and `parse_openmeteo_responses(responses, points)`.

Time: the client always asks `timezone=GMT`, so `hourly.time` (`YYYY-MM-DDTHH:MM`, no offset) is
UTC; Open-Meteo's hourly values are instantaneous at that time and are stamped as the interval
start. Responses in another zone (stored files, other tools) are converted with
`utc_offset_seconds`: the API applies that one offset to the whole series with no DST switch
(maintainer, open-meteo/open-meteo#1255), so subtracting it is the exact inverse.

Late data: ERA5 arrives about 5 days late and the default best-match blend changes when it does.
The client keeps no cache, so asking again re-fetches; the asset layer re-materialises the
trailing window (the weather source's `revision_days` in `sources/registry.py`).

Budget: a call weighs max(1, nVars/10, (days/14) * (nVars/10)) * nLocations (api_formats.md
section 4). Calls are cut so none weighs more than `max_weight_per_call`, and paced so the
weights of the last 60 s and 3600 s stay within `max_weight_per_minute` and
`max_weight_per_hour`. The daily (10,000) and monthly limits are not paced here: size backfills
to them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import requests
from pydantic import BaseModel, ConfigDict, Field, model_validator

from energy_assets.sources.base import (
    LONG_SCHEMA,
    UNIT_LIMITS,
    MalformedResponse,
    RawResponse,
    RefusedValue,
    RequestRefused,
    RetryableSourceError,
    SourceError,
    empty_long,
    load_json,
)
from energy_assets.sources.http import HttpFetcher, RetryPolicy

SOURCE = "open_meteo"
DATASET = "archive_hourly"
DEFAULT_VARIABLES = [
    "temperature_2m",
    "relative_humidity_2m",
    "dew_point_2m",
    "wind_speed_10m",
    "shortwave_radiation",
    "cloud_cover",
]
GMT_NAMES = frozenset({"GMT", "UTC"})


class OpenMeteoConfig(BaseModel):
    """Everything the archive client needs; defaults stay well inside the free tier."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://archive-api.open-meteo.com/v1"
    variables: list[str] = Field(default_factory=lambda: list(DEFAULT_VARIABLES), min_length=1)
    models: list[str] | None = Field(
        default=None, description="e.g. ['era5'] for a series that does not change later."
    )
    locations_per_call: int = Field(default=10, ge=1)
    max_weight_per_call: float = Field(default=50.0, gt=0)
    max_weight_per_minute: float = Field(
        default=400.0, gt=0, description="The free tier allows fewer than 600 weighted calls/min."
    )
    max_weight_per_hour: float = Field(
        default=4000.0, gt=0, description="The free tier allows 5,000 weighted calls/hour."
    )
    max_attempts: int = Field(default=5, ge=1)
    base_delay_s: float = Field(default=2.0, ge=0.0)
    max_delay_s: float = Field(default=90.0, ge=0.0)
    timeout_s: float = Field(default=60.0, gt=0.0)
    retry_seed: int | None = None

    @model_validator(mode="after")
    def _budget_fits(self) -> OpenMeteoConfig:
        smallest = call_weight(len(self.variables), 1, 1)
        if self.max_weight_per_call < smallest:
            raise ValueError(
                f"max_weight_per_call={self.max_weight_per_call} is below the weight of one "
                f"location-day with {len(self.variables)} variables ({smallest}); raise it"
            )
        for name in ("max_weight_per_minute", "max_weight_per_hour"):
            if getattr(self, name) < self.max_weight_per_call:
                raise ValueError(
                    f"{name}={getattr(self, name)} is below "
                    f"max_weight_per_call={self.max_weight_per_call}: no call could ever start"
                )
        return self


def call_weight(n_variables: int, n_days: int, n_locations: int) -> float:
    """Open-Meteo's weight of one call (how many calls it counts as)."""
    per_location = max(1.0, n_variables / 10, (n_days / 14) * (n_variables / 10))
    return per_location * n_locations


def as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no time zone: pass an aware UTC time")
    return value.astimezone(UTC)


def request_dates(start: datetime, end: datetime) -> tuple[date, date]:
    """The inclusive archive dates that cover the hours [start, end)."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end <= start:
        raise ValueError(f"empty window: end {end.isoformat()} <= start {start.isoformat()}")
    return start.date(), (end - timedelta(hours=1)).date()


# Coordinates travel with 5 decimals (about 1 m), the precision of the balancing-authority table,
# so the offline world is asked about exactly the table's points.
COORDINATE_SCALE = 100_000


def coordinate_key(value: float) -> int:
    """The integer a coordinate is matched by: round(value * 10^5)."""
    return round(value * COORDINATE_SCALE)


def format_coordinate(key: int) -> str:
    """The text sent for a coordinate key, without trailing zeros (`34.05`, `-118.24368`)."""
    text = f"{key / COORDINATE_SCALE:.5f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _keyed(points: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("code", "latitude", "longitude") if c not in points.columns]
    if missing:
        raise ValueError(f"points frame lacks columns {missing}; needs code, latitude, longitude")
    return points.sort("code").with_columns(
        (pl.col("latitude") * COORDINATE_SCALE).round().cast(pl.Int64).alias("lat_key"),
        (pl.col("longitude") * COORDINATE_SCALE).round().cast(pl.Int64).alias("lon_key"),
    )


def unique_points(points: pl.DataFrame) -> list[tuple[int, int]]:
    """Distinct coordinate keys in code order: BAs sharing a point cost one location."""
    keyed = _keyed(points).unique(subset=["lat_key", "lon_key"], keep="first", maintain_order=True)
    return list(keyed.select("lat_key", "lon_key").iter_rows())


def days_per_call(n_variables: int, total_days: int, max_weight: float) -> int:
    """Longest date span (<= total_days) whose one-location weight stays within max_weight."""
    if call_weight(n_variables, total_days, 1) <= max_weight:
        return total_days
    days = max(1, math.floor(max_weight * 140 / n_variables))
    while days > 1 and call_weight(n_variables, days, 1) > max_weight:
        days -= 1
    return min(days, total_days)


def plan_calls(
    config: OpenMeteoConfig, points: pl.DataFrame, start: datetime, end: datetime
) -> list[tuple[dict[str, Any], float]]:
    """(query parameters, weight) of every archive call for the points over [start, end)."""
    first, last = request_dates(start, end)
    n_vars = len(config.variables)
    span = days_per_call(n_vars, (last - first).days + 1, config.max_weight_per_call)
    coords = unique_points(points)
    calls: list[tuple[dict[str, Any], float]] = []
    day = first
    while day <= last:
        chunk_last = min(last, day + timedelta(days=span - 1))
        per_location = call_weight(n_vars, (chunk_last - day).days + 1, 1)
        batch = max(
            1, min(config.locations_per_call, int(config.max_weight_per_call // per_location))
        )
        for i in range(0, len(coords), batch):
            part = coords[i : i + batch]
            params: dict[str, Any] = {
                "latitude": ",".join(format_coordinate(lat) for lat, _ in part),
                "longitude": ",".join(format_coordinate(lon) for _, lon in part),
                "start_date": day.isoformat(),
                "end_date": chunk_last.isoformat(),
                "hourly": ",".join(config.variables),
                "timezone": "GMT",
            }
            if config.models:
                params["models"] = ",".join(config.models)
            calls.append((params, per_location * len(part)))
        day = chunk_last + timedelta(days=1)
    return calls


class WeightBudget:
    """Sliding windows of call weights (e.g. 60 s and 3600 s); `acquire` sleeps until a call fits
    every window. A call heavier than a whole window's limit still goes once its window is empty,
    so the client never deadlocks on a misconfiguration."""

    def __init__(
        self,
        limits: dict[float, float],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.limits = dict(limits)
        self.sleep = sleep
        self.clock = clock
        self._spent: deque[tuple[float, float]] = deque()
        self.waits: list[float] = []

    def acquire(self, weight: float) -> None:
        longest = max(self.limits)
        while True:
            now = self.clock()
            while self._spent and self._spent[0][0] <= now - longest:
                self._spent.popleft()
            wait = max(
                self._wait_for(window, limit, weight, now) for window, limit in self.limits.items()
            )
            if wait <= 0:
                self._spent.append((now, weight))
                return
            self.waits.append(wait)
            self.sleep(wait)

    def _wait_for(self, window: float, limit: float, weight: float, now: float) -> float:
        """Seconds until `weight` fits in the last `window` seconds (0 if it fits now)."""
        inside = [(stamp, w) for stamp, w in self._spent if stamp > now - window]
        used = sum(w for _, w in inside)
        if used + weight <= limit or not inside:
            return 0.0
        freed = 0.0
        for stamp, w in inside:  # oldest first: wait until enough of them leave the window
            freed += w
            if used - freed + weight <= limit or freed == used:
                return max(stamp + window - now, 1e-3)
        return 1e-3


def check_openmeteo_response(response: requests.Response) -> None:
    """The fetcher's body check: a cut-off JSON body is retried; Open-Meteo's
    `{"error": true, "reason": ...}` and any other status are final (RequestRefused)."""
    url = response.url
    try:
        payload = load_json(response.content)
    except ValueError as exc:
        if response.status_code == 200:
            raise RetryableSourceError(
                f"GET {url} returned {len(response.content)} bytes that are not complete JSON "
                f"({exc}); retrying"
            ) from None
        raise RequestRefused(
            f"GET {url} answered HTTP {response.status_code}: {response.text[:300]!r}"
        ) from None
    if isinstance(payload, dict) and payload.get("error"):
        raise RequestRefused(
            f"GET {url} answered HTTP {response.status_code} with Open-Meteo error: "
            f"{payload.get('reason')!r}. Check the variable names, dates and coordinates"
        )
    if response.status_code != 200:
        raise RequestRefused(f"GET {url} answered HTTP {response.status_code}")


class OpenMeteoClient:
    """Fetches archive JSON, verbatim, for a set of points over a UTC window."""

    def __init__(
        self,
        config: OpenMeteoConfig | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or OpenMeteoConfig()
        self.budget = WeightBudget(
            {60.0: self.config.max_weight_per_minute, 3600.0: self.config.max_weight_per_hour},
            sleep,
            clock,
        )
        policy = RetryPolicy.from_config(self.config)
        self.fetcher = HttpFetcher(
            policy=policy, session=session or requests.Session(), sleep=sleep
        )

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/archive"

    def plan(
        self, points: pl.DataFrame, start: datetime, end: datetime
    ) -> list[tuple[dict[str, Any], float]]:
        return plan_calls(self.config, points, start, end)

    def fetch(self, points: pl.DataFrame, start: datetime, end: datetime) -> list[RawResponse]:
        """One response per call covering every point's hours in [start, end).

        Dates go out inclusive: start_date = start.date(), end_date = (end - 1h).date().
        """
        responses = []
        for page, (params, weight) in enumerate(self.plan(points, start, end)):
            self.budget.acquire(weight)
            response = self.fetcher.get(self.url, params=params, check=check_openmeteo_response)
            responses.append(
                self.fetcher.record(SOURCE, DATASET, self.url, dict(params), page, response)
            )
        return responses


def ba_points() -> pl.DataFrame:
    """code, latitude, longitude of every balancing authority's representative point."""
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    return load_balancing_authorities().select("code", "latitude", "longitude")


# --- parsing -------------------------------------------------------------------------------


def is_all_null(body: bytes) -> bool:
    """Whether an archive answer holds hours but no value at all: Open-Meteo's way of saying
    "no data" (dates not yet in the archive come back as nulls, not as an error)."""
    try:
        payload = load_json(body)
    except ValueError:
        return False
    locations = payload if isinstance(payload, list) else [payload]
    seen_hours = False
    for location in locations:
        hourly = location.get("hourly") if isinstance(location, dict) else None
        if not isinstance(hourly, dict):
            return False
        for name, values in hourly.items():
            if name == "time" or not isinstance(values, list):
                continue
            seen_hours = seen_hours or bool(values)
            if any(v is not None for v in values):
                return False
    return seen_hours


def normalise_unit(unit: str) -> str:
    """Open-Meteo's unit text in ASCII: °C -> degC, W/m² -> W/m2; %, km/h unchanged."""
    return unit.replace("°", "deg").replace("²", "2").replace("³", "3").replace("µ", "u")


def parse_openmeteo_responses(
    responses: Iterable[RawResponse],
    points: pl.DataFrame,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Every location of every response as long rows (LONG_SCHEMA), sorted.

    Location i of a response belongs to the i-th requested coordinate (Open-Meteo keeps request
    order and snaps coordinates to its grid, so they are never matched by value); it becomes
    one row set per balancing authority in `points` at that coordinate. Rows are kept inside
    [start, end) when given, else inside the request's dates (taken as GMT days).

    Nothing is guessed: a value that is not a JSON number or null, a non-finite number, a unit
    outside `UNIT_LIMITS` and local times without `utc_offset_seconds` all raise RefusedValue;
    any other unusable body raises MalformedResponse, naming the response.
    """
    frames = []
    codes_by_coord = _codes_by_coordinate(points)
    for response in responses:
        url = response.request_url
        try:
            payload = load_json(response.body)
        except ValueError as exc:
            raise MalformedResponse(url, f"body is not JSON ({exc})") from None
        if isinstance(payload, dict) and payload.get("error"):
            raise RequestRefused(
                f"response of {url}: Open-Meteo error {payload.get('reason')!r}. Check the "
                "variable names, dates and coordinates"
            )
        locations = payload if isinstance(payload, list) else [payload]
        requested = _requested_coordinates(response)
        if len(requested) != len(locations):
            raise MalformedResponse(
                url,
                f"{len(locations)} locations in the body but {len(requested)} requested; "
                "cannot tell which balancing authority each belongs to",
            )
        window = _window(response, start, end)
        zone = str(response.request_params.get("timezone", "GMT"))
        for index, (location, coord) in enumerate(zip(locations, requested, strict=True)):
            codes = codes_by_coord.get(coord)
            if not codes:
                sent = f"{format_coordinate(coord[0])},{format_coordinate(coord[1])}"
                raise SourceError(
                    f"response of {url}: requested coordinate {sent} (location {index}) is not "
                    "a point in the points table; parse with the table the request was built from"
                )
            frame = _location_frame(location, url, f"location {index}", zone)
            if window is not None:
                frame = frame.filter(
                    (pl.col("interval_start_utc") >= window[0])
                    & (pl.col("interval_start_utc") < window[1])
                )
            regions = pl.DataFrame({"region": codes})
            frames.append(frame.join(regions, how="cross"))
    if not frames:
        return empty_long()
    out = pl.concat(frames, how="vertical").select(list(LONG_SCHEMA))
    return out.cast(LONG_SCHEMA).sort(  # type: ignore[arg-type]
        ["interval_start_utc", "region", "series"], maintain_order=True
    )


def _codes_by_coordinate(points: pl.DataFrame) -> dict[tuple[int, int], list[str]]:
    out: dict[tuple[int, int], list[str]] = {}
    for lat, lon, code in _keyed(points).select("lat_key", "lon_key", "code").iter_rows():
        out.setdefault((lat, lon), []).append(code)
    return out


def _requested_coordinates(response: RawResponse) -> list[tuple[int, int]]:
    params = response.request_params
    lat, lon = params.get("latitude"), params.get("longitude")
    if not isinstance(lat, str) or not isinstance(lon, str):
        raise MalformedResponse(
            response.request_url,
            f"request_params {params} lack the latitude/longitude lists needed to tell which "
            "balancing authority each location belongs to",
        )
    try:
        lats = [coordinate_key(float(x)) for x in lat.split(",")]
        lons = [coordinate_key(float(x)) for x in lon.split(",")]
    except (ValueError, OverflowError) as exc:
        raise MalformedResponse(
            response.request_url, f"request_params latitude={lat!r} longitude={lon!r}: {exc}"
        ) from None
    if len(lats) != len(lons):
        raise MalformedResponse(
            response.request_url,
            f"request_params have {len(lats)} latitudes but {len(lons)} longitudes",
        )
    return list(zip(lats, lons, strict=True))


def _window(
    response: RawResponse, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime] | None:
    if start is not None and end is not None:
        return as_utc(start, "start"), as_utc(end, "end")
    params = response.request_params
    first, last = params.get("start_date"), params.get("end_date")
    zone = str(params.get("timezone", "GMT")).upper()
    if not isinstance(first, str) or not isinstance(last, str) or zone not in GMT_NAMES:
        return None
    try:
        lo = date.fromisoformat(first)
        hi = date.fromisoformat(last) + timedelta(days=1)
    except (ValueError, OverflowError):
        raise MalformedResponse(
            response.request_url, f"request_params dates {first!r}..{last!r} are not ISO dates"
        ) from None
    return (
        datetime.combine(lo, datetime.min.time(), UTC),
        datetime.combine(hi, datetime.min.time(), UTC),
    )


WEATHER_UNITS = frozenset(UNIT_LIMITS) - {"MW", "USD/MWh"}
MAX_OFFSET_S = 18 * 3600  # ISO 8601's widest offset; real zones stay within 14 h


def _offset_seconds(location: dict[str, Any], requested_zone: str, url: str, where: str) -> int:
    """The body's UTC offset; refuses local times it cannot place and contradictions."""
    zone = location.get("timezone")
    if zone is not None and not isinstance(zone, str):
        raise MalformedResponse(url, f"{where}: timezone={zone!r} is not text")
    is_gmt = str(zone if zone is not None else requested_zone).upper() in GMT_NAMES
    if "utc_offset_seconds" not in location or location["utc_offset_seconds"] is None:
        if not is_gmt:
            raise RefusedValue(
                url,
                f"{where}: hourly.time is local to {zone or requested_zone!r} but the body "
                "has no utc_offset_seconds, so the hours cannot be placed in UTC",
                "Request timezone=GMT (the client does), or keep utc_offset_seconds in the body",
            )
        return 0
    offset = location["utc_offset_seconds"]
    if isinstance(offset, bool) or not isinstance(offset, int | float) or offset != int(offset):
        raise MalformedResponse(url, f"{where}: utc_offset_seconds={offset!r} is not whole seconds")
    if abs(offset) > MAX_OFFSET_S:
        raise MalformedResponse(url, f"{where}: utc_offset_seconds={offset!r} is beyond 18 h")
    if is_gmt and zone is not None and offset != 0:
        raise RefusedValue(
            url, f"{where}: timezone {zone!r} contradicts utc_offset_seconds={offset!r}"
        )
    return int(offset)


def _numbers(values: list[Any], name: str, url: str, where: str) -> list[float | None]:
    """A variable's values as finite floats or None; anything else is refused, never nulled."""
    out: list[float | None] = []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        problem = None
        if isinstance(value, bool) or not isinstance(value, int | float):
            problem = "not a number"
        else:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                out.append(number)
                continue
            problem = "not finite"
        raise RefusedValue(
            url, f"{where}: hourly.{name}[{i}] = {value!r} is {problem} ({len(values)} values)"
        )
    return out


def _location_frame(
    location: object, url: str, where: str, requested_zone: str = "GMT"
) -> pl.DataFrame:
    if not isinstance(location, dict):
        raise MalformedResponse(url, f"{where} is {type(location).__name__}, not an object")
    hourly = location.get("hourly")
    units = location.get("hourly_units")
    if not isinstance(hourly, dict) or "time" not in hourly:
        raise MalformedResponse(
            url, f"{where}: no hourly.time array", "Was hourly= requested? Fetch it again"
        )
    if units is not None and not isinstance(units, dict):
        raise MalformedResponse(url, f"{where}: hourly_units is not an object")
    times = hourly["time"]
    if not isinstance(times, list) or not all(isinstance(t, str) for t in times):
        raise MalformedResponse(
            url, f"{where}: hourly.time is not a list of ISO text", "Request timeformat=iso8601"
        )
    offset = _offset_seconds(location, requested_zone, url, where)
    variables = [k for k in hourly if k != "time"]
    not_lists = [k for k in variables if not isinstance(hourly[k], list)]
    if not_lists:
        raise MalformedResponse(url, f"{where}: hourly.{not_lists[0]} is not an array")
    lengths = {k: len(hourly[k]) for k in variables if len(hourly[k]) != len(times)}
    if lengths:
        raise MalformedResponse(
            url, f"{where}: arrays {lengths} differ in length from hourly.time ({len(times)})"
        )
    unit_map = {}
    for name in variables:
        unit = (units or {}).get(name)
        unit_map[name] = normalise_unit(unit) if isinstance(unit, str) else None
        if unit_map[name] not in WEATHER_UNITS:
            raise RefusedValue(
                url,
                f"{where}: hourly_units.{name} is {unit!r}, not one of the units the platform "
                f"stores ({sorted(WEATHER_UNITS)})",
                "Request the default units (no temperature_unit, wind_speed_unit or "
                "precipitation_unit), or add the unit to sources/base.py UNIT_LIMITS",
            )
    columns = {"time": pl.Series(times, dtype=pl.String)}
    for name in variables:
        columns[name] = pl.Series(_numbers(hourly[name], name, url, where), dtype=pl.Float64)
    frame = pl.DataFrame(columns)
    parsed = frame.with_columns(
        (
            pl.col("time").str.to_datetime("%Y-%m-%dT%H:%M", time_unit="us", strict=False)
            - pl.duration(seconds=offset)
        )
        .dt.replace_time_zone("UTC")
        .alias("interval_start_utc")
    )
    bad = parsed.filter(pl.col("interval_start_utc").is_null())
    if bad.height:
        raise MalformedResponse(url, f"{where}: unreadable hourly.time value {bad['time'][0]!r}")
    if not variables:
        return pl.DataFrame(schema={k: v for k, v in LONG_SCHEMA.items() if k != "region"})
    return parsed.unpivot(
        on=variables, index="interval_start_utc", variable_name="series", value_name="value"
    ).with_columns(
        pl.col("series").replace_strict(unit_map, return_dtype=pl.String).alias("units"),
        pl.lit(SOURCE).alias("source"),
    )
