"""Single-vehicle consent links for the VINs of an upload that wait for their owner."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Q
from django.utils import timezone

from connections.consent.links import create_link, refusal_message, reissue
from connections.consent.options import (
    DEFAULT_DEVICE_TYPES,
    DEFAULT_SCOPES,
    VIN_LINK_EXPIRY,
    LinkOptions,
)
from connections.models import ConsentLink, LinkStatus, Source, Upload, VinEntry
from connections.volteras import ValidationError, VolterasError

logger = logging.getLogger(__name__)


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
    return upload.entries.waiting_for_consent()


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
