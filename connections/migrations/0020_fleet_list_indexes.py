"""The fleet list's indexes: a status filter read in the default order (needs
you first), and trigram indexes (pg_trgm) for the search and tag filter, which
match with LIKE '%…%'. The trigram ones are PostgreSQL's only, outside the
model's state (SQLite has no such index and keeps scanning); each is on exactly
the expression `connections/fleet/listing.py`'s filters compare (the planner
matches expressions, not intentions)."""

import logging

from django.db import DatabaseError, migrations, models, transaction

logger = logging.getLogger(__name__)

INDEXES = {
    "vinentry_vin_trgm": "vin gin_trgm_ops",
    "vinentry_plate_key_trgm": (
        "(replace(replace(upper(registration_plate), ' ', ''), '-', '')) gin_trgm_ops"
    ),
    "vinentry_tags_trgm": "((tags)::text) gin_trgm_ops",
    "vinentry_tags_upper_trgm": "(upper((tags)::text)) gin_trgm_ops",
}


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as error:
        # pg_trgm ships with PostgreSQL and is trusted (any database owner may
        # create it); a server without it still searches, by scanning.
        logger.warning("pg_trgm is not available, search stays a scan: %s", error)
        return
    for name, expression in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON connections_vinentry USING gin ({expression})"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0019_live_consent_link_changed_at"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="vinentry",
            index=models.Index(
                fields=["fleet", "status", "attention", "-status_changed_at", "-id"],
                name="vinentry_fleet_status_needs",
            ),
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
