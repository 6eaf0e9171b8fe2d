# `python -m fakecql`: serve a fake node to any client, or run the demo.
#
# Strategy: argparse builds the options, then one function per command.
# main(argv) returns the exit status instead of exiting, so tests call it
# in-process as well as by subprocess. Bad flags and a busy port give one
# line naming the problem and status 2 (after argparse's usage for flags).
# `serve` prints one line "listening on HOST:PORT (tls|plain)" once its
# socket accepts connections, then how to connect with cqlsh and with the
# Python driver, and serves until SIGINT or SIGTERM; then a summary of what
# it served (from the activity log's counters, which eviction does not
# change) and "stopped". Each incident goes to stderr as one line when it
# happens (a subscriber of the activity log), with -v the traceback of a
# server exception too. `serve --nodes 3` (or `2,2` for two data centers)
# serves a CQLCluster instead: one line per node ("node I listening on
# HOST:PORT (tls|plain), data center DC, rack RACK"), the same snippets with
# every contact point, a summary per node at exit.
#
# Rules: the snippets printed are commands that work as printed (paths and
# credentials shell-quoted, a wildcard address replaced by loopback); the
# certificates of a TLS node are written to --certs-dir, or to a temporary
# directory removed when the node stops. Sizes are bytes, or a number with
# Cassandra's binary units (KiB, MiB, GiB); a decimal unit (MB) is refused
# rather than guessed. `--fault NAME[:key=value,...]` (repeatable) starts
# the node with those faults (faults/registry.py parses them; one line per
# fault after the listening line); `--fault list` prints them all and exits.
from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import trustme

from . import __version__
from .activity import ActivityCounters, ActivityLog, Entry, Incident, ServerException
from .faults import Fault
from .faults.registry import FaultSpecError, describe, fault_spec, parse_fault
from .limits import Limits
from .matrix.command import MatrixUsageError
from .matrix.command import add_parser as add_matrix_parser
from .matrix.command import run as run_matrix
from .node import PasswordAuth
from .reactors import REACTORS
from .loops import require_uvloop
from .server import CQLServer
from .tls import ClientAuth, TLSConfig, server_identities, tls_version, write_client_files

__all__ = ["main", "build_parser", "incident_line", "incident_printer", "summary"]


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


def _count_of(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of `what`, 1 or more."""
    def parse(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise argparse.ArgumentTypeError(f"expected a number of {what} (1 or more), got {text!r}")
        return count
    return parse


_shards = _count_of("shards")
_racks = _count_of("racks per data center")


def _host(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address such as 127.0.0.1 or ::1, got {text!r}") from None


def _nodes(text: str) -> List[int]:
    """--nodes: '3' (one data center) or '2,2' (nodes per data center)."""
    expected = "expected a number of nodes such as 3, or nodes per data center such as 2,2"
    parts = text.split(",")
    if not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    sizes = [int(p) for p in parts]
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"every data center needs at least 1 node, got {text!r}")
    return sizes


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


_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}
_SIZE = re.compile(r"(?P<number>[0-9]+) ?(?P<unit>[A-Za-z]*)")
UNBOUNDED = "unbounded"


def _size(text: str, *, or_unbounded: bool = False) -> int:
    """Bytes: an integer, or one with a binary unit (16MiB, 512KiB, 1GiB); at least 1."""
    allowed = "expected a size in bytes such as 1048576, 512KiB, 16MiB or 1GiB"
    if or_unbounded:
        allowed += f", or {UNBOUNDED!r}"
    match = _SIZE.fullmatch(text.strip())
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in _UNITS:
        ambiguous = unit in ("k", "kb", "m", "mb", "g", "gb")
        raise argparse.ArgumentTypeError(f"{allowed}, got {text!r}"
                                         + (" (decimal units are ambiguous: use KiB, MiB or GiB)" if ambiguous else ""))
    value = int(match["number"]) * _UNITS[unit]
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte{f' or {UNBOUNDED!r}' if or_unbounded else ''}, "
                                         f"got {text!r}")
    return value


def _size_or_unbounded(text: str) -> Optional[int]:
    if text.strip().lower() == UNBOUNDED:
        return None
    return _size(text, or_unbounded=True)


def _count_or_unbounded(text: str) -> Optional[int]:
    if text.strip().lower() == UNBOUNDED:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of entries (1 or more) or {UNBOUNDED!r}, got {text!r}")
    return value


def _format_size(value: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if value % _UNITS[unit.lower()] == 0:
            return f"{value // _UNITS[unit.lower()]}{unit}"
    return str(value)


# serve's flags that set a Limits field: (flag, field, type, help)
_LIMIT_FLAGS = (
    ("--max-frame-body", "max_frame_body", _size, "BYTES",
     "longest frame body accepted (default {}; Cassandra's native_transport_max_frame_size)"),
    ("--max-query-bytes", "max_query_text", _size, "BYTES",
     "longest statement text, in UTF-8 bytes, the node interprets (default {}; at most --max-frame-body)"),
    ("--prepared-cache-bytes", "prepared_cache_bytes", _size, "BYTES",
     "prepared-statement cache size; the least recently used is evicted (default {})"),
    ("--log-entries", "log_entries", _count_or_unbounded, "N",
     "activity entries kept, the newest (default {}; 'unbounded' keeps all; the summary counts all)"),
    ("--log-text-bytes", "log_text_bytes", _size_or_unbounded, "BYTES",
     "characters of query text the activity log keeps (default {}; 'unbounded' keeps all)"),
)


def _limits(args: argparse.Namespace) -> Limits:
    """The Limits the flags ask for (the defaults for those not given)."""
    given = {name: getattr(args, name) for _, name, *_ in _LIMIT_FLAGS if hasattr(args, name)}

    def shown(name: str) -> str:
        value = given.get(name, getattr(Limits, name))
        return _format_size(value) + ("" if name in given else " (the default)")

    if given.get("max_query_text", Limits.max_query_text) > given.get("max_frame_body", Limits.max_frame_body):
        raise _UsageError(f"--max-query-bytes {shown('max_query_text')} is above "
                          f"--max-frame-body {shown('max_frame_body')}")
    try:
        return Limits(**given)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def build_parser(prog: str = "fakecql") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A fake CQL node with real TLS.")
    parser.add_argument("--version", action="version", version=f"fakecql {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser(
        "serve", help="serve a fake node until interrupted",
        description="Serve a fake CQL node until Ctrl-C or SIGTERM, then print a summary. Each incident is "
                    "printed to stderr as one line when it happens. BYTES is a number of bytes, or one with "
                    "a binary unit: 512KiB, 16MiB, 1GiB.")
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
    serve.add_argument("--shards", type=_shards, metavar="N",
                       help="be a Scylla node of N shards: SUPPORTED tells each connection its shard, and the "
                            "node also listens on a shard-aware port (printed), where a connection's shard is "
                            "its source port %% N")
    serve.add_argument("--shard-aware-port", type=_port, metavar="PORT",
                       help="the shard-aware port, with --shards (default: a free one)")
    serve.add_argument("--no-frame-log", action="store_true",
                       help="do not keep an activity entry per frame (for long load tests)")
    defaults = Limits()
    for flag, name, kind, metavar, text in _LIMIT_FLAGS:
        default = getattr(defaults, name)
        shown = UNBOUNDED if default is None else (str(default) if name == "log_entries" else _format_size(default))
        serve.add_argument(flag, dest=name, type=kind, metavar=metavar, default=argparse.SUPPRESS,
                           help=text.format(shown))
    serve.add_argument("--nodes", type=_nodes, metavar="N|N,N,...",
                       help="serve a cluster: N nodes (or N per data center, dc1, dc2, ...) on consecutive "
                            "loopback addresses from --host, all on one port")
    serve.add_argument("--racks", type=_racks, metavar="N", help="racks per data center of --nodes (default 1)")
    serve.add_argument("--nlb", action="store_true",
                       help="with --nodes: a layer-4 NLB in front of the nodes, and client routes through it "
                            "(Scylla flavour; for scylla-driver's ClientRoutesConfig)")
    serve.add_argument("--nlb-host", type=_host, default=None, metavar="ADDRESS",
                       help="the NLB's address (default 127.0.0.100)")
    serve.add_argument("--uvloop", action="store_true",
                       help="run the node's event loop (every node's, with --nodes) on uvloop (pip install uvloop)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME[:key=value,...]",
                       help="start the node with this fault (repeatable), e.g. key-update:on-request=0,every=4; "
                            "'--fault list' prints every fault with its arguments and exits")
    serve.add_argument("-v", "--verbose", action="store_true",
                       help="print the traceback of each exception inside the node, not only its line")
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
    if exc.errno == errno.EADDRINUSE and "(the shard-aware port)" in text:
        text += " (another process has this port; without --shard-aware-port the node picks a free one)"
    elif exc.errno == errno.EADDRINUSE:
        text += " (another process has this port; --port 0 picks a free one)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text += " (--host must be an address of this machine)"
    return text


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(reactor=args.reactor)


def _faults(specs: List[str]) -> List[Fault]:
    """The faults --fault asks for (a _UsageError naming the first that does not parse)."""
    try:
        return [parse_fault(spec) for spec in specs]
    except FaultSpecError as exc:
        raise _UsageError(f"--fault {exc}") from None


class StopRequest:
    """What SIGINT and SIGTERM set while `serve` runs: a flag, polled.

    A Python signal handler runs in the main thread between two bytecodes,
    possibly while that thread holds a lock. threading.Event.set() from the
    handler then waits forever for the lock that the interrupted
    Event.wait() holds, and serve ignored SIGINT (seen in CI). Setting an
    attribute takes no lock."""

    POLL = 0.2  # seconds: how late a stop can be noticed

    def __init__(self) -> None:
        self.requested = False

    def set(self, *_signal: object) -> None:
        """Ask to stop; usable as a signal handler."""
        self.requested = True

    def is_set(self) -> bool:
        return self.requested

    def wait(self, timeout: float) -> bool:
        """Sleep `timeout` seconds at most (a stop is noticed within POLL);
        True if a stop was asked for."""
        deadline = time.monotonic() + timeout
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, self.POLL))
        return self.requested


def _serve(args: argparse.Namespace) -> int:
    if "list" in args.fault:
        print(describe(), flush=True)
        return 0
    if args.uvloop:
        try:
            require_uvloop()
        except ImportError as exc:  # a missing package, not a usage error: the one line says what to install
            print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
            return 2
    faults = _faults(args.fault)
    use_tls = args.tls or args.mtls
    if not use_tls:
        for flag, value in (("--certs-dir", args.certs_dir), ("--tls-min", args.tls_min), ("--tls-max", args.tls_max)):
            if value is not None:
                raise _UsageError(f"{flag} needs --tls or --mtls")
    if args.certs_dir is not None:
        parent = args.certs_dir.resolve().parent
        if not parent.is_dir():
            state = "is not a folder" if parent.exists() else "does not exist"
            raise _UsageError(f"--certs-dir {args.certs_dir}: {parent} {state} "
                              "(serve creates the folder DIR, not its parents)")
    if args.shard_aware_port is not None and args.shards is None:
        raise _UsageError("--shard-aware-port needs --shards")
    if args.shard_aware_port and args.shard_aware_port == args.port:
        raise _UsageError(f"--shard-aware-port must differ from --port (both are {args.port})")
    if args.nlb and not args.nodes:
        raise _UsageError("--nlb needs --nodes (the NLB stands in front of a cluster)")
    if args.nlb_host is not None and not args.nlb:
        raise _UsageError("--nlb-host needs --nlb")
    limits = _limits(args)
    if args.nodes is not None:
        _check_cluster_flags(args)
    elif args.racks is not None:
        raise _UsageError("--racks needs --nodes")
    tls_min, tls_max = args.tls_min or "1.2", args.tls_max or "1.3"
    if tls_version(tls_min) > tls_version(tls_max):
        raise _UsageError(f"--tls-min {tls_min} is above --tls-max {tls_max}")
    address = ipaddress.ip_address(args.host)
    if not address.is_loopback:
        print(f"warning: listening on {args.host}, not loopback: other machines can reach this fake node",
              file=sys.stderr, flush=True)
    # From here on SIGINT/SIGTERM only ask to stop: the node starts, then stops cleanly.
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)}
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
        if args.nodes is not None:
            return _serve_cluster(args, tls, files, limits, stop, faults)
        activity = ActivityLog(max_entries=limits.log_entries, max_text_bytes=limits.log_text_bytes)
        server = CQLServer(tls=tls, host=args.host, port=args.port, protocol_versions=args.protocol_versions,
                           auth=args.auth, record_frames=not args.no_frame_log, limits=limits, activity=activity,
                           shards=args.shards, shard_aware_port=args.shard_aware_port or 0, faults=faults,
                           uvloop=args.uvloop)
        if stop.is_set():
            return 0
        printer = incident_printer(verbose=args.verbose)
        activity.subscribe(printer, kinds=(Incident,))
        try:
            try:
                server.start()
            except OSError as exc:  # asyncio's text repeats the address: say it once, with the system's reason
                reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
                where = _hostport(args.host, args.port)
                if "(the shard-aware port)" in (exc.strerror or ""):
                    where = f"{_hostport(args.host, args.shard_aware_port or 0)} (the shard-aware port)"
                raise OSError(exc.errno, f"cannot listen on {where}: {reason}") from None
            try:
                print(f"listening on {_hostport(server.host, server.port)} ({'tls' if tls else 'plain'})", flush=True)
                if server.shard_aware_port is not None:
                    print(f"shard-aware port {_hostport(server.host, server.shard_aware_port)} "
                          f"({args.shards} shards; a connection's shard is its source port % {args.shards})", flush=True)
                for fault in faults:
                    print(f"fault: {fault_spec(fault)}", flush=True)
                print(_snippets(server, files, args.auth), flush=True)
                while not stop.wait(0.5):
                    pass
            finally:
                server.stop()
        finally:
            activity.unsubscribe(printer)
        print(summary(activity.counters()), flush=True)
        print("stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


_LAST_NODE_OCTET = 254  # a cluster's nodes stay in the /24 of --host: 127.0.0.1 .. 127.0.0.254


def _check_cluster_flags(args: argparse.Namespace) -> None:
    address = ipaddress.ip_address(args.host)
    if not isinstance(address, ipaddress.IPv4Address) or not address.is_loopback:
        raise _UsageError(f"--nodes needs --host to be an IPv4 loopback address (the nodes take consecutive "
                          f"addresses from it, 127.0.0.1 by default), got --host {args.host}")
    total = sum(args.nodes)
    first = int(str(address).rsplit(".", 1)[1])
    if first == 0 or first + total - 1 > _LAST_NODE_OCTET:
        room = max(0, _LAST_NODE_OCTET - first + 1) if first else 0
        prefix = str(address).rsplit(".", 1)[0]
        raise _UsageError(f"--nodes {','.join(map(str, args.nodes))} needs {total} addresses from {address}, "
                          f"but {prefix}.1-{prefix}.{_LAST_NODE_OCTET} leaves room for {room} from there")


def _serve_cluster(args: argparse.Namespace, tls: Optional[TLSConfig], files: Dict[str, Path], limits: Limits,
                   stop: StopRequest, faults: Sequence[Fault] = ()) -> int:
    """serve --nodes: a CQLCluster (with --nlb a Scylla one, and PrivateLink's NLB and client
    routes in front of it); one line per node, the NLB's lines or the snippets, then serve until stopped."""
    from .cluster import CQLCluster, PrivateLink
    from .cluster.nlb import DEFAULT_HOST
    from .cluster.serve import nlb_lines

    cluster = CQLCluster(
        args.nodes, tls=tls, flavor="scylla" if args.nlb or args.shards else "cassandra", port=args.port,
        first_address=args.host, racks=args.racks or 1, protocol_versions=args.protocol_versions, auth=args.auth,
        record_frames=not args.no_frame_log, limits=limits, uvloop=args.uvloop,
        **({"shards": args.shards, "shard_aware_port": args.shard_aware_port or 0} if args.shards else {}),
    )
    for n in cluster.nodes:
        for fault in faults:
            n.server.faults.add(fault)
    if stop.is_set():
        return 0
    printers = [(n.server.activity, incident_printer(verbose=args.verbose, prefix=f"node {n.index}: "))
                for n in cluster.nodes]
    for activity, printer in printers:
        activity.subscribe(printer, kinds=(Incident,))
    link: Optional[PrivateLink] = None
    try:
        cluster.start()  # an OSError names the node and address that could not listen
        try:
            mode = "tls" if tls else "plain"
            for n in cluster.nodes:
                print(f"node {n.index} listening on {_hostport(n.host, n.port)} ({mode}), "
                      f"data center {n.data_center}, rack {n.rack}", flush=True)
            if cluster.shard_aware_port is not None:
                print(f"shard-aware port {cluster.shard_aware_port} on every node ({args.shards} shards; "
                      f"a connection's shard is its source port % {args.shards})", flush=True)
            for fault in faults:
                print(f"fault on every node: {fault_spec(fault)}", flush=True)
            if args.nlb:
                link = PrivateLink(cluster, host=args.nlb_host or DEFAULT_HOST).start()
            try:
                if link is not None:
                    print(nlb_lines(link, files.get("ca"), args.auth), flush=True)
                else:
                    print(_snippets(cluster.nodes[0].server, files, args.auth, contact_points=cluster.contact_points),
                          flush=True)
                while not stop.wait(0.5):
                    if link is not None and link.nlb.errors:  # link.check() below raises it, once all stopped
                        print(f"nlb error: {link.nlb.errors[0].splitlines()[-1]}", file=sys.stderr, flush=True)
                        break
            finally:
                if link is not None:
                    link.stop()
        finally:
            cluster.stop()
    finally:
        for activity, printer in printers:
            activity.unsubscribe(printer)
    if link is not None:
        link.check()
    for n in cluster.nodes:
        print(f"node {n.index} ({n.host}) " + summary(n.server.activity.counters()), flush=True)
    print("stopped", flush=True)
    return 0


def _one_line(text: str, limit: int) -> str:
    """`text` on one line: whitespace runs as one space, other control characters escaped, cut at `limit`."""
    head = " ".join(text[: limit * 2].split())  # enough to fill `limit` after collapsing
    head = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    if len(head) > limit:
        return f"{head[:limit]}... ({len(text)} chars)"
    return head if len(text) <= limit * 2 else f"{head}... ({len(text)} chars)"


def incident_line(incident: Incident) -> str:
    """One line for `incident`: where, what kind, the description's first line (a server
    exception's own line instead of "Traceback ..."), the query shortened."""
    where = f"connection {incident.connection}" if incident.connection else "node"
    exc = incident.exception if isinstance(incident, ServerException) else None
    lines = [line for line in incident.description.splitlines() if line.strip()] or [""]
    if exc is not None:
        what = traceback.format_exception_only(type(exc), exc)[-1]
    else:  # a traceback's own line is its last
        what = lines[-1] if isinstance(incident, ServerException) else lines[0]
    line = f"incident [{where}] {type(incident).__name__}: {_one_line(what, 200)}"
    query = getattr(incident, "query", None)
    if query:
        line += f"; query: {_one_line(query, 100)}"
    return line


def incident_printer(verbose: bool = False, prefix: str = "") -> Callable[[Entry], None]:
    """An activity subscriber printing each incident to stderr as it happens (see incident_line)."""
    lock = threading.Lock()  # the node's loop thread and its worker threads may both report

    def print_incident(entry: Entry) -> None:
        if not isinstance(entry, Incident):
            return
        text = prefix + incident_line(entry)
        if verbose and isinstance(entry, ServerException):
            text += "\n" + "\n".join("    " + line for line in entry.description.splitlines())
        with lock:
            print(text, file=sys.stderr, flush=True)

    return print_incident


def summary(counters: ActivityCounters) -> str:
    """What a node served, printed when `serve` stops."""
    def by_kind(counts: Dict[str, int]) -> str:
        total = sum(counts.values())
        return f"{total} ({', '.join(f'{k} {n}' for k, n in sorted(counts.items()))})" if total else "0"

    return "\n".join([
        "summary:",
        f"  connections: {counters.connections}",
        f"  requests: {by_kind(dict(counters.requests))}",
        f"  incidents: {by_kind(dict(counters.incidents))}",
        f"  dropped from the activity log: {counters.entries_dropped} entries "
        f"({counters.text_bytes_dropped} chars of query text), {counters.incidents_dropped} incidents",
    ])


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


def _snippets(server: CQLServer, files: Dict[str, Path], auth: Optional[PasswordAuth],
              contact_points: Optional[List[str]] = None) -> str:
    host, port = _client_host(server.host), server.port
    cqlsh = ["cqlsh"]
    if files:
        cqlsh += ["--ssl", "--cqlshrc", str(files["cqlshrc"])]
    if auth:
        cqlsh += ["-u", auth.username, "-p", auth.password]
    cqlsh += [host, str(port)]
    lines = ["", "cqlsh:", "  " + " ".join(shlex.quote(part) for part in cqlsh)]
    lines += ["", "Python driver (scylla-driver or cassandra-driver):", "  from cassandra.cluster import Cluster"]
    kwargs = f"contact_points={contact_points or [host]!r}, port={port}"
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
