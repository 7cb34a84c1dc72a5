"""Read the stored data back after `./dev demo` (the README's example; CI runs it).

.venv/bin/python examples/read_data.py [--config configs/main.yaml]
"""

from __future__ import annotations

import argparse

import polars as pl

import energy_assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="run config (default: configs/main.yaml)")
    args = parser.parse_args()

    # one balancing authority's demand, screened and filled, with what each value is
    demand = energy_assets.load(
        "imputed/series", "2024-03-04", "2024-03-13",
        regions=["CISO"], series=["demand"], config=args.config,
    )  # fmt: skip
    print(demand.group_by("flag").len().sort("len", descending=True))

    # model features of every region, a few columns only
    features = energy_assets.load(
        "features/hourly", "2024-03-10", "2024-03-10",
        columns=["interval_start_utc", "region", "demand_mw", "is_observed"], config=args.config,
    )  # fmt: skip
    print(features.group_by("region").agg(pl.col("demand_mw").mean()).sort("region").head())

    # the same files through SQL: daily peak demand of one region
    peaks = energy_assets.sql(
        """SELECT date_trunc('day', interval_start_utc) AS day, max(value) AS peak_mw
           FROM imputed_series WHERE region = 'CISO' AND series = 'demand'
           GROUP BY day ORDER BY day""",
        "2024-03-04", "2024-03-13", config=args.config,
    )  # fmt: skip
    print(peaks.head(3))
    assert peaks.height == 10, peaks.height

    bas = energy_assets.balancing_authorities()
    print(f"{bas.height} balancing authorities, e.g. {bas['code'].head(5).to_list()}")
    assert demand.height == 10 * 24, demand.height


if __name__ == "__main__":
    main()
