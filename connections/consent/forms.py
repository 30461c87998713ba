"""The consent-link form: every option of `POST /v1/accounts:connect`,
checked as the contract checks it so most mistakes never reach Volteras."""

from __future__ import annotations

from typing import Any

from django import forms

from connections.consent.options import (
    DEVICE_TYPES,
    LOCALES,
    MAX_EXPIRY,
    MIN_EXPIRY,
    OWNER_LOCALES,
    SCOPES,
    LinkOptions,
)
from connections.countries import normalise_country
from connections.makes import EUROPE_ONLY_MAKES, MAKES, MAKES_NEEDING_REGION, make_label
from connections.models import Fleet, LinkStatus, Region
from connections.vin import check_vin, normalise_vin

HOUR = 3600
DAY = 24 * HOUR
EXPIRY_UNITS = [("hours", "hours"), ("days", "days")]
UNIT_SECONDS = {"hours": HOUR, "days": DAY}
INTEGRATION_METHODS = [
    ("", "Default"),
    ("BMW_ENERGY_API", "BMW Energy API (smart charging)"),
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
        choices=[("", "Default (English, or the owner's browser)"), *OWNER_LOCALES.items()],
        required=False,
        label="Language",
        help_text="Of the owner's page, the e-mail and, where Volteras offers it, the consent "
        "flow.",
    )
    recipient_email = forms.EmailField(
        required=False,
        label="Send to (e-mail)",
        help_text="Optional: the portal e-mails the link to this address, reminds them before "
        "it expires, and replies come to you.",
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
    expiry_amount = forms.IntegerField(
        initial=7,
        label="Link valid for",
        help_text="From 1 hour to 14 days. The owner must finish before then.",
        widget=forms.NumberInput(attrs={"min": 1, "max": 336, "step": 1}),
    )
    expiry_unit = forms.ChoiceField(choices=EXPIRY_UNITS, initial="days", label="Unit")
    integration_method = forms.ChoiceField(
        choices=INTEGRATION_METHODS,
        required=False,
        label="Connection method",
        help_text="For makes that connect in more than one way. For BMW and MINI, the BMW "
        "Energy API is for smart charging; the default (BMW CarData) gives other vehicle data.",
    )
    charger_latitude = forms.FloatField(
        required=False,
        min_value=-90,
        max_value=90,
        label="Charger latitude",
        help_text="Where the vehicle charges, e.g. 51.5074 (currently used by BMW only): "
        "helps the owner pick their charger, which BMW needs before charging can be "
        "started or stopped remotely.",
    )
    charger_longitude = forms.FloatField(
        required=False,
        min_value=-180,
        max_value=180,
        label="Charger longitude",
        help_text="E.g. -0.1278. Give both latitude and longitude, or neither.",
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
        self._clean_expiry(data)
        latitude, longitude = data.get("charger_latitude"), data.get("charger_longitude")
        if (latitude is None) != (longitude is None):
            missing = "charger_longitude" if longitude is None else "charger_latitude"
            self.add_error(missing, "Give both the charger's latitude and longitude, or neither.")
        return data

    def _clean_expiry(self, data: dict[str, Any]) -> None:
        amount, unit = data.get("expiry_amount"), data.get("expiry_unit")
        if amount is None or unit not in UNIT_SECONDS:
            return  # the field's own error says what is wrong
        seconds = amount * UNIT_SECONDS[unit]
        if not MIN_EXPIRY <= seconds <= MAX_EXPIRY:
            self.add_error(
                "expiry_amount",
                f"A link is valid for 1 hour to 14 days (336 hours); {amount} {unit} is "
                f"too {'short' if seconds < MIN_EXPIRY else 'long'}.",
            )
        else:
            data["expires_in"] = seconds

    def options(self) -> LinkOptions:
        data = self.cleaned_data
        return LinkOptions(
            scopes=tuple(data["scopes"]),
            device_types=tuple(data["device_types"]),
            expires_in=data["expires_in"],
            makes=tuple(data.get("makes") or ()),
            locale=data.get("locale") if data.get("locale") in LOCALES else "",
            region=data.get("region") or "",
            country_code=data.get("country_code") or "",
            vin=data.get("vin") or "",
            model=(data.get("model") or "").strip(),
            model_year=data.get("model_year"),
            integration_method=data.get("integration_method") or "",
            charger_latitude=data.get("charger_latitude"),
            charger_longitude=data.get("charger_longitude"),
        )


class SendLinkForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=254)


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, label="Status")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "All"), *LinkStatus.choices]
