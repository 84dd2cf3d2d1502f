from django.db import models
from django.utils.translation import gettext_lazy as _


class CompanyKind(models.TextChoices):
    CLIENT = "client", _("client")
    PROSPECT = "prospect", _("prospect")
    SUPPLIER = "supplier", _("supplier")
    PARTNER = "partner", _("partner")
    COMPETITOR = "competitor", _("competitor")
    DEALER = "dealer", _("dealer")
    CARRIER = "carrier", _("carrier")


class EntityType(models.TextChoices):
    LEGAL_ENTITY = "legal", _("legal entity")
    SOLE_TRADER = "sole_trader", _("sole trader")


class Channel(models.TextChoices):
    PHONE = "phone", _("phone")
    EMAIL = "email", _("email")
    MESSENGER = "messenger", _("messenger")


class PhoneKind(models.TextChoices):
    MOBILE = "mobile", _("mobile")
    WORK = "work", _("work")
    HOME = "home", _("home")
    FAX = "fax", _("fax")
    OTHER = "other", _("other")


class MessengerKind(models.TextChoices):
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    VIBER = "viber", "Viber"
    SKYPE = "skype", "Skype"
    OTHER = "other", _("other")


class EmploymentRole(models.TextChoices):
    DIRECTOR = "director", _("director")
    CHIEF_ACCOUNTANT = "chief_accountant", _("chief accountant")
    LAWYER = "lawyer", _("lawyer")
    PURCHASER = "purchaser", _("purchaser")
    OTHER = "other", _("other")


class CompanyRelationKind(models.TextChoices):
    PARENT_OF = "parent_of", _("parent company of")
    PARTNER = "partner", _("partner of")
    COMPETITOR = "competitor", _("competitor of")
    SUPPLIER_OF = "supplier_of", _("supplier of")


class PersonRelationKind(models.TextChoices):
    KNOWS = "knows", _("knows")
    REPORTS_TO = "reports_to", _("reports to")
    RELATIVE = "relative", _("relative of")
