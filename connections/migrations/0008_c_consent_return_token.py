from django.db import migrations, models

import connections.models.consent


def keep_issued_return_urls(apps, schema_editor) -> None:
    """Links already handed to Volteras were given /consent/return/<token>:
    their owners come back there, so those links keep it as their return token."""
    ConsentLink = apps.get_model("connections", "ConsentLink")
    ConsentLink.objects.update(return_token=models.F("token"))


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0007_vin_status_changed_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="consentlink",
            name="return_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="consentlink",
            name="return_token",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(keep_issued_return_urls, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="consentlink",
            name="return_token",
            field=models.CharField(
                default=connections.models.consent.new_token,
                editable=False,
                max_length=64,
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="vinevent",
            name="source",
            field=models.CharField(
                choices=[
                    ("validation", "Validation"),
                    ("submission", "Submission"),
                    ("poll", "Poll"),
                    ("webhook", "Webhook"),
                    ("reconciliation", "Found by reconciliation"),
                    ("consent", "Owner completed a consent link"),
                    ("manual", "Manual"),
                ],
                max_length=20,
            ),
        ),
    ]
