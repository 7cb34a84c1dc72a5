"""The core imports no Dagster: sources/, transform/, contracts/, ml/ and the offline stand-in
are plain Python, tested without Dagster (the assets/ shell is the only Dagster layer)."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import energy_assets

CORE_PACKAGES = ("sources", "transform", "contracts", "ml", "offline")
ROOT = Path(energy_assets.__file__).resolve().parent


def core_modules() -> list[str]:
    names = ["energy_assets.days"]
    for package in CORE_PACKAGES:
        for info in pkgutil.iter_modules([str(ROOT / package)]):
            names.append(f"energy_assets.{package}.{info.name}")
    return names


def test_core_modules_import_without_dagster():
    modules = core_modules()
    assert "energy_assets.sources.registry" in modules and len(modules) > 20
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'dagster' not in sys.modules, f'{name} imports dagster'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_the_probe_sees_a_dagster_import():
    """The subprocess probe is not vacuous: the shell does import Dagster."""
    code = "import sys, energy_assets.partitions; print('dagster' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "True", result.stderr[-2000:]
