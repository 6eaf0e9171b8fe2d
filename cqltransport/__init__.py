"""cqltransport: asyncio TLS for the Python CQL drivers, through asyncio's transport layer.

    from cassandra.cluster import Cluster
    from cqltransport import AsyncioTransportConnection

    cluster = Cluster(..., ssl_context=ctx, connection_class=AsyncioTransportConnection)
"""
from .reactor import AsyncioTransportConnection, LoopTimer, TLSHandshakeTimeout

__all__ = ["AsyncioTransportConnection", "TLSHandshakeTimeout", "LoopTimer"]
