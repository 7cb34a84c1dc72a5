"""What keeping revisions costs the extraction step, measured as the step runs.

Three extractions of the same EIA days (every balancing authority of the synthetic world, offline
stand-in) in one session, each a ranged in-process run of `raw/eia930_responses` (+ its
revisions) and `raw/eia930`:

1. first: nothing stored, so nothing is compared (the baseline);
2. again, identical upstream: every day's responses are compared byte for byte and not parsed;
3. upstream at a later vintage (some values revised): the changed days are parsed twice (old and
   new) and compared.

For each: the responses step's own duration (`step_duration_s`, fetch included) as a ratio of the
first, the part of it spent on revisions (`step_compare_s`: reading the stored responses and
revisions, comparing, parsing changed days) as a share of the step, the parse step's duration
for scale, and the revisions recorded.

    python benchmarks/revisions.py [--days 7] [--vintage 5] [--respondents CISO ERCO ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from dagster import AssetKey, DagsterInstance, materialize

warnings.filterwarnings("ignore")

from energy_assets.assets.raw import RAW_ASSETS  # noqa: E402
from energy_assets.io.parquet import ParquetIOManager  # noqa: E402
from energy_assets.resources import SourcesResource  # noqa: E402

EIA = [a for a in RAW_ASSETS if any(k.path[-1].startswith("eia930") for k in a.keys)]
RESPONSES = AssetKey(["raw", "eia930_responses"])
REVISIONS = AssetKey(["raw", "eia930_revisions"])
PARSED = AssetKey(["raw", "eia930"])


def extract(base: Path, first: date, last: date, vintage: int, respondents) -> dict[str, float]:
    result = materialize(
        EIA,
        resources={
            "io_manager": ParquetIOManager(base_dir=str(base)),
            "sources": SourcesResource(respondents=respondents, seed=7, vintage=vintage),
        },
        instance=DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert result.success
    figures: dict[str, float] = {"rows_revised": 0, "max_abs_change": 0.0}
    for event in result.get_asset_materialization_events():
        metadata = event.step_materialization_data.materialization.metadata
        if event.asset_key == RESPONSES:
            figures["responses_step_s"] = metadata["step_duration_s"].value
        if event.asset_key == PARSED:
            figures["parse_step_s"] = metadata["step_duration_s"].value
        if event.asset_key == REVISIONS:
            figures["compare_s"] = metadata["step_compare_s"].value
            figures["rows_revised"] += metadata["rows_revised"].value
            figures["max_abs_change"] = max(
                figures["max_abs_change"], metadata["max_abs_change"].value
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--vintage", type=int, default=5)
    parser.add_argument("--respondents", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    first = date(2024, 3, 4)
    last = first + timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        runs = {
            "first": extract(base, first, last, 0, args.respondents),
            "unchanged": extract(base, first, last, 0, args.respondents),
            "revised": extract(base, first, last, args.vintage, args.respondents),
        }
        stored = pl.read_parquet(list((base / "raw" / "eia930_revisions").glob("*.parquet")))
    baseline = runs["first"]["responses_step_s"]
    print(f"EIA {first}..{last} ({args.days} days), respondents: {args.respondents or 'all'}")
    print(f"{'extraction':<11} {'responses step s':>17} {'x first':>8} {'revisions s':>12} "
          f"{'share':>6} {'parse step s':>13} {'rows revised':>13} {'max |chg|':>10}")  # fmt: skip
    for name, f in runs.items():
        step = f["responses_step_s"]
        print(f"{name:<11} {step:>17.3f} {step / baseline:>8.2f} {f['compare_s']:>12.3f} "
              f"{f['compare_s'] / step:>6.1%} {f['parse_step_s']:>13.3f} "
              f"{int(f['rows_revised']):>13} {f['max_abs_change']:>10.1f}")  # fmt: skip
    print(f"revisions stored: {stored.height} rows")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
