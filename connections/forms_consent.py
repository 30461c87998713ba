"""The consent-link form: every option of `POST /v1/accounts:connect`,
checked as the contract checks it so most mistakes never reach Volteras."""

from __future__ import annotations

from typing import Any

from django import forms

from .consent import DEVICE_TYPES, LOCALES, MAX_EXPIRY, MIN_EXPIRY, SCOPES, LinkOptions
from .makes import EUROPE_ONLY_MAKES, MAKES, MAKES_NEEDING_REGION, make_label
from .models import Fleet, Region
from .models_consent import LinkStatus
from .vins import check_vin, normalise_country, normalise_vin

HOUR = 3600
EXPIRY_CHOICES = [
    (HOUR, "1 hour"),
    (6 * HOUR, "6 hours"),
    (24 * HOUR, "1 day"),
    (3 * 24 * HOUR, "3 days"),
    (7 * 24 * HOUR, "7 days"),
    (14 * 24 * HOUR, "14 days"),
]


class ConsentLinkForm(forms.Form):
    label = forms.CharField(
        max_length=120,
        required=False,
        help_text="For you: who or what the link is for (shown in the list, not to the owner).",
    )
    recipient_note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="A message to the owner, used in the e-mail and on the printable page.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {text}") for scope, text in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        initial=["vehicle:all"],
        help_text="What the owner is asked to share. Ask only for what you need.",
    )
    device_types = forms.MultipleChoiceField(
        choices=list(DEVICE_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        initial=["VEHICLE"],
        help_text="With a single device type the owner skips the device choice.",
    )
    makes = forms.MultipleChoiceField(
        choices=[(make, make_label(make)) for make in MAKES],
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Only offer these makes. Leave empty to offer every make.",
    )
    locale = forms.ChoiceField(
        choices=[("", "Default (English)"), *LOCALES.items()],
        required=False,
        label="Language",
    )
    region = forms.ChoiceField(
        choices=[("", "Default (Europe)"), *Region.choices],
        required=False,
        help_text="BMW and MINI need one; Hyundai and Kia connect in Europe only.",
    )
    country_code = forms.CharField(
        max_length=60,
        required=False,
        label="Country",
        help_text="The owner's country (e.g. GB, DE), used to look up vehicle details.",
    )
    expires_in = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES,
        coerce=int,
        initial=7 * 24 * HOUR,
        label="Link valid for",
    )
    vin = forms.CharField(
        max_length=40,
        required=False,
        label="VIN (single-vehicle link)",
        help_text="Only for a link that connects one given vehicle.",
    )
    model = forms.CharField(max_length=80, required=False)
    model_year = forms.IntegerField(min_value=1990, max_value=2100, required=False)

    def __init__(self, *args: Any, fleet: Fleet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fleet = fleet
        if not self.is_bound:
            self.initial.setdefault("country_code", fleet.default_country_code)
            self.initial.setdefault("region", fleet.default_region)

    def clean_country_code(self) -> str:
        text = self.cleaned_data["country_code"].strip()
        if not text:
            return ""
        code = normalise_country(text)
        if code is None:
            raise forms.ValidationError(
                "Unknown country. Use the two-letter ISO code, such as GB or DE."
            )
        return code

    def clean_expires_in(self) -> int:
        value = self.cleaned_data["expires_in"]
        if not MIN_EXPIRY <= value <= MAX_EXPIRY:
            raise forms.ValidationError("A link is valid for 1 hour to 14 days.")
        return value

    def clean_vin(self) -> str:
        vin = normalise_vin(self.cleaned_data["vin"])
        if vin:
            problems = check_vin(vin).errors
            if problems:
                raise forms.ValidationError(list(problems))
        return vin

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        makes = set(data.get("makes") or [])
        region = data.get("region") or ""
        needing = sorted(makes & MAKES_NEEDING_REGION)
        if needing and not region:
            self.add_error(
                "region",
                f"{' and '.join(make_label(m) for m in needing)} need a region: "
                "choose Europe or North America.",
            )
        europe_only = sorted(makes & EUROPE_ONLY_MAKES)
        if europe_only and region == Region.NORTH_AMERICA:
            self.add_error(
                "region",
                f"{' and '.join(make_label(m) for m in europe_only)} connect in Europe only.",
            )
        if (data.get("model") or data.get("model_year")) and not data.get("vin"):
            self.add_error("vin", "Model and model year are only sent with a VIN.")
        return data

    def options(self) -> LinkOptions:
        data = self.cleaned_data
        return LinkOptions(
            scopes=tuple(data["scopes"]),
            device_types=tuple(data["device_types"]),
            expires_in=data["expires_in"],
            makes=tuple(data.get("makes") or ()),
            locale=data.get("locale") or "",
            region=data.get("region") or "",
            country_code=data.get("country_code") or "",
            vin=data.get("vin") or "",
            model=(data.get("model") or "").strip(),
            model_year=data.get("model_year"),
        )


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, label="Status")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "All"), *LinkStatus.choices]
