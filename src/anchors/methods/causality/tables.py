"""The rows of the trace-level tests: frozen pydantic records with a `schema_version` (anchors.results writes
them as JSONL and CSV). NaN means "computed, but undefined" (e.g. a match rate over zero answered samples); a row
read back with null in a float field gets NaN."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

SCHEMA_VERSION = 1


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


class table:  # noqa: N801 (used like a method decorator)
    """A result's method that returns one of its row tuples as a DataFrame: `to_pandas = table("rows", FillerRow)`."""

    def __init__(self, attribute: str, cls: type[Row], doc: str | None = None) -> None:
        self.attribute, self.cls, self.__doc__ = attribute, cls, doc

    def __get__(self, result: Any, owner: type | None = None) -> Callable[[], pd.DataFrame]:
        def rows_frame() -> pd.DataFrame:
            return frame(getattr(result, self.attribute), self.cls)

        rows_frame.__doc__ = self.__doc__
        return rows_frame


RowT = TypeVar("RowT", bound=Row)
ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class RowsResult(Generic[RowT, ConfigT]):
    """A test whose result is one table: its rows, its config and the sampler that made them. A subclass names its
    row type (`row_type`) and says in its docstring what one row is."""

    rows: tuple[RowT, ...]
    config: ConfigT
    sampler: str

    row_type: ClassVar[type[Row]]

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame, one column per field (see the class docstring for what a row is)."""
        return frame(self.rows, self.row_type)
