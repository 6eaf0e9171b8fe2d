# `python -m fakecql`: serve a fake node to any client, or run the demo.
#
# Strategy: argparse builds the options, then one function per command.
# main(argv) returns the exit status instead of exiting, so tests call it
# in-process as well as by subprocess. Bad flags and a busy port give one
# line naming the problem and status 2 (after argparse's usage for flags).
# `serve` prints one line "listening on HOST:PORT (tls|plain)" once its
# socket accepts connections, then how to connect with cqlsh and with the
# Python driver, and serves until SIGINT or SIGTERM.
#
# Rules: the snippets printed are commands that work as printed (paths and
# credentials shell-quoted, a wildcard address replaced by loopback); the
# certificates of a TLS node are written to --certs-dir, or to a temporary
# directory removed when the node stops.
from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import trustme

from . import __version__
from .matrix.command import MatrixUsageError
from .matrix.command import add_parser as add_matrix_parser
from .matrix.command import run as run_matrix
from .node import PasswordAuth
from .reactors import REACTORS
from .server import CQLServer
from .tls import ClientAuth, TLSConfig, server_identities, tls_version, write_client_files

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


def build_parser(prog: str = "fakecql") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A fake CQL node with real TLS.")
    parser.add_argument("--version", action="version", version=f"fakecql {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser("serve", help="serve a fake node until interrupted")
    serve.add_argument("--host", type=_host, default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything but loopback is warned about)")
    serve.add_argument("--port", type=_port, default=9042, help="port (default 9042; 0 picks a free one)")
    serve.add_argument("--tls", action="store_true", help="speak TLS (certificates made fresh by trustme)")
    serve.add_argument("--mtls", action="store_true", help="TLS and require a client certificate (implies --tls)")
    serve.add_argument("--certs-dir", type=Path, metavar="DIR",
                       help="write ca.pem, cqlshrc (and client.pem/client.key with --mtls) here; "
                            "default: a temporary directory removed at exit")
    serve.add_argument("--auth", type=_auth, metavar="USER:PASSWORD", help="require PasswordAuthenticator credentials")
    serve.add_argument("--protocol-versions", type=_versions, default=[3, 4, 5], metavar="3,4,5",
                       help="native protocol versions served (default 3,4,5)")
    serve.add_argument("--tls-min", type=_tls_version, metavar="1.2|1.3", help="lowest TLS version (default 1.2)")
    serve.add_argument("--tls-max", type=_tls_version, metavar="1.2|1.3", help="highest TLS version (default 1.3)")
    serve.add_argument("--key-type", choices=["ecdsa", "rsa"], default="ecdsa",
                       help="the node certificate's key: ECDSA P-256 (default) or RSA 2048, as many clusters use")
    serve.add_argument("--no-frame-log", action="store_true",
                       help="do not keep an activity entry per frame (for long load tests)")
    serve.set_defaults(parser=serve)
    demo = commands.add_parser("demo", help="start a TLS node, connect the installed driver to it, query it")
    demo.add_argument("--reactor", choices=list(REACTORS), default=None,
                      help="driver reactor (default: the driver's own default)")
    demo.set_defaults(parser=demo)
    add_matrix_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: str = "fakecql") -> int:
    """`prog` names the command in usage and errors: `python -m fakecql` passes its own."""
    parser = build_parser(prog)
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the subcommand's parser, with its usage (status 2)
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse has printed the usage and the error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    prog = args.parser.prog
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "matrix":
            return run_matrix(args)
        return _demo(args)
    except (_UsageError, MatrixUsageError) as exc:
        args.parser.print_usage(sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        return 1
    except OSError as exc:
        print(f"{prog}: error: {_os_error_text(exc)}", file=sys.stderr)
        return 2


def _version() -> str:
    try:
        return metadata.version("fakecql")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return __version__


def _os_error_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        text += f": {exc.filename}"
    if exc.errno == errno.EADDRINUSE:
        text += " (another process has this port; --port 0 picks a free one)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text += " (--host must be an address of this machine)"
    return text


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(reactor=args.reactor)


def _serve(args: argparse.Namespace) -> int:
    use_tls = args.tls or args.mtls
    if not use_tls:
        for flag, value in (("--certs-dir", args.certs_dir), ("--tls-min", args.tls_min), ("--tls-max", args.tls_max)):
            if value is not None:
                raise _UsageError(f"{flag} needs --tls or --mtls")
    tls_min, tls_max = args.tls_min or "1.2", args.tls_max or "1.3"
    if tls_version(tls_min) > tls_version(tls_max):
        raise _UsageError(f"--tls-min {tls_min} is above --tls-max {tls_max}")
    address = ipaddress.ip_address(args.host)
    if not address.is_loopback:
        print(f"warning: listening on {args.host}, not loopback: other machines can reach this fake node",
              file=sys.stderr, flush=True)
    # From here on SIGINT/SIGTERM only ask to stop: the node starts, then stops cleanly.
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    temp_dir: Optional[Path] = None
    try:
        tls = None
        files: Dict[str, Path] = {}
        if use_tls:
            if args.certs_dir is None:
                temp_dir = certs_dir = Path(tempfile.mkdtemp(prefix="fakecql-certs-"))
            else:
                certs_dir = args.certs_dir.resolve()
            key_type = trustme.KeyType.RSA if args.key_type == "rsa" else trustme.KeyType.ECDSA
            ca = trustme.CA(key_type=key_type)
            identities = list(server_identities())
            if not address.is_unspecified and args.host not in identities:
                identities.append(args.host)  # so clients that check the name can reach a non-loopback node
            tls = TLSConfig.create(
                ca, server_cert=ca.issue_cert(*identities, key_type=key_type),
                client_auth=ClientAuth.REQUIRED if args.mtls else ClientAuth.NONE,
                min_version=tls_min, max_version=tls_max,
            )
            try:
                files = write_client_files(certs_dir, ca, tls.issue_client_cert() if args.mtls else None)
                files["cqlshrc"] = _write_cqlshrc(certs_dir, files)
            except OSError as exc:
                raise OSError(exc.errno, f"--certs-dir {certs_dir}: cannot write the certificates there: "
                                         f"{_os_error_text(exc)}") from None
        server = CQLServer(tls=tls, host=args.host, port=args.port, protocol_versions=args.protocol_versions,
                           auth=args.auth, record_frames=not args.no_frame_log)
        if stop.is_set():
            return 0
        try:
            server.start()
        except OSError as exc:  # asyncio's text repeats the address: say it once, with the system's reason
            reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
            raise OSError(exc.errno, f"cannot listen on {_hostport(args.host, args.port)}: {reason}") from None
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


def _write_cqlshrc(directory: Path, files: Dict[str, Path]) -> Path:
    """A cqlshrc with the [ssl] settings (cqlsh reads client certificates only from there)."""
    def value(path: Path) -> str:
        return str(path).replace("%", "%%")  # cqlsh's ConfigParser interpolates '%'

    lines = ["; written by python -m fakecql serve", "[ssl]", f"certfile = {value(files['ca'])}", "validate = true"]
    if "client_cert" in files:
        lines += [f"usercert = {value(files['client_cert'])}", f"userkey = {value(files['client_key'])}"]
    path = directory / "cqlshrc"
    path.write_text("\n".join(lines) + "\n")
    return path


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _client_host(host: str) -> str:
    """Where a local client connects: loopback when the node listens on every address."""
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


def _snippets(server: CQLServer, files: Dict[str, Path], auth: Optional[PasswordAuth]) -> str:
    host, port = _client_host(server.host), server.port
    cqlsh = ["cqlsh"]
    if files:
        cqlsh += ["--ssl", "--cqlshrc", str(files["cqlshrc"])]
    if auth:
        cqlsh += ["-u", auth.username, "-p", auth.password]
    cqlsh += [host, str(port)]
    lines = ["", "cqlsh:", "  " + " ".join(shlex.quote(part) for part in cqlsh)]
    lines += ["", "Python driver (scylla-driver or cassandra-driver):", "  from cassandra.cluster import Cluster"]
    kwargs = f"contact_points=[{host!r}], port={port}"
    if files:
        lines += ["  import ssl", f"  ctx = ssl.create_default_context(cafile={str(files['ca'])!r})"]
        if "client_cert" in files:
            lines.append(f"  ctx.load_cert_chain({str(files['client_cert'])!r}, {str(files['client_key'])!r})")
        kwargs += ", ssl_context=ctx"
    if auth:
        lines.append("  from cassandra.auth import PlainTextAuthProvider")
        kwargs += f", auth_provider=PlainTextAuthProvider({auth.username!r}, {auth.password!r})"
    lines += [f"  session = Cluster({kwargs}).connect()",
              "  print(session.execute('SELECT release_version FROM system.local').one())"]
    if files:
        lines += ["", f"certificates in {files['ca'].parent}"]
    return "\n".join(lines)
