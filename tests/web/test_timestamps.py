"""The portal reads PostgreSQL timestamps with `datetime.fromisoformat`
(`fleet_portal.timestamps`) and gets exactly what Django's own loader gives."""

from __future__ import annotations

import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from fleet_portal.timestamps import TIMESTAMPTZ

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]

TIMES = (
    "2026-12-04 19:01:01.208296+00",
    "2026-12-04 19:01:01+00",
    "2026-03-29 01:30:00.5+02",
    "1900-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
)


def read(sql: str, params, django_loader: bool):
    with connection.cursor() as cursor:
        if django_loader:
            register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_each_connection_reads_timestamps_with_the_fast_loader():
    connection.ensure_connection()
    adapters = connection.connection.adapters
    loader = adapters.get_loader(adapters.types[TIMESTAMPTZ].oid, 0)
    assert loader.__name__ == "FastTzLoader"
    assert loader.timezone == connection.timezone


@pytest.mark.parametrize("text", TIMES)
def test_a_timestamp_reads_as_django_reads_it(text):
    sql = "SELECT %s::timestamptz, now(), NULL::timestamptz"
    fast = read(sql, [text], django_loader=False)
    django = read(sql, [text], django_loader=True)
    assert fast[0][0] == django[0][0]
    assert fast[0][0].tzinfo is django[0][0].tzinfo
    assert fast[0][2] is None


def test_what_fromisoformat_cannot_read_goes_to_djangos_loader():
    for django_loader in (False, True):
        with pytest.raises(DataError, match="after year 10K"):
            read("SELECT 'infinity'::timestamptz", [], django_loader)
    # Another DateStyle, which fromisoformat does not read: Django's answer.
    for django_loader in (False, True):
        with connection.cursor() as cursor:
            if django_loader:
                register_tzloader(connection.timezone, cursor.cursor)
            cursor.execute("SET LOCAL DateStyle TO 'SQL, DMY'")
            cursor.execute("SELECT %s::timestamptz", [TIMES[0]])
            with pytest.raises(NotImplementedError, match="DateStyle"):
                cursor.fetchone()
