"""Fixing a draft's row in place: the row's Edit button opens a form in the
row (htmx) or on a page of its own (without JavaScript); saving validates the
row again (`uploads.fixes`) and answers with the row, the summary and the Send
button, or the form again with each problem next to its field."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from connections.models import Upload, VinEntry, VinStatus
from connections.models.summaries import entry_groups
from connections.uploads.eligibility import LABELS as ELIGIBILITY_LABELS
from connections.uploads.fixes import Fix, fix_entry, initial_values
from connections.uploads.forms import EntryFixForm
from connections.uploads.table import render_rows
from connections.uploads.table import summary as table_summary
from connections.web.access import managed_upload

PAGE = "connections/uploads/entry_edit.html"
FORM_ROW = "connections/uploads/entry_edit.html#fix-row"
TABLE = "connections/uploads/upload_detail.html"
# The live table's summary, sent out of band after a save (Jinja, as the table).
SUMMARY = "connections/uploads/live_summary.html"
NOT_A_DRAFT = (
    "This row can no longer be edited: its upload has been sent, or its eligibility is "
    "being checked. Rows can be fixed only before the upload is sent."
)


def entry_edit(request: HttpRequest, upload_id: int, entry_id: int) -> HttpResponse:
    """GET: the row's form (in the row for htmx, else a page); POST: save and check it.

    The fleet's managers only (support 403, outsiders 404), and only while the
    upload is a draft."""
    upload = managed_upload(request, upload_id)
    entry = get_object_or_404(upload.entries, pk=entry_id)
    query = request.POST.get("return_query", request.GET.get("return_query", ""))
    if upload.state != Upload.State.DRAFT:
        if request.method == "POST" or request.htmx:
            messages.error(request, NOT_A_DRAFT)
            return _back(request, upload, entry, query)
        return render(request, PAGE, _form_context(upload, entry, None, query, editable=False))
    if request.method != "POST":
        if request.htmx and "cancel" in request.GET:
            return _row_response(request, upload, entry, query, oob=False)
        form = EntryFixForm(initial=initial_values(entry), entry=entry)
        return _form_response(request, upload, entry, form, query)
    form = EntryFixForm(request.POST, entry=entry)
    fix = fix_entry(entry, form.cleaned_data, request.user) if form.is_valid() else None
    if form.is_valid() and fix is None:
        messages.error(request, NOT_A_DRAFT)
        return _back(request, upload, entry, query)
    if fix is None or not fix.saved:
        if fix is not None:
            form.add_problems(fix.row.field_problems)
        return _form_response(request, upload, entry, form, query)
    if request.htmx:
        return _row_response(request, upload, entry, query, oob=True)
    messages.success(request, _saved_message(entry, fix))
    return _back(request, upload, entry, query)


def _saved_message(entry: VinEntry, fix: Fix) -> str:
    state = {
        VinStatus.READY: "is ready to send",
        VinStatus.SKIPPED: "is skipped",
    }.get(entry.status, "was saved")
    warning = " (valid, with a warning: read it before sending)" if fix.row.problems else ""
    if entry.status == VinStatus.SKIPPED:
        warning = f": {fix.row.skip_reason}"
    again = ""
    if fix.rechecked:
        again = f" {fix.rechecked} other row{'s' if fix.rechecked != 1 else ''} checked again."
    return f"Line {entry.line_number} was saved and {state}{warning}.{again}"


def _back(request: HttpRequest, upload: Upload, entry: VinEntry, query: str) -> HttpResponse:
    """Back to the row in its table; an htmx request (which would swap the page
    into the row) is told to load it instead."""
    url = upload.get_absolute_url() + (f"?{query}" if query else "") + f"#entry-{entry.pk}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _form_context(upload, entry, form, query: str, *, editable: bool = True) -> dict:
    return {
        "upload": upload,
        "fleet": upload.fleet,
        "entry": entry,
        "form": form,
        "query": query,
        "editable": editable,
        "edit_url": reverse("entry_edit", args=[upload.pk, entry.pk]),
        "columns": 9 if upload.entries.exclude(eligibility="").exists() else 8,
    }


def _form_response(request, upload, entry, form, query: str) -> HttpResponse:
    context = _form_context(upload, entry, form, query)
    return render(request, FORM_ROW if request.htmx else PAGE, context)


def _row_response(
    request, upload: Upload, entry: VinEntry, query: str, *, oob: bool
) -> HttpResponse:
    """The row as the table shows it (its Edit button focused), and after a save
    the summary and the Send button too, swapped out of band."""
    upload = Upload.objects.select_related("fleet", "summary").get(pk=upload.pk)
    context = _row_context(upload, entry, query)
    consent_links_url = reverse("upload_consent_links", args=[upload.pk])
    html = render_rows(request, [entry], context, consent_links_url)
    if oob:
        context["oob"] = True
        summary = render_to_string(SUMMARY, context, request, using="jinja2")
        send = render_to_string(f"{TABLE}#send-actions", context, request)
        # In a <template>: after a table row the browser parses in table mode,
        # where a <form> closes at once and its button falls out of it (htmx
        # swaps a template's out-of-band parts, parsed on their own).
        html += f"<template>{summary}{send}</template>"
    return HttpResponse(html)


def _row_context(upload: Upload, entry: VinEntry, query: str) -> dict:
    """What the table's row, summary and Send button read (see `views._table_context`)."""
    groups = entry_groups(upload)
    summary = table_summary(groups.counts, groups.warnings, groups.waiting_for_consent)
    entry.refresh_from_db()
    # The whole row, keyed afresh: the next poll replaces it with its live key.
    entry.live_kept, entry.live_key, entry.row_links = False, "", []
    entry.autofocus = True
    return {
        "upload": upload,
        "fleet": upload.fleet,
        "entry": entry,
        "summary": summary,
        "submitted": False,
        "checking": False,
        "managed": True,
        "polling": False,
        "watching": False,
        "query": query,
        "show_eligibility": upload.entries.exclude(eligibility="").exists(),
        "eligibility_labels": ELIGIBILITY_LABELS,
        "needs_you": groups.needs_you,
    }
