"""Notification settings and the unsubscribe link."""

from django.urls import path

from connections.notifications import views

urlpatterns = [
    path(
        "account/notifications/",
        views.notification_settings,
        name="notification_settings",
    ),
    path(
        "notifications/unsubscribe/<str:token>/",
        views.unsubscribe,
        name="notifications_unsubscribe",
    ),
]
