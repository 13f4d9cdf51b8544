"""Request and response bodies of ``/api/finetune``: data sets, the memory plan, the form's options."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.schemas import RequestName
from app.recipes.data import DataFormat

# Longer than any real server path, short enough to echo in an error.
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 200


class DatasetReport(BaseModel):
    """What ``rag finetune train`` reads from the file with the default cleaning."""

    data_format: str = Field(description="The format the file was read as.")
    rating_scale: int = Field(description="5 or 10.")
    read: int = Field(description="Reviews read, before cleaning.")
    kept: int = Field(description="Reviews kept.")
    dropped: dict[str, int] = Field(
        description="Reviews or lines dropped, by reason (broken_line, duplicate, too_long, ...)."
    )
    ratings: dict[str, int] = Field(description='Kept reviews per rating: {"1": n, ...}.')


class DatasetOut(BaseModel):
    id: str
    name: str
    source: Literal["upload", "path"] = Field(
        description="upload: kept by the server, deleted with the data set; path: a file on the "
        "server, read where it is."
    )
    format: str = Field(description="The format the file was read as.")
    scale: int = Field(description="The rating scale, 5 or 10.")
    report: DatasetReport
    size_bytes: int = Field(description="Size on disk (compressed, for a .gz).")
    created_at: datetime


class DatasetList(BaseModel):
    datasets: list[DatasetOut] = Field(description="Newest first.")


class DatasetOptions(BaseModel):
    """How the file is read (the form fields of an upload, or beside ``path``)."""

    model_config = ConfigDict(extra="forbid")

    name: RequestName | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="Shown in lists; default: the file's name.",
    )
    format: DataFormat = Field(
        default="auto", description="As `rag finetune train --data-format`; auto: detected."
    )
    rating_scale: Literal[5, 10] | None = Field(
        default=None, description="5 or 10; default: the format's own, or detected."
    )

    @field_validator("rating_scale", mode="before")
    @classmethod
    def _form_number(cls, value: object) -> object:
        # A form field is text: "5" means 5 there.
        return int(value) if isinstance(value, str) and value.isdecimal() else value


class DatasetPathRequest(DatasetOptions):
    """A review file or NSMC folder already on the server, read where it is."""

    path: str = Field(
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Absolute path of a regular file or folder the server can read.",
    )


class FormOptionOut(BaseModel):
    name: str = Field(description="The field's name in a job's body.")
    type: str = Field(description="integer, number, string, boolean, or a list (integer[]).")
    default: Any = Field(description="null: unset (no limit, detected, all).")
    choices: list[Any] | None = Field(description="The allowed values, when there are few.")
    help: str
    group: str | None = Field(description="The heading it appears under in `--help`.")


class FormOptions(BaseModel):
    """Every recipe field of a training job, by the part of the body it belongs in."""

    train: list[FormOptionOut] = Field(description="Top-level fields of a job.")
    data: list[FormOptionOut] = Field(description="Fields of `data_options`.")
    governor: list[FormOptionOut] = Field(description="Fields of `governor`.")
    eval: list[FormOptionOut] = Field(description="Fields of `eval`.")
