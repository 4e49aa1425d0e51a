"""Django settings, read from the environment.

Everything a deployment changes comes from environment variables; secrets that
are not given are created once as 0600 files in the data directory, so a
restart never invalidates sessions or makes stored passwords unreadable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from postroom.core.keyfiles import read_or_create_secret

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("POSTROOM_DATA_DIR", "./postroom-data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = _env_bool("POSTROOM_DEBUG")
SECRET_KEY = os.environ.get("POSTROOM_SECRET_KEY") or read_or_create_secret(
    DATA_DIR / "secret_key", kind="django"
)
# Comma-separated Fernet keys, newest first; see postroom.core.secrets.
POSTROOM_ENCRYPTION_KEYS_ENV = "POSTROOM_ENCRYPTION_KEYS"
POSTROOM_ENCRYPTION_KEY_FILE = DATA_DIR / "encryption_keys"

ALLOWED_HOSTS = _env_list("POSTROOM_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = _env_list("POSTROOM_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "postroom.core",
    "postroom.accounts",
    "postroom.incoming",
    "postroom.outgoing",
    "postroom.records",
    "postroom.webhooks",
    "postroom.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "postroom.urls"
WSGI_APPLICATION = "postroom.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "postroom.web.context_processors.account_alerts",
                "postroom.web.context_processors.unread_notifications",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'postroom.sqlite3'}",
        conn_max_age=int(os.environ.get("POSTROOM_DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE
    # transactions avoid "database is locked" on lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    }
    # One file per test run: two runs in one data directory (an editor's test
    # runner beside the terminal's) must not share, and so corrupt, a database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("pl", "Polski"),
    ("ar", "العربية"),
    ("ja", "日本語"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("POSTROOM_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise expects it even when serving from finders
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the installed package: no collectstatic step.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:login"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SECURE = _env_bool("POSTROOM_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

# Raw messages and attachments, content-addressed (postroom.incoming.blobs).
POSTROOM_BLOB_DIR = Path(os.environ.get("POSTROOM_BLOB_DIR", str(DATA_DIR / "blobs")))

# How long a watcher owns an account without renewing its lease (seconds).
POSTROOM_LEASE_SECONDS = int(os.environ.get("POSTROOM_LEASE_SECONDS", "60"))

# Outgoing queue (postroom.outgoing): how long a worker owns a claimed
# message without renewing its lease, how many it claims at once, how often
# an idle worker looks for due mail, and its sending threads.
POSTROOM_OUTBOX_LEASE_SECONDS = int(os.environ.get("POSTROOM_OUTBOX_LEASE_SECONDS", "300"))
# A claim's fixed cost (the due query, its commits) is shared by the batch.
POSTROOM_OUTBOX_BATCH = int(os.environ.get("POSTROOM_OUTBOX_BATCH", "100"))
POSTROOM_OUTBOX_POLL_SECONDS = float(os.environ.get("POSTROOM_OUTBOX_POLL_SECONDS", "1.0"))
# Messages a sending thread may send before it commits their outcomes (at most
# this many can arrive twice when the worker is killed; see outgoing/queue.py).
# 1: a killed worker can resend only the message cut inside its own DATA
# phase (issue 4's guarantee). Larger values commit outcomes for several
# messages at once, faster, but a kill may resend up to that many per thread.
POSTROOM_OUTBOX_RECORD_EVERY = int(os.environ.get("POSTROOM_OUTBOX_RECORD_EVERY", "1"))
POSTROOM_WORKER_THREADS = int(os.environ.get("POSTROOM_WORKER_THREADS", "2"))
# Sending processes of `postroom worker` (each with POSTROOM_WORKER_THREADS
# threads); 0: one per CPU, at most 4.
POSTROOM_WORKER_PROCESSES = int(os.environ.get("POSTROOM_WORKER_PROCESSES", "0"))
# Webhooks (postroom.webhooks.delivery): seconds one POST may take, hours a
# delivery is retried before it is given up, deliveries claimed at once.
POSTROOM_WEBHOOK_TIMEOUT = float(os.environ.get("POSTROOM_WEBHOOK_TIMEOUT", "10"))
POSTROOM_WEBHOOK_MAX_AGE_HOURS = float(os.environ.get("POSTROOM_WEBHOOK_MAX_AGE_HOURS", "72"))
POSTROOM_WEBHOOK_BATCH = int(os.environ.get("POSTROOM_WEBHOOK_BATCH", "10"))
# The local sendmail program (C3); site-wide, never per account.
POSTROOM_SENDMAIL_PATH = os.environ.get("POSTROOM_SENDMAIL_PATH", "/usr/sbin/sendmail")

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# How long one side of "test connection" may take, in seconds (A5, A14).
POSTROOM_CHECK_TIMEOUT = float(os.environ.get("POSTROOM_CHECK_TIMEOUT", "15"))
# Where people reach this Postroom (https://postroom.example.com): links in
# notification mail are made absolute with it; without it they are paths.
POSTROOM_BASE_URL = os.environ.get("POSTROOM_BASE_URL", "")
# Recipient used to probe relaying (RCPT TO without DATA) in the outgoing check.
POSTROOM_RELAY_PROBE_RCPT = os.environ.get("POSTROOM_RELAY_PROBE_RCPT", "postmaster@example.com")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("POSTROOM_LOG_LEVEL", "INFO")},
}
