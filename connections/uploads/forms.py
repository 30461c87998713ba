from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from django import forms
from django.conf import settings
from django.db.models import Case, Q, Value, When

from connections.makes import make_label
from connections.models import Attention, VinStatus


class UploadForm(forms.Form):
    file = forms.FileField(
        required=False,
        label="VIN file",
        help_text="CSV (comma, semicolon or tab separated) or Excel .xlsx; a header row names "
        "the columns: vin, make, country, registration plate, model, model year, tags.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,.xlsx"}),
    )
    text = forms.CharField(
        required=False,
        label="Or paste VINs",
        help_text="One VIN per line, optionally followed by make and country: "
        "WVWZZZ1JZXW000001,Volkswagen,DE",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    include_existing = forms.BooleanField(
        required=False,
        label="Also send VINs already connected or in progress in this fleet",
    )

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and upload.size > settings.UPLOAD_MAX_BYTES:
            limit = settings.UPLOAD_MAX_BYTES / 1024 / 1024
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is {limit:.0f} MB. "
                "Split it into smaller files and upload them one by one."
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        has_file = bool(cleaned.get("file"))
        has_text = bool((cleaned.get("text") or "").strip())
        if not has_file and not has_text and not self.errors:
            raise forms.ValidationError("Choose a file or paste some VINs.")
        if has_file and has_text:
            raise forms.ValidationError(
                "Choose a file or paste VINs, not both: which one did you mean?"
            )
        return cleaned


SORTS = {
    "line": "line_number",
    "vin": "vin",
    "make": "make",
    "plate": "registration_plate",
    "status": "status",
    "updated": "status_changed_at",
}

# VINs needing action (not dismissed) first, then those in progress, then the
# rest; by line within each.
NEEDS_YOU_FIRST = "needs"
# Each status's label (`VinStatus.values` is worked out anew at every use).
STATUS_LABELS = dict(VinStatus.choices)
NEEDS_YOU_RANK = Case(
    When(attention=Attention.NEEDS_YOU, then=Value(0)),
    When(attention=Attention.IN_PROGRESS, then=Value(1)),
    default=Value(2),
)


class EntryFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, label="Status")
    error = forms.ChoiceField(required=False, label="Error code")
    make = forms.ChoiceField(required=False, label="Make")
    q = forms.CharField(required=False, label="Search VIN or plate", max_length=64)
    sort = forms.ChoiceField(
        required=False,
        choices=[(k, k) for s in SORTS for k in (s, f"-{s}")]
        + [(NEEDS_YOU_FIRST, "Needs you first")],
    )

    def __init__(self, data, *, statuses, errors, makes):
        super().__init__(data)
        self.fields["status"].choices = [("", "All statuses")] + [
            (s, STATUS_LABELS.get(s, s)) for s in statuses
        ]
        self.fields["error"].choices = [("", "All error codes")] + [(e, e) for e in errors]
        self.fields["make"].choices = [("", "All makes")] + [(m, make_label(m)) for m in makes]


def filter_form(data, errors, makes) -> EntryFilterForm:
    # Any status, not only those the upload has now: the menu sits outside the
    # live region, and a refresh may bring one.
    return EntryFilterForm(data, statuses=VinStatus.values, errors=errors, makes=makes)


@lru_cache(maxsize=1024)
def clean_filters(
    query: tuple[tuple[str, str], ...], errors: tuple[str, ...], makes: tuple[str, ...]
) -> Mapping[str, str] | None:
    """The filters `query` asks for as the filter form cleans them (None when
    it refuses them), worked out once per query and menu choices: every open
    table asks again at every poll, and a form costs about 0.4 ms to build."""
    form = filter_form(dict(query), errors, makes)
    return MappingProxyType(form.cleaned_data) if form.is_valid() else None


def apply_filters(entries, data: Mapping[str, str] | None):
    """`entries` filtered and sorted as `data` (`clean_filters`) asks."""
    if data is None:
        return entries.order_by("line_number")
    if data["status"]:
        entries = entries.filter(status=data["status"])
    if data["error"]:
        entries = entries.filter(error_code=data["error"])
    if data["make"]:
        entries = entries.filter(make=data["make"])
    if data["q"]:
        needle = data["q"].strip().upper().replace(" ", "").replace("-", "")
        entries = entries.filter(
            Q(vin__contains=needle) | Q(registration_plate__icontains=data["q"].strip())
        )
    sort = data["sort"] or "line"
    if sort == NEEDS_YOU_FIRST:
        return entries.order_by(NEEDS_YOU_RANK, "line_number", "pk")
    field = SORTS[sort.lstrip("-")]
    return entries.order_by(("-" if sort.startswith("-") else "") + field, "pk")


class EntryFixForm(forms.Form):
    """A draft row's correction; `uploads.fixes` validates it as an uploaded row."""

    vin = forms.CharField(label="VIN", max_length=64, required=False)
    make = forms.CharField(
        label="Make",
        max_length=40,
        required=False,
        help_text="For example Volkswagen or BMW. Leave it empty to read it from the VIN.",
    )
    country_code = forms.CharField(
        label="Country",
        max_length=60,
        required=False,
        help_text="Two-letter code such as DE or GB; empty for the fleet's default.",
    )
    registration_plate = forms.CharField(label="Registration plate", max_length=64, required=False)
    tags = forms.CharField(
        label="Tags",
        max_length=2000,
        required=False,
        help_text="key=value, separated by semicolons: depot=Leeds;cost-centre=42",
    )

    def __init__(self, *args, entry, **kwargs):
        # Ids unique per row: several rows' forms can be open on one page.
        super().__init__(*args, auto_id=f"fix-{entry.pk}-%s", **kwargs)
        for field in self.fields.values():
            field.widget.attrs.update(autocomplete="off", spellcheck="false")
        self.general_problems: list[str] = []

    @property
    def first_invalid(self) -> str:
        """The first field with an error (it takes the focus), or ""."""
        return next((name for name in self.fields if name in self.errors), "")

    def add_problems(self, problems: dict[str, list[str]]) -> None:
        """Validation's problems, each next to its field (the row's own ones above the form)."""
        for name, messages in problems.items():
            if name in self.fields:
                for message in messages:
                    self.add_error(name, message)
            else:
                self.general_problems.extend(messages)
