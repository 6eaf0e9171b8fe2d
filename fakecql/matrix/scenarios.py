# The matrix's scenarios: data, one per promise a reactor must keep.
#
# Strategy: a Scenario says how the node is built (NodeSpec: TLS or not,
# mTLS, TLS versions, which certificate, faults at start and for the query
# phase), what the client does (ClientSpec: which of the driver's TLS paths,
# which certificates, host name checking, how many queries, a large write),
# what it promises (PROMISES) and its time budget. The runner builds the
# node from the NodeSpec in its own process; a worker process with the
# driver and reactor under test plays the ClientSpec (client.py). Nothing
# here imports a driver, asyncio or a socket.
#
# The fourteen tests of the drivers' tests/integration/long/test_ssl.py are
# reproduced under their upstream names, and so are the two halves of
# TestSslThroughNlb (tests/integration/standard/test_client_routes.py: three
# Scylla nodes behind a layer-4 NLB, client routes, NodeSpec(nlb=True)); the
# TLS 1.3 and fault scenarios, and the plain-TCP controls, are ours.
#
# Rules: a name is unique and stable (the expectations table and reports
# key on it); budgets are in seconds and include the driver's connect
# timeout (CONNECT_TIMEOUT), never an unbounded wait.
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "AIMED_QUERY",
    "AIMED_TEXT",
    "CONNECT_TIMEOUT",
    "PROMISES",
    "ROUTES_CONNECTION_ID",
    "NodeSpec",
    "ClientSpec",
    "Scenario",
    "SCENARIOS",
    "scenario",
    "select_scenarios",
]

# The driver's connect_timeout and control_connection_timeout in every cell:
# short, so a reactor that cannot connect fails in seconds.
CONNECT_TIMEOUT = 2.0
PASSWORD = "s3cret"  # the password of a node with auth=True

# What a scenario promises; a cell that breaks its scenario's promise fails.
PROMISES = {
    "connects": "connects and answers every query",
    "refused_certificate": "is refused with a certificate error",
    "refused": "is refused by the node (a TLS alert or an error), within its budget",
    "refused_credentials": "is refused by the node's authenticator (AuthenticationFailed)",
    "fails_fast": "fails within its budget with the connection's own error, not a timeout",
    "fails_within_budget": "fails within its budget with a named cause",
    "refused_by_driver": "is refused by the driver's Cluster() (ValueError) before it connects",
    # The query-phase promises: the node's faults aim at the aimed query
    # (AIMED_QUERY, which no driver sends of its own), never at the driver's
    # internal requests; the queries after it show the session still works.
    "query_error": "connects; every aimed query (but the first N, answered, where the scenario says so) raises "
                   "the driver's error the scenario names, within its request timeout, and the session answers "
                   "every query after it",
    "answered_late": "connects; every aimed query is answered, no sooner than the node's delay, and the session "
                     "answers every query after it",
    "query_fails_fast": "connects; every aimed query fails with the connection's own error, not a timeout, and "
                        "the session answers queries again within its budget",
    "recovers": "connects; every aimed query is answered, and the session answers every query after them "
                "within its budget, reconnecting when the node closed its connection",
}
# The query the scenarios' query-phase faults aim at (query=AIMED_TEXT): no
# driver sends it on its own, so a fault aimed at it spares the control
# connection's and the pools' internal requests.
AIMED_QUERY = "SELECT cql_version FROM system.local"
AIMED_TEXT = "select cql_version from system.local"
# The connection id of the client routes a node with NodeSpec(nlb=True) serves.
ROUTES_CONNECTION_ID = "fakecql-matrix-nlb"

Fault = Tuple[str, Tuple[Tuple[str, Any], ...]]  # (FaultPlan verb, keyword arguments)


def fault(verb: str, **kwargs: Any) -> Fault:
    return verb, tuple(sorted(kwargs.items()))


@dataclass(frozen=True)
class NodeSpec:
    """How the runner builds the node for one cell."""

    tls: bool = True
    mtls: bool = False
    tls_min: str = "1.2"
    tls_max: str = "1.3"
    session_tickets: int = 2
    # "node": names 127.0.0.1, localhost and ::1 (common name 127.0.0.1, as
    # the drivers' own test certificates); "other_name": names localhost and
    # nothing else, so a client that dials 127.0.0.1 and checks names refuses it.
    cert: str = "node"
    protocol_versions: Tuple[int, ...] = (3, 4, 5)
    faults: Tuple[Fault, ...] = ()  # from the start
    query_faults: Tuple[Fault, ...] = ()  # replace `faults` once the client has connected
    tables: bool = False  # ks.blobs (id uuid, data blob) for large writes
    auth: bool = False  # PasswordAuthenticator, user "cassandra", password PASSWORD
    # More than one node: a cluster on 127.0.0.1, 127.0.0.2, ... (one port), whose
    # certificate names every node's address.
    nodes: int = 1
    flavor: str = "cassandra"
    # A layer-4 NLB in front of the nodes and client routes through it for
    # ROUTES_CONNECTION_ID (Scylla's Private Link); the cell's contact point
    # is the NLB's discovery port.
    nlb: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 8:
            raise ValueError(f"NodeSpec nodes must be from 1 to 8 (127.0.0.1-8), got {self.nodes!r}")
        if self.flavor not in ("cassandra", "scylla"):
            raise ValueError(f"NodeSpec flavor must be 'cassandra' or 'scylla', got {self.flavor!r}")
        if self.nlb and self.flavor != "scylla":
            raise ValueError("NodeSpec nlb=True needs flavor='scylla' (system.client_routes is Scylla's)")
        if self.nodes > 1 and (self.faults or self.query_faults or self.tables or self.auth or self.cert != "node"):
            raise ValueError("a NodeSpec of several nodes takes no faults, tables, auth or other certificate")
        if self.cert not in ("node", "other_name"):
            raise ValueError(f"NodeSpec cert must be 'node' or 'other_name', got {self.cert!r}")
        if self.mtls and not self.tls:
            raise ValueError("NodeSpec mtls=True needs tls=True")


@dataclass(frozen=True)
class ClientSpec:
    """What the client does, through the driver and reactor under test."""

    # "options": Cluster(ssl_options={...}) alone; "context": Cluster(ssl_context=...);
    # "default_context": ssl.create_default_context(cafile=...); "none": plain TCP.
    tls_path: str = "context"
    ca: str = "ca"  # "ca" (the node's CA) or "other_ca" (one that signed nothing here)
    verify: bool = True  # verify the node's certificate
    check_hostname: bool = False
    client_cert: str = ""  # "", "good", "encrypted" (key under a password) or "other_ca"
    hostname_option: bool = False  # ssl_options={"check_hostname": True} beside an ssl_context (upstream does)
    contact: str = "127.0.0.1"
    queries: int = 5
    spacing: float = 0.0  # seconds between queries
    large_write: int = 0  # bytes of one prepared INSERT into ks.blobs
    protocol_version: Optional[int] = None
    tls_max: str = ""  # cap the client's TLS version ("1.2"), "" for the default
    password: str = ""  # PlainTextAuthProvider("cassandra", password); "" for no credentials
    # ClientRoutesConfig([ClientRouteProxy(ROUTES_CONNECTION_ID, contact)]) (scylla-driver),
    # connect(wait_for_all_pools=True), and every host's endpoint must resolve
    # to the contact's address with a port of its own.
    client_routes: bool = False
    tls_min: str = ""  # raise the client's lowest TLS version ("1.3"), "" for the default
    # The query phase against the node's query_faults: `aimed` runs of
    # AIMED_QUERY first, each expected to raise `expect_error` (the class name
    # of the driver's exception, found anywhere in what it raised), or to be
    # answered (no sooner than `min_answer` seconds) when expect_error is "";
    # then the `queries`.
    aimed: int = 0
    answered_first: int = 0  # query_error: the first N aimed queries are answered, the rest raise expect_error
    expect_error: str = ""
    min_answer: float = 0.0
    request_timeout: float = 0.0  # the session's request timeout; 0: the scenario's budget minus CONNECT_TIMEOUT
    recover: bool = False  # a query after the aimed ones that fails is retried until the budget nears its end

    def __post_init__(self) -> None:
        if self.tls_min not in ("", "1.2", "1.3") or self.tls_max not in ("", "1.2", "1.3"):
            raise ValueError(f"ClientSpec tls_min and tls_max must be '', '1.2' or '1.3', "
                             f"got {self.tls_min!r} and {self.tls_max!r}")
        if self.aimed < 0 or self.min_answer < 0 or self.request_timeout < 0:
            raise ValueError("ClientSpec aimed, min_answer and request_timeout must be >= 0")
        if self.tls_path not in ("options", "context", "default_context", "none"):
            raise ValueError(f"ClientSpec tls_path must be options, context, default_context or none, "
                             f"got {self.tls_path!r}")
        if self.client_cert not in ("", "good", "encrypted", "other_ca"):
            raise ValueError(f"ClientSpec client_cert must be '', good, encrypted or other_ca, got {self.client_cert!r}")
        if self.ca not in ("ca", "other_ca"):
            raise ValueError(f"ClientSpec ca must be 'ca' or 'other_ca', got {self.ca!r}")


@dataclass(frozen=True)
class Scenario:
    name: str
    promise: str
    budget: float
    summary: str
    node: NodeSpec = field(default_factory=NodeSpec)
    client: ClientSpec = field(default_factory=ClientSpec)
    upstream: str = ""  # the upstream test it reproduces, if any
    baseline: str = ""  # compare the query rate with this scenario's (faults)
    stdlib_context: bool = False  # needs a Python ssl.SSLContext (pyOpenSSL reactors cannot take one)

    def __post_init__(self) -> None:
        if self.promise not in PROMISES:
            raise ValueError(f"scenario {self.name}: promise must be one of {sorted(PROMISES)}, got {self.promise!r}")
        if self.promise in ("query_error", "answered_late", "query_fails_fast") and not self.client.aimed:
            raise ValueError(f"scenario {self.name}: promise {self.promise} needs ClientSpec(aimed=N), N >= 1")
        if self.promise == "query_error" and not self.client.expect_error:
            raise ValueError(f"scenario {self.name}: promise query_error needs ClientSpec(expect_error=...)")
        if self.budget <= 0:
            raise ValueError(f"scenario {self.name}: budget must be positive, got {self.budget!r}")

    @property
    def tls(self) -> bool:
        return self.node.tls

    @property
    def promise_text(self) -> str:
        return PROMISES[self.promise]


UPSTREAM = "tests/integration/long/test_ssl.py"
CONNECTS = 6.0  # budget of a scenario that connects and runs a few queries
REFUSED = CONNECT_TIMEOUT + 3.0
LARGE = 10 * 1024 * 1024  # upstream writes 10**7 characters

CLIENT_ROUTES_UPSTREAM = "tests/integration/standard/test_client_routes.py (TestSslThroughNlb)"

_OPTIONS = ClientSpec(tls_path="options")
_NLB = NodeSpec(nodes=3, flavor="scylla", nlb=True)
_MTLS = NodeSpec(mtls=True)
# Cut without pauses while the driver connects (its control connection has a
# short timeout); during the queries, pauses between pieces, so that pieces
# reach the client as reads of their own however busy the machine is.
_DRIBBLED = NodeSpec(faults=(fault("dribble", seed=1, max_piece=7, max_delay=0.0),),
                     query_faults=(fault("dribble", seed=2, max_piece=7, max_delay=0.0005),))


def aimed(verb: str, **kwargs: Any) -> Fault:
    """A fault for the query phase, aimed at AIMED_QUERY only."""
    return fault(verb, query=AIMED_TEXT, **kwargs)


def _both(*faults: Fault) -> NodeSpec:
    """The faults from the start (the driver connects through them) and again for the queries."""
    return NodeSpec(faults=faults, query_faults=faults)


QUERY_TIMEOUT = 1.0  # the request timeout of a cell whose aimed query is never answered
_CERTIFICATES = (
    ("expired_certificate", "a node certificate that expired yesterday"),
    ("not_yet_valid_certificate", "a node certificate valid from tomorrow"),
    ("wrong_host_certificate", "a node certificate for another host (the client checks host names)"),
    ("untrusted_certificate", "a node certificate signed by a CA the client does not trust"),
    ("self_signed_certificate", "a self-signed node certificate"),
)
# answer_error's error -> the driver's exception (anywhere in what it raised:
# the retry policies retry some on the next host, then NoHostAvailable names it).
_ERRORS = (
    ("overloaded", "OverloadedErrorMessage"),
    ("is_bootstrapping", "IsBootstrappingErrorMessage"),
    ("read_timeout", "ReadTimeout"),
    ("write_timeout", "WriteTimeout"),
    ("unavailable", "Unavailable"),
    ("server_error", "ServerError"),
    ("protocol_error", "ProtocolException"),
)
_AIMED_FAILS = ClientSpec(aimed=1, queries=3, recover=True)

_FAULT_SCENARIOS: Tuple[Scenario, ...] = (
    *(Scenario(f"fault_{verb}", "refused_certificate", REFUSED, f"{what}: refused for the certificate",
               node=NodeSpec(faults=(fault(verb),)),
               client=ClientSpec(check_hostname=verb == "wrong_host_certificate"))
      for verb, what in _CERTIFICATES),
    Scenario("fault_session_tickets", "connects", CONNECTS,
             "TLS 1.3 node sending 6 NewSessionTickets after the handshake", client=ClientSpec(queries=20),
             node=NodeSpec(tls_min="1.3", faults=(fault("session_tickets", count=6),))),
    Scenario("fault_session_tickets_off", "connects", CONNECTS,
             "TLS 1.3 node sending no session ticket", node=NodeSpec(faults=(fault("session_tickets", count=0),))),
    Scenario("fault_only_tls_version_13", "refused", REFUSED,
             "the node pinned to TLS 1.3, the client capped at TLS 1.2: refused",
             node=NodeSpec(faults=(fault("only_tls_version", version="1.3"),)), client=ClientSpec(tls_max="1.2")),
    Scenario("fault_only_tls_version_12", "refused", REFUSED,
             "the node pinned to TLS 1.2, the client asking for TLS 1.3 at least: refused",
             node=NodeSpec(faults=(fault("only_tls_version", version="1.2"),)), client=ClientSpec(tls_min="1.3")),
    Scenario("fault_coalesce_records", "connects", CONNECTS,
             "many frames coalesced into one TLS record, while connecting and querying",
             node=_both(fault("coalesce_records")), client=ClientSpec(queries=20)),
    Scenario("fault_split_records_v4", "connects", CONNECTS + 4.0,
             "every write cut into TLS records of 16 bytes, no pause; protocol v4",
             node=_both(fault("split_records", size=16)), client=ClientSpec(queries=20, protocol_version=4)),
    Scenario("fault_split_records_v5", "connects", CONNECTS + 4.0,
             "every write cut into TLS records of 16 bytes, no pause; protocol v5 (checksummed segments)",
             node=_both(fault("split_records", size=16)), client=ClientSpec(queries=20, protocol_version=5)),
    Scenario("fault_pace_records", "connects", CONNECTS + 6.0,
             "TLS records paced (the fault's defaults), while connecting and querying",
             node=_both(fault("pace_records")), client=ClientSpec(queries=5)),
    Scenario("fault_truncate", "query_fails_fast", CONNECTS + 4.0,
             "FIN without close_notify when the aimed query arrives: it fails at once; the session reconnects",
             node=NodeSpec(query_faults=(aimed("truncate"),)), client=_AIMED_FAILS),
    Scenario("fault_data_after_close_notify", "query_fails_fast", CONNECTS + 4.0,
             "close_notify, then more bytes, when the aimed query arrives: it fails at once; the session reconnects",
             node=NodeSpec(query_faults=(aimed("data_after_close_notify", on_request=None),)), client=_AIMED_FAILS),
    Scenario("fault_close_notify_keep_reading", "query_fails_fast", CONNECTS + 4.0,
             "close_notify, the node reading on, when the aimed query arrives: it fails at once; the session "
             "reconnects", node=NodeSpec(query_faults=(aimed("close_notify_keep_reading"),)), client=_AIMED_FAILS),
    Scenario("fault_reset_at_byte_header", "query_fails_fast", CONNECTS + 4.0,
             "TCP RST after 4 bytes of the aimed query's answer (mid-header): it fails at once; the session "
             "reconnects", node=NodeSpec(query_faults=(aimed("reset_at_byte", offset=4),)), client=_AIMED_FAILS),
    Scenario("fault_reset_at_byte_body", "query_fails_fast", CONNECTS + 4.0,
             "TCP RST after 20 bytes of the aimed query's answer (mid-body): it fails at once; the session "
             "reconnects", node=NodeSpec(query_faults=(aimed("reset_at_byte", offset=20),)), client=_AIMED_FAILS),
    Scenario("fault_half_close_write", "query_fails_fast", CONNECTS + 4.0,
             "the node shuts down its sending side (FIN, reading on) when the aimed query arrives: it fails at "
             "once; the session reconnects",
             node=NodeSpec(query_faults=(aimed("half_close", direction="write"),)), client=_AIMED_FAILS),
    # The node answers the aimed query and what it read with it, then
    # discards that connection's input: nothing sent on it is answered again.
    Scenario("fault_half_close_read", "query_error", CONNECTS,
             "the node stops taking input after the aimed query (read and discarded, the client not told): it "
             "is answered, the next fails with OperationTimedOut at the request timeout",
             node=NodeSpec(query_faults=(aimed("half_close", direction="read"),)),
             client=ClientSpec(aimed=2, answered_first=1, queries=0, expect_error="OperationTimedOut",
                               request_timeout=QUERY_TIMEOUT)),
    Scenario("fault_latency", "connects", CONNECTS + 4.0,
             "50 ms latency (20 ms jitter) each way, while connecting and querying",
             node=_both(fault("latency", seconds=0.05, jitter=0.02)), client=ClientSpec(queries=10)),
    Scenario("fault_bandwidth", "connects", CONNECTS + 4.0,
             "64 KiB/s each way, while connecting and querying",
             node=_both(fault("bandwidth", bytes_per_second=64 * 1024)), client=ClientSpec(queries=10)),
    Scenario("fault_blackhole", "fails_within_budget", CONNECT_TIMEOUT + 3.0,
             "the node completes TLS and never answers: the connect fails at its timeout",
             node=NodeSpec(faults=(fault("blackhole"),))),
    Scenario("fault_slow_close", "connects", CONNECTS,
             "the node sends its FIN 1 s after a close: queries, then Cluster.shutdown() returns in time",
             node=NodeSpec(faults=(fault("slow_close", delay=1.0),))),
    Scenario("fault_delay_answer", "answered_late", CONNECTS + 4.0,
             "the aimed query answered 1 s late, twice: both answers arrive, and the queries after them",
             node=NodeSpec(query_faults=(aimed("delay_answer", seconds=1.0),)),
             client=ClientSpec(aimed=2, min_answer=1.0, request_timeout=4.0)),
    Scenario("fault_delay_answer_past_timeout", "query_error", CONNECTS + 4.0,
             "the aimed query answered 3 s late, past a 1 s request timeout: OperationTimedOut; the late "
             "answer arrives on an orphaned stream, and the queries after it are answered",
             node=NodeSpec(query_faults=(aimed("delay_answer", seconds=3.0),)),
             client=ClientSpec(aimed=1, queries=5, spacing=0.7, expect_error="OperationTimedOut",
                               request_timeout=QUERY_TIMEOUT)),
    Scenario("fault_never_answer", "query_error", CONNECTS + 2.0,
             "the aimed query never answered (its stream stays open): OperationTimedOut at the request "
             "timeout, twice; the queries after them are answered",
             node=NodeSpec(query_faults=(aimed("never_answer"),)),
             client=ClientSpec(aimed=2, expect_error="OperationTimedOut", request_timeout=QUERY_TIMEOUT)),
    *(Scenario(f"fault_answer_error_{error}", "query_error", CONNECTS + 2.0,
               f"the aimed query answered with a CQL {error} error: the driver raises {raised}; the queries "
               f"after it are answered", node=NodeSpec(query_faults=(aimed("answer_error", error=error),)),
               client=ClientSpec(aimed=1, queries=3, expect_error=raised, recover=True))
      for error, raised in _ERRORS),
    Scenario("fault_answer_on_wrong_stream", "query_error", CONNECTS + 2.0,
             "the aimed query's answer sent on another stream id: the query fails with OperationTimedOut at "
             "the request timeout; the queries after it are answered",
             node=NodeSpec(query_faults=(aimed("answer_on_wrong_stream"),)),
             client=ClientSpec(aimed=1, expect_error="OperationTimedOut", request_timeout=QUERY_TIMEOUT)),
    # Counted on the aimed query alone: a count over every request would
    # close each new connection after its OPTIONS and STARTUP. The queries
    # after the aimed ones are spaced, so the close finds no query in flight
    # (a cut under a query in flight is what the other faults try).
    # The budget leaves room for the reconnection policy's first attempts (1 s, then 2 s, ...).
    Scenario("fault_close_after_requests", "recovers", CONNECTS + 8.0,
             "the node closes a connection (close_notify, FIN) right after answering the aimed query twice: "
             "both are answered, and the session reconnects and answers every query after them",
             node=NodeSpec(query_faults=(aimed("close_after_requests", count=2),)),
             client=ClientSpec(aimed=2, queries=5, spacing=0.3, recover=True)),
    Scenario("fault_refuse_connections_after", "fails_fast", CONNECT_TIMEOUT + 2.0,
             "the node accepts 1 connection and resets every later one: the control connection gets in, the "
             "pool's is reset, and the connect fails with the reset, not a timeout",
             node=NodeSpec(faults=(fault("refuse_connections_after", count=1),))),
)

SCENARIOS: Tuple[Scenario, ...] = (
    # -- SSLConnectionTests ----------------------------------------------------------
    Scenario("test_can_connect_with_ssl_ca", "connects", CONNECTS,
             "ssl_options with the CA: connects and queries", client=_OPTIONS, upstream=UPSTREAM),
    Scenario("test_can_connect_with_ssl_long_running", "connects", CONNECTS + 3.0,
             "ssl_options; queries spaced over seconds (upstream: 8 x 10 s, shortened)",
             client=ClientSpec(tls_path="options", queries=6, spacing=0.5), upstream=UPSTREAM),
    Scenario("test_can_connect_with_ssl_ca_host_match", "connects", CONNECTS,
             "ssl_options with the CA and check_hostname", client=ClientSpec(tls_path="options", check_hostname=True),
             upstream=UPSTREAM),
    # -- SSLConnectionAuthTests (the node requires a client certificate) --------------
    Scenario("test_can_connect_with_ssl_client_auth", "connects", CONNECTS,
             "mTLS node; ssl_options with certfile and keyfile", node=_MTLS,
             client=ClientSpec(tls_path="options", client_cert="good"), upstream=UPSTREAM),
    Scenario("test_can_connect_with_ssl_client_auth_host_name", "connects", CONNECTS,
             "mTLS node; ssl_options with certfile, keyfile and check_hostname", node=_MTLS,
             client=ClientSpec(tls_path="options", client_cert="good", check_hostname=True), upstream=UPSTREAM),
    Scenario("test_cannot_connect_without_client_auth", "refused", REFUSED,
             "mTLS node; ssl_options without a client certificate: refused", node=_MTLS,
             client=_OPTIONS, upstream=UPSTREAM),
    Scenario("test_cannot_connect_with_bad_client_auth", "refused", REFUSED,
             "mTLS node; a client certificate from a CA the node does not trust: refused", node=_MTLS,
             client=ClientSpec(tls_path="options", client_cert="other_ca"), upstream=UPSTREAM),
    # Upstream dials "localhost" with a certificate for 127.0.0.1; the drivers
    # resolve contact points to addresses first, so here the certificate names
    # another host than the one dialled instead.
    Scenario("test_cannot_connect_with_invalid_hostname", "refused_certificate", REFUSED,
             "mTLS node whose certificate names localhost only; the client checks host names and "
             "dials 127.0.0.1: refused", node=NodeSpec(mtls=True, cert="other_name"),
             client=ClientSpec(tls_path="options", client_cert="good", check_hostname=True), upstream=UPSTREAM),
    # -- SSLSocketErrorTests -----------------------------------------------------------
    Scenario("test_ssl_want_write_errors_are_retried", "connects", CONNECTS + 6.0,
             "ssl_options; one 10 MiB INSERT (prepared: fakecql does not parse 10 MB literals)",
             node=NodeSpec(tables=True), client=ClientSpec(tls_path="options", queries=1, large_write=LARGE),
             upstream=UPSTREAM),
    # -- SSLConnectionWithSSLContextTests -----------------------------------------------
    Scenario("test_can_connect_with_sslcontext_certificate", "connects", CONNECTS,
             "ssl_context trusting the CA (no host name check)", upstream=UPSTREAM),
    Scenario("test_can_connect_with_ssl_client_auth_password_private_key", "connects", CONNECTS,
             "mTLS node; ssl_context with the client certificate and a password-protected key, "
             "verification off (as upstream)", node=_MTLS,
             client=ClientSpec(client_cert="encrypted", verify=False), upstream=UPSTREAM),
    Scenario("test_can_connect_with_ssl_context_ca_host_match", "connects", CONNECTS,
             "ssl_context with the CA and an encrypted client key; ssl_options check_hostname",
             client=ClientSpec(client_cert="encrypted", hostname_option=True), upstream=UPSTREAM),
    Scenario("test_cannot_connect_ssl_context_with_invalid_hostname", "refused_certificate", REFUSED,
             "node certificate names localhost only; ssl_context plus ssl_options check_hostname, "
             "dialling 127.0.0.1: refused", node=NodeSpec(cert="other_name"),
             client=ClientSpec(client_cert="encrypted", hostname_option=True),
             upstream=UPSTREAM),
    Scenario("test_can_connect_with_sslcontext_default_context", "connects", CONNECTS,
             "ssl.create_default_context(cafile=CA): verification and host name check on",
             client=ClientSpec(tls_path="default_context"), upstream=UPSTREAM, stdlib_context=True),
    # -- beyond upstream's file: the other refusals a TLS client meets -------------------
    Scenario("tls_unknown_ca_is_refused", "refused_certificate", REFUSED,
             "ssl_context trusting a CA that did not sign the node's certificate: refused",
             client=ClientSpec(ca="other_ca")),
    Scenario("tls_password_authenticator", "connects", CONNECTS,
             "PasswordAuthenticator over TLS, right credentials", node=NodeSpec(auth=True),
             client=ClientSpec(password=PASSWORD)),
    Scenario("tls_wrong_password_is_refused", "refused_credentials", REFUSED,
             "PasswordAuthenticator over TLS, wrong password: AuthenticationFailed", node=NodeSpec(auth=True),
             client=ClientSpec(password="wrong")),
    # -- TLS 1.3 ------------------------------------------------------------------------------
    Scenario("tls13_session_tickets_after_handshake", "connects", CONNECTS,
             "TLS 1.3 node sending 4 NewSessionTickets right after the handshake: the client's "
             "first read is TLS-only", node=NodeSpec(tls_min="1.3", session_tickets=4),
             client=ClientSpec(queries=20), baseline="test_can_connect_with_sslcontext_certificate"),
    Scenario("tls13_key_update_mid_session", "connects", CONNECTS,
             "TLS 1.3 KeyUpdate (update_requested) before every 4th request",
             node=NodeSpec(tls_min="1.3", query_faults=(fault("key_update", on_request=1, every=4),)),
             client=ClientSpec(queries=40), baseline="test_can_connect_with_sslcontext_certificate"),
    Scenario("tls12_only_node", "connects", CONNECTS,
             "a node that speaks TLS 1.2 only", node=NodeSpec(tls_max="1.2")),
    # -- faults --------------------------------------------------------------------------------
    Scenario("fault_dribbled_frames_v4", "connects", CONNECTS + 4.0,
             "answers cut into 1-7 byte TLS records (seeded), protocol v4", node=_DRIBBLED,
             client=ClientSpec(queries=20, protocol_version=4), baseline="test_can_connect_with_sslcontext_certificate"),
    Scenario("fault_dribbled_frames_v5", "connects", CONNECTS + 4.0,
             "answers cut into 1-7 byte TLS records (seeded), protocol v5 (checksummed segments)", node=_DRIBBLED,
             client=ClientSpec(queries=20, protocol_version=5), baseline="test_can_connect_with_sslcontext_certificate"),
    Scenario("fault_node_stops_reading_during_large_write", "connects", CONNECTS + 8.0,
             "the node stops reading for 1 s with 256 KiB of a 10 MiB INSERT buffered; the write completes",
             node=NodeSpec(tables=True, query_faults=(fault("stop_reading", min_pending=256 * 1024,
                                                            resume_after=1.0),)),
             client=ClientSpec(queries=1, large_write=LARGE)),
    # On the first request, not right after the handshake: by then the
    # client is reading, so the RST reaches it as a reset every time.
    Scenario("fault_reset_on_first_request", "fails_fast", CONNECT_TIMEOUT + 2.0,
             "TCP RST when the first request (OPTIONS) arrives: the connect fails with the reset, not a timeout",
             node=NodeSpec(faults=(fault("reset", on_request=1),))),
    Scenario("fault_close_after_handshake", "fails_fast", CONNECT_TIMEOUT + 2.0,
             "close_notify and FIN right after the TLS handshake: the connect fails at once, not at a timeout",
             node=NodeSpec(faults=(fault("close"),))),
    Scenario("fault_stalled_handshake", "fails_within_budget", CONNECT_TIMEOUT + 3.0,
             "the node sends its ServerHello and holds the rest of the flight: the connect fails within its "
             "timeout, naming the handshake or the timeout",
             node=NodeSpec(faults=(fault("stall_handshake", stage="server_hello"),))),
    # -- issue 13's faults, one scenario each (certificates and TLS versions from the start;
    # -- record shaping from the start and for the queries; the rest aimed at AIMED_QUERY) ---
    *_FAULT_SCENARIOS,
    # -- client routes through an NLB (Scylla's Private Link) -------------------------------------
    Scenario("test_ssl_without_hostname_verification_through_nlb", "connects", CONNECTS + 4.0,
             "3 Scylla nodes behind a layer-4 NLB; client routes; ssl_context checking the chain, not the "
             "host name: every host's endpoint resolves to the NLB, 20 queries", node=_NLB,
             client=ClientSpec(client_routes=True, queries=20), upstream=CLIENT_ROUTES_UPSTREAM),
    Scenario("test_ssl_with_hostname_verification_raises_error", "refused_by_driver", REFUSED,
             "client routes with an ssl_context that checks host names: Cluster() raises ValueError",
             node=_NLB, client=ClientSpec(client_routes=True, check_hostname=True), upstream=CLIENT_ROUTES_UPSTREAM),
    # -- plain-TCP controls ------------------------------------------------------------------
    Scenario("plain_connects_and_queries", "connects", CONNECTS,
             "plain TCP: connects and queries", node=NodeSpec(tls=False), client=ClientSpec(tls_path="none")),
    Scenario("plain_large_write", "connects", CONNECTS + 6.0,
             "plain TCP: one 10 MiB INSERT", node=NodeSpec(tls=False, tables=True),
             client=ClientSpec(tls_path="none", queries=1, large_write=LARGE)),
)

_BY_NAME: Dict[str, Scenario] = {s.name: s for s in SCENARIOS}
assert len(_BY_NAME) == len(SCENARIOS), "scenario names must be unique"


def scenario(name: str) -> Scenario:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no scenario named {name!r}; known: {', '.join(_BY_NAME)}") from None


def select_scenarios(patterns: Sequence[str] = ()) -> List[Scenario]:
    """The scenarios matching any of the glob `patterns` (all when none); ValueError naming a pattern that matches nothing."""
    if not patterns:
        return list(SCENARIOS)
    chosen: List[Scenario] = []
    for pattern in patterns:
        matched = [s for s in SCENARIOS if fnmatch.fnmatchcase(s.name, pattern)]
        if not matched:
            raise ValueError(f"--scenario {pattern!r} matches no scenario; known: {', '.join(_BY_NAME)}")
        chosen.extend(s for s in matched if s not in chosen)
    return [s for s in SCENARIOS if s in chosen]
