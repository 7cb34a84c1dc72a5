"""Schedules, sensors and freshness checks: how the platform keeps itself up to date."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Automation:
    schedules: list[Any] = field(default_factory=list)
    sensors: list[Any] = field(default_factory=list)
    asset_checks: list[Any] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)


def build_automation(settings) -> Automation:
    return Automation()
