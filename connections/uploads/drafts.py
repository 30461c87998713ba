"""Deleting a draft upload: a confirmation page naming what goes, then the
delete; and replacing an earlier draft by a corrected file (`uploads.replacing`)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from connections.models import Upload
from connections.uploads.replacing import replace_draft
from connections.web.access import managed_upload, post_only


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


@post_only
def upload_replace_draft(request: HttpRequest, upload_id: int, draft_id: int) -> HttpResponse:
    """Delete the earlier draft `draft_id` of the same fleet: this upload replaces it.
    Managers only (support 403, outsiders 404)."""
    upload = managed_upload(request, upload_id)
    draft = get_object_or_404(Upload, pk=draft_id, fleet=upload.fleet)
    rows = replace_draft(upload, draft, request.user)
    if rows is None:
        messages.error(
            request,
            f"Upload #{draft_id} was not deleted: it is no longer a draft (it was sent or is "
            "being checked), so both uploads are kept.",
        )
    else:
        messages.success(
            request,
            f"Draft upload #{draft_id} and its {rows} row{'s' if rows != 1 else ''} were "
            f"deleted: upload #{upload.pk} replaces it.",
        )
    return redirect(upload)
