"""Partitions in an S3-compatible store (moto's server on loopback): one PUT of a complete file
per partition, so a writer killed mid-upload leaves no object (the step's retry writes it)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

pytest.importorskip("moto.server", reason="the stack extra (moto[server]) is not installed")
pytest.importorskip("s3fs", reason="the production extra (s3fs) is not installed")

from moto.server import ThreadedMotoServer
from upath import UPath

from energy_assets.io.parquet import ParquetPartitionIOManager

CREDENTIALS = {"key": "test-key", "secret": "test-secret"}


@pytest.fixture(scope="module")
def endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    UPath("s3://energy", endpoint_url=url, **CREDENTIALS).fs.mkdir("energy")
    yield url
    server.stop()


def test_each_partition_is_one_put_of_a_complete_object(endpoint, monkeypatch):
    import s3fs

    calls: list[str] = []
    original = s3fs.S3FileSystem._call_s3

    async def spy(self, method, *args, **kwargs):
        calls.append(method)
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", spy)
    base = UPath("s3://energy/assets", endpoint_url=endpoint, **CREDENTIALS)
    manager = ParquetPartitionIOManager(base)
    frame = pl.DataFrame({"x": list(range(1000))})
    path = manager.day_path(["raw", "eia930"], "2024-03-04")
    written = manager._write(path, frame, {"k": "v"})
    writes = [c for c in calls if c in ("put_object", "create_multipart_upload", "upload_part")]
    assert writes == ["put_object"]
    with path.open("rb") as handle:
        body = handle.read()
    assert len(body) == written and pl.read_parquet(io.BytesIO(body)).equals(frame)


WRITER = """
import sys, numpy as np, polars as pl
from upath import UPath
from energy_assets.io.parquet import ParquetPartitionIOManager
base = UPath("s3://energy/killed", endpoint_url=sys.argv[1], key="test-key", secret="test-secret")
manager = ParquetPartitionIOManager(base)
frame = pl.DataFrame({"noise": np.random.default_rng(1).random(6_000_000)})  # ~46 MB
print("writing", flush=True)
manager._write(manager.day_path(["raw", "eia930"], "2024-03-04"), frame, {})
print("done", flush=True)
"""


def test_a_writer_killed_mid_upload_leaves_no_partial_object(endpoint):
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "writing"
    time.sleep(0.8)  # frame built; the parquet encode and the upload are under way
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    path = UPath("s3://energy/killed/raw/eia930/2024-03-04.parquet", endpoint_url=endpoint,
                 **CREDENTIALS)  # fmt: skip
    path.fs.invalidate_cache()
    if path.exists():  # the upload had completed before the kill: then it must be whole
        with path.open("rb") as handle:
            assert pl.read_parquet(io.BytesIO(handle.read())).height == 6_000_000
    else:
        assert not list(path.fs.find("energy/killed"))  # nothing partial, no temp objects
