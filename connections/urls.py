"""Every route of the portal, one `urls.py` per capability."""

from django.urls import include, path

urlpatterns = [
    path("", include("connections.web.urls")),
    path("", include("connections.uploads.urls")),
    path("", include("connections.consent.urls")),
    path("", include("connections.webhooks.urls")),
    path("", include("connections.support.urls")),
    path("", include("connections.fleet.urls")),
    path("", include("connections.mail.urls")),
    path("", include("connections.notifications.urls")),
]
