"""What every upstream source hands to the platform: verbatim responses and parsed long tables.

A source module (`sources/eia.py`, `sources/caiso.py`, `sources/openmeteo.py`) fetches
`RawResponse`s, which keep the bytes exactly as received except for redacted secrets, and parses
them into the long table every raw asset stores (`LONG_SCHEMA`). Keeping both means parsing can be
redone without calling the API again.

Also here: the errors every source raises (one hierarchy, so callers can tell "ask again later"
from "fix something first") and the units a stored value may carry (`UNIT_LIMITS`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import polars as pl

TIME = pl.Datetime("us", "UTC")

LONG_SCHEMA: dict[str, pl.DataType] = {
    "interval_start_utc": TIME,
    "region": pl.String(),
    "series": pl.String(),
    "value": pl.Float64(),
    "units": pl.String(),
    "source": pl.String(),
}

RAW_RESPONSE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "dataset": pl.String(),
    "request_url": pl.String(),
    "request_params": pl.String(),
    "page": pl.Int32(),
    "status": pl.Int32(),
    "content_type": pl.String(),
    "fetched_at_utc": TIME,
    "body": pl.Binary(),
}

REDACTED = "REDACTED"


# --- errors ------------------------------------------------------------------------------------
# Every error a source raises is a SourceError; messages never hold secrets. What matters to a
# caller is whether asking again can help: TransientSourceError says yes (the raw assets ask
# Dagster for a retry), everything else says "fix something first" and fails at once.


class SourceError(RuntimeError):
    """An upstream answered something the platform cannot use. The message never holds secrets."""


class TransientSourceError(SourceError):
    """Upstream trouble that a later attempt can fix (the raw assets retry the step)."""


class RetriesExhausted(TransientSourceError):
    """Transient trouble outlasted the client's bounded retries; worth another try later."""


class RetryableSourceError(SourceError):
    """A transient upstream condition; raise it from a response check to trigger a retry."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestRefused(SourceError):
    """Upstream refused the request itself (HTTP 400/404, an API error code): asking the same
    again gets the same answer, so the request or the configuration must change."""


class KeyRefused(RequestRefused):
    """Upstream refused the credentials (HTTP 401/403, EIA API_KEY_INVALID and kin)."""


REFETCH_ADVICE = (
    "The stored response cannot be used: re-materialize the day's raw responses asset to fetch "
    "it again, and if the new answer fails the same way, the upstream format has changed"
)


class MalformedResponse(SourceError):
    """A response body that cannot be parsed: names the response (URL, secrets redacted) and
    what is wrong with it."""

    def __init__(self, url: str, problem: str, advice: str = REFETCH_ADVICE) -> None:
        super().__init__(f"response of {url}: {problem}. {advice}")
        self.url = url
        self.problem = problem


class RefusedValue(MalformedResponse):
    """A body that parses but holds a value the platform will not store as a number or a time:
    non-finite or non-numeric values, units it does not know, local times without an offset."""


# --- units -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitLimits:
    """The range no real value in this unit can leave (None: no physical limit on that side)."""

    min: float | None
    max: float | None
    why: str


UNIT_LIMITS: dict[str, UnitLimits] = {
    "MW": UnitLimits(
        -1e7,
        1e7,
        "10 TW, more than all the generating capacity on Earth (about 9 TW); real EIA glitches "
        "(a 3.6e6 MW SWPP hour in June 2023) stay inside and are screened downstream",
    ),
    "USD/MWh": UnitLimits(
        -1e5, 1e5, "ten times any US market's price cap or penalty price (all below $10,000/MWh)"
    ),
    "degC": UnitLimits(-100, 100, "air and dew point on Earth (records -89.2 and 56.7 degC)"),
    "%": UnitLimits(0, 100, "a share (humidity, cloud cover)"),
    "km/h": UnitLimits(0, 500, "a speed; the strongest gust measured is 408 km/h"),
    "W/m2": UnitLimits(0, 1500, "sunlight; the solar constant above the air is 1361 W/m2"),
    "deg": UnitLimits(0, 360, "a direction"),
    "mm": UnitLimits(0, 1000, "precipitation per hour (the record is about 305 mm)"),
    "hPa": UnitLimits(300, 1100, "air pressure at the surface or sea level"),
    "m3/m3": UnitLimits(0, 1, "a volume share (soil moisture)"),
    "fraction": UnitLimits(None, None, "an index without a physical limit"),
}
"""Every unit a stored raw value may carry. Parsers refuse any other unit (the value would be
stored unconverted and compared with values in another unit); the raw contracts' blocking
`value_physically_possible` check refuses values outside these limits."""


@dataclass(frozen=True)
class RawResponse:
    """One HTTP response as received, secrets already redacted from URL, params and body."""

    source: str
    dataset: str
    request_url: str
    request_params: dict[str, object]
    page: int
    status: int
    content_type: str
    fetched_at_utc: datetime
    body: bytes


def redact(text: str, secrets: list[str | None]) -> str:
    """Replace every non-empty secret in `text` with REDACTED."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def load_json(body: bytes | str) -> object:
    """`json.loads` for upstream bodies: NaN/Infinity literals are refused (JSON has no such
    numbers; Python would accept them), and a body nested too deeply is a ValueError too."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def empty_long() -> pl.DataFrame:
    return pl.DataFrame(schema=LONG_SCHEMA)


def raw_responses_frame(responses: list[RawResponse]) -> pl.DataFrame:
    """The table a raw-responses asset stores: one row per HTTP response."""
    return pl.DataFrame(
        {
            "source": [r.source for r in responses],
            "dataset": [r.dataset for r in responses],
            "request_url": [r.request_url for r in responses],
            "request_params": [json.dumps(r.request_params, sort_keys=True) for r in responses],
            "page": [r.page for r in responses],
            "status": [r.status for r in responses],
            "content_type": [r.content_type for r in responses],
            "fetched_at_utc": [r.fetched_at_utc for r in responses],
            "body": [r.body for r in responses],
        },
        schema=RAW_RESPONSE_SCHEMA,
    )


def responses_from_frame(frame: pl.DataFrame) -> list[RawResponse]:
    """Inverse of `raw_responses_frame`, so stored responses can be parsed again."""
    return [
        RawResponse(
            source=row["source"],
            dataset=row["dataset"],
            request_url=row["request_url"],
            request_params=json.loads(row["request_params"]),
            page=row["page"],
            status=row["status"],
            content_type=row["content_type"],
            fetched_at_utc=row["fetched_at_utc"],
            body=row["body"],
        )
        for row in frame.iter_rows(named=True)
    ]
