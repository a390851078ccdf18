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
