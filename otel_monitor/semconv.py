"""The telemetry contract: every attribute, metric and event name otel-monitor emits.

The collector configuration, the Prometheus rules, the Grafana dashboards, the
console and the tests all use these names; ``tests/unit/test_contract.py`` fails when
a name used under ``collector/`` is not defined here.

Semantic-convention names come first; our own live under ``monitor.``.
"""

from __future__ import annotations

from typing import Final

# --- span and log attributes: semantic conventions we rely on ---------------
ERROR_TYPE: Final = "error.type"
HTTP_ROUTE: Final = "http.route"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
# Older HTTP conventions, still sent by some SDKs and instrumentations.
HTTP_METHOD_OLD: Final = "http.method"
HTTP_STATUS_CODE_OLD: Final = "http.status_code"
URL_PATH: Final = "url.path"
DB_SYSTEM_NAME: Final = "db.system.name"
DB_SYSTEM: Final = "db.system"  # older SQLAlchemy instrumentations still emit this
SERVER_ADDRESS: Final = "server.address"
DB_QUERY_TEXT: Final = "db.query.text"
DB_STATEMENT_OLD: Final = "db.statement"  # the older name of db.query.text
TELEMETRY_SDK_NAME: Final = "telemetry.sdk.name"
TELEMETRY_SDK_LANGUAGE: Final = "telemetry.sdk.language"
TELEMETRY_SDK_VERSION: Final = "telemetry.sdk.version"
TELEMETRY_DISTRO_NAME: Final = "telemetry.distro.name"
TELEMETRY_DISTRO_VERSION: Final = "telemetry.distro.version"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
ENDUSER_PSEUDO_ID: Final = "enduser.pseudo.id"
OTEL_METRIC_OVERFLOW: Final = "otel.metric.overflow"

# --- our own attributes --------------------------------------------------------
MONITOR_OPERATION: Final = "monitor.operation"
MONITOR_ERROR_CATEGORY: Final = "monitor.error.category"
MONITOR_ERROR_FINGERPRINT: Final = "monitor.error.fingerprint"
MONITOR_ERROR_SEVERITY: Final = "monitor.error.severity"
# How a call ended (OPERATION_OUTCOMES): on every monitor.operation.duration point.
MONITOR_OPERATION_OUTCOME: Final = "monitor.operation.outcome"
MONITOR_CACHE_HIT: Final = "monitor.cache.hit"
MONITOR_CACHE_NAME: Final = "monitor.cache.name"
MONITOR_SERVICE_LAYER: Final = "monitor.service.layer"
MONITOR_JOURNEY_NAME: Final = "monitor.journey.name"
MONITOR_JOURNEY_STEP: Final = "monitor.journey.step"
MONITOR_JOURNEY_FIRST: Final = "monitor.journey.first"
MONITOR_HEALTH_CHECK: Final = "monitor.health.check"
MONITOR_HEALTH_STATE: Final = "monitor.health.state"
MONITOR_HEALTH_PREVIOUS_STATE: Final = "monitor.health.previous_state"
MONITOR_HEALTH_CRITICAL: Final = "monitor.health.critical"
MONITOR_KPI: Final = "monitor.kpi"  # the business KPI a point belongs to (revenue, cart_started...)
MONITOR_BUSINESS_CURRENCY: Final = "monitor.business.currency"  # ISO 4217 code of an amount
MONITOR_BUSINESS_RETURNING: Final = "monitor.business.returning"  # a distinct user seen on an earlier day
MONITOR_SIGNAL: Final = "monitor.signal"  # which signal a self-metric is about
MONITOR_COMPONENT: Final = "monitor.component"  # which of our components failed

# --- metrics --------------------------------------------------------------------
METRIC_OPERATION_DURATION: Final = "monitor.operation.duration"
METRIC_CACHE_REQUESTS: Final = "monitor.cache.requests"
METRIC_FALLBACKS: Final = "monitor.fallbacks"
METRIC_JOURNEY_MILESTONES: Final = "monitor.journey.milestones"
# Business KPIs (otel_monitor.business): amounts by currency, event counts, distinct users per day.
METRIC_BUSINESS_AMOUNT: Final = "monitor.business.amount"
METRIC_BUSINESS_EVENTS: Final = "monitor.business.events"
METRIC_BUSINESS_USERS: Final = "monitor.business.users"
# Items waiting in an app's queue (an outbox, a job queue), observed at each export, per queue name.
METRIC_QUEUE_DEPTH: Final = "monitor.queue.depth"
MONITOR_QUEUE_NAME: Final = "monitor.queue.name"
METRIC_HEALTH_STATUS: Final = "monitor.health.status"
METRIC_HEALTH_CHECK_DURATION: Final = "monitor.health.check.duration"
# External probes: the collector's httpcheck receiver's names, which `otel-monitor probe`
# emits too, so the uptime rules read either.
METRIC_HTTPCHECK_STATUS: Final = "httpcheck.status"  # 1 on the point of the answer's status class
METRIC_HTTPCHECK_DURATION: Final = "httpcheck.duration"  # ms
METRIC_HTTPCHECK_ERROR: Final = "httpcheck.error"  # 1 when no answer came
HTTPCHECK_URL: Final = "http.url"
HTTPCHECK_METHOD: Final = "http.method"
HTTPCHECK_STATUS_CODE: Final = "http.status_code"
HTTPCHECK_STATUS_CLASS: Final = "http.status_class"
HTTPCHECK_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
HTTPCHECK_ERROR_MESSAGE: Final = "error.message"
# The HTTP server duration of the semantic conventions, read from any SDK (not emitted by us).
HTTP_SERVER_REQUEST_DURATION: Final = "http.server.request.duration"
# Self-observability: what otel-monitor itself dropped or failed at.
METRIC_SELF_DROPPED: Final = "monitor.sdk.dropped"
METRIC_SELF_INTERNAL_ERRORS: Final = "monitor.sdk.internal_errors"

# --- log-based events (``event_name`` on a log record) ---------------------------
EVENT_JOURNEY_MILESTONE: Final = "monitor.journey.milestone"
EVENT_HEALTH_CHANGE: Final = "monitor.health.change"

# --- values -----------------------------------------------------------------------
ERROR_CATEGORIES: Final = (
    "timeout",
    "network",
    "database",
    "validation",
    "auth",
    "rate_limit",
    "dependency",
    "resource_exhausted",
    "bug",
    "cancelled",
    "unknown",
)
# monitor.operation.outcome values.  Only server_error fails a call (error.type
# is set then); the others are the caller's mistakes, counted apart so auth
# failures and rejected requests show without eating the error budget.
OPERATION_OUTCOMES: Final = (
    "success",
    "client_error",  # any other 4xx
    "unauthenticated",  # 401
    "forbidden",  # 403
    "rejected",  # 422 validation, or a CSRF check refusing the request
    "server_error",
)
# The 4xx outcomes that are authentication or authorisation failures.
AUTH_FAILURE_OUTCOMES: Final = ("unauthenticated", "forbidden")
# monitor.error.severity values, least severe first; also the alert levels.
ERROR_SEVERITIES: Final = ("info", "warning", "error", "critical")
HEALTH_STATES: Final = ("up", "degraded", "down")
# monitor.health.status values: 1 up, 0 down; degraded is 0.5 so it is
# distinguishable yet still counts as "serving" in any ``> 0`` test.
HEALTH_STATUS_VALUE: Final = {"up": 1.0, "degraded": 0.5, "down": 0.0}
SERVICE_LAYERS: Final = ("primary", "fallback", "cache", "default")


def all_names() -> frozenset[str]:
    """Every attribute, metric and event name of the contract."""
    return frozenset(value for key, value in globals().items() if key.isupper() and isinstance(value, str))
