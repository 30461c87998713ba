"""Cursor pages (`maxPageSize`, `pageToken` -> `nextPageToken`) and numbered pages."""

import base64
import hashlib
import json
import re
from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from sandbox.api.responses import ApiError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# ASCII digits only, and short enough for int() (which refuses over 4,300 digits).
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,1000}")
# A cursor outside a 64-bit integer cannot be a row of ours (and SQLite refuses it).
_BIGGEST = 2**63 - 1


def _int_param(request: HttpRequest, name: str, default: int, minimum: int | None) -> int:
    """The parameter's (last) value; every value given must be valid, as a
    contract validator reading any one of them would demand."""
    values = request.GET.getlist(name)
    if not values:
        return default
    for raw in values:
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise ApiError(
                "REQUEST_VALIDATION_ERROR", f"{name} must be a whole number.", {"field": name}
            )
        if minimum is not None and int(raw) < minimum:
            raise ApiError(
                "REQUEST_VALIDATION_ERROR", f"{name} must be at least {minimum}.", {"field": name}
            )
    return int(values[-1])


def cursor_page(
    request: HttpRequest, queryset: QuerySet, filters: dict[str, Any]
) -> tuple[list[Any], str | None, int]:
    """One page of `queryset` (ordered by `pk_seq` or `pk`), its next token and the total.

    The token remembers a digest of the filters so a changed filter between
    pages is refused, as Volteras does.
    """
    _refuse_empty(request, ["pageToken", *filters])
    # The contract sets no minimum here: a size below 1 asks for the default.
    size = _int_param(request, "maxPageSize", DEFAULT_PAGE_SIZE, None)
    if size < 1:
        size = DEFAULT_PAGE_SIZE
    if size > MAX_PAGE_SIZE:
        raise ApiError(
            "PAGE_SIZE_TOO_LARGE",
            f"maxPageSize may be at most {MAX_PAGE_SIZE}.",
            {"maxPageSize": MAX_PAGE_SIZE},
        )
    digest = hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]
    pk = queryset.model._meta.pk
    order = pk.name
    total = queryset.count()
    token = request.GET.get("pageToken")
    if token:
        try:
            cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
            after, token_digest = cursor["after"], cursor["filters"]
            if not _valid_cursor(pk, after):
                raise ValueError(after)
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                "REQUEST_VALIDATION_ERROR", "pageToken is not valid.", {"field": "pageToken"}
            ) from None
        if token_digest != digest:
            raise ApiError("PAGINATED_QUERY_FILTER_CHANGED", "The filters changed between pages.")
        queryset = queryset.filter(**{f"{order}__gt": after})
    rows = list(queryset.order_by(order)[: size + 1])
    next_token = None
    if len(rows) > size:
        rows = rows[:size]
        cursor = {"after": getattr(rows[-1], order), "filters": digest}
        next_token = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()
    return rows, next_token, total


def _refuse_empty(request: HttpRequest, names: list[str]) -> None:
    """`?name=` with nothing after it: the contract allows no empty value (its
    parameters keep OpenAPI's `allowEmptyValue: false`); leave the parameter out."""
    for name in names:
        if "" in request.GET.getlist(name):
            raise ApiError("REQUEST_VALIDATION_ERROR", f"{name} may not be empty.", {"field": name})


def _valid_cursor(pk: models.Field, after: Any) -> bool:
    """A crafted token must not reach the database with a value its key cannot hold."""
    if isinstance(pk, models.IntegerField):
        return type(after) is int and -_BIGGEST <= after <= _BIGGEST
    return isinstance(after, str) and "\x00" not in after


def numbered_page(request: HttpRequest, items: list[Any]) -> list[Any]:
    """`maxPageSize` and `currentPage` (from 0) over an already ordered list."""
    size = _int_param(request, "maxPageSize", 100, 1)
    page = _int_param(request, "currentPage", 0, 0)
    return items[page * size : (page + 1) * size]
