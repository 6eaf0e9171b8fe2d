# AsyncioTransportConnection: the driver's Connection over asyncio's
# transport/protocol layer, with TLS over MemoryBIO (see protocol.py).
#
# Strategy: keep everything the base Connection does (address families,
# sockopts, the shard-aware local port, framing, stream ids, the
# OPTIONS/STARTUP/auth handshake, defunct()); replace only what a reactor
# supplies: the loop thread, timers, push, close, and the byte plumbing.
# The TCP connect stays in the base class (_wrap_socket_from_context hands
# back the plain socket instead of an SSLSocket); the connected socket is
# then given to loop.create_connection(sock=...) and TLS, if any, runs in
# our protocol, which can offer the driver's cached TLS session.
#
# One connect timeout, split: the TCP connect is bounded by it; the TLS
# handshake must finish before HANDSHAKE_SHARE of it has passed, and fails
# with TLSHandshakeTimeout naming the TLS handshake; the CQL startup gets the
# rest (Connection.factory waits on connected_event for what is left).
# connected_event keeps the driver's meaning: set when the CQL startup
# completed or failed, never when the transport connects.
#
# Rules: the concurrent future of the set-up task is always read (its
# exception defuncts the connection); every loop callback is guarded; push()
# and close() may be called from any thread; writes queued by many pushes
# go out in one transport write (one TLS record run) per loop turn.
#
# Speed: a request pushed from a response callback (the loop thread, while
# a read is being processed) costs no loop callback: what the read's
# callbacks pushed goes out in one write when the read is done (or when
# FLUSH_BATCH frames wait), except a request that is the connection's only
# one in flight: it goes out at once, since the node has nothing else of
# ours to work on. Other threads wake the loop once per batch. A
# cancelled timer lets go of its callback at once, so a finished request
# is freed when the driver drops it, not when its timeout would have come.
from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import logging
import os
import socket
import ssl
import threading
import time
from typing import Any, Callable, List, Optional

from cassandra.connection import Connection, ConnectionException, ConnectionShutdown

from .protocol import CQLProtocol, TLSLayer
from .selector import selector_loop

log = logging.getLogger(__name__)

__all__ = ["AsyncioTransportConnection", "TLSHandshakeTimeout", "LoopTimer", "TimerQueue", "HANDSHAKE_SHARE"]

# The TLS handshake must be done when this share of connect_timeout has
# passed since the connection began: the rest is left to the CQL startup, and
# the handshake's own, clearer error beats the factory's OperationTimedOut.
HANDSHAKE_SHARE = 0.9
DEFAULT_CONNECT_TIMEOUT = 5.0
# Pushes made on the loop thread go out in batches of at most this many
# frames (see push); from other threads, once per loop turn.
FLUSH_BATCH = 16
# The timer heap is rid of its cancelled timers when it reaches this size
# (then twice what stayed). Small, so that a finished request's timer dies
# young: timers kept for thousands of requests outlive the collector's
# young generations, and their growing count in the oldest one triggers
# full collections (one per ~8,000 queries at 4096).
COMPACT_AT = 256


class TLSHandshakeTimeout(ConnectionException):
    """The TLS handshake did not complete within its share of the connect timeout."""


def _cancelled() -> None:
    """What a cancelled or fired timer holds instead of its callback."""


class LoopTimer:
    """A driver timer (request timeouts, heartbeats): thread-safe, and cheap.

    The driver makes one per request and cancels nearly all of them, so
    neither may wake the loop: timers wait in a TimerQueue, and cancelling
    only marks them.
    """

    __slots__ = ("end", "deadline", "_callback", "cancelled")

    def __init__(self, timeout: float, callback: Callable[[], Any]) -> None:
        self.end = time.time() + timeout
        self.deadline = time.monotonic() + timeout  # the loop's clock
        self._callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self._callback = _cancelled  # the request it would time out is freed now, not at its deadline

    def fire(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True  # at most once
        callback, self._callback = self._callback, _cancelled
        try:
            callback()
        except Exception:  # surfaces in the log; a timer belongs to no connection
            log.exception("Timer callback %r failed", callback)

    def finish(self, *args: Any) -> bool:
        """TimerManager compatibility: the loop fires timers, nothing to do here."""
        return self.cancelled


class TimerQueue:
    """Timers in a heap, run by one loop callback set for the earliest deadline.

    Adding a timer wakes the loop only when it is due before the wake-up
    already set; the common case (a request timeout after the earlier ones)
    costs a heap push under a lock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._loop = loop
        self._thread = thread
        self._heap: List[Any] = []
        self._lock = threading.Lock()
        self._wake_at: Optional[float] = None  # the deadline the loop callback is set for
        self._handle: Optional[asyncio.TimerHandle] = None
        self._counter = 0
        self._compact_at = COMPACT_AT

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def add(self, timer: LoopTimer) -> LoopTimer:
        with self._lock:
            self._counter += 1
            heapq.heappush(self._heap, (timer.deadline, self._counter, timer))
            if len(self._heap) >= self._compact_at:
                self._compact()
            if self._wake_at is not None and self._wake_at <= timer.deadline:
                return timer
            self._wake_at = timer.deadline
        if threading.current_thread() is self._thread:
            self._reschedule()
        else:
            self._loop.call_soon_threadsafe(self._reschedule)
        return timer

    def _compact(self) -> None:
        """Drop the cancelled timers (nearly all: one per finished request)
        from the heap; the threshold doubles with what stays, so the cost is
        amortised and the heap stays within twice the live timers."""
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._compact_at = max(COMPACT_AT, 2 * len(self._heap))

    def _reschedule(self) -> None:
        with self._lock:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            deadline = self._heap[0][0] if self._heap else None
            self._wake_at = deadline
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._run)

    def _run(self) -> None:
        self._handle = None
        now = time.monotonic()
        due = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
            self._wake_at = None
        for timer in due:
            timer.fire()
        self._reschedule()


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # Our callbacks are guarded; whatever reaches here is not ours to swallow.
    log.error("Unhandled error on the cqltransport loop: %s", context.get("message"),
              exc_info=context.get("exception"))


class AsyncioTransportConnection(Connection):
    """A Connection whose I/O (TLS included) runs on asyncio's transport layer.

    Use it with either driver: ``Cluster(connection_class=AsyncioTransportConnection)``.
    """

    # The handshake is ours (TLSLayer), so a cached session can be offered.
    supports_tls_session_resumption = True

    # What makes the reactor's loop (called once per loop thread); a subclass
    # may set its own, as UvloopTransportConnection does (cqltransport/loops.py),
    # and then gets a loop thread of its own (__init_subclass__).
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = staticmethod(selector_loop)  # asyncio's loop, a leaner select()

    _loop: Optional[asyncio.AbstractEventLoop] = None
    _loop_thread: Optional[threading.Thread] = None
    _timers: Optional[TimerQueue] = None
    _reactor_lock = threading.Lock()
    _pid = os.getpid()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "loop_factory" in cls.__dict__:  # another kind of loop: never the base class's loop thread
            cls._loop, cls._loop_thread, cls._timers = None, None, None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._began = time.monotonic()
        Connection.__init__(self, *args, **kwargs)
        self._protocol: Optional[CQLProtocol] = None
        self._tls: Optional[TLSLayer] = None
        self._setup: Optional[concurrent.futures.Future] = None
        self._handshake_timer: Optional[asyncio.TimerHandle] = None
        self._pending: List[bytes] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self._reading = False  # the loop thread is handing received bytes to the driver
        self._segment_tail = b""  # an incomplete v5 segment (see _whole_segments)
        self.initialize_reactor()
        self._connect_socket()  # TCP, blocking, bounded by connect_timeout (base class)
        self._socket.setblocking(False)
        self._set_nodelay()
        assert self._loop is not None
        # The set-up task's future is read by _setup_finished, always.
        self._setup = asyncio.run_coroutine_threadsafe(self._create_transport(), self._loop)
        self._setup.add_done_callback(self._setup_finished)

    # -- reactor-wide ---------------------------------------------------------------
    @classmethod
    def initialize_reactor(cls) -> None:
        with cls._reactor_lock:
            if cls._pid != os.getpid():
                cls._forget_loop()  # a forked child cannot use its parent's loop thread
            if cls._loop is None or cls._loop.is_closed():
                loop = cls.loop_factory()
                loop.set_exception_handler(_loop_exception_handler)
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="cqltransport_loop", daemon=True)
                thread.start()
                started.wait(10)
                cls._loop, cls._loop_thread = loop, thread
                cls._timers = TimerQueue(loop, thread)

    @classmethod
    def _forget_loop(cls) -> None:
        cls._loop = None
        cls._loop_thread = None
        cls._timers = None
        cls._pid = os.getpid()

    @classmethod
    def handle_fork(cls) -> None:
        with cls._reactor_lock:
            cls._forget_loop()

    @classmethod
    def create_timer(cls, timeout: float, callback: Callable[[], Any]) -> LoopTimer:
        timers = cls._timers
        if timers is None or cls._pid != os.getpid() or timers.closed:  # one per request: keep it short
            cls.initialize_reactor()
            timers = cls._timers
        assert timers is not None
        return timers.add(LoopTimer(timeout, callback))

    def _on_loop_thread(self) -> bool:
        return threading.current_thread() is self._loop_thread

    # -- connecting -----------------------------------------------------------------
    def _set_nodelay(self) -> None:
        """TCP_NODELAY, unless the caller's sockopts say otherwise: pushes are
        already coalesced per loop turn, and Nagle's algorithm only adds a
        delayed-ACK wait (40 ms on Linux) where a TLS flight and a request go
        out back to back."""
        if self._socket.family not in (socket.AF_INET, socket.AF_INET6):
            return
        for option in self.sockopts or ():
            if tuple(option[:2]) == (socket.IPPROTO_TCP, socket.TCP_NODELAY):
                return
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _wrap_socket_from_context(self) -> socket.socket:
        # No SSLSocket: TLS runs over MemoryBIO once the TCP connect is done.
        return self._socket

    def _server_hostname(self) -> str:
        """The name the certificate is checked against, as the seed specifies:
        ssl_options' server_hostname; else the endpoint address when the
        context checks host names; else "" (no SNI, no name check)."""
        if self.ssl_options and self.ssl_options.get("server_hostname") is not None:
            return str(self.ssl_options["server_hostname"])
        if self.ssl_context is not None and self.ssl_context.check_hostname:
            return str(self.endpoint.address)
        return ""

    def _checks_names_itself(self) -> bool:
        """ssl_options={"check_hostname": True} beside a context that does not
        check names: the drivers' Connection ignores the option since its
        PYTHON-1331 rework (docs/upstream-bugs.md); this reactor honours it."""
        return bool(self.ssl_options and self.ssl_options.get("check_hostname")
                    and self.ssl_context is not None and not self.ssl_context.check_hostname)

    def _deadline(self) -> float:
        timeout = self.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        return self._began + HANDSHAKE_SHARE * timeout

    async def _create_transport(self) -> None:
        loop = asyncio.get_running_loop()
        tls = None
        if self.ssl_context is not None:
            tls = TLSLayer(self.ssl_context, self._server_hostname())
            restore = getattr(self, "_restore_tls_session", None)  # drivers with a session cache
            if restore is not None:
                restore(tls.sslobj)
        self._tls = tls
        _, protocol = await loop.create_connection(lambda: CQLProtocol(self, tls), sock=self._socket)
        protocol.set_up()  # a close asked for while the transport was made happens now

    def _setup_finished(self, future: concurrent.futures.Future) -> None:
        # Always read: an exception here must end the connection, not vanish.
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            if self._protocol is None:
                self._socket.close()  # no transport took it
            self.defunct(exc)

    def _attach(self, protocol: CQLProtocol) -> bool:
        """The transport is up; False if the connection was closed meanwhile."""
        self._protocol = protocol
        return not (self.is_closed or self.is_defunct)

    def _tls_handshake_started(self, protocol: CQLProtocol) -> None:
        assert self._loop is not None
        left = self._deadline() - time.monotonic()
        self._handshake_timer = self._loop.call_later(max(left, 0), self._guard, self._handshake_timed_out, protocol)

    def _handshake_timed_out(self, protocol: CQLProtocol) -> None:
        self._handshake_timer = None
        if protocol.ready or self.is_closed or self.is_defunct:
            return
        timeout = self.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        exc = TLSHandshakeTimeout(
            f"TLS handshake with {self.endpoint} did not complete within "
            f"{HANDSHAKE_SHARE * timeout:.3g} s ({HANDSHAKE_SHARE:.0%} of the {timeout:.3g} s connect timeout)",
            self.endpoint,
        )
        self.defunct(exc)
        protocol.abort()

    def _transport_ready(self, protocol: CQLProtocol) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        tls = self._tls
        if tls is not None:
            offered = getattr(self, "_tls_session_offered", None)
            if offered is not None and not tls.sslobj.session_reused:
                log.debug("The node refused the TLS session offered by %s", self)
                self._discard_tls_session()
        if self.is_closed or self.is_defunct:
            protocol.close()
            return
        if tls is not None and self._checks_names_itself():
            tls.check_peer_name(str(self.endpoint.address))  # raises: the guard defuncts with it
        self._send_options_message()  # CQL startup; connected_event waits for READY
        self._flush()  # what was pushed before the transport was ready

    def _bytes_received(self, data: "bytes | memoryview") -> None:
        """Bytes from the peer (valid during this call only) to the driver;
        what its callbacks pushed meanwhile goes out in one write after."""
        if self._is_checksumming_enabled:
            data = self._whole_segments(data)
            if not data:
                return
        self._iobuf.write(data)
        self._reading = True
        try:
            self.process_io_buffer()
        finally:
            self._reading = False
        if self._pending:
            self._flush()

    def _whole_segments(self, data: "bytes | memoryview") -> "bytes | memoryview":
        """The complete v5 segments received so far; the rest waits here.

        The driver's Connection drops the bytes of a segment header that
        arrives in pieces (fewer than header+CRC bytes buffered: its
        reset_io_buffer() reads from the end of the buffer), and the next
        segment then fails its CRC. Handing it whole segments only avoids
        that, whatever the network does to the byte stream.
        """
        buf = self._segment_tail + data if self._segment_tail else data
        header_size = getattr(self._segment_codec, "header_length", 3)
        pos = 0
        while len(buf) - pos >= header_size + 3:
            header = int.from_bytes(buf[pos : pos + header_size], "little")
            end = pos + header_size + 3 + (header & 0x1FFFF) + 4
            if end > len(buf):
                break
            pos = end
        self._segment_tail = bytes(buf[pos:])  # `data` may be a view of a buffer about to be reused
        return buf[:pos]

    def _transport_lost(self, exc: Optional[BaseException]) -> None:
        if exc is not None:
            self.defunct(exc)
        else:
            self.close()

    # -- TLS session accessors used by the driver's resumption policy ---------------
    def _get_resumable_tls_session(self) -> Optional[ssl.SSLSession]:
        if self._tls is None:
            return None
        session = self._tls.sslobj.session
        if session is None or not (session.has_ticket or session.id):
            return None
        return session

    def _tls_negotiated_version(self) -> Optional[str]:
        return self._tls.sslobj.version() if self._tls is not None else None

    # -- writing ----------------------------------------------------------------------
    def push(self, data: bytes) -> None:
        on_loop = threading.current_thread() is self._loop_thread
        with self._pending_lock:
            self._pending.append(data)
            if on_loop and (len(self._requests) <= 1 or len(self._pending) >= FLUSH_BATCH):
                # Out at once, so that the node works while we go on: the only
                # request in flight (the node is idle: it answers while we
                # finish the read's callbacks), or a full batch.
                flush_now = True
            elif self._flush_scheduled or (on_loop and self._reading):
                return  # a flush is coming: the scheduled one, or the read's own
            else:
                flush_now = False
                self._flush_scheduled = True
        if flush_now:
            self._guard(self._flush)
            return
        loop = self._loop
        assert loop is not None
        if on_loop:
            loop.call_soon(self._guard, self._flush)
        else:
            loop.call_soon_threadsafe(self._guard, self._flush)

    def _flush(self) -> None:
        protocol = self._protocol
        if protocol is None or not protocol.ready:
            with self._pending_lock:
                self._flush_scheduled = False
            return  # _transport_ready flushes what waited
        with self._pending_lock:
            chunks, self._pending = self._pending, []
            self._flush_scheduled = False
        if chunks:
            protocol.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _guard(self, callback: Callable[..., None], *args: Any) -> None:
        """Run a loop callback of ours; any exception ends the connection with it."""
        try:
            callback(*args)
        except Exception as exc:
            log.debug("Connection %s failed in %s: %r", self, callback.__name__, exc)
            self.defunct(exc)
            if self._protocol is not None:
                self._protocol.close()

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            if self.is_closed:  # type: ignore[has-type]
                return
            self.is_closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            self._close_now()
        elif self._on_loop_thread():
            self._close_now()
        else:
            try:
                loop.call_soon_threadsafe(self._close_now)
            except RuntimeError:  # the loop closed meanwhile
                self._close_now()

    def _close_now(self) -> None:
        # Closing cannot defunct a closed connection: a failure here is logged, and
        # the finally clause still releases every waiter.
        try:
            log.debug("Closing connection (%s) to %s", id(self), self.endpoint)
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None
            with self._pending_lock:
                self._pending = []
            protocol = self._protocol
            if protocol is not None:
                protocol.close()  # cancels a handshake in progress too
            elif self._setup is not None and self._setup.done() and self._socket is not None:
                self._socket.close()  # the set-up failed: no transport took the socket
            # else: the set-up is still creating the transport; the protocol
            # sees the connection closed when it attaches, and closes it.
        except Exception:
            log.exception("Closing connection %s failed", self)
        finally:
            if not self.is_defunct:
                msg = f"Connection to {self.endpoint} was closed"
                if self.last_error:
                    msg += f": {self.last_error}"
                self.error_all_requests(ConnectionShutdown(msg))
                self.connected_event.set()
