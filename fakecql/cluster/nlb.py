# The NLB: a layer-4 load balancer in front of fakecql nodes, on loopback.
#
# Strategy: what a cloud network load balancer does for a Scylla cluster
# behind Private Link: it listens on an address of its own, one port per
# node (a connection there always reaches that node) and a discovery port
# that spreads new connections round-robin over the nodes (the driver's
# contact point). It forwards bytes, nothing else: TLS passes through
# untouched (the client sees the node's own certificate), so a client that
# checks host names against the NLB's address must fail, which is why
# scylla-driver refuses check_hostname with client routes. One asyncio loop
# on a thread of its own; each forwarded connection is a _Pipe of two
# _Side protocols (the client's and the node's).
#
# Rules: bounded buffers: when one side's transport has more than
# `buffer_limit` bytes to write, the other side stops being read until it
# drains. Half-close passes through (an EOF from one side becomes a
# write_eof() on the other; the pipe closes when both directions ended); a
# reset is passed on as a reset. stop() closes both directions of every
# pipe, waits for them within its timeout, then aborts what is left. Every
# exception in a loop callback or task is kept and raised by check(); a
# node that refuses a connection is no error (counted in refused()), the
# client's connection is closed, as an NLB does.
from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import struct
import threading
import traceback
import uuid
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, cast

from .routes import ClientRoute

__all__ = ["NLB", "NLBError", "DEFAULT_HOST"]

DEFAULT_HOST = "127.0.0.100"
DISCOVERY = -1  # the "node index" of the discovery port in counters


class NLBError(RuntimeError):
    """Something went wrong inside the NLB itself (not a node refusing a connection)."""


class _Side(asyncio.Protocol):
    """One end of a forwarded connection; what it reads goes to the other end."""

    def __init__(self, pipe: "_Pipe", name: str) -> None:
        self.pipe = pipe
        self.name = name
        self.transport: Optional[asyncio.Transport] = None
        self.eof = False  # this side sent its EOF
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's are not asyncio.Transport subclasses.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=self.pipe.nlb.buffer_limit)
        self.pipe.made(self)

    def data_received(self, data: bytes) -> None:
        self.pipe.forward(self, data)

    def eof_received(self) -> bool:
        self.eof = True
        self.pipe.ended(self)
        return True  # keep the other direction open: half-close

    def pause_writing(self) -> None:
        self.pipe.other_of(self).pause_reading()  # bounded: stop reading what would pile up here

    def resume_writing(self) -> None:
        self.pipe.other_of(self).resume_reading()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.lost = True
        self.pipe.lost(self, exc)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, reset: bool = False) -> None:
        if self.transport is not None and not self.lost:
            if reset:
                sock = self.transport.get_extra_info("socket")
                if sock is not None and sock.fileno() != -1:  # linger 0: close() sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()
            else:
                self.transport.close()  # flushes what is buffered, then FIN


class _Pipe:
    """A client connection accepted on one of the NLB's ports and its node connection."""

    def __init__(self, nlb: "NLB", port_index: int) -> None:
        self.nlb = nlb
        self.port_index = port_index  # DISCOVERY or the node's index
        self.client = _Side(self, "client")
        self.node: Optional[_Side] = None
        self.connecting: Optional["asyncio.Task[None]"] = None
        # What the client sent before its node connected. The client's reading is
        # paused until then, but Python 3.9 starts reading a transport paused in
        # connection_made anyway: kept here, it reaches the node once connected.
        self.early: List[bytes] = []
        self.early_size = 0

    def other_of(self, side: _Side) -> _Side:
        if side is self.client:
            return self.node if self.node is not None else _Side(self, "none")
        return self.client

    def made(self, side: _Side) -> None:
        if side is self.client:
            self.nlb._track(self)
            side.pause_reading()  # until the node is connected
            self.connecting = asyncio.get_running_loop().create_task(self.nlb._connect(self))
            self.connecting.add_done_callback(self.nlb._task_done)

    def forward(self, side: _Side, data: bytes) -> None:
        if side is self.client and self.node is None:
            self.early.append(data)
            self.early_size += len(data)
            if self.early_size > self.nlb.buffer_limit:
                side.pause_reading()
            return
        self.other_of(side).write(data)

    def ended(self, side: _Side) -> None:
        if side is self.client and self.node is None:
            return  # passed on by connected()
        other = self.other_of(side)
        if other.transport is not None and not other.transport.is_closing() and other.transport.can_write_eof():
            other.transport.write_eof()
        if self.client.eof and self.node is not None and self.node.eof:
            self.client.close()
            self.node.close()

    def connected(self) -> None:
        """The node's side is connected: pass on what the client sent meanwhile, then read on."""
        assert self.node is not None
        early, self.early, self.early_size = self.early, [], 0
        for data in early:
            self.node.write(data)
        if self.client.eof:
            self.ended(self.client)
        self.client.resume_reading()

    def lost(self, side: _Side, exc: Optional[BaseException]) -> None:
        other = self.other_of(side)
        other.close(reset=exc is not None)  # a reset passes on as a reset
        if self.client.lost and (self.node is None or self.node.lost):
            if self.connecting is not None and not self.connecting.done():
                self.connecting.cancel()  # no node yet: stop looking for one
            self.nlb._forget(self)

    def close(self, reset: bool = False) -> None:
        self.client.close(reset)
        if self.node is not None:
            self.node.close(reset)


def _check_target(target: Any) -> None:
    if (not isinstance(target, (tuple, list)) or len(target) != 2 or isinstance(target[1], bool)
            or not isinstance(target[1], int) or not 1 <= target[1] <= 65535):
        raise ValueError(f"an NLB target must be (host, port) with a port in 1..65535, got {target!r}")


class NLB:
    """A layer-4 load balancer on `host`: one port per target node, one round-robin discovery port.

    `targets` are the nodes' (host, port) addresses, in node order. Use it as
    a context manager or start()/stop(); `address` is the discovery
    (host, port), `node_address(i)` node i's; `forwarded(i)` counts the
    connections it forwarded to node i through node i's own port, and
    `discovered(i)` those the discovery port sent there.
    """

    def __init__(self, targets: Sequence[Tuple[str, int]], *, host: str = DEFAULT_HOST, discovery_port: int = 0,
                 node_ports: Optional[Sequence[int]] = None, buffer_limit: int = 64 * 1024,
                 connect_timeout: float = 5.0) -> None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"NLB host must be an IP address to listen on (e.g. {DEFAULT_HOST}), got {host!r}") from None
        if not targets:
            raise ValueError("an NLB needs at least one target node (host, port)")
        for target in targets:
            _check_target(target)
        ports = list(node_ports) if node_ports is not None else [0] * len(targets)
        if len(ports) != len(targets):
            raise ValueError(f"node_ports gives {len(ports)} ports for {len(targets)} targets")
        for port in [discovery_port, *ports]:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"NLB ports must be integers in 0..65535 (0: any free port), got {port!r}")
        if buffer_limit < 1024:
            raise ValueError(f"buffer_limit must be at least 1024 bytes, got {buffer_limit!r}")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout!r}")
        self.host = host
        self.targets: List[Tuple[str, int]] = [(str(h), int(p)) for h, p in targets]
        self.discovery_port = discovery_port
        self.node_ports = ports
        self.buffer_limit = buffer_limit
        self.connect_timeout = connect_timeout
        self._forwarded: Dict[Tuple[int, int], int] = {}  # (port index, node index) -> connections
        self._refused: Dict[int, int] = {}
        self._errors: List[str] = []
        self._pipes: Set[_Pipe] = set()
        self._all_closed: Optional[asyncio.Event] = None
        self._servers: List[asyncio.AbstractServer] = []
        self._round_robin = itertools.count()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    # -- what tests read --------------------------------------------------------------------
    @property
    def address(self) -> Tuple[str, int]:
        """The discovery port's (host, port): the drivers' contact point."""
        return self.host, self.discovery_port

    def node_port(self, index: int) -> int:
        self._check_index(index)
        return self.node_ports[index]

    def node_address(self, index: int) -> Tuple[str, int]:
        return self.host, self.node_port(index)

    def forwarded(self, index: int) -> int:
        """Connections forwarded to node `index` through its own port."""
        self._check_index(index)
        return self._forwarded.get((index, index), 0)

    def discovered(self, index: int) -> int:
        """Connections the discovery port forwarded to node `index`."""
        self._check_index(index)
        return self._forwarded.get((DISCOVERY, index), 0)

    def refused(self, index: int) -> int:
        """Connections node `index` refused (the client's connection was then closed)."""
        self._check_index(index)
        return self._refused.get(index, 0)

    def active_connections(self) -> int:
        return len(self._pipes)

    @property
    def errors(self) -> List[str]:
        """Exceptions raised inside the NLB (tracebacks), oldest first."""
        return list(self._errors)

    def check(self) -> None:
        """Raise NLBError if anything failed inside the NLB."""
        if self._errors:
            raise NLBError(f"the NLB on {self.host} failed {len(self._errors)} time(s); first:\n{self._errors[0]}")

    def client_routes(self, connection_id: str, host_ids: Sequence[uuid.UUID], *, tls: bool = True) -> List[ClientRoute]:
        """Routes sending clients of `connection_id` to node i (host_ids[i]) through node i's port
        (as its tls_port too when `tls`: scylla-driver reads tls_port when it uses TLS)."""
        if len(host_ids) != len(self.targets):
            raise ValueError(f"{len(host_ids)} host ids for {len(self.targets)} NLB targets")
        return [ClientRoute(connection_id=connection_id, host_id=host_id, address=self.host,
                            port=self.node_port(i), tls_port=self.node_port(i) if tls else None)
                for i, host_id in enumerate(host_ids)]

    def add_target(self, target: Tuple[str, int], timeout: float = 10.0) -> int:
        """Put one more node behind the NLB (a node added to the cluster): a port of its own,
        listening at once if the NLB runs, and a place in the discovery round-robin; its index."""
        _check_target(target)
        index = len(self.targets)
        self.targets.append((str(target[0]), int(target[1])))
        self.node_ports.append(0)  # a stopped NLB listens on it in start()
        loop = self._loop
        if loop is not None:
            try:
                self.node_ports[index] = asyncio.run_coroutine_threadsafe(self._listen(0, index), loop).result(timeout)
            except BaseException:
                del self.targets[index], self.node_ports[index]
                raise
        return index

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.targets):
            raise IndexError(f"no NLB target {index}; targets are 0..{len(self.targets) - 1}")

    # -- start and stop (own loop thread) ------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "NLB":
        if self._thread is not None:
            raise RuntimeError(f"the NLB on {self.host} is already running")
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_exception)
        thread = threading.Thread(target=self._run_loop, args=(loop,), name=f"fakecql-nlb-{self.host}", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout)
        except BaseException:
            self._halt(timeout)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every port and every forwarded connection (both directions); idempotent."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(timeout), loop).result(timeout + 1.0)
        finally:
            self._halt(timeout)

    def _halt(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            self._errors.append(f"the NLB's loop thread did not end within {timeout} s")
            return
        loop.close()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def __enter__(self) -> "NLB":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._loop is not None

    # -- inside the loop ---------------------------------------------------------------------
    async def _listen(self, port: int, index: int) -> int:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = await loop.create_server(lambda: _Pipe(self, index).client, host=self.host, port=port,
                                              family=family, reuse_address=True)
        except OSError as exc:
            what = "discovery port" if index == DISCOVERY else f"port for node {index}"
            raise OSError(exc.errno, f"the NLB cannot listen on {self.host}:{port} ({what}): "
                                     f"{exc.strerror or exc}") from None
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _start(self) -> None:
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        try:
            for index, port in enumerate(self.node_ports):
                self.node_ports[index] = await self._listen(port, index)
            self.discovery_port = await self._listen(self.discovery_port, DISCOVERY)
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers.clear()
            raise

    async def _connect(self, pipe: _Pipe) -> None:
        """Connect the pipe to its node (the discovery port: the next node that accepts)."""
        loop = asyncio.get_running_loop()
        if pipe.port_index == DISCOVERY:
            first = next(self._round_robin)
            candidates = [(first + k) % len(self.targets) for k in range(len(self.targets))]
        else:
            candidates = [pipe.port_index]
        for index in candidates:
            host, port = self.targets[index]
            side = _Side(pipe, "node")
            try:
                await asyncio.wait_for(loop.create_connection(lambda: side, host=host, port=port),
                                       self.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                self._refused[index] = self._refused.get(index, 0) + 1
                continue
            pipe.node = side
            if pipe.client.lost:  # the client left while we connected
                side.close()
                return
            key = (pipe.port_index, index)
            self._forwarded[key] = self._forwarded.get(key, 0) + 1
            pipe.connected()
            return
        pipe.client.close()  # no node takes it: the client sees its connection closed

    async def _stop(self, timeout: float) -> None:
        for server in self._servers:
            server.close()
        for pipe in list(self._pipes):
            pipe.close()
        assert self._all_closed is not None
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout / 2)
        except asyncio.TimeoutError:
            for pipe in list(self._pipes):
                pipe.close(reset=True)
            await asyncio.wait_for(self._all_closed.wait(), timeout / 4)
        for server in self._servers:
            await asyncio.wait_for(server.wait_closed(), timeout / 4)
        self._servers.clear()

    def _track(self, pipe: _Pipe) -> None:
        self._pipes.add(pipe)
        if self._all_closed is not None:
            self._all_closed.clear()

    def _forget(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        if not self._pipes and self._all_closed is not None:
            self._all_closed.set()

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._record(exc)

    def _record(self, exc: BaseException) -> None:
        self._errors.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is None:
            exc = NLBError(str(context.get("message", "unknown asyncio error")))
        self._record(exc)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        ports = ", ".join(str(p) for p in self.node_ports)
        return f"<NLB {self.host} discovery {self.discovery_port} nodes [{ports}] {state}>"
