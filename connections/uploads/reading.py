"""Reading VIN lists: CSV files, Excel workbooks (.xlsx) and pasted text.

Every reader streams `RawRow`s with canonical keys (`FIELDS`) and the row's
place in the source (the file's physical line, or the row number Excel shows),
so `uploads.validation.validate_rows()` can check them one by one. A problem with
the whole upload (too big, no VIN column, unreadable) raises `ImportProblem`,
whose message is written for the person who uploaded the file; a problem with
one row travels with that row and makes it invalid, never silently dropped.

File-level problems of the header and format are raised when the reader is
created; size limits can also trip while rows are being read, so callers
consume the rows inside the same `try` (and transaction).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import PurePath
from typing import IO

from connections.uploads.csv_reader import lenient_cells, quoting_problem, read_csv
from connections.uploads.rows import (
    ImportProblem,
    RawRow,
    Record,
    column_for_header,
    limits,
    table,
    too_big,
)
from connections.uploads.xlsx_reader import read_xlsx


def read_pasted(
    text: str, *, max_rows: int | None = None, max_bytes: int | None = None
) -> Iterator[RawRow]:
    """Rows of pasted text: one VIN per line, optionally `vin,make,country` (or `;`/tab
    separated), or a block copied from a spreadsheet with its header row."""
    max_rows, max_bytes = limits(max_rows, max_bytes)
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise too_big(max_bytes)

    # A block with a header row (copied from a spreadsheet) has one delimiter,
    # the header's: a `;` inside a field (tags) must not split that line.
    # Without a header each line may use its own.
    first = next((line for line in text.splitlines() if line.strip()), "")
    header_delimiter = max(("\t", ";", ","), key=first.count)
    if not any(column_for_header(cell) == "vin" for cell in first.split(header_delimiter)):
        header_delimiter = ""

    def records() -> Iterator[Record]:
        for number, line in enumerate(text.splitlines(), start=1):
            delimiter = header_delimiter or next((d for d in ("\t", ";", ",") if d in line), ",")
            try:
                yield number, next(csv.reader([line], delimiter=delimiter, strict=True), []), ""
            except csv.Error as exc:
                yield number, lenient_cells(line, delimiter), quoting_problem(exc)

    return table(records(), unit="line", max_rows=max_rows, strict_width=False)


_XLSX_MAGIC = b"PK\x03\x04"


_OLE_MAGIC = b"\xd0\xcf\x11\xe0"


def read_upload(
    source: IO[bytes] | bytes | str,
    *,
    filename: str = "",
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[RawRow]:
    """Rows of an upload: pasted text (a str), or a file (Django's UploadedFile, any
    binary stream, or bytes) read as .xlsx or CSV by its name and first bytes."""
    max_rows, max_bytes = limits(max_rows, max_bytes)
    if isinstance(source, str):
        return read_pasted(source, max_rows=max_rows, max_bytes=max_bytes)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    name = filename or str(getattr(source, "name", "") or "")
    size = getattr(source, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise too_big(max_bytes)
    if not source.seekable():
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_big(max_bytes)
        source = io.BytesIO(data)
    position = source.tell()
    magic = source.read(8)
    source.seek(position)
    extension = PurePath(name).suffix.lower()
    if extension == ".xls" or magic.startswith(_OLE_MAGIC):
        raise ImportProblem(
            "Old Excel files (.xls) cannot be read. In Excel, choose Save As and pick "
            "Excel Workbook (.xlsx) or CSV, then upload that file."
        )
    if magic.startswith(_XLSX_MAGIC):
        return read_xlsx(source, max_rows=max_rows, max_bytes=max_bytes)
    if extension in {".xlsx", ".xlsm"}:
        raise ImportProblem(
            f"This file is named {extension} but is not an Excel workbook. If it is a CSV "
            "file, rename it to end in .csv; otherwise open it in Excel and save it as "
            "Excel Workbook (.xlsx). Then upload it again."
        )
    if extension in {".numbers", ".ods", ".pdf", ".docx"}:
        raise ImportProblem(
            f"{extension} files cannot be read. Export the list as CSV or Excel (.xlsx)."
        )
    return read_csv(source, max_rows=max_rows, max_bytes=max_bytes)
