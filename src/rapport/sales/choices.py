"""Fixed vocabularies of the sales process (stored as codes, shown as labels)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class PipelineKind(models.TextChoices):
    STRICT = "strict", _("strict: stages in order, entry conditions")
    FREE = "free", _("free: any move allowed")
    STAGELESS = "stageless", _("stageless: open / won / lost only")


class DealStatus(models.TextChoices):
    OPEN = "open", _("open")
    WON = "won", _("won")
    LOST = "lost", _("lost")


class LeadStatus(models.TextChoices):
    NEW = "new", _("new")
    IN_WORK = "in_work", _("in work")
    QUALIFIED = "qualified", _("qualified")
    CONVERTED = "converted", _("converted")
    REJECTED = "rejected", _("rejected")


class LeadChannel(models.TextChoices):
    PHONE = "phone", _("phone call")
    EMAIL = "email", _("email")
    WEB_FORM = "web_form", _("website form")
    MESSENGER = "messenger", _("messenger")
    SOCIAL = "social", _("social network")
    CHAT = "chat", _("chat")
    REFERRAL = "referral", _("referral")
    CAMPAIGN = "campaign", _("campaign")
    MANUAL = "manual", _("manual")


# Deal fields a stage may require before a deal enters it ("cf:<name>" for custom fields).
STAGE_REQUIREMENTS = {
    "amount": _("amount"),
    "company": _("company"),
    "person": _("person"),
    "contact": _("contact person"),
    "expected_close": _("expected close date"),
    "source": _("source"),
}
