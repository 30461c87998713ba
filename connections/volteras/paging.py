"""Walking the contract's two kinds of lists: cursor pages (`pageToken`) and
numbered pages (`currentPage`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from connections.volteras.errors import PageTokenExpired, UnexpectedResponse
from connections.volteras.types import NumberedPage, Page

T = TypeVar("T")

# How many times one walk over a cursor list starts again after its page token
# expired (QUERY_PAGE_TOKEN_EXPIRED) before giving up with `PageTokenExpired`.
MAX_QUERY_RESTARTS = 3
# More numbered pages than this is a server bug, not a long list.
MAX_NUMBERED_PAGES = 10_000


def follow(
    fetch: Callable[[str | None], Page[T]], restarts: int = MAX_QUERY_RESTARTS
) -> Iterator[T]:
    """Walk a cursor list from its first page, yielding each item once.

    Volteras expires page tokens (QUERY_PAGE_TOKEN_EXPIRED) and asks for the
    query to be started again without one. So does this, at most `restarts`
    times per walk, skipping items (by `id`) already yielded: the caller
    sees one list, as if nothing had happened, or `PageTokenExpired` once
    the restarts are used up. Items may have changed or gone between the
    two reads; a list is a snapshot either way.
    """
    yielded: set[Any] = set()
    restarted = 0
    while True:
        token: str | None = None
        seen: set[str] = set()
        try:
            while True:
                page = fetch(token)
                for item in page.results:
                    key = getattr(item, "id", None)
                    if key is not None:
                        if key in yielded:
                            continue
                        yielded.add(key)
                    yield item
                token = page.next_page_token
                if not token:
                    return
                if token in seen:
                    raise UnexpectedResponse(
                        f"page token repeated while paging ({len(seen)} pages)"
                    )
                seen.add(token)
        except PageTokenExpired:
            if token is None or restarted >= restarts:
                # Expired without a token sent, or too often: not ours to fix.
                raise
            restarted += 1


def all_numbered(fetch: Callable[[int], NumberedPage[T]], page_size: int) -> list[T]:
    """Read numbered pages from 0 until the list is complete.

    `totalResults` is optional in the contract (default 0), so a missing
    or zero count says nothing: then a page with fewer than `page_size`
    results is the last one. A count, when given, is followed until the
    results read reach it (a server may cap pages below `page_size`). An
    empty page always ends the walk, even if the count promised more
    (results still being written), rather than looping forever.
    """
    collected: list[T] = []
    for page_number in range(MAX_NUMBERED_PAGES):
        page = fetch(page_number)
        collected.extend(page.results)
        if not page.results:
            return collected
        if page.total_results:
            if len(collected) >= page.total_results:
                return collected
        elif len(page.results) < page_size:
            return collected
    raise UnexpectedResponse(f"more than {MAX_NUMBERED_PAGES} full pages of results")
