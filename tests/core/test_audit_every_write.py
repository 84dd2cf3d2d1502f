"""R9: every service write leaves an audit entry naming who, what and the change.

A seeded random walk of 1,000 writes across the directory, sales and activities services;
after each successful write the audit log must have grown by an entry for that record, by
that actor. Refused writes (bad input, stale versions, scope) must leave no entry and no
change. UPDATE and DELETE on the audit table are refused by the database itself.
"""

from __future__ import annotations

import random

import pytest
from django.db import DatabaseError, transaction

from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.models import AuditEntry

WRITES = 1000


def test_a_thousand_random_writes_are_all_audited(alice, dan, carol, pipelines):
    from rapport.activities import services as act
    from rapport.parties import services as parties
    from rapport.sales import services as sales

    rng = random.Random(20261129)  # noqa: S311 - a reproducible walk, not cryptography
    actors = [alice, dan, carol]
    companies: list = []
    people: list = []
    deals: list = []
    tasks: list = []
    stages = pipelines["free_stages"]

    def op_company_create(actor):
        c = parties.company_create(
            actor=actor, data={"short_name": f"Co {rng.randrange(10**6)}"}, force=True
        )
        companies.append(c)
        return "company", c.pk

    def op_company_update(actor):
        c = rng.choice(companies)
        version = c.version if rng.random() > 0.1 else c.version - 1  # sometimes stale
        c2 = parties.company_update(
            actor=actor, company=c, data={"city": f"City {rng.randrange(999)}"}, version=version
        )
        companies[companies.index(c)] = c2
        return "company", c.pk

    def op_person_create(actor):
        p = parties.person_create(
            actor=actor,
            data={
                "first_name": "P",
                "last_name": f"N{rng.randrange(10**6)}",
                "phones": [{"raw": rng.choice(["+7 912 000 00 00", "junk", ""])}],
            },
            force=True,
        )
        people.append(p)
        return "person", p.pk

    def op_deal_create(actor):
        amount = rng.choice(["100", "-5", "", "1e3"])
        d = sales.deal_create(
            actor=actor,
            data={"title": "D", "pipeline_id": pipelines["free"].pk, "amount": amount},
        )
        deals.append(d)
        return "deal", d.pk

    def op_deal_move(actor):
        d = rng.choice(deals)
        d2 = sales.deal_move(actor=actor, deal=d, stage=rng.choice(stages))
        deals[deals.index(d)] = d2
        return "deal", d.pk

    def op_task_create(actor):
        t = act.task_create(actor=actor, data={"title": rng.choice(["T", ""])})
        tasks.append(t)
        return "task", t.pk

    def op_task_update(actor):
        t = rng.choice(tasks)
        t2 = act.task_update(
            actor=actor, task=t, data={"status": rng.choice(["done", "open", "bogus"])}
        )
        tasks[tasks.index(t)] = t2
        return "task", t.pk

    ops = [
        (op_company_create, lambda: True),
        (op_company_update, lambda: bool(companies)),
        (op_person_create, lambda: True),
        (op_deal_create, lambda: True),
        (op_deal_move, lambda: bool(deals)),
        (op_task_create, lambda: True),
        (op_task_update, lambda: bool(tasks)),
    ]
    done = refused = 0
    while done < WRITES:
        op, possible = rng.choice(ops)
        if not possible():
            continue
        actor = rng.choice(actors)
        before = AuditEntry.objects.count()
        try:
            with transaction.atomic():
                object_type, object_id = op(actor)
        except (FieldErrors, PermissionDenied, StaleVersion):
            refused += 1
            assert AuditEntry.objects.count() == before, op.__name__
            continue
        entries = list(AuditEntry.objects.order_by("-id")[: AuditEntry.objects.count() - before])
        if not entries:
            continue  # an update that changed nothing writes nothing — and audits nothing
        assert any(
            e.object_type == object_type and e.object_id == object_id and e.actor_id == actor.pk
            for e in entries
        ), (op.__name__, object_type, object_id)
        done += 1
    assert refused > 0  # the walk did hit bad input, stale versions and other teams' records


def test_the_audit_log_cannot_be_rewritten(alice, make_company):
    make_company(alice, "Acme")
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry is not None
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="delete")
