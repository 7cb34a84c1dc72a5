"""Offline stand-in for CAISO OASIS `SingleZip`, serving a World's load and LMP as OASIS zips.

What belongs here: the OASIS wire format only. Data comes from `World.caiso_load` and
`World.caiso_lmp`; this module turns it into what oasis.caiso.com sends, copied from the recorded
zips in `shared/realdata/api` and `docs/api_formats.md` section 2:

- HTTP 200 with a zip (`application/x-zip-compressed`, `Content-Disposition: inline;
  filename=<name>.zip;`). CSV members named `<first>_<last>_<REPORT>_<MKT>_<stamp>_v<N>.csv`
  (PRC_LMP v12: one member per price component, `..._PRC_LMP_DAM_<TYPE>_v12.csv`), the real
  column order of each report, LF line endings, MW printed like OASIS (`0`, `1275.14`).
- Rows are NOT sorted: grouped by operating day and TAC area / node (and LMP_TYPE), hours in a
  scrambled but deterministic order inside each group, GROUP numbering the groups.
- OPR_DT/OPR_HR/OPR_INTERVAL in Pacific prevailing time, hour-ending: no HE03 on the
  spring-forward day, HE25 for the repeated 01:00-02:00 on the fall-back day.
- Exactly the intervals starting in [startdatetime, enddatetime) are served, like the recorded
  PRC_LMP zip (UTC day 2020-01-02: HE17-HE24 of one operating day, HE01-HE16 of the next).
  Member names carry the Pacific operating dates of the first and the last hour.
- Errors as OASIS sends them: an XML member inside the zip. Invalid parameters ->
  `INVALID_REQUEST.xml.zip` with ERR_CODE 1001/1002/1005/1017/1020; more than 31 days -> 1004;
  an empty selection -> ERR_CODE 1000 "No data returned for the specified selection" in a
  report-named `.xml` member. `retry_later_fault()` injects the GroupZip-style 1015 answer.
- Without `resultformat=6` the answer is the XML report format (REPORT_HEADER/REPORT_DATA).

Not modelled: GroupZip, RTM market runs, SLD_REN_FCST, rate limiting (inject 429 with FaultPlan).
PRC_LMP v12 members use the v1 column order, the only layout recorded.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from energy_assets.offline.server import Fault, Handler, StandInRequest, StandInResponse
from energy_assets.offline.world import World

PREFIX = "/oasisapi/"
PACIFIC = "America/Los_Angeles"
ZIP_TYPE = "application/x-zip-compressed"
MAX_DAYS = 31
MAX_NODES = 10

SLD_FCST_COLUMNS = [
    "INTERVALSTARTTIME_GMT",
    "INTERVALENDTIME_GMT",
    "LOAD_TYPE",
    "OPR_DT",
    "OPR_HR",
    "OPR_INTERVAL",
    "MARKET_RUN_ID",
    "TAC_AREA_NAME",
    "LABEL",
    "XML_DATA_ITEM",
    "POS",
    "MW",
    "EXECUTION_TYPE",
    "GROUP",
]
PRC_LMP_COLUMNS = [
    "INTERVALSTARTTIME_GMT",
    "INTERVALENDTIME_GMT",
    "OPR_DT",
    "OPR_HR",
    "OPR_INTERVAL",
    "NODE_ID_XML",
    "NODE_ID",
    "NODE",
    "MARKET_RUN_ID",
    "LMP_TYPE",
    "XML_DATA_ITEM",
    "PNODE_RESMRID",
    "GRP_TYPE",
    "POS",
    "MW",
    "GROUP",
]
LOAD_DATA_ITEMS = {
    "ACTUAL": "SYS_FCST_ACT_MW",
    "DAM": "SYS_FCST_DA_MW",
    "2DA": "SYS_FCST_2DA_MW",
    "7DA": "SYS_FCST_7DA_MW",
}
# Only the 7DA label is recorded; the others follow its pattern.
LOAD_LABELS = {
    "ACTUAL": "Total Actual Hourly Integrated Load",
    "DAM": "Demand Forecast Day Ahead",
    "2DA": "Demand Forecast 2-Day Ahead",
    "7DA": "Demand Forecast 7-Day Ahead",
}
# POS per TAC area as in the recorded 7DA zip; every other area there has 0.8.
TAC_POS = {
    "CA ISO-TAC": "0",
    "PGE-TAC": "0.1",
    "SCE-TAC": "0.2",
    "MWD-TAC": "0.3",
    "SDGE-TAC": "0.4",
    "VEA-TAC": "0.5",
}
LMP_DATA_ITEMS = {
    "LMP": "LMP_PRC",
    "MCC": "LMP_CONG_PRC",
    "MCE": "LMP_ENE_PRC",
    "MCL": "LMP_LOSS_PRC",
    "MGHG": "LMP_GHG_PRC",
}
VERSIONS = {"SLD_FCST": {"1"}, "PRC_LMP": {"1", "12"}}
DISCLAIMER = (
    "The contents of these pages are subject to change without notice.  Decisions based on "
    "information contained within the California ISO's web site are the visitor's sole "
    "responsibility."
)
NO_DATA = (1000, "No data returned for the specified selection")
RETRY_LATER = (1015, "GroupZip DownLoad is in Processing, Please Submit request after Sometime")
_OASIS_TIME = re.compile(r"^\d{8}T\d{2}:\d{2}-0000$")


# --- error documents ---------------------------------------------------------------------------


def oasis_error_xml(code: int, description: str, now: datetime | None = None) -> bytes:
    """The OASIS error document, in the exact layout quoted in api_formats.md section 2."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    time_date = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<m:OASISReport xmlns:m="http://www.caiso.com/soa/OASISReport_v1.xsd">\n'
        f"<m:MessageHeader><m:TimeDate>{time_date}</m:TimeDate><m:Source>OASIS</m:Source>"
        "<m:Version>v20131201</m:Version></m:MessageHeader>\n"
        "<m:MessagePayload><m:RTO><m:name>CAISO</m:name><m:DISCLAIMER_ITEM><m:DISCLAIMER>"
        f"{DISCLAIMER}</m:DISCLAIMER></m:DISCLAIMER_ITEM>\n"
        f"<m:ERROR><m:ERR_CODE>{code}</m:ERR_CODE><m:ERR_DESC>{description}</m:ERR_DESC>"
        "</m:ERROR>\n"
        "</m:RTO></m:MessagePayload></m:OASISReport>\n"
    ).encode()


def zip_members(members: list[tuple[str, bytes]], stamp: datetime | None = None) -> bytes:
    """A deflated zip of (name, bytes) members, stamped like OASIS's (DOS attributes)."""
    when = (stamp or datetime.now(UTC)).astimezone(UTC)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in members:
            info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            archive.writestr(info, body)
    return buffer.getvalue()


def oasis_error_zip(code: int, description: str, member: str = "INVALID_REQUEST.xml") -> bytes:
    return zip_members([(member, oasis_error_xml(code, description))])


def _zip_response(body: bytes, filename: str) -> StandInResponse:
    return StandInResponse(
        200,
        body,
        {"Content-Type": ZIP_TYPE, "Content-Disposition": f"inline; filename={filename};"},
    )


def invalid_request(code: int, description: str) -> StandInResponse:
    return _zip_response(oasis_error_zip(code, description), "INVALID_REQUEST.xml.zip")


def retry_later_fault(times: int = 1, skip: int = 0) -> Fault:
    """A FaultPlan entry making OASIS answer ERR_CODE 1015 ("retry later") `times` times."""
    return Fault(
        kind="status",
        path_prefix=PREFIX,
        times=times,
        skip=skip,
        status=200,
        body=oasis_error_zip(*RETRY_LATER),
    )


# --- time columns ------------------------------------------------------------------------------


def operating_days(start: datetime, end: datetime) -> tuple[date, date]:
    """First and last Pacific operating day touched by [start, end)."""
    tz = ZoneInfo(PACIFIC)
    return start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz).date()


def with_oasis_time_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the GMT interval columns and OPR_DT/OPR_HR/OPR_INTERVAL from `interval_start_utc`.

    Hour-ending Pacific prevailing time: HE = local clock hour of the start + 1, except the
    second 01:00 of the fall-back day (a standard-time hour whose local midnight was daylight
    time), which is HE25.
    """
    start = pl.col("interval_start_utc")
    local = start.dt.convert_time_zone(PACIFIC)
    offset = local.dt.replace_time_zone(None) - start.dt.replace_time_zone(None)
    midnight = local.dt.truncate("1d")  # wall-clock midnight of the same local date
    midnight_offset = midnight.dt.replace_time_zone(None) - midnight.dt.convert_time_zone(
        "UTC"
    ).dt.replace_time_zone(None)
    repeated = (local.dt.hour() == 1) & (offset != midnight_offset)
    return frame.with_columns(
        start.dt.strftime("%Y-%m-%dT%H:%M:%S-00:00").alias("INTERVALSTARTTIME_GMT"),
        (start + pl.duration(hours=1))
        .dt.strftime("%Y-%m-%dT%H:%M:%S-00:00")
        .alias("INTERVALENDTIME_GMT"),
        local.dt.strftime("%Y-%m-%d").alias("OPR_DT"),
        pl.when(repeated)
        .then(pl.lit(25))
        .otherwise(local.dt.hour().cast(pl.Int32) + 1)
        .cast(pl.String)
        .alias("OPR_HR"),
        pl.lit("0").alias("OPR_INTERVAL"),
    )


def oasis_number(value: pl.Expr, decimals: int) -> pl.Expr:
    """MW text as OASIS prints it: shortest decimal, `0` rather than `0.0`, empty when null."""
    text = value.round(decimals).cast(pl.String)
    return text.str.replace(r"\.0$", "").str.replace(r"^-0$", "0")


def _scrambled(frame: pl.DataFrame, group_keys: list[str], seed: int) -> pl.DataFrame:
    """Groups in key order, hours inside each group in a deterministic scrambled order."""
    shuffle = pl.concat_str([*group_keys, "OPR_HR"], separator="|").hash(seed)
    ordered = frame.sort([*group_keys, shuffle.alias("_shuffle")])
    group = pl.concat_str(group_keys, separator="|")
    return ordered.with_columns(group.alias("_group")).with_columns(
        (pl.col("_group") != pl.col("_group").shift(1))
        .fill_null(True)
        .cum_sum()
        .cast(pl.String)
        .alias("GROUP")
    )


# --- the handler -------------------------------------------------------------------------------


class OasisStandIn:
    """The `/oasisapi/` handler over one World."""

    def __init__(
        self, world: World, seed: int = 11, now: Callable[[], datetime] | None = None
    ) -> None:
        self.world = world
        self.seed = seed
        self.now = now or (lambda: datetime.now(UTC))

    def __call__(self, request: StandInRequest) -> StandInResponse:
        if request.path.rstrip("/") != "/oasisapi/SingleZip":
            return StandInResponse(
                404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"}
            )
        queryname = request.one("queryname")
        if queryname not in VERSIONS:
            return invalid_request(1005, f"Invalid or unknown report name: {queryname}")
        version = request.one("version")
        if version not in VERSIONS[queryname]:
            return invalid_request(1020, f"Version is missing or invalid: {version}")
        start_text, end_text = request.one("startdatetime"), request.one("enddatetime")
        if not all(t and _OASIS_TIME.match(t) for t in (start_text, end_text)):
            return invalid_request(1002, "Invalid date time format, expected yyyymmddThh24:mi-0000")
        start = datetime.strptime(str(start_text), "%Y%m%dT%H:%M-0000").replace(tzinfo=UTC)
        end = datetime.strptime(str(end_text), "%Y%m%dT%H:%M-0000").replace(tzinfo=UTC)
        if end <= start:
            return invalid_request(1001, "Invalid parameters: enddatetime before startdatetime")
        if end - start > timedelta(days=MAX_DAYS):
            return invalid_request(1004, "Data can be requested for period of 31 days only")
        resultformat = request.one("resultformat")
        if resultformat not in (None, "6"):
            return invalid_request(1001, f"Invalid parameters: resultformat={resultformat}")
        market = request.one("market_run_id")
        if queryname == "SLD_FCST":
            if market not in LOAD_DATA_ITEMS:
                return invalid_request(1001, f"Invalid parameters: market_run_id={market}")
            return self._answer(queryname, market, version, start, end, resultformat, None)
        if market != "DAM":
            return invalid_request(1001, f"Invalid parameters: market_run_id={market}")
        nodes = [n for n in (request.one("node") or "").split(",") if n]
        grp_type = request.one("grp_type")
        if not nodes and grp_type not in ("ALL", "ALL_APNODES"):
            return invalid_request(1001, "Invalid parameters: node or grp_type is required")
        if len(nodes) > MAX_NODES:
            return invalid_request(1017, "Maximum of 10 nodes can be requested")
        return self._answer(queryname, market, version, start, end, resultformat, nodes or None)

    def _answer(
        self,
        report: str,
        market: str,
        version: str,
        start: datetime,
        end: datetime,
        resultformat: str | None,
        nodes: list[str] | None,
    ) -> StandInResponse:
        first, last = operating_days(start, end)
        span = f"{first:%Y%m%d}_{last:%Y%m%d}"
        now = self.now()
        stamp = now.strftime("%Y%m%d_%H_%M_%S")
        if report == "SLD_FCST":
            rows = self.world.caiso_load(start, end).filter(pl.col("market_run_id") == market)
        else:
            rows = self.world.caiso_lmp(start, end)
            if nodes is not None:
                rows = rows.filter(pl.col("node").is_in(nodes))
        if rows.height == 0:
            member = f"{span}_{report}_{market}_v{version}.xml"
            return _zip_response(
                zip_members([(member, oasis_error_xml(*NO_DATA, now))], now), f"{member}.zip"
            )
        rows = with_oasis_time_columns(rows)
        if resultformat is None:
            member = f"{span}_{report}_{market}_{stamp}_v{version}.xml"
            body = xml_report(report, market, rows)
            return _zip_response(zip_members([(member, body)], now), f"{member}.zip")
        if report == "SLD_FCST":
            members = [(f"{span}_SLD_FCST_{market}_{stamp}_v{version}.csv", self._load_csv(rows))]
        else:
            table = self._lmp_table(rows)
            if version == "1":
                members = [(f"{span}_PRC_LMP_DAM_{stamp}_v1.csv", _csv(table))]
            else:  # v12 splits the components into one member each
                members = [
                    (f"{span}_PRC_LMP_DAM_{lmp_type}_v{version}.csv", _csv(part))
                    for (lmp_type,), part in table.group_by("LMP_TYPE", maintain_order=True)
                ]
        base = members[0][0].rsplit(".", 1)[0]
        return _zip_response(zip_members(members, now), f"{base}.zip")

    def _load_csv(self, rows: pl.DataFrame) -> bytes:
        table = rows.with_columns(
            pl.lit("0").alias("LOAD_TYPE"),
            pl.col("market_run_id").alias("MARKET_RUN_ID"),
            pl.col("tac_area_name").alias("TAC_AREA_NAME"),
            pl.col("market_run_id").replace_strict(LOAD_LABELS).alias("LABEL"),
            pl.col("market_run_id").replace_strict(LOAD_DATA_ITEMS).alias("XML_DATA_ITEM"),
            pl.col("tac_area_name")
            .replace_strict(TAC_POS, default="0.8", return_dtype=pl.String)
            .alias("POS"),
            oasis_number(pl.col("mw"), 2).alias("MW"),
            pl.col("market_run_id").alias("EXECUTION_TYPE"),
        )
        table = _scrambled(table, ["OPR_DT", "TAC_AREA_NAME"], self.seed)
        return _csv(table.select(SLD_FCST_COLUMNS))

    def _lmp_table(self, rows: pl.DataFrame) -> pl.DataFrame:
        table = rows.with_columns(
            pl.col("node").alias("NODE_ID_XML"),
            pl.col("node").alias("NODE_ID"),
            pl.col("node").alias("NODE"),
            pl.lit("DAM").alias("MARKET_RUN_ID"),
            pl.col("lmp_type").alias("LMP_TYPE"),
            pl.col("lmp_type")
            .replace_strict(LMP_DATA_ITEMS, default="LMP_PRC", return_dtype=pl.String)
            .alias("XML_DATA_ITEM"),
            pl.col("node").alias("PNODE_RESMRID"),
            pl.lit("ALL_APNODES").alias("GRP_TYPE"),
            pl.lit("0").alias("POS"),
            oasis_number(pl.col("mw"), 5).alias("MW"),
        )
        table = _scrambled(table, ["OPR_DT", "NODE", "LMP_TYPE"], self.seed)
        return table.select(PRC_LMP_COLUMNS)


def _csv(table: pl.DataFrame) -> bytes:
    return table.write_csv(null_value="", line_terminator="\n").encode()


def xml_report(report: str, market: str, rows: pl.DataFrame) -> bytes:
    """The XML result format (no resultformat), shaped like the recorded pyiso fixture."""
    if report == "SLD_FCST":
        item = pl.col("market_run_id").replace_strict(LOAD_DATA_ITEMS)
        resource = pl.col("tac_area_name")
    else:
        item = pl.col("lmp_type").replace_strict(
            LMP_DATA_ITEMS, default="LMP_PRC", return_dtype=pl.String
        )
        resource = pl.col("node")
    data = rows.select(
        pl.concat_str(
            pl.lit("<REPORT_DATA>\n<DATA_ITEM>"),
            item,
            pl.lit("</DATA_ITEM>\n<RESOURCE_NAME>"),
            resource,
            pl.lit("</RESOURCE_NAME>\n<OPR_DATE>"),
            pl.col("OPR_DT"),
            pl.lit("</OPR_DATE>\n<INTERVAL_NUM>"),
            pl.col("OPR_HR"),
            pl.lit("</INTERVAL_NUM>\n<INTERVAL_START_GMT>"),
            pl.col("INTERVALSTARTTIME_GMT"),
            pl.lit("</INTERVAL_START_GMT>\n<INTERVAL_END_GMT>"),
            pl.col("INTERVALENDTIME_GMT"),
            pl.lit("</INTERVAL_END_GMT>\n<VALUE>"),
            oasis_number(pl.col("mw"), 5).fill_null(""),
            pl.lit("</VALUE>\n</REPORT_DATA>\n"),
        ).alias("xml")
    )["xml"]
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OASISReport xmlns="http://www.caiso.com/soa/OASISReport_v1.xsd">\n'
        "<MessageHeader>\n"
        f"<TimeDate>{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}-00:00</TimeDate>\n"
        "<Source>OASIS</Source>\n<Version>v20140401</Version>\n</MessageHeader>\n"
        "<MessagePayload>\n<RTO>\n<name>CAISO</name>\n<REPORT_ITEM>\n<REPORT_HEADER>\n"
        f"<SYSTEM>OASIS</SYSTEM>\n<TZ>PPT</TZ>\n<REPORT>{report}</REPORT>\n"
        f"<MKT_TYPE>{market}</MKT_TYPE>\n<UOM>{'MW' if report == 'SLD_FCST' else 'US$'}</UOM>\n"
        "<INTERVAL>ENDING</INTERVAL>\n<SEC_PER_INTERVAL>3600</SEC_PER_INTERVAL>\n"
        "</REPORT_HEADER>\n"
    )
    footer = (
        "</REPORT_ITEM>\n<DISCLAIMER_ITEM>\n"
        f"<DISCLAIMER>{DISCLAIMER}</DISCLAIMER>\n"
        "</DISCLAIMER_ITEM>\n</RTO>\n</MessagePayload>\n</OASISReport>\n"
    )
    return (header + "".join(data.to_list()) + footer).encode()


def caiso_handlers(world: World) -> dict[str, Handler]:
    """Handlers for a StandInServer: OASIS under `/oasisapi/`."""
    return {PREFIX: OasisStandIn(world)}
