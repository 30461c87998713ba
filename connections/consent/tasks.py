"""The consent links' background work: reading the vehicles of a newly
connected account, and confirming returns Volteras could not confirm at the time."""

from __future__ import annotations

import logging

from django_tasks import task

from connections.consent import accounts, emails, returns
from connections.consent.returns import Returned
from connections.models import Source
from connections.volteras import VolterasError

logger = logging.getLogger(__name__)


@task()
def sync_account_vehicles(account_ids: list[int], source: str, reason: str) -> str:
    try:
        return f"{accounts.sync_account_vehicles(account_ids, source, reason)} vehicle(s) applied"
    except VolterasError as exc:
        # Webhooks and reconciliation bring the same news later; nothing is lost.
        logger.info("reading the vehicles of accounts %s failed: %s", account_ids, exc)
        return f"failed: {exc}"


def enqueue_vehicle_sync(account_ids: list[int], source: str, reason: str) -> None:
    """Have a worker read the accounts' vehicles: that pages through the
    organisation's whole vehicle list, too slow for a page someone waits on."""
    if account_ids:
        sync_account_vehicles.enqueue(account_ids, source, reason)


def sync_vehicles_later(returned: Returned | None) -> None:
    """Read the vehicles of the account an owner's return just confirmed."""
    if returned is not None and returned.sync_account_id is not None:
        enqueue_vehicle_sync(
            [returned.sync_account_id], Source.CONSENT, "The owner completed a consent link"
        )


@task()
def confirm_pending_return(link_id: int) -> str:
    outcome, returned = returns.confirm_pending_return(link_id)
    sync_vehicles_later(returned)
    return outcome


def confirm_pending_returns() -> int:
    """Queue a confirmation of each return whose account is due to be asked about again."""
    link_ids = returns.claim_pending_returns()
    for link_id in link_ids:
        confirm_pending_return.enqueue(link_id)
    return len(link_ids)


def send_due_reminders() -> int:
    """Sweeper: remind the recipients of e-mailed links close to expiry (at most
    `len(CONSENT_REMINDER_HOURS)` times a link; never once it is completed or revoked)."""
    sent = 0
    for link, hours in emails.due_reminders():
        if emails.send_reminder(link, hours) is not None:
            sent += 1
    return sent
