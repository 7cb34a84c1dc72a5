"""Every stored table's contract, one declaration each, keyed by asset key path.

The IO manager looks contracts up here by asset key; `energy_assets/checks.py` turns each one into
asset checks; `python -m energy_assets.contracts.docs` renders them into the README's data
dictionary. Add a table: declare its Contract here and register it in CONTRACTS.
"""

from __future__ import annotations

from energy_assets.contracts.core import Bounds, Column, Contract

TIME_KEY = Column(
    name="interval_start_utc",
    dtype="datetime_utc",
    description="Start of the hour the value describes, UTC (the platform's one convention).",
    nullable=False,
    role="key",
)
REGION = Column(
    name="region",
    dtype="string",
    description="EIA respondent (balancing authority), CAISO TAC area or hub, or the BA whose "
    "representative weather point this is.",
    nullable=False,
    role="key",
)
SERIES = Column(
    name="series",
    dtype="string",
    description="What is measured, e.g. demand, net_generation, generation_sun, "
    "interchange_to_MISO, caiso_load_actual, lmp, temperature_2m.",
    nullable=False,
    role="key",
)
UNITS = Column(name="units", dtype="string", description="Unit of `value`.", nullable=False)
SOURCE = Column(name="source", dtype="string", description="Upstream source name.", nullable=False)
COPY_INDEX = Column(
    name="copy_index",
    dtype="int16",
    description="0 for the first row upstream sent for this key, 1, 2... for repeats (kept, not "
    "dropped: the aligned layer resolves duplicates).",
    nullable=False,
    role="key",
)
ANY_VALUE_BOUNDS = Bounds(
    min=-1e6,
    max=1e6,
    severity="warn",
    why="No US balancing authority, hub price or weather variable gets near 1 GW-scale 1e6; "
    "raw values are kept as sent and screened downstream, so this only warns.",
)

RAW_RESPONSES = Contract(
    name="raw_responses",
    description="Verbatim upstream HTTP responses (secrets redacted), one row per response, kept "
    "so parsing can be redone without calling the API. Multi-day responses (OASIS chunks) are "
    "stored in every day they cover.",
    columns=(
        Column(name="partition_date", dtype="date", description="UTC day.", nullable=False),
        Column(name="source", dtype="string", description="Upstream source.", nullable=False),
        Column(name="dataset", dtype="string", description="Route or report.", nullable=False),
        Column(
            name="request_url",
            dtype="string",
            description="Request URL, secrets replaced by REDACTED.",
            nullable=False,
        ),
        Column(name="request_params", dtype="string", description="JSON of the parameters."),
        Column(name="page", dtype="int32", description="Page or chunk index.", nullable=False),
        Column(name="status", dtype="int32", description="HTTP status.", nullable=False),
        Column(name="content_type", dtype="string", description="Response Content-Type."),
        Column(
            name="fetched_at_utc",
            dtype="datetime_utc",
            description="When the response arrived.",
            nullable=False,
        ),
        Column(name="body", dtype="binary", description="Response bytes, secrets redacted."),
    ),
    primary_key=("partition_date", "dataset", "request_url"),
    partition_column="partition_date",
)


def raw_long(name: str, description: str) -> Contract:
    """The parsed long table every raw source asset stores."""
    return Contract(
        name=name,
        description=description,
        columns=(
            TIME_KEY,
            REGION,
            SERIES,
            COPY_INDEX,
            Column(
                name="value",
                dtype="float64",
                description="Value as upstream sent it (null when upstream sent null).",
                bounds=ANY_VALUE_BOUNDS,
            ),
            UNITS,
            SOURCE,
        ),
        primary_key=("interval_start_utc", "region", "series", "copy_index"),
        partition_column="interval_start_utc",
    )


RAW_EIA930 = raw_long(
    "raw_eia930",
    "EIA-930 hourly grid monitor rows from EIA API v2 (region-data, fuel-type-data, "
    "interchange-data), period converted from UTC hour-ending to interval start. Units MW.",
)
RAW_CAISO = raw_long(
    "raw_caiso",
    "CAISO OASIS SLD_FCST load (actual and DAM/2DA/7DA forecasts) by TAC area and day-ahead "
    "hourly LMP with its components at the three trading hubs.",
)
RAW_WEATHER = raw_long(
    "raw_weather",
    "Open-Meteo archive hourly weather at each balancing authority's representative point.",
)

CONTRACTS: dict[str, Contract] = {
    "raw/eia930_responses": RAW_RESPONSES,
    "raw/eia930": RAW_EIA930,
    "raw/caiso_responses": RAW_RESPONSES,
    "raw/caiso": RAW_CAISO,
    "raw/weather_responses": RAW_RESPONSES,
    "raw/weather": RAW_WEATHER,
}


def contract_for(asset_key_path: str) -> Contract:
    try:
        return CONTRACTS[asset_key_path]
    except KeyError:
        raise KeyError(
            f"no contract declared for asset {asset_key_path!r}: declare one in "
            "energy_assets/contracts/tables.py and register it in CONTRACTS"
        ) from None
