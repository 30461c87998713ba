"""A fleet as a manager finds it a few minutes after sending a file: most
vehicles connected, eight that need the manager, one still on its way. The
sandbox's magic VINs (sandbox/README.md) give each VIN its outcome.

Shared by the fleet vehicles and VIN page journeys."""

from __future__ import annotations

import time

from connections.models import Fleet, Upload, VinStatus
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, submit

HEADER = "VIN,Make,Country,Licence Plate,Model,Model Year,Tags"
# VIN -> the rest of its CSV line.
NEEDS_YOU = {
    "PERR0R11000000001": "Volkswagen,GB,LV21 ERR,ID.3,2021,depot=Leeds",
    "PERR0R11000000002": "Ford,DE,K-ER 202,Puma,2022,depot=York",
    "0FFL1NE1000000003": "Renault,FR,AB-303-CD,Zoe,2021,depot=Leeds",
    "C0NSENT1000000004": "Volkswagen,GB,LV21 CNS,ID.4,2022,depot=Leeds",
    "C0NSENT1000000005": "Kia,NL,R-505-TS,Niro EV,2021,depot=York",
    "1NC0MP11400000006": "Ford,US,6INC006,Mustang,2018,",
    "REM0TE11000000007": "Tesla,DE,M-RE 707,Model 3,2022,",
    "SHAR1NG1000000008": "BMW,GB,LD70 SHR,i3,2020,depot=Leeds",
}
CONNECTED = {
    "WVGZZZE29MP012345": "Volkswagen,DE,B-FP 1021,ID.4,2021,depot=Berlin",
    "XP7YGCEK8PB104417": "Tesla,DE,M-EV 4417,Model Y,2023,depot=Leeds",
    "WBY71AW010FM20581": "BMW,GB,LD71 XKE,i4,2022,depot=London",
    "VF1AG000366123456": "Renault,FR,GH-458-KL,Zoe,2021,depot=Lyon",
    "W1N2437011J338810": "Mercedes-Benz,NL,G-123-BX,EQA,2022,",
}
# Volteras' own magic VIN that stays PENDING for ever.
ON_ITS_WAY = {"PR0C11AA500000009": "Renault,FR,,Megane E-Tech,2023,"}
CONSENT = sorted(v for v in NEEDS_YOU if v.startswith("C0NSENT1"))
# Long enough for a batch to be sent, polled and its results applied by the worker.
SETTLE_SECONDS = 60


def csv_text(*groups: dict[str, str]) -> str:
    lines = [HEADER] + [f"{vin},{rest}" for group in groups for vin, rest in group.items()]
    return "\n".join(lines) + "\n"


def send(fleet: Fleet, manager, text: str, name: str = "vans.csv") -> Upload:
    """Upload and send `text` as the manager would (check, then send)."""
    upload = create_upload(fleet, manager, read_upload(text), source_name=name)
    submit(upload, manager)
    return upload


def settle(upload: Upload, *, pending: int = 0) -> None:
    """Wait until the worker has every VIN of `upload` at its outcome (all but
    `pending` of them final). A bound, not a speed check: the sandbox runs at
    speed 0, so this is a handful of worker ticks."""
    moving = {VinStatus.SUBMITTING, VinStatus.PROCESSING, VinStatus.PENDING}
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if upload.entries.filter(status__in=moving).count() <= pending:
            return
        time.sleep(0.2)
    left = list(upload.entries.filter(status__in=moving).values_list("vin", "status"))
    raise AssertionError(f"the worker did not settle upload {upload.pk}: {left}")


def settled_fleet(fleet: Fleet, manager) -> Upload:
    """The fleet of this module's docstring (the worker must be running)."""
    upload = send(fleet, manager, csv_text(NEEDS_YOU, CONNECTED, ON_ITS_WAY))
    settle(upload, pending=len(ON_ITS_WAY))
    return upload
