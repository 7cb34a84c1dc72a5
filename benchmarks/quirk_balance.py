"""Audit: every row of the quirk table against the energy balance and the interchange
antisymmetry, on real EIA-930 data where the row's dates apply (`transform/quirk_audit.py`).

Per row: the BA-hours of its regions and dates in the data, sum |D - (NG - TI)| / sum |D| before
(reported, aligned without fixes) and after (aligned with the whole table, as `aligned/series`
delivers it), the share of BA-hours within tolerance (1 MW or 0.1 % of D), how many BA-hours
that balanced no longer do where their demand landed, and median |ID_rs + ID_sr| over the pairs
whose interchange the row moves, and the share of BA-hours where TI = sum of the reported
pairwise interchange holds. Rows whose dates the data do not reach say so.

Data, one of:
    --data DIR              gridemissions scrape(s) `E_raw_*.csv` (default
                            ../shared/realdata/gridemissions: every BA, 2023-06-10..20)
    --store FROM TO         raw/eia930 days stored by the pipeline (config: --config), for the
                            periods and BAs the team measures that ../shared does not hold

Usage:
    python benchmarks/quirk_balance.py                         # ../shared's week, packaged table
    python benchmarks/quirk_balance.py --quirks OTHER.csv --json /tmp/audit.json
    python benchmarks/quirk_balance.py --store 2021-06-01 2021-06-14 --config configs/live.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "realdata" / "gridemissions"


def load_raw(args: argparse.Namespace):
    """The raw long rows and the [start, end) they cover."""
    if args.store:
        import energy_assets

        first, last = args.store
        raw = energy_assets.load("raw/eia930", first, last, config=args.config)
        start = datetime.fromisoformat(first).replace(tzinfo=UTC)
        end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
        return raw, start, end
    from energy_assets.offline.realdata_world import GridEmissionsWorld
    from energy_assets.offline.world import eia_long

    world = GridEmissionsWorld(args.data)
    raw = eia_long(world, datetime(1990, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    times = raw.get_column("interval_start_utc")
    return raw, times.min(), times.max() + timedelta(hours=1)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--store", nargs=2, metavar=("FROM", "TO"))
    parser.add_argument("--config", default=None, help="settings file for --store")
    parser.add_argument("--quirks", type=Path, default=None, help="quirk CSV (default: packaged)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from energy_assets.transform.quirk_audit import audit_quirks
    from energy_assets.transform.quirks import load_quirks

    raw, start, end = load_raw(args)
    table = load_quirks(args.quirks)
    audit = audit_quirks(raw, table, start, end)
    print(f"data: {start:%Y-%m-%d %H}Z .. {end:%Y-%m-%d %H}Z, {raw.height:,} raw rows")
    print(markdown(audit))
    records = audit.with_columns(
        audit[c].dt.to_string("%Y-%m-%dT%H:%M:%SZ") for c in ("start_utc", "end_utc")
    ).to_dicts()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))
    return records


def markdown(audit) -> str:
    """The audit as a table: dates, BA, series, shift, residuals before/after, verdict."""

    def pct(v) -> str:
        return "" if v is None else f"{v:.3f} %"

    def share(v) -> str:
        return "" if v is None else f"{100 * v:.1f} %"

    def mw(v) -> str:
        return "" if v is None else f"{v:.0f}"

    lines = [
        "| row | dates (reported, UTC) | BA | series | fix | BA-hours | D-(NG-TI) before | "
        "after | held before | after | breaks | pair-hours | median abs(ID_rs+ID_sr) MW before | "
        "after | TI = sum ID held before | after | verdict |",
        "|" + "---|" * 17,
    ]
    for r in audit.iter_rows(named=True):
        since = "" if r["start_utc"] is None else f"{r['start_utc']:%Y-%m-%d %H}"
        until = "" if r["end_utc"] is None else f"{r['end_utc']:%Y-%m-%d %H}"
        fix = r["action"] if r["action"] != "shift_hours" else f"shift {r['amount']:+.0f} h"
        if r["timezone"]:
            fix += f" (+1 h in {r['timezone']} DST)"
        series = r["series"].replace("|", "\\|")  # a literal | would split the cell
        lines.append(
            f"| {r['row']} | {since or '...'} .. {until or '...'} | {r['region']} | "
            f"{series} | {fix} | {r['ba_hours']} | {pct(r['balance_pct_before'])} | "
            f"{pct(r['balance_pct_after'])} | {share(r['balance_held_before'])} | "
            f"{share(r['balance_held_after'])} | {r['balance_breaks']} | {r['pair_hours']} | "
            f"{mw(r['antisymmetry_mw_before'])} | {mw(r['antisymmetry_mw_after'])} | "
            f"{share(r['interchange_sum_held_before'])} | "
            f"{share(r['interchange_sum_held_after'])} | "
            f"{r['verdict']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
