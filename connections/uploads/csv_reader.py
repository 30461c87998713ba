"""Reading CSV and delimited text files: encoding and delimiter detection,
records that span lines, and per-row problems (bad quoting, NUL bytes).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO

from connections.uploads.rows import RawRow, Record, limits, table, too_big

SAMPLE_BYTES = 64 * 1024


# A quoted cell may legitimately span lines; a quote left open must not swallow the file.
MAX_LINES_PER_RECORD = 10


# A UTF-8 encoded character: the mark of a line written as UTF-8.
_UTF8_CHARACTER = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def detect_encoding(head: bytes) -> str:
    """ "utf-16" (with a byte-order mark), "utf-16-le" or "utf-16-be" (without),
    else "utf-8": UTF-8 or Windows-1252, decided line by line (`decode_line`)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[:4096]
    if len(sample) >= 4 and not head.startswith(codecs.BOM_UTF8):
        # UTF-16 without a byte-order mark: ASCII text shows up as every other byte zero.
        odd_zeros = sample[1::2].count(0) / (len(sample) // 2)
        even_zeros = sample[0::2].count(0) / (len(sample) // 2)
        if odd_zeros > 0.4 and even_zeros < 0.1:
            return "utf-16-le"
        if even_zeros > 0.4 and odd_zeros < 0.1:
            return "utf-16-be"
    return "utf-8"


def decode_line(raw: bytes) -> str:
    """One line of a file that is not UTF-16.

    A line that is valid UTF-8 is read as UTF-8, wherever it is in the file, so
    one stray byte elsewhere never turns "Škoda" into "Å koda". A line that is
    not, and holds no UTF-8 character at all, was written by a Windows program
    ("Citro\xebn"): it is read as Windows-1252. Anything else (a line mixing the
    two, or bytes Windows-1252 does not define) keeps U+FFFD where it cannot be
    read, and `_CsvRecords` makes that row invalid, naming the line.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _UTF8_CHARACTER.search(raw):
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp1252", errors="replace")


# Python's universal newlines: a lone carriage return ends a line too (old Mac files).
_AFTER_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    first = True
    for raw in stream:
        if first:
            raw, first = raw.removeprefix(codecs.BOM_UTF8), False
        line = decode_line(raw)
        if "\r" in line.rstrip("\r\n"):
            yield from (part for part in _AFTER_LONE_CR.split(line) if part)
        else:
            yield line


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
            raise too_big(self._max_bytes)
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

    def __iter__(self) -> Iterator[Record]:
        while (item := self._next_line()) is not None:
            start, line = item[0], _strip_newline(item[1])
            if "\0" in line:
                # Python's csv reads NUL as data; it only gets here from a binary or broken file.
                cells = lenient_cells(line.replace("\0", ""), self._delimiter)
                yield start, cells, _NUL_PROBLEM
                continue
            if "\ufffd" in line:
                yield start, lenient_cells(line, self._delimiter), _UNREADABLE_PROBLEM
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
                yield start, lenient_cells(line, self._delimiter), quoting_problem(error)

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


def lenient_cells(line: str, delimiter: str) -> list[str] | None:
    try:
        return next(csv.reader([_strip_newline(line)], delimiter=delimiter), [])
    except csv.Error:
        return None


_NUL_PROBLEM = (
    "the line contains a NUL character, which text files do not have. "
    "Save the file again as CSV from your spreadsheet."
)


_UNREADABLE_PROBLEM = (
    "some characters cannot be read (shown as \ufffd): the line is neither UTF-8 nor "
    "Windows-1252 text. Save the file from your spreadsheet as CSV UTF-8 and upload it again."
)


def quoting_problem(exc: csv.Error) -> str:
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
    max_rows, max_bytes = limits(max_rows, max_bytes)
    head = stream.read(SAMPLE_BYTES)
    encoding = detect_encoding(head)
    sample = head.decode(encoding, errors="replace")
    if len(head) == SAMPLE_BYTES:
        sample = sample.rsplit("\n", 1)[0]
    delimiter = detect_delimiter(sample.lstrip("\ufeff"))
    raw = io.BufferedReader(_LimitedStream(head, stream, max_bytes))
    if encoding == "utf-8":
        text: Iterable[str] = _decoded_lines(raw)
    else:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
    records = _CsvRecords(text, delimiter)
    return table(records, unit="line", max_rows=max_rows, strict_width=True)
