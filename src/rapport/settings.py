"""Rapport settings: one module, configured only by environment variables.

Every variable is read through a typed helper that fails loudly on a bad value.
README.md lists them all.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DATA_DIR = Path(env_str("RAPPORT_DATA_DIR", str(PROJECT_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once and kept in DATA_DIR."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("RAPPORT_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_q",
    "ninja",
    "rapport.core",
    "rapport.accounts",
    "rapport.parties",
    "rapport.sales",
    "rapport.activities",
    "rapport.imports",
    "rapport.dedupe",
    "rapport.messaging",
    "rapport.routing",
    "rapport.automations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rapport.accounts.middleware.SessionTimeoutMiddleware",
    "rapport.accounts.middleware.UserPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "rapport.urls"
WSGI_APPLICATION = "rapport.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "rapport.activities.views.unread_notifications",
            ],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'rapport.sqlite3'}")


def _database(url: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web and worker share one file: WAL lets readers run beside a writer,
        # IMMEDIATE takes the write lock up front (no deferred read->write upgrade
        # failing with SQLITE_BUSY), and the timeout waits for the lock.
        # init_command runs on every new connection; persistent connections keep
        # their PRAGMAs and page cache instead of reopening the file per request.
        # SQLite's own page cache is 2 MB; at a million records the indexes a request or
        # the worker walks are far larger, so each connection gets SQLITE_CACHE_MB and
        # reads the file through a memory map of up to SQLITE_MMAP_MB (shared by all).
        cache_kib = env_int("SQLITE_CACHE_MB", 64) * 1024
        mmap_bytes = env_int("SQLITE_MMAP_MB", 256) * 1024 * 1024
        # The WAL is copied into the file every SQLITE_WAL_AUTOCHECKPOINT pages (SQLite's
        # default, 1,000 pages = 4 MB, made an import of 1,000-row chunks into 1M people
        # copy the same index pages over and over: 16,384 pages (64 MB), +9 % rows/s);
        # journal_size_limit gives the disk back after each copy.
        wal_pages = env_int("SQLITE_WAL_AUTOCHECKPOINT", 16384)
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                f"PRAGMA cache_size=-{cache_kib}; PRAGMA mmap_size={mmap_bytes}; "
                f"PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint={wal_pages}; "
                f"PRAGMA journal_size_limit={wal_pages * 4096};"
            ),
        }
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 600)
        config["CONN_HEALTH_CHECKS"] = True
    elif config["ENGINE"] in {
        "django.db.backends.postgresql",
        "django.db.backends.postgresql_psycopg2",
    }:
        config["ENGINE"] = "django.db.backends.postgresql"
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, got {url!r}")
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["rapport.accounts.backends.LockoutModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login lockout (R5): after LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_MINUTES.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 10)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15)
# Failed logins are kept this many days for review (the security log has them too).
LOGIN_ATTEMPTS_KEEP_DAYS = env_int("LOGIN_ATTEMPTS_KEEP_DAYS", 30)

# Sessions: absolute lifetime and idle timeout (R6), both configurable.
SESSION_COOKIE_AGE = env_int("SESSION_ABSOLUTE_HOURS", 12) * 3600
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [
    ("en", _("English")),
    ("ru", _("Russian")),
    ("ar", _("Arabic")),
    ("az", _("Azerbaijani")),
    ("it", _("Italian")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

DEFAULT_PHONE_REGION = env_str("DEFAULT_PHONE_REGION", "RU").upper()
DEFAULT_CURRENCY = env_str("DEFAULT_CURRENCY", "RUB").upper()
# Currencies deals and leads may use (ISO 4217 codes); the default one is always allowed.
CURRENCIES = sorted(
    {c.upper() for c in env_list("CURRENCIES", "RUB,USD,EUR,AZN,AED,GBP,CNY,KZT,TRY,CHF")}
    | {DEFAULT_CURRENCY}
)
# The board loads this many cards per column, then more on demand.
BOARD_COLUMN_SIZE = env_int("BOARD_COLUMN_SIZE", 30)

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = DATA_DIR / "media"
ATTACHMENT_MAX_MB = env_int("ATTACHMENT_MAX_MB", 25)
# Largest import file (MB); bigger files are refused with a message before anything is read.
IMPORT_MAX_MB = env_int("IMPORT_MAX_MB", 200)
# A running import whose worker has not checkpointed for this long is marked failed (resumable).
IMPORT_STALE_SECONDS = env_int("IMPORT_STALE_SECONDS", 120)

# Outgoing email (notifications; later automations). Without EMAIL_HOST it is written to the
# log instead of being sent.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_str("EMAIL_USE_TLS", "") in ("1", "true", "yes")
EMAIL_USE_SSL = env_str("EMAIL_USE_SSL", "") in ("1", "true", "yes")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "rapport@localhost")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
RAPPORT_BASE_URL = env_str("RAPPORT_BASE_URL", "http://127.0.0.1:8000")
# CalDAV servers on this machine (DavMail, a local Radicale) are refused unless allowed.
CALDAV_ALLOW_LOOPBACK = env_str("CALDAV_ALLOW_LOOPBACK", "") in ("1", "true", "yes")
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Background work: django-q2. ORM broker in the same database by default; Redis by REDIS_URL.
REDIS_URL = env_str("REDIS_URL", "")
Q_CLUSTER: dict[str, Any] = {
    "name": "rapport",
    "workers": env_int("WORKER_PROCESSES", 1),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 5,
    "queue_limit": 50,
    "bulk": 10,
    "poll": float(env_str("WORKER_POLL_SECONDS", "0.2")),  # idle queue check (ORM broker)
    "catch_up": True,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
Q_SYNC = env_bool("RAPPORT_SYNC_TASKS", False)
if Q_SYNC:
    Q_CLUSTER["sync"] = True

# Outbox dispatch: how long a claimed event is leased before the reaper re-queues it.
OUTBOX_LEASE_SECONDS = env_int("OUTBOX_LEASE_SECONDS", 120)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 8)
# /health/ready answers 503 when an event due this long ago is still waiting (worker down).
HEALTH_OUTBOX_MAX_SECONDS = env_int("HEALTH_OUTBOX_MAX_SECONDS", 300)
# Handled events (and their handler-run records) are removed after this many days; failed
# ones stay for the administrator. 0 keeps them all.
OUTBOX_KEEP_DAYS = env_int("OUTBOX_KEEP_DAYS", 7)
# The worker's own outbox dispatch loop (core.dispatcher, decision 0012): woken by
# LISTEN/NOTIFY on PostgreSQL, polling every OUTBOX_POLL_SECONDS on SQLite (and as a
# fallback on PostgreSQL). Off: a django-q2 task per committing transaction, as before.
OUTBOX_DISPATCHER = env_bool("OUTBOX_DISPATCHER", True)
# Off: nothing tells a worker about new events (benchmarks and tests that dispatch themselves);
# the periodic sweep still finds them.
OUTBOX_NUDGE = env_bool("OUTBOX_NUDGE", True)
OUTBOX_DISPATCHERS = env_int("OUTBOX_DISPATCHERS", 1)  # dispatch loops per `rapport worker`
OUTBOX_POLL_SECONDS = float(env_str("OUTBOX_POLL_SECONDS", "0.05"))
# Automation rules: how deep a chain of rules triggering rules may go (loops stop there),
# and how often a worker looks for changed rules (seconds).
AUTOMATION_MAX_DEPTH = env_int("AUTOMATION_MAX_DEPTH", 3)
AUTOMATION_RULES_TTL = float(env_str("AUTOMATION_RULES_TTL", "2"))
# Runs whose conditions were not met are kept this many days in the execution log (each
# event is evaluated by every rule on its trigger: they are most of the log); 0 keeps them.
AUTOMATION_NO_MATCH_LOG_DAYS = env_int("AUTOMATION_NO_MATCH_LOG_DAYS", 30)
# Outgoing messages: a send left "sending" by a killed worker is re-sent (same Message-ID)
# once its lease is over; a batch hands back what it has not tried before that.
MESSAGING_LEASE_SECONDS = env_int("MESSAGING_LEASE_SECONDS", 60)

# API
API_PAGE_SIZE = 50
API_MAX_PAGE_SIZE = 500

# Exports (CSV/XLSX of any list): most rows in one download (exactly this many is allowed).
EXPORT_MAX_ROWS = env_int("EXPORT_MAX_ROWS", 100_000)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "rapport": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
        "rapport.security": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
    },
}
