"""The fleet list's CSV export: on PostgreSQL written by `COPY … TO STDOUT`
(`connections/fleet/copy_export.py`), byte for byte what the Python path writes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from connections.csv_files import stream_csv
from connections.fleet import copy_export, exports
from connections.fleet.listing import Filters
from connections.models import ConnectedAccount, Upload, Vehicle, VinEntry, VinStatus

# COPY is PostgreSQL's; SQLite keeps the Python path.
on_postgresql = pytest.mark.postgres_only

ROWS = [
    # vin, status, error codes, message, action category, make, model, plate, tags
    ("WVWZZZ1JZ3W000001", VinStatus.CONNECTED, [], "", "", "VOLKSWAGEN", "Golf", "AB1 CDE", []),
    (
        "=HYPERLINK(1)",
        VinStatus.ERROR,
        ["VEHICLE_NOT_FOUND", "OTHER"],
        "",
        "",
        "BMW",
        '-Série "3", spéciale',
        "+44 12",
        [{"key": "dépôt", "value": "Köln"}, {"key": "@team", "value": "vans"}],
    ),
    ("WVWZZZ1JZ3W000003", VinStatus.ERROR, ["SOMETHING_NEW"], "", "", "", "", "", []),
    (
        "WVWZZZ1JZ3W000004",
        VinStatus.CONNECTION_REQUIRED,
        [],
        "@owner\nmust consent, now",
        "",
        "TESLA",
        "\tModel 3",
        "\rX",
        [{"key": "k", "value": "=1+1"}],
    ),
    ("WVWZZZ1JZ3W000005", VinStatus.PENDING, [], "", "UNDER_REVIEW", "RENAULT", "", "", []),
    ("WVWZZZ1JZ3W000006", VinStatus.INVALID, [], "", "", "", "", "", []),
]


def add_rows(fleet, user) -> Upload:
    upload = Upload.objects.create(fleet=fleet, created_by=user, state=Upload.State.SUBMITTED)
    whole = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    for line, (vin, status, codes, message, category, make, model, plate, tags) in enumerate(
        ROWS, start=1
    ):
        entry = VinEntry.objects.create(
            upload=upload,
            fleet=fleet,
            line_number=line,
            vin=vin,
            make=make,
            model=model,
            registration_plate=plate,
            tags=tags,
            validity="valid",
            status=status,
            error_code=codes[0] if codes else "",
            error_codes=codes,
            message=message,
            action_category=category,
            vehicle_id="-veh" if status == VinStatus.CONNECTED else "",
        )
        # Whole seconds on odd lines, microseconds on even ones (isoformat differs).
        changed = whole - timedelta(days=line, microseconds=0 if line % 2 else 123456)
        if vin.endswith("05"):  # a clock ahead of ours: negative days, rounded down
            changed = timezone.now() + timedelta(hours=5)
        VinEntry.objects.filter(pk=entry.pk).update(status_changed_at=changed)
    account = ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="d@x")
    for n, gone in enumerate([False, True]):
        Vehicle.objects.create(
            volteras_id=f"=veh-{n}",
            vin=f"SALAA2AE8LA00000{n}",
            make="+LAND",
            account_id=account.volteras_id,
            disconnected=gone,
            last_seen_at=whole - timedelta(hours=30 * n, microseconds=n),
        )
    return upload


def python_bytes(fleet, f: Filters) -> bytes:
    rows = exports.csv_rows(fleet, f)
    response = stream_csv("x.csv", exports.COLUMNS, rows, **exports.CSV_DIALECT)
    return b"".join(response.streaming_content)


@on_postgresql
@pytest.mark.parametrize(
    "f",
    [
        Filters(),
        Filters(sort="-vin"),
        Filters(group="needs"),
        Filters(q="000004"),
        Filters(source="upload"),
    ],
    ids=["default", "vin-desc", "needs", "search", "uploads-only"],
)
def test_copy_writes_the_same_bytes_as_python(fleet, manager, f):
    add_rows(fleet, manager)
    copied = b"".join(copy_export.copy_csv(fleet, f))
    assert copied == python_bytes(fleet, f)
    rows = list(csv.reader(io.StringIO(copied.decode("utf-8-sig"))))
    assert rows[0] == exports.COLUMNS


@on_postgresql
def test_copy_export_neutralises_formulas_and_keeps_unicode(fleet, manager):
    add_rows(fleet, manager)
    text = b"".join(copy_export.copy_csv(fleet, Filters())).decode("utf-8")
    rows = {r[0]: r for r in csv.reader(io.StringIO(text.removeprefix("\ufeff")))}
    injected = rows["'=HYPERLINK(1)"]
    assert injected[6] == '\'-Série "3", spéciale' and injected[7] == "'+44 12"
    assert injected[8] == "dépôt=Köln;@team=vans" and injected[12] == "VEHICLE_NOT_FOUND;OTHER"
    assert rows["WVWZZZ1JZ3W000004"][2] == "'@owner\nmust consent, now"
    assert rows["WVWZZZ1JZ3W000003"][2] == "Unexpected error"
    assert rows["WVWZZZ1JZ3W000005"][11] == "-1" and rows["WVWZZZ1JZ3W000005"][4] == "Under review"
    assert rows["SALAA2AE8LA000001"][-1] == "'=veh-1"


def test_the_download_is_the_python_path_where_copy_is_not(client, fleet, manager):
    """Whatever the database, the download is the export (one code path is COPY)."""
    add_rows(fleet, manager)
    client.force_login(manager)
    response = client.get(reverse("fleet_vehicles_csv", args=[fleet.slug]))
    body = b"".join(response.streaming_content)
    assert body == python_bytes(fleet, Filters())
    assert body.startswith('\ufeff"vin","status"'.encode())
