"""Request pacing that holds across every process of a deployment (OASIS: >= 5 s between calls).

A client's own pacing (`sources.caiso.PacedSession`) spaces the requests of one process. Steps
on several Celery workers, or the multiprocess executor's step processes, would each start with
a fresh gap; the concurrency pool `caiso_oasis` (limit 1, held in the Dagster instance, shared
by every worker) stops two OASIS steps from running at once, but not the next step from sending
its first request right after the previous step's last one.

`SharedPacedSession` wraps the client's session: each request takes a lock shared by every
process, waits until `interval_s` after the end of the last request anyone made, and records
its own end. Two places can hold the lock and the timestamp:

- Redis (production): the Celery broker, reachable from every worker. The lock is redis-py's
  token lock with an expiry, so a worker killed while holding it blocks the others for at most
  `lock_timeout_s`; the time is the Redis server's clock, so workers' clock skew does not matter.
- a file in a shared folder (local): `fcntl.flock`, released by the kernel when a process dies.
  Works for the processes of one machine (and POSIX-locking network file systems).

Chosen over a Postgres advisory lock because the pacing must not depend on which Dagster
storage is configured, and over a Dagster pool alone because pools bound concurrency, not rate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import requests


class Pacer(Protocol):
    def slot(self) -> contextlib.AbstractContextManager[None]: ...


class FilePacer:
    """One request at a time across processes, `interval_s` from one's end to the next start."""

    def __init__(
        self, folder: str | os.PathLike[str], name: str, interval_s: float, sleep=time.sleep
    ) -> None:
        self.path = Path(folder) / f"{name}.pace"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval_s, self.sleep = interval_s, sleep

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                text = handle.read().strip()
                last_end = float(text) if text else 0.0
                wait = last_end + self.interval_s - time.time()
                if wait > 0:
                    self.sleep(min(wait, self.interval_s))
                try:
                    yield
                finally:
                    handle.seek(0)
                    handle.truncate()
                    handle.write(f"{time.time():.6f}")
                    handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class RedisPacer:
    """The same over Redis: a lock with an expiry and the end time of the last request."""

    def __init__(
        self,
        url: str,
        name: str,
        interval_s: float,
        lock_timeout_s: float = 300.0,
        sleep=time.sleep,
        client: Any = None,
    ) -> None:
        import redis

        self.redis = client or redis.Redis.from_url(url)
        self.key = f"energy_assets:pace:{name}"
        self.interval_s, self.lock_timeout_s, self.sleep = interval_s, lock_timeout_s, sleep

    def _now(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        lock = self.redis.lock(f"{self.key}:lock", timeout=self.lock_timeout_s, sleep=0.05)
        lock.acquire(blocking=True)
        try:
            last_end = float(self.redis.get(f"{self.key}:last_end") or 0.0)
            wait = last_end + self.interval_s - self._now()
            if wait > 0:
                self.sleep(min(wait, self.interval_s))
            try:
                yield
            finally:
                self.redis.set(f"{self.key}:last_end", f"{self._now():.6f}")
        finally:
            with contextlib.suppress(Exception):  # expired while we worked: nothing to release
                lock.release()


def pacer_for(where: str, name: str, interval_s: float) -> Pacer:
    """A Redis pacer for a redis:// URL, else a file pacer in that folder."""
    if where.startswith(("redis://", "rediss://", "unix://")):
        return RedisPacer(where, name, interval_s)
    return FilePacer(where, name, interval_s)


class SharedPacedSession:
    """A `requests.Session` stand-in whose every GET goes through the shared pacer."""

    def __init__(self, session: requests.Session, pacer: Pacer) -> None:
        self.session, self.pacer = session, pacer

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        with self.pacer.slot():
            return self.session.get(url, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.session, name)
