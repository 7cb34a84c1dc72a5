"""energy-assets: hourly US grid data as Dagster assets, and a typed way to read it back.

    import energy_assets
    demand = energy_assets.load("imputed/series", "2024-03-04", "2024-03-13",
                                regions=["CISO"], series=["demand"])
    energy_assets.balancing_authorities()
    energy_assets.sql("SELECT region, avg(value) FROM imputed_series GROUP BY region")

(`energy_assets.access`; no Dagster import.)
"""

from energy_assets.access import DataNotStored, balancing_authorities, load, scan, sql

__all__ = ["DataNotStored", "balancing_authorities", "load", "scan", "sql"]
