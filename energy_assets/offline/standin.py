"""One loopback server hosting every registered source's stand-in over one world.

Each `SourceSpec.standin` (sources/registry.py) turns the world into handlers for its own path
prefix (EIA `/v2/`, OASIS `/oasisapi/`, Open-Meteo `/v1/`, ...); the prefixes must not overlap.
"""

from __future__ import annotations

from energy_assets.offline.server import FaultPlan, StandInServer
from energy_assets.offline.world import World


def build_standin(world: World, faults: FaultPlan | None = None) -> StandInServer:
    from energy_assets.sources.registry import SOURCES

    handlers: dict = {}
    for spec in SOURCES.values():
        if spec.standin is None:
            continue
        for prefix, handler in spec.standin(world).items():
            if prefix in handlers:
                raise ValueError(
                    f"source {spec.name}: stand-in path {prefix!r} is already served by another "
                    "source; give it its own prefix"
                )
            handlers[prefix] = handler
    return StandInServer(handlers, faults)


def start_standin(world: World, faults: FaultPlan | None = None) -> StandInServer:
    return build_standin(world, faults).start()
