"""The test data every file makes, in one place: VINs, uploads and their VIN
rows, and an upload submitted the way a manager submits one.

    make_vin(7)                          # a valid Ford VIN (real check digit)
    make_vin(7, make="VOLKSWAGEN")       # a valid Volkswagen VIN
    upload = make_upload(fleet, manager)  # a stored, SUBMITTED upload
    add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"])
    upload = uploaded(fleet, manager, "VIN1\\nVIN2")  # read and validated, a draft
    upload, batch = submitted(fleet, manager, [make_vin(1)])  # sent as one batch
    entry_of(upload, vin)                # that VIN's row
    stored_link(fleet)                   # a consent link row, no Volteras needed
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from connections.models import ConnectBatch, ConsentLink, Fleet, Upload, VinEntry
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, submit
from connections.vin import check_digit

# The 11 characters before a 6-digit serial, per make.
VIN_PREFIXES = {
    "FORD": "1FA6P8TH0J5",  # North American
    "VOLKSWAGEN": "WVWZZZ1JZ0W",  # the sandbox connects it at once
}


def make_vin(serial: int, make: str = "FORD") -> str:
    """A valid VIN of `make` (correct check digit) for any serial."""
    body = f"{VIN_PREFIXES[make]}{serial % 1_000_000:06d}"
    return body[:8] + check_digit(body) + body[9:]


def magic_vin(prefix: str, seed: str = "") -> str:
    """One of the sandbox's magic VINs (`PERR0R11`, `PR0C11`...), padded to 17
    characters with `seed` then zeros."""
    tail = (seed.upper() + "0" * 17)[: 17 - len(prefix)]
    return prefix + tail


def make_upload(fleet: Fleet, user=None, **fields) -> Upload:
    """An upload row made directly, SUBMITTED unless `state` says otherwise."""
    fields.setdefault("state", Upload.State.SUBMITTED)
    return Upload.objects.create(fleet=fleet, created_by=user, **fields)


def add_entry(
    upload: Upload,
    status: str,
    *,
    vin: str | None = None,
    line: int | None = None,
    make: str = "FORD",
    codes: Iterable[str] = (),
    **fields,
) -> VinEntry:
    """A valid VIN row of `upload` in `status`: the next line, a fresh Ford VIN
    in GB unless told otherwise; `codes` sets the error codes (the first is the
    entry's error code)."""
    if line is None:
        line = upload.entries.count() + 1
    if vin is None:
        vin = make_vin(upload.pk * 10_000 + line, make=make if make in VIN_PREFIXES else "FORD")
    codes = list(codes)
    if codes:
        fields.setdefault("error_codes", codes)
        fields.setdefault("error_code", codes[0])
    fields.setdefault("country_code", "GB")
    return VinEntry.objects.create(
        upload=upload,
        fleet=upload.fleet,
        line_number=line,
        raw_vin=vin,
        vin=vin,
        make=make,
        validity=VinEntry.Validity.VALID,
        status=status,
        **fields,
    )


def entry_of(upload: Upload, vin: str) -> VinEntry:
    """The row of `vin` in `upload`."""
    return upload.entries.get(vin=vin)


def uploaded(fleet: Fleet, user, text: str | bytes, *, filename: str = "", **options) -> Upload:
    """`text` (a file's content: VINs, or CSV rows; `filename` as uploaded)
    read and validated into a draft upload, as the upload form does."""
    return create_upload(fleet, user, read_upload(text, filename=filename), **options)


def submitted(fleet: Fleet, user, rows: list[str]) -> tuple[Upload, ConnectBatch]:
    """The rows uploaded and submitted (its tasks queued, not run): the upload
    and its one connect batch."""
    upload = uploaded(fleet, user, "\n".join(rows))
    submit(upload, user)
    return upload, ConnectBatch.objects.get(upload=upload)


def stored_link(fleet, **fields) -> ConsentLink:
    """A link row made directly, for tests that need no Volteras."""
    now = timezone.now()
    return ConsentLink.objects.create(
        fleet=fleet,
        label=fields.pop("label", "Van 7"),
        authentication_url="https://consent.example/flow/abc",
        options={"scopes": ["vehicle:all"], "deviceTypes": ["VEHICLE"], "urlExpiration": 3600},
        expires_at=fields.pop("expires_at", now + timedelta(hours=1)),
        **fields,
    )


# When `owner_link` links expire unless told otherwise (tests travel to before it).
OWNER_LINK_EXPIRES = datetime(2026, 12, 20, 15, 30, tzinfo=UTC)


def owner_link(fleet, **fields) -> ConsentLink:
    """A stored link as an owner meets it: a label, a note, two scopes."""
    options = {
        "scopes": ["vehicle:information", "vehicle:telemetry"],
        "deviceTypes": ["VEHICLE"],
        "urlExpiration": 3600,
        **fields.pop("options", {}),
    }
    return ConsentLink.objects.create(
        fleet=fleet,
        label="Van 7",
        recipient_note=fields.pop("recipient_note", "Hi Jane, please connect the company car."),
        authentication_url="https://consent.example/flow/abc",
        options=options,
        expires_at=fields.pop("expires_at", OWNER_LINK_EXPIRES),
        **fields,
    )
