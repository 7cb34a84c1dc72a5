"""Versions derived from what computes an asset and from what it stored (no Dagster here).

- `code_version(module, config)`: a hash of the source of `module` and of every module of this
  package it imports, directly or not (found by reading the import statements), the data files
  beside them (`<package>/data/*.csv`: quirk table, balancing-authority table), and the JSON of
  the configuration that shapes the output. Edit `transform/screen.py` and `imputed/series` gets
  a new code version, `raw/eia930` does not; nothing is bumped by hand.
- `content_hash(frame, file_metadata)`: the identity of a stored partition: its rows in stored
  order and its user metadata, without the columns a contract declares volatile (a response's
  fetch time), so a re-fetch that returns the same bytes gets the same hash.
- `input_fingerprint(...)`: what a partition was computed from: every upstream partition it read
  (its day and content hash, or "missing"), so a changed or newly arrived day of a context window
  makes the partitions that read it out of date.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

PACKAGE = "energy_assets"
PACKAGE_ROOT = Path(__file__).resolve().parent

NOT_COMPUTING = frozenset(
    {
        "energy_assets.observe",
        "energy_assets.plots",
        "energy_assets.versions",
        "energy_assets.io.parquet",
        "energy_assets.checks",
        "energy_assets.lineage",
    }
)
"""Modules that only measure, describe, check or store results (metrics, charts, this file, the
asset checks, the IO manager): editing them does not change a stored value, so they do not enter
code versions. (The IO manager refuses a frame that breaks its contract, so a schema change shows
up as a change of the producing transform, which does enter.)"""


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(name: str, path: Path) -> frozenset[str]:
    """Package modules imported by the module `name` at `path` (any depth of `from x import y`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodule imports
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and _module_file(m) is not None)


@functools.cache
def module_closure(name: str) -> tuple[str, ...]:
    """`name` and every package module it reaches through imports, sorted."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current in seen or current in NOT_COMPUTING:
            continue
        path = _module_file(current)
        if path is None:
            raise ValueError(f"{current} is not a module of {PACKAGE}")
        seen.add(current)
        # Package __init__ files are followed only when imported themselves: here they gather
        # submodules (assets/__init__ lists every asset), they compute nothing.
        stack.extend(_imports(current, path) - seen)
    return tuple(sorted(seen))


def _data_files(modules: Iterable[str]) -> list[Path]:
    folders = {p.parent / "data" for m in modules if (p := _module_file(m)) is not None}
    return sorted(f for folder in folders if folder.is_dir() for f in folder.glob("*.csv"))


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def code_version(module: str, config: Mapping[str, Any] | None = None) -> str:
    """Version of the code (and configuration) that computes an asset defined in `module`."""
    modules = module_closure(module)
    parts: list[bytes] = []
    for name in modules:
        path = _module_file(name)
        assert path is not None
        parts += [name.encode(), path.read_bytes()]
    for path in _data_files(modules):
        parts += [str(path.relative_to(PACKAGE_ROOT)).encode(), path.read_bytes()]
    parts.append(json.dumps(config or {}, sort_keys=True, default=str).encode())
    return _digest(parts)


def content_hash(
    frame: pl.DataFrame,
    file_metadata: Mapping[str, str] | None = None,
    volatile_columns: Iterable[str] = (),
    key: Iterable[str] = (),
) -> str:
    """Identity of a stored partition's content: its rows in canonical order (by `key`, then
    the other plain columns, so a re-fetch that returns the same rows in another order keeps
    its identity) as Arrow IPC, and its file metadata."""
    volatile, key = set(volatile_columns), tuple(key)
    kept = frame.drop([c for c in volatile if c in frame.columns])
    plain = [
        c
        for c in kept.columns
        if kept.schema[c] not in (pl.Binary,) and not kept.schema[c].is_nested()
    ]
    order = [c for c in key if c in plain] + [c for c in plain if c not in key]
    if order and kept.height > 1:
        kept = kept.sort(order, nulls_last=True, maintain_order=True)
    # Arrow IPC of one record batch without string views: the bytes depend on the values only,
    # not on how polars happened to chunk or buffer them
    table = kept.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest()).combine_chunks()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    meta = json.dumps(dict(file_metadata or {}), sort_keys=True).encode()
    return _digest([sink.getvalue(), meta])


def input_fingerprint(inputs: Mapping[str, Mapping[str, str | None]]) -> str:
    """{input asset: {day: content hash or None (missing)}} -> one hash, order-independent."""
    parts = [
        f"{asset}|{day}|{digest or 'missing'}".encode()
        for asset in sorted(inputs)
        for day, digest in sorted(inputs[asset].items())
    ]
    return _digest(parts)


def combined(hashes: Iterable[str]) -> str:
    """One version for several partitions written by one run (Dagster keeps one per run)."""
    return _digest(h.encode() for h in hashes)
