"""The fleet list's search box compares one stored column, `VinEntry.search_key`
(the VIN, the plate without spaces or dashes, the tags' JSON, upper-cased), with
one trigram index on PostgreSQL. Before, it compared four expressions a row,
one of them the tags' JSON cast to text: the cast was most of a search's time.

The trigram index on the upper-cased tags served only that search and goes; the
tag filter's index (exact case) and the VIN and plate ones, which support's
search reads, stay (migration 0020)."""

from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Cast, Concat, Replace, Upper

SEARCH_INDEX = "vinentry_search_key_trgm"
DROPPED = "vinentry_tags_upper_trgm"
DROPPED_EXPRESSION = "(upper((tags)::text)) gin_trgm_ops"


def _has_trigrams(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        return cursor.fetchone() is not None


def create(apps, schema_editor) -> None:
    # Where 0020 could not create pg_trgm, search stays a scan (of one column now).
    if schema_editor.connection.vendor != "postgresql" or not _has_trigrams(schema_editor):
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {SEARCH_INDEX} ON connections_vinentry"
        " USING gin (search_key gin_trgm_ops)"
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {DROPPED}")


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql" or not _has_trigrams(schema_editor):
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {DROPPED} ON connections_vinentry"
        f" USING gin ({DROPPED_EXPRESSION})"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0020_fleet_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="vinentry",
            name="search_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=Concat(
                    "vin",
                    Value("\n"),
                    Replace(Replace(Upper("registration_plate"), Value(" ")), Value("-")),
                    Value("\n"),
                    Upper(Cast("tags", models.TextField())),
                    output_field=models.TextField(),
                ),
                output_field=models.TextField(),
            ),
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
