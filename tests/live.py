"""Asking a live region (connections/web/live.py) what the browser's poller
asks: htmx headers, the region as target, the keys the browser shows."""

from __future__ import annotations

import re

KEYED = re.compile(r'<[a-z]+ id="([^"]+)" data-key="([^"]+)"')


def poll(client, url: str, region: str, keys: str = "", **params):
    """A poll of `region` at `url` with `params` (`v` among them for a poll)."""
    headers = {"HX-Request": "true", "HX-Target": region}
    if keys:
        headers["Live-Keys"] = keys
    return client.get(url, params, headers=headers)


def keys_of(html: str) -> str:
    """The Live-Keys header a browser showing `html` sends."""
    return " ".join(f"{element}={key}" for element, key in KEYED.findall(html))


def kept(html: str, element: str) -> bool:
    """Whether `element` is sent as a bare placeholder (the browser keeps its own)."""
    return (
        re.search(rf'id="{re.escape(element)}" data-key="[^"]+" data-live-keep', html) is not None
    )
