"""The fleet list's filters (all in the URL, so a view can be linked, bookmarked
and exported as seen) and its bulk action form."""

from __future__ import annotations

from django import forms

from connections.explanations import EXPLANATIONS, WHO_ACTS_LABELS, WhoActs
from connections.fleet.listing import AGES, GROUPS, SORTS, Filters
from connections.makes import MAKES, make_label
from connections.models import Attention, VinStatus
from connections.uploads.validation import parse_tags

SENT_STATUSES = [
    s for s in VinStatus.values if s not in {VinStatus.READY, VinStatus.INVALID, VinStatus.SKIPPED}
]
GROUP_LABELS = {
    "needs": Attention.NEEDS_YOU.label,
    "progress": Attention.IN_PROGRESS.label,
    "connected": Attention.CONNECTED.label,
    "dismissed": "Dismissed or set aside",
}
ACTIONS = {
    "retry": "Retry",
    "consent": "Create consent links",
    "tag": "Add tags",
    "untag": "Remove tags",
    "remove": "Remove from the fleet",
}


class VehicleFilterForm(forms.Form):
    group = forms.ChoiceField(
        required=False,
        label="Show",
        choices=[("", "Every vehicle"), *((k, GROUP_LABELS[k]) for k in GROUPS)],
    )
    status = forms.ChoiceField(
        required=False,
        label="Status",
        choices=[("", "Any status"), *((s, VinStatus(s).label) for s in SENT_STATUSES)],
    )
    who = forms.ChoiceField(
        required=False,
        label="Who must act",
        choices=[("", "Anyone"), *((c.value, WHO_ACTS_LABELS[c]) for c in WhoActs)],
    )
    make = forms.ChoiceField(
        required=False,
        label="Make",
        choices=[("", "Any make"), *((m, make_label(m)) for m in MAKES)],
    )
    tag = forms.CharField(required=False, label="Tag (key=value)", max_length=130)
    upload = forms.TypedChoiceField(required=False, label="Upload", coerce=int, empty_value=None)
    age = forms.ChoiceField(
        required=False,
        label="Last change",
        choices=[("", "Any time"), *((k, label) for k, (label, _) in AGES.items())],
    )
    error = forms.ChoiceField(
        required=False,
        label="Error code",
        choices=[("", "Any error code"), *((c, c) for c in sorted(EXPLANATIONS))],
    )
    source = forms.ChoiceField(
        required=False,
        label="Came from",
        choices=[("", "Uploads and accounts"), ("upload", "Uploads"), ("account", "Accounts")],
    )
    q = forms.CharField(required=False, label="Search VIN, plate or tag", max_length=64)
    sort = forms.ChoiceField(required=False, choices=[(k, k) for s in SORTS for k in (s, f"-{s}")])

    def __init__(self, data, *, uploads: list[tuple[int, str]]):
        super().__init__(data)
        self.fields["upload"].choices = [("", "Any upload"), *uploads]
        # Codes we have not written up still filter (a link from a chart or a VIN).
        given = (data or {}).get("error", "")[:64]
        if given and given not in EXPLANATIONS:
            self.fields["error"].choices = [*self.fields["error"].choices, (given, given)]

    def filters(self) -> Filters:
        """The filters asked for; any that does not parse is left out."""
        if self.is_valid():
            data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
            return Filters(**{"sort": "needs", **data})
        good = {k: v for k, v in self.data.items() if k in self.fields and k not in self.errors}
        return Filters(**{k: v for k, v in good.items() if k not in {"upload"} and v})

    @property
    def active(self) -> bool:
        return any(v for k, v in self.data.items() if k in self.fields and k != "sort")


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=list(ACTIONS.items()), label="With the selected vehicles")
    scope = forms.ChoiceField(
        choices=[("selected", "the ticked rows"), ("all", "every row matching the filters")],
        initial="selected",
        label="Act on",
    )
    rows = forms.MultipleChoiceField(required=False, label="Vehicles")
    tags = forms.CharField(required=False, max_length=500, label="Tags (key=value; …)")
    confirm = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, **kwargs) -> None:
        super().__init__(data, **kwargs)
        raw = data.getlist("rows") if data is not None and hasattr(data, "getlist") else []
        self.fields["rows"].choices = [(v, v) for v in raw if v[:1] in "ev" and v[1:].isdigit()]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") in {"tag", "untag"}:
            tags, errors = parse_tags(cleaned.get("tags") or "")
            if errors or not tags:
                self.add_error("tags", errors[0] if errors else "Write the tags as key=value.")
            cleaned["parsed_tags"] = tags
        if cleaned.get("scope") == "selected" and not cleaned.get("rows"):
            self.add_error("rows", "Tick at least one vehicle, or act on every matching row.")
        return cleaned

    def ids(self, prefix: str) -> list[int]:
        return [int(v[1:]) for v in self.cleaned_data.get("rows") or [] if v[0] == prefix]
