"""A company's bank account edited on its page is saved, audited, and never silently dropped."""

from __future__ import annotations

import pytest
from django.urls import reverse


def _form(company, **changes):
    data = {
        "short_name": company.short_name,
        "entity_type": company.entity_type,
        "version": company.version,
        "responsible_id": company.responsible_id,
        "bank_name": "Sberbank",
        "bank_account": "40702810900000000001",
        "bank_bic": "044525225",
    }
    data.update(changes)
    return data


def test_editing_the_bank_account_on_the_page_saves_it(alice, make_company, client_for):
    from rapport.core.models import AuditEntry

    company = make_company(
        alice,
        "Acme",
        bank_accounts=[{"bank_name": "Sberbank", "account_number": "40702810900000000001"}],
    )
    client = client_for(alice)
    r = client.post(
        reverse("company-edit", args=[company.pk]),
        _form(company, bank_name="Tinkoff", bank_account="40702810100000000099"),
    )
    assert r.status_code == 302, r.content.decode()[:500]
    accounts = list(company.bank_accounts.values_list("bank_name", "account_number"))
    assert accounts == [("Tinkoff", "40702810100000000099")]
    assert AuditEntry.objects.filter(
        object_type="company", object_id=company.pk, changes__has_key="bank_accounts"
    ).exists()


def test_a_bank_account_without_a_number_is_refused_and_nothing_changes(alice, make_company):
    from rapport.core.errors import FieldErrors
    from rapport.parties.services import company_update

    company = make_company(alice, "Acme")
    with pytest.raises(FieldErrors) as exc:
        company_update(
            actor=alice,
            company=company,
            data={"city": "Kazan", "bank_accounts": [{"bank_name": "Sberbank"}]},
        )
    assert "bank_accounts" in exc.value.errors
    company.refresh_from_db()
    assert company.city == ""
