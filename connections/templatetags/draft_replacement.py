"""`{% replace_offer upload %}`: on a draft's page, the offer to replace an
earlier draft of the same file (`uploads.replacing`). Shown with the page,
never re-counted by the live table's poll."""

from __future__ import annotations

from typing import Any

from django import template

from connections.models import Upload
from connections.uploads.replacing import replaceable_draft

register = template.Library()


@register.inclusion_tag("connections/uploads/_replace_offer.html")
def replace_offer(upload: Upload) -> dict[str, Any]:
    return {"offer": replaceable_draft(upload), "upload": upload}
