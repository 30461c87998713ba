"""The parts of an .xlsx workbook (a zip of XML files), read with bounds that
do not depend on the compressed size.

A small .xlsx can unpack to gigabytes, name a hundred-megabyte string or
millions of them, or carry XML written to attack the parser. So every part is
fed a block at a time to defusedxml's expat parser (no DTDs, no entities, no
external references), the bytes actually unzipped are counted as they are
read (a zip's stated sizes are only used to refuse early), text is counted as
it arrives, and the whole read has a time budget. Any part that is not what
Excel writes ends in `ImportProblem` with the "cannot be opened" message.
"""

from __future__ import annotations

import posixpath
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from xml.sax import SAXException
from xml.sax.handler import ContentHandler, feature_namespaces

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser
from django.conf import settings

from connections.uploads.rows import ImportProblem

CANNOT_OPEN = (
    "This Excel file cannot be opened. Open it in Excel and save it again as "
    "Excel Workbook (.xlsx) or CSV, then upload that file."
)

BLOCK_BYTES = 64 * 1024

# What a damaged or hostile zip or XML part raises while being read.
BROKEN = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # a compression method zipfile does not know
    RuntimeError,  # an encrypted member
    OSError,
    KeyError,  # a part the workbook names is missing
    IndexError,
    ValueError,  # includes defusedxml's refusals and bad numbers
    SAXException,
    DefusedXmlException,
)


def cannot_open(detail: str = "") -> ImportProblem:
    if not detail:
        return ImportProblem(CANNOT_OPEN)
    return ImportProblem(CANNOT_OPEN.replace("cannot be opened.", f"cannot be opened: {detail}."))


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn whatever a damaged workbook raises into the "cannot be opened" message."""
    try:
        yield
    except ImportProblem:
        raise
    except BROKEN as exc:
        raise cannot_open() from exc


class Bounds:
    """The limits of one workbook's read, and what has been used of them."""

    def __init__(self, max_bytes: int):
        self.max_unzipped = settings.UPLOAD_XLSX_MAX_UNZIPPED_BYTES
        self.max_columns = settings.UPLOAD_XLSX_MAX_COLUMNS
        self.max_cells = settings.UPLOAD_XLSX_MAX_CELLS
        self.max_strings = settings.UPLOAD_XLSX_MAX_SHARED_STRINGS
        self.max_cell_chars = settings.UPLOAD_XLSX_MAX_CELL_CHARS
        # The workbook's text cannot be more than a CSV of it could be.
        self.max_text_chars = max_bytes
        self.max_seconds = settings.UPLOAD_XLSX_MAX_SECONDS
        self.deadline = time.monotonic() + self.max_seconds
        self.unzipped = 0
        self.cells = 0
        self.text_chars = 0

    def unzip(self, count: int) -> None:
        self.unzipped += count
        if self.unzipped > self.max_unzipped:
            raise ImportProblem(
                f"The workbook unpacks to more than {self.max_unzipped / 1024 / 1024:.0f} MB, "
                "far more than a list of VINs needs. Copy the VIN columns into a new workbook, "
                "or save the sheet as CSV, and upload that file."
            )

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise ImportProblem(
                f"Reading this workbook took longer than {self.max_seconds:.0f} seconds, so it "
                "was stopped. Save the sheet as CSV, or split it, and upload that."
            )

    def count_cell(self) -> None:
        self.cells += 1
        if self.cells > self.max_cells:
            raise ImportProblem(
                f"The sheet has more than {self.max_cells:,} cells. Keep only the VIN columns "
                "(VIN, make, country, plate…), or split the rows, and upload the parts."
            )

    def check_column(self, column: int, row: int) -> None:
        if column > self.max_columns:
            raise ImportProblem(
                f"Row {row} has a value in column {column:,}; at most {self.max_columns:,} "
                "columns are read. Delete the columns the VIN list does not need and upload "
                "the file again."
            )

    def check_cell_text(self, length: int) -> None:
        if length > self.max_cell_chars:
            raise ImportProblem(
                f"A cell holds more than {self.max_cell_chars:,} characters, more than Excel "
                "itself allows. Open the file in Excel, save it again, and upload that file."
            )

    def add_text(self, length: int) -> None:
        self.text_chars += length
        if self.text_chars > self.max_text_chars:
            raise ImportProblem(
                f"The workbook holds more than {self.max_text_chars:,} characters of text, more "
                "than the upload limit. Split the list and upload the parts."
            )


def parse_part(
    archive: zipfile.ZipFile, path: str, handler: ContentHandler, bounds: Bounds
) -> Iterator[None]:
    """Feed one part to a hardened parser a block at a time, yielding after each
    block so the caller can take what `handler` has collected so far."""
    info = archive.getinfo(path)
    if bounds.unzipped + info.file_size > bounds.max_unzipped:
        bounds.unzip(info.file_size)  # refused on the zip's own word, before unpacking
    parser = DefusedExpatParser(namespaceHandling=1, forbid_dtd=True)
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(handler)
    with archive.open(info) as member:
        while block := member.read(BLOCK_BYTES):
            bounds.unzip(len(block))
            bounds.tick()
            parser.feed(block)
            yield
    parser.close()
    yield


class _Collect(ContentHandler):
    """The attributes (by local name) of every element named `wanted`."""

    def __init__(self, wanted: set[str]):
        super().__init__()
        self.wanted = wanted
        self.found: list[tuple[str, dict[str, str]]] = []

    def startElementNS(self, name, qname, attrs) -> None:
        if name[1] in self.wanted:
            if len(self.found) > 10_000:
                raise ValueError("too many elements")
            self.found.append((name[1], {key[1]: value for key, value in attrs.items()}))


def _collect(archive: zipfile.ZipFile, path: str, wanted: set[str], bounds: Bounds) -> list:
    handler = _Collect(wanted)
    for _ in parse_part(archive, path, handler, bounds):
        pass
    return handler.found


def _relationships(archive: zipfile.ZipFile, part: str, bounds: Bounds) -> list[tuple[str, ...]]:
    """(id, type, path in the zip) of each relationship of `part`."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive.NameToInfo:
        return []
    found = []
    for _tag, attrs in _collect(archive, rels, {"Relationship"}, bounds):
        target = attrs.get("Target", "")
        path = target[1:] if target.startswith("/") else posixpath.join(folder, target)
        found.append((attrs.get("Id", ""), attrs.get("Type", ""), posixpath.normpath(path)))
    return found


def locate_parts(archive: zipfile.ZipFile, bounds: Bounds) -> tuple[str, str | None]:
    """The zip paths of the first sheet and of the shared strings (if any)."""
    package = _relationships(archive, "", bounds)
    workbook = next(
        (path for _id, kind, path in package if kind.endswith("/officeDocument")),
        "xl/workbook.xml",
    )
    sheets = _collect(archive, workbook, {"sheet"}, bounds)
    if not sheets:
        raise ImportProblem("The workbook has no sheets. Put the VINs in the first sheet.")
    parts = _relationships(archive, workbook, bounds)
    worksheets = {rid: path for rid, kind, path in parts if kind.endswith("/worksheet")}
    ids = [attrs.get("id", "") for _tag, attrs in sheets]
    sheet = next((worksheets[rid] for rid in ids if rid in worksheets), "")
    if not sheet:
        raise ImportProblem("The workbook has no sheets. Put the VINs in the first sheet.")
    strings = next((path for _i, kind, path in parts if kind.endswith("/sharedStrings")), None)
    return sheet, strings


class _SharedStrings(ContentHandler):
    """`<sst><si><t>text</t></si>…`, rich text runs joined, phonetic runs left out."""

    def __init__(self, bounds: Bounds):
        super().__init__()
        self.bounds = bounds
        self.strings: list[str] = []
        self._parts: list[str] | None = None
        self._length = 0
        self._in_text = False
        self._phonetic = 0

    def startElementNS(self, name, qname, attrs) -> None:
        tag = name[1]
        if tag == "si":
            self._parts, self._length = [], 0
        elif tag == "t" and self._parts is not None and not self._phonetic:
            self._in_text = True
        elif tag == "rPh":
            self._phonetic += 1

    def characters(self, content: str) -> None:
        if self._in_text and self._parts is not None:
            self._length += len(content)
            self.bounds.check_cell_text(self._length)
            self.bounds.add_text(len(content))
            self._parts.append(content)

    def endElementNS(self, name, qname) -> None:
        tag = name[1]
        if tag == "t":
            self._in_text = False
        elif tag == "rPh":
            self._phonetic -= 1
        elif tag == "si" and self._parts is not None:
            if len(self.strings) >= self.bounds.max_strings:
                raise ImportProblem(
                    f"The workbook holds more than {self.bounds.max_strings:,} different texts. "
                    "Save the sheet as CSV, or split it, and upload that."
                )
            self.strings.append("".join(self._parts))
            self._parts = None


def shared_strings(archive: zipfile.ZipFile, path: str | None, bounds: Bounds) -> list[str]:
    if path is None or path not in archive.NameToInfo:
        return []
    handler = _SharedStrings(bounds)
    for _ in parse_part(archive, path, handler, bounds):
        pass
    return handler.strings
