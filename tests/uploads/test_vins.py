"""VIN checks, makes and the row validator (vin, countries, makes, uploads.validation)."""

import json
import time
import tracemalloc

import pytest
import time_machine

from connections.countries import normalise_country
from connections.makes import (
    EUROPE_ONLY_MAKES,
    MAKES,
    MAKES_NEEDING_REGION,
    make_from_vin,
    make_label,
    normalise_make,
)
from connections.models import Region, VinEntry, VinStatus
from connections.uploads.rows import RawRow
from connections.uploads.validation import parse_tags, validate_rows
from connections.vin import SANDBOX_TEST_PREFIXES, check_digit, check_vin, normalise_vin
from tests.contract import SPEC_PATH


def with_check_digit(vin: str) -> str:
    return vin[:8] + check_digit(vin) + vin[9:]


def wrong_check_digit(vin: str) -> str:
    right = check_digit(vin)
    return vin[:8] + ("1" if right != "1" else "2") + vin[9:]


CONTRACT = SPEC_PATH
VW = with_check_digit("WVGZZZE2ZMP012345")
TESLA_US = with_check_digit("5YJ3E1EA7KF000001")
BMW = with_check_digit("WBY71AW050FM20581")
KIA = with_check_digit("KNACC81GFM5012345")
OPEL = with_check_digit("W0L0ZCF6881234567")
MINI = with_check_digit("WMW21DH080TH93001")


def validate(*rows, default_country="GB", default_region=Region.EUROPE, existing=None):
    """Validate rows given as field dicts, or (fields, reader problem) pairs, from line 2."""
    raw = []
    for line, row in enumerate(rows, start=2):
        fields, problems = (row, ()) if isinstance(row, dict) else (row[0], row[1:])
        raw.append(RawRow(line, fields, tuple(problems)))
    return list(
        validate_rows(
            raw,
            default_country=default_country,
            default_region=default_region,
            existing_vins=existing or {},
        )
    )


# --- makes -----------------------------------------------------------------------------------


def test_makes_are_the_contracts_make_enum():
    contract = json.loads(CONTRACT.read_text())
    enum = contract["components"]["schemas"]["MakeEnum"]["enum"]
    assert list(MAKES) == enum
    assert "MERCEDES BENZ" in MAKES
    assert {"BMW", "MINI"} == MAKES_NEEDING_REGION
    assert {"HYUNDAI", "KIA"} == EUROPE_ONLY_MAKES


@pytest.mark.parametrize(
    ("text", "make"),
    [
        ("Mercedes-Benz", "MERCEDES BENZ"),
        ("MERCEDES_BENZ", "MERCEDES BENZ"),
        ("mercedes", "MERCEDES BENZ"),
        ("MB", "MERCEDES BENZ"),
        ("Merc", "MERCEDES BENZ"),
        ("VW", "VOLKSWAGEN"),
        ("volkswagen", "VOLKSWAGEN"),
        ("Citroën", "CITROEN"),
        ("CITROEN", "CITROEN"),
        ("Alfa", "ALFA ROMEO"),
        ("alfa-romeo", "ALFA ROMEO"),
        ("DS", "DS AUTOMOBILES"),
        ("Škoda", "SKODA"),
        ("skoda", "SKODA"),
        ("Seat", "SEAT"),
        ("Mini", "MINI"),
        ("  bmw ", "BMW"),
        ("Tesla", "TESLA"),
        ("Kia Motors", "KIA"),
    ],
)
def test_normalise_make_accepts_common_spellings(text, make):
    assert normalise_make(text) == make


@pytest.mark.parametrize("text", ["", None, "Dacia", "Rivian", "V W X"])
def test_normalise_make_rejects_unsupported(text):
    assert normalise_make(text) is None


def test_every_make_normalises_to_itself_and_has_a_label():
    for make in MAKES:
        assert normalise_make(make) == make
        assert normalise_make(make_label(make)) == make


def test_make_from_vin_uses_the_manufacturer_code():
    assert make_from_vin(VW) == "VOLKSWAGEN"
    assert make_from_vin(TESLA_US) == "TESLA"
    assert make_from_vin("WMW21DH080TH93001") == "MINI"
    assert make_from_vin("W1N2437011J338810") == "MERCEDES BENZ"
    # Shared by two supported makes, or unknown: the VIN alone cannot say.
    assert make_from_vin(OPEL) is None
    assert make_from_vin("ZFA3120000J123456") is None
    assert make_from_vin("1HGCM82633A004352") is None


# --- single VINs ----------------------------------------------------------------------------


def test_normalise_vin_trims_upper_cases_and_removes_separators():
    assert normalise_vin("  wvg zzz-e2z mp0 12345 ") == "WVGZZZE2ZMP012345"
    assert normalise_vin("WVG\u2013ZZZ") == "WVGZZZ"
    assert normalise_vin(None) == ""


def test_check_digit_of_a_known_vin():
    assert check_digit("1HGCM82633A004352") == "3"
    assert check_digit("11111111111111111") == "1"
    assert check_vin("1HGCM82633A004352").validity == VinEntry.Validity.VALID


def test_check_digit_x_for_remainder_ten():
    vin = "1M8GDM9AXKP042788"
    assert check_digit(vin) == "X"
    assert check_vin(vin).validity == VinEntry.Validity.VALID


def test_north_american_check_digit_is_enforced():
    for first in "12345":
        vin = wrong_check_digit(first + TESLA_US[1:])
        check = check_vin(vin)
        assert check.validity == VinEntry.Validity.INVALID
        assert "check digit" in check.errors[0]


def test_check_digit_elsewhere_is_only_a_warning():
    vin = wrong_check_digit(VW)
    check = check_vin(vin)
    assert check.validity == VinEntry.Validity.WARNING
    assert check.is_valid
    assert "9th character" in check.warnings[0]
    assert check_vin(VW).validity == VinEntry.Validity.VALID


@pytest.mark.parametrize(("letter", "digit"), [("I", "1"), ("O", "0"), ("Q", "0")])
def test_letters_i_o_q_are_invalid(letter, digit):
    vin = VW[:12] + letter + VW[13:]
    check = check_vin(vin)
    assert check.validity == VinEntry.Validity.INVALID
    assert f"letter {letter}" in check.errors[0]
    assert f"digit {digit}" in check.errors[0]


def test_length_and_alphabet():
    assert "16 characters" in check_vin(VW[:16]).errors[0]
    assert "18 characters" in check_vin(VW + "1").errors[0]
    assert "'#'" in check_vin(VW[:16] + "#").errors[0]
    assert "no VIN" in check_vin("").errors[0]


@pytest.mark.parametrize("prefix", SANDBOX_TEST_PREFIXES)
def test_sandbox_test_vins_validate_even_with_a_wrong_check_digit(prefix):
    vin = (prefix + "ABCDEFGH1234567890")[:17]
    vin = wrong_check_digit(vin)
    check = check_vin(vin)
    assert check.sandbox_test
    assert check.validity == VinEntry.Validity.VALID


def test_sandbox_prefix_still_needs_seventeen_characters():
    assert check_vin("PERR0R11000").validity == VinEntry.Validity.INVALID


# --- countries and tags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("DE", "DE"),
        ("de", "DE"),
        (" fr ", "FR"),
        ("UK", "GB"),
        ("GBR", "GB"),
        ("Germany", "DE"),
        ("United Kingdom", "GB"),
        ("the Netherlands", "NL"),
        ("USA", "US"),
        ("España", "ES"),
    ],
)
def test_normalise_country(text, code):
    assert normalise_country(text) == code


@pytest.mark.parametrize("text", ["XX", "Narnia", "D", "EUR"])
def test_unknown_country(text):
    assert normalise_country(text) is None


def test_parse_tags():
    assert parse_tags(" depot = Leeds ; cost-centre=42;; ") == (
        [{"key": "depot", "value": "Leeds"}, {"key": "cost-centre", "value": "42"}],
        [],
    )
    assert parse_tags("empty=") == ([{"key": "empty", "value": ""}], [])
    tags, errors = parse_tags("depot=Leeds;urgent")
    assert tags == [{"key": "depot", "value": "Leeds"}]
    assert "'urgent'" in errors[0] and "key=value" in errors[0]
    assert "too long" in parse_tags("k=" + "v" * 151)[1][0]


# --- rows -----------------------------------------------------------------------------------


def test_a_complete_valid_row():
    (row,) = validate(
        {
            "vin": f" {VW[:3].lower()}-{VW[3:9]} {VW[9:]} ",
            "make": "vw",
            "country_code": "de",
            "registration_plate": "  B-FP   1021 ",
            "model": "ID.4",
            "model_year": "2021",
            "tags": "depot=Berlin",
        }
    )
    assert row.vin == VW
    assert row.make == "VOLKSWAGEN"
    assert not row.make_inferred
    assert row.country_code == "DE"
    assert row.region == Region.EUROPE
    assert row.registration_plate == "B-FP 1021"
    assert row.model == "ID.4"
    assert row.model_year == 2021
    assert row.tags == [{"key": "depot", "value": "Berlin"}]
    assert row.validity == VinEntry.Validity.VALID
    assert row.problems == []
    assert row.status == VinStatus.READY
    assert row.line_number == 2


def test_entry_fields_build_a_vin_entry(fleet, manager):
    from connections.models import Upload

    (row,) = validate({"vin": VW, "make": "VW"})
    upload = Upload.objects.create(fleet=fleet, created_by=manager)
    entry = VinEntry.objects.create(upload=upload, fleet=fleet, **row.entry_fields())
    entry.refresh_from_db()
    assert (entry.vin, entry.make, entry.status) == (VW, "VOLKSWAGEN", VinStatus.READY)
    assert entry.country_code == "GB"


def test_entry_fields_fit_the_columns_even_for_junk():
    (row,) = validate({"vin": "X" * 100, "make": "M" * 60, "registration_plate": "P" * 40})
    fields = row.entry_fields()
    assert row.status == VinStatus.INVALID
    assert len(fields["raw_vin"]) == 64 and len(fields["vin"]) == 64
    assert len(fields["make"]) == 40
    assert len(fields["registration_plate"]) == 32


def test_make_inferred_from_the_vin():
    (row,) = validate({"vin": VW})
    assert row.make == "VOLKSWAGEN"
    assert row.make_inferred
    assert row.validity == VinEntry.Validity.VALID


def test_make_missing_and_vin_shared_by_two_makes_is_invalid():
    (row,) = validate({"vin": OPEL})
    assert row.validity == VinEntry.Validity.INVALID
    assert "Opel or Vauxhall" in row.problems[0]
    assert "Add the make" in row.problems[0]


def test_make_missing_and_unknown_manufacturer_is_invalid():
    (row,) = validate({"vin": "1HGCM82633A004352"})
    assert row.validity == VinEntry.Validity.INVALID
    assert "no make" in row.problems[0]


def test_make_contradicting_the_vin_is_a_warning():
    (row,) = validate({"vin": BMW, "make": "Audi"})
    assert row.validity == VinEntry.Validity.WARNING
    assert row.status == VinStatus.READY
    assert row.make == "AUDI"
    assert "belong to BMW" in row.problems[0]


def test_make_agreeing_with_one_of_a_shared_code_is_fine():
    (row,) = validate({"vin": OPEL, "make": "Vauxhall"})
    assert row.validity == VinEntry.Validity.VALID


def test_unknown_make_is_invalid_and_lists_supported_makes():
    (row,) = validate({"vin": VW, "make": "Dacia"})
    assert row.validity == VinEntry.Validity.INVALID
    assert row.make == "Dacia"
    assert "'Dacia' is not a make" in row.problems[0]
    assert "Mercedes-Benz" in row.problems[0] and "Volvo" in row.problems[0]


def test_country_defaults_to_the_fleets_and_unknown_is_invalid():
    default, named, unknown = validate(
        {"vin": VW, "make": "VW"},
        {"vin": VW, "make": "VW", "country_code": "Germany"},
        {"vin": VW, "make": "VW", "country_code": "Germania"},
        default_country="fr",
    )
    assert default.country_code == "FR"
    assert named.country_code == "DE"
    assert unknown.validity == VinEntry.Validity.INVALID
    assert unknown.country_code == ""
    assert "'Germania' is not a country code" in unknown.problems[0]
    assert "(FR)" in unknown.problems[0]


def test_bmw_and_mini_use_the_fleets_region():
    eu, na = (
        validate({"vin": BMW, "make": "BMW", "country_code": "DE"})[0],
        validate(
            {"vin": MINI, "make": "Mini", "country_code": "US"},
            default_region=Region.NORTH_AMERICA,
        )[0],
    )
    assert eu.region == Region.EUROPE and eu.validity == VinEntry.Validity.VALID
    assert na.region == Region.NORTH_AMERICA and na.validity == VinEntry.Validity.VALID


def test_bmw_in_a_country_outside_the_fleets_region_is_a_warning():
    (row,) = validate({"vin": BMW, "make": "BMW", "country_code": "US"})
    assert row.region == Region.EUROPE
    assert row.validity == VinEntry.Validity.WARNING
    assert "North America" in row.problems[0]


def test_bmw_outside_europe_and_north_america_is_a_warning():
    (row,) = validate({"vin": MINI, "make": "MINI", "country_code": "AU"})
    assert row.validity == VinEntry.Validity.WARNING
    assert "Europe or North America" in row.problems[0] and "AU" in row.problems[0]


def test_hyundai_and_kia_only_in_europe():
    ok, outside, default_outside = validate(
        {"vin": KIA, "make": "Kia", "country_code": "NL"},
        {"vin": KIA, "make": "Kia", "country_code": "US"},
        {"vin": KIA, "make": "Hyundai", "country_code": ""},
        default_country="CA",
        default_region=Region.NORTH_AMERICA,
    )
    assert ok.validity == VinEntry.Validity.VALID
    assert ok.region == Region.EUROPE
    assert outside.validity == VinEntry.Validity.INVALID
    assert "Europe only" in outside.problems[0] and "US" in outside.problems[0]
    assert default_outside.validity == VinEntry.Validity.INVALID
    assert "CA" in next(p for p in default_outside.problems if "Europe only" in p)


@pytest.mark.parametrize("year", ["1979", "21", "twenty", "2030", "2021-01"])
def test_implausible_model_year_is_invalid(year):
    with time_machine.travel("2026-03-01", tick=False):
        (row,) = validate({"vin": VW, "make": "VW", "model_year": year})
    assert row.validity == VinEntry.Validity.INVALID
    assert row.model_year is None
    assert "between 1980 and 2028" in row.problems[0]


@pytest.mark.parametrize(("text", "year"), [("2028", 2028), ("1980", 1980), ("2021.0", 2021)])
def test_plausible_model_year(text, year):
    with time_machine.travel("2026-03-01", tick=False):
        (row,) = validate({"vin": VW, "make": "VW", "model_year": text})
    assert row.model_year == year
    assert row.validity == VinEntry.Validity.VALID


def test_bad_tags_and_long_fields_are_invalid():
    tags, plate, model = validate(
        {"vin": VW, "make": "VW", "tags": "depot"},
        {"vin": VW, "make": "VW", "registration_plate": "P" * 33},
        {"vin": VW, "make": "VW", "model": "M" * 81},
    )
    assert tags.validity == plate.validity == model.validity == VinEntry.Validity.INVALID
    assert "key=value" in tags.problems[0]
    assert "33 characters" in plate.problems[0]
    assert "81 characters" in model.problems[0]


def test_reader_problems_make_the_row_invalid():
    (row,) = validate(({"vin": VW, "make": "VW"}, "Line 2: a double quote is never closed."))
    assert row.validity == VinEntry.Validity.INVALID
    assert row.problems == ["Line 2: a double quote is never closed."]


def test_blank_rows_are_ignored():
    rows = validate({"vin": "", "make": " "}, {"vin": VW, "make": "VW"})
    assert [r.line_number for r in rows] == [3]


def test_duplicates_are_skipped_and_the_first_is_kept():
    first, invalid, second, third = validate(
        {"vin": VW, "make": "VW"},
        {"vin": VW, "make": "Dacia"},
        {"vin": VW.lower(), "make": "VW"},
        {"vin": VW, "make": "Volkswagen"},
    )
    assert first.status == VinStatus.READY
    assert invalid.status == VinStatus.INVALID
    assert second.status == third.status == VinStatus.SKIPPED
    assert second.skip_reason == "This VIN is a duplicate of line 2; only the first is sent."
    assert second.skip_reason in second.problems


def test_an_invalid_row_does_not_hide_a_later_valid_duplicate():
    invalid, valid = validate({"vin": VW, "make": "Dacia"}, {"vin": VW, "make": "VW"})
    assert invalid.status == VinStatus.INVALID
    assert valid.status == VinStatus.READY


def test_vins_already_in_the_fleet_are_skipped_with_their_status():
    connected, pending, fresh, repeat = validate(
        {"vin": VW, "make": "VW"},
        {"vin": TESLA_US, "make": "Tesla"},
        {"vin": BMW, "make": "BMW"},
        {"vin": VW, "make": "VW"},
        existing={VW: VinStatus.CONNECTED, TESLA_US: "PENDING"},
    )
    assert connected.status == pending.status == VinStatus.SKIPPED
    assert "already in this fleet (Connected)" in connected.skip_reason
    assert "(Pending)" in pending.skip_reason
    assert fresh.status == VinStatus.READY
    assert "duplicate of line 2" in repeat.skip_reason


def test_sandbox_vin_rows_are_valid_with_a_note():
    vin = wrong_check_digit("1NC0MP11000000002")
    (row,) = validate({"vin": vin, "make": "Ford", "country_code": "US"})
    assert row.validity == VinEntry.Validity.VALID
    assert row.status == VinStatus.READY
    assert row.sandbox_test
    assert "Sandbox test VIN" in row.notes[0]
    assert row.problems == []


def test_validate_rows_streams():
    def endless():
        line = 1
        while True:
            line += 1
            yield RawRow(line, {"vin": VW, "make": "VW"})

    rows = validate_rows(endless(), default_country="GB", default_region="EUROPE", existing_vins={})
    assert next(rows).status == VinStatus.READY
    assert next(rows).status == VinStatus.SKIPPED


def test_hundred_thousand_rows_validate_in_seconds_with_little_memory():
    def rows(count):
        for n in range(count):
            vin = with_check_digit(f"WVWZZZ1J0XW{n:06d}")
            yield RawRow(
                n + 2,
                {
                    "vin": vin,
                    "make": "Volkswagen",
                    "country_code": "DE",
                    "registration_plate": f"AB{n:05d}",
                    "model": "Golf",
                    "model_year": "2021",
                    "tags": "depot=Leeds",
                },
            )

    started = time.perf_counter()
    ready = sum(
        row.status == VinStatus.READY
        for row in validate_rows(
            rows(100_000), default_country="GB", default_region="EUROPE", existing_vins={}
        )
    )
    elapsed = time.perf_counter() - started
    assert ready == 100_000
    assert elapsed < 10

    # tracemalloc slows Python down a lot: measure a smaller file.
    tracemalloc.start()
    try:
        for _row in validate_rows(
            rows(20_000), default_country="GB", default_region="EUROPE", existing_vins={}
        ):
            pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The seen-VIN map (~150 bytes a VIN) is all that grows with the file; keeping
    # the rows themselves would take ten times more.
    assert peak < 6 * 1024 * 1024
