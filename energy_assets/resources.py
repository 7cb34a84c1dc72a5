"""Where the upstream APIs are: the real services, or the offline stand-in started in-process.

`SourcesResource` is the one place that decides it. In `offline` mode (the default: no key, no
network) it starts the loopback stand-in for all three APIs when a step begins, backed by a
deterministic world, and stops it when the step ends; every step process gets an identical
stand-in, so this works with any executor. In `live` mode it talks to api.eia.gov,
oasis.caiso.com and archive-api.open-meteo.com, with the EIA key from `EIA_API_KEY`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr, field_validator, model_validator

from energy_assets.sources.registry import SourceSettings


class SourcesResource(ConfigurableResource):
    """Clients for every registered source, pointed at the real APIs or the offline stand-in."""

    mode: str = Field(default="offline", description="offline (stand-in) or live (real APIs).")
    world: str = Field(
        default="synthetic",
        description="Offline data: synthetic (seeded generator), ruggles or gridemissions "
        "(real EIA data sets read from realdata_dir).",
    )
    realdata_dir: str | None = Field(
        default=None, description="Folder of the real data set for world=ruggles|gridemissions."
    )
    seed: int = Field(default=7, description="Seed of the synthetic world.")
    defects: bool = Field(
        default=True, description="Inject the synthetic world's real-world defects."
    )
    respondents: list[str] | None = Field(
        default=None, description="Balancing authorities to extract; null means all."
    )
    vintage: int = Field(
        default=0,
        ge=0,
        description="Offline synthetic world: publication vintage. Raising it makes upstream "
        "revise some EIA values (cumulatively), as EIA does; needs defects: true.",
    )

    @field_validator("respondents")
    @classmethod
    def _known_respondents(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from energy_assets.sources.balancing_authorities import load_balancing_authorities

        known = set(load_balancing_authorities()["code"].to_list())
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown balancing authorities {unknown}: use EIA-930 respondent codes "
                "(energy_assets.balancing_authorities() lists them)"
            )
        return value

    @field_validator("realdata_dir")
    @classmethod
    def _existing_folder(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"{value!r} is not a folder (point it at ../shared/realdata/...)")
        return value

    eia_api_key_env: str = Field(
        default="EIA_API_KEY", description="Environment variable holding the EIA API key."
    )
    eia_base_url: str = "https://api.eia.gov/v2"
    caiso_base_url: str = "https://oasis.caiso.com/oasisapi"
    openmeteo_base_url: str = "https://archive-api.open-meteo.com/v1"
    caiso_min_interval_s: float = Field(
        default=5.0, description="Pause between OASIS requests (ignored offline)."
    )
    max_attempts: int = Field(default=5, description="HTTP attempts per request.")
    base_delay_s: float = Field(default=1.0, description="First backoff step.")
    step_retries: int = Field(
        default=3,
        ge=0,
        description="Extra runs of a raw responses step whose upstream trouble may pass (after "
        "the client's own retries); refused keys and bad requests are never retried.",
    )
    step_retry_delay_s: float = Field(
        default=30.0, ge=0.0, description="First wait before such a run; doubles, jittered."
    )
    shared_pacing: str | None = Field(
        default=None,
        description="Where OASIS pacing is shared by every step process: a redis:// URL or a "
        "folder (set from the deployment: energy_assets/pacing.py); null: per process.",
    )

    no_data_days: list[str] = Field(
        default_factory=list,
        description="Offline only: days for which the stand-in answers as upstream does when it "
        "has nothing (EIA total 0, OASIS error 1000, Open-Meteo nulls), to rehearse an outage.",
    )

    _server: Any = PrivateAttr(default=None)
    _recorded_groups: Any = PrivateAttr(default=None)
    _world: Any = PrivateAttr(default=None)  # the world the running stand-in serves

    @field_validator("no_data_days", mode="before")
    @classmethod
    def _iso_days(cls, value: object) -> object:
        """YAML dates or ISO texts, kept as ISO texts (YYYY-MM-DD)."""
        if not isinstance(value, list):
            return value
        days = []
        for item in value:
            try:
                day = item if isinstance(item, date) else date.fromisoformat(str(item))
            except ValueError:
                raise ValueError(f"{item!r} is not an ISO date (YYYY-MM-DD)") from None
            days.append(day.isoformat())
        return days

    @model_validator(mode="after")
    def _no_data_days_offline(self) -> SourcesResource:
        if self.no_data_days and self.mode != "offline":
            raise ValueError(
                "no_data_days rehearses an upstream outage on the offline stand-in: remove it "
                "for mode=live"
            )
        return self

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("offline", "live"):
            raise ValueError(f"mode must be 'offline' or 'live', not {value!r}")
        return value

    @field_validator("world")
    @classmethod
    def _world(cls, value: str) -> str:
        if value not in ("synthetic", "ruggles", "gridemissions"):
            raise ValueError(f"world must be synthetic, ruggles or gridemissions, not {value!r}")
        return value

    @property
    def carries_reporting_quirks(self) -> bool:
        """Real EIA data carries the documented reporting quirks (transform/data/quirks.csv);
        the synthetic world does not, so fixing them there would break correct data."""
        return not (self.mode == "offline" and self.world == "synthetic")

    # --- lifecycle -----------------------------------------------------------------------
    def setup_for_execution(self, context: InitResourceContext) -> None:
        if self.mode == "offline":
            self._server = self.start_standin()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def build_world(self):
        from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld

        rates = (
            {}
            if self.defects
            else {name: 0.0 for name in GeneratorConfig.model_fields if name.endswith("_rate")}
        )
        synthetic = SyntheticWorld(
            GeneratorConfig(
                seed=self.seed, respondents=self.respondents, vintage=self.vintage, **rates
            )
        )
        if self.world == "synthetic":
            return synthetic
        if not self.realdata_dir or not Path(self.realdata_dir).is_dir():
            raise ValueError(
                f"world={self.world} reads a real data set, but realdata_dir="
                f"{self.realdata_dir!r} is not a folder: set sources.realdata_dir in the run "
                "config (e.g. ../shared/realdata/ruggles_2019_release)"
            )
        from energy_assets.offline import realdata_world

        if self.world == "ruggles":
            return realdata_world.RugglesWorld(Path(self.realdata_dir), fallback=synthetic)
        return realdata_world.GridEmissionsWorld(Path(self.realdata_dir), fallback=synthetic)

    def start_standin(self):
        from energy_assets.offline.standin import start_standin

        world = self._world = self.build_world()
        if self.no_data_days:
            from energy_assets.offline.world import NoDataDays

            world = NoDataDays(world, self.no_data_days)
        return start_standin(world)

    # --- clients (the registry's Clients protocol) ---------------------------------------
    def source_settings(self) -> SourceSettings:
        """The `sources:` block as the registry's factories see it (no Dagster)."""
        return SourceSettings(
            mode=self.mode,
            respondents=tuple(self.respondents) if self.respondents else None,
            options=self.model_dump(),
            standin_url=None if self._server is None else self._server.base_url,
            recorded=self._recorded(),
        )

    def _recorded(self) -> dict[str, Any]:
        """What an offline real-data world recorded of EIA-930 (see SourceSettings.recorded)."""
        if self.mode != "offline" or self.world == "synthetic":
            return {}
        if self._recorded_groups is None:  # the stand-in's world: its files are read once
            world = self._world if self._world is not None else self.build_world()
            self._recorded_groups = world.eia_recorded()
        return {"eia930": self._recorded_groups}

    def client(self, source: str) -> Any:
        """The registered source's client, built by its spec from these settings."""
        from energy_assets.sources.registry import SOURCES

        try:
            spec = SOURCES[source]
        except KeyError:
            raise KeyError(
                f"no source {source!r} is registered; known: {', '.join(SOURCES)} "
                "(energy_assets/sources/registry.py)"
            ) from None
        return spec.make_client(self.source_settings())


class PipelineResource(ConfigurableResource):
    """Settings of the transform and ML layers, from the run config file's `pipeline:` block."""

    context_length: int = Field(default=168, ge=1, description="Hours of context per window.")
    horizon: int = Field(default=24, ge=1, description="Hours predicted per window.")
    stride: int = Field(default=24, ge=1, description="Hours between forecast origins.")
    train_start_utc: str | None = Field(
        default=None,
        description="First training day (ISO, UTC): the normalisation statistics are fitted "
        "from here to val_start_utc; null = the config's start.",
    )
    val_start_utc: str | None = Field(
        default=None, description="First validation day (ISO, UTC); null = 70 % of the range."
    )
    test_start_utc: str | None = Field(
        default=None, description="First test day (ISO, UTC); null = 85 % of the range."
    )
    test_end_utc: str | None = Field(
        default=None,
        description="End of the test period (ISO, UTC, exclusive); null = the day after the "
        "config's end. Later days get no split (their origins are for inference).",
    )
    ring_world_size: int = Field(default=2, ge=1, le=64, description="P, ranks of the ring.")
    ring_layout: str = Field(default="zigzag", description="contiguous, striped or zigzag.")
    ring_sequence_length: int = Field(default=8760, ge=1, description="Tokens per packed sequence.")
    ring_split: str = Field(default="all", description="train, val, test or all.")

    @field_validator(
        "train_start_utc", "val_start_utc", "test_start_utc", "test_end_utc", mode="before"
    )
    @classmethod
    def _day(cls, value: object) -> str | None:
        """A YAML date, a datetime or an ISO text: kept as ISO text of a whole UTC hour."""
        if value is None:
            return None
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if moment.utcoffset() != timedelta(0) or moment != moment.replace(
            minute=0, second=0, microsecond=0
        ):
            raise ValueError(f"{value!r}: split dates are whole UTC hours (YYYY-MM-DD is midnight)")
        return moment.isoformat()

    @model_validator(mode="after")
    def _split_order(self) -> PipelineResource:
        given = [
            (name, getattr(self, name))
            for name in ("train_start_utc", "val_start_utc", "test_start_utc", "test_end_utc")
            if getattr(self, name) is not None
        ]
        for (a, x), (b, y) in itertools.pairwise(given):
            if datetime.fromisoformat(x) >= datetime.fromisoformat(y):
                raise ValueError(f"{a} ({x[:10]}) must be before {b} ({y[:10]})")
        return self

    @field_validator("ring_layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        if value not in ("contiguous", "striped", "zigzag"):
            raise ValueError(f"ring_layout must be contiguous, striped or zigzag, not {value!r}")
        return value

    @field_validator("ring_split")
    @classmethod
    def _split(cls, value: str) -> str:
        if value not in ("train", "val", "test", "all"):
            raise ValueError(f"ring_split must be train, val, test or all, not {value!r}")
        return value

    forecaster_context_hours: int = Field(
        default=96, ge=1, description="Hours of context the forecaster reads (up to 8,760)."
    )
    forecaster_world_size: int = Field(
        default=2,
        ge=1,
        description="Ring-attention processes the forecaster trains on; 1 = full attention in "
        "the asset's process.",
    )
    forecaster_steps: int = Field(default=20, ge=0, description="Optimizer steps.")
    forecaster_batch_size: int = Field(default=8, ge=1, description="Windows per step.")
    forecaster_d_model: int = Field(default=16, ge=4, description="Model width.")
    forecaster_heads: int = Field(default=2, ge=1, description="Attention heads.")
    forecaster_layers: int = Field(default=1, ge=1, description="Transformer blocks.")
    forecaster_learning_rate: float = Field(default=3e-3, gt=0, description="Adam peak rate.")
    forecaster_seed: int = Field(default=0, description="Initialisation and batch order.")

    ring_check_distributed: bool = Field(
        default=False,
        description="Verify ring attention with P real processes (mx.distributed ring) in the "
        "asset check instead of the single-process simulation.",
    )
