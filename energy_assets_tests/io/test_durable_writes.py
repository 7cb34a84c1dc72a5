"""The local write path under kills: no partial file ever, no temporary file left for long.

Writers are real subprocesses killed with SIGKILL while their temporary file exists; the tests
wait on that state (the child reports it is inside fsync, then stalls), never on time.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from energy_assets.io import parquet
from energy_assets.io.parquet import sweep_stale_temp_files, temp_path_for, write_atomically

REPO_ROOT = Path(__file__).resolve().parents[2]

# A writer that writes a big frame through the same function, then stalls inside its fsync
# (after the temporary file holds every byte, before the rename) until it is killed.
WRITER = """
import io, os, sys, threading
import polars as pl
from energy_assets.io.parquet import write_atomically

def stall(fd):
    print("in-fsync", flush=True)
    threading.Event().wait()

frame = pl.DataFrame({"hour": range(400_000), "value": [0.5] * 400_000})
buffer = io.BytesIO()
frame.write_parquet(buffer, compression="zstd")
os.fsync = stall
write_atomically(sys.argv[1], buffer.getvalue())
"""

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def start_writer(target: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_inside_write(writer: subprocess.Popen[str]) -> None:
    """Block until the writer reports it is inside the write (its temp file is complete)."""
    assert writer.stdout is not None
    line = writer.stdout.readline()  # returns at once if the writer died instead
    if line.strip() != "in-fsync":
        writer.kill()
        _, err = writer.communicate()
        pytest.fail(f"writer did not reach the write: {line!r}\n{err}")


def kill(writer: subprocess.Popen[str]) -> None:
    writer.send_signal(signal.SIGKILL)
    writer.wait()  # reaped: its pid is gone, not a zombie
    assert writer.returncode == -signal.SIGKILL
    for stream in (writer.stdout, writer.stderr):
        if stream is not None:
            stream.close()


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_killed_writers_leave_the_old_files_intact_and_no_temporaries_after_the_next_write(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "raw" / "eia930"
    folder.mkdir(parents=True)
    targets = [folder / f"2024-01-0{day}.parquet" for day in range(1, 5)]
    for target in targets:
        target.write_bytes(b"old " + target.name.encode())

    writers = [start_writer(target) for target in targets]
    for writer in writers:
        wait_inside_write(writer)
    names = temporaries(folder)
    assert len(names) == len(writers)
    assert {int(name.split(".")[-3]) for name in names} == {w.pid for w in writers}

    live = writers.pop()  # one writer stays alive: its temporary file must survive the sweep
    for writer in writers:
        kill(writer)
    assert len(temporaries(folder)) == len(targets)  # killed writers cannot clean up

    write_atomically(str(folder / "2024-01-09.parquet"), b"next write")
    assert temporaries(folder) == [n for n in names if f".{live.pid}." in n]
    for target in targets:  # nothing partial ever reached a final path
        assert target.read_bytes() == b"old " + target.name.encode()

    kill(live)
    write_atomically(str(folder / "2024-01-10.parquet"), b"another write")
    assert temporaries(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == [
        *(t.name for t in targets),
        "2024-01-09.parquet",
        "2024-01-10.parquet",
    ]


def test_sweep_keeps_fresh_live_files_and_foreign_ones_until_they_are_old(tmp_path: Path) -> None:
    target = str(tmp_path / "2024-01-01.parquet")
    own = Path(temp_path_for(target))  # this process: alive
    own.write_bytes(b"being written")
    foreign = tmp_path / f".2024-01-01.parquet.otherhost.{os.getpid()}.{'a' * 32}.tmp"
    foreign.write_bytes(b"another host's writer")
    old_style = tmp_path / f".2024-01-01.parquet.{'b' * 32}.tmp"
    old_style.write_bytes(b"from before pids were recorded")
    unrelated = tmp_path / ".keep.tmp"
    unrelated.write_bytes(b"not ours")

    assert sweep_stale_temp_files(str(tmp_path)) == []
    hour_ago = time.time() - parquet.STALE_TEMP_AGE_S - 1
    for path in (own, foreign, old_style, unrelated):
        os.utime(path, (hour_ago, hour_ago))
    assert sorted(sweep_stale_temp_files(str(tmp_path))) == sorted(
        [own.name, foreign.name, old_style.name]
    )
    assert unrelated.exists()


def test_the_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "day" / "2024-01-01.parquet"
    calls: list[tuple[str, bool]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(src, dst) -> None:
        calls.append(("replace", False))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(str(target), b"bytes")
    assert calls == [("fsync", False), ("replace", False), ("fsync", True)]
    assert target.read_bytes() == b"bytes"
