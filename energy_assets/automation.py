"""Schedules, sensors and freshness checks: how the platform keeps itself up to date and says so.

`build_automation(settings)` returns everything `definitions.py` adds for unattended operation:

- `daily_refresh` (job + schedule, 06:00 UTC): one run over the trailing revision window
  [today - 1 - R, today - 1], where R is the longest `revision_days` of the registered sources
  (upstream revises recent days, so they are fetched again) and today - 1 is the newest complete
  UTC day. Every layer except `ml` runs in that one ranged run: within a run Dagster orders the
  steps by dependency, which separate run requests of one tick cannot promise. The window is also
  within every raw responses asset's `multi_run` batch size, which is checked here, so the run
  honours the raw layer's backfill policy too.
- `provisional_refresh` (run-status sensor): when a daily refresh run succeeds, one ranged run
  re-materializes the stored provisional partitions of the derived layers (days whose context
  window reached past the stored data, marked by the IO manager), oldest to newest, since their
  missing context has now arrived. It follows the refresh run, so it reads the refetched data.
- Freshness checks on the parsed raw tables (by 09:00 UTC the previous day's partition must exist)
  and the sensor that evaluates them. They judge wall-clock time, not data, so they are built only
  for live sources unless `automation.freshness_checks` says otherwise: in offline mode the data
  is a fixed historical sample and would be "stale" forever.
- `alert_on_run_failure`: a run-failure sensor that POSTs a JSON alert (run id, job, error,
  partition tags) to a webhook. The URL comes from $ENERGY_ASSETS_ALERT_WEBHOOK, else the run
  config's `alerts.webhook_url`. Secrets never leave: only allow-listed tags are sent (never run
  config), and known secret values (API keys in the environment, the webhook URL itself) are
  redacted from error text.

Schedules and the freshness sensor start switched on only for live sources; the alert sensor is on
whenever a webhook is configured. All of them need `dagster-daemon` (or `dagster dev`) running.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SkipReason,
    SupersessionWarning,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
    run_failure_sensor,
    run_status_sensor,
    schedule,
)

from energy_assets.partitions import DAILY
from energy_assets.sources.base import redact
from energy_assets.sources.registry import SOURCES

# The refresh job (like main_job) mixes the raw responses' multi_run batches with single_run
# layers on purpose: its resolved policy is the smallest batch, which bounds the window below.
warnings.filterwarnings("ignore", message=r"Asset job .* varying BackfillPolicies")

ALERT_WEBHOOK_ENV = "ENERGY_ASSETS_ALERT_WEBHOOK"
REFRESH_JOB = "daily_refresh"
REFRESH_CRON = "0 6 * * *"
FRESHNESS_DEADLINE_CRON = "0 9 * * *"  # three hours after the refresh starts
REFRESH_EXCLUDED_GROUPS = ("ml", "forecast")
"""The ML layer and the forecaster are materialized over their configured windows (statistics,
sequences, a trained model), not retrained by the daily refresh of a week of data."""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ALERT_TAGS = (
    "dagster/partition",
    RANGE_START_TAG,
    RANGE_END_TAG,
    "dagster/backfill",
    "dagster/schedule_name",
    "dagster/sensor_name",
    "energy_assets/launched_by",
)
"""The only run tags an alert carries; everything else (and all run config) stays home."""

ALERT_ERROR_CHARS = 4000
_SECRET_ENV_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|WEBHOOK)", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"(?i)\b(api_key|apikey|access_token|token|key|secret|password|sig)=([^&\s\"']+)"
)


@dataclass
class Automation:
    """What `definitions.py` adds to the Definitions for unattended operation."""

    schedules: list[Any] = field(default_factory=list)
    sensors: list[Any] = field(default_factory=list)
    asset_checks: list[Any] = field(default_factory=list)
    """Wall-clock (freshness) checks only: keep them out of historical backfills and CI."""
    jobs: list[Any] = field(default_factory=list)


# --- settings ------------------------------------------------------------------------------


def _section(settings: Any, name: str) -> Mapping[str, Any]:
    """A settings block as a mapping, whether the field exists yet, is a model or a dict."""
    value = getattr(settings, name, None)
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    return {k: v for k, v in dict(value).items() if v is not None}  # None: use the default


def _source_option(settings: Any, name: str, default: Any) -> Any:
    """A `sources:` option of the run config (a dict, or a model in older settings)."""
    sources = getattr(settings, "sources", None) or {}
    if isinstance(sources, Mapping):
        return sources.get(name, default)
    return getattr(sources, name, default)


def _is_live(settings: Any) -> bool:
    return _source_option(settings, "mode", "offline") == "live"


def alert_webhook_url(settings: Any = None) -> str | None:
    """$ENERGY_ASSETS_ALERT_WEBHOOK, else `alerts.webhook_url` of the run config, else None."""
    return os.environ.get(ALERT_WEBHOOK_ENV) or _section(settings, "alerts").get("webhook_url")


# --- the daily refresh ---------------------------------------------------------------------


def revision_days() -> int:
    """The longest trailing window any registered source revises."""
    return max(spec.revision_days for spec in SOURCES.values())


def refresh_window(today: date, days_revised: int | None = None) -> tuple[date, date]:
    """[today - 1 - R, today - 1]: the newest complete UTC day and the R days before it."""
    r = revision_days() if days_revised is None else days_revised
    newest = today - timedelta(days=1)
    return newest - timedelta(days=r), newest


def _check_window_fits_raw_batches(days: int) -> None:
    limit = min(spec.max_days_per_run for spec in SOURCES.values())
    if days > limit:
        raise ValueError(
            f"the daily refresh window is {days} days, more than the {limit}-day batch the raw "
            "responses assets allow per run (SourceSpec.max_days_per_run): lower revision_days "
            "in sources/registry.py or refresh the window with a backfill instead"
        )


def refresh_job(excluded_groups: Sequence[str] = REFRESH_EXCLUDED_GROUPS) -> Any:
    """Every layer but `excluded_groups`, DAILY-partitioned, for ranged runs."""
    selection = AssetSelection.all()
    if excluded_groups:
        selection = selection - AssetSelection.groups(*excluded_groups)
    return define_asset_job(
        REFRESH_JOB,
        selection=selection,
        partitions_def=DAILY,
        description="The newest complete UTC day and the trailing revision window, every layer "
        f"except {', '.join(excluded_groups) or 'none'}, in one ranged run.",
    )


def refresh_schedule(
    job: Any,
    cron: str = REFRESH_CRON,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    window_days = revision_days() + 1
    _check_window_fits_raw_batches(window_days)

    @schedule(
        name=f"{REFRESH_JOB}_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        default_status=default_status,
        description=f"Materialize the newest complete UTC day and re-materialize the "
        f"{window_days - 1} days before it, which upstream may still revise.",
    )
    def _refresh(context: ScheduleEvaluationContext) -> RunRequest:
        tick = context.scheduled_execution_time
        today = (tick.astimezone(UTC) if tick else datetime.now(UTC)).date()
        first, last = refresh_window(today)
        return RunRequest(
            # one run per window: a re-evaluated tick does not launch it twice
            run_key=f"{REFRESH_JOB}:{first.isoformat()}..{last.isoformat()}",
            tags={
                RANGE_START_TAG: first.isoformat(),
                RANGE_END_TAG: last.isoformat(),
                "energy_assets/launched_by": "schedule",
            },
        )

    return _refresh


PROVISIONAL_REFRESH_GROUPS = ("aligned", "imputed", "reconciled", "features")
"""The layers whose days read context after them (align ±1 day, screen and fill ±46 days) or
read such days (reconciled reads its imputed day, features look back 8 days), hence the layers
that have provisional days (the keys below)."""


def provisional_span(instance: Any, keys: Sequence[AssetKey]) -> tuple[str, str] | None:
    """First and last day of the stored provisional partitions of `keys`, or None."""
    from energy_assets.lineage import latest_materializations, metadata_value

    days = [
        day
        for key in keys
        for day, record in latest_materializations(instance, key).items()
        if metadata_value(record, "provisional", False)
    ]
    return (min(days), max(days)) if days else None


def provisional_refresh_sensor(
    refresh: Any, default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED
) -> SensorDefinition:
    keys = [AssetKey(["aligned", "series"]), AssetKey(["imputed", "series"])]
    keys += [AssetKey(["reconciled", "series"]), AssetKey(["features", "hourly"])]

    @run_status_sensor(
        name="provisional_refresh",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[refresh],
        request_job=refresh,
        default_status=default_status,
        description="After a successful daily refresh, re-materialize the provisional days of "
        f"{', '.join(PROVISIONAL_REFRESH_GROUPS)} (their missing context has arrived).",
    )
    def _refresh(context: RunStatusSensorContext):
        span = provisional_span(context.instance, keys)
        if span is None:
            return SkipReason("no provisional partitions")
        return RunRequest(
            run_key=f"provisional:{context.dagster_run.run_id}",
            asset_selection=keys,
            tags={
                RANGE_START_TAG: span[0],
                RANGE_END_TAG: span[1],
                "energy_assets/launched_by": "provisional_refresh",
            },
        )

    return _refresh


# --- freshness -----------------------------------------------------------------------------


def raw_table_keys() -> list[AssetKey]:
    """The parsed raw table of every registered source (stale responses make them stale too)."""
    return [AssetKey(["raw", name]) for name in SOURCES]


def freshness_checks(deadline_cron: str = FRESHNESS_DEADLINE_CRON) -> list[AssetChecksDefinition]:
    """By each deadline, the partition of the day before must have been materialized."""
    # Superseded by FreshnessPolicy in 1.13, but a FreshnessPolicy judges the latest
    # materialization of any partition (a backfill of 2019 would count as fresh); this check
    # asks for the right partition.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return list(
            build_time_partition_freshness_checks(
                assets=raw_table_keys(),
                deadline_cron=deadline_cron,
                timezone="UTC",
                severity=AssetCheckSeverity.WARN,
            )
        )


# --- alerts --------------------------------------------------------------------------------


def known_secrets(extra: Sequence[str | None] = ()) -> list[str]:
    """Values that must never appear in an alert: secret-looking env vars and `extra`."""
    values = [
        value
        for name, value in os.environ.items()
        if _SECRET_ENV_NAME.search(name) and value and len(value) >= 8
    ]
    return sorted({v for v in [*values, *extra] if v}, key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Remove known secret values and `key=value` credentials in URLs from free text."""
    return _SECRET_QUERY.sub(r"\1=REDACTED", redact(text, list(secrets)))


def _error_text(context: RunFailureSensorContext) -> tuple[str, list[dict[str, str]]]:
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        parts = []
        while error is not None:
            parts.append(error.message.strip())
            error = error.cause
        steps.append({"step": event.step_key or "", "error": "\n".join(parts)})
    summary = context.failure_event.message or "run failed"
    if steps:
        summary += "\n" + "\n".join(f"{s['step']}: {s['error']}" for s in steps)
    return summary, steps


def failure_alert(context: RunFailureSensorContext, secrets: Sequence[str]) -> dict[str, Any]:
    """The JSON body of an alert: what failed, where, for which partitions; nothing secret."""
    run = context.dagster_run
    error, steps = _error_text(context)
    tags = {k: v for k, v in run.tags.items() if k in ALERT_TAGS}
    return {
        "source": "energy-assets",
        "event": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "assets": sorted(k.to_user_string() for k in run.asset_selection or ()),
        "status": run.status.value,
        "error": scrub(error, secrets)[:ALERT_ERROR_CHARS],
        "failed_steps": [
            {"step": s["step"], "error": scrub(s["error"], secrets)[:ALERT_ERROR_CHARS]}
            for s in steps
        ],
        "partition": {
            k: tags[k] for k in ("dagster/partition", RANGE_START_TAG, RANGE_END_TAG) if k in tags
        },
        "tags": tags,
        "ui_path": f"/runs/{run.run_id}",
        "sent_at_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def redacted_url(url: str) -> str:
    """scheme://host/... : webhook paths and queries often are the credential."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/..."


def post_alert(
    url: str, payload: Mapping[str, Any], attempts: int = 3, timeout_s: float = 10.0
) -> requests.Response:
    """POST the alert as JSON; a few quick retries, then an error naming the host only."""
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.post(
                url,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                timeout=timeout_s,
            )
            if response.status_code < 300:
                return response
            problem = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            problem = type(exc).__name__
        if attempt < attempts:
            time.sleep(min(2.0**attempt, 10.0))
    raise RuntimeError(
        f"alert webhook {redacted_url(url)} refused the alert after {attempts} attempts "
        f"({problem}); check ${ALERT_WEBHOOK_ENV} / alerts.webhook_url and that the receiver is up"
    )


def alert_sensor(settings: Any) -> SensorDefinition:
    configured = alert_webhook_url(settings)

    @run_failure_sensor(
        name="alert_on_run_failure",
        description=f"POST a JSON alert for every failed run to ${ALERT_WEBHOOK_ENV} (or the run "
        "config's alerts.webhook_url): run id, job, error, partition tags; no secrets.",
        default_status=DefaultSensorStatus.RUNNING if configured else DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=15,
    )
    def _alert(context: RunFailureSensorContext):
        url = alert_webhook_url(settings)
        if not url:
            return SkipReason(f"no alert webhook configured (${ALERT_WEBHOOK_ENV})")
        key_env = _source_option(settings, "eia_api_key_env", "EIA_API_KEY")
        secrets = known_secrets([url, os.environ.get(key_env)])
        post_alert(url, failure_alert(context, secrets))
        context.log.info(f"alert for run {context.dagster_run.run_id} sent to {redacted_url(url)}")
        return None

    return _alert


# --- assembly ------------------------------------------------------------------------------


def build_automation(settings: Any) -> Automation:
    """Schedules, sensors, freshness checks and the refresh job for these run settings.

    Reads two optional blocks of the run config (missing blocks mean the defaults):
    `automation: {refresh_cron, freshness_deadline_cron, freshness_checks (null = live only),
    refresh_excluded_groups}` and `alerts: {webhook_url}`.
    """
    options = _section(settings, "automation")
    live = _is_live(settings)
    job = refresh_job(options.get("refresh_excluded_groups", REFRESH_EXCLUDED_GROUPS))
    running = DefaultScheduleStatus.RUNNING if live else DefaultScheduleStatus.STOPPED
    automation = Automation(
        jobs=[job],
        schedules=[refresh_schedule(job, options.get("refresh_cron", REFRESH_CRON), running)],
        sensors=[
            alert_sensor(settings),
            provisional_refresh_sensor(
                job, DefaultSensorStatus.RUNNING if live else DefaultSensorStatus.STOPPED
            ),
        ],
    )
    wants_freshness = options.get("freshness_checks")
    if live if wants_freshness is None else wants_freshness:
        checks = freshness_checks(options.get("freshness_deadline_cron", FRESHNESS_DEADLINE_CRON))
        automation.asset_checks += checks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SupersessionWarning)  # see freshness_checks()
            sensor = build_sensor_for_freshness_checks(
                freshness_checks=checks,
                name="raw_freshness_sensor",
                minimum_interval_seconds=600,
                default_status=DefaultSensorStatus.RUNNING if live else DefaultSensorStatus.STOPPED,
            )
        automation.sensors.append(sensor)
    return automation
