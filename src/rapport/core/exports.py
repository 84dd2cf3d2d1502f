"""Spreadsheet downloads of lists: CSV and XLSX, streamed, safe against formula injection.

One place turns a header and an iterable of rows into a download. Callers (the list pages and
the API) pass rows of plain Python values — str, int, float, Decimal, date, datetime, bool,
None — already scoped by a selector with ``action="export"``.

Formula injection. A spreadsheet program runs a cell that starts with ``=`` (and, depending on
the program, ``+ - @``, a tab, a carriage return or their full-width forms) as a formula:
``=HYPERLINK(...)`` in a company name becomes a live link when a manager opens the export. So:

* CSV has no types; every text value starting with one of those characters gets a leading
  apostrophe (OWASP "CSV injection" advice). Numbers, dates and amounts are written as they are.
* XLSX has types. Every text value is written as a string cell (``t="inlineStr"``) — openpyxl
  would otherwise store ``"=..."`` as a formula and ``"#N/A"`` as an error — and a dangerous one
  also carries Excel's "quote prefix" flag, so editing the cell later keeps it text. The text
  itself is kept as typed. Numbers, dates and Decimals stay typed.

Memory. Rows are consumed one at a time: CSV is encoded in ~64 KB chunks; XLSX goes through
openpyxl's write-only workbook (rows are written to disk as they come, strings inline — no
shared-string table in memory) into a temporary file that is then sent in chunks. Callers read
their querysets with ``.iterator(chunk_size=...)`` and load related rows per chunk
(``in_chunks``). Exports of at most ``BUFFER_ROWS`` rows are built in memory and sent with a
Content-Length; longer ones stream (``StreamingHttpResponse``).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from rapport.core.customfields import definitions_for
from rapport.core.errors import FieldErrors
from rapport.core.models import CustomFieldDefinition

FORMATS = ("xlsx", "csv")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# A text cell starting with one of these is a formula (or a cell break) to some spreadsheet
# program: ASCII = + - @, tab, CR, LF and the full-width forms ＝ ＋ － ＠.
FORMULA_PREFIXES = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# Leading blanks a program may skip before it looks for "=": space, no-break, ideographic.
_BLANKS = " \u00a0\u3000"
_SUSPECT_STARTS = FORMULA_PREFIXES | frozenset(_BLANKS)  # a cheap first look
BUFFER_ROWS = 1000  # up to this many rows: built in memory, sent with a Content-Length
CHUNK_BYTES = 64 * 1024
XLSX_MAX_CELL = 32_767  # Excel's limit on the characters of one cell

Row = Sequence[Any]
Type = CustomFieldDefinition.Type
T = TypeVar("T")


class ExportTooLarge(FieldErrors):
    """More rows match than one export may hold (``EXPORT_MAX_ROWS``)."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        message = ngettext(
            "%(count)s row matches the filters; an export takes at most %(limit)s. "
            "Narrow the filters.",
            "%(count)s rows match the filters; an export takes at most %(limit)s. "
            "Narrow the filters.",
            count,
        ) % {
            "count": number_format(count, force_grouping=True),
            "limit": number_format(limit, force_grouping=True),
        }
        super().__init__({"export": [message]})
        self.message = message

    def __str__(self) -> str:
        return self.message


def export_format(value: str | None) -> str:
    """The format asked for: ``csv`` or ``xlsx`` (the default)."""
    return "csv" if (value or "").strip().lower() == "csv" else "xlsx"


def check_export_size(count: int) -> None:
    """Refuse an export of more than ``EXPORT_MAX_ROWS`` rows (exactly the limit is allowed)."""
    limit = int(settings.EXPORT_MAX_ROWS)
    if count > limit:
        raise ExportTooLarge(count, limit)


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet program could read ``text`` as a formula."""
    stripped = text.lstrip(_BLANKS)
    return bool(stripped) and stripped[0] in FORMULA_PREFIXES


def neutralise(text: str) -> str:
    """The CSV form of a text value: a leading apostrophe when it could be read as a formula."""
    return "'" + text if is_formula_like(text) else text


def in_chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size``: pass ``qs.iterator(chunk_size=size)`` and load the
    related rows of each list with one query per relation (no query per row)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def user_name(first_name: str | None, last_name: str | None, username: str | None) -> str | None:
    """A user's name as the pages show it (full name, else user name), from row values."""
    full = f"{first_name or ''} {last_name or ''}".strip()
    return full or username or None


def local_naive(value: dt.datetime) -> dt.datetime:
    """A datetime in the current (the user's) time zone, without tzinfo: what a sheet shows."""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.replace(tzinfo=None, microsecond=0)


# --- custom fields as extra columns ------------------------------------------------------------


def custom_field_columns(
    object_type: str,
) -> tuple[list[str], Callable[[dict[str, Any]], list[Any]]]:
    """Header labels for the admin-defined fields of ``object_type`` and a function turning a
    record's ``custom_fields`` into cells: typed numbers, dates and yes/no; a money field gives
    two columns (amount, currency); a user field the user's name."""
    defs = definitions_for(object_type)
    header: list[str] = []
    for d in defs:
        header.append(str(d.label))
        if d.type == Type.MONEY:
            header.append(_("%(label)s, currency") % {"label": d.label})
    users: dict[int, str] = {}
    if any(d.type == Type.USER for d in defs):
        users = {u.pk: str(u) for u in get_user_model().objects.all()}

    def cells(values: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for d in defs:
            value = (values or {}).get(d.name)
            if d.type == Type.MONEY:
                amount = value.get("amount") if isinstance(value, dict) else value
                currency = value.get("currency", "") if isinstance(value, dict) else ""
                out += [_number(amount), currency or None]
            elif d.type == Type.NUMBER:
                out.append(_number(value))
            elif d.type == Type.DATE:
                out.append(_date(value))
            elif d.type == Type.BOOL:
                out.append(value if isinstance(value, bool) else None)
            elif d.type == Type.MULTI_CHOICE:
                out.append(", ".join(str(v) for v in value) if isinstance(value, list) else value)
            elif d.type == Type.USER:
                uid = str(value) if value is not None else ""
                out.append(users.get(int(uid), uid) if uid.isdigit() else None)
            else:
                out.append(None if value in (None, "") else str(value))
        return out

    return header, cells


def _number(value: Any) -> int | float | decimal.Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float | decimal.Decimal):
        return value
    try:
        return decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        return None


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# --- writers -----------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return neutralise(value) if value and value[0] in _SUSPECT_STARTS else value
    if kind is int:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dt.datetime):
        return local_naive(value).isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return value
    return neutralise(str(value))


def csv_chunks(header: Row, rows: Iterable[Row]) -> Iterator[bytes]:
    """UTF-8 CSV with a byte-order mark (Excel then reads it as UTF-8), in ~64 KB chunks."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow([_csv_value(v) for v in header])
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
        if buf.tell() >= CHUNK_BYTES:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def _xlsx_text(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cleaned: str = ILLEGAL_CHARACTERS_RE.sub("", text)
    return cleaned[:XLSX_MAX_CELL]


def _xlsx_row(ws: Any, row: Row) -> list[Any]:
    """Cells for openpyxl: typed values as they are; text always a string cell."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES

    out: list[Any] = []
    for value in row:
        if value is None or isinstance(value, bool | int | float | decimal.Decimal):
            out.append(value)
        elif isinstance(value, dt.datetime):
            out.append(local_naive(value))
        elif isinstance(value, dt.date | dt.time):
            out.append(value)
        else:
            text = _xlsx_text(str(value))
            if text in ERROR_CODES or is_formula_like(text):
                # openpyxl would store "=..." as a formula and "#N/A" as an error: force text,
                # and mark it as Excel marks text typed after an apostrophe.
                cell = WriteOnlyCell(ws, value=text)
                cell.data_type = "s"
                cell.quotePrefix = True
                out.append(cell)
            else:
                out.append(text)
    return out


def write_xlsx(header: Row, rows: Iterable[Row], target: Any, *, title: str) -> None:
    """Write a one-sheet workbook to the binary file ``target`` with flat memory."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=_sheet_title(title))
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    head = []
    for cell in _xlsx_row(ws, header):
        if not hasattr(cell, "font"):
            cell = WriteOnlyCell(ws, value=cell)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    for row in rows:
        ws.append(_xlsx_row(ws, row))
    wb.save(target)


def _sheet_title(title: str) -> str:
    cleaned = "".join(c for c in title if c not in "[]:*?/\\").strip("'") or "Sheet"
    return cleaned[:31]


def xlsx_chunks(header: Row, rows: Iterable[Row], *, title: str) -> Iterator[bytes]:
    """The workbook, built in a temporary file (deleted when done), read back in chunks."""
    with tempfile.TemporaryFile(prefix="rapport-export-", suffix=".xlsx") as fh:
        write_xlsx(header, rows, fh, title=title)
        fh.seek(0)
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


def _in_request_context(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Keep the request's language and time zone while a streamed body is produced: the
    generator runs after the view has returned."""
    language = translation.get_language()
    zone = timezone.get_current_timezone()

    def run() -> Iterator[bytes]:
        with translation.override(language), timezone.override(zone):
            yield from chunks

    return run()


def export_response(
    *,
    name: str,
    fmt: str,
    header: Row,
    rows: Iterable[Row],
    count: int | None = None,
    title: str | None = None,
) -> HttpResponseBase:
    """A download ``<name>-<date>.<ext>`` of ``header`` and ``rows`` as CSV or XLSX.

    ``count`` is the number of rows when known: an export of more than ``EXPORT_MAX_ROWS`` is
    refused (``ExportTooLarge``), and one of at most ``BUFFER_ROWS`` is built at once and sent
    with a Content-Length. Otherwise the body streams."""
    fmt = export_format(fmt)
    if count is not None:
        check_export_size(count)
    header = [str(h) for h in header]
    if fmt == "csv":
        chunks = csv_chunks(header, rows)
    else:
        chunks = xlsx_chunks(header, rows, title=title or name)
    response: HttpResponseBase
    if count is not None and count <= BUFFER_ROWS:
        response = HttpResponse(b"".join(chunks), content_type=CONTENT_TYPES[fmt])
    else:
        response = StreamingHttpResponse(
            _in_request_context(chunks), content_type=CONTENT_TYPES[fmt]
        )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
