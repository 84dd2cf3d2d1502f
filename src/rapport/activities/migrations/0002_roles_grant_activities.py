"""Existing roles get the same grants on interactions and tasks as on companies."""

from django.db import migrations


def grant(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for role in Role.objects.all():
        perms = dict(role.permissions or {})
        base = perms.get("company")
        missing = [obj for obj in ("interaction", "task") if obj not in perms]
        if base and missing:
            for obj in missing:
                perms[obj] = dict(base)
            role.permissions = perms
            role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [("activities", "0001_initial"), ("accounts", "0001_initial")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
