# `python -m fakecql`: serve a fake node to any client, or run the demo.
#
# Strategy: argparse builds the options, then one function per command.
# main(argv) returns the exit status instead of exiting, so tests call it
# in-process as well as by subprocess. Bad flags and a busy port give one
# line naming the problem and status 2. `serve` prints one line
# "listening on HOST:PORT (tls|plain)" once it accepts connections, then
# how to connect, and serves until SIGINT or SIGTERM.
from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import List, Optional, Sequence

import trustme

from .node import PasswordAuth
from .server import CQLServer
from .tls import ClientAuth, TLSConfig, tls_version, write_client_files

__all__ = ["main", "build_parser"]


class _UsageError(Exception):
    """A bad combination of flags, reported like argparse does (status 2)."""


def _versions(text: str) -> List[int]:
    try:
        versions = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected protocol versions like 3,4,5, got {text!r}") from None
    if not versions or any(v not in (3, 4, 5) for v in versions):
        raise argparse.ArgumentTypeError(f"protocol versions must be among 3, 4 and 5, got {text!r}")
    return versions


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0-65535, got {port}")
    return port


def _host(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address such as 127.0.0.1 or ::1, got {text!r}") from None


def _auth(text: str) -> PasswordAuth:
    try:
        return PasswordAuth.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tls_version(text: str) -> str:
    try:
        tls_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fakecql", description="A fake CQL node with real TLS.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser("serve", help="serve a fake node until interrupted")
    serve.add_argument("--host", type=_host, default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything but loopback is warned about)")
    serve.add_argument("--port", type=_port, default=9042, help="port (default 9042; 0 picks a free one)")
    serve.add_argument("--tls", action="store_true", help="speak TLS (certificates made fresh by trustme)")
    serve.add_argument("--mtls", action="store_true", help="TLS and require a client certificate (implies --tls)")
    serve.add_argument("--certs-dir", type=Path,
                       help="write ca.pem (and client.pem/client.key with --mtls) here; default: a temporary directory")
    serve.add_argument("--auth", type=_auth, metavar="USER:PASSWORD", help="require PasswordAuthenticator credentials")
    serve.add_argument("--protocol-versions", type=_versions, default=[3, 4, 5], metavar="3,4,5",
                       help="native protocol versions served (default 3,4,5)")
    serve.add_argument("--tls-min", type=_tls_version, default="1.2", metavar="1.2|1.3")
    serve.add_argument("--tls-max", type=_tls_version, default="1.3", metavar="1.2|1.3")
    demo = commands.add_parser("demo", help="start a TLS node, connect the installed driver to it, query it")
    demo.add_argument("--reactor", default=None, help="driver reactor: asyncio, asyncore, libev, transport (default: the driver's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the error
        return int(exc.code or 0)
    try:
        if args.command == "serve":
            return _serve(args)
        from .demo import run_demo

        return run_demo(reactor=args.reactor)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{parser.prog}: error: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    if args.certs_dir is not None and not (args.tls or args.mtls):
        raise _UsageError("--certs-dir needs --tls or --mtls")
    if tls_version(args.tls_min) > tls_version(args.tls_max):
        raise _UsageError(f"--tls-min {args.tls_min} is above --tls-max {args.tls_max}")
    if not ipaddress.ip_address(args.host).is_loopback:
        print(f"warning: listening on {args.host}, not loopback: other machines can reach this fake node",
              file=sys.stderr)
    tls = None
    temp_dir = None
    files = {}
    if args.tls or args.mtls:
        ca = trustme.CA()
        tls = TLSConfig.create(
            ca, client_auth=ClientAuth.REQUIRED if args.mtls else ClientAuth.NONE,
            min_version=args.tls_min, max_version=args.tls_max,
        )
        certs_dir = args.certs_dir
        if certs_dir is None:
            temp_dir = tempfile.mkdtemp(prefix="fakecql-certs-")
            certs_dir = Path(temp_dir)
        files = write_client_files(certs_dir, ca, tls.issue_client_cert() if args.mtls else None)
    server = CQLServer(tls=tls, host=args.host, port=args.port, protocol_versions=args.protocol_versions,
                       auth=args.auth)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        try:
            print(f"listening on {_hostport(server.host, server.port)} ({'tls' if tls else 'plain'})", flush=True)
            print(_snippets(server, files, args.auth), flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
        print("stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _snippets(server: CQLServer, files: dict, auth: Optional[PasswordAuth]) -> str:
    host, port = server.host, server.port
    lines = ["", "cqlsh:"]
    cqlsh = f"  cqlsh {host} {port}"
    if auth:
        cqlsh += f" -u {auth.username} -p {auth.password}"
    if files:
        env = f"SSL_CERTFILE={files['ca']} SSL_VALIDATE=true"
        if "client_cert" in files:
            env += f" SSL_USERCERTFILE={files['client_cert']} SSL_USERKEYFILE={files['client_key']}"
        cqlsh = f"  {env} cqlsh --ssl {host} {port}" + (f" -u {auth.username} -p {auth.password}" if auth else "")
    lines.append(cqlsh)
    lines += ["", "Python driver (scylla-driver or cassandra-driver):", "  from cassandra.cluster import Cluster"]
    kwargs = f"contact_points=[{host!r}], port={port}"
    if files:
        lines += ["  import ssl",
                  "  ctx = ssl.create_default_context(cafile=%r)" % str(files["ca"])]
        if "client_cert" in files:
            lines.append("  ctx.load_cert_chain(%r, %r)" % (str(files["client_cert"]), str(files["client_key"])))
        kwargs += ", ssl_context=ctx"
    if auth:
        lines.append("  from cassandra.auth import PlainTextAuthProvider")
        kwargs += f", auth_provider=PlainTextAuthProvider({auth.username!r}, {auth.password!r})"
    lines += [f"  session = Cluster({kwargs}).connect()",
              "  print(session.execute('SELECT release_version FROM system.local').one())"]
    if files:
        lines += ["", f"certificates in {os.path.dirname(files['ca'])}"]
    return "\n".join(lines)
