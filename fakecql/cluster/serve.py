# What `python -m fakecql serve --nodes N --nlb` prints about the NLB (cli's
# _serve_cluster starts the cluster and PrivateLink, and prints the nodes).
#
# Strategy: three parts, in order: the line scripts wait for, `nlb listening
# on HOST:PORT (discovery), connection id ID`; the NLB port of each node;
# then a scylla-driver snippet that works as printed (check_hostname off:
# each node's certificate names the node's address, not the NLB's, so a
# client checking host names through the NLB must fail, as against a real
# one).
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

from .private_link import PrivateLink

__all__ = ["nlb_lines"]


def nlb_lines(link: PrivateLink, ca_file: Optional[Path], auth: Any = None) -> str:
    """The NLB's lines and snippet; `auth` a fakecql PasswordAuth (or None)."""
    host, port = link.address
    ports = ", ".join(f"{host}:{link.node_port(n)} -> node {n.index}" for n in link.cluster.nodes)
    lines: List[str] = [
        f"nlb listening on {host}:{port} (discovery), connection id {link.connection_id}",
        f"nlb node ports: {ports}",
        "connect through the NLB with scylla-driver (client routes):",
    ]
    if ca_file:
        lines.append("  import ssl")
    lines += ["  from cassandra.cluster import Cluster",
              "  from cassandra.client_routes import ClientRoutesConfig, ClientRouteProxy"]
    kwargs = ""
    if auth is not None:
        lines.append("  from cassandra.auth import PlainTextAuthProvider")
        kwargs += f", auth_provider=PlainTextAuthProvider({auth.username!r}, {auth.password!r})"
    if ca_file:
        lines += [f"  ctx = ssl.create_default_context(cafile={str(ca_file)!r})",
                  "  ctx.check_hostname = False  # the NLB's address is not in the nodes' certificates"]
        kwargs += ", ssl_context=ctx"
    lines += [f"  cluster = Cluster([{host!r}], port={port}{kwargs},",
              f"                    client_routes_config=ClientRoutesConfig([ClientRouteProxy({link.connection_id!r}, "
              f"{host!r})]))",
              "  print(cluster.connect().execute('SELECT release_version FROM system.local').one())"]
    return "\n".join(lines)
