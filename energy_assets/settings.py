"""Run settings: one YAML file under `configs/` makes a run reproducible.

`load_settings(path)` reads and validates the file; `definitions.py` builds the Definitions from
it (the file comes from $ENERGY_ASSETS_CONFIG, else `configs/main.yaml`), and the `energy-assets`
CLI uses the same file, so the web UI, the CLI and the tests see the same assets and resources.
Relative paths in the file are resolved against the config folder's parent (the project root
for files under `configs/`).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "main.yaml"
CONFIG_ENV = "ENERGY_ASSETS_CONFIG"


class AutomationSettings(BaseModel):
    """Schedules and freshness (energy_assets/automation.py); null keys mean the defaults."""

    model_config = ConfigDict(extra="forbid")
    refresh_cron: str | None = None
    freshness_deadline_cron: str | None = None
    freshness_checks: bool | None = Field(default=None, description="null: in live mode only")
    refresh_excluded_groups: list[str] | None = None


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_url: str | None = Field(
        default=None,
        description="Run failures are POSTed here ($ENERGY_ASSETS_ALERT_WEBHOOK wins).",
    )


class ExecutionSettings(BaseModel):
    """How a run executes its steps: the executor of every job in the Definitions, so the web UI,
    the daemon, the `energy-assets` CLI and `dagster` CLI commands all use it."""

    model_config = ConfigDict(extra="forbid")
    executor: Literal["in_process", "multiprocess"] = Field(
        default="in_process",
        description="in_process: steps one after another in the run's process (least overhead); "
        "multiprocess: independent steps in parallel, one process each.",
    )
    max_concurrent: int = Field(
        default=2, ge=1, le=64, description="multiprocess: steps running at once."
    )
    start_method: Literal["forkserver", "spawn"] = Field(
        default="forkserver",
        description="multiprocess: forkserver preloads the project once (fast step start).",
    )


class Settings(BaseModel):
    """Everything a run depends on. Unknown keys are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")
    start: date = Field(description="First UTC day of the main job's range.")
    end: date = Field(description="Last UTC day of the main job's range (included).")
    data_dir: str = Field(
        default="data/assets", description="Base of the parquet files: a folder or an fsspec URL."
    )
    dagster_home: str = Field(
        default="data/dagster_home", description="Dagster instance folder (dagster.yaml)."
    )
    sources: dict[str, Any] = Field(
        default_factory=dict, description="SourcesResource fields (where the APIs are)."
    )
    pipeline: dict[str, Any] = Field(
        default_factory=dict, description="PipelineResource fields (windows, splits, ring)."
    )
    execution: ExecutionSettings = Field(default_factory=lambda: ExecutionSettings())
    automation: AutomationSettings = Field(default_factory=lambda: AutomationSettings())
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings())

    @model_validator(mode="after")
    def _range(self) -> Settings:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    def resolved(self, root: Path) -> Settings:
        def absolute(value: str) -> str:
            if "://" in value or os.path.isabs(value):
                return value
            return str((root / value).resolve())

        sources = dict(self.sources)
        if sources.get("realdata_dir"):
            sources["realdata_dir"] = absolute(sources["realdata_dir"])
        return self.model_copy(
            update={
                "data_dir": absolute(self.data_dir),
                "dagster_home": absolute(self.dagster_home),
                "sources": sources,
            }
        )


class SettingsError(ValueError):
    """The run config file is missing or invalid; the message says which key and why."""


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    config = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if not config.is_file():
        raise SettingsError(
            f"run config {config} not found: pass --config or set ${CONFIG_ENV} to a YAML file "
            f"like {DEFAULT_CONFIG.relative_to(PROJECT_ROOT)}"
        )
    try:
        raw = yaml.safe_load(config.read_text()) or {}
        settings = Settings.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SettingsError(f"{config} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"{config} is invalid: {problems}") from None
    _validate_resources(config, settings)
    return settings.resolved(config.resolve().parent.parent)


def _validate_resources(config: Path, settings: Settings) -> None:
    """The `sources:` and `pipeline:` blocks are the resources' own fields, checked here so a
    typo fails at load time with the file and key named, not deep inside a run."""
    from energy_assets.resources import PipelineResource, SourcesResource

    for block, resource in (("sources", SourcesResource), ("pipeline", PipelineResource)):
        values = getattr(settings, block)
        unknown = sorted(set(values) - set(resource.model_fields))
        if unknown:
            raise SettingsError(
                f"{config}: unknown key(s) {unknown} under {block}:; "
                f"known keys: {sorted(resource.model_fields)}"
            )
        try:
            resource(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{block}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"{config} is invalid: {problems}") from None
