"""Settings from the environment; defaults give a zero-setup laptop (SQLite, embedded broker)."""

import datetime as dt
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    # django-unfold themes the admin (before django.contrib.admin, whose templates it overrides).
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.inlines",
    "unfold.contrib.simple_history",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djmoney",
    "simple_history",
    "django_celery_beat",
    "axes",
    "core",
    "customers",
    "catalog",
    "subscriptions",
    "quotes",
    "metering",
    "invoicing",
    "receivables",
    "reporting",
    "revrec",
    "portal",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "portal.context_processors.billing_company",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that a real Celery worker in the tests sees the test database;
    # one per test process, so that concurrent runs do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Login throttling (admin and portal): django-axes counts failed logins per username and IP
# address; at AXES_FAILURE_LIMIT the pair is locked out for the cool-off time (a success resets
# the count). Its backend must come first, and every login must call authenticate(request, …).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = dt.timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every manage.py command
AXES_LOCKOUT_CALLABLE = "core.throttles.login_lockout_response"
if env_bool("BEHIND_TLS_PROXY", False):
    # The client's address is the one the proxy appends to X-Forwarded-For, not the proxy's.
    AXES_CLIENT_IP_CALLABLE = "core.throttles.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get(
    "DEFAULT_FROM_EMAIL", os.environ.get("BILLING_COMPANY_EMAIL", "billing@tessellate.example")
)

# Usage events: how late an event may arrive (its timestamp may be this many days old; later
# ones are refused, so a period's usage is final after it), and the largest request body.
EVENT_LATENESS_DAYS = int(os.environ.get("EVENT_LATENESS_DAYS", "35"))
# The billing run is split into chunks of this many subscriptions, one Celery task each.
BILLING_CHUNK_SIZE = int(os.environ.get("BILLING_CHUNK_SIZE", "250"))
# A renewal quote is drafted this many days before a subscription's term ends (quotes.renewals).
RENEWAL_NOTICE_DAYS = int(os.environ.get("RENEWAL_NOTICE_DAYS", "60"))

# AR aging buckets: the last day past due of each bucket after "current" (1–30, 31–60, 61–90,
# 91–120), then "over 120". AGING_BUCKETS="30,60,90" makes 1–30, 31–60, 61–90 and over 90.
AGING_BUCKETS = tuple(
    int(days) for days in os.environ.get("AGING_BUCKETS", "30,60,90,120").split(",") if days
)
# How an obligation's allocation is spread over the months of its service period: "daily" (by
# days of service in each month) or "monthly" (a whole month counts one share); revrec.allocation.
REVREC_CONVENTION = os.environ.get("REVREC_CONVENTION", "daily")
# What usage alerts on the bill compare with their threshold: the upcoming invoice's subtotal,
# before tax. Wired here because metering (the alerts) must not import invoicing (DESIGN.md).
USAGE_ALERTS_BILL_ESTIMATE = "invoicing.selectors.estimated_bill"
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("MAX_REQUEST_BYTES", str(16 * 1024 * 1024)))

# The company that issues invoices (shown on invoice PDFs).
BILLING_COMPANY = {
    "name": os.environ.get("BILLING_COMPANY_NAME", "Tessellate AI, Inc."),
    "address": os.environ.get(
        "BILLING_COMPANY_ADDRESS", "500 Howard Street, Suite 300\nSan Francisco, CA 94105\nUSA"
    ),
    "email": os.environ.get("BILLING_COMPANY_EMAIL", "billing@tessellate.example"),
    # The portal's header logo (an image URL); empty: a small mark drawn from the name's initial.
    "logo_url": os.environ.get("BILLING_COMPANY_LOGO_URL", ""),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only (what the Lago client sends); a document nested too deeply is a 400.
    "DEFAULT_PARSER_CLASSES": ["core.api.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["core.throttles.ApiKeyRateThrottle"],
    "UNAUTHENTICATED_USER": None,
}

# Requests per API key ("<n>/<s|min|hour|day>", empty: no limit); over it the API answers 429
# with Retry-After. Counted in the default cache (below).
API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "6000/min")

SPECTACULAR_SETTINGS = {
    "TITLE": "Quote-to-cash API",
    "DESCRIPTION": "Usage events (Lago wire format) and current usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets served by us (drf-spectacular-sidecar), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# Celery: Redis when REDIS_URL is set, otherwise an embedded broker on a SQLite file (no server).
REDIS_URL = os.environ.get("REDIS_URL", "")
# The cache holds the API rate counters: Redis when REDIS_URL is set (shared by all web
# processes), otherwise each process's memory.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "q2c",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL")
    or REDIS_URL
    or (f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The schedule itself (billing hourly, revenue hourly, quote expiry daily) is created by data
# migrations as django-celery-beat rows, editable under "Periodic tasks" in the admin.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        name: {"level": "WARNING"} for name in ("weasyprint", "fontTools", "PIL", "sqlalchemy")
    },
}

# The back office's look: django-unfold (sidebar: config/admin.py; home: reporting/dashboard.py).
UNFOLD = {
    "SITE_TITLE": "Quote-to-cash",
    "SITE_HEADER": "Quote-to-cash",  # the sidebar is narrow: the long name was cut
    "SITE_SYMBOL": "receipt_long",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        # Grouped by the user's work; each role sees only the items its permissions open.
        "navigation": "config.admin.sidebar_navigation",
    },
    # The admin home: figures per role (reporting.dashboard), in templates/admin/index.html.
    "DASHBOARD_CALLBACK": "config.dashboard.dashboard_callback",
}
# The dashboard shows figures in this currency; others are listed apart, never converted.
REPORTING_CURRENCY = os.environ.get("REPORTING_CURRENCY", "USD")
# Amounts, prices and quantities are shown in this locale (core.formatting, Babel).
MONEY_LOCALE = os.environ.get("MONEY_LOCALE", "en_US")
