"""Deleting a draft upload: a confirmation page naming what goes, then the delete."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from connections.models import Upload
from connections.web.access import managed_upload


def upload_delete(request: HttpRequest, upload_id: int) -> HttpResponse:
    """GET: what deleting the draft removes; POST: delete it and its rows.

    Managers of the fleet only (support 403, outsiders 404), and only a draft:
    a submitted upload, or one being checked for eligibility, is never deleted."""
    upload = managed_upload(request, upload_id)
    is_draft = upload.state == Upload.State.DRAFT
    if request.method == "POST":
        rows = upload.delete_draft() if is_draft else None
        if rows is None:
            messages.error(request, "Only a draft upload can be deleted: this one is not a draft.")
            return redirect(upload)
        messages.success(
            request,
            f"Draft upload #{upload_id} and its {rows} row{'s' if rows != 1 else ''} were deleted.",
        )
        return redirect(upload.fleet)
    context = {
        "upload": upload,
        "fleet": upload.fleet,
        "is_draft": is_draft,
        "rows": upload.entries.count(),
    }
    return render(request, "connections/uploads/upload_delete.html", context)
