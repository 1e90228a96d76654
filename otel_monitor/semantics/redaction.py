"""Scrubbing secrets and personal data before anything leaves the process.

Two checks, both cheap when nothing matches:

* **keys**: one list of words naming a secret (``password``, ``token``,
  ``api_key``, ``authorization``, ``cookie``, ``secret``, ``credential``,
  ``session``, card, CVV, SSN and IBAN fields...) judges attribute keys, keys
  of nested mappings at any depth, URL query parameters and ``key=value`` /
  ``key: value`` pairs in text alike.  Under such a key the whole value goes,
  a nested subtree too.  Key verdicts are cached, so after warm-up a key costs
  one dict lookup.
* **values**: every string, at any depth, is searched for JWTs, bearer and
  basic credentials, credentials in URLs, well-known key formats (AWS key ids
  and secret keys beside their name, GitHub, Stripe keys and ``whsec_``
  webhook secrets, Slack tokens and webhooks, Google ``AIza`` and
  ``GOCSPX-``, SendGrid, npm, ``sk-``, Azure storage account keys), private
  key blocks (PGP too), SQLAlchemy's echoed bind parameters, emails, US SSNs,
  IBANs (mod-97 checked) and card numbers (Luhn-checked), so order numbers
  and look-alikes survive.  Percent-encoded text is searched decoded too.

Nothing is copied when nothing matches: :meth:`Redactor.attributes` returns
the very mapping it was given.  Extra patterns and keys come from
``OTEL_MONITOR_REDACT_PATTERNS`` and the config file's ``redaction:`` section;
``OTEL_MONITOR_SAFE_KEYS`` and ``redaction: {safe_keys: [...]}`` name keys
that are never scrubbed.

The export wrappers apply it to every path out: span names, attributes,
event names and attributes, link attributes, status descriptions and
resources; log bodies, attributes, event names and resources; metric point
attributes and resources (:func:`scrub_metrics_data`; series whose attributes
become equal once scrubbed are merged into one point).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem
from otel_monitor.guard import internal_error

REDACTED = "[REDACTED]"
# Longest a user-supplied pattern may search one value.
PATTERN_TIMEOUT_S = 0.05


def _compile_bounded(pattern: str) -> Any:
    import regex

    return regex.compile(pattern)


# One list of words naming a secret, for attribute keys, mapping keys at any
# depth, URL query parameters and ``key=value`` pairs in text alike.  Long
# words count anywhere in a key; short ones only as a whole segment
# (``x-auth-token`` yes; ``input_tokens``, ``passenger``, ``author`` no).
_KEY_WORDS = (
    r"password|passwd|passphrase|secret|credential|cookie|authorization|api[-_.]?key|apikey|[cx]srf"
    r"|access[-_.]?key|private[-_.]?key|account[-_.]?key|sess(?:ion)?[-_.]?(?:id|key|token)"
    r"|(?<![a-z0-9])(?:token|pwd|pass|auth|sid|session|signature|sig|otp|pin|ssn|cvv|cvc|iban"
    r"|card[-_.]?(?:number|num|no)|cc[-_.]?num)(?![a-z0-9])"
)
SENSITIVE_KEY = re.compile(_KEY_WORDS, re.IGNORECASE)

# Keys of ours and of the semantic conventions whose values are ids or names, never secrets.
DEFAULT_SAFE_KEYS = frozenset(
    {
        "monitor.error.fingerprint",
        "enduser.pseudo.id",
        "monitor.operation",
        "monitor.journey.step",
        "monitor.journey.name",
        "http.route",
        "http.request.method",
        "error.type",
        "exception.type",
        "monitor.error.category",
        "monitor.cache.name",
        "monitor.service.layer",
        "code.function.name",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "service.name",
    }
)

# ``key=value`` and ``key: value`` in text: every key is judged by the very
# function that judges attribute keys.  A value runs to white space, a quote,
# ``&`` or a ``;`` that starts the next ``name=`` (so ``pass;word`` goes whole,
# and a connection string's next field survives); numbers alone are kept.
_KV_KEY = re.compile(r"(?<![\w.-])([\w.-]{1,64})[\"']?\s*[=:]\s*[\"']?")
_KV_VALUE = re.compile(r"(?!\d+\b)(?:[^\s&\"'<>;]|;(?!\s*[\w.-]+=)){3,}")
# Stems of the key words: unless one occurs in the lower-cased value, no key in it can be sensitive.
_KV_STEMS = (
    "pass",
    "pwd",
    "secret",
    "credential",
    "cookie",
    "auth",
    "key",
    "srf",
    "sess",
    "sid",
    "token",
    "sig",
    "otp",
    "pin",
    "ssn",
    "cvv",
    "cvc",
    "iban",
    "card",
    "cc",
)

# Each pattern runs only when its literal guard occurs in the value (a C-speed
# substring test), and patterns that could start anywhere are anchored at word
# starts, so a clean value costs a few ``in`` tests and one linear scan.
_ALWAYS = [
    # An IBAN before the card pattern, so a digit run inside one is not a card.
    r"(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b)",
    r"(?P<card>(?<![\w.%-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d))",
    # A US social security number; the numbers never issued are left alone (_ssn_valid).
    r"(?P<ssn>(?<![\w%-])\d{3}-\d{2}-\d{4}(?![\w-]))",
]
_GUARDED: list[tuple[tuple[str, ...], str]] = [
    (
        ("PRIVATE KEY",),
        r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|$))",
    ),
    (("eyJ",), r"(?P<jwt>\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"),
    (
        ("AKIA", "ASIA", "gh", "_pat_", "k_live_", "k_test_", "xox", "AIza", "sk-", "whsec_", "GOCSPX-", "SG.", "npm_"),
        r"(?P<apikey>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\b[sr]k_(?:live|test)_[0-9A-Za-z]{10,}\b|\bxox[abposr]-[0-9A-Za-z-]{10,}|\bAIza[0-9A-Za-z_-]{35}"
        r"|\bsk-[A-Za-z0-9_-]{20,}\b|\bwhsec_[A-Za-z0-9+/=]{20,}|\bGOCSPX-[A-Za-z0-9_-]{20,}"
        r"|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|\bnpm_[A-Za-z0-9]{36}\b)",
    ),
    (("hooks.slack.com",), r"(?P<hook>hooks\.slack\.com/(?:services|workflows|triggers)/)(?P<hook_path>[\w/-]{10,})"),
    # An AWS secret access key (40 characters of base64) within a few words after its name.
    (
        ("aws", "AWS", "Aws", "ecret", "ECRET"),
        r"(?P<aws_name>(?i:aws|secret)[^\n]{0,30}?)(?P<aws_secret>(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=]))",
    ),
    # Azure storage account keys: 64 random bytes in base64.
    (("==",), r"(?P<b64key>(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==)"),
    ((" ",), r"(?P<scheme>\b(?:[Bb]earer|[Bb]asic|[Tt]oken|Digest)\s+)(?P<scheme_value>[A-Za-z0-9._~+/=-]{8,})"),
    (("@",), r"(?P<url_user>://[^\s:/@]*:)(?P<url_password>[^\s@/]+)(?=@)"),
    # SQLAlchemy echoes bind parameters (a password column's value too) in its error messages.
    (("[parameters: ",), r"(?P<sql_params>\[parameters: )(?P<sql_params_value>[^\n]*)"),
    # Emails, also URL-encoded (%40) as in a recorded query string; not git's user@host:path.
    (
        ("@", "%40"),
        r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+?(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
        r"\.[A-Za-z]{2,}(?![\w-]|\.[\w-])(?![:/][\w~]|%3[Aa]))",
    ),
]
# Cards, IBANs and SSNs all hold a run of seven digits (separators allowed): a
# value without one skips their scan (a pattern that starts with a digit is a fast C scan).
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d")
_SCALARS = frozenset({int, float, bool, type(None)})


def _decoded(value: str) -> str:
    """Percent-decoded, a URL inside a query parameter (encoded twice) too."""
    for _ in range(3):
        if "%" not in value:
            break
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    """The ISO 13616 check: the rearranged number modulo 97 is 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _credential_like(value: str) -> bool:
    """A word after ``Bearer``/``Basic``/``Token`` that looks generated, not written ("Token exchange")."""
    return len(value) >= 20 or any(ch.isdigit() or ch in "._~+/=-" for ch in value)


def _mixed(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(c.islower() for c in value)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "scheme_value":
        value = match.group("scheme_value")
        return match.group("scheme") + REDACTED if _credential_like(value) else match.group(0)
    if kind == "url_password":
        return match.group("url_user") + REDACTED
    if kind == "hook_path":
        return match.group("hook") + REDACTED
    if kind == "sql_params_value":
        return match.group("sql_params") + REDACTED + "]"
    if kind == "aws_secret":
        secret = match.group("aws_secret")
        return match.group("aws_name") + REDACTED if _mixed(secret) else match.group(0)
    if kind == "card":
        digits = re.sub(r"\D", "", match.group(0))
        return REDACTED if _luhn(digits) else match.group(0)
    if kind == "ssn":
        area, group, serial = match.group(0).split("-")
        issued = area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
        return REDACTED if issued else match.group(0)
    if kind == "iban":
        return REDACTED if _iban_valid(match.group(0)) else match.group(0)
    return REDACTED


class Redactor:
    """Scrubs attribute mappings, strings and log bodies; returns its input unchanged when clean."""

    def __init__(
        self,
        enabled: bool = True,
        extra_patterns: Iterable[str] = (),
        safe_keys: Iterable[str] = (),
        extra_keys: Iterable[str] = (),
    ) -> None:
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
        self._key_pattern = re.compile(SENSITIVE_KEY.pattern + ("|" + "|".join(keys) if keys else ""), re.IGNORECASE)
        self._key_verdicts: dict[str, bool] = {}
        self._clean: set[str] = set()
        self._resources: dict[int, tuple[Any, Any]] = {}

    def _sensitive_key(self, key: str) -> bool:
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            verdict = key not in self._safe and self._key_pattern.search(key) is not None
            if len(self._key_verdicts) < 10_000:  # attribute keys are few; bound it anyway
                self._key_verdicts[key] = verdict
        return verdict

    def _scrub(self, value: str) -> str:
        result = value
        if _DIGIT_RUN.search(result) is not None and self._always.search(result) is not None:
            result = self._always.sub(_replace, result)
        for guards, pattern in self._guarded:
            for guard in guards:
                if guard in result:
                    if pattern.search(result) is not None:
                        result = pattern.sub(_replace, result)
                    break
        if "=" in result or ":" in result:
            lowered = result.lower()
            if any(stem in lowered for stem in _KV_STEMS):
                result = self._scrub_pairs(result)
        return result

    def _scrub_pairs(self, text: str) -> str:
        parts: list[str] = []
        last = 0
        for key in _KV_KEY.finditer(text):
            if key.start() < last or not self._sensitive_key(key.group(1)):
                continue
            value = _KV_VALUE.match(text, key.end())
            if value is None:
                continue
            parts += (text[last : key.end()], REDACTED)
            last = value.end()
        return "".join(parts) + text[last:] if parts else text

    def text(self, value: str) -> str:
        """``value`` with every secret replaced; the same object when there is none.

        Percent-encoded text (query strings above all) is also searched decoded;
        when that finds a secret, the decoded, scrubbed text is what remains.
        """
        if not self.enabled or value in self._clean:
            return value
        decoded = _decoded(value) if "%" in value else value
        if decoded is value:
            result = self._scrub(value)
        else:
            # Decoding only turns %XX into characters, so what the raw text shows the decoded one shows too.
            result = self._scrub(decoded)
            if result == decoded:
                result = value
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

    def _wipe(self, value: Any) -> Any:
        """Everything under a secret key: strings, bytes and whole subtrees go; numbers and flags stay."""
        if value.__class__ in _SCALARS:
            return value
        if isinstance(value, (tuple, list)):
            if all(isinstance(v, str) for v in value):
                return tuple(REDACTED for _ in value)  # a header's values: the shape stays
            return tuple(self._wipe(v) for v in value)
        if isinstance(value, (str, bytes)) and not value:
            return value
        return REDACTED

    def value(self, key: str, value: Any) -> Any:
        """The scrubbed value of attribute ``key``, nested values at any depth too; the same object when clean."""
        if not self.enabled or key in self._safe:
            return value
        if self._sensitive_key(key):
            return self._wipe(value)
        return self._nested(value)

    def _nested(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value.__class__ in _SCALARS:
            return value
        if isinstance(value, Mapping):
            changed = {k: self.value(str(k), v) for k, v in value.items()}
            return value if all(changed[k] is v for k, v in value.items()) else changed
        if isinstance(value, (tuple, list)):
            items = [self._nested(v) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
        return value

    def attributes(self, attributes: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Scrubbed attributes; the very same mapping when nothing matched."""
        if not self.enabled or not attributes:
            return attributes
        changed: dict[str, Any] | None = None
        clean, verdicts, safe, scalars = self._clean, self._key_verdicts, self._safe, _SCALARS
        for key, value in attributes.items():
            # Hot path, inlined: a known-clean string under a known-harmless key, or a number.
            if value.__class__ is str:
                if value in clean and verdicts.get(key) is False:
                    continue
            elif value.__class__ in scalars:
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
        """A log body (string, mapping or sequence, nested at any depth) scrubbed; the same object when clean."""
        if not self.enabled:
            return body
        return self._nested(body)

    def resource(self, resource: Any) -> Any:
        """A resource (the SDK's ``Resource``) with its attributes scrubbed; the same object when clean.

        Providers share one resource, so the verdict is kept per resource object.
        """
        if not self.enabled or resource is None:
            return resource
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        attributes = self.attributes(resource.attributes)
        scrubbed = (
            resource
            if attributes is resource.attributes
            else type(resource)(attributes, getattr(resource, "schema_url", None))
        )
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, scrubbed)
        return scrubbed


def load_redactor(
    enabled: bool = True,
    patterns: Iterable[str] = (),
    safe_keys: Iterable[str] = (),
    config: ConfigFile = EMPTY,
    *,
    strict: bool = False,
    problems: list[str] | None = None,
) -> Redactor:
    """A redactor from the settings plus the config file's ``redaction:`` section."""
    patterns, safe_keys = list(patterns), list(safe_keys)
    keys: list[str] = []
    section = config.section("redaction")
    if section is not None and not isinstance(section, dict):
        report_problem(
            f"{config.where('redaction')}: 'redaction' must be a mapping with patterns, keys, safe_keys",
            strict=strict,
            problems=problems,
        )
        section = None
    for name, value in (section or {}).items():
        where = config.where("redaction", name)
        if name not in ("patterns", "keys", "safe_keys"):
            report_problem(
                f"{where}: unknown key {name!r}; expected patterns, keys or safe_keys", strict=strict, problems=problems
            )
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            report_problem(f"{where}: {name!r} must be a list of non-empty strings", strict=strict, problems=problems)
            continue
        for i, item in enumerate(value):
            if name == "patterns":
                try:
                    _compile_bounded(item)
                except Exception as exc:  # noqa: BLE001 - the engine's own error type
                    report_problem(
                        f"{config.where('redaction', name, i)}: invalid regular expression {item!r}: {exc}",
                        strict=strict,
                        problems=problems,
                    )
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
        return replace(
            first,
            start_time_unix_nano=start,
            time_unix_nano=later.time_unix_nano,
            count=first.count + second.count,
            sum=first.sum + second.sum,
            bucket_counts=[a + b for a, b in zip(first.bucket_counts, second.bucket_counts, strict=True)],
            min=min(first.min, second.min),
            max=max(first.max, second.max),
            exemplars=[*first.exemplars, *second.exemplars],
        )
    if not hasattr(first, "value"):
        return None  # exponential histograms: kept as separate points
    if hasattr(data, "is_monotonic"):  # a sum: the two series add up
        return replace(
            first, start_time_unix_nano=start, time_unix_nano=later.time_unix_nano, value=first.value + second.value
        )
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
    """``metrics_data`` (the SDK's ``MetricsData``) with every point's attributes and the resource scrubbed.

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
        resource = redactor.resource(resource_metrics.resource)
        if resource is not resource_metrics.resource or any(
            new is not old for new, old in zip(scopes, resource_metrics.scope_metrics, strict=True)
        ):
            resources[i] = replace(resource_metrics, scope_metrics=scopes, resource=resource)
            changed = True
    return replace(metrics_data, resource_metrics=resources) if changed else metrics_data
