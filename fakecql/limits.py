# How much one request may ask of the node, and how much the node keeps.
#
# A real node bounds its work: Cassandra 4 refuses frames over
# native_transport_max_frame_size (16 MB), evicts prepared statements from a
# cache sized in bytes, and never lets one client hold the others. fakecql
# does the same, so that a buggy driver or a fuzzer gets an error naming the
# limit instead of freezing the node for everyone. One frozen record, passed
# to CQLServer(limits=...) and set from `serve`'s flags; nothing here knows of
# sockets.
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

__all__ = ["Limits", "MiB"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The node's bounds on one request's work and on what it keeps.

    Every field is a positive integer; `None` lifts the bound where that is
    allowed (the activity log's, for tests that need everything).
    """

    # Cassandra 4's native_transport_max_frame_size: a longer frame is
    # refused from its header, and a compressed body or v5 segment is
    # refused from the size it declares, before anything is decompressed.
    max_frame_body: int = 16 * MiB
    # The longest statement text (UTF-8 bytes) the node interprets; a longer
    # one is answered with an InvalidRequest naming this limit. Bounds the
    # interpreter's work per request (it is linear, but not free). A text is
    # also bounded by the frame it comes in.
    max_query_text: int = 1 * MiB
    # Elements of one collection value (list, set, map) the node decodes;
    # the protocol v2 bound, which drivers still respect.
    max_collection_elements: int = 65535
    # The prepared-statement cache, in bytes of statement text plus a fixed
    # cost per entry; the least recently used entry is evicted (the driver
    # re-prepares on UNPREPARED, as against a real node).
    prepared_cache_bytes: int = 32 * MiB
    # The caches of parsed statement texts (one for the process: the last
    # node made sizes it) and of each node's SELECT plans, in bytes held.
    parse_cache_bytes: int = 16 * MiB
    # Requests larger than this (frame body bytes) are decoded and answered
    # on a worker thread, so the loop keeps serving every other connection.
    offload_over: int = 16 * 1024
    # The activity log keeps this many recent entries and this many bytes of
    # query text (counters keep the totals); None keeps everything.
    log_entries: Optional[int] = 100_000
    log_text_bytes: Optional[int] = 64 * MiB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name.startswith("log_"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive integer, got {value!r}")

    @classmethod
    def unbounded_log(cls, **changes: int) -> "Limits":
        """Limits whose activity log keeps every entry (for tests that need everything)."""
        return cls(log_entries=None, log_text_bytes=None, **changes)  # type: ignore[arg-type]
