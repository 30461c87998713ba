"""Reading VIN lists: CSV files, Excel workbooks (.xlsx) and pasted text.

Every reader streams `RawRow`s with canonical keys (`FIELDS`) and the row's
place in the source (the file's physical line, or the row number Excel shows),
so `connections.vins.validate_rows()` can check them one by one. A problem with
the whole upload (too big, no VIN column, unreadable) raises `ImportProblem`,
whose message is written for the person who uploaded the file; a problem with
one row travels with that row and makes it invalid, never silently dropped.

File-level problems of the header and format are raised when the reader is
created; size limits can also trip while rows are being read, so callers
consume the rows inside the same `try` (and transaction).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import PurePath
from typing import IO, Any

from django.conf import settings

from connections.makes import comparison_key
from connections.vins import INVALID, normalise_vin


class ImportProblem(ValueError):
    """The upload as a whole cannot be read; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read: canonical keys (see `FIELDS`) and any problem with the
    row itself (bad quoting, wrong number of cells)."""

    line_number: int
    fields: Mapping[str, str]
    problems: tuple[str, ...] = ()


FIELDS: tuple[str, ...] = (
    "vin",
    "make",
    "country_code",
    "registration_plate",
    "model",
    "model_year",
    "tags",
)
FIELD_LABELS: dict[str, str] = {
    "vin": "VIN",
    "make": "Make",
    "country_code": "Country",
    "registration_plate": "Registration plate",
    "model": "Model",
    "model_year": "Model year",
    "tags": "Tags",
}
_HEADER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "vin": (
        "vin",
        "vins",
        "vin number",
        "vin no",
        "vehicle identification number",
        "vehicle id number",
        "chassis number",
        "chassis no",
    ),
    "make": ("make", "brand", "manufacturer", "marque", "oem", "vehicle make"),
    "country_code": ("country", "country code", "countrycode", "country_code", "iso country"),
    "registration_plate": (
        "registration plate",
        "plate",
        "license plate",
        "licence plate",
        "license plate number",
        "licence plate number",
        "number plate",
        "plate number",
        "registration",
        "registration number",
        "reg",
        "reg no",
        "vrm",
    ),
    "model": ("model", "vehicle model"),
    "model_year": ("model year", "year", "my"),
    "tags": ("tags", "tag"),
}
_COLUMN_FOR_HEADER: dict[str, str] = {
    comparison_key(spelling): name
    for name, spellings in _HEADER_SPELLINGS.items()
    for spelling in spellings
}

SAMPLE_BYTES = 64 * 1024
# A quoted cell may legitimately span lines; a quote left open must not swallow the file.
MAX_LINES_PER_RECORD = 10
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_VIN_LIKE = re.compile(r"^(?=.*\d)(?=.*[A-Z])[A-Z0-9]{11,20}$")


def column_for_header(text: str) -> str | None:
    """The canonical field a column heading names (case, spacing and punctuation ignored)."""
    return _COLUMN_FOR_HEADER.get(comparison_key(text))


def looks_like_vin(text: str) -> bool:
    return bool(_VIN_LIKE.match(normalise_vin(text)))


def csv_safe(value: Any) -> str:
    """A cell value that spreadsheet programs will not run as a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _unescape(cell: str) -> str:
    # Undo csv_safe() so a downloaded file of invalid rows can be fixed and uploaded again.
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@":
        return cell[1:]
    return cell


def _limits(max_rows: int | None, max_bytes: int | None) -> tuple[int, int]:
    return (
        settings.UPLOAD_MAX_ROWS if max_rows is None else max_rows,
        settings.UPLOAD_MAX_BYTES if max_bytes is None else max_bytes,
    )


def _too_big(max_bytes: int) -> ImportProblem:
    megabytes = max_bytes / (1024 * 1024)
    size = f"{megabytes:.0f} MB" if megabytes >= 1 else f"{max_bytes:,} bytes"
    return ImportProblem(f"The file is larger than {size}; split it and upload the parts.")


def _too_many_rows(max_rows: int) -> ImportProblem:
    return ImportProblem(
        f"The file has more than {max_rows:,} rows; split it and upload the parts."
    )


# A record as the table reader sees it: where it starts, its cells (None when
# unreadable) and what went wrong.
_Record = tuple[int, list[str] | None, str]


def _table(
    source: Iterable[_Record], *, unit: str, max_rows: int, strict_width: bool
) -> Iterator[RawRow]:
    """Find the header (or decide there is none), then map each record to a RawRow.

    Reads eagerly up to the first non-empty record so a file without a VIN
    column fails when the reader is created, not halfway through.
    """
    records = iter(source)
    first: _Record | None = None
    for record in records:
        line, cells, _problem = record
        if cells is None or any(cell.strip() for cell in cells):
            first = record
            break
    if first is None:
        raise ImportProblem("The file has no rows. Add one VIN per line, with a header row.")

    line, cells, _problem = first
    columns: list[str | None]
    header_line: int | None = None
    if cells is not None and any(column_for_header(cell) == "vin" for cell in cells):
        columns = []
        for cell in cells:
            name = column_for_header(cell)
            columns.append(name if name not in columns else None)
        header_line = line
    elif cells is not None and cells and looks_like_vin(cells[0]):
        columns = list(FIELDS)
    else:
        found = ", ".join(repr(c.strip()) for c in (cells or []) if c.strip()) or "nothing"
        raise ImportProblem(
            f"No VIN column was found. The first {unit} has: {found}. Add a header row with a "
            f"column named VIN (optional columns: {', '.join(list(FIELD_LABELS.values())[1:])})."
        )
    if isinstance(source, _CsvRecords) and header_line is not None:
        source.width = len(columns)
    return _rows(
        first if header_line is None else None,
        records,
        columns,
        unit=unit,
        max_rows=max_rows,
        strict_width=strict_width and header_line is not None,
    )


def _rows(
    first: _Record | None,
    records: Iterator[_Record],
    columns: list[str | None],
    *,
    unit: str,
    max_rows: int,
    strict_width: bool,
) -> Iterator[RawRow]:
    last_named = max((i for i, name in enumerate(columns) if name), default=0)
    count = 0
    pending = [first] if first is not None else []
    for line, cells, problem in itertools.chain(pending, records):
        if not problem and not any(cell.strip() for cell in cells or ()):
            continue
        problems = [f"{unit.capitalize()} {line}: {problem}"] if problem else []
        cells = cells or []
        count += 1
        if count > max_rows:
            raise _too_many_rows(max_rows)
        extra = [cell for cell in cells[len(columns) :] if cell.strip()]
        if extra and not problem:
            problems.append(
                f"{unit.capitalize()} {line} has {_values(len(cells))} but there are only "
                f"{len(columns)} columns. A value probably contains the separator: put it in "
                "double quotes, or remove the extra values."
            )
        elif strict_width and not problem and len(cells) <= last_named:
            problems.append(
                f"{unit.capitalize()} {line} has {_values(len(cells))} but the header has "
                f"{len(columns)} columns. Check for a missing separator."
            )
        fields = dict.fromkeys(FIELDS, "")
        for name, cell in zip(columns, cells, strict=False):
            if name:
                fields[name] = _unescape(cell.strip())
        yield RawRow(line, fields, tuple(problems))


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"


# --- CSV ------------------------------------------------------------------------------------


def _decode_cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    # A file that looked like UTF-8 may still hold a stray Windows-1252 byte
    # further on (an "é" typed into one cell): read it as that, not as "?".
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return bytes(bad).decode("cp1252", errors="replace"), error.end


codecs.register_error("fleetportal-cp1252", _decode_cp1252_fallback)


def detect_encoding(head: bytes) -> tuple[str, str]:
    """(encoding, error handler) for a file starting with `head`."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "fleetportal-cp1252"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "replace"
    sample = head[:4096]
    if len(sample) >= 4:
        # UTF-16 without a byte-order mark: ASCII text shows up as every other byte zero.
        odd_zeros = sample[1::2].count(0) / (len(sample) // 2)
        even_zeros = sample[0::2].count(0) / (len(sample) // 2)
        if odd_zeros > 0.4 and even_zeros < 0.1:
            return "utf-16-le", "replace"
        if even_zeros > 0.4 and odd_zeros < 0.1:
            return "utf-16-be", "replace"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp1252", "replace"
    return "utf-8", "fleetportal-cp1252"


def detect_delimiter(sample: str) -> str:
    """`,`, `;` or tab, as csv.Sniffer sees the first lines, else by counting the first line."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ""
    if delimiter and delimiter in lines[0]:
        return delimiter
    counts = {d: lines[0].count(d) for d in ("\t", ";", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _LimitedStream(io.RawIOBase):
    """Replays the sniffed head, then the rest of the stream, counting bytes."""

    def __init__(self, head: bytes, stream: IO[bytes], max_bytes: int):
        self._head = head
        self._stream = stream
        self._max_bytes = max_bytes
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._total += n
        if self._total > self._max_bytes:
            raise _too_big(self._max_bytes)
        return n


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


class _CsvRecords:
    """Parse physical lines into records, joining lines only inside a quoted cell.

    A quote left open would otherwise swallow the rest of the file into one
    cell, so a multi-line record is accepted only when it has exactly as many
    cells as the header (`width`, set once the header is known); otherwise the
    line is reported on its own and the lines after it are read afresh.
    """

    def __init__(self, lines: Iterable[str], delimiter: str):
        self._numbered = enumerate(lines, start=1)
        self._lookahead: deque[tuple[int, str]] = deque()
        self._delimiter = delimiter
        self.width = 0

    def _next_line(self) -> tuple[int, str] | None:
        if self._lookahead:
            return self._lookahead.popleft()
        return next(self._numbered, None)

    def _parse(self, text: str) -> list[str]:
        return next(csv.reader([text], delimiter=self._delimiter, strict=True), [])

    def __iter__(self) -> Iterator[_Record]:
        while (item := self._next_line()) is not None:
            start, line = item[0], _strip_newline(item[1])
            if "\0" in line:
                # Python's csv reads NUL as data; it only gets here from a binary or broken file.
                cells = _lenient_cells(line.replace("\0", ""), self._delimiter)
                yield start, cells, _NUL_PROBLEM
                continue
            try:
                yield start, self._parse(line), ""
                continue
            except csv.Error as exc:
                error = exc
            joined = self._join(start, line) if "unexpected end of data" in str(error) else None
            if joined is not None:
                yield start, joined, ""
            else:
                yield start, _lenient_cells(line, self._delimiter), _quoting_problem(error)

    def _join(self, start: int, text: str) -> list[str] | None:
        if self.width <= 0:
            return None
        taken: list[tuple[int, str]] = []
        while len(taken) < MAX_LINES_PER_RECORD and (following := self._next_line()):
            taken.append(following)
            text += "\n" + _strip_newline(following[1])
            try:
                cells = self._parse(text)
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    continue
                break
            if len(cells) == self.width:
                return cells
            break
        self._lookahead.extendleft(reversed(taken))
        return None


def _lenient_cells(line: str, delimiter: str) -> list[str] | None:
    try:
        return next(csv.reader([_strip_newline(line)], delimiter=delimiter), [])
    except csv.Error:
        return None


_NUL_PROBLEM = (
    "the line contains a NUL character, which text files do not have. "
    "Save the file again as CSV from your spreadsheet."
)


def _quoting_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return (
            'a double quote (") opens a value that is never closed. Remove the quote or close it.'
        )
    if "expected after" in text:
        return (
            "a value in double quotes is followed by more text before the separator. "
            "Put the whole value in quotes, or remove the quotes."
        )
    if "NUL" in text:
        return (
            "the line contains a NUL character; save the file again as CSV from your spreadsheet."
        )
    return f"the line cannot be read as CSV ({text}). Check its quotes and separators."


def read_csv(
    stream: IO[bytes], *, max_rows: int | None = None, max_bytes: int | None = None
) -> Iterator[RawRow]:
    """Rows of a CSV file given as a binary stream (encoding and separator detected)."""
    max_rows, max_bytes = _limits(max_rows, max_bytes)
    head = stream.read(SAMPLE_BYTES)
    encoding, errors = detect_encoding(head)
    sample = head.decode(encoding, errors="replace")
    if len(head) == SAMPLE_BYTES:
        sample = sample.rsplit("\n", 1)[0]
    delimiter = detect_delimiter(sample.lstrip("\ufeff"))
    text = io.TextIOWrapper(
        io.BufferedReader(_LimitedStream(head, stream, max_bytes)),
        encoding=encoding,
        errors=errors,
        newline="",
    )
    records = _CsvRecords(text, delimiter)
    return _table(records, unit="line", max_rows=max_rows, strict_width=True)


# --- Excel ----------------------------------------------------------------------------------


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
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    max_rows, max_bytes = _limits(max_rows, max_bytes)
    if not stream.seekable():
        data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_big(max_bytes)
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

    def records() -> Iterator[_Record]:
        try:
            for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1):
                yield number, [_cell_text(v).strip() for v in values], ""
        finally:
            workbook.close()

    return _table(records(), unit="row", max_rows=max_rows, strict_width=False)


# --- Pasted text ----------------------------------------------------------------------------


def read_pasted(
    text: str, *, max_rows: int | None = None, max_bytes: int | None = None
) -> Iterator[RawRow]:
    """Rows of pasted text: one VIN per line, optionally `vin,make,country` (or `;`/tab
    separated), or a block copied from a spreadsheet with its header row."""
    max_rows, max_bytes = _limits(max_rows, max_bytes)
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise _too_big(max_bytes)

    # A block with a header row (copied from a spreadsheet) has one delimiter,
    # the header's: a `;` inside a field (tags) must not split that line.
    # Without a header each line may use its own.
    first = next((line for line in text.splitlines() if line.strip()), "")
    header_delimiter = max(("\t", ";", ","), key=first.count)
    if not any(column_for_header(cell) == "vin" for cell in first.split(header_delimiter)):
        header_delimiter = ""

    def records() -> Iterator[_Record]:
        for number, line in enumerate(text.splitlines(), start=1):
            delimiter = header_delimiter or next((d for d in ("\t", ";", ",") if d in line), ",")
            try:
                yield number, next(csv.reader([line], delimiter=delimiter, strict=True), []), ""
            except csv.Error as exc:
                yield number, _lenient_cells(line, delimiter), _quoting_problem(exc)

    return _table(records(), unit="line", max_rows=max_rows, strict_width=False)


# --- Choosing the reader --------------------------------------------------------------------

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
    max_rows, max_bytes = _limits(max_rows, max_bytes)
    if isinstance(source, str):
        return read_pasted(source, max_rows=max_rows, max_bytes=max_bytes)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    name = filename or str(getattr(source, "name", "") or "")
    size = getattr(source, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise _too_big(max_bytes)
    if not source.seekable():
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_big(max_bytes)
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
    if extension in {".xlsx", ".xlsm"} or magic.startswith(_XLSX_MAGIC):
        return read_xlsx(source, max_rows=max_rows, max_bytes=max_bytes)
    if extension in {".numbers", ".ods", ".pdf", ".docx"}:
        raise ImportProblem(
            f"{extension} files cannot be read. Export the list as CSV or Excel (.xlsx)."
        )
    return read_csv(source, max_rows=max_rows, max_bytes=max_bytes)


# --- Invalid rows, to fix and upload again ------------------------------------------------

INVALID_ROWS_HEADER: tuple[str, ...] = (*FIELD_LABELS.values(), "Problem", "Original line")


def _tags_text(tags: Iterable[Mapping[str, str]] | None) -> str:
    return ";".join(f"{tag.get('key', '')}={tag.get('value', '')}" for tag in tags or ())


def invalid_rows_csv(rows: Iterable[Any]) -> str:
    """The invalid rows among `rows` (ValidatedRow or VinEntry objects) as CSV text,
    in the upload's own columns plus the problem, safe to open in a spreadsheet.

    Encode it as `utf-8-sig` when serving it, so Excel reads accents correctly.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(INVALID_ROWS_HEADER)
    for row in rows:
        if getattr(row, "validity", None) != INVALID:
            continue
        model_year = getattr(row, "model_year", None)
        cells = (
            getattr(row, "raw_vin", "") or getattr(row, "vin", ""),
            getattr(row, "make", ""),
            getattr(row, "country_code", ""),
            getattr(row, "registration_plate", ""),
            getattr(row, "model", ""),
            "" if model_year is None else model_year,
            _tags_text(getattr(row, "tags", None)),
            " ".join(getattr(row, "problems", None) or ()),
            getattr(row, "line_number", ""),
        )
        writer.writerow([csv_safe(cell) for cell in cells])
    return out.getvalue()
