"""Cutting confirmed VINs into `ConnectBatch` rows of at most 100: the unit
one `POST /v1/vehicles/connect` sends."""

from __future__ import annotations

from collections.abc import Sequence

from connections.models import ConnectBatch, Upload, VinEntry

BATCH_SIZE = 100


def queue_batches(
    upload: Upload,
    entry_ids: Sequence[int],
    *,
    start: int,
    source: str,
    detail: str,
    actor=None,
    retry: bool = False,
) -> list[ConnectBatch]:
    """New batches numbered from `start`, their VINs moved to SUBMITTING.
    Call inside the transaction that decided to send them; enqueue the sends
    once it commits (`sending.tasks.enqueue_sends`)."""
    batches = []
    for offset in range(0, len(entry_ids), BATCH_SIZE):
        batch = ConnectBatch.objects.create(upload=upload, number=start + offset // BATCH_SIZE)
        VinEntry.objects.filter(pk__in=entry_ids[offset : offset + BATCH_SIZE]).send_in(
            batch, source, detail, actor=actor, retry=retry
        )
        batches.append(batch)
    return batches
