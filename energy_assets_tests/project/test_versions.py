"""Code versions follow the code and settings that compute an asset; content hashes follow the
stored values only (not row order, chunking or a response's fetch time)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import polars as pl
import pytest

from energy_assets import versions


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package that a test may edit; versions read it instead of the real one."""
    copy = tmp_path / "energy_assets"
    shutil.copytree(versions.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(versions, "PACKAGE_ROOT", copy)
    versions.module_closure.cache_clear()
    versions._imports.cache_clear()
    yield copy
    versions.module_closure.cache_clear()
    versions._imports.cache_clear()


def test_editing_a_screen_changes_the_imputed_version_and_not_the_features_or_raw_one(
    package_copy,
):
    names = ["imputed", "features", "raw"]
    before = {n: versions.code_version(f"energy_assets.assets.{n}") for n in names}
    screen = package_copy / "transform" / "screen.py"
    screen.write_text(screen.read_text() + "\n# a changed threshold\n")
    versions.module_closure.cache_clear()
    versions._imports.cache_clear()
    after = {n: versions.code_version(f"energy_assets.assets.{n}") for n in names}
    assert after["imputed"] != before["imputed"]
    assert after["features"] == before["features"]
    assert "energy_assets.transform.screen" not in versions.module_closure(
        "energy_assets.assets.features"
    )


def test_the_quirk_table_is_part_of_the_aligned_version(package_copy):
    before = versions.code_version("energy_assets.assets.aligned")
    table = package_copy / "transform" / "data" / "quirks.csv"
    table.write_text(table.read_text() + "\n")
    assert versions.code_version("energy_assets.assets.aligned") != before


def test_settings_enter_the_code_version():
    module = "energy_assets.assets.ml"
    assert versions.code_version(module, {"horizon": 24}) != versions.code_version(
        module, {"horizon": 12}
    )
    assert versions.code_version(module, {"a": 1, "b": 2}) == versions.code_version(
        module, {"b": 2, "a": 1}
    )


def test_metrics_and_charts_do_not_enter_code_versions():
    closure = versions.module_closure("energy_assets.assets.imputed")
    assert "energy_assets.observe" not in closure and "energy_assets.plots" not in closure
    assert "energy_assets.transform.clean" in closure


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "region": ["A", "B", "C"],
            "value": [1.0, None, 3.0],
            "fetched_at_utc": [datetime(2024, 1, 1, tzinfo=UTC)] * 3,
        }
    )


def test_content_hash_ignores_order_chunks_and_volatile_columns():
    base = versions.content_hash(frame(), {}, ("fetched_at_utc",), ("region",))
    chunked = pl.concat([frame().head(1), frame().tail(2)], rechunk=False)
    assert versions.content_hash(chunked, {}, ("fetched_at_utc",), ("region",)) == base
    assert versions.content_hash(frame().reverse(), {}, ("fetched_at_utc",), ("region",)) == base
    later = frame().with_columns(pl.lit(datetime(2025, 1, 1, tzinfo=UTC)).alias("fetched_at_utc"))
    assert versions.content_hash(later, {}, ("fetched_at_utc",), ("region",)) == base


def test_content_hash_changes_with_a_value_a_null_or_the_file_metadata():
    base = versions.content_hash(frame())
    assert versions.content_hash(frame().with_columns(pl.col("value").fill_null(0.0))) != base
    assert versions.content_hash(frame().with_columns(pl.col("value") * 2)) != base
    assert versions.content_hash(frame(), {"layout": "zigzag"}) != base


def test_input_fingerprint_names_missing_days():
    present = versions.input_fingerprint({"raw/x": {"2024-01-01": "h1", "2024-01-02": "h2"}})
    missing = versions.input_fingerprint({"raw/x": {"2024-01-01": "h1", "2024-01-02": None}})
    assert present != missing
    assert present == versions.input_fingerprint(
        {"raw/x": {"2024-01-02": "h2", "2024-01-01": "h1"}}
    )
