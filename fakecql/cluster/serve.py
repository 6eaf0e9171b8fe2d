# `python -m fakecql serve --nodes N [--nlb]`: serve a cluster, and the NLB with
# client routes in front of it, until interrupted.
#
# Strategy: cli._serve checks the flags and owns the signals; this module
# builds what they ask for (one certificate naming every node's address,
# not the NLB's: a client that checks host names through the NLB must
# fail, as against a real one), starts it, prints one line per node and,
# with --nlb, the line `nlb listening on HOST:PORT (discovery), connection
# id ID` that scripts wait for, then a scylla-driver snippet that works as
# printed, and stops everything when `stop` is set.
#
# Rules: what is started is stopped, in reverse order, also on an error;
# the certificates go to --certs-dir (or a temporary directory the caller
# removes).
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional

import trustme

from ..activity import ActivityLog
from ..limits import Limits
from ..tls import TLSConfig
from ._hand_built import HandBuiltCluster
from .nlb import DEFAULT_HOST
from .private_link import PrivateLink

__all__ = ["serve_cluster"]


def _snippet(link: PrivateLink, ca_file: Optional[Path]) -> str:
    host, port = link.address
    lines = [
        "connect through the NLB with scylla-driver (client routes):",
        "  import ssl" if ca_file else "",
        "  from cassandra.cluster import Cluster",
        "  from cassandra.client_routes import ClientRoutesConfig, ClientRouteProxy",
    ]
    if ca_file:
        lines += [f"  ctx = ssl.create_default_context(cafile={str(ca_file)!r})",
                  "  ctx.check_hostname = False  # the NLB's address is not in the nodes' certificates"]
    tls = ", ssl_context=ctx" if ca_file else ""
    lines += [f"  cluster = Cluster([{host!r}], port={port}{tls},",
              f"                    client_routes_config=ClientRoutesConfig([ClientRouteProxy({link.connection_id!r}, "
              f"{host!r})]))",
              "  print(cluster.connect().execute('SELECT release_version FROM system.local').one())"]
    return "\n".join(line for line in lines if line)


def serve_cluster(args: argparse.Namespace, *, tls: Optional[TLSConfig], files: Dict[str, Path], limits: Limits,
                  activity: ActivityLog, stop: threading.Event) -> int:
    """Serve args.nodes nodes (and the NLB with --nlb) until `stop` is set; the exit status.
    `tls`: the single node's TLS settings, whose CA (in `files`) signs the nodes' certificate."""
    flavor = "scylla" if args.nlb else "cassandra"
    hosts = [str(h) for h in HandBuiltCluster(args.nodes, first_address=args.host).hosts]
    if tls is not None:
        key_type = trustme.KeyType.RSA if args.key_type == "rsa" else trustme.KeyType.ECDSA
        tls = dataclasses.replace(tls, server_cert=tls.ca.issue_cert(*hosts, "localhost", key_type=key_type))
    cluster = HandBuiltCluster(args.nodes, tls=tls, flavor=flavor, port=args.port, first_address=args.host,
                               activity=activity, protocol_versions=args.protocol_versions, auth=args.auth,
                               record_frames=not args.no_frame_log, limits=limits)
    started: List[object] = []
    link: Optional[PrivateLink] = None
    try:
        cluster.start()
        started.append(cluster)
        mode = "tls" if tls else "plain"
        for member in cluster.nodes:
            print(f"node {member.index + 1} listening on {member.host}:{member.port} ({mode}), "
                  f"host id {member.host_id}", flush=True)
        if args.nlb:
            link = PrivateLink(cluster, host=args.nlb_host or DEFAULT_HOST).start()
            started.append(link)
            host, port = link.address
            print(f"nlb listening on {host}:{port} (discovery), connection id {link.connection_id}", flush=True)
            ports = ", ".join(f"{host}:{link.nlb.node_port(m.index)} -> node {m.index + 1}" for m in cluster.nodes)
            print(f"nlb node ports: {ports}", flush=True)
            print(_snippet(link, files.get("ca")), flush=True)
        elif files:
            print(f"CA certificate: {shlex.quote(str(files['ca']))}", flush=True)
        while not stop.wait(0.5):
            if link is not None and link.nlb.errors:  # raised by check() below, once stopped
                print(f"nlb error: {link.nlb.errors[0].splitlines()[-1]}", file=sys.stderr, flush=True)
                break
    finally:
        errors: List[BaseException] = []
        for thing in reversed(started):
            try:
                thing.stop()  # type: ignore[attr-defined]
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
    if link is not None:
        link.check()
    return 0
