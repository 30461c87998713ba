"""One notification e-mail to one user, once per event (`key` is the event;
the recipient is added to it), with a one-click unsubscribe for its kind."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from connections.mail.compose import render
from connections.mail.tasks import post
from connections.models import MailMessage, NotificationKind

UNSUBSCRIBE_SALT = "connections.notifications.unsubscribe"


def unsubscribe_token(user, kind: str) -> str:
    return signing.dumps({"u": user.pk, "k": kind}, salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    """(user id, kind) from a token, or None when it was not made by the portal."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("k") not in NotificationKind.values:
        return None
    return int(data["u"]), data["k"]


def absolute(path: str) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def notify(user, kind: str, event: str, context: dict) -> tuple[MailMessage, bool]:
    """Queue the `kind` notification about `event` for `user`; a second call for
    the same event and user (another sweep, another worker) queues nothing."""
    unsubscribe = absolute(
        reverse("notifications_unsubscribe", args=[unsubscribe_token(user, kind)])
    )
    context = {
        **context,
        "user": user,
        "kind": kind,
        "kind_label": NotificationKind(kind).label,
        "unsubscribe_url": unsubscribe,
        "settings_url": absolute(reverse("notification_settings")),
    }
    rendered = render("notification", context, "en")
    return post(
        f"notify:{kind}:{event}:{user.pk}",
        f"notify_{kind}",
        user.email,
        rendered,
        user=user,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
