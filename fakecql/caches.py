# A least-recently-used map bounded by the bytes it holds, not by a count:
# what a node keeps per statement text (parsed statements, prepared
# statements, select plans) grows with the text, so a count alone lets a few
# huge texts hold gigabytes.
#
# Rules: every entry costs its size (given to put, else `size(value)`) plus
# a fixed `entry_overhead` for the key, the node and the objects it points
# to; the least recently used entries go first when a put goes over either
# bound; an entry larger than the whole budget is not kept at all. One lock
# guards each cache, so callers on the loop and on worker threads may share
# it; values are kept as given, so they should be immutable.
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, Optional, Tuple, TypeVar

__all__ = ["SizedCache", "text_bytes"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def text_bytes(text: str) -> int:
    """Bytes of `text` in UTF-8, without encoding it when it is ASCII (the
    common case, and O(1) in CPython)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


class SizedCache(Generic[K, V]):
    """An LRU map holding at most `max_bytes` (and `max_entries`, if given).

    `size(value)` is what an entry costs when put() is not told its size;
    `entry_overhead` is added to every entry, so that many tiny entries are
    bounded too. `evictions` counts entries pushed out to make room.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        size: Callable[[Any], int] = len,
        entry_overhead: int = 256,
        max_entries: Optional[int] = None,
    ) -> None:
        _check_bounds(max_bytes, max_entries)
        if entry_overhead < 0:
            raise ValueError(f"entry_overhead must be >= 0, got {entry_overhead!r}")
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._size = size
        self._overhead = entry_overhead
        self._entries: OrderedDict[K, Tuple[V, int]] = OrderedDict()  # value, cost with overhead
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------
    def get(self, key: K, default: Optional[V] = None) -> Optional[V]:
        """The value under `key`, now the most recently used; else `default`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            self._entries.move_to_end(key)
            return entry[0]

    def peek(self, key: K) -> Optional[V]:
        """The value under `key`, not counted as a use; without the lock (one
        dict lookup, atomic in CPython), for hot paths that only look."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        """Whether `key` is held; does not count as a use."""
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes_held(self) -> int:
        """What the entries cost now, overheads included."""
        with self._lock:
            return self._bytes

    @property
    def evictions(self) -> int:
        """Entries pushed out to make room since the cache was made."""
        with self._lock:
            return self._evictions

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def max_entries(self) -> Optional[int]:
        return self._max_entries

    # -- writing -------------------------------------------------------------------
    def put(self, key: K, value: V, size: Optional[int] = None) -> bool:
        """Keep `value` under `key` as the most recently used entry, evicting
        the least recently used ones past the bounds. False when the entry
        alone is over `max_bytes`: it is not kept (and any older value under
        `key` is dropped, so a get never returns a stale one)."""
        cost = (self._size(value) if size is None else size) + self._overhead
        if cost < self._overhead:
            raise ValueError(f"an entry's size must be >= 0, got {cost - self._overhead} for {key!r}")
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if cost > self._max_bytes:
                return False
            self._entries[key] = (value, cost)
            self._bytes += cost
            self._shrink()
            return True

    def pop(self, key: K, default: Optional[V] = None) -> Optional[V]:
        """Remove and return the value under `key`; else `default`."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return default
            self._bytes -= entry[1]
            return entry[0]

    def clear(self) -> None:
        """Drop every entry (not counted as evictions)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def resize(self, max_bytes: int, max_entries: Optional[int] = None) -> None:
        """New bounds, applied at once: the least recently used entries past
        them are evicted now."""
        _check_bounds(max_bytes, max_entries)
        with self._lock:
            self._max_bytes, self._max_entries = max_bytes, max_entries
            self._shrink()

    def _shrink(self) -> None:
        # Called with the lock held.
        entries = self._entries
        while entries and (
            self._bytes > self._max_bytes or (self._max_entries is not None and len(entries) > self._max_entries)
        ):
            _, (_, cost) = entries.popitem(last=False)
            self._bytes -= cost
            self._evictions += 1

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<SizedCache {len(self._entries)} entries, {self._bytes}/{self._max_bytes} bytes, "
                f"{self._evictions} evictions>"
            )


def _check_bounds(max_bytes: int, max_entries: Optional[int]) -> None:
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
    if max_entries is not None and (
        not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 0
    ):
        raise ValueError(f"max_entries must be None or an integer >= 0, got {max_entries!r}")
