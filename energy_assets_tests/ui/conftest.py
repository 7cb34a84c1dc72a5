"""Fixtures for the browser tests: a live webserver + daemon on a small config, and Chromium.

The tests drive Debian's Chromium through Playwright (browser downloads are impossible here);
they skip with the reason when either is missing. Screenshots go to `artifacts/screenshots/` at
the repository root (ignored by git), one file per step, so a CI run keeps what the UI showed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from energy_assets_tests.ops.conftest import PIPELINE  # the CLI tests' short ML windows
from energy_assets_tests.ops.live_dagster import (
    REPO_ROOT,
    LiveDagster,
    start_live_dagster,
    write_config,
)

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
FIRST, LAST = date(2024, 3, 6), date(2024, 3, 8)
RESPONDENTS = ["CISO", "ERCO"]
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    # keep Chromium from calling home on a machine without internet
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("system Chromium not installed (apt-get install -y chromium; ./dev test does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("python package playwright not installed (it is in the dev extra)")
    return path


@pytest.fixture(scope="module")
def live_ui(tmp_path_factory, chromium_path) -> Iterator[LiveDagster]:
    work = tmp_path_factory.mktemp("ui")
    config = write_config(
        work / "configs" / "run.yaml",
        start=FIRST,
        end=LAST,
        respondents=RESPONDENTS,
        data_dir=work / "data",
        dagster_home=work / "dagster_home",
        extra={"pipeline": PIPELINE},
    )
    live = start_live_dagster(config, work / "dagster_home")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def page(live_ui, chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(60_000)
            yield context.new_page()
        finally:
            browser.close()


class Screenshots:
    """Numbered screenshots of one test, in artifacts/screenshots/<test>/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.count = 0

    def take(self, page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}_{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture
def screenshots(request) -> Screenshots:
    return Screenshots(SCREENSHOTS / request.node.name)
