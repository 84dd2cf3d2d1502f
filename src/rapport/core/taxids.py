"""Company tax id normalisation: Russian INN, Italian partita IVA, Azerbaijani VÖEN.

Pure Python, no Django.  Results carry a machine ``error_code`` that the caller
translates: ``None`` (valid), ``"empty"``, ``"not_digits"``, ``"length"``,
``"checksum"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TaxIdResult", "guess_tax_country", "normalize_tax_id"]


@dataclass(frozen=True)
class TaxIdResult:
    normalized: str
    valid: bool
    error_code: str | None  # None | "empty" | "not_digits" | "length" | "checksum"


_DIGIT_TABLE: dict[int, int] = {}
for _base in (0x0660, 0x06F0, 0xFF10):
    for _i in range(10):
        _DIGIT_TABLE[_base + _i] = ord("0") + _i

# Labels people type in front of the number ("ИНН 7707083893", "P.IVA IT01234567890",
# "VÖEN: 1234567890") and two-letter VAT country prefixes ("IT", "RU", "AZ").
_PREFIX_RE = re.compile(
    r"^(?:"
    r"инн|inn|voen|vöen|в[оö]ен"
    r"|p\.?\s*iva|partita\s+iva|vat(?:\s*(?:no|number|id))?\.?|tin|tax\s*id|ein"
    r"|[a-z]{2}(?=[\s.:#№-]*\d)"
    r")[\s.:#№-]*",
    re.IGNORECASE,
)
_SEPARATORS_RE = re.compile(r"[\s\-./_\u00a0\u2009\u202f]+")

_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)

_GENERIC_MIN, _GENERIC_MAX = 5, 20


def _clean(raw: str) -> str:
    text = raw.strip().translate(_DIGIT_TABLE)
    for _ in range(3):
        stripped = _PREFIX_RE.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _SEPARATORS_RE.sub("", text)


def _weighted_check(digits: str, weights: tuple[int, ...]) -> int:
    return sum(w * int(d) for w, d in zip(weights, digits, strict=False)) % 11 % 10


def _inn_ok(digits: str) -> bool:
    if len(digits) == 10:
        return _weighted_check(digits, _INN10_WEIGHTS) == int(digits[9])
    if len(digits) == 12:
        return _weighted_check(digits, _INN12_WEIGHTS_11) == int(digits[10]) and (
            _weighted_check(digits, _INN12_WEIGHTS_12) == int(digits[11])
        )
    return False


def _piva_ok(digits: str) -> bool:
    """Partita IVA: Luhn over the 11 digits."""
    if len(digits) != 11:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _checked(digits: str, *, ok: bool) -> TaxIdResult:
    return TaxIdResult(digits, True, None) if ok else TaxIdResult(digits, False, "checksum")


def guess_tax_country(digits: str) -> str | None:
    """Return "RU" for a valid INN, "IT" for a valid partita IVA, else None."""
    cleaned = _clean(digits) if isinstance(digits, str) else ""
    if not _is_ascii_digits(cleaned):
        return None
    if _inn_ok(cleaned):
        return "RU"
    if _piva_ok(cleaned):
        return "IT"
    return None


def normalize_tax_id(raw: str, *, country: str | None) -> TaxIdResult:
    """Digits of a tax id and whether they pass the country's rules.  Never raises."""
    cleaned = _clean(raw) if isinstance(raw, str) else ""
    if not cleaned:
        return TaxIdResult(normalized="", valid=False, error_code="empty")
    if not _is_ascii_digits(cleaned):
        return TaxIdResult(normalized=cleaned, valid=False, error_code="not_digits")
    code = (country or "").upper()
    if code == "RU":
        if len(cleaned) not in (10, 12):
            return TaxIdResult(cleaned, False, "length")
        return _checked(cleaned, ok=_inn_ok(cleaned))
    if code == "IT":
        if len(cleaned) != 11:
            return TaxIdResult(cleaned, False, "length")
        return _checked(cleaned, ok=_piva_ok(cleaned))
    if code == "AZ":
        if len(cleaned) != 10:
            return TaxIdResult(cleaned, False, "length")
        return TaxIdResult(cleaned, True, None)
    if not _GENERIC_MIN <= len(cleaned) <= _GENERIC_MAX:
        return TaxIdResult(cleaned, False, "length")
    return TaxIdResult(cleaned, True, None)


# The jurisdiction a legal form belongs to, when it belongs to one (an "LLC" may be
# written by a company of any country, so it is left out; Arabic forms are shared by
# several Gulf states and only say "not Russian, not Italian").
_FORM_COUNTRY = {
    **dict.fromkeys(("ООО", "ОАО", "ЗАО", "ПАО", "АО", "НАО", "ИП", "ГУП", "МУП", "АНО"), "RU"),
    **dict.fromkeys(("S.r.l.", "S.r.l.s.", "S.p.A.", "S.a.s.", "S.n.c.", "S.a.p.a."), "IT"),
    **dict.fromkeys(("MMC", "ASC", "QSC"), "AZ"),
    **dict.fromkeys(("Inc.", "Corp."), "US"),
    **dict.fromkeys(("ذ.م.م", "ش.م.م", "ش.م.ل", "ش.م.ع", "شركة", "مؤسسة"), "SA"),
}


def country_of_legal_form(form: str | None) -> str | None:
    """RU for ООО, IT for S.r.l., AZ for MMC …; None when the form says nothing."""
    return _FORM_COUNTRY.get(form or "")


def normalize_tax_id_for(
    raw: str, *, region: str | None, legal_form: str | None
) -> tuple[TaxIdResult, str]:
    """The tax id checked under the country it most likely belongs to, and that country.

    A number valid as an INN or a partita IVA is that; otherwise the region's rules
    apply, and when they refuse it, the rules of the company's legal form's country
    (an Azerbaijani "MMC" in a Russian file). The region's verdict is returned when
    nothing accepts it.
    """
    digits = _clean(raw) if isinstance(raw, str) else ""
    tried: list[str] = []
    for country in (guess_tax_country(digits), region, country_of_legal_form(legal_form)):
        if country and country.upper() not in tried:
            tried.append(country.upper())
    results = [(normalize_tax_id(raw, country=c or None), c) for c in tried or [""]]
    return next((r for r in results if r[0].valid), results[0])
