"""Hostile and broken upload files, built here rather than committed.

`CASES` lists every file with what the portal must answer: `refused` (a
fragment of the message the person sees; nothing stored) or `rows` (stored
completely, with that many rows). tests/uploads/test_hostile_uploads.py posts
each one through the upload page. Zip bombs and big files exist only in memory
while the test runs; `python tests/data/bad_uploads/make.py` writes the small
ones next to this script, to try by hand.
"""

from __future__ import annotations

import io
import random
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from connections.vin import check_digit

HERE = Path(__file__).resolve().parent
CANNOT_OPEN = "cannot be opened"


def vin(serial: int, prefix: str = "WVWZZZ1JZ0W") -> str:
    body = f"{prefix}{serial:06d}"
    return body[:8] + check_digit(body) + body[9:]


VW, VW2, SKODA = vin(1), vin(2), vin(3, "TMBJJ7NE0J0")


def csv_rows(count: int, start: int = 1) -> bytes:
    return b"VIN,Make\n" + b"".join(f"{vin(n)},Volkswagen\n".encode() for n in range(start, count))


# --- .xlsx parts -------------------------------------------------------------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"

CONTENT_TYPES = (
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'
)
PACKAGE = (
    f'<?xml version="1.0"?><Relationships xmlns="{PACKAGE_RELS}"><Relationship Id="rId1" '
    f'Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{RELS}"><sheets>'
    '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    f'<?xml version="1.0"?><Relationships xmlns="{PACKAGE_RELS}">'
    f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)

Part = str | bytes | Callable[[], Iterable[bytes]]


def sheet(rows: str) -> str:
    return (
        f'<?xml version="1.0"?><worksheet xmlns="{MAIN}"><sheetData>{rows}</sheetData></worksheet>'
    )


SHEET_TAIL = "</sheetData></worksheet>"
SHEET_HEAD = sheet("").removesuffix(SHEET_TAIL)


def inline(reference: str, text: str) -> str:
    return f'<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>'


def vin_sheet(extra: str = "") -> str:
    return sheet(
        f'<row r="1">{inline("A1", "VIN")}{inline("B1", "Make")}</row>'
        f'<row r="2">{inline("A2", VW)}{inline("B2", "Volkswagen")}</row>{extra}'
    )


def strings(*texts: str) -> str:
    items = "".join(f"<si><t>{t}</t></si>" for t in texts)
    return f'<?xml version="1.0"?><sst xmlns="{MAIN}">{items}</sst>'


def xlsx(sheet_xml: Part, shared: Part | None = None, parts: dict | None = None) -> bytes:
    """A workbook of these parts; `parts` replaces or (with None) removes others."""
    members: dict[str, Part | None] = {
        "[Content_Types].xml": CONTENT_TYPES,
        "_rels/.rels": PACKAGE,
        "xl/workbook.xml": WORKBOOK,
        "xl/_rels/workbook.xml.rels": WORKBOOK_RELS,
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    if shared is not None:
        members["xl/sharedStrings.xml"] = shared
    members.update(parts or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, part in members.items():
            if part is None:
                continue
            with archive.open(name, "w", force_zip64=callable(part)) as member:
                chunks = part() if callable(part) else [part]
                for chunk in chunks:
                    member.write(chunk.encode() if isinstance(chunk, str) else chunk)
    return out.getvalue()


def repeated(head: str, body: bytes, times: int, tail: str) -> Callable[[], Iterable[bytes]]:
    def chunks() -> Iterable[bytes]:
        yield head.encode()
        block = body * max(1, (1 << 20) // len(body))
        for _ in range(times * len(body) // len(block)):
            yield block
        yield tail.encode()

    return chunks


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new)


def lying_sizes(data: bytes) -> bytes:
    """The sheet's stated unpacked size set to 10 bytes in both headers."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = -1
        while (at := data.find(signature, at + 1)) >= 0:
            name_at = at + (46 if signature == b"PK\x01\x02" else 30)
            if data[name_at : name_at + len(info.filename)] == info.filename.encode():
                out[at + offset : at + offset + 4] = (10).to_bytes(4, "little")
    return bytes(out)


def unknown_compression(data: bytes) -> bytes:
    out = bytearray(data)
    for signature, offset in ((b"PK\x01\x02", 10), (b"PK\x03\x04", 8)):
        at = -1
        while (at := data.find(signature, at + 1)) >= 0:
            out[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    return bytes(out)


def real_xlsx() -> bytes:
    return xlsx(vin_sheet())


# --- the cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    refused: str = ""
    rows: int = 0
    small: bool = True  # written to disk by `main()`


UTF8_SKODA = f"VIN,Make,Registration plate\n{SKODA},Škoda,ŠK 123\n".encode()
XXE = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c t="inlineStr"><is><t>&e;</t></is>'
    "</c></row></sheetData></worksheet>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lololololol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f']><sst xmlns="{MAIN}"><si><t>&lol9;</t></si></sst>'
)

CASES: list[Case] = [
    # CSV and text
    Case("empty.csv", lambda: b"", refused="empty"),
    Case("whitespace-only.csv", lambda: b" \r\n\t\n\n", refused="no rows"),
    Case("bom-only.csv", lambda: b"\xef\xbb\xbf", refused="no rows"),
    Case("header-only.csv", lambda: b"VIN,Make,Country\r\n", refused="No VINs were found"),
    Case("separators-only.csv", lambda: b",,,,\n;;;;\n\t\t\n", refused="No VIN column"),
    Case(
        "binary.csv",
        lambda: bytes(random.Random(12).randrange(256) for _ in range(20_000)),
        refused="No VIN column",
    ),
    Case("nul-bytes.csv", lambda: f"VIN,Make\n{VW},Volks\0wagen\n{VW2},VW\n".encode(), rows=2),
    Case("all-nul.csv", lambda: b"\0" * 5000, refused="no rows"),
    Case("utf16le-no-bom.csv", lambda: f"VIN\tMake\n{VW}\tVW\n".encode("utf-16-le"), rows=1),
    Case("utf16be-no-bom.csv", lambda: f"VIN;Make\n{VW};VW\n".encode("utf-16-be"), rows=1),
    Case("utf16-odd-length.csv", lambda: f"VIN\n{VW}\n".encode("utf-16") + b"\x00", rows=2),
    Case("mixed-delimiters.csv", lambda: f"VIN,Make\n{VW};VW\n{VW2}\tVW\n".encode(), rows=2),
    Case(
        "quoted-newlines.csv",
        lambda: f'VIN,Make,Tags\n{VW},VW,"depot=North\nteam=A"\n{VW2},VW,x\n'.encode(),
        rows=2,
    ),
    Case("unclosed-quote.csv", lambda: f'VIN,Make\n{VW},"VW\n{VW2},VW\n'.encode(), rows=2),
    Case(
        "formula-cells.csv",
        lambda: (
            f'VIN,Make,Plate\n{VW},=cmd|"/c calc"!A1,+1+1\n@SUM(1),-2,=HYPERLINK("x")\n'.encode()
        ),
        rows=2,
    ),
    Case("rtl-override.csv", lambda: f"VIN,Make\n\u202e{VW}\u202c,VW\n".encode(), rows=1),
    Case(
        "lookalike-digits.csv",
        # Arabic-Indic and full-width digits, Cyrillic O for Latin O.
        lambda: (
            f"VIN,Make\n{VW[:-3]}\u0661\u0662\u0663,VW\n{VW[:-3]}\uff11\uff12\uff13,VW\n"
            "WVWZZZ1JZ0W0\u041e\u041e001,VW\n"
        ).encode(),
        rows=3,
    ),
    Case("utf8-stray-cp1252-early.csv", lambda: UTF8_SKODA + b"WVW,Citro\xebn,x\n", rows=2),
    Case(
        "utf8-stray-cp1252-late.csv",
        lambda: UTF8_SKODA + csv_rows(3000)[9:] + b"WVW,Citro\xebn,x\n",
        rows=3001,
    ),
    Case("cp1252-undefined-byte.csv", lambda: f"VIN,Plate\n{VW},AB\x81C\n".encode(), rows=1),
    Case("utf8-and-cp1252-one-line.csv", lambda: UTF8_SKODA[:-1] + b"\xe9\n", rows=1),
    Case("pure-cp1252.csv", lambda: f"VIN;Make\n{VW};Citroën\n".encode("cp1252"), rows=1),
    Case(
        "html-error-page.csv",
        lambda: b"<html><body>502 Bad Gateway</body></html>\n",
        refused="No VIN column",
    ),
    Case(
        "one-long-line.csv",
        lambda: b"VIN," + b"x" * 3_000_000,
        refused="No VIN column",
        small=False,
    ),
    Case(
        "too-many-rows.csv", lambda: csv_rows(50_002), refused="more than 50,000 rows", small=False
    ),
    Case(
        "too-big.csv",
        lambda: b"VIN\n" + b"A" * (10 * 1024 * 1024),
        refused="the limit is 10 MB",
        small=False,
    ),
    Case("csv-named.xlsx", lambda: f"VIN\n{VW}\n".encode(), refused="not an Excel workbook"),
    Case("xlsx-named.csv", real_xlsx, rows=1),
    Case(
        "xls-named.xlsx", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500, refused=".xls"
    ),
    # .xlsx, broken
    Case("empty.xlsx", lambda: b"", refused="empty"),
    Case("truncated.xlsx", lambda: real_xlsx()[:300], refused=CANNOT_OPEN),
    Case(
        "zip-of-text.xlsx", lambda: xlsx("x", parts={"xl/workbook.xml": None}), refused=CANNOT_OPEN
    ),
    Case("broken-sheet-xml.xlsx", lambda: xlsx(vin_sheet()[:-20]), refused=CANNOT_OPEN),
    Case(
        "broken-workbook-xml.xlsx",
        lambda: xlsx(vin_sheet(), parts={"xl/workbook.xml": "<workbook"}),
        refused=CANNOT_OPEN,
    ),
    Case("xxe.xlsx", lambda: xlsx(XXE), refused=CANNOT_OPEN),
    Case("billion-laughs.xlsx", lambda: xlsx(vin_sheet(), LAUGHS), refused=CANNOT_OPEN),
    Case(
        "cell-reference-ZZZZ9.xlsx",
        lambda: xlsx(vin_sheet(f'<row r="9">{inline("ZZZZ9", VW2)}</row>')),
        refused=CANNOT_OPEN,
    ),
    Case(
        "row-number-abc.xlsx",
        lambda: xlsx(vin_sheet(f'<row r="abc">{inline("A3", VW2)}</row>')),
        refused=CANNOT_OPEN,
    ),
    Case(
        "shared-string-out-of-range.xlsx",
        lambda: xlsx(vin_sheet('<row r="3"><c r="A3" t="s"><v>7</v></c></row>'), strings("VIN")),
        refused=CANNOT_OPEN,
    ),
    Case("unknown-compression.xlsx", lambda: unknown_compression(real_xlsx()), refused=CANNOT_OPEN),
    Case(
        "no-sheets.xlsx",
        lambda: xlsx(
            vin_sheet(),
            parts={
                "xl/workbook.xml": WORKBOOK.replace(
                    '<sheet name="Sheet1" sheetId="1" r:id="rId1"/>', ""
                )
            },
        ),
        refused="no sheets",
    ),
    # .xlsx, hostile: bounded by what it holds, not by its compressed size
    Case(
        "sparse-row-40-million.xlsx",
        lambda: xlsx(vin_sheet(f'<row r="40000000">{inline("A40000000", VW2)}</row>')),
        refused="row 40,000,000",
    ),
    Case(
        "sparse-row-1-million.xlsx",
        lambda: xlsx(vin_sheet(f'<row r="1048000">{inline("A1048000", VW2)}</row>')),
        rows=2,
    ),
    Case(
        "wide-rows-18278-columns.xlsx",
        lambda: xlsx(
            sheet('<row r="1">' + '<c t="inlineStr"><is><t>VIN</t></is></c>' * 18_278 + "</row>")
        ),
        refused="at most 1,000 columns",
    ),
    Case(
        "shared-string-100-MB.xlsx",
        lambda: xlsx(
            vin_sheet(),
            repeated(f'<sst xmlns="{MAIN}"><si><t>', b"A", 100 << 20, "</t></si></sst>"),
        ),
        refused="unpacks to more than 100 MB",
        small=False,
    ),
    Case(
        "shared-string-60-MB.xlsx",
        lambda: xlsx(
            vin_sheet(),
            repeated(f'<sst xmlns="{MAIN}"><si><t>', b"A", 60 << 20, "</t></si></sst>"),
        ),
        refused="more than 32,767 characters",
        small=False,
    ),
    Case(
        "shared-strings-3-million.xlsx",
        lambda: xlsx(
            vin_sheet(),
            repeated(f'<sst xmlns="{MAIN}">', b"<si><t>a</t></si>", 3_000_000, "</sst>"),
        ),
        refused="different texts",
        small=False,
    ),
    Case(
        "zip-bomb-sheet.xlsx",
        lambda: xlsx(repeated(SHEET_HEAD, b" " * 64, 2_000_000, SHEET_TAIL)),
        refused="unpacks to more than 100 MB",
        small=False,
    ),
    Case(
        "zip-bomb-lying-header.xlsx",
        lambda: lying_sizes(xlsx(repeated(SHEET_HEAD, b" " * 64, 400_000, SHEET_TAIL))),
        refused=CANNOT_OPEN,
        small=False,
    ),
    Case(
        "many-cells.xlsx",
        lambda: xlsx(
            repeated(
                SHEET_HEAD,
                b"<row><c/><c/><c/><c/><c/><c/><c/><c/><c/><c/></row>",
                300_000,
                SHEET_TAIL,
            )
        ),
        refused="cells. Keep only the VIN columns",
        small=False,
    ),
    Case(
        "element-flood.xlsx",
        lambda: xlsx(repeated(SHEET_HEAD, b"<x/>", 20_000_000, SHEET_TAIL)),
        refused="took longer than",
        small=False,
    ),
    # .xlsx, odd but readable
    Case(
        "formula-cells.xlsx",
        lambda: xlsx(
            vin_sheet(
                f'<row r="3"><c r="A3" t="str"><f>A2</f><v>{VW2}</v></c>'
                '<c r="B3" t="inlineStr"><is><t>=1+1</t></is></c></row>'
            )
        ),
        rows=2,
    ),
    Case(
        "rich-text-and-phonetic.xlsx",
        lambda: xlsx(
            vin_sheet('<row r="3"><c r="A3" t="s"><v>1</v></c></row>'),
            strings(
                "VIN", f"<r><t>{VW2[:5]}</t></r><r><t>{VW2[5:]}</t></r><rPh><t>ignored</t></rPh>"
            ),
        ),
        rows=2,
    ),
    Case(
        "prefixed-namespace.xlsx",
        lambda: xlsx(
            vin_sheet()
            .replace("<worksheet xmlns=", "<x:worksheet xmlns:x=")
            .replace("<sheetData>", "<x:sheetData>")
            .replace("</sheetData></worksheet>", "</x:sheetData></x:worksheet>")
            .replace("<row ", "<x:row ")
            .replace("</row>", "</x:row>")
            .replace("<c ", "<x:c ")
            .replace("</c>", "</x:c>")
            .replace("<is>", "<x:is>")
            .replace("</is>", "</x:is>")
            .replace("<t>", "<x:t>")
            .replace("</t>", "</x:t>")
        ),
        rows=1,
    ),
]


def main() -> None:
    for case in CASES:
        if case.small:
            (HERE / case.name).write_bytes(case.build())


if __name__ == "__main__":
    main()
