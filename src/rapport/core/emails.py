"""Email normalisation: trim, lowercase, validate.  Pure Python, no Django."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ParsedEmail", "normalize_email", "split_email_field"]


@dataclass(frozen=True)
class ParsedEmail:
    raw: str
    normalized: str
    valid: bool


_LOCAL_RE = re.compile(r"^[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*$")
_ASCII_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD_RE = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_ANGLE_RE = re.compile(r"<([^<>]*)>")
_MAILTO_RE = re.compile(r"^\s*mailto:\s*", re.IGNORECASE)
_INVISIBLE = dict.fromkeys(
    (0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF, 0x2060, *range(0x202A, 0x202F)), None
)

_MAX_LENGTH = 254


def _clean(raw: str) -> str:
    text = raw.translate(_INVISIBLE).strip()
    match = _ANGLE_RE.search(text)
    if match:  # "Ivan <ivan@example.com>" or "<ivan@example.com>"
        text = match.group(1)
    without_scheme = _MAILTO_RE.sub("", text.strip())
    if without_scheme != text.strip():  # "mailto:a@b.c?subject=Hi"
        without_scheme = without_scheme.split("?", 1)[0]
    text = without_scheme
    return text.strip().strip("<>").strip().rstrip(".").lower()


def _domain_ok(domain: str) -> bool:
    if not domain or len(domain) > 253:
        return False
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return False
    labels = ascii_domain.lower().split(".")
    if len(labels) < 2:
        return False
    if not all(_ASCII_LABEL_RE.match(label) for label in labels):
        return False
    return bool(_TLD_RE.match(labels[-1]))


def _is_valid(address: str) -> bool:
    if len(address) > _MAX_LENGTH or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not local or len(local) > 64 or not _LOCAL_RE.match(local):
        return False
    return _domain_ok(domain)


def normalize_email(raw: str) -> ParsedEmail:
    """Trim, drop "mailto:" and <>, lowercase, validate.  Never raises."""
    text = raw if isinstance(raw, str) else ""
    normalized = _clean(text)
    return ParsedEmail(raw=text.strip(), normalized=normalized, valid=_is_valid(normalized))


_FIELD_SPLIT_RE = re.compile(r"[,;\n\r\t|]+")
_SPACES_RE = re.compile(r"\s+")


def split_email_field(text: str) -> list[str]:
    """Split a cell holding several addresses on , ; | tab, line breaks, and on
    whitespace between bare addresses.  Empty pieces are dropped, nothing else."""
    if not text:
        return []
    tokens: list[str] = []
    for piece in _FIELD_SPLIT_RE.split(text):
        piece = piece.strip()
        if not piece:
            continue
        words = piece.split()
        if piece.count("@") > 1 and "<" not in piece and all("@" in w for w in words):
            tokens.extend(words)
        else:
            tokens.append(_SPACES_RE.sub(" ", piece))
    return tokens
