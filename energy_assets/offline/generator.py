"""The synthetic world: a seeded, deterministic ground truth for every offline stand-in API.

What belongs here: `GeneratorConfig` and `SyntheticWorld`, which implements the `World` protocol of
`offline/world.py` for the balancing authorities of `sources/data/balancing_authorities.csv`, and
the physics-flavoured models behind it. Wire formats belong to the API modules, not here.

Determinism and window independence
    Every random number is a hash of integers: (seed, stream, entity, knot or hour). Smooth series
    are Catmull-Rom interpolations between random knots placed every N hours since the Unix epoch,
    so the value of an hour depends only on the seed, the entity and the hour, never on the window
    that asked for it. Weather noise is interpolated in space too (random knots on a lat/lon grid),
    so nearby points share their weather.

Models (per hour, on the platform convention: interval start, UTC)
    - Weather at any (lat, lon): climate from latitude (annual mean and seasonal swing), a desert
      bump over the US Southwest (dry, clear, large diurnal range), a maritime band along the US
      West Coast (mild), a windy Great Plains bump; seasonal and diurnal cycles on local *solar*
      time (from longitude); smooth synoptic anomalies. Open-Meteo semantics: temperature, dew
      point, humidity, wind and cloud are instantaneous at the stamp; `shortwave_radiation` is the
      mean of the preceding hour (clear-sky Haurwitz model times a Kasten-Czeplak cloud factor), so
      it is 0 whenever the sun stayed below the horizon. Dew point <= temperature by construction,
      relative humidity from the Magnus formula (0-100), cloud 0-100, wind >= 0. Rounded as the
      API rounds: 0.1 degC, 1 %, 0.1 km/h, 0.1 W/m2, 1 %.
    - Demand D of a BA: typical_peak_mw x (base + heating and cooling response around 18 degC
      of the *served* temperature_2m at the BA's point) x daily shape (local civil hour, DST aware)
      x weekend/holiday dip x (1 + smooth noise), rounded to whole MW like EIA.
      Day-ahead forecast DF = D x (1 + smooth error, sd ~2.5 %).
    - Interchange: a fixed neighbour graph (`INTERCHANGE_PAIRS`, 1-4 neighbours each). Flow A->B is
      a per-pair bias plus smooth noise and a daily swing, bounded by 7.2 % of the smaller BA's
      peak, whole MW; value(B->A) = -value(A->B). TI = sum of a BA's flows; NG = D + TI (so
      D = NG - TI exactly and NG stays positive: |TI| <= 29 % of peak < D).
    - Fuel mix per BA (`FUEL_PROFILES`): NUC flat, SUN from the served shortwave radiation of the
      interval (the stamp at interval end), WND from a power curve of the served 10 m wind speed,
      BAT charging at midday and discharging in the evening (signed), OTH a share of NG, and the
      dispatchable rest (COL, NG, OIL, WAT) split by fixed weights. Variable and must-run output is
      curtailed when it would exceed NG. The largest dispatchable fuel absorbs rounding, so the
      fuels of a BA sum to NG exactly (it may be a few MW negative when dispatch is near zero).
    - CAISO: SLD_FCST ACTUAL for "CA ISO-TAC" equals CISO demand; PGE/SCE/SDGE/VEA TAC areas are
      fixed shares of it (VEA takes the remainder, so they sum to the total up to 1e-9). DAM, 2DA
      and 7DA forecasts carry smooth errors of sd 2, 3 and 5 %. PRC_LMP DAM at three trading hubs:
      MCE rises with CISO demand and a seasonal gas price, and goes negative when solar and wind
      leave little net load (spring middays); MCC and MCL per hub; LMP = MCE + MCC + MCL.

Defects (served values only; `truth_*` methods and `GeneratorConfig.clean()` give the clean world)
    Decided per row by hashing (seed, kind, row key, hour), so they are window independent too.
    - `missing_hour_rate`: the row is absent (EIA, CAISO load, CAISO LMP).
    - `null_rate`: the value is null (EIA, weather).
    - `zero_rate`: the value is 0 (EIA).
    - `negative_rate`: the value is -|value| (EIA; a 0 stays 0).
    - `spike_rate`: the value is multiplied by a factor in [3, 10) (EIA).
    - `identical_run_rate`: a run starts at this hour with this probability (unless another run
      was drawn in the 7 hours before, so runs never overlap) and the value of its first hour is
      repeated for 3-8 hours in all (EIA; runs may cross midnight).
    - `duplicate_rate`: the row is served twice, adjacent (EIA, CAISO load, CAISO LMP).
    - `revision_rate` with `vintage`: late revisions. At vintage v >= 1 a row is revised when its
      hash falls below min(1, revision_rate x v), so revisions accumulate with the vintage; a
      revised value is the clean value x (1 +/- 1-6 %), rounded, replacing any value defect of that
      row (a missing row stays missing). Vintage 0 is the first publication.
    Null, zero, negative and spike share one draw, so they never coincide and their rates are exact
    in expectation; the others use independent draws.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from energy_assets.offline.world import TIME
from energy_assets.sources.balancing_authorities import load_balancing_authorities

__all__ = [
    "CAISO_MARKETS",
    "CAISO_NODES",
    "CAISO_TAC_SHARES",
    "CAISO_TOTAL_TAC",
    "FUEL_NAMES",
    "FUEL_PROFILES",
    "INTERCHANGE_PAIRS",
    "REGION_TYPES",
    "WEATHER_UNITS",
    "WEATHER_VARIABLES",
    "FuelProfile",
    "GeneratorConfig",
    "SyntheticWorld",
    "frame_schema",
]

# ----------------------------------------------------------------------------------------------
# Facts the world is built from
# ----------------------------------------------------------------------------------------------

REGION_TYPES: dict[str, str] = {
    "D": "Demand",
    "DF": "Day-ahead demand forecast",
    "NG": "Net generation",
    "TI": "Total interchange",
}

FUEL_NAMES: dict[str, str] = {
    "BAT": "Battery storage",
    "COL": "Coal",
    "NG": "Natural Gas",
    "NUC": "Nuclear",
    "OIL": "Petroleum",
    "OTH": "Other",
    "SUN": "Solar",
    "WAT": "Hydro",
    "WND": "Wind",
}

WEATHER_VARIABLES: tuple[str, ...] = (
    "cloud_cover",
    "dew_point_2m",
    "relative_humidity_2m",
    "shortwave_radiation",
    "temperature_2m",
    "wind_speed_10m",
)
WEATHER_UNITS: dict[str, str] = {
    "cloud_cover": "%",
    "dew_point_2m": "degC",
    "relative_humidity_2m": "%",
    "shortwave_radiation": "W/m2",
    "temperature_2m": "degC",
    "wind_speed_10m": "km/h",
}

CAISO_TOTAL_TAC = "CA ISO-TAC"
# Shares of the CAISO total by TAC area (rough 2020s proportions); VEA takes the remainder.
CAISO_TAC_SHARES: dict[str, float] = {
    "PGE-TAC": 0.445,
    "SCE-TAC": 0.455,
    "SDGE-TAC": 0.093,
    "VEA-TAC": 0.007,
}
CAISO_MARKETS: tuple[str, ...] = ("2DA", "7DA", "ACTUAL", "DAM")
_CAISO_FORECAST_SD = {"DAM": 0.02, "2DA": 0.03, "7DA": 0.05}
CAISO_NODES: tuple[str, ...] = ("TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND")
_LMP_TYPES: tuple[str, ...] = ("LMP", "MCC", "MCE", "MCL")
# Per hub: (loss factor on MCE, sign of congestion at high load)
_HUB_PARAMS = {
    "TH_NP15_GEN-APND": (0.012, 1.0),
    "TH_SP15_GEN-APND": (-0.008, -1.0),
    "TH_ZP26_GEN-APND": (0.004, 0.4),
}

# A plausible, fixed neighbour graph: real adjacent pairs, capped at 4 neighbours per BA.
INTERCHANGE_PAIRS: tuple[tuple[str, str], ...] = (
    ("AEC", "SOCO"), ("AECI", "MISO"), ("AECI", "SPA"), ("AECI", "TVA"), ("AVA", "GCPD"),
    ("AVA", "IPCO"), ("AVA", "NWMT"), ("AVRN", "PACW"), ("AZPS", "IID"), ("AZPS", "PNM"),
    ("AZPS", "SRP"), ("AZPS", "TEPC"), ("BANC", "BPAT"), ("BANC", "CISO"), ("BANC", "TIDC"),
    ("BPAT", "PACW"), ("BPAT", "PGE"), ("BPAT", "PSEI"), ("CHPD", "DOPD"), ("CHPD", "GCPD"),
    ("CHPD", "PSEI"), ("CISO", "IID"), ("CISO", "LDWP"), ("CISO", "NEVP"), ("CPLE", "DUK"),
    ("CPLE", "SCEG"), ("CPLW", "DUK"), ("DEAA", "SRP"), ("DOPD", "GCPD"), ("DUK", "SC"),
    ("DUK", "YAD"), ("EEI", "MISO"), ("EEI", "TVA"), ("EPE", "PNM"), ("EPE", "TEPC"),
    ("ERCO", "SWPP"), ("FMPP", "FPC"), ("FMPP", "FPL"), ("FMPP", "GVL"), ("FMPP", "TEC"),
    ("FPC", "SEC"), ("FPC", "SOCO"), ("FPC", "TAL"), ("FPL", "HST"), ("FPL", "JEA"),
    ("FPL", "NSB"), ("GRID", "PGE"), ("GRIF", "WALC"), ("GRMA", "WALC"), ("GWA", "NWMT"),
    ("HGMA", "SRP"), ("IPCO", "NWMT"), ("IPCO", "PACE"), ("ISNE", "NYIS"), ("JEA", "SEC"),
    ("LDWP", "NEVP"), ("LDWP", "PACE"), ("LGEE", "OVEC"), ("LGEE", "PJM"), ("LGEE", "TVA"),
    ("MISO", "PJM"), ("MISO", "SWPP"), ("NEVP", "WALC"), ("NWMT", "WAUW"), ("NYIS", "PJM"),
    ("OVEC", "PJM"), ("PACE", "WACM"), ("PACW", "PGE"), ("PNM", "WACM"), ("PSCO", "SWPP"),
    ("PSCO", "WACM"), ("PSEI", "SCL"), ("PSEI", "TPWR"), ("SC", "SCEG"), ("SCL", "TPWR"),
    ("SEC", "TEC"), ("SEPA", "SOCO"), ("SOCO", "TVA"), ("SPA", "SWPP"), ("SRP", "WALC"),
    ("WACM", "WAUW"), ("WAUW", "WWA"),
)  # fmt: skip


@dataclass(frozen=True)
class FuelProfile:
    """Generation mix of one BA. Capacities are fractions of typical_peak_mw; `oth` is a share
    of net generation; col/ng/oil/wat are the weights splitting the dispatchable remainder."""

    nuc: float = 0.0
    sun: float = 0.0
    wnd: float = 0.0
    bat: float = 0.0
    oth: float = 0.0
    col: float = 0.0
    ng: float = 0.0
    oil: float = 0.0
    wat: float = 0.0


_REGION_DEFAULT_MIX: dict[str, dict[str, float]] = {
    "CAL": {"sun": 0.15, "wnd": 0.03, "oth": 0.03, "ng": 0.9, "wat": 0.1},
    "CAR": {"sun": 0.08, "oth": 0.02, "col": 0.25, "ng": 0.7, "wat": 0.05},
    "CENT": {"wnd": 0.4, "sun": 0.02, "oth": 0.01, "col": 0.4, "ng": 0.6},
    "FLA": {"sun": 0.08, "oth": 0.02, "col": 0.03, "ng": 0.95, "oil": 0.02},
    "MIDA": {"sun": 0.02, "wnd": 0.02, "oth": 0.02, "col": 0.3, "ng": 0.7},
    "MIDW": {"wnd": 0.15, "sun": 0.02, "oth": 0.01, "col": 0.55, "ng": 0.45},
    "NE": {"sun": 0.05, "wnd": 0.03, "oth": 0.06, "ng": 0.85, "oil": 0.03, "wat": 0.12},
    "NY": {"sun": 0.03, "wnd": 0.04, "oth": 0.02, "ng": 0.75, "oil": 0.02, "wat": 0.23},
    "NW": {"sun": 0.03, "wnd": 0.1, "oth": 0.02, "col": 0.2, "ng": 0.3, "wat": 0.5},
    "SE": {"sun": 0.05, "oth": 0.02, "col": 0.3, "ng": 0.65, "wat": 0.05},
    "SW": {"sun": 0.2, "wnd": 0.02, "oth": 0.01, "col": 0.35, "ng": 0.65},
    "TEN": {"sun": 0.02, "oth": 0.01, "col": 0.35, "ng": 0.35, "wat": 0.3},
    "TEX": {"sun": 0.2, "wnd": 0.4, "bat": 0.03, "oth": 0.01, "col": 0.2, "ng": 0.8},
}
_HYDRO_ONLY = {"sun": 0.0, "wnd": 0.0, "oth": 0.0, "col": 0.0, "ng": 0.0, "wat": 1.0}
_GAS_ONLY = {"sun": 0.0, "wnd": 0.0, "oth": 0.0, "col": 0.0, "ng": 1.0, "wat": 0.0}
_WIND_PLANT = {"sun": 0.0, "wnd": 1.5, "oth": 0.0, "col": 0.0, "ng": 0.1, "wat": 0.0}
_BA_MIX: dict[str, dict[str, float]] = {
    "AECI": {"col": 0.6, "ng": 0.4, "wnd": 0.1},
    "AVA": {"wat": 0.6, "ng": 0.4, "col": 0.0, "wnd": 0.05},
    "AVRN": _WIND_PLANT,
    "AZPS": {"nuc": 0.35, "bat": 0.03, "sun": 0.2},
    "BPAT": {"nuc": 0.12, "wnd": 0.25, "wat": 0.95, "ng": 0.05, "col": 0.0},
    "CHPD": _HYDRO_ONLY,
    "CISO": {"nuc": 0.05, "sun": 0.4, "wnd": 0.15, "bat": 0.1, "ng": 0.75, "wat": 0.25},
    "CPLE": {"nuc": 0.35, "sun": 0.12},
    "DEAA": _GAS_ONLY,
    "DOPD": _HYDRO_ONLY,
    "DUK": {"nuc": 0.5, "sun": 0.05},
    "EEI": {"sun": 0.0, "wnd": 0.0, "oth": 0.0, "col": 1.0, "ng": 0.0},
    "EPE": {"nuc": 0.2, "sun": 0.1, "col": 0.0, "ng": 1.0},
    "ERCO": {"nuc": 0.06, "wnd": 0.45, "bat": 0.04},
    "FPL": {"nuc": 0.13, "sun": 0.12},
    "GCPD": _HYDRO_ONLY,
    "GRID": _WIND_PLANT,
    "GRIF": _GAS_ONLY,
    "GRMA": _GAS_ONLY,
    "GWA": _WIND_PLANT,
    "HGMA": _GAS_ONLY,
    "HST": {"sun": 0.0, "col": 0.0, "ng": 0.9, "oil": 0.1},
    "IPCO": {"wat": 0.6, "ng": 0.2, "col": 0.2, "wnd": 0.05, "sun": 0.05},
    "ISNE": {"nuc": 0.14},
    "LGEE": {"col": 0.75, "ng": 0.25, "wnd": 0.0},
    "MISO": {"nuc": 0.1, "wnd": 0.25},
    "NEVP": {"sun": 0.35, "bat": 0.05, "wnd": 0.0, "col": 0.0, "ng": 1.0, "wat": 0.0},
    "NWMT": {"col": 0.4, "wat": 0.5, "ng": 0.1, "wnd": 0.15},
    "NYIS": {"nuc": 0.1},
    "OVEC": {"sun": 0.0, "wnd": 0.0, "oth": 0.0, "col": 1.0, "ng": 0.0},
    "PACE": {"col": 0.6, "ng": 0.4, "wat": 0.0, "wnd": 0.15, "sun": 0.1},
    "PACW": {"wat": 0.4, "ng": 0.5, "col": 0.1},
    "PJM": {"nuc": 0.22, "wnd": 0.03, "sun": 0.03},
    "PNM": {"nuc": 0.15, "wnd": 0.2, "col": 0.3, "ng": 0.7},
    "PSCO": {"col": 0.4, "ng": 0.6, "wat": 0.0, "wnd": 0.3, "sun": 0.08},
    "SC": {"nuc": 0.1},
    "SCEG": {"nuc": 0.18},
    "SCL": _HYDRO_ONLY,
    "SEPA": _HYDRO_ONLY,
    "SOCO": {"nuc": 0.18},
    "SPA": _HYDRO_ONLY,
    "SRP": {"col": 0.3, "ng": 0.7},
    "SWPP": {"wnd": 0.6, "nuc": 0.04},
    "TEPC": {"col": 0.4, "ng": 0.6, "sun": 0.15},
    "TPWR": _HYDRO_ONLY,
    "TVA": {"nuc": 0.25},
    "WACM": {"col": 0.6, "ng": 0.2, "wat": 0.2, "wnd": 0.15},
    "WALC": {"wat": 0.7, "ng": 0.3, "col": 0.0, "sun": 0.1},
    "WAUW": {"wat": 0.8, "col": 0.2, "ng": 0.0, "wnd": 0.1},
    "WWA": _WIND_PLANT,
    "YAD": _HYDRO_ONLY,
}


def _fuel_profile(code: str, region: str) -> FuelProfile:
    fields = dict(_REGION_DEFAULT_MIX[region])
    fields.update(_BA_MIX.get(code, {}))
    return FuelProfile(**fields)


def _fuel_profiles() -> dict[str, FuelProfile]:
    table = load_balancing_authorities()
    return {
        code: _fuel_profile(code, region)
        for code, region in zip(table["code"], table["eia_region"], strict=True)
    }


FUEL_PROFILES: dict[str, FuelProfile] = _fuel_profiles()

# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


class GeneratorConfig(BaseModel):
    """Seed, served respondents and defect rates of a `SyntheticWorld`.

    - `seed`: every number of the world derives from it.
    - `respondents`: BA codes to serve (None: all of `sources/data/balancing_authorities.csv`).
      Values of a BA do not depend on this choice (TI counts all its neighbours).
    - `*_rate`: probability per served row (per hour for run starts); see the module docstring
      for what each defect does and which APIs get it. Set them to 0 for a clean world
      (`GeneratorConfig.clean()`).
    - `vintage`: publication vintage for late revisions (0 = first publication).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, ge=0, lt=2**63)
    respondents: tuple[str, ...] | None = None  # None: every BA of the packaged table
    missing_hour_rate: float = Field(default=0.002, ge=0.0, le=1.0)
    null_rate: float = Field(default=0.001, ge=0.0, le=1.0)
    zero_rate: float = Field(default=0.0005, ge=0.0, le=1.0)
    negative_rate: float = Field(default=0.0003, ge=0.0, le=1.0)
    spike_rate: float = Field(default=0.0005, ge=0.0, le=1.0)
    identical_run_rate: float = Field(default=0.0005, ge=0.0, le=1.0)
    duplicate_rate: float = Field(default=0.001, ge=0.0, le=1.0)
    revision_rate: float = Field(default=0.002, ge=0.0, le=1.0)
    vintage: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _point_rates_fit(self) -> GeneratorConfig:
        total = self.null_rate + self.zero_rate + self.negative_rate + self.spike_rate
        if total > 1.0:
            raise ValueError(
                "null_rate + zero_rate + negative_rate + spike_rate must be <= 1 (they share one "
                f"draw per row); got {total}"
            )
        return self

    @classmethod
    def clean(cls, seed: int = 0, respondents: Sequence[str] | None = None) -> GeneratorConfig:
        """A configuration without any defect."""
        return cls(
            seed=seed,
            respondents=None if respondents is None else tuple(respondents),
            missing_hour_rate=0.0,
            null_rate=0.0,
            zero_rate=0.0,
            negative_rate=0.0,
            spike_rate=0.0,
            identical_run_rate=0.0,
            duplicate_rate=0.0,
            revision_rate=0.0,
        )

    def has_defects(self) -> bool:
        return any(
            getattr(self, name) > 0
            for name in (
                "missing_hour_rate",
                "null_rate",
                "zero_rate",
                "negative_rate",
                "spike_rate",
                "identical_run_rate",
                "duplicate_rate",
            )
        ) or (self.revision_rate > 0 and self.vintage > 0)


# ----------------------------------------------------------------------------------------------
# Counter-based randomness: integers in, reproducible numbers out
# ----------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 arithmetic wraps, which is the point)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def _hash(*parts: int | np.ndarray) -> np.ndarray:
    """Broadcast-hash integer arrays (negative values allowed) to uint64."""
    h = np.full(1, _GOLDEN, dtype=np.uint64)
    for part in parts:
        p = np.atleast_1d(np.asarray(part, dtype=np.int64)).astype(np.uint64)
        h = _mix(h ^ (p + _GOLDEN))
    return h


def _uniform(h: np.ndarray) -> np.ndarray:
    """[0, 1) from the top 53 bits."""
    return (h >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)


def _normal(h: np.ndarray) -> np.ndarray:
    """Standard normal by Box-Muller from two decorrelated uniforms of one hash."""
    u1 = 1.0 - _uniform(h)
    u2 = _uniform(_mix(h ^ _GOLDEN))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _key(text: str) -> int:
    """A stable 62-bit integer for a name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 2


# Stream ids: one per independent random quantity.
(
    _S_T_SLOW,
    _S_T_FAST,
    _S_CLOUD_SLOW,
    _S_CLOUD_FAST,
    _S_HUMID,
    _S_WIND_SLOW,
    _S_WIND_FAST,
    _S_DEMAND_DAY,
    _S_DEMAND_HOUR,
    _S_FORECAST,
    _S_FLOW,
    _S_FLOW_BIAS,
    _S_FLOW_PHASE,
    _S_CAISO,
    _S_MCE,
    _S_MCC,
    _S_MCL,
    _S_RUN_START,
    _S_RUN_LEN,
    _S_POINT,
    _S_SPIKE,
    _S_MISSING,
    _S_DUPLICATE,
    _S_REVISION,
    _S_REVISION_SIZE,
) = range(1, 26)


def _catmull_rom(z: np.ndarray, t: np.ndarray, k0: int, spacing: float) -> np.ndarray:
    """Interpolate knot values z[..., K] (knot i at time (k0 + i) * spacing) at times t (H,)."""
    pos = t / spacing
    k = np.floor(pos).astype(np.int64)
    f = pos - k
    i = k - k0
    p0, p1, p2, p3 = z[..., i - 1], z[..., i], z[..., i + 1], z[..., i + 2]
    f2 = f * f
    return 0.5 * (
        2.0 * p1
        + (p2 - p0) * f
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * f2
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * f2 * f
    )


def _knot_range(t: np.ndarray, spacing: float) -> tuple[int, np.ndarray]:
    k = np.floor(t / spacing).astype(np.int64)
    k0 = int(k.min()) - 1
    return k0, np.arange(k0, int(k.max()) + 3, dtype=np.int64)


def _entity_noise(
    seed: int, stream: int, keys: np.ndarray, t: np.ndarray, spacing: float
) -> np.ndarray:
    """Smooth standard-normal-ish noise per entity key (E,) at times t (H,) hours -> (E, H)."""
    k0, knots = _knot_range(t, spacing)
    z = _normal(_hash(seed, stream, keys[:, None], knots[None, :]))
    return _catmull_rom(z, t, k0, spacing)


def _field_noise(
    seed: int,
    stream: int,
    lat: np.ndarray,
    lon: np.ndarray,
    t: np.ndarray,
    spacing: float,
    cell_deg: float,
) -> np.ndarray:
    """Smooth noise in space (knots on a cell_deg grid) and time (knots every `spacing` h)."""
    k0, knots = _knot_range(t, spacing)
    y, x = lat / cell_deg, lon / cell_deg
    i, j = np.floor(y), np.floor(x)
    fy, fx = y - i, x - j
    wy, wx = fy * fy * (3.0 - 2.0 * fy), fx * fx * (3.0 - 2.0 * fx)
    i, j = i.astype(np.int64), j.astype(np.int64)
    z = np.zeros((lat.shape[0], knots.shape[0]))
    for di, dj, w in ((0, 0, (1 - wy) * (1 - wx)), (1, 0, wy * (1 - wx)), (0, 1, (1 - wy) * wx),
                      (1, 1, wy * wx)):  # fmt: skip
        corner = _normal(_hash(seed, stream, (i + di)[:, None], (j + dj)[:, None], knots[None, :]))
        z += w[:, None] * corner
    return _catmull_rom(z, t, k0, spacing)


# ----------------------------------------------------------------------------------------------
# Weather physics
# ----------------------------------------------------------------------------------------------

_DAYS_PER_YEAR = 365.2425


@dataclass(frozen=True)
class _Climate:
    """Climatology of points (arrays of shape (P, 1))."""

    t_mean: np.ndarray
    season_amp: np.ndarray
    diurnal_amp: np.ndarray
    aridity: np.ndarray
    maritime: np.ndarray
    plains: np.ndarray
    cloud_mean: np.ndarray
    dew_depression: np.ndarray
    wind_mean: np.ndarray
    hemisphere: np.ndarray


def _climate(lat: np.ndarray, lon: np.ndarray) -> _Climate:
    alat = np.abs(lat)
    # The US West Coast runs from about -124.2 (north of 40 N) to -117.2 (32.7 N); the maritime
    # band is wider in the Pacific Northwest (Puget Sound, Willamette Valley) than in California.
    coast_lon = -124.2 + 0.96 * np.clip(40.0 - lat, 0.0, 8.0)
    width = 0.8 + 1.7 * np.clip((lat - 38.0) / 6.0, 0.0, 1.0)
    maritime = np.exp(-0.5 * ((lon - coast_lon) / width) ** 2) * np.exp(
        -0.5 * ((lat - 40.0) / 14.0) ** 2
    )
    desert = np.exp(-0.5 * (((lat - 34.5) / 4.5) ** 2 + ((lon + 112.0) / 5.5) ** 2))
    aridity = desert * (1.0 - maritime)
    continental = np.exp(-0.5 * ((lon + 95.0) / 12.0) ** 2) * np.clip((alat - 25.0) / 10.0, 0, 1)
    plains = np.exp(-0.5 * (((lat - 39.0) / 7.0) ** 2 + ((lon + 100.0) / 6.0) ** 2))
    north = np.clip((lat - 35.0) / 10.0, 0.0, 1.0)
    t_mean = 27.0 - 0.85 * np.maximum(alat - 23.5, 0.0) + 4.0 * aridity + 6.0 * maritime * north
    season_amp = (
        1.0 + 0.012 * (np.clip(alat, 10.0, 50.0) - 10.0) ** 2 + 3.0 * continental + 2.0 * aridity
    ) * (1.0 - 0.85 * maritime)
    diurnal_amp = 4.0 + 4.0 * aridity - 1.5 * maritime
    northwest = np.clip((lat - 36.0) / 8.0, 0.0, 1.0)
    cloud_mean = np.clip(50.0 - 35.0 * aridity + 18.0 * maritime * northwest, 5.0, 90.0)
    dew_depression = 4.0 + 14.0 * aridity + 1.5 * continental
    wind_mean = 10.0 + 10.0 * plains + 5.0 * maritime
    return _Climate(
        t_mean, season_amp, diurnal_amp, aridity, maritime, plains, cloud_mean, dew_depression,
        wind_mean, np.where(lat >= 0, 1.0, -1.0),
    )  # fmt: skip


def _season(t: np.ndarray, hemisphere: np.ndarray) -> np.ndarray:
    """-1 in midwinter (around 20 January in the north), +1 in midsummer."""
    doy = np.mod(t / 24.0, _DAYS_PER_YEAR)
    return -hemisphere * np.cos(2.0 * np.pi * (doy - 20.0) / _DAYS_PER_YEAR)


def _solar_hour(t: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return np.mod(np.mod(t, 24.0) + lon / 15.0, 24.0)


def _cos_zenith(t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    doy = np.mod(t / 24.0, _DAYS_PER_YEAR)
    decl = np.radians(23.44) * np.sin(2.0 * np.pi * (doy - 80.0) / _DAYS_PER_YEAR)
    hour_angle = np.radians(15.0 * (_solar_hour(t, lon) - 12.0))
    phi = np.radians(lat)
    return np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)


def _cloud(seed: int, lat: np.ndarray, lon: np.ndarray, t: np.ndarray, clim: _Climate):
    noise = 1.6 * _field_noise(seed, _S_CLOUD_SLOW, lat[:, 0], lon[:, 0], t, 24.0, 5.0)
    noise += 0.9 * _field_noise(seed, _S_CLOUD_FAST, lat[:, 0], lon[:, 0], t, 6.0, 3.0)
    base = clim.cloud_mean / 100.0
    logit = np.log(base / (1.0 - base)) + noise
    return 100.0 / (1.0 + np.exp(-logit))


def _shortwave(seed: int, lat: np.ndarray, lon: np.ndarray, t_mid: np.ndarray, clim: _Climate):
    """Mean global horizontal irradiance over an hour whose midpoint is t_mid (W/m2)."""
    cosz = _cos_zenith(t_mid[None, :], lat, lon)
    safe = np.maximum(cosz, 1e-3)
    clear = np.where(cosz > 0.0, 1098.0 * safe * np.exp(-0.057 / safe), 0.0)
    cloud = _cloud(seed, lat, lon, t_mid, clim)
    return clear * (1.0 - 0.75 * (cloud / 100.0) ** 3.4)


def _weather_raw(seed: int, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray):
    """Unrounded weather at stamps `hours` (H,) for points lat/lon (P,) -> dict of (P, H)."""
    lat2, lon2 = lat[:, None], lon[:, None]
    t = hours.astype(np.float64)
    clim = _climate(lat2, lon2)
    season = _season(t[None, :], clim.hemisphere)
    solar = _solar_hour(t[None, :], lon2)
    diurnal = np.cos(2.0 * np.pi * (solar - 15.0) / 24.0)
    cloud = _cloud(seed, lat2, lon2, t, clim)
    winter = 0.5 * (1.0 - season)
    anomaly_sd = (1.5 + 0.06 * np.abs(lat2)) * (1.0 + 0.5 * winter) * (1.0 - 0.4 * clim.maritime)
    anomaly = 0.8 * _field_noise(seed, _S_T_SLOW, lat, lon, t, 72.0, 6.0)
    anomaly += 0.45 * _field_noise(seed, _S_T_FAST, lat, lon, t, 24.0, 4.0)
    temperature = (
        clim.t_mean
        + clim.season_amp * season
        + clim.diurnal_amp * (1.0 - 0.5 * cloud / 100.0) * diurnal
        + anomaly_sd * anomaly
    )
    humid = _field_noise(seed, _S_HUMID, lat, lon, t, 48.0, 5.0)
    depression = clim.dew_depression * np.exp(0.35 * humid) * (1.0 + 0.6 * np.maximum(diurnal, 0))
    depression = depression * (1.0 - 0.5 * cloud / 100.0) + 0.2 * (1.0 + 0.5 * season)
    dew_point = temperature - depression
    magnus = 17.625 * dew_point / (243.04 + dew_point) - 17.625 * temperature / (
        243.04 + temperature
    )
    humidity = 100.0 * np.exp(magnus)
    wind_noise = 0.45 * _field_noise(seed, _S_WIND_SLOW, lat, lon, t, 24.0, 5.0)
    wind_noise += 0.25 * _field_noise(seed, _S_WIND_FAST, lat, lon, t, 6.0, 3.0)
    wind = clim.wind_mean * np.exp(wind_noise - 0.1) * (1.0 + 0.2 * diurnal)
    shortwave = _shortwave(seed, lat2, lon2, t - 0.5, clim)
    return {
        "cloud_cover": cloud,
        "dew_point_2m": dew_point,
        "relative_humidity_2m": humidity,
        "shortwave_radiation": shortwave,
        "temperature_2m": temperature,
        "wind_speed_10m": wind,
    }


def _weather_rounded(seed: int, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray):
    """Weather as the API serves it (rounded); dew point <= temperature survives rounding."""
    raw = _weather_raw(seed, lat, lon, hours)
    return {
        "cloud_cover": np.round(raw["cloud_cover"]),
        "dew_point_2m": np.round(raw["dew_point_2m"], 1),
        "relative_humidity_2m": np.clip(np.round(raw["relative_humidity_2m"]), 0.0, 100.0),
        "shortwave_radiation": np.round(raw["shortwave_radiation"], 1),
        "temperature_2m": np.round(raw["temperature_2m"], 1),
        "wind_speed_10m": np.round(raw["wind_speed_10m"], 1),
    }


# ----------------------------------------------------------------------------------------------
# Time helpers
# ----------------------------------------------------------------------------------------------

_US_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _hour_bounds(start: datetime, end: datetime) -> tuple[int, int]:
    """Integer hours since the epoch h with start <= h < end (naive datetimes are UTC)."""

    def us(moment: datetime) -> int:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // timedelta(microseconds=1)

    return -(-us(start) // _US_PER_HOUR), -(-us(end) // _US_PER_HOUR)


def _time_series(hours: np.ndarray) -> pl.Series:
    return pl.Series("interval_start_utc", hours * _US_PER_HOUR, dtype=pl.Int64).cast(TIME)


def _local_calendar(hours: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local (hour, weekday 0=Mon, is_holiday) at each UTC hour for an IANA zone."""
    local = _time_series(hours).dt.convert_time_zone(tz)
    frame = pl.DataFrame({"t": local}).select(
        hour=pl.col("t").dt.hour(),
        weekday=pl.col("t").dt.weekday() - 1,
        month=pl.col("t").dt.month(),
        day=pl.col("t").dt.day(),
    )
    hour = frame["hour"].to_numpy().astype(np.float64)
    weekday = frame["weekday"].to_numpy()
    month, day = frame["month"].to_numpy(), frame["day"].to_numpy()
    # Fixed-date and rule-based US federal holidays with a clear load dip.
    holiday = (
        ((month == 1) & (day == 1))
        | ((month == 7) & (day == 4))
        | ((month == 12) & (day == 25))
        | ((month == 5) & (weekday == 0) & (day >= 25))  # Memorial Day
        | ((month == 9) & (weekday == 0) & (day <= 7))  # Labor Day
        | ((month == 11) & (weekday == 3) & (day >= 22) & (day <= 28))  # Thanksgiving
    )
    return hour, weekday, holiday


# ----------------------------------------------------------------------------------------------
# The world
# ----------------------------------------------------------------------------------------------

_LOOKBACK_HOURS = 8  # identical runs are at most 8 hours long
_DAY_CACHE_SIZE = 62
_WINDOW_CACHE_SIZE = 6  # frames, across kinds: enough for a paged window of each API
_WINDOW_CACHE_MAX_HOURS = 35 * 24


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@dataclass(frozen=True)
class _Rows:
    """One long table before it becomes a frame: values (S, H) for S row keys over H hours."""

    hours: np.ndarray
    values: np.ndarray
    keys: dict[str, list[str]]  # column -> S labels, in sorted row order
    row_ids: np.ndarray  # (S,) integer ids for hashing defects


class SyntheticWorld:
    """A deterministic synthetic grid and weather world (see the module docstring).

    `truth_*` methods return the clean values (no defects, vintage-independent) with the same
    columns as the served methods; `truth_drivers` gives the served weather each BA's demand and
    renewables were computed from.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = config or GeneratorConfig()
        table = load_balancing_authorities()
        known = table["code"].to_list()
        if self.config.respondents is None:
            served = known
        else:
            unknown = sorted(set(self.config.respondents) - set(known))
            if unknown:
                raise ValueError(
                    f"GeneratorConfig.respondents has unknown balancing-authority codes {unknown}; "
                    f"use codes from sources/data/balancing_authorities.csv: {known}"
                )
            served = sorted(set(self.config.respondents))
        self._served = served
        # CISO is always computed: the CAISO stand-ins are derived from it.
        self._codes = sorted(set(served) | {"CISO"})
        rows = table.filter(pl.col("code").is_in(self._codes)).sort("code")
        self._names = dict(zip(table["code"], table["name"], strict=True))
        self._lat = rows["latitude"].to_numpy()
        self._lon = rows["longitude"].to_numpy()
        self._peak = rows["typical_peak_mw"].to_numpy()
        self._tz = rows["timezone"].to_list()
        self._index = {code: i for i, code in enumerate(self._codes)}
        self._keys = np.array([_key(c) for c in self._codes], dtype=np.int64)
        self._peaks_all = dict(zip(table["code"], table["typical_peak_mw"], strict=True))
        self._init_pairs()
        self._init_fuels()
        self._clim = _climate(self._lat[:, None], self._lon[:, None])
        self._lock = threading.RLock()
        self._days = _LRU(_DAY_CACHE_SIZE)
        self._windows = _LRU(_WINDOW_CACHE_SIZE)

    # -- static structure ----------------------------------------------------------------------

    def _init_pairs(self) -> None:
        computed = set(self._codes)
        pairs = [p for p in INTERCHANGE_PAIRS if p[0] in computed or p[1] in computed]
        self._pairs = pairs
        self._pair_keys = np.array([_key(f"{a}|{b}") for a, b in pairs], dtype=np.int64)
        self._pair_scale = np.array(
            [0.06 * min(self._peaks_all[a], self._peaks_all[b]) for a, b in pairs]
        )
        # Directed rows served by eia_interchange_data: (from, to, pair index, sign).
        directed = []
        for q, (a, b) in enumerate(pairs):
            if a in self._served:
                directed.append((a, b, q, 1.0))
            if b in self._served:
                directed.append((b, a, q, -1.0))
        directed.sort()
        self._directed = directed
        # TI of every computed BA from all its pairs (even to BAs that are not served).
        incidence = np.zeros((len(self._codes), len(pairs)))
        for q, (a, b) in enumerate(pairs):
            if a in self._index:
                incidence[self._index[a], q] = 1.0
            if b in self._index:
                incidence[self._index[b], q] = -1.0
        self._incidence = incidence

    def _init_fuels(self) -> None:
        profiles = [FUEL_PROFILES[c] for c in self._codes]

        def column(name: str) -> np.ndarray:
            return np.array([getattr(p, name) for p in profiles])[:, None]

        self._mix = {name: column(name) for name in FuelProfile.__dataclass_fields__}
        weights = np.hstack([self._mix[f] for f in ("col", "ng", "oil", "wat")])
        self._dispatch_weights = weights / weights.sum(axis=1, keepdims=True)
        self._balancing = np.argmax(self._dispatch_weights, axis=1)
        # Fuel codes each BA reports (capacity or weight > 0), sorted for the served rows.
        present = []
        for p in profiles:
            fuels = {"NUC": p.nuc, "SUN": p.sun, "WND": p.wnd, "BAT": p.bat, "OTH": p.oth}
            fuels |= {"COL": p.col, "NG": p.ng, "OIL": p.oil, "WAT": p.wat}
            present.append(sorted(code for code, v in fuels.items() if v > 0))
        self._fuels_present = present

    # -- the truth, computed per day and cached ---------------------------------------------------

    _FUEL_ORDER: tuple[str, ...] = ("BAT", "COL", "NG", "NUC", "OIL", "OTH", "SUN", "WAT", "WND")

    def _compute(self, h0: int, h1: int) -> dict[str, np.ndarray]:
        """All clean series for hours [h0, h1); every array has hours on its last axis."""
        seed = self.config.seed
        hours = np.arange(h0, h1, dtype=np.int64)
        t = hours.astype(np.float64)
        served_now = _weather_rounded(seed, self._lat, self._lon, hours)
        temperature = served_now["temperature_2m"]
        wind = served_now["wind_speed_10m"]
        # The interval [t, t+1) is covered by the radiation stamped t+1 (mean of preceding hour).
        shortwave_next = np.round(
            _shortwave(seed, self._lat[:, None], self._lon[:, None], t + 0.5, self._clim), 1
        )

        # Local calendar per time zone.
        n, h = len(self._codes), len(hours)
        local_hour = np.empty((n, h))
        weekday = np.empty((n, h), dtype=np.int64)
        holiday = np.empty((n, h), dtype=bool)
        for tz in sorted(set(self._tz)):
            rows = [i for i, z in enumerate(self._tz) if z == tz]
            hr, wd, hol = _local_calendar(hours, tz)
            local_hour[rows], weekday[rows], holiday[rows] = hr, wd, hol

        # Demand.
        clim = self._clim
        # Responses are scaled by how hot (cold) a typical hot (cold) spell gets at the point, so
        # every climate peaks near typical_peak_mw; the floors keep mild climates from overreacting.
        hot = clim.t_mean + clim.season_amp + clim.diurnal_amp + 4.0
        cold = clim.t_mean - clim.season_amp - clim.diurnal_amp - 6.0
        cdd_ref, hdd_ref = np.maximum(hot - 18.0, 8.0), np.maximum(18.0 - cold, 8.0)
        response = 0.32 * np.maximum(temperature - 18.0, 0.0) / cdd_ref
        response += 0.2 * np.maximum(18.0 - temperature, 0.0) / hdd_ref
        mid = local_hour + 0.5
        shape = (
            1.0
            + 0.1 * np.sin(2.0 * np.pi * (mid - 10.0) / 24.0)
            + 0.035 * np.sin(4.0 * np.pi * (mid - 6.5) / 24.0)
        )
        week = np.where(weekday == 5, 0.93, np.where(weekday == 6, 0.9, 1.0))
        week = np.where(holiday, np.minimum(week, 0.91), week)
        noise = 0.025 * _entity_noise(seed, _S_DEMAND_DAY, self._keys, t, 24.0)
        noise += 0.006 * _normal(_hash(seed, _S_DEMAND_HOUR, self._keys[:, None], hours[None, :]))
        peak = self._peak[:, None]
        demand_raw = peak * (0.55 + response) * shape * week * (1.0 + noise)
        demand_raw = np.maximum(demand_raw, 0.05 * peak)
        demand = np.round(demand_raw)
        forecast_error = 0.025 * _entity_noise(seed, _S_FORECAST, self._keys, t, 8.0)
        forecast = np.round(demand_raw * (1.0 + forecast_error))

        # Interchange.
        scale = self._pair_scale[:, None]
        bias = 0.6 * (2.0 * _uniform(_hash(seed, _S_FLOW_BIAS, self._pair_keys)) - 1.0)
        phase = 24.0 * _uniform(_hash(seed, _S_FLOW_PHASE, self._pair_keys))
        swing = np.sin(2.0 * np.pi * (np.mod(t, 24.0)[None, :] - phase[:, None]) / 24.0)
        flow_noise = _entity_noise(seed, _S_FLOW, self._pair_keys, t, 12.0)
        flow = scale * (bias[:, None] + 0.45 * flow_noise + 0.2 * swing)
        flow = np.round(np.clip(flow, -1.2 * scale, 1.2 * scale)) + 0.0
        total_interchange = self._incidence @ flow + 0.0
        net_generation = demand + total_interchange

        fuels = self._fuel_mix(net_generation, shortwave_next, wind, local_hour)
        caiso_load, lmp = self._caiso(hours, demand_raw, demand, fuels)
        return {
            "temperature": temperature,
            "shortwave_next": shortwave_next,
            "wind": wind,
            "demand": demand,
            "forecast": forecast,
            "flow": flow,
            "total_interchange": total_interchange,
            "net_generation": net_generation,
            "fuels": fuels,
            "caiso_load": caiso_load,
            "lmp": lmp,
        }

    def _fuel_mix(self, ng, shortwave_next, wind_kmh, local_hour) -> np.ndarray:
        """(E, F, H) generation by fuel in `_FUEL_ORDER`, NaN where a BA has no such fuel."""
        peak, mix = self._peak[:, None], self._mix
        sun = mix["sun"] * peak * 0.9 * np.clip(shortwave_next / 1000.0, 0.0, 1.0)
        hub = wind_kmh / 3.6 * 1.6  # 10 m km/h -> m/s at a 100 m hub (wind shear)
        # Cubic between cut-in 3 m/s and rated 11.5 m/s, cut-out above 25 m/s.
        curve = np.clip((hub**3 - 27.0) / (11.5**3 - 27.0), 0.0, 1.0)
        curve = np.where(hub > 25.0, 0.0, curve)
        wnd = mix["wnd"] * peak * curve
        nuc = mix["nuc"] * peak * 0.93 * np.ones_like(ng)
        oth = mix["oth"] * np.maximum(ng, 0.0)
        bat = (
            mix["bat"]
            * peak
            * (
                0.9 * np.exp(-(((local_hour - 19.0) / 1.8) ** 2))
                - 0.7 * np.exp(-(((local_hour - 12.5) / 2.5) ** 2))
            )
        )
        # Curtail variable output first, then must-run, so dispatch keeps >= 5 % of NG.
        room = ng - 0.05 * np.maximum(ng, 0.0) - bat
        must = nuc + oth
        variable = sun + wnd
        k_must = np.clip(np.divide(room, must, out=np.ones_like(room), where=must > 0), 0.0, 1.0)
        left = room - must * k_must
        k_var = np.clip(
            np.divide(left, variable, out=np.ones_like(left), where=variable > 0), 0.0, 1.0
        )
        nuc, oth = np.round(nuc * k_must), np.round(oth * k_must)
        sun, wnd = np.round(sun * k_var), np.round(wnd * k_var)
        bat = np.round(bat)
        dispatch = ng - nuc - oth - sun - wnd - bat
        parts = {"BAT": bat, "NUC": nuc, "OTH": oth, "SUN": sun, "WND": wnd}
        dispatch_codes = ("COL", "NG", "OIL", "WAT")
        for j, code in enumerate(dispatch_codes):
            parts[code] = np.round(dispatch * self._dispatch_weights[:, j : j + 1])
        # The largest dispatchable fuel absorbs rounding, so the fuels sum to NG exactly.
        for j, code in enumerate(dispatch_codes):
            rows = self._balancing == j
            if rows.any():
                others = sum(v for c, v in parts.items() if c != code)
                parts[code][rows] = (ng - others)[rows]
        out = np.stack([parts[c] for c in self._FUEL_ORDER], axis=1) + 0.0
        for i, present in enumerate(self._fuels_present):
            absent = [f for f, code in enumerate(self._FUEL_ORDER) if code not in present]
            out[i, absent, :] = np.nan
        return out

    def _caiso(self, hours, demand_raw, demand, fuels) -> tuple[np.ndarray, np.ndarray]:
        seed = self.config.seed
        t = hours.astype(np.float64)
        ciso = self._index["CISO"]
        total = demand[ciso]
        tacs = [CAISO_TOTAL_TAC, *CAISO_TAC_SHARES]
        load = np.empty((len(tacs), len(CAISO_MARKETS), len(hours)))
        for m, market in enumerate(CAISO_MARKETS):
            if market == "ACTUAL":
                series = total.copy()
            else:
                key = np.array([_key(f"caiso|{market}")], dtype=np.int64)
                err = _entity_noise(seed, _S_CAISO, key, t, 6.0)[0]
                series = np.round(demand_raw[ciso] * (1.0 + _CAISO_FORECAST_SD[market] * err), 2)
            load[0, m] = series
            subtotal = np.zeros_like(series)
            for a, share in enumerate(list(CAISO_TAC_SHARES.values())[:-1], start=1):
                load[a, m] = np.round(series * share, 2)
                subtotal = subtotal + load[a, m]
            load[len(tacs) - 1, m] = np.round(series - subtotal, 2)

        sun = np.nan_to_num(fuels[ciso, self._FUEL_ORDER.index("SUN")])
        wnd = np.nan_to_num(fuels[ciso, self._FUEL_ORDER.index("WND")])
        # Energy price rises with load (gas heat rate, then scarcity above 80 % of peak) and drops
        # below zero when solar and wind leave little net load (oversupply, spring middays).
        load_frac = total / self._peak[ciso]
        net = (total - sun - wnd) / self._peak[ciso]
        doy = np.mod(t / 24.0, _DAYS_PER_YEAR)
        gas = 3.2 + 0.9 * np.cos(2.0 * np.pi * (doy - 15.0) / _DAYS_PER_YEAR)
        base = 9.0 * gas  # marginal gas unit at ~9 MMBtu/MWh
        node_keys = np.array([_key(n) for n in CAISO_NODES], dtype=np.int64)
        mce = (
            base * (0.3 + 1.8 * load_frac**2)
            + 500.0 * np.maximum(load_frac - 0.8, 0.0) ** 2
            - 400.0 * np.maximum(0.25 - net, 0.0)
            + 0.08 * base * _entity_noise(seed, _S_MCE, node_keys[:1], t, 12.0)[0]
        )
        mce = np.round(mce, 5)
        cong_noise = _entity_noise(seed, _S_MCC, node_keys, t, 24.0)
        loss_noise = _entity_noise(seed, _S_MCL, node_keys, t, 12.0)
        lmp = np.empty((len(CAISO_NODES), len(_LMP_TYPES), len(hours)))
        for n, node in enumerate(CAISO_NODES):
            loss, sign = _HUB_PARAMS[node]
            mcc = np.round(2.0 * cong_noise[n] + sign * 8.0 * np.maximum(load_frac - 0.6, 0.0), 5)
            mcl = np.round(mce * loss + 0.3 * loss_noise[n], 5)
            parts = {"MCE": mce, "MCC": mcc, "MCL": mcl}
            parts["LMP"] = mce + mcc + mcl
            for j, kind in enumerate(_LMP_TYPES):
                lmp[n, j] = parts[kind] + 0.0
        return load, lmp

    def _truth(self, h0: int, h1: int) -> dict[str, np.ndarray]:
        """Clean arrays for hours [h0, h1), assembled from cached whole days."""
        d0, d1 = h0 // 24, -(-h1 // 24)
        with self._lock:
            blocks: list[dict[str, np.ndarray] | None] = [self._days.get(d) for d in range(d0, d1)]
            d = d0
            while d < d1:  # compute each run of missing days in one vectorised pass
                if blocks[d - d0] is not None:
                    d += 1
                    continue
                run_end = d
                while run_end < d1 and blocks[run_end - d0] is None:
                    run_end += 1
                block = self._compute(d * 24, run_end * 24)
                for day in range(d, run_end):
                    a = (day - d) * 24
                    piece = {k: v[..., a : a + 24].copy() for k, v in block.items()}
                    self._days.put(day, piece)
                    blocks[day - d0] = piece
                d = run_end
        joined = {k: np.concatenate([b[k] for b in blocks], axis=-1) for k in blocks[0]}
        a = h0 - d0 * 24
        return {k: v[..., a : a + (h1 - h0)] for k, v in joined.items()}

    # -- defects ---------------------------------------------------------------------------------

    def _defects(
        self,
        kind: int,
        rows: _Rows,
        lookback: np.ndarray | None,
        allowed: frozenset[str],
        integral: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Served values, present mask and duplicate mask for rows (S, H).

        `allowed` names the defects this kind of data gets; `integral` rounds spikes to whole
        units, as EIA publishes whole MWh.

        `lookback` holds the clean values of the 8 hours before the window, so identical runs
        that start before the window continue into it exactly as they would in a longer window.
        """
        cfg, seed = self.config, self.config.seed
        values = rows.values.copy()
        ids = rows.row_ids[:, None]
        hours = rows.hours[None, :]
        s, h = values.shape
        if "identical_run" in allowed and cfg.identical_run_rate > 0 and lookback is not None:
            clean = np.concatenate([lookback, rows.values], axis=1)
            gap = _LOOKBACK_HOURS - 1  # a run cannot start within 7 h of another drawn start
            first = rows.hours[0] - _LOOKBACK_HOURS - gap
            drawn_hours = np.arange(first, rows.hours[-1] + 1)[None, :]
            drawn = _uniform(_hash(seed, kind, _S_RUN_START, ids, drawn_hours))
            drawn = drawn < cfg.identical_run_rate
            recent = np.zeros_like(drawn)
            for lag in range(1, gap + 1):
                recent[:, lag:] |= drawn[:, :-lag]
            # Starts at least 8 h apart: runs never overlap, so each repeats a clean value and
            # the value of an hour depends on at most 15 earlier hours (window independence).
            starts = (drawn & ~recent)[:, gap:]
            all_hours = drawn_hours[:, gap:]
            length = 3 + (_hash(seed, kind, _S_RUN_LEN, ids, all_hours) % np.uint64(6)).astype(
                np.int64
            )
            for lag in range(1, _LOOKBACK_HOURS):
                src = slice(_LOOKBACK_HOURS - lag, _LOOKBACK_HOURS - lag + h)
                covered = starts[:, src] & (length[:, src] > lag)
                values = np.where(covered, clean[:, src], values)
        if allowed & {"null", "zero", "negative", "spike"}:
            u = _uniform(_hash(seed, kind, _S_POINT, ids, hours))
            edges = np.cumsum([cfg.null_rate, cfg.zero_rate, cfg.negative_rate, cfg.spike_rate])
            factor = 3.0 + 7.0 * _uniform(_hash(seed, kind, _S_SPIKE, ids, hours))
            spiked = np.round(values * factor) if integral else values * factor
            values = np.where(u < edges[0], np.nan, values) if "null" in allowed else values
            if "zero" in allowed:
                values = np.where((u >= edges[0]) & (u < edges[1]), 0.0, values)
            if "negative" in allowed:
                values = np.where((u >= edges[1]) & (u < edges[2]), -np.abs(values), values)
            if "spike" in allowed:
                values = np.where((u >= edges[2]) & (u < edges[3]), spiked, values)
        if "revision" in allowed and cfg.vintage > 0 and cfg.revision_rate > 0:
            threshold = min(1.0, cfg.revision_rate * cfg.vintage)
            revised = _uniform(_hash(seed, kind, _S_REVISION, ids, hours)) < threshold
            size = _uniform(_hash(seed, kind, _S_REVISION_SIZE, ids, hours))
            delta = np.where(size < 0.5, -1.0, 1.0) * (0.01 + 0.1 * np.abs(size - 0.5))
            values = np.where(revised, np.round(rows.values * (1.0 + delta)), values)
        present = np.ones((s, h), dtype=bool)
        if "missing" in allowed and cfg.missing_hour_rate > 0:
            present = _uniform(_hash(seed, kind, _S_MISSING, ids, hours)) >= cfg.missing_hour_rate
        duplicate = np.zeros((s, h), dtype=bool)
        if "duplicate" in allowed and cfg.duplicate_rate > 0:
            duplicate = _uniform(_hash(seed, kind, _S_DUPLICATE, ids, hours)) < cfg.duplicate_rate
        return values + 0.0, present, duplicate

    # -- frame assembly --------------------------------------------------------------------------

    @staticmethod
    def _frame(
        rows: _Rows,
        values: np.ndarray,
        present: np.ndarray | None,
        duplicate: np.ndarray | None,
        value_name: str,
    ) -> pl.DataFrame:
        """Long frame sorted by (time, keys...) from (S, H) matrices; rows in hour-major order."""
        s, h = values.shape
        counts = np.ones((h, s), dtype=np.int64)
        if present is not None:
            counts = present.T.astype(np.int64)
        if duplicate is not None:
            counts = counts + (duplicate.T & (counts > 0))
        flat = np.repeat(np.arange(h * s, dtype=np.int64), counts.ravel())
        hour_idx, row_idx = flat // s, (flat % s).astype(np.uint32)
        columns: dict[str, pl.Series] = {"interval_start_utc": _time_series(rows.hours[hour_idx])}
        for name, labels in rows.keys.items():
            columns[name] = pl.Series(name, labels, dtype=pl.String).gather(row_idx)
        columns[value_name] = pl.Series(
            value_name, values.T.ravel()[flat], dtype=pl.Float64, nan_to_null=True
        )
        return pl.DataFrame(columns)

    def _cached_frame(
        self, name: str, h0: int, h1: int, build: Callable[[], pl.DataFrame]
    ) -> pl.DataFrame:
        """Keep recent windows so the pages of one request do not rebuild the frame; windows
        longer than `_WINDOW_CACHE_MAX_HOURS` are rebuilt (about 1 s a year) to bound memory."""
        if h1 - h0 > _WINDOW_CACHE_MAX_HOURS:
            return build()
        key = (name, h0, h1)
        with self._lock:
            frame = self._windows.get(key)
        if frame is None:
            frame = build()
            with self._lock:
                self._windows.put(key, frame)
        return frame

    def _eia(self, start: datetime, end: datetime, kind: str, defects: bool) -> pl.DataFrame:
        h0, h1 = _hour_bounds(start, end)
        schema = _SCHEMAS[kind]
        if h1 <= h0:
            return pl.DataFrame(schema=schema)

        def build() -> pl.DataFrame:
            truth = self._truth(h0 - _LOOKBACK_HOURS, h1)
            rows, lookback = self._eia_rows(kind, truth, np.arange(h0, h1, dtype=np.int64))
            if not defects:
                return self._frame(rows, rows.values, None, None, "value").select(list(schema))
            values, present, dup = self._defects(
                _KIND_IDS[kind], rows, lookback, _EIA_DEFECTS, integral=True
            )
            return self._frame(rows, values, present, dup, "value").select(list(schema))

        tag = "served" if defects else "truth"
        return self._cached_frame(f"{kind}:{tag}", h0, h1, build)

    def _eia_rows(
        self, kind: str, truth: dict[str, np.ndarray], hours: np.ndarray
    ) -> tuple[_Rows, np.ndarray]:
        served = [self._index[c] for c in self._served]
        if kind == "region":
            series = {
                "D": truth["demand"],
                "DF": truth["forecast"],
                "NG": truth["net_generation"],
                "TI": truth["total_interchange"],
            }
            matrix, resp, types = [], [], []
            for i in served:
                for code, array in series.items():
                    matrix.append(array[i])
                    resp.append(self._codes[i])
                    types.append(code)
            keys = {
                "respondent": resp,
                "respondent_name": [self._names[r] for r in resp],
                "type": types,
                "type_name": [REGION_TYPES[t] for t in types],
            }
            ids = [_key(f"region|{r}|{t}") for r, t in zip(resp, types, strict=True)]
        elif kind == "fuel":
            matrix, resp, fuels = [], [], []
            for i in served:
                for code in self._fuels_present[i]:
                    matrix.append(truth["fuels"][i, self._FUEL_ORDER.index(code)])
                    resp.append(self._codes[i])
                    fuels.append(code)
            keys = {
                "respondent": resp,
                "respondent_name": [self._names[r] for r in resp],
                "fueltype": fuels,
                "type_name": [FUEL_NAMES[f] for f in fuels],
            }
            ids = [_key(f"fuel|{r}|{f}") for r, f in zip(resp, fuels, strict=True)]
        else:
            matrix = [sign * truth["flow"][q] + 0.0 for _, _, q, sign in self._directed]
            src = [a for a, _, _, _ in self._directed]
            dst = [b for _, b, _, _ in self._directed]
            keys = {
                "fromba": src,
                "fromba_name": [self._names[a] for a in src],
                "toba": dst,
                "toba_name": [self._names[b] for b in dst],
            }
            ids = [_key(f"interchange|{a}|{b}") for a, b in zip(src, dst, strict=True)]
        width = hours.shape[0] + _LOOKBACK_HOURS
        full = np.array(matrix).reshape(len(matrix), width)
        rows = _Rows(hours, full[:, _LOOKBACK_HOURS:], keys, np.array(ids, dtype=np.int64))
        return rows, full[:, :_LOOKBACK_HOURS]

    def _caiso_frame(self, start: datetime, end: datetime, which: str, defects: bool):
        h0, h1 = _hour_bounds(start, end)
        schema = _SCHEMAS[which]
        if h1 <= h0:
            return pl.DataFrame(schema=schema)

        def build() -> pl.DataFrame:
            truth = self._truth(h0, h1)
            hours = np.arange(h0, h1, dtype=np.int64)
            if which == "caiso_load":
                names = [CAISO_TOTAL_TAC, *CAISO_TAC_SHARES]
                first, second, cube = "tac_area_name", "market_run_id", truth["caiso_load"]
                labels = CAISO_MARKETS
            else:
                names = list(CAISO_NODES)
                first, second, cube = "node", "lmp_type", truth["lmp"]
                labels = _LMP_TYPES
            a_col = [a for a in names for _ in labels]
            b_col = [b for _ in names for b in labels]
            ids = np.array(
                [_key(f"{which}|{a}|{b}") for a, b in zip(a_col, b_col, strict=True)],
                dtype=np.int64,
            )
            rows = _Rows(hours, cube.reshape(-1, len(hours)), {first: a_col, second: b_col}, ids)
            if not defects:
                return self._frame(rows, rows.values, None, None, "mw")
            values, present, dup = self._defects(
                _KIND_IDS[which], rows, None, frozenset({"missing", "duplicate"})
            )
            return self._frame(rows, values, present, dup, "mw")

        tag = "served" if defects else "truth"
        return self._cached_frame(f"{which}:{tag}", h0, h1, build)

    def _weather_frame(
        self, start: datetime, end: datetime, points: list[tuple[float, float]], defects: bool
    ) -> pl.DataFrame:
        h0, h1 = _hour_bounds(start, end)
        if h1 <= h0 or not points:
            return pl.DataFrame(schema=_SCHEMAS["weather"])
        lat = np.array([float(p[0]) for p in points])
        lon = np.array([float(p[1]) for p in points])
        hours = np.arange(h0, h1, dtype=np.int64)
        fields = _weather_rounded(self.config.seed, lat, lon, hours)
        matrix = np.stack([fields[v] for v in WEATHER_VARIABLES], axis=1)  # (P, V, H)
        matrix = matrix.reshape(len(points) * len(WEATHER_VARIABLES), len(hours))
        if defects and self.config.null_rate > 0:
            # Key nulls on the point's coordinates (to 1e-5 degree) and the variable.
            lat_i = np.round(lat * 1e5).astype(np.int64).repeat(len(WEATHER_VARIABLES))
            lon_i = np.round(lon * 1e5).astype(np.int64).repeat(len(WEATHER_VARIABLES))
            var_i = np.tile(np.arange(len(WEATHER_VARIABLES)), len(points))
            u = _uniform(
                _hash(self.config.seed, _KIND_IDS["weather"], _S_POINT, lat_i[:, None],
                      lon_i[:, None], var_i[:, None], hours[None, :])
            )  # fmt: skip
            matrix = np.where(u < self.config.null_rate, np.nan, matrix)
        p_idx = np.repeat(np.arange(len(points)), len(WEATHER_VARIABLES) * len(hours))
        v_idx = np.tile(np.repeat(np.arange(len(WEATHER_VARIABLES)), len(hours)), len(points))
        h_idx = np.tile(np.arange(len(hours)), len(points) * len(WEATHER_VARIABLES))
        return pl.DataFrame(
            {
                "interval_start_utc": _time_series(hours[h_idx]),
                "latitude": pl.Series(lat[p_idx], dtype=pl.Float64),
                "longitude": pl.Series(lon[p_idx], dtype=pl.Float64),
                "variable": pl.Series(list(WEATHER_VARIABLES), dtype=pl.String).gather(
                    v_idx.astype(np.uint32)
                ),
                "value": pl.Series(matrix.ravel(), dtype=pl.Float64, nan_to_null=True),
            }
        )

    # -- the World protocol ----------------------------------------------------------------------

    def respondents(self) -> list[str]:
        """Balancing-authority codes this world serves, sorted."""
        return list(self._served)

    def eia_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """D, DF, NG and TI per respondent, with defects; sorted by (time, respondent, type)."""
        return self._eia(start, end, "region", defects=True)

    def eia_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Net generation by fuel per respondent, with defects; sorted by (time, BA, fuel)."""
        return self._eia(start, end, "fuel", defects=True)

    def eia_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Flows from each served BA to each neighbour (neighbours may be unserved BAs)."""
        return self._eia(start, end, "interchange", defects=True)

    def caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        """SLD_FCST rows (missing and duplicate defects only)."""
        return self._caiso_frame(start, end, "caiso_load", defects=True)

    def caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        """PRC_LMP DAM rows at the three trading hubs (missing and duplicate defects only)."""
        return self._caiso_frame(start, end, "caiso_lmp", defects=True)

    def weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        """All `WEATHER_VARIABLES` at the points, in point, variable, time order (nulls only)."""
        return self._weather_frame(start, end, points, defects=True)

    # -- the clean truth -------------------------------------------------------------------------

    def truth_region_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._eia(start, end, "region", defects=False)

    def truth_fuel_type_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._eia(start, end, "fuel", defects=False)

    def truth_interchange_data(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._eia(start, end, "interchange", defects=False)

    def truth_caiso_load(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._caiso_frame(start, end, "caiso_load", defects=False)

    def truth_caiso_lmp(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._caiso_frame(start, end, "caiso_lmp", defects=False)

    def truth_weather(
        self, start: datetime, end: datetime, points: list[tuple[float, float]]
    ) -> pl.DataFrame:
        return self._weather_frame(start, end, points, defects=False)

    def truth_drivers(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Per served BA and hour: the served weather its series were computed from.

        Columns: interval_start_utc, respondent, latitude, longitude, temperature_2m (drives D),
        wind_speed_10m (drives WND), shortwave_radiation_next (the radiation stamped one hour
        later, i.e. the mean over this interval; drives SUN).
        """
        h0, h1 = _hour_bounds(start, end)
        if h1 <= h0:
            return pl.DataFrame(schema=_SCHEMAS["drivers"])
        truth = self._truth(h0, h1)
        served = np.array([self._index[c] for c in self._served])
        hours = np.arange(h0, h1, dtype=np.int64)
        n, h = len(served), len(hours)
        return pl.DataFrame(
            {
                "interval_start_utc": _time_series(np.tile(hours, n)),
                "respondent": pl.Series(self._served, dtype=pl.String).gather(
                    np.repeat(np.arange(n, dtype=np.uint32), h)
                ),
                "latitude": np.repeat(self._lat[served], h),
                "longitude": np.repeat(self._lon[served], h),
                "temperature_2m": truth["temperature"][served].ravel(),
                "wind_speed_10m": truth["wind"][served].ravel(),
                "shortwave_radiation_next": truth["shortwave_next"][served].ravel(),
            }
        )

    def point_of(self, code: str) -> tuple[float, float]:
        """The (latitude, longitude) of a BA's representative weather point."""
        i = self._index.get(code)
        if i is None:
            raise KeyError(f"{code!r} is not a balancing authority of this world: {self._codes}")
        return float(self._lat[i]), float(self._lon[i])


_EIA_DEFECTS = frozenset(
    {"identical_run", "null", "zero", "negative", "spike", "revision", "missing", "duplicate"}
)
_KIND_IDS = {"region": 101, "fuel": 102, "interchange": 103, "caiso_load": 104, "caiso_lmp": 105,
             "weather": 106}  # fmt: skip

_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "region": {
        "interval_start_utc": TIME,
        "respondent": pl.String(),
        "respondent_name": pl.String(),
        "type": pl.String(),
        "type_name": pl.String(),
        "value": pl.Float64(),
    },
    "fuel": {
        "interval_start_utc": TIME,
        "respondent": pl.String(),
        "respondent_name": pl.String(),
        "fueltype": pl.String(),
        "type_name": pl.String(),
        "value": pl.Float64(),
    },
    "interchange": {
        "interval_start_utc": TIME,
        "fromba": pl.String(),
        "fromba_name": pl.String(),
        "toba": pl.String(),
        "toba_name": pl.String(),
        "value": pl.Float64(),
    },
    "caiso_load": {
        "interval_start_utc": TIME,
        "tac_area_name": pl.String(),
        "market_run_id": pl.String(),
        "mw": pl.Float64(),
    },
    "caiso_lmp": {
        "interval_start_utc": TIME,
        "node": pl.String(),
        "lmp_type": pl.String(),
        "mw": pl.Float64(),
    },
    "weather": {
        "interval_start_utc": TIME,
        "latitude": pl.Float64(),
        "longitude": pl.Float64(),
        "variable": pl.String(),
        "value": pl.Float64(),
    },
    "drivers": {
        "interval_start_utc": TIME,
        "respondent": pl.String(),
        "latitude": pl.Float64(),
        "longitude": pl.Float64(),
        "temperature_2m": pl.Float64(),
        "wind_speed_10m": pl.Float64(),
        "shortwave_radiation_next": pl.Float64(),
    },
}


def frame_schema(kind: str) -> dict[str, pl.DataType]:
    """The column schema of a World method's frame: region, fuel, interchange, caiso_load,
    caiso_lmp or weather (used by worlds that have no data for a method)."""
    return dict(_SCHEMAS[kind])
