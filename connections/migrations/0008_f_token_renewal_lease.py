from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0007_vin_status_changed_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="renewing_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
