"""What every upstream source hands to the platform: verbatim responses and parsed long tables.

A source module (`sources/eia.py`, `sources/caiso.py`, `sources/openmeteo.py`) fetches
`RawResponse`s, which keep the bytes exactly as received except for redacted secrets, and parses
them into the long table every raw asset stores (`LONG_SCHEMA`). Keeping both means parsing can be
redone without calling the API again.
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
