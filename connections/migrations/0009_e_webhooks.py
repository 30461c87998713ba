from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0008_c_consent_return_token"),
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
