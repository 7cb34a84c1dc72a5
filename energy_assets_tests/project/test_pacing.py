"""OASIS pacing shared by several processes (Celery workers, multiprocess step processes): one
request at a time, and at least the interval from the end of one to the start of the next,
whichever process makes it. Proved with real processes, through a file lock and through Redis
(when `redis-server` is installed: the loopback stack installs it)."""

from __future__ import annotations

import itertools
import multiprocessing
import shutil
import socket
import subprocess
import time

import pytest

from energy_assets.pacing import pacer_for

INTERVAL = 0.3


def _requests(where: str, out, count: int) -> None:
    pacer = pacer_for(where, "caiso_oasis", INTERVAL)
    for _ in range(count):
        with pacer.slot():
            start = time.time()
            time.sleep(0.05)  # the request
            out.put((start, time.time()))


def _run_two_processes(where: str, count: int = 3) -> list[tuple[float, float]]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_requests, args=(where, out, count)) for _ in range(2)]
    for w in workers:
        w.start()
    spans = [out.get(timeout=60) for _ in range(2 * count)]
    for w in workers:
        w.join(timeout=30)
    return sorted(spans)


def _assert_paced(spans: list[tuple[float, float]]) -> None:
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two requests overlapped"
        assert start - end >= INTERVAL - 0.02, f"gap {start - end:.3f} s < {INTERVAL} s"


def test_file_pacer_spaces_requests_across_processes(tmp_path):
    _assert_paced(_run_two_processes(str(tmp_path / "pacing")))


@pytest.fixture
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (./dev stack up installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_pacer_spaces_requests_across_processes(redis_url):
    _assert_paced(_run_two_processes(redis_url))


def test_live_caiso_client_goes_through_the_shared_pacer(tmp_path):
    from energy_assets.pacing import SharedPacedSession
    from energy_assets.resources import SourcesResource

    live = SourcesResource(mode="live", shared_pacing=str(tmp_path))
    assert isinstance(live.client("caiso").session.session, SharedPacedSession)
    offline = SourcesResource(mode="offline", shared_pacing=str(tmp_path))
    offline._server = type("Standin", (), {"base_url": "http://127.0.0.1:1"})()
    assert not isinstance(offline.client("caiso").session.session, SharedPacedSession)  # no pacing
