"""`WebhookEvent.store_once`'s statement: one `INSERT ... ON CONFLICT DO UPDATE
... RETURNING` per delivery, built once per process and database vendor.
"""

from __future__ import annotations

from typing import Any

from django.db import (
    InterfaceError,
    OperationalError,
    models,
)
from django.db.backends.base.base import BaseDatabaseWrapper

# WebhookEvent.store_once's statement and its parameters, per database vendor
# and set of fields given.
INSERT_PLANS: dict[tuple[str, frozenset[str]], tuple[str, list[tuple[models.Field, Any]]]] = {}


PER_CALL = object()


def execute_checked(db: BaseDatabaseWrapper, sql: str, values: list[Any]) -> tuple[Any, ...]:
    """Run one statement and return its row, the statement serving as the
    connection's health check.

    With CONN_HEALTH_CHECKS, Django would first send `SELECT 1` on a
    connection kept from an earlier request: a second round trip on every
    delivery. Here the statement goes first; if it fails on such a
    connection (the database restarted, say), the connection is replaced and
    the statement sent once more, as the failed check would have. Should the
    first one have committed before its answer was lost, the second counts a
    redelivery of it: the event is stored either way.
    """
    check_skipped = (
        db.connection is not None
        and db.health_check_enabled
        and not db.health_check_done
        and not db.in_atomic_block
    )
    if check_skipped:
        db.health_check_done = True
    try:
        with db.cursor() as cursor:
            cursor.execute(sql, values)
            return cursor.fetchone()
    except (OperationalError, InterfaceError):
        if not check_skipped:
            raise
        db.close()
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()


def sql_literal(value: Any) -> str | None:
    """SQL for a constant default both PostgreSQL and SQLite read alike, or
    None when it must stay a parameter."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if value == "":
        return "''"
    return None
