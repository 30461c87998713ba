"""Reading Excel workbooks (.xlsx): the first sheet's rows, streamed from its XML.

The sheet is read with `xlsx_package`'s hardened, bounded parser rather than
openpyxl, which cannot be bounded: it loads every shared string at once and
yields every missing row up to a row numbered 40,000,000. Here a row is only
what the sheet holds, numbered as Excel shows it; cells are placed by their
reference and values are read as openpyxl's `data_only` would (a formula's
cached value, shared and inline strings, booleans as TRUE/FALSE, whole numbers
without ".0"). Dates stay Excel's serial numbers: no VIN column holds one.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import IO
from xml.sax.handler import ContentHandler

from connections.uploads.rows import RawRow, Record, limits, table, too_big
from connections.uploads.xlsx_package import (
    Bounds,
    cannot_open,
    friendly_errors,
    locate_parts,
    parse_part,
    shared_strings,
)

# Excel's own limits: a reference past them is not a sheet Excel wrote.
LAST_ROW = 1_048_576
LAST_COLUMN = 16_384

_REFERENCE = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")


def column_number(reference: str) -> int:
    """1 for "A1", 28 for "AB7"; ValueError for anything Excel would not write."""
    match = _REFERENCE.fullmatch(reference)
    if not match:
        raise ValueError(f"bad cell reference {reference[:20]!r}")
    number = 0
    for letter in match.group(1):
        number = number * 26 + ord(letter) - 64
    if number > LAST_COLUMN:
        raise ValueError(f"bad cell reference {reference[:20]!r}")
    return number


def _number_text(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return str(value)


class _Sheet(ContentHandler):
    """`<sheetData><row r="2"><c r="A2" t="s"><v>0</v></c>…` to records; the
    finished ones wait in `ready` until the reader takes them."""

    def __init__(self, strings: list[str], bounds: Bounds):
        super().__init__()
        self.strings = strings
        self.bounds = bounds
        self.ready: list[Record] = []
        self._row_number = 0
        self._cells: list[str] | None = None
        self._column = 0
        self._type = ""
        self._value: list[str] = []
        self._inline: list[str] = []
        self._text: list[str] | None = None
        self._length = 0
        self._phonetic = 0

    def startElementNS(self, name, qname, attrs) -> None:
        tag = name[1]
        if tag == "row":
            given = attrs.get((None, "r"))
            self._row_number = int(given) if given is not None else self._row_number + 1
            if not 1 <= self._row_number <= LAST_ROW:
                raise cannot_open(f"it names row {self._row_number:,}, past Excel's last row")
            self._cells, self._column = [], 0
        elif tag == "c" and self._cells is not None:
            self.bounds.count_cell()
            reference = attrs.get((None, "r"))
            self._column = column_number(reference) if reference else self._column + 1
            self.bounds.check_column(self._column, self._row_number)
            self._type = attrs.get((None, "t"), "n")
            self._value, self._inline, self._length = [], [], 0
        elif tag == "v" and self._cells is not None:
            self._text = self._value
        elif tag == "t" and self._cells is not None and not self._phonetic:
            self._text = self._inline
        elif tag == "rPh":
            self._phonetic += 1

    def characters(self, content: str) -> None:
        if self._text is not None:
            self._length += len(content)
            self.bounds.check_cell_text(self._length)
            self._text.append(content)

    def endElementNS(self, name, qname) -> None:
        tag = name[1]
        if tag in ("v", "t"):
            self._text = None
        elif tag == "rPh":
            self._phonetic -= 1
        elif tag == "c" and self._cells is not None:
            missing = self._column - len(self._cells)
            if missing > 0:
                self._cells.extend([""] * missing)
            self._cells[self._column - 1] = self._cell_text().strip()
        elif tag == "row" and self._cells is not None:
            self.ready.append((self._row_number, self._cells, ""))
            self._cells = None

    def _cell_text(self) -> str:
        value = "".join(self._value)
        if self._type == "s":
            if not value.strip():
                return ""
            index = int(value)
            if index < 0:
                raise ValueError("negative shared string index")
            return self.strings[index]
        if self._type == "inlineStr":
            return "".join(self._inline)
        if self._type == "b":
            return "TRUE" if value.strip() == "1" else "FALSE"
        if self._type == "n":
            return _number_text(value)
        return value  # str (a formula's text), e (#N/A…), d (ISO date)

    def take(self) -> list[Record]:
        ready, self.ready = self.ready, []
        return ready


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
    bounds = Bounds(max_bytes)
    with friendly_errors():
        archive = zipfile.ZipFile(stream)
        sheet, strings_path = locate_parts(archive, bounds)
        strings = shared_strings(archive, strings_path, bounds)
    return table(
        _records(archive, sheet, strings, bounds),
        unit="row",
        max_rows=max_rows,
        strict_width=False,
    )


def _records(
    archive: zipfile.ZipFile, sheet: str, strings: list[str], bounds: Bounds
) -> Iterator[Record]:
    handler = _Sheet(strings, bounds)
    with archive, friendly_errors():
        for _ in parse_part(archive, sheet, handler, bounds):
            yield from handler.take()
