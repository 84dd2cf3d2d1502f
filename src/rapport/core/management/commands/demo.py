"""`rapport demo`: a small, believable organisation and directory to look around in."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from rapport.accounts.models import Role, Team, User, default_permissions
from rapport.accounts.services import role_save, team_create, user_create
from rapport.core.services import custom_field_create
from rapport.parties.models import Company
from rapport.parties.services import (
    company_create,
    company_relation_create,
    person_create,
    person_relation_create,
)

COMPANIES = [
    {
        "short_name": "ООО «Ромашка»",
        "tax_id": "7707083893",
        "tax_country": "RU",
        "kinds": ["client"],
        "city": "Москва",
        "country": "RU",
        "industry": "Розничная торговля",
        "phones": [{"raw": "+7 495 123-45-67", "kind": "work"}],
        "emails": [{"raw": "info@romashka.ru"}],
    },
    {
        "short_name": "Северсталь-Логистик АО",
        "kinds": ["carrier", "supplier"],
        "city": "Череповец",
        "country": "RU",
        "phones": [{"raw": "8 (8202) 53-09-00", "kind": "work"}],
    },
    {
        "short_name": "Antonello Professore S.r.l.",
        "tax_id": "IT01114601006",
        "tax_country": "IT",
        "kinds": ["client"],
        "city": "Milano",
        "country": "IT",
        "phones": [{"raw": "+39 02 1678 8371", "kind": "work"}],
        "emails": [{"raw": "ordini@antonello.it"}],
    },
    {
        "short_name": "Azər Texnika MMC",
        "kinds": ["prospect"],
        "city": "Bakı",
        "country": "AZ",
        "phones": [{"raw": "(012) 404 55 66", "kind": "work"}],
        "default_region": "AZ",
    },
    {
        "short_name": "شركة النور المحدودة",
        "kinds": ["partner"],
        "city": "الرياض",
        "country": "SA",
        "phones": [{"raw": "+966 11 234 5678", "kind": "work"}],
        "default_region": "SA",
    },
    {
        "short_name": "Blue Harbor Logistics LLC",
        "kinds": ["competitor"],
        "city": "Newark",
        "country": "US",
        "phones": [{"raw": "+1 201 206 4069", "kind": "work"}],
        "default_region": "US",
    },
]
PEOPLE = [
    (
        "Ivan",
        "Petrov",
        "Sergeyevich",
        "+7 912 341-96-15",
        "ivan.petrov@romashka.ru",
        0,
        "Director",
        "director",
    ),
    (
        "Мария",
        "Смирнова",
        "Олеговна",
        "8 (916) 555-12-34",
        "m.smirnova@romashka.ru",
        0,
        "Главный бухгалтер",
        "chief_accountant",
    ),
    (
        "Giulia",
        "Bianchi",
        "",
        "+39 331 234 5678",
        "giulia.bianchi@antonello.it",
        2,
        "Buyer",
        "purchaser",
    ),
    (
        "Elvin",
        "Məmmədov",
        "",
        "+994 50 123 45 67",
        "elvin@azertexnika.az",
        3,
        "Direktor",
        "director",
    ),
    ("أحمد", "الحربي", "", "+966 51 251 7375", "ahmed@alnoor.sa", 4, "مدير المشتريات", "purchaser"),
    (
        "Tyler",
        "Silva",
        "",
        "+1 201 555 0147",
        "tyler.silva@blueharbor.com",
        5,
        "Sales lead",
        "other",
    ),
]


class Command(BaseCommand):
    help = "Load demo teams, users and a directory (idempotent: skipped if companies exist)."

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        if Company.objects.exists():
            self.stdout.write("Demo skipped: the directory is not empty.")
            return
        password = os.environ.get("RAPPORT_DEMO_PASSWORD", "rapport-demo-2026")
        org = Team.objects.filter(parent__isnull=True).first() or team_create(
            actor=None, name="Organisation", kind=Team.Kind.ORGANISATION
        )
        office = team_create(actor=None, name="Moscow office", kind=Team.Kind.OFFICE, parent=org)
        team_a = team_create(actor=None, name="Sales A", parent=office)
        team_b = team_create(actor=None, name="Sales B", parent=office)
        baku = team_create(actor=None, name="Baku office", kind=Team.Kind.OFFICE, parent=org)
        head = Role.objects.filter(name="Head of sales").first() or role_save(
            actor=None, name="Head of sales", permissions=default_permissions("all", "all")
        )
        manager = Role.objects.filter(name="Manager").first() or role_save(
            actor=None, name="Manager", permissions=default_permissions("team", "team")
        )
        rep = Role.objects.filter(name="Sales rep").first() or role_save(
            actor=None, name="Sales rep", permissions=default_permissions("own", "own")
        )
        users: dict[str, User] = {}
        for login, first, last, team, role, lang in (
            ("alice", "Alice", "Morozova", team_a, manager, "ru"),
            ("bob", "Bob", "Rossi", team_a, rep, "it"),
            ("carol", "Carol", "Aliyeva", team_b, rep, "az"),
            ("dave", "Dave", "Head", org, head, "en"),
            ("leyla", "Leyla", "Həsənova", baku, rep, "az"),
        ):
            users[login] = User.objects.filter(username=login).first() or user_create(
                actor=None,
                username=login,
                password=password,
                first_name=first,
                last_name=last,
                team=team,
                role=role,
                language=lang,
            )
        custom_field_create(
            actor=None,
            object_type="company",
            name="segment",
            label="Segment",
            type="choice",
            choices=["SMB", "Mid-market", "Enterprise"],
        )
        custom_field_create(
            actor=None, object_type="person", name="newsletter", label="Newsletter", type="bool"
        )
        owners = [
            users["alice"],
            users["bob"],
            users["alice"],
            users["leyla"],
            users["carol"],
            users["bob"],
        ]
        companies = []
        for data, owner in zip(COMPANIES, owners, strict=True):
            companies.append(
                company_create(
                    actor=owner,
                    data={**data, "responsible_id": owner.pk, "custom_fields": {"segment": "SMB"}},
                    force=True,
                )
            )
        for first, last, middle, phone, email, idx, position, job_role in PEOPLE:
            owner = owners[idx]
            person_create(
                actor=owner,
                force=True,
                data={
                    "first_name": first,
                    "last_name": last,
                    "middle_name": middle,
                    "phones": [{"raw": phone}],
                    "emails": [{"raw": email}],
                    "responsible_id": owner.pk,
                    "default_region": COMPANIES[idx].get("default_region", "RU"),
                    "employments": [
                        {"company_id": companies[idx].pk, "position": position, "role": job_role}
                    ],
                },
            )
        company_relation_create(
            actor=None,
            from_company=companies[1],
            to_company=companies[0],
            kind="supplier_of",
            note="Delivers twice a week",
        )
        people = list(companies[0].employments.select_related("person"))
        if len(people) >= 2:
            person_relation_create(
                actor=None,
                from_person=people[1].person,
                to_person=people[0].person,
                kind="reports_to",
            )
        deals = _demo_sales(users, companies)
        _demo_activities(users, companies)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo loaded: {len(companies)} companies, {len(PEOPLE)} people, {deals} deals; "
                f"users alice, bob, carol, dave, leyla with password {password!r}."
            )
        )


def _demo_sales(users: dict[str, User], companies: list[Company]) -> int:
    """Two pipelines with deals spread over their stages, a few won and lost, and leads."""
    from rapport.sales import services as sales
    from rapport.sales.models import LossReason, Pipeline

    main = Pipeline.objects.filter(is_active=True).exclude(kind="stageless").first()
    if main is None:
        main = sales.pipeline_save(actor=None, data={"name": "Sales", "kind": "free"})
        for name in ("New", "Qualified", "Proposal", "Negotiation", "Contract"):
            sales.stage_save(actor=None, pipeline=main, data={"name": name})
    tenders = sales.pipeline_save(actor=None, data={"name": "Tenders", "kind": "strict"})
    for name, extra in (
        ("Announced", {"color": "#8da2c0", "probability": 5}),
        ("Documents", {"color": "#4f7cff", "probability": 20, "time_limit_hours": 72}),
        ("Bid", {"color": "#7a5af8", "probability": 40, "required_fields": ["amount"]}),
        ("Awarded", {"color": "#12b76a", "probability": 90, "required_fields": ["company"]}),
    ):
        sales.stage_save(actor=None, pipeline=tenders, data={"name": name, **extra})
    reasons = list(LossReason.objects.filter(is_active=True))
    plan = [
        # (pipeline, title, company index, owner, amount, stage index, outcome)
        (main, "Cold-chain trucks, 4 units", 0, "alice", "5400000", 3, ""),
        (main, "Office coffee supply", 1, "bob", "180000", 1, ""),
        (main, "Annual logistics contract", 0, "alice", "12000000", 4, "won"),
        (main, "Baku warehouse fit-out", 3, "leyla", "920000", 2, ""),
        (main, "Pasta line spare parts", 5, "bob", "64000", 0, ""),
        (main, "Fleet GPS trackers", 4, "carol", "310000", 2, "lost"),
        (main, "Cold storage rent", 2, "alice", "2250000", 1, ""),
        (tenders, "City hospital catering tender", 2, "alice", "7800000", 2, ""),
        (tenders, "Port handling tender", 4, "carol", "", 1, ""),
        (tenders, "School meals 2027", 0, "alice", "", 0, ""),
    ]
    for pipeline, title, idx, owner_name, amount, stage_index, outcome in plan:
        owner = users[owner_name]
        deal = sales.deal_create(
            actor=owner,
            data={
                "title": title,
                "pipeline_id": pipeline.pk,
                "company_id": companies[idx].pk,
                "amount": amount or None,
                "responsible_id": owner.pk,
                "source": "demo",
            },
        )
        for stage in list(pipeline.stages.order_by("order"))[1 : stage_index + 1]:
            deal = sales.deal_move(actor=owner, deal=deal, stage=stage)
        if outcome == "won":
            sales.deal_win(actor=owner, deal=deal)
        elif outcome == "lost" and reasons:
            sales.deal_lose(actor=owner, deal=deal, reason_id=reasons[0].pk, comment="Demo")
    for data, owner_name in (
        (
            {
                "name": "Giulia Bianchi",
                "phone": "+39 347 555 0101",
                "channel": "web_form",
                "company_name": "Bianchi Alimentari",
                "interest": "Refrigerated transport",
                "amount": "450000",
                "utm_source": "google",
                "utm_campaign": "cold-chain",
            },
            "bob",
        ),
        (
            {
                "name": "Rashad Mammadov",
                "phone": "+994 50 555 12 12",
                "channel": "phone",
                "interest": "Warehouse space in Baku",
            },
            "leyla",
        ),
        (
            {
                "name": "Pavel Sokolov",
                "email": "p.sokolov@example.ru",
                "channel": "email",
                "company_name": "Sokolov Trade",
                "interest": "Fleet leasing",
            },
            "alice",
        ),
    ):
        sales.lead_create(
            actor=users[owner_name], data={**data, "responsible_id": users[owner_name].pk}
        )
    return len(plan)


def _demo_activities(users: dict[str, User], companies: list[Company]) -> None:
    """Today's meetings and calls, a few tasks (one overdue, one with subtasks) for the desk."""
    import datetime as dt

    from django.utils import timezone

    from rapport.activities.services import interaction_log, task_create

    today = timezone.localdate()

    def at(days: int, hour: int, minute: int = 0) -> dt.datetime:
        return timezone.make_aware(
            dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour, minute))
        )

    alice, bob = users["alice"], users["bob"]
    for owner, idx, kind, subject, when, status in (
        (alice, 0, "meeting", "Contract review", at(0, 11), "planned"),
        (alice, 2, "call", "Confirm the delivery window", at(0, 15, 30), "planned"),
        (alice, 0, "call", "Asked for the autumn price list", at(-2, 10), "done"),
        (alice, 0, "email", "Offer sent", at(-1, 17), "done"),
        (bob, 1, "meeting", "Tasting at the client's office", at(1, 12), "planned"),
    ):
        interaction_log(
            actor=owner,
            data={
                "kind": kind,
                "status": status,
                "subject": subject,
                "at": when,
                "ends_at": when + dt.timedelta(hours=1) if kind == "meeting" else None,
                "company_id": companies[idx].pk,
                "direction": "out" if kind in ("call", "email") else "",
            },
        )
    task_create(
        actor=alice,
        data={
            "title": "Send the signed contract",
            "due_at": at(-1, 18),
            "company_id": companies[0].pk,
        },
    )
    tender = task_create(
        actor=alice,
        data={"title": "Prepare the hospital tender", "due_at": at(3, 18), "priority": 3},
    )
    for title in ("Collect the documents", "Price the bid", "Get the bank guarantee"):
        task_create(actor=alice, data={"title": title, "parent_id": tender.pk, "due_at": at(2, 12)})
