"""Reading uploads: CSV (encodings, separators, headers), .xlsx, pasted text, limits,
malformed rows, and the invalid-rows download (connections.uploads)."""

import codecs
import csv
import io
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from connections.csv_files import csv_safe
from connections.models import Region, VinEntry, VinStatus
from connections.uploads.csv_reader import read_csv
from connections.uploads.exports import invalid_rows_csv
from connections.uploads.reading import read_pasted, read_upload
from connections.uploads.rows import FIELDS, ImportProblem, RawRow, column_for_header
from connections.uploads.validation import validate_rows
from connections.uploads.xlsx_reader import read_xlsx
from connections.vin import check_digit

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"


def vin(body: str) -> str:
    return body[:8] + check_digit(body) + body[9:]


VW = vin("WVGZZZE2ZMP012345")
TESLA = vin("5YJ3E1EA7KF000001")
BMW = vin("WBY71AW050FM20581")


def rows_of(data: bytes | str, filename: str = "fleet.csv", **limits) -> list[RawRow]:
    return list(read_upload(data, filename=filename, **limits))


def fields(row: RawRow, *names: str) -> tuple[str, ...]:
    return tuple(row.fields[name] for name in names)


def validated(rows, **kwargs):
    return list(
        validate_rows(
            rows,
            default_country=kwargs.get("default_country", "GB"),
            default_region=Region.EUROPE,
            existing_vins=kwargs.get("existing", {}),
        )
    )


# --- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "field"),
    [
        ("VIN", "vin"),
        ("vin", "vin"),
        ("Vehicle Identification Number", "vin"),
        ("Make", "make"),
        ("Brand", "make"),
        ("MANUFACTURER", "make"),
        ("Country", "country_code"),
        ("Country Code", "country_code"),
        ("country_code", "country_code"),
        ("countryCode", "country_code"),
        ("Registration Plate", "registration_plate"),
        ("registrationPlate", "registration_plate"),
        ("Plate", "registration_plate"),
        ("License Plate", "registration_plate"),
        ("Licence Plate", "registration_plate"),
        ("Registration", "registration_plate"),
        ("Model", "model"),
        ("Model Year", "model_year"),
        ("modelYear", "model_year"),
        ("Year", "model_year"),
        ("Tags", "tags"),
    ],
)
def test_header_aliases(heading, field):
    assert column_for_header(f"  {heading} ") == field
    if field == "vin":
        text, expected = f"{heading},Make\n{VW},VW\n", VW
    else:
        text, expected = f"VIN,{heading}\n{VW},X\n", "X"
    (row,) = rows_of(text.encode())
    assert row.fields[field] == expected
    assert row.problems == ()


def test_unknown_columns_are_ignored_and_every_field_is_present():
    (row,) = rows_of(f"Driver,VIN,Notes\nAda,{VW},company car\n".encode())
    assert set(row.fields) == set(FIELDS)
    assert row.fields["vin"] == VW
    assert row.fields["make"] == ""


def test_file_without_vin_column_names_the_columns_it_found():
    with pytest.raises(ImportProblem) as caught:
        rows_of(b"Kennzeichen,Marke\nB-AB 1,VW\n")
    message = str(caught.value)
    assert "No VIN column" in message
    assert "'Kennzeichen', 'Marke'" in message
    assert "VIN" in message


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", codecs.BOM_UTF8 + b"\r\n"])
def test_empty_file(data):
    with pytest.raises(ImportProblem, match="no rows"):
        rows_of(data)


def test_headerless_file_of_vins():
    rows = rows_of(f"{VW}\n{TESLA},Tesla,US\n\n{BMW};BMW;DE\n".encode(), "vins.csv")
    assert [r.line_number for r in rows] == [1, 2, 4]
    assert fields(rows[0], "vin", "make", "country_code") == (VW, "", "")
    assert fields(rows[1], "vin", "make", "country_code") == (TESLA, "Tesla", "US")
    # A different separator than the rest of the file is not a separator here.
    assert rows[2].fields["vin"] == f"{BMW};BMW;DE"


def test_line_numbers_are_physical_lines():
    text = f'VIN,Make,Model\n\n{VW},VW,"ID.4\nPro"\n\n{TESLA},Tesla,Model 3\n'
    rows = rows_of(text.encode())
    assert [r.line_number for r in rows] == [3, 6]
    assert rows[0].fields["model"] == "ID.4\nPro"
    assert rows[0].problems == ()


# --- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),  # with the platform's BOM
        lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        lambda text: text.encode("utf-16-le"),  # no BOM
        lambda text: text.encode("cp1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16le-bom", "utf16be-bom", "utf16le-nobom", "cp1252"],
)
def test_encodings(encode, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(encode(f"VIN,Make,Model\n{VW},Citroën,Zoé €\n"))
    with path.open("rb") as handle:
        (row,) = list(read_upload(handle, filename=path.name))
    assert fields(row, "vin", "make", "model") == (VW, "Citroën", "Zoé €")
    assert row.line_number == 2


def test_stray_windows_byte_after_the_sniffed_sample_is_still_read():
    filler = "".join(f"{vin(f'WVGZZZE2ZMP{n:06d}')},VW,Golf\n" for n in range(4000))
    data = b"VIN,Make,Model\n" + filler.encode() + f"{TESLA},Tesla,".encode() + b"Mod\xe9le\n"
    assert len(data) > 64 * 1024
    rows = rows_of(data)
    assert rows[-1].fields["model"] == "Modéle"
    assert rows[-1].line_number == 4002


# --- separators -----------------------------------------------------------------------------


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_separators(separator):
    header = separator.join(["VIN", "Make", "Country", "Plate", "Model", "Model year", "Tags"])
    other = ";" if separator == "," else ","
    tags = f'"depot=Leeds{other}cc=42"' if separator == other else "depot=Leeds"
    line = separator.join([VW, "VW", "DE", "B AB 1", f"ID.4{other} Pro", "2021", tags])
    (row,) = rows_of(f"{header}\n{line}\n".encode())
    expected = (VW, "VW", "DE", "B AB 1", f"ID.4{other} Pro", "2021", tags, "")
    assert fields(row, *FIELDS) == expected
    assert row.problems == ()


def test_comma_file_with_semicolon_tags_keeps_commas():
    text = f"VIN,Make,Tags\n{VW},VW,depot=Leeds;cc=42;team=blue\n{BMW},BMW,a=1;b=2\n"
    rows = rows_of(text.encode())
    assert [r.fields["tags"] for r in rows] == ["depot=Leeds;cc=42;team=blue", "a=1;b=2"]


def test_quoted_cells_and_crlf():
    text = f'"VIN","Make","Model"\r\n"{VW}","VW","Golf, ""GTE"""\r\n'
    (row,) = rows_of(text.encode())
    assert fields(row, "vin", "model") == (VW, 'Golf, "GTE"')


# --- malformed rows -------------------------------------------------------------------------


def test_unclosed_quote_is_reported_and_the_next_lines_still_read():
    text = f'VIN,Make,Country\n{VW},"VW,DE\n{TESLA},Tesla,US\n{BMW},BMW,DE\n'
    rows = rows_of(text.encode())
    assert [r.line_number for r in rows] == [2, 3, 4]
    assert rows[0].fields["vin"] == VW
    assert rows[0].problems[0].startswith("Line 2: a double quote")
    assert rows[1].problems == rows[2].problems == ()
    (bad,) = [r for r in validated(rows) if r.status == VinStatus.INVALID]
    assert bad.line_number == 2
    assert bad.problems[0].startswith("Line 2:")


def test_text_after_a_closing_quote_is_reported():
    (row,) = rows_of(f'VIN,Make\n{VW},"VW"x\n'.encode())
    assert row.problems[0].startswith("Line 2: a value in double quotes")


def test_too_many_cells_is_reported():
    rows = rows_of(f"VIN,Make,Model\n{VW},VW,ID.4,Pro\n{TESLA},Tesla,3,,\n".encode())
    assert "Line 2 has 4 values but there are only 3 columns" in rows[0].problems[0]
    assert rows[0].fields["model"] == "ID.4"
    # Trailing empty cells are only trailing separators.
    assert rows[1].problems == ()


def test_too_few_cells_is_reported():
    rows = rows_of(f"VIN,Make,Country,Notes\n{VW},VW\n{TESLA},Tesla,US\n".encode())
    assert "Line 2 has 2 values but the header has 4 columns" in rows[0].problems[0]
    # Only an unnamed column is missing: nothing was lost.
    assert rows[1].problems == ()


def test_nul_byte_is_reported():
    (row,) = rows_of(f"VIN,Make\n{VW},V\0W\n".encode())
    assert "NUL" in row.problems[0]


# --- limits ---------------------------------------------------------------------------------


def test_row_limit_from_settings(settings):
    settings.UPLOAD_MAX_ROWS = 3
    text = "VIN\n" + "".join(f"{vin(f'WVGZZZE2ZMP{n:06d}')}\n" for n in range(3))
    assert len(rows_of(text.encode())) == 3
    with pytest.raises(ImportProblem) as caught:
        rows_of((text + f"{TESLA}\n").encode())
    assert str(caught.value) == "The file has more than 3 rows; split it and upload the parts."


def test_row_limit_message_uses_thousands_separators():
    text = "VIN\n" + f"{VW}\n" * 3
    with pytest.raises(ImportProblem, match="more than 2 rows"):
        rows_of(text.encode(), max_rows=2)
    with pytest.raises(ImportProblem, match="50,000 rows"):
        list(read_pasted(f"{VW}\n" * 50_001))


def test_byte_limit_from_settings_by_declared_size(settings):
    settings.UPLOAD_MAX_BYTES = 100
    upload = SimpleUploadedFile("fleet.csv", b"VIN\n" + f"{VW}\n".encode() * 10)
    with pytest.raises(ImportProblem, match="larger than 100 bytes"):
        read_upload(upload, filename=upload.name)


class Unsized(io.RawIOBase):
    """A stream that neither says its size nor seeks, like a socket; counts reads."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self._data.readinto(buffer)
        self.bytes_read += n
        return n


def test_byte_limit_while_reading_a_stream():
    data = b"VIN\n" + f"{VW}\n".encode() * 20_000
    with pytest.raises(ImportProblem, match="larger than"):
        list(read_csv(io.BufferedReader(Unsized(data)), max_bytes=200_000))
    with pytest.raises(ImportProblem, match="larger than"):
        read_upload(io.BufferedReader(Unsized(data)), filename="x.csv", max_bytes=200_000)


def test_pasted_text_byte_limit():
    with pytest.raises(ImportProblem, match="larger than 1 MB"):
        read_pasted(f"{VW}\n" * 100_000, max_bytes=1024 * 1024)


def test_csv_is_streamed_not_read_whole():
    data = b"VIN,Make\n" + f"{VW},VW\n".encode() * 50_000
    stream = Unsized(data)
    rows = read_csv(stream, max_rows=100_000, max_bytes=10_000_000)
    next(rows)
    assert stream.bytes_read < len(data) // 4
    assert sum(1 for _ in rows) == 49_999


# --- Excel ----------------------------------------------------------------------------------


def xlsx_bytes(*sheets: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    for index, rows in enumerate(sheets):
        sheet = workbook.active if index == 0 else workbook.create_sheet(f"Sheet{index + 1}")
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_first_sheet_with_excel_row_numbers():
    data = xlsx_bytes(
        [
            ["VIN", "Brand", "Country", "Licence plate", "Model", "Model year", "Tags"],
            [VW, "VW", "DE", "B AB 1", "ID.4", 2021, "depot=Berlin"],
            [],
            [None, None],
            [f" {TESLA} ", "Tesla", None, None, None, 2020.0, None],
        ],
        [["VIN"], [BMW]],
    )
    rows = rows_of(data, "fleet.xlsx")
    assert [r.line_number for r in rows] == [2, 5]
    assert fields(rows[0], *FIELDS) == (
        VW,
        "VW",
        "DE",
        "B AB 1",
        "ID.4",
        "2021",
        "depot=Berlin",
        "",
    )
    assert fields(rows[1], "vin", "model_year", "country_code") == (TESLA, "2020", "")
    assert all(r.problems == () for r in rows)


def test_xlsx_header_not_in_the_first_row_and_headerless():
    rows = rows_of(xlsx_bytes([[], [VW, "VW", "DE"], [TESLA]]), "vins.xlsx")
    assert [(r.line_number, r.fields["vin"], r.fields["make"]) for r in rows] == [
        (2, VW, "VW"),
        (3, TESLA, ""),
    ]


def test_xlsx_found_by_content_and_from_django_upload(tmp_path):
    data = xlsx_bytes([["VIN"], [VW]])
    assert rows_of(data, "upload.bin")[0].fields["vin"] == VW
    upload = SimpleUploadedFile("Fleet.XLSX", data)
    (row,) = read_upload(upload, filename=upload.name)
    assert row.fields["vin"] == VW


def test_xlsx_without_vin_column_and_limits():
    with pytest.raises(ImportProblem, match="'Plate'"):
        rows_of(xlsx_bytes([["Plate", "Make"], ["AB1", "VW"]]), "f.xlsx")
    with pytest.raises(ImportProblem, match="more than 2 rows"):
        rows_of(xlsx_bytes([["VIN"], [VW], [TESLA], [BMW]]), "f.xlsx", max_rows=2)
    rows = rows_of(xlsx_bytes([["VIN", "Make"], [VW, "VW", "extra"]]), "f.xlsx")
    assert "Row 2 has 3 values but there are only 2 columns" in rows[0].problems[0]


def test_broken_xlsx():
    with pytest.raises(ImportProblem, match="cannot be opened"):
        rows_of(b"PK\x03\x04 not really a zip", "fleet.xlsx")
    with pytest.raises(ImportProblem, match="cannot be opened"):
        list(read_xlsx(io.BytesIO(b"plain text")))


@pytest.mark.parametrize(
    ("data", "name"),
    [(b"anything", "Fleet.XLS"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "fleet.csv")],
)
def test_old_excel_files_are_refused_with_advice(data, name):
    with pytest.raises(ImportProblem) as caught:
        rows_of(data, name)
    assert ".xlsx" in str(caught.value) and "CSV" in str(caught.value)


# --- pasted text ----------------------------------------------------------------------------


def test_pasted_text():
    text = f"  {VW.lower()}  \n\n{TESLA},Tesla,US\n{BMW};BMW;de\nWBA 3A5C 51CF\t Mini\tGB\n"
    rows = list(read_upload(text))
    assert [r.line_number for r in rows] == [1, 3, 4, 5]
    assert fields(rows[0], "vin", "make") == (VW.lower(), "")
    assert fields(rows[1], "vin", "make", "country_code") == (TESLA, "Tesla", "US")
    assert fields(rows[2], "vin", "make", "country_code") == (BMW, "BMW", "de")
    assert fields(rows[3], "vin", "make", "country_code") == ("WBA 3A5C 51CF", "Mini", "GB")


def test_pasted_block_from_a_spreadsheet_with_header():
    rows = list(read_pasted(f"Make\tVIN\nVW\t{VW}\n"))
    assert fields(rows[0], "vin", "make") == (VW, "VW")
    assert rows[0].line_number == 2


def test_pasted_block_with_a_header_keeps_semicolons_inside_fields():
    """The header's delimiter holds for the whole block: the tags' `;` is data."""
    rows = list(read_pasted(f"VIN,Make,Country,Tags\n{VW},Volkswagen,DE,depot=Berlin;cc=D42\n"))
    assert fields(rows[0], "vin", "make", "country_code") == (VW, "Volkswagen", "DE")
    assert fields(rows[0], "tags") == ("depot=Berlin;cc=D42",)
    assert rows[0].problems == ()


def test_pasted_text_without_vins():
    with pytest.raises(ImportProblem, match="No VIN column"):
        list(read_pasted("hello\nworld\n"))
    with pytest.raises(ImportProblem, match="no rows"):
        list(read_pasted("  \n"))


def test_django_uploaded_files(tmp_path):
    data = f"VIN;Make\n{VW};VW\n".encode("utf-16")
    small = SimpleUploadedFile("fleet.csv", data)
    (row,) = read_upload(small, filename="fleet.csv")
    assert row.fields["make"] == "VW"
    big = TemporaryUploadedFile("fleet.csv", "text/csv", len(data), None)
    big.write(data)
    big.seek(0)
    try:
        (row,) = read_upload(big, filename=big.name)
        assert row.fields["vin"] == VW
    finally:
        big.close()


# --- sample files ---------------------------------------------------------------------------


def test_sample_semicolon_windows_file():
    with (DATA / "fleet-semicolon-cp1252.csv").open("rb") as handle:
        rows = list(read_upload(handle, filename="fleet-semicolon-cp1252.csv"))
    assert [r.line_number for r in rows] == [2, 3, 4]
    assert fields(rows[0], "make", "model", "model_year") == ("Citroën", "ë-C4", "2021")
    assert rows[1].fields["registration_plate"] == "B-ÄÖ 42"
    assert all(r.problems == () for r in rows)
    assert [r.status for r in validated(rows)] == [VinStatus.READY] * 3


def test_sample_utf16_tab_file():
    with (DATA / "fleet-utf16-tab.txt").open("rb") as handle:
        rows = list(read_upload(handle, filename="fleet-utf16-tab.txt"))
    assert fields(rows[0], "make", "country_code", "registration_plate", "tags") == (
        "Škoda",
        "CZ",
        "7AB 3912",
        "depot=Brno",
    )
    checked = validated(rows)
    assert [r.make for r in checked] == ["SKODA", "MERCEDES BENZ"]
    assert checked[0].tags == [{"key": "depot", "value": "Brno"}]


def test_sample_headerless_vin_list():
    rows = list(read_upload((DATA / "vins-only.txt").read_bytes(), filename="vins-only.txt"))
    checked = validated(rows)
    assert [(r.line_number, r.make, r.make_inferred) for r in checked] == [
        (1, "TESLA", True),
        (2, "BMW", False),
        (4, "KIA", False),
    ]
    assert [r.status for r in checked] == [VinStatus.READY] * 3


def test_demo_csv_parses_with_the_expected_counts():
    with (ROOT / "docs" / "demo-vins.csv").open("rb") as handle:
        rows = validated(read_upload(handle, filename="demo-vins.csv"))
    assert len(rows) == 30
    assert Counter(r.status for r in rows) == {
        VinStatus.READY: 25,
        VinStatus.INVALID: 4,
        VinStatus.SKIPPED: 1,
    }
    assert Counter(r.validity for r in rows)[VinEntry.Validity.WARNING] == 1
    assert sum(r.sandbox_test for r in rows) == 4
    assert sum(r.make_inferred for r in rows) == 1
    assert sum(bool(r.registration_plate) for r in rows) == 25
    invalid = {r.vin[:3]: r.problems[0] for r in rows if r.status == VinStatus.INVALID}
    assert "check digit" in invalid["1FA"]
    assert "letter O" in invalid["WVW"]
    assert "Europe only" in invalid["KND"]
    assert "'Dacia'" in invalid["UU1"]


# --- invalid rows download ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 555", "'+1 555"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("B-AB 1", "B-AB 1"),
        ("", ""),
        (None, ""),
        (2021, "2021"),
    ],
)
def test_csv_safe(value, safe):
    assert csv_safe(value) == safe


def test_invalid_rows_csv_round_trip():
    text = (
        "VIN,Make,Country,Plate,Model,Model year,Tags\n"
        f"{VW},VW,DE,=cmd|' /C calc'!A0,ID.4,2021,depot=Leeds\n"
        f"{TESLA},Dacia,US,-12,+Model,2020,@x=1\n"
        f"WVWZZZ1KZ8WO12345,VW,Narnia,,,,\n"
    )
    checked = validated(rows_of(text.encode()))
    assert [r.status for r in checked] == [VinStatus.READY, VinStatus.INVALID, VinStatus.INVALID]
    out = invalid_rows_csv(checked)
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == [
        "VIN",
        "Make",
        "Country",
        "Registration plate",
        "Model",
        "Model year",
        "Tags",
        "Owner's e-mail",
        "Problem",
        "Original line",
    ]
    assert [row[0] for row in table[1:]] == [TESLA, "WVWZZZ1KZ8WO12345"]
    assert table[1][1:8] == ["Dacia", "US", "'-12", "'+Model", "2020", "'@x=1", ""]
    assert "'Dacia' is not a make" in table[1][8]
    assert table[1][9] == "3"
    assert "letter O" in table[2][8] and "'Narnia'" in table[2][8]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)

    # Fixed or not, the file can be uploaded again as it is.
    again = rows_of(out.encode("utf-8-sig"), "invalid.csv")
    assert [r.line_number for r in again] == [2, 3]
    assert fields(again[0], "vin", "make", "registration_plate", "model", "tags") == (
        TESLA,
        "Dacia",
        "-12",
        "+Model",
        "@x=1",
    )
    assert all(r.problems == () for r in again)


def test_invalid_rows_csv_from_vin_entries(fleet, manager):
    from connections.models import Upload

    upload = Upload.objects.create(fleet=fleet, created_by=manager)
    for row in validated(rows_of(f"VIN,Make\n{VW},VW\n{TESLA},Dacia\n".encode())):
        VinEntry.objects.create(upload=upload, fleet=fleet, **row.entry_fields())
    table = list(csv.reader(io.StringIO(invalid_rows_csv(upload.entries.all()))))
    assert len(table) == 2
    assert table[1][:3] == [TESLA, "Dacia", "GB"]
