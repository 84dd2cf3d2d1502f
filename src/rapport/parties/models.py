"""The counterparty directory: companies, people, their contact points and relations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import CustomFieldsModel, SoftDeleteModel, TimestampedModel, VersionedModel
from rapport.parties.choices import (
    Channel,
    CompanyKind,
    CompanyRelationKind,
    EmploymentRole,
    EntityType,
    MessengerKind,
    PersonRelationKind,
    PhoneKind,
)


class Tag(models.Model):
    """A free label on companies and people."""

    name = models.CharField(_("name"), max_length=60, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class Party(TimestampedModel, VersionedModel, SoftDeleteModel, CustomFieldsModel):
    """What companies and people share: owner, team, tags, source, duplicate key."""

    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("responsible manager"),
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("team"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(_("source"), max_length=100, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    # Normalised sorted name tokens (legal forms stripped, transliterated): the guard's block key.
    name_key = models.CharField(max_length=300, blank=True, db_index=True, editable=False)

    class Meta:
        abstract = True


class Company(Party):
    """A legal entity or sole trader."""

    entity_type = models.CharField(
        _("entity type"), max_length=20, choices=EntityType.choices, default=EntityType.LEGAL_ENTITY
    )
    short_name = models.CharField(_("short name"), max_length=200)
    full_name = models.CharField(_("full legal name"), max_length=400, blank=True)
    legal_form = models.CharField(_("legal form"), max_length=40, blank=True)
    tax_id = models.CharField(_("tax id"), max_length=20, blank=True, db_index=True)
    tax_country = models.CharField(_("tax country"), max_length=2, blank=True)
    registration_number = models.CharField(_("registration number"), max_length=40, blank=True)
    # ",client,supplier," so one LIKE finds a kind on any database.
    kinds_text = models.CharField(max_length=200, blank=True, default="")
    industry = models.CharField(_("industry"), max_length=120, blank=True)
    website = models.CharField(_("website"), max_length=200, blank=True)
    legal_address = models.TextField(_("legal address"), blank=True)
    postal_address = models.TextField(_("postal address"), blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True)
    city = models.CharField(_("city"), max_length=120, blank=True)
    client_since = models.DateField(_("client since"), null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="companies", verbose_name=_("tags"))

    class Meta:
        ordering = ["-id"]
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        indexes = [
            models.Index(fields=["team", "-id"], name="company_team_idx"),
            models.Index(fields=["responsible", "-id"], name="company_resp_idx"),
            models.Index(fields=["short_name", "id"], name="company_name_idx"),
        ]

    def __str__(self) -> str:
        return self.short_name

    @property
    def extra_legal_form(self) -> str:
        """The legal form, when the short name does not already carry it ("ООО Ромашка")."""
        form = self.legal_form.strip()
        if not form or form.casefold() in self.short_name.casefold():
            return ""
        return form

    @property
    def kinds(self) -> list[str]:
        return [k for k in self.kinds_text.split(",") if k]

    @property
    def kind_labels(self) -> list[str]:
        labels = dict(CompanyKind.choices)
        return [str(labels.get(k, k)) for k in self.kinds]


class Person(Party):
    """An individual: a client on their own or a contact person of companies."""

    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    time_zone_manual = models.BooleanField(
        _("time zone set by hand"),
        default=False,
        help_text=_("Otherwise it follows the first valid phone number."),
    )
    city = models.CharField(_("city"), max_length=120, blank=True)
    address = models.TextField(_("address"), blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="people", verbose_name=_("tags"))

    class Meta:
        ordering = ["-id"]
        verbose_name = _("person")
        verbose_name_plural = _("people")
        indexes = [
            models.Index(fields=["team", "-id"], name="person_team_idx"),
            models.Index(fields=["responsible", "-id"], name="person_resp_idx"),
            models.Index(fields=["last_name", "first_name", "id"], name="person_name_idx"),
        ]

    def __str__(self) -> str:
        return self.full_name or str(_("(no name)"))

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)


class CompanyNameKey(models.Model):
    """A blocking key of a company's name: the duplicate guard's B-tree lookup.

    ``rapport.core.names.name_block_keys`` of the company's ``name_key``, refreshed with it
    (``rapport.parties.duplicates.name_keys_save``); kept while the company is deleted.
    """

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    key = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["key", "company"], name="company_namekey_idx")]

    def __str__(self) -> str:
        return f"{self.company_id}: {self.key}"


class PersonNameKey(models.Model):
    """A blocking key of a person's name: the duplicate guard's B-tree lookup.

    ``rapport.core.names.name_block_keys`` of the person's ``name_key``, refreshed with it
    (``rapport.parties.duplicates.name_keys_save``); kept while the person is deleted.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    key = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["key", "person"], name="person_namekey_idx")]

    def __str__(self) -> str:
        return f"{self.person_id}: {self.key}"


class ContactPoint(TimestampedModel):
    """A phone, email or messenger handle of a person or a company.

    ``raw`` keeps what was typed; ``value`` the normalised form (E.164, lower-case
    email). An unparseable phone is kept with ``valid=False``, never dropped.
    """

    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.CASCADE, related_name="contact_points"
    )
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.CASCADE, related_name="contact_points"
    )
    channel = models.CharField(_("channel"), max_length=12, choices=Channel.choices)
    kind = models.CharField(_("kind"), max_length=12, blank=True)
    raw = models.CharField(_("as typed"), max_length=200)
    value = models.CharField(_("normalised"), max_length=200, blank=True)
    extension = models.CharField(_("extension"), max_length=20, blank=True)
    valid = models.BooleanField(_("valid"), default=True)
    is_primary = models.BooleanField(_("primary"), default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("contact point")
        verbose_name_plural = _("contact points")
        indexes = [models.Index(fields=["channel", "value"], name="contact_value_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(person__isnull=False, company__isnull=True)
                    | models.Q(person__isnull=True, company__isnull=False)
                ),
                name="contact_point_one_owner",
            )
        ]

    def __str__(self) -> str:
        return self.value or self.raw

    @property
    def kind_label(self) -> str:
        """The kind in the reader's language (phone and email kinds share PhoneKind)."""
        labels = dict(MessengerKind.choices if self.channel == "messenger" else PhoneKind.choices)
        return str(labels.get(self.kind, self.kind))


class BankAccount(TimestampedModel):
    """A company's bank account."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="bank_accounts")
    bank_name = models.CharField(_("bank"), max_length=200)
    bic = models.CharField(_("BIC / SWIFT"), max_length=20, blank=True)
    account_number = models.CharField(_("account number / IBAN"), max_length=40)
    correspondent_account = models.CharField(_("correspondent account"), max_length=40, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("bank account")
        verbose_name_plural = _("bank accounts")

    def __str__(self) -> str:
        return f"{self.bank_name} {self.account_number}"


class Employment(TimestampedModel):
    """A person working at a company, with a position and a role."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="employments")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="employments")
    position = models.CharField(_("position"), max_length=150, blank=True)
    role = models.CharField(
        _("role"), max_length=20, choices=EmploymentRole.choices, default=EmploymentRole.OTHER
    )
    is_current = models.BooleanField(_("works there now"), default=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["person", "company"], name="employment_unique"),
        ]
        verbose_name = _("employment")
        verbose_name_plural = _("employments")

    def __str__(self) -> str:
        return f"{self.person} @ {self.company}"


class CompanyRelation(TimestampedModel):
    """company -> company: parent of, partner, competitor, supplier of."""

    from_company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="relations_out"
    )
    to_company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="relations_in")
    kind = models.CharField(_("relation"), max_length=20, choices=CompanyRelationKind.choices)
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["from_company", "to_company", "kind"], name="company_relation_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_company} {self.kind} {self.to_company}"


class PersonRelation(TimestampedModel):
    """person -> person: knows, reports to, relative."""

    from_person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="relations_out")
    to_person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="relations_in")
    kind = models.CharField(_("relation"), max_length=20, choices=PersonRelationKind.choices)
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["from_person", "to_person", "kind"], name="person_relation_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_person} {self.kind} {self.to_person}"
