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
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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


class PostgresSettings(BaseModel):
    """The Dagster instance's database (runs, events, schedules). The password is read from the
    environment variable named here, by Dagster (`env:` in dagster.yaml): never from this file."""

    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = "dagster"
    user: str = "dagster"
    password_env: str = Field(
        default="DAGSTER_PG_PASSWORD", description="Environment variable holding the password."
    )


class CelerySettings(BaseModel):
    """Steps run as Celery tasks on warm workers (`energy-assets worker`, README)."""

    model_config = ConfigDict(extra="forbid")
    broker: str = Field(description="Broker URL without a password, e.g. redis://host:6379/0.")
    backend: str = Field(description="Result backend URL, e.g. redis://host:6379/1.")
    broker_url_env: str | None = Field(
        default=None,
        description="Environment variable holding the whole broker URL (one with a password); "
        "wins over `broker`.",
    )
    backend_url_env: str | None = Field(
        default=None, description="Environment variable holding the whole backend URL."
    )

    @field_validator("broker", "backend")
    @classmethod
    def _no_password(cls, value: str) -> str:
        if urlparse(value).password:
            raise ValueError(
                "holds a password; put the whole URL in an environment variable and name it "
                "in broker_url_env / backend_url_env (the config file is not a secret store)"
            )
        return value


class K8sSettings(BaseModel):
    """Runs as Kubernetes jobs (K8sRunLauncher), each step in its own pod (k8s_job_executor)."""

    model_config = ConfigDict(extra="forbid")
    job_namespace: str = "dagster"
    image: str | None = Field(
        default=None, description="Image of run and step pods; null: the code location's."
    )
    service_account_name: str | None = None
    env_secrets: list[str] = Field(
        default_factory=list,
        description="Kubernetes Secrets whose keys become the pods' environment (the variables "
        "named by *_env keys here).",
    )
    env_config_maps: list[str] = Field(default_factory=list)
    max_concurrent: int = Field(default=4, ge=1, description="Step pods of one run at once.")


class ObjectStoreSettings(BaseModel):
    """How `data_dir` and compute logs reach an S3-compatible store. Credentials come from the
    environment variables named here; null names mean the client's default chain (IAM role,
    ~/.aws, AWS_ACCESS_KEY_ID)."""

    model_config = ConfigDict(extra="forbid")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto...); null: AWS."
    )
    region: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None


class LocalDeployment(BaseModel):
    """One machine: SQLite instance in `dagster_home`, the `execution:` block's executor."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local"] = "local"


class ProductionDeployment(BaseModel):
    """Postgres instance, queued runs, steps on Celery workers or Kubernetes pods, compute logs
    and data in an object store. `energy-assets` writes `dagster_home/dagster.yaml` from it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["production"]
    postgres: PostgresSettings
    executor: Literal["celery", "k8s"]
    celery: CelerySettings | None = None
    k8s: K8sSettings | None = None
    max_concurrent_runs: int = Field(
        default=4, ge=1, description="Queued run coordinator: runs in progress at once."
    )
    compute_logs: str = Field(
        description="Object store URL for step stdout/stderr, e.g. s3://bucket/compute-logs."
    )
    object_store: ObjectStoreSettings = Field(default_factory=lambda: ObjectStoreSettings())
    shared_limits: str | None = Field(
        default=None,
        description="redis:// URL of the request pacing every worker shares (OASIS 5 s); null: "
        "the Celery broker's Redis.",
    )

    @model_validator(mode="after")
    def _complete(self) -> ProductionDeployment:
        if self.executor == "celery" and self.celery is None:
            raise ValueError("executor celery needs a celery: block (broker, backend)")
        if self.executor == "k8s" and self.k8s is None:
            raise ValueError("executor k8s needs a k8s: block (job_namespace, ...)")
        if not self.compute_logs.startswith("s3://"):
            raise ValueError(f"compute_logs must be an s3:// URL, not {self.compute_logs!r}")
        limits = self.shared_limits_url
        if limits is not None and not limits.startswith(("redis://", "rediss://")):
            raise ValueError(f"shared_limits must be a redis:// URL, not {limits!r}")
        return self

    @property
    def shared_limits_url(self) -> str | None:
        if self.shared_limits is not None:
            return self.shared_limits
        if self.celery is not None and self.celery.broker.startswith(("redis://", "rediss://")):
            return self.celery.broker
        return None


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
    deployment: LocalDeployment | ProductionDeployment = Field(
        default_factory=lambda: LocalDeployment(), discriminator="kind"
    )
    automation: AutomationSettings = Field(default_factory=lambda: AutomationSettings())
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings())

    @model_validator(mode="after")
    def _range(self) -> Settings:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        if self.deployment.kind == "production" and "execution" in self.model_fields_set:
            raise ValueError(
                "execution: applies to deployment kind local; a production deployment's "
                "executor is deployment.executor (celery or k8s)"
            )
        return self

    @property
    def executor_name(self) -> str:
        if self.deployment.kind == "production":
            return self.deployment.executor
        return self.execution.executor

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


class _DatesAsText(yaml.SafeLoader):
    """YAML dates stay text, so pydantic checks them and names the key of an impossible one
    (yaml itself would raise a bare "month must be in 1..12")."""


_DatesAsText.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def load_settings(
    path: str | os.PathLike[str] | None = None, *, for_reading: bool = False
) -> Settings:
    """The run config, validated. `for_reading`: only what reading the store needs (the
    `sources:`/`pipeline:` blocks are the resources' own fields and checked with Dagster's
    resource classes, which a reader of the data does not need to import)."""
    config = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if not config.is_file():
        raise SettingsError(
            f"run config {config} not found: pass --config or set ${CONFIG_ENV} to a YAML file "
            f"like {DEFAULT_CONFIG.relative_to(PROJECT_ROOT)}"
        )
    try:
        raw = yaml.load(config.read_text(), Loader=_DatesAsText) or {}
        settings = Settings.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SettingsError(f"{config} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"{config} is invalid: {problems}") from None
    # folders are relative to the project (the config's parent folder), so resolve first
    settings = settings.resolved(config.resolve().parent.parent)
    if not for_reading:
        _validate_resources(config, settings)
        _check_production_packages(config, settings)
    return settings


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


PRODUCTION_MODULES = {
    "dagster_postgres": "Postgres storage",
    "dagster_aws": "compute logs in S3",
    "s3fs": "data_dir in S3",
}
EXECUTOR_MODULES = {"celery": "dagster_celery", "k8s": "dagster_k8s"}


def _check_production_packages(config: Path, settings: Settings) -> None:
    """A production deployment needs the `production` extra; say so before anything runs."""
    from importlib.util import find_spec

    if settings.deployment.kind != "production":
        return
    needed = {**PRODUCTION_MODULES, EXECUTOR_MODULES[settings.deployment.executor]: "executor"}
    missing = sorted(name for name in needed if find_spec(name) is None)
    if missing:
        raise SettingsError(
            f"{config}: deployment.kind production needs the production extra, missing "
            f"{', '.join(missing)}: pip install -e '.[production]'"
        )
