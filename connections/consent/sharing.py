"""What a consent link's pages show and how often they look again: the QR code,
the mailto link, and the versions the live list and page compare."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import segno
from django.db.models import OuterRef, Subquery

from connections.models import ConsentLink, Fleet, LinkStatus


def qr_svg(url: str, *, scale: int = 4) -> str:
    """The URL as an inline SVG QR code (medium error correction survives a smudged print)."""
    return segno.make(url, error="m").svg_inline(scale=scale, title="QR code of the link")


def mailto(link: ConsentLink) -> str:
    subject = "Connect your vehicle"
    lines = [
        "Hello,",
        "",
        link.recipient_note
        or "Please connect your vehicle to our fleet by opening this link and signing in "
        "with your vehicle manufacturer's account:",
        "",
        link.short_url,
        "",
        f"The link works until {link.expires_at:%d %B %Y, %H:%M} UTC.",
    ]
    return f"mailto:?subject={quote(subject)}&body={quote(chr(10).join(lines))}"


def row_parts(link: ConsentLink) -> tuple:
    """Everything a row of the link list shows (its key is made of these)."""
    account = str(link.account) if link.account else ""
    made = (link.created_at, str(link.created_by or ""))
    return (link.pk, str(link), link.vin, link.state, link.opens, link.expires_at, account, made)


def link_version(link: ConsentLink) -> str:
    """What the link's page compares: its last change, and its state as the
    clock makes it (an open link turns expired with no write)."""
    return f"{link.changed_at.timestamp():.6f}.{link.state}"


def list_version(fleet: Fleet, now: datetime) -> str:
    """What the fleet's link list compares, in one query of two index seeks:
    the last change of any of its links, and the next expiry still to come
    (passing it turns a link expired with no write)."""
    links = ConsentLink.objects.filter(fleet=OuterRef("pk"))
    changed = links.order_by("-changed_at").values("changed_at")[:1]
    expiry = (
        links.filter(status__in=LinkStatus.open(), expires_at__gt=now)
        .order_by("expires_at")
        .values("expires_at")[:1]
    )
    row = (
        Fleet.objects.filter(pk=fleet.pk)
        .annotate(changed=Subquery(changed), expiry=Subquery(expiry))
        .values_list("changed", "expiry")
        .get()
    )
    return ".".join(f"{moment.timestamp():.6f}" if moment else "0" for moment in row)
