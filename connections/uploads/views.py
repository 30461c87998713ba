"""Upload VINs, preview their validation, submit them, and watch them live."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django_htmx.http import HTMX_STOP_POLLING

from connections.csv_files import stream_csv
from connections.models import (
    STATUS_BADGES,
    ConsentLink,
    Fleet,
    Upload,
    VinEntry,
    VinStatus,
    user_is_support,
)
from connections.models.summaries import entry_groups
from connections.support.actions import ACTIONS, request_ids, retry
from connections.uploads.eligibility import LABELS as ELIGIBILITY_LABELS
from connections.uploads.eligibility import progress as eligibility_progress
from connections.uploads.exports import EXPORT_COLUMNS, export_rows, invalid_rows_csv
from connections.uploads.forms import EntryFilterForm, UploadForm
from connections.uploads.reading import read_upload
from connections.uploads.rows import ImportProblem
from connections.uploads.submission import create_upload, submit
from connections.uploads.tasks import start_eligibility_check
from connections.uploads.vin_page import live_context, volteras_view, webhook_deliveries
from connections.web.access import (
    WATCH_SECONDS,
    managed_fleet,
    managed_upload,
    post_only,
    visible_upload,
)

PAGE_SIZE = 100
FAST_POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30


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
        except ImportProblem as problem:
            form.add_error(None, str(problem))
        else:
            if not upload.entries.exists():
                upload.delete()
                form.add_error(None, "No VINs were found in what you gave. Check the file.")
            else:
                return redirect(upload)
    return render(request, "connections/uploads/upload_new.html", {"fleet": fleet, "form": form})


def _summary(counts: dict[str, int], warnings: int = 0, needs_consent: int = 0) -> dict:
    total = sum(counts.values())
    final = sum(n for status, n in counts.items() if status in VinStatus.final())
    ordered = [
        (VinStatus(s) if s in VinStatus.values else s, counts[s], _badge(s))
        for s in VinStatus.values
        if counts.get(s)
    ]
    segments = [
        (css, round(100 * n / total, 2))
        for css, n in (
            ("ok", counts.get(VinStatus.CONNECTED, 0)),
            ("warn", counts.get(VinStatus.CONNECTION_REQUIRED, 0)),
            (
                "bad",
                sum(
                    counts.get(s, 0)
                    for s in (VinStatus.ERROR, VinStatus.INCOMPATIBLE, VinStatus.DISCONNECTED)
                ),
            ),
            # Never sent (invalid, skipped) is final too: the coloured width is the number.
            ("off", counts.get(VinStatus.INVALID, 0) + counts.get(VinStatus.SKIPPED, 0)),
        )
        if total and n
    ]
    waiting = {s for s, n in counts.items() if n and s not in VinStatus.final()}
    return {
        "counts": ordered,
        "total": total,
        "final": final,
        "percent": round(100 * final / total) if total else 100,
        "segments": segments,
        "settled": not waiting,
        "slow": bool(waiting) and waiting <= VinStatus.slow_moving(),
        "sendable": counts.get(VinStatus.READY, 0),
        "needs_consent": needs_consent,
        "invalid": counts.get(VinStatus.INVALID, 0),
        "skipped": counts.get(VinStatus.SKIPPED, 0),
        "warnings": warnings,
    }


def _badge(status: str) -> str:
    return STATUS_BADGES.get(status, "off")


def _table_context(request: HttpRequest, upload: Upload) -> dict:
    entries = upload.entries.all()
    # The summary counts, the filters' choices and the pager's total all come
    # from the counts of this upload version, counted once per version.
    groups = entry_groups(upload)
    counts = groups.counts
    form = EntryFilterForm(
        request.GET,
        statuses=[s for s in VinStatus.values if s in counts],
        errors=sorted(groups.errors),
        makes=sorted(groups.makes),
    )
    # Into a plain list (no queryset per row) and with each link's fleet, which
    # the link cell's URL needs.
    links = Prefetch(
        "consent_links", ConsentLink.objects.select_related("fleet"), to_attr="row_links"
    )
    filtered = form.apply(entries).prefetch_related(links)
    paginator = Paginator(filtered, PAGE_SIZE)
    if form.is_valid() and not form.cleaned_data["q"]:
        data = form.cleaned_data
        # Only a search is not in the counts: it leaves the pager its own COUNT.
        paginator.count = groups.matching(
            status=data["status"], error=data["error"], make=data["make"]
        )
    page = paginator.get_page(request.GET.get("page"))
    _prepare_rows(page, upload)
    params = {k: v for k, v in request.GET.items() if k not in {"page", "v"} and v}
    summary = _summary(counts, groups.warnings, groups.waiting_for_consent)
    return {
        "upload": upload,
        "fleet": upload.fleet,
        "form": form,
        "page": page,
        "summary": summary,
        "query": urlencode(params),
        "sort": form.cleaned_data.get("sort") if form.is_valid() else "",
        "poll_seconds": SLOW_POLL_SECONDS if summary["slow"] else FAST_POLL_SECONDS,
        "submitted": upload.state == Upload.State.SUBMITTED,
        "checking": upload.state == Upload.State.CHECKING,
        "polling": (
            upload.state == Upload.State.CHECKING
            or (upload.state == Upload.State.SUBMITTED and not summary["settled"])
        ),
        # Settled is not frozen: a disconnect or a completed consent can still arrive
        # by webhook, so a slow version check keeps watching once fast polling stops.
        "watching": upload.state == Upload.State.SUBMITTED and summary["settled"],
        "watch_seconds": WATCH_SECONDS,
        "show_eligibility": upload.state != Upload.State.SUBMITTED
        and upload.entries.exclude(eligibility="").exists(),
        "eligibility_labels": ELIGIBILITY_LABELS,
        "eligibility_progress": (
            eligibility_progress(upload) if upload.state == Upload.State.CHECKING else None
        ),
    }


def _prepare_rows(rows, upload: Upload) -> None:
    """What each row shows that a tag or filter would work out afresh per row
    (a hundred `{% url %}` reverses and two hundred date filters were a third of
    a poll's render): the row's links, from one reverse per name with the row's
    id put in, and its last-change time, formatted."""
    links = {
        "detail_url": reverse("entry_detail", args=[0]),
        "retry_url": reverse("entry_retry", args=[upload.pk, 0]),
        "remove_url": reverse("entry_remove", args=[upload.pk, 0]),
    }
    for entry in rows:
        for name, url in links.items():
            # Ids are never 0: "/0/" is only ever the placeholder's segment.
            setattr(entry, name, url.replace("/0/", f"/{entry.pk}/"))
        changed = timezone.localtime(entry.status_changed_at)
        entry.changed_iso = changed.isoformat()
        entry.changed_label = dateformat.format(changed, "j M H:i:s")


def upload_detail(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = visible_upload(request, upload_id, "summary")
    return render(
        request, "connections/uploads/upload_detail.html", _table_context(request, upload)
    )


def upload_rows(request: HttpRequest, upload_id: int) -> HttpResponse:
    """The live table's poll: a version check first, rows only when changed.

    Answers 286 once every VIN is final, which stops the table's fast poll; the
    rendered table then carries the slow watcher, which polls this same view and
    swaps the table in again when a late change bumps the version."""
    upload = None
    if request.htmx and "v" in request.GET:
        # The common case, a poll that finds nothing new: one small query.
        version = Upload.version_seen_by(request.user, upload_id)
        if version is not None:
            if request.GET["v"] == str(version):
                return HttpResponse(status=204)
            # Visible, as the version check just found: no need to ask again.
            upload = get_object_or_404(
                Upload.objects.select_related("fleet", "summary"), pk=upload_id
            )
    if upload is None:
        upload = visible_upload(request, upload_id, "summary")
    context = _table_context(request, upload)
    response = render(request, "connections/uploads/upload_detail.html#live", context)
    if not context["polling"]:
        response.status_code = HTMX_STOP_POLLING
    return response


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


def entry_detail(request: HttpRequest, entry_id: int) -> HttpResponse:
    """A VIN's page. While the VIN is on its way the page asks every few seconds
    (`?v=`): 204 while nothing changed, else its live part (286 once settled)."""
    entry = get_object_or_404(
        VinEntry.objects.select_related("upload__created_by", "fleet", "batch").filter(
            fleet__in=Fleet.objects.visible_to(request.user)
        ),
        pk=entry_id,
    )
    events = list(entry.events.select_related("actor").order_by("at", "pk"))
    version = f"{entry.status}.{events[-1].pk if events else 0}.{int(entry.escalated)}"
    live = {**live_context(request, entry, events), "version": version}
    if request.htmx and "v" in request.GET:
        if request.GET["v"] == version:
            return HttpResponse(status=204)
        response = render(request, "connections/uploads/entry_detail.html#live", live)
        if not live["polling"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    others = (
        VinEntry.objects.filter(fleet=entry.fleet, vin=entry.vin)
        .exclude(pk=entry.pk)
        .select_related("upload")
        .order_by("-pk")[:20]
    )
    vehicle, vehicle_problem = volteras_view(entry)
    context = {
        **live,
        "others": others,
        "vehicle": vehicle,
        "vehicle_problem": vehicle_problem,
        "consent_links": entry.consent_links.select_related("fleet").order_by("-created_at", "-pk")[
            :20
        ],
        "deliveries": webhook_deliveries(entry, everywhere=user_is_support(request.user)),
    }
    if user_is_support(request.user):
        context["support_actions"] = ACTIONS
        context["request_ids"] = request_ids([entry]).get(entry.pk, [])
    return render(request, "connections/uploads/entry_detail.html", context)
