"""Fleet Portal settings: one file, driven by environment variables.

Every variable is documented in README.md. A malformed value raises
ImproperlyConfigured naming the variable, so a typo fails at start-up rather
than hours later in a worker.
"""

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from fleet_portal.env import (
    env_bool,
    env_database,
    env_email_url,
    env_float,
    env_int,
    env_int_map,
    env_list,
    env_str,
    env_url,
    env_webhook_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])

DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

PORTAL_BASE_URL = env_url("PORTAL_BASE_URL", "http://127.0.0.1:8000")

# Volteras. The default API URL is the offline sandbox `make run` starts.
VOLTERAS_API_URL = env_url("VOLTERAS_API_URL", "http://127.0.0.1:8001")
VOLTERAS_CLIENT_ID = env_str("VOLTERAS_CLIENT_ID")
VOLTERAS_CLIENT_SECRET = env_str("VOLTERAS_CLIENT_SECRET")
VOLTERAS_WEBHOOK_SECRET = env_webhook_secret("VOLTERAS_WEBHOOK_SECRET")
VOLTERAS_TIMEOUT = env_float("VOLTERAS_TIMEOUT", 15.0, minimum=0.1)
VOLTERAS_MAX_RETRIES = env_int("VOLTERAS_MAX_RETRIES", 4, minimum=0)

# Uploads and tracking.
UPLOAD_MAX_ROWS = env_int("UPLOAD_MAX_ROWS", 50_000, minimum=1)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
# Rows stored per transaction on SQLite: short enough that webhooks and the worker
# wait a moment at most for the one write lock while a big upload is stored.
UPLOAD_STORE_CHUNK = env_int("UPLOAD_STORE_CHUNK", 1000, minimum=1)
# An .xlsx is a zip: its compressed size says little, so reading it is bounded by
# what it holds. Excel's own limits are 16,384 columns and 32,767 characters a cell.
UPLOAD_XLSX_MAX_COLUMNS = env_int("UPLOAD_XLSX_MAX_COLUMNS", 1000, minimum=1)
UPLOAD_XLSX_MAX_CELLS = env_int("UPLOAD_XLSX_MAX_CELLS", 2_000_000, minimum=1)
UPLOAD_XLSX_MAX_SHARED_STRINGS = env_int("UPLOAD_XLSX_MAX_SHARED_STRINGS", 500_000, minimum=1)
UPLOAD_XLSX_MAX_CELL_CHARS = env_int("UPLOAD_XLSX_MAX_CELL_CHARS", 32_767, minimum=1)
UPLOAD_XLSX_MAX_UNZIPPED_BYTES = env_int(
    "UPLOAD_XLSX_MAX_UNZIPPED_BYTES", 100 * 1024 * 1024, minimum=1
)
UPLOAD_XLSX_MAX_SECONDS = env_float("UPLOAD_XLSX_MAX_SECONDS", 30.0, minimum=0.1)
STALE_AFTER_DAYS = env_int("STALE_AFTER_DAYS", 14, minimum=1)
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 900, minimum=10)
# Reads one reconciliation run makes beyond the vehicle list; the next run
# resumes where this one stopped.
RECONCILE_MAX_VEHICLE_READS = env_int("RECONCILE_MAX_VEHICLE_READS", 500, minimum=1)
RECONCILE_MAX_GROUP_READS = env_int("RECONCILE_MAX_GROUP_READS", 200, minimum=1)
# Refused webhook deliveries are kept this long, then pruned by the sweep.
WEBHOOK_REFUSED_RETENTION_DAYS = env_int("WEBHOOK_REFUSED_RETENTION_DAYS", 30, minimum=1)
WORKER_SWEEP_SECONDS = env_float("WORKER_SWEEP_SECONDS", 5.0, minimum=0.1)
# How long a claimed batch or webhook event stays a dead worker's before another
# takes it over (a live worker renews its claim while it waits on Volteras).
WORKER_LEASE_SECONDS = env_int("WORKER_LEASE_SECONDS", 120, minimum=4)

# The support workspace: when an in-progress VIN counts as stuck (hours since
# its last status change, per make where a manufacturer is known to be slow),
# and when failures of one code on one make look like a manufacturer incident.
SUPPORT_STUCK_HOURS = env_int("SUPPORT_STUCK_HOURS", 48, minimum=1)
SUPPORT_STUCK_HOURS_BY_MAKE = env_int_map("SUPPORT_STUCK_HOURS_BY_MAKE")
INCIDENT_MIN_VINS = env_int("INCIDENT_MIN_VINS", 10, minimum=2)
INCIDENT_WINDOW_HOURS = env_int("INCIDENT_WINDOW_HOURS", 6, minimum=1)

# E-mail: sent by the worker through Django's SMTP backend (README "Configuration").
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20, minimum=1)
globals().update(env_email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Fleet Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where `make run`'s local SMTP server keeps every message it receives.
MAIL_DIR = DATA_DIR / "mail"
MAIL_MAX_ATTEMPTS = env_int("MAIL_MAX_ATTEMPTS", 8, minimum=1)
# Hours before a consent link expires at which its recipient is reminded (at most two).
CONSENT_REMINDER_HOURS = sorted(
    (int(h) for h in env_list("CONSENT_REMINDER_HOURS", ["48", "24"]) if h.isdigit()),
    reverse=True,
)[:2]
# The hour (UTC) after which the daily digest goes out.
DIGEST_HOUR = env_int("DIGEST_HOUR", 7, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "connections",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Straight to the webhook receiver, past everything it does not need.
    "fleet_portal.webhook_path.WebhookShortPathMiddleware",
    "csp.middleware.CSPMiddleware",
    "fleet_portal.permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during login into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fleet_portal.urls"
WSGI_APPLICATION = "fleet_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "connections.web.context_processors.navigation",
            ],
        },
    },
    {
        # Only for the live regions every open page asks for on each change (the
        # upload table's, the fleet vehicle list's): compiled templates, several
        # times faster than Django's engine. Ask for them with `using="jinja2"`.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
    },
]

DATABASES = {
    "default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed log-ins for one
# username, or from one address, further attempts are refused for
# LOGIN_COOLOFF_MINUTES; a successful log-in clears the count. Admins unlock at
# once in the admin (Axes > Access attempts) or with `manage.py axes_reset_username`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind TRUSTED_PROXY_COUNT proxies the client's address is read from
# X-Forwarded-For; otherwise every log-in would seem to come from the proxy.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "fleet_portal.client_ip.client_ip"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
# The owner's pages and e-mails speak these (locale/*.po, compiled by `make`);
# the staff pages stay in English (no LocaleMiddleware).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("it", "Italiano"),
    ("nl", "Nederlands"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# With DEBUG off, files are served from STATIC_ROOT (collectstatic) under hashed,
# compressed names. WHITENOISE_USE_FINDERS=true serves them from the source
# folders instead, with plain names: the hashed names need the manifest that
# only collectstatic writes (without it every page would fail rendering).
# DEBUG (tests, `make run`) always serves from the source folders.
WHITENOISE_USE_FINDERS = DEBUG or env_bool("WHITENOISE_USE_FINDERS", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if WHITENOISE_USE_FINDERS
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Hardened sessions and cookies; HTTPS settings apply behind a TLS proxy.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Content-Security-Policy (django-csp): scripts, styles and everything else from
# the portal's own origin only. No inline scripts, `on...=` handlers or `style=`
# attributes anywhere (tests/test_hardening_headers.py reads every template), and
# htmx is told not to inject its indicator <style> or evaluate code
# (templates/base.html), so neither 'unsafe-inline' nor 'unsafe-eval' is needed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
# Powerful browser features no page of the portal uses, switched off for all.
PERMISSIONS_POLICY = [
    "accelerometer",
    "camera",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "payment",
    "usb",
]
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
