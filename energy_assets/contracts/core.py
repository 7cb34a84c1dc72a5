"""The contract model: what a table promises, declared once and enforced everywhere.

A `Contract` lists the columns (dtype, unit, nullability, physical bounds), the primary key and the
column that assigns each row to a daily partition. The IO manager writes exactly this schema (and
refuses frames that do not match it: no silent casts), the asset checks are generated from it
(`energy_assets/checks.py`), and the README's data dictionary is rendered from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

DTYPES: dict[str, pl.DataType] = {
    "datetime_utc": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "string": pl.String(),
    "float64": pl.Float64(),
    "float32": pl.Float32(),
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "int16": pl.Int16(),
    "int8": pl.Int8(),
    "uint16": pl.UInt16(),
    "bool": pl.Boolean(),
    "binary": pl.Binary(),
}

DtypeName = Literal[
    "datetime_utc", "date", "string", "float64", "float32", "int64", "int32", "int16", "int8",
    "uint16", "bool", "binary",
]  # fmt: skip


def dtype_name(dtype: pl.DataType) -> DtypeName:
    """The contract name of a polars dtype (for contracts derived from a transform's schema)."""
    for name, candidate in DTYPES.items():
        if dtype == candidate:
            return name  # type: ignore[return-value]
    raise ValueError(f"dtype {dtype} has no contract name; add it to contracts.core.DTYPES")


Severity = Literal["error", "warn"]
Role = Literal["key", "target", "mask", "known_in_advance", "past_only", "payload", "provenance"]


class Bounds(BaseModel):
    """Inclusive physical bounds on a numeric column. `error` bounds block downstream assets."""

    model_config = ConfigDict(frozen=True)
    min: float | None = None
    max: float | None = None
    severity: Severity = "error"
    why: str = ""


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    dtype: DtypeName
    description: str
    unit: str | None = None
    nullable: bool = True
    bounds: Bounds | None = None
    role: Role | None = None

    @property
    def polars_dtype(self) -> pl.DataType:
        return DTYPES[self.dtype]


class OpenColumns(BaseModel):
    """A family of columns whose names depend on configuration (e.g. one per feature)."""

    model_config = ConfigDict(frozen=True)
    prefix: str
    dtype: DtypeName
    description: str
    role: Role | None = None


class Completeness(BaseModel):
    """What a complete UTC day holds: every expected group of `by` columns, with a value in each
    of its `hours_per_day` hours. The expected groups come from the source registry and the run
    settings (`sources/registry.py`, each spec's `expected`), never from the data itself: a day
    that lacks a configured respondent fails even when nothing at all arrived."""

    model_config = ConfigDict(frozen=True)
    by: tuple[str, ...] = ("region", "series")
    sources: tuple[str, ...] | None = Field(
        default=None, description="Registered sources whose expected groups apply; None: all."
    )
    value_column: str = Field(
        default="value", description="A group holds an hour when this column is not null there."
    )
    hours_per_day: int = 24
    expected: str = Field(description="What is expected, in words (the data dictionary).")


class Contract(BaseModel):
    """A table's promise. `partition_column` assigns rows to UTC days (datetime or date); None
    for a whole-range artifact stored as one file (fitted statistics, packed sequences)."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_column: str | None
    open_columns: tuple[OpenColumns, ...] = ()
    hourly_complete_by: tuple[str, ...] | None = Field(
        default=None,
        description="When set, every group of these columns has all 24 hours of each UTC day.",
    )
    completeness: Completeness | None = Field(
        default=None,
        description="What a complete day holds; drives the blocking `complete_day` check.",
    )
    volatile_columns: tuple[str, ...] = Field(
        default=(),
        description="Columns that differ between two stores of the same content (a response's "
        "fetch time); left out of the partition's content hash (energy_assets/versions.py).",
    )

    @model_validator(mode="after")
    def _keys_are_columns(self) -> Contract:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"contract {self.name}: duplicate column names")
        if self.partition_column is None and self.hourly_complete_by:
            raise ValueError(f"contract {self.name}: hourly completeness needs a partition column")
        partition = () if self.partition_column is None else (self.partition_column,)
        complete = () if self.completeness is None else self.completeness.by
        if self.completeness is not None and self.partition_column is None:
            raise ValueError(f"contract {self.name}: completeness needs a partition column")
        for key in (
            *self.primary_key,
            *partition,
            *(self.hourly_complete_by or ()),
            *complete,
            *((self.completeness.value_column,) if self.completeness else ()),
        ):
            if key not in names:
                raise ValueError(f"contract {self.name}: {key!r} is not one of its columns")
        return self

    @property
    def partitioned(self) -> bool:
        return self.partition_column is not None

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.polars_dtype for c in self.columns}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def schema_problems(self, frame: pl.DataFrame) -> list[str]:
        """Every way `frame`'s columns differ from the contract; empty when it conforms."""
        problems = []
        expected = self.schema
        for name, dtype in expected.items():
            if name not in frame.columns:
                problems.append(f"missing column {name!r} ({dtype})")
            elif frame.schema[name] != dtype:
                problems.append(
                    f"column {name!r} has dtype {frame.schema[name]}, contract says {dtype}"
                )
        extra = []
        for name in frame.columns:
            if name in expected:
                continue
            family = next((o for o in self.open_columns if name.startswith(o.prefix)), None)
            if family is None:
                extra.append(name)
            elif frame.schema[name] != DTYPES[family.dtype]:
                problems.append(
                    f"column {name!r} has dtype {frame.schema[name]}, contract says "
                    f"{DTYPES[family.dtype]} for {family.prefix}*"
                )
        if extra:
            problems.append(f"columns not in the contract: {extra}")
        return problems

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame in contract column order; raises ContractViolation instead of casting."""
        problems = self.schema_problems(frame)
        if problems:
            raise ContractViolation(
                f"frame does not match contract {self.name!r}: "
                + "; ".join(problems)
                + ". Fix the producing transform so it emits the declared dtypes "
                "(the IO manager never casts silently)."
            )
        declared = list(self.schema)
        return frame.select(declared + [c for c in frame.columns if c not in self.schema])


class ContractViolation(ValueError):
    """A frame broke its contract. The message names the problems; nothing was written."""


CheckFn = Callable[[pl.DataFrame], "CheckOutcome"]


class CheckOutcome(BaseModel):
    """One evaluated contract check: whether it passed, how many rows offend and a sample."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str
    passed: bool
    severity: Severity
    description: str
    offending_rows: int = 0
    sample: pl.DataFrame | None = None
    figures: dict[str, float] = Field(default_factory=dict)
