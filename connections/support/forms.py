"""Forms of the support workspace: the filters of the cross-fleet VIN list and
the bulk actions. Filtering happens in SQL (`SupportFilterForm.apply`)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from connections.explanations import CONTRACT_CATEGORIES, WHO_ACTS_LABELS
from connections.makes import make_label
from connections.models import Fleet, VinEntry, VinStatus, plate_key
from connections.support.actions import ACTIONS
from connections.support.workspace import WORKSPACE_STATUSES, stuck_q, who_must_act_q

SORTS = {
    "vin": "vin",
    "fleet": "fleet__name",
    "make": "make",
    "status": "status",
    "code": "error_code",
    # Newest status change first reads as "youngest"; "-age" lists the oldest first.
    "age": "-status_changed_at",
}
AGES = {
    "1h": ("Older than 1 hour", timedelta(hours=1)),
    "24h": ("Older than 1 day", timedelta(days=1)),
    "3d": ("Older than 3 days", timedelta(days=3)),
    "7d": ("Older than 7 days", timedelta(days=7)),
    "14d": ("Older than 14 days", timedelta(days=14)),
}
STATES = {
    "open": "Open (not dismissed)",
    "escalated": "Escalated to Volteras",
    "dismissed": "Dismissed",
    "all": "All",
}
MAX_SELECTED = 500


class SupportFilterForm(forms.Form):
    fleet = forms.ChoiceField(required=False, label="Fleet")
    status = forms.ChoiceField(required=False, label="Status")
    error = forms.ChoiceField(required=False, label="Error code")
    who = forms.ChoiceField(
        required=False,
        label="Who must act",
        choices=[("", "Anyone"), *((c, WHO_ACTS_LABELS[c]) for c in CONTRACT_CATEGORIES)],
    )
    make = forms.ChoiceField(required=False, label="Make")
    age = forms.ChoiceField(
        required=False,
        label="Age",
        choices=[("", "Any age"), ("stuck", "Stuck (per make threshold)")]
        + [(key, label) for key, (label, _) in AGES.items()],
    )
    state = forms.ChoiceField(
        required=False, label="Shown", choices=[(k, v) for k, v in STATES.items()]
    )
    q = forms.CharField(required=False, label="Search VIN or plate", max_length=64)
    sort = forms.ChoiceField(required=False, choices=[(k, k) for s in SORTS for k in (s, f"-{s}")])

    def __init__(self, data, *, fleets: list[Fleet], errors: list[str], makes: list[str]):
        super().__init__(data)
        self.fields["fleet"].choices = [("", "All fleets")] + [(f.slug, f.name) for f in fleets]
        self.fields["status"].choices = [("", "Not connected")] + [
            (s, VinStatus(s).label) for s in WORKSPACE_STATUSES
        ]
        self.fields["error"].choices = [("", "All error codes")] + [(e, e) for e in errors]
        self.fields["make"].choices = [("", "All makes")] + [(m, make_label(m)) for m in makes]

    def apply(self, entries: QuerySet[VinEntry]) -> QuerySet[VinEntry]:
        """The entries matching the filters, sorted; invalid filters filter nothing."""
        if not self.is_valid():
            return entries.filter(dismissed=False).order_by("-status_changed_at", "-pk")
        data = self.cleaned_data
        state = data["state"] or "open"
        if state == "open":
            entries = entries.filter(dismissed=False)
        elif state == "escalated":
            entries = entries.filter(escalated=True)
        elif state == "dismissed":
            entries = entries.filter(dismissed=True)
        if data["fleet"]:
            entries = entries.filter(fleet__slug=data["fleet"])
        if data["status"]:
            entries = entries.filter(status=data["status"])
        if data["error"]:
            entries = entries.filter(error_code=data["error"])
        if data["who"]:
            entries = entries.filter(who_must_act_q(data["who"]))
        if data["make"]:
            entries = entries.filter(make=data["make"])
        if data["age"] == "stuck":
            entries = entries.filter(stuck_q())
        elif data["age"]:
            entries = entries.filter(status_changed_at__lt=timezone.now() - AGES[data["age"]][1])
        if data["q"]:
            text = data["q"].strip()
            needle = text.upper().replace(" ", "").replace("-", "")
            # Plates are written with and without spaces or dashes: compare without.
            entries = entries.alias(plate_key=plate_key()).filter(
                Q(vin__contains=needle) | Q(plate_key__contains=needle)
            )
        sort = data["sort"] or "age"
        field = SORTS[sort.lstrip("-")]
        if sort.startswith("-"):
            field = field[1:] if field.startswith("-") else f"-{field}"
        # The tie-breaker follows the direction so an index on the field serves both.
        return entries.order_by(field, "-pk" if field.startswith("-") else "pk")

    @property
    def sort_key(self) -> str:
        return (self.cleaned_data.get("sort") if self.is_valid() else "") or "age"


class SupportActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(k, a.label) for k, a in ACTIONS.items()])
    entries = forms.TypedMultipleChoiceField(coerce=int, label="VINs")
    note = forms.CharField(
        required=False,
        max_length=2000,
        label="Note for Volteras",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What you saw and what you tried; the API requestIds are added for you.",
    )
    reason = forms.CharField(required=False, max_length=500, label="Reason to dismiss")
    force = forms.BooleanField(required=False, label="Retry anyway (even during an incident)")

    def clean_entries(self) -> list[int]:
        ids = self.cleaned_data["entries"]
        if len(ids) > MAX_SELECTED:
            raise forms.ValidationError(
                f"{len(ids)} VINs are selected; act on at most {MAX_SELECTED} at once."
            )
        return ids

    def __init__(self, data=None, **kwargs) -> None:
        super().__init__(data, **kwargs)
        # Any id is accepted here; which of them exist (and make sense) is the
        # action's business, and it says so for each.
        raw = data.getlist("entries") if data is not None and hasattr(data, "getlist") else []
        self.fields["entries"].choices = [(value, value) for value in raw]

    def clean(self):
        cleaned = super().clean()
        action = ACTIONS.get(cleaned.get("action") or "")
        if action is None:
            return cleaned
        if action.needs == "note" and not (cleaned.get("note") or "").strip():
            self.add_error("note", "Say what Volteras should look into: the note is required.")
        if action.needs == "reason" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why these VINs are dismissed: the reason is required.")
        return cleaned
