"""Pages: the rules list, the rule builder (a sentence: when … if … then …), the test
button and the execution log. Administrators only; everything goes through services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import Team, User
from rapport.automations import selectors, services
from rapport.automations.actions import ACTIONS, ASSIGN_MODES
from rapport.automations.conditions import NO_VALUE, OPERATORS
from rapport.automations.describe import rule_sentence
from rapport.automations.models import Rule, RunOutcome
from rapport.automations.schema import OBJECT_MODELS, fields_for, object_label
from rapport.automations.triggers import DATE_KIND, KPI, SCHEDULE, TRIGGERS, rule_object_type
from rapport.core.errors import FieldErrors, StaleVersion
from rapport.core.pagination import keyset_page

CONFIG_KEYS = (
    "field",
    "to",
    "to_stage",
    "object_type",
    "offset_days",
    "at",
    "every",
    "weekday",
    "day",
    "kpi",
)


def _admin(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_rapport_admin:
        raise Http404
    return user


def _rule(user: User, rule_id: int) -> Rule:
    try:
        return selectors.rule_get(user=user, rule_id=rule_id)
    except Rule.DoesNotExist as exc:
        raise Http404 from exc


# --- list -------------------------------------------------------------------------------------


@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    rules = list(selectors.rule_list(user=user))
    rows = [{"rule": r, "sentence": rule_sentence(r)} for r in rules]
    return render(request, "automations/rule_list.html", {"rows": rows})


@login_required
@require_POST
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _admin(request)
    rule = _rule(user, rule_id)
    try:
        services.rule_set_active(actor=user, rule=rule, active=not rule.is_active)
    except FieldErrors as exc:
        for msgs in exc.errors.values():
            for m in msgs:
                messages.error(request, m)
    return HttpResponseRedirect(reverse("rule-list"))


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _admin(request)
    rule = _rule(user, rule_id)
    services.rule_delete(actor=user, rule=rule)
    messages.success(request, _("The rule “%(name)s” was deleted.") % {"name": rule.name})
    return HttpResponseRedirect(reverse("rule-list"))


@login_required
@require_POST
def rules_reorder(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    ids = [int(x) for x in request.POST.getlist("rule") if x.isdigit()]
    up = request.POST.get("up", "")
    if up.isdigit():  # "↑" on one rule: it swaps places with the one above
        ids = list(selectors.rule_list(user=user).values_list("pk", flat=True))
        if int(up) in ids and (i := ids.index(int(up))) > 0:
            ids[i - 1], ids[i] = ids[i], ids[i - 1]
    services.rules_reorder(actor=user, rule_ids=ids)
    return HttpResponseRedirect(reverse("rule-list"))


# --- the builder ------------------------------------------------------------------------------


def _state_from_rule(rule: Rule | None) -> dict[str, Any]:
    if rule is None:
        return {
            "name": "",
            "description": "",
            "trigger": "deal.created",
            "trigger_config": {},
            "conditions": {"match": "all", "items": []},
            "actions": [{"type": "create_task", "params": {}}],
            "is_active": True,
            "once_per_record": False,
            "order": 100,
        }
    return {
        "name": rule.name,
        "description": rule.description,
        "trigger": rule.trigger,
        "trigger_config": dict(rule.trigger_config or {}),
        "conditions": dict(rule.conditions or {"match": "all", "items": []}),
        "actions": [dict(a) for a in rule.actions or []],
        "is_active": rule.is_active,
        "once_per_record": rule.once_per_record,
        "order": rule.order,
    }


def _state_from_post(post: QueryDict) -> dict[str, Any]:
    """The rule as typed in the builder (nothing dropped, even what is invalid)."""
    config = {k: post.get(f"tc_{k}", "") for k in CONFIG_KEYS if post.get(f"tc_{k}", "") != ""}
    items = []
    for i in range(int(post.get("cond_count") or 0)):
        if post.get(f"cond_{i}_field") is None:
            continue
        op = post.get(f"cond_{i}_op", "eq")
        value: Any = post.get(f"cond_{i}_value", "")
        if op in ("in", "not_in"):
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        items.append({"field": post.get(f"cond_{i}_field", ""), "op": op, "value": value})
    actions = []
    for i in range(int(post.get("act_count") or 0)):
        code = post.get(f"act_{i}_type")
        if code is None:
            continue
        prefix = f"act_{i}_"
        params: dict[str, Any] = {
            k[len(prefix) :]: v
            for k, v in post.items()
            if k.startswith(prefix) and k != f"{prefix}type" and v != ""
        }
        action = ACTIONS.get(code)
        for p in action.form if action else ():
            if p.kind == "bool":
                params[p.name] = post.get(f"{prefix}{p.name}") == "1"
        actions.append({"type": code, "params": params})
    return {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        "trigger": post.get("trigger", ""),
        "trigger_config": config,
        "conditions": {"match": post.get("match", "all"), "items": items},
        "actions": actions,
        "is_active": post.get("is_active") == "1",
        "once_per_record": post.get("once_per_record") == "1",
        "order": post.get("order", "100"),
    }


def _apply_command(state: dict[str, Any], command: str) -> None:
    if command == "add_condition":
        state["conditions"]["items"].append({"field": "", "op": "eq", "value": ""})
    elif command.startswith("remove_condition_"):
        index = int(command.rsplit("_", 1)[1])
        items = state["conditions"]["items"]
        if 0 <= index < len(items):
            items.pop(index)
    elif command == "add_action":
        state["actions"].append({"type": "notify", "params": {}})
    elif command.startswith("remove_action_"):
        index = int(command.rsplit("_", 1)[1])
        if 0 <= index < len(state["actions"]):
            state["actions"].pop(index)


def _choices(state: dict[str, Any]) -> dict[str, Any]:
    from rapport.messaging.models import MessageTemplate
    from rapport.sales.choices import LeadChannel
    from rapport.sales.models import Pipeline, Stage

    object_type = rule_object_type(state["trigger"], state.get("trigger_config") or {})
    fields = fields_for(object_type) if object_type else {}
    groups: dict[str, list[Any]] = {}
    for t in TRIGGERS.values():
        group = object_label(t.object_type) if t.object_type else _("time and numbers")
        groups.setdefault(str(group), []).append(t)
    own_fields = [s for p, s in fields.items() if "." not in p or p.startswith("custom.")]
    return {
        "object_type": object_type,
        "trigger_spec": TRIGGERS.get(state["trigger"]),
        "trigger_groups": groups,
        "fields": list(fields.values()),
        "own_fields": own_fields,
        "date_fields": [
            s
            for s in fields_for(
                str((state.get("trigger_config") or {}).get("object_type") or "")
            ).values()
            if s.type in ("date", "datetime") and "." not in s.path.replace("custom.", "")
        ],
        "object_types": [(ot, object_label(ot)) for ot in OBJECT_MODELS],
        "operators": list(OPERATORS.items()),
        "no_value": NO_VALUE,
        "actions": list(ACTIONS.values()),
        "users": User.objects.filter(is_active=True).order_by("first_name", "username"),
        "teams": Team.objects.order_by("path"),
        "pipelines": Pipeline.objects.filter(is_active=True).order_by("order", "id"),
        "stages": Stage.objects.filter(is_active=True)
        .select_related("pipeline")
        .order_by("pipeline__order", "pipeline_id", "order"),
        "templates_email": MessageTemplate.objects.filter(channel="email"),
        "templates_sms": MessageTemplate.objects.filter(channel="sms"),
        "channels": LeadChannel.choices,
        "modes": list(ASSIGN_MODES.items()),
        "weekdays": [
            (0, _("Monday")),
            (1, _("Tuesday")),
            (2, _("Wednesday")),
            (3, _("Thursday")),
            (4, _("Friday")),
            (5, _("Saturday")),
            (6, _("Sunday")),
        ],
        "DATE_KIND": DATE_KIND,
        "SCHEDULE": SCHEDULE,
        "KPI": KPI,
    }


def _rows(state: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The builder's rows with each one's values and messages (templates cannot build keys)."""

    def under(prefix: str) -> list[str]:
        return [
            m
            for k, msgs in errors.items()
            if k == prefix or k.startswith(prefix + ".")
            for m in msgs
        ]

    conds = [
        {
            "i": i,
            "item": item,
            "value_text": ", ".join(str(v) for v in item.get("value") or [])
            if isinstance(item.get("value"), list)
            else ("" if item.get("value") is None else str(item.get("value"))),
            "errors": under(f"conditions.{i + 1}"),
        }
        for i, item in enumerate(state["conditions"]["items"])
    ]
    acts = []
    for i, spec in enumerate(state["actions"]):
        action = ACTIONS.get(spec.get("type", ""))
        params = spec.get("params") or {}
        fields = [
            {
                "p": p,
                "name": f"act_{i}_{p.name}",
                "value": params.get(p.name, "" if p.kind != "bool" else True),
                "errors": errors.get(f"actions.{i + 1}.{p.name}", []),
                "user_value": params.get("user_id", ""),
            }
            for p in (action.form if action else ())
        ]
        acts.append(
            {
                "i": i,
                "type": spec.get("type", ""),
                "action": action,
                "fields": fields,
                "errors": errors.get(f"actions.{i + 1}.type", []),
            }
        )
    general = {k: v for k, v in errors.items() if not k.startswith(("conditions.", "actions."))}
    for key in ("conditions", "actions"):
        if key in errors:
            general[key] = errors[key]
    return {"cond_rows": conds, "act_rows": acts, "general_errors": general}


@login_required
def rule_form(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    user = _admin(request)
    rule = _rule(user, rule_id) if rule_id else None
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        state = _state_from_post(request.POST)
        command = request.POST.get("command", "")
        if command and command != "save":
            _apply_command(state, command)
        else:
            try:
                saved = services.rule_save(
                    actor=user,
                    data=state,
                    rule=rule,
                    version=int(request.POST["version"]) if request.POST.get("version") else None,
                )
            except FieldErrors as exc:
                errors = exc.errors
            except StaleVersion:
                errors = {"__all__": [_("Someone changed this rule meanwhile. Reload the page.")]}
            else:
                messages.success(
                    request, _("The rule “%(name)s” was saved.") % {"name": saved.name}
                )
                return HttpResponseRedirect(reverse("rule-list"))
    else:
        state = _state_from_rule(rule)
    context = {
        "rule": rule,
        "state": state,
        "errors": errors,
        **_rows(state, errors),
        "cond_count": len(state["conditions"]["items"]),
        "act_count": len(state["actions"]),
        **_choices(state),
    }
    template = "automations/rule_form.html"
    if getattr(request, "htmx", False) and request.method == "POST":
        template = "automations/_rule_builder.html"
    status = 422 if errors else 200
    return render(request, template, context, status=status)


# --- test and log -----------------------------------------------------------------------------


@login_required
def rule_test(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _admin(request)
    rule = _rule(user, rule_id)
    result = None
    error = ""
    object_id = request.POST.get("object_id", "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            result = services.rule_test(actor=user, rule=rule, object_id=object_id)
        except FieldErrors as exc:
            error = " ".join(str(m) for msgs in exc.errors.values() for m in msgs)
    return render(
        request,
        "automations/rule_test.html",
        {
            "rule": rule,
            "sentence": rule_sentence(rule),
            "result": result,
            "error": error,
            "object_id": object_id,
            "object_label": object_label(rule.object_type) if rule.object_type else "",
        },
        status=422 if error else 200,
    )


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    g = request.GET

    def _int(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    rule_id = _int(g.get("rule"))
    qs = selectors.run_list(
        user=user,
        rule_id=rule_id,
        object_type=g.get("object_type", ""),
        object_id=_int(g.get("object_id")),
        outcome=g.get("outcome", ""),
        matched=g.get("matched", ""),
    )
    page = keyset_page(qs, sort="-id", cursor=g.get("cursor"), size=50)
    rows = selectors.run_entries(page.items, rule_id=rule_id)
    query = g.copy()
    query.pop("cursor", None)
    return render(
        request,
        "automations/run_list.html",
        {
            "rows": rows,
            "next_cursor": page.next_cursor,
            "query": query.urlencode(),
            "rules": selectors.rule_list(user=user),
            "outcomes": RunOutcome.choices,
            "object_types": [(ot, object_label(ot)) for ot in OBJECT_MODELS],
            "filters": g,
        },
    )
