"""Django admin for VINs. A VIN's state, timeline and flags are read-only here:
its actions (retry, dismiss, escalate, read again) go through the same methods
as the portal's."""

from django.contrib import admin, messages
from django.template.defaultfilters import pluralize

from connections.models import Source, VinEntry, VinEvent
from connections.support import actions
from connections.vehicles.apply import apply_vehicle
from connections.volteras import VolterasError
from connections.web.admin import ReadOnlyAdmin


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

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _report(modeladmin, request, outcome, verb: str) -> None:
    if outcome.done:
        modeladmin.message_user(
            request,
            f"{len(outcome.done)} VIN{pluralize(len(outcome.done))} {verb}.",
            messages.SUCCESS,
        )
    for entry, reason in outcome.refused:
        modeladmin.message_user(request, f"{entry.vin}: {reason}", messages.WARNING)


class NamedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's filter by every value, with a name for the empty value: Django's
    own shows it as a link with no text, which a screen reader cannot name."""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            if not str(choice["display"]).strip():
                choice = {**choice, "display": "(none)"}
            yield choice


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
    list_filter = [
        "status",
        "validity",
        ("action_category", NamedValuesFilter),
        ("make", NamedValuesFilter),
        "fleet",
        "dismissed",
    ]
    search_fields = ["vin", "registration_plate", "vehicle_id"]
    list_select_related = ["fleet", "upload"]
    raw_id_fields = ["upload", "batch"]
    # What Volteras told us, the timeline and support's flags are not edited by
    # hand: the actions below go through the portal's own methods.
    readonly_fields = [
        "status",
        "error_codes",
        "error_code",
        "message",
        "action_category",
        "can_retry",
        "vehicle_id",
        "vehicle_input_id",
        "was_already_connected",
        "status_changed_at",
        "submitted_at",
        "next_check_at",
        "attempts",
        "checks",
        "superseded",
        "dismissed",
        "escalated",
        "batch",
    ]
    inlines = [VinEventInline]
    actions = ["retry", "dismiss", "escalate", "read_again"]

    @admin.action(description="Retry the selected VINs")
    def retry(self, request, queryset) -> None:
        outcome = actions.retry(
            actions.load_entries(queryset.values_list("pk", flat=True)), request.user
        )
        _report(self, request, outcome, "sent again")

    @admin.action(description="Dismiss the selected VINs")
    def dismiss(self, request, queryset) -> None:
        entries = actions.load_entries(queryset.values_list("pk", flat=True))
        outcome = actions.dismiss(entries, request.user, "Dismissed in the Django admin")
        _report(self, request, outcome, "dismissed")

    @admin.action(description="Escalate the selected VINs to Volteras")
    def escalate(self, request, queryset) -> None:
        entries = actions.load_entries(queryset.values_list("pk", flat=True))
        outcome = actions.escalate(entries, request.user, "Escalated from the Django admin")
        _report(self, request, outcome, "escalated to Volteras")

    @admin.action(description="Read the selected VINs' vehicles again from Volteras")
    def read_again(self, request, queryset) -> None:
        ids = set(queryset.exclude(vehicle_id="").values_list("vehicle_id", flat=True))
        read = 0
        for vehicle_id in sorted(ids):
            try:
                apply_vehicle(vehicle_id, Source.MANUAL, reason="Read again from the Django admin")
            except VolterasError as exc:
                self.message_user(request, f"{vehicle_id}: {exc}", messages.ERROR)
                continue
            read += 1
        skipped = queryset.filter(vehicle_id="").count()
        self.message_user(
            request,
            f"{read} vehicle{pluralize(read)} read again"
            + (
                f"; {skipped} VIN{pluralize(skipped)} {pluralize(skipped, 'has,have')} "
                "no vehicle at Volteras yet."
                if skipped
                else "."
            ),
            messages.INFO,
        )


@admin.register(VinEvent)
class VinEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "entry", "source", "status_from", "status_to", "request_id", "actor"]
    list_filter = ["source", "status_to"]
    search_fields = ["entry__vin", "request_id"]
