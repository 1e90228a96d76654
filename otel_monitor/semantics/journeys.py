"""User journeys: milestones, funnels, pseudonymous user ids, first-time detection.

``otel_monitor.journey_milestone("first_purchase", user_id=42, journey="purchase")`` emits a
log-based event (``event_name="monitor.journey.milestone"``) and counts
``monitor.journey.milestones``.  Events are logs, not spans, so funnels stay
complete when traces are sampled.

User ids never leave the process raw: ``enduser.pseudo.id`` is
HMAC-SHA256(``OTEL_MONITOR_USER_ID_KEY``, id).  Without a key the milestone is
still counted but carries no id: a plain hash of a user id is reversible by
enumeration, so there is no silent fallback to one.

Funnels (ordered steps) come from the config file; a step may name an
operation whose success emits it::

    funnels:
      purchase:
        steps: [signup, {name: first_cart, operation: add_to_cart}, {name: first_purchase, operation: checkout}]

With ``OTEL_MONITOR_JOURNEY_STORE`` (a SQLAlchemy URL) the first time each
pseudonymous user reaches each step is recorded, across processes, and the
event carries ``monitor.journey.first``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import semconv
from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

_log = logging.getLogger("otel_monitor")
DEFAULT_JOURNEY = "default"
ENDUSER_ID = "enduser.id"  # semconv: the raw id some apps set on spans; we pseudonymise it


def pseudonymize(user_id: str | int, key: str) -> str:
    """``enduser.pseudo.id`` of ``user_id``: hex HMAC-SHA256 under ``key``."""
    # surrogatepass: an id with a lone surrogate (from a bad client) still hashes instead of failing the span.
    return hmac.new(
        key.encode("utf-8", "surrogatepass"), str(user_id).encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()


@dataclass
class Funnels:
    """Declared funnels: their ordered steps, and steps emitted when an operation succeeds."""

    steps: dict[str, list[str]] = field(default_factory=dict)
    journey_of_step: dict[str, str] = field(default_factory=dict)
    on_operation: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # operation -> (journey, step)


def load_funnels(config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None) -> Funnels:
    """The ``funnels:`` section; a bad entry is reported and skipped."""
    funnels = Funnels()
    section = config.section("funnels")
    if section is None:
        return funnels
    if not isinstance(section, dict):
        report_problem(
            f"{config.where('funnels')}: 'funnels' must map funnel names to {{steps: [...]}}",
            strict=strict,
            problems=problems,
        )
        return funnels
    for journey, spec in section.items():
        steps = spec.get("steps") if isinstance(spec, dict) else None
        if not isinstance(steps, list) or not steps:
            report_problem(
                f"{config.where('funnels', journey)}: funnel {journey!r} needs a non-empty 'steps' list",
                strict=strict,
                problems=problems,
            )
            continue
        names: list[str] = []
        for i, step in enumerate(steps):
            name, op = (
                (step, None)
                if isinstance(step, str)
                else ((step.get("name"), step.get("operation")) if isinstance(step, dict) else (None, None))
            )
            if (
                not isinstance(name, str)
                or not name
                or (op is not None and not isinstance(op, str))
                or (isinstance(step, dict) and set(step) - {"name", "operation"})
            ):
                report_problem(
                    f"{config.where('funnels', journey, 'steps', i)}: a step is a name or "
                    f"{{name: ..., operation: ...}}",
                    strict=strict,
                    problems=problems,
                )
                continue
            names.append(name)
            funnels.journey_of_step.setdefault(name, str(journey))
            if op:
                funnels.on_operation.setdefault(op, []).append((str(journey), name))
        funnels.steps[str(journey)] = names
    return funnels


class JourneyStore:
    """First time each pseudonymous user reached each step, in any SQLAlchemy database."""

    def __init__(self, url: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError:
            raise RuntimeError(
                'OTEL_MONITOR_JOURNEY_STORE needs SQLAlchemy: pip install "otel-monitor[sqlalchemy]"'
            ) from None
        self._sa = sa
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        metadata = sa.MetaData()
        self.table = sa.Table(
            "otel_monitor_journey_firsts",
            metadata,
            sa.Column("pseudo_id", sa.String(64), primary_key=True),
            sa.Column("journey", sa.String(200), primary_key=True),
            sa.Column("step", sa.String(200), primary_key=True),
            sa.Column("first_seen", sa.Float, nullable=False),
        )
        metadata.create_all(self.engine, checkfirst=True)

    def record(self, pseudo_id: str, journey: str, step: str) -> bool:
        """Record a visit; True when this was the user's first time at this step."""
        sa = self._sa
        # The primary key makes the first insert win, even with racing processes.
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    self.table.insert().values(pseudo_id=pseudo_id, journey=journey, step=step, first_seen=time.time())
                )
            return True
        except sa.exc.IntegrityError:
            return False

    def close(self) -> None:
        self.engine.dispose()


class JourneyRecorder:
    """Emits milestone events and counts them."""

    def __init__(
        self,
        logger: Any,
        counter: Any,
        key: str | None = None,
        store: JourneyStore | None = None,
        funnels: Funnels | None = None,
    ) -> None:
        self.logger = logger
        self.counter = counter
        self.key = key
        self.store = store
        self.funnels = funnels or Funnels()
        self._missing_key_reported = False
        self._counter_keys: dict[tuple[str, str, bool | None], dict[str, Any]] = {}

    def milestone(
        self,
        step: str,
        user_id: str | int | None = None,
        journey: str | None = None,
        pseudo_id: str | None = None,
        **attributes: Any,
    ) -> bool | None:
        journey = journey or self.funnels.journey_of_step.get(step, DEFAULT_JOURNEY)
        if pseudo_id is None and user_id is not None:
            if self.key:
                pseudo_id = pseudonymize(user_id, self.key)
            elif not self._missing_key_reported:
                self._missing_key_reported = True
                _log.error(
                    "otel-monitor: journey_milestone(user_id=...) needs OTEL_MONITOR_USER_ID_KEY to "
                    "pseudonymise user ids; milestones are counted without a user id until it is set"
                )
        first: bool | None = None
        if self.store is not None and pseudo_id is not None:
            try:
                first = self.store.record(pseudo_id, journey, step)
            except Exception as exc:  # noqa: BLE001 - a store outage must not fail the request
                from otel_monitor.guard import internal_error

                internal_error("journey store", exc)
        event: dict[str, Any] = {k: v for k, v in attributes.items() if v is not None}
        event[semconv.MONITOR_JOURNEY_NAME] = journey
        event[semconv.MONITOR_JOURNEY_STEP] = step
        if pseudo_id is not None:
            event[semconv.ENDUSER_PSEUDO_ID] = pseudo_id
        if first is not None:
            event[semconv.MONITOR_JOURNEY_FIRST] = first
        self.logger.emit(
            event_name=semconv.EVENT_JOURNEY_MILESTONE, attributes=event, body=f"journey {journey}: {step}"
        )
        # With a store, first=true points count each user once per step: the funnel of distinct users.
        counter_key = (journey, step, first)
        labels = self._counter_keys.get(counter_key)
        if labels is None:
            labels = {semconv.MONITOR_JOURNEY_NAME: journey, semconv.MONITOR_JOURNEY_STEP: step}
            if first is not None:
                labels[semconv.MONITOR_JOURNEY_FIRST] = first
            if len(self._counter_keys) < 10_000:
                self._counter_keys[counter_key] = labels
        self.counter.add(1, labels, key=counter_key)
        return first

    def on_operation_success(self, operation: str, attributes: Any) -> None:
        """Emit the milestones the funnels tie to ``operation`` succeeding."""
        for journey, step in self.funnels.on_operation.get(operation, ()):
            pseudo = attributes.get(semconv.ENDUSER_PSEUDO_ID)
            self.milestone(
                step,
                user_id=attributes.get(ENDUSER_ID),
                journey=journey,
                pseudo_id=str(pseudo) if pseudo is not None else None,
            )
