"""A multipart form with one file, written straight to where it is kept as it streams in.

Starlette's form parser spools each file to a temporary file first (in the system's temporary
folder, which may be memory) and returns it whole; a training data set of a gigabyte should go
to its own folder once, with its size limit checked as it arrives. ``read_form`` feeds the
request's body to ``python-multipart``'s parser and hands the file's bytes to a sink the caller
opens when the file part begins; the form's other fields are short text, kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.errors import InvalidInput

# Text fields are a name or an option; far below this.
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16
# Body bytes gathered before the parser and the sink run (in a worker thread: they write to disk).
_BATCH_BYTES = 1024 * 1024
# Body bytes received but not yet handed to the sink: a batch short of ``_BATCH_BYTES`` and the
# chunk that completes it (ASGI servers hand over chunks of at most a few hundred KB). A limit
# on the whole body that should never cut in before the sink's own must leave this much room.
MAX_READ_AHEAD_BYTES = 2 * _BATCH_BYTES


class FileSink(Protocol):
    """Where the file's bytes go; ``write`` may refuse them (over a limit) by raising."""

    def write(self, data: bytes) -> None: ...


@dataclass
class StreamedForm:
    """The form's text fields and the file's name as the client sent it (``None``: no file)."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None


async def read_form(
    request: Request, file_field: str, open_sink: Callable[[str], FileSink]
) -> StreamedForm:
    """Read a ``multipart/form-data`` body whose one file is field ``file_field``; the file's
    bytes go to ``open_sink(filename)``. A malformed body, a second file or a field too long is
    ``InvalidInput``; what the sink raises comes out as it is."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInput("The upload is not multipart/form-data with a boundary.")
    form = _FormBuilder(file_field, open_sink)
    try:
        parser = MultipartParser(boundary, form.callbacks())
        batch = bytearray()
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= _BATCH_BYTES:
                await run_in_threadpool(parser.write, bytes(batch))
                batch.clear()
        if batch:
            await run_in_threadpool(parser.write, bytes(batch))
        parser.finalize()
    except FormParserError as exc:
        raise InvalidInput(f"The upload is not valid multipart/form-data: {exc}") from exc
    if not form.done:
        raise InvalidInput("The upload ended before its multipart body did.")
    return form.result


class _FormBuilder:
    """``MultipartParser``'s callbacks: headers into parts, parts into fields and the file."""

    def __init__(self, file_field: str, open_sink: Callable[[str], FileSink]) -> None:
        self.result = StreamedForm()
        self.done = False
        self._file_field = file_field
        self._open_sink = open_sink
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._value = bytearray()
        self._sink: FileSink | None = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_name_part,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._value.clear()
        self._sink = None

    def _header_name_part(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidInput("A part of the upload has no field name.")
        self._name = _text(options[b"name"])
        if b"filename" not in options:
            if len(self.result.fields) >= MAX_FIELDS:
                raise InvalidInput(f"The upload has more than {MAX_FIELDS} fields.")
            return
        if self._name != self._file_field:
            raise InvalidInput(
                f"Only field {self._file_field!r} may hold a file, not {self._name!r}."
            )
        if self.result.filename is not None:
            raise InvalidInput("The upload holds more than one file; send one at a time.")
        self.result.filename = _text(options[b"filename"])
        self._sink = self._open_sink(self.result.filename)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidInput(f"Field {self._name!r} is over {MAX_FIELD_BYTES} bytes.")

    def _part_end(self) -> None:
        if self._sink is None:
            self.result.fields[self._name] = _text(bytes(self._value))

    def _end(self) -> None:
        self.done = True


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
