"""Offline stand-in for EIA API v2 `electricity/rto/*`, served from a `World`.

What belongs here: the translation of a World's EIA frames into EIA's wire format (JSON envelope,
UTC hour-ending `period` strings, string-typed `value`/`total` as since 2024), and EIA's request
semantics as documented in shared/docs/api_formats.md section 1: api_key required, `data[]`,
repeated `facets[..][]`, inclusive `start`/`end` compared as strings, `sort`, `offset`/`length`
capped at 5000 with the "incomplete return" warning, the request echo, and the error bodies.

Differences from the real API, on purpose:
- `start` and `end` are required (a World has no bounds to serve "everything").
- Only `frequency=hourly` is served; `local-hourly` answers 400 with a stand-in message.
- Sub-BA, daily and facet-listing routes answer the EIA 404 body.
- The key may come as `api_key=` or as the `X-Api-Key` header (the api.data.gov gateway accepts
  both); either way the echo carries it under `request.params.api_key`, so a client's redaction
  of the echo is always exercised.
- Fault `total_drift` (offline/server.py) makes `total` one larger than the rows served.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from energy_assets.offline.server import Handler, StandInRequest, StandInResponse
from energy_assets.offline.world import World

API_VERSION = "2.1.13"
OLD_API_VERSION = "2.1.4"  # numeric value/total, as recorded before the 2024 type change
EXCEL_ADDIN_VERSION = "2.1.0"
MAX_ROWS = 5000
DATE_FORMAT = 'YYYY-MM-DD"T"HH24'
_SUFFIX = "  \n    Source: Form EIA-930\n    Product: Hourly Electric Grid Monitor"
REGISTER = "Please register for one at https://www.eia.gov/opendata/register.php"

KEY_MISSING = {
    "error": {"code": "API_KEY_MISSING", "message": f"No api_key was supplied.  {REGISTER}"}
}
# The invalid-key wording is not recorded anywhere we have; only the code is documented.
KEY_INVALID = {
    "error": {"code": "API_KEY_INVALID", "message": f"An invalid api_key was supplied.  {REGISTER}"}
}
NOT_FOUND = {"error": "Not found.", "code": 404}
INCOMPLETE_RETURN = {
    "warning": "incomplete return",
    "description": "The API can only return 5000 rows in JSON format.  Please consider "
    "constraining your request with facet, start, or end, or using offset to paginate results.",
}


@dataclass(frozen=True)
class _Route:
    name: str
    description: str
    world: Callable[[World, datetime, datetime], pl.DataFrame]
    region: str  # first facet/key field (respondent or fromba)
    code: str  # second facet/key field (type, fueltype or toba)
    code_name: str  # the wire name of the code's label column

    @property
    def facets(self) -> tuple[str, str]:
        return (self.region, self.code)

    @property
    def fields(self) -> list[str]:
        return [
            "period",
            self.region,
            f"{self.region}-name",
            self.code,
            self.code_name,
            "value",
            "value-units",
        ]


ROUTES: dict[str, _Route] = {
    "region-data": _Route(
        "region-data",
        "Hourly demand, day-ahead demand forecast, net generation, and interchange by "
        "balancing authority." + _SUFFIX,
        lambda w, s, e: w.eia_region_data(s, e),
        "respondent",
        "type",
        "type-name",
    ),
    "fuel-type-data": _Route(
        "fuel-type-data",
        "Hourly net generation by balancing authority and energy source." + _SUFFIX,
        lambda w, s, e: w.eia_fuel_type_data(s, e),
        "respondent",
        "fueltype",
        "type-name",
    ),
    "interchange-data": _Route(
        "interchange-data",
        # sic: the live API describes this hourly route as "Daily interchange".
        "Daily interchange between neighboring balancing authorities." + _SUFFIX,
        lambda w, s, e: w.eia_interchange_data(s, e),
        "fromba",
        "toba",
        "toba-name",
    ),
}

_PATH = re.compile(r"^/v2/electricity/rto/(?P<route>[a-z-]+)(?P<data>/data)?/?$")
_DATA = re.compile(r"^data\[(\d*)\]$")
_FACET = re.compile(r"^facets\[([^\]]+)\]\[\]$")
_SORT = re.compile(r"^sort\[(\d+)\]\[(column|direction)\]$")


class _BadRequest(Exception):
    """A 400 answer; the message becomes EIA's `{"error": ..., "code": 400}` body."""


def eia_handlers(
    world: World,
    api_key: str | None = None,
    *,
    numeric_values: bool = False,
    max_rows: int = MAX_ROWS,
) -> dict[str, Handler]:
    """Handlers for `StandInServer`: EIA API v2 under `/v2/`.

    `api_key=None` accepts any non-empty key; a string accepts only that key (others get 403
    API_KEY_INVALID). `numeric_values=True` answers like apiVersion 2.1.4 (JSON numbers for
    `value` and `total`). `max_rows` lowers the 5000-row cap, to exercise capping cheaply.
    """
    return {"/v2/": EIAStandIn(world, api_key, numeric_values=numeric_values, max_rows=max_rows)}


class EIAStandIn:
    """The `/v2/` handler. Stateless per request except for a small cache of world frames."""

    def __init__(
        self,
        world: World,
        api_key: str | None = None,
        *,
        numeric_values: bool = False,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.world = world
        self.api_key = api_key
        self.numeric_values = numeric_values
        self.max_rows = max_rows
        self._cache: dict[tuple[str, datetime, datetime], pl.DataFrame] = {}
        self._lock = threading.Lock()
        self._served = 0

    def __call__(self, request: StandInRequest) -> StandInResponse:
        header = next((v for k, v in request.headers.items() if k.lower() == "x-api-key"), "")
        key = request.one("api_key") or header
        if not key:
            return _json(403, KEY_MISSING)
        if self.api_key is not None and key != self.api_key:
            return _json(403, KEY_INVALID)
        match = _PATH.match(request.path)
        if match is None or match["route"] not in ROUTES:
            return _json(404, NOT_FOUND)
        route = ROUTES[match["route"]]
        try:
            if match["data"] is None:
                return self._metadata(route, request, key)
            return self._data(route, request, key)
        except _BadRequest as exc:
            return _json(400, {"error": str(exc), "code": 400})

    # -- metadata ------------------------------------------------------------------------------

    def _metadata(self, route: _Route, request: StandInRequest, key: str) -> StandInResponse:
        body = {
            "response": {
                "id": route.name,
                "name": route.name,
                "description": route.description,
                "frequency": [
                    {
                        "id": "hourly",
                        "description": "One data point for each hour in UTC time.",
                        "query": "H",
                        "format": DATE_FORMAT,
                    },
                    {
                        "id": "local-hourly",
                        "description": "One data point for each hour in local time.",
                        "query": "LH",
                        "format": 'YYYY-MM-DD"T"HH24TZH',
                    },
                ],
                "facets": [{"id": facet, "description": facet} for facet in route.facets],
                "data": {"value": {"alias": "Value", "units": "megawatthours"}},
                "defaultDateFormat": DATE_FORMAT,
                "defaultFrequency": "hourly",
            },
            "request": {"command": request.path, "params": {"api_key": key}},
            "apiVersion": self._api_version(),
        }
        return _json(200, body)

    # -- data ----------------------------------------------------------------------------------

    def _data(self, route: _Route, request: StandInRequest, key: str) -> StandInResponse:
        frequency = request.one("frequency", "hourly")
        if frequency == "local-hourly":
            raise _BadRequest("The offline stand-in serves only frequency 'hourly'.")
        if frequency != "hourly":
            raise _BadRequest(
                f"Invalid frequency '{frequency}' provided. The following frequencies are "
                "valid: 'hourly', 'local-hourly'."
            )
        data_columns = _data_columns(request)
        facets = _facets(request, route)
        start, end = request.one("start"), request.one("end")
        if start is None or end is None:
            raise _BadRequest("The offline stand-in needs both 'start' and 'end'.")
        sort = _sort(request, route)
        offset = _int_param(request, "offset", 0)
        requested = _int_param(request, "length", None)
        length = min(requested if requested is not None else self.max_rows, self.max_rows)

        rows = self._matching(route, start, end)
        for facet, values in facets.items():
            rows = rows.filter(pl.col(facet).is_in(values))
        rows = rows.sort(
            [column for column, _ in sort],
            descending=[direction == "desc" for _, direction in sort],
            nulls_last=True,
            maintain_order=True,
        )
        total = rows.height
        page = rows.slice(offset, length)
        truncated = total - offset > self.max_rows and (requested is None or requested > length)
        if request.fault is not None and request.fault.kind == "total_drift":
            total += 1  # as if a revision landed between this page and the previous one

        response: dict[str, object] = {}
        if truncated:
            response["warnings"] = [INCOMPLETE_RETURN]
        response["total"] = total if self.numeric_values else str(total)
        response["dateFormat"] = DATE_FORMAT
        response["frequency"] = "hourly"
        response["data"] = "__DATA__"
        response["description"] = route.description
        body: dict[str, object] = {
            "response": response,
            "request": {"command": request.path, "params": _echo(request, key)},
            "apiVersion": self._api_version(),
        }
        if not self.numeric_values:
            body["ExcelAddInVersion"] = EXCEL_ADDIN_VERSION
        text = json.dumps(body, separators=(",", ":")).replace(
            '"__DATA__"', self._rows_json(route, page, with_value="value" in data_columns)
        )
        # PHP's json_encode, which answers for EIA, escapes every slash.
        return _json_text(200, text.replace("/", "\\/"), self._request_id())

    def _matching(self, route: _Route, start: str, end: str) -> pl.DataFrame:
        """World rows in wire form whose `period` lies in [start, end], compared as strings."""
        lower, upper = _window(start, "start"), _window(end, "end") + timedelta(days=1)
        cache_key = (route.name, lower, upper)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is None:
            # The hour ending at `lower` starts an hour earlier: widen so no period is missed.
            frame = route.world(self.world, lower - timedelta(hours=1), upper)
            cached = _wire_frame(route, frame)
            with self._lock:
                if len(self._cache) > 16:
                    self._cache.clear()
                self._cache[cache_key] = cached
        return cached.filter((pl.col("period") >= start) & (pl.col("period") <= end))

    def _rows_json(self, route: _Route, page: pl.DataFrame, with_value: bool) -> str:
        if not with_value:  # without data[]=value the API answers rows without values
            return page.select(route.fields[:-2]).write_json()
        values = page["value"]
        if self.numeric_values:
            finite = values.drop_nulls()
            integral = finite.len() == 0 or bool((finite == finite.round(0)).all())
            wire = values.cast(pl.Int64()) if integral else values
        else:
            wire = values.cast(pl.String()).str.replace(r"\.0$", "")
        return page.with_columns(value=wire).select(route.fields).write_json()

    def _api_version(self) -> str:
        return OLD_API_VERSION if self.numeric_values else API_VERSION

    def _request_id(self) -> str:
        with self._lock:
            self._served += 1
            return f"standin-{self._served:08d}"


def _wire_frame(route: _Route, frame: pl.DataFrame) -> pl.DataFrame:
    """World columns -> the route's JSON fields, `period` as UTC hour-ending text."""
    return frame.select(
        period=(pl.col("interval_start_utc") + pl.duration(hours=1)).dt.strftime("%Y-%m-%dT%H"),
        **{
            route.region: pl.col(route.region),
            f"{route.region}-name": pl.col(f"{route.region}_name"),
            route.code: pl.col(route.code),
            route.code_name: pl.col(route.code_name.replace("-", "_")),
            "value": pl.col("value").cast(pl.Float64()),
            "value-units": pl.lit("megawatthours"),
        },
    )


def _window(text: str, name: str) -> datetime:
    """The UTC midnight of a `YYYY-MM-DD...` bound, used only to size the world query."""
    try:
        return datetime.strptime(text[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise _BadRequest(f"Invalid {name} '{text}' provided. Use YYYY-MM-DDTHH.") from None


def _data_columns(request: StandInRequest) -> list[str]:
    indexed = sorted(
        (int(m[1]) if m[1] else 0, value)
        for name, values in request.query.items()
        if (m := _DATA.match(name))
        for value in values
    )
    columns = [value for _, value in indexed]
    for column in columns:
        if column != "value":
            raise _BadRequest(f"Invalid data '{column}' provided. The only valid data is 'value'.")
    return columns


def _facets(request: StandInRequest, route: _Route) -> dict[str, list[str]]:
    facets: dict[str, list[str]] = {}
    for name, values in request.query.items():
        if (match := _FACET.match(name)) is None:
            continue
        if match[1] not in route.facets:
            raise _BadRequest(
                f"Invalid facet '{match[1]}' provided. The following facets are valid: "
                f"{', '.join(route.facets)}."
            )
        facets[match[1]] = values
    return facets


def _sort(request: StandInRequest, route: _Route) -> list[tuple[str, str]]:
    parts: dict[int, dict[str, str]] = {}
    for name, values in request.query.items():
        if (match := _SORT.match(name)) is not None:
            parts.setdefault(int(match[1]), {})[match[2]] = values[-1]
    if not parts:  # the default sort added in 2.1.9
        return [("period", "asc"), (route.region, "asc"), (route.code, "asc")]
    sort = []
    for index in sorted(parts):
        column = parts[index].get("column")
        direction = parts[index].get("direction", "asc")
        if column not in route.fields:
            raise _BadRequest(f"Invalid sort column '{column}' provided.")
        if direction not in ("asc", "desc"):
            raise _BadRequest(f"Invalid sort direction '{direction}' provided.")
        sort.append((column, direction))
    return sort


def _int_param(request: StandInRequest, name: str, default: int | None) -> int | None:
    text = request.one(name)
    if text is None:
        return default
    if not text.isdigit():
        raise _BadRequest(f"Invalid {name} '{text}' provided. It must be a whole number >= 0.")
    return int(text)


def _echo(request: StandInRequest, key: str) -> dict[str, object]:
    """`request.params` as EIA echoes it: nested, in its own order, the key included."""
    params: dict[str, object] = {"api_key": key}
    if (frequency := request.one("frequency")) is not None:
        params["frequency"] = frequency
    if columns := _data_columns(request):
        params["data"] = columns
    facets = {m[1]: values for name, values in request.query.items() if (m := _FACET.match(name))}
    if facets:
        params["facets"] = facets
    for name in ("start", "end"):
        if (value := request.one(name)) is not None:
            params[name] = value
    sort: dict[int, dict[str, str]] = {}
    for name, values in request.query.items():
        if (m := _SORT.match(name)) is not None:
            sort.setdefault(int(m[1]), {})[m[2]] = values[-1]
    if sort:
        params["sort"] = [sort[i] for i in sorted(sort)]
    for name in ("offset", "length"):
        if (value := request.one(name)) is not None:
            params[name] = value
    return params


def _json(status: int, body: dict) -> StandInResponse:
    return _json_text(status, json.dumps(body, separators=(",", ":")), None)


def _json_text(status: int, text: str, request_id: str | None) -> StandInResponse:
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["X-Api-Umbrella-Request-Id"] = request_id
    return StandInResponse(status, text.encode(), headers)
