"""Each user's notification settings, and the one-click unsubscribe link of
every notification e-mail (signed, works without logging in; a mail program's
RFC 8058 one-click POST is accepted without a CSRF token)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from connections.models import NotificationChoice, NotificationKind
from connections.notifications.forms import NotificationForm
from connections.notifications.sending import read_unsubscribe_token


def notification_settings(request: HttpRequest) -> HttpResponse:
    form = NotificationForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Notification settings saved.")
        return redirect("notification_settings")
    return render(request, "connections/notifications/settings.html", {"form": form})


@login_not_required
@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the link does, with a button; POST (the button, or the mail
    program's one-click request): stop that kind of e-mail for that user."""
    found = read_unsubscribe_token(token)
    user = User.objects.filter(pk=found[0]).first() if found else None
    if user is None:
        return render(request, "connections/notifications/unsubscribe.html", {}, status=404)
    kind = NotificationKind(found[1])
    done = request.method == "POST"
    if done:
        NotificationChoice.choose(user, kind, False)
    context = {"kind": kind, "done": done, "token": token}
    return render(request, "connections/notifications/unsubscribe.html", context)
