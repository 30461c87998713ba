"""Reading Excel workbooks (.xlsx): the first sheet, streamed with openpyxl."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import IO, Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from connections.uploads.rows import ImportProblem, RawRow, Record, limits, table, too_big


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def read_xlsx(
    stream: IO[bytes], *, max_rows: int | None = None, max_bytes: int | None = None
) -> Iterator[RawRow]:
    """Rows of the first sheet of an .xlsx workbook, numbered as Excel shows them."""
    max_rows, max_bytes = limits(max_rows, max_bytes)
    if not stream.seekable():
        data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_big(max_bytes)
        stream = io.BytesIO(data)
    try:
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ImportProblem(
            "This Excel file cannot be opened. Open it in Excel and save it again as "
            "Excel Workbook (.xlsx) or CSV, then upload that file."
        ) from exc
    if not workbook.worksheets:
        workbook.close()
        raise ImportProblem("The workbook has no sheets. Put the VINs in the first sheet.")
    sheet = workbook.worksheets[0]
    # Some programs write a wrong sheet size; read to the real end instead.
    sheet.reset_dimensions()

    def records() -> Iterator[Record]:
        try:
            for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1):
                yield number, [_cell_text(v).strip() for v in values], ""
        finally:
            workbook.close()

    return table(records(), unit="row", max_rows=max_rows, strict_width=False)
