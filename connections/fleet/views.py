"""A fleet's vehicles: the list, its exports and its bulk actions. Managers of
the fleet use everything; support staff read it and use the troubleshooting
actions (retry, consent links); anyone else gets 404."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from connections.fleet import bulk, copy_export, exports
from connections.fleet.forms import ACTIONS, GROUP_LABELS, BulkActionForm, VehicleFilterForm
from connections.fleet.listing import (
    COUNT_CAP,
    Filters,
    filter_entries,
    fleet_entries,
    page_of,
    upload_choices,
)
from connections.fleet.version import ListVersion, fleet_and_version
from connections.models import Fleet, VinEntry
from connections.support.actions import escalate, send_consent_links
from connections.web.access import READ_ONLY, post_only, visible_fleet
from connections.web.live import (
    Live,
    browser_keys,
    is_current,
    no_change,
    region_response,
    row_key,
    wants_region,
)

TEMPLATE = "connections/fleet/vehicles.html"
REGION = "vehicles"
# Jinja (templates/jinja2/): every open list asks for its region on each change.
REGION_TEMPLATE = "connections/fleet/vehicles_region.html"
# A fleet can change at any time (a webhook): the list never stops polling.
POLL_SECONDS = 10
FILTER_FIELDS_SECONDS = 3600
# Support staff may use these on any fleet; the rest are for the fleet's managers.
TROUBLESHOOTING = {"retry", "consent"}
COLUMNS = [
    ("vin", "VIN"),
    ("status", "Status"),
    ("", "What happened · next step"),
    ("", "Who must act"),
    ("make", "Make"),
    ("model", "Model"),
    ("plate", "Plate"),
    ("tags", "Tags"),
    ("source", "Source"),
    ("changed", "Last change"),
]


def _filters(request: HttpRequest, fleet: Fleet, data: QueryDict) -> VehicleFilterForm:
    # The uploads' names are read only when the filter names an upload.
    return VehicleFilterForm(data, uploads=upload_choices(fleet) if data.get("upload") else [])


@lru_cache(maxsize=1024)
def _parsed(items: tuple[tuple[str, str], ...]) -> tuple[Filters, bool]:
    """The filters of a query that names no upload, and whether any is set:
    the same for every fleet, so parsed once per query (a form's fields are
    deep-copied each time one is built)."""
    form = VehicleFilterForm(QueryDict(urlencode(items)), uploads=[])
    return form.filters(), form.active


def _filters_of(request: HttpRequest, fleet: Fleet) -> tuple[Filters, bool]:
    if request.GET.get("upload"):
        form = _filters(request, fleet, request.GET)
        return form.filters(), form.active
    return _parsed(tuple(sorted((k, v) for k, v in request.GET.items() if k not in {"page", "v"})))


@lru_cache(maxsize=1024)
def _urls(slug: str) -> dict[str, str]:
    """The page's links, reversed once per fleet."""
    return {
        "page": reverse("fleet_vehicles", args=[slug]),
        "csv": reverse("fleet_vehicles_csv", args=[slug]),
        "xlsx": reverse("fleet_vehicles_xlsx", args=[slug]),
        "action": reverse("fleet_vehicles_action", args=[slug]),
        "fleet": reverse("fleet_detail", args=[slug]),
        "dashboard": reverse("dashboard"),
    }


@lru_cache(maxsize=256)
def _head(sort: str, sort_query: str) -> str:
    """The table's column headings, each a link that sorts by it (or reverses)."""
    cells = []
    for key, label in COLUMNS:
        if not key:
            cells.append(format_html('<th scope="col">{}</th>', label))
            continue
        order = {key: "ascending", f"-{key}": "descending"}.get(sort)
        href = f"?{sort_query}sort={'-' if sort == key else ''}{key}"
        # aria-sort belongs to the column header (axe refuses it on a link);
        # the arrow shows the same to the eye.
        aria = format_html(' aria-sort="{}"', order) if order else ""
        arrow = {"ascending": " ▲", "descending": " ▼"}.get(order or "", "")
        shown = format_html('<span aria-hidden="true">{}</span>', arrow) if arrow else ""
        cells.append(
            format_html('<th scope="col"{}><a href="{}">{}</a>{}</th>', aria, href, label, shown)
        )
    return mark_safe("".join(cells))  # noqa: S308 (each cell made by format_html)


def _query(data: QueryDict, *drop: str) -> str:
    return urlencode(
        [
            (k, v)
            for k, v in data.items()
            if v and k not in {"page", "v", "csrfmiddlewaretoken", *drop}
        ]
    )


def _filter_fields(fleet: Fleet, data: QueryDict, version: ListVersion) -> str:
    """The filter form's fields, rendered once per set of uploads and query
    (Django's widgets render through templates: about 10 ms for these menus)."""
    query = sorted((k, v) for k, v in data.items() if k not in {"page", "v"})
    key = "fleet-filters:" + row_key(fleet.pk, version.uploads, version.submitted, query)
    html = cache.get(key)
    if html is None:
        form = VehicleFilterForm(data, uploads=upload_choices(fleet))
        html = render_to_string("connections/fleet/filter_fields.html", {"form": form})
        cache.set(key, html, FILTER_FIELDS_SECONDS)
    return mark_safe(html)  # noqa: S308 (rendered above by the template engine, escaped there)


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


def fleet_vehicles(request: HttpRequest, slug: str) -> HttpResponse:
    """The list, and its live region: a poll (`?v=`) answers 204 while the
    fleet's version is the browser's, else only the rows it does not have; a
    filter asks for the region alone and puts the filters in the URL."""
    fleet, version, can_manage, is_support = fleet_and_version(request, slug)
    region = wants_region(request, REGION)
    if region and is_current(request, str(version)):
        return no_change()
    f, filtered = _filters_of(request, fleet)
    number = _page_number(request)
    page = page_of(fleet, f, number, str(version), with_accounts=version.vehicles > 0)
    query = _query(request.GET)
    params = dict(parse_qsl(query))
    urls = _urls(fleet.slug)
    live = Live(
        REGION,
        urls["page"],
        str(version),
        POLL_SECONDS,
        params={**params, "page": number if number > 1 else ""},
        have=browser_keys(request),
    )
    sort_query = _query(request.GET, "sort")
    context = {
        "fleet": fleet,
        "page": page,
        "urls": urls,
        "page_url": live.url,
        "rows_html": mark_safe(  # noqa: S308 (every row made by format_html)
            "".join(
                row.placeholder if live.kept(f"row-{row.key}", row.digest) else row.html
                for row in page.rows
            )
        ),
        "count_cap": COUNT_CAP,
        "query": query,
        "sort": f.sort,
        "head": _head(f.sort, sort_query + ("&" if sort_query else "")),
        "group_label": GROUP_LABELS.get(f.group, ""),
        "filtered": filtered,
    }
    if region:
        return region_response(request, REGION_TEMPLATE, context, live, using="jinja2")
    region_html = render_to_string(REGION_TEMPLATE, {**context, "live": live}, request, "jinja2")
    context |= {
        "live": live,
        "region_html": mark_safe(region_html),  # noqa: S308 (Jinja escaped it)
        # Known from the version's statement: the navigation asks no more.
        "nav_support": is_support,
        "filter_fields": _filter_fields(fleet, request.GET, version),
        "actions": {k: v for k, v in ACTIONS.items() if can_manage or k in TROUBLESHOOTING},
        "can_manage": can_manage,
    }
    return render(request, TEMPLATE, context)


def fleet_vehicles_csv(request: HttpRequest, slug: str):
    fleet = visible_fleet(request, slug)
    f = _filters(request, fleet, request.GET).filters()
    name = f"{fleet.slug}-vehicles-{timezone.now():%Y%m%d-%H%M}.csv"
    return copy_export.csv_download(fleet, f, name)


def fleet_vehicles_xlsx(request: HttpRequest, slug: str):
    fleet = visible_fleet(request, slug)
    f = _filters(request, fleet, request.GET).filters()
    name = f"{fleet.slug}-vehicles-{timezone.now():%Y%m%d-%H%M}.xlsx"
    return exports.xlsx_response(fleet, f, name)


@post_only
def fleet_vehicles_action(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = visible_fleet(request, slug)
    back_query = request.POST.get("return_query", "")
    back = redirect(f"{request.path.rsplit('action/', 1)[0]}?{back_query}".rstrip("?"))
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return back
    action = form.cleaned_data["action"]
    if action not in TROUBLESHOOTING and fleet.pk not in Fleet.objects.managed_ids(request.user):
        raise PermissionDenied(READ_ONLY)
    matching: Filters | None = None
    if form.cleaned_data["scope"] == "all":
        matching = _filters(request, fleet, QueryDict(back_query)).filters()
        entries = filter_entries(fleet_entries(fleet), matching)
    else:
        entries = fleet_entries(fleet).filter(pk__in=form.ids("e"))
    if action == "remove":
        vehicles = bulk.selected_vehicles(fleet, form.ids("v"), matching)
        count = entries.count() + vehicles.count()
        if form.cleaned_data.get("confirm") != count:
            connected = bulk.connected_count(entries, vehicles)
            return _confirm_remove(request, fleet, count, connected, _query(QueryDict(back_query)))
    outcome = _run(action, form, fleet, entries, matching, request.user)
    _report(request, action, outcome)
    return back


def _confirm_remove(
    request: HttpRequest, fleet: Fleet, count: int, connected: int, back_query: str
) -> HttpResponse:
    """Removing is irreversible for connected vehicles: a page names the count
    (and how many will be disconnected), and only a form carrying that same
    count removes them. "Keep them" goes back to the list as it was filtered."""
    fields = [
        (k, v) for k, v in request.POST.lists() if k not in {"csrfmiddlewaretoken", "confirm"}
    ]
    hidden = [(k, v) for k, values in fields for v in values]
    context = {
        "fleet": fleet,
        "count": count,
        "connected": connected,
        "hidden": hidden,
        "back_query": back_query,
    }
    return render(request, "connections/fleet/confirm_remove.html", context)


def _run(action, form, fleet, entries, matching, user) -> bulk.BulkOutcome:
    if action == "retry":
        return bulk.retry_rows(entries, user)
    if action == "consent":
        return bulk.consent_rows(entries, user)
    if action in {"tag", "untag"}:
        tags = form.cleaned_data["parsed_tags"]
        add, drop = (tags, []) if action == "tag" else ([], tags)
        return bulk.tag_rows(entries, add, drop, user)
    vehicles = bulk.selected_vehicles(fleet, form.ids("v"), matching)
    return bulk.remove_rows(fleet, entries, vehicles, user)


# What was done, said of one vehicle, of several, and of none.
DONE = {
    "retry": ("was sent again", "were sent again", "was sent again"),
    "consent": (
        "got a consent link: share it from Consent links or the VIN's page",
        "got a consent link: share them from Consent links or each VIN's page",
        "got a consent link",
    ),
    "tag": ("was tagged", "were tagged", "was tagged"),
    "untag": ("was untagged", "were untagged", "was untagged"),
    "remove": ("was removed from the fleet", "were removed from the fleet", "was removed"),
}


def _report(request: HttpRequest, action: str, outcome: bulk.BulkOutcome) -> None:
    n = outcome.done
    one, several, none = DONE[action]
    if n:
        said = f"1 vehicle {one}" if n == 1 else f"{n} vehicles {several}"
        messages.success(request, f"{said}.")
    elif not outcome.refused:
        messages.info(request, f"No vehicle {none}: nothing needed it.")
    for vin, reason in outcome.refused[:10]:
        messages.error(request, f"{vin}: {reason}" if vin else reason)
    if len(outcome.refused) > 10:
        messages.error(request, f"… and {len(outcome.refused) - 10} more not done.")
    if outcome.left:
        messages.info(request, "There are more: press the button again to go on.")


@post_only
def entry_act(request: HttpRequest, entry_id: int) -> HttpResponse:
    """The next steps a VIN's page names, as buttons: a consent link for its
    owner, or asking support (escalating to Volteras with its requestIds).
    Managers of its fleet and support staff; anyone else gets 404."""
    entry = get_object_or_404(
        VinEntry.objects.select_related("upload", "fleet", "batch").filter(
            fleet__in=Fleet.objects.visible_to(request.user)
        ),
        pk=entry_id,
    )
    action = request.POST.get("action")
    if action == "consent":
        outcome = send_consent_links([entry], request.user)
        done = "A consent link for the owner is ready: share it from the list below."
    elif action == "escalate":
        note = request.POST.get("note", "").strip()[:2000] or "Asked from the VIN's page."
        outcome = escalate([entry], request.user, note)
        done = "Support has been asked to look into this VIN (it is marked escalated)."
    else:
        messages.error(request, "Choose what to do with this VIN.")
        return redirect("entry_detail", entry.pk)
    if outcome.done:
        messages.success(request, done)
    for _, reason in outcome.refused:
        messages.error(request, reason)
    return redirect("entry_detail", entry.pk)
