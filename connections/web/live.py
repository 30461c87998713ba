"""Live regions: the server's half of a part of a page that refreshes itself
(`static/js/live.js` is the browser's half; README "Live regions" says how a
page opts in).

A live view answers a poll in three ways:

- 204 when the browser's `v` is the page's current version (one cheap query);
- the region, in which every row the browser already has at the same key is a
  bare placeholder (`Live.kept`) and only the others are rendered;
- 286 with the region when nothing on the page can change any more, which stops
  the poll (htmx's "stop polling" status).

A row's key is a digest of what the row shows, so "same key" means "same row".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import format_html
from django_htmx.http import HTMX_STOP_POLLING

KEYS_HEADER = "Live-Keys"
# While the tab is hidden, a region polls at most this often (portal.js).
HIDDEN_EVERY_SECONDS = 60


def row_key(*parts: Any) -> str:
    """A short digest of what a row shows, the same in every process."""
    return hashlib.blake2s(repr(parts).encode(), digest_size=6).hexdigest()


@dataclass
class Live:
    """One live region of a page: what its poller asks for, and how often.

    `every` is None when nothing on the page can change: the region then has no
    poller, and a poll that finds it so is answered 286."""

    region: str
    url: str
    version: Any
    every: int | None
    params: dict[str, Any] = field(default_factory=dict)
    hidden_every: int = HIDDEN_EVERY_SECONDS
    # Answer 286: this poller's work is done (the region may bring a slower one).
    stop: bool = False
    have: dict[str, str] = field(default_factory=dict)

    @property
    def poll_url(self) -> str:
        query = {k: v for k, v in self.params.items() if v not in ("", None)}
        query["v"] = self.version
        return f"{self.url}?{urlencode(query)}"

    @property
    def poller_key(self) -> str:
        return row_key(self.poll_url, self.every, self.hidden_every)

    @property
    def poller(self) -> str:
        """The region's poller element, "" when nothing on the page can change:
        one writing for both engines (`connections/web/live_poller.html` for
        Django's, `{{ live.poller }}` in Jinja's)."""
        if not self.every:
            return ""
        return format_html(
            '<span hidden id="{}-poller" data-key="{}" data-live-poller hx-get="{}"'
            ' hx-target="#{}" hx-swap="live" hx-trigger="every {}s"'
            ' data-hidden-every="{}"></span>',
            self.region,
            self.poller_key,
            self.poll_url,
            self.region,
            self.every,
            self.hidden_every,
        )

    def kept(self, element_id: str, key: str) -> bool:
        """Whether the browser already shows `element_id` at `key` (then the
        template sends only a placeholder for it)."""
        return self.have.get(element_id) == key


def wants_region(request: HttpRequest, region: str) -> bool:
    """An htmx request for the region alone (a poll, or a filter aimed at it),
    not a history restore, which needs the whole page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and htmx.target == region and not htmx.history_restore_request


def is_current(request: HttpRequest, version: Any) -> bool:
    """The browser's `v` is `version`: nothing to send (204)."""
    return "v" in request.GET and request.GET["v"] == str(version)


def browser_keys(request: HttpRequest) -> dict[str, str]:
    """The keyed elements the browser shows in the region ("id=key id=key")."""
    raw = request.headers.get(KEYS_HEADER, "")
    pairs = (item.partition("=") for item in raw.split())
    return {element_id: key for element_id, _, key in pairs if key}


def mark_rows(rows: Iterable[Any], live: Live, prefix: str, key_of) -> None:
    """Set `live_key` and `live_kept` on each row: its key, and whether the
    browser already shows the element `<prefix><pk>` at that key."""
    for row in rows:
        row.live_key = key_of(row)
        row.live_kept = live.kept(f"{prefix}{row.pk}", row.live_key)


def no_change() -> HttpResponse:
    return HttpResponse(status=204)


def region_response(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    live: Live,
    using: str | None = None,
) -> HttpResponse:
    """The region alone (`template` names the partial, or the template of
    engine `using`); 286 when its poller is done: nothing can change, or a
    slower poller in the region takes over."""
    response = render(request, template, {**context, "live": live}, using=using)
    if live.stop or live.every is None:
        response.status_code = HTMX_STOP_POLLING
    return response
