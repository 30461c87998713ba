"""Render an e-mail (subject, plain text, HTML) from templates, in a language.

Every message has three templates under `templates/mail/`: `<name>_subject.txt`,
`<name>.txt` and `<name>.html`, rendered with the same context while the
recipient's language is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import formats, translation

# The owner's timezone, guessed from the link's country (or language) when the
# portal knows nothing better: the expiry is shown in their terms, with its name.
COUNTRY_TIMEZONES = {
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "LU": "Europe/Luxembourg",
    "NL": "Europe/Amsterdam",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "IT": "Europe/Rome",
    "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "FI": "Europe/Helsinki",
    "PL": "Europe/Warsaw",
}
LANGUAGE_COUNTRIES = {"en": "GB", "de": "DE", "fr": "FR", "es": "ES", "it": "IT", "nl": "NL"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    language: str


def supported_language(code: str) -> str:
    """One of `settings.LANGUAGES` for a code like `de-DE`, `de` or `pt` ("" if none)."""
    code = (code or "").strip().replace("_", "-").lower()
    if not code:
        return ""
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return ""


def owner_timezone(country_code: str, language: str) -> ZoneInfo:
    country = (country_code or LANGUAGE_COUNTRIES.get(language, "")).upper()
    return ZoneInfo(COUNTRY_TIMEZONES.get(country, settings.TIME_ZONE))


def local_datetime(value: datetime, tz: ZoneInfo) -> str:
    """`value` as the active language writes a date and time, with the timezone's name."""
    local = value.astimezone(tz)
    return f"{formats.date_format(local, 'DATETIME_FORMAT')} ({tz.key})"


def render(name: str, context: dict[str, Any], language: str) -> Rendered:
    language = supported_language(language) or "en"
    with translation.override(language):
        subject = render_to_string(f"mail/{name}_subject.txt", context)
        text = render_to_string(f"mail/{name}.txt", context)
        html = render_to_string(f"mail/{name}.html", context)
    return Rendered(" ".join(subject.split()), text.strip() + "\n", html, language)
