"""Reading the real EIA recordings in ../shared/realdata/api (vcrpy cassettes and bare JSON bodies).

Tests get the folder from the `realdata` fixture; nothing here is copied into the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Recording:
    name: str
    uri: str | None  # the recorded request URL (cassettes only)
    status: int | None
    body: bytes


def eia_recordings(realdata: Path) -> dict[str, Recording]:
    """Every `eia_*` file of realdata/api, by file name."""
    out: dict[str, Recording] = {}
    for path in sorted((realdata / "api").glob("eia_*")):
        if path.suffix == ".yaml":
            cassette = yaml.safe_load(path.read_text())
            interaction = cassette["interactions"][0]
            out[path.name] = Recording(
                path.name,
                interaction["request"]["uri"],
                interaction["response"]["status"]["code"],
                interaction["response"]["body"]["string"].encode(),
            )
        elif path.suffix == ".json":
            out[path.name] = Recording(path.name, None, None, path.read_bytes())
    return out
