"""Admin for vehicles, unmatched vehicles and reconciliation runs: read-only."""

from django.contrib import admin

from connections.models import ReconciliationRun, UnmatchedVehicle, Vehicle
from connections.web.admin import ReadOnlyAdmin


@admin.register(Vehicle)
class VehicleAdmin(ReadOnlyAdmin):
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


@admin.register(UnmatchedVehicle)
class UnmatchedVehicleAdmin(ReadOnlyAdmin):
    list_display = ["volteras_id", "vin", "api_status", "not_found", "events", "last_seen_at"]
    list_filter = ["api_status", "not_found"]
    search_fields = ["volteras_id", "vin"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "state",
        "vehicles_listed",
        "vehicles_read",
        "groups_read",
        "changes",
        "finished_at",
    ]
    list_filter = ["state"]
