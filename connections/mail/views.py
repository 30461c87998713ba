"""For admins in debug mode: what the portal sent (the outbox) and what the
local SMTP server kept (`make run`), to check e-mails without a real inbox."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from connections.mail import sink
from connections.mail.tasks import enqueue_delivery
from connections.models import MailMessage


def _admin_in_debug(request: HttpRequest) -> None:
    if not (settings.DEBUG and request.user.is_superuser):
        raise Http404


def outbox_list(request: HttpRequest) -> HttpResponse:
    _admin_in_debug(request)
    context = {
        "mail": MailMessage.objects.select_related("consent_link", "user")[:200],
        "kept": [path.name for path in sink.kept(settings.MAIL_DIR)[:50]],
        "mail_dir": settings.MAIL_DIR,
    }
    return render(request, "connections/mail/outbox_list.html", context)


def outbox_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_in_debug(request)
    message = get_object_or_404(MailMessage, pk=pk)
    return render(request, "connections/mail/outbox_detail.html", {"message": message})


def outbox_html(request: HttpRequest, pk: int) -> HttpResponse:
    """The message's HTML part as the recipient's mail program gets it."""
    _admin_in_debug(request)
    message = get_object_or_404(MailMessage, pk=pk)
    response = HttpResponse(message.html or message.text, content_type="text/html")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@require_POST
def outbox_retry(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_in_debug(request)
    message = get_object_or_404(MailMessage, pk=pk)
    if message.retry():
        enqueue_delivery(message)
        messages.success(request, "Queued again.")
    return redirect("mail_outbox_detail", message.pk)
