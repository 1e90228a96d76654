"""Scrubbing secrets and personal data before anything leaves the process.

Two checks, both cheap when nothing matches:

* **keys**: an attribute whose key names a secret (``password``, ``token``,
  ``api_key``, ``authorization``, ``cookie``, ``secret``, ``credential``,
  ``session``, card and CVV fields, HTTP header attributes of those names) has
  its string value replaced.  Key verdicts are cached, so after warm-up a key
  costs one dict lookup.
* **values**: every string value is searched once with one combined regular
  expression for JWTs, bearer and basic credentials, ``key=value`` secrets in
  URLs, headers and messages, credentials in URLs, well-known API key formats
  (AWS, GitHub, Stripe, Slack, Google), private key blocks, emails and card
  numbers (Luhn-checked, so order numbers survive).

Nothing is copied when nothing matches: :meth:`Redactor.attributes` returns
the very mapping it was given.  Extra patterns and keys come from
``OTEL_MONITOR_REDACT_PATTERNS`` and the config file's ``redaction:`` section;
``OTEL_MONITOR_SAFE_KEYS`` and ``redaction: {safe_keys: [...]}`` name keys
that are never scrubbed.

Metric attributes are scrubbed at export by :class:`RedactingMetricExporter`;
series whose attributes become equal once scrubbed are merged into one point.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem
from otel_monitor.guard import internal_error

REDACTED = "[REDACTED]"
# Longest a user-supplied pattern may search one value.
PATTERN_TIMEOUT_S = 0.05


def _compile_bounded(pattern: str) -> Any:
    import regex

    return regex.compile(pattern)

# Words that name a secret anywhere in a key, and short ones only as a whole
# segment (``x-auth-token`` yes; ``input_tokens``, ``passenger``, ``author`` no).
SENSITIVE_KEY = re.compile(
    r"password|passwd|passphrase|secret|credential|cookie|authorization|api[-_.]?key|apikey|[cx]srf"
    r"|access[-_.]?key|private[-_.]?key|session[-_.]?(?:id|key|token)"
    r"|(?<![a-z0-9])(?:token|pwd|pass|auth|sid|signature|sig|otp|pin|ssn|cvv|cvc|iban"
    r"|card[-_.]?(?:number|num)|cc[-_.]?num)(?![a-z0-9])",
    re.IGNORECASE)

# Keys of ours and of the semantic conventions whose values are ids or names, never secrets.
DEFAULT_SAFE_KEYS = frozenset({
    "monitor.error.fingerprint", "enduser.pseudo.id", "monitor.operation", "monitor.journey.step",
    "monitor.journey.name", "http.route", "http.request.method", "error.type", "exception.type",
    "monitor.error.category", "monitor.cache.name", "monitor.service.layer", "code.function.name",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "service.name",
})

# Each pattern runs only when its literal guard occurs in the value (a C-speed
# substring test), and patterns that could start anywhere are anchored at word
# starts, so a clean value costs a few ``in`` tests and one linear scan.
_ALWAYS = [
    r"(?P<card>(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w.-]))",
]
_GUARDED: list[tuple[tuple[str, ...], str]] = [
    (("PRIVATE KEY",), r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))"),
    (("eyJ",), r"(?P<jwt>\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"),
    (("AKIA", "ASIA", "gh", "_pat_", "k_live_", "k_test_", "xox", "AIza", "sk-"),
     r"(?P<apikey>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}"
     r"|\b[sr]k_(?:live|test)_[0-9A-Za-z]{10,}\b|\bxox[abposr]-[0-9A-Za-z-]{10,}|\bAIza[0-9A-Za-z_-]{35}"
     r"|\bsk-[A-Za-z0-9_-]{20,}\b)"),
    ((" ",), r"(?P<scheme>\b(?:[Bb]earer|[Bb]asic|[Tt]oken|Digest)\s+)(?P<scheme_value>[A-Za-z0-9._~+/=-]{8,})"),
    (("@",), r"(?P<url_user>://[^\s:/@]*:)(?P<url_password>[^\s@/]+)(?=@)"),
    # The key's own prefix (client_ in client_secret) stays outside the match: only the value changes.
    (("=", ":"),
     r"(?P<kv_key>(?i:(?<![a-z0-9])(?:password|passwd|pwd|secret|token|api[-_]?key|apikey|access[-_]?key"
     r"|auth|credentials?|session[-_]?id|sid|signature|sig|cookie|[cx]srf[-_]?token)(?![a-z0-9])[\w.-]*)"
     r"[\"']?\s*(?:=|:)\s*[\"']?)(?P<kv_value>(?!\d+\b)[^\s&,;\"'<>]{3,})"),
    # Emails, also URL-encoded (%40) as in a recorded query string.
    (("@", "%40"), r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+?(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                   r"\.[A-Za-z]{2,}\b)"),
]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "scheme_value":
        return match.group("scheme") + REDACTED
    if kind == "url_password":
        return match.group("url_user") + REDACTED
    if kind == "kv_value":
        return match.group("kv_key") + REDACTED
    if kind == "card":
        digits = re.sub(r"\D", "", match.group(0))
        return REDACTED if _luhn(digits) else match.group(0)
    return REDACTED


class Redactor:
    """Scrubs attribute mappings, strings and log bodies; returns its input unchanged when clean."""

    def __init__(self, enabled: bool = True, extra_patterns: Iterable[str] = (),
                 safe_keys: Iterable[str] = (), extra_keys: Iterable[str] = ()) -> None:
        self.enabled = enabled
        self._always = re.compile("|".join(_ALWAYS))
        # Patterns users write may backtrack catastrophically: they run on the
        # `regex` engine, which can give up after a time limit.
        self._extra = []
        for source in extra_patterns:
            try:
                self._extra.append((source, _compile_bounded(source)))
            except Exception as exc:  # noqa: BLE001 - validated earlier; contain an engine difference
                internal_error(f"redaction pattern {source!r}", exc)
        self._guarded = [(guards, re.compile(pattern)) for guards, pattern in _GUARDED]
        self._safe = DEFAULT_SAFE_KEYS | frozenset(safe_keys)
        keys = [re.escape(k) for k in extra_keys]
        self._key_pattern = re.compile(SENSITIVE_KEY.pattern + ("|" + "|".join(keys) if keys else ""),
                                       re.IGNORECASE)
        self._key_verdicts: dict[str, bool] = {}
        self._clean: set[str] = set()

    def _sensitive_key(self, key: str) -> bool:
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            verdict = key not in self._safe and self._key_pattern.search(key) is not None
            if len(self._key_verdicts) < 10_000:  # attribute keys are few; bound it anyway
                self._key_verdicts[key] = verdict
        return verdict

    def text(self, value: str) -> str:
        """``value`` with every secret replaced; the same object when there is none."""
        if not self.enabled or value in self._clean:
            return value
        result = value
        if self._always.search(result) is not None:
            result = self._always.sub(_replace, result)
        for guards, pattern in self._guarded:
            for guard in guards:
                if guard in result:
                    if pattern.search(result) is not None:
                        result = pattern.sub(_replace, result)
                    break
        for source, pattern in self._extra:
            try:
                result = pattern.sub(REDACTED, result, timeout=PATTERN_TIMEOUT_S)
            except TimeoutError as exc:
                # Fail closed: the value is lost, never leaked; the app is not held up.
                internal_error(f"redaction pattern {source!r} (over {PATTERN_TIMEOUT_S}s)", exc)
                return REDACTED
        if result == value:
            # Routes, methods, hosts repeat on every request: remember short clean values.
            if len(value) <= 200:
                if len(self._clean) >= 4096:
                    self._clean.clear()
                self._clean.add(value)
            return value
        return result

    def value(self, key: str, value: Any) -> Any:
        """The scrubbed value of attribute ``key``; the same object when clean."""
        if not self.enabled or key in self._safe:
            return value
        if self._sensitive_key(key):
            if isinstance(value, str):
                return REDACTED if value else value
            if isinstance(value, (tuple, list)):
                return tuple(REDACTED if isinstance(v, str) else v for v in value)
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
            scrubbed = tuple(self.text(v) if isinstance(v, str) else v for v in value)
            return value if all(a is b for a, b in zip(scrubbed, value, strict=True)) else scrubbed
        return value

    def attributes(self, attributes: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Scrubbed attributes; the very same mapping when nothing matched."""
        if not self.enabled or not attributes:
            return attributes
        changed: dict[str, Any] | None = None
        clean, verdicts, safe = self._clean, self._key_verdicts, self._safe
        for key, value in attributes.items():
            # Hot path, inlined: a known-clean string under a known-harmless key, or a number.
            if value.__class__ is str:
                if value in clean and verdicts.get(key) is False:
                    continue
            elif not isinstance(value, (tuple, list)):
                continue
            if key in safe:
                continue
            new = self.value(key, value)
            if new is not value:
                if changed is None:
                    changed = {}
                changed[key] = new
        if changed is None:
            return attributes
        return {**attributes, **changed}

    def body(self, body: Any) -> Any:
        """A log body (string, mapping or list, nested) scrubbed; the same object when clean."""
        if not self.enabled:
            return body
        if isinstance(body, str):
            return self.text(body)
        if isinstance(body, Mapping):
            changed = {k: self.body(v) if not self._sensitive_key(str(k)) else
                       (REDACTED if isinstance(v, str) else v) for k, v in body.items()}
            return body if all(changed[k] is v for k, v in body.items()) else changed
        if isinstance(body, (list, tuple)):
            items = [self.body(v) for v in body]
            return body if all(a is b for a, b in zip(items, body, strict=True)) else type(body)(items)
        return body


def load_redactor(enabled: bool = True, patterns: Iterable[str] = (), safe_keys: Iterable[str] = (),
                  config: ConfigFile = EMPTY, *, strict: bool = False,
                  problems: list[str] | None = None) -> Redactor:
    """A redactor from the settings plus the config file's ``redaction:`` section."""
    patterns, safe_keys = list(patterns), list(safe_keys)
    keys: list[str] = []
    section = config.section("redaction")
    if section is not None and not isinstance(section, dict):
        report_problem(f"{config.where('redaction')}: 'redaction' must be a mapping with patterns, keys, safe_keys",
                       strict=strict, problems=problems)
        section = None
    for name, value in (section or {}).items():
        where = config.where("redaction", name)
        if name not in ("patterns", "keys", "safe_keys"):
            report_problem(f"{where}: unknown key {name!r}; expected patterns, keys or safe_keys",
                           strict=strict, problems=problems)
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            report_problem(f"{where}: {name!r} must be a list of non-empty strings", strict=strict, problems=problems)
            continue
        for i, item in enumerate(value):
            if name == "patterns":
                try:
                    _compile_bounded(item)
                except Exception as exc:  # noqa: BLE001 - the engine's own error type
                    report_problem(f"{config.where('redaction', name, i)}: invalid regular expression {item!r}: {exc}",
                                   strict=strict, problems=problems)
                    continue
                patterns.append(item)
            else:
                (keys if name == "keys" else safe_keys).append(item)
    return Redactor(enabled, patterns, safe_keys, keys)


# --- metric points ----------------------------------------------------------------------------


def _series_key(attributes: Mapping[str, Any] | None) -> Any:
    return frozenset((k, tuple(v) if isinstance(v, list) else v) for k, v in (attributes or {}).items())


def _merge_points(first: Any, second: Any, data: Any) -> Any | None:
    """One point for two series that scrubbing made equal; None when they cannot be merged."""
    start = min(first.start_time_unix_nano or 0, second.start_time_unix_nano or 0) or None
    later = first if first.time_unix_nano >= second.time_unix_nano else second
    if hasattr(first, "bucket_counts"):
        if list(first.explicit_bounds) != list(second.explicit_bounds):
            return None
        return replace(first, start_time_unix_nano=start, time_unix_nano=later.time_unix_nano,
                       count=first.count + second.count, sum=first.sum + second.sum,
                       bucket_counts=[a + b for a, b in zip(first.bucket_counts, second.bucket_counts, strict=True)],
                       min=min(first.min, second.min), max=max(first.max, second.max),
                       exemplars=[*first.exemplars, *second.exemplars])
    if not hasattr(first, "value"):
        return None  # exponential histograms: kept as separate points
    if hasattr(data, "is_monotonic"):  # a sum: the two series add up
        return replace(first, start_time_unix_nano=start, time_unix_nano=later.time_unix_nano,
                       value=first.value + second.value)
    return later  # a gauge: the latest value stands


def _scrub_metric(redactor: Redactor, metric: Any) -> Any:
    points = metric.data.data_points
    scrubbed = [redactor.attributes(point.attributes) for point in points]
    if all(new is point.attributes for new, point in zip(scrubbed, points, strict=True)):
        return metric
    merged: dict[Any, Any] = {}
    for point, attributes in zip(points, scrubbed, strict=True):
        if attributes is not point.attributes:
            point = replace(point, attributes=attributes)
        key = _series_key(attributes)
        if key in merged:
            combined = _merge_points(merged[key], point, metric.data)
            if combined is None:
                merged[(key, id(point))] = point
                continue
            point = combined
        merged[key] = point
    return replace(metric, data=replace(metric.data, data_points=list(merged.values())))


def scrub_metrics_data(redactor: Redactor, metrics_data: Any) -> Any:
    """``metrics_data`` (the SDK's ``MetricsData``) with every point's attributes scrubbed.

    The very same object when nothing matched, which is the common case.
    """
    if not redactor.enabled:
        return metrics_data
    resources = list(metrics_data.resource_metrics)
    changed = False
    for i, resource_metrics in enumerate(resources):
        scopes = list(resource_metrics.scope_metrics)
        for j, scope_metrics in enumerate(scopes):
            metrics = [_scrub_metric(redactor, metric) for metric in scope_metrics.metrics]
            if any(new is not old for new, old in zip(metrics, scope_metrics.metrics, strict=True)):
                scopes[j] = replace(scope_metrics, metrics=metrics)
        if any(new is not old for new, old in zip(scopes, resource_metrics.scope_metrics, strict=True)):
            resources[i] = replace(resource_metrics, scope_metrics=scopes)
            changed = True
    return replace(metrics_data, resource_metrics=resources) if changed else metrics_data
