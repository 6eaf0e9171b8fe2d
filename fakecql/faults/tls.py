# TLS faults: what a node's TLS layer can do to a client (handshakes,
# certificates, versions, tickets, records, KeyUpdate, endings).
#
# Certificates, versions and tickets act through the tls_config hook, so
# they apply to NEW connections only (an open connection keeps the TLS it
# negotiated); the server keeps one SSLContext per distinct TLSConfig, and
# each fault certificate is made once per node CA (see _certificate), so
# switching a fault on and off costs no key generation per connection.
# Record shaping acts on the node's plaintext (shape_output): each piece the
# server is handed becomes TLS records of its own. Endings act through the
# ConnectionControl's fin, send_close_notify, encrypt and send_raw.
from __future__ import annotations

import dataclasses
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, List, Optional, Tuple, Type

from .base import ConnectionControl, Fault, Request, check_choice, check_int, check_number
from .wire import _EndConnection

if TYPE_CHECKING:
    import trustme

    from ..tls import TLSConfig

__all__ = [
    "StallHandshake",
    "KeyUpdate",
    "ExpiredCertificate",
    "NotYetValidCertificate",
    "WrongHostCertificate",
    "UntrustedCertificate",
    "SelfSignedCertificate",
    "SessionTickets",
    "OnlyTLSVersion",
    "CoalesceRecords",
    "SplitRecords",
    "PaceRecords",
    "Truncate",
    "DataAfterCloseNotify",
    "CloseNotifyKeepReading",
    "TLSVerbs",
]

_ON_REQUESTS = frozenset({"connections", "on_request", "opcode", "query", "probability"})

# The most plaintext one TLS record carries (RFC 8446, 5.1; RFC 5246, 6.2.1).
MAX_RECORD_PLAINTEXT = 16384


@dataclass(frozen=True)
class StallHandshake(Fault):
    """A node that accepts but never finishes the TLS handshake (overloaded,
    or a middlebox eating packets): never answer the ClientHello
    ("client_hello"), or send the ServerHello record alone and hold the rest
    of the flight ("server_hello")."""

    stage: str = "client_hello"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("StallHandshake", "stage", self.stage, ("client_hello", "server_hello"))

    def accepted(self, ctl: ConnectionControl) -> None:
        if self.stage == "client_hello" and self.hits_connection(ctl):
            ctl.hold_input()
            ctl.log(self, "holding the ClientHello unanswered")

    def handshake_output(self, ctl: ConnectionControl, data: bytes) -> bytes:
        if self.stage != "server_hello" or not data or not self.hits_connection(ctl):
            return data
        from ..tls import split_records

        records, _ = split_records(data)
        ctl.hold_input()
        ctl.log(self, f"sent the first of {len(records)} handshake records, holding the rest")
        return records[0] if records else b""


@dataclass(frozen=True)
class KeyUpdate(Fault):
    """A long-lived TLS 1.3 session rekeying (OpenSSL does it after a volume
    of data; so do some proxies): send a KeyUpdate before answering the
    `on_request`-th request (0: right after the handshake), and then before
    every `every`-th request after it (0: once); with `opcode` or `query`,
    before every request that matches. With `request_peer`
    (update_requested), the client must update its own sending keys and say
    so with a KeyUpdate of its own. Needs TLS 1.3: on plain TCP or TLS 1.2 it
    fails as a server incident."""

    on_request: int = 1  # type: ignore[assignment]
    every: int = 0
    request_peer: bool = True

    TRIGGERS = _ON_REQUESTS
    ON_REQUEST_ZERO = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("KeyUpdate", "every", self.every, 0)
        if not isinstance(self.request_peer, bool):
            raise TypeError(f"KeyUpdate request_peer must be True or False, got {self.request_peer!r}")

    def established(self, ctl: ConnectionControl) -> None:
        if self.on_request == 0 and self.hits_connection(ctl):
            self._update(ctl, "after the handshake")

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        count = request.count
        if self.opcode is not None or self.query is not None:
            due = count >= self.on_request
        else:
            due = count == self.on_request or (
                self.every > 0 and count > self.on_request and (count - self.on_request) % self.every == 0)
        if not due:
            return
        if self.opcode is not None and request.opcode not in self.opcode:
            return
        if self.query is not None and not self._query_matches(request.query):
            return
        if self.probability < 1.0 and ctl.random(self, self.seed).random() >= self.probability:
            return
        self._update(ctl, f"before answering request {count} ({request.opcode})")

    def _update(self, ctl: ConnectionControl, when: str) -> None:
        ctl.update_keys(self.request_peer)
        ctl.log(self, f"sent KeyUpdate ({'update_requested' if self.request_peer else 'update_not_requested'}) {when}")


# -- certificates ---------------------------------------------------------------------

_CERTIFICATES_LOCK = threading.Lock()
# node CA -> (kind, key type, identities) -> the fault certificate made for it
_CERTIFICATES: "weakref.WeakKeyDictionary[trustme.CA, Dict[Tuple[Any, ...], trustme.LeafCert]]" = \
    weakref.WeakKeyDictionary()
# node certificate -> (its key type, the names it is valid for)
_NODE_CERTIFICATES: "weakref.WeakKeyDictionary[trustme.LeafCert, Tuple[trustme.KeyType, Tuple[str, ...]]]" = \
    weakref.WeakKeyDictionary()


def _certificate(config: "TLSConfig", kind: Tuple[Any, ...],
                 make: "Callable[[trustme.KeyType, Tuple[str, ...]], trustme.LeafCert]") -> "trustme.LeafCert":
    """The fault certificate `kind` for a node with this config: made once per
    node CA, with the key type and names of the node's own certificate (so it
    differs from the node's in the one way the fault says), then reused. The
    first connection under a fault pays for its key, on the node's loop (an
    RSA key: about 0.1 s)."""
    from ..tls import identities_of, key_type_of

    with _CERTIFICATES_LOCK:  # generation under the lock: made once even when nodes share a CA
        node = _NODE_CERTIFICATES.get(config.server_cert)
        if node is None:
            node = _NODE_CERTIFICATES[config.server_cert] = (
                key_type_of(config.server_cert), identities_of(config.server_cert))
        key_type, identities = node
        made = _CERTIFICATES.setdefault(config.ca, {})
        key = kind + (key_type, identities)
        cert = made.get(key)
        if cert is None:
            cert = made[key] = make(key_type, identities)
        return cert


@dataclass(frozen=True)
class _CertificateFault(Fault):
    """Presents another certificate on new TLS connections (open ones keep theirs)."""

    _presents: ClassVar[str] = ""  # what the log says the node presented

    def _kind(self) -> Tuple[Any, ...]:
        return (type(self).__name__,)

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        raise NotImplementedError

    def tls_config(self, ctl: ConnectionControl, config: "TLSConfig") -> "TLSConfig":
        if not self.hits_connection(ctl):
            return config
        cert = _certificate(config, self._kind(), lambda keys, names: self._make(config.ca, keys, names))
        ctl.log(self, f"presenting {self._presents}")
        return dataclasses.replace(config, server_cert=cert)


@dataclass(frozen=True)
class ExpiredCertificate(_CertificateFault):
    """A node whose certificate expired (nobody renewed it): on new
    connections it presents a certificate from its own CA, for its own
    names, whose validity ended yesterday. A client that verifies sees
    OpenSSL's verify code 10 ("certificate has expired")."""

    _presents = "an expired certificate (valid until yesterday)"

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        from ..tls import expired_cert

        return expired_cert(ca, *identities, key_type=key_type)


@dataclass(frozen=True)
class NotYetValidCertificate(_CertificateFault):
    """A node with a certificate issued ahead of time, or a client whose
    clock is behind: on new connections it presents a certificate from its
    own CA whose validity starts tomorrow (verify code 9, "certificate is
    not yet valid")."""

    _presents = "a certificate not valid before tomorrow"

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        from ..tls import not_yet_valid_cert

        return not_yet_valid_cert(ca, *identities, key_type=key_type)


@dataclass(frozen=True)
class WrongHostCertificate(_CertificateFault):
    """A node presenting another host's certificate (copied from a sibling,
    or a load balancer's): on new connections a certificate from its own CA
    naming only `host` ("wrong.invalid": the .invalid domain nobody dials). A
    client that checks host names sees verify code 62 ("Hostname mismatch")
    when it dialled a name, 64 ("IP address mismatch") when it dialled an
    address; one that does not (check_hostname=False) connects."""

    host: str = "wrong.invalid"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            raise ValueError(f"WrongHostCertificate host must be a host name or address without spaces, "
                             f"got {self.host!r}")

    @property
    def _presents(self) -> str:  # type: ignore[override]
        return f"a certificate for {self.host} only"

    def _kind(self) -> Tuple[Any, ...]:
        return ("WrongHostCertificate", self.host)

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        return ca.issue_cert(self.host, key_type=key_type)


@dataclass(frozen=True)
class UntrustedCertificate(_CertificateFault):
    """A node whose certificate comes from a CA its clients do not trust (a
    private CA not distributed, a staging CA in production): on new
    connections a certificate for its own names signed by a CA made for the
    purpose and thrown away, the leaf alone on the wire. A client sees verify
    code 20 ("unable to get local issuer certificate")."""

    _presents = "a certificate signed by a CA nobody trusts"

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        import trustme

        return trustme.CA(key_type=key_type).issue_cert(*identities, key_type=key_type)


@dataclass(frozen=True)
class SelfSignedCertificate(_CertificateFault):
    """A node set up without a CA, with a certificate it signed itself
    (subject = issuer, its own key; made with `cryptography`, see
    fakecql.tls.self_signed_cert), naming the node's own names. A client
    that trusts the node's CA sees verify code 18 ("self-signed
    certificate"); had the node sent a CA certificate as its leaf, the client
    would see that code too, but also a CA:TRUE leaf naming no host."""

    _presents = "a self-signed certificate"

    def _make(self, ca: "trustme.CA", key_type: "trustme.KeyType", identities: Tuple[str, ...]) -> "trustme.LeafCert":
        from ..tls import self_signed_cert

        return self_signed_cert(*identities, key_type=key_type)


# -- versions and tickets ------------------------------------------------------------------

@dataclass(frozen=True)
class SessionTickets(Fault):
    """A node that sends `count` TLS 1.3 NewSessionTickets after each
    handshake on new connections (OpenSSL's default is 2), or none with 0,
    as hardened configurations do (OP_NO_TICKET too: no TLS 1.2 ticket
    either), so a client's resumption has nothing to resume. Under TLS 1.2 a
    count above 0 means one ticket, if the client asks."""

    count: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("SessionTickets", "count", self.count, 0, 100)

    def tls_config(self, ctl: ConnectionControl, config: "TLSConfig") -> "TLSConfig":
        if not self.hits_connection(ctl):
            return config
        ctl.log(self, f"{self.count} session tickets" if self.count else "session tickets off")
        return dataclasses.replace(config, session_tickets=self.count)


@dataclass(frozen=True)
class OnlyTLSVersion(Fault):
    """A node pinned to one TLS version (a legacy node on 1.2 only, or a
    strict one on 1.3 only): new connections negotiate `version` ("1.2" or
    "1.3") or nothing. A client capped at the other version gets a
    protocol_version alert (ssl.SSLError TLSV1_ALERT_PROTOCOL_VERSION, or
    UNSUPPORTED_PROTOCOL from its own side) and the node logs
    HandshakeFailed saying so."""

    version: str = "1.2"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("OnlyTLSVersion", "version", self.version, ("1.2", "1.3"))

    def tls_config(self, ctl: ConnectionControl, config: "TLSConfig") -> "TLSConfig":
        if not self.hits_connection(ctl):
            return config
        from ..tls import tls_version

        pinned = tls_version(self.version)
        ctl.log(self, f"TLS {self.version} only")
        return dataclasses.replace(config, min_version=pinned, max_version=pinned)


# -- records -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CoalesceRecords(Fault):
    """A node (or a TLS proxy) that buffers its answers and flushes them
    together: answers are held until `frames` answers to requests are
    waiting, or `window` seconds after the first one, or 16 KiB are held,
    then sent in ONE TLS write: one record while they fit in 16 KiB of
    plaintext (TLS's limit per record); above that, OpenSSL cuts them into
    full 16 KiB records and one remainder, back to back. A client then
    reads several frames, often of different streams, out of one record, so
    its TLS layer holds decrypted bytes its socket no longer signals (the
    reactor bug class of SSLSocket.pending()). Events and primed late
    answers are held too but counted only by the window. Cost: an answer
    alone waits `window`; a driver's Cluster.connect(), about 10 answers
    awaited one after the other, takes 0.1 to 0.2 s longer with the
    defaults (measured with scylla-driver 3.29.12 and cassandra-driver 3.30.1)."""

    frames: int = 16
    window: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("CoalesceRecords", "frames", self.frames, 1)
        check_number("CoalesceRecords", "window", self.window, positive=True, maximum=60.0)

    def answer_sent(self, ctl: ConnectionControl, request: Request) -> None:
        if self.hits_connection(ctl):
            state = ctl.state(self)
            state["answers"] = state.get("answers", 0) + 1

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        if not self.hits_connection(ctl):
            return None
        state = ctl.state(self)
        held: List[bytes] = state.setdefault("held", [])
        held.append(data)
        state["held_bytes"] = state.get("held_bytes", 0) + len(data)
        if state.get("answers", 0) >= self.frames:
            self._flush(ctl, f"{self.frames} answers")
        elif state["held_bytes"] >= MAX_RECORD_PLAINTEXT:
            self._flush(ctl, "16 KiB")
        elif not state.get("timer"):
            batch = state.get("batch", 0)
            state["timer"] = True
            ctl.call_later(self.window, lambda: self._flush(ctl, f"{self.window:g} s", batch))
        return []  # held: _flush sends it

    def closing(self, ctl: ConnectionControl) -> None:
        self._flush(ctl, "the connection closing")

    def _flush(self, ctl: ConnectionControl, why: str, batch: Optional[int] = None) -> None:
        state = ctl.state(self)
        if batch is not None and batch != state.get("batch", 0):
            return  # that batch went out already; this timer was for it
        held: List[bytes] = state.get("held") or []
        data = b"".join(held)
        answers = state.get("answers", 0)
        state.update(held=[], held_bytes=0, answers=0, timer=False, batch=state.get("batch", 0) + 1)
        if not data:
            return
        records = -(-len(data) // MAX_RECORD_PLAINTEXT)
        ctl.log(self, f"sent {len(held)} writes ({answers} answers, {len(data)} bytes) in "
                      f"{'one TLS record' if records == 1 else f'{records} TLS records'} after {why}")
        ctl.send_plaintext(data)


@dataclass(frozen=True)
class SplitRecords(Fault):
    """A node or TLS middlebox with a small record size (RFC 6066's
    max_fragment_length of 512, embedded TLS stacks): each write of the
    node's is cut into TLS records of `size` bytes of plaintext (the last
    one shorter), sent back to back with no pause, so frames, headers
    included, straddle records."""

    size: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("SplitRecords", "size", self.size, 1, MAX_RECORD_PLAINTEXT)

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        if not self.hits_connection(ctl):
            return None
        pieces = [(0.0, data[pos:pos + self.size]) for pos in range(0, len(data), self.size)]
        ctl.log(self, f"cut {len(data)} bytes into {len(pieces)} records of at most {self.size}")
        return pieces


@dataclass(frozen=True)
class PaceRecords(Fault):
    """A slow or shaped path (a rate-limiting proxy, a congested WAN link)
    delivering the node's answers as TLS records of `size` bytes of
    plaintext, one every `interval` seconds (every record waits `interval`,
    the first of a write too, and writes queue behind each other).

    The defaults (512 bytes every 0.02 s: 25 KB/s) let a driver connect
    under its default timeouts (connect_timeout 5 s, control_connection_timeout
    2 s per query). Measured against fakecql's default node (TLS, protocol
    v5): scylla-driver 3.29.12's Cluster.connect() reads about 9.5 KB of
    answers on its control connection, in 7 writes (the schema queries go
    pipelined and come back as one 8.5 KB write), and 0.1 KB on its pool
    connection: paced, 23 + 2 records, and connect() takes about 0.6 s
    instead of 0.08 s; the longest single wait, the schema write, is 17
    records, about 0.35 s of the 2 s. cassandra-driver 3.30.1 reads about as
    much (and two refused protocol versions first, one record each): about
    0.6 s too. A node with a larger schema costs about 0.04 s per KB more."""

    size: int = 512
    interval: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("PaceRecords", "size", self.size, 1, MAX_RECORD_PLAINTEXT)
        check_number("PaceRecords", "interval", self.interval, positive=True, maximum=60.0)

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        if not self.hits_connection(ctl):
            return None
        pieces = [(self.interval, data[pos:pos + self.size]) for pos in range(0, len(data), self.size)]
        ctl.log(self, f"pacing {len(data)} bytes as {len(pieces)} records of at most {self.size}, "
                      f"{self.interval:g} s apart")
        return pieces


# -- endings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Truncate(_EndConnection):
    """A node that crashes, or a middlebox that cuts the TCP connection,
    mid-session: a FIN without a TLS close_notify (a truncation, which TLS
    says a client must not take for a clean end) when the request it is
    aimed at arrives, left unanswered (default: right after the handshake).
    Python's ssl raises SSLEOFError ("EOF occurred in violation of
    protocol"), or returns b"" when the socket suppresses ragged EOFs (the
    default of SSLSocket, not of SSLObject)."""

    _done = "sent FIN without close_notify"

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.fin()


@dataclass(frozen=True)
class DataAfterCloseNotify(Fault):
    """A node or proxy that says close_notify and then goes on writing (a
    known bug class: the sender closes one leg while answers are still in
    flight): the answer to the request it is aimed at (default: the first,
    the driver's OPTIONS) follows the close_notify, as TLS records
    encrypted in sequence after it (a client that read on could decrypt
    them), then FIN. A client must stop at the close_notify: Python's ssl
    reads b"" there and leaves what follows unread. An answer is what
    follows the close_notify, so the fault needs a request to answer
    (on_request >= 1). Needs TLS: on plain TCP it fails as a server
    incident (as it does where ctypes cannot reach OpenSSL, see
    fakecql/_openssl.py)."""

    on_request: int = 1  # type: ignore[assignment]

    TRIGGERS = _ON_REQUESTS

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        state = ctl.state(self)
        if "armed" not in state and self.hits_request(ctl, request):
            state["armed"] = f"request {request.count} ({request.opcode})"

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        state = ctl.state(self)
        if "armed" not in state or state.get("done"):
            return None
        state["done"] = True
        ctl.send_close_notify()
        records = ctl.encrypt(data)  # the records that follow the close_notify, in sequence
        ctl.send_raw(records)
        ctl.log(self, f"sent close_notify, then the answer to {state['armed']} ({len(data)} bytes "
                      f"in {len(records)} bytes of TLS records), then FIN")
        ctl.fin()
        return []


@dataclass(frozen=True)
class CloseNotifyKeepReading(_EndConnection):
    """A node that sends close_notify and then waits for the client to close
    (TLS allows the half-close; a node draining, a proxy ending one leg): at
    the request it is aimed at (left unanswered; default: right after the
    handshake) it sends close_notify and keeps the TCP connection open,
    reading and logging what the client still sends, answering nothing; it
    closes when the client does (close_notify or FIN), or `close_after`
    seconds later if given. Needs TLS: on plain TCP it fails as a server
    incident."""

    close_after: Optional[float] = None

    _done = "sent close_notify, reading on"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.close_after is not None:
            check_number("CloseNotifyKeepReading", "close_after", self.close_after, positive=True)

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.send_close_notify()
        ctl.state(self)["shut"] = True
        if self.close_after is not None:
            def close() -> None:
                ctl.log(self, f"closing (FIN) {self.close_after:g} s after the close_notify")
                ctl.fin()

            ctl.call_later(self.close_after, close)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if ctl.state(self).get("shut"):
            request.drop()  # nothing can be encrypted any more
            query = f": {request.query[:80]!r}" if request.query else ""
            ctl.log(self, f"read request {request.count} ({request.opcode}{query}) after the close_notify; "
                          f"not answered")
            return
        super().request_received(ctl, request)


class TLSVerbs:
    """server.faults verbs for the TLS faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError

    def stall_handshake(self, stage: str = "client_hello", **triggers: Any) -> Fault:
        """Hold the TLS handshake at `stage` ("client_hello" or "server_hello")."""
        return self.add(StallHandshake(stage=stage, **triggers))

    def key_update(self, on_request: int = 1, *, every: int = 0, request_peer: bool = True,
                   **triggers: Any) -> Fault:
        """Send a TLS 1.3 KeyUpdate before the `on_request`-th request (and every `every`-th after)."""
        return self.add(KeyUpdate(on_request=on_request, every=every, request_peer=request_peer, **triggers))

    def expired_certificate(self, **triggers: Any) -> Fault:
        """New connections get a certificate from the node's CA that expired yesterday."""
        return self.add(ExpiredCertificate(**triggers))

    def not_yet_valid_certificate(self, **triggers: Any) -> Fault:
        """New connections get a certificate from the node's CA valid only from tomorrow."""
        return self.add(NotYetValidCertificate(**triggers))

    def wrong_host_certificate(self, host: str = "wrong.invalid", **triggers: Any) -> Fault:
        """New connections get a certificate from the node's CA naming only `host`."""
        return self.add(WrongHostCertificate(host=host, **triggers))

    def untrusted_certificate(self, **triggers: Any) -> Fault:
        """New connections get a certificate signed by a CA nobody trusts."""
        return self.add(UntrustedCertificate(**triggers))

    def self_signed_certificate(self, **triggers: Any) -> Fault:
        """New connections get a certificate that is its own issuer."""
        return self.add(SelfSignedCertificate(**triggers))

    def session_tickets(self, count: int = 0, **triggers: Any) -> Fault:
        """New connections get `count` TLS 1.3 session tickets (0: tickets off)."""
        return self.add(SessionTickets(count=count, **triggers))

    def only_tls_version(self, version: str = "1.2", **triggers: Any) -> Fault:
        """New connections negotiate TLS `version` ("1.2" or "1.3") or fail."""
        return self.add(OnlyTLSVersion(version=version, **triggers))

    def coalesce_records(self, *, frames: int = 16, window: float = 0.01, **triggers: Any) -> Fault:
        """Hold answers until `frames` are waiting or `window` s passed; send them as one TLS record."""
        return self.add(CoalesceRecords(frames=frames, window=window, **triggers))

    def split_records(self, size: int = 512, **triggers: Any) -> Fault:
        """Cut each write into TLS records of `size` bytes of plaintext, with no pause."""
        return self.add(SplitRecords(size=size, **triggers))

    def pace_records(self, *, size: int = 512, interval: float = 0.02, **triggers: Any) -> Fault:
        """Send answers as TLS records of `size` bytes, one every `interval` seconds."""
        return self.add(PaceRecords(size=size, interval=interval, **triggers))

    def truncate(self, on_request: Optional[int] = None, **triggers: Any) -> Fault:
        """FIN without close_notify when the request it is aimed at arrives (default: after the handshake)."""
        return self.add(Truncate(on_request=on_request, **triggers))

    def data_after_close_notify(self, on_request: int = 1, **triggers: Any) -> Fault:
        """Send close_notify, then the answer to the request it is aimed at (default: the first), then FIN."""
        return self.add(DataAfterCloseNotify(on_request=on_request, **triggers))

    def close_notify_keep_reading(self, on_request: Optional[int] = None, *, close_after: Optional[float] = None,
                                  **triggers: Any) -> Fault:
        """Send close_notify (default: after the handshake) and keep reading until the client closes."""
        return self.add(CloseNotifyKeepReading(on_request=on_request, close_after=close_after, **triggers))


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {
    "stall_handshake": StallHandshake,
    "key_update": KeyUpdate,
    "expired_certificate": ExpiredCertificate,
    "not_yet_valid_certificate": NotYetValidCertificate,
    "wrong_host_certificate": WrongHostCertificate,
    "untrusted_certificate": UntrustedCertificate,
    "self_signed_certificate": SelfSignedCertificate,
    "session_tickets": SessionTickets,
    "only_tls_version": OnlyTLSVersion,
    "coalesce_records": CoalesceRecords,
    "split_records": SplitRecords,
    "pace_records": PaceRecords,
    "truncate": Truncate,
    "data_after_close_notify": DataAfterCloseNotify,
    "close_notify_keep_reading": CloseNotifyKeepReading,
}
