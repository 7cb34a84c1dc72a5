"""Helper of .ci/stack.sh: writes its two run configs, then verifies what the stack run stored.

    python .ci/stack_check.py write-configs WORK
    python .ci/stack_check.py verify WORK FIRST LAST LAYER...

`write-configs` copies configs/stack.yaml with free loopback ports and all state under WORK, and
writes the same pipeline as a local in-process config (the reference). `verify` asserts:

1. the runs are in Postgres (the instance's run storage is Postgres; the `runs` table holds
   them, all successful) and their steps ran on more than one Celery worker;
2. the bucket holds exactly one object per selected asset partition, nothing else (no
   temporary or partial objects), and compute logs went to the object store;
3. every blocking (error-severity) asset check evaluated in those runs passed;
4. every partition's content equals the in-process run's: the content hash in each file's
   footer and the frames themselves. Raw responses are the exception: their bodies are what
   the stand-in sent at that moment (OASIS zips carry entry times, Open-Meteo a
   `generationtime_ms`), so two fetches never match byte for byte; for them the requests
   (every column but the volatile ones and the body) must be equal, and the bodies' content is
   compared through the parsed tables (`raw/<source>`), which must be equal like every other.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_configs(work: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "stack.yaml").read_text())
    config["dagster_home"] = str(work / "state" / "dagster_home")
    deployment = config["deployment"]
    deployment["postgres"]["port"] = free_port()
    redis = free_port()
    deployment["celery"]["broker"] = f"redis://127.0.0.1:{redis}/0"
    deployment["celery"]["backend"] = f"redis://127.0.0.1:{redis}/1"
    deployment["shared_limits"] = f"redis://127.0.0.1:{redis}/2"
    deployment["object_store"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    (work / "configs").mkdir(parents=True, exist_ok=True)
    (work / "configs" / "stack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    reference = {k: v for k, v in config.items() if k != "deployment"}
    reference["data_dir"] = str(work / "reference" / "assets")
    reference["dagster_home"] = str(work / "reference" / "dagster_home")
    reference["execution"] = {"executor": "in_process"}
    (work / "configs" / "in_process.yaml").write_text(yaml.safe_dump(reference, sort_keys=False))


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def store_client(settings):
    """An S3 client for the deployment's store, the data_dir URL and its key prefix."""
    import boto3

    store = settings.deployment.object_store
    s3 = boto3.client(
        "s3",
        endpoint_url=store.endpoint_url,
        region_name=store.region,
        aws_access_key_id=os.environ[store.access_key_id_env],
        aws_secret_access_key=os.environ[store.secret_access_key_env],
    )
    data = urlparse(settings.data_dir)
    return s3, data, data.path.strip("/") + "/"


def stored_objects(s3, bucket: str, prefix: str) -> list[str]:
    """Every object key under the prefix, relative to it."""
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
    return names


def celery_steps(instance, run_id: str) -> list[tuple[str, str]]:
    """(step key, Celery worker) of each step a worker picked up, from the run's engine events."""
    from dagster import DagsterEventType

    found = []
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        worker = metadata.get("Celery worker")
        if worker is not None:
            found.append((event.step_key, str(getattr(worker, "value", worker))))
    return found


def verify(work: Path, first: str, last: str, layers: list[str]) -> None:
    import psycopg2
    from dagster import DagsterEventType, DagsterInstance

    from energy_assets import orchestrate
    from energy_assets.contracts.tables import contract_for
    from energy_assets.definitions import build_definitions
    from energy_assets.io.parquet import FOOTER_CONTENT_HASH
    from energy_assets.settings import load_settings

    settings = load_settings(work / "configs" / "stack.yaml")
    reference = load_settings(work / "configs" / "in_process.yaml")
    deployment = settings.deployment
    graph = build_definitions(settings).resolve_asset_graph()
    keys = orchestrate.select(graph, layers)
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    days = [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]

    # 1. runs in Postgres, steps on several workers
    pg = deployment.postgres
    with psycopg2.connect(
        host=pg.host, port=pg.port, user=pg.user, dbname=pg.db,
        password=os.environ[pg.password_env],
    ) as connection, connection.cursor() as cursor:  # fmt: skip
        cursor.execute("SELECT status, count(*) FROM runs GROUP BY status")
        statuses = dict(cursor.fetchall())
    if not statuses or set(statuses) != {"SUCCESS"}:
        fail(f"runs in Postgres by status: {statuses} (want only SUCCESS)")
    os.environ["DAGSTER_HOME"] = settings.dagster_home
    instance = DagsterInstance.get()
    storage = type(instance.run_storage).__name__
    if storage != "PostgresRunStorage":
        fail(f"the instance's run storage is {storage}, not Postgres")
    runs = instance.get_runs()
    workers: set[str] = set()
    checks_passed, checks_failed = 0, []
    for run in runs:
        workers.update(w for _, w in celery_steps(instance, run.run_id))
        for record in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records:
            evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
            if evaluation.severity.value != "ERROR":
                continue
            if evaluation.passed:
                checks_passed += 1
            else:
                checks_failed.append(f"{evaluation.asset_key.to_user_string()}:"
                                     f"{evaluation.check_name}")  # fmt: skip
    print(f"runs in Postgres: {statuses}; steps ran on workers: {sorted(workers)}")
    if len(workers) < 2:
        fail(f"steps ran on {sorted(workers)}; expected both Celery workers")

    # 3. blocking checks
    if checks_failed or not checks_passed:
        fail(f"blocking checks: {checks_passed} passed, failed: {sorted(set(checks_failed))}")
    print(f"blocking check evaluations: {checks_passed}, all passed")

    # 2. one object per asset partition, nothing else; compute logs in the store
    s3, data, prefix = store_client(settings)
    listed = stored_objects(s3, data.netloc, prefix)
    wanted = {f"{'/'.join(k.path)}/{d}.parquet" for k in keys for d in days}
    extra, missing = sorted(set(listed) - wanted), sorted(wanted - set(listed))
    if extra or missing or len(listed) != len(set(listed)):
        fail(f"bucket objects: missing {missing[:5]}, unexpected {extra[:5]}")
    print(f"bucket {data.netloc}: exactly {len(listed)} objects = {len(keys)} assets x "
          f"{len(days)} days")  # fmt: skip
    logs = urlparse(deployment.compute_logs)
    found = s3.list_objects_v2(Bucket=logs.netloc, Prefix=logs.path.strip("/") + "/")
    if not found.get("KeyCount"):
        fail(f"no compute logs under {deployment.compute_logs}")
    print(f"compute logs in {deployment.compute_logs}: {found['KeyCount']}+ objects")

    # 4. content equals the in-process run's
    differ = []
    for name in sorted(wanted):
        body = s3.get_object(Bucket=data.netloc, Key=prefix + name)["Body"].read()
        local = Path(reference.data_dir) / name
        ours, theirs = io.BytesIO(body), local.read_bytes()
        hashes = (
            pl.read_parquet_metadata(ours).get(FOOTER_CONTENT_HASH),
            pl.read_parquet_metadata(io.BytesIO(theirs)).get(FOOTER_CONTENT_HASH),
        )
        contract = contract_for(name.rsplit("/", 1)[0])
        ours.seek(0)
        a, b = pl.read_parquet(ours), pl.read_parquet(io.BytesIO(theirs))
        if contract.volatile_columns:  # raw responses: the requests, not the bodies
            drop = [*contract.volatile_columns, "body"]
            same = a.drop(drop, strict=False).equals(b.drop(drop, strict=False))
        else:
            same = hashes[0] is not None and hashes[0] == hashes[1] and a.equals(b)
        if not same:
            differ.append(name)
    if differ:
        fail(f"{len(differ)} partition(s) differ from the in-process run: {differ[:5]}")
    print(f"content of all {len(wanted)} partitions equals the in-process run's (raw responses:"
          " the requests; their bodies through the parsed tables)")  # fmt: skip


def kill_worker(work: Path, first: str, last: str, layers: list[str]) -> None:
    """Backfill another range and SIGKILL the worker process running a step mid-step: the
    task goes back to the queue (acks late, rejected on worker loss), a worker runs the step
    again, the backfill succeeds, and every object in the bucket for the range is complete."""
    import subprocess

    import psutil
    from dagster import DagsterEventType, DagsterInstance

    from energy_assets.settings import load_settings

    config = work / "configs" / "stack.yaml"
    settings = load_settings(config)
    state = Path(settings.dagster_home).parent
    worker = psutil.Process(int((state / "pids" / "worker-1.pid").read_text()))
    command = [sys.executable, "-m", "energy_assets.cli", "--config", str(config), "backfill",
               "--from", first, "--to", last, "--select", *layers]  # fmt: skip
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.environ["DAGSTER_HOME"] = settings.dagster_home
    instance = DagsterInstance.get()
    known = {r.run_id for r in instance.get_runs()}
    killed = None
    while cli.poll() is None and killed is None:
        runs = [r for r in instance.get_runs(limit=5) if r.run_id not in known]
        for run in runs:

            def steps(kind, run_id=run.run_id):
                records = instance.get_records_for_run(run_id, of_type=kind).records
                return {r.event_log_entry.dagster_event.step_key for r in records}

            # a step whose compute has begun (STEP_START stored by the worker), not finished
            running = steps(DagsterEventType.STEP_START) - steps(DagsterEventType.STEP_SUCCESS)
            for step, where in celery_steps(instance, run.run_id):
                if "stack-worker-1@" not in where or step not in running:
                    continue
                for child in worker.children(recursive=True):
                    child.kill()  # the pool process running the step: SIGKILL, mid-step
                killed = (run.run_id, step)
                break
            if killed:
                break
        time.sleep(0.05)
    output, _ = cli.communicate(timeout=600)
    if killed is None:
        fail("no step ran on worker 1 during the backfill; nothing was killed")
    run_id, step = killed
    if cli.returncode != 0:
        fail(f"after killing worker 1 during {step} the backfill failed:\n{output[-2000:]}")
    starts = [
        r
        for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
        if r.event_log_entry.dagster_event.step_key == step
    ]
    if len(starts) < 2:
        fail(f"step {step} started {len(starts)} time(s); the killed attempt was not re-run")
    print(f"killed worker 1's pool process during step {step}; the step started "
          f"{len(starts)} times and the backfill succeeded")  # fmt: skip
    s3, data, prefix = store_client(settings)
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    days = {(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)}
    checked = 0
    for name in stored_objects(s3, data.netloc, prefix):
        if name.rsplit("/", 1)[-1].removesuffix(".parquet") not in days:
            continue
        body = s3.get_object(Bucket=data.netloc, Key=prefix + name)["Body"].read()
        pl.read_parquet(io.BytesIO(body))  # a partial object would not parse
        checked += 1
    print(f"all {checked} objects of {first}..{last} are complete parquet files")


def main() -> None:
    command, work = sys.argv[1], Path(sys.argv[2])
    if command == "write-configs":
        write_configs(work)
    elif command == "kill-worker":
        kill_worker(work, sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        verify(work, sys.argv[3], sys.argv[4], sys.argv[5:])


if __name__ == "__main__":
    main()
