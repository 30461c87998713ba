"""The uploads' background work: the eligibility pre-check."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django_tasks import task

from connections.models import Upload
from connections.uploads import eligibility


@task()
def check_eligibility(upload_id: int) -> str:
    outcome = eligibility.run(upload_id)
    if outcome == "waiting":
        state = Upload.objects.values_list("eligibility", flat=True).get(pk=upload_id)
        run_after = datetime.fromisoformat(state["next_at"])
        check_eligibility.using(run_after=run_after).enqueue(upload_id)
    return outcome


def start_eligibility_check(upload: Upload) -> bool:
    """Start the pre-check of a draft upload; False if it is not a draft."""
    started = eligibility.start(upload)
    if started:
        transaction.on_commit(lambda: check_eligibility.enqueue(upload.pk))
    return started


def redrive_eligibility_checks() -> int:
    """Queue again the checks whose task was lost; end those that ran too long."""
    due, ended = eligibility.overdue()
    for upload_id in due:
        check_eligibility.enqueue(upload_id)
    return len(due) + ended
