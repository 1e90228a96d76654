"""The least a FastAPI request can be: one async endpoint, no thread pool, no app work.

What instrumentation adds per request here is the request path's own cost
(server span, context, processors, metrics), with nothing of the app's around it::

    python -m benchmarks.instructions --app benchmarks.request_path_app:app --path /ok --no-floors
    python -m benchmarks.instructions --app benchmarks.request_path_app:app --path /ok --no-floors \\
        --env OTEL_MONITOR_LEAN_REQUESTS=false

``/fail`` is the same request ending in an unhandled ``TimeoutError`` (a 500
from Starlette's error middleware, the traceback logged by the server): what
monitoring costs an app whose every request fails::

    python -m benchmarks.instructions --app benchmarks.request_path_app:app --path /fail --no-floors --failing
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


async def _call_dependency() -> None:
    raise TimeoutError("upstream did not answer within 2.0 s")


@app.get("/fail")
async def fail() -> dict[str, bool]:
    await _call_dependency()
    return {"ok": True}
