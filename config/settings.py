"""PolicyDesk settings. Every value comes from a POLICYDESK_* environment variable (or .env)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import (
    audit_keyring,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json,
    env_list,
    env_optional_str,
    env_str,
    load_dotenv,
    parse_database_url,
    validate_redis_url,
)
from config.identity import sign_in_settings
from core.proxies import trusted_proxies_parse

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(Path(os.environ.get("POLICYDESK_ENV_FILE", str(BASE_DIR / ".env"))))

DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / ".data")))

DEBUG = env_bool("DEBUG", False)

_secret_key = env_optional_str("SECRET_KEY")
if _secret_key is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "POLICYDESK_SECRET_KEY is required when POLICYDESK_DEBUG is off "
            "(`make up` writes a random one to .env for local use)"
        )
    # Development only: a per-process key, so sessions do not survive restarts.
    from django.core.management.utils import get_random_secret_key

    _secret_key = get_random_secret_key()
SECRET_KEY = _secret_key

# The audit keys (docs/audit-and-security.md#keys-and-rotation). Separate from SECRET_KEY so
# rotating sessions does not orphan the audit trail. POLICYDESK_AUDIT_HMAC_KEY is the original
# single key (key id ""); POLICYDESK_AUDIT_HMAC_KEYS="id1:secret1,id2:secret2" is a keyring whose
# last entry signs what is written from now on, while older entries keep verifying the events,
# checkpoints and signed heads written under them.
_audit_key = env_optional_str("AUDIT_HMAC_KEY")
_audit_ring = audit_keyring(env_optional_str("AUDIT_HMAC_KEYS"), legacy=_audit_key)
if not _audit_ring:
    if not DEBUG:
        raise ImproperlyConfigured(
            "POLICYDESK_AUDIT_HMAC_KEY is required (or a keyring in POLICYDESK_AUDIT_HMAC_KEYS) when "
            "POLICYDESK_DEBUG is off (`make up` writes a random one to .env for local use)"
        )
    _audit_ring = {"": "debug-only-" + SECRET_KEY}
AUDIT_HMAC_KEYS: dict[str, str] = _audit_ring
# Which key signs from now on: the keyring's last unless named (a rolling rotation adds the new
# key everywhere first, then names it; a process never signs with a key older than the chain's).
AUDIT_HMAC_KEY_ID: str = env_str("AUDIT_HMAC_KEY_ID", list(_audit_ring)[-1])
if AUDIT_HMAC_KEY_ID not in _audit_ring:
    raise ImproperlyConfigured(
        f"POLICYDESK_AUDIT_HMAC_KEY_ID={AUDIT_HMAC_KEY_ID!r} is not a key id of POLICYDESK_AUDIT_HMAC_KEYS"
    )
# Keys pseudonymous user ids and PII placeholder digests: the oldest key, so that neither
# changes when the chain's key is rotated.
AUDIT_HMAC_KEY: str = next(iter(_audit_ring.values()))

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "core",
    "axes",
    "accounts",
    "chat",
    "rag",
    "llm",
    "privacy",
    "audit",
    "api",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A session past its working day or idle too long ends (all sign-in methods); an OIDC one
    # whose re-check is due is signed out for anything but a page load.
    "accounts.sessions.SessionLifetimeMiddleware",
    # OIDC sessions only, and only while OIDC is on: a periodic silent sign-in at the provider.
    "accounts.oidc.DirectorySessionRefresh",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# --- Sign-in: local accounts, OIDC, LDAP (config/identity.py) -------------------------------
# Sets AUTHENTICATION_BACKENDS, AUTH_LOCAL/AUTH_OIDC/AUTH_LDAP, GROUP_MAP, and the OIDC_* and
# AUTH_LDAP_* settings of mozilla-django-oidc and django-auth-ldap for the methods that are on.
_sign_in = sign_in_settings(debug=DEBUG)
AUTHENTICATION_BACKENDS: list[str] = _sign_in.pop("AUTHENTICATION_BACKENDS")
AUTH_LOCAL: bool = _sign_in.pop("AUTH_LOCAL")
AUTH_OIDC: bool = _sign_in.pop("AUTH_OIDC")
AUTH_LDAP: bool = _sign_in.pop("AUTH_LDAP")
GROUP_MAP = _sign_in.pop("GROUP_MAP")
# Read by PolicyDesk's code; empty while their method is off.
OIDC_ISSUER: str = _sign_in.pop("OIDC_ISSUER", "")
OIDC_PROVIDER_NAME: str = _sign_in.pop("OIDC_PROVIDER_NAME", "")
OIDC_RP_CLIENT_ID: str = _sign_in.pop("OIDC_RP_CLIENT_ID", "")
OIDC_RP_SIGN_ALGO: str = _sign_in.pop("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_SUBJECT_CLAIM: str = _sign_in.pop("OIDC_SUBJECT_CLAIM", "sub")
OIDC_USERNAME_CLAIM: str = _sign_in.pop("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM: str = _sign_in.pop("OIDC_GROUPS_CLAIM", "groups")
OIDC_CLOCK_SKEW_SECONDS: int = _sign_in.pop("OIDC_CLOCK_SKEW_SECONDS", 60)
OIDC_TIMEOUT: float = _sign_in.pop("OIDC_TIMEOUT", 5.0)
OIDC_VERIFY_SSL: bool | str = _sign_in.pop("OIDC_VERIFY_SSL", True)
AUTH_LDAP_SERVER_URI: str = _sign_in.pop("AUTH_LDAP_SERVER_URI", "")
AUTH_LDAP_BIND_DN: str = _sign_in.pop("AUTH_LDAP_BIND_DN", "")
AUTH_LDAP_BIND_PASSWORD: str = _sign_in.pop("AUTH_LDAP_BIND_PASSWORD", "")
AUTH_LDAP_START_TLS: bool = _sign_in.pop("AUTH_LDAP_START_TLS", False)
AUTH_LDAP_CONNECTION_OPTIONS: dict[int, object] = _sign_in.pop("AUTH_LDAP_CONNECTION_OPTIONS", {})
LDAP_USER_SEARCH_BASE: str = _sign_in.pop("LDAP_USER_SEARCH_BASE", "")
LDAP_USER_SEARCH_FILTER: str = _sign_in.pop("LDAP_USER_SEARCH_FILTER", "")
LDAP_DEPROVISION_MINUTES: int = _sign_in.pop("LDAP_DEPROVISION_MINUTES", 15)
LDAP_ID_ATTRIBUTE: str = _sign_in.pop("LDAP_ID_ATTRIBUTE", "entryUUID")
# The rest are only the libraries' own options (OIDC_RP_SCOPES, OIDC_USE_PKCE, AUTH_LDAP_USER_SEARCH...).
globals().update(_sign_in)

# --- Login throttling (django-axes) --------------------------------------------------------
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
# Failures are counted in the shared Redis cache, for the cool-off only: no table of usernames and
# client addresses to keep.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Either is enough to lock: one account tried from many addresses, or one address trying many.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# axes' own log lines name the username and the address; the audit event says what happened.
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]


def _embedded_database_url() -> str:
    # The socket directory `make up` uses; see devserver/embedded.py.
    return f"postgresql://postgres@/policydesk?host={DATA_DIR / 'pg'}"


DATABASE_URL = env_str("DATABASE_URL", _embedded_database_url())
DATABASES = {"default": parse_database_url(DATABASE_URL)}
# A per-process connection pool (psycopg_pool): code that gives its connection back before a
# slow LLM or embedding call returns it to the pool instead of disconnecting, so a question no
# longer pays for new PostgreSQL backends (measured: 4 connects a question under load).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 8, minimum=0, maximum=1000)
if DB_POOL_MAX_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1, maximum=300.0),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = validate_redis_url(env_str("REDIS_URL", "redis://127.0.0.1:6379/0"))
# Shared between processes: rate-limit counters and the LLM gateway's breaker snapshots.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "policydesk",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, and channels-redis blocks
            # in BZPOPMIN for 5 s: an idle socket would time out. Give the read headroom.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": "policydesk",
            "capacity": 1000,
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Deployment edges (docs/audit-and-security.md, "Sign-in and deployment") -------------------
# Plain HTTP on purpose: the embedded `make run` on 127.0.0.1 (devserver sets it), a lab. Off,
# cookies are Secure and HSTS is sent, as behind any TLS front.
LOCAL_HTTP = env_bool("LOCAL_HTTP", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not (DEBUG or LOCAL_HTTP))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Sent on HTTPS responses only (Django's SecurityMiddleware); 0 turns it off.
SECURE_HSTS_SECONDS = env_int(
    "HSTS_SECONDS", 0 if (DEBUG or LOCAL_HTTP) else 365 * 24 * 3600, minimum=0, maximum=2 * 365 * 24 * 3600
)
# The proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (core/proxies.py): a number
# of hops, or their addresses and networks. None by default: Daphne published directly.
TRUSTED_PROXIES = trusted_proxies_parse(env_str("TRUSTED_PROXIES", ""))
# A session lasts at most a working day, and ends sooner after POLICYDESK_SESSION_IDLE_MINUTES
# without a page load or form post (accounts/sessions.py).
SESSION_HOURS = env_float("SESSION_HOURS", 10.0, minimum=0.1, maximum=24 * 30)
SESSION_COOKIE_AGE = int(SESSION_HOURS * 3600)
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 120, minimum=0, maximum=24 * 60 * 30)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("vi", "Tiếng Việt")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"  # filled by collectstatic in the Docker image only
# Serve static files straight from the finders: no collectstatic step on a fresh machine.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TIME_LIMIT", 360, minimum=1)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "housekeeping"
CELERY_TASK_ROUTES = {"rag.tasks.*": {"queue": "ingestion"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        "POLICYDESK_CELERY_TIME_LIMIT must be greater than POLICYDESK_CELERY_SOFT_TIME_LIMIT"
    )

# --- Product settings (used by the rag, llm, privacy and audit apps) ----------
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
LOCAL_LLM_URL = env_str("LOCAL_LLM_URL", "http://127.0.0.1:8765/v1")
# The gateway's backends in priority order; global defaults apply where a backend is silent.
LLM_DEFAULTS = dict(  # llm.config.BackendDefaults' fields
    connect_timeout=env_float("LLM_CONNECT_TIMEOUT", 2.0, minimum=0.05),
    first_token_timeout=env_float("LLM_FIRST_TOKEN_TIMEOUT", 30.0, minimum=0.05),
    idle_timeout=env_float("LLM_IDLE_TIMEOUT", 15.0, minimum=0.05),
    total_timeout=env_float("LLM_TOTAL_TIMEOUT", 180.0, minimum=0.1),
    max_concurrency=env_int("LLM_MAX_CONCURRENCY", 8, minimum=1),
    queue_timeout=env_float("LLM_QUEUE_TIMEOUT", 2.0, minimum=0.0),
    max_tokens=env_int("LLM_MAX_TOKENS", 512, minimum=1),
    temperature=env_float("LLM_TEMPERATURE", 0.2, minimum=0.0, maximum=2.0),
    context_tokens=env_int("LLM_CONTEXT_TOKENS", 4096, minimum=256),
    stream_interval=env_float("LLM_STREAM_INTERVAL", 0.1, minimum=0.0, maximum=2.0),
)
# Raw JSON; llm.config.llm_backends() validates it when the llm app is ready (at every start).
LLM_BACKENDS = env_json("LLM_BACKENDS", None)
LLM_BREAKER_FAILURES = env_int("LLM_BREAKER_FAILURES", 3, minimum=1)
LLM_BREAKER_COOLDOWN = env_float("LLM_BREAKER_COOLDOWN", 30.0, minimum=0.1)
LLM_PROBE_INTERVAL = env_float("LLM_PROBE_INTERVAL", 15.0, minimum=0.0)
# Paced reads of all streams per second one process aims to stay under: with more streams
# than this times LLM_STREAM_INTERVAL, each stream's interval grows (up to 0.5 s). 0: never.
LLM_STREAM_READS_PER_SECOND = env_int("LLM_STREAM_READS_PER_SECOND", 1000, minimum=0)
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 16 * 1024, minimum=256)
CHAT_MAX_QUESTION_CHARS = env_int("CHAT_MAX_QUESTION_CHARS", 2000, minimum=10)
# How stale a socket's "may this user ask?" answer may be before it is read again.
CHAT_PERMISSION_RECHECK_SECONDS = env_float("CHAT_PERMISSION_RECHECK_SECONDS", 10.0, minimum=0.0)
CHAT_RATE_LIMIT_PER_MINUTE = env_int("CHAT_RATE_LIMIT_PER_MINUTE", 10, minimum=1)
# How long /readyz reuses its last checks (database, Redis, LLM, models).
READYZ_CACHE_SECONDS = env_float("READYZ_CACHE_SECONDS", 5.0, minimum=0.0)
CHAT_FEEDBACK_RATE_LIMIT_PER_MINUTE = env_int("CHAT_FEEDBACK_RATE_LIMIT_PER_MINUTE", 20, minimum=1)
# The OpenAI-compatible API (api/, docs/api.md): the largest request body, history included.
API_MAX_REQUEST_BYTES = env_int("API_MAX_REQUEST_BYTES", 256 * 1024, minimum=1024, maximum=16 * 1024 * 1024)
# How long an answer's writer keeps retrying when the database is unreachable at the end of an
# answer; a question still unrecorded after CHAT_INTERRUPTED_AFTER_SECONDS (the periodic task
# checks every minute) gets an `interrupted` audit event instead.
CHAT_RECORD_RETRY_SECONDS = env_float("CHAT_RECORD_RETRY_SECONDS", 120.0, minimum=0.0, maximum=3600.0)
CHAT_INTERRUPTED_AFTER_SECONDS = env_float("CHAT_INTERRUPTED_AFTER_SECONDS", 600.0, minimum=60.0)
RETRIEVAL_K = env_int("RETRIEVAL_K", 5, minimum=1, maximum=50)
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 64, minimum=1, maximum=1000)
# --- Policy versions (rag/lifecycle.py, docs/policy-versions.md) ---------------------------
# Superseded versions are kept this many days after they went out of effect, for "as of"
# questions and auditors; 0 keeps them for ever.
VERSION_RETENTION_DAYS = env_int("VERSION_RETENTION_DAYS", 0, minimum=0)
# A document whose review-by date is this close is listed as due for review.
REVIEW_DUE_DAYS = env_int("REVIEW_DUE_DAYS", 30, minimum=0, maximum=3650)
# Answers quoting a policy past its review-by date say so in one line.
REVIEW_NOTICE_IN_ANSWERS = env_bool("REVIEW_NOTICE_IN_ANSWERS", False)
# Tests only: a file holding an ISO date that is "today" while it holds one (core/clock.py).
TEST_CLOCK_FILE = env_str("TEST_CLOCK_FILE", "")
# Reading one file may take this long before that document alone fails (a hostile file can be
# built to make a parser work for minutes).
INGEST_PARSE_SECONDS = env_float("INGEST_PARSE_SECONDS", 120.0, minimum=0.0)
EMBEDDER = env_choice("EMBEDDER", "e5", ("e5", "e5-fp32", "minilm", "minilm-torch"))
# Where the ONNX export of the embedding model is cached (written on first use).
EMBEDDER_CACHE_DIR = Path(env_str("EMBEDDER_CACHE_DIR", str(DATA_DIR / "models")))
EMBED_THREADS = env_int("EMBED_THREADS", max(1, os.cpu_count() or 1), minimum=1)

# --- Privacy and audit ----------------------------------------------------------------
EMPLOYEE_ID_PATTERN = env_str("EMPLOYEE_ID_PATTERN", r"\b(?:EMP|KL)-?\d{5,6}\b")
try:
    re.compile(EMPLOYEE_ID_PATTERN)
except re.error as exc:
    raise ImproperlyConfigured(f"POLICYDESK_EMPLOYEE_ID_PATTERN is not a valid regex: {exc}") from None
# Processes that analyse answers for the web process, so spaCy's NER does not hold the event
# loop's GIL (privacy.pool). 0: analyse in the calling thread.
REDACTION_PROCESSES = env_int("REDACTION_PROCESSES", 1, minimum=0, maximum=16)
REDACTION_SCORE_THRESHOLD = env_float("REDACTION_SCORE_THRESHOLD", 0.35, minimum=0.0, maximum=1.0)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=1)
# The signed head (docs/audit-and-security.md#the-signed-head): the chain's latest seq and hash,
# HMAC-signed and appended to a file outside the database every AUDIT_HEAD_EVENTS events and at
# least every AUDIT_HEAD_SECONDS while the log grows; optionally also sent to syslog.
AUDIT_HEAD_FILE = Path(env_str("AUDIT_HEAD_FILE", str(DATA_DIR / "audit" / "signed-heads.jsonl")))
AUDIT_HEAD_SECONDS = env_float("AUDIT_HEAD_SECONDS", 60.0, minimum=1.0)
AUDIT_HEAD_EVENTS = env_int("AUDIT_HEAD_EVENTS", 100, minimum=0)
# "/dev/log", "host:514" (UDP) or empty for none.
AUDIT_HEAD_SYSLOG = env_str("AUDIT_HEAD_SYSLOG", "")

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ("json", "plain"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(trace_id)s] %(message)s"},
    },
    # PII scrubbing first (the last line of defence), then the trace/request ids.
    "filters": {
        "redact_pii": {"()": "privacy.logging.RedactingFilter"},
        "trace": {"()": "core.logs.TraceFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_pii", "trace"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request line at INFO: noise, and URLs are not ours to log.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "presidio-analyzer": {"level": "WARNING"},
        "MARKDOWN": {"level": "WARNING"},
        # Both name the account in their INFO and DEBUG lines; accounts.oidc and accounts.ldap
        # log what went wrong without it.
        "django_auth_ldap": {"level": "ERROR"},
        "mozilla_django_oidc": {"level": "WARNING"},
    },
}

# --- Observability ------------------------------------------------------------------
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
# Prometheus scrapes /metrics with "Authorization: Bearer <token>"; staff sessions also work.
METRICS_TOKEN = env_optional_str("METRICS_TOKEN")
