# CQLCluster: N fake nodes on 127.0.0.1, .2, ... and one port, sharing one
# schema, each serving system.local / system.peers / system.peers_v2 from one
# Topology; node lifecycle (stop, kill, pause, resume, restart, add,
# decommission) and the events a real cluster pushes about it.
#
# Strategy: each node is a plain CQLServer (own loop thread) built around a
# Node whose identity and row sources come from the topology; the cluster
# only starts, stops and tells. The events follow what the other nodes of a
# real cluster push once gossip notices: STATUS_CHANGE DOWN when a node is
# stopped, killed or paused, UP when it is restarted or resumed,
# TOPOLOGY_CHANGE NEW_NODE when one joins, REMOVED_NODE when one leaves, each
# to the REGISTERed connections of every *other* node that is up (the
# STATUS_CHANGEs `status_delay` seconds later, as gossip takes a while: a
# driver that already saw its connections fail then believes the DOWN; one
# that still holds them ignores it, as against a real cluster). A schema
# change (through cluster.schema) is pushed as SCHEMA_CHANGE by every node
# that is up. A node that is not up pushes nothing. Priming for the whole
# cluster or a data center, unmet expectations and logs across nodes are
# books.py's; with shards=N every node listens on one shard-aware port, as
# on one port.
#
# Rules: misuse (stopping a stopped node, an unknown index, options the
# cluster sets itself) raises a ValueError naming the node and its state;
# every node the cluster started, stop() stops, and check() reports every
# node's incidents at once.
from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..activity import ActivityLog, FrameReceived
from ..limits import Limits
from ..node import Node, NodeIdentity, flavor_identity
from ..protocol.messages import Event, SchemaChange, StatusChange, TopologyChange
from ..schema import Schema
from ..priming import Priming, QueryMatcher, UnmetExpectation, describe_unmet
from ..server import CQLServer, UnexpectedActivityError
from ..tls import TLSConfig
from .books import ClusterBooks, DataCenter, StatementMatcher, merged_requests
from .topology import Member, Topology

__all__ = ["CQLCluster", "ClusterNode", "NODE_STATES"]

NODE_STATES = ("up", "stopped", "killed", "paused")
# CQLServer options the cluster sets itself, per node.
_CLUSTER_SET = ("host", "port", "tls", "identity", "node", "activity")
# Picking a port free on every node's address: attempts before giving up.
_PORT_ATTEMPTS = 8


def _key_type(cert: Any) -> Any:
    """The trustme key type of a certificate: a node's own certificate keeps the given one's kind."""
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    public_key = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_key()
    return trustme.KeyType.RSA if isinstance(public_key, rsa.RSAPublicKey) else trustme.KeyType.ECDSA


class ClusterNode:
    """One node of a CQLCluster: its place in the ring, its server and its state."""

    def __init__(self, cluster: "CQLCluster", member: Member, server: CQLServer) -> None:
        self._cluster = cluster
        self.member = member
        self.server = server
        self.state = "stopped"

    @property
    def index(self) -> int:
        return self.member.index

    @property
    def host(self) -> str:
        return self.member.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> Tuple[str, int]:
        return self.host, self.port

    @property
    def host_id(self) -> uuid.UUID:
        return self.member.host_id

    @property
    def data_center(self) -> str:
        return self.member.data_center

    @property
    def rack(self) -> str:
        return self.member.rack

    @property
    def tokens(self) -> Tuple[str, ...]:
        return self.member.token_texts

    @property
    def node(self) -> Node:
        return self.server.node

    @property
    def activity(self) -> ActivityLog:
        return self.server.activity

    def when_query(self, query: Any, **kwargs: Any) -> Any:
        """Prime an answer on this node only; see Node.when_query."""
        return self.server.when_query(query, **kwargs)

    def __repr__(self) -> str:
        return (f"<ClusterNode {self.index} {self.host}:{self.port} {self.data_center}/{self.rack} "
                f"{self.state}>")


class CQLCluster:
    """Fake nodes on consecutive loopback addresses and one port, in one or more
    data centers: CQLCluster(3), CQLCluster([2, 2]) for dc1 and dc2.

    `server_options` go to every node's CQLServer (auth=, limits=, ...). With
    `tls`, each node gets its own certificate from tls.ca naming its address
    (and localhost), so clients that check host names reach every node.
    Use it as a context manager, or start() / stop().
    """

    def __init__(
        self,
        nodes: Union[int, Sequence[int]] = 3,
        *,
        tls: Optional[TLSConfig] = None,
        flavor: str = "cassandra",
        port: int = 0,
        first_address: str = "127.0.0.1",
        cluster_name: str = "fakecql",
        racks: int = 1,
        num_tokens: int = 4,
        status_delay: float = 0.5,
        **server_options: Any,
    ) -> None:
        clashing = [name for name in _CLUSTER_SET if name in server_options]
        if clashing:
            raise ValueError(f"CQLCluster sets {', '.join(clashing)} of each node itself; "
                             f"pass first_address=, port=, tls=, cluster_name= instead")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be a fakecql.TLSConfig (TLSConfig.create(ca)), got {tls!r}")
        if isinstance(status_delay, bool) or not isinstance(status_delay, (int, float)) or not 0 <= status_delay <= 60:
            raise ValueError(f"status_delay must be a number of seconds in [0, 60], got {status_delay!r}")
        self.status_delay = float(status_delay)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in [0, 65535] (0: a free one), got {port!r}")
        self.schema = Schema(flavor=flavor)
        looks = flavor_identity(flavor)  # a Scylla says what a Scylla says (release_version 3.0.8)
        self.topology = Topology(nodes, racks=racks, first_address=first_address, cluster_name=cluster_name,
                                 num_tokens=num_tokens, release_version=looks.release_version,
                                 cql_version=looks.cql_version)
        self.tls = tls
        self._requested_port = port
        self._port = port
        self._server_options = dict(server_options)
        self._requested_shard_aware_port = server_options.get("shard_aware_port", 0)
        self._shard_aware_port: Optional[int] = None  # the one every sharded node listens on, once started
        self._books = ClusterBooks()
        self._lock = threading.RLock()
        self._nodes: List[ClusterNode] = [self._build(m) for m in self.topology.members]
        self._retired: List[ClusterNode] = []  # decommissioned: stopped, kept for leftovers()
        self._started = False
        self._timers: List[threading.Timer] = []  # STATUS_CHANGE pushes waiting for status_delay
        self._due: List[Tuple[float, Event, int]] = []  # (when, event, from which node), oldest first
        self._membership_listeners: List[Callable[[str, "ClusterNode"], None]] = []
        self.schema.add_listener(self._schema_changed)

    # -- what tests use --------------------------------------------------------------
    @property
    def nodes(self) -> List[ClusterNode]:
        """Every node in the ring, by index (stopped ones too; not decommissioned ones)."""
        return list(self._nodes)

    def node(self, index: int) -> ClusterNode:
        for n in self._nodes:
            if n.index == index:
                return n
        retired = [n.index for n in self._retired]
        why = " (it was decommissioned)" if index in retired else ""
        raise ValueError(f"no node {index!r} in the cluster{why}; nodes: {[n.index for n in self._nodes]}")

    @property
    def port(self) -> int:
        return self._port

    @property
    def contact_points(self) -> List[str]:
        return [n.host for n in self._nodes]

    @property
    def data_centers(self) -> List[str]:
        return self.topology.data_centers

    @property
    def running(self) -> bool:
        return self._started

    def push_event(self, event: Event) -> None:
        """Send an EVENT to the REGISTERed connections of every node that is up."""
        self._push(event, except_index=None)

    def on_membership(self, listener: Callable[[str, "ClusterNode"], None]) -> None:
        """Call `listener(change, node)` when a node joins or leaves the ring: ("NEW_NODE", node)
        from add_node once the node is up, before the others announce it (a listener that
        raises undoes the add: the node stops and leaves the ring, and add_node raises);
        ("REMOVED_NODE", node) from decommission once it stopped (an exception propagates).
        What wraps the cluster (e.g. PrivateLink) follows its membership this way."""
        if not callable(listener):
            raise TypeError(f"a membership listener must be callable, got {listener!r}")
        self._membership_listeners.append(listener)

    def check(self) -> None:
        """Raise UnexpectedActivityError listing every node's incidents the test has not taken."""
        reports = []
        for n in self._nodes + self._retired:
            incidents = n.server.activity.incidents()
            if incidents or n.server.activity.incidents_dropped:
                reports.append(f"node {n.index} ({n.data_center}/{n.rack}): "
                               + n.server.describe_incidents(incidents))
        unmet = self.unmet_expectations()
        if unmet:
            reports.append(self.describe_unmet(unmet))
        if reports:
            raise UnexpectedActivityError("\n\n".join(reports))

    def leftovers(self) -> List[str]:
        """What the stopped cluster left behind, per node (should be nothing)."""
        return [f"node {n.index} {n.host}: {what}" for n in self._nodes + self._retired
                for what in n.server.leftovers()]

    def replicas(self, key: bytes, keyspace: str) -> List[ClusterNode]:
        """The nodes holding routing key `key` (see topology.routing_key) under
        `keyspace`'s replication in the cluster's schema."""
        ks = self.schema.keyspace(keyspace)
        if ks is None:
            raise ValueError(f"replicas: no keyspace {keyspace!r} in the cluster's schema")
        return [self.node(m.index) for m in self.topology.replicas_of_key(key, ks.replication)]

    # -- start and stop --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "CQLCluster":
        with self._lock:
            if self._started:
                raise RuntimeError("the fakecql cluster is already running")
            last_error: Optional[OSError] = None
            free = self._requested_port == 0 or (bool(self._server_options.get("shards"))
                                                 and not self._requested_shard_aware_port)
            for _ in range(_PORT_ATTEMPTS if free else 1):
                try:
                    self._start_all(timeout)
                except OSError as exc:
                    last_error = exc
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    continue  # the OS's free port on the first address was taken on another: pick again
                self._started = True
                return self
            assert last_error is not None
            raise last_error

    def _start_all(self, timeout: float) -> None:
        self._port = self._requested_port
        self._shard_aware_port = None
        started: List[ClusterNode] = []
        try:
            for n in self._nodes:
                n.server.port = self._port
                self._place_shard_aware_port(n)
                try:
                    n.server.start(timeout)
                except OSError as exc:
                    reason = os.strerror(exc.errno) if exc.errno else str(exc)
                    where = f"{n.host}:{self._port}"
                    if n.server.sharding is not None and "(the shard-aware port)" in str(exc):
                        where = f"{n.host}:{n.server.shard_aware_port} (the shard-aware port)"
                    raise OSError(exc.errno, f"node {n.index} cannot listen on {where}: {reason}") from None
                self._port = n.server.port
                self._shard_aware_port = n.server.shard_aware_port
                n.state = "up"
                started.append(n)
        except BaseException:
            for n in started:
                n.server.stop(timeout)
                n.state = "stopped"
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node (cleanly); the cluster may start() again."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._due.clear()
            errors = []
            for n in self._nodes:
                try:
                    n.server.stop(timeout)
                except Exception as exc:  # stop the others; report all
                    errors.append(f"node {n.index}: {exc!r}")
                n.state = "stopped"
            self._started = False
            if errors:
                raise RuntimeError("stopping the fakecql cluster failed: " + "; ".join(errors))

    def __enter__(self) -> "CQLCluster":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------
    def stop_node(self, index: int, timeout: float = 10.0) -> ClusterNode:
        """Stop a node cleanly: it stops listening (new connections are refused) and
        closes its connections (close_notify, FIN); the others push STATUS_CHANGE DOWN."""
        with self._lock:
            n = self._expect(index, "stop", ("up", "paused"))
            n.server.stop(timeout)
            n.state = "stopped"
            self._push_status(n, "DOWN")
        return n

    def kill(self, index: int, timeout: float = 10.0) -> ClusterNode:
        """Kill a node: every connection gets a TCP RST and it stops listening;
        the others push STATUS_CHANGE DOWN."""
        with self._lock:
            n = self._expect(index, "kill", ("up", "paused"))
            n.server.stop(timeout, reset=True)
            n.state = "killed"
            self._push_status(n, "DOWN")
        return n

    def pause(self, index: int) -> ClusterNode:
        """Freeze a node: it keeps accepting and holding connections and reads and
        answers nothing until resume(); the others push STATUS_CHANGE DOWN (as
        gossip would report it)."""
        with self._lock:
            n = self._expect(index, "pause", ("up",))
            n.server.pause()
            n.state = "paused"
            self._push_status(n, "DOWN")
        return n

    def resume(self, index: int) -> ClusterNode:
        """Unfreeze a paused node; the others push STATUS_CHANGE UP."""
        with self._lock:
            n = self._expect(index, "resume", ("paused",))
            n.server.resume()
            n.state = "up"
            self._push_status(n, "UP")
        return n

    def restart(self, index: int, timeout: float = 10.0) -> ClusterNode:
        """Start a stopped or killed node again (a running one is stopped first), on the
        same address, port and host id, without its prepared statements (as a real
        node); the others push STATUS_CHANGE UP."""
        with self._lock:
            n = self._expect(index, "restart", NODE_STATES)
            if n.state in ("up", "paused"):
                self.stop_node(index, timeout)
            n.node.forget_prepared()  # a restarted node has forgotten them: drivers prepare again
            n.server.port = self._port
            self._place_shard_aware_port(n)
            n.server.start(timeout)
            n.state = "up"
            self._push_status(n, "UP")
        return n

    def add_node(self, data_center: Optional[str] = None, rack: Optional[str] = None,
                 timeout: float = 10.0) -> ClusterNode:
        """Start a new node on the next address, in `data_center` (default the first)
        and `rack`; it joins the ring (every node's peers list it) and the others
        push TOPOLOGY_CHANGE NEW_NODE."""
        with self._lock:
            self._expect_running("add a node")
            member = self.topology.add(data_center, rack)
            n = self._build(member)
            n.server.port = self._port
            self._place_shard_aware_port(n)
            try:
                n.server.start(timeout)
            except BaseException:
                self.topology.remove(member.index)
                raise
            n.state = "up"
            self._nodes.append(n)
            try:
                for listener in list(self._membership_listeners):
                    listener("NEW_NODE", n)
            except BaseException:
                self._nodes.remove(n)
                self.topology.remove(member.index)
                n.server.stop(timeout)
                n.state = "stopped"
                raise
        self._push(self._event(TopologyChange, "NEW_NODE", n), except_index=n.index)
        return n

    def decommission(self, index: int, timeout: float = 10.0) -> ClusterNode:
        """Take a node out of the ring: the others push TOPOLOGY_CHANGE REMOVED_NODE
        and drop it from their peers; it stops (cleanly)."""
        with self._lock:
            n = self._expect(index, "decommission", NODE_STATES)
            self.topology.remove(index)
            self._nodes.remove(n)
            self._retired.append(n)
        self._push(self._event(TopologyChange, "REMOVED_NODE", n), except_index=n.index)
        n.server.stop(timeout)
        n.state = "stopped"
        for listener in list(self._membership_listeners):
            listener("REMOVED_NODE", n)
        return n

    # -- priming and logs, per node, data center or cluster (books.py) ----------------
    def when_query(self, query: QueryMatcher, *, data_center: Optional[str] = None, **options: Any) -> Priming:
        """Prime an answer on every node (nodes added later too), or on the nodes of
        `data_center`; options as Node.when_query. A node's own primings
        (cluster.node(i).when_query) come first, then its data center's, then these."""
        if data_center is not None:
            return self.data_center(data_center).when_query(query, **options)
        return self._books.cluster.when_query(query, **options)

    def data_center(self, name: str) -> DataCenter:
        """One data center: .when_query(...), .clear_primings(), .requests(...), .nodes."""
        if name not in self.data_centers:
            raise ValueError(f"no data center {name!r} in the cluster; data centers: {self.data_centers}")
        return DataCenter(self, name, self._books.of_data_center(name))

    def clear_primings(self) -> None:
        """Forget every priming: the cluster's, every data center's and every node's own."""
        for book in self._books.shared():
            book.clear()
        for n in self._nodes:
            n.node.clear_primings()

    def unmet_expectations(self) -> List[UnmetExpectation]:
        """Priming expectations not met: every node's own, each data center's and the
        cluster's (a shared book listed once)."""
        return self._books.unmet(self._nodes + self._retired)

    def describe_unmet(self, unmet: Sequence[UnmetExpectation]) -> str:
        return describe_unmet(unmet, f"fakecql cluster {self.topology.cluster_name}")

    def requests(self, statement: StatementMatcher = None, *, node: Optional[Union[int, ClusterNode]] = None,
                 data_center: Optional[str] = None, opcode: Optional[str] = None) -> List[FrameReceived]:
        """The requests (FrameReceived, each naming its .node) the chosen nodes logged,
        oldest first: of one node (index or ClusterNode), of a data center, or of
        every node; narrowed to a statement and opcode as ActivityLog.requests."""
        chosen = self._nodes + self._retired
        if node is not None:
            index = node.index if isinstance(node, ClusterNode) else node
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"requests(node=...) takes a node index or a ClusterNode, got {node!r}")
            chosen = [n for n in chosen if n.index == index]
            if not chosen:
                raise ValueError(f"requests: no node {index!r}; nodes: {[n.index for n in self._nodes]}")
        if data_center is not None:
            if data_center not in self.data_centers and all(n.data_center != data_center for n in chosen):
                raise ValueError(f"requests: no data center {data_center!r}; data centers: {self.data_centers}")
            chosen = [n for n in chosen if n.data_center == data_center]
        return merged_requests(chosen, statement, opcode=opcode)

    def clear_logs(self) -> None:
        """Empty every node's activity log (as activity.clear(): entries, counters and
        incidents; take incidents a test expects first)."""
        for n in self._nodes + self._retired:
            n.activity.clear()

    @property
    def shard_aware_port(self) -> Optional[int]:
        """The shard-aware port every node listens on (shards=N), once started; else None."""
        return self._shard_aware_port if self._server_options.get("shards") else None

    def _place_shard_aware_port(self, n: ClusterNode) -> None:
        """A sharded node listens on the cluster's shard-aware port, as on the cluster's port."""
        if n.server.sharding is not None:
            n.server.shard_aware_port = (self._shard_aware_port if self._shard_aware_port is not None
                                         else self._requested_shard_aware_port)

    # -- inside ----------------------------------------------------------------------
    def _build(self, member: Member) -> ClusterNode:
        options = dict(self._server_options)
        limits = options.get("limits") or Limits()
        identity = NodeIdentity(
            cluster_name=self.topology.cluster_name, data_center=member.data_center, rack=member.rack,
            release_version=self.topology.release_version, cql_version=self.topology.cql_version,
            host_id=member.host_id, tokens=member.token_texts, partitioner=self.topology.partitioner,
        )
        node = Node(identity=identity, schema=self.schema, auth=options.get("auth"),
                    compression=options.get("compression", ("lz4",)), limits=limits,
                    activity=ActivityLog.from_limits(limits))
        server = CQLServer(tls=self._node_tls(member), host=member.host, port=self._port, node=node, **options)
        n = ClusterNode(self, member, server)
        self._set_row_sources(n)
        self._books.attach(n)
        return n

    def _node_tls(self, member: Member) -> Optional[TLSConfig]:
        if self.tls is None:
            return None
        cert = self.tls.ca.issue_cert(member.host, "localhost", key_type=_key_type(self.tls.server_cert))
        return dataclasses.replace(self.tls, server_cert=cert)

    def _set_row_sources(self, n: ClusterNode) -> None:
        topology, schema, index = self.topology, self.schema, n.index

        def only(table: str, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            definition = schema.table("system", table)
            names = definition.column_names if definition is not None else ()
            return [{k: row.get(k) for k in names} for row in rows]

        def local() -> List[Dict[str, Any]]:
            return only("local", [topology.local_row(index, port=n.port, schema_version=schema.version)])

        def peers(table: str) -> Callable[[], List[Dict[str, Any]]]:
            def rows() -> List[Dict[str, Any]]:
                if all(m.index != index for m in topology.members):
                    return []  # decommissioned: it knows no ring any more
                return only(table, topology.peers_rows(index, port=n.port, schema_version=schema.version))
            return rows

        n.node.row_sources[("system", "local")] = local
        n.node.row_sources[("system", "peers")] = peers("peers")
        n.node.row_sources[("system", "peers_v2")] = peers("peers_v2")

    def _expect(self, index: int, action: str, states: Sequence[str]) -> ClusterNode:
        self._expect_running(f"{action} node {index}")
        n = self.node(index)
        if n.state not in states:
            raise ValueError(f"cannot {action} node {index} ({n.host}): it is {n.state} "
                             f"(it must be {' or '.join(states)})")
        return n

    def _expect_running(self, action: str) -> None:
        if not self._started:
            raise RuntimeError(f"cannot {action}: the fakecql cluster is not running (start() it first)")

    def _event(self, kind: Any, change: str, n: ClusterNode) -> Event:
        return Event(event=kind(change=change, address=ipaddress.ip_address(n.host), port=self._port))

    def _push_status(self, n: ClusterNode, change: str) -> None:
        """STATUS_CHANGE from the other nodes after status_delay, as gossip reports it
        (a driver that sees its connections to a node fail first then takes the DOWN).
        Delayed events go out in the order of the changes: each timer sends every
        event that is due, oldest first."""
        event = self._event(StatusChange, change, n)
        if self.status_delay == 0:
            self._push(event, except_index=n.index)
            return
        timer = threading.Timer(self.status_delay, self._send_due)
        timer.daemon = True
        with self._lock:
            self._due.append((time.monotonic() + self.status_delay, event, n.index))
            self._timers.append(timer)
        timer.start()

    def _send_due(self) -> None:
        with self._lock:
            now = time.monotonic()
            due = [entry for entry in self._due if entry[0] <= now]
            self._due = [entry for entry in self._due if entry[0] > now]
            self._timers = [t for t in self._timers if t.is_alive() and t is not threading.current_thread()]
            if self._started:
                for _, event, index in due:
                    self._push(event, except_index=index)

    def _push(self, event: Event, except_index: Optional[int]) -> None:
        with self._lock:
            for other in list(self._nodes):
                if other.index != except_index and other.state == "up":
                    try:
                        other.server.push_event(event)
                    except Exception as exc:  # a node's loop gone under us: its log says so
                        other.server._record_exception(exc, 0)

    def _schema_changed(self, change: SchemaChange) -> None:
        if self._started:
            self._push(Event(event=change), except_index=None)

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<CQLCluster {len(self._nodes)} nodes {self.data_centers} port {self._port} {state}>"
