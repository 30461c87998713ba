"""Consent Flow links: create, share, track, revoke and reissue them; the
public short link and return URL the owner sees; connected accounts.

Portal pages follow the foundation's rule: a fleet the user may not see (and
anything in it) answers 404. The two public views answer 404 to an unknown
token and never show portal internals.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from connections.consent import emails, vin_links
from connections.consent.accounts import disconnect_account, refresh_accounts
from connections.consent.forms import ConsentLinkForm, SendLinkForm, StatusFilterForm
from connections.consent.links import (
    can_reissue,
    create_link,
    refusal_message,
    reissue,
    reissue_expiring,
    revoke,
)
from connections.consent.options import SCOPES
from connections.consent.sharing import link_version, list_version, mailto, qr_svg, row_parts
from connections.consent.tasks import enqueue_vehicle_sync
from connections.consent.vin_links import (
    create_vin_links_batch,
    needing_consent,
)
from connections.csv_files import csv_safe, csv_text
from connections.mail.tasks import enqueue_delivery
from connections.models import ConnectedAccount, ConsentLink, MailMessage, Source
from connections.volteras import VolterasError
from connections.web.access import (
    managed_fleet,
    post_only,
    require_manager,
    visible_fleet,
    visible_upload,
)
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    mark_rows,
    no_change,
    region_response,
    row_key,
    wants_region,
)

LIST_POLL_SECONDS = 15
# The owner opens and completes the link while its page is watched.
LINK_POLL_SECONDS = 5
LIST_REGION = "link-rows"
LINK_ROWS = "connections/consent/link_list.html#link_rows"
LINK_REGION = "link-live"
LINK_LIVE = "connections/consent/link_detail.html#live"
# "Close to expiry" for the one-click reissue of a fleet's links.
REISSUE_WINDOW = timedelta(days=2)
CSV_COLUMNS = ["vin", "registration_plate", "link", "expires_at"]


def _fleet_link(request: HttpRequest, slug: str, pk: int) -> ConsentLink:
    fleet = visible_fleet(request, slug)
    return get_object_or_404(ConsentLink.objects.select_related("fleet"), fleet=fleet, pk=pk)


def link_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The fleet's links; their table is a live region polling this same view
    (204 while no link changed, else only the changed rows). It never stops: a
    colleague may make a link at any time."""
    fleet = visible_fleet(request, slug)
    version = list_version(fleet, timezone.now())
    region = wants_region(request, LIST_REGION)
    if region and is_current(request, version):
        return no_change()
    form = StatusFilterForm(request.GET or None)
    state = form.cleaned_data["status"] if form.is_valid() else ""
    links = fleet.consent_links.select_related("account", "created_by", "vin_entry")
    if state:
        links = links.in_state(state)
    links = list(links[:200])
    live = Live(
        LIST_REGION,
        reverse("consent_link_list", args=[fleet.slug]),
        version,
        LIST_POLL_SECONDS,
        params={"status": state},
        have=browser_keys(request),
    )
    mark_rows(links, live, "link-", lambda link: row_key(*row_parts(link)))
    context = {"fleet": fleet, "form": form, "state": state, "links": links, "live": live}
    if region:
        return region_response(request, LINK_ROWS, context, live)
    context["expiring"] = fleet.consent_links.expiring_within(REISSUE_WINDOW).count()
    return render(request, "connections/consent/link_list.html", context)


def link_new(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = managed_fleet(request, slug)
    form = ConsentLinkForm(request.POST or None, fleet=fleet)
    if request.method == "POST" and form.is_valid():
        try:
            link = create_link(
                fleet,
                form.options(),
                user=request.user,
                label=form.cleaned_data["label"],
                recipient_note=form.cleaned_data["recipient_note"],
                language=(form.cleaned_data["locale"] or "").partition("-")[0],
            )
        except VolterasError as exc:
            form.add_error(None, refusal_message(exc))
        else:
            to = form.cleaned_data["recipient_email"]
            if to:
                emails.send_link(link, to, request.user)
                messages.success(request, f"Link created and being e-mailed to {to}.")
            else:
                messages.success(request, "Link created. Share it with the vehicle owner.")
            return redirect(link)
    status = 400 if form.errors else 200
    return render(
        request, "connections/consent/link_new.html", {"fleet": fleet, "form": form}, status=status
    )


def link_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A link's page; its live part polls this same view until the link is
    final (completed, declined, expired, revoked, reissued): 204 while it did not
    change, else the parts that did, 286 and no poller once it is final."""
    link = _fleet_link(request, slug, pk)
    version = link_version(link)
    region = wants_region(request, LINK_REGION)
    if region and is_current(request, version):
        return no_change()
    live = Live(
        LINK_REGION,
        link.get_absolute_url(),
        version,
        LINK_POLL_SECONDS if link.is_usable else None,
    )
    context = {
        "fleet": link.fleet,
        "link": link,
        "qr": qr_svg(link.short_url),
        "mailto": mailto(link),
        "events": link.events.select_related("actor"),
        "scopes": [(s, SCOPES.get(s, s)) for s in link.options.get("scopes", [])],
        "can_reissue": can_reissue(link),
        "replaces": ConsentLink.objects.filter(replaced_by=link).first(),
        "send_form": SendLinkForm(initial={"email": link.recipient_email}),
        "live": live,
    }
    context["keys"] = {
        "title": row_key(str(link), link.state),
        "share": row_key(link.is_usable, context["can_reissue"], link.replaced_by_id),
        "details": row_key(link.opens, link.last_opened_at, link.account_id),
    }
    if region:
        return region_response(request, LINK_LIVE, context, live)
    context["mail"] = link.messages.order_by("created_at")
    return render(request, "connections/consent/link_detail.html", context)


@post_only
def link_send(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """E-mail the link to one address (the owner's), from the link's page."""
    link = _fleet_link(request, slug, pk)
    if link.vin_entry_id is None:
        require_manager(request, link.fleet)
    form = SendLinkForm(request.POST)
    if not link.is_usable:
        messages.warning(request, "This link can no longer be used: reissue it first.")
    elif not form.is_valid():
        messages.error(request, "Give one valid e-mail address.")
    else:
        to = form.cleaned_data["email"]
        message = emails.send_link(link, to, request.user)
        if message.state == MailMessage.State.FAILED and message.retry():
            enqueue_delivery(message)
        messages.success(request, f"The link is being e-mailed to {to}.")
    return redirect(link)


def link_print(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    link = _fleet_link(request, slug, pk)
    context = {"fleet": link.fleet, "link": link, "qr": qr_svg(link.short_url, scale=8)}
    return render(request, "connections/consent/link_print.html", context)


@post_only
def link_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    link = _fleet_link(request, slug, pk)
    require_manager(request, link.fleet)
    if revoke(link, request.user):
        messages.success(request, "Link revoked: its short link no longer works.")
    else:
        messages.warning(request, f"This link is {link.get_state_display().lower()} already.")
    return redirect(link)


@post_only
def link_reissue(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    link = _fleet_link(request, slug, pk)
    if link.vin_entry_id is None:
        # A fleet link is the managers'; a VIN's link is a troubleshooting tool support uses too.
        require_manager(request, link.fleet)
    try:
        new = reissue(link, request.user)
    except VolterasError as exc:
        messages.error(request, refusal_message(exc))
        return redirect(link)
    except ValueError as exc:
        messages.warning(request, str(exc))
        return redirect(link)
    messages.success(request, "New link created; the old short link now forwards to it.")
    return redirect(new)


@post_only
def link_reissue_expiring(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = managed_fleet(request, slug)
    created, problem = reissue_expiring(fleet, REISSUE_WINDOW, request.user)
    if created:
        messages.success(request, f"Reissued {len(created)} link(s) close to expiry.")
    if problem:
        messages.error(request, f"Stopped reissuing: {problem}")
    elif not created:
        messages.info(request, "No active link expires within two days.")
    return redirect("consent_link_list", fleet.slug)


@post_only
def upload_links(request: HttpRequest, upload_id: int) -> HttpResponse:
    """Per-VIN links for the upload's CONNECTION_REQUIRED VINs (the ticked
    `entry` ids, or all of them when none is ticked), a bounded number per
    request: the message says what is left, and posting again goes on."""
    upload = visible_upload(request, upload_id)
    ids = [
        int(value) for value in request.POST.getlist("entry") if value.isascii() and value.isdigit()
    ]
    if not ids and request.POST.get("selected"):
        # "For the selected VINs" with nothing ticked must not mean all of them.
        messages.error(request, "Tick the VINs that need a consent link, then press the button.")
        return redirect(upload)
    entries = list(upload.entries.filter(pk__in=ids)) if ids else None
    run = create_vin_links_batch(upload, entries, request.user)
    for vin, problem in run.failures.items():
        messages.error(request, f"{vin}: {problem}")
    if run.links:
        kept = len(run.links) - run.created
        text = f"{run.created} consent link{pluralize(run.created)} created."
        if kept:
            keep = "keeps it" if kept == 1 else "keep theirs"
            text += f" {kept} VIN{pluralize(kept)} already had one and {keep}."
        them = "them" if len(run.links) > 1 else "it"
        messages.success(request, f"{text} Download the CSV to send {them}.")
    n = run.remaining
    left = f"{n} VIN{pluralize(n)} still need{pluralize(n, 's,')} a link"
    if run.stopped:
        messages.error(
            request,
            f"Stopped: {run.stopped} {left}; "
            "create consent links again later to go on (links already made are kept).",
        )
    elif run.remaining:
        messages.warning(
            request,
            f"{left}: at most {vin_links.VIN_LINKS_PER_REQUEST} are created at a time, "
            "so create consent links again to go on.",
        )
    mailed = emails.send_vin_links(run.links, request.user)
    if mailed:
        said = "1 link is" if len(mailed) == 1 else f"{len(mailed)} links are"
        owners = "its owner" if len(mailed) == 1 else "their owners"
        messages.info(request, f"{said} being e-mailed to {owners}.")
    if not run.links and not run.failures and not run.remaining:
        which = "selected VIN" if ids else "VIN of this upload"
        messages.info(request, f"No {which} needs the owner's consent.")
    return redirect(upload)


def upload_mail(request: HttpRequest, upload_id: int) -> HttpResponse:
    """How the e-mailing of the upload's per-VIN links is going (polled while any is queued)."""
    upload = visible_upload(request, upload_id)
    links = ConsentLink.objects.filter(vin_entry__upload=upload)
    context = {"upload": upload, "fleet": upload.fleet, **emails.link_mail(links)}
    template = "connections/consent/upload_mail.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, context)


@post_only
def upload_mail_retry(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = visible_upload(request, upload_id)
    failed = MailMessage.objects.filter(
        consent_link__vin_entry__upload=upload, state=MailMessage.State.FAILED
    )
    retried = [message for message in failed if message.retry()]
    for message in retried:
        enqueue_delivery(message)
    messages.success(request, f"{len(retried)} e-mail(s) queued again.")
    return redirect("upload_consent_mail", upload.pk)


@require_GET
def upload_links_csv(request: HttpRequest, upload_id: int) -> HttpResponse:
    """`vin,registration_plate,link,expires_at` of each usable link of a VIN that
    still needs the owner's consent, for a mail merge (plain UTF-8, no BOM)."""
    upload = visible_upload(request, upload_id)
    links = (
        ConsentLink.objects.active()
        .filter(vin_entry__in=needing_consent(upload))
        .select_related("vin_entry")
        .order_by("vin_entry__line_number", "-expires_at")
    )
    seen: set[int] = set()
    rows = []
    for link in links:
        if link.vin_entry_id in seen:
            continue
        seen.add(link.vin_entry_id)
        rows.append(
            [
                csv_safe(link.vin),
                csv_safe(link.vin_entry.registration_plate),
                link.short_url,
                link.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ]
        )
    body = csv_text(CSV_COLUMNS, rows).encode("utf-8")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="upload-{upload.pk}-consent-links.csv"'
    return response


def account_list(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    accounts = list(
        fleet.connected_accounts.annotate(
            link_count=Count("consent_links", filter=Q(consent_links__fleet=fleet))
        ).order_by("status", "-connected_at")
    )
    for account in accounts:
        account.vehicle_list = list(account.vehicles())
    return render(
        request, "connections/consent/account_list.html", {"fleet": fleet, "accounts": accounts}
    )


@post_only
def account_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    try:
        seen, gone = refresh_accounts(fleet)
    except VolterasError as exc:
        messages.error(request, refusal_message(exc))
    else:
        connected = fleet.connected_accounts.filter(status=ConnectedAccount.Status.CONNECTED)
        ids = list(connected.values_list("pk", flat=True))
        enqueue_vehicle_sync(ids, Source.RECONCILIATION, "Accounts refreshed")
        text = f"{seen} account(s) still connected."
        if gone:
            text += f" {gone} no longer listed by Volteras, now shown as disconnected."
        if seen:
            text += " Their vehicles are being read from Volteras and appear here shortly."
        messages.success(request, text)
    return redirect("consent_account_list", fleet.slug)


def account_disconnect(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """GET: what disconnecting will do; POST: do it."""
    fleet = managed_fleet(request, slug)
    account = get_object_or_404(fleet.connected_accounts, pk=pk)
    if request.method == "POST":
        if not account.is_connected:
            messages.info(request, "This account is already disconnected.")
        else:
            try:
                disconnect_account(account, request.user)
            except VolterasError as exc:
                messages.error(request, refusal_message(exc))
                return redirect("consent_account_disconnect", fleet.slug, account.pk)
            messages.success(request, f"Account {account} disconnected.")
        return redirect("consent_account_list", fleet.slug)
    context = {"fleet": fleet, "account": account, "vehicles": list(account.vehicles())}
    return render(request, "connections/consent/account_disconnect.html", context)
