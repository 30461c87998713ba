"""The fleet list's search and tag filter have trigram indexes on PostgreSQL
(migrations 0020 and 0021), on the very expressions the filters compare."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from connections.fleet.listing import Filters, matching_keys

trigram = importlib.import_module("connections.migrations.0020_fleet_list_indexes")
search_key = importlib.import_module("connections.migrations.0021_fleet_search_key")


@pytest.mark.postgres_only  # pg_trgm is PostgreSQL's
def test_the_trigram_indexes_exist_on_the_filters_expressions(fleet):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'connections_vinentry'"
        )
        found = dict(cursor.fetchall())
    assert set(trigram.INDEXES) - {search_key.DROPPED} <= set(found)
    assert search_key.DROPPED not in found
    assert "gin_trgm_ops" in found["vinentry_plate_key_trgm"]
    assert "(search_key gin_trgm_ops)" in found[search_key.SEARCH_INDEX]
    # What the search and the tag filter compare is what the indexes hold.
    sql = str(matching_keys(fleet, Filters(q="ab-1", tag="k=v"), False).query)
    assert '"connections_vinentry"."search_key"::text LIKE %AB-1%' in sql
    assert '"connections_vinentry"."search_key"::text LIKE %AB1%' in sql
    assert '("connections_vinentry"."tags")::text' in sql
