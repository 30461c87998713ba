"""What the delivery log's poll compares, without counting the log."""

from __future__ import annotations

from django.db.models import Count, Q, Sum

from connections.models import WebhookEvent

UNFINISHED = (WebhookEvent.State.RECEIVED, WebhookEvent.State.PROCESSING)


def log_version() -> str:
    """Moves with every delivery shown: a new one (the highest id), and every
    step of processing, which claims (attempts + 1), finishes (leaves the
    unfinished states) or puts back (process again) an event. Only the
    unfinished events, few but for a backlog, are read, through the index on
    (state, next_attempt_at); a delivery received again (`duplicates`) shows
    with the next change."""
    last = WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    unfinished = WebhookEvent.objects.filter(state__in=UNFINISHED).aggregate(
        received=Count("pk", filter=Q(state=WebhookEvent.State.RECEIVED)),
        processing=Count("pk", filter=Q(state=WebhookEvent.State.PROCESSING)),
        attempts=Sum("attempts"),
    )
    counts = ".".join(str(unfinished[name] or 0) for name in ("received", "processing", "attempts"))
    return f"{last or 0}.{counts}"
