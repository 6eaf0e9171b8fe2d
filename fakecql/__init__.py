"""fakecql: a fake Cassandra/Scylla node with real TLS, for testing CQL drivers.

    from fakecql import CQLServer, TLSConfig, client_context
    ca = trustme.CA()
    with CQLServer(tls=TLSConfig.create(ca)) as node:
        ctx = client_context(ca, check_hostname=True)
        Cluster([node.host], port=node.port, ssl_context=ctx).connect()
"""
# The release, equal to pyproject.toml's version (tests/unit/test_cli.py checks it);
# `fakecql --version` reads the installed metadata first.
__version__ = "0.1.0"

from .activity import (
    ActivityCounters,
    ActivityLog,
    ConnectionClosed,
    ConnectionOpened,
    FaultApplied,
    FrameReceived,
    HandshakeCompleted,
    HandshakeFailed,
    Incident,
    ProtocolIncident,
    ServerException,
    TLSIncident,
    UnexpectedRequest,
    VersionRefused,
)
from ._openssl import KeyUpdateUnavailable
from .faults import (
    CloseConnection,
    DribbleOutput,
    Fault,
    FaultPlan,
    KeyUpdate,
    ResetConnection,
    StallHandshake,
    StopReading,
)
from .limits import Limits
from .cqlerrors import (
    AlreadyExists,
    BadCredentials,
    CASWriteUnknown,
    CDCWriteFailure,
    ConfigError,
    CQLError,
    CQLSyntaxError,
    FunctionFailure,
    Invalid,
    IsBootstrapping,
    Overloaded,
    ProtocolError,
    ReadFailure,
    ReadTimeout,
    ServerError,
    Truncate,
    Unauthorized,
    Unavailable,
    Unprepared,
    WriteFailure,
    WriteTimeout,
)
from .node import Node, NodeIdentity, PasswordAuth
from .priming import Priming, PrimingBook, UnmetExpectation, UnmetExpectationsError
from .protocol.messages import Consistency
from .requestlog import BoundValue, LoggedStatement
from .protocol.errors import ErrorCode, FakeCQLError
from .schema import Schema
from .server import CQLServer, UnexpectedActivityError
from .tls import ClientAuth, TLSConfig, client_context, write_client_files

__all__ = [
    "__version__",
    "CQLServer",
    "Limits",
    "UnexpectedActivityError",
    "TLSConfig",
    "ClientAuth",
    "client_context",
    "write_client_files",
    "Node",
    "NodeIdentity",
    "PasswordAuth",
    "Priming",
    "PrimingBook",
    "UnmetExpectation",
    "UnmetExpectationsError",
    "Consistency",
    "CQLError",
    "ServerError",
    "ProtocolError",
    "BadCredentials",
    "Unavailable",
    "Overloaded",
    "IsBootstrapping",
    "Truncate",
    "WriteTimeout",
    "ReadTimeout",
    "ReadFailure",
    "FunctionFailure",
    "WriteFailure",
    "CDCWriteFailure",
    "CASWriteUnknown",
    "CQLSyntaxError",
    "Unauthorized",
    "Invalid",
    "ConfigError",
    "AlreadyExists",
    "Unprepared",
    "BoundValue",
    "LoggedStatement",
    "Schema",
    "ErrorCode",
    "FakeCQLError",
    "Fault",
    "FaultPlan",
    "StallHandshake",
    "KeyUpdate",
    "KeyUpdateUnavailable",
    "StopReading",
    "ResetConnection",
    "DribbleOutput",
    "CloseConnection",
    "ActivityLog",
    "ActivityCounters",
    "ConnectionOpened",
    "ConnectionClosed",
    "HandshakeCompleted",
    "HandshakeFailed",
    "FrameReceived",
    "FaultApplied",
    "Incident",
    "ProtocolIncident",
    "UnexpectedRequest",
    "ServerException",
    "TLSIncident",
    "VersionRefused",
]
