from django.contrib import admin

from .models import (
    ApiToken,
    ConnectBatch,
    Fleet,
    Membership,
    Upload,
    UploadSummary,
    Vehicle,
    VinEntry,
    VinEvent,
    WorkerHeartbeat,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Fleet)
class FleetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "default_country_code", "default_region", "created_at"]
    list_filter = ["default_region", "default_country_code"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "fleet", "role", "created_at"]
    list_filter = ["role", "fleet"]
    search_fields = ["user__username", "user__email", "fleet__name"]
    autocomplete_fields = ["user", "fleet"]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["pk", "fleet", "source_name", "state", "created_by", "created_at"]
    list_filter = ["state", "fleet"]
    search_fields = ["source_name", "fleet__name"]
    readonly_fields = ["version", "submitted_at", "eligibility_id", "eligibility"]
    date_hierarchy = "created_at"


@admin.register(UploadSummary)
class UploadSummaryAdmin(admin.ModelAdmin):
    """Read only: the live table's stored counts, remade whenever the version moves."""

    list_display = ["upload", "version"]
    readonly_fields = ["upload", "version", "groups"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class VinEventInline(admin.TabularInline):
    model = VinEvent
    extra = 0
    can_delete = False
    readonly_fields = [
        "at",
        "source",
        "status_from",
        "status_to",
        "error_codes",
        "detail",
        "request_id",
        "actor",
    ]
    exclude = ["data"]


@admin.register(VinEntry)
class VinEntryAdmin(admin.ModelAdmin):
    list_display = [
        "vin",
        "fleet",
        "upload",
        "make",
        "status",
        "action_category",
        "status_changed_at",
    ]
    list_filter = ["status", "validity", "action_category", "make", "fleet", "dismissed"]
    search_fields = ["vin", "registration_plate", "vehicle_id"]
    list_select_related = ["fleet", "upload"]
    raw_id_fields = ["upload", "batch"]
    # What Volteras told us is not edited by hand: actions go through the portal.
    readonly_fields = [
        "status",
        "error_codes",
        "message",
        "action_category",
        "can_retry",
        "vehicle_id",
        "vehicle_input_id",
        "was_already_connected",
        "status_changed_at",
        "attempts",
        "checks",
    ]
    inlines = [VinEventInline]


@admin.register(VinEvent)
class VinEventAdmin(admin.ModelAdmin):
    list_display = ["at", "entry", "source", "status_from", "status_to", "request_id", "actor"]
    list_filter = ["source", "status_to"]
    search_fields = ["entry__vin", "request_id"]
    raw_id_fields = ["entry"]
    readonly_fields = [f.name for f in VinEvent._meta.fields]


@admin.register(ConnectBatch)
class ConnectBatchAdmin(admin.ModelAdmin):
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
    raw_id_fields = ["upload"]
    readonly_fields = ["group_id", "group_status", "last_request_id", "submitted_at"]


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = [
        "vin",
        "volteras_id",
        "make",
        "connection_status",
        "disconnected",
        "last_seen_at",
    ]
    list_filter = ["connection_status", "disconnected", "make"]
    search_fields = ["vin", "volteras_id", "account_id"]
    readonly_fields = [
        "volteras_id",
        "vin",
        "make",
        "connection_status",
        "connection_error_code",
        "account_id",
        "raw",
        "first_seen_at",
        "last_seen_at",
    ]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["worker_id", "hostname", "seen_at"]
    readonly_fields = ["worker_id", "hostname", "seen_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["api_url", "expires_at", "renewing_until", "updated_at"]
    # Never show the token itself.
    fields = ["api_url", "expires_at", "renewing_until", "updated_at"]
    readonly_fields = fields


from . import admin_consent  # noqa: E402,F401
from .admin_webhooks import WebhookEventAdmin  # noqa: E402,F401
