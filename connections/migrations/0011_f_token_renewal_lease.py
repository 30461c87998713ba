from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0010_a_vinentry_submitted_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="renewing_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
