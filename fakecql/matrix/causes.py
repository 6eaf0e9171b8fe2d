# Naming the cause of a failed cell: what the node saw, and every exception
# the reactor raised where nobody read it.
#
# Strategy: the seed's bug was a TypeError stored in a future nobody read.
# UnreadExceptions (worker side, installed before the driver is imported)
# watches every place an exception can be left behind in a Python process,
# by mechanism rather than by matching any reactor's messages:
#   - concurrent.futures.Future: an exception set and never retrieved
#     (result()/exception() never called) by the end of the cell;
#   - asyncio: whatever reaches a loop's exception handler (a task's
#     exception never retrieved, a failing callback), after a gc pass;
#   - threads that died (threading.excepthook), unraisable exceptions
#     (sys.unraisablehook: __del__, finalizers);
#   - log records carrying an exception (any logger, any level);
#   - tracebacks written to stderr (how gevent's and eventlet's hubs
#     report a greenlet that died);
#   - twisted's log of failures (an unhandled error in a Deferred), when
#     twisted is loaded.
# node_saw() (runner side) turns the node's activity log into one line:
# connections, TLS handshakes, the CQL frames received, faults, closings.
#
# Rules: the hooks chain to what was installed before them and never raise;
# an exception already in the error the driver raised is not "unread".
from __future__ import annotations

import concurrent.futures
import gc
import io
import logging
import re
import sys
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

__all__ = ["UnreadExceptions", "describe", "node_saw", "tracebacks_in"]

_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Warning|Interrupt|Failure)\w*|[A-Za-z_][\w.]*Error)(: .*)?$")


def tracebacks_in(text: str) -> List[str]:
    """The final 'Type: message' line of every Python traceback in `text`."""
    found: List[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if _TRACEBACK.match(lines[i].strip()):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            if j < len(lines):
                found.append(lines[j].strip())
            i = j
        i += 1
    return found


class _Tee(io.TextIOBase):
    """stderr that also keeps what was written, for tracebacks printed by hubs."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._chunks: List[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._chunks.append(text)
        try:
            return self._stream.write(text)
        except Exception:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except Exception:
            pass

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)


class _ExceptionRecords(logging.Handler):
    def __init__(self, found: Callable[[str, BaseException], None]) -> None:
        super().__init__(level=logging.DEBUG)
        self._found = found

    def emit(self, record: logging.LogRecord) -> None:
        info = record.exc_info
        if info and info[1] is not None:
            self._found(f"a log record of {record.name} ({record.levelname}: {record.getMessage()[:80]})", info[1])


class UnreadExceptions:
    """Collects exceptions left where nobody reads them, from start() to report()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: List[Tuple[str, BaseException]] = []
        self._texts: List[Tuple[str, str]] = []  # (where, "Type: message") with no exception object
        self._futures: "weakref.WeakKeyDictionary[concurrent.futures.Future, BaseException]" = weakref.WeakKeyDictionary()
        self._read: "weakref.WeakSet[concurrent.futures.Future]" = weakref.WeakSet()
        self._restore: List[Callable[[], None]] = []
        self._tee: Optional[_Tee] = None

    # -- installing -------------------------------------------------------------------
    def start(self) -> "UnreadExceptions":
        self._watch_futures()
        self._watch_asyncio()
        self._watch_threads()
        self._watch_logging()
        self._tee = _Tee(sys.stderr)
        previous_stderr = sys.stderr
        sys.stderr = self._tee  # type: ignore[assignment]
        self._restore.append(lambda: setattr(sys, "stderr", previous_stderr))
        return self

    def stop(self) -> None:
        for undo in reversed(self._restore):
            try:
                undo()
            except Exception:
                pass
        self._restore.clear()

    def _add(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self._found.append((where, exc))

    def _watch_futures(self) -> None:
        future_type = concurrent.futures.Future
        original_set, original_result, original_exception = (
            future_type.set_exception, future_type.result, future_type.exception)
        futures, read = self._futures, self._read

        def set_exception(future: Any, exception: Any) -> None:
            try:
                if isinstance(exception, BaseException):
                    futures[future] = exception
            except TypeError:
                pass
            original_set(future, exception)

        def result(future: Any, timeout: Any = None) -> Any:
            read.add(future)
            return original_result(future, timeout)

        def exception(future: Any, timeout: Any = None) -> Any:
            read.add(future)
            return original_exception(future, timeout)

        patched = {"set_exception": set_exception, "result": result, "exception": exception}
        originals = {"set_exception": original_set, "result": original_result, "exception": original_exception}
        for name, function in patched.items():
            setattr(future_type, name, function)

        def undo() -> None:
            for name, function in originals.items():
                setattr(future_type, name, function)

        self._restore.append(undo)

    def _watch_asyncio(self) -> None:
        import asyncio.base_events

        loop_type = asyncio.base_events.BaseEventLoop
        original = loop_type.call_exception_handler
        add = self._add
        texts = self._texts

        def call_exception_handler(loop: Any, context: Dict[str, Any]) -> None:
            exc = context.get("exception")
            message = str(context.get("message", "asyncio error"))
            if isinstance(exc, BaseException):
                add(f"an asyncio loop's exception handler ({message})", exc)
            else:
                texts.append(("an asyncio loop's exception handler", message))
            original(loop, context)

        setattr(loop_type, "call_exception_handler", call_exception_handler)
        self._restore.append(lambda: setattr(loop_type, "call_exception_handler", original))

    def _watch_threads(self) -> None:
        previous_thread_hook = threading.excepthook
        previous_unraisable = sys.unraisablehook
        add = self._add

        def thread_hook(args: Any) -> None:
            if args.exc_value is not None:
                name = args.thread.name if args.thread is not None else "?"
                add(f"thread {name}, which died of it", args.exc_value)
            previous_thread_hook(args)

        def unraisable_hook(unraisable: Any) -> None:
            if unraisable.exc_value is not None:
                add(f"an unraisable exception ({unraisable.err_msg or 'ignored'})", unraisable.exc_value)
            previous_unraisable(unraisable)

        threading.excepthook = thread_hook
        sys.unraisablehook = unraisable_hook
        self._restore.append(lambda: setattr(threading, "excepthook", previous_thread_hook))
        self._restore.append(lambda: setattr(sys, "unraisablehook", previous_unraisable))

    def _watch_logging(self) -> None:
        handler = _ExceptionRecords(self._add)
        root = logging.getLogger()
        previous_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)  # records below WARNING carry exceptions too (the drivers log at debug)
        # The drivers' loggers must not print what they now emit at debug: only our handler gets it.
        for existing in list(root.handlers):
            if existing is not handler and isinstance(existing, logging.StreamHandler):
                existing.setLevel(max(existing.level, logging.WARNING))

        def undo() -> None:
            root.removeHandler(handler)
            root.setLevel(previous_level)

        self._restore.append(undo)

    def watch_twisted(self) -> None:
        """Call after twisted is imported (the worker does, for the twisted reactor)."""
        try:
            from twisted.logger import globalLogPublisher
        except ImportError:
            return
        def observer(event: Dict[str, Any]) -> None:
            failure = event.get("log_failure")
            if failure is not None:
                value = getattr(failure, "value", None)
                if isinstance(value, BaseException):
                    self._add("twisted's log of failures", value)

        globalLogPublisher.addObserver(observer)
        self._restore.append(lambda: globalLogPublisher.removeObserver(observer))

    # -- reporting -----------------------------------------------------------------------
    def report(self, seen: Sequence[str] = ()) -> List[str]:
        """One line per exception left unread, oldest first: "Type: message (in WHERE)".
        `seen` holds the "Type: message" texts of the error the caller did get:
        those were read."""
        gc.collect()  # lets asyncio report tasks whose exception nobody retrieved
        lines: List[str] = []
        shown: Set[str] = set(seen)

        def add(text: str, where: str) -> None:
            if text not in shown:
                shown.add(text)
                lines.append(f"{text} (in {where})")

        for future, exc in list(self._futures.items()):
            if future not in self._read:
                add(describe(exc), "a concurrent future nobody read")
        with self._lock:
            found, texts = list(self._found), list(self._texts)
        for where, exc in found:
            add(describe(exc), where)
        for where, text in texts:
            add(text, where)
        if self._tee is not None:
            for text in tracebacks_in(self._tee.text):
                add(text, "a traceback printed to stderr")
        return lines


def describe(exc: BaseException) -> str:
    """"Type: message" on one line (the type alone when there is no message)."""
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- what the node saw (runner side) ------------------------------------------------

def node_saw(entries: Sequence[Any], *, since: float, until: float) -> str:
    """One line on what the node saw during a cell, from its activity entries."""
    from ..activity import (
        ConnectionClosed,
        ConnectionOpened,
        FaultApplied,
        FrameReceived,
        HandshakeCompleted,
        HandshakeFailed,
        Incident,
        VersionRefused,
    )

    opened = [e for e in entries if isinstance(e, ConnectionOpened)]
    if not opened:
        return "node: no connection"
    parts = [f"{len(opened)} connection{'s' if len(opened) != 1 else ''}"]
    handshakes = [e for e in entries if isinstance(e, HandshakeCompleted)]
    failed = [e for e in entries if isinstance(e, HandshakeFailed)]
    frames = [e for e in entries if isinstance(e, FrameReceived)]
    if handshakes:
        protocols = sorted({h.protocol for h in handshakes})
        parts.append(f"{len(handshakes)} TLS handshake{'s' if len(handshakes) != 1 else ''} completed "
                     f"({', '.join(protocols)})")
    if failed:
        parts.append(f"TLS handshake failed: {failed[0].reason}")
    if any(e.tls for e in opened) and not handshakes and not failed:
        parts.append("no TLS handshake completed")
    silent = [h for h in handshakes if not any(f.connection == h.connection for f in frames)]
    if handshakes and not frames:
        parts.append(f"no CQL frame in the {max(until - handshakes[0].at, 0):.1f} s after the first handshake")
    elif silent:
        parts.append(f"{len(silent)} connection(s) sent no CQL frame after the handshake")
    if frames:
        opcodes: Dict[str, int] = {}
        for frame in frames:
            opcodes[frame.opcode] = opcodes.get(frame.opcode, 0) + 1
        parts.append("frames " + ", ".join(f"{op} x{n}" for op, n in opcodes.items()))
    refused = sorted({e.requested for e in entries if isinstance(e, VersionRefused)})
    if refused:
        parts.append("refused protocol v" + ", v".join(map(str, refused)))
    faults = [e for e in entries if isinstance(e, FaultApplied)]
    if faults:
        parts.append(f"faults applied x{len(faults)} (first: {faults[0].fault} seed={faults[0].seed}: "
                     f"{faults[0].detail[:60]})")
    incidents = [e for e in entries if isinstance(e, Incident)]
    if incidents:
        parts.append(f"incidents: {type(incidents[0]).__name__}: {incidents[0].description.splitlines()[0][:100]}")
    closed = [e for e in entries if isinstance(e, ConnectionClosed)]
    if closed:
        parts.append(f"first close: {closed[0].reason[:80]}")
    return "node: " + "; ".join(parts)
