"""Admin for webhook deliveries and refusals. Everything here came from
outside or from the worker: read-only, except that an admin may send events
back to be processed."""

from django.contrib import admin
from django.template.defaultfilters import pluralize

from connections.models import RefusedDelivery, WebhookEvent
from connections.web.admin import ReadOnlyAdmin
from connections.webhooks import tasks


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "event_type",
        "vehicle_id",
        "vin",
        "state",
        "api_status",
        "entries_changed",
        "duplicates",
        "attempts",
    ]
    list_filter = ["state", "event_type", "api_status"]
    search_fields = ["svix_id", "vehicle_id", "vin"]
    date_hierarchy = "received_at"
    actions = ["process_again"]

    @admin.action(description="Process the selected events again")
    def process_again(self, request, queryset) -> None:
        events = list(queryset)
        for event in events:
            tasks.process_again(event)
        self.message_user(
            request, f"{len(events)} event{pluralize(len(events))} queued to be processed again."
        )

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the action; every field stays read-only.
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [field.name for field in WebhookEvent._meta.fields]


@admin.register(RefusedDelivery)
class RefusedDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["at", "count", "source_address", "reason", "claimed_svix_id", "body_size"]
    list_filter = ["reason"]
    search_fields = ["source_address", "claimed_svix_id"]
    date_hierarchy = "at"
