"""The `deployment:` block: validated like the rest of the config, turned into dagster.yaml (no
secret in it), an executor in the Definitions, and a refusal of a hand-written dagster.yaml
that disagrees."""

from __future__ import annotations

import pytest
import yaml

from energy_assets.cli import main
from energy_assets.deployment import (
    differing_keys,
    instance_config,
    render_instance_yaml,
    storage_options,
    write_instance_yaml,
)
from energy_assets.settings import SettingsError, load_settings

PRODUCTION = """\
start: 2024-03-04
end: 2024-03-06
data_dir: s3://bucket/assets
deployment:
  kind: production
  postgres: {host: db.internal, port: 5433, db: dagster, user: dagster, password_env: PG_PW}
  executor: celery
  celery: {broker: "redis://queue:6379/0", backend: "redis://queue:6379/1"}
  compute_logs: s3://bucket/compute-logs
  object_store:
    endpoint_url: http://objects:9000
    region: eu-west-1
    access_key_id_env: S3_KEY
    secret_access_key_env: S3_SECRET
"""


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_local_is_the_default_and_keeps_sqlite_and_the_execution_block(tmp_path):
    settings = load_settings(write(tmp_path, "start: 2024-01-01\nend: 2024-01-02\n"))
    assert settings.deployment.kind == "local"
    assert settings.executor_name == "in_process"
    config = instance_config(settings)
    assert "storage" not in config and "run_launcher" not in config  # SQLite in dagster_home


def test_production_dagster_yaml_names_the_variables_never_the_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_PW", "pg-secret-123")
    monkeypatch.setenv("S3_SECRET", "s3-secret-456")
    settings = load_settings(write(tmp_path, PRODUCTION))
    text = render_instance_yaml(settings, "configs/run.yaml")
    assert "pg-secret-123" not in text and "s3-secret-456" not in text
    config = yaml.safe_load(text)
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "PG_PW"}
    # SQLAlchemy 2.1 would pick psycopg 3 for postgresql://; dagster-postgres brings psycopg2
    assert db["scheme"] == "postgresql+psycopg2" and db["port"] == 5433
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    logs = config["compute_logs"]["config"]
    assert logs["bucket"] == "bucket" and logs["prefix"] == "compute-logs"
    assert logs["secret_access_key"] == {"env": "S3_SECRET"}
    assert logs["endpoint_url"] == "http://objects:9000"


def test_generated_dagster_yaml_is_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    settings = load_settings(write(tmp_path, PRODUCTION))
    home = write_instance_yaml(settings).parent
    config, _ = dagster_instance_config(str(home))  # schema + concurrency rules, no connection
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_data_dir_credentials_are_read_from_the_named_variables(tmp_path):
    settings = load_settings(write(tmp_path, PRODUCTION))
    fixed, from_env = storage_options(settings)
    assert fixed == {"endpoint_url": "http://objects:9000",
                     "client_kwargs": {"region_name": "eu-west-1"}}  # fmt: skip
    assert from_env == {"key": "S3_KEY", "secret": "S3_SECRET"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("  executor: celery\n", "  executor: dask\n"), "deployment.production.executor"),
        (("  celery: {", "  cellery: {"), "cellery"),
        (("  executor: celery\n", "  executor: k8s\n"), "executor k8s needs a k8s: block"),
        (("s3://bucket/compute-logs", "/var/logs"), "compute_logs must be an s3:// URL"),
        (("port: 5433", "port: 99999"), "deployment.production.postgres.port"),
        (("redis://queue:6379/0", "redis://:hunter2@queue:6379/0"), "broker_url_env"),
        (("deployment:\n", "execution: {executor: multiprocess}\ndeployment:\n"),
         "execution: applies to deployment kind local"),
    ],
)  # fmt: skip
def test_bad_deployment_fails_at_load_naming_file_and_key(tmp_path, edit, message):
    path = write(tmp_path, PRODUCTION.replace(*edit))
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(path)
    assert str(path) in str(raised.value)


def test_executor_comes_from_the_config_inside_the_definitions(tmp_path):
    from energy_assets.definitions import build_definitions

    settings = load_settings(write(tmp_path, PRODUCTION))
    executor = build_definitions(settings).executor
    assert executor.name == "celery"
    k8s = PRODUCTION.replace("  executor: celery\n", "  executor: k8s\n  k8s: {image: x:1}\n")
    k8s_settings = load_settings(write(tmp_path, k8s, "k8s.yaml"))
    assert build_definitions(k8s_settings).executor.name == "k8s"
    assert instance_config(k8s_settings)["run_launcher"]["class"] == "K8sRunLauncher"


def test_hand_written_dagster_yaml_that_disagrees_is_refused_with_the_keys(tmp_path, capsys):
    config = write(tmp_path, "start: 2024-03-04\nend: 2024-03-04\n")
    home = tmp_path / "data" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: postgresql://x@db/dagster\n"
    )
    code = main(["--config", str(config), "backfill", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "storage.postgres.postgres_url" in err
    assert "written by hand" in err


def test_hand_written_dagster_yaml_that_agrees_is_used_as_it_is(tmp_path):
    settings = load_settings(write(tmp_path, "start: 2024-03-04\nend: 2024-03-04\n"))
    home = tmp_path / "data" / "dagster_home"
    home.mkdir(parents=True)
    mine = "telemetry:\n  enabled: true\nconcurrency:\n  pools:\n    default_limit: 2\n"
    (home / "dagster.yaml").write_text(mine)
    write_instance_yaml(settings)
    assert (home / "dagster.yaml").read_text() == mine


def test_generated_dagster_yaml_follows_the_config(tmp_path):
    local = load_settings(write(tmp_path, "start: 2024-03-04\nend: 2024-03-04\n"))
    path = write_instance_yaml(local)
    production = load_settings(write(tmp_path, PRODUCTION)).model_copy(
        update={"dagster_home": local.dagster_home}
    )
    write_instance_yaml(production)  # ours: rewritten, not refused
    assert "postgres" in yaml.safe_load(path.read_text())["storage"]


def test_differing_keys_treats_absent_as_different():
    assert differing_keys({}, {"storage": {"postgres": {"x": 1}}}) == ["storage.postgres.x"]
    assert differing_keys({"telemetry": {"enabled": True}}, {}) == []
