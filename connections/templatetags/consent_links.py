"""`{% vin_links_note upload %}`: how many of an upload's VINs needing consent
have a link to send, and how many need theirs reissued (shown by the CSV)."""

from __future__ import annotations

from typing import Any

from django import template

from connections.consent.vin_links import vin_links_summary
from connections.models import Upload

register = template.Library()


@register.inclusion_tag("connections/consent/vin_links_note.html")
def vin_links_note(upload: Upload) -> dict[str, Any]:
    return {"summary": vin_links_summary(upload), "upload": upload}
