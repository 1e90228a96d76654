"""The least a FastAPI request can be: one async endpoint, no thread pool, no app work.

What instrumentation adds per request here is the request path's own cost
(server span, context, processors, metrics), with nothing of the app's around it::

    python -m benchmarks.instructions --app benchmarks.request_path_app:app --path /ok --no-floors
    python -m benchmarks.instructions --app benchmarks.request_path_app:app --path /ok --no-floors \\
        --env OTEL_MONITOR_LEAN_REQUESTS=false
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}
