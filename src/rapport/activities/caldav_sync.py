"""Two-way sync of a user's meetings and tasks with one calendar on a CalDAV server.

``sync_account`` is the one entry point (the worker every 5 minutes, ``rapport caldav-sync``,
the "sync now" button). Rules, also in docs/calendar.md and docs/decisions/0003:

* Rapport → server: the account owner's meetings and planned interactions (from 30 days ago on,
  not cancelled) become VEVENTs, open tasks VTODOs, UID ``<kind>-<id>@rapport``. A later change
  in Rapport (its ``version`` moved) is written back with ``If-Match``.
* server → Rapport: an edit of a synced item updates Rapport through the services (audited,
  actor = the account owner); a new remote VEVENT becomes a planned meeting, a new VTODO a task;
  an item deleted on the server cancels the Rapport record (never deletes it; a done one stays
  done).
* Both sides changed since the last sync: the later of the server's LAST-MODIFIED (else DTSTAMP,
  else "now") and Rapport's ``updated_at`` wins (a tie goes to Rapport); the losing values are
  kept in the record's history as an audit entry ``caldav_conflict``.
* Deleted in Rapport (recycle bin) or handed to another user: removed from this calendar.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import socket
import zoneinfo
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.activities.models import (
    CalDavAccount,
    Interaction,
    InteractionStatus,
    Priority,
    SyncedItem,
    SyncedKind,
    Task,
    TaskStatus,
)
from rapport.core.audit import audit_record, audit_value
from rapport.core.errors import FieldErrors, PermissionDenied

log = logging.getLogger(__name__)

SYNC_PAST = dt.timedelta(days=30)
"""Rapport items and remote events that ended longer ago than this are left alone."""
TIMEOUT_SECONDS = 30
LEASE = dt.timedelta(minutes=10)
PUSH_LIMIT = 500
DEFAULT_CALENDAR = "Rapport"
UID_RE = re.compile(r"^(interaction|task)-(\d+)@rapport$")

TASK_STATUS_OUT = {
    TaskStatus.OPEN: "NEEDS-ACTION",
    TaskStatus.IN_PROGRESS: "IN-PROCESS",
    TaskStatus.DONE: "COMPLETED",
    TaskStatus.CANCELLED: "CANCELLED",
}
TASK_STATUS_IN = {v: k for k, v in TASK_STATUS_OUT.items()}
PRIORITY_OUT = {Priority.URGENT: 1, Priority.HIGH: 3, Priority.NORMAL: 5, Priority.LOW: 9}


class CalDavError(Exception):
    """The server could not be used; the message is shown to the user as the last error."""


@dataclass
class SyncReport:
    """What one sync did, for the CLI, the page and the tests."""

    pushed: int = 0
    pulled: int = 0
    created: int = 0
    cancelled: int = 0
    removed: int = 0
    conflicts: int = 0
    skipped: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.pushed + self.pulled + self.created + self.cancelled + self.removed


# --- the outbound-address guard -------------------------------------------------------------


def _allow_loopback() -> bool:
    return bool(getattr(settings, "CALDAV_ALLOW_LOOPBACK", False))


def check_server_url(url: str) -> None:
    """Refuse addresses a user must not make the server call: loopback, link-local (cloud
    metadata), multicast, unspecified and reserved ranges. Private LAN ranges stay allowed,
    because a self-hosted Nextcloud on the office network is the common case."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CalDavError(_("Enter a server address starting with http:// or https://."))
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise CalDavError(
            _("The server name %(host)s does not resolve.") % {"host": parts.hostname}
        ) from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address.is_loopback and _allow_loopback():
            continue
        if (
            address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
        ):
            raise CalDavError(
                _("Rapport may not connect to %(host)s (a local or reserved address).")
                % {"host": parts.hostname}
            )


def _guarded_adapter() -> Any:
    """A requests adapter that checks every request's host, redirects included."""
    from requests.adapters import HTTPAdapter

    class GuardedAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            check_server_url(str(request.url))
            return super().send(request, *args, **kwargs)

    return GuardedAdapter()


# --- the remote calendar --------------------------------------------------------------------


class _Remote:
    """The account's calendar collection, spoken to through the ``caldav`` client."""

    def __init__(self, account: CalDavAccount) -> None:
        import caldav

        check_server_url(account.server_url)
        self.client: Any = caldav.DAVClient(
            url=account.server_url,
            username=account.username or None,
            password=account.password or None,
            timeout=TIMEOUT_SECONDS,
        )
        adapter = _guarded_adapter()
        self.client.session.mount("http://", adapter)
        self.client.session.mount("https://", adapter)
        self.calendar = self._calendar(account)
        self.path = unquote(str(self.calendar.url.path))
        if not self.path.endswith("/"):
            self.path += "/"
        try:
            components = [str(c) for c in self.calendar.get_supported_components()]
        except Exception:  # noqa: BLE001 - a server that does not say supports the usual pair
            components = []
        self.todos = not components or "VTODO" in components

    def _calendar(self, account: CalDavAccount) -> Any:
        if account.calendar_url:
            check_server_url(account.calendar_url)
            return self.client.calendar(url=account.calendar_url)
        name = account.calendar_name or DEFAULT_CALENDAR
        principal = self.client.principal()
        for cal in principal.calendars():
            if (cal.get_display_name() or "") == name:
                found = cal
                break
        else:
            found = principal.make_calendar(
                name=name, supported_calendar_component_set=["VEVENT", "VTODO"]
            )
        CalDavAccount.objects.filter(pk=account.pk).update(calendar_url=str(found.url))
        account.calendar_url = str(found.url)
        return found

    def url(self, href: str) -> Any:
        return self.calendar.url.join(quote(href))

    def listing(self) -> dict[str, str]:
        """Every item of the calendar: path → ETag (one PROPFIND, depth 1)."""
        from caldav.elements import dav

        response = self.calendar.get_properties([dav.GetEtag()], depth=1, parse_response_xml=False)
        out: dict[str, str] = {}
        for href, props in response.expand_simple_props([dav.GetEtag()]).items():
            path = unquote(urlsplit(str(href)).path)
            if path.rstrip("/") == self.path.rstrip("/"):
                continue
            out[path] = str(props.get(dav.GetEtag.tag) or "")
        return out

    def fetch(self, hrefs: list[str]) -> dict[str, str]:
        """The iCalendar text of the given items (one calendar-multiget REPORT per 100)."""
        out: dict[str, str] = {}
        for i in range(0, len(hrefs), 100):
            chunk = [self.url(h) for h in hrefs[i : i + 100]]
            for href, data in self.calendar._multiget(chunk):  # noqa: SLF001
                out[unquote(urlsplit(str(href)).path)] = str(data or "")
        return out

    def etag(self, href: str) -> str:
        from caldav.elements import dav

        response = self.client.propfind(
            str(self.url(href)),
            '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:">'
            "<d:prop><d:getetag/></d:prop></d:propfind>",
            0,
        )
        for props in response.expand_simple_props([dav.GetEtag()]).values():
            return str(props.get(dav.GetEtag.tag) or "")
        return ""

    def put(self, href: str, ics: bytes, *, etag: str | None) -> str | None:
        """Write one item; ``etag`` None creates it. Returns the new ETag, or None when the
        server copy changed meanwhile (412): the next sync sees that change and decides."""
        headers = {"Content-Type": 'text/calendar; charset="utf-8"'}
        if etag:
            headers["If-Match"] = etag
        elif etag is None:
            headers["If-None-Match"] = "*"
        response = self.client.put(str(self.url(href)), ics.decode(), headers)
        if response.status == 412:
            return None
        if response.status not in (200, 201, 204):
            raise CalDavError(
                _("The server refused to save %(href)s (HTTP %(status)s).")
                % {"href": href, "status": response.status}
            )
        return str(response.headers.get("ETag") or "") or self.etag(href)

    def delete(self, href: str, *, etag: str) -> None:
        headers = {"If-Match": etag} if etag else {}
        response = self.client.request(str(self.url(href)), "DELETE", "", headers)
        if response.status not in (200, 204, 404, 412):
            raise CalDavError(
                _("The server refused to delete %(href)s (HTTP %(status)s).")
                % {"href": href, "status": response.status}
            )


# --- iCalendar in and out -------------------------------------------------------------------


def _uid(kind: str, pk: int) -> str:
    return f"{kind}-{pk}@rapport"


OWNED = {
    SyncedKind.INTERACTION: (
        "dtstart",
        "dtend",
        "duration",
        "summary",
        "location",
        "description",
        "status",
    ),
    SyncedKind.TASK: ("summary", "description", "due", "status", "priority", "completed"),
}
STAMPS = ("dtstamp", "last-modified", "sequence")


def _master(cal: Any, name: str) -> Any:
    for comp in cal.walk(name):
        if "RECURRENCE-ID" not in comp:
            return comp
    return None


def to_ics(kind: str, obj: Interaction | Task, *, base: str | None = None) -> bytes:
    """One Rapport item as an iCalendar object (VEVENT for interactions, VTODO for tasks).

    With ``base`` (the server's current text) only the properties sync owns are replaced;
    the UID, alarms, attendees, repeats and anything else a client added are kept."""
    from icalendar import Calendar, Event, Todo

    name = "VEVENT" if isinstance(obj, Interaction) else "VTODO"
    cal: Any = None
    comp: Any = None
    if base:
        try:
            cal = Calendar.from_ical(base)
            comp = _master(cal, name)
        except ValueError:
            cal = None
    if cal is None or comp is None:
        cal = Calendar()
        cal.add("prodid", "-//Rapport CRM//EN")
        cal.add("version", "2.0")
        comp = Event() if name == "VEVENT" else Todo()
        comp.add("uid", _uid(kind, obj.pk))
        cal.add_component(comp)
    for prop in OWNED[SyncedKind(kind)] + STAMPS:
        comp.pop(prop, None)
    if isinstance(obj, Interaction):
        comp.add("dtstart", obj.at)
        comp.add("dtend", obj.ends_at or obj.at + dt.timedelta(hours=1))
        comp.add("summary", obj.subject or obj.get_kind_display())
        if obj.place:
            comp.add("location", obj.place)
        if obj.body:
            comp.add("description", obj.body)
        comp.add(
            "status", "CANCELLED" if obj.status == InteractionStatus.CANCELLED else "CONFIRMED"
        )
    else:
        comp.add("summary", obj.title)
        if obj.description:
            comp.add("description", obj.description)
        if obj.due_at:
            comp.add("due", obj.due_at)
        comp.add("status", TASK_STATUS_OUT.get(TaskStatus(obj.status), "NEEDS-ACTION"))
        comp.add("priority", PRIORITY_OUT.get(Priority(obj.priority), 5))
        if obj.completed_at:
            comp.add("completed", obj.completed_at)
    comp.add("dtstamp", timezone.now())
    comp.add("last-modified", obj.updated_at)
    comp.add("sequence", obj.version)
    return bytes(cal.to_ical())


def _component(data: str | None) -> Any:
    """The first VEVENT or VTODO of an iCalendar text (a recurring event: its master)."""
    from icalendar import Calendar

    if not data:
        return None
    try:
        cal = Calendar.from_ical(data)
    except ValueError:
        return None
    found = None
    for comp in cal.walk():
        if comp.name in ("VEVENT", "VTODO"):
            if "RECURRENCE-ID" not in comp:
                return comp
            found = found or comp
    return found


def _zone(user: User) -> dt.tzinfo:
    try:
        return (
            zoneinfo.ZoneInfo(user.time_zone) if user.time_zone else timezone.get_default_timezone()
        )
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def _aware(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    """An iCalendar date or date-time as an aware datetime (dates at midnight, floating times
    in the user's zone)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=zone)
    return None


def _prop_dt(comp: Any, name: str, zone: dt.tzinfo) -> dt.datetime | None:
    prop = comp.get(name)
    return _aware(getattr(prop, "dt", None), zone) if prop is not None else None


def _text(comp: Any, name: str) -> str:
    return str(comp.get(name) or "").strip()


def remote_values(
    kind: str, comp: Any, obj: Interaction | Task | None, zone: dt.tzinfo
) -> dict[str, Any]:
    """What a remote item says, as service data (only the fields sync owns)."""
    status = _text(comp, "status").upper()
    if kind == SyncedKind.INTERACTION:
        start = _prop_dt(comp, "dtstart", zone)
        end = _prop_dt(comp, "dtend", zone)
        if end is None and start is not None and comp.get("duration") is not None:
            end = start + comp.get("duration").dt
        values: dict[str, Any] = {
            "subject": _text(comp, "summary")[:300],
            "body": _text(comp, "description"),
            "place": _text(comp, "location")[:300],
            "ends_at": end,
        }
        if start is not None:
            values["at"] = start
        if status == "CANCELLED":
            values["status"] = InteractionStatus.CANCELLED
        elif obj is not None and obj.status == InteractionStatus.CANCELLED:
            values["status"] = InteractionStatus.PLANNED
        return values
    try:
        raw_priority = int(str(comp.get("priority") or 0))
    except ValueError:
        raw_priority = 0
    priority = (
        Priority.NORMAL
        if raw_priority in (0, 5)
        else Priority.URGENT
        if raw_priority <= 2
        else Priority.HIGH
        if raw_priority <= 4
        else Priority.LOW
    )
    return {
        "title": (_text(comp, "summary") or _("(no title)"))[:300],
        "description": _text(comp, "description"),
        "due_at": _prop_dt(comp, "due", zone),
        "status": TASK_STATUS_IN.get(status, TaskStatus.OPEN),
        "priority": int(priority),
    }


def _same(a: Any, b: Any) -> bool:
    """Equal as iCalendar can say it: date-times to the second."""
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a.replace(microsecond=0) == b.replace(microsecond=0)
    return bool(a == b)


def _differences(remote: dict[str, Any], obj: Interaction | Task) -> dict[str, list[Any]]:
    """Fields where the server and Rapport disagree: name → [rapport, server]."""
    return {
        k: [audit_value(getattr(obj, k)), audit_value(v)]
        for k, v in remote.items()
        if not _same(getattr(obj, k), v)
    }


def _remote_modified(comp: Any) -> dt.datetime:
    for name in ("last-modified", "dtstamp"):
        value = _prop_dt(comp, name, dt.UTC)
        if value is not None:
            return value
    return timezone.now()


# --- Rapport side ---------------------------------------------------------------------------


def _load(kind: str, pk: int) -> Interaction | Task | None:
    model: type[Interaction] | type[Task] = Interaction if kind == SyncedKind.INTERACTION else Task
    return model.objects.filter(pk=pk).first()


def _apply(user: User, kind: str, obj: Interaction | Task, values: dict[str, Any]) -> Any:
    from rapport.activities.services import interaction_update, task_update

    if isinstance(obj, Interaction):
        return interaction_update(actor=user, interaction=obj, data=values)
    return task_update(actor=user, task=obj, data=values)


def _cancel(user: User, obj: Interaction | Task) -> bool:
    """Removed on the server: cancel in Rapport (a done item stays done)."""
    from rapport.activities.services import interaction_update, task_update

    if isinstance(obj, Interaction):
        if obj.status != InteractionStatus.PLANNED:
            return False
        interaction_update(actor=user, interaction=obj, data={"status": "cancelled"})
        return True
    if obj.status not in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS):
        return False
    task_update(actor=user, task=obj, data={"status": TaskStatus.CANCELLED})
    return True


def _record_loser(
    user: User, kind: str, obj: Interaction | Task, lost: str, diffs: dict[str, list[Any]]
) -> None:
    """Keep the losing side of a conflict in the record's history: field → [lost, kept]."""
    rapport_lost = lost == "rapport"
    changes: dict[str, Any] = {
        "caldav_conflict": [
            _("Rapport's version") if rapport_lost else _("the calendar server's version"),
            _("the calendar server's version") if rapport_lost else _("Rapport's version"),
        ]
    }
    for name, (local, remote) in diffs.items():
        changes[name] = [local, remote] if rapport_lost else [remote, local]
    audit_record(actor=user, instance=obj, object_type=kind, action="update", changes=changes)


def _import(user: User, kind: str, comp: Any, zone: dt.tzinfo) -> Interaction | Task | None:
    """A new remote item: a planned meeting or a task, unless it is over (then None)."""
    from rapport.activities.services import interaction_log, task_create

    values = remote_values(kind, comp, None, zone)
    horizon = timezone.now() - SYNC_PAST
    if kind == SyncedKind.INTERACTION:
        start = values.get("at")
        if start is None or (values["ends_at"] or start) < horizon:
            return None
        status = values.pop("status", InteractionStatus.PLANNED)
        return interaction_log(
            actor=user,
            data={**values, "kind": "meeting", "status": status, "responsible_id": user.pk},
        )
    if values["status"] not in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS):
        return None
    return task_create(actor=user, data={**values, "responsible_id": user.pk})


def _kind_of(comp: Any) -> str:
    return SyncedKind.TASK if comp.name == "VTODO" else SyncedKind.INTERACTION


def _pending(account: CalDavAccount, kind: str) -> list[Any]:
    """The owner's Rapport items not yet on this calendar."""
    synced = SyncedItem.objects.filter(account=account, kind=kind, object_id__isnull=False).values(
        "object_id"
    )
    user_id = account.user_id
    if kind == SyncedKind.INTERACTION:
        return list(
            Interaction.objects.filter(
                Q(kind__in=["meeting", "planned"]) | Q(status=InteractionStatus.PLANNED),
                responsible_id=user_id,
                deleted_at__isnull=True,
                at__gte=timezone.now() - SYNC_PAST,
            )
            .exclude(status=InteractionStatus.CANCELLED)
            .exclude(pk__in=synced)
            .order_by("at", "id")[:PUSH_LIMIT]
        )
    return list(
        Task.objects.filter(
            responsible_id=user_id,
            deleted_at__isnull=True,
            status__in=[TaskStatus.OPEN, TaskStatus.IN_PROGRESS],
        )
        .exclude(pk__in=synced)
        .order_by("id")[:PUSH_LIMIT]
    )


# --- the sync -------------------------------------------------------------------------------


class _Run:
    def __init__(self, account: CalDavAccount, remote: _Remote) -> None:
        self.account = account
        self.user: User = account.user
        self.zone = _zone(self.user)
        self.remote = remote
        self.report = SyncReport()
        self.fetched: dict[str, str] = {}

    def item_error(self, what: str, exc: Exception) -> None:
        detail = (
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        self.report.errors.append(f"{what}: {detail}")

    def run(self) -> SyncReport:
        listing = self.remote.listing()
        known = {si.href: si for si in SyncedItem.objects.filter(account=self.account)}
        # Remote items once left alone: look again when they changed or vanished.
        for href, row in list(known.items()):
            if row.object_id is None and listing.get(href) != row.etag:
                row.delete()
                del known[href]
        unknown = [h for h in listing if h not in known]
        self.fetched.update(self.remote.fetch(unknown) if unknown else {})
        fresh: set[int] = set()
        for href in unknown:
            found, done = self.adopt_or_import(href, listing[href], known)
            if found is not None:
                known[href] = found
                if done:
                    fresh.add(found.pk)
        rows = [si for si in known.values() if si.object_id is not None and si.pk not in fresh]
        objects = self.preload(rows)
        # Changed on either side: read the server copy (to compare, or to write over it).
        wanted = [
            si.href
            for si in rows
            if si.href in listing
            and si.href not in self.fetched
            and (
                listing[si.href] != si.etag
                or (
                    (obj := objects.get((si.kind, si.object_id or 0))) is not None
                    and obj.version != si.synced_version
                )
            )
        ]
        self.fetched.update(self.remote.fetch(wanted) if wanted else {})
        for si in rows:
            self.reconcile(si, listing, objects.get((si.kind, si.object_id or 0)))
        for kind in (SyncedKind.INTERACTION, SyncedKind.TASK):
            if kind == SyncedKind.TASK and not self.remote.todos:
                continue
            for obj in _pending(self.account, kind):
                self.push_new(kind, obj)
        return self.report

    def adopt_or_import(
        self, href: str, etag: str, known: dict[str, SyncedItem]
    ) -> tuple[SyncedItem | None, bool]:
        """A remote item Rapport does not know by its address: (its row, whether it is done)."""
        comp = _component(self.fetched.get(href))
        if comp is None:
            return None, True
        uid = str(comp.get("uid") or href)
        kind = _kind_of(comp)
        moved = SyncedItem.objects.filter(account=self.account, uid=uid).first()
        if moved is not None:  # the server renamed it
            known.pop(moved.href, None)
            SyncedItem.objects.filter(pk=moved.pk).update(href=href)
            moved.href = href
            return moved, moved.object_id is None
        match = UID_RE.match(uid)
        if match and match.group(1) == kind:
            obj = _load(kind, int(match.group(2)))
            if obj is not None and obj.responsible_id == self.user.pk and obj.deleted_at is None:
                # Ours from an earlier connection: both sides count as changed (conflict rule).
                adopted = SyncedItem.objects.create(
                    account=self.account,
                    kind=kind,
                    object_id=obj.pk,
                    href=href,
                    uid=uid,
                    etag="",
                    synced_version=0,
                )
                return adopted, False
        try:
            with transaction.atomic():
                obj = _import(self.user, kind, comp, self.zone)
                si = SyncedItem.objects.create(
                    account=self.account,
                    kind=kind,
                    object_id=obj.pk if obj else None,
                    href=href,
                    uid=uid,
                    etag=etag,
                    synced_version=obj.version if obj else 0,
                )
        except (FieldErrors, PermissionDenied) as exc:
            self.item_error(_text(comp, "summary") or uid, exc)
            return None, True
        if obj is not None:
            self.report.created += 1
        return si, True

    def preload(self, rows: list[SyncedItem]) -> dict[tuple[str, int], Interaction | Task]:
        """The Rapport records behind the rows, two queries in all (recycle bin included)."""
        out: dict[tuple[str, int], Interaction | Task] = {}
        for kind, model in ((SyncedKind.INTERACTION, Interaction), (SyncedKind.TASK, Task)):
            ids = [si.object_id for si in rows if si.kind == kind and si.object_id is not None]
            for pk, obj in model.objects.in_bulk(ids).items():
                out[(str(kind), pk)] = obj
        return out

    def reconcile(
        self, si: SyncedItem, listing: dict[str, str], obj: Interaction | Task | None
    ) -> None:
        mine = obj is not None and obj.responsible_id == self.user.pk and obj.deleted_at is None
        try:
            if si.href not in listing:  # deleted on the server
                with transaction.atomic():
                    if obj is not None and mine and _cancel(self.user, obj):
                        self.report.cancelled += 1
                    si.delete()
                return
            etag = listing[si.href]
            remote_changed = etag != si.etag
            comp = _component(self.fetched.get(si.href)) if remote_changed else None
            if obj is None or not mine:  # in the recycle bin, or someone else's now
                with transaction.atomic():
                    if obj is not None and comp is not None:
                        diffs = _differences(remote_values(si.kind, comp, obj, self.zone), obj)
                        if diffs:
                            _record_loser(self.user, si.kind, obj, "server", diffs)
                    self.remote.delete(si.href, etag=etag)
                    si.delete()
                self.report.removed += 1
                return
            local_changed = obj.version != si.synced_version
            if remote_changed and comp is not None:
                values = remote_values(si.kind, comp, obj, self.zone)
                diffs = _differences(values, obj)
                if not diffs:
                    self.mark(si, etag, obj.version)
                    return
                if local_changed:
                    self.report.conflicts += 1
                    if _remote_modified(comp) > obj.updated_at:
                        with transaction.atomic():
                            _record_loser(self.user, si.kind, obj, "rapport", diffs)
                            obj = _apply(self.user, si.kind, obj, {k: values[k] for k in diffs})
                            self.mark(si, etag, obj.version)
                        self.report.pulled += 1
                    else:
                        with transaction.atomic():
                            _record_loser(self.user, si.kind, obj, "server", diffs)
                        self.push(si, obj, etag)
                    return
                with transaction.atomic():
                    obj = _apply(self.user, si.kind, obj, {k: values[k] for k in diffs})
                    self.mark(si, etag, obj.version)
                self.report.pulled += 1
            elif local_changed:
                self.push(si, obj, si.etag)
        except (FieldErrors, PermissionDenied) as exc:
            self.item_error(str(obj) if obj is not None else si.uid, exc)

    def mark(self, si: SyncedItem, etag: str, version: int) -> None:
        si.etag = etag
        si.synced_version = version
        si.save(update_fields=["etag", "synced_version", "synced_at"])

    def push(self, si: SyncedItem, obj: Interaction | Task, etag: str) -> None:
        ics = to_ics(si.kind, obj, base=self.fetched.get(si.href))
        new_etag = self.remote.put(si.href, ics, etag=etag)
        if new_etag is not None:
            self.mark(si, new_etag, obj.version)
            self.report.pushed += 1

    def push_new(self, kind: str, obj: Interaction | Task) -> None:
        href = f"{self.remote.path}rapport-{kind}-{obj.pk}.ics"
        new_etag = self.remote.put(href, to_ics(kind, obj), etag=None)
        if new_etag is None:  # already there (an earlier connection): adopted next time
            return
        SyncedItem.objects.create(
            account=self.account,
            kind=kind,
            object_id=obj.pk,
            href=href,
            uid=_uid(kind, obj.pk),
            etag=new_etag,
            synced_version=obj.version,
        )
        self.report.pushed += 1


def _claim(account: CalDavAccount) -> bool:
    """One sync per account at a time (the worker and "sync now" may meet)."""
    now = timezone.now()
    return bool(
        CalDavAccount.objects.filter(pk=account.pk)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE)
    )


def sync_account(account: CalDavAccount) -> SyncReport:
    """Sync one account both ways; problems end up in ``account.last_error``, not raised."""
    import caldav.lib.error
    import requests

    if not _claim(account):
        return SyncReport(skipped=True)
    report = SyncReport()
    error = ""
    try:
        report = _Run(account, _Remote(account)).run()
        error = "\n".join(report.errors[:10])
    except caldav.lib.error.AuthorizationError:
        error = _("The server refused the user name or password.")
    except (CalDavError, caldav.lib.error.DAVError, requests.RequestException, OSError) as exc:
        error = str(exc) or exc.__class__.__name__
    except Exception as exc:
        log.exception("CalDAV sync of account %s failed", account.pk)
        error = _("Unexpected error: %(error)s") % {"error": exc.__class__.__name__}
        report.errors.append(error)
        raise
    finally:
        now = timezone.now()
        CalDavAccount.objects.filter(pk=account.pk).update(
            last_sync_at=now, last_error=error[:2000], lease_until=None
        )
        account.last_sync_at = now
        account.last_error = error[:2000]
        account.lease_until = None
    if error and not report.errors:
        report.errors.append(error)
    return report


def sync_all(*, username: str | None = None) -> dict[str, SyncReport]:
    """Every account (or one user's), one after another; used by the worker and the CLI."""
    accounts = CalDavAccount.objects.select_related("user").filter(user__is_active=True)
    if username:
        accounts = accounts.filter(user__username=username)
    out: dict[str, SyncReport] = {}
    for account in accounts.order_by("id"):
        try:
            out[account.user.username] = sync_account(account)
        except Exception as exc:  # noqa: BLE001 - logged and stored; the other accounts go on
            out[account.user.username] = SyncReport(errors=[exc.__class__.__name__])
    return out


# --- connecting and disconnecting -----------------------------------------------------------


@transaction.atomic
def caldav_connect(*, user: User, data: dict[str, Any]) -> CalDavAccount:
    """Link (or re-link) ``user``'s calendar; a blank password keeps the stored one."""
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    errors: dict[str, list[str]] = {}
    server_url = str(data.get("server_url") or "").strip()
    try:
        URLValidator(schemes=["http", "https"])(server_url)
        check_server_url(server_url)
    except ValidationError:
        errors["server_url"] = [_("Enter a server address starting with http:// or https://.")]
    except CalDavError as exc:
        errors["server_url"] = [str(exc)]
    username = str(data.get("username") or "").strip()[:200]
    password = str(data.get("password") or "")[:500]
    calendar_name = str(data.get("calendar_name") or "").strip()[:200] or DEFAULT_CALENDAR
    calendar_url = str(data.get("calendar_url") or "").strip()
    if calendar_url:
        try:
            URLValidator(schemes=["http", "https"])(calendar_url)
            check_server_url(calendar_url)
        except ValidationError:
            errors["calendar_url"] = [
                _("Enter a calendar address starting with http:// or https://.")
            ]
        except CalDavError as exc:
            errors["calendar_url"] = [str(exc)]
    account = CalDavAccount.objects.select_for_update().filter(user=user).first()
    if not password and account is None and username:
        errors["password"] = [_("This field is required.")]
    if errors:
        raise FieldErrors(errors)
    old = account.server_url if account else None
    if account is None:
        account = CalDavAccount(user=user)
    elif (account.server_url, account.calendar_name) != (server_url, calendar_name) or (
        calendar_url and calendar_url != account.calendar_url
    ):
        # Another calendar: what was synced with the old one says nothing about the new one.
        account.items.all().delete()
        account.calendar_url = ""
    if calendar_url:
        account.calendar_url = calendar_url
    account.server_url = server_url
    account.username = username
    if password:
        account.password = password
    account.calendar_name = calendar_name
    account.last_error = ""
    account.save()
    audit_record(
        actor=user,
        instance=user,
        object_type="user",
        action="update",
        changes={"caldav_account": [old, server_url]},
    )
    return account


@transaction.atomic
def caldav_disconnect(*, user: User) -> bool:
    """Forget ``user``'s CalDAV link and password; items stay in both places."""
    account = CalDavAccount.objects.filter(user=user).first()
    if account is None:
        return False
    old = account.server_url
    account.delete()
    audit_record(
        actor=user,
        instance=user,
        object_type="user",
        action="update",
        changes={"caldav_account": [old, None]},
    )
    return True
