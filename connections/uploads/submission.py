"""From a file to confirmed work: store and validate an upload's rows, then
hand the confirmed ones to `sending` in batches of at most 100 VINs (and
again for retries).
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from psycopg.types.json import Jsonb

from connections.models import Fleet, Source, Upload, VinEntry, VinStatus
from connections.sending.batches import queue_batches
from connections.sending.tasks import enqueue_sends
from connections.uploads.fixes import link_repeats, live_statuses
from connections.uploads.rows import ImportProblem, RawRow
from connections.uploads.validation import validate_rows

logger = logging.getLogger(__name__)


class UploadNotStored(Exception):
    """Storing a read and validated upload failed; nothing of it was kept."""

    message = (
        "The VINs were read but could not be saved, so nothing was kept. "
        "Upload the file again in a minute; if it happens again, contact support."
    )


NO_VINS = "No VINs were found in what you gave. Check the file."


def existing_vins(fleet: Fleet) -> dict[str, str]:
    """VINs already connected or in progress in this fleet, with their status."""
    rows = VinEntry.objects.filter(fleet=fleet, superseded=False, status__in=live_statuses())
    return dict(rows.values_list("vin", "status").iterator())


def create_upload(
    fleet: Fleet,
    user,
    rows: Iterable[RawRow],
    *,
    source_name: str = "",
    include_existing: bool = False,
) -> Upload:
    """Read and validate every row, then store them: nothing is sent yet.

    Reading runs with no transaction open: the validated rows are spooled to a
    temporary file (memory stays flat whatever the file's size), so a slow or
    hostile file never holds the database's write lock (on SQLite, one lock for
    the whole database, which webhooks and the worker need too). Storing then
    takes short transactions of `UPLOAD_STORE_CHUNK` rows on SQLite, and one COPY
    on PostgreSQL (which locks no one out). If storing fails, the upload is
    deleted and `UploadNotStored` raised: an upload is never left half-stored.
    Raises `ImportProblem` for a file that cannot be read, or holds no VINs.
    """
    known = {} if include_existing else existing_vins(fleet)
    validated = validate_rows(
        rows,
        default_country=fleet.default_country_code,
        default_region=fleet.default_region,
        existing_vins=known,
    )
    with tempfile.TemporaryFile() as spool:
        if not _spool(validated, spool):
            raise ImportProblem(NO_VINS)
        upload = Upload(
            fleet=fleet,
            created_by=user,
            source_name=source_name[:255],
            include_existing=include_existing,
        )
        try:
            _store(upload, spool)
            link_repeats(upload)
        except DatabaseError as exc:
            logger.exception("Upload to fleet %s could not be stored", fleet.pk)
            if upload.pk is not None:
                Upload.objects.filter(pk=upload.pk).delete()
            raise UploadNotStored(UploadNotStored.message) from exc
    return upload


def _spool(validated: Iterable, spool: IO[bytes]) -> int:
    count = 0
    for row in validated:
        spool.write(json.dumps(row.entry_fields()).encode())
        spool.write(b"\n")
        count += 1
    return count


def _spooled(spool: IO[bytes]) -> Iterator[dict[str, Any]]:
    spool.seek(0)
    for line in spool:
        yield json.loads(line)


def _store(upload: Upload, spool: IO[bytes]) -> None:
    if connection.vendor == "postgresql":
        with transaction.atomic():
            upload.save()
            _copy_entries(upload, _spooled(spool))
        return
    upload.save()
    rows = _spooled(spool)
    # Objects are built between transactions, so other writers get the lock in between.
    while chunk := [
        VinEntry(upload=upload, fleet_id=upload.fleet_id, **fields)
        for fields in itertools.islice(rows, settings.UPLOAD_STORE_CHUNK)
    ]:
        with transaction.atomic():
            VinEntry.objects.bulk_create(chunk)


def _copy_entries(upload: Upload, rows: Iterable[dict[str, Any]]) -> None:
    """PostgreSQL: stream the rows with COPY, several times faster than INSERTs
    for a 100,000-row file. Columns a row does not set take the model's
    defaults, prepared once; only the row's own values are adapted per row."""
    fields = [f for f in VinEntry._meta.concrete_fields if not (f.primary_key or f.generated)]
    now = timezone.now()
    constant = {}
    for f in fields:
        value = now if getattr(f, "auto_now", False) else f.get_default()
        constant[f.attname] = f.get_db_prep_save(value, connection)
    constant["upload_id"], constant["fleet_id"] = upload.pk, upload.fleet_id
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(VinEntry._meta.db_table)
    names = [f.attname for f in fields]
    sql = f"COPY {table} ({columns}) FROM STDIN"  # names from the model, not from input
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = dict(constant)
            for name, value in row.items():
                values[name] = Jsonb(value) if name in json_fields else value
            copy.write_row([values[name] for name in names])


def submit(upload: Upload, user) -> int:
    """Confirm a draft upload: its ready VINs go out in batches of 100.

    Returns the number of batches; 0 when the upload was already submitted
    (a double click, or two tabs) or had nothing to send.
    """
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.state == Upload.State.SUBMITTED:
            return 0
        ids = list(
            locked.entries.filter(status=VinStatus.READY)
            .order_by("line_number")
            .values_list("pk", flat=True)
        )
        vins = VinEntry.objects.filter(pk__in=ids).values_list("vin", flat=True)
        # A VIN sent again replaces its older entries in this fleet's counts.
        VinEntry.objects.filter(fleet=locked.fleet, vin__in=vins, superseded=False).exclude(
            upload=locked
        ).supersede()
        batches = queue_batches(
            locked,
            ids,
            start=1,
            source=Source.SUBMISSION,
            detail="Confirmed and queued for Volteras",
            actor=user,
        )
        locked.state = Upload.State.SUBMITTED
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["state", "submitted_at"])
        transaction.on_commit(lambda: enqueue_sends(batches))
    upload.refresh_from_db()
    return len(batches)


def retry_entries(upload: Upload, entries: Sequence[VinEntry], user, reason: str = "") -> list[int]:
    """Send these VINs again, in new batches of 100. Returns the ids of those
    queued (a VIN whose current row refuses a retry is left alone).

    Safe against a double click (two POSTs at once): the upload row is locked
    while batch numbers are taken, and each VIN's retry rule is decided on its
    current, locked row, so the second request finds the VINs SUBMITTING and
    queues nothing."""
    with transaction.atomic():
        Upload.objects.select_for_update().filter(pk=upload.pk).first()
        current = (
            VinEntry.objects.select_for_update()
            .filter(upload=upload, pk__in=[e.pk for e in entries])
            .order_by("line_number")
        )
        retryable = [e for e in current if e.retry_refusal() is None]
        if not retryable:
            return []
        start = (upload.batches.aggregate(n=Max("number"))["n"] or 0) + 1
        ids = [e.pk for e in retryable]
        for entry in retryable:
            entry.record(
                Source.MANUAL,
                "Retry requested" + (f": {reason}" if reason else ""),
                actor=user,
            )
        batches = queue_batches(
            upload,
            ids,
            start=start,
            source=Source.MANUAL,
            detail="Queued to be sent again",
            actor=user,
            retry=True,
        )
        transaction.on_commit(lambda: enqueue_sends(batches))
    return ids
