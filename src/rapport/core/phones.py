"""Phone number normalisation: split a messy cell, parse each token to E.164.

Pure Python (no Django), built on :mod:`phonenumbers`. Nothing here raises on
user input: a token that cannot be understood comes back with ``valid=False``
and its raw text kept, so the caller can flag it instead of storing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

__all__ = [
    "ParsedPhone",
    "parse_phone",
    "parse_phones",
    "phone_digits",
    "search_phone_variants",
    "split_phone_field",
    "timezone_for_phone",
]


@dataclass(frozen=True)
class ParsedPhone:
    raw: str  # the token as typed (stripped)
    e164: str | None  # "+79123419615", or None when invalid
    extension: str  # "" if none
    valid: bool
    region: str | None  # ISO region of the number (e.g. "RU") if valid


# Arabic-Indic (U+0660..) and Extended/Eastern Arabic-Indic (U+06F0..) digits,
# full-width digits; bidi control marks that RTL spreadsheets sprinkle in are dropped.
_DIGIT_TABLE: dict[int, int | None] = {}
for _base in (0x0660, 0x06F0, 0xFF10):
    for _i in range(10):
        _DIGIT_TABLE[_base + _i] = ord("0") + _i
for _mark in (0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
    _DIGIT_TABLE[_mark] = None
_DIGIT_TABLE[0xFF0B] = ord("+")  # full-width plus
_DIGIT_TABLE[0x00A0] = ord(" ")  # no-break space
_DIGIT_TABLE[0x202F] = ord(" ")  # narrow no-break space

# Regions where people keep the Soviet-era trunk "8" in front of a national
# number that (today) starts with "0": "8 (050) 123-45-67" means "050 123 45 67".
_CIS_8_ZERO_REGIONS = frozenset({"AZ", "UA", "GE", "AM", "KG", "MD"})

_MIN_DIGITS = 5
_MAX_DIGITS = 17

_NON_DIGIT_RE = re.compile(r"[^0-9]+")
_LETTER = r"[^\W\d_]"
# Separators between numbers in one cell.  "/" only when it is not between two
# letters, so that "n/a" stays one (junk) token.
_SPLIT_RE = re.compile(
    rf"[,;\n\r\t|]+"
    rf"|\s*(?:(?<!{_LETTER})/|/(?!{_LETTER}))\s*"
    r"|\s+(?:or|или|oppure|o|ou|oder|və|ve|veya|yaxud|أو|او)\s+",
    re.IGNORECASE,
)
_MULTISPACE_RE = re.compile(r"\s{2,}")
_SPACES_RE = re.compile(r"\s+")
_EXTENSION_RE = re.compile(
    rf"(?<!{_LETTER})"
    r"(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext(?:ension)?|int|interno|dahili|x|#)"
    r"\s*[.:]?\s*[.:]?\s*(\d{1,7})\s*\.?\s*$",
    re.IGNORECASE,
)
_LEADING_PLUS_RE = re.compile(r"^[\s(\[]*\+")
_EXTENSION_ONLY_RE = re.compile(r"^" + _EXTENSION_RE.pattern, re.IGNORECASE)


def _ascii_digits(text: str) -> str:
    return text.translate(_DIGIT_TABLE)


def phone_digits(text: str) -> str:
    """All digits of ``text`` as ASCII (Arabic-Indic and Eastern Arabic converted)."""
    return _NON_DIGIT_RE.sub("", _ascii_digits(text))


def _digit_count(text: str) -> int:
    return len(phone_digits(text))


def split_phone_field(text: str) -> list[str]:
    """Split a cell holding one or several phone numbers into stripped tokens.

    Separators: ``,`` ``;`` ``/`` ``|`` tab, line breaks, the word "or" (in a few
    languages), and runs of 2+ spaces when every part around them looks like a
    whole number (7+ digits).  Empty pieces are dropped; nothing else is.
    """
    if not text:
        return []
    tokens: list[str] = []
    for piece in _SPLIT_RE.split(text):
        if piece is None:
            continue
        piece = piece.strip()
        if not piece:
            continue
        if tokens and _EXTENSION_ONLY_RE.match(_ascii_digits(piece)):
            tokens[-1] = f"{tokens[-1]} {_SPACES_RE.sub(' ', piece)}"  # "..., доб. 12"
            continue
        parts = [p for p in _MULTISPACE_RE.split(piece) if p.strip()]
        if len(parts) > 1 and all(_digit_count(p) >= 7 for p in parts):
            tokens.extend(_SPACES_RE.sub(" ", p.strip()) for p in parts)
        else:
            tokens.append(_SPACES_RE.sub(" ", piece))
    return tokens


def _try_parse(candidate: str, region: str | None) -> PhoneNumber | None:
    try:
        number = phonenumbers.parse(candidate, region)
    except NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return number
    return None


def _candidates(body: str, digits: str, default_region: str) -> list[tuple[str, str | None]]:
    """Strings to hand to phonenumbers, best guess first."""
    region = default_region.upper() if default_region else None
    if _LEADING_PLUS_RE.match(body):
        return [("+" + digits, None)]
    if digits.startswith("00"):
        return [("+" + digits[2:], None)]
    out: list[tuple[str, str | None]] = []
    if region in _CIS_8_ZERO_REGIONS and digits.startswith("80"):
        out.append((digits[1:], region))
    out.append((digits, region))
    if digits.startswith("80"):
        out.append((digits[1:], region))
    out.append(("+" + digits, None))
    return out


def parse_phone(raw: str, *, default_region: str) -> ParsedPhone:
    """Parse one token; never raises.  Junk comes back ``valid=False`` with ``raw`` kept."""
    token = raw.strip() if isinstance(raw, str) else ""
    invalid = ParsedPhone(raw=token, e164=None, extension="", valid=False, region=None)
    text = _ascii_digits(token)
    extension = ""
    match = _EXTENSION_RE.search(text)
    if match and _digit_count(text[: match.start()]) >= _MIN_DIGITS:
        extension = match.group(1)
        text = text[: match.start()]
    digits = phone_digits(text)
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        return invalid
    for candidate, region in _candidates(text, digits, default_region):
        number = _try_parse(candidate, region)
        if number is None:
            continue
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        _remember(e164, number)
        return ParsedPhone(
            raw=token,
            e164=e164,
            extension=extension or (number.extension or ""),
            valid=True,
            region=phonenumbers.region_code_for_number(number),
        )
    return ParsedPhone(raw=token, e164=None, extension=extension, valid=False, region=None)


# The numbers parsed last, by E.164: saving a record asks its numbers' zone and national
# digits (``timezone_for_phone``, ``national_digits``) right after parsing them; an import
# parsed every number three times (~8 % of a chunk's time, py-spy). An import chunk's
# numbers (~2,000) fit many times over; a full memo is emptied and starts again.
_NUMBERS: dict[str, PhoneNumber] = {}
_NUMBERS_MAX = 20_000


def _remember(e164: str, number: PhoneNumber) -> None:
    if len(_NUMBERS) >= _NUMBERS_MAX:
        _NUMBERS.clear()
    _NUMBERS[e164] = number


def _number(e164: str) -> PhoneNumber:
    """``e164`` parsed (raises NumberParseException)."""
    number = _NUMBERS.get(e164)
    if number is None:
        number = phonenumbers.parse(e164, None)
        _remember(e164, number)
    return number


def parse_phones(text: str, *, default_region: str) -> list[ParsedPhone]:
    """Split a cell and parse every token, in order."""
    return [parse_phone(t, default_region=default_region) for t in split_phone_field(text)]


# Where a number's zone is ambiguous (a mobile roams the whole country), the zone most of
# the country's people live in; phonenumbers lists such zones alphabetically.
MAIN_ZONE = {
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "US": "America/New_York",
    "CA": "America/Toronto",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "MX": "America/Mexico_City",
    "ID": "Asia/Jakarta",
    "CN": "Asia/Shanghai",
    "AR": "America/Argentina/Buenos_Aires",
    "UA": "Europe/Kyiv",
    "UZ": "Asia/Tashkent",
    "MN": "Asia/Ulaanbaatar",
    "CL": "America/Santiago",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
}


def timezone_for_phone(e164: str) -> str | None:
    """The IANA time zone of a number: its own when the numbering plan pins one, else the
    main zone of the number's country; None when unknown."""
    from phonenumbers import timezone as pn_timezone

    try:
        number = _number(e164)
    except NumberParseException:
        return None
    zones = [z for z in pn_timezone.time_zones_for_number(number) if z and z != "Etc/Unknown"]
    if len(zones) == 1:
        return str(zones[0])
    if not zones:
        return None
    main = MAIN_ZONE.get(phonenumbers.region_code_for_number(number) or "")
    if main:
        return main
    return None  # several zones and no main one known: better none than a wrong clock


def search_phone_variants(query: str, *, default_region: str) -> list[str]:
    """Digit strings that match a stored phone however the query was typed.

    The E.164 digits (without "+") when the query parses, then the raw digits.
    """
    variants: list[str] = []
    parsed = parse_phone(query, default_region=default_region)
    if parsed.e164:
        variants.append(parsed.e164[1:])
    digits = phone_digits(query)
    if digits and digits not in variants:
        variants.append(digits)
    if len(digits) > 5 and digits[0] in "80" and digits[1:] not in variants:
        variants.append(digits[1:])  # a partial number typed with a national trunk prefix
    return variants


def national_digits(e164: str) -> str:
    """The national significant number of an E.164 phone ("+79123419615" -> "9123419615")."""
    try:
        number = _number(e164)
    except NumberParseException:
        return ""
    return str(number.national_number or "")


def phone_region(e164: str) -> str:
    """The country (ISO 3166 code) of a number in E.164; "" when unknown."""
    try:
        return phonenumbers.region_code_for_number(_number(e164)) or ""
    except NumberParseException:
        return ""
