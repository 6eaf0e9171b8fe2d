# TLS for the node: certificates (trustme) and the MemoryBIO engine the
# server drives itself.
#
# Strategy: TLSEngine is sans-IO, like CPython's asyncio/sslproto.py: an
# SSLObject over two MemoryBIOs. Ciphertext goes in with receive(), which
# drives the handshake and returns whatever plaintext it could read;
# plaintext goes in with send(); everything the TLS layer wants on the wire
# comes out of take_outgoing(). SSLWantReadError means "flush what is
# outgoing, then wait for more bytes", never an error. Driving it ourselves,
# rather than letting loop.create_server(ssl=...) do it, is what lets the
# fault plan act on each handshake flight and each TLS record, and what
# makes a fatal alert reach the client before the socket closes.
#
# Rules: no certificate is ever written to the repository; keys written to
# disk are mode 0600; messages name the certificate or option that was wrong.
from __future__ import annotations

import datetime
import enum
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import trustme

from ._openssl import request_key_update, write_after_close_notify
from .protocol.errors import FakeCQLError

__all__ = [
    "ClientAuth",
    "TLSConfig",
    "TLSEngine",
    "TLSHandshakeError",
    "TLSInfo",
    "client_context",
    "server_identities",
    "write_client_files",
]

# What a node's certificate names: every way a test may reach it on loopback.
DEFAULT_IDENTITIES = ("localhost", "127.0.0.1", "::1")


def server_identities() -> Tuple[str, ...]:
    return DEFAULT_IDENTITIES


class ClientAuth(str, enum.Enum):
    """Whether the node asks TLS clients for a certificate (mTLS)."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def tls_version(name: str) -> ssl.TLSVersion:
    """'1.2' or '1.3' (or an ssl.TLSVersion) to an ssl.TLSVersion."""
    if isinstance(name, ssl.TLSVersion):
        return name
    try:
        return _VERSIONS[str(name)]
    except KeyError:
        raise ValueError(f"TLS version must be '1.2' or '1.3', got {name!r}") from None


@dataclass(frozen=True)
class TLSConfig:
    """How a node does TLS. Build one with TLSConfig.create(ca)."""

    ca: trustme.CA
    server_cert: trustme.LeafCert
    client_auth: ClientAuth = ClientAuth.NONE
    client_ca: Optional[trustme.CA] = None  # trusted for client certs; default: `ca`
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    session_tickets: int = 2  # TLS 1.3 NewSessionTickets after each handshake (OpenSSL's default)

    @classmethod
    def create(
        cls,
        ca: Optional[trustme.CA] = None,
        *,
        server_cert: Optional[trustme.LeafCert] = None,
        client_auth: "ClientAuth | str" = ClientAuth.NONE,
        client_ca: Optional[trustme.CA] = None,
        min_version: "ssl.TLSVersion | str" = ssl.TLSVersion.TLSv1_2,
        max_version: "ssl.TLSVersion | str" = ssl.TLSVersion.TLSv1_3,
        session_tickets: int = 2,
        key_type: str = "ecdsa",
    ) -> "TLSConfig":
        try:
            keys = {"ecdsa": trustme.KeyType.ECDSA, "rsa": trustme.KeyType.RSA}[key_type]
        except KeyError:
            raise ValueError(f"key_type must be 'ecdsa' or 'rsa', got {key_type!r}") from None
        ca = ca or trustme.CA(key_type=keys)
        try:
            auth = ClientAuth(client_auth)
        except ValueError:
            raise ValueError(
                f"client_auth must be one of {[a.value for a in ClientAuth]}, got {client_auth!r}"
            ) from None
        low, high = tls_version(min_version), tls_version(max_version)  # type: ignore[arg-type]
        if low > high:
            raise ValueError(f"min_version {low.name} is above max_version {high.name}")
        if not isinstance(session_tickets, int) or session_tickets < 0:
            raise ValueError(f"session_tickets must be an integer >= 0, got {session_tickets!r}")
        return cls(
            ca=ca,
            server_cert=server_cert or ca.issue_cert(*DEFAULT_IDENTITIES, key_type=keys),
            client_auth=auth,
            client_ca=client_ca,
            min_version=low,
            max_version=high,
            session_tickets=session_tickets,
        )

    def server_context(self) -> ssl.SSLContext:
        """A new server SSLContext. A node builds one and keeps it: sessions
        resume only on the context that issued them."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        context.maximum_version = self.max_version
        self.server_cert.configure_cert(context)
        if self.client_auth is not ClientAuth.NONE:
            (self.client_ca or self.ca).configure_trust(context)
            context.verify_mode = (
                ssl.CERT_REQUIRED if self.client_auth is ClientAuth.REQUIRED else ssl.CERT_OPTIONAL
            )
        context.num_tickets = self.session_tickets
        if self.session_tickets == 0:
            context.options |= ssl.OP_NO_TICKET
        return context

    def issue_client_cert(self, name: str = "fakecql-client") -> trustme.LeafCert:
        """A client certificate the node trusts (for mTLS)."""
        return (self.client_ca or self.ca).issue_cert(name, common_name=name)


def client_context(
    ca: Optional[trustme.CA] = None,
    *,
    check_hostname: bool = False,
    cert: Optional[trustme.LeafCert] = None,
    min_version: "ssl.TLSVersion | str | None" = None,
    max_version: "ssl.TLSVersion | str | None" = None,
) -> ssl.SSLContext:
    """A client SSLContext trusting `ca` (and presenting `cert`, for mTLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if ca is not None:
        ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    if min_version is not None:
        context.minimum_version = tls_version(min_version)  # type: ignore[arg-type]
    if max_version is not None:
        context.maximum_version = tls_version(max_version)  # type: ignore[arg-type]
    return context


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start, so no other user can read the key even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def write_client_files(
    directory: "str | os.PathLike[str]", ca: trustme.CA, client: Optional[trustme.LeafCert] = None
) -> Dict[str, Path]:
    """Write ca.pem (and client.pem/client.key) for clients such as cqlsh."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = {"ca": target / "ca.pem"}
    written["ca"].write_bytes(ca.cert_pem.bytes())
    if client is not None:
        written["client_cert"] = target / "client.pem"
        written["client_key"] = target / "client.key"
        written["client_cert"].write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
        _write_private(written["client_key"], client.private_key_pem.bytes())
    return written


def key_type_of(cert: trustme.LeafCert) -> trustme.KeyType:
    """The kind of key a certificate holds (RSA or ECDSA), to make others like it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    public_key = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_key()
    return trustme.KeyType.RSA if isinstance(public_key, rsa.RSAPublicKey) else trustme.KeyType.ECDSA


def identities_of(cert: trustme.LeafCert) -> Tuple[str, ...]:
    """The host names and addresses a certificate is valid for (its subjectAltName)."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.get_values_for_type(x509.DNSName)) + tuple(
        str(address) for address in names.get_values_for_type(x509.IPAddress))


def expired_cert(ca: trustme.CA, *identities: str,
                 key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> trustme.LeafCert:
    """A leaf whose validity ended yesterday."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return ca.issue_cert(
        *(identities or DEFAULT_IDENTITIES),
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
        key_type=key_type,
    )


def not_yet_valid_cert(ca: trustme.CA, *identities: str,
                       key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> trustme.LeafCert:
    """A leaf whose validity starts tomorrow."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return ca.issue_cert(
        *(identities or DEFAULT_IDENTITIES),
        not_before=now + datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=30),
        key_type=key_type,
    )


def self_signed_cert(*identities: str, key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> trustme.LeafCert:
    """A server certificate that is its own issuer (subject = issuer, signed
    with its own key), naming `identities`: what a node set up without a CA
    presents. Built with `cryptography`, not as a trustme CA, because a CA's
    own certificate also says CA:TRUE and names no host, so a client would
    see those faults too; this one differs from a good leaf only in its
    issuer (OpenSSL's verify code 18, "self-signed certificate")."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = identities or DEFAULT_IDENTITIES
    key: "ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey"
    if key_type is trustme.KeyType.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    alt_names: List[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakecql self-signed"),
        x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # trustme documents no constructor for LeafCert, but TLSConfig needs one to
    # configure a context with; its __init__ takes exactly these PEMs.
    return trustme.LeafCert(key_pem, cert.public_bytes(serialization.Encoding.PEM), [])


# --------------------------------------------------------------------------
# The MemoryBIO engine
# --------------------------------------------------------------------------

class TLSHandshakeError(FakeCQLError):
    """The TLS handshake with a client failed; `reason` is OpenSSL's."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(f"TLS handshake failed: {reason}")
        self.reason = reason
        self.__cause__ = cause


@dataclass(frozen=True)
class TLSInfo:
    """What a completed handshake negotiated, for the activity log."""

    protocol: str
    cipher: str
    session_reused: bool
    client_cert_subject: Optional[str] = None


_READ_CHUNK = 256 * 1024


class TLSEngine:
    """Server-side TLS over memory BIOs: ciphertext in, plaintext out, and back."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False
        self.peer_closed = False  # close_notify received
        self.info: Optional[TLSInfo] = None

    def receive(self, ciphertext: bytes) -> bytes:
        """Feed bytes from the peer; return the plaintext now readable.

        Raises TLSHandshakeError when the handshake fails (take_outgoing()
        then holds the alert to send) and ssl.SSLError for a TLS error after it.
        """
        if ciphertext:
            self._incoming.write(ciphertext)
        if not self.handshake_done and not self.do_handshake():
            return b""
        return self._read_plaintext()

    def do_handshake(self) -> bool:
        """One handshake step; True once it is complete."""
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            verify = getattr(exc, "verify_message", None)
            raise TLSHandshakeError(f"{reason}: {verify}" if verify else str(reason), exc) from exc
        self.handshake_done = True
        peer = self.sslobj.getpeercert()
        subject = None
        if peer:
            subject = ", ".join("=".join(pair) for rdn in peer.get("subject", ()) for pair in rdn)
        cipher = self.sslobj.cipher()
        self.info = TLSInfo(
            protocol=self.sslobj.version() or "",
            cipher=cipher[0] if cipher else "",
            session_reused=self.sslobj.session_reused,
            client_cert_subject=subject,
        )
        return True

    def _read_plaintext(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.sslobj.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not chunk:
                self.peer_closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        """Encrypt `plaintext`; the records wait in take_outgoing()."""
        view = memoryview(plaintext)
        while view:
            written = self.sslobj.write(view)
            view = view[written:]

    def update_keys(self, request_peer: bool) -> None:
        """Queue a TLS 1.3 KeyUpdate (asking the peer to update too if
        `request_peer`); KeyUpdateUnavailable when it cannot be sent."""
        request_key_update(self.sslobj, self._incoming, request_peer)

    def encrypt_after_close(self, plaintext: bytes) -> None:
        """Encrypt `plaintext` after our close_notify, as the records that follow
        it (only a misbehaving sender does that); WriteAfterCloseUnavailable
        when it cannot be done."""
        write_after_close_notify(self.sslobj, self._incoming, plaintext)

    def close(self) -> None:
        """Start the TLS shutdown: queue our close_notify."""
        try:
            self.sslobj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLSyscallError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError:
            pass  # the session is already broken: there is nothing left to say

    @property
    def outgoing_pending(self) -> int:
        return self._outgoing.pending

    def take_outgoing(self) -> bytes:
        """Everything the TLS layer has queued for the wire."""
        return self._outgoing.read() if self._outgoing.pending else b""


def split_records(data: bytes) -> Tuple[List[bytes], bytes]:
    """Cut TLS ciphertext into whole records; returns (records, leftover bytes)."""
    records = []
    pos = 0
    while len(data) - pos >= 5:
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        end = pos + 5 + length
        if end > len(data):
            break
        records.append(data[pos:end])
        pos = end
    return records, data[pos:]
