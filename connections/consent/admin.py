from django.contrib import admin

from connections.models import ConnectedAccount, ConsentLink, ConsentLinkEvent


class ConsentLinkEventInline(admin.TabularInline):
    model = ConsentLinkEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "status_from", "status_to", "detail", "actor", "data"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConsentLink)
class ConsentLinkAdmin(admin.ModelAdmin):
    list_display = ["pk", "fleet", "label", "vin", "status", "opens", "expires_at", "created_at"]
    list_filter = ["status", "fleet"]
    search_fields = ["label", "vin", "token", "returned_account_id", "fleet__name"]
    date_hierarchy = "created_at"
    raw_id_fields = ["vin_entry", "replaced_by", "account"]
    # What Volteras handed out and what the owner's return said are facts, not settings.
    readonly_fields = [
        "token",
        "options",
        "authentication_url",
        "opens",
        "first_opened_at",
        "last_opened_at",
        "result",
        "returned_account_id",
        "returned_at",
        "revoked_at",
        "revoked_by",
        "created_by",
    ]
    inlines = [ConsentLinkEventInline]


@admin.register(ConnectedAccount)
class ConnectedAccountAdmin(admin.ModelAdmin):
    list_display = ["volteras_id", "username", "fleet", "status", "connected_at", "last_seen_at"]
    list_filter = ["status", "fleet"]
    search_fields = ["volteras_id", "username", "fleet__name"]
    readonly_fields = ["volteras_id", "username", "raw", "last_seen_at", "disconnected_by"]


@admin.register(ConsentLinkEvent)
class ConsentLinkEventAdmin(admin.ModelAdmin):
    list_display = ["link", "at", "status_from", "status_to", "actor"]
    list_filter = ["status_to"]
    search_fields = ["detail", "link__label", "link__vin"]
    raw_id_fields = ["link"]
    readonly_fields = ["link", "at", "status_from", "status_to", "detail", "actor", "data"]
