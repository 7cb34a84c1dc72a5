"""EIA API v2, EIA-930 hourly grid monitor: the paging client and the parser to the long table.

What belongs here: everything that knows the EIA wire format, meaning the `electricity/rto/*`
routes and their facets, the paging and error rules of the API, key redaction for EIA responses,
and the conversion of EIA's UTC hour-ending `period` to the platform's hour-beginning
`interval_start_utc`. That conversion happens once, in the parser, and nowhere else.
The format is described in shared/docs/api_formats.md, section 1.

Generic retry arithmetic lives in `sources/http.py`, the stored record shapes in `sources/base.py`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote, quote_plus

import polars as pl
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from energy_assets.sources.base import (
    LONG_SCHEMA,
    REDACTED,
    TIME,
    KeyRefused,
    MalformedResponse,
    RawResponse,
    RefusedValue,
    RequestRefused,
    RetryableSourceError,
    SourceError,
    TransientSourceError,
    empty_long,
    load_json,
    redact,
)
from energy_assets.sources.http import HttpFetcher, RetryPolicy

logger = logging.getLogger(__name__)

SOURCE = "eia930"
MAX_PAGE_LENGTH = 5000  # the API's hard cap for JSON pages
PERIOD_FORMAT = "%Y-%m-%dT%H"
HOUR = timedelta(hours=1)
LONG_KEY = ["interval_start_utc", "region", "series"]

# region-data `type` codes -> platform series names (common.md). Other codes are kept, see below.
REGION_TYPE_SERIES: dict[str, str] = {
    "D": "demand",
    "DF": "demand_forecast_da",
    "NG": "net_generation",
    "TI": "total_interchange",
}
# Reported, never used to filter: EIA keeps adding fuel codes (gridstatus lists 15 in 2025).
KNOWN_FUEL_TYPES = frozenset(
    {"COL", "NG", "NUC", "OIL", "WAT", "SUN", "WND", "OTH", "BAT", "PS", "GEO", "SNB", "UNK"}
)
UNITS = {"megawatthours": "MW"}  # MWh per hour is numerically MW

# Body error codes (api.data.gov envelope) that say "try again later" even with HTTP 200.
RETRYABLE_ERROR_CODES = frozenset({"OVER_RATE_LIMIT"})
KEY_ERROR_CODES = frozenset({"API_KEY_MISSING", "API_KEY_INVALID", "API_KEY_DISABLED"})
KEY_HINT = (
    " Check the EIA API key (EIAConfig.api_key; the EIA_API_KEY environment variable for the "
    "assets), or register for a free one at https://www.eia.gov/opendata/register.php."
)


@dataclass(frozen=True)
class EIARoute:
    """One `electricity/rto/<name>` route: which facet selects regions and what the row key is."""

    name: str
    region_field: str  # facet used for the configured respondents, and the long table's region
    code_field: str  # second key field (type / fueltype / toba), which names the series

    @property
    def sort_columns(self) -> tuple[str, ...]:
        # Sorting on the full key keeps pages stable; the API does not guarantee an order.
        return ("period", self.region_field, self.code_field)


ROUTES: dict[str, EIARoute] = {
    "region-data": EIARoute("region-data", "respondent", "type"),
    "fuel-type-data": EIARoute("fuel-type-data", "respondent", "fueltype"),
    "interchange-data": EIARoute("interchange-data", "fromba", "toba"),
}
SUB_BA_ROUTE = "region-sub-ba-data"


class EIAConfig(BaseModel):
    """Everything the EIA client needs. Safe to log: the key is a SecretStr."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://api.eia.gov/v2"
    api_key: SecretStr | None = None
    # None: every respondent (no respondent facet is sent). An empty list would mean the same
    # to the API, so it is refused rather than silently widened.
    respondents: list[str] | None = Field(None, min_length=1)
    page_length: int = Field(MAX_PAGE_LENGTH, ge=1, le=MAX_PAGE_LENGTH)
    max_attempts: int = Field(5, ge=1)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    respondents_per_request: int | None = Field(None, ge=1)
    # "header" sends X-Api-Key (accepted by the api.data.gov gateway in front of EIA, used by
    # gridstatus), so the key never enters a URL that urllib3 logs at DEBUG or that an exception
    # repeats. "query" sends the canonical `api_key=` parameter, as in the recorded cassettes.
    key_transport: Literal["header", "query"] = "header"
    retry_seed: int | None = None  # fixes the jitter sequence (tests)


def eia_period_bounds(start: datetime, end: datetime) -> tuple[str, str]:
    """Interval-start window [start, end) -> EIA's inclusive hour-ending `start`/`end` strings.

    The hour starting at `start` ends at start + 1 h, which EIA labels start + 1 h; the last hour,
    starting at end - 1 h, is labelled `end`. So UTC day D is start=D T01, end=D+1 T00.
    """
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"EIA fetch {name}={value!r} is naive: pass a UTC-aware datetime")
        if (value.minute, value.second, value.microsecond) != (0, 0, 0):
            raise ValueError(f"EIA fetch {name}={value.isoformat()} is not on a whole hour")
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if end_utc <= start_utc:
        raise ValueError(
            f"EIA fetch window is empty: start={start_utc.isoformat()} end={end_utc.isoformat()} "
            "(end is exclusive and must be later than start)"
        )
    return (start_utc + HOUR).strftime(PERIOD_FORMAT), end_utc.strftime(PERIOD_FORMAT)


def secret_forms(secret: str | None) -> list[str]:
    """Every spelling of a secret that can show up in a URL, a log line or a JSON echo."""
    if not secret:
        return []
    json_escaped = json.dumps(secret)[1:-1]
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json_escaped}
    forms.add(json_escaped.replace("/", "\\/"))  # EIA's PHP JSON escapes slashes
    return sorted(forms, key=len, reverse=True)  # longest first, so no form is half-replaced


def redact_bytes(body: bytes, secrets: list[str]) -> bytes:
    for secret in secrets:
        body = body.replace(secret.encode(), REDACTED.encode())
    return body


class EIAClient:
    """Pages through `electricity/rto/<route>/data/` for many respondents per request.

    Usage: `EIAClient(EIAConfig(api_key=...)).fetch("region-data", day, day + timedelta(days=1))`.
    Every returned page is verified: `total` must stay constant across pages, each page must hold
    the rows `total` promises (a short page is accepted only when the API flags it with `warnings`,
    and then paging continues from the rows actually received), and the pages together must hold
    exactly `total` rows.
    """

    def __init__(
        self,
        config: EIAConfig,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        key = config.api_key.get_secret_value() if config.api_key is not None else None
        self._key = key or None
        self._secrets = secret_forms(self._key)
        self._fetcher = HttpFetcher(
            # 401/403 are judged in `_check`: a refused key fails at once, naming the key.
            policy=RetryPolicy.from_config(config),
            secrets=list(self._secrets),
            session=session or requests.Session(),
            sleep=sleep,
        )

    @property
    def requests_made(self) -> int:
        return self._fetcher.requests_made

    @property
    def retries_made(self) -> int:
        return self._fetcher.retries_made

    def route_url(self, route: str) -> str:
        return f"{self.config.base_url.rstrip('/')}/electricity/rto/{_route(route).name}/data/"

    def fetch(self, route: str, start: datetime, end: datetime) -> list[RawResponse]:
        """All pages of `route` for interval starts in [start, end), as verbatim redacted records.

        `route` is one of "region-data", "fuel-type-data", "interchange-data". Page numbers run
        0..n-1 over the whole call, across respondent chunks.
        """
        spec = _route(route)
        eia_start, eia_end = eia_period_bounds(start, end)
        pages: list[RawResponse] = []
        for chunk in self._respondent_chunks():
            pages.extend(self._fetch_chunk(spec, eia_start, eia_end, chunk, len(pages)))
        return pages

    def _respondent_chunks(self) -> list[list[str] | None]:
        respondents = self.config.respondents
        if respondents is None:
            return [None]
        size = self.config.respondents_per_request or len(respondents)
        return [respondents[i : i + size] for i in range(0, len(respondents), size)]

    def _params(
        self,
        spec: EIARoute,
        eia_start: str,
        eia_end: str,
        respondents: list[str] | None,
        offset: int,
    ) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        if self._key and self.config.key_transport == "query":
            params.append(("api_key", self._key))
        params += [("frequency", "hourly"), ("data[0]", "value")]
        # One request for many regions: the facet is repeated, never one call per region.
        params += [(f"facets[{spec.region_field}][]", code) for code in respondents or []]
        params += [("start", eia_start), ("end", eia_end)]
        for i, column in enumerate(spec.sort_columns):
            params += [(f"sort[{i}][column]", column), (f"sort[{i}][direction]", "asc")]
        params += [("offset", str(offset)), ("length", str(self.config.page_length))]
        return params

    def _fetch_chunk(
        self,
        spec: EIARoute,
        eia_start: str,
        eia_end: str,
        respondents: list[str] | None,
        first_page: int,
    ) -> list[RawResponse]:
        url = self.route_url(spec.name)
        length = self.config.page_length
        pages: list[RawResponse] = []
        offset = 0
        first_total: int | None = None
        while True:
            params = self._params(spec, eia_start, eia_end, respondents, offset)
            shown = self._fetcher.redacted_url(url, params)
            response, payload = self._get(url, params, shown)
            body = payload["response"]
            total = _parse_total(body.get("total"), shown)
            rows = body.get("data")
            if not isinstance(rows, list):
                raise MalformedResponse(
                    shown,
                    f"EIA body has no `response.data` list (got {type(rows).__name__})",
                    "The route or API version may have changed",
                )
            warnings = body.get("warnings") or []
            if not pages:
                first_total = total
            elif total != first_total:
                raise TransientSourceError(
                    f"EIA `total` changed between pages of {spec.name} from {first_total} to "
                    f"{total} (at {shown}): the data was revised while paging, so the pages do "
                    "not fit together. Re-run the fetch."
                )
            pages.append(self._record(spec, shown, params, first_page + len(pages), response))
            logger.debug(
                "EIA page %d: %d rows, total %s, %s", len(pages) - 1, len(rows), total, shown
            )
            if warnings:
                logger.warning(
                    "EIA returned warnings for %s: %s; checking pagination",
                    shown,
                    redact(json.dumps(warnings), self._secrets),
                )
            if total is None:
                # No total to page against: only a page shorter than asked says "done", and a
                # warning means the page may be cut, which cannot be verified.
                if warnings:
                    raise SourceError(
                        f"EIA response for {shown} carries warnings but no `total`, so a "
                        "truncated page cannot be told from the end of the data; narrow the "
                        "window or the respondent list"
                    )
                offset += len(rows)
                if len(rows) < length:
                    break
                continue
            expected = min(length, total - offset)
            # A page may come up short only when the API says so with `warnings` (it capped the
            # page); paging then resumes after the rows received. Anything else is an error.
            cut_silently = len(rows) < expected and not warnings
            if len(rows) > expected or cut_silently or (not rows and expected > 0):
                raise TransientSourceError(
                    f"EIA page at offset {offset} of {spec.name} holds {len(rows)} rows but "
                    f"`total`={total} and length={length} promise {expected} ({shown}); "
                    "the response is incomplete or inconsistent. Re-run the fetch; if it "
                    "persists, narrow the window."
                )
            offset += len(rows)
            if offset >= total:
                break
        logger.info(
            "EIA %s: %d rows in %d pages for %s",
            spec.name,
            offset,
            len(pages),
            "all respondents" if respondents is None else f"{len(respondents)} respondents",
        )
        return pages

    def _get(
        self, url: str, params: list[tuple[str, str]], shown: str
    ) -> tuple[requests.Response, dict]:
        holder: dict[str, dict] = {}

        def check(response: requests.Response) -> None:
            holder["payload"] = self._check(response, shown)

        headers = {"Accept": "application/json"}
        if self._key and self.config.key_transport == "header":
            headers["X-Api-Key"] = self._key
        response = self._fetcher.get(url, params=params, headers=headers, check=check)
        return response, holder["payload"]

    def _check(self, response: requests.Response, shown: str) -> dict:
        """The payload of a usable answer; otherwise the typed error that says what to do.

        Retried (RetryableSourceError): a cut-off body, OVER_RATE_LIMIT, and a 403 that does
        not name a key problem (EIA suspends a throttled key for seconds to minutes). Raised at
        once: a refused or missing key (KeyRefused, with the hint), any other error body or
        status (RequestRefused), a body in an unknown shape (MalformedResponse).
        """
        status = response.status_code
        try:
            payload = load_json(response.content)
        except ValueError:
            if status == 401:
                raise KeyRefused(
                    f"EIA answered HTTP 401 for {shown}: {self._snippet(response)}.{KEY_HINT}"
                ) from None
            if status == 403:
                raise RetryableSourceError(
                    f"HTTP 403 from {shown}: {self._snippet(response)} (a throttled key is "
                    f"suspended for a while; if this persists, the key is refused).{KEY_HINT}",
                    _retry_after(response),
                ) from None
            if status == 200:
                # A cut-off body (dropped connection, proxy) is transient: retried, bounded.
                raise RetryableSourceError(
                    f"the body from {shown} is not complete JSON ({len(response.content)} "
                    "bytes, HTTP 200); it was probably cut off in transit"
                ) from None
            raise RequestRefused(
                f"EIA answered HTTP {status} for {shown} with a non-JSON body: "
                f"{self._snippet(response)}"
            ) from None
        if not isinstance(payload, dict):
            raise MalformedResponse(
                shown, f"EIA body is JSON but not an object: {type(payload).__name__}"
            )
        if "error" in payload:
            code, message = _error_parts(payload)
            text = redact(f"HTTP {status}, code {code}: {message}", self._secrets).rstrip(".")
            if code in KEY_ERROR_CODES or status == 401:
                raise KeyRefused(f"EIA refused the key for {shown}: {text}.{KEY_HINT}")
            if status == 403 or code in RETRYABLE_ERROR_CODES:
                raise RetryableSourceError(
                    f"EIA error from {shown}: {text} (throttled; if this persists, the key "
                    f"is refused).{KEY_HINT}",
                    _retry_after(response),
                )
            # The body decides, not the status: before v2.1.10 errors came with HTTP 200.
            raise RequestRefused(
                f"EIA answered an error for {shown}: {text}. Fix the request (route, "
                "frequency, facets, start/end) rather than retrying."
            )
        if status == 401:
            raise KeyRefused(f"EIA answered HTTP 401 for {shown}.{KEY_HINT}")
        if status == 403:
            raise RetryableSourceError(
                f"HTTP 403 from {shown} (if this persists, the key is refused).{KEY_HINT}",
                _retry_after(response),
            )
        if status != 200:
            raise RequestRefused(
                f"EIA answered HTTP {status} for {shown}: {self._snippet(response)}"
            )
        if not isinstance(payload.get("response"), dict):
            raise MalformedResponse(
                shown,
                f"EIA body has no `response` object (keys: {sorted(payload)}); the API format "
                "may have changed",
                "Check the API version and route",
            )
        return payload

    def _record(
        self,
        spec: EIARoute,
        shown: str,
        params: list[tuple[str, str]],
        page: int,
        response: requests.Response,
    ) -> RawResponse:
        return RawResponse(
            source=SOURCE,
            dataset=spec.name,
            request_url=shown,
            request_params=_params_dict(params),
            page=page,
            status=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            fetched_at_utc=datetime.now(UTC),
            body=redact_bytes(response.content, self._secrets),
        )

    def _snippet(self, response: requests.Response) -> str:
        return redact(response.text[:300], self._secrets)


def _route(route: str) -> EIARoute:
    if route not in ROUTES:
        raise ValueError(
            f"unknown EIA route {route!r}: use one of {sorted(ROUTES)}"
            + (" (sub-BA data is not ingested)" if route == SUB_BA_ROUTE else "")
        )
    return ROUTES[route]


def _params_dict(params: list[tuple[str, str]]) -> dict[str, object]:
    """Query parameters as stored: repeated facets become lists, the key becomes REDACTED."""
    out: dict[str, object] = {}
    repeated: dict[str, list[str]] = {}
    for name, value in params:
        if name.endswith("[]"):
            repeated.setdefault(name, []).append(value)
            out[name] = repeated[name]
        else:
            out[name] = REDACTED if name == "api_key" else value
    return out


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_parts(payload: dict) -> tuple[str, str]:
    """Both documented error shapes: {"error":{"code","message"}} and {"error":"…","code":400}."""
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("code", "?")), str(error.get("message", ""))
    return str(payload.get("code", "?")), str(error)


def _parse_total(raw: object, shown: str) -> int | None:
    """`total` is a JSON number before 2024 and a numeric string since; null means unknown."""
    if raw is None:
        return None
    try:
        total = float(raw) if isinstance(raw, str) else raw
        if isinstance(total, bool) or not isinstance(total, int | float) or total != int(total):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        problem = f"EIA `response.total` is {raw!r}, not a whole number"
        raise MalformedResponse(shown, problem) from None
    if total < 0:
        raise MalformedResponse(shown, f"EIA `response.total` is negative: {raw!r}")
    return int(total)


# ---------------------------------------------------------------------------------------------
# Parsing: JSON bodies -> LONG_SCHEMA


def parse_eia_body(
    body: bytes | str | dict, route: str | None = None, url: str | None = None
) -> pl.DataFrame:
    """One EIA JSON body (bytes as stored, or already decoded) as a LONG_SCHEMA frame, sorted.

    Accepts `value` as a JSON number, a numeric string or null (kept as null: EIA sends null for
    hours a respondent did not report); anything else, and any non-finite number, raises
    RefusedValue. Only `megawatthours` (stored as MW) or no unit is accepted. Does not check
    paging (a body whose `total` exceeds its rows parses fine; `EIAClient.fetch` catches short
    pages). Sub-BA bodies (`region-sub-ba-data`) are rejected: the long table's `region` holds
    balancing authorities, and a subregion there would be mistaken for one. Every malformed
    body raises a MalformedResponse naming `url` (the stored, redacted request URL).
    """
    where = url or "<EIA body, URL not given>"
    if isinstance(body, bytes | str):
        try:
            payload = load_json(body)
        except ValueError as exc:
            raise MalformedResponse(where, f"EIA body is not JSON ({exc})") from None
    else:
        payload = body
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise MalformedResponse(where, f"EIA body is not a JSON object but {kind}")
    if "error" in payload:
        code, message = _error_parts(payload)
        raise RequestRefused(f"EIA body of {where} is an error, not data: code {code}: {message}")
    response = payload.get("response")
    rows = response.get("data") if isinstance(response, dict) else None
    if not isinstance(rows, list):
        raise MalformedResponse(
            where, f"EIA body has no `response.data` list (top-level keys: {sorted(payload)})"
        )
    if not rows:
        return empty_long()
    bad_row = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad_row is not None:
        kind = type(rows[bad_row]).__name__
        raise MalformedResponse(where, f"EIA `response.data[{bad_row}]` is {kind}, not an object")
    fields = sorted(set().union(*rows))
    spec = _detect_route(fields, route, where)
    if "value" not in fields:
        raise MalformedResponse(
            where,
            f"EIA {spec.name} rows carry no `value` field (fields: {fields}); the request must "
            "include data[0]=value",
        )
    if "period" not in fields:
        raise MalformedResponse(where, f"EIA {spec.name} rows carry no `period` field: {fields}")
    return _to_long(rows, spec, where).sort(LONG_KEY, maintain_order=True)


def _detect_route(columns: list[str], hint: str | None, where: str) -> EIARoute:
    if "subba" in columns or hint == SUB_BA_ROUTE:
        raise MalformedResponse(
            where,
            "EIA region-sub-ba-data rows (subba/parent) are not ingested: the long table's "
            "region is a balancing authority",
            "Fetch region-data for the parent BA instead",
        )
    if "fromba" in columns and "toba" in columns:
        spec = ROUTES["interchange-data"]
    elif "fueltype" in columns and "respondent" in columns:
        spec = ROUTES["fuel-type-data"]
    elif "type" in columns and "respondent" in columns:
        spec = ROUTES["region-data"]
    else:
        raise MalformedResponse(
            where, f"EIA rows have fields {columns}, which match no known rto route"
        )
    if hint is not None and hint != spec.name:
        raise MalformedResponse(where, f"EIA body stored as {hint!r} holds {spec.name} rows")
    return spec


PERIOD_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}", re.ASCII)
NUMBER_PATTERN = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
"""A numeric string as EIA sends it; stricter than float(), which also takes "nan", "inf",
"1_000" and non-ASCII digits."""


def _number(value: object) -> float | None:
    """An EIA `value` as a finite float, None for null; raises ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not NUMBER_PATTERN.fullmatch(text):
            raise ValueError("not a number")
        number = float(text)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"a JSON {type(value).__name__}, not a number")
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _text_column(rows: list[dict], name: str, where: str, nullable: bool = False) -> list:
    column = [row.get(name) for row in rows]
    for i, value in enumerate(column):
        if not isinstance(value, str) and not (nullable and value is None):
            raise MalformedResponse(
                where, f"EIA `{name}` of row {i} is {value!r}, not text ({len(rows)} rows)"
            )
    return column


def _to_long(rows: list[dict], spec: EIARoute, where: str) -> pl.DataFrame:
    periods = _text_column(rows, "period", where)
    bad_period = next((p for p in periods if not PERIOD_PATTERN.fullmatch(p)), None)
    values: list[float | None] = []
    for row in rows:
        try:
            values.append(_number(row.get("value")))
        except (ValueError, OverflowError) as exc:
            raise RefusedValue(
                where,
                f"EIA {spec.name} `value` {row.get('value')!r} at period {row.get('period')} "
                f"is {exc}",
            ) from None
    units = _text_column(rows, "value-units", where, nullable=True)
    unknown_units = sorted({u for u in units if u is not None and u not in UNITS})
    if unknown_units:
        raise RefusedValue(
            where,
            f"EIA {spec.name} `value-units` {unknown_units} are not among {sorted(UNITS)}; "
            "values in another unit cannot be stored beside MW",
        )
    frame = pl.DataFrame(
        {
            "period": periods,
            "region": _text_column(rows, spec.region_field, where),
            "code": _text_column(rows, spec.code_field, where),
            "value": pl.Series(values, dtype=pl.Float64()),
            # EIA-930's rto routes are all in MWh per hour; a row without a unit is in it too.
            "units": pl.Series([UNITS.get(u or "", "MW") for u in units], dtype=pl.String()),
        }
    )
    ending = (pl.col("period") + ":00").str.strptime(TIME, "%Y-%m-%dT%H:%M", strict=False)
    checked = frame.with_columns(_ending=ending)
    unreadable = checked.filter(pl.col("_ending").is_null())
    if bad_period is not None or unreadable.height:
        shown = bad_period if bad_period is not None else unreadable["period"][0]
        raise MalformedResponse(
            where,
            f"EIA {spec.name} `period` {shown!r} is not UTC hourly YYYY-MM-DDTHH",
            "Request frequency=hourly, not local-hourly",
        )
    code = pl.col("code")
    if spec.name == "region-data":
        # Unknown region-data types are kept under a visible name, never dropped.
        series = code.replace_strict(
            REGION_TYPE_SERIES, default=pl.lit("type_") + code.str.to_lowercase()
        )
    elif spec.name == "fuel-type-data":
        series = pl.lit("generation_") + code.str.to_lowercase()
    else:
        series = pl.lit("interchange_to_") + code
    return checked.select(
        # EIA stamps the hour's end; the platform stamps its start. The one conversion.
        interval_start_utc=pl.col("_ending") - pl.duration(hours=1),
        region=pl.col("region"),
        series=series,
        value=pl.col("value"),
        units=pl.col("units"),
        source=pl.lit(SOURCE),
    ).cast(LONG_SCHEMA)  # type: ignore[arg-type]


def parse_eia_responses(responses: list[RawResponse]) -> pl.DataFrame:
    """All pages of one or more fetches as one LONG_SCHEMA frame.

    Rows are sorted by (interval_start_utc, region, series), keeping the received order within a
    key: duplicates are kept for the aligned layer to resolve (see `eia_parse_report`).
    """
    frames = []
    for response in responses:
        if response.source != SOURCE:
            raise SourceError(
                f"parse_eia_responses got a {response.source!r} response "
                f"({response.request_url}); pass only {SOURCE!r} responses"
            )
        frames.append(
            parse_eia_body(response.body, route=response.dataset, url=response.request_url)
        )
    if not frames:
        return empty_long()
    frame = pl.concat(frames, how="vertical")
    frame = frame.sort(LONG_KEY, maintain_order=True)
    report = eia_parse_report(frame)
    if report["duplicate_rows"]:
        logger.info(
            "EIA responses hold %d duplicate rows over %d keys (kept for the aligned layer)",
            report["duplicate_rows"],
            report["duplicate_keys"],
        )
    return frame


def eia_parse_report(frame: pl.DataFrame) -> dict[str, object]:
    """Counts for asset metadata: rows, duplicates, nulls, and codes not in the known lists."""
    counts = frame.group_by(LONG_KEY).len()
    duplicated = counts.filter(pl.col("len") > 1)
    series = frame["series"].unique()
    fuel_codes = series.filter(series.str.starts_with("generation_")).str.strip_prefix(
        "generation_"
    )
    unknown_fuels = sorted(c for c in fuel_codes.to_list() if c.upper() not in KNOWN_FUEL_TYPES)
    return {
        "rows": frame.height,
        "duplicate_rows": int(duplicated["len"].sum() - duplicated.height),
        "duplicate_keys": duplicated.height,
        "null_values": frame["value"].null_count(),
        "regions": frame["region"].n_unique(),
        "series": series.len(),
        "unknown_fuel_types": unknown_fuels,
        "unknown_region_types": sorted(series.filter(series.str.starts_with("type_")).to_list()),
    }
