"""The accounts owners connected: their vehicles, kept in line with Volteras,
and disconnecting them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from django.utils import timezone

from connections.consent.returns import confirm_account
from connections.models import ConnectedAccount, Fleet
from connections.vehicles.apply import apply_vehicle
from connections.volteras import NotFound, get_client

logger = logging.getLogger(__name__)


def sync_account_vehicles(account_ids: Iterable[int], source: str, reason: str) -> int:
    """Read the vehicles Volteras lists (once) and apply each one that belongs to
    one of the accounts (its local record, and any VIN entry waiting for it, as
    a webhook would). Webhooks bring the same news later; this saves the
    manager the wait. Returns how many vehicles were applied; raises
    `VolterasError` when Volteras cannot be read."""
    wanted = set(
        ConnectedAccount.objects.filter(
            pk__in=list(account_ids), status=ConnectedAccount.Status.CONNECTED
        ).values_list("volteras_id", flat=True)
    )
    if not wanted:
        return 0
    applied = 0
    for vehicle in get_client().list_vehicles():
        if vehicle.account_id in wanted:
            apply_vehicle(vehicle.id, source, known=vehicle, reason=reason)
            applied += 1
    return applied


def refresh_accounts(fleet: Fleet) -> tuple[int, int]:
    """Bring the fleet's accounts in line with `GET /v1/accounts`: usernames,
    accounts disconnected elsewhere, and returns whose account could not be
    confirmed at the time. Returns (accounts seen, accounts now disconnected)."""
    remote = {account.id: account for account in get_client().list_accounts()}
    pending = fleet.consent_links.filter(returned_account_id__gt="", account__isnull=True)
    for link in pending.select_related("fleet"):
        found = remote.get(link.returned_account_id)
        if found is not None:
            # The caller reads the vehicles of all the fleet's accounts at once.
            confirm_account(link, found, link.result)
    seen = gone = 0
    now = timezone.now()
    for account in fleet.connected_accounts.filter(status=ConnectedAccount.Status.CONNECTED):
        found = remote.get(account.volteras_id)
        if found is None:
            gone += account.mark_disconnected()
            continue
        seen += 1
        account.username = found.username
        account.raw = found.raw
        account.last_seen_at = now
        account.save(update_fields=["username", "raw", "last_seen_at"])
    return seen, gone


def disconnect_account(account: ConnectedAccount, user) -> None:
    """`POST /v1/accounts/{id}:disconnect`. An account Volteras no longer knows
    is recorded as disconnected too; other errors propagate."""
    with contextlib.suppress(NotFound):
        get_client().disconnect_account(account.volteras_id)
    account.mark_disconnected(by=user)
