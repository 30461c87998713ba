"""Consent Flow links: create them at Volteras, track them, and record what the
owner did when Volteras sends them back.

Views call these functions; Volteras is reached only through `get_client()`.
Volteras' refusals propagate as `VolterasError` subclasses, and
`refusal_message()` turns one into words a fleet manager can act on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Fleet, Source, Upload, VinEntry
from .models_consent import ConnectedAccount, ConsentLink, LinkStatus, new_token
from .volteras import (
    Account,
    AmbiguousWrite,
    AuthenticationError,
    NetworkError,
    NotFound,
    NotPermitted,
    RateLimited,
    ServerError,
    ValidationError,
    VolterasError,
    get_client,
)

logger = logging.getLogger(__name__)

MIN_EXPIRY = 3600
MAX_EXPIRY = 14 * 24 * 3600
# Per-VIN links go out by mail merge and may sit in an inbox for days.
VIN_LINK_EXPIRY = MAX_EXPIRY
DEFAULT_SCOPES = ("vehicle:all",)
DEFAULT_DEVICE_TYPES = ("VEHICLE",)
SUCCESS_RESULTS = frozenset({"success", "succeeded", "connected", "true"})

# What each scope lets the portal read or do, in the words shown on the form.
SCOPES: dict[str, str] = {
    "vehicle:all": "Everything about the vehicle (all vehicle scopes below)",
    "vehicle:information": "Vehicle details: make, model, year, battery size",
    "vehicle:telemetry": "Live data: battery level, range, odometer, charging state",
    "vehicle:location_history": "Where the vehicle has been",
    "vehicle:charging_history": "Past charging sessions",
    "vehicle:driving_behavior": "Driving style: speed, acceleration, braking",
    "vehicle:commands": "Send commands: start or stop charging, lock, climate",
    "battery:all": "Everything about a home battery",
    "battery:telemetry": "Live data of a home battery",
    "geofences:all": "Read and change geofences",
    "geofences:read": "Read geofences",
    "geofences:write": "Change geofences",
}
DEVICE_TYPES: dict[str, str] = {
    "VEHICLE": "Vehicle",
    "CHARGER": "Charger",
    "BATTERY": "Home battery",
    "INVERTER": "Solar inverter",
    "HEAT_PUMP": "Heat pump",
}
LOCALES: dict[str, str] = {
    "en-GB": "English",
    "de-DE": "German",
    "fr-FR": "French",
    "nl-NL": "Dutch",
}


@dataclass(frozen=True)
class LinkOptions:
    """The owner-facing options of one `POST /v1/accounts:connect`."""

    scopes: tuple[str, ...] = DEFAULT_SCOPES
    device_types: tuple[str, ...] = DEFAULT_DEVICE_TYPES
    expires_in: int = MIN_EXPIRY
    makes: tuple[str, ...] = ()
    locale: str = ""
    region: str = ""
    country_code: str = ""
    vin: str = ""
    model: str = ""
    model_year: int | None = None
    integration_method: str = ""
    charger_latitude: float | None = None
    charger_longitude: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def payload(self, return_url: str) -> dict[str, Any]:
        """The request body as the contract spells it (what the link stores)."""
        fields: dict[str, Any] = {
            "scopes": list(self.scopes),
            "deviceTypes": list(self.device_types),
            "returnUrl": return_url,
            "urlExpiration": self.expires_in,
            "makes": list(self.makes) or None,
            "locale": self.locale or None,
            "region": self.region or None,
            "countryCode": self.country_code or None,
            "vin": self.vin or None,
            "model": self.model or None,
            "modelYear": self.model_year,
            "integrationMethod": self.integration_method or None,
            "chargerLocationLatitude": self.charger_latitude,
            "chargerLocationLongitude": self.charger_longitude,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LinkOptions:
        return cls(
            scopes=tuple(payload.get("scopes") or DEFAULT_SCOPES),
            device_types=tuple(payload.get("deviceTypes") or DEFAULT_DEVICE_TYPES),
            expires_in=int(payload.get("urlExpiration") or MIN_EXPIRY),
            makes=tuple(payload.get("makes") or ()),
            locale=payload.get("locale") or "",
            region=payload.get("region") or "",
            country_code=payload.get("countryCode") or "",
            vin=payload.get("vin") or "",
            model=payload.get("model") or "",
            model_year=payload.get("modelYear"),
            integration_method=payload.get("integrationMethod") or "",
            charger_latitude=_number(payload.get("chargerLocationLatitude")),
            charger_longitude=_number(payload.get("chargerLocationLongitude")),
        )


def _number(value: Any) -> float | None:
    """The contract allows a coordinate as a number or a numeric string."""
    return None if value is None or value == "" else float(value)


def _connect(options: LinkOptions, return_url: str) -> str:
    return get_client().connect_account(
        scopes=options.scopes,
        device_types=options.device_types,
        return_url=return_url,
        url_expiration=options.expires_in,
        makes=options.makes or None,
        locale=options.locale or None,
        region=options.region or None,
        country_code=options.country_code or None,
        vin=options.vin or None,
        model=options.model or None,
        model_year=options.model_year,
        integration_method=options.integration_method or None,
        charger_location_latitude=options.charger_latitude,
        charger_location_longitude=options.charger_longitude,
    )


def create_link(
    fleet: Fleet,
    options: LinkOptions,
    *,
    user=None,
    label: str = "",
    recipient_note: str = "",
    vin_entry: VinEntry | None = None,
) -> ConsentLink:
    """Ask Volteras for a consent link and keep it. Raises `VolterasError` when
    Volteras refuses; nothing is stored then."""
    link = ConsentLink(
        fleet=fleet,
        token=new_token(),
        label=label,
        recipient_note=recipient_note,
        created_by=user,
        vin_entry=vin_entry,
        vin=options.vin,
    )
    # Volteras' clock starts when it receives the request: starting ours
    # before sending never promises the owner more time than they have.
    started = timezone.now()
    link.authentication_url = _connect(options, link.return_url)
    link.options = options.payload(link.return_url)
    link.created_at = started
    link.expires_at = started + timedelta(seconds=options.expires_in)
    with transaction.atomic():
        link.save()
        link.note("Link created.", actor=user)
        if vin_entry is not None:
            vin_entry.record(
                Source.MANUAL,
                f"Consent link sent to the owner: {link.short_url} "
                f"(expires {link.expires_at:%d %b %Y %H:%M} UTC).",
                actor=user,
                consent_link=link.pk,
            )
    return link


def refusal_message(exc: VolterasError) -> str:
    """What to tell a fleet manager when Volteras refuses or fails a request."""
    if isinstance(exc, NotPermitted) and exc.code == "DEVICE_LIMIT_REACHED":
        text = (
            "Your Volteras organisation has reached its vehicle limit, so no new links can be "
            "created. Ask Volteras to raise the limit, or disconnect vehicles you no longer need."
        )
    elif exc.code == "UNSUPPORTED_OEM":
        text = (
            "Volteras cannot connect one of the chosen makes with these options "
            f"({exc.message}). Change the makes or the region."
        )
    elif isinstance(exc, NotPermitted):
        text = (
            "Volteras does not allow your organisation to create this link. Check that your "
            "plan includes the chosen scopes and device types, or contact Volteras."
        )
    elif isinstance(exc, ValidationError):
        text = f"Volteras refused the link's options: {exc.message}"
    elif isinstance(exc, AuthenticationError):
        text = (
            "The portal's Volteras credentials were refused. An administrator must check "
            "VOLTERAS_CLIENT_ID and VOLTERAS_CLIENT_SECRET."
        )
    elif isinstance(exc, RateLimited):
        text = "Volteras is receiving too many requests right now. Try again in a minute."
    elif isinstance(exc, ServerError | NetworkError | AmbiguousWrite):
        text = (
            "Volteras could not be reached or failed to answer, so nothing was done. "
            "Try again in a few minutes."
        )
    elif isinstance(exc, NotFound):
        text = "Volteras does not know this item (any more)."
    else:
        text = f"Volteras answered unexpectedly: {exc.message}"
    if exc.request_id:
        text += f" (Volteras request {exc.request_id})"
    return text


def open_link(token: str) -> ConsentLink | None:
    """The link a short-link visit leads to, with the visit counted when it is
    usable. A reissued link forwards to its replacement. None for an unknown token."""
    link = ConsentLink.objects.select_related("fleet").filter(token=token).first()
    if link is None:
        return None
    link = link.final_link()
    if link.is_usable:
        link.count_open()
    elif link.status in LinkStatus.open():
        link.move(LinkStatus.EXPIRED, "The owner opened the link after it expired.")
    return link


@dataclass(frozen=True)
class Returned:
    """What a visit of the return URL recorded: the link, and whether the
    account the owner signed in with was refused because another fleet holds it."""

    link: ConsentLink
    held_elsewhere: bool = False


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
    return _confirm(link, remote, result)


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


def _confirm(link: ConsentLink, remote: Account, result: str, *, sync: bool = True) -> Returned:
    """Complete a link with an account Volteras just confirmed (unless another
    fleet holds it), and have its vehicles read in the background."""
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
    if sync:
        enqueue_vehicle_sync([account.pk], Source.CONSENT, "The owner completed a consent link")
    return Returned(link)


def confirm_pending_return(link_id: int) -> str:
    """Ask Volteras again about the account a return claimed when it could not
    be confirmed at the time (run by a task the sweep enqueues)."""
    link = (
        ConsentLink.objects.select_related("fleet")
        .filter(pk=link_id, account__isnull=True)
        .exclude(returned_account_id="")
        .first()
    )
    if link is None:
        return "nothing to confirm"
    try:
        remote = get_client().get_account(link.returned_account_id)
    except NotFound:
        ConsentLink.objects.filter(pk=link.pk).update(returned_account_id="")
        link.note(f"Volteras does not know account {link.returned_account_id}; claim dropped.")
        return "unknown account"
    except VolterasError as exc:
        # `return_checked_at` was set when the sweep claimed it: it asks again later.
        return f"still unconfirmed: {exc}"
    confirmed = _confirm(link, remote, link.result)
    return "refused: held by another fleet" if confirmed.held_elsewhere else "confirmed"


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


def enqueue_vehicle_sync(account_ids: list[int], source: str, reason: str) -> None:
    """Have a worker read the accounts' vehicles: that pages through the
    organisation's whole vehicle list, too slow for a page someone waits on."""
    from .tasks import sync_account_vehicles as sync

    if account_ids:
        sync.enqueue(account_ids, source, reason)


def sync_account_vehicles(account_ids: Iterable[int], source: str, reason: str) -> int:
    """Read the vehicles Volteras lists (once) and apply each one that belongs to
    one of the accounts (its local record, and any VIN entry waiting for it, as
    a webhook would). Webhooks bring the same news later; this saves the
    manager the wait. Returns how many vehicles were applied; raises
    `VolterasError` when Volteras cannot be read."""
    from .webhooks import apply_vehicle

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


def revoke(link: ConsentLink, user) -> bool:
    """Cancel a link: its short link stops working. False if it was not open."""
    if link.status not in LinkStatus.open():
        return False
    moved = link.move(
        LinkStatus.REVOKED, "Revoked.", actor=user, revoked_at=timezone.now(), revoked_by=user
    )
    if moved and link.vin_entry_id:
        link.vin_entry.record(Source.MANUAL, "Consent link revoked.", actor=user)
    return moved


def can_reissue(link: ConsentLink) -> bool:
    return link.status in {*LinkStatus.open(), LinkStatus.EXPIRED, LinkStatus.DECLINED}


def reissue(link: ConsentLink, user) -> ConsentLink:
    """A fresh link with the same options and expiry length; the old short link
    forwards to it. Raises `VolterasError` (old link untouched) or ValueError."""
    if not can_reissue(link):
        raise ValueError(f"A {link.get_state_display().lower()} link cannot be reissued.")
    options = LinkOptions.from_payload(link.options)
    new = create_link(
        link.fleet,
        options,
        user=user,
        label=link.label,
        recipient_note=link.recipient_note,
        vin_entry=link.vin_entry,
    )
    if not link.move(
        LinkStatus.REISSUED, f"Reissued as link {new.pk}.", actor=user, replaced_by=new
    ):
        # Someone else changed the old link meanwhile; the new one stands on its own.
        new.note(f"Reissue of link {link.pk}, which changed meanwhile.", actor=user)
    return new


def reissue_expiring(fleet: Fleet, within: timedelta, user) -> tuple[list[ConsentLink], str]:
    """Reissue every active link of the fleet that expires within `within`.
    Returns the new links and, if Volteras refused part way, why it stopped."""
    created: list[ConsentLink] = []
    for link in fleet.consent_links.expiring_within(within).order_by("expires_at"):
        try:
            created.append(reissue(link, user))
        except VolterasError as exc:
            return created, refusal_message(exc)
    return created, ""


# Per-VIN links are made one `POST /v1/accounts:connect` each: a request makes
# at most this many, so 1,000 VINs never hold one page (or one 429) for minutes.
VIN_LINKS_PER_REQUEST = 50


@dataclass
class VinLinksRun:
    """What one `create_vin_links_batch` call did."""

    links: list[ConsentLink] = field(default_factory=list)  # every asked VIN's usable link
    created: int = 0  # new links among them (reissues included)
    failures: dict[str, str] = field(default_factory=dict)  # VIN -> Volteras' refusal
    remaining: int = 0  # VINs left without a link, to do in a next run
    stopped: str = ""  # why the run stopped early (Volteras refused for everyone)
    stopped_vin: str = ""  # the VIN it was at then


def vin_link_options(entry: VinEntry) -> LinkOptions:
    fleet = entry.fleet
    region = entry.region or fleet.default_region
    return LinkOptions(
        scopes=DEFAULT_SCOPES,
        device_types=DEFAULT_DEVICE_TYPES,
        expires_in=VIN_LINK_EXPIRY,
        makes=(entry.make,) if entry.make else (),
        region=region,
        country_code=entry.country_code or fleet.default_country_code,
        vin=entry.vin,
        model=entry.model,
        model_year=entry.model_year,
    )


def needing_consent(upload: Upload) -> models.QuerySet[VinEntry]:
    """The upload's VINs waiting for their owner's consent
    (`VinEntry.consent_link_helps`)."""
    return upload.entries.filter(VinEntry.consent_link_q())


def create_vin_links_batch(
    upload: Upload,
    entries: Iterable[VinEntry] | None,
    user,
    *,
    limit: int | None = None,
) -> VinLinksRun:
    """A single-vehicle consent link for each VIN of the upload waiting for
    its owner's consent (all of them when `entries` is None), recorded in each VIN's timeline.

    A VIN that already has a usable link keeps it (it is returned, not
    duplicated); one whose last link expired or was declined gets it reissued,
    so the short link the owner already has forwards to the new one. Entries of
    other uploads or in other states are ignored. At most `limit` links are
    made (default `VIN_LINKS_PER_REQUEST`, 0 for no limit): calling again goes
    on where this stopped. A refusal for the whole organisation (anything but a validation
    error, a 429 say) stops the run.
    """
    limit = VIN_LINKS_PER_REQUEST if limit is None else limit
    candidates = needing_consent(upload).select_related("fleet")
    if entries is not None:
        candidates = candidates.filter(pk__in=[entry.pk for entry in entries])
    usable = {
        link.vin_entry_id: link
        for link in ConsentLink.objects.active()
        .filter(vin_entry__in=candidates)
        .order_by("expires_at")
    }
    run = VinLinksRun()
    for entry in candidates.order_by("line_number"):
        if entry.pk in usable:
            run.links.append(usable[entry.pk])
            continue
        if run.stopped or (limit and run.created >= limit):
            run.remaining += 1
            continue
        try:
            run.links.append(_new_vin_link(upload, entry, user))
            run.created += 1
        except VolterasError as exc:
            message = refusal_message(exc)
            entry.record(Source.MANUAL, f"No consent link: {message}", actor=user)
            if isinstance(exc, ValidationError):
                run.failures[entry.vin] = message
            else:
                run.stopped, run.stopped_vin = message, entry.vin
                run.remaining += 1
    return run


def _new_vin_link(upload: Upload, entry: VinEntry, user) -> ConsentLink:
    latest = entry.consent_links.order_by("-created_at", "-pk").first()
    if latest is not None and latest.state in {LinkStatus.EXPIRED, LinkStatus.DECLINED}:
        return reissue(latest, user)
    return create_link(
        upload.fleet,
        vin_link_options(entry),
        user=user,
        label=entry.registration_plate or entry.vin,
        vin_entry=entry,
    )


@dataclass(frozen=True)
class VinLinksSummary:
    needing: int  # VINs waiting for the owner's consent
    with_link: int  # of which have a usable link (the CSV's rows)
    to_reissue: int  # of which whose last link expired or was declined


def vin_links_summary(upload: Upload) -> VinLinksSummary:
    needing = needing_consent(upload)
    active = ConsentLink.objects.active().filter(vin_entry__in=needing)
    with_link = set(active.values_list("vin_entry_id", flat=True))
    reissue_ids = set(
        ConsentLink.objects.filter(vin_entry__in=needing)
        .filter(
            Q(status=LinkStatus.DECLINED)
            | Q(status=LinkStatus.EXPIRED)
            | Q(status__in=LinkStatus.open(), expires_at__lte=timezone.now())
        )
        .values_list("vin_entry_id", flat=True)
    )
    return VinLinksSummary(
        needing=needing.count(),
        with_link=len(with_link),
        to_reissue=len(reissue_ids - with_link),
    )


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
            _confirm(link, found, link.result, sync=False)
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
