"""Joins the two 0018 migrations of branches merged into `journeys` (the fleet
list's indexes and the live consent links' changed_at). Nothing to do; drop it
when the two are renumbered into one line."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0018_fleet_list_indexes"),
        ("connections", "0018_live_consent_link_changed_at"),
    ]

    operations = []
