"""The Kubernetes deployment, checked without a cluster: deploy/helm/values.yaml (for the
official Dagster chart), deploy/Dockerfile and configs/k8s.yaml must parse, use only keys the
chart's values schema knows (the field sets below are the chart's 1.13 pydantic models), and
agree with each other. Not run here: `helm template`/`helm lint` (no helm binary), `docker
build`, and anything on a cluster."""

from __future__ import annotations

import tomllib

import yaml

from energy_assets.deployment import instance_config
from energy_assets.settings import PROJECT_ROOT, load_settings

VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
CONFIG = PROJECT_ROOT / "configs" / "k8s.yaml"

# Field names of the chart's values models (helm/dagster/schema, dagster 1.13.x)
CHART_TOP = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount", "global",
    "retention", "concurrency", "additionalInstanceConfig",
}  # fmt: skip
USER_DEPLOYMENT = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs",
    "includeConfigInLaunchedRuns", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName",
}  # fmt: skip
POSTGRESQL = {
    "postgresqlScheme", "image", "enabled", "postgresqlHost", "postgresqlUsername",
    "postgresqlPassword", "postgresqlDatabase", "postgresqlParams", "service",
}  # fmt: skip
K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure",
}  # fmt: skip
S3_COMPUTE_LOGS = {"localDir", "prefix", "useSsl", "verify", "verifyCertPath", "endpointUrl",
                   "skipEmptyFiles", "uploadInterval", "uploadExtraArgs", "showUrlOnly",
                   "region", "bucket"}  # fmt: skip


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_values_use_only_keys_the_chart_knows():
    v = values()
    assert set(v) <= CHART_TOP
    deployments = v["dagster-user-deployments"]["deployments"]
    assert v["dagster-user-deployments"]["enabled"] is True and len(deployments) == 1
    assert set(deployments[0]) <= USER_DEPLOYMENT
    assert {"name", "image", "port"} <= set(deployments[0])
    assert set(v["postgresql"]) <= POSTGRESQL
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(v["runLauncher"]["config"]) == {"k8sRunLauncher"}
    assert set(v["runLauncher"]["config"]["k8sRunLauncher"]) <= K8S_RUN_LAUNCHER
    assert v["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert set(v["computeLogManager"]["config"]["s3ComputeLogManager"]) <= S3_COMPUTE_LOGS
    coordinator = v["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and coordinator["enabled"] is True


def test_values_agree_with_the_run_config_and_the_image():
    v = values()
    settings = load_settings(CONFIG)
    deployment = settings.deployment
    assert deployment.kind == "production" and deployment.executor == "k8s"
    pg = v["postgresql"]
    assert pg["enabled"] is False  # the run config's external PostgreSQL
    db = deployment.postgres
    assert pg["postgresqlHost"] == db.host and pg["service"]["port"] == db.port
    assert pg["postgresqlDatabase"] == db.db and pg["postgresqlUsername"] == db.user
    instance = instance_config(settings)
    assert pg["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["jobNamespace"] == deployment.k8s.job_namespace
    assert [s["name"] for s in launcher["envSecrets"]] == deployment.k8s.env_secrets
    assert instance["run_launcher"]["class"] == "K8sRunLauncher"
    logs = v["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert f"s3://{logs['bucket']}/{logs['prefix']}" == deployment.compute_logs
    queued = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == deployment.max_concurrent_runs

    code = v["dagster-user-deployments"]["deployments"][0]
    module = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert code["codeServerArgs"] == ["-m", module["module_name"]]
    env = {e["name"]: e["value"] for e in code["env"]}
    docker = DOCKERFILE.read_text()
    assert f"ENERGY_ASSETS_CONFIG={env['ENERGY_ASSETS_CONFIG']}" in docker
    assert env["ENERGY_ASSETS_CONFIG"].endswith("/" + CONFIG.relative_to(PROJECT_ROOT).as_posix())
    assert f'"-p", "{code["port"]}"' in docker and f"EXPOSE {code['port']}" in docker
    assert f'"-m", "{module["module_name"]}"' in docker


def test_dockerfile_installs_the_production_extra_on_the_projects_python():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    base = next(line for line in lines if line.startswith("FROM "))
    assert base.startswith("FROM python:3.11")
    assert any("pip install" in line and '".[production]"' in line for line in lines)
    assert "COPY configs ./configs" in lines and "COPY energy_assets ./energy_assets" in lines
