# Response frames decoded by the installed driver's own code (scylla-driver
# or cassandra-driver, whichever the environment has), so a test reads what
# fakecql put on the wire as a client reads it, not through fakecql's codec.
from __future__ import annotations

import inspect
from typing import Any, Dict

from cassandra.protocol import ProtocolHandler

from fakecql.protocol.frames import Frame

__all__ = ["driver_decode"]


def driver_decode(frame: Frame) -> Any:
    """The driver's message for a response `frame` (an ErrorMessage subclass for ERROR)."""
    header = frame.header
    params = inspect.signature(ProtocolHandler.decode_message).parameters
    values: Dict[str, Any] = {
        "protocol_version": header.version, "user_type_map": {}, "stream_id": header.stream,
        "flags": header.flags, "opcode": header.opcode, "body": frame.body, "decompressor": None,
        "result_metadata": None,
    }
    if "protocol_features" in params:  # scylla-driver
        from cassandra.protocol_features import ProtocolFeatures

        values["protocol_features"] = ProtocolFeatures()
    return ProtocolHandler.decode_message(*[values[name] for name in params])
