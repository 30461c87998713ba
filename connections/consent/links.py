"""Consent Flow links: create them at Volteras, track them, and record what the
owner did when Volteras sends them back.

Views call these functions; Volteras is reached only through `get_client()`.
Volteras' refusals propagate as `VolterasError` subclasses, and
`refusal_message()` turns one into words a fleet manager can act on.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from connections.consent.options import LinkOptions
from connections.models import ConsentLink, Fleet, LinkStatus, Source, Upload, VinEntry, new_token
from connections.volteras import (
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
    language: str = "",
) -> ConsentLink:
    """Ask Volteras for a consent link and keep it. Raises `VolterasError` when
    Volteras refuses; nothing is stored then."""
    link = ConsentLink(
        fleet=fleet,
        token=new_token(),
        label=label,
        recipient_note=recipient_note,
        language=language,
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
                f"Consent link created for the owner: {link.short_url} "
                f"(expires {link.expires_at:%d %b %Y %H:%M} UTC).",
                actor=user,
                consent_link=link.pk,
            )
            # Its upload's open tables look again: the row shows the link.
            Upload(pk=vin_entry.upload_id).bump()
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
    elif isinstance(exc, AmbiguousWrite):
        text = (
            "Volteras failed while answering, so it may or may not have done it. Refresh "
            "the page to see where things stand, then try again if it is still needed."
        )
    elif isinstance(exc, ServerError | NetworkError):
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
        language=link.language,
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
