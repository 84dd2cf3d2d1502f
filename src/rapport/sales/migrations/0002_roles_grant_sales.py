"""Existing roles get the same grants on leads and deals as they have on companies,
and a first pipeline and loss reasons exist so a new install can sell right away."""

from django.db import migrations


def grant(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for role in Role.objects.all():
        perms = dict(role.permissions or {})
        base = perms.get("company")
        if not base:
            continue
        changed = False
        for obj in ("deal", "lead"):
            if obj not in perms:
                perms[obj] = dict(base)
                changed = True
        if changed:
            role.permissions = perms
            role.save(update_fields=["permissions"])


def starter(apps, schema_editor):
    Pipeline = apps.get_model("sales", "Pipeline")
    Stage = apps.get_model("sales", "Stage")
    LossReason = apps.get_model("sales", "LossReason")
    if not Pipeline.objects.exists():
        p = Pipeline.objects.create(name="Sales", kind="free", order=10)
        for i, (name, prob, color) in enumerate(
            [
                ("New", 10, "#8da2c0"),
                ("Qualified", 25, "#4f7cff"),
                ("Proposal", 50, "#7a5af8"),
                ("Negotiation", 75, "#f79009"),
                ("Contract", 90, "#12b76a"),
            ]
        ):
            Stage.objects.create(pipeline=p, name=name, order=(i + 1) * 10, probability=prob, color=color)
    if not LossReason.objects.exists():
        for i, name in enumerate(
            ["Price too high", "Chose a competitor", "No budget", "No response", "Not a fit"]
        ):
            LossReason.objects.create(name=name, order=(i + 1) * 10)


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0001_initial"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(starter, migrations.RunPython.noop),
    ]
