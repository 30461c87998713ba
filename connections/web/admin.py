"""Django admin for fleets, memberships and the portal's internal tables."""

from django.contrib import admin

from connections.models import ApiToken, Fleet, Membership, WorkerHeartbeat


class ReadOnlyAdmin(admin.ModelAdmin):
    """Internal tables: shown, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "hostname", "seen_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["api_url", "expires_at", "renewing_until", "updated_at"]
    # Never show the token itself.
    fields = ["api_url", "expires_at", "renewing_until", "updated_at"]
