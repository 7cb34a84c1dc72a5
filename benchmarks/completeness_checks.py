"""What the completeness contracts add to the cost of checking a day, as a ratio.

For each UTC day of the range, the synthetic world's EIA-930 rows for every balancing authority
(the long table raw/eia930 stores, built without the HTTP round trip: offline/world.eia_long) are
checked twice in the same session: with the raw contract's checks as they were (schema, key,
nulls, bounds, value_physically_possible) and with the completeness checks added (complete_day,
complete_hours over the groups the registry expects for every respondent). Prints the median time
per day of each and their ratio; the expected groups are resolved once, as the Dagster check does
per run.

    python benchmarks/completeness_checks.py [--days 7] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import polars as pl

from energy_assets.contracts import tables
from energy_assets.contracts.evaluate import check_plan, run_checks
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.world import eia_long
from energy_assets.sources.registry import SourceSettings

KEY = ["interval_start_utc", "region", "series"]


def day_frame(world: SyntheticWorld, start: datetime) -> pl.DataFrame:
    rows = eia_long(world, start, start + timedelta(days=1))
    numbered = rows.with_columns(
        pl.int_range(pl.len()).over(KEY).cast(pl.Int16).alias("copy_index")
    )
    return numbered.select(list(tables.RAW_EIA930.schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    contract = tables.RAW_EIA930
    extra = list(tables.EXTRA_CHECKS["raw/eia930"])
    expected = tables.expected_groups_for("raw/eia930", SourceSettings())
    without = [p for p in check_plan(contract, extra) if not p.name.startswith("complete_")]
    with_completeness = check_plan(contract, extra, expected)

    world = SyntheticWorld(GeneratorConfig(seed=7))
    first = datetime(2024, 3, 4, tzinfo=UTC)
    frames = [day_frame(world, first + timedelta(days=i)) for i in range(args.days)]
    timings: dict[str, list[float]] = {"baseline": [], "with completeness": []}
    for _ in range(args.repeat):
        for name, plan in (("baseline", without), ("with completeness", with_completeness)):
            for frame in frames:
                began = time.perf_counter()
                outcomes = run_checks(contract, frame, plan)
                timings[name].append(time.perf_counter() - began)
            failed = [o.name for o in outcomes if not o.passed and o.severity == "error"]
            assert not failed, f"a complete synthetic day failed {failed}"

    base = statistics.median(timings["baseline"])
    full = statistics.median(timings["with completeness"])
    print(f"days {args.days} x repeat {args.repeat}; rows per day {frames[0].height:,}; "
          f"expected groups {expected.height}")  # fmt: skip
    print(f"baseline checks            median {base * 1e3:8.2f} ms per day")
    print(f"with completeness checks   median {full * 1e3:8.2f} ms per day")
    print(f"ratio with / baseline      {full / base:8.2f}")


if __name__ == "__main__":
    main()
