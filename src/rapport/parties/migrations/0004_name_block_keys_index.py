"""The lookup indexes of the blocking keys, made after the fill (faster than row by row)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("parties", "0003_name_block_keys_fill"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="companynamekey",
            index=models.Index(fields=["key", "company"], name="company_namekey_idx"),
        ),
        migrations.AddIndex(
            model_name="personnamekey",
            index=models.Index(fields=["key", "person"], name="person_namekey_idx"),
        ),
    ]
