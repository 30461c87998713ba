"""Upload VINs, preview their validation, submit them, and watch them live."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe

from connections.csv_files import stream_csv
from connections.models import (
    ConsentLink,
    Fleet,
    Upload,
    VinEntry,
)
from connections.models.summaries import entry_groups
from connections.support.actions import retry
from connections.uploads.eligibility import LABELS as ELIGIBILITY_LABELS
from connections.uploads.eligibility import progress as eligibility_progress
from connections.uploads.exports import EXPORT_COLUMNS, export_rows, invalid_rows_csv
from connections.uploads.forms import (
    EntryFilterForm,
    UploadForm,
    apply_filters,
    clean_filters,
    filter_form,
)
from connections.uploads.page_rows import page_rows
from connections.uploads.polled import polled_upload
from connections.uploads.reading import read_upload
from connections.uploads.rows import ImportProblem
from connections.uploads.submission import UploadNotStored, create_upload, submit
from connections.uploads.table import RowKeys, needs_you_note, render_rows
from connections.uploads.table import summary as table_summary
from connections.uploads.tasks import start_eligibility_check
from connections.web.access import (
    WATCH_SECONDS,
    managed_fleet,
    managed_upload,
    post_only,
    visible_upload,
)
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
FILTER_FIELDS = frozenset(EntryFilterForm.base_fields)
FAST_POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30
# Jinja (templates/jinja2/): every open table asks for it on each change.
LIVE_TABLE = "connections/uploads/live_region.html"


def upload_new(request: HttpRequest, slug: str) -> HttpResponse:
    fleet = managed_fleet(request, slug)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        source = data["file"] or data["text"]
        name = data["file"].name if data["file"] else ""
        try:
            upload = create_upload(
                fleet,
                request.user,
                read_upload(source, filename=name),
                source_name=name,
                include_existing=data["include_existing"],
            )
        except (ImportProblem, UploadNotStored) as problem:
            form.add_error(None, str(problem))
        else:
            return redirect(upload)
    return render(request, "connections/uploads/upload_new.html", {"fleet": fleet, "form": form})


# Whether a row has a consent link: the links are read only for the rows that
# have one (`page_rows`); most pages have none, and then no query is made.
HAS_LINKS = Exists(ConsentLink.objects.filter(vin_entry=OuterRef("pk")))


def _table_context(request: HttpRequest, upload: Upload) -> dict:
    # The summary counts, the filters' choices and the pager's total all come
    # from the counts of this upload version, counted once per version.
    groups = entry_groups(upload)
    counts = groups.counts
    errors, makes = tuple(sorted(groups.errors)), tuple(sorted(groups.makes))
    query = tuple(sorted((k, v) for k, v in request.GET.items() if k in FILTER_FIELDS))
    filters = clean_filters(query, errors, makes)

    def filtered() -> QuerySet[VinEntry]:
        # Built only when asked: a poll's page statement is composed once.
        return apply_filters(upload.entries.all(), filters).annotate(has_links=HAS_LINKS)

    page = _page(request, filters, groups, filtered)
    params = {k: v for k, v in request.GET.items() if k not in {"page", "v"} and v}
    summary = table_summary(counts, groups.warnings, groups.waiting_for_consent)
    submitted = upload.state == Upload.State.SUBMITTED
    polling, watching, poll_seconds = _poll_plan(upload, summary)
    live = Live(
        region="live",
        url=reverse("upload_rows", args=[upload.pk]),
        version=upload.version,
        every=poll_seconds if polling else WATCH_SECONDS if watching else None,
        params={**params, "page": page.number if page.number > 1 else ""},
        have=browser_keys(request),
        stop=not polling,
    )
    context = {
        "upload": upload,
        "fleet": upload.fleet,
        "filters": filters,
        "filter_choices": (errors, makes),
        "page": page,
        "summary": summary,
        "query": urlencode(params),
        "sort": filters["sort"] if filters else "",
        "poll_seconds": poll_seconds,
        "submitted": submitted,
        "checking": upload.state == Upload.State.CHECKING,
        "polling": polling,
        "watching": watching,
        "watch_seconds": WATCH_SECONDS,
        # Only a draft's rows offer a change (Remove): no query for the others.
        "managed": not submitted and upload.fleet.pk in Fleet.objects.managed_ids(request.user),
        "show_eligibility": not submitted and upload.entries.exclude(eligibility="").exists(),
        "eligibility_labels": ELIGIBILITY_LABELS,
        "live": live,
        "eligibility_progress": (
            eligibility_progress(upload) if upload.state == Upload.State.CHECKING else None
        ),
    }
    _prepare_rows(request, filtered, page, upload, live, context)
    context["needs_you_note"] = needs_you_note(groups.needs_you, context["rows"], params)
    _mark_frame(upload, live, context)
    return context


def _page(request: HttpRequest, filters, groups, filtered) -> Page:
    """The page asked for. Its pager counts row positions, from the counts of
    this upload version; only a search is not in them and has its own COUNT.
    The rows themselves are read by `page_rows`."""
    if filters and not filters["q"]:
        count = groups.matching(
            status=filters["status"], error=filters["error"], make=filters["make"]
        )
    else:
        count = filtered().count()
    return Paginator(range(count), PAGE_SIZE).get_page(request.GET.get("page"))


def _mark_frame(upload: Upload, live: Live, context: dict) -> None:
    """Key the region's parts around the rows by what they show, as rows are:
    a part the browser already shows at that key is sent as a placeholder. The
    summary moves with the counts, not with every version (most versions change
    a row's message or time, not a count)."""
    parts = {
        "summary": (
            context["summary"], context["submitted"], context["checking"], context["polling"],
            context["watching"], context["poll_seconds"], context["watch_seconds"],
            context["eligibility_progress"], upload.eligibility, context["query"],
        ),
        "head": (context["query"], context["show_eligibility"], context["sort"]),
        "pages": (context["query"], context["page"].number, context["page"].paginator.count),
    }  # fmt: skip
    for name, shown in parts.items():
        key = row_key(*shown)
        context[f"{name}_key"] = key
        context[f"{name}_kept"] = live.kept(f"live-{name}", key)


def _poll_plan(upload: Upload, summary: dict) -> tuple[bool, bool, int]:
    """Whether the table polls fast, whether it only watches for late changes,
    and the fast poll's interval."""
    submitted = upload.state == Upload.State.SUBMITTED
    polling = upload.state == Upload.State.CHECKING or (submitted and not summary["settled"])
    # Settled is not frozen: a disconnect or a completed consent can still arrive
    # by webhook, so a slow version check keeps watching once fast polling stops.
    watching = submitted and summary["settled"]
    return polling, watching, SLOW_POLL_SECONDS if summary["slow"] else FAST_POLL_SECONDS


def _prepare_rows(
    request: HttpRequest,
    filtered: Callable[[], QuerySet[VinEntry]],
    page,
    upload: Upload,
    live: Live,
    context: dict,
) -> None:
    """The page's rows, rendered (`rows_html`). First each row's key, from its
    plain values (`page_rows`): a row the browser already shows at that key is
    sent as a placeholder only; the others are written whole (`row_html`)."""
    frame = tuple(
        context[k] for k in ("submitted", "managed", "checking", "show_eligibility", "query")
    )
    filters = context["filters"]
    start, length = (page.number - 1) * PAGE_SIZE, len(page.object_list)
    rows = page_rows(
        lambda: filtered()[start : start + length],
        RowKeys(frame, row_key),
        lambda pk, key: live.kept(f"entry-{pk}", key),
        # What the page's SQL depends on: it is composed once for all of them.
        statement=(upload.pk, filters and tuple(sorted(filters.items())), start, length),
    )
    page.object_list = context["rows"] = rows
    consent_links_url = reverse("upload_consent_links", args=[upload.pk])
    html = render_rows(request, rows, context, consent_links_url)
    context["rows_html"] = mark_safe(html)  # noqa: S308 (row_html escaped it)


def upload_detail(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = visible_upload(request, upload_id, "summary")
    context = _table_context(request, upload)
    if wants_region(request, "live"):
        # The filters ask for the table alone (and put their choice in the URL).
        return region_response(request, LIVE_TABLE, context, context["live"], using="jinja2")
    # The filter form, outside the live region, only on the whole page.
    context["form"] = filter_form(request.GET, *context["filter_choices"])
    live_html = render_to_string(LIVE_TABLE, context, request, using="jinja2")
    context["live_html"] = mark_safe(live_html)  # noqa: S308 (Jinja escaped it)
    return render(request, "connections/uploads/upload_detail.html", context)


def upload_rows(request: HttpRequest, upload_id: int) -> HttpResponse:
    """The live table's poll: a version check first, rows only when changed.

    Answers 286 once every VIN is final, which stops the table's fast poll; the
    table it sends then carries the slow watcher, which polls this same view so
    that a late change (a disconnect) still shows."""
    upload = None
    if request.htmx and "v" in request.GET:
        # The common case, a poll that finds nothing new: one small query,
        # which also brings the upload when there is something new.
        polled = polled_upload(request.user, upload_id)
        if polled is not None:
            if is_current(request, polled.version):
                return no_change()
            upload = polled.upload()
    if upload is None:
        upload = visible_upload(request, upload_id, "summary")
    context = _table_context(request, upload)
    return region_response(request, LIVE_TABLE, context, context["live"], using="jinja2")


@post_only
def upload_submit(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = managed_upload(request, upload_id)
    # The eligibility check is advice: sending never waits for it (it stops itself).
    batches = submit(upload, request.user)
    if batches:
        sendable = upload.entries.exclude(batch=None).count()
        messages.success(
            request,
            f"{sendable} VINs are on their way to Volteras in {batches} "
            f"batch{'es' if batches > 1 else ''}. This table updates itself.",
        )
    elif upload.state == Upload.State.SUBMITTED:
        messages.info(request, "This upload was already submitted.")
    else:
        messages.error(request, "There are no valid VINs to send. Fix the file and upload again.")
    return redirect(upload)


@post_only
def upload_check_eligibility(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = managed_upload(request, upload_id)
    if start_eligibility_check(upload):
        messages.info(request, "Checking eligibility with Volteras; the table updates itself.")
    else:
        messages.error(request, "Only an upload that has not been sent can be checked.")
    return redirect(upload)


@post_only
def entry_remove(request: HttpRequest, upload_id: int, entry_id: int) -> HttpResponse:
    upload = managed_upload(request, upload_id)
    entry = get_object_or_404(upload.entries, pk=entry_id)
    if upload.state != Upload.State.DRAFT:
        messages.error(request, "Rows can only be removed before the upload is submitted.")
    else:
        upload.entries.filter(pk=entry.pk).remove()
        messages.success(request, f"Line {entry.line_number} ({entry.vin}) was removed.")
    return _back(request, upload)


@post_only
def entry_retry(request: HttpRequest, upload_id: int, entry_id: int) -> HttpResponse:
    upload = visible_upload(request, upload_id)
    entry = get_object_or_404(upload.entries.select_related("upload", "fleet"), pk=entry_id)
    # The same service as support's bulk retry, so the same rules hold here.
    outcome = retry([entry], request.user)
    if outcome.refused:
        messages.error(request, f"{entry.vin} was not retried: {outcome.refused[0][1]}")
    else:
        messages.success(request, f"{entry.vin} is being sent again.")
    if request.POST.get("back_to") == "entry":
        return redirect("entry_detail", entry.pk)
    return _back(request, upload)


def _back(request: HttpRequest, upload: Upload) -> HttpResponseRedirect:
    query = request.POST.get("return_query", "")
    return redirect(upload.get_absolute_url() + (f"?{query}" if query else ""))


def upload_export(request: HttpRequest, upload_id: int) -> StreamingHttpResponse:
    upload = visible_upload(request, upload_id)
    entries = upload.entries.order_by("line_number", "pk").iterator(chunk_size=2000)
    return stream_csv(f"upload-{upload.pk}.csv", EXPORT_COLUMNS, export_rows(entries))


def upload_invalid_csv(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = visible_upload(request, upload_id)
    entries = upload.entries.filter(validity=VinEntry.Validity.INVALID).order_by("line_number")
    body = invalid_rows_csv(entries.iterator(chunk_size=2000)).encode("utf-8-sig")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="upload-{upload.pk}-to-fix.csv"'
    return response
