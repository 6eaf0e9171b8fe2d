"""cqltransport: asyncio TLS for the Python CQL drivers, through asyncio's transport layer.

    from cassandra.cluster import Cluster
    from cqltransport import AsyncioTransportConnection

    cluster = Cluster(..., ssl_context=ctx, connection_class=AsyncioTransportConnection)

UvloopTransportConnection is the same reactor on uvloop (pip install uvloop).
"""
from .loops import UvloopTransportConnection
from .reactor import AsyncioTransportConnection, LoopTimer, TLSHandshakeTimeout

__all__ = ["AsyncioTransportConnection", "UvloopTransportConnection", "TLSHandshakeTimeout", "LoopTimer"]
