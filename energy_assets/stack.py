"""The production deployment on loopback, for development and CI: `./dev stack up|down|status`.

Starts what a production run config (`configs/stack.yaml`) points at, on 127.0.0.1, with all
state in a folder beside its `dagster_home` (`data/stack/`), never a system service:

- PostgreSQL (Debian's `postgresql` binaries): a throwaway cluster made by `initdb`, run by
  `pg_ctl`, with a generated password (scram-sha-256);
- `redis-server`: the Celery broker and result backend, and the shared request pacing;
- moto's server mode: a local S3-compatible endpoint, with the buckets the config names;
- N Celery workers (`energy-assets worker`), each its own process group.

Secrets are generated once into `<state>/stack.env` (mode 600) under the variable names the
config gives (`password_env`, `access_key_id_env`...); `./dev` exports them to every command.
Exit code 3 means the machine cannot run a server (a package is missing and cannot be installed).

    python -m energy_assets.stack up [--config configs/stack.yaml] [--workers 2]
    python -m energy_assets.stack down | status
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from energy_assets.settings import PROJECT_ROOT, ProductionDeployment, Settings, load_settings

DEFAULT_STACK_CONFIG = PROJECT_ROOT / "configs" / "stack.yaml"
CANNOT_RUN = 3


class StackError(RuntimeError):
    """A server could not start; the message says which and where its log is."""


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


class Stack:
    def __init__(self, config: Path, settings: Settings) -> None:
        if not isinstance(settings.deployment, ProductionDeployment):
            raise StackError(f"{config} is not a production deployment (deployment.kind)")
        if settings.deployment.executor != "celery":
            raise StackError(f"{config}: the loopback stack runs deployment.executor celery")
        self.config, self.settings, self.deployment = config, settings, settings.deployment
        self.state = Path(settings.dagster_home).parent
        self.logs, self.pids = self.state / "logs", self.state / "pids"
        self.env_file = self.state / "stack.env"

    # --- secrets -------------------------------------------------------------------------
    def secret_names(self) -> list[str]:
        store = self.deployment.object_store
        names = [self.deployment.postgres.password_env]
        names += [n for n in (store.access_key_id_env, store.secret_access_key_env) if n]
        return names

    def load_secrets(self) -> dict[str, str]:
        values: dict[str, str] = {}
        if self.env_file.exists():
            for line in self.env_file.read_text().splitlines():
                name, _, value = line.partition("=")
                if name and not name.startswith("#"):
                    values[name.strip()] = value.strip()
        missing = [n for n in self.secret_names() if n not in values]
        if missing:
            values.update({n: secrets.token_hex(16) for n in missing})
            self.state.mkdir(parents=True, exist_ok=True)
            self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            self.env_file.chmod(0o600)
        os.environ.update(values)
        return values

    # --- process bookkeeping -------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            path.unlink(missing_ok=True)
            return None
        return pid

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: down stops its children too
            )
        (self.pids / f"{name}.pid").write_text(str(process.pid))
        return process.pid

    def _stop(self, name: str, timeout_s: float = 15.0) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._alive_group(pid):
            time.sleep(0.2)
        if self._alive_group(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)
        return True

    @staticmethod
    def _alive_group(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        # a zombie leader still counts as a group; reap it if it is our child
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        return True

    def _wait_port(self, name: str, port: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise StackError(f"{name} did not answer on 127.0.0.1:{port}; see {self.logs / name}.log")

    # --- PostgreSQL ----------------------------------------------------------------------
    @staticmethod
    def postgres_bin() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
        if found:
            return Path(found[0]).parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).resolve().parent
        raise StackError("PostgreSQL's initdb not found: apt-get install postgresql")

    def _as_postgres(self, command: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: hand the cluster to the `postgres` system user
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def start_postgres(self) -> None:
        pg = self.deployment.postgres
        data, sockets = self.state / "pg", self.state / "pgsock"
        bindir = self.postgres_bin()
        password = os.environ[pg.password_env]
        if not (data / "PG_VERSION").exists():
            say(f"initdb {data}")
            data.mkdir(parents=True, exist_ok=True)
            pwfile = self.state / ".pgpass-init"
            pwfile.write_text(password + "\n")
            owned = [data, pwfile]
            if os.geteuid() == 0:
                for path in owned:
                    shutil.chown(path, "postgres", "postgres")
            try:
                initdb = [str(bindir / "initdb"), "-D", str(data), "-U", pg.user,
                          "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                          "--no-sync"]  # fmt: skip
                subprocess.run(
                    self._as_postgres(initdb),
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except subprocess.CalledProcessError as exc:
                raise StackError(f"initdb failed: {exc.stderr.strip()[-500:]}") from None
            finally:
                pwfile.unlink(missing_ok=True)
        if self._postgres_running(bindir, data):
            say(f"postgres already running on 127.0.0.1:{pg.port}")
        else:
            sockets.mkdir(parents=True, exist_ok=True)
            self.logs.mkdir(parents=True, exist_ok=True)
            log = self.logs / "postgres.log"
            log.touch()
            if os.geteuid() == 0:
                for path in (sockets, log):
                    shutil.chown(path, "postgres", "postgres")
            options = f"-p {pg.port} -h 127.0.0.1 -k {sockets} -c fsync=off"
            start = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                     "-w", "-t", "60", "start"]  # fmt: skip
            done = subprocess.run(
                self._as_postgres(start),
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise StackError(f"postgres did not start: {done.stdout} {done.stderr}; see {log}")
            say(f"postgres on 127.0.0.1:{pg.port} ({data})")
        self._create_database(password)

    def _postgres_running(self, bindir: Path, data: Path) -> bool:
        status = subprocess.run(
            self._as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "status"]),
            capture_output=True,
        )
        return status.returncode == 0

    def _create_database(self, password: str) -> None:
        import psycopg2

        pg = self.deployment.postgres
        connection = psycopg2.connect(
            host="127.0.0.1", port=pg.port, user=pg.user, password=password, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.db,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{pg.db}"')
        finally:
            connection.close()

    def stop_postgres(self) -> None:
        data = self.state / "pg"
        if not (data / "PG_VERSION").exists():
            return
        bindir = self.postgres_bin()
        if self._postgres_running(bindir, data):
            stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            subprocess.run(
                self._as_postgres(stop),
                capture_output=True,
            )
            say("postgres stopped")

    # --- Redis and S3 --------------------------------------------------------------------
    def redis_port(self) -> int:
        assert self.deployment.celery is not None
        return urlparse(self.deployment.celery.broker).port or 6379

    def start_redis(self) -> None:
        port = self.redis_port()
        if self._pid("redis") is not None:
            say(f"redis already running on 127.0.0.1:{port}")
            return
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server not found: apt-get install redis-server")
        folder = self.state / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
        self._spawn("redis", command)
        self._wait_port("redis", port)
        say(f"redis on 127.0.0.1:{port}")

    def s3_port(self) -> int:
        endpoint = self.deployment.object_store.endpoint_url
        if not endpoint or urlparse(endpoint).hostname not in ("127.0.0.1", "localhost"):
            raise StackError("deployment.object_store.endpoint_url must be a loopback URL")
        return urlparse(endpoint).port or 80

    def start_s3(self) -> None:
        port = self.s3_port()
        if self._pid("s3") is None:
            server = Path(sys.executable).parent / "moto_server"
            if not server.exists():
                raise StackError("moto_server not found: pip install -e '.[stack]'")
            self._spawn("s3", [str(server), "-H", "127.0.0.1", "-p", str(port)])
            self._wait_port("s3", port)
            say(f"S3-compatible server (moto) on 127.0.0.1:{port}")
        else:
            say(f"S3-compatible server already running on 127.0.0.1:{port}")
        for bucket in self.buckets():
            client = self.s3_client()
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)

    def buckets(self) -> list[str]:
        urls = [self.settings.data_dir, self.deployment.compute_logs]
        return sorted({urlparse(u).netloc for u in urls if u.startswith("s3://")})

    def s3_client(self):
        import boto3

        store = self.deployment.object_store
        return boto3.client(
            "s3",
            endpoint_url=store.endpoint_url,
            region_name=store.region or "us-east-1",
            aws_access_key_id=os.environ.get(store.access_key_id_env or "", "stack"),
            aws_secret_access_key=os.environ.get(store.secret_access_key_env or "", "stack"),
        )

    # --- Dagster instance and workers ----------------------------------------------------
    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "energy_assets.cli", "--config", str(self.config), *args]

    def prepare_instance(self) -> None:
        done = subprocess.run(
            self.cli("instance"), capture_output=True, text=True, cwd=PROJECT_ROOT
        )
        if done.returncode != 0:
            raise StackError(f"instance set-up failed: {done.stderr.strip()[-800:]}")
        say(f"Dagster instance on Postgres ({done.stdout.strip()})")

    def worker_names(self) -> list[str]:
        return sorted(p.stem for p in self.pids.glob("worker-*.pid") if self._pid(p.stem))

    def start_workers(self, count: int) -> None:
        running = self.worker_names()
        served = self.pids / "workers.config"  # workers load the config they were started with
        same = served.exists() and served.read_text() == str(self.config)
        if len(running) == count and same:
            say(f"{count} worker(s) already running")
            return
        for name in running:
            self._stop(name)
        self.pids.mkdir(parents=True, exist_ok=True)
        served.write_text(str(self.config))
        for i in range(1, count + 1):
            self._spawn(f"worker-{i}", self.cli("worker", "--name", f"stack-worker-{i}"))
        self._wait_workers(count)
        say(f"{count} Celery worker(s) ready (logs: {self.logs}/worker-*.log)")

    def _wait_workers(self, count: int, timeout_s: float = 120.0) -> None:
        from celery import Celery

        assert self.deployment.celery is not None
        app = Celery(broker=self.deployment.celery.broker)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            if len(replies) >= count:
                return
            if len(self.worker_names()) < count:
                break
        raise StackError(f"{count} worker(s) did not come up; see {self.logs}/worker-*.log")

    # --- commands ------------------------------------------------------------------------
    def up(self, workers: int) -> None:
        self.load_secrets()
        self.start_postgres()
        self.start_redis()
        self.start_s3()
        self.prepare_instance()
        self.start_workers(workers)
        say(f"up; run: ./dev demo --config {os.path.relpath(self.config, PROJECT_ROOT)}")

    def down(self) -> None:
        for name in self.worker_names():
            self._stop(name)
            say(f"{name} stopped")
        for name in ("s3", "redis"):
            if self._stop(name):
                say(f"{name} stopped")
        self.stop_postgres()

    def status(self) -> int:
        running = {n: self._pid(n) for n in ("redis", "s3", *self.worker_names())}
        data = self.state / "pg"
        pg_up = (data / "PG_VERSION").exists() and self._postgres_running(self.postgres_bin(), data)
        say(f"postgres: {'up' if pg_up else 'down'}")
        for name, pid in running.items():
            say(f"{name}: {f'up (pid {pid})' if pid else 'down'}")
        return 0 if pg_up and all(running.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--config", default=str(DEFAULT_STACK_CONFIG))
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (up)")
    args = parser.parse_args(argv)
    config = Path(args.config).resolve()
    try:
        stack = Stack(config, load_settings(config))
        if args.command == "up":
            try:
                stack.up(args.workers)
            except BaseException:
                stack.down()
                raise
            return 0
        if args.command == "down":
            stack.down()
            return 0
        return stack.status()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return CANNOT_RUN if "not found" in str(exc) else 1
    except ValueError as exc:  # SettingsError
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
