"""The packaged table of US EIA-930 balancing authorities and its validating loader.

What belongs here: reading and checking `sources/data/balancing_authorities.csv`, our own table
of the 67 US balancing authorities that EIA listed in its Hourly Electric Grid Monitor "Balancing
Authority Acronyms" table (September 2019). One row per BA:

- `code`, `name`: the EIA-930 respondent code and EIA's name for it.
- `timezone`: the IANA civil time zone *of the representative point* (what people's clocks, and so
  the daily load shape, follow). This is not always the zone a BA reports local-time data in: EIA
  lists EPE, PNM and WACM under "Arizona" time (no DST) while their points observe Mountain time
  with DST, and IPCO (Boise, Mountain), LGEE (Louisville, Eastern) and SEPA (Elberton, Eastern)
  sit one hour away from the zone EIA gives them.
- `eia_region`: the EIA-930 region respondent code (CAL, CAR, CENT, FLA, MIDA, MIDW, NE, NY, NW, SE,
  SW, TEN, TEX).
- `latitude`, `longitude`, `point_description`, `point_source`: the representative weather point (a
  city or town in the BA's area) and where its coordinates come from (a GeoNames id, CC BY 4.0).
- `typical_peak_mw`: order of magnitude of the BA's peak hourly demand, used by the synthetic world
  to scale its series. Generation-only BAs (flagged in `point_description`) report no demand in
  reality; the table gives them a nominal small load of tens to a hundred MW.
- `reports_demand`: false for those generation-only BAs. EIA-930 respondents all report net
  generation and total interchange; only the others report demand. The completeness contracts
  (`sources/registry.py`) expect demand only where this is true.

Pure: no Dagster import.
"""

from __future__ import annotations

import io
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "name": pl.String(),
    "timezone": pl.String(),
    "eia_region": pl.String(),
    "latitude": pl.Float64(),
    "longitude": pl.Float64(),
    "point_description": pl.String(),
    "point_source": pl.String(),
    "typical_peak_mw": pl.Float64(),
    "reports_demand": pl.Boolean(),
}

EIA_REGIONS = frozenset(
    {"CAL", "CAR", "CENT", "FLA", "MIDA", "MIDW", "NE", "NY", "NW", "SE", "SW", "TEN", "TEX"}
)

_PACKAGE = "energy_assets.sources"
_RESOURCE = ("data", "balancing_authorities.csv")


def load_balancing_authorities() -> pl.DataFrame:
    """The packaged balancing-authority table, validated, in code order (a fresh copy each call)."""
    return _load_cached().clone()


@cache
def _load_cached() -> pl.DataFrame:
    resource = resources.files(_PACKAGE).joinpath(*_RESOURCE)
    text = resource.read_bytes()
    frame = pl.read_csv(io.BytesIO(text), schema_overrides=SCHEMA, infer_schema=False)
    return validate_balancing_authorities(frame, origin=str(resource))


def validate_balancing_authorities(
    frame: pl.DataFrame, origin: str = "balancing-authority table"
) -> pl.DataFrame:
    """Check a balancing-authority table and return it cast to `SCHEMA`, sorted by code.

    Raises ValueError naming the file, the column and the offending values.
    """
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"{origin}: missing column(s) {missing}; expected exactly {list(SCHEMA)}")
    extra = [c for c in frame.columns if c not in SCHEMA]
    if extra:
        raise ValueError(f"{origin}: unexpected column(s) {extra}; expected {list(SCHEMA)}")
    try:
        frame = frame.select(pl.col(c).cast(t, strict=True) for c, t in SCHEMA.items())
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"{origin}: a column does not cast to its type {SCHEMA}: {exc}") from exc

    nulls = {c: n for c, n in zip(frame.columns, frame.null_count().row(0), strict=True) if n}
    if nulls:
        raise ValueError(f"{origin}: empty cells per column {nulls}; every cell must be filled")

    dupes = frame.filter(pl.col("code").is_duplicated())["code"].unique().sort().to_list()
    if dupes:
        raise ValueError(f"{origin}: column code has duplicates {dupes}; codes must be unique")

    bad_codes = frame.filter(~pl.col("code").str.contains(r"^[A-Z0-9]{2,6}$"))["code"].to_list()
    if bad_codes:
        raise ValueError(f"{origin}: column code has malformed values {bad_codes}")

    bad_zones = [z for z in frame["timezone"].unique().to_list() if not _is_iana_zone(z)]
    if bad_zones:
        raise ValueError(
            f"{origin}: column timezone has values that are not IANA zones {sorted(bad_zones)}"
            " (use names such as America/Los_Angeles)"
        )

    bad_regions = sorted(set(frame["eia_region"].to_list()) - EIA_REGIONS)
    if bad_regions:
        raise ValueError(
            f"{origin}: column eia_region has unknown codes {bad_regions}; "
            f"expected one of {sorted(EIA_REGIONS)}"
        )

    for column, low, high in (("latitude", -90.0, 90.0), ("longitude", -180.0, 180.0)):
        out = frame.filter(~pl.col(column).is_between(low, high))
        if out.height:
            raise ValueError(
                f"{origin}: column {column} outside [{low}, {high}] for "
                f"{dict(zip(out['code'], out[column], strict=True))}"
            )

    bad_peak = frame.filter(pl.col("typical_peak_mw") <= 0)
    if bad_peak.height:
        raise ValueError(
            f"{origin}: column typical_peak_mw must be > 0, got "
            f"{dict(zip(bad_peak['code'], bad_peak['typical_peak_mw'], strict=True))}"
        )
    return frame.sort("code")


def _is_iana_zone(name: str) -> bool:
    if "/" not in name:  # "EST", "UTC" and friends exist in tzdata but are not civil zones
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
