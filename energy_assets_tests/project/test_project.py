"""The project's own promises: definitions load, docs match code, CI runs the README command."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from energy_assets.contracts import docs

ROOT = Path(__file__).resolve().parents[2]


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_definitions_load_with_every_layer_and_job():
    from energy_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/eia930", "aligned/series", "imputed/series", "features/hourly", "ml/dataset",
            "ml/ring_segments"} <= keys  # fmt: skip
    assert {p.split("/")[0] for p in keys} == {
        "raw",
        "aligned",
        "imputed",
        "reconciled",
        "features",
        "ml",
    }
    defs.resolve_job_def("main_job")
    defs.resolve_job_def("contract_checks")


def test_dagster_definitions_validate():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "energy_assets.definitions",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workspace_and_pyproject_name_the_same_code_location():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    location = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]
    assert location["python_module"]["module_name"] == tool["module_name"]
    assert location["python_module"]["location_name"] == tool["code_location_name"]


def test_dagster_family_is_pinned_as_one_set():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in deps["dependencies"] if d.startswith("dagster")]
    core = {re.split("==", d)[1] for d in pins}
    assert core == {"1.13.27"}, pins
    integrations = [d for d in deps["optional-dependencies"]["production"] if "dagster" in d]
    assert integrations and all(d.endswith("==0.29.27") for d in integrations)


def test_readme_data_dictionary_matches_the_contracts():
    assert docs.readme_section(readme()) == docs.render(), (
        "README data dictionary is stale: run python -m energy_assets.contracts.docs --write"
    )


def test_ci_runs_the_readme_test_command_verbatim():
    quick_start = readme().split("## Quick start", 1)[1].split("\n## ", 1)[0].split("\n### ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick_start, flags=re.S)
    assert len(blocks) == 2, "Quick start shows exactly two commands: main job, then tests"
    main_job, tests = (b.strip() for b in blocks)
    assert main_job == "./dev demo"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_nothing_from_shared_is_copied_into_the_repository():
    import hashlib

    shared = ROOT.parent / "shared"
    if not shared.is_dir():
        return

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {digest(ROOT / t): t for t in tracked if (ROOT / t).is_file()}
    copied = [ours[d] for p in shared.rglob("*") if p.is_file() and (d := digest(p)) in ours]
    assert copied == []


def test_every_daily_input_of_a_daily_asset_declares_the_days_it_reads():
    """A daily asset's lineage is per day only if each daily input says which days a day reads
    (io/parquet.py `window`); without it every day of a ranged run records the whole range's
    inputs, and the planner finds the days stale after every backfill (found on
    reconciled/series)."""
    from dagster import DailyPartitionsDefinition

    from energy_assets.definitions import defs
    from energy_assets.io.parquet import WINDOW_KEY

    graph = defs.resolve_asset_graph()
    daily = {
        key
        for key in graph.get_all_asset_keys()
        if isinstance(graph.get(key).partitions_def, DailyPartitionsDefinition)
    }
    missing = []
    for assets_def in graph.assets_defs:
        for name, key in assets_def.keys_by_input_name.items():
            if key not in daily or not any(k in daily for k in assets_def.keys):
                continue
            if WINDOW_KEY not in (assets_def.node_def.input_def_named(name).metadata or {}):
                missing.append(f"{assets_def.node_def.name}.{name}")
    assert not missing, missing
