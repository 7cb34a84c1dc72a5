"""One loopback server hosting the EIA, OASIS and Open-Meteo stand-ins over one world."""

from __future__ import annotations

from energy_assets.offline.caiso_api import caiso_handlers
from energy_assets.offline.eia_api import eia_handlers
from energy_assets.offline.openmeteo_api import openmeteo_handlers
from energy_assets.offline.server import FaultPlan, StandInServer
from energy_assets.offline.world import World


def build_standin(world: World, faults: FaultPlan | None = None) -> StandInServer:
    handlers = {**eia_handlers(world), **caiso_handlers(world), **openmeteo_handlers(world)}
    return StandInServer(handlers, faults)


def start_standin(world: World, faults: FaultPlan | None = None) -> StandInServer:
    return build_standin(world, faults).start()
