"""CAISO OASIS: the SingleZip client and the parser of its zipped CSV reports.

What belongs here: building OASIS requests (31-day chunks, >= 5 s apart, GMT request windows),
telling OASIS error zips from data zips, and turning the CSV members of SLD_FCST (load by TAC
area), PRC_LMP (day-ahead hourly LMP) and SLD_REN_FCST (wind/solar forecast by trading hub) into
the platform's long table. No Dagster here; the raw assets call `CAISOClient.fetch` and
`parse_caiso_responses`.

Time: OASIS gives every row `INTERVALSTARTTIME_GMT` (an explicit `-00:00` start), which becomes
`interval_start_utc` as is. `OPR_DT`/`OPR_HR` repeat the same hour as a Pacific operating day and
hour-ending in Pacific prevailing time: the spring-forward day has no HE03 and the fall-back day
has an HE25 (the repeated hour). The parser checks both columns against the GMT start and stops
on any disagreement, because a silent hour shift would poison every downstream join. The OASIS
spec calls HE25 "the repeating hour", i.e. the second 01:00-02:00; a numbering that runs 1..25 in
time order on that day is accepted too, since no recorded fall-back file exists to settle it.

Errors: OASIS answers HTTP 200 with a zip that holds an XML member instead of the CSV. ERR_CODE
1000 means "no data" (an empty result, not a failure); 1003 and 1015 mean "retry later"; anything
else is a hard error. HTTP 429 means back off (see `docs/api_formats.md` section 2).
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from xml.etree import ElementTree

import polars as pl
import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from energy_assets.sources.base import (
    LONG_SCHEMA,
    MalformedResponse,
    RawResponse,
    RefusedValue,
    RequestRefused,
    RetryableSourceError,
    empty_long,
)
from energy_assets.sources.http import HttpFetcher, RetryPolicy

SOURCE = "caiso_oasis"
PACIFIC = "America/Los_Angeles"
OASIS_TIME_FORMAT = "%Y%m%dT%H:%M-0000"
GMT_COLUMN_FORMAT = "%Y-%m-%dT%H:%M:%S%:z"

TRADING_HUBS = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND"]
CAISO_TOTAL_TAC_AREA = "CA ISO-TAC"  # SLD_FCST's total of the CAISO balancing area
LOAD_MARKET_RUN_IDS = ["ACTUAL", "DAM", "2DA", "7DA"]

LOAD_SERIES = {
    "ACTUAL": "caiso_load_actual",
    "DAM": "caiso_load_forecast_dam",
    "2DA": "caiso_load_forecast_2da",
    "7DA": "caiso_load_forecast_7da",
}
# MGHG (the greenhouse-gas component) appears in PRC_LMP v12 for some nodes; it is kept under its
# own name rather than dropped, so LMP = MCE + MCC + MCL + MGHG can still be checked downstream.
LMP_SERIES = {
    "LMP": "lmp",
    "MCE": "lmp_energy",
    "MCC": "lmp_congestion",
    "MCL": "lmp_loss",
    "MGHG": "lmp_ghg",
}

EMPTY_RESULT_CODES = frozenset({1000})
RETRY_LATER_CODES = frozenset({1003, 1015})
MAX_NODES_PER_REQUEST = 10  # OASIS error 1017 above this
MAX_DAYS_PER_REQUEST = 31  # OASIS error 1004 above this

Dataset = Literal["load", "lmp"]


class OASISError(RequestRefused):
    """An OASIS error zip (ERR_CODE in an XML member) that is neither "no data" nor "retry"."""

    def __init__(self, message: str, code: int, description: str) -> None:
        super().__init__(message)
        self.code = code
        self.description = description


class CAISOConfig(BaseModel):
    """Everything the OASIS client needs; defaults are the live service's published limits."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://oasis.caiso.com/oasisapi"
    min_interval_s: float = Field(
        default=5.0, ge=0.0, description="Pause between the end of one request and the next."
    )
    max_chunk_days: int = Field(default=31, ge=1, le=MAX_DAYS_PER_REQUEST)
    tac_areas: list[str] | None = Field(
        default=None, description="TAC areas kept by `parse_caiso_responses`; None keeps all."
    )
    hubs: list[str] = Field(default_factory=lambda: list(TRADING_HUBS), min_length=1)
    market_run_ids: list[str] = Field(
        default_factory=lambda: list(LOAD_MARKET_RUN_IDS), min_length=1
    )
    load_version: int = 1
    # gridstatus asks PRC_LMP for version 12 (the current one); version 1 is the layout of the
    # recorded 2020 zip. The parser reads either by column name.
    lmp_version: int = 12
    max_attempts: int = Field(default=5, ge=1)
    base_delay_s: float = Field(default=5.0, ge=0.0)
    max_delay_s: float = Field(default=120.0, ge=0.0)
    timeout_s: float = Field(default=120.0, gt=0.0)
    retry_seed: int | None = None

    @field_validator("market_run_ids")
    @classmethod
    def _known_market_runs(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LOAD_SERIES))
        if unknown:
            raise ValueError(
                f"market_run_ids {unknown} are not hourly SLD_FCST runs; use some of "
                f"{LOAD_MARKET_RUN_IDS}"
            )
        return value


# --- request planning ----------------------------------------------------------------------


def as_utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive datetime is refused because its zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no time zone: pass an aware UTC time")
    return value.astimezone(UTC)


def format_oasis_time(value: datetime) -> str:
    """OASIS `startdatetime`/`enddatetime` text, always in GMT: `20240101T08:00-0000`."""
    return as_utc(value, "time").strftime(OASIS_TIME_FORMAT)


def parse_oasis_time(text: str) -> datetime:
    """Inverse of `format_oasis_time`."""
    return datetime.strptime(text, OASIS_TIME_FORMAT).replace(tzinfo=UTC)


def chunk_window(start: datetime, end: datetime, max_days: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive pieces of at most `max_days` days."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end <= start:
        raise ValueError(f"empty window: end {end.isoformat()} <= start {start.isoformat()}")
    step = timedelta(days=max_days)
    chunks = []
    cursor = start
    while cursor < end:
        chunks.append((cursor, min(cursor + step, end)))
        cursor += step
    return chunks


def plan_requests(
    config: CAISOConfig, dataset: Dataset, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The SingleZip query parameters for `dataset` over [start, end), in request order."""
    plans: list[dict[str, Any]] = []
    for chunk_start, chunk_end in chunk_window(start, end, config.max_chunk_days):
        window = {
            "startdatetime": format_oasis_time(chunk_start),
            "enddatetime": format_oasis_time(chunk_end),
        }
        if dataset == "load":
            for run in config.market_run_ids:
                plans.append(
                    {
                        "queryname": "SLD_FCST",
                        "market_run_id": run,
                        **window,
                        "version": config.load_version,
                        "resultformat": 6,
                    }
                )
        elif dataset == "lmp":
            for i in range(0, len(config.hubs), MAX_NODES_PER_REQUEST):
                plans.append(
                    {
                        "queryname": "PRC_LMP",
                        "market_run_id": "DAM",
                        **window,
                        "version": config.lmp_version,
                        "resultformat": 6,
                        "node": ",".join(config.hubs[i : i + MAX_NODES_PER_REQUEST]),
                    }
                )
        else:
            raise ValueError(f"dataset must be 'load' or 'lmp', not {dataset!r}")
    return plans


# --- zips and error members ----------------------------------------------------------------


ZIP_ERRORS = (
    zipfile.BadZipFile,  # no central directory, bad CRC-32, bad magic number
    zipfile.LargeZipFile,
    EOFError,  # cut inside a member
    zlib.error,  # a corrupt deflate stream
    NotImplementedError,  # a flipped compression-method field
    RuntimeError,  # a flipped "encrypted" flag: "password required"
    ValueError,  # negative seeks and sizes from corrupt headers
    OverflowError,
    struct.error,
    UnicodeDecodeError,  # a member name flagged UTF-8 that is not
)
"""Everything `zipfile` raises for a damaged archive (found by fuzzing the recorded zips)."""


def _exception_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def read_oasis_zip(body: bytes, url: str) -> list[tuple[str, bytes]]:
    """Every member of an OASIS zip as (name, bytes), in archive order.

    Raises RetryableSourceError for a body that is not a complete, intact zip (a cut
    connection, a corrupted transfer or an HTML maintenance page): asking again is the only
    useful reaction.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return [(info.filename, archive.read(info)) for info in archive.infolist()]
    except ZIP_ERRORS as exc:
        head = body[:60]
        raise RetryableSourceError(
            f"GET {url} returned {len(body)} bytes that are not a complete zip, or a corrupt one "
            f"({_exception_name(exc)}: {exc}; starts with {head!r}); OASIS always answers with a "
            "zip, so the download was cut or corrupted or the service is in maintenance: "
            "retry later"
        ) from exc


def is_xml_member(name: str, body: bytes) -> bool:
    return name.lower().endswith(".xml") or body.lstrip()[:5] == b"<?xml"


def oasis_xml_error(body: bytes, where: str = "an OASIS XML member") -> tuple[int, str] | None:
    """(ERR_CODE, ERR_DESC) of an OASIS XML error document, None if it holds no ERROR."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError, LookupError) as exc:  # LookupError: encoding
        raise MalformedResponse(where, f"OASIS XML member is not well-formed XML ({exc})") from None
    code_text = desc = None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]  # the namespace prefix varies (m:, none)
        if tag == "ERR_CODE":
            code_text = (element.text or "").strip()
        elif tag == "ERR_DESC":
            desc = (element.text or "").strip()
    if code_text is None:
        return None
    try:
        code = int(code_text)
    except ValueError:
        raise MalformedResponse(where, f"OASIS ERR_CODE {code_text!r} is not a number") from None
    return code, desc or ""


def classify_xml_member(name: str, body: bytes, url: str) -> None:
    """Return quietly for "no data"; raise for everything else an XML member can mean."""
    error = oasis_xml_error(body, f"{url}, member {name}")
    if error is None:
        raise RequestRefused(
            f"GET {url}: member {name} is an OASIS XML report, but the client reads CSV; "
            "request resultformat=6 (the XML format, with INTERVAL ENDING and REPORT_DATA "
            "items, is not parsed here)"
        )
    code, desc = error
    if code in EMPTY_RESULT_CODES:
        return
    message = f"GET {url}: OASIS error {code} ({desc!r}) in member {name}"
    if code in RETRY_LATER_CODES:
        raise RetryableSourceError(f"{message}; OASIS asks to retry later")
    raise OASISError(
        f"{message}. Check queryname, market_run_id, version, the GMT window (at most 31 "
        "days) and at most 10 nodes per request",
        code,
        desc,
    )


def check_oasis_response(response: requests.Response) -> None:
    """The fetcher's body check: retry cut zips and 'retry later' errors, fail on the rest."""
    url = response.url
    if response.status_code != 200:
        # 429 and 5xx never get here (the fetcher retries them): this is a refused request.
        raise RequestRefused(
            f"GET {url} answered HTTP {response.status_code}: {response.text[:300]!r}. Check "
            "the base URL and the query (queryname, version, market_run_id, the GMT window)"
        )
    for name, body in read_oasis_zip(response.content, url):
        if is_xml_member(name, body):
            classify_xml_member(name, body, url)


# --- pacing ----------------------------------------------------------------------------------


class PacedSession:
    """A `requests.Session` stand-in that keeps `min_interval_s` between requests.

    The gap is measured from the end of the previous request (OASIS counts requests, and a slow
    answer should not let the next one start early), with an injectable clock and sleep so tests
    can prove the waits without waiting. Every attempt is paced, retries included.
    """

    def __init__(
        self,
        session: requests.Session,
        min_interval_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.session = session
        self.min_interval_s = min_interval_s
        self.sleep = sleep
        self.clock = clock
        self._last_end: float | None = None
        self.waits: list[float] = []

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        if self.min_interval_s > 0 and self._last_end is not None:
            wait = self._last_end + self.min_interval_s - self.clock()
            if wait > 0:
                self.waits.append(wait)
                self.sleep(wait)
        try:
            return self.session.get(url, **kwargs)
        finally:
            self._last_end = self.clock()


# --- client --------------------------------------------------------------------------------


class CAISOClient:
    """Fetches OASIS SingleZip responses, verbatim, for a UTC window.

    `fetch` returns one RawResponse per request; bodies are the zips as received (OASIS needs no
    key, so there is nothing to redact).
    """

    def __init__(
        self,
        config: CAISOConfig | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or CAISOConfig()
        self.session = PacedSession(
            session or requests.Session(), self.config.min_interval_s, sleep, clock
        )
        policy = RetryPolicy.from_config(self.config)
        # Pacing lives in PacedSession (injectable clock), so the fetcher's own is off.
        self.fetcher = HttpFetcher(policy=policy, session=self.session, sleep=sleep)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/SingleZip"

    def plan(self, dataset: Dataset, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return plan_requests(self.config, dataset, start, end)

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> list[RawResponse]:
        """Every response for `dataset` ("load" or "lmp") with interval starts in [start, end).

        The window goes to OASIS in GMT as given, so a UTC day is asked for exactly (no Pacific
        operating-day rounding); windows longer than `max_chunk_days` are split.
        """
        responses = []
        for page, params in enumerate(self.plan(dataset, start, end)):
            response = self.fetcher.get(self.url, params=params, check=check_oasis_response)
            responses.append(
                self.fetcher.record(SOURCE, dataset, self.url, dict(params), page, response)
            )
        return responses


# --- parsing -------------------------------------------------------------------------------


def parse_caiso_responses(
    responses: Iterable[RawResponse], tac_areas: list[str] | None = None
) -> pl.DataFrame:
    """Every CSV member of every response as one long table (LONG_SCHEMA), sorted.

    Rows outside each response's own request window (`startdatetime`/`enddatetime`) are
    dropped, so a report that answers more than was asked cannot leak hours into a day.
    `tac_areas` keeps only those TAC areas of the load series (None keeps all). Repeated keys
    are kept: the raw layer numbers them.
    """
    frames = []
    for response in responses:
        window = _request_window(response)
        for name, body in read_oasis_zip_stored(response):
            if is_xml_member(name, body):
                classify_xml_member(name, body, response.request_url)
                continue
            frame = parse_oasis_csv(body, name, response.request_url)
            if window is not None:
                frame = frame.filter(
                    (pl.col("interval_start_utc") >= window[0])
                    & (pl.col("interval_start_utc") < window[1])
                )
            frames.append(frame)
    if not frames:
        return empty_long()
    out = pl.concat(frames, how="vertical")
    if tac_areas is not None:
        out = out.filter(
            ~pl.col("series").str.starts_with("caiso_load_") | pl.col("region").is_in(tac_areas)
        )
    return out.sort(["interval_start_utc", "region", "series"], maintain_order=True)


def is_no_data_zip(body: bytes) -> bool:
    """Whether a stored OASIS answer is its "no data" error (ERR_CODE 1000) and nothing else."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except (*ZIP_ERRORS, ValueError):
        return False
    codes = []
    for name, member in members:
        if not is_xml_member(name, member):
            return False
        try:
            error = oasis_xml_error(member)
        except MalformedResponse:
            return False
        codes.append(None if error is None else error[0])
    return bool(codes) and all(code in EMPTY_RESULT_CODES for code in codes)


def read_oasis_zip_stored(response: RawResponse) -> list[tuple[str, bytes]]:
    """Members of a stored response; a stored cut zip is a hard error (re-fetch the day)."""
    try:
        return read_oasis_zip(response.body, response.request_url)
    except RetryableSourceError as exc:
        raise MalformedResponse(
            response.request_url, f"stored response cannot be parsed: {exc}"
        ) from None


def _request_window(response: RawResponse) -> tuple[datetime, datetime] | None:
    params = response.request_params
    start, end = params.get("startdatetime"), params.get("enddatetime")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        return parse_oasis_time(start), parse_oasis_time(end)
    except ValueError:
        raise MalformedResponse(
            response.request_url, f"stored request window {start!r}..{end!r} is not OASIS GMT time"
        ) from None


_REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "SLD_FCST": ("TAC_AREA_NAME", "MARKET_RUN_ID"),
    "PRC_LMP": ("NODE", "LMP_TYPE"),
    "SLD_REN_FCST": ("TRADING_HUB", "RENEWABLE_TYPE", "MARKET_RUN_ID"),
}
_COMMON_COLUMNS = ("INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "OPR_DT", "OPR_HR", "MW")


def report_of(columns: list[str]) -> str | None:
    """Which report a CSV member is, judged by its column names (their order varies)."""
    present = set(columns)
    for report, needed in _REPORT_COLUMNS.items():
        if set(needed) <= present:
            return report
    return None


def parse_oasis_csv(body: bytes, member: str, url: str) -> pl.DataFrame:
    """One CSV member as long rows (no window filter), with the OPR_DT/OPR_HR cross-check.

    Raises MalformedResponse for anything unreadable, RefusedValue for a non-finite MW.
    """
    where = f"{url}, member {member}"
    try:
        return _parse_oasis_csv(body, where)
    except (pl.exceptions.PolarsError, OverflowError) as exc:
        # polars' own message names the column or line; the body is what is wrong
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MalformedResponse(
            where, f"CSV member cannot be read ({type(exc).__name__}: {first_line[:300]})"
        ) from None


def _parse_oasis_csv(body: bytes, where: str) -> pl.DataFrame:
    raw = pl.read_csv(body, infer_schema=False)
    report = report_of(raw.columns)
    if report is None:
        raise MalformedResponse(
            where, f"columns {raw.columns} match none of SLD_FCST, PRC_LMP, SLD_REN_FCST"
        )
    missing = [c for c in (*_COMMON_COLUMNS, *_REPORT_COLUMNS[report]) if c not in raw.columns]
    if missing:
        raise MalformedResponse(where, f"{report} member lacks columns {missing}")
    frame = raw.with_columns(
        _gmt("INTERVALSTARTTIME_GMT").alias("interval_start_utc"),
        _gmt("INTERVALENDTIME_GMT").alias("_end"),
        pl.col("MW").cast(pl.Float64, strict=False).alias("value"),
    )
    _require_parsed(frame, "INTERVALSTARTTIME_GMT", "interval_start_utc", where)
    _require_parsed(frame, "INTERVALENDTIME_GMT", "_end", where)
    _require_parsed(frame, "MW", "value", where)
    non_finite = frame.filter(~pl.col("value").is_finite())
    if non_finite.height:
        raise RefusedValue(
            where,
            f"{non_finite.height} rows have a non-finite MW, first {non_finite['MW'][0]!r} at "
            f"{non_finite['INTERVALSTARTTIME_GMT'][0]}",
        )
    not_hourly = frame.filter(pl.col("_end") - pl.col("interval_start_utc") != timedelta(hours=1))
    if not_hourly.height:
        row = not_hourly.row(0, named=True)
        raise MalformedResponse(
            where,
            f"{not_hourly.height} rows are not hourly intervals, first "
            f"{row['INTERVALSTARTTIME_GMT']} to {row['INTERVALENDTIME_GMT']}",
            "Only hourly reports (SLD_FCST ACTUAL/DAM/2DA/7DA, PRC_LMP DAM, SLD_REN_FCST DAM) "
            "are supported",
        )
    check_operating_hours(frame, where)

    if report == "SLD_REN_FCST":
        series = pl.concat_str(
            pl.lit("caiso_renewable_forecast_"),
            pl.col("MARKET_RUN_ID").str.to_lowercase(),
            pl.lit("_"),
            pl.col("RENEWABLE_TYPE").str.to_lowercase(),
        )
        region, units = pl.col("TRADING_HUB"), "MW"
    else:
        column, mapping = ("MARKET_RUN_ID", LOAD_SERIES)
        region, units = pl.col("TAC_AREA_NAME"), "MW"
        if report == "PRC_LMP":
            column, mapping = ("LMP_TYPE", LMP_SERIES)
            region, units = pl.col("NODE"), "USD/MWh"
        # An unknown code is a hard error: it would otherwise become rows with a null series.
        unknown = sorted(set(frame[column].drop_nulls().unique().to_list()) - set(mapping))
        if unknown or frame[column].null_count():
            raise MalformedResponse(
                where, f"{column} values {unknown or [None]} are not among {sorted(mapping)}"
            )
        series = pl.col(column).replace_strict(mapping, return_dtype=pl.String)
    return frame.select(
        pl.col("interval_start_utc"),
        region.alias("region"),
        series.alias("series"),
        pl.col("value"),
        pl.lit(units).alias("units"),
        pl.lit(SOURCE).alias("source"),
    ).cast(LONG_SCHEMA)  # type: ignore[arg-type]


def _gmt(column: str) -> pl.Expr:
    return (
        pl.col(column)
        .str.to_datetime(GMT_COLUMN_FORMAT, time_unit="us", strict=False)
        .dt.convert_time_zone("UTC")
    )


def _require_parsed(frame: pl.DataFrame, raw: str, parsed: str, where: str) -> None:
    """An empty MW is a missing value; any other text that did not parse is an error."""
    if raw == "MW":
        bad = frame.filter(pl.col(raw).is_not_null() & pl.col(parsed).is_null())
    else:
        bad = frame.filter(pl.col(parsed).is_null())
    if bad.height:
        raise MalformedResponse(
            where, f"{bad.height} rows have an unreadable {raw}, first {bad[raw][0]!r}"
        )


def check_operating_hours(frame: pl.DataFrame, where: str) -> None:
    """Raise unless OPR_DT/OPR_HR name the same hour as `interval_start_utc`.

    OPR_HR is hour-ending Pacific prevailing time: the hour starting at local 00:00 is HE01, the
    spring-forward day has no HE03, and on the fall-back day the repeated 01:00-02:00 is HE25
    (or, if OASIS numbers that day 1..25 in time order, its position: both are accepted).
    """
    start = pl.col("interval_start_utc")
    wall = start.dt.convert_time_zone(PACIFIC).dt.replace_time_zone(None)
    wall_before = (
        (start - pl.duration(hours=1)).dt.convert_time_zone(PACIFIC).dt.replace_time_zone(None)
    )
    opr_dt = pl.col("OPR_DT").str.to_date("%Y-%m-%d", strict=False)
    day_start = opr_dt.cast(pl.Datetime("us")).dt.replace_time_zone(PACIFIC)
    next_day_start = (opr_dt + pl.duration(days=1)).cast(pl.Datetime("us"))
    day_hours = (next_day_start.dt.replace_time_zone(PACIFIC) - day_start).dt.total_hours()
    checked = frame.with_columns(
        opr_dt.alias("_opr_dt"),
        pl.col("OPR_HR").cast(pl.Int32, strict=False).alias("_opr_hr"),
        wall.dt.date().alias("_expected_dt"),
        pl.when(wall == wall_before)  # the second pass through the fall-back hour
        .then(pl.lit(25))
        .otherwise(wall.dt.hour().cast(pl.Int32) + 1)
        .alias("_expected_hr"),
        ((start - day_start.dt.convert_time_zone("UTC")).dt.total_hours() + 1)
        .cast(pl.Int32)
        .alias("_position_hr"),
        day_hours.alias("_day_hours"),
    )
    ok = (pl.col("_opr_dt") == pl.col("_expected_dt")) & (
        (pl.col("_opr_hr") == pl.col("_expected_hr"))
        | ((pl.col("_day_hours") == 25) & (pl.col("_opr_hr") == pl.col("_position_hr")))
    )
    bad = checked.filter(~ok.fill_null(False))
    if bad.height:
        row = bad.row(0, named=True)
        raise MalformedResponse(
            where,
            f"OPR_DT/OPR_HR disagree with INTERVALSTARTTIME_GMT on {bad.height} rows; "
            f"first: start {row['INTERVALSTARTTIME_GMT']} has OPR_DT {row['OPR_DT']} OPR_HR "
            f"{row['OPR_HR']}, expected OPR_DT {row['_expected_dt']} OPR_HR "
            f"{row['_expected_hr']} (hour-ending, Pacific prevailing time)",
            "The report's time columns are inconsistent: do not load it; compare it with the "
            "OASIS web UI",
        )
