"""Chaosplane settings, read from the environment (12-factor) with defaults that work for `make run`.

DATABASE_URL  default: SQLite file under var/ (make run); PostgreSQL in tests and production
REDIS_URL     default: redis://127.0.0.1:6379/0 (Celery broker and result backend)
SECRET_KEY    a development default exists, and is refused when DEBUG is off
DEBUG         "1" / "true" to enable; off by default
ALLOWED_HOSTS comma-separated; default 127.0.0.1,localhost
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_flag("DEBUG")

DEVELOPMENT_SECRET_KEY = "chaosplane-development-only-not-secret"  # noqa: S105 (refused unless DEBUG)
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "SECRET_KEY is the development default while DEBUG is off: set SECRET_KEY in the environment "
        "(or DEBUG=1 for local development)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_celery_beat",
    "tenants",
    "injector",
    "experiments",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.SessionTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "tenants.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'chaosplane.sqlite3'}",
        conn_max_age=60,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# guardian's anonymous user row is not needed: anonymous requests never reach object checks.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bearer first: DRF answers 401 (with WWW-Authenticate: Bearer) rather than 403 to a request
        # with no credentials only when the first class names a challenge.
        "tenants.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "tenants.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tenants.api.exceptions.exception_handler",
    "URL_FORMAT_OVERRIDE": "format",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chaosplane API",
    "DESCRIPTION": "Chaos engineering as a service: tenants, members, tokens, policy, the audit log, experiments, "
    "environments, runs and their archive.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets are called `kind`: the chaos kinds and the environment kinds.
    "ENUM_NAME_OVERRIDES": {"EnvironmentKindEnum": "injector.models.Environment.Kind"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Node agents and their gateway (injector.gateway): how long an agent keeps faults without a gateway,
# how often it reports, and where `manage.py agentgateway` listens by default.
AGENT_LEASE_SECONDS = int(os.environ.get("AGENT_LEASE_SECONDS", "30"))
AGENT_HEARTBEAT_SECONDS = int(os.environ.get("AGENT_HEARTBEAT_SECONDS", "10"))
AGENT_GATEWAY_MAX_STREAMS = int(os.environ.get("AGENT_GATEWAY_MAX_STREAMS", "1024"))
AGENT_GATEWAY_LISTEN = os.environ.get("AGENT_GATEWAY_LISTEN", "127.0.0.1:7443")

# Runs (experiments.runs): how a run's faults are bounded in time, how hard a step is retried, and
# how many targets are worked on at once. Every run has a deadline; the reaper enforces it.
RUN_MAX_SECONDS = int(os.environ.get("RUN_MAX_SECONDS", str(24 * 3600)))  # a run without a duration
RUN_ONE_SHOT_SECONDS = int(os.environ.get("RUN_ONE_SHOT_SECONDS", "300"))  # a one-shot action's deadline
RUN_PARALLELISM = int(os.environ.get("RUN_PARALLELISM", "32"))  # targets injected or recovered at once
RUN_MAX_ATTEMPTS = int(os.environ.get("RUN_MAX_ATTEMPTS", "5"))  # per target, for transient errors
RUN_RETRY_BASE_SECONDS = float(os.environ.get("RUN_RETRY_BASE_SECONDS", "1"))  # doubled per attempt, max 60
RUN_STALL_SECONDS = int(os.environ.get("RUN_STALL_SECONDS", "60"))  # a quiet step is published again
REAPER_INTERVAL_SECONDS = float(os.environ.get("REAPER_INTERVAL_SECONDS", "5"))
HALT_WAIT_SECONDS = float(os.environ.get("HALT_WAIT_SECONDS", "1.5"))  # a halt request waits this long
# Schedules (experiments.scheduling): how often beat's sweep claims the ticks due before the next one
# (each tick is then published with its own time as eta, so this bounds nothing but the lookahead).
SCHEDULER_SWEEP_SECONDS = float(os.environ.get("SCHEDULER_SWEEP_SECONDS", "1"))
# Status checks (experiments.checking): how long a steady-state check before or after a run may take,
# and how late a continuous check's probe may be before the reaper publishes it again.
CHECK_INLINE_BUDGET_SECONDS = float(os.environ.get("CHECK_INLINE_BUDGET_SECONDS", "120"))
CHECK_STALL_SECONDS = float(os.environ.get("CHECK_STALL_SECONDS", "30"))
# Reports and notifications (reports): webhook attempts back off from the base, doubling, up to the
# maximum number of attempts; a sweep publishes again any attempt whose task was lost.
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "6"))
WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", "5"))
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "5"))
WEBHOOK_SWEEP_SECONDS = float(os.environ.get("WEBHOOK_SWEEP_SECONDS", "30"))
# The portal's address as people reach it ("https://chaos.example.com"): links in notifications.
PUBLIC_URL = os.environ.get("PUBLIC_URL", "").rstrip("/")
# /metrics: when set, scrapers must send it as a bearer token.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "chaosplane@localhost")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS")
CELERY_BEAT_SCHEDULE = {
    "reap-runs": {"task": "experiments.tasks.reap", "schedule": REAPER_INTERVAL_SECONDS},
    "fire-schedules": {"task": "experiments.tasks.fire_schedules", "schedule": SCHEDULER_SWEEP_SECONDS},
    "retry-webhook-deliveries": {"task": "reports.tasks.retry_due_deliveries", "schedule": WEBHOOK_SWEEP_SECONDS},
    "send-monthly-audit-reports": {"task": "reports.tasks.send_monthly_audit_reports", "schedule": 3600.0},
}
AGENT_COMMAND_TIMEOUT = float(os.environ.get("AGENT_COMMAND_TIMEOUT", "10"))  # a worker waits for an agent's answer
# The gateway address agents are told to dial (the cluster manifest's DaemonSet), when it differs
# from where it listens (behind a load balancer, a public name).
AGENT_GATEWAY_PUBLIC_ADDRESS = os.environ.get("AGENT_GATEWAY_PUBLIC_ADDRESS", AGENT_GATEWAY_LISTEN)
# How often a cloud driver asks whether an instance or a disk has reached the state it waits for.
CLOUD_POLL_SECONDS = float(os.environ.get("CLOUD_POLL_SECONDS", "5"))
