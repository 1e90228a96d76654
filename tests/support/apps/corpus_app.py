"""Plants every sample of tests/support/corpus/secrets.json on every path out of the process.

Run under ``opentelemetry-instrument python -m tests.support.apps.corpus_app``: each
sample goes into a span attribute, a span event, a span status, an exception
message (and so its stack trace), a log body, a log attribute, an exception
logged through stdlib logging, and a metric attribute.  The process then exits,
and the SDK's shutdown flushes everything to the receiver.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "secrets.json"
# LogRecord's own attribute names cannot be passed in `extra`.
RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class PlantedError(Exception):
    pass


def plant(index: int, key: str, value: object, tracer: object, counter: object, log: logging.Logger) -> None:
    attribute_key = key or "app.note"
    # In free text a keyed secret appears with its name, as in `log.info("password=%s", pw)`.
    shown = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = f"{key}={shown}" if key else shown
    with tracer.start_as_current_span(f"sample-{index}") as span:  # type: ignore[attr-defined]
        span.set_attribute(attribute_key, value)
        span.add_event("planted", {attribute_key: value, "app.detail": text})
        try:
            raise PlantedError(f"request failed: {text}")
        except PlantedError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"failed with {text}"))
            log.exception("handling sample %d failed", index)
        log_key = f"app.{attribute_key}" if attribute_key in RESERVED else attribute_key
        log.warning("sample %d: %s", index, text, extra={log_key: text})
    counter.add(1, {attribute_key: text})  # type: ignore[attr-defined]


def main() -> int:
    samples = json.loads(CORPUS.read_text())
    tracer = trace.get_tracer("corpus_app")
    counter = metrics.get_meter("corpus_app").create_counter("corpus_app.requests")
    log = logging.getLogger("corpus_app")
    log.setLevel(logging.INFO)
    for index, sample in enumerate(samples):
        plant(index, sample["key"], sample["value"], tracer, counter, log)
    print(f"planted {len(samples)} samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
