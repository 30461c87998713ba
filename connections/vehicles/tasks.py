"""Reconciliation as background work: one run per interval, whichever worker starts it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from connections.vehicles import reconcile


@task()
def run_reconciliation(run_id: int) -> str:
    outcome = reconcile.execute_run(run_id)
    if outcome == reconcile.WAITING_FOR_WEBHOOKS:
        later = timezone.now() + timedelta(seconds=reconcile.WEBHOOK_RECHECK)
        run_reconciliation.using(run_after=later).enqueue(run_id)
    return outcome


def reconcile_when_due() -> int:
    """Start this interval's reconciliation run, unless a worker already did."""
    run = reconcile.start_run()
    if run is None:
        return 0
    run_reconciliation.enqueue(run.pk)
    return 1
