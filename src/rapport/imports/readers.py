"""Reading import files: what a file really is, its sheets, its rows as text, its header row.

Spreadsheets (XLSX, XLS, ODS) through python-calamine; CSV/TSV with the encoding and
delimiter detected (BOM, strict UTF-8, then charset-normalizer for the rest); vCard
3/4. The format is taken from the file's bytes, not its name: a name that lies is
refused with a message. Rows come out one at a time as lists of strings.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

MAX_COLUMNS = 200
HEADER_SCAN_ROWS = 30
SAMPLE_BYTES = 256 * 1024
MAX_CELL_CHARS = 32_767  # Excel's own limit for a cell

SPREADSHEET_EXTS = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_EXTS = {".csv", ".tsv", ".txt"}
VCARD_EXTS = {".vcf", ".vcard"}


class ImportFileError(Exception):
    """The file cannot be read as a table; the message says why, in the user's language."""


@dataclass
class SourceInfo:
    format: str  # xlsx, xls, ods, csv, vcf
    sheets: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""


def _magic(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(8)


def _zip_kind(path: Path) -> str:
    """xlsx or ods for an Office zip; '' for any other zip."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "mimetype" in names and archive.read("mimetype").startswith(
                b"application/vnd.oasis.opendocument.spreadsheet"
            ):
                return "ods"
    except zipfile.BadZipFile:
        return ""
    return ""


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # A sample may end inside a multi-byte character: decode incrementally.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise ImportFileError(_("The file is not text in any encoding Rapport recognises."))
    return str(best.encoding)


def _detect_delimiter(text: str, ext: str) -> str:
    if ext == ".tsv":
        return "\t"
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    best, best_score = ",", -1.0
    for delim in (";", ",", "\t", "|"):
        counts = [line.count(delim) for line in lines]
        if not counts or max(counts) == 0:
            continue
        # The delimiter splits most lines into the same number of fields.
        common = max(set(counts), key=counts.count)
        score = counts.count(common) / len(counts) * (1 + min(common, 50) / 100)
        if common and score > best_score:
            best, best_score = delim, score
    return best


def sniff(path: Path, file_name: str) -> SourceInfo:
    """What the file is, from its bytes; refuse a file whose name says otherwise."""
    ext = Path(file_name).suffix.lower()
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(_("The file is empty."))
    head = _magic(path)
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        if not kind:
            raise ImportFileError(_("The file is a ZIP archive, not a spreadsheet."))
        if ext not in SPREADSHEET_EXTS and ext:
            raise ImportFileError(
                _("The file is a spreadsheet (%(kind)s) although its name ends with %(ext)s.")
                % {"kind": kind.upper(), "ext": ext}
            )
        return SourceInfo(format=kind, sheets=_sheet_names(path))
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if ext not in SPREADSHEET_EXTS and ext:
            raise ImportFileError(
                _("The file is an old Excel workbook (XLS) although its name ends with %(ext)s.")
                % {"ext": ext}
            )
        return SourceInfo(format="xls", sheets=_sheet_names(path))
    if ext in SPREADSHEET_EXTS:
        raise ImportFileError(
            _("The file's name ends with %(ext)s, but it is not a spreadsheet.") % {"ext": ext}
        )
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if b"\x00" in sample and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(_("The file is binary, not a table or a text file."))
    encoding = _detect_encoding(sample)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    if text.lstrip("\ufeff \r\n\t").upper().startswith("BEGIN:VCARD"):
        return SourceInfo(format="vcf", sheets=[""], encoding=encoding)
    if ext in VCARD_EXTS:
        raise ImportFileError(
            _("The file's name ends with %(ext)s, but it holds no vCard.") % {"ext": ext}
        )
    return SourceInfo(
        format="csv", sheets=[""], encoding=encoding, delimiter=_detect_delimiter(text, ext)
    )


def _sheet_names(path: Path) -> list[str]:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for broken files
        raise ImportFileError(
            _("The spreadsheet cannot be opened: %(error)s") % {"error": exc}
        ) from exc
    return list(workbook.sheet_names)


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a person would read in it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="minutes") if value.time() else str(value.date())
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def _spreadsheet_rows(path: Path, sheet: str) -> Iterator[list[str]]:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    names = list(workbook.sheet_names)
    if sheet and sheet not in names:
        raise ImportFileError(_("The workbook has no sheet named “%(sheet)s”.") % {"sheet": sheet})
    ws = workbook.get_sheet_by_name(sheet) if sheet else workbook.get_sheet_by_index(0)
    # skip_empty_area=False keeps the sheet's own row numbers (title rows above the header).
    for row in ws.iter_rows():
        yield [cell_text(c) for c in row]


def _csv_rows(path: Path, info: SourceInfo) -> Iterator[list[str]]:
    csv.field_size_limit(MAX_CELL_CHARS * 4)
    line = 0
    try:
        with path.open(encoding=info.encoding or "utf-8", errors="strict", newline="") as handle:
            reader = csv.reader(handle, delimiter=info.delimiter or ",", strict=True)
            for row in reader:
                line = reader.line_num
                yield row
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            _(
                "The file mixes text encodings: after line %(line)s it cannot be read as "
                "%(encoding)s."
            )
            % {"line": line, "encoding": info.encoding}
        ) from exc
    except csv.Error as exc:
        raise ImportFileError(
            _("The file's quoting is broken near line %(line)s: %(error)s")
            % {"line": line + 1, "error": exc}
        ) from exc


VCARD_HEADERS = ["FN", "N", "ORG", "TITLE", "TEL", "EMAIL", "ADR", "BDAY", "NOTE", "URL"]


def _vcard_rows(path: Path, info: SourceInfo) -> Iterator[list[str]]:
    """vCard 3/4 as a table: a header row of property names, then one row per card."""
    import vobject

    yield list(VCARD_HEADERS)
    with path.open(encoding=info.encoding or "utf-8", errors="strict") as handle:
        text = handle.read() if path.stat().st_size < 50 * 1024 * 1024 else None
    if text is None:
        raise ImportFileError(_("A vCard file over 50 MB is too large to import at once."))
    try:
        for card in vobject.readComponents(io.StringIO(text), ignoreUnreadable=True):
            yield _vcard_row(card)
    except Exception as exc:  # vobject raises ParseError and friends
        raise ImportFileError(_("The vCard file is broken: %(error)s") % {"error": exc}) from exc


def _vcard_row(card: Any) -> list[str]:
    def values(name: str) -> list[Any]:
        return [c.value for c in card.contents.get(name.lower(), [])]

    def joined(name: str) -> str:
        out = []
        for v in values(name):
            if isinstance(v, list):
                v = " ".join(str(x) for x in v if x)
            out.append(str(v).strip())
        return "; ".join(x for x in out if x)

    names = values("n")
    n_text = ""
    if names:
        n = names[0]
        n_text = " ".join(str(p) for p in (n.family, n.given, n.additional) if p and str(p).strip())
    adr = []
    for a in values("adr"):
        parts = [a.street, a.city, a.region, a.code, a.country]
        adr.append(", ".join(str(p) for p in parts if p and str(p).strip()))
    return [
        joined("fn"),
        n_text,
        joined("org"),
        joined("title"),
        joined("tel"),
        joined("email"),
        "; ".join(adr),
        joined("bday"),
        joined("note"),
        joined("url"),
    ]


def iter_rows(path: Path, info: SourceInfo, sheet: str = "") -> Iterator[list[str]]:
    """Every row of the sheet from the top, as text; trailing empty cells trimmed."""
    if info.format in ("xlsx", "xls", "ods"):
        rows = _spreadsheet_rows(path, sheet)
    elif info.format == "vcf":
        rows = _vcard_rows(path, info)
    else:
        rows = _csv_rows(path, info)
    for row in rows:
        while row and not str(row[-1]).strip():
            row.pop()
        yield row


def is_empty(row: list[str]) -> bool:
    return not any(c.strip() for c in row)
