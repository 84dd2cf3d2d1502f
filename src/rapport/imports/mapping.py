"""Column mapping: header names in five languages to Rapport's fields, and the header row.

Headers are compared after folding case, diacritics, Arabic letter variants and
punctuation, so "E-mail", "e‑mail " and "EMAIL" are one name. A header that is not
known exactly is matched to the nearest synonym when it is close enough (rapidfuzz),
and the user adjusts the result in the wizard; custom fields match by name or label.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from rapidfuzz import fuzz, process

from rapport.core.models import CustomFieldDefinition
from rapport.imports.readers import HEADER_SCAN_ROWS, is_empty

CUSTOM_PREFIX = "custom:"


@dataclass(frozen=True)
class Field:
    name: str
    label: Promise
    multiple: bool = False  # several columns may feed it (phones, emails)


PEOPLE_FIELDS = [
    Field("full_name", _("full name")),
    Field("last_name", _("last name")),
    Field("first_name", _("first name")),
    Field("middle_name", _("middle name")),
    Field("phones", _("phones"), multiple=True),
    Field("emails", _("emails"), multiple=True),
    Field("company", _("company")),
    Field("position", _("position")),
    Field("company_tax_id", _("company tax id")),
    Field("city", _("city")),
    Field("address", _("address")),
    Field("birthday", _("birthday")),
    Field("website", _("company website")),
    Field("source", _("source")),
    Field("tags", _("tags")),
    Field("notes", _("notes"), multiple=True),
]
COMPANY_FIELDS = [
    Field("company", _("company")),
    Field("full_legal_name", _("full legal name")),
    Field("company_tax_id", _("tax id")),
    Field("registration_number", _("registration number")),
    Field("phones", _("phones"), multiple=True),
    Field("emails", _("emails"), multiple=True),
    Field("website", _("website")),
    Field("industry", _("industry")),
    Field("city", _("city")),
    Field("address", _("legal address")),
    Field("postal_address", _("postal address")),
    Field("source", _("source")),
    Field("tags", _("tags")),
    Field("notes", _("notes"), multiple=True),
]


def fields_for(target: str) -> list[Field]:
    return PEOPLE_FIELDS if target == "people" else COMPANY_FIELDS


# Header names as people write them (English, Russian, Azerbaijani, Italian, Arabic).
SYNONYMS: dict[str, list[str]] = {
    "full_name": [
        "full name",
        "name",
        "contact",
        "contact name",
        "contact person",
        "person",
        "фио",
        "ф и о",
        "фамилия имя отчество",
        "имя фамилия",
        "контакт",
        "контактное лицо",
        "клиент",
        "ad soyad",
        "ad soyadı",
        "adı soyadı",
        "soyad ad",
        "əlaqə şəxsi",
        "nome e cognome",
        "nome cognome",
        "cognome e nome",
        "nominativo",
        "contatto",
        "الاسم الكامل",
        "الاسم",
        "اسم",
        "جهة الاتصال",
    ],
    "last_name": [
        "last name",
        "surname",
        "family name",
        "фамилия",
        "soyad",
        "soyadı",
        "cognome",
        "اسم العائلة",
        "العائلة",
        "اللقب",
    ],
    "first_name": [
        "first name",
        "given name",
        "forename",
        "имя",
        "ad",
        "adı",
        "nome",
        "الاسم الأول",
    ],
    "middle_name": [
        "middle name",
        "patronymic",
        "отчество",
        "ata adı",
        "atasının adı",
        "secondo nome",
        "patronimico",
        "اسم الأب",
    ],
    "phones": [
        "phone",
        "phones",
        "telephone",
        "tel",
        "mobile",
        "mobile phone",
        "cell",
        "cell phone",
        "work phone",
        "phone number",
        "телефон",
        "телефоны",
        "тел",
        "моб",
        "мобильный",
        "мобильный телефон",
        "рабочий телефон",
        "номер телефона",
        "telefon",
        "mobil",
        "telefon nömrəsi",
        "telefono",
        "telefoni",
        "cellulare",
        "numero di telefono",
        "الهاتف",
        "هاتف",
        "الجوال",
        "جوال",
        "رقم الهاتف",
        "الهاتف المحمول",
    ],
    "emails": [
        "email",
        "e mail",
        "mail",
        "email address",
        "почта",
        "эл почта",
        "электронная почта",
        "адрес электронной почты",
        "емейл",
        "e poçt",
        "epoçt",
        "elektron poçt",
        "poçt",
        "posta elettronica",
        "indirizzo email",
        "البريد الإلكتروني",
        "البريد",
        "بريد إلكتروني",
    ],
    "company": [
        "company",
        "organization",
        "organisation",
        "employer",
        "company name",
        "account",
        "компания",
        "организация",
        "контрагент",
        "название компании",
        "предприятие",
        "şirkət",
        "şirket",
        "təşkilat",
        "müəssisə",
        "azienda",
        "società",
        "ditta",
        "ragione sociale",
        "الشركة",
        "شركة",
        "المؤسسة",
        "اسم الشركة",
    ],
    "full_legal_name": [
        "full legal name",
        "legal name",
        "полное наименование",
        "полное название",
        "hüquqi ad",
        "denominazione",
        "الاسم القانوني",
    ],
    "position": [
        "job title",
        "title",
        "position",
        "job",
        "должность",
        "позиция",
        "vəzifə",
        "ruolo",
        "posizione",
        "qualifica",
        "mansione",
        "المنصب",
        "الوظيفة",
        "المسمى الوظيفي",
    ],
    "company_tax_id": [
        "tax id",
        "tax number",
        "vat",
        "vat number",
        "vat id",
        "ein",
        "tin",
        "инн",
        "инн компании",
        "voen",
        "vöen",
        "vergi nömrəsi",
        "partita iva",
        "p iva",
        "piva",
        "codice fiscale",
        "الرقم الضريبي",
        "رقم ضريبي",
    ],
    "registration_number": [
        "registration number",
        "company number",
        "огрн",
        "огрнип",
        "qeydiyyat nömrəsi",
        "numero rea",
        "rea",
        "السجل التجاري",
    ],
    "city": ["city", "town", "город", "населенный пункт", "şəhər", "città", "comune", "المدينة"],
    "address": [
        "address",
        "legal address",
        "адрес",
        "юридический адрес",
        "ünvan",
        "hüquqi ünvan",
        "indirizzo",
        "sede legale",
        "العنوان",
    ],
    "postal_address": [
        "postal address",
        "mailing address",
        "почтовый адрес",
        "poçt ünvanı",
        "indirizzo postale",
        "العنوان البريدي",
    ],
    "birthday": [
        "birthday",
        "date of birth",
        "birth date",
        "dob",
        "дата рождения",
        "день рождения",
        "doğum tarixi",
        "data di nascita",
        "تاريخ الميلاد",
    ],
    "website": [
        "website",
        "web site",
        "site",
        "web",
        "url",
        "сайт",
        "sayt",
        "sito",
        "sito web",
        "الموقع",
        "الموقع الإلكتروني",
    ],
    "industry": ["industry", "sector", "отрасль", "сфера", "sahə", "settore", "القطاع"],
    "source": ["source", "lead source", "источник", "mənbə", "fonte", "provenienza", "المصدر"],
    "tags": ["tags", "tag", "labels", "теги", "метки", "etiketlər", "etichette", "tag", "الوسوم"],
    "notes": [
        "notes",
        "note",
        "comment",
        "comments",
        "remarks",
        "комментарий",
        "комментарии",
        "примечание",
        "примечания",
        "заметки",
        "qeyd",
        "qeydlər",
        "şərh",
        "nota",
        "commento",
        "commenti",
        "ملاحظات",
        "ملاحظة",
        "تعليق",
    ],
}
# vCard property names (the vCard reader's header row).
VCARD = {
    "fn": "full_name",
    "n": "full_name",
    "org": "company",
    "title": "position",
    "tel": "phones",
    "email": "emails",
    "adr": "address",
    "bday": "birthday",
    "note": "notes",
    "url": "website",
}

_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ى": "ي", "ة": "ه", "ё": "е", "ı": "i"})
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_header(text: str) -> str:
    """Header text folded for comparison: case, diacritics, Arabic variants, punctuation."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(_ALEF).replace("\u0640", "")  # tatweel
    return " ".join(_PUNCT.sub(" ", text).split())


_INDEX: dict[str, str] = {}
for _field, _names in SYNONYMS.items():
    for _name in _names:
        _INDEX.setdefault(normalize_header(_name), _field)


def _custom_fields(target: str) -> dict[str, str]:
    object_type = "person" if target == "people" else "company"
    out: dict[str, str] = {}
    for d in CustomFieldDefinition.objects.filter(object_type=object_type):
        for text in (d.name, getattr(d, "label", "")):
            if text:
                out[normalize_header(str(text))] = CUSTOM_PREFIX + d.name
    return out


def _guess(header: str, allowed: set[str], custom: dict[str, str]) -> str:
    key = normalize_header(header)
    if not key:
        return ""
    if key in custom:
        return custom[key]
    field = _INDEX.get(key)
    if field and field in allowed:
        return field
    # "Телефон (мобильный)", "Phone 2", "E-mail рабочий": a known name and a qualifier.
    words = key.split()
    for n in range(len(words) - 1, 0, -1):
        for start in range(len(words) - n + 1):
            field = _INDEX.get(" ".join(words[start : start + n]))
            if field and field in allowed and (n > 1 or len(words[start]) > 2):
                return field
    choices = [k for k, f in _INDEX.items() if f in allowed]
    best = process.extractOne(key, choices, scorer=fuzz.ratio, score_cutoff=88)
    return _INDEX[best[0]] if best else ""


def auto_map(headers: list[str], target: str) -> list[str]:
    """A field for each column ('' = ignore); single-valued fields are used once."""
    allowed = {f.name for f in fields_for(target)}
    multiple = {f.name for f in fields_for(target) if f.multiple}
    custom = _custom_fields(target)
    used: set[str] = set()
    out: list[str] = []
    vcard = [h.strip().lower() for h in headers]
    if vcard and all(h in VCARD for h in vcard if h):
        for h in vcard:
            field = VCARD.get(h, "")
            if field == "full_name" and "full_name" in used:
                field = ""
            used.add(field)
            out.append(field if field in allowed else "")
        return out
    for header in headers:
        field = _guess(header, allowed, custom)
        if field and field not in multiple and field in used:
            field = ""
        if field:
            used.add(field)
        out.append(field)
    return out


def header_score(row: list[str], target: str) -> int:
    allowed = {f.name for f in fields_for(target)}
    custom = _custom_fields(target)
    return sum(1 for c in row if c.strip() and _guess(c, allowed, custom))


def detect_header_row(rows: list[list[str]], target: str) -> int:
    """The 1-based number of the row that names the columns among the first rows."""
    best, best_score = 0, 0
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        if is_empty(row):
            continue
        score = header_score(row, target)
        if score > best_score:
            best, best_score = i, score
    if best_score >= 2:
        return best + 1
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        if sum(1 for c in row if c.strip()) >= 2:
            return i + 1
    return 1


def signature(headers: list[str], target: str) -> str:
    """The same header shape gives the same signature (for mapping presets)."""
    text = target + "\x1f" + "\x1f".join(normalize_header(h) for h in headers)
    return hashlib.sha256(text.encode()).hexdigest()


def validate_mapping(mapping: list[str], headers: list[str], target: str) -> dict[str, list[str]]:
    """Errors of a user's mapping: unknown fields, a single field twice, no name column."""
    from django.utils.translation import gettext

    allowed = {f.name for f in fields_for(target)}
    multiple = {f.name for f in fields_for(target) if f.multiple}
    custom = set(_custom_fields(target).values())
    errors: list[str] = []
    seen: set[str] = set()
    for i, field in enumerate(mapping):
        if not field:
            continue
        if field not in allowed and field not in custom:
            errors.append(
                gettext("Column %(n)s: unknown field “%(field)s”.") % {"n": i + 1, "field": field}
            )
        elif field in seen and field not in multiple:
            errors.append(
                gettext("Column %(n)s: the field “%(field)s” is already taken by another column.")
                % {"n": i + 1, "field": field}
            )
        seen.add(field)
    names = {"full_name", "last_name", "first_name", "company"}
    if not seen & names:
        errors.append(
            gettext("Map at least one column to a name (full name, first or last name, company).")
            if target == "people"
            else gettext("Map a column to the company name.")
        )
    if len(mapping) > len(headers) + 0 and any(mapping[len(headers) :]):
        errors.append(gettext("The mapping has more columns than the file."))
    return {"mapping": errors} if errors else {}
