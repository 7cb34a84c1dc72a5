"""Every stored table's contract, one declaration each, keyed by asset key path.

The IO manager looks contracts up here by asset key; `energy_assets/checks.py` turns each one into
asset checks; `python -m energy_assets.contracts.docs` renders them into the README's data
dictionary. Add a table: declare its Contract here and register it in CONTRACTS. The raw tables
are not listed by hand: `raw/<source>_responses`, `_revisions` and `raw/<source>` of every source
registered in sources/registry.py are derived from its spec when looked up, so a new source needs
no edit here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from functools import lru_cache
from typing import TypeVar

import polars as pl

from energy_assets.contracts.core import (
    Bounds,
    Column,
    Completeness,
    Contract,
    OpenColumns,
    dtype_name,
)
from energy_assets.contracts.evaluate import Finding, PlannedCheck
from energy_assets.sources.base import UNIT_LIMITS, responses_from_frame
from energy_assets.sources.registry import (
    SOURCES,
    SourceSettings,
    SourceSpec,
    expected_groups,
    upstream_no_data,
)
from energy_assets.sources.revisions import REVISIONS_SCHEMA
from energy_assets.transform.align import ALIGNED_SCHEMA
from energy_assets.transform.clean import BA_PEAK_FACTOR, CLEAN_SCHEMA
from energy_assets.transform.features import FEATURE_COLUMNS
from energy_assets.transform.reconcile import CONSTRAINTS, RECONCILED_SCHEMA, identity_residuals

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
    "raw values are kept as sent and screened downstream, so this only warns (the blocking "
    "check is value_physically_possible).",
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
    # when it arrived, and the URL (offline, the stand-in's port); request_params names the request
    volatile_columns=("fetched_at_utc", "request_url"),
)


def raw_long(name: str, description: str, completeness: Completeness | None = None) -> Contract:
    """The parsed long table every raw source asset stores."""
    return Contract(
        name=name,
        description=description,
        completeness=completeness,
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


@lru_cache(maxsize=64)
def raw_contract(spec: SourceSpec) -> Contract:
    """The parsed table of a registered source, with what a complete day of it holds."""
    return raw_long(
        f"raw_{spec.name}",
        spec.description,
        Completeness(sources=(spec.name,), expected=spec.expected_description),
    )


def from_schema(schema: dict, described: dict[str, Column]) -> tuple[Column, ...]:
    """Columns of a transform's output schema (dtype declared there), with their meaning here.

    The dtype comes from the transform, so the two cannot drift; every column must be described.
    """
    missing = [name for name in schema if name not in described]
    if missing:
        raise ValueError(f"columns {missing} have no description in contracts/tables.py")
    return tuple(
        described[name].model_copy(update={"dtype": dtype_name(dtype)})
        for name, dtype in schema.items()
    )


def _described(name: str, description: str, **kwargs) -> Column:
    return Column(name=name, dtype="string", description=description, **kwargs)


RAW_REVISIONS = Contract(
    name="raw_revisions",
    description="What upstream revised: each row of a raw long table whose value a "
    "re-extraction of its day changed, added or removed (sources/revisions.py), with both values "
    "and both fetch times. Appended per re-extraction: a day's file holds every revision of that "
    "day's data; an unchanged re-extraction adds nothing.",
    columns=from_schema(
        REVISIONS_SCHEMA,
        {
            "interval_start_utc": TIME_KEY,
            "region": REGION,
            "series": SERIES,
            "copy_index": COPY_INDEX,
            "change": _described(
                "change",
                "changed (both extractions have the row), added (only the new one: a late "
                "hour) or removed (only the old one).",
                nullable=False,
                role="provenance",
            ),
            "value_old": _described(
                "value_old",
                "Value in the earlier extraction (null: it was null, or the row was added). "
                "Not bounds-checked here: the raw table's checks saw it when it was stored.",
            ),
            "value_new": _described(
                "value_new",
                "Value in the re-extraction (null: it is null, or the row was removed).",
                bounds=ANY_VALUE_BOUNDS,
            ),
            "units": UNITS,
            "source": SOURCE,
            "fetched_at_utc_old": _described(
                "fetched_at_utc_old",
                "When the earlier extraction's response with the row arrived (added rows: its "
                "latest response of the day; null if it stored none).",
                role="provenance",
            ),
            "fetched_at_utc_new": _described(
                "fetched_at_utc_new",
                "When the re-extraction's response with the row arrived (removed rows: its "
                "latest response of the day).",
                nullable=False,
                role="key",
            ),
        },
    ),
    primary_key=("interval_start_utc", "region", "series", "copy_index", "fetched_at_utc_new"),
    partition_column="interval_start_utc",
)

ALIGNED = Contract(
    name="aligned_series",
    description="Every source on one UTC hourly grid (interval start), one row per region, "
    "series and hour; duplicates resolved, sub-hourly rows averaged, per-BA quirks applied "
    "(transform/data/quirks.csv); missing hours present with a null value.",
    columns=from_schema(
        ALIGNED_SCHEMA,
        {
            "interval_start_utc": TIME_KEY,
            "region": REGION,
            "series": SERIES,
            "value": _described(
                "value",
                "Value for the hour; null when no source reported it.",
                bounds=ANY_VALUE_BOUNDS,
            ),
            "units": UNITS,
            "source": SOURCE,
            "n_reported": _described(
                "n_reported",
                "Reported intervals that fed the hour (1 hourly, up to 12 for 5-minute data; "
                "0 = missing).",
                nullable=False,
                bounds=Bounds(min=0, max=12, why="An hour holds at most twelve 5-minute rows."),
            ),
            "is_duplicate_resolved": _described(
                "is_duplicate_resolved",
                "Upstream sent disagreeing copies of this hour; the documented rule chose.",
                nullable=False,
            ),
            "is_quirk_adjusted": _described(
                "is_quirk_adjusted",
                "A quirk-table fix moved, flipped or scaled the value.",
                nullable=False,
            ),
        },
    ),
    primary_key=("interval_start_utc", "region", "series"),
    partition_column="interval_start_utc",
    hourly_complete_by=("region", "series"),
    completeness=Completeness(
        expected="every registered source's expected groups (see its raw table); a group whose "
        "every hour is null fails"
    ),
)

IMPUTED = Contract(
    name="imputed_series",
    description="Aligned series screened with the Ruggles et al. (2020) anomaly screens and "
    "gap-filled; the reported value stays beside the filled one, with the flag that rejected "
    "it and the method that filled it.",
    columns=from_schema(
        CLEAN_SCHEMA,
        {
            "interval_start_utc": TIME_KEY,
            "region": REGION,
            "series": SERIES,
            "value": _described(
                "value",
                "Filled value (observed where it passed the screens); null only "
                "where no method could fill it.",
                bounds=ANY_VALUE_BOUNDS,
            ),
            "value_reported": _described(
                "value_reported", "The aligned (reported) value, null where missing."
            ),
            "flag": _described(
                "flag",
                "OKAY, MISSING, or the screen that rejected the reported value "
                "(NEG_OR_ZERO, IDENTICAL_RUN, GLOBAL_DEM, ..., OUT_OF_BOUNDS).",
                nullable=False,
                role="provenance",
            ),
            "method": _described(
                "method",
                "observed, or how the value was filled (linear, blend, hold, unfilled).",
                nullable=False,
                role="provenance",
            ),
            "is_observed": _described(
                "is_observed",
                "The value is the reported one and passed every screen.",
                nullable=False,
                role="mask",
            ),
            "units": UNITS,
            "source": SOURCE,
        },
    ),
    primary_key=("interval_start_utc", "region", "series"),
    partition_column="interval_start_utc",
    hourly_complete_by=("region", "series"),
)

RECONCILED = Contract(
    name="reconciled_series",
    description="The EIA-930 balance series of each balancing authority (demand, net "
    "generation, total interchange, interchange with each neighbour, generation by fuel) "
    "adjusted minimally, weighted by the screens' confidence, so that NG - D - TI = 0, TI = sum "
    "of the pairwise interchange, ID(A->B) = -ID(B->A) and NG = sum of the fuel mix hold in "
    "every hour (transform/reconcile.py), with the imputed value, the adjustment and the "
    "constraint that moved it beside the result.",
    columns=from_schema(
        RECONCILED_SCHEMA,
        {
            "interval_start_utc": TIME_KEY,
            "region": REGION,
            "series": _described(
                "series",
                "demand, net_generation, total_interchange, interchange_to_<BA> or "
                "generation_<fuel>.",
                nullable=False,
                role="key",
            ),
            "value": _described(
                "value",
                "Reconciled value (MW); null only where the input was null and no identity "
                "determined it.",
                unit="MW",
                bounds=ANY_VALUE_BOUNDS,
            ),
            "value_imputed": _described(
                "value_imputed",
                "The value of imputed/series (MW), the reconciliation's input.",
                unit="MW",
            ),
            "adjustment_mw": _described(
                "adjustment_mw",
                "value - value_imputed (MW); null where the input was null.",
                unit="MW",
                role="provenance",
            ),
            "moved_by": _described(
                "moved_by",
                "The constraint that contributed most to the adjustment: "
                f"{', '.join(CONSTRAINTS)}.",
                nullable=False,
                role="provenance",
            ),
            "is_spike": _described(
                "is_spike",
                "A value the screens passed whose adjustment stood out of the day's for its "
                "series (non-demand series only); it was made cheap to move and solved again.",
                nullable=False,
                role="provenance",
            ),
            "flag": IMPUTED.column("flag"),
            "method": IMPUTED.column("method"),
            "is_observed": IMPUTED.column("is_observed"),
            "units": UNITS,
            "source": SOURCE,
        },
    ),
    primary_key=("interval_start_utc", "region", "series"),
    partition_column="interval_start_utc",
    hourly_complete_by=("region", "series"),
)

_FEATURE_BOUNDS = {
    "temperature_c": Bounds(min=-60, max=60, severity="warn", why="US surface air."),
    "demand_mw": Bounds(min=0, why="Filled demand is never negative."),
}
FEATURES = Contract(
    name="features_hourly",
    description="One row per balancing authority and hour: the filled demand target, its "
    "observed mask, calendar, known-in-advance covariates and past-only lags and rolling "
    "statistics (computed across partition boundaries).",
    columns=tuple(
        Column(
            name=name,
            dtype=dtype_name(spec.dtype),
            description=spec.description,
            unit=spec.unit or None,
            nullable=spec.role not in ("key", "mask"),
            role=spec.role,
            bounds=_FEATURE_BOUNDS.get(name),
        )
        for name, spec in FEATURE_COLUMNS.items()
    ),
    primary_key=("interval_start_utc", "region"),
    partition_column="interval_start_utc",
    hourly_complete_by=("region",),
)

# Columns the ML dataset and its ring segments share (mask polarity: 1 = counts / is so).
TARGET_Z = Column(name="target_z", dtype="float32", description="Normalised target.", role="target")
IS_OBSERVED = Column(
    name="is_observed",
    dtype="bool",
    description="1 = target observed.",
    nullable=False,
    role="mask",
)
IS_PAD = Column(
    name="is_pad",
    dtype="bool",
    description="1 = no data for the hour (dataset padding).",
    nullable=False,
    role="mask",
)
LOSS_WEIGHT = Column(
    name="loss_weight",
    dtype="float32",
    description="1 = counts in the loss (observed and not pad).",
    nullable=False,
    role="mask",
    bounds=Bounds(min=0, max=1),
)

ML_DATASET = Contract(
    name="ml_dataset",
    description="MLX-ready series per balancing authority on one hourly grid, z-scored with "
    "training-split statistics (stored in the file metadata), with masks and the window index "
    "(forecast origins) as columns. Windows are not materialized.",
    columns=(
        TIME_KEY,
        REGION,
        Column(
            name="region_index",
            dtype="int32",
            description="Row of the series tensor.",
            nullable=False,
            role="key",
        ),
        Column(
            name="t",
            dtype="int32",
            description="Hours since 2015-07-01 00:00 UTC (the global grid).",
            nullable=False,
            role="key",
        ),
        Column(
            name="demand_mw",
            dtype="float64",
            description="Target in MW (null on pad).",
            unit="MW",
            role="target",
        ),
        TARGET_Z,
        IS_OBSERVED,
        IS_PAD,
        LOSS_WEIGHT,
        Column(
            name="window_split",
            dtype="string",
            description="train/val/test when the hour is a kept forecast origin.",
        ),
        Column(
            name="window_target_observed_fraction",
            dtype="float32",
            description="Observed share of the origin's target hours.",
        ),
        Column(
            name="window_context_pad_fraction",
            dtype="float32",
            description="Padded share of the origin's context.",
        ),
    ),
    open_columns=(
        OpenColumns(
            prefix="known_z__",
            dtype="float32",
            role="known_in_advance",
            description="Normalised known-in-advance covariate.",
        ),
        OpenColumns(
            prefix="past_z__",
            dtype="float32",
            role="past_only",
            description="Normalised past-only covariate.",
        ),
        OpenColumns(
            prefix="valid__",
            dtype="bool",
            role="mask",
            description="1 = the covariate had a value at this hour (0: missing, z is 0).",
        ),
    ),
    primary_key=("interval_start_utc", "region"),
    partition_column="interval_start_utc",
)

_INT = {"dtype": "int32", "nullable": False, "role": "key"}
ML_RING_SEGMENTS = Contract(
    name="ml_ring_segments",
    description="Tokens of packed, padded sequences laid out for P ring-attention ranks "
    "(contiguous, striped or zigzag), in layout order; the permutation, its inverse and the "
    "normalisation live in the file metadata.",
    columns=(
        TIME_KEY,
        REGION,
        Column(name="t", dtype="int32", description="Dataset step (null on ring padding)."),
        Column(name="sequence_id", description="Packed sequence.", **_INT),
        Column(name="rank", description="Device rank that holds the token.", **_INT),
        Column(name="local_index", description="Index within the rank's slice.", **_INT),
        Column(name="position_id", description="Global position in the sequence.", **_INT),
        Column(
            name="segment_id", description="Packed series (region) within the sequence.", **_INT
        ),
        Column(name="position_in_segment", description="Position within its segment.", **_INT),
        IS_PAD,
        Column(
            name="is_ring_pad",
            dtype="bool",
            description="1 = padding to a multiple of 2P.",
            nullable=False,
            role="mask",
        ),
        IS_OBSERVED,
        LOSS_WEIGHT,
        TARGET_Z,
    ),
    open_columns=ML_DATASET.open_columns[:2],
    primary_key=("sequence_id", "position_id"),
    partition_column=None,
)

_STAT = {"dtype": "float64", "nullable": False, "role": "payload"}
ML_NORMALIZATION = Contract(
    name="ml_normalization",
    description="Per-region z-score statistics of the ML target and covariates, fitted on the "
    "training window of the pipeline config (observed target values, non-null covariates); "
    "the window and split dates are in the file metadata.",
    columns=(
        REGION,
        Column(
            name="feature", dtype="string", description="Source column.", nullable=False, role="key"
        ),
        Column(
            name="role",
            dtype="string",
            description="target, known or past.",
            nullable=False,
            role="payload",
        ),
        Column(name="mean", description="Mean over the training window.", **_STAT),
        Column(name="std", description="Population std (1.0 when floored).", **_STAT),
        Column(
            name="n_used",
            dtype="int64",
            description="Rows the statistic used.",
            nullable=False,
            role="payload",
        ),
        Column(
            name="pooled",
            dtype="bool",
            description="Fell back to all regions' rows.",
            nullable=False,
            role="provenance",
        ),
        Column(
            name="std_floored",
            dtype="bool",
            description="std was null or ~0, set to 1.",
            nullable=False,
            role="provenance",
        ),
    ),
    primary_key=("region", "feature"),
    partition_column=None,
)

ML_FORECASTER = Contract(
    name="ml_forecaster",
    description="Weights of the day-ahead forecaster (energy_assets/ml/forecaster.py), one row "
    "per parameter array; the model config, input names, statistics fingerprint, data version "
    "of its inputs (the features days read and the statistics) and the training curve live in "
    "the file metadata.",
    columns=(
        Column(
            name="name",
            dtype="string",
            description="Dotted parameter name (e.g. blocks.0.qkv.weight).",
            nullable=False,
            role="key",
        ),
        Column(
            name="shape", dtype="string", description="JSON list of the dimensions.", nullable=False
        ),
        Column(name="dtype", dtype="string", description="Element type (float32).", nullable=False),
        Column(
            name="values",
            dtype="binary",
            description="The array's elements, C order, little-endian.",
            nullable=False,
            role="payload",
        ),
    ),
    primary_key=("name",),
    partition_column=None,
)

_MAPE = {"dtype": "float64", "unit": "%", "role": "payload", "bounds": Bounds(min=0)}
ML_FORECAST_EVAL = Contract(
    name="ml_forecast_eval",
    description="The test split scored per balancing authority: MAPE of the forecaster, of the "
    "BA's own day-ahead forecast and of the seasonal-naive forecast (same hour a week before), "
    "on the same hours; test days and the model's data version in the file metadata.",
    columns=(
        REGION,
        Column(
            name="n_windows",
            dtype="int32",
            description="Test forecast origins.",
            nullable=False,
            role="payload",
        ),
        Column(
            name="n_hours",
            dtype="int32",
            description="Hours scored (target observed, every available forecast present).",
            nullable=False,
            role="payload",
        ),
        Column(name="mape_model", description="MAPE of ml/forecaster.", **_MAPE),
        Column(
            name="mape_day_ahead_forecast",
            description="MAPE of the BA's day-ahead forecast (null: the BA publishes none).",
            **_MAPE,
        ),
        Column(
            name="mape_seasonal_naive",
            description="MAPE of the demand one week earlier.",
            **_MAPE,
        ),
    ),
    primary_key=("region",),
    partition_column=None,
)

T = TypeVar("T")


class WithRawTables(MutableMapping[str, T]):
    """Entries per asset key: those of every registered source's raw tables, derived from the
    registry at each lookup (a source added at run time is seen), then the declared ones."""

    def __init__(self, raw: Callable[[SourceSpec], dict[str, T]], declared: dict[str, T]) -> None:
        self._raw = raw
        self._declared = declared

    def _all(self) -> dict[str, T]:
        derived = {k: v for spec in SOURCES.values() for k, v in self._raw(spec).items()}
        return {**derived, **self._declared}

    def __getitem__(self, key: str) -> T:
        return self._all()[key]

    def __setitem__(self, key: str, value: T) -> None:
        self._declared[key] = value

    def __delitem__(self, key: str) -> None:
        del self._declared[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def _raw_contracts(spec: SourceSpec) -> dict[str, Contract]:
    return {
        f"raw/{spec.name}_responses": RAW_RESPONSES,
        f"raw/{spec.name}_revisions": RAW_REVISIONS,
        f"raw/{spec.name}": raw_contract(spec),
    }


CONTRACTS: MutableMapping[str, Contract] = WithRawTables(_raw_contracts, {
    "aligned/series": ALIGNED,
    "imputed/series": IMPUTED,
    "reconciled/series": RECONCILED,
    "features/hourly": FEATURES,
    "ml/normalization": ML_NORMALIZATION,
    "ml/dataset": ML_DATASET,
    "ml/ring_segments": ML_RING_SEGMENTS,
    "ml/forecaster": ML_FORECASTER,
    "ml/forecast_eval": ML_FORECAST_EVAL,
})  # fmt: skip
RAW_EIA930 = CONTRACTS["raw/eia930"]
RAW_CAISO = CONTRACTS["raw/caiso"]
RAW_WEATHER = CONTRACTS["raw/weather"]


def contract_for(asset_key_path: str) -> Contract:
    try:
        return CONTRACTS[asset_key_path]
    except KeyError:
        raise KeyError(
            f"no contract declared for asset {asset_key_path!r}: declare one in "
            "energy_assets/contracts/tables.py and register it in CONTRACTS (a raw table: "
            "register its source in energy_assets/sources/registry.py)"
        ) from None


def expected_groups_for(asset_key_path: str, settings: SourceSettings) -> pl.DataFrame | None:
    """The groups a complete day of this table holds under these settings (None: no rule)."""
    rule = contract_for(asset_key_path).completeness
    if rule is None:
        return None
    names = rule.sources if rule.sources is not None else tuple(SOURCES)
    frames = [expected_groups(SOURCES[name], settings) for name in names]
    if any("day" in f.columns for f in frames):  # a recording's per-day coverage; null: every day
        return pl.concat(frames, how="diagonal_relaxed").unique().sort("day", "region", "series")
    return pl.concat(frames).unique().sort("region", "series")


# --- hand-written checks beyond what a contract's columns imply --------------------------

IMPUTED_SHARE_WARN = 0.2
FORECAST_RATIO_WARN = (2 / 3, 3 / 2)
"""A day whose observed demand is, at the median hour, outside this multiple of the BA's own
day-ahead forecast: one of the two is wrong (a unit or scale change, a stuck or shifted series),
and the forecast is the main covariate of the imputation. On the Ruggles BAs 2015-2019 (hours
the screens pass, against the reported forecast) it marks 91 of 11,329 BA-days: PJM in July 2015
(demand 2.8x its forecast), one SC day and 64 scattered TEPC days."""


def _imputed_share(contract: Contract, frame: pl.DataFrame) -> Finding:
    shares = frame.group_by("region", "series").agg(
        (~pl.col("is_observed")).mean().alias("imputed_share"), pl.len().alias("hours")
    )
    offending = shares.filter(pl.col("imputed_share") > IMPUTED_SHARE_WARN)
    worst = float(shares["imputed_share"].max() or 0.0) if shares.height else 0.0
    return offending.sort("imputed_share", descending=True), {"max_imputed_share": worst}


def _demand_within_ba_bounds(contract: Contract, frame: pl.DataFrame) -> Finding:
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    peaks = load_balancing_authorities().select(
        pl.col("code").alias("region"), pl.col("typical_peak_mw").cast(pl.Float64)
    )
    rows = frame.select("interval_start_utc", "region", "demand_mw").join(
        peaks, on="region", how="inner"
    )
    outside = (pl.col("demand_mw") <= 0) | (
        pl.col("demand_mw") > BA_PEAK_FACTOR * pl.col("typical_peak_mw")
    )
    return rows.filter(outside.fill_null(False)), {}


def _demand_tracks_forecast(contract: Contract, frame: pl.DataFrame) -> Finding:
    lo, hi = FORECAST_RATIO_WARN
    ratio = pl.col("demand_mw") / pl.col("demand_forecast_da_mw")
    days = (
        frame.filter(pl.col("is_observed") & (pl.col("demand_forecast_da_mw") > 0))
        .group_by(pl.col("interval_start_utc").dt.date().alias("day"), "region")
        .agg(ratio.median().alias("median_ratio"), pl.len().alias("observed_hours"))
        .filter(pl.col("observed_hours") >= 12)  # a day with a few observed hours says little
    )
    outside = days.filter((pl.col("median_ratio") < lo) | (pl.col("median_ratio") > hi))
    figures = {}
    if days.height:
        figures = {
            "min_median_ratio": float(days["median_ratio"].min()),
            "max_median_ratio": float(days["median_ratio"].max()),
        }
    return outside.sort("day", "region"), figures


def _value_physically_possible(contract: Contract, frame: pl.DataFrame) -> Finding:
    limits = pl.DataFrame(
        {
            "units": list(UNIT_LIMITS),
            "_min": [u.min for u in UNIT_LIMITS.values()],
            "_max": [u.max for u in UNIT_LIMITS.values()],
            "_known": [True] * len(UNIT_LIMITS),
        },
        schema={"units": pl.String, "_min": pl.Float64, "_max": pl.Float64, "_known": pl.Boolean},
    )
    value = pl.col("value")
    rows = frame.join(limits, on="units", how="left")
    impossible = (
        pl.col("_known").is_null()
        | (value.is_not_null() & ~value.is_finite())
        | (value < pl.col("_min")).fill_null(False)
        | (value > pl.col("_max")).fill_null(False)
    )
    offending = rows.filter(impossible).drop("_min", "_max", "_known")
    return offending.sort("interval_start_utc", "region", "series"), {}


IDENTITY_TOLERANCE_MW = 1.0


def _identities_hold(contract: Contract, frame: pl.DataFrame) -> Finding:
    residuals = identity_residuals(frame)
    worst = float(residuals["residual_mw"].abs().max() or 0.0) if residuals.height else 0.0
    offending = residuals.filter(pl.col("residual_mw").abs() > IDENTITY_TOLERANCE_MW)
    figures = {"max_abs_residual_mw": worst, "identities_checked": float(residuals.height)}
    return offending.sort(pl.col("residual_mw").abs(), descending=True), figures


VALUE_PHYSICALLY_POSSIBLE = PlannedCheck(
    "value_physically_possible",
    "error",
    "Every value is finite and inside the physical limits of its unit, and every unit is one "
    "the platform knows (sources/base.py UNIT_LIMITS: MW within +-1e7, degC within [-100, 100], "
    "% within [0, 100] ...). Blocking: such a value is a parse or unit error, not a reading.",
    _value_physically_possible,
)


def upstream_answered_data(spec: SourceSpec) -> PlannedCheck:
    """Warn on stored responses that were upstream's "no data" answer: the day is not complete
    because upstream had nothing, which the parsed table's blocking `complete_day` then names."""

    def run(contract: Contract, frame: pl.DataFrame) -> Finding:
        if frame.height == 0:
            return None, {}
        empty = upstream_no_data(spec, responses_from_frame(frame))
        return pl.DataFrame({"upstream_no_data": empty}, schema={"upstream_no_data": pl.String}), {
            "upstream_no_data": float(len(empty))
        }

    return PlannedCheck(
        "upstream_answered_data",
        "warn",
        'No stored response is upstream\'s "no data" answer (EIA total 0 or null data, OASIS '
        "error 1000, Open-Meteo hours of nulls); such a day is recorded as having none.",
        run,
    )


def _raw_checks(spec: SourceSpec) -> dict[str, list[PlannedCheck]]:
    return {
        f"raw/{spec.name}_responses": [upstream_answered_data(spec)],
        f"raw/{spec.name}": [VALUE_PHYSICALLY_POSSIBLE],
    }


EXTRA_CHECKS: MutableMapping[str, list[PlannedCheck]] = WithRawTables(_raw_checks, {
    "imputed/series": [
        PlannedCheck(
            "imputed_share_below_threshold",
            "warn",
            f"No region and series has more than {IMPUTED_SHARE_WARN:.0%} of its hours "
            "imputed in the checked partitions.",
            _imputed_share,
            range_columns=("region", "series", "is_observed"),
        )
    ],
    "reconciled/series": [
        PlannedCheck(
            "balance_identities_hold",
            "error",
            f"In every hour the identities hold within {IDENTITY_TOLERANCE_MW:g} MW wherever all "
            "their values are present: D - (NG - TI), TI - sum of interchange_to_*, NG - sum of "
            "generation_*, ID(A->B) + ID(B->A) (transform/balance.py's tables over the stored "
            "rows, independently of the solver).",
            _identities_hold,
        )
    ],
    "features/hourly": [
        PlannedCheck(
            "demand_within_balancing_authority_bounds",
            "error",
            f"Filled demand is positive and below {BA_PEAK_FACTOR:g}x the balancing "
            "authority's typical peak (sources/data/balancing_authorities.csv).",
            _demand_within_ba_bounds,
        ),
        PlannedCheck(
            "demand_tracks_day_ahead_forecast",
            "warn",
            f"On every day with 12 or more observed hours, a region's median ratio of observed "
            f"demand to its day-ahead forecast lies between {FORECAST_RATIO_WARN[0]:.2f} and "
            f"{FORECAST_RATIO_WARN[1]:.2f}.",
            _demand_tracks_forecast,
        ),
    ],
})  # fmt: skip
