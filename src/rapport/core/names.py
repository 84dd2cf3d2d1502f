"""Person and company name normalisation for the duplicate guard.

Pure Python (no Django), fast enough to key a million records: a name becomes
sorted lowercase ASCII tokens with quotes, punctuation and legal forms
("ООО", "S.r.l.", "MMC", "ذ.م.م", ...) removed, so that "ООО «Ромашка»",
"Ромашка ООО" and "romashka llc" share one key.
"""

from __future__ import annotations

import re
from functools import lru_cache
from hashlib import blake2b
from itertools import permutations

from anyascii import anyascii
from rapidfuzz import fuzz

__all__ = [
    "LEGAL_FORMS",
    "name_block_keys",
    "name_key",
    "name_probe_keys",
    "key_similarity",
    "name_similarity",
    "name_tokens",
    "person_full_name",
    "recase",
    "split_full_name",
    "strip_legal_form",
]

# --------------------------------------------------------------------------- tokens

_APOSTROPHES = "'’‘ʼ`´"
_QUOTES = '«»"„“”‚‹›「」'
# Applied to a chunk (a word or a dotted abbreviation) before lookup.
_CHUNK_TABLE: dict[int, str | None] = {ord(c): None for c in _APOSTROPHES + "."}
_CHUNK_TABLE[ord("ё")] = "е"
_CHUNK_TABLE[0x0640] = None  # Arabic tatweel
for _mark in (0x200E, 0x200F, 0x200C, 0x200D, 0x061C):
    _CHUNK_TABLE[_mark] = None

_L = r"[^\W_]"
# A dotted abbreviation ("S.r.l.", "ذ.م.م", "I.I") or a word (apostrophes allowed inside).
_CHUNK_RE = re.compile(rf"(?<!{_L})(?:{_L}\.)+{_L}?(?!{_L})|{_L}+(?:[{_APOSTROPHES}]{_L}+)*")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
_QUOTES_RE = re.compile(f"[{_QUOTES}]")
_SPACES_RE = re.compile(r"\s+")


def _norm_chunk(chunk: str) -> str:
    return chunk.lower().translate(_CHUNK_TABLE)


# ---------------------------------------------------------------------- legal forms

# canonical form -> spellings; "generic" forms ("company") are reported only when
# nothing more specific was found.
_LEGAL_FORM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "ООО": ("ооо", "o.o.o."),
    "ОАО": ("оао",),
    "ЗАО": ("зао",),
    "ПАО": ("пао",),
    "АО": ("ао",),
    "НАО": ("нао",),
    "ИП": ("ип",),
    "ЧП": ("чп",),
    "ТОО": ("тоо",),
    "ОДО": ("одо",),
    "ГУП": ("гуп",),
    "МУП": ("муп",),
    "АНО": ("ано",),
    "НКО": ("нко",),
    "OOO": ("ooo",),
    "OAO": ("oao",),
    "ZAO": ("zao",),
    "PAO": ("pao",),
    "AO": ("ao",),
    "IP": ("ip",),
    "TOO": ("too",),
    "LLC": ("llc", "l.l.c."),
    "Inc.": ("inc", "incorporated"),
    "Ltd": ("ltd", "limited"),
    "Corp.": ("corp", "corporation"),
    "GmbH": ("gmbh",),
    "AG": ("ag",),
    "S.r.l.": ("srl", "s.r.l."),
    "S.r.l.s.": ("srls", "s.r.l.s."),
    "S.p.A.": ("spa", "s.p.a."),
    "S.a.s.": ("sas", "s.a.s."),
    "S.n.c.": ("snc", "s.n.c."),
    "S.a.p.a.": ("sapa", "s.a.p.a."),
    "S.A.": ("sa", "s.a."),
    "Coop.": ("coop", "scarl", "s.c.a.r.l."),
    "MMC": ("mmc", "ммс", "ммц"),
    "ASC": ("asc",),
    "QSC": ("qsc",),
    "OJSC": ("ojsc",),
    "CJSC": ("cjsc",),
    "PJSC": ("pjsc",),
    "JSC": ("jsc",),
    "PLC": ("plc",),
    "LP": ("lp",),
    "LLP": ("llp",),
    "B.V.": ("bv", "b.v."),
    "N.V.": ("nv", "n.v."),
    "ذ.م.م": ("ذ.م.م", "ش.ذ.م.م", "المحدودة", "محدودة", "م.م.ذ"),
    "ش.م.م": ("ش.م.م",),
    "ش.م.ل": ("ش.م.ل",),
    "ش.م.ع": ("ش.م.ع", "ش.م.ع.م", "ش.م.ب"),
}
_GENERIC_FORMS: dict[str, tuple[str, ...]] = {
    "Co.": ("co",),
    "Company": ("company",),
    "شركة": ("شركة", "شركه"),
    "مؤسسة": ("مؤسسة", "مؤسسه"),
}
# Multi-word forms, matched as whole token sequences at either end of the name.
_LEGAL_FORM_PHRASES: dict[str, tuple[str, ...]] = {
    "ООО": ("общество с ограниченной ответственностью",),
    "ПАО": ("публичное акционерное общество",),
    "АО": ("акционерное общество",),
    "ИП": ("индивидуальный предприниматель",),
    "LLC": ("limited liability company",),
    "S.r.l.": ("società a responsabilità limitata", "societa a responsabilita limitata"),
    "S.p.A.": ("società per azioni", "societa per azioni"),
    "MMC": ("məhdud məsuliyyətli cəmiyyət", "məhdud məsuliyyətli cəmiyyəti"),
    "ذ.م.م": ("ذات مسؤولية محدودة", "ذات المسؤولية المحدودة"),
    "Co.": ("and co", "& co"),
}


def _norm_phrase(text: str) -> tuple[str, ...]:
    return tuple(_norm_chunk(m.group(0)) for m in _CHUNK_RE.finditer(text))


_CANONICAL: dict[str, str] = {}
for _canon, _spellings in (*_LEGAL_FORM_SPELLINGS.items(), *_GENERIC_FORMS.items()):
    for _spelling in _spellings:
        for _tok in _norm_phrase(_spelling):
            _CANONICAL.setdefault(_tok, _canon)
_GENERIC_CANON = frozenset(_GENERIC_FORMS)

LEGAL_FORMS: frozenset[str] = frozenset(_CANONICAL)

_PHRASES: dict[tuple[str, ...], str] = {}
for _canon, _phrases in _LEGAL_FORM_PHRASES.items():
    for _phrase in _phrases:
        _PHRASES[_norm_phrase(_phrase)] = _canon
_PHRASE_LENGTHS = sorted({len(p) for p in _PHRASES}, reverse=True)


def _strip_ends(norms: list[str]) -> tuple[int, int, list[str]]:
    """Indices [i, j) of the chunks left after peeling legal forms off both ends.

    At least one chunk is always kept: a name made only of legal-form words is a name.
    """
    i, j = 0, len(norms)
    found: list[str] = []
    changed = True
    while changed and j - i > 1:
        changed = False
        for length in _PHRASE_LENGTHS:
            if j - i > length:
                head = _PHRASES.get(tuple(norms[i : i + length]))
                if head is not None:
                    found.append(head)
                    i += length
                    changed = True
                    break
                tail = _PHRASES.get(tuple(norms[j - length : j]))
                if tail is not None:
                    found.append(tail)
                    j -= length
                    changed = True
                    break
        if changed or j - i <= 1:
            continue
        canon = _CANONICAL.get(norms[i])
        if canon is not None:
            found.append(canon)
            i += 1
            changed = True
            continue
        canon = _CANONICAL.get(norms[j - 1])
        if canon is not None:
            found.append(canon)
            j -= 1
            changed = True
    return i, j, found


def _pick_form(found: list[str]) -> str | None:
    for form in found:
        if form not in _GENERIC_CANON:
            return form
    return found[0] if found else None


def strip_legal_form(name: str) -> tuple[str, str | None]:
    """``("Ромашка", "ООО")`` for "ООО «Ромашка»"; the name keeps its spelling otherwise."""
    if not name:
        return "", None
    chunks = list(_CHUNK_RE.finditer(name))
    if not chunks:
        return _SPACES_RE.sub(" ", _QUOTES_RE.sub(" ", name)).strip(), None
    norms = [_norm_chunk(m.group(0)) for m in chunks]
    i, j, found = _strip_ends(norms)
    core = name[chunks[i].start() : chunks[j - 1].end()]
    core = _SPACES_RE.sub(" ", _QUOTES_RE.sub(" ", core)).strip(" ,;:-–—")
    return core, _pick_form(found)


@lru_cache(maxsize=131072)
def _translit(token: str) -> tuple[str, ...]:
    """ASCII pieces of one normalised chunk (names repeat: the cache pays off)."""
    text = token if token.isascii() else anyascii(token).lower()
    return tuple(t for t in _NON_ALNUM_RE.split(text) if t)


def name_tokens(name: str) -> list[str]:
    """Sorted lowercase ASCII tokens, without quotes, punctuation and legal forms."""
    if not name:
        return []
    norms = [_norm_chunk(m) for m in _CHUNK_RE.findall(name)]
    if not norms:
        return []
    i, j, _found = _strip_ends(norms)
    tokens: list[str] = []
    for norm in norms[i:j]:
        tokens.extend(_translit(norm))
    tokens.sort()
    return tokens


@lru_cache(maxsize=8192)
def name_key(name: str) -> str:
    """Comparison key: equal for "ООО «Ромашка»", "Ромашка ООО" and "romashka llc".
    Remembered for the last few thousand names: an import asks for a row's several times
    (its candidates, its decision, the record it stages)."""
    return " ".join(name_tokens(name))


_MAX_PERMUTED_TOKENS = 4


def name_similarity(a: str, b: str) -> int:
    """0..100: order-insensitive, case/script-insensitive, typo-tolerant."""
    return key_similarity(name_key(a), name_key(b))


def key_similarity(ka: str, kb: str) -> int:
    """``name_similarity`` of two names already turned into keys (``name_key``): a batch
    comparing one name with many stored keys normalises each name once, not per pair."""
    if not ka or not kb:
        return 0
    if ka == kb:
        return 100
    ta, tb = ka.split(" "), kb.split(" ")
    best = fuzz.ratio(ka, kb)
    # A typo can move a token in the sorted order ("maria rossi" / "bossi maria"):
    # try the other orders of short names.
    if len(tb) <= _MAX_PERMUTED_TOKENS:
        for perm in permutations(tb):
            best = max(best, fuzz.ratio(ka, " ".join(perm)))
    # "Иванов Иван Иванович" vs "Иванов Иван": every word of the shorter is in the longer.
    small, large = (set(ta), set(tb)) if len(ta) <= len(tb) else (set(tb), set(ta))
    if len(small) >= 2 and small <= large:
        best = max(best, 90.0)
    return round(best)


# -------------------------------------------------------------------- blocking keys
#
# The duplicate guard cannot compare a name with a million stored ones: it looks up a
# few exact keys (a B-tree on both databases) and compares only the records sharing one.
# A stored record keeps the keys of its ``name_key``; a lookup computes the keys its
# stored duplicates would have:
#
# - the whole key ("F"), and with three words or more, the key without each word ("S"):
#   the same name, a name with a word more or less (a patronymic);
# - for one typo, the other words whole with a half of the misspelt one. One typo (a
#   letter changed, added, dropped, or two swapped) leaves one half of a word as it was;
#   the lookup tries the splits of the lengths one letter shorter and longer, and the
#   swap across the split. A word of up to 3 letters is keyed whole and with each letter
#   dropped instead. Whole words with it, so that a common word ("ivan", or "yana" of
#   "Tat'yana") does not pull in everyone who has it.
#
# A typo together with a missing word cannot reach the similarity threshold anyway.

_BLOCK_TOKENS = 5  # the longest tokens of a long name are keyed
_SHORT_TOKEN = 3


def _block_tokens(key: str) -> list[str]:
    tokens = sorted(set(key.split()))
    if len(tokens) > _BLOCK_TOKENS:
        tokens = sorted(sorted(tokens, key=lambda t: (-len(t), t))[:_BLOCK_TOKENS])
    return tokens


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1 :] for i in range(len(token))}


def _stored_parts(token: str) -> set[str]:
    if len(token) <= _SHORT_TOKEN:
        return {"~" + token, *("~" + d for d in _deletions(token))}
    half = len(token) // 2
    return {"<" + token[:half], ">" + token[half:]}


def _probe_parts(token: str) -> set[str]:
    """The parts a stored token one typo away from ``token`` may have."""
    n = len(token)
    out: set[str] = set()
    if n <= _SHORT_TOKEN + 1:
        out.add("~" + token)
        out.update("~" + d for d in _deletions(token))
    for length in (n - 1, n, n + 1):
        if length > _SHORT_TOKEN:
            half = length // 2
            out.add("<" + token[:half])
            out.add(">" + token[n - (length - half) :])
    if n > _SHORT_TOKEN:
        half = n // 2
        swapped = token[: half - 1] + token[half] + token[half - 1] + token[half + 1 :]
        out.add("<" + swapped[:half])
        out.add(">" + swapped[half:])
    return out


def _without(tokens: list[str], i: int) -> str:
    return " ".join(tokens[:i] + tokens[i + 1 :])


def _hash(word: str, part: str) -> int:
    digest = blake2b(f"{word} {part}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@lru_cache(maxsize=4096)
def name_block_keys(key: str) -> tuple[int, ...]:
    """The blocking keys stored for a record whose ``name_key`` is ``key`` (64-bit ints).
    Remembered for the last few thousand names: a batch asks for a new record's keys when
    it is staged and again when it is written."""
    tokens = _block_tokens(key)
    if not tokens:
        return ()
    pairs = {("F", " ".join(tokens))}
    if len(tokens) >= 3:
        pairs.update(("S", _without(tokens, i)) for i in range(len(tokens)))
    for i, token in enumerate(tokens):
        pairs.update((_without(tokens, i), p) for p in _stored_parts(token))
    return tuple(sorted({_hash(w, p) for w, p in pairs}))


@lru_cache(maxsize=4096)
def name_probe_keys(key: str) -> tuple[int, ...]:
    """The keys under which records one typo, a word or a word order away are stored."""
    tokens = _block_tokens(key)
    if not tokens:
        return ()
    whole = " ".join(tokens)
    pairs = {("F", whole), ("S", whole)}
    if len(tokens) >= 3:
        pairs.update(("F", _without(tokens, i)) for i in range(len(tokens)))
    for i, token in enumerate(tokens):
        pairs.update((_without(tokens, i), p) for p in _probe_parts(token))
    return tuple(sorted({_hash(w, p) for w, p in pairs}))


# ---------------------------------------------------------------------- person names

_PARTICLES = frozenset(
    {
        "de", "da", "di", "do", "du", "del", "della", "delle", "dei", "degli", "dal", "dalla",
        "des", "dos", "das", "van", "von", "der", "den", "ter", "la", "le", "lo",
        "bin", "ibn", "bint", "al", "el", "ul",
    }
)  # fmt: skip
_HYPHEN_PARTICLES = frozenset({"al", "el", "ad", "ar", "as", "ash", "at", "az", "an", "ed", "es"})
_PATRONYMIC_WORDS = frozenset(
    {"oğlu", "oglu", "ogly", "oğly", "qızı", "qizi", "kyzy", "kizi", "оглы", "оглу", "кызы", "гызы"}
)
_PATRONYMIC_ENDINGS = (
    "ович", "евич", "ьич", "ична", "овна", "евна", "инична",
    "ovich", "evich", "ovna", "evna", "ichna", "ovych", "ovitch", "evitch",
    "оглы", "кызы",
)  # fmt: skip
_SURNAME_ENDINGS = (
    "ов", "ев", "ёв", "ова", "ева", "ёва", "ский", "ская", "цкий", "цкая", "ских", "ых",
    "енко", "ук", "юк", "заде",
    "ov", "ev", "ova", "eva", "yev", "yeva", "sky", "skiy", "skii", "skaya", "ski", "ska",
    "enko", "chuk", "zade", "zadeh", "dze", "shvili",
)  # fmt: skip
_LONG_SURNAME_ENDINGS = ("li", "lı", "lu", "lü", "yan", "ян")  # only on longer words
_NOT_SURNAMES = frozenset({"яков", "лев", "yakov", "lev", "iakov"})


_TURKIC_LETTERS = frozenset("İıƏəĞğŞş")
_TURKIC_LOWER = str.maketrans({"I": "ı", "İ": "i"})
_APOSTROPHE_SPLIT_RE = re.compile(f"([{_APOSTROPHES}])")


def _upper_first(text: str, *, turkic: bool = False) -> str:
    head = text[:1]
    if turkic and head == "i":
        return "İ" + text[1:]
    return head.upper() + text[1:]


def _recase_word(word: str) -> str:
    turkic = not _TURKIC_LETTERS.isdisjoint(word)
    lowered = word.translate(_TURKIC_LOWER).lower() if turkic else word.lower()
    parts = lowered.split("-")
    out: list[str] = []
    for index, part in enumerate(parts):
        if index < len(parts) - 1 and part in _HYPHEN_PARTICLES:
            out.append(part)
            continue
        pieces = _APOSTROPHE_SPLIT_RE.split(part)
        rebuilt = _upper_first(pieces[0], turkic=turkic)
        for k in range(1, len(pieces) - 1, 2):
            rest = pieces[k + 1]
            if len(pieces[k - 1]) == 1:
                rest = _upper_first(rest, turkic=turkic)
            rebuilt += pieces[k] + rest
        out.append(rebuilt)
    return "-".join(out)


def _needs_recase(word: str) -> bool:
    has_upper = has_lower = False
    for char in word:
        if char.isupper():
            has_upper = True
        elif char.islower():
            has_lower = True
    return not (has_upper and has_lower)


def recase(name: str) -> str:
    """Re-case words typed all upper or all lower case.

    "IVANOV" -> "Ivanov", "o'neil" -> "O'Neil"; mixed case ("McDonald") is kept as typed.
    """
    words = name.split()
    out: list[str] = []
    for index, word in enumerate(words):
        if not _needs_recase(word):
            out.append(word)
        elif word.lower() in _PATRONYMIC_WORDS or (
            index < len(words) - 1 and word.lower() in _PARTICLES
        ):
            out.append(word.lower())
        else:
            out.append(_recase_word(word))
    return " ".join(out)


def person_full_name(*, first: str, last: str, middle: str = "") -> str:
    """Join as "First Middle Last", blanks skipped, spaces collapsed."""
    return " ".join(" ".join((first, middle, last)).split())


def _is_patronymic(unit: str) -> bool:
    low = unit.lower()
    last_word = low.rsplit(" ", 1)[-1]
    return last_word in _PATRONYMIC_WORDS or low.endswith(_PATRONYMIC_ENDINGS)


def _is_surname(unit: str) -> bool:
    low = unit.lower().replace("ё", "е")
    if low in _NOT_SURNAMES or len(low) < 4:
        return False
    if low.endswith(_SURNAME_ENDINGS):
        return True
    return len(low) >= 6 and low.endswith(_LONG_SURNAME_ENDINGS)


def _units(words: list[str]) -> list[str]:
    """Glue particles to the next word ("de la Cruz") and "oğlu"/"qızı" to the previous."""
    units: list[str] = []
    pending: list[str] = []
    for index, word in enumerate(words):
        low = word.lower()
        if low in _PATRONYMIC_WORDS and (units or pending):
            if pending:
                units.append(" ".join(pending))
                pending = []
            units[-1] = f"{units[-1]} {word}"
            continue
        if low in _PARTICLES and index < len(words) - 1:
            pending.append(word)
            continue
        units.append(" ".join([*pending, word]))
        pending = []
    if pending:
        units.append(" ".join(pending))
    return units


_EASTERN_ORDER_HINTS = frozenset({"ru", "az", "kk", "uz", "be", "uk", "ky", "tg", "tk", "hu"})


def split_full_name(full: str, *, locale_hint: str | None = None) -> tuple[str, str, str]:
    """Split a full name into ``(first, last, middle)``.

    Knows the Russian order "Иванов Иван Иванович" (by the patronymic), the
    Azerbaijani "Məmmədov Əli Həsən oğlu", "Ivan Ivanov" and "IVANOV IVAN"
    (re-cased, surname recognised by its ending), and "Ivanov, Ivan".
    """
    text = " ".join(full.split()) if full else ""
    if not text:
        return "", "", ""
    if text.count(",") == 1:
        before, after = (part.strip() for part in text.split(","))
        if before and after:
            rest = recase(after).split()
            return rest[0], recase(before), " ".join(rest[1:])
        text = before or after
    units = _units(recase(text.replace(",", " ")).split())
    count = len(units)
    if count == 0:
        return "", "", ""
    if count == 1:
        return units[0], "", ""
    patronymic = next((k for k in range(1, count) if _is_patronymic(units[k])), None)
    if patronymic is not None:
        if patronymic == count - 1:
            if count == 2:
                return units[0], "", units[1]
            # "Last First Patronymic"
            return " ".join(units[1:patronymic]), units[0], units[patronymic]
        # "First Patronymic Last"
        return " ".join(units[:patronymic]), " ".join(units[patronymic + 1 :]), units[patronymic]
    hint = (locale_hint or "").lower()[:2]
    first_is_surname = _is_surname(units[0])
    last_is_surname = _is_surname(units[-1])
    surname_first = first_is_surname and not last_is_surname
    if not surname_first and count == 2 and first_is_surname and last_is_surname:
        surname_first = hint in _EASTERN_ORDER_HINTS  # "Петров Иванов": trust the locale
    if surname_first:
        return units[1], units[0], " ".join(units[2:])
    return units[0], units[-1], " ".join(units[1:-1])
