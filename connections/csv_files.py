"""CSV for people: formula-safe cells (`csv_safe`), whole files (`csv_text`) and
streamed downloads (`stream_csv`), the one place the portal writes CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a UTF-8 file as UTF-8 only when it starts with a byte order mark.
BOM = "\ufeff"


def csv_safe(value: Any) -> str:
    """A cell value that spreadsheet programs will not run as a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file whose `write` hands back what it was given: one CSV line at a time."""

    def write(self, value: str) -> str:
        return value


def csv_lines(
    header: Iterable[Any], rows: Iterable[Iterable[Any]], **dialect: Any
) -> Iterable[str]:
    """The header and rows as CSV lines, one at a time, the first with a BOM
    (`dialect`: the csv writer's format options, its defaults otherwise)."""
    writer = csv.writer(_Echo(), **dialect)
    yield BOM + writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def stream_csv(
    filename: str, header: Iterable[Any], rows: Iterable[Iterable[Any]], **dialect: Any
) -> StreamingHttpResponse:
    """A download of any length in bounded memory: rows are written as they come."""
    response = StreamingHttpResponse(
        csv_lines(header, rows, **dialect), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A small CSV file as text (no BOM: for mail merges and plain tools)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
