"""Blocking keys of the names already stored (batches of 5,000 records)."""

from typing import Any

from django.db import migrations

from rapport.core.names import name_block_keys

BATCH = 5_000


def _fill(model: Any, key_model: Any, owner: str) -> None:
    last = 0
    while True:
        rows = list(
            model.objects.filter(id__gt=last).order_by("id").values_list("id", "name_key")[:BATCH]
        )
        if not rows:
            return
        key_model.objects.bulk_create(
            [
                key_model(**{f"{owner}_id": oid, "key": k})
                for oid, name_key in rows
                for k in name_block_keys(name_key)
            ],
            batch_size=BATCH,
        )
        last = rows[-1][0]


def fill(apps: Any, schema_editor: Any) -> None:
    _fill(
        apps.get_model("parties", "Company"), apps.get_model("parties", "CompanyNameKey"), "company"
    )
    _fill(apps.get_model("parties", "Person"), apps.get_model("parties", "PersonNameKey"), "person")


def empty(apps: Any, schema_editor: Any) -> None:
    apps.get_model("parties", "CompanyNameKey").objects.all().delete()
    apps.get_model("parties", "PersonNameKey").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("parties", "0002_name_block_keys"),
    ]

    operations = [migrations.RunPython(fill, empty)]
