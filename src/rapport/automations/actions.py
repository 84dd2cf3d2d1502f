"""The "then" part: a registry of actions. Each action checks its settings when the rule
is saved, describes what it would do (the rule's test button), and does it through the
owning app's service — the same code the pages and the API call.

Other apps add actions with ``register`` (the product catalogue's "attach a product",
the documents' "generate a document"): the builder, the API and the log pick them up.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from rapport.automations.schema import fields_for, object_label, value_of

Params = dict[str, Any]
Errors = dict[str, list[str]]


@dataclass
class Context:
    """What an action sees: the rule, the record (or None), the event, its own key."""

    rule: Any
    object_type: str
    obj: Any
    event_name: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""
    dry_run: bool = False
    texts: dict[str, Any] | None = None  # the template context, built once per action


@dataclass(frozen=True)
class Result:
    outcome: str  # done | queued | skipped
    detail: str = ""


@dataclass(frozen=True)
class Param:
    """One setting of an action as the rule builder shows it.

    ``kind``: text, textarea, number, bool, who, user, team, stage, pipeline,
    template_email, template_sms, field, value, mode, channel, url.
    """

    name: str
    label: Any
    kind: str = "text"
    help: Any = ""


@dataclass(frozen=True)
class ActionType:
    code: str
    label: Any
    clean: Callable[[Params, str, Errors], Params]
    describe: Callable[[Params, Context], str]
    run: Callable[[Params, Context], Result]
    object_types: tuple[str, ...] | None = None  # None: any rule, also without a record
    external: bool = False  # sends outside Rapport (email, SMS, webhook)
    changes_record: bool = False  # the record is read again after it, for the next action
    form: tuple[Param, ...] = ()


ACTIONS: dict[str, ActionType] = {}


def register(action: ActionType) -> ActionType:
    ACTIONS[action.code] = action
    return action


class ActionFailed(Exception):
    """An action could not be done; the message says why, in the user's words."""


class RuleBroken(ActionFailed):
    """The rule refers to something that is gone (a user, a stage, a template): the
    rule is switched off with this message as the reason."""


# --- shared helpers ---------------------------------------------------------------------------


def _user(pk: Any) -> Any:
    from rapport.accounts.models import User

    try:
        return User.objects.filter(pk=int(pk), is_active=True).first()
    except (TypeError, ValueError):
        return None


def _clean_user(params: Mapping[str, Any], errors: Errors, key: str = "user_id") -> Any:
    pk: Any = params.get(key)
    if pk in (None, ""):
        errors[key] = [_("Choose a user.")]
        return None
    if _user(pk) is None:
        errors[key] = [_("No active user with this id.")]
    return int(pk)


def _clean_who(params: Mapping[str, Any], object_type: str, errors: Errors) -> Params:
    """An employee: the record's responsible manager or a chosen user."""
    who = str(params.get("who") or "responsible")
    if who not in ("responsible", "user"):
        errors["who"] = [_("Choose the record's manager or a user.")]
    if who == "responsible" and not object_type:
        errors["who"] = [_("This rule has no record: choose a user.")]
    out: Params = {"who": who}
    if who == "user":
        out["user_id"] = _clean_user(params, errors)
    return out


def _who(params: Mapping[str, Any], ctx: Context) -> Any:
    if params.get("who") == "user":
        user = _user(params.get("user_id"))
        if user is None:
            raise RuleBroken(_("The chosen user no longer exists or is inactive."))
        return user
    responsible = getattr(ctx.obj, "responsible", None) if ctx.obj is not None else None
    if responsible is None or not responsible.is_active:
        raise ActionFailed(_("The record has no active responsible manager."))
    return responsible


def _text(params: Mapping[str, Any], key: str, errors: Errors, *, required: bool = True) -> str:
    from rapport.automations.render import template_check

    value = str(params.get(key) or "").strip()
    if required and not value:
        errors[key] = [_("This field is required.")]
    elif value:
        template_check(value, key, errors)
    return value


def render(text: str, ctx: Context) -> str:
    from rapport.automations.render import render_text

    return render_text(text, template_context(ctx))


_DETAIL_URLS = {
    "company": "company-detail",
    "person": "person-detail",
    "lead": "lead-detail",
    "deal": "deal-detail",
    "task": "task-detail",
    "interaction": "interaction-detail",
}
_URL_HOLE = 987654321987654321  # reversed once per page kind, the id put in its place


@functools.lru_cache(maxsize=32)
def _detail_url_pattern(name: str, prefix: str) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name, args=[_URL_HOLE])
    except NoReverseMatch:
        return ""


def record_url(object_type: str, obj: Any) -> str:
    """The record's page (``reverse`` costs a millisecond; a rule may ask a thousand times)."""
    from django.urls import get_script_prefix

    if obj is None or object_type not in _DETAIL_URLS:
        return ""
    pattern = _detail_url_pattern(_DETAIL_URLS[object_type], get_script_prefix())
    return pattern.replace(str(_URL_HOLE), str(int(obj.pk)))


def template_context(ctx: Context) -> dict[str, Any]:
    """What ``{{ … }}`` in an action's texts can use: the record's fields by name."""
    if ctx.texts is not None:
        return ctx.texts
    ctx.texts = _template_context(ctx)
    return ctx.texts


def _template_context(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": ctx.rule.name if ctx.rule is not None else "",
        "event": ctx.event_name,
        "today": timezone.localdate().isoformat(),
    }
    if ctx.obj is None:
        return out
    record = RecordView(ctx.object_type, ctx.obj)
    out["record"] = record
    out[ctx.object_type] = record
    return out


_RELATED = ("company", "person", "contact", "deal", "lead")


class RecordView(dict[str, Any]):
    """The record's fields by name, as texts use them (``{{ record.amount }}``): each is
    read the first time a template asks for it, so a title naming the record does not
    compute all its fields. ``{{ record }}`` alone is the record's name."""

    def __init__(self, object_type: str, obj: Any) -> None:
        super().__init__(name=str(obj), id=obj.pk)
        self._object_type = object_type
        self._obj = obj

    def __str__(self) -> str:
        return str(dict.__getitem__(self, "name"))

    def __missing__(self, key: str) -> Any:
        value = self._value(key)
        self[key] = value
        return value

    def _value(self, key: str) -> Any:
        from rapport.automations.engine import fields_cached

        obj = self._obj
        if key == "url":
            return record_url(self._object_type, obj)
        fields = fields_cached(self._object_type)
        if key == "custom":
            return {path[7:]: value_of(obj, path) for path in fields if path.startswith("custom.")}
        if key in _RELATED and hasattr(obj, key):
            related = getattr(obj, key, None)
            if related is not None and not isinstance(related, int | str):
                return str(related)
        spec = fields.get(key)
        if spec is None or "." in key:
            raise KeyError(key)
        value = value_of(obj, key)
        if spec.type == "ref" and value is not None:
            related = getattr(obj, key, None)
            value = str(related) if related is not None else value
        return "" if value is None else value

    def complete(self) -> dict[str, Any]:
        """Every field, as a plain dict (a webhook's JSON)."""
        from rapport.automations.engine import fields_cached

        keys = [p for p in fields_cached(self._object_type) if "." not in p]
        keys += ["custom", "url", *(r for r in _RELATED if hasattr(self._obj, r))]
        out = dict(self)
        for key in keys:
            try:
                out[key] = self[key]
            except KeyError:
                continue
        return out


def _update(ctx: Context, data: Params) -> Any:
    """Change the record through its own service (audited, versioned, evented)."""
    from rapport.activities import services as activities
    from rapport.parties import services as parties
    from rapport.sales import services as sales

    ot, obj = ctx.object_type, ctx.obj
    if ot == "company":
        return parties.company_update(actor=None, company=obj, data=data)
    if ot == "person":
        return parties.person_update(actor=None, person=obj, data=data)
    if ot == "lead":
        return sales.lead_update(actor=None, lead=obj, data=data)
    if ot == "deal":
        return sales.deal_update(actor=None, deal=obj, data=data)
    if ot == "task":
        return activities.task_update(actor=None, task=obj, data=data)
    if ot == "interaction":
        return activities.interaction_update(actor=None, interaction=obj, data=data)
    raise ActionFailed(_("This record cannot be changed by a rule."))


def _parties(ctx: Context) -> list[Any]:
    """The client behind the record: people first (they have the personal contacts)."""
    obj, ot = ctx.obj, ctx.object_type
    if obj is None:
        return []
    if ot in ("company", "person"):
        return [obj]
    out = []
    for rel in ("contact", "person", "company"):
        related = getattr(obj, rel, None) if hasattr(obj, rel) else None
        if related is not None and related not in out:
            out.append(related)
    return out


def client_addresses(ctx: Context, channel: str) -> list[str]:
    """The client's emails or phones (E.164), valid ones only."""
    if ctx.object_type == "lead" and ctx.obj is not None:
        value = ctx.obj.email if channel == "email" else ctx.obj.phone_e164
        if value:
            return [value]
    for party in _parties(ctx):
        values = [
            cp.value
            for cp in party.contact_points.all()
            if cp.channel == channel and cp.value and getattr(cp, "valid", True)
        ]
        if values:
            return values[:3] if channel == "email" else values[:1]
    return []


def _needs_record(ctx: Context) -> None:
    if ctx.obj is None:
        raise ActionFailed(_("The record no longer exists."))


# --- create a task ----------------------------------------------------------------------------


def _task_clean(params: Params, ot: str, errors: Errors) -> Params:
    out = _clean_who(params, ot, errors)
    out["title"] = _text(params, "title", errors)
    out["description"] = _text(params, "description", errors, required=False)
    try:
        out["due_in_hours"] = int(params.get("due_in_hours") or 24)
        if not 0 <= out["due_in_hours"] <= 24 * 366:
            raise ValueError
    except (TypeError, ValueError):
        errors["due_in_hours"] = [_("Enter a number of hours (0 to a year).")]
    out["priority"] = params.get("priority") or 2
    return out


def _links(ctx: Context) -> Params:
    obj, ot = ctx.obj, ctx.object_type
    if obj is None:
        return {}
    if ot in ("company", "person", "deal", "lead"):
        return {f"{ot}_id": obj.pk}
    return {
        f"{rel}_id": getattr(obj, f"{rel}_id")
        for rel in ("company", "person", "deal", "lead")
        if getattr(obj, f"{rel}_id", None)
    }


def _task_describe(params: Params, ctx: Context) -> str:
    who = _who_label(params, ctx)
    return _("Create the task “%(title)s” for %(who)s, due in %(hours)s h") % {
        "title": render(params["title"], ctx),
        "who": who,
        "hours": params.get("due_in_hours", 24),
    }


def _who_label(params: Params, ctx: Context) -> str:
    try:
        return str(_who(params, ctx))
    except ActionFailed as exc:
        return str(exc)


def _task_run(params: Params, ctx: Context) -> Result:
    from rapport.activities.models import Task
    from rapport.activities.services import task_create

    existing = Task.objects.filter(origin_key=ctx.key).first()
    if existing is not None:  # done before a crash that lost the log: not twice
        return Result("done", _("task #%(id)s") % {"id": existing.pk})
    user = _who(params, ctx)
    due = timezone.now() + dt.timedelta(hours=int(params.get("due_in_hours") or 24))
    task = task_create(
        actor=None,
        data={
            "title": render(params["title"], ctx)[:300],
            "description": render(params.get("description") or "", ctx),
            "responsible_id": user.pk,
            "due_at": due,
            "priority": params.get("priority") or 2,
            "origin_key": ctx.key,
            **_links(ctx),
        },
    )
    return Result("done", _("task #%(id)s for %(who)s") % {"id": task.pk, "who": user})


register(
    ActionType(
        "create_task",
        gettext_lazy("create a task"),
        _task_clean,
        _task_describe,
        _task_run,
        form=(
            Param("who", gettext_lazy("for"), "who"),
            Param("title", gettext_lazy("title")),
            Param("description", gettext_lazy("description"), "textarea"),
            Param("due_in_hours", gettext_lazy("due in, hours"), "number"),
        ),
    )
)


# --- create a lead ----------------------------------------------------------------------------


def _lead_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.sales.choices import LeadChannel

    out = _clean_who(params, ot, errors)
    out["text"] = _text(params, "text", errors)
    channel = str(params.get("channel") or "manual")
    if channel not in LeadChannel.values:
        errors["channel"] = [_("Unknown channel.")]
    out["channel"] = channel
    return out


def _lead_data(params: Params, ctx: Context) -> Params:
    data: Params = {"text": render(params["text"], ctx), "channel": params.get("channel")}
    for party in _parties(ctx):
        if party._meta.model_name == "person" and "name" not in data:
            data["name"] = str(party)
        if party._meta.model_name == "company" and "company_name" not in data:
            data["company_name"] = str(party)
    phones, emails = client_addresses(ctx, "phone"), client_addresses(ctx, "email")
    if phones:
        data["phone"] = phones[0]
    if emails:
        data["email"] = emails[0]
    return data


def _lead_describe(params: Params, ctx: Context) -> str:
    data = _lead_data(params, ctx)
    return _("Create a lead “%(text)s” (%(name)s) for %(who)s") % {
        "text": data["text"],
        "name": data.get("name") or data.get("company_name") or "—",
        "who": _who_label(params, ctx),
    }


def _lead_run(params: Params, ctx: Context) -> Result:
    from rapport.sales.services import lead_create

    data = _lead_data(params, ctx)
    data["responsible_id"] = _who(params, ctx).pk
    data["source"] = f"rule:{ctx.rule.pk}"[:100]
    lead = lead_create(actor=None, data=data)
    return Result("done", _("lead #%(id)s") % {"id": lead.pk})


register(
    ActionType(
        "create_lead",
        gettext_lazy("create a lead (request)"),
        _lead_clean,
        _lead_describe,
        _lead_run,
        form=(
            Param("who", gettext_lazy("for"), "who"),
            Param("text", gettext_lazy("what they want")),
            Param("channel", gettext_lazy("channel"), "channel"),
        ),
    )
)


# --- create a deal ----------------------------------------------------------------------------


def _deal_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.sales.models import Pipeline

    out = _clean_who(params, ot, errors)
    out["title"] = _text(params, "title", errors)
    pk: Any = params.get("pipeline_id")
    if pk in (None, "") or not Pipeline.objects.filter(pk=pk, is_active=True).exists():
        errors["pipeline_id"] = [_("Choose an active pipeline.")]
    else:
        out["pipeline_id"] = int(pk)
    out["amount_from_record"] = bool(params.get("amount_from_record", True))
    return out


def _deal_data(params: Params, ctx: Context) -> Params:
    data: Params = {"title": render(params["title"], ctx), "pipeline_id": params["pipeline_id"]}
    obj = ctx.obj
    for party in _parties(ctx):
        key = f"{party._meta.model_name}_id"
        data.setdefault(key, party.pk)
    if obj is not None and params.get("amount_from_record") and getattr(obj, "amount", None):
        data["amount"] = obj.amount
        if getattr(obj, "currency", ""):
            data["currency"] = obj.currency
    return data


def _deal_describe(params: Params, ctx: Context) -> str:
    data = _deal_data(params, ctx)
    return _("Create the deal “%(title)s” for %(who)s") % {
        "title": data["title"],
        "who": _who_label(params, ctx),
    }


def _deal_run(params: Params, ctx: Context) -> Result:
    from rapport.sales.services import deal_create

    data = _deal_data(params, ctx)
    data["responsible_id"] = _who(params, ctx).pk
    data["source"] = f"rule:{ctx.rule.pk}"[:100]
    if ctx.object_type == "lead" and ctx.obj is not None:
        data["lead"] = ctx.obj
    deal = deal_create(actor=None, data=data)
    return Result("done", _("deal #%(id)s") % {"id": deal.pk})


register(
    ActionType(
        "create_deal",
        gettext_lazy("create a deal"),
        _deal_clean,
        _deal_describe,
        _deal_run,
        form=(
            Param("who", gettext_lazy("for"), "who"),
            Param("title", gettext_lazy("title")),
            Param("pipeline_id", gettext_lazy("pipeline"), "pipeline"),
            Param("amount_from_record", gettext_lazy("take the amount from the record"), "bool"),
        ),
    )
)


# --- change a field ---------------------------------------------------------------------------

_NOT_SETTABLE = {"created_at", "updated_at", "stage_entered_at", "closed_at", "converted_at"}


def _field_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.automations.schema import BadValue, coerce

    fields = fields_for(ot)
    path = str(params.get("field") or "")
    spec = fields.get(path)
    if (
        spec is None
        or ("." in path and not path.startswith("custom."))
        or path in _NOT_SETTABLE
        or spec.type == "list"
        or (ot == "deal" and path in ("pipeline", "stage", "status"))
    ):
        errors["field"] = [_("Choose a field of the record that a rule may set.")]
        return {"field": path, "value": params.get("value")}
    value = params.get("value")
    if spec.type not in ("text", "choice") and value not in (None, ""):
        try:
            coerce(spec.type, value)
        except BadValue:
            errors["value"] = [
                _("“%(value)s” does not fit the field “%(field)s”.")
                % {"value": value, "field": spec.label}
            ]
    allowed = {k for k, _label in spec.choices}
    if spec.type == "choice" and allowed and value not in (None, "") and str(value) not in allowed:
        errors["value"] = [_("Choose one of the field's values.")]
    return {"field": path, "value": value}


def _field_data(params: Params, ctx: Context) -> Params:
    path, value = params["field"], params.get("value")
    if isinstance(value, str) and "{{" in value:
        value = render(value, ctx)
    if path.startswith("custom."):
        current = dict(getattr(ctx.obj, "custom_fields", None) or {})
        current[path[7:]] = value
        return {"custom_fields": current}
    spec = fields_for(ctx.object_type).get(path)
    if spec is not None and spec.type == "ref":
        return {f"{path}_id": value}
    return {path: value}


def _field_describe(params: Params, ctx: Context) -> str:
    spec = fields_for(ctx.object_type).get(params["field"])
    return _("Set “%(field)s” to “%(value)s”") % {
        "field": spec.label if spec else params["field"],
        "value": params.get("value") if params.get("value") not in (None, "") else "—",
    }


def _field_run(params: Params, ctx: Context) -> Result:
    _needs_record(ctx)
    _update(ctx, _field_data(params, ctx))
    return Result("done", _field_describe(params, ctx))


register(
    ActionType(
        "change_field",
        gettext_lazy("change a field"),
        _field_clean,
        _field_describe,
        _field_run,
        changes_record=True,
        object_types=("company", "person", "lead", "deal", "task", "interaction"),
        form=(
            Param("field", gettext_lazy("field"), "field"),
            Param("value", gettext_lazy("new value"), "value"),
        ),
    )
)


# --- assign the responsible manager -----------------------------------------------------------

ASSIGN_MODES = {
    "user": gettext_lazy("a given user"),
    "round_robin": gettext_lazy("round-robin in a team"),
    "least_busy": gettext_lazy("the least busy in a team"),
    "routing": gettext_lazy("by the routing table"),
}


def _assign_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.accounts.models import Team

    mode = str(params.get("mode") or "user")
    out: Params = {"mode": mode}
    if mode not in ASSIGN_MODES:
        errors["mode"] = [_("Choose how the manager is picked.")]
    elif mode == "user":
        out["user_id"] = _clean_user(params, errors)
    elif mode in ("round_robin", "least_busy"):
        pk: Any = params.get("team_id")
        if pk in (None, "") or not Team.objects.filter(pk=pk).exists():
            errors["team_id"] = [_("Choose a team.")]
        else:
            out["team_id"] = int(pk)
    elif mode == "routing" and ot != "lead":
        errors["mode"] = [_("The routing table distributes leads only.")]
    return out


def _assignee(params: Params, ctx: Context) -> Any:
    from rapport.accounts.models import Team

    mode = params.get("mode")
    if mode == "user":
        user = _user(params.get("user_id"))
        if user is None:
            raise RuleBroken(_("The chosen user no longer exists or is inactive."))
        return user
    from rapport.routing import services as routing

    if mode == "routing":
        user = routing.lead_route(lead=ctx.obj, dry_run=ctx.dry_run)
    else:
        team = Team.objects.filter(pk=params.get("team_id") or 0).first()
        if team is None:
            raise RuleBroken(_("The chosen team no longer exists."))
        user = routing.assignee_pick(team=team, method=str(mode), dry_run=ctx.dry_run)
    if user is None:
        raise ActionFailed(_("Nobody present to assign to."))
    return user


def _assign_describe(params: Params, ctx: Context) -> str:
    try:
        who = str(_assignee(params, ctx))
    except ActionFailed as exc:
        who = str(exc)
    return _("Assign the responsible manager: %(who)s") % {"who": who}


def _assign_run(params: Params, ctx: Context) -> Result:
    _needs_record(ctx)
    user = _assignee(params, ctx)
    if getattr(ctx.obj, "responsible_id", None) == user.pk:
        return Result("skipped", _("%(who)s is already responsible") % {"who": user})
    _update(ctx, {"responsible_id": user.pk})
    return Result("done", _("assigned to %(who)s") % {"who": user})


register(
    ActionType(
        "assign",
        gettext_lazy("assign the responsible manager"),
        _assign_clean,
        _assign_describe,
        _assign_run,
        changes_record=True,
        object_types=("company", "person", "lead", "deal", "task", "interaction"),
        form=(
            Param("mode", gettext_lazy("how"), "mode"),
            Param("user_id", gettext_lazy("user"), "user"),
            Param("team_id", gettext_lazy("team"), "team"),
        ),
    )
)


# --- co-executors -----------------------------------------------------------------------------


def _co_clean(params: Params, ot: str, errors: Errors) -> Params:
    return {"user_id": _clean_user(params, errors)}


def _co_field(ctx: Context) -> tuple[str, list[int]]:
    if ctx.object_type == "deal":
        return "coworker_ids", [u.pk for u in ctx.obj.coworkers.all()]
    return "coexecutor_ids", [u.pk for u in ctx.obj.coexecutors.all()]


def _co_describe_add(params: Params, ctx: Context) -> str:
    return _("Add %(who)s as a co-executor") % {"who": _user(params["user_id"]) or "—"}


def _co_describe_remove(params: Params, ctx: Context) -> str:
    return _("Remove %(who)s from the co-executors") % {"who": _user(params["user_id"]) or "—"}


def _co_run(add: bool) -> Callable[[Params, Context], Result]:
    def run(params: Params, ctx: Context) -> Result:
        _needs_record(ctx)
        user = _user(params["user_id"])
        if user is None and add:
            raise ActionFailed(_("The chosen user no longer exists or is inactive."))
        name, current = _co_field(ctx)
        uid = int(params["user_id"])
        if (uid in current) == add:
            return Result("skipped", _("nothing to change"))
        wanted = [*current, uid] if add else [u for u in current if u != uid]
        _update(ctx, {name: wanted})
        return Result("done", (_co_describe_add if add else _co_describe_remove)(params, ctx))

    return run


register(
    ActionType(
        "add_coexecutor",
        gettext_lazy("add a co-executor"),
        _co_clean,
        _co_describe_add,
        _co_run(True),
        changes_record=True,
        object_types=("deal", "task"),
        form=(Param("user_id", gettext_lazy("user"), "user"),),
    )
)
register(
    ActionType(
        "remove_coexecutor",
        gettext_lazy("remove a co-executor"),
        _co_clean,
        _co_describe_remove,
        _co_run(False),
        changes_record=True,
        object_types=("deal", "task"),
        form=(Param("user_id", gettext_lazy("user"), "user"),),
    )
)


# --- messages: email, SMS, in-app -------------------------------------------------------------


def _message_clean(channel: str, to_client: bool) -> Callable[[Params, str, Errors], Params]:
    def clean(params: Params, ot: str, errors: Errors) -> Params:
        out: Params = {} if to_client else _clean_who(params, ot, errors)
        if to_client and not ot:
            errors["who"] = [_("This rule has no record, so there is no client to write to.")]
        template_id: Any = params.get("template_id")
        if template_id not in (None, ""):
            from rapport.automations.render import template_exists

            if not template_exists(template_id, channel):
                errors["template_id"] = [_("No such template.")]
            out["template_id"] = int(template_id)
        else:
            if channel == "email":
                out["subject"] = _text(params, "subject", errors)
            out["body"] = _text(params, "body", errors)
        return out

    return clean


def _message_texts(params: Params, ctx: Context, channel: str) -> tuple[str, str]:
    from rapport.automations.render import template_texts

    if params.get("template_id"):
        subject, body = template_texts(params["template_id"], template_context(ctx))
    else:
        subject, body = render(params.get("subject") or "", ctx), render(params["body"], ctx)
    if "\r" in subject or "\n" in subject:
        raise ActionFailed(_("The subject contains a line break: refused (header injection)."))
    return subject, body


def _recipients(params: Params, ctx: Context, channel: str, to_client: bool) -> list[str]:
    if to_client:
        found = client_addresses(ctx, "phone" if channel == "sms" else channel)
        if not found:
            raise ActionFailed(
                _("The client has no email address.")
                if channel == "email"
                else _("The client has no valid phone number.")
            )
        return found
    user = _who(params, ctx)
    address = user.email if channel == "email" else user.phone
    if not address:
        raise ActionFailed(
            _("%(who)s has no email address.") % {"who": user}
            if channel == "email"
            else _("%(who)s has no phone number.") % {"who": user}
        )
    if channel == "sms":
        from django.conf import settings

        from rapport.core.phones import parse_phone

        parsed = parse_phone(address, default_region=settings.DEFAULT_PHONE_REGION)
        address = parsed.e164 or address
    return [address]


def _message_describe(channel: str, to_client: bool) -> Callable[[Params, Context], str]:
    def describe(params: Params, ctx: Context) -> str:
        try:
            to = ", ".join(_recipients(params, ctx, channel, to_client))
        except ActionFailed as exc:
            to = str(exc)
        try:
            subject, body = _message_texts(params, ctx, channel)
        except ActionFailed as exc:
            subject, body = str(exc), ""
        if channel == "email":
            return _("Send the email “%(subject)s” to %(to)s") % {"subject": subject, "to": to}
        return _("Send the SMS “%(text)s” to %(to)s") % {"text": body[:160], "to": to}

    return describe


def _message_run(channel: str, to_client: bool) -> Callable[[Params, Context], Result]:
    def run(params: Params, ctx: Context) -> Result:
        from rapport.messaging.services import message_enqueue

        to = _recipients(params, ctx, channel, to_client)
        subject, body = _message_texts(params, ctx, channel)
        message = message_enqueue(
            kind=channel,
            key=ctx.key,
            to=to,
            subject=subject,
            body=body,
            source=f"rule:{ctx.rule.pk}",
            object_type=ctx.object_type,
            object_id=ctx.obj.pk if ctx.obj is not None else None,
        )
        detail = _("message #%(id)s to %(to)s") % {"id": message.pk, "to": ", ".join(to)}
        return Result("queued", detail)

    return run


for _code, _label, _channel, _client in (
    ("email_client", gettext_lazy("send an email to the client"), "email", True),
    ("email_employee", gettext_lazy("send an email to an employee"), "email", False),
    ("sms_client", gettext_lazy("send an SMS to the client"), "sms", True),
    ("sms_employee", gettext_lazy("send an SMS to an employee"), "sms", False),
):
    register(
        ActionType(
            _code,
            _label,
            _message_clean(_channel, _client),
            _message_describe(_channel, _client),
            _message_run(_channel, _client),
            external=True,
            form=(
                *(() if _client else (Param("who", gettext_lazy("to"), "who"),)),
                Param("template_id", gettext_lazy("template"), f"template_{_channel}"),
                *((Param("subject", gettext_lazy("subject")),) if _channel == "email" else ()),
                Param("body", gettext_lazy("text"), "textarea"),
            ),
        )
    )


def _notify_clean(params: Params, ot: str, errors: Errors) -> Params:
    out = _clean_who(params, ot, errors)
    out["title"] = _text(params, "title", errors)
    out["body"] = _text(params, "body", errors, required=False)
    return out


def _notify_describe(params: Params, ctx: Context) -> str:
    return _("Notify %(who)s: “%(title)s”") % {
        "who": _who_label(params, ctx),
        "title": render(params["title"], ctx),
    }


def _notify_run(params: Params, ctx: Context) -> Result:
    from rapport.activities.services import notify

    user = _who(params, ctx)
    note = notify(
        user_id=user.pk,
        kind="automation",
        key=ctx.key,
        title=render(params["title"], ctx),
        body=render(params.get("body") or "", ctx),
        url=record_url(ctx.object_type, ctx.obj),
    )
    if note is None:
        return Result("skipped", _("already notified"))
    return Result("done", _("notified %(who)s") % {"who": user})


register(
    ActionType(
        "notify",
        gettext_lazy("send an in-app notification"),
        _notify_clean,
        _notify_describe,
        _notify_run,
        form=(
            Param("who", gettext_lazy("for"), "who"),
            Param("title", gettext_lazy("title")),
            Param("body", gettext_lazy("text"), "textarea"),
        ),
    )
)


# --- move the deal to a stage -----------------------------------------------------------------


def _move_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.sales.models import Stage

    pk: Any = params.get("stage_id")
    if pk in (None, "") or not Stage.objects.filter(pk=pk, is_active=True).exists():
        errors["stage_id"] = [_("Choose an active stage.")]
        return {}
    return {"stage_id": int(pk)}


def _move_describe(params: Params, ctx: Context) -> str:
    from rapport.sales.models import Stage

    stage = Stage.objects.filter(pk=params.get("stage_id") or 0).first()
    return _("Move the deal to “%(stage)s”") % {"stage": stage or "—"}


def _move_run(params: Params, ctx: Context) -> Result:
    from rapport.sales.services import deal_move

    _needs_record(ctx)
    if ctx.obj.stage_id == params["stage_id"]:
        return Result("skipped", _("the deal is already there"))
    if ctx.obj.status != "open":
        raise ActionFailed(_("The deal is closed."))
    deal_move(actor=None, deal=ctx.obj, stage=params["stage_id"])
    return Result("done", _move_describe(params, ctx))


register(
    ActionType(
        "move_stage",
        gettext_lazy("move the deal to a stage"),
        _move_clean,
        _move_describe,
        _move_run,
        changes_record=True,
        object_types=("deal",),
        form=(Param("stage_id", gettext_lazy("stage"), "stage"),),
    )
)


# --- call a webhook ---------------------------------------------------------------------------


def _webhook_clean(params: Params, ot: str, errors: Errors) -> Params:
    from rapport.automations.render import webhook_url_check

    url = str(params.get("url") or "").strip()
    if not url:
        errors["url"] = [_("This field is required.")]
    else:
        problem = webhook_url_check(url)
        if problem:
            errors["url"] = [problem]
    return {"url": url}


def _webhook_payload(ctx: Context) -> dict[str, Any]:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    body = {
        "rule": {"id": ctx.rule.pk, "name": ctx.rule.name},
        "event": ctx.event_name,
        "object_type": ctx.object_type,
        "object_id": ctx.obj.pk if ctx.obj is not None else None,
        "record": _record_json(ctx),
    }
    return dict(json.loads(json.dumps(body, cls=DjangoJSONEncoder)))


def _record_json(ctx: Context) -> dict[str, Any] | None:
    record = template_context(ctx).get("record")
    return record.complete() if isinstance(record, RecordView) else None


def _webhook_describe(params: Params, ctx: Context) -> str:
    return _("POST the record as JSON to %(url)s") % {"url": params["url"]}


def _webhook_run(params: Params, ctx: Context) -> Result:
    from rapport.messaging.services import message_enqueue

    message = message_enqueue(
        kind="webhook",
        key=ctx.key,
        url=params["url"],
        payload=_webhook_payload(ctx),
        source=f"rule:{ctx.rule.pk}",
        object_type=ctx.object_type,
        object_id=ctx.obj.pk if ctx.obj is not None else None,
    )
    return Result("queued", _("webhook #%(id)s") % {"id": message.pk})


register(
    ActionType(
        "webhook",
        gettext_lazy("call a webhook"),
        _webhook_clean,
        _webhook_describe,
        _webhook_run,
        external=True,
        form=(Param("url", gettext_lazy("address (https://…)"), "url"),),
    )
)


def action_label(code: str) -> str:
    action = ACTIONS.get(code)
    return str(action.label) if action else code


def actions_for(object_type: str) -> list[ActionType]:
    return [a for a in ACTIONS.values() if a.object_types is None or object_type in a.object_types]


__all__ = [
    "ACTIONS",
    "ActionFailed",
    "ActionType",
    "Context",
    "Result",
    "RuleBroken",
    "object_label",
    "register",
]
