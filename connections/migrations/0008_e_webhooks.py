from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0007_vin_status_changed_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="reconciliationrun",
            name="vehicle_cursor",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="group_cursor",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="unmatched",
            field=models.BooleanField(default=False),
        ),
    ]
