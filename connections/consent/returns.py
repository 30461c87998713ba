"""The owner's return from the consent flow: what Volteras sends back to the
return URL, believed only once Volteras confirms the account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import ConnectedAccount, ConsentLink, Fleet, LinkStatus, Source
from connections.volteras import Account, NotFound, VolterasError, get_client

logger = logging.getLogger(__name__)


SUCCESS_RESULTS = frozenset({"success", "succeeded", "connected", "true"})


@dataclass(frozen=True)
class Returned:
    """What a visit of the return URL recorded: the link, and whether the
    account the owner signed in with was refused because another fleet holds it."""

    link: ConsentLink
    held_elsewhere: bool = False
    # The account whose vehicles are now to be read (`consent.tasks.sync_vehicles_later`).
    sync_account_id: int | None = None


def complete_return(return_token: str, result: str, account_id: str) -> Returned | None:
    """Record the owner's return from the consent flow. None for an unknown token.

    The return token is only in the URL Volteras redirects to, but whoever
    has it can still call it with any parameters, so a claimed account is
    believed only once `GET /v1/accounts/{id}` confirms it. A decline is
    recorded once and never repeated; a confirmed success still wins over it
    (the owner may decline, then change their mind in the same flow), and a
    completed link never changes again.
    """
    link = ConsentLink.objects.select_related("fleet").filter(return_token=return_token).first()
    if link is None:
        return None
    if link.account_id is not None:
        return Returned(link)
    result = (result or "").strip()[:40]
    account_id = (account_id or "").strip()[:64]
    if not result and not account_id:
        # Not a return from Volteras (someone opened the bare URL): nothing to record.
        return Returned(link)
    succeeded = result.lower() in SUCCESS_RESULTS and bool(account_id)
    if not succeeded:
        if link.returned_at is not None:
            return Returned(link)
        fields = {"result": result, "returned_at": timezone.now()}
        detail = f"The owner did not complete the consent flow (result: {result or 'none'})."
        if not _settle(link, LinkStatus.DECLINED, detail, fields):
            ConsentLink.objects.filter(pk=link.pk).update(**fields)
            link.refresh_from_db()
            link.note(detail)
        _note_entry(link, detail)
        return Returned(link)
    try:
        remote = get_client().get_account(account_id)
    except NotFound:
        link.note(f"The return claimed account {account_id}, which Volteras does not know.")
        return Returned(link)
    except VolterasError as exc:
        # The owner's page must not fail; the claim is kept and confirmed later
        # by the sweep (`confirm_pending_returns`) or `refresh_accounts`.
        ConsentLink.objects.filter(pk=link.pk, account__isnull=True).update(
            returned_account_id=account_id, result=result
        )
        link.note(f"Could not confirm account {account_id} with Volteras yet: {exc}")
        link.refresh_from_db()
        return Returned(link)
    return confirm_account(link, remote, result)


def _held_elsewhere(fleet: Fleet, volteras_id: str) -> bool:
    """Whether another fleet holds the account: Volteras confirms any account of
    the organisation, so without this a fleet could take over another's."""
    return (
        ConnectedAccount.objects.filter(
            volteras_id=volteras_id, status=ConnectedAccount.Status.CONNECTED
        )
        .exclude(fleet=fleet)
        .exists()
    )


def confirm_account(link: ConsentLink, remote: Account, result: str) -> Returned:
    """Complete a link with an account Volteras just confirmed (unless another
    fleet holds it); its vehicles are then to be read (`sync_account_id`)."""
    if _held_elsewhere(link.fleet, remote.id):
        logger.warning(
            "consent link %s of fleet %s: account %s is connected to another fleet; refused",
            link.pk,
            link.fleet.slug,
            remote.id,
        )
        # The claim is dropped so the sweep stops asking; the event keeps it for support.
        ConsentLink.objects.filter(pk=link.pk).update(returned_account_id="")
        link.refresh_from_db()
        link.note(
            "The owner signed in with an account that is already connected to another fleet; "
            "it was not added. The link can still be used with another account.",
            refused_account_id=remote.id,
        )
        return Returned(link, held_elsewhere=True)
    account = _remember_account(link.fleet, remote.id, remote.username, remote.raw)
    fields = {
        "result": result or link.result or "success",
        "returned_account_id": remote.id,
        "returned_at": timezone.now(),
        "account": account,
    }
    detail = f"The owner connected account {remote.username or remote.id}."
    if not _settle(link, LinkStatus.COMPLETED, detail, fields):
        # A revoked or reissued link can still be finished with Volteras'
        # own URL: the account is real and is listed so it can be disconnected.
        ConsentLink.objects.filter(pk=link.pk).update(**fields)
        link.refresh_from_db()
        link.note(f"{detail} The link had been {link.get_status_display().lower()}.")
    _note_entry(link, detail)
    return Returned(link, sync_account_id=account.pk)


def confirm_pending_return(link_id: int) -> tuple[str, Returned | None]:
    """Ask Volteras again about the account a return claimed when it could not
    be confirmed at the time (run by a task the sweep enqueues). Returns what
    happened, and the confirmation when there was one."""
    link = (
        ConsentLink.objects.select_related("fleet")
        .filter(pk=link_id, account__isnull=True)
        .exclude(returned_account_id="")
        .first()
    )
    if link is None:
        return "nothing to confirm", None
    try:
        remote = get_client().get_account(link.returned_account_id)
    except NotFound:
        ConsentLink.objects.filter(pk=link.pk).update(returned_account_id="")
        link.note(f"Volteras does not know account {link.returned_account_id}; claim dropped.")
        return "unknown account", None
    except VolterasError as exc:
        # `return_checked_at` was set when the sweep claimed it: it asks again later.
        return f"still unconfirmed: {exc}", None
    confirmed = confirm_account(link, remote, link.result)
    return (
        "refused: held by another fleet" if confirmed.held_elsewhere else "confirmed"
    ), confirmed


# How often the sweep asks Volteras again about one unconfirmed return, how
# many it asks about per sweep, and for how long (a link lives 14 days at most).
PENDING_RETURN_RECHECK = timedelta(minutes=5)


PENDING_RETURNS_PER_SWEEP = 20


PENDING_RETURN_GIVE_UP = timedelta(days=15)


def claim_pending_returns() -> list[int]:
    """Links whose return claimed an account Volteras could not confirm at the
    time and that are due for another look; each is claimed (its
    `return_checked_at` set by a conditional update) so two workers' sweeps
    never ask twice. Bounded, so one sweep never floods Volteras."""
    now = timezone.now()
    due = (
        ConsentLink.objects.filter(
            account__isnull=True, created_at__gte=now - PENDING_RETURN_GIVE_UP
        )
        .exclude(returned_account_id="")
        .filter(
            Q(return_checked_at__isnull=True)
            | Q(return_checked_at__lte=now - PENDING_RETURN_RECHECK)
        )
        .order_by(F("return_checked_at").asc(nulls_first=True), "pk")
        .values_list("pk", "return_checked_at")[:PENDING_RETURNS_PER_SWEEP]
    )
    claimed = []
    for pk, checked in due:
        if ConsentLink.objects.filter(pk=pk, return_checked_at=checked).update(
            return_checked_at=now
        ):
            claimed.append(pk)
    return claimed


def _settle(link: ConsentLink, status: str, detail: str, fields: dict[str, Any]) -> bool:
    """Move a link that was still waiting for the owner (by the clock or not).
    A confirmed success also moves a declined link: the account is real."""
    waiting = {*LinkStatus.open(), LinkStatus.EXPIRED}
    if status == LinkStatus.COMPLETED:
        waiting.add(LinkStatus.DECLINED)
    if link.status not in waiting:
        return False
    return link.move(status, detail, **fields)


def _note_entry(link: ConsentLink, detail: str) -> None:
    if link.vin_entry_id:
        link.vin_entry.record(Source.MANUAL, detail, consent_link=link.pk)


def _remember_account(
    fleet: Fleet, volteras_id: str, username: str, raw: dict[str, Any]
) -> ConnectedAccount:
    now = timezone.now()
    defaults = {"username": username, "raw": raw, "last_seen_at": now}
    try:
        with transaction.atomic():
            account, created = ConnectedAccount.objects.get_or_create(
                fleet=fleet, volteras_id=volteras_id, defaults=defaults
            )
    except IntegrityError:
        account, created = ConnectedAccount.objects.get(fleet=fleet, volteras_id=volteras_id), False
    if not created:
        for name, value in defaults.items():
            setattr(account, name, value)
        if not account.is_connected:
            # Connected again through a new link.
            account.status = ConnectedAccount.Status.CONNECTED
            account.connected_at = now
            account.disconnected_at = None
        account.save()
    return account
