"""The health endpoints of a FastAPI app, added by one call or by configuration.

- ``/health``: liveness.  The process answers; it never looks at
  dependencies, so a database outage does not get every pod restarted.
- ``/health/detailed``: readiness and detail.  The cached result of every
  check; 200 when healthy or degraded, 503 when a critical check is down
  (or has no result yet).  With a token configured, a request without it
  gets only the verdict and its status code (enough for a readiness probe);
  the per-check detail, which reveals the service's topology, needs
  ``Authorization: Bearer <token>`` or ``?token=<token>``.

Both answer from the registry's cache and never wait on a dependency.
"""

from __future__ import annotations

import hmac
import threading
import types
from typing import Any

from otel_monitor import patching, runtime
from otel_monitor.config.file import ConfigFile
from otel_monitor.config.settings import Settings, report_problem
from otel_monitor.health.registry import HealthRegistry, default_registry

_NO_STORE = {"Cache-Control": "no-store"}
_MARK = "_otel_monitor_health_paths"


def token_given(request: Any) -> str | None:
    """The token a request carries: an ``Authorization: Bearer`` header, else ``?token=``."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return request.query_params.get("token")


def add_health_endpoints(
    app: Any,
    registry: HealthRegistry | None = None,
    *,
    path: str = "/health",
    detailed_path: str = "/health/detailed",
    token: str | None = None,
) -> HealthRegistry:
    """Add liveness (``path``) and detailed readiness (``detailed_path``) routes to a FastAPI app.

    ``registry`` defaults to the process's registry (the one the config file
    fills); it is started if it is not running.  ``token`` defaults to
    ``OTEL_MONITOR_HEALTH_TOKEN``.  Returns the registry.
    """
    try:
        from starlette.requests import Request
        from starlette.responses import JSONResponse
    except ImportError:
        raise ImportError('health endpoints need FastAPI: pip install "otel-monitor[fastapi]"') from None
    registry = registry if registry is not None else default_registry()
    if token is None:
        from otel_monitor.config.settings import resolve

        token = resolve().health_token
    expected = token.encode() if token else None

    async def liveness() -> Any:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def detailed(request: Any) -> Any:
        registry.start()  # no-op while running; restarts the runner in a forked worker
        report = registry.report()
        if expected is not None:
            given = token_given(request)
            if given is None:
                return JSONResponse({"status": report.status}, status_code=report.http_status, headers=_NO_STORE)
            if not hmac.compare_digest(given.encode(), expected):
                return JSONResponse(
                    {"error": "invalid health token"},
                    status_code=401,
                    headers={**_NO_STORE, "WWW-Authenticate": "Bearer"},
                )
        return JSONResponse(report.to_dict(), status_code=report.http_status, headers=_NO_STORE)

    # FastAPI injects the request by its annotation; FastAPI is optional, so set it here.
    detailed.__annotations__["request"] = Request
    app.add_api_route(path, liveness, methods=["GET", "HEAD"], include_in_schema=False, name="otel_monitor_liveness")
    app.add_api_route(
        detailed_path, detailed, methods=["GET", "HEAD"], include_in_schema=False, name="otel_monitor_health_detailed"
    )
    setattr(app, _MARK, (path, detailed_path))
    registry.start()
    return registry


# --- by configuration, under the launcher ----------------------------------------------

_hook_lock = threading.Lock()
_hook_registered = False  # the import hook is registered once per process; what it adds is the runtime's


def _routed_paths(app: Any) -> set[str]:
    paths = (getattr(route, "path", None) for route in getattr(app.router, "routes", ()))
    return {path for path in paths if isinstance(path, str)}


def _add_on_build(wrapped: Any, app: Any, args: Any, kwargs: Any) -> Any:
    # Called when Starlette builds the middleware stack: on the first request
    # or lifespan event, after the app's own routes exist, so a /health of the
    # app's own wins over ours instead of being shadowed.
    options = runtime.current().health_endpoints
    if options is not None and not hasattr(app, _MARK):
        from otel_monitor.guard import guarded

        with guarded("health endpoints"):
            taken = _routed_paths(app)
            if options["path"] in taken or options["detailed_path"] in taken:
                setattr(app, _MARK, ())
            else:
                add_health_endpoints(
                    app,
                    options["registry"],
                    path=options["path"],
                    detailed_path=options["detailed_path"],
                    token=options["token"],
                )
    return wrapped(*args, **kwargs)


def _patch_fastapi(module: Any) -> None:
    build = module.FastAPI.build_middleware_stack

    def build_middleware_stack(app: Any, *args: Any, **kwargs: Any) -> Any:
        return _add_on_build(types.MethodType(build, app), app, args, kwargs)

    patching.replace(module.FastAPI, "build_middleware_stack", build_middleware_stack)


def install_from_config(config: ConfigFile, settings: Settings) -> HealthRegistry:
    """Fill the process's registry from the ``health:`` section and start it.

    When ``endpoints: true`` (or ``OTEL_MONITOR_HEALTH_ENDPOINTS=true``), every
    FastAPI app gets the endpoints, unless it routes those paths itself.
    The configurator calls this once; problems are reported, never raised
    (except in strict mode).
    """
    from otel_monitor.health.checks import load_health_config

    health = load_health_config(config)
    strict = bool(settings.strict)
    for problem in health.problems:
        report_problem(problem, strict=strict, problems=settings.problems)
    registry = default_registry()
    registry.interval = health.interval or float(settings.health_interval)
    for check in health.checks:
        if check.name not in {c.name for c in registry.checks}:
            registry.add(check)
    if registry.checks:
        registry.start()
    endpoints = health.endpoints if health.endpoints is not None else bool(settings.health_endpoints)
    if endpoints:
        _install_hook(registry, health.path, health.detailed_path, settings.health_token)
    return registry


def _install_hook(registry: HealthRegistry, path: str, detailed_path: str, token: str | None) -> None:
    global _hook_registered
    with _hook_lock:
        first, _hook_registered = not _hook_registered, True
        options = {"registry": registry, "path": path, "detailed_path": detailed_path, "token": token}
        runtime.current().health_endpoints = options
    if first:
        import wrapt

        # Post-import hook: FastAPI is patched only if and when the app imports it.
        wrapt.register_post_import_hook(_patch_fastapi, "fastapi.applications")


def uninstall_for_tests() -> None:
    """Stop adding endpoints to new apps (the class patch stays, inert)."""
    with _hook_lock:
        runtime.current().health_endpoints = None
