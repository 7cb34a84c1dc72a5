"""One-year raw extraction of every source against the offline stand-in, through the real CLI.

Runs `energy-assets backfill --select raw` for a year in a subprocess (fresh data folder and
Dagster instance), samples the peak RSS of the whole process tree, then counts from the stored
partitions what was fetched: requests (one stored row per HTTP response), bytes and parsed rows
per source. Prints a table and writes JSON to --out.

    python benchmarks/extract_year.py --from 2023-01-01 --to 2023-12-31
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", default="2023-01-01")
    parser.add_argument("--to", dest="last", default="2023-12-31")
    parser.add_argument("--respondents", nargs="*", default=None, help="default: all")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="extract-year-"))
    config = work / "configs" / "extract.yaml"
    config.parent.mkdir(parents=True)
    respondents = json.dumps(args.respondents) if args.respondents else "null"
    config.write_text(
        f"start: {args.first}\nend: {args.last}\ndata_dir: {work}/assets\n"
        f"dagster_home: {work}/home\nsources:\n  mode: offline\n  respondents: {respondents}\n"
    )
    command = [sys.executable, "-m", "energy_assets.cli", "--config", str(config), "backfill",
               "--select", "raw"]  # fmt: skip
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=ROOT)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        print(f"extraction failed with exit code {process.returncode}", file=sys.stderr)
        return 1

    rows = []
    for source in ("eia930", "caiso", "weather"):
        responses = pl.scan_parquet(f"{work}/assets/raw/{source}_responses/*.parquet")
        # multi-day responses are stored under every day they cover: count each once
        unique = responses.select("dataset", "request_url", pl.col("body").bin.size().alias("b"))
        counted = (
            unique.unique(["dataset", "request_url"])
            .select(pl.len().alias("requests"), pl.col("b").sum().alias("bytes"))
            .collect()
        )
        parsed = pl.scan_parquet(f"{work}/assets/raw/{source}/*.parquet").select(pl.len())
        rows.append(
            {
                "source": source,
                "requests": int(counted["requests"][0]),
                "response_mib": round(int(counted["bytes"][0]) / 2**20, 1),
                "parsed_rows": int(parsed.collect().item()),
            }
        )
    result = {
        "range": [args.first, args.last],
        "respondents": args.respondents or "all",
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "sources": rows,
    }
    print(pl.DataFrame(rows))
    print(f"wall {wall:.1f} s, peak RSS (process tree) {peak / 2**20:.0f} MiB")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract_year.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
