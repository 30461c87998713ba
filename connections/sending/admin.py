"""Django admin for connect batches: the sending machinery's own rows, read-only."""

from django.contrib import admin

from connections.models import ConnectBatch
from connections.web.admin import ReadOnlyAdmin


@admin.register(ConnectBatch)
class ConnectBatchAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "upload",
        "number",
        "state",
        "group_id",
        "group_status",
        "attempts",
        "next_attempt_at",
    ]
    list_filter = ["state", "group_status"]
    search_fields = ["group_id", "last_request_id"]
