"""Result rows that go to disk: frozen pydantic records with a `schema_version`, written as JSONL and CSV.

NaN means "computed, but undefined" (e.g. a match rate over zero answered samples). JSONL writes it as
`null` (standard JSON), CSV as an empty cell; reading a row back turns `null` into NaN again. A test that was
not run writes no file at all ("not computed").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

SCHEMA_VERSION = 1
RowT = TypeVar("RowT", bound="Row")


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="null")

    schema_version: int = SCHEMA_VERSION

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_nan(cls, value: Any, info: Any) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        return float("nan") if value is None and annotation is float else value


def frame(rows: Sequence[Row], cls: type[Row]) -> pd.DataFrame:
    """The rows as a DataFrame with one column per field, in field order (also when there are no rows)."""
    columns = list(cls.model_fields)
    return pd.DataFrame([row.model_dump() for row in rows], columns=columns)


def write_table(folder: Path, name: str, rows: Sequence[Row], cls: type[Row]) -> list[Path]:
    """`name.jsonl` (one record per line) and `name.csv` (list fields as JSON text) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, csv = folder / f"{name}.jsonl", folder / f"{name}.csv"
    with open(jsonl, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row.model_dump_json() + "\n")
    table = frame(rows, cls)
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, (list, dict, tuple))).any():
            table[column] = table[column].map(lambda v: json.dumps(v, ensure_ascii=False))
    table.to_csv(csv, index=False)
    return [jsonl, csv]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Standard JSON (NaN and infinities written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def read_rows(path: Path, cls: type[RowT]) -> list[RowT]:
    """Rows written by `write_table` (JSONL), validated."""
    lines: Iterable[str] = path.read_text(encoding="utf-8").splitlines()
    return [cls.model_validate_json(line) for line in lines if line.strip()]
