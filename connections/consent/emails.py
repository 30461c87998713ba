"""Consent links sent by the portal: the e-mail to the owner in the link's
language, its reminders before expiry, and the owner's language everywhere.

A link's e-mail is one outbox row per link and address (`mail.outbox`), so a
double click sends it once; the link's timeline records that it was queued,
then (from the worker) that it was sent. Reminders are rows keyed by the hours
before expiry (`settings.CONSENT_REMINDER_HOURS`), so each goes at most once;
they are dropped when the link is completed, revoked or reissued.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone, translation

from connections.consent.options import SCOPES
from connections.mail.compose import local_datetime, owner_timezone, render, supported_language
from connections.mail.tasks import post
from connections.models import ConsentLink, MailMessage


def link_language(link: ConsentLink, request: HttpRequest | None = None) -> str:
    """The owner's language: the link's own, its consent flow's locale, the
    owner's browser (Accept-Language), else English."""
    chosen = supported_language(link.language) or supported_language(
        link.options.get("locale") or ""
    )
    if not chosen and request is not None:
        chosen = supported_language(translation.get_language_from_request(request))
    return chosen or "en"


def owner_context(link: ConsentLink, language: str) -> dict:
    """What the owner's page and e-mails say about a link, in `language`."""
    tz = owner_timezone(link.options.get("countryCode") or "", language)
    with translation.override(language):
        expires = local_datetime(link.expires_at, tz)
        scopes = [str(SCOPES.get(scope, scope)) for scope in link.options.get("scopes", [])]
    return {
        "link": link,
        "fleet_name": link.fleet.name,
        "note": link.recipient_note,
        "url": link.short_url,
        "expires": expires,
        "scopes": scopes,
    }


def _reply_to(user) -> str:
    email = getattr(user, "email", "") or ""
    if not email:
        return ""
    name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return f"{name} <{email}>" if name else email


def send_link(link: ConsentLink, to: str, user) -> MailMessage:
    """E-mail the link to `to` (once per link and address), Reply-To the sender."""
    to = to.strip()
    language = link_language(link)
    rendered = render("consent_link", owner_context(link, language), language)
    message, created = post(
        f"consent_link:{link.pk}:{to.lower()}",
        "consent_link",
        to,
        rendered,
        reply_to=_reply_to(user or link.created_by),
        consent_link=link,
        created_by=user,
    )
    fields = {"recipient_email": to}
    if link.emailed_at is None:
        fields["emailed_at"] = timezone.now()
    ConsentLink.objects.filter(pk=link.pk).update(**fields)
    for name, value in fields.items():
        setattr(link, name, value)
    if created:
        link.note(f"E-mail to {to} queued.", actor=user, mail=message.pk)
    return message


def send_vin_links(links: Iterable[ConsentLink], user) -> list[MailMessage]:
    """E-mail each per-VIN link to the address its VIN came with in the upload file."""
    return [
        send_link(link, link.vin_entry.owner_email, user)
        for link in links
        if link.vin_entry_id and link.vin_entry.owner_email
    ]


def due_reminders(now=None) -> list[tuple[ConsentLink, int]]:
    """Links e-mailed before a reminder time that has now come, with the reminder's hours
    (the one nearest expiry when several are due: one reminder at a time)."""
    now = now or timezone.now()
    hours = settings.CONSENT_REMINDER_HOURS
    if not hours:
        return []
    links = (
        ConsentLink.objects.active()
        .exclude(recipient_email="")
        .filter(expires_at__lte=now + timedelta(hours=max(hours)))
        .select_related("fleet", "created_by")
    )
    due = []
    for link in links:
        ready = [h for h in hours if link.expires_at - timedelta(hours=h) <= now]
        nearest = min(ready)
        if link.emailed_at and link.emailed_at < link.expires_at - timedelta(hours=nearest):
            due.append((link, nearest))
    return due


def send_reminder(link: ConsentLink, hours: int) -> MailMessage | None:
    """Remind the link's recipient, once per reminder time; None when this
    reminder (or a later one) already went."""
    keys = [
        f"consent_reminder:{link.pk}:{h}" for h in settings.CONSENT_REMINDER_HOURS if h <= hours
    ]
    if MailMessage.objects.filter(key__in=keys).exists():
        return None
    language = link_language(link)
    context = owner_context(link, language) | {"reminder": True}
    rendered = render("consent_reminder", context, language)
    message, created = post(
        keys[0],
        "consent_reminder",
        link.recipient_email,
        rendered,
        reply_to=_reply_to(link.created_by),
        consent_link=link,
    )
    if not created:
        return None
    link.note(f"Reminder to {link.recipient_email} queued ({hours} h before expiry).")
    return message


def link_mail(links: Iterable[ConsentLink]) -> dict:
    """The e-mails of these links, for the bulk progress view: counts by state and
    the failed ones (to retry)."""
    rows = MailMessage.objects.filter(
        Q(consent_link__in=list(links)), kind="consent_link"
    ).select_related("consent_link")
    counts = {state: 0 for state in MailMessage.State.values}
    failed = []
    for row in rows:
        counts[row.state] += 1
        if row.state == MailMessage.State.FAILED:
            failed.append(row)
    return {"counts": counts, "failed": failed, "total": sum(counts.values())}
