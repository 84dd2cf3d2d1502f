"""Bench data at scale: teams, managers, companies, people, contact points, search documents.

Rows go in with explicit ids in batches (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), one transaction per batch, so a million people take minutes. The
search documents carry the same body the services build (``search_body`` with the
same arguments as ``_company_reindex`` / ``_person_reindex``); on SQLite the FTS5
index is filled by the schema's own triggers, which stay in place.

Audit entries and outbox events are not written: bench data stands for records
that already exist, not for user writes.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from anyascii import anyascii
from django.db import connection, transaction
from django.db.models import Model

from rapport.accounts.models import ApiToken, Role, Team, User, default_permissions
from rapport.core.models import SearchDocument
from rapport.core.names import name_block_keys, name_key
from rapport.core.search import search_body
from rapport.parties.models import (
    Company,
    CompanyNameKey,
    ContactPoint,
    Employment,
    Person,
    PersonNameKey,
)

BENCH_USER = "bench"
BENCH_PASSWORD = "bench-Pa55word!"  # noqa: S105 - a throwaway user of a throwaway database
SOURCE = "bench"
BATCH = 10_000

# --------------------------------------------------------------------------- names


def _split(text: str) -> list[str]:
    return text.split()


RU_MALE = _split(
    "Александр Алексей Андрей Антон Артём Борис Вадим Валентин Валерий Василий Виктор Виталий "
    "Владимир Владислав Вячеслав Геннадий Георгий Григорий Дмитрий Евгений Егор Иван Игорь Илья "
    "Кирилл Константин Лев Леонид Максим Марк Михаил Никита Николай Олег Павел Пётр Роман Руслан "
    "Семён Сергей Станислав Степан Тимофей Фёдор Юрий Ярослав"
)
RU_FEMALE = _split(
    "Александра Алина Алла Анастасия Анна Валентина Валерия Вера Виктория Галина Дарья Евгения "
    "Екатерина Елена Елизавета Жанна Зинаида Ирина Карина Кира Ксения Лариса Любовь Людмила "
    "Маргарита Марина Мария Надежда Наталья Нина Оксана Ольга Полина Светлана София Татьяна "
    "Ульяна Юлия Яна"
)
RU_LAST = _split(
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев Макаров "
    "Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев Кузьмин "
    "Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин Виноградов "
    "Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов Беляев "
    "Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов "
    "Карпов Власов Мельников "
    "Денисов Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов "
    "Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов Родионов "
    "Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов "
    "Потапов Журавлёв Овчинников Трофимов Леонов Соболев Ермаков Колесников Гончаров Емельянов "
    "Никифоров Грачёв Котов Гришин Ефремов Архипов Громов Кириллов Малышев Панов Моисеев Румянцев "
    "Акимов Кондратьев Бирюков Горбунов Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов "
    "Юдин Белоусов Нестеров Симонов Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронов "
    "Аксёнов Софронов Мальцев Логинов Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков "
    "Сафонов Плотников Дёмин Хохлов Жданов Носков Зуев Третьяков Лаврентьев Маринин Шубин "
    "Островский Вишневский Ковальский Соколовский Даниловский"
)
EN_MALE = _split(
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel "
    "Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy "
    "Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott"
)
EN_FEMALE = _split(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty "
    "Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah "
    "Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma"
)
EN_LAST = _split(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez O'Brien O'Neil McDonald"
)
IT_MALE = _split(
    "Alessandro Andrea Antonio Davide Emanuele Federico Francesco Gabriele Giacomo Giovanni "
    "Giuseppe Leonardo Lorenzo Luca Marco Matteo Mattia Nicola Paolo Pietro Riccardo Roberto "
    "Salvatore Simone Stefano Tommaso Vincenzo"
)
IT_FEMALE = _split(
    "Alessandra Alice Anna Aurora Beatrice Chiara Elena Elisa Federica Francesca Gaia Giorgia "
    "Giulia Ilaria Laura Lucia Martina Paola Sara Silvia Sofia Valentina Veronica"
)
IT_LAST = _split(
    "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti "
    "De Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani "
    "Rinaldi Caruso Ferrara Galli Martini Leone Longo Gentile Martinelli Vitale Lombardo Serra "
    "Coppola De Santis D'Angelo Marchetti Parisi Villa Conte Ferraro Ferri Fabbri Bianco Marini "
    "Grasso Valentini Messina Sala De Angelis Gatti Pellegrini Palumbo Sanna Farina Rizzi Monti "
    "Cattaneo Morelli Amato Silvestri Mazza Testa Grassi Pellegrino Carbone Giuliani Benedetti"
)
AZ_MALE = _split(
    "Əli Hüseyn Məhəmməd Rəşad Elçin Elnur Orxan Tural Kamran Ramil Rövşən Samir Vüqar Zaur "
    "Fuad Fərid İlham Nicat Murad Emin Cavid Ruslan Əkbər Teymur Şahin Vəli Nurlan Anar Aydın"
)
AZ_FEMALE = _split(
    "Aynur Aysel Günay Leyla Nigar Səbinə Lalə Könül Sevinc Türkan Nərmin Aygün Gülnar Zəhra "
    "Fidan Nərgiz Ülviyyə Şəbnəm Vüsalə Xədicə Mehriban Arzu Nailə"
)
AZ_LAST = _split(
    "Məmmədov Əliyev Həsənov Hüseynov Quliyev İsmayılov Abbasov Rzayev Cəfərov Nəsirov Kərimov "
    "Orucov Babayev Qasımov Mustafayev Süleymanov Əhmədov Musayev Vəliyev Rəhimov İbrahimov "
    "Sadıqov Novruzov Bağırov Şükürov Tağıyev Zeynalov Hacıyev Allahverdiyev Məlikov Əsgərov "
    "Axundov Nağıyev Salmanov Qurbanov Yusifov Paşayev Heydərov Mirzəyev Səfərov"
)
RU_PATRONYMIC_BASE = _split(
    "Александр Алексей Андрей Борис Виктор Владимир Дмитрий Евгений Иван Игорь Михаил Николай "
    "Олег Павел Пётр Сергей Юрий"
)

LOCALES = ("ru", "en", "it", "az")
LOCALE_WEIGHTS = (50, 20, 15, 15)
FIRST = {
    "ru": (RU_MALE, RU_FEMALE),
    "en": (EN_MALE, EN_FEMALE),
    "it": (IT_MALE, IT_FEMALE),
    "az": (AZ_MALE, AZ_FEMALE),
}
LAST = {"ru": RU_LAST, "en": EN_LAST, "it": IT_LAST, "az": AZ_LAST}
ALL_LAST_NAMES: list[str] = [n for names in LAST.values() for n in names]

COMPANY_WORDS = {
    "ru": _split(
        "Альфа Бета Вектор Гранит Дельта Заря Импульс Кристалл Лидер Магистраль Нева Орион "
        "Прогресс Ресурс Север Сигма Сфера Техно Транс Урал Феникс Форум Энергия Эталон Янтарь "
        "Байкал Волга Меридиан Альянс Стройка Пром Инвест Логистик Капитал Ромашка Сокол"
    ),
    "en": _split(
        "Acme Apex Atlas Blue Bright Cedar Core Delta Eagle Evergreen First Global Golden "
        "Harbor Horizon Iron Liberty Lion Maple Nova Oak Pacific Pioneer Prime Quantum Red "
        "River Silver Star Summit Sun United Vertex Vision West Zenith"
    ),
    "it": _split(
        "Adriatica Alpina Arte Aurora Bella Casa Cielo Colli Dolce Edil Ferro Fiore Garda "
        "Italia Lago Luce Mare Monte Nuova Oro Padana Ponte Primavera Roma Sole Stella Terra "
        "Toscana Valle Vento Verde Vita"
    ),
    "az": _split(
        "Abşeron Araz Azər Bakı Qafqaz Xəzər Kür Gəncə Şirvan Naxçıvan Qarabağ Odlar Günəş "
        "Ulduz Dəniz İnşaat Neft Kapital Texnika Aqro Ləzzət Sahil Yurd Şəfəq Mərkəz"
    ),
}
LEGAL_FORM = {"ru": "ООО", "en": "LLC", "it": "S.r.l.", "az": "MMC"}
COUNTRY = {"ru": "RU", "en": "US", "it": "IT", "az": "AZ"}
CITIES = {
    "ru": ("Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Самара"),
    "en": ("New York", "Chicago", "Boston", "Seattle", "San Francisco", "Austin"),
    "it": ("Roma", "Milano", "Torino", "Napoli", "Bologna", "Firenze"),
    "az": ("Bakı", "Gəncə", "Sumqayıt", "Şəki", "Lənkəran"),
}
TIME_ZONE = {
    "ru": "Europe/Moscow",
    "en": "America/New_York",
    "it": "Europe/Rome",
    "az": "Asia/Baku",
}
INDUSTRIES = (
    "retail",
    "construction",
    "logistics",
    "manufacturing",
    "IT",
    "food",
    "energy",
    "finance",
    "agriculture",
    "healthcare",
)
POSITIONS = (
    "Director",
    "CEO",
    "Sales manager",
    "Purchasing manager",
    "Accountant",
    "Lawyer",
    "Engineer",
    "Office manager",
    "Marketing manager",
    "Logistics manager",
)
ROLES = ("director", "chief_accountant", "lawyer", "purchaser", "other")
EMAIL_DOMAINS = {
    "ru": ("mail.ru", "yandex.ru", "gmail.com"),
    "en": ("gmail.com", "outlook.com"),
    "it": ("libero.it", "gmail.com", "virgilio.it"),
    "az": ("mail.az", "gmail.com"),
}
SYLLABLES = (
    "ka",
    "ro",
    "vin",
    "del",
    "mar",
    "to",
    "zu",
    "bel",
    "tor",
    "sa",
    "lin",
    "gor",
    "mi",
    "nes",
    "bra",
    "quo",
    "dra",
    "ven",
)


def _female_ru(last: str) -> str:
    if last.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return last + "а"
    if last.endswith("ский"):
        return last[:-2] + "ая"
    return last


def _female_az(last: str) -> str:
    return last[:-2] + "ova" if last.endswith("ov") else last + "a"


def _patronymic(rng: random.Random, female: bool) -> str:
    base = rng.choice(RU_PATRONYMIC_BASE).replace("ё", "е")
    if base.endswith(("й", "ь")):
        stem, male, fem = base[:-1], "евич", "евна"
    else:
        stem, male, fem = base, "ович", "овна"
    if base == "Пётр":
        stem = "Петр"
    return stem + (fem if female else male)


def person_name(rng: random.Random, locale: str) -> tuple[str, str, str]:
    """(first, last, middle) in the locale's spelling."""
    female = rng.random() < 0.5
    first = rng.choice(FIRST[locale][1 if female else 0])
    last = rng.choice(LAST[locale])
    middle = ""
    if locale == "ru":
        if female:
            last = _female_ru(last)
        if rng.random() < 0.6:
            middle = _patronymic(rng, female)
    elif locale == "az" and female:
        last = last[:-2] + "ova" if last.endswith("ov") else last
    return first, last, middle


def new_surname(rng: random.Random) -> str:
    """A surname that is in none of the lists: the create scenario's people are new."""
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize() + rng.choice(
        ("ski", "ov", "ani")
    )


# --------------------------------------------------------------------------- phones

US_AREAS = (
    "212",
    "213",
    "305",
    "312",
    "404",
    "415",
    "503",
    "512",
    "617",
    "646",
    "702",
    "713",
    "718",
    "206",
    "303",
)
AZ_MOBILE = ("50", "51", "55", "70", "77", "99", "10")
RU_MOBILE = (
    "900",
    "901",
    "903",
    "905",
    "906",
    "909",
    "910",
    "912",
    "915",
    "916",
    "917",
    "919",
    "920",
    "921",
    "925",
    "926",
    "929",
    "950",
    "960",
    "977",
    "985",
    "999",
)


def phone(rng: random.Random, country: str) -> tuple[str, str]:
    """(E.164, as typed) for a valid mobile number of ``country``."""
    if country == "RU":
        code, b, c = rng.choice(RU_MOBILE), rng.randrange(100), rng.randrange(100)
        n3 = f"{rng.randrange(200, 1000):03d}"
        e164 = f"+7{code}{n3}{b:02d}{c:02d}"
        raw = (
            f"+7 {code} {n3}-{b:02d}-{c:02d}"
            if rng.random() < 0.5
            else f"8 ({code}) {n3}-{b:02d}-{c:02d}"
        )
        return e164, raw
    if country == "IT":
        prefix = f"3{rng.choice('234567')}{rng.randrange(10)}"
        rest = f"{rng.randrange(10**7):07d}"
        return f"+39{prefix}{rest}", f"+39 {prefix} {rest[:3]} {rest[3:]}"
    if country == "AZ":
        op = rng.choice(AZ_MOBILE)
        rest = f"{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
        return f"+994{op}{rest}", f"+994 {op} {rest[:3]} {rest[3:5]} {rest[5:]}"
    area = rng.choice(US_AREAS)
    exch = f"{rng.randrange(2, 10)}{rng.randrange(10)}{rng.randrange(10)}"
    if exch[1:] == "11":
        exch = exch[0] + "12"
    line = f"{rng.randrange(10**4):04d}"
    return f"+1{area}{exch}{line}", f"+1 ({area}) {exch}-{line}"


def check_phones(samples: int = 2000) -> None:
    """Fail loudly if the generator makes numbers phonenumbers would call invalid."""
    from rapport.core.phones import parse_phone

    rng = random.Random(1)
    for country in ("RU", "IT", "AZ", "US"):
        for _ in range(samples // 4):
            e164, raw = phone(rng, country)
            parsed = parse_phone(raw, default_region=country)
            if not parsed.valid or parsed.e164 != e164:
                raise RuntimeError(f"generator made an invalid {country} phone {raw!r} -> {parsed}")


# --------------------------------------------------------------------------- tax ids


def _inn10(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(9)]
    digits[0] = rng.randrange(1, 10)
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11 % 10
    return "".join(map(str, digits)) + str(check)


def _piva(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(10)]
    total = 0
    for index, value in enumerate(reversed(digits)):
        v = value * 2 if index % 2 == 0 else value  # the check digit will sit at index 0
        total += v - 9 if v > 9 else v
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def tax_id(rng: random.Random, country: str) -> str:
    if country == "RU":
        return _inn10(rng)
    if country == "IT":
        return _piva(rng)
    if country == "AZ":
        return f"{rng.randrange(10**8, 10**9)}{rng.choice('12')}"
    return f"{rng.randrange(10**8, 10**9)}"


# --------------------------------------------------------------------------- writing


class Writer:
    """Inserts tuples into a table with explicit ids: executemany (SQLite) or COPY (PostgreSQL)."""

    def __init__(self, model: type[Model], columns: Sequence[str]) -> None:
        self.table = model._meta.db_table
        self.columns = list(columns)
        self.vendor = connection.vendor
        known = {f.column for f in model._meta.concrete_fields}
        missing = [c for c in self.columns if c not in known]
        if missing:
            raise RuntimeError(f"{self.table} has no columns {missing}")
        required = {
            f.column
            for f in model._meta.concrete_fields
            if not f.null
            and not f.has_default()
            and f.column != "id"
            and not getattr(f, "auto_now", False)
            and not getattr(f, "auto_now_add", False)
            and not getattr(f, "blank", False)
        }
        if required - set(self.columns):
            raise RuntimeError(
                f"{self.table}: columns without a value: {required - set(self.columns)}"
            )
        cols = ", ".join(self.columns)
        marks = ", ".join(["%s"] * len(self.columns))
        self.insert_sql = f"INSERT INTO {self.table} ({cols}) VALUES ({marks})"
        self.copy_sql = f"COPY {self.table} ({cols}) FROM STDIN"
        self.rows = 0

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.vendor == "postgresql":
            raw = connection.connection
            assert raw is not None  # noqa: S101 - opened by ensure_connection
            with raw.cursor() as cur, cur.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            with connection.cursor() as cur:
                cur.executemany(self.insert_sql, rows)
        self.rows += len(rows)


def _next_id(model: type[Model]) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {model._meta.db_table}")
        return int(cur.fetchone()[0]) + 1


def _fix_sequences(models: Iterable[type[Model]]) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cur:
        for model in models:
            table = model._meta.db_table
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )


PARTY_COMMON = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "custom_fields",
    "responsible_id",
    "team_id",
    "created_by_id",
    "source",
    "notes",
    "name_key",
)
COMPANY_COLS = (
    *PARTY_COMMON,
    "entity_type",
    "short_name",
    "full_name",
    "legal_form",
    "tax_id",
    "tax_country",
    "registration_number",
    "kinds_text",
    "industry",
    "website",
    "legal_address",
    "postal_address",
    "country",
    "city",
    "client_since",
)
PERSON_COLS = (
    *PARTY_COMMON,
    "first_name",
    "last_name",
    "middle_name",
    "birthday",
    "time_zone",
    "time_zone_manual",
    "city",
    "address",
)
CP_COLS = (
    "id",
    "created_at",
    "updated_at",
    "person_id",
    "company_id",
    "channel",
    "kind",
    "raw",
    "value",
    "extension",
    "valid",
    "is_primary",
    "position",
)
EMP_COLS = (
    "id",
    "created_at",
    "updated_at",
    "person_id",
    "company_id",
    "position",
    "role",
    "is_current",
)
DOC_COLS = (
    "id",
    "object_type",
    "object_id",
    "title",
    "subtitle",
    "body",
    "team_id",
    "responsible_id",
    "deleted",
)


class Progress:
    def __init__(self, label: str, total: int, out: Callable[[str], None]) -> None:
        self.label, self.total, self.out = label, total, out
        self.start = time.perf_counter()
        self.last = 0.0

    def tick(self, done: int, rows: int) -> None:
        now = time.perf_counter()
        if now - self.last < 5 and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        self.out(
            f"  {self.label}: {done:,}/{self.total:,} ({rows / elapsed:,.0f} rows/s, "
            f"{elapsed:,.0f} s)"
        )


def setup_org(out: Callable[[str], None], managers: int = 50) -> dict[str, Any]:
    """5 teams in a tree, ``managers`` users who see all, the admin "bench" and its token."""
    from rapport.accounts.services import api_token_create

    with transaction.atomic():
        role, _ = Role.objects.get_or_create(
            name="Bench manager", defaults={"permissions": default_permissions("all", "all")}
        )
        teams = list(Team.objects.filter(name__startswith="Bench ").order_by("id"))
        if not teams:
            org = Team.objects.create(name="Bench HQ", kind=Team.Kind.ORGANISATION)
            org.path = f"/{org.pk}/"
            org.save(update_fields=["path"])
            teams = [org]
            for office, parent in (("Bench Moscow", org), ("Bench Milan", org)):
                t = Team.objects.create(name=office, kind=Team.Kind.OFFICE, parent=parent)
                t.path = f"{parent.path}{t.pk}/"
                t.save(update_fields=["path"])
                teams.append(t)
            for dep, parent in (("Bench Moscow sales", teams[1]), ("Bench Milan sales", teams[2])):
                t = Team.objects.create(name=dep, kind=Team.Kind.DEPARTMENT, parent=parent)
                t.path = f"{parent.path}{t.pk}/"
                t.save(update_fields=["path"])
                teams.append(t)
        existing = User.objects.filter(username__startswith="manager").count()
        for i in range(existing, managers):
            locale = LOCALES[i % 4]
            first, last, _m = person_name(random.Random(i), locale)
            u = User(
                username=f"manager{i:02d}",
                first_name=first,
                last_name=last,
                email=f"manager{i:02d}@bench.example",
                team=teams[1 + i % 4],
                role=role,
            )
            u.set_unusable_password()
            u.save()
        admin = User.objects.filter(username=BENCH_USER).first()
        if admin is None:
            admin = User(username=BENCH_USER, is_superuser=True, is_staff=True, team=teams[0])
            admin.set_password(BENCH_PASSWORD)
            admin.save()
        ApiToken.objects.filter(user=admin).delete()
        _token, raw = api_token_create(user=admin, name="bench")
    managers_list = list(
        User.objects.filter(username__startswith="manager").values_list("id", "team_id")
    )
    return {"token": raw, "managers": managers_list, "teams": [t.pk for t in teams]}


def _iso(ts: dt.datetime) -> str:
    """A UTC timestamp as the backend stores it (naive text on SQLite)."""
    text = ts.strftime("%Y-%m-%d %H:%M:%S")
    return text + "+00" if connection.vendor == "postgresql" else text


def _slug(text: str) -> str:
    return "".join(ch for ch in anyascii(text).lower() if ch.isalnum())


def generate(
    *, people: int, companies: int, org: dict[str, Any], out: Callable[[str], None], seed: int = 42
) -> dict[str, Any]:
    """Fill the database; returns what was made and how fast."""
    rng = random.Random(seed)
    check_phones()
    managers: list[tuple[int, int]] = org["managers"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start_all = time.perf_counter()
    stats: dict[str, Any] = {}

    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-1000000")
    elif connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")

    w_company = Writer(Company, COMPANY_COLS)
    w_person = Writer(Person, PERSON_COLS)
    w_cp = Writer(ContactPoint, CP_COLS)
    w_emp = Writer(Employment, EMP_COLS)
    w_doc = Writer(SearchDocument, DOC_COLS)
    # The duplicate guard's blocking keys (parties.duplicates.name_keys_save does this on writes).
    w_ckey = Writer(CompanyNameKey, ("company_id", "key"))
    w_pkey = Writer(PersonNameKey, ("person_id", "key"))
    company_id0, person_id0 = _next_id(Company), _next_id(Person)
    cp_id, emp_id, doc_id = _next_id(ContactPoint), _next_id(Employment), _next_id(SearchDocument)
    company_names: list[str] = []
    company_locale: list[str] = []

    def stamp() -> str:
        return _iso(now - dt.timedelta(seconds=rng.randrange(3 * 365 * 86400)))

    # ---- companies
    t0 = time.perf_counter()
    progress = Progress("companies", companies, out)
    for lo in range(0, companies, BATCH):
        rows: list[tuple[Any, ...]] = []
        cps: list[tuple[Any, ...]] = []
        docs: list[tuple[Any, ...]] = []
        keys: list[tuple[int, int]] = []
        for k in range(lo, min(lo + BATCH, companies)):
            cid = company_id0 + k
            locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
            words = COMPANY_WORDS[locale]
            form = LEGAL_FORM[locale]
            core = f"{rng.choice(words)} {rng.choice(words)}"
            short = f"{core} {form}"
            ckey = name_key(short)
            keys.extend((cid, k) for k in name_block_keys(ckey))
            country = COUNTRY[locale]
            tax = tax_id(rng, country)
            website = f"www.{_slug(core)}{cid}.example"
            city = rng.choice(CITIES[locale])
            industry = rng.choice(INDUSTRIES)
            resp, team = rng.choice(managers)
            ts = stamp()
            rows.append(
                (
                    cid,
                    ts,
                    ts,
                    1,
                    None,
                    "{}",
                    resp,
                    team,
                    None,
                    SOURCE,
                    "",
                    ckey,
                    "legal",
                    short,
                    "",
                    form,
                    tax,
                    country,
                    "",
                    ",client,",
                    industry,
                    website,
                    "",
                    "",
                    country,
                    city,
                    None,
                )
            )
            company_names.append(short)
            company_locale.append(locale)
            points: list[tuple[str, str, str]] = []
            for _ in range(1 + (rng.random() < 0.5)):
                e164, raw = phone(rng, country)
                points.append(("phone", e164, raw))
            points.append(("email", f"office{cid}@{_slug(core)}.example", ""))
            phones_v = [v for ch, v, _r in points if ch == "phone"]
            phones_r = [r for ch, _v, r in points if ch == "phone"]
            emails = [v for ch, v, _r in points if ch == "email"]
            first_phone = first_email = True
            for pos, (ch, value, raw) in enumerate(points):
                primary = (ch == "phone" and first_phone) or (ch == "email" and first_email)
                if ch == "phone":
                    first_phone = False
                else:
                    first_email = False
                cps.append(
                    (
                        cp_id,
                        ts,
                        ts,
                        None,
                        cid,
                        ch,
                        "work",
                        raw or value,
                        value,
                        "",
                        True,
                        primary,
                        pos,
                    )
                )
                cp_id += 1
            body = search_body(
                names=[short, ""], phones=phones_v + phones_r, emails=emails, extra=[tax, website]
            )
            docs.append((doc_id, "company", cid, short[:300], city, body, team, resp, False))
            doc_id += 1
        with transaction.atomic():
            w_company.write(rows)
            w_cp.write(cps)
            w_doc.write(docs)
            w_ckey.write(keys)
        progress.tick(min(lo + BATCH, companies), w_company.rows + w_cp.rows + w_doc.rows)
    stats["companies_seconds"] = round(time.perf_counter() - t0, 1)

    # ---- people
    t0 = time.perf_counter()
    rows_before = w_cp.rows + w_doc.rows
    progress = Progress("people", people, out)
    for lo in range(0, people, BATCH):
        rows = []
        cps = []
        docs = []
        emps: list[tuple[Any, ...]] = []
        keys = []
        for k in range(lo, min(lo + BATCH, people)):
            pid = person_id0 + k
            locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
            first, last, middle = person_name(rng, locale)
            full = " ".join(p for p in (last, first, middle) if p)
            pkey = name_key(full)
            keys.extend((pid, k) for k in name_block_keys(pkey))
            country = COUNTRY[locale]
            resp, team = rng.choice(managers)
            ts = stamp()
            birthday = (
                (dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))).isoformat()
                if rng.random() < 0.3
                else None
            )
            rows.append(
                (
                    pid,
                    ts,
                    ts,
                    1,
                    None,
                    "{}",
                    resp,
                    team,
                    None,
                    SOURCE,
                    "",
                    pkey,
                    first,
                    last,
                    middle,
                    birthday,
                    TIME_ZONE[locale],
                    False,
                    rng.choice(CITIES[locale]),
                    "",
                )
            )
            points = []
            if rng.random() < 0.9:
                points.append(("phone", *phone(rng, country)))
                if rng.random() < 0.2:
                    points.append(("phone", *phone(rng, country)))
            if rng.random() < 0.7:
                dom = rng.choice(EMAIL_DOMAINS[locale])
                points.append(("email", f"{_slug(first)}.{_slug(last)}{pid}@{dom}", ""))
            first_phone = first_email = True
            for pos, (ch, value, raw) in enumerate(points):
                primary = (ch == "phone" and first_phone) or (ch == "email" and first_email)
                if ch == "phone":
                    first_phone = False
                else:
                    first_email = False
                cps.append(
                    (
                        cp_id,
                        ts,
                        ts,
                        pid,
                        None,
                        ch,
                        "mobile" if ch == "phone" else "work",
                        raw or value,
                        value,
                        "",
                        True,
                        primary,
                        pos,
                    )
                )
                cp_id += 1
            subtitle = ""
            if companies and rng.random() < 0.5:
                ck = rng.randrange(companies)
                emps.append(
                    (
                        emp_id,
                        ts,
                        ts,
                        pid,
                        company_id0 + ck,
                        rng.choice(POSITIONS),
                        rng.choice(ROLES),
                        True,
                    )
                )
                emp_id += 1
                subtitle = company_names[ck]
            body = search_body(
                names=[full],
                phones=[v for ch, v, _r in points if ch == "phone"]
                + [r for ch, _v, r in points if ch == "phone"],
                emails=[v for ch, v, _r in points if ch == "email"],
                extra=[],
            )
            docs.append(
                (doc_id, "person", pid, full[:300], subtitle[:300], body, team, resp, False)
            )
            doc_id += 1
        with transaction.atomic():
            w_person.write(rows)
            w_cp.write(cps)
            w_emp.write(emps)
            w_doc.write(docs)
            w_pkey.write(keys)
        done_rows = w_person.rows + w_cp.rows + w_emp.rows + w_doc.rows - rows_before
        progress.tick(min(lo + BATCH, people), done_rows)
    stats["people_seconds"] = round(time.perf_counter() - t0, 1)
    _fix_sequences([Company, Person, ContactPoint, Employment, SearchDocument])
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # VACUUM too, as autovacuum would have by the time a base is this big: index-only
            # scans (the name keys) need the visibility map of the generated rows
            cur.execute("VACUUM ANALYZE")
        else:
            cur.execute("ANALYZE")
            cur.execute("PRAGMA synchronous=NORMAL")
    stats["analyze_seconds"] = round(time.perf_counter() - t0, 1)
    total_rows = w_company.rows + w_person.rows + w_cp.rows + w_emp.rows + w_doc.rows
    seconds = time.perf_counter() - start_all
    stats.update(
        {
            "seconds": round(seconds, 1),
            "rows": total_rows,
            "rows_per_second": round(total_rows / seconds) if seconds else None,
            "companies": w_company.rows,
            "people": w_person.rows,
            "contact_points": w_cp.rows,
            "employments": w_emp.rows,
            "search_documents": w_doc.rows,
        }
    )
    out(
        f"  generated {total_rows:,} rows in {seconds:,.0f} s ({stats['rows_per_second']:,} rows/s)"
    )
    return stats


def counts() -> dict[str, int]:
    with connection.cursor() as cur:
        out = {}
        for key, table in (("companies", "parties_company"), ("people", "parties_person")):
            cur.execute(f"SELECT COUNT(*) FROM {table} WHERE source = %s", [SOURCE])
            out[key] = int(cur.fetchone()[0])
    return out


__all__ = ["ALL_LAST_NAMES", "BENCH_PASSWORD", "BENCH_USER", "counts", "generate", "new_surname"]
