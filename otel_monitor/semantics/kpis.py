"""KPI objectives: the ``kpis:`` section of the config file, turned into alerts like the SLOs.

Each KPI is a total or a ratio of what :mod:`otel_monitor.pipeline.business`
records, over a window, with an objective (``min`` and/or ``max``)::

    kpis:
      conversion_rate:                  # buyers among visitors, per hour
        ratio: {of: {users: buyer}, to: {users: visitor}}
        min: 0.02
      cart_abandonment:                 # 1 - orders / carts started
        ratio: {of: {count: order_placed}, to: {count: cart_started}}
        complement: true
        max: 0.9
      refund_rate:
        ratio: {of: {amount: refund, currency: EUR}, to: {amount: revenue, currency: EUR}}
        max: 0.1
      hourly_revenue:
        total: {amount: revenue, currency: EUR}
        window: 1h
        min: 50
        severity: info

A source is one of ``count`` (business events), ``users`` (distinct users
per day), ``amount`` (the sum of amounts, in ``currency``) or ``amounts``
(how many amounts: orders).  ``window`` (default ``1h``) is the range the
increase is taken over; ``for`` (default ``15m``) how long the objective must
be missed; ``severity`` info, warning (default) or critical.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DURATION = re.compile(r"^\d+[smhd]$")
SOURCE_KINDS = ("count", "users", "amount", "amounts")
SEVERITIES = ("info", "warning", "critical")
_KEYS = {"ratio", "total", "complement", "window", "for", "min", "max", "severity", "description"}


@dataclass(frozen=True)
class Source:
    """What a KPI reads: ``kind`` of :data:`SOURCE_KINDS`, the business KPI name, a currency for amounts."""

    kind: str
    name: str
    currency: str | None = None


@dataclass(frozen=True)
class KPI:
    """One KPI objective."""

    name: str
    of: Source
    to: Source | None = None  # None: a total, not a ratio
    complement: bool = False
    window: str = "1h"
    for_: str = "15m"
    minimum: float | None = None
    maximum: float | None = None
    severity: str = "warning"
    description: str = ""

    def value(self, of: float, to: float | None = None) -> float | None:
        """The KPI from the two increases (``to`` ignored for a total); None when undefined (no denominator)."""
        if self.to is None:
            return of
        if not to:
            return None
        ratio = of / to
        return 1 - ratio if self.complement else ratio

    def missed(self, value: float | None) -> str | None:
        """``"below"``, ``"above"`` or None: how ``value`` misses the objective."""
        if value is None:
            return None
        if self.minimum is not None and value < self.minimum:
            return "below"
        if self.maximum is not None and value > self.maximum:
            return "above"
        return None


def _source(config: ConfigFile, where: tuple[str | int, ...], raw: object, problems: list[str]) -> Source | None:
    if not isinstance(raw, dict):
        problems.append(f"{config.where(*where)}: a source is {{count|users|amount|amounts: <kpi>}}")
        return None
    kinds = [k for k in SOURCE_KINDS if k in raw]
    extra = set(raw) - {*SOURCE_KINDS, "currency"}
    if len(kinds) != 1 or extra:
        problems.append(
            f"{config.where(*where)}: a source names exactly one of {', '.join(SOURCE_KINDS)}"
            + (f" (unknown key {sorted(extra)[0]!r})" if extra else "")
        )
        return None
    kind = kinds[0]
    name = raw[kind]
    currency = raw.get("currency")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{config.where(*where, kind)}: {name!r} is not a KPI name (lowercase, digits, _)")
        return None
    if kind in ("amount", "amounts"):
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            problems.append(f"{config.where(*where)}: an {kind} source needs currency: an ISO 4217 code such as EUR")
            return None
    elif currency is not None:
        problems.append(f"{config.where(*where, 'currency')}: only amount sources take a currency")
        return None
    return Source(kind, name, currency)


def _kpi(config: ConfigFile, name: str, raw: object, problems: list[str]) -> KPI | None:
    where = ("kpis", name)
    if not _NAME.match(name):
        problems.append(f"{config.where(*where)}: KPI name {name!r}: lowercase letters, digits and _")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{config.where(*where)}: a KPI is a mapping with ratio: or total:, and min: or max:")
        return None
    unknown = set(raw) - _KEYS
    if unknown:
        problems.append(f"{config.where(*where, sorted(unknown)[0])}: unknown key {sorted(unknown)[0]!r}")
        return None
    if ("ratio" in raw) == ("total" in raw):
        problems.append(f"{config.where(*where)}: a KPI has exactly one of ratio: or total:")
        return None
    if "ratio" in raw:
        ratio = raw["ratio"]
        if not isinstance(ratio, dict) or set(ratio) != {"of", "to"}:
            problems.append(f"{config.where(*where, 'ratio')}: ratio is {{of: <source>, to: <source>}}")
            return None
        of = _source(config, (*where, "ratio", "of"), ratio["of"], problems)
        to = _source(config, (*where, "ratio", "to"), ratio["to"], problems)
        if of is None or to is None:
            return None
    else:
        of, to = _source(config, (*where, "total"), raw["total"], problems), None
        if of is None:
            return None
    bounds: dict[str, float | None] = {}
    for key in ("min", "max"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            problems.append(f"{config.where(*where, key)}: {key} must be a number, got {value!r}")
            return None
        bounds[key] = None if value is None else float(value)
    if bounds["min"] is None and bounds["max"] is None:
        problems.append(f"{config.where(*where)}: a KPI objective needs min: or max:")
        return None
    for key, default in (("window", "1h"), ("for", "15m")):
        value = raw.get(key, default)
        if not isinstance(value, str) or not _DURATION.match(value):
            problems.append(f"{config.where(*where, key)}: {key} is a duration such as 1h, got {value!r}")
            return None
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append(
            f"{config.where(*where, 'severity')}: severity is one of {', '.join(SEVERITIES)}, got {severity!r}"
        )
        return None
    complement = raw.get("complement", False)
    if not isinstance(complement, bool) or (complement and to is None):
        problems.append(f"{config.where(*where, 'complement')}: complement is true or false, on a ratio only")
        return None
    description = raw.get("description", "")
    return KPI(
        name,
        of,
        to,
        complement,
        str(raw.get("window", "1h")),
        str(raw.get("for", "15m")),
        bounds["min"],
        bounds["max"],
        str(severity),
        str(description) if description else "",
    )


def load_kpis(config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None) -> list[KPI]:
    """The ``kpis:`` section; a bad entry is reported with its file and line and skipped."""
    section = config.section("kpis")
    if section is None:
        return []
    found: list[str] = []
    kpis: list[KPI] = []
    if not isinstance(section, dict):
        found.append(f"{config.where('kpis')}: 'kpis' maps KPI names to their objectives")
    else:
        for name, raw in section.items():
            kpi = _kpi(config, str(name), raw, found)
            if kpi is not None:
                kpis.append(kpi)
    for problem in found:
        report_problem(problem, strict=strict, problems=problems)
    return kpis
