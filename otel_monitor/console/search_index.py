"""What trace search reads instead of every span: traces numbered by arrival, and postings.

The store keeps its traces in :class:`TraceList`, numbered in arrival order
(``TraceSummary.seq``) and reachable by number in O(1).  :class:`SearchIndex`
keeps postings: for each name an operation search matches, each service, and
each value (compared as text, as the search compares them) of the attribute
keys searched lately, the numbers of the traces holding it, ascending; and
the failed traces, and the traces by duration bucket.  A search reads the
shortest posting its filters have and checks only those traces.

Memory stays bounded:

- evicted traces leave every posting at once: they are the oldest, so they
  are a prefix, skipped by bisection and cut off in a sweep once enough have
  gone;
- only the attribute keys searched most recently are indexed (a key's first
  search reads every span once): ingest pays nothing for the others;
- a key or name with more than :data:`EXACT_VALUES` values (ids, URLs) keeps
  :data:`EXACT_VALUES` buckets of hashed values instead, and the search checks
  each candidate trace.

Either way the answer is the one a scan of every span gives.
"""

from __future__ import annotations

import re
import sys
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from otel_monitor import semconv


class Trace(Protocol):
    """What the index reads and keeps of a trace (the store's ``TraceSummary``)."""

    seq: int
    duration_bucket: int
    start_ns: int
    end_ns: int
    spans: list[dict[str, Any]]
    names: set[str]
    slashed: bool
    display_names: frozenset[str] | None


TraceT = TypeVar("TraceT", bound=Trace)

# Distinct values a key keeps exactly; past it, as many buckets of hashed values.
EXACT_VALUES = 4096
_BUCKET_MASK = EXACT_VALUES - 1
# Texts longer than this are hashed at once: a posting never holds a long text.
_LONGEST_TEXT = 256
# Keys dropped from the index, remembered so a search on another unseen key still answers "none".
_MAX_DROPPED_KEYS = 1024
# Traces per block of TraceList's lower bounds of end times.
BLOCK_BITS = 10
BLOCK = 1 << BLOCK_BITS

# An absolute path inside a database span's name ("SELECT /tmp/x/shop.db", SQLite's
# database is its file): shown by its last part.  HTTP routes keep their slashes.
_PATH = re.compile(r"(?<![\w.])/(?:[^\s/]+/)+([^\s/]+)")
_SQL_VERB = re.compile(
    r"^\s*(select|insert|update|delete|begin|commit|rollback|create|drop|alter|pragma|with|"
    r"replace|connect|savepoint|release)\b",
    re.IGNORECASE,
)


def display_name(name: str, attributes: dict[str, Any] | None = None) -> str:
    """A database span's name with absolute file paths cut to the file name: ``SELECT shop.db``."""
    if "/" not in name:
        return name
    is_db = attributes is not None and (semconv.DB_SYSTEM_NAME in attributes or semconv.DB_SYSTEM in attributes)
    return _PATH.sub(r"\1", name) if is_db or _SQL_VERB.match(name) else name


class TraceList(Generic[TraceT]):
    """Traces in arrival order, each numbered; the oldest leave first; any reached by its number in O(1).

    Reading a list is many times faster than an ``OrderedDict``'s values, which matters at a
    million spans.  Evicted slots are cleared at once (their spans are freed) and cut off in bulk.
    Per block of :data:`BLOCK` numbers it keeps a lower bound of its traces' end times (a trace's
    end only grows), so that a search in a time window takes whole blocks without reading them.
    """

    __slots__ = ("_base", "_head", "_items", "_lowest_end")

    def __init__(self) -> None:
        self._items: list[TraceT | None] = []
        self._base = 0  # the number of _items[0]
        self._head = 0  # _items[:_head] are evicted
        self._lowest_end: dict[int, int] = {}  # block -> lowest end time (ns) of its traces' first spans

    @property
    def first_seq(self) -> int:
        """The number of the oldest trace kept (the next number when none is)."""
        return self._base + self._head

    @property
    def next_seq(self) -> int:
        return self._base + len(self._items)

    def append(self, trace: TraceT) -> None:
        trace.seq = self._base + len(self._items)
        self._items.append(trace)

    def note_end(self, seq: int, end_ns: int) -> None:
        """The end time of a trace's first span: a lower bound of the trace's end from now on."""
        block = seq >> BLOCK_BITS
        lowest = self._lowest_end.get(block)
        if lowest is None or end_ns < lowest:
            self._lowest_end[block] = end_ns

    def popleft(self) -> TraceT:
        if self._head >= len(self._items):
            raise IndexError("pop from an empty TraceList")
        trace = self._items[self._head]
        assert trace is not None
        self._items[self._head] = None
        self._head += 1
        if (trace.seq + 1) % BLOCK == 0:
            self._lowest_end.pop(trace.seq >> BLOCK_BITS, None)
        if self._head >= BLOCK and 2 * self._head >= len(self._items):
            del self._items[: self._head]
            self._base += self._head
            self._head = 0
        return trace

    def get(self, seq: int) -> TraceT | None:
        return self._items[seq - self._base] if seq >= self._base + self._head else None

    def resolve(self, seqs: array[int]) -> list[TraceT]:
        """The traces numbered in ``seqs`` (ascending, all kept), newest first."""
        return list(map(self._items.__getitem__, map((-self._base).__add__, reversed(seqs))))  # type: ignore[arg-type]

    def in_window_from(self, start_ns: int) -> int:
        """A number from which on every trace surely ends at ``start_ns`` or later."""
        first = self.first_seq
        block = (self.next_seq - 1) >> BLOCK_BITS
        while block >= 0 and (block << BLOCK_BITS) + BLOCK > first:
            lowest = self._lowest_end.get(block)
            if lowest is None or lowest < start_ns:
                return min(self.next_seq, (block + 1) << BLOCK_BITS)
            block -= 1
        return first

    def newest_first(self, start_ns: int | None = None) -> list[TraceT]:
        """Every trace kept (ending at ``start_ns`` or later), newest first."""
        items, base, head = self._items, self._base, self._head
        every: list[TraceT] = items[: head - 1 if head else None : -1]  # type: ignore[assignment]
        if start_ns is None:
            return every
        sure = self.in_window_from(start_ns) - base
        if sure <= head:
            return every
        newer = len(items) - sure
        return every[:newer] + [t for t in every[newer:] if t.end_ns >= start_ns]

    def newest_page(self, start_ns: int, offset: int, limit: int) -> list[TraceT]:
        """``newest_first(start_ns)[offset : offset + limit]``, reading no further than that."""
        items = self._items
        out: list[TraceT] = []
        for i in range(len(items) - 1, self._head - 1, -1):
            trace = items[i]
            assert trace is not None
            if trace.end_ns >= start_ns:
                if offset:
                    offset -= 1
                    continue
                if len(out) >= limit:
                    break
                out.append(trace)
        return out

    def count_since(self, start_ns: int) -> int:
        """How many traces end at ``start_ns`` or later."""
        sure = self.in_window_from(start_ns)
        items, base = self._items, self._base
        return (
            self.next_seq
            - sure
            + sum(1 for t in items[self.first_seq - base : sure - base] if t is not None and t.end_ns >= start_ns)
        )

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Iterator[TraceT]:
        items = self._items
        for i in range(self._head, len(items)):
            trace = items[i]
            assert trace is not None
            yield trace

    def __reversed__(self) -> Iterator[TraceT]:
        items = self._items
        for i in range(len(items) - 1, self._head - 1, -1):
            trace = items[i]
            assert trace is not None
            yield trace


class BlockBounds:
    """Lower bounds of the times of numbered items (log records), per block of :data:`BLOCK` numbers:
    a search in a time window takes the blocks surely inside it without reading them."""

    __slots__ = ("_lowest",)

    def __init__(self) -> None:
        self._lowest: dict[int, int] = {}

    def note(self, seq: int, time_ns: int) -> None:
        block = seq >> BLOCK_BITS
        lowest = self._lowest.get(block)
        if lowest is None or time_ns < lowest:
            self._lowest[block] = time_ns

    def forget(self, seq: int) -> None:
        """Item ``seq`` left (the oldest first): its block goes with its last item."""
        if (seq + 1) % BLOCK == 0:
            self._lowest.pop(seq >> BLOCK_BITS, None)

    def sure_from(self, start_ns: int, first_seq: int, next_seq: int) -> int:
        """A number from which on every item is surely at ``start_ns`` or later."""
        block = (next_seq - 1) >> BLOCK_BITS
        while block >= 0 and (block << BLOCK_BITS) + BLOCK > first_seq:
            lowest = self._lowest.get(block)
            if lowest is None or lowest < start_ns:
                return min(next_seq, (block + 1) << BLOCK_BITS)
            block -= 1
        return first_seq


# Severity texts by their lower-case form, for records that send no number (OTLP's ranges start there).
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21}


def severity_number(record: dict[str, Any]) -> int:
    """A log record's severity number: as sent, else from its severity text."""
    n = record["severity_number"]
    if n:
        return int(n)
    return SEVERITIES.get(str(record["severity_text"]).lower(), 0)


class LogIndex:
    """What log search reads instead of every record (numbered one by one in arrival order): lower
    bounds of their times per block of numbers, and the numbers of the records of each severity."""

    __slots__ = ("_gone", "first_seq", "severities", "times")

    def __init__(self) -> None:
        self.times = BlockBounds()
        self.severities: dict[int, array[int]] = {}
        self.first_seq = 1  # the oldest record kept
        self._gone = 0

    def add(self, seq: int, record: dict[str, Any]) -> None:
        self.times.note(seq, record["time_unix_nano"])
        n = severity_number(record)
        seqs = self.severities.get(n)
        if seqs is None:
            self.severities[n] = array("q", (seq,))
        else:
            seqs.append(seq)

    def forget(self, seq: int) -> None:
        """Record ``seq`` left (the oldest first)."""
        self.times.forget(seq)
        self.first_seq = seq + 1
        self._gone += 1
        if self._gone >= 4 * BLOCK:
            self._gone = 0
            _sweep(self.severities, self.first_seq)

    def count_below(self, level: int) -> int:
        """Records kept whose severity is under ``level``."""
        return sum(len(_live(seqs, self.first_seq)) for n, seqs in self.severities.items() if n < level)

    def at_least(self, level: int) -> list[int]:
        """The numbers of the records kept of severity ``level`` or above, ascending."""
        parts = [_live(seqs, self.first_seq) for n, seqs in self.severities.items() if n >= level]
        return sorted(seq for part in parts for seq in part) if len(parts) > 1 else list(parts[0] if parts else ())


def _add_seq(table: dict[Any, array[int]], slot: Any, seq: int) -> int:
    """Note ``seq`` in ``table[slot]`` (ascending, no repeats): 1 if it is new there, else 0."""
    seqs = table.get(slot)
    if seqs is None:
        table[slot] = array("q", (seq,))
        return 1
    last = seqs[-1]
    if last == seq:
        return 0
    if last < seq:
        seqs.append(seq)
        return 1
    i = bisect_left(seqs, seq)  # a span of an older trace arriving late
    if seqs[i] == seq:
        return 0
    seqs.insert(i, seq)
    return 1


def _sweep(table: dict[Any, array[int]], first_seq: int) -> int:
    """Cut the numbers below ``first_seq`` (evicted traces) off every entry; how many went."""
    gone = 0
    empty = []
    for slot, seqs in table.items():
        if seqs[0] >= first_seq:
            continue
        i = bisect_left(seqs, first_seq)
        if i == len(seqs):
            empty.append(slot)
        else:
            del seqs[:i]
        gone += i
    for slot in empty:
        del table[slot]
    return gone


def _live(seqs: array[int] | None, first_seq: int) -> array[int]:
    if seqs is None:
        return array("q")
    i = bisect_left(seqs, first_seq)
    return seqs[i:] if i else seqs


class Postings:
    """One key's values (or buckets of hashed values) -> the trace numbers holding them, ascending."""

    __slots__ = ("by_value", "exact")

    def __init__(self) -> None:
        self.by_value: dict[Any, array[int]] = {}
        self.exact = True

    @property
    def entries(self) -> int:
        return sum(map(len, self.by_value.values()))

    def add(self, text: str, seq: int) -> int:
        """Note ``seq`` under ``text``; the change in entries (negative when values were merged into buckets)."""
        if self.exact and (
            len(text) > _LONGEST_TEXT or (len(self.by_value) >= EXACT_VALUES and text not in self.by_value)
        ):
            before = self.entries
            self.to_hashed()
            return self.entries - before + self.add(text, seq)
        return _add_seq(self.by_value, text if self.exact else hash(text) & _BUCKET_MASK, seq)

    def to_hashed(self) -> None:
        """Too many values (or too long) to keep each: keep buckets of hashed values instead."""
        buckets: dict[Any, set[int]] = {}
        for text, seqs in self.by_value.items():
            buckets.setdefault(hash(text) & _BUCKET_MASK, set()).update(seqs)
        self.by_value = {slot: array("q", sorted(seqs)) for slot, seqs in buckets.items()}
        self.exact = False

    def lookup(self, text: str, first_seq: int) -> array[int]:
        """The live trace numbers under ``text`` (or its bucket), ascending."""
        return _live(self.by_value.get(text if self.exact else hash(text) & _BUCKET_MASK), first_seq)

    def sweep(self, first_seq: int) -> int:
        return _sweep(self.by_value, first_seq)


def _note(p: Postings, text: str, seq: int) -> None:
    """``p.add(text, seq)``, the common cases first: the trace noted already, or the newest under a value seen."""
    if p.exact:
        seqs = p.by_value.get(text)
        if seqs is not None:
            last = seqs[-1]
            if last == seq:
                return
            if last < seq:
                seqs.append(seq)
                return
    p.add(text, seq)


class Found:
    """The live trace numbers a lookup found, and whether each of them surely matches (else: candidates)."""

    __slots__ = ("exact", "seqs")

    def __init__(self, seqs: array[int], exact: bool) -> None:
        self.seqs = seqs
        self.exact = exact


def duration_bucket(ns: int) -> int:
    """A bucket number that never decreases with the duration: 32 buckets per power of two."""
    if ns < 32:
        return max(ns, 0)
    bits = ns.bit_length()
    return (bits << 5) | ((ns >> (bits - 6)) & 31)


class SearchIndex(Generic[TraceT]):
    """What trace search reads instead of spans, per trace number: the postings of operation names
    and of services, the failed traces, the traces by duration bucket, and the postings of the
    attribute keys searched lately.

    An attribute key is indexed from its first search on (that search reads every span once) and
    kept up to date as spans arrive, for the ``max_keys`` keys searched most recently: ingest pays
    only for keys someone searches.
    """

    def __init__(self, traces: TraceList[TraceT], max_keys: int) -> None:
        self.traces = traces
        self.max_keys = max_keys
        # key -> postings of its values on spans and resources, the least recently searched first
        self.attributes: OrderedDict[str, Postings] = OrderedDict()
        self.names = Postings()
        self.services = Postings()
        self.errors: dict[Any, array[int]] = {}
        self.durations: dict[int, array[int]] = {}
        self.keys_dropped = 0  # attribute keys no longer indexed, over the store's life
        self._evicted_since_sweep = 0
        self._display: dict[tuple[str, bool], str] = {}
        self._last_resource: tuple[int, Any] = (-1, None)

    # --- ingest ------------------------------------------------------------------
    def add_span(self, trace: TraceT, span: dict[str, Any], operation: str) -> None:
        """A span the store just added to ``trace`` (its times and services already updated),
        with its operation (``monitor.operation``, else its HTTP operation).

        Ingest runs this for every span: the common cases are written out here, not called.
        """
        seq = trace.seq
        if len(trace.spans) == 1:
            self.traces.note_end(seq, trace.end_ns)
        ns = trace.end_ns - trace.start_ns
        if ns >= 32:
            bits = ns.bit_length()
            bucket = (bits << 5) | ((ns >> (bits - 6)) & 31)
        else:
            bucket = max(ns, 0)
        if bucket != trace.duration_bucket:
            trace.duration_bucket = bucket
            _add_seq(self.durations, bucket, seq)
        names = trace.names
        name = span["name"]
        if name not in names:
            names.add(name)
            _note(self.names, name, seq)
        if operation not in names:
            names.add(operation)
            _note(self.names, operation, seq)
        if "/" in name and name.count("/") >= 2:
            trace.slashed, trace.display_names = True, None
            short = self.shortened(name, span["attributes"])
            if short != name:
                _note(self.names, short, seq)
        _note(self.services, span["service"], seq)
        if self.attributes:
            self._add_attributes(seq, span["attributes"])
            resource = span["resource"]
            last_seq, last_resource = self._last_resource
            if last_seq != seq or last_resource is not resource:
                self._last_resource = (seq, resource)
                self._add_attributes(seq, resource)

    def add_error(self, seq: int) -> None:
        """The trace numbered ``seq`` has just failed."""
        _add_seq(self.errors, True, seq)

    def _add_attributes(self, seq: int, attributes: dict[str, Any]) -> None:
        """The indexed keys among a span's (or its resource's) attributes, for the trace numbered ``seq``."""
        indexed = self.attributes
        missing = _MISSING
        if len(indexed) < len(attributes):
            for key, p in indexed.items():
                value = attributes.get(key, missing)
                if value is not missing:
                    _note(p, value if value.__class__ is str else str(value), seq)
        else:
            for key, value in attributes.items():
                found = indexed.get(key)
                if found is not None:
                    _note(found, value if value.__class__ is str else str(value), seq)

    def shortened(self, name: str, attributes: dict[str, Any]) -> str:
        """:func:`display_name`, remembered: span names repeat."""
        key = (name, semconv.DB_SYSTEM_NAME in attributes or semconv.DB_SYSTEM in attributes)
        found = self._display.get(key)
        if found is None:
            if len(self._display) >= EXACT_VALUES:
                self._display.clear()
            found = self._display[key] = display_name(name, attributes)
        return found

    def evicted(self) -> None:
        """A trace left the store: its numbers are cut off once evicted ones are a good part of all."""
        self._evicted_since_sweep += 1
        if 4 * self._evicted_since_sweep >= max(4 * BLOCK, len(self.traces)):
            self.sweep()

    def sweep(self) -> None:
        first = self.traces.first_seq
        self._evicted_since_sweep = 0
        for p in (*self.attributes.values(), self.names, self.services):
            p.sweep(first)
        _sweep(self.errors, first)
        _sweep(self.durations, first)

    # --- search -------------------------------------------------------------------
    def attribute(self, key: str, text: str) -> Found:
        """Traces with ``key=text`` on a span or its resource (the key indexed first if it is not)."""
        p = self.attributes.get(key)
        if p is None:
            p = self._index_key(key)
        else:
            self.attributes.move_to_end(key)
        return Found(p.lookup(text, self.traces.first_seq), p.exact)

    def _index_key(self, key: str) -> Postings:
        """Read every span kept for ``key``, and index it from now on (the least recently searched key out)."""
        p = Postings()
        missing = _MISSING
        for trace in self.traces:
            seq = trace.seq
            resource = None
            for span in trace.spans:
                value = span["attributes"].get(key, missing)
                if value is not missing:
                    p.add(value if value.__class__ is str else str(value), seq)
                if span["resource"] is not resource:
                    resource = span["resource"]
                    value = resource.get(key, missing)
                    if value is not missing:
                        p.add(value if value.__class__ is str else str(value), seq)
        self.attributes[key] = p
        self._last_resource = (-1, None)  # the resource of the newest trace is not indexed for the new key
        while len(self.attributes) > self.max_keys:
            self.attributes.popitem(last=False)
            self.keys_dropped += 1
        return p

    def name(self, name: str) -> Found:
        """Traces with a span of that name, operation or shortened name."""
        return Found(self.names.lookup(name, self.traces.first_seq), self.names.exact)

    def service(self, service: str) -> Found:
        return Found(self.services.lookup(service, self.traces.first_seq), self.services.exact)

    def failed(self) -> Found:
        return Found(_live(self.errors.get(True), self.traces.first_seq), True)

    def slowest(self, count: int, matches: Callable[[TraceT], bool]) -> list[TraceT]:
        """The ``count`` longest traces that ``matches`` accepts, longest first (the newest first among
        equals): read from the longest duration bucket down, only as far as needed."""
        first = self.traces.first_seq
        get = self.traces.get
        out: list[TraceT] = []
        for bucket in sorted(self.durations, reverse=True):
            for seq in _live(self.durations[bucket], first):
                trace = get(seq)
                if trace is not None and trace.duration_bucket == bucket and matches(trace):
                    out.append(trace)
            if len(out) >= count:
                break
        out.sort(key=lambda t: (t.end_ns - t.start_ns, t.seq), reverse=True)
        return out[:count]

    def memory(self) -> dict[str, int]:
        """What the index holds: attribute keys, trace numbers (entries), and the bytes of its tables
        and arrays (the texts of values are the spans' own)."""
        tables = [p.by_value for p in (*self.attributes.values(), self.names, self.services)]
        tables += [self.errors, self.durations]
        return {
            "index_keys": len(self.attributes),
            "index_entries": sum(len(seqs) for table in tables for seqs in table.values()),
            "index_bytes": sys.getsizeof(self.attributes)
            + sum(sys.getsizeof(table) + sum(map(sys.getsizeof, table.values())) for table in tables),
        }


_MISSING = object()
