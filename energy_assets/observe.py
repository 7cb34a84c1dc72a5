"""Per-materialization metrics, recorded the same way for every asset.

`observed` wraps an asset's compute function: it samples the process's resident memory while the
function runs and attaches the step's duration, rows, rows/s and peak RSS as numeric output
metadata. The IO manager, which splits a ranged output into days, turns them into per-day figures
(each day's `rows`, `bytes_written`, `dagster/row_count` and its share of the step's duration as
`duration_s`), so the UI's per-partition plots show each day's own values.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl
import psutil
from dagster import MetadataValue

SAMPLE_EVERY_S = 0.02


@dataclass
class Measurement:
    started: float = 0.0
    duration_s: float = 0.0
    peak_rss_bytes: int = 0


@contextmanager
def measured() -> Iterator[Measurement]:
    """Wall time and peak RSS (sampled every 20 ms, so very short spikes can be missed)."""
    process = psutil.Process()
    measurement = Measurement(started=time.perf_counter(), peak_rss_bytes=process.memory_info().rss)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_EVERY_S):
            measurement.peak_rss_bytes = max(measurement.peak_rss_bytes, process.memory_info().rss)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield measurement
    finally:
        stop.set()
        sampler.join()
        measurement.peak_rss_bytes = max(measurement.peak_rss_bytes, process.memory_info().rss)
        measurement.duration_s = time.perf_counter() - measurement.started


def count_rows(output: Any) -> int:
    frame = getattr(output, "frame", output)
    if isinstance(frame, pl.DataFrame):
        return frame.height
    if isinstance(frame, Mapping):
        return sum(count_rows(v) for v in frame.values())
    return 0


def metrics_metadata(measurement: Measurement, rows: int) -> dict[str, MetadataValue]:
    seconds = max(measurement.duration_s, 1e-9)
    return {
        "step_duration_s": MetadataValue.float(round(measurement.duration_s, 4)),
        "step_rows": MetadataValue.int(rows),
        "rows_per_s": MetadataValue.float(round(rows / seconds, 1)),
        "peak_rss_mib": MetadataValue.float(round(measurement.peak_rss_bytes / 2**20, 1)),
    }


def observed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for asset functions whose first argument is the asset execution context.

    A multi-asset returns a tuple, one value per output in the op's order: each output gets the
    step's figures with its own rows."""

    @functools.wraps(fn)
    def wrapper(context, *args: Any, **kwargs: Any) -> Any:
        with measured() as measurement:
            output = fn(context, *args, **kwargs)
        if isinstance(output, tuple):
            names = [d.name for d in context.op_execution_context.op_def.output_defs]
            for name, value in zip(names, output, strict=True):
                context.add_output_metadata(
                    metrics_metadata(measurement, count_rows(value)), output_name=name
                )
        else:
            context.add_output_metadata(metrics_metadata(measurement, count_rows(output)))
        return output

    return wrapper
