"""The support workspace: every VIN that is not connected across all fleets,
why, what to do next, and the actions that do it. Support staff and admins
only; everyone else gets 404, never a hint that the page exists."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince

from connections.csv_files import csv_safe, stream_csv
from connections.explanations import EXPLANATIONS, STATUS_EXPLANATIONS
from connections.makes import make_label
from connections.models import Fleet, Upload, user_is_support
from connections.stuck import stuck_thresholds
from connections.support.actions import ACTIONS, load_entries
from connections.support.charts import bar_chart
from connections.support.forms import SupportActionForm, SupportFilterForm
from connections.support.workspace import counts_by, incidents, stuck_entries, workspace_entries
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    no_change,
    region_response,
    row_key,
    wants_region,
)

PAGE_SIZE = 100
STUCK_SHOWN = 20
REGION = "support-live"
LIVE_REGION = "connections/support/home.html#live"
# Failures can arrive at any time: the workspace never stops polling.
POLL_SECONDS = 20
# Ages, stuck VINs and incidents move with the clock: so does the version.
CLOCK_SECONDS = 120
MAX_REFUSALS_SHOWN = 15
EXPORT_COLUMNS = [
    "vin",
    "fleet",
    "make",
    "registration_plate",
    "status",
    "error_codes",
    "message",
    "action_category",
    "who_must_act",
    "explanation",
    "next_step",
    "retry_helps",
    "can_retry",
    "status_changed_at",
    "age_hours",
    "stuck",
    "escalated",
    "dismissed",
    "vehicle_id",
    "upload_id",
    "portal_url",
]


def require_support(request: HttpRequest) -> None:
    if not user_is_support(request.user):
        raise Http404("No such page.")


def _filter_form(request: HttpRequest, base) -> SupportFilterForm:
    errors = base.exclude(error_code="").values_list("error_code", flat=True).distinct()
    makes = base.exclude(make="").values_list("make", flat=True).distinct()
    return SupportFilterForm(
        request.GET,
        fleets=list(Fleet.objects.only("slug", "name").order_by("name")),
        errors=sorted(errors.order_by()),
        makes=sorted(makes.order_by()),
    )


def _params(request: HttpRequest, *drop: str) -> dict[str, str]:
    return {k: v for k, v in request.GET.items() if v and k not in {"page", *drop}}


def workspace_version(now) -> str:
    """What the workspace's poll compares: one query over the uploads (every
    change to a VIN bumps its upload's version, `Fleet.live_version`), plus the
    clock in steps of CLOCK_SECONDS, as ages, stuck VINs and incidents move with it."""
    uploads = Upload.objects.aggregate(n=Count("pk"), v=Sum("version"))
    return f"{uploads['n']}.{uploads['v'] or 0}.{int(now.timestamp()) // CLOCK_SECONDS}"


def support_home(request: HttpRequest) -> HttpResponse:
    """The workspace; its live region (`#support-live`) polls this same view:
    204 while nothing changed, else the region with only the changed rows. It
    never stops: a failure can arrive at any time."""
    require_support(request)
    now = timezone.now()
    version = workspace_version(now)
    region = wants_region(request, REGION)
    if region and is_current(request, version):
        return no_change()
    context = _workspace_context(request, now, version)
    if region:
        return region_response(request, LIVE_REGION, context, context["live"])
    return render(request, "connections/support/home.html", context)


def _workspace_context(request: HttpRequest, now, version: str) -> dict:
    base = workspace_entries()
    form = _filter_form(request, base)
    filtered = form.apply(base)
    page = Paginator(filtered.select_related("fleet"), PAGE_SIZE).get_page(request.GET.get("page"))
    params = _params(request, "v")
    live = Live(
        REGION,
        reverse("support_home"),
        version,
        POLL_SECONDS,
        params={**params, "page": page.number if page.number > 1 else ""},
        have=browser_keys(request),
    )
    open_entries = base.filter(dismissed=False)
    stuck = stuck_entries(open_entries).select_related("fleet")
    context = {
        "form": form,
        "page": page,
        "rows": _rows(page, live, now),
        "query": urlencode(params),
        "sort_query": urlencode(_params(request, "sort", "v")),
        "sort": form.sort_key,
        "filtered": len(params) > 0,
        "code_chart": bar_chart(
            "VINs by error code",
            counts_by(filtered.exclude(error_code=""), "error_code"),
            "error",
            params,
        ),
        "make_chart": bar_chart(
            "VINs by make", counts_by(filtered, "make"), "make", params, make_label
        ),
        "stuck": stuck[:STUCK_SHOWN],
        "stuck_count": stuck.count(),
        "thresholds": stuck_thresholds(),
        "incidents": incidents(now),
        "incident_min": settings.INCIDENT_MIN_VINS,
        "incident_hours": settings.INCIDENT_WINDOW_HOURS,
        "actions": ACTIONS,
        "webhooks_url": _optional_url("webhook_events"),
        "live": live,
    }
    context["keys"] = _part_keys(context, version)
    return context


def _rows(page, live: Live, now) -> list[dict]:
    """The table's rows, each keyed by what it shows. The key has two parts, the
    VIN's state and its age ("3 hours"): a row whose age alone moved is sent
    again but not announced as a changed VIN."""
    thresholds = stuck_thresholds()
    rows = []
    for entry in page:
        x = entry.explanation
        row = {
            "entry": entry,
            "explanation": x,
            "who": entry.who_acts,
            "stuck": entry.is_stuck(now, thresholds),
            "age": timesince(entry.status_changed_at, now, depth=1),
        }
        state = row_key(
            entry.pk, entry.vin, entry.raw_vin, entry.fleet.name, entry.fleet.slug, entry.make,
            entry.registration_plate, entry.status, row["stuck"], entry.escalated,
            entry.dismissed, entry.error_codes, entry.problems, entry.message, row["who"],
            x and (x.code, x.title, x.next_step, x.retry_helps),
        )  # fmt: skip
        row["key"] = f"{state}.{row_key(row['age'])[:6]}"
        element = f"entry-{entry.pk}"
        row["kept"] = live.kept(element, row["key"])
        row["announce"] = live.have.get(element, "").partition(".")[0] != state
        rows.append(row)
    return rows


def _part_keys(context: dict, version: str) -> dict[str, str]:
    """Keys of the region's parts other than rows: each what it shows."""
    page, query = context["page"], context["query"]
    clock = version.rpartition(".")[2]  # "waiting for" labels move with the clock
    stuck = [(e.pk, e.status, e.vin, e.fleet_id) for e in context["stuck"]]
    return {
        "stats": row_key(page.paginator.count, context["stuck_count"], len(context["incidents"])),
        "incidents": row_key(context["incidents"]),
        "charts": row_key(context["code_chart"], context["make_chart"]),
        "stuck": row_key(stuck, context["stuck_count"], clock),
        "head": row_key(query, context["sort_query"], page.number, page.paginator.num_pages),
        "pages": row_key(query, page.number, page.paginator.count),
    }


def _optional_url(name: str) -> str:
    """A link to a page another feature may not have yet."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _export_rows(entries):
    thresholds = stuck_thresholds()
    now = timezone.now()
    for entry in entries.iterator(chunk_size=2000):
        x = entry.explanation
        age = now - entry.status_changed_at
        stuck = entry.is_stuck(now, thresholds)
        yield (
            [
                csv_safe(entry.vin),
                csv_safe(entry.fleet.slug),
                csv_safe(entry.make),
                csv_safe(entry.registration_plate),
                entry.status,
                csv_safe(";".join(entry.error_codes)),
                csv_safe(entry.message or "; ".join(entry.problems)),
                csv_safe(entry.action_category),
                entry.who_acts,
                csv_safe(x.explanation) if x else "",
                csv_safe(x.next_step) if x else "",
                ("true" if x.retry_helps else "false") if x else "",
                "" if entry.can_retry is None else str(entry.can_retry).lower(),
                entry.status_changed_at.isoformat(),
                f"{age.total_seconds() / 3600:.1f}",
                str(stuck).lower(),
                str(entry.escalated).lower(),
                str(entry.dismissed).lower(),
                csv_safe(entry.vehicle_id),
                entry.upload_id,
                reverse("entry_detail", args=[entry.pk]),
            ]
        )


def support_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered view (every page of it) as CSV."""
    require_support(request)
    base = workspace_entries()
    filtered = _filter_form(request, base).apply(base).select_related("fleet")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return stream_csv(f"support-vins-{stamp}.csv", EXPORT_COLUMNS, _export_rows(filtered))


def support_action(request: HttpRequest) -> HttpResponse:
    """Retry, consent link, escalate or dismiss the selected VINs."""
    # The role first: a fleet manager's GET gets 404 like every support page,
    # not a 405 that tells them the route exists.
    require_support(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = SupportActionForm(request.POST)
    back = _back(request)
    if not form.is_valid():
        problems = [str(e) for errors in form.errors.values() for e in errors]
        if "entries" in form.errors and not request.POST.getlist("entries"):
            problems = ["Select at least one VIN first."]
        messages.error(request, "Nothing was done: " + " ".join(problems))
        return redirect(back)
    data = form.cleaned_data
    action = ACTIONS[data["action"]]
    entries = load_entries(data["entries"])
    if not entries:
        messages.error(request, "Nothing was done: none of the selected VINs exists any more.")
        return redirect(back)
    if data["action"] == "retry":
        outcome = action.run(entries, request.user, force=data["force"])
    elif action.needs == "note":
        outcome = action.run(entries, request.user, data["note"].strip())
    elif action.needs == "reason":
        outcome = action.run(entries, request.user, data["reason"].strip())
    else:
        outcome = action.run(entries, request.user)
    if outcome.done:
        n = len(outcome.done)
        messages.success(request, f"{n} VIN{'s' if n != 1 else ''} {action.verb}.")
    if outcome.refused:
        n = len(outcome.refused)
        lines = [f"{e.vin}: {reason}" for e, reason in outcome.refused[:MAX_REFUSALS_SHOWN]]
        if n > MAX_REFUSALS_SHOWN:
            lines.append(f"and {n - MAX_REFUSALS_SHOWN} more.")
        messages.error(
            request,
            f"{n} VIN{'s were' if n != 1 else ' was'} not {action.verb}: " + " · ".join(lines),
        )
    return redirect(back)


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    query = request.POST.get("return_query", "")
    return reverse("support_home") + (f"?{query}" if query else "")


def support_codes(request: HttpRequest) -> HttpResponse:
    """The table of knowledge: every error code we explain, and the states with a
    next step but no code, each with its open VINs and a link to them."""
    require_support(request)
    open_entries = workspace_entries().filter(dismissed=False)
    open_counts = dict(counts_by(open_entries.exclude(error_code=""), "error_code"))
    by_status = dict(counts_by(open_entries.filter(error_code=""), "status"))
    rows = [
        (x, by_status.get(status, 0), urlencode({"status": status}))
        for status, x in STATUS_EXPLANATIONS.items()
    ]
    rows += [
        (x, open_counts.get(code, 0), urlencode({"error": code}))
        for code, x in sorted(EXPLANATIONS.items())
    ]
    unknown = sorted(code for code in open_counts if code not in EXPLANATIONS)
    return render(
        request,
        "connections/support/codes.html",
        {"rows": rows, "unknown": [(c, open_counts[c]) for c in unknown]},
    )
