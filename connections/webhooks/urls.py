"""The webhook receiver and the delivery log."""

from django.urls import path

from connections.webhooks import views

urlpatterns = [
    path("webhooks/volteras/", views.receive, name="volteras_webhook"),
    path("support/webhooks/", views.event_list, name="webhook_events"),
    path("support/webhooks/refused/", views.refused_list, name="webhook_refused"),
    path("support/webhooks/unmatched/", views.unmatched_list, name="webhook_unmatched"),
    path("support/webhooks/<int:event_id>/", views.event_detail, name="webhook_event"),
    path(
        "support/webhooks/<int:event_id>/process/",
        views.event_process_again,
        name="webhook_event_process",
    ),
]
